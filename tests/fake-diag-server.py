#!/usr/bin/env python3
"""tests/fake-diag-server.py -- a fault-injecting fake .NET diagnostic server.

Listens on a unix socket named as a .NET runtime names its Diagnostic IPC
socket, <dir>/dotnet-diagnostic-<pid>-<key>-socket, and answers the IPC
commands the plugin and triggerdump send (ProcessInfo, ProcessInfo2,
CollectTracing, CollectTracing2, StopTracing, GenerateCoreDump 1-3) the way a
scenario says: correctly, or with one fault. Python 3 standard library only.

    fake-diag-server.py --scenario NAME [options]

Where the socket goes and who it claims to be:
  --dir DIR        the socket's directory (default: $TMPDIR, else /tmp). When the
                   server names the socket after itself and DIR is not the
                   TMPDIR in its own /proc/self/environ (where the plugin looks),
                   it re-executes itself with TMPDIR=DIR (same pid).
  --as-pid PID     name the socket after PID instead of ourselves (impersonation:
                   the plugin must refuse it, SO_PEERCRED says it is us)
  --key KEY        the key in the name (default: the start time of the pid it is
                   named after, field 22 of /proc/PID/stat, as the runtime does)
  --instances N    fork N servers (each named after its own pid; default 1)
  --ready FILE     append "READY <named-pid> <server-pid> <socket>" per server
                   (default: stdout)
  --log FILE       append one line per connection and command (default: none)
  --tag TEXT       ignored; lets a CommandLine rule tell fake servers apart
  --only-for PID   inject the fault only into clients that descend from PID
                   (SO_PEERCRED): any other client (another test's collectd
                   with AutoDiscover, on a shared machine) gets the "normal"
                   behaviour, so that the faults stay within one test
  --entry NAME     entry assembly in ProcessInfo2 (default FakeTarget)
  --fixture FILE   the nettrace stream to replay (default:
                   tests/fixtures/counters-net10.nettrace)
  --hresult HEX    HRESULT of the error-reply scenario (default 0x80070005)
  --victim PATH    the file the dump scenarios point symlinks at
  --cycle N        restart cycles (scenario "cycle"): see below
  --snapshot-objects N  objects in a gc-* scenario's snapshot (default 20000)

Scenarios. IPC replies (apply to every command):
  hang             accept, read, never answer (keeps the connection open)
  no-accept        listen with backlog 0 and never accept
  garbage-reply    answer 64 random bytes, then close
  bad-magic        answer a header with magic "DOTNET_IPC_V2"
  lying-size       header says 65535 bytes, 8 follow, then silence
  tiny-size        header's size field 4 (< the 20-byte header)
  truncated-reply  header says 20+24 bytes, 10 follow, then close
  unknown-command  answer every command with CORDIAGIPC_E_UNKNOWN_COMMAND
ProcessInfo answered correctly, then CollectTracing:
  error-reply      error reply with --hresult
  collect-no-id    OK without the session id
  slow-collect     OK + id after --delay seconds (default 1.5: later than the
                   plugin's IPC timeout), then as normal
  normal           OK + id, then the fixture's stream without its end marker,
                   then the connection is held open; StopTracing is answered OK
                   and ends the stream with the end-of-stream marker
  stop-hang        as normal, but StopTracing is never answered
  late-listen      as normal, but the socket is bound (and READY reported)
                   --delay seconds before it listens (connects are refused
                   meanwhile), as a runtime starting up binds a moment before
                   it listens
  stream-garbage   OK + id, then 4 KiB of random bytes, then held open
  stream-bad-magic OK + id, a stream starting "NotTrace", then held open
  stream-huge-block OK + id, header + Trace + a block claiming 0xFFFFFFF0 bytes
  stream-zeros     OK + id, header + Trace, then zeros until the peer closes
  stream-truncated OK + id, the fixture cut in the middle of a block, then close
  stream-stall     OK + id, the fixture up to the middle of a block, then held
                   open, silent
GenerateCoreDump (ProcessInfo, CollectTracing as "normal"):
  dump-ok            writes a small file at the path asked for, answers OK
  dump-symlink-final also plants a symlink to --victim at the final dump path
                     (<dir>/<instance>-<pid>-<stamp>.dmp, from the staging path)
  dump-file-final    also plants a regular file at the final dump path
  dump-symlink-staged puts a symlink to --victim at the path asked for
  dump-hang          never answers GenerateCoreDump
  dump-swap          writes a regular file, answers OK, then for 2 s keeps
                     swapping it with a symlink to --victim (a hostile runtime
                     racing the checks of the staged file)
A hostile stream of counters (ProcessInfo, CollectTracing as "normal"):
  series-flood     OK + id, then a stream of its own making, --flood-rate
                   samples a second (default 10) until the peer closes:
                   every sample carries a time 2 s after the last one's
                   (the peer's clock runs 2 s a sample); each brings
                     - EventCounters "steady" (System.Runtime), value = n
                     - EventCounters "c-<n>": a new counter every sample
                     - EventCounters "evil\\nname\\x1b[31mred" (a newline
                       and an ANSI escape in its name)
                     - HistogramValuePublished Flood.Meter/lat, session
                       SHARED, quantiles 0.5, 0.95, 0.99 and a new one
                       (0.5 + n/10^6) every sample
                     - GaugeValuePublished Flood.Meter/orphan with an empty
                       session id (no session asked for it)
GC heap snapshots (ProcessInfo and the counters session as "normal"; the
heap-types run's SampleProfiler flush session gets one event and is held
open until StopTracing; the session whose providers ask for the GC heap
dump keywords, 0x100000, gets a snapshot stream of our own making: GCStart
of an induced blocking gen2 GC, BulkType naming "FakeSpike" and
"System.String", --snapshot-objects objects in GCBulkNode events of 100
(nine tenths FakeSpike of 10,000 bytes, the rest System.String of 40
bytes), GCEnd, GCHeapStats; every event numbered 1, 2, ... on one capture
thread):
  gc-ok            all of it, then held open; StopTracing ends it cleanly
  gc-cut           the stream cut in the middle of a block halfway through
                   the nodes, then the connection closed
  gc-no-end        all but GCEnd and GCHeapStats, then held open (the
                   snapshot's GC never ends); StopTracing ends it cleanly
  gc-lost          the node event of Index 3 never sent (its sequence number
                   skipped, as EventPipe numbers a dropped event)
Restart cycles:
  cycle            the parent forks a "normal" server, waits until it is traced
                   (CollectTracing), starts the next one, SIGKILLs the previous
                   (every 4th ends its stream cleanly instead), --cycle N times;
                   prints "CYCLES <done> <missed>" at the end

Exit: SIGTERM/SIGINT removes the socket(s) and exits 0.
"""
import argparse
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time

MAGIC = b"DOTNET_IPC_V1\0"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURE = os.path.join(HERE, "fixtures", "counters-net10.nettrace")

ARGS = None
LOG_LOCK = threading.Lock()
SESSIONS = {}  # session id -> tracing connection (normal scenario)
SESSIONS_LOCK = threading.Lock()


def log(msg):
    if not ARGS.log:
        return
    line = "%.3f %d %s\n" % (time.time(), os.getpid(), msg)
    with LOG_LOCK:
        fd = os.open(ARGS.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2:].split()[19])


def self_environ_tmpdir():
    with open("/proc/self/environ", "rb") as f:
        for var in f.read().split(b"\0"):
            if var.startswith(b"TMPDIR=/"):
                tmp = var[7:].decode()
    try:
        return tmp.rstrip("/") or "/"
    except NameError:
        return "/tmp"


# ---- messages ----

def header(size, cset, cid, magic=MAGIC):
    return magic + struct.pack("<HBBH", size, cset, cid, 0)


def message(cset, cid, payload=b""):
    return header(20 + len(payload), cset, cid) + payload


def ok(payload=b""):
    return message(0xFF, 0x00, payload)


def error(hr):
    return message(0xFF, 0xFF, struct.pack("<I", hr & 0xFFFFFFFF))


def put_string(s):
    if not s:
        return struct.pack("<I", 0)
    u = s.encode("utf-16-le") + b"\0\0"
    return struct.pack("<I", len(u) // 2) + u


def take_string(buf, off):
    (n,) = struct.unpack_from("<I", buf, off)
    off += 4
    s = buf[off:off + 2 * n].decode("utf-16-le", "replace").rstrip("\0")
    return s, off + 2 * n


def process_info(v2):
    cmdline = " ".join(sys.argv)
    p = struct.pack("<Q", os.getpid()) + bytes(range(16))
    p += put_string(cmdline) + put_string("Linux") + put_string("X64")
    if v2:
        p += put_string(ARGS.entry) + put_string("10.0.0-fake")
    return p


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_command(conn):
    hdr = recv_exact(conn, 20)
    if hdr is None or hdr[:14] != MAGIC:
        return None
    size, cset, cid, _ = struct.unpack_from("<HBBH", hdr, 14)
    payload = recv_exact(conn, size - 20) if size > 20 else b""
    if payload is None:
        return None
    return cset, cid, payload


def hold(conn):
    """Keeps the connection open until the peer closes it."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


# ---- the nettrace fixture ----

def fixture_units(data):
    """Splits a nettrace stream into (offset, length, kind) units."""
    units = [(0, 32, "header")]
    off = 32
    while off < len(data):
        if data[off] == 1:
            units.append((off, 1, "end"))
            break
        (name_len,) = struct.unpack_from("<I", data, off + 11)
        type_len = 15 + name_len + 1
        name = data[off + 15:off + 15 + name_len].decode()
        if name == "Trace":
            total = type_len + 48 + 1
        else:
            (size,) = struct.unpack_from("<I", data, off + type_len)
            after = off + type_len + 4
            total = type_len + 4 + (4 - after % 4) % 4 + size + 1
        units.append((off, total, name))
        off += total
    return units


def fixture():
    with open(ARGS.fixture, "rb") as f:
        data = bytearray(f.read())
    units = fixture_units(data)
    # the Trace object's SYSTEMTIME: now, so the values carry current times
    toff, _, kind = units[1]
    assert kind == "Trace"
    (name_len,) = struct.unpack_from("<I", data, toff + 11)
    st = toff + 15 + name_len + 1
    now = time.time()
    tm = time.gmtime(now)
    struct.pack_into("<8H", data, st, tm.tm_year, tm.tm_mon, (tm.tm_wday + 1) % 7,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     int(now * 1000) % 1000)
    return bytes(data), units


def stream_prefix(data, units):
    """Header and Trace object: where every stream scenario starts."""
    off, length, _ = units[1]
    return data[:off + length]


def mid_block_cut(units):
    """A cut in the middle of the third block (an EventBlock, usually)."""
    blocks = [u for u in units if u[2] not in ("header", "Trace", "end")]
    off, length, _ = blocks[min(2, len(blocks) - 1)]
    return off + length // 2


# ---- scenarios ----

def send_stream(conn, sid, sc, providers=()):
    data, units = fixture()
    end = units[-1]
    body = data[:end[0]] if end[2] == "end" else data
    if sc.startswith("gc-"):
        if any(name == RUNTIME_PROVIDER and kw & GC_HEAP_DUMP_KEYWORD
               for name, kw in providers):
            gc_snapshot(conn, sid, sc, data, units)
            return
        if any(name == SAMPLE_PROFILER for name, _ in providers):
            flush_session(conn, sid, data, units)
            return
        sc = "normal"  # the counters session
    if sc in ("normal", "stop-hang", "cycle", "slow-collect", "late-listen") or sc.startswith("dump-"):
        with SESSIONS_LOCK:
            SESSIONS[sid] = conn
        conn.sendall(body)
        log("streamed %d bytes" % len(body))
        hold(conn)
        return
    if sc == "series-flood":
        series_flood(conn, data, units)
        return
    if sc == "stream-garbage":
        conn.sendall(os.urandom(4096))
        hold(conn)
    elif sc == "stream-bad-magic":
        conn.sendall(b"NotTrace" + body[8:4096])
        hold(conn)
    elif sc == "stream-huge-block":
        pre = stream_prefix(data, units)
        off, length, _ = units[2]
        (name_len,) = struct.unpack_from("<I", data, off + 11)
        type_len = 15 + name_len + 1
        blk = bytearray(data[off:off + type_len + 4 + 64])
        struct.pack_into("<I", blk, type_len, 0xFFFFFFF0)
        conn.sendall(pre + bytes(blk))
        hold(conn)
    elif sc == "stream-zeros":
        conn.sendall(stream_prefix(data, units))
        zeros = bytes(65536)
        sent = 0
        try:
            while True:
                conn.sendall(zeros)
                sent += len(zeros)
        except OSError:
            log("zeros: peer closed after %d bytes" % sent)
    elif sc == "stream-truncated":
        conn.sendall(body[:mid_block_cut(units)])
        log("truncated at %d" % mid_block_cut(units))
        conn.close()
    elif sc == "stream-stall":
        conn.sendall(body[:mid_block_cut(units)])
        hold(conn)


# ---- series-flood: a nettrace stream of our own ----

def utf16z(s):
    return s.encode("utf-16-le") + b"\0\0"


def nt_object(name, content, offset):
    """A block object at stream offset `offset`: type, size, padding to a
    4-byte stream offset, content, EndObject."""
    n = name.encode()
    head = b"\x05\x05\x01" + struct.pack("<iii", 2, 2, len(n)) + n + b"\x06"
    head += struct.pack("<I", len(content))
    pad = (4 - (offset + len(head)) % 4) % 4
    return head + bytes(pad) + content + b"\x06"


def nt_event(meta_id, seq, ts, payload):
    """An uncompressed event: int32 size (what follows, padding included),
    the header, the payload, zeros up to a multiple of 4 bytes."""
    body = struct.pack("<IIQQIIQ", meta_id | 0x80000000, seq, 1, 1, 0, 0, ts)
    body += bytes(32) + struct.pack("<I", len(payload)) + payload
    body += bytes((4 - len(body) % 4) % 4)
    return struct.pack("<I", len(body)) + body


def nt_block(events, ts):
    return struct.pack("<HHQQ", 20, 0, ts, ts) + b"".join(events)


def nt_fields_v1(fields):
    """A V1 field list: int32 count; per field int32 type, [object: its own
    list], UTF-16z name."""
    out = struct.pack("<i", len(fields))
    for name, typ in fields:
        if isinstance(typ, list):
            out += struct.pack("<i", 1) + nt_fields_v1(typ)
        else:
            out += struct.pack("<i", typ)
        out += utf16z(name)
    return out


def nt_metadata(meta_id, provider, event_id, event_name, fields, version=0):
    return (struct.pack("<i", meta_id) + utf16z(provider) +
            struct.pack("<i", event_id) + utf16z(event_name) +
            struct.pack("<qii", 0, version, 4) + nt_fields_v1(fields))


STR, I32, F32, F64 = 18, 9, 13, 14
EC_FIELDS = [("Payload", [("Name", STR), ("DisplayName", STR), ("Mean", F64),
                          ("StandardDeviation", F64), ("Count", I32),
                          ("Min", F64), ("Max", F64), ("IntervalSec", F32),
                          ("Series", STR), ("CounterType", STR),
                          ("Metadata", STR), ("DisplayUnits", STR)])]
HIST_FIELDS = [("sessionId", STR), ("meterName", STR), ("meterVersion", STR),
               ("instrumentName", STR), ("unit", STR), ("tags", STR),
               ("quantiles", STR), ("count", I32), ("sum", F64)]
GAUGE_FIELDS = [("sessionId", STR), ("meterName", STR), ("meterVersion", STR),
                ("instrumentName", STR), ("unit", STR), ("tags", STR),
                ("lastValue", STR)]


def ec_payload(name, value):
    return (utf16z(name) + utf16z(name) + struct.pack("<ddiddf", value, 0, 1,
                                                      value, value, 1.0) +
            utf16z("Interval=1000") + utf16z("Mean") + utf16z("") + utf16z(""))


def series_flood(conn, data, units):
    pre = stream_prefix(data, units)
    toff, _, _ = units[1]
    (name_len,) = struct.unpack_from("<I", data, toff + 11)
    st = toff + 15 + name_len + 1
    sync_qpc, freq = struct.unpack_from("<qq", data, st + 16)
    out = bytearray(pre)
    metas = [nt_event(0, 0, sync_qpc, nt_metadata(1, "System.Runtime", 0,
                                                  "EventCounters", EC_FIELDS)),
             nt_event(0, 0, sync_qpc, nt_metadata(
                 2, "System.Diagnostics.Metrics", 6, "HistogramValuePublished",
                 HIST_FIELDS)),
             nt_event(0, 0, sync_qpc, nt_metadata(
                 3, "System.Diagnostics.Metrics", 5, "GaugeValuePublished",
                 GAUGE_FIELDS))]
    out += nt_object("MetadataBlock", nt_block(metas, sync_qpc), len(out))
    conn.sendall(bytes(out))
    offset = len(out)
    rate = ARGS.flood_rate
    n = 0
    t0 = time.time()
    try:
        while True:
            ts = sync_qpc + 2 * n * freq  # 2 s of the peer's clock a sample
            evs = [nt_event(1, 5 * n + 1, ts, ec_payload("steady", float(n))),
                   nt_event(1, 5 * n + 2, ts, ec_payload("c-%d" % n, 1.0)),
                   nt_event(1, 5 * n + 3, ts,
                            ec_payload("evil\nname\x1b[31mred", 7.0)),
                   nt_event(2, 5 * n + 4, ts, utf16z("SHARED") +
                            utf16z("Flood.Meter") + utf16z("") + utf16z("lat") +
                            utf16z("ms") + utf16z("") +
                            utf16z("0.5=1;0.95=2;0.99=3;%r=4" %
                                   (0.5 + (n + 1) / 1e6)) +
                            struct.pack("<id", 10, 20.0)),
                   nt_event(3, 5 * n + 5, ts, utf16z("") +
                            utf16z("Flood.Meter") + utf16z("") +
                            utf16z("orphan") + utf16z("") + utf16z("") +
                            utf16z("5"))]
            blk = nt_object("EventBlock", nt_block(evs, ts), offset)
            conn.sendall(blk)
            offset += len(blk)
            n += 1
            delay = t0 + n / rate - time.time()
            if delay > 0:
                time.sleep(delay)
    except OSError as e:
        log("series-flood: %d samples, then %s" % (n, e))


# ---- gc-*: a GC heap snapshot of our own making ----

RUNTIME_PROVIDER = "Microsoft-Windows-DotNETRuntime"
SAMPLE_PROFILER = "Microsoft-DotNETCore-SampleProfiler"
GC_HEAP_DUMP_KEYWORD = 0x100000
FAKE_SPIKE_ID, FAKE_STRING_ID = 0x7F0000101000, 0x7F0000102000
NODES_PER_EVENT = 100
EVENTS_PER_BLOCK = 10


def collect_providers(payload, v2):
    """(name, keywords) of a CollectTracing(2) payload: uint32 buffer MB,
    uint32 format, [v2: uint8 rundown], uint32 count, then per provider
    uint64 keywords, uint32 level, string name, string filter."""
    off = 9 if v2 else 8
    (n,) = struct.unpack_from("<I", payload, off)
    off += 4
    out = []
    for _ in range(min(n, 64)):
        (kw,) = struct.unpack_from("<Q", payload, off)
        off += 12
        name, off = take_string(payload, off)
        _, off = take_string(payload, off)
        out.append((name, kw))
    return out


def trace_clock(data, units):
    """The Trace object's sync QPC and QPC frequency."""
    toff, _, _ = units[1]
    (name_len,) = struct.unpack_from("<I", data, toff + 11)
    st = toff + 15 + name_len + 1
    return struct.unpack_from("<qq", data, st + 16)


def flush_session(conn, sid, data, units):
    """The SampleProfiler session heap-types runs first: one event, then
    held open until StopTracing."""
    qpc, _ = trace_clock(data, units)
    out = bytearray(stream_prefix(data, units))
    meta = nt_event(0, 0, qpc, nt_metadata(1, SAMPLE_PROFILER, 0, "ThreadSample", []))
    out += nt_object("MetadataBlock", nt_block([meta], qpc), len(out))
    ev = nt_event(1, 1, qpc, struct.pack("<I", 1))
    out += nt_object("EventBlock", nt_block([ev], qpc), len(out))
    with SESSIONS_LOCK:
        SESSIONS[sid] = conn
    conn.sendall(bytes(out))
    log("flush session %d: %d bytes" % (sid, len(out)))
    hold(conn)


def snapshot_events(qpc, freq, fault):
    """The snapshot's events in order, as (seq, ts, meta_id, payload); the
    events a fault leaves out are not in it, their numbers skipped."""
    gc = 42
    objects = ARGS.snapshot_objects
    spikes = objects * 9 // 10
    evs = []
    seq = [0]
    t = [qpc]

    def add(meta_id, payload, dt=0.0001):
        seq[0] += 1
        t[0] += int(dt * freq)
        evs.append((seq[0], t[0], meta_id, payload))

    # GCStart V2: Count, Depth 2, Reason 1 (induced), Type 0 (blocking)
    add(1, struct.pack("<IIIIHQ", gc, 2, 1, 0, 9, 0))
    bulk = b""
    for tid, name in ((FAKE_SPIKE_ID, "FakeSpike"), (FAKE_STRING_ID, "System.String")):
        bulk += struct.pack("<QQIIB", tid, 0x7F0000001000, 0, 0, 0x12) + utf16z(name)
        bulk += struct.pack("<I", 0)
    add(4, struct.pack("<IH", 2, 9) + bulk)
    index = 0
    for first in range(0, objects, NODES_PER_EVENT):
        nodes = b""
        n = min(NODES_PER_EVENT, objects - first)
        for i in range(first, first + n):
            big = i < spikes
            nodes += struct.pack("<QQQQ", 0x7E0000000000 + 16 * i,
                                 10000 if big else 40,
                                 FAKE_SPIKE_ID if big else FAKE_STRING_ID, 0)
        payload = struct.pack("<IIH", index, n, 9) + nodes
        if fault == "gc-lost" and index == 3:
            seq[0] += 1  # dropped: its number is used up
        else:
            add(5, payload)
        index += 1
    if fault != "gc-no-end":
        add(2, struct.pack("<IIH", gc, 2, 9), dt=0.0125)  # a 12.5 ms pause
        stats = struct.pack("<10Q", 1000000, 0, 2000000, 0,
                            spikes * 10000 + (objects - spikes) * 40, 0, 0, 0, 0, 0)
        add(3, stats + struct.pack("<IIIHQQ", 0, 0, 10, 9, 0, 0))
    return evs


def gc_snapshot(conn, sid, fault, data, units):
    qpc, freq = trace_clock(data, units)
    out = bytearray(stream_prefix(data, units))
    metas = [nt_event(0, 0, qpc, nt_metadata(1, RUNTIME_PROVIDER, 1, "GCStart", [], 2)),
             nt_event(0, 0, qpc, nt_metadata(2, RUNTIME_PROVIDER, 2, "GCEnd", [], 1)),
             nt_event(0, 0, qpc, nt_metadata(3, RUNTIME_PROVIDER, 4, "GCHeapStats", [], 2)),
             nt_event(0, 0, qpc, nt_metadata(4, RUNTIME_PROVIDER, 15, "BulkType", [])),
             nt_event(0, 0, qpc, nt_metadata(5, RUNTIME_PROVIDER, 18, "GCBulkNode", []))]
    out += nt_object("MetadataBlock", nt_block(metas, qpc), len(out))
    evs = snapshot_events(qpc, freq, fault)
    blocks = []
    for i in range(0, len(evs), EVENTS_PER_BLOCK):
        chunk = evs[i:i + EVENTS_PER_BLOCK]
        block = nt_block([nt_event(m, sq, ts, pl) for sq, ts, m, pl in chunk], chunk[0][1])
        blocks.append(block)
    if fault != "gc-cut":
        with SESSIONS_LOCK:
            SESSIONS[sid] = conn
    conn.sendall(bytes(out))
    off = len(out)
    cut_at = len(blocks) // 2
    for i, block in enumerate(blocks):
        obj = nt_object("EventBlock", block, off)
        if fault == "gc-cut" and i == cut_at:
            conn.sendall(obj[:len(obj) // 2])
            log("gc-cut: snapshot cut in block %d of %d" % (i, len(blocks)))
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            return
        conn.sendall(obj)
        off += len(obj)
    log("%s: snapshot of %d events in %d blocks, %d bytes" % (fault, len(evs), len(blocks), off))
    hold(conn)


REPLY_FAULTS = ("hang", "garbage-reply", "bad-magic", "lying-size", "tiny-size",
                "truncated-reply", "unknown-command")


def reply_fault(conn, sc):
    if sc == "hang":
        hold(conn)
    elif sc == "garbage-reply":
        conn.sendall(os.urandom(64))
    elif sc == "bad-magic":
        conn.sendall(header(28, 0xFF, 0, b"DOTNET_IPC_V2\0") + bytes(8))
        hold(conn)
    elif sc == "lying-size":
        conn.sendall(header(65535, 0xFF, 0) + bytes(8))
        hold(conn)
    elif sc == "tiny-size":
        conn.sendall(header(4, 0xFF, 0) + bytes(8))
        hold(conn)
    elif sc == "truncated-reply":
        conn.sendall(header(44, 0xFF, 0) + bytes(10))
    elif sc == "unknown-command":
        conn.sendall(error(0x80131385))


def dump_paths(path):
    """The final path dump.c renames the staged dump to:
    <dir>/.staging-<pid>-<stamp>/dump -> <dir>/<instance>-<pid>-<stamp>.dmp"""
    m = re.match(r"^(.*)/\.staging-(\d+)-([0-9T.]+Z)/dump$", path)
    if not m:
        return None
    inst = re.sub(r"[^A-Za-z0-9._-]", "_", ARGS.dump_instance or ARGS.entry)
    if not inst or inst.startswith("."):
        inst = "dotnet"
    return "%s/%s-%s-%s.dmp" % (m.group(1), inst, m.group(2), m.group(3))


def dump(conn, payload, sc):
    path, _ = take_string(payload, 0)
    log("dump asked for %s" % path)
    if sc == "dump-hang":
        hold(conn)
        return
    final = dump_paths(path)
    if sc == "dump-symlink-staged":
        os.symlink(ARGS.victim, path)
    else:
        with open(path, "wb") as f:
            f.write(b"not really a core dump\n" * 64)
    if sc == "dump-symlink-final" and final:
        os.symlink(ARGS.victim, final)
        log("planted symlink %s -> %s" % (final, ARGS.victim))
    elif sc == "dump-file-final" and final:
        with open(final, "wb") as f:
            f.write(b"planted\n")
        log("planted file %s" % final)
    conn.sendall(ok(struct.pack("<I", 0)))
    if sc == "dump-swap":
        tmp_link, tmp_file = path + ".l", path + ".f"
        end = time.time() + 2
        swaps = 0
        while time.time() < end:
            try:
                os.symlink(ARGS.victim, tmp_link)
                os.rename(tmp_link, path)
                with open(tmp_file, "wb") as f:
                    f.write(b"x")
                os.rename(tmp_file, path)
                swaps += 1
            except OSError:
                break  # the staging directory is gone: the dump is over
        for leftover in (tmp_link, tmp_file):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        log("swapped %d times" % swaps)


def descends_from(pid, ancestor):
    for _ in range(64):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            return False
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return False


def scenario_for(conn):
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", cred)
    if not ARGS.only_for or descends_from(pid, ARGS.only_for):
        log("client %d ours" % pid)
        return ARGS.scenario, True
    log("client %d foreign: normal behaviour" % pid)
    return "normal", False


def serve(conn):
    sc, mine = scenario_for(conn)
    try:
        cmd = read_command(conn)
        if cmd is None:
            log("connection without a command")
            return
        cset, cid, payload = cmd
        log("command %d/%d (%d bytes)" % (cset, cid, len(payload)))
        if sc in REPLY_FAULTS:
            reply_fault(conn, sc)
            return
        if cset == 4 and cid in (0, 4):
            conn.sendall(ok(process_info(cid == 4)))
        elif cset == 2 and cid in (2, 3):
            if sc == "error-reply":
                conn.sendall(error(ARGS.hresult))
            elif sc == "collect-no-id":
                conn.sendall(ok())
            else:
                if sc == "slow-collect":
                    time.sleep(ARGS.delay)
                sid = random.randrange(1, 1 << 62)
                conn.sendall(ok(struct.pack("<Q", sid)))
                log("tracing session %d" % sid)
                if CYCLE_NOTIFY is not None and mine:
                    os.write(CYCLE_NOTIFY, b"T")
                providers = ()
                if sc.startswith("gc-"):
                    providers = collect_providers(payload, cid == 3)
                    log("providers %s" % ", ".join("%s:0x%x" % p for p in providers))
                send_stream(conn, sid, sc, providers)
                return
        elif cset == 2 and cid == 1:
            if sc == "stop-hang":
                hold(conn)
                return
            (sid,) = struct.unpack_from("<Q", payload, 0)
            conn.sendall(ok(struct.pack("<Q", sid)))
            with SESSIONS_LOCK:
                tc = SESSIONS.pop(sid, None)
            log("stop tracing %d (%s)" % (sid, "known" if tc else "unknown"))
            if tc is not None:
                try:
                    tc.sendall(b"\x01")
                    tc.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        elif cset == 1 and cid in (1, 2, 3):
            dump(conn, payload, sc)
        else:
            conn.sendall(error(0x80131385))
    except OSError as e:
        log("connection error: %s" % e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


CYCLE_NOTIFY = None  # fd the cycle parent reads "T" (traced) from


def end_cleanly():
    """Every live stream ends with the end-of-stream marker."""
    with SESSIONS_LOCK:
        conns = list(SESSIONS.values())
        SESSIONS.clear()
    for c in conns:
        try:
            c.sendall(b"\x01")
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def run_server(ready_fd=None):
    """One server, in this process: binds, reports, serves until a signal."""
    named = ARGS.as_pid or os.getpid()
    key = ARGS.key if ARGS.key is not None else start_time(named)
    path = os.path.join(ARGS.dir, "dotnet-diagnostic-%d-%d-socket" % (named, key))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    late = ARGS.scenario == "late-listen"
    if not late:
        srv.listen(0 if ARGS.scenario == "no-accept" else 255)

    def bye(sig, frame):
        try:
            os.unlink(path)
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    signal.signal(signal.SIGUSR1, lambda s, f: end_cleanly())
    line = "READY %d %d %s\n" % (named, os.getpid(), path)
    if ARGS.ready:
        fd = os.open(ARGS.ready, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, line.encode())
        os.close(fd)
    else:
        sys.stdout.write(line)
        sys.stdout.flush()
    if ready_fd is not None:
        os.write(ready_fd, b"R")
    if late:
        time.sleep(ARGS.delay)  # connects are refused meanwhile
        log("listening")
        srv.listen(255)
    if ARGS.scenario == "no-accept":
        while True:
            time.sleep(3600)
    while True:
        conn, _ = srv.accept()
        log("connect")
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def cycle():
    """Restart cycles: see the module doc."""
    global CYCLE_NOTIFY
    ARGS.scenario = "normal"
    children = []  # (pid, notify read fd)

    def spawn():
        global CYCLE_NOTIFY
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            CYCLE_NOTIFY = w
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                run_server(ready_fd=w)
            finally:
                os._exit(1)
        os.close(w)
        # wait for "R" (listening)
        select.select([r], [], [], 10)
        os.read(r, 1)
        return pid, r

    def traced(r, timeout):
        rl, _, _ = select.select([r], [], [], timeout)
        return bool(rl) and os.read(r, 1) == b"T"

    def reap(pid):
        os.waitpid(pid, 0)
        named_key = start_key.pop(pid, None)
        if named_key is not None:
            try:
                os.unlink(named_key)
            except OSError:
                pass

    start_key = {}
    done = missed = 0
    stopping = [False]

    def stop(sig, frame):
        stopping[0] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    cur = spawn()
    start_key[cur[0]] = os.path.join(ARGS.dir, "dotnet-diagnostic-%d-%d-socket" % (cur[0], start_time(cur[0])))
    if not traced(cur[1], 15):
        missed += 1
    for i in range(ARGS.cycle):
        if stopping[0]:
            break
        nxt = spawn()
        start_key[nxt[0]] = os.path.join(ARGS.dir, "dotnet-diagnostic-%d-%d-socket" % (nxt[0], start_time(nxt[0])))
        if i % 4 == 3:
            os.kill(cur[0], signal.SIGUSR1)  # end the stream cleanly
            time.sleep(0.01)
        os.kill(cur[0], signal.SIGKILL)
        reap(cur[0])
        os.close(cur[1])
        cur = nxt
        if traced(cur[1], 15):
            done += 1
        else:
            missed += 1
        if ARGS.log and (i + 1) % 50 == 0:
            log("cycles %d" % (i + 1))
    os.kill(cur[0], signal.SIGKILL)
    reap(cur[0])
    sys.stdout.write("CYCLES %d %d\n" % (done, missed))
    sys.stdout.flush()


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--dir")
    ap.add_argument("--as-pid", type=int)
    ap.add_argument("--key", type=int)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--ready")
    ap.add_argument("--log")
    ap.add_argument("--tag")
    ap.add_argument("--only-for", type=int)
    ap.add_argument("--entry", default="FakeTarget")
    ap.add_argument("--dump-instance")
    ap.add_argument("--fixture", default=DEFAULT_FIXTURE)
    ap.add_argument("--hresult", type=lambda s: int(s, 0), default=0x80070005)
    ap.add_argument("--victim", default="/etc/hostname")
    ap.add_argument("--cycle", type=int, default=0)
    ap.add_argument("--delay", type=float, default=1.5)
    ap.add_argument("--flood-rate", type=float, default=10.0)
    ap.add_argument("--snapshot-objects", type=int, default=20000)
    ARGS = ap.parse_args()
    ARGS.dir = (ARGS.dir or os.environ.get("TMPDIR") or "/tmp").rstrip("/") or "/"
    if ARGS.as_pid is None and self_environ_tmpdir() != ARGS.dir:
        # the plugin looks for our socket in the TMPDIR of our environ
        env = dict(os.environ, TMPDIR=ARGS.dir)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if ARGS.scenario == "cycle":
        cycle()
        return
    if ARGS.instances <= 1:
        run_server()
        return
    kids = []
    for _ in range(ARGS.instances):
        pid = os.fork()
        if pid == 0:
            try:
                run_server()
            finally:
                os._exit(1)
        kids.append(pid)

    def bye(sig, frame):
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except OSError:
                pass
        for k in kids:
            try:
                os.waitpid(k, 0)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
