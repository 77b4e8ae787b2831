#!/usr/bin/env bash
# tests/integration/actions.sh -- the actions of a <Trigger> (alloc-types,
# heap-types, trace, dump), driven by collectd's threshold plugin, end to
# end: Debian's collectd (threshold, python, unixsock, network), the dotnet
# plugin, real .NET 8, 9, 10 and 11 processes, and tests/fake-diag-server.py
# for the faults. A python plugin (written here) appends every notification,
# with its meta, to NAME/notes.jsonl: the checks read the results there.
#
# The collectd instances run side by side, each with its own targets and
# <Trigger>; the threshold rule is WarningMax THRESHOLD on gc-heap-size
# (Persist true: a notification every second while above) unless said:
#   main     CounterTarget --heap-mb HEAP_MB (16 MB/s of short-lived 8 KiB
#            System.Byte[]; HEAP_MB live 1 MiB System.Byte[]) on .NET 8, 9,
#            10, 11, instances ct8..ct11, one trigger with alloc-types
#            (Duration 2), heap-types, trace (Duration 2), dump (mini), each
#            MinInterval 600. Per runtime: the four result notifications
#            come in the order of the actions, each once however many
#            breaches follow; heap-types' message and JSON file name
#            System.Byte[] first with bytes within HEAP_TOLERANCE_PCT of
#            what the app holds, its meta (path, pid, seconds, bytes, count,
#            complete) agrees with the file; alloc-types names System.Byte[]
#            first with >= 80 % of the sampled bytes; `triggerdump stats`
#            reads the trace whole; the dump is there; every file
#            <instance>-<pid>-<UTC stamp as dump.c>.<kind>, 0600, root's;
#            the heap-types snapshot shows as one more gen-2 GC; the
#            MinInterval refusals that follow are logged once.
#   refuse   CounterTarget .NET 10 ("cref") and SpikeApp .NET 10 ("spike",
#            two spikes 9 s apart), alloc-types (Duration 1), heap-types
#            with MaxHeapSize 100M, trace (Duration 1), MinInterval 600:
#            heap-types refused (FAILURE or log line naming MaxHeapSize,
#            no file, no gen-2 GC in cref), alloc-types and trace still run,
#            in order; the second spike runs no action a second time.
#   faults   four fake runtimes (fake-diag-server.py gc-ok, gc-cut,
#            gc-no-end, gc-lost, each its own rule WarningMax 1 MB) and a
#            real CounterTarget ("real", no rule), heap-types Timeout 4:
#            gc-ok an OKAY naming FakeSpike; the cut, unended and lossy
#            snapshots a FAILURE or an "incomplete" WARNING each; "real"
#            collected every second meanwhile, each value reaching
#            collectd's write threads within 1.5 s of its time (the notes
#            plugin records when: NAME/values.txt). In the same collectd,
#            SpikeApp .NET 9 ("spike9", SPIKE_MB): heap-types at its
#            breach names System.Byte[] first, within HEAP_TOLERANCE_PCT.
#   security (in faults' collectd) PUTNOTIF into it through unixsock
#            (own host, with and without the threshold plugin's meta as
#            strings, without host) and notifications from a second
#            collectd (host "other", and host "test" spoofed) through the
#            network plugin, all for "real": no action, no file.
#   many     a heap of a million objects (a file-based app the .NET 10 SDK
#            builds, as gctypes.sh): heap-types complete, 1000000 Node;
#            collectd's VmRSS, sampled every 50 ms, rises by less than
#            RSS_RISE_KB during the action and falls back; the snapshot's
#            time and the GC pause are reported.
#   shutdown collectd gets SIGTERM while heap-types waits on a fake runtime
#            whose snapshot never ends (the simple form: Action
#            "heap-types", Timeout 60 by default), and while a 30 s trace of
#            a real target runs: exits 0 within SHUTDOWN_MAX_S.
# Without a trace action in the plugin (its block refuses the
# configuration), the trace checks are skipped and the rest runs.
#
# ACTIONS_CASES="faults many" runs only the cases named (security needs
# faults). ACTIONS_KEEP=1 keeps $BUILD/it/actions (kept anyway when a check
# failed). Needs collectd, the targets (tests/run builds them; alone, this
# script builds what is missing), the .NET 10 SDK for "many", root (the
# files are checked to be root's). Takes about 2 minutes.
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

IT=$BUILD/it/actions
rm -rf "$IT"
mkdir -p "$IT"
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T0=$(_now)
NFAIL0=$(grep -c '^FAIL' "$RESULTS" 2>/dev/null)
read -r -a VERSIONS <<<"${ACTIONS_VERSIONS:-8 9 10 11}"
THRESHOLD=150000000     # bytes of gc-heap-size
HEAP_MB=200             # CounterTarget --heap-mb: live 1 MiB arrays
ARRAY_BYTES=1048600     # one of them: 1,048,576 bytes + the array header
HEAP_TOLERANCE_PCT=5    # System.Byte[] against what the app holds
SPIKE_MB=300            # SpikeApp --spike-mb (faults' "spike9")
CHUNK_BYTES=1000024     # one of its arrays: 1,000,000 bytes + the header
ALLOC_MIN_SHARE=0.8     # alloc-types: System.Byte[]'s share of the bytes
RSS_RISE_KB=16384       # collectd's VmRSS during a heap-types action
SHUTDOWN_MAX_S=2        # SIGTERM to exit, an action in progress
FAKE=$REPO/tests/fake-diag-server.py
COLLECTD_PLUGINS="csv logfile threshold python unixsock network"
declare -A CD_PID=()    # collectd NAME -> pid
FAKE_PIDS=()
SAMPLER_PID=
MANY_PID=

cleanup() {
	local n
	for n in "${!CD_PID[@]}"; do
		COLLECTD_PID=${CD_PID[$n]}
		collectd_stop 10 >/dev/null 2>&1
	done
	for n in "${FAKE_PIDS[@]}" $SAMPLER_PID $MANY_PID; do
		kill -TERM "$n" 2>/dev/null
		wait "$n" 2>/dev/null
	done
	stop_all_targets
	find "$IT" -name '*.dmp' -delete 2>/dev/null
	if (($(grep -c '^FAIL' "$RESULTS" 2>/dev/null) > NFAIL0)) || [[ ${ACTIONS_KEEP:-} == 1 ]]; then
		echo "actions.sh: logs kept in $IT" >&2
	else
		rm -rf "$IT"
	fi
}
trap cleanup EXIT

want_case() { [[ -z ${ACTIONS_CASES:-} || " $ACTIONS_CASES " == *" $1 "* ]]; }

# ---- the rig ----

for spec in "${VERSIONS[@]/#/CounterTarget:}" SpikeApp:10 SpikeApp:9 CounterTarget:10; do
	target_path "${spec%%:*}" "${spec#*:}" >/dev/null 2>&1 || dotnet_build_targets "$spec" >&2 || {
		fail "actions: setup" "cannot build $spec"
		exit 1
	}
done

# the python plugin that records every notification, meta included
mkdir -p "$IT/py"
cat >"$IT/py/notes.py" <<'PY'
import collectd, json, threading, time

cfg = {}
lock = threading.Lock()

def config(c):
    for ch in c.children:
        cfg[ch.key.lower()] = ch.values[0]

def notify(n):
    rec = {"recv": time.time(), "time": n.time, "severity": n.severity,
           "host": n.host, "plugin": n.plugin,
           "plugin_instance": n.plugin_instance, "type": n.type,
           "type_instance": n.type_instance, "message": n.message,
           "meta": dict(getattr(n, "meta", None) or {})}
    line = json.dumps(rec, default=str) + "\n"
    with lock:
        with open(cfg["file"], "a") as f:
            f.write(line)

# Values "FILE" Watch "INSTANCE": when each gc-heap-size value of INSTANCE
# reached the write threads (receipt time, the value's time): a reader that
# stalls shows as a gap, though the values keep their runtime's times
def write(vl, data=None):
    if (vl.plugin == "dotnet" and vl.plugin_instance == cfg.get("watch") and
            vl.type_instance == "gc-heap-size"):
        with lock:
            with open(cfg["values"], "a") as f:
                f.write("%.3f %.3f\n" % (time.time(), vl.time))

collectd.register_config(config)
collectd.register_notification(notify)
collectd.register_write(write)
PY

# cd_start NAME BODY [WATCH]: a collectd in $IT/NAME with the notes plugin
# and BODY (the receipts of WATCH's values in $IT/NAME/values.txt)
cd_start() {
	local name=$1 body=$2 watch=${3:-}
	collectd_start "$IT/$name" "$body
<LoadPlugin python>
  Globals true
</LoadPlugin>
<Plugin python>
  ModulePath \"$IT/py\"
  Import \"notes\"
  <Module notes>
    File \"$IT/$name/notes.jsonl\"
    Values \"$IT/$name/values.txt\"
    Watch \"$watch\"
  </Module>
</Plugin>" || return 1
	: >>"$IT/$name/notes.jsonl"
	CD_PID[$name]=$COLLECTD_PID
}

# cd_stop NAME: SIGTERM, wait; sets COLLECTD_STOP_SECONDS, COLLECTD_EXIT
cd_stop() {
	COLLECTD_PID=${CD_PID[$1]:-}
	unset "CD_PID[$1]"
	collectd_stop 10 >/dev/null
}

# threshold_rule [INSTANCE WARNINGMAX PERSIST]: the rule on gc-heap-size
# (all instances: THRESHOLD, Persist true)
threshold_rule() {
	printf '  <Plugin "dotnet">\n'
	[[ -n ${1:-} ]] && printf '    Instance "%s"\n' "$1"
	printf '    <Type "bytes">\n      Instance "gc-heap-size"\n      WarningMax %s\n      Persist %s\n    </Type>\n  </Plugin>\n' \
		"${2:-$THRESHOLD}" "${3:-true}"
}

# process_rules NAME=PID...: the <Process> blocks
process_rules() {
	local a
	for a in "$@"; do
		printf '  <Process "%s">\n    Pid %s\n  </Process>\n' "${a%%=*}" "${a#*=}"
	done
}

# notes NAME: the notes file of collectd NAME
notes() { echo "$IT/$1/notes.jsonl"; }

# the reader of the notes and of the result files
CHECK_PY=$IT/check.py
cat >"$CHECK_PY" <<'PY'
import json, os, re, stat, sys

ACTIONS = ("alloc-types", "heap-types", "trace", "dump")
SEV = {1: "FAILURE", 2: "WARNING", 4: "OKAY"}
KIND = {"alloc-types": "alloc-types.json", "heap-types": "heap-types.json",
        "trace": "nettrace", "dump": "dmp"}

def die(msg):
    print(msg)
    sys.exit(1)

def notes(path):
    out = []
    for line in open(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out

def results(path, inst, action=None):
    """The action notifications of the dotnet plugin for inst."""
    return [n for n in notes(path) if n["plugin"] == "dotnet" and
            n["plugin_instance"] == inst and n["type"] in ACTIONS and
            (action is None or n["type"] == action)]

def one(path, inst, action):
    r = results(path, inst, action)
    if len(r) != 1:
        die("%d %s notifications of %s: %s" % (len(r), action, inst,
            " | ".join("%s %s" % (SEV.get(n["severity"]), n["message"][:100]) for n in r)))
    return r[0]

def check_file(n, inst, pid, action, d):
    """The result file the notification's meta names."""
    m = n["meta"]
    p = m.get("path")
    if not p:
        die("no meta path in %s" % n)
    if os.path.dirname(p) != d:
        die("%s is not in %s" % (p, d))
    name = os.path.basename(p)
    want = r"^%s-%d-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z\.%s$" % (re.escape(inst), pid, re.escape(KIND[action]))
    if not re.match(want, name):
        die("file name %s, not %s" % (name, want))
    st = os.lstat(p)
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o600 or st.st_uid != 0:
        die("%s: mode %o uid %d (want a regular file 0600 of root)" % (p, st.st_mode, st.st_uid))
    if m.get("pid") != pid:
        die("meta pid %r, not %d" % (m.get("pid"), pid))
    if not isinstance(m.get("seconds"), float) or m["seconds"] <= 0:
        die("meta seconds %r" % m.get("seconds"))
    if n["type_instance"] != "gc-heap-size" or n["host"] != "test":
        die("type_instance %r host %r" % (n["type_instance"], n["host"]))
    return p, st.st_size

UNIT = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}

def types_check(path, inst, pid, action, want_type, d):
    """An OKAY types notification: message, meta, file; returns them."""
    n = one(path, inst, action)
    if n["severity"] != 4:
        die("%s %s" % (SEV.get(n["severity"]), n["message"]))
    if len(n["message"].encode()) > 255:
        die("message of %d bytes" % len(n["message"].encode()))
    unit = "objects" if action == "heap-types" else "samples"
    mre = (r"^%s of pid %d \(([0-9.]+) (B|kB|MB|GB), ([0-9]+) %s\): (.+?) ([0-9]+) %s ([0-9.]+) (B|kB|MB|GB) \(([0-9]+) %%\)(;|$)"
           % (action, pid, unit, unit))
    mm = re.match(mre, n["message"])
    if not mm:
        die("message %r is not %r" % (n["message"], mre))
    if mm.group(4) != want_type:
        die("message names %s first, not %s: %s" % (mm.group(4), want_type, n["message"]))
    p, _ = check_file(n, inst, pid, action, d)
    j = json.load(open(p))
    m = n["meta"]
    count_key = "count" if action == "heap-types" else "samples"
    if m.get("complete") is not True or not j["complete"]:
        die("meta complete %r, file complete %r (%s)" % (m.get("complete"), j["complete"], j.get("reason")))
    if m.get("bytes") != j["bytes"] or m.get("count") != j[count_key]:
        die("meta bytes %r count %r, file %r %r" % (m.get("bytes"), m.get("count"), j["bytes"], j[count_key]))
    if int(mm.group(3)) != j[count_key] or abs(float(mm.group(1)) * UNIT[mm.group(2)] - j["bytes"]) > 0.051 * UNIT[mm.group(2)] + 1:
        die("message totals %s %s, %s %s; file %d bytes, %d %s" % (mm.group(1), mm.group(2), mm.group(3), unit, j["bytes"], j[count_key], unit))
    if j["top"][0]["type"] != want_type:
        die("file names %s first" % j["top"][0]["type"])
    return n, j, p

what = sys.argv[1]
if what == "order":
    # order NOTES INST: the action notifications of INST, in order
    print(" ".join("%s:%s" % (n["type"], SEV.get(n["severity"], "?")) for n in results(sys.argv[2], sys.argv[3])))
elif what == "count":
    # count NOTES INST ACTION
    print(len(results(sys.argv[2], sys.argv[3], sys.argv[4])))
elif what == "heap":
    # heap NOTES INST PID TYPE WANT_BYTES TOL_PCT DIR
    path, inst, pid, want_type, want, tol, d = sys.argv[2:9]
    n, j, p = types_check(path, inst, int(pid), "heap-types", want_type, d)
    top = j["top"][0]
    dev = abs(top["bytes"] - int(want)) * 100 / int(want)
    if dev > float(tol):
        die("%s %d bytes, the app holds %s (%.2f %% off)" % (want_type, top["bytes"], want, dev))
    print("%s %d objects %d bytes, app %s (%.2f %% off); snapshot %.2f s, GC pause %.1f ms; %s"
          % (want_type, top["count"], top["bytes"], want, dev, n["meta"]["seconds"], j["gc"]["pause_ms"], os.path.basename(p)))
elif what == "alloc":
    # alloc NOTES INST PID TYPE MIN_SHARE DIR
    path, inst, pid, want_type, share, d = sys.argv[2:8]
    n, j, p = types_check(path, inst, int(pid), "alloc-types", want_type, d)
    top = j["top"][0]
    if top["share"] < float(share):
        die("%s %.1f %% of the bytes" % (want_type, top["share"] * 100))
    print("%s %.1f %% of %d bytes in %d samples (%s)" % (want_type, top["share"] * 100, j["bytes"], j["samples"], j["method"]))
elif what == "file":
    # file NOTES INST PID ACTION DIR: OKAY, its file; prints the path
    path, inst, pid, action, d = sys.argv[2:7]
    n = one(path, inst, action)
    if n["severity"] != 4:
        die("%s %s" % (SEV.get(n["severity"]), n["message"]))
    p, size = check_file(n, inst, int(pid), action, d)
    print(p)
elif what == "show":
    # show NOTES INST ACTION: "SEVERITY message" of each
    for n in results(sys.argv[2], sys.argv[3], sys.argv[4]):
        print("%s %s" % (SEV.get(n["severity"]), n["message"]))
elif what == "meta":
    # meta NOTES INST ACTION KEY: the meta value of the first
    r = results(sys.argv[2], sys.argv[3], sys.argv[4])
    print(r[0]["meta"].get(sys.argv[5], "") if r else "")
elif what == "breaches":
    # breaches NOTES INST [AFTER]: threshold notifications of gc-heap-size
    # (WARNING or FAILURE) of INST, received after epoch AFTER
    after = float(sys.argv[4]) if len(sys.argv) > 4 else 0
    print(sum(1 for n in notes(sys.argv[2]) if n["plugin"] == "dotnet" and
              n["plugin_instance"] == sys.argv[3] and n["type"] == "bytes" and
              n["type_instance"] == "gc-heap-size" and n["severity"] in (1, 2) and
              n["recv"] > after))
elif what == "recv":
    # recv NOTES INST ACTION: when the first was received (epoch)
    r = results(sys.argv[2], sys.argv[3], sys.argv[4])
    print("%.3f" % r[0]["recv"] if r else "")
PY

cpy() { python3 "$CHECK_PY" "$@"; }
# py NAME CHECK ARGS...: a check of check.py, its line as the detail
py() {
	local name=$1 out
	shift
	if out=$(cpy "$@" 2>&1); then pass "$name" "$out"; else fail "$name" "$out"; fi
}

count_ge() { (($(cpy count "$1" "$2" "$3") >= $4)); }
# all_done NOTES INST ACTION...: each ACTION has its notification
all_done() {
	local f=$1 i=$2 a
	shift 2
	for a in "$@"; do count_ge "$f" "$i" "$a" 1 || return 1; done
}
# all_done_of NOTES ACTION INST...: each INST has that notification
all_done_of() {
	local f=$1 a=$2 i
	shift 2
	for i in "$@"; do count_ge "$f" "$i" "$a" 1 || return 1; done
}
breaches_ge() { (($(cpy breaches "$1" "$2" "${4:-0}") >= $3)); }
rows_ge() { (($(csv_rows "$IT/$1" "$2" "$3") >= $4)); }

# fake_start NAME SCENARIO: a fake runtime in $IT/fake (faults only for our
# collectds); sets FAKE_PID to its pid
fake_start() {
	local ready=$IT/fake/ready-$1
	mkdir -p "$IT/fake"
	python3 "$FAKE" --scenario "$2" --dir "$IT/fake" --ready "$ready" \
		--log "$IT/fake/log-$1" --only-for $$ --tag "$1" </dev/null >/dev/null 2>&1 &
	FAKE_PIDS+=($!)
	FAKE_PID=$!
	wait_until 10 test -s "$ready" || return 1
}

# gen2_around NAME INST T0 T1: the gen-2 GC counts of INST in collectd
# NAME's csv: the last row at or before epoch T0, the first at or after T1
# (waits up to 5 s for that one); "A B", or fails
gen2_around() {
	local f
	wait_until 5 gen2_row_after "$1" "$2" "$4" || return 1
	f=$(csv_file "$IT/$1" "$2" derive-gen-2-gc-count) || return 1
	awk -F, -v a="$3" -v b="$4" 'NR > 1 && $1 <= a { x = $2 } NR > 1 && $1 >= b && y == "" { y = $2 }
		END { if (x == "" || y == "") exit 1; print x, y }' "$f"
}
gen2_row_after() { # NAME INST T: a gen-2 count row at or after epoch T
	local f
	f=$(csv_file "$IT/$1" "$2" derive-gen-2-gc-count) &&
		awk -F, -v t="$3" 'NR > 1 && $1 >= t { f = 1 } END { exit !f }' "$f"
}
# started NOTES INST ACTION: when the action's run began (its result's
# time minus its seconds)
started() {
	python3 - "$@" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    n = json.loads(l)
    if n["plugin_instance"] == sys.argv[2] and n["type"] == sys.argv[3]:
        print("%.3f" % (n["recv"] - n["meta"].get("seconds", 0)))
        break
else:
    sys.exit(1)
PY
}

# the trace action is built in only with its module: without it, its
# checks are skipped (its block refuses the configuration)
HAVE_TRACE=1
COLLECTD_PLUGINS=logfile COLLECTD_CSV=0 collectd_config "$IT/probe" "LoadPlugin dotnet
<Plugin dotnet>
  <Trigger>
    Directory \"$IT/probe/results\"
    Action \"trace\"
  </Trigger>
</Plugin>"
timeout 5 collectd -f -C "$IT/probe/collectd.conf" >/dev/null 2>&1
if grep -q 'Action "trace" is not available in this build' "$IT/probe/collectd.log"; then
	HAVE_TRACE=0
	skip "actions: trace" "this build of the plugin has no trace action"
fi
TRACE_BLOCK() { # DURATION: the <Action "trace"> block, when there is one
	((HAVE_TRACE)) && printf '    <Action "trace">\n      Duration %s\n      MinInterval 600\n    </Action>\n' "$1"
}

# ---- start: targets, fakes, collectds ----

declare -A CT=() # instance -> pid
if want_case main || want_case faults; then
	for v in "${VERSIONS[@]}"; do
		CT[ct$v]=$(start_target CounterTarget "$v" --heap-mb "$HEAP_MB") || {
			fail "actions: setup" "CounterTarget .NET $v did not start"
			exit 1
		}
	done
fi

# many: the app is built now, in the background (the SDK takes a while)
MANY=$BUILD/it-cache/actions-many
if want_case many; then
	mkdir -p "$MANY"
	cp "$REPO/tests/targets/many.cs" "$MANY/many.cs.new"
	if cmp -s "$MANY/many.cs.new" "$MANY/many.cs" && [[ -x $MANY/out/many ]]; then
		MANY_BUILD=
	else
		mv "$MANY/many.cs.new" "$MANY/many.cs"
		rm -rf "$MANY/out"
		"$DOTNET" build "$MANY/many.cs" -o "$MANY/out" >"$MANY/build.log" 2>&1 </dev/null &
		MANY_BUILD=$!
	fi
fi

if want_case main; then
	rules=()
	for v in "${VERSIONS[@]}"; do rules+=("ct$v=${CT[ct$v]}"); done
	cd_start main "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$(process_rules "${rules[@]}")
  <Trigger>
    Counter \"gc-heap-size\"
    Severity \"warning\"
    Directory \"$IT/main/results\"
    <Action \"alloc-types\">
      Duration 2
      MinInterval 600
    </Action>
    <Action \"heap-types\">
      Top 20
      Timeout 60
      MinInterval 600
    </Action>
$(TRACE_BLOCK 2)
    <Action \"dump\">
      Type \"mini\"
      Method \"ipc\"
      MinInterval 600
    </Action>
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
$(threshold_rule)
</Plugin>" || fail "actions/main: setup" "collectd did not start (log $IT/main/collectd.log)"
fi

if want_case refuse; then
	# cref allocates nothing: no GC but an induced one
	CREF=$(start_target CounterTarget 10 --heap-mb "$HEAP_MB" --alloc-mb-per-sec 0) &&
		SPIKE=$(start_target SpikeApp 10 --baseline-mb 50 --spike-mb 300 --delay-seconds 6 \
			--spike-seconds 3 --period-seconds 9 --spikes 2) &&
		cd_start refuse "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$(process_rules "cref=$CREF" "spike=$SPIKE")
  <Trigger>
    Directory \"$IT/refuse/results\"
    <Action \"alloc-types\">
      Duration 1
      MinInterval 600
    </Action>
    <Action \"heap-types\">
      MaxHeapSize \"100M\"
      MinInterval 600
    </Action>
$(TRACE_BLOCK 1)
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
$(threshold_rule)
</Plugin>" || fail "actions/refuse: setup" "a target or collectd did not start (log $IT/refuse/collectd.log)"
fi

declare -A FK=() # fake instance -> pid
if want_case faults; then
	for sc in gc-ok gc-cut gc-no-end gc-lost; do
		fake_start "fake-${sc#gc-}" "$sc" || fail "actions/faults: setup" "fake-diag-server $sc did not start"
		FK[fake-${sc#gc-}]=$FAKE_PID
	done
	REAL=${CT[ct10]:-${CT[ct${VERSIONS[0]}]}}
	# a real spike, for heap-types at the breach (SPIKE_MB arrays held)
	SPIKE9=$(start_target SpikeApp 9 --baseline-mb 50 --spike-mb "$SPIKE_MB" --delay-seconds 0 \
		--spike-seconds 40 --period-seconds 40 --spikes 1) || fail "actions/spike: setup" "SpikeApp .NET 9 did not start"
	port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cd_start faults "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$(process_rules "real=$REAL" "fake-ok=${FK[fake-ok]}" "fake-cut=${FK[fake-cut]}" \
		"fake-no-end=${FK[fake-no-end]}" "fake-lost=${FK[fake-lost]}" ${SPIKE9:+"spike9=$SPIKE9"})
  <Trigger>
    Directory \"$IT/faults/results\"
    <Action \"heap-types\">
      Timeout 4
      MinInterval 600
    </Action>
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
$(for f in fake-ok fake-cut fake-no-end fake-lost; do threshold_rule "$f" 1000000 false; done)
$(threshold_rule spike9)
</Plugin>
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile \"$IT/faults/sock\"
</Plugin>
LoadPlugin network
<Plugin network>
  Listen \"127.0.0.1\" \"$port\"
</Plugin>" real || fail "actions/faults: setup" "collectd did not start (log $IT/faults/collectd.log)"
fi

# ---- security: forged notifications for "real" run no action ----

security_case() {
	local P=actions/security S=$IT/sender lines=() i meta answers n log=$IT/faults/collectd.log
	[[ -n ${CD_PID[faults]:-} ]] || return
	if ! wait_until 30 rows_ge faults real bytes-gc-heap-size 2; then
		fail "$P: setup" "no value of \"real\" within 30 s"
		return
	fi
	sender_start "$S" "$port"
	CD_PID[sender]=$SENDER_PID
	if ! collectd_started "$S" "${CD_PID[sender]}" "the sender collectd"; then
		fail "$P: setup" "the sender collectd did not start"
		return
	fi
	for i in 1 2 3; do
		lines+=("$(notif_line real other "network-other-$i")")
		lines+=("$(notif_line real test "network-spoofed-$i")")
	done
	putnotif "$S/sock" "${lines[@]}" >/dev/null
	lines=()
	meta='s:DataSource=value s:CurrentValue=900000000 s:WarningMin=nan s:WarningMax=150000000 s:FailureMin=nan s:FailureMax=nan'
	for i in 1 2 3; do
		lines+=("$(notif_line real test "putnotif-own-host-$i")")
		lines+=("$(notif_line real test "putnotif-string-meta-$i" "$meta")")
	done
	lines+=("$(notif_line real - "putnotif-no-host")")
	answers=$(putnotif "$IT/faults/sock" "${lines[@]}")
	n=$(grep -c '^0 Success' <<<"$answers")
	((n == ${#lines[@]})) || fail "$P: PUTNOTIF accepted by unixsock" "$n of ${#lines[@]}: $(sort -u <<<"$answers" | tr '\n' ' ')"
	if wait_until 20 grep -q 'host = other, .*message = network-other-3' "$log" &&
		wait_until 5 grep -q 'message = network-spoofed-3' "$log"; then
		pass "$P: forged notifications arrived" "3 from host other, 3 spoofing host test, ${#lines[@]} by PUTNOTIF"
	else
		fail "$P: forged notifications arrived" "$(grep -c 'message = network-' "$log") network notifications in $log"
	fi
	COLLECTD_PID=${CD_PID[sender]}
	unset "CD_PID[sender]"
	collectd_stop 10 >/dev/null
	SECURITY_DONE=1
}

# security_verdict: after faults' collectd stopped (the worker had the whole
# fault run to act on the forged notifications)
security_verdict() {
	local P=actions/security f=$(notes faults) files acts
	[[ ${SECURITY_DONE:-} == 1 ]] || return
	files=$(find "$IT/faults/results" -maxdepth 1 -name 'real-*' 2>/dev/null | tr '\n' ' ')
	acts=$(cpy order "$f" real)
	# and the reasons logged, once each; collectd lived through it all and
	# its trigger ran for the real breaches (fake-ok's OKAY)
	local host_re='instance "real": .*names host "(other)?", not this host' shape_re='instance "real": .*is not the threshold plugin'"'"'s'
	local nh ns
	nh=$(grep -cE "$host_re" "$IT/faults/collectd.log")
	ns=$(grep -cE "$shape_re" "$IT/faults/collectd.log")
	if [[ -z $files && -z $acts && $nh == 1 && $ns == 1 && ${FAULTS_EXIT:-} == 0 ]] &&
		[[ $(cpy order "$f" fake-ok) == heap-types:OKAY ]] &&
		! grep -qE 'instance "real".*(heap-types of pid|heap snapshot)' "$IT/faults/collectd.log"; then
		pass "$P: no action from forged notifications" "no result notification, no file for \"real\"; logged once each: $(grep -m1 -oE "$host_re" "$IT/faults/collectd.log"); $(grep -m1 -oE "$shape_re" "$IT/faults/collectd.log")"
	else
		fail "$P: no action from forged notifications" "results of real: '$acts', files: '$files'; other host logged ${nh}x, not threshold's ${ns}x; collectd exit ${FAULTS_EXIT:-?}; fake-ok: '$(cpy order "$f" fake-ok)'"
	fi
}

# ---- faults: broken snapshots end in a FAILURE or an incomplete WARNING ----

faults_case() {
	local P=actions/faults f=$(notes faults) i t0 t1 rows want s msg
	[[ -n ${CD_PID[faults]:-} ]] || return
	# all four results (fake-no-end after its 4 s Timeout)
	wait_until 40 all_done_of "$f" heap-types fake-ok fake-cut fake-no-end fake-lost
	py "$P: fake-ok: a complete snapshot (the control)" heap "$f" fake-ok "${FK[fake-ok]}" FakeSpike 180000000 0 "$IT/faults/results"
	for i in fake-cut fake-no-end fake-lost; do
		msg=$(cpy show "$f" "$i" heap-types)
		s=${msg%% *}
		msg=${msg#* }
		if [[ $(grep -c . <<<"$msg") == 1 ]] && { [[ $s == FAILURE ]] || [[ $s == WARNING && $msg == incomplete* ]]; }; then
			pass "$P: $i ends in a FAILURE or an incomplete WARNING" "$s $msg"
		else
			fail "$P: $i ends in a FAILURE or an incomplete WARNING" "${s:-none}: $msg"
		fi
	done
	# what each fault is: the unended one fails (timeout), the lossy one says so
	if cpy show "$f" fake-no-end heap-types | grep -q '^FAILURE '; then
		pass "$P: fake-no-end: a FAILURE"
	else
		fail "$P: fake-no-end: a FAILURE" "$(cpy show "$f" fake-no-end heap-types)"
	fi
	if cpy show "$f" fake-lost heap-types | grep -qi 'lost'; then
		pass "$P: fake-lost: the loss is named"
	else
		fail "$P: fake-lost: the loss is named" "$(cpy show "$f" fake-lost heap-types)"
	fi
	# "real" was collected meanwhile: a value a second, from before the
	# first fault's action to after the last result, each reaching the write
	# threads promptly (a stalled reader passes them on late, in a burst,
	# with their own times)
	local t0 t1 w
	t0=$(started "$f" fake-no-end heap-types)
	t1=$(cpy recv "$f" fake-no-end heap-types)
	for i in fake-ok fake-cut fake-lost spike9; do
		w=$(started "$f" "$i" heap-types) && t0=$(awk -v a="$t0" -v b="$w" 'BEGIN { print (b < a ? b : a) }')
		w=$(cpy recv "$f" "$i" heap-types) && [[ -n $w ]] && t1=$(awk -v a="$t1" -v b="$w" 'BEGIN { print (b > a ? b : a) }')
	done
	if [[ -n $t0 && -n $t1 ]] && wait_until 5 awk -v t="$t1" '$1 > t + 1.5 { f = 1 } END { exit !f }' "$IT/faults/values.txt"; then
		# the values of the window (by their own time) and how long each
		# took to reach the write threads
		w=$(awk -v a="$t0" -v b="$t1" '$2 >= a - 1 && $2 <= b + 1 { n++; l = $1 - $2; if (l > m) m = l }
			END { printf "%d %.2f", n, m }' "$IT/faults/values.txt")
		local want
		want=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", b - a + 1 }')
		if ((${w% *} >= want)) && awk -v m="${w#* }" 'BEGIN { exit !(m < 1.5) }'; then
			pass "$P: \"real\" collected during the faults" "${w% *} values over the $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a + 2 }') s around the actions, each written within ${w#* } s"
		else
			fail "$P: \"real\" collected during the faults" "${w% *} values over the $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a + 2 }') s around the actions (want >= $want), one written ${w#* } s after its time"
		fi
	else
		fail "$P: \"real\" collected during the faults" "no results, or no value of real received after them"
	fi
	kill -0 "${CD_PID[faults]}" 2>/dev/null || fail "$P: collectd alive" "collectd exited"
}

# ---- spike: heap-types at SpikeApp's breach ----

spike_case() {
	local P="actions/spike net9" f=$(notes faults)
	[[ -n ${CD_PID[faults]:-} && -n ${SPIKE9:-} ]] || return
	if ! wait_until 60 count_ge "$f" spike9 heap-types 1; then
		fail "$P: heap-types at the breach names the spike's type first" "no result within 60 s"
		return
	fi
	py "$P: heap-types at the breach names the spike's type first" heap "$f" spike9 "$SPIKE9" 'System.Byte[]' \
		$((SPIKE_MB * CHUNK_BYTES)) "$HEAP_TOLERANCE_PCT" "$IT/faults/results"
}

# ---- refuse: MaxHeapSize, MinInterval ----

refuse_case() {
	local P=actions/refuse f=$(notes refuse) log=$IT/refuse/collectd.log order g0 g1 n ref tlog end1
	[[ -n ${CD_PID[refuse]:-} ]] || return
	local others=(alloc-types)
	((HAVE_TRACE)) && others+=(trace)
	if ! wait_until 60 all_done "$f" cref "${others[@]}"; then
		fail "$P: cref: ${others[*]} run" "order: '$(cpy order "$f" cref)'"
	fi
	# MaxHeapSize: a FAILURE heap-types notification or a log line
	order=$(cpy order "$f" cref)
	ref=$(grep -E "instance \"cref\".*MaxHeapSize" "$log" | head -1)
	local want_re="^alloc-types:[A-Z]+( heap-types:FAILURE)?$"
	((HAVE_TRACE)) && want_re="^alloc-types:[A-Z]+( heap-types:FAILURE)? trace:OKAY$"
	if [[ $order =~ $want_re ]] &&
		{ [[ -n $ref ]] || cpy show "$f" cref heap-types | grep -q 'MaxHeapSize'; }; then
		pass "$P: heap-types refused by MaxHeapSize, the others run" "$order; $(cpy show "$f" cref heap-types | cut -c1-120) ${ref:0:160}"
	else
		fail "$P: heap-types refused by MaxHeapSize, the others run" "order '$order'; log: '${ref:-none}'; heap-types: $(cpy show "$f" cref heap-types)"
	fi
	check "$P: no heap-types file" test -z "$(find "$IT/refuse/results" -name '*.heap-types.json' 2>/dev/null)"
	# no GC induced: cref's gen-2 count did not move from before its first
	# action to 2 s after its last (main's did, over its heap-types)
	local t0 t1 g
	t0=$(started "$f" cref alloc-types)
	t1=$(cpy recv "$f" cref "${others[-1]}")
	t1=${t1:+$(awk -v t="$t1" 'BEGIN { printf "%.3f", t + 2 }')}
	if [[ -n $t0 && -n $t1 ]] && g=$(gen2_around refuse cref "$t0" "$t1") && [[ ${g% *} == "${g#* }" ]]; then
		pass "$P: no GC induced in cref" "gen-2 GC count ${g% *} -> ${g#* } over its actions"
	else
		fail "$P: no GC induced in cref" "gen-2 GC count '${g:-?}' from ${t0:-?} to ${t1:-?}"
	fi
	# refused once, logged once, while breaches kept coming
	n=$(cpy breaches "$f" cref)
	ref=$(grep -cE "instance \"cref\".*MaxHeapSize" "$log")
	local hf
	hf=$(cpy show "$f" cref heap-types | grep -c 'MaxHeapSize')
	if ((n >= 5 && ref + hf >= 1 && ref <= 1 && hf <= 1)); then
		pass "$P: the refusal said once" "$n breaches; $ref log lines, $hf notifications"
	else
		fail "$P: the refusal said once" "$n breaches; $ref log lines naming MaxHeapSize, $hf heap-types notifications"
	fi

	# MinInterval over two real breaches of SpikeApp
	tlog=$(target_log "$SPIKE")
	if ! wait_until 60 grep -qE '^SPIKE end .* n=2$' "$tlog"; then
		fail "$P: spike: two spikes" "no end of spike 2 in $tlog"
		return
	fi
	end1=$(date -u -d "$(sed -nE 's/^SPIKE end ([^ ]+) .* n=1$/\1/p' "$tlog")" +%s.%3N)
	sleep 2 # the last notifications of spike 2 go through the worker
	n=$(cpy breaches "$f" spike "$end1")
	local a c bad=
	for a in "${others[@]}"; do
		c=$(cpy count "$f" spike "$a")
		((c == 1)) || bad+="$a $c times; "
	done
	for a in alloc-types.json heap-types.json nettrace; do
		c=$(find "$IT/refuse/results" -name "spike-*.$a" | wc -l)
		((c <= 1)) || bad+="$c .$a files; "
	done
	if ((n >= 1)) && [[ -z $bad ]]; then
		pass "$P: MinInterval: the second breach runs no action again" "$n breach notifications after spike 1 ended; ${others[*]} once, one file of each at most"
	else
		fail "$P: MinInterval: the second breach runs no action again" "$n breach notifications after spike 1; ${bad:-}order '$(cpy order "$f" spike)'"
	fi
}

# ---- main: the four actions on four runtimes ----

main_case() {
	local P f=$(notes main) d=$IT/main/results v i pid order p out g n
	local acts=(alloc-types heap-types trace dump)
	((HAVE_TRACE)) || acts=(alloc-types heap-types dump)
	[[ -n ${CD_PID[main]:-} ]] || return
	for v in "${VERSIONS[@]}"; do
		i=ct$v
		wait_until 150 all_done "$f" "$i" "${acts[@]}"
	done
	# more breaches after each instance's last action: still once each
	for v in "${VERSIONS[@]}"; do
		i=ct$v
		wait_until 10 breaches_ge "$f" "$i" 3 "$(cpy recv "$f" "$i" dump || echo 0)"
	done
	for v in "${VERSIONS[@]}"; do
		i=ct$v
		pid=${CT[$i]}
		P="actions/main net$v"
		order=$(cpy order "$f" "$i")
		if [[ $order == "$(printf '%s:OKAY ' "${acts[@]}" | sed 's/ $//')" ]]; then
			pass "$P: four results in the order of the actions, once each" \
				"$order; $(cpy breaches "$f" "$i") breaches"
		else
			fail "$P: four results in the order of the actions, once each" \
				"'$order' ($(cpy breaches "$f" "$i") breaches): $(for a in "${acts[@]}"; do cpy show "$f" "$i" $a | cut -c1-150; done | tr '\n' '|')"
		fi
		py "$P: heap-types names the app's type first" heap "$f" "$i" "$pid" 'System.Byte[]' \
			$((HEAP_MB * ARRAY_BYTES)) "$HEAP_TOLERANCE_PCT" "$d"
		py "$P: alloc-types names the allocated type first" alloc "$f" "$i" "$pid" 'System.Byte[]' "$ALLOC_MIN_SHARE" "$d"
		if ((!HAVE_TRACE)); then
			:
		elif p=$(cpy file "$f" "$i" "$pid" trace "$d"); then
			if out=$("$TRIGGERDUMP" stats "$p" 2>&1) && grep -q 'Microsoft-Windows-DotNETRuntime' <<<"$out"; then
				pass "$P: triggerdump stats reads the trace whole" "$(stat -c %s "$p") bytes, $(grep -E '^Microsoft-Windows-DotNETRuntime +\(all\)' <<<"$out" | awk '{ print $NF }') runtime events; ${p##*/}"
			else
				fail "$P: triggerdump stats reads the trace whole" "$(tail -3 <<<"$out" | tr '\n' ' ')"
			fi
		else
			fail "$P: the trace file" "$p"
		fi
		if p=$(cpy file "$f" "$i" "$pid" dump "$d") && [[ -s $p ]]; then
			pass "$P: the dump is written" "$(stat -c %s "$p") bytes, ${p##*/}"
			rm -f "$p"
		else
			fail "$P: the dump is written" "$p"
		fi
		# the snapshot's GC shows in the counters (what refuse checks is absent)
		local t0 t1
		t0=$(started "$f" "$i" heap-types)
		t1=$(cpy recv "$f" "$i" heap-types)
		t1=${t1:+$(awk -v t="$t1" 'BEGIN { printf "%.3f", t + 1.5 }')}
		if [[ -n $t0 && -n $t1 ]] && g=$(gen2_around main "$i" "$t0" "$t1") && ((${g#* } > ${g% *})); then
			pass "$P: the snapshot shows as a gen-2 GC" "gen-2 GC count ${g% *} -> ${g#* } over heap-types"
		else
			fail "$P: the snapshot shows as a gen-2 GC" "gen-2 GC count '${g:-?}' from ${t0:-?} to ${t1:-?}"
		fi
		# the MinInterval refusals that followed: logged once
		n=$(grep -cE "instance \"$i\": trigger actions not run: .*MinInterval" "$IT/main/collectd.log")
		if ((n == 1)); then
			pass "$P: MinInterval refusals logged once" "$(grep -m1 -oE "instance \"$i\": trigger actions not run: .*MinInterval" "$IT/main/collectd.log" | cut -c1-140)..."
		else
			fail "$P: MinInterval refusals logged once" "$n lines"
		fi
	done
}

# ---- many: collectd's memory during the snapshot of a million objects ----

many_case() {
	local P=actions/many f j w
	if [[ -n ${MANY_BUILD:-} ]]; then
		wait "$MANY_BUILD" || {
			fail "$P: setup" "dotnet build many.cs failed, see $MANY/build.log"
			return
		}
	fi
	"$MANY/out/many" </dev/null >"$IT/many.log" 2>&1 &
	MANY_PID=$!
	if ! wait_until 30 grep -q "^READY $MANY_PID$" "$IT/many.log"; then
		fail "$P: setup" "the app did not start: $(head -c 300 "$IT/many.log")"
		return
	fi
	# the sampler first: the heap is above the threshold from the first value
	mkdir -p "$IT/many"
	# (collectd -f writes no pid file: it is found by its configuration's
	# path on its command line)
	python3 - "$IT/many/collectd.conf" "$IT/many/rss.txt" <<'PY' &
import os, sys, time
conf, out = sys.argv[1].encode(), sys.argv[2]
end = time.time() + 30
pid = None
while pid is None and time.time() < end:
    for d in os.listdir("/proc"):
        try:
            argv = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
        except OSError:
            continue
        if d.isdigit() and conf in argv and os.path.basename(argv[0]) == b"collectd":
            pid = int(d)
            break
    else:
        time.sleep(0.005)
with open(out, "w") as o:
    while pid is not None:
        try:
            with open("/proc/%d/status" % pid) as s:
                kb = next(int(l.split()[1]) for l in s if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            break
        o.write("%.3f %d\n" % (time.time(), kb))
        o.flush()
        time.sleep(0.05)
PY
	SAMPLER_PID=$!
	cd_start many "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$(process_rules "many=$MANY_PID")
  <Trigger>
    Directory \"$IT/many/results\"
    <Action \"heap-types\">
      Top 5
      MinInterval 600
    </Action>
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
$(threshold_rule "" 20000000)
</Plugin>" || {
		fail "$P: setup" "collectd did not start"
		return
	}
	f=$(notes many)
	if ! wait_until 60 count_ge "$f" many heap-types 1; then
		fail "$P: heap-types of a million objects" "no result within 60 s: $(tail -3 "$IT/many/collectd.log" | tr '\n' ' ')"
		return
	fi
	sleep 2.5 # what comes after the action: the fall
	py "$P: heap-types of a million objects" heap "$f" many "$MANY_PID" Node 24000000 0 "$IT/many/results"
	# the action's window: its result's time minus its seconds
	w=$(python3 - "$f" "$IT/many/rss.txt" "$RSS_RISE_KB" <<'PY'
import json, sys
notes = [json.loads(l) for l in open(sys.argv[1])]
n = [x for x in notes if x["type"] == "heap-types"][0]
end = n["recv"]
start = end - n["meta"]["seconds"]
rss = [tuple(map(float, l.split())) for l in open(sys.argv[2])]
before = [kb for t, kb in rss if t < start - 0.05]
during = [kb for t, kb in rss if start - 0.05 <= t <= end + 0.1]
after = [kb for t, kb in rss if t >= end + 2.0]
if not before or not during or not after:
    print("samples: %d before, %d during, %d after" % (len(before), len(during), len(after)))
    sys.exit(1)
base, peak, last = before[-1], max(during), after[-1]
rise = peak - base
ok = rise < float(sys.argv[3]) and last - base <= max(1024, rise / 2)
print("VmRSS %d kB before, peak %d kB (+%d kB) in %d samples over %.2f s, %d kB 2 s after"
      % (base, peak, rise, len(during), end - start, last))
sys.exit(0 if ok else 1)
PY
	) && pass "$P: collectd's RSS during the snapshot" "$w" || fail "$P: collectd's RSS during the snapshot" "$w (limit +$RSS_RISE_KB kB, then back within half the rise)"
	cd_stop many
	kill "$SAMPLER_PID" 2>/dev/null
	wait "$SAMPLER_PID" 2>/dev/null
	SAMPLER_PID=
	kill "$MANY_PID" 2>/dev/null
	wait "$MANY_PID" 2>/dev/null
	MANY_PID=
}

# ---- shutdown: SIGTERM while an action runs ----

shutdown_case() {
	local P=actions/shutdown pid
	# 1. heap-types on a runtime whose snapshot never ends
	if fake_start fake-hang gc-no-end; then
		pid=$FAKE_PID
		cd_start shut1 "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$(process_rules "fake-hang=$pid")
  <Trigger>
    Directory \"$IT/shut1/results\"
    Action \"heap-types\"
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
$(threshold_rule fake-hang 1000000 false)
</Plugin>" || fail "$P: setup" "collectd did not start"
		if wait_until 30 grep -q 'gc-no-end: snapshot of' "$IT/fake/log-fake-hang"; then
			sleep 0.5
			cd_stop shut1
			# the action was in progress: it ends cancelled
			if awk -v s="$COLLECTD_STOP_SECONDS" -v m="$SHUTDOWN_MAX_S" 'BEGIN { exit !(s < m) }' && ((COLLECTD_EXIT == 0)) &&
				grep -q "heap-types of pid $pid failed: cancelled" "$IT/shut1/collectd.log"; then
				pass "$P: SIGTERM during heap-types" "exit $COLLECTD_EXIT in $COLLECTD_STOP_SECONDS s; $(grep -m1 -o "heap-types of pid $pid failed: cancelled" "$IT/shut1/collectd.log")"
			else
				fail "$P: SIGTERM during heap-types" "exit $COLLECTD_EXIT in $COLLECTD_STOP_SECONDS s (limit $SHUTDOWN_MAX_S s); $(grep -E "heap-types of pid $pid" "$IT/shut1/collectd.log" | tail -1)"
			fi
		else
			fail "$P: SIGTERM during heap-types" "the snapshot session never started: $(tail -2 "$IT/shut1/collectd.log" | tr '\n' ' ')"
			cd_stop shut1
		fi
	fi
	# 2. a trace of a real target, 30 s
	((HAVE_TRACE)) || return
	if pid=${CREF:-} && [[ -n $pid ]] && target_alive "$pid" || pid=$(start_target CounterTarget 10 --heap-mb "$HEAP_MB"); then
		cd_start shut2 "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$(process_rules "cref=$pid")
  <Trigger>
    Directory \"$IT/shut2/results\"
    <Action \"trace\">
      Duration 30
    </Action>
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
$(threshold_rule)
</Plugin>" || fail "$P: setup" "collectd did not start"
		if wait_until 30 breaches_ge "$(notes shut2)" cref 1; then
			sleep 1.5 # the trace runs for 30 s from the first breach
			local before
			before=$(cpy count "$(notes shut2)" cref trace)
			cd_stop shut2
			if ((before == 0)) && awk -v s="$COLLECTD_STOP_SECONDS" -v m="$SHUTDOWN_MAX_S" 'BEGIN { exit !(s < m) }' && ((COLLECTD_EXIT == 0)); then
				pass "$P: SIGTERM during a trace" "exit $COLLECTD_EXIT in $COLLECTD_STOP_SECONDS s; left in Directory: $(find "$IT/shut2/results" -mindepth 1 -printf '%f %s bytes ' 2>/dev/null)"
			else
				fail "$P: SIGTERM during a trace" "exit $COLLECTD_EXIT in $COLLECTD_STOP_SECONDS s (limit $SHUTDOWN_MAX_S s), $before trace results before SIGTERM"
			fi
		else
			fail "$P: SIGTERM during a trace" "no breach within 30 s"
			cd_stop shut2
		fi
	fi
}

# ---- run ----

want_case faults && want_case security && security_case
want_case faults && faults_case
want_case faults && spike_case
if [[ -n ${CD_PID[faults]:-} ]]; then
	cd_stop faults
	FAULTS_EXIT=$COLLECTD_EXIT
	want_case security && security_verdict
fi
want_case refuse && refuse_case
[[ -n ${CD_PID[refuse]:-} ]] && cd_stop refuse
want_case main && main_case
[[ -n ${CD_PID[main]:-} ]] && cd_stop main
want_case many && many_case
want_case shutdown && shutdown_case

awk -v a="$T0" -v b="$(_now)" 'BEGIN { printf "actions.sh: %.0f s\n", b - a }'
exit 0
