#!/usr/bin/env bash
# tests/integration/listen.sh -- runtimes that connect in (the reverse
# diagnostic port, Listen / --diagnostic-port), with real .NET 10 targets
# and Debian's collectd.
#
# Each target runs in its own mount and pid namespaces (it sees itself as
# pid 1) with its TMPDIR a tmpfs of its own, started with
# DOTNET_DiagnosticPorts=SOCK,connect,(no)suspend; once it is ready its own
# diagnostic socket is removed from its TMPDIR, so that the socket it
# connects to is the only way in (discovery cannot find it).
#   cli        triggerdump ps / monitor --diagnostic-port (nosuspend, suspend)
#   plugin     Listen + <Process>: every counter under the block's name, a
#              dump through the runtime's connection, kill + restart:
#              values back within 2 intervals
#   suspend    the target waits until collectd listens, then runs; the
#              first values cover its first interval
#   several    three runtimes on one socket, one on a second socket; a
#              suspended one that matches no block is resumed, not held
#   hostile    a malformed advertise, 1000 connections that never send, an
#              advertise and then silence, a client of another uid: each
#              logged once, fds and memory back, the targets keep their
#              rows; shutdown under 2 s
#   sidecar    collectd in a pid namespace of its own (a sidecar without a
#              shared pid namespace: the runtime's pid is not visible to
#              it), sharing one directory with the target, which sees it
#              at another path: counters, and a dump through DumpStaging
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$REPO/tests/lib/dotnet.sh"
T=listen
WORK=$BUILD/it/listen
rm -rf "$WORK"
mkdir -p "$WORK/sock" "$WORK/sock2"
chmod 0755 "$WORK/sock" "$WORK/sock2"
SOCK=$WORK/sock/diag.sock
SOCK2=$WORK/sock2/diag.sock
TAGS=(3001 3002 3011 3021 3022 3023 3031 3041 3051 3061)
# the namespaced targets (pid 1 inside; killing unshare leaves them), this
# run's and any a killed run of this test left
kill_targets() {
	local s p
	for s in "${TAGS[@]}"; do
		for p in $(pgrep -f -- "CounterTarget --seconds $s\$"); do
			grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$p/status" 2>/dev/null && kill -KILL "$p"
		done
	done
}
cleanup() {
	collectd_stop >/dev/null 2>&1
	kill_targets
	wait 2>/dev/null
}
trap cleanup EXIT
kill_targets

if [[ $(id -u) != 0 ]] || ! command -v unshare >/dev/null; then
	fail "$T: setup" "needs root and unshare (util-linux) to make namespaces"
	exit 0
fi
target_cmd -v CMD CounterTarget 10 || { fail "$T: setup" "no CounterTarget 10"; exit 0; }

# start_ns TAG PORTS SECONDS: CounterTarget 10 (--seconds SECONDS: a tag
# in its command line no other test uses) in new mount and pid namespaces,
# TMPDIR a private tmpfs, DOTNET_DiagnosticPorts=PORTS.
start_ns() {
	local tag=$1 ports=$2 secs=$3
	mkdir -p "$WORK/tmp-$tag"
	DOTNET_DiagnosticPorts=$ports TMPDIR=$WORK/tmp-$tag unshare -m -p -f --propagation private bash -c \
		'mount -t tmpfs tmpfs "$TMPDIR" && mount -t proc proc /proc && exec "$@"' _ \
		"${CMD[@]}" --seconds "$secs" >"$WORK/$tag.log" 2>&1 &
}
# ns_pid SECONDS: the host pid of the namespaced target started with that tag
ns_pid() {
	local p
	for p in $(pgrep -f -- "CounterTarget --seconds $1\$"); do
		grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$p/status" 2>/dev/null && { echo "$p"; return 0; }
	done
	return 1
}
# hide TAG PID: removes the target's own diagnostic socket (its TMPDIR, seen
# through its root): only its connection to us reaches it from now on
hide() {
	wait_until 20 bash -c "compgen -G '/proc/$2/root$WORK/tmp-$1/dotnet-diagnostic-1-*-socket' >/dev/null" &&
		rm -f /proc/"$2"/root"$WORK"/tmp-"$1"/dotnet-diagnostic-1-*-socket
}
ready() { grep -q '^READY 1$' "$WORK/$1.log"; }
# first_row DIR INSTANCE: the epoch of the first gc-heap-size row
first_row() {
	local f
	f=$(csv_file "$1" "$2" bytes-gc-heap-size) || return 1
	sed -n 2p "$f" | cut -d, -f1 | cut -d. -f1
}
rows_after() { # DIR INSTANCE EPOCH: rows of gc-heap-size stamped at or after EPOCH
	local f
	f=$(csv_file "$1" "$2" bytes-gc-heap-size) || { echo 0; return 0; }
	awk -F, -v t="$3" 'NR > 1 && $1 >= t { n++ } END { print n + 0 }' "$f"
}
rows_ge() { (($(csv_rows "$1" "$2" bytes-gc-heap-size) >= $3)); } # DIR INSTANCE N
row_after() { (($(rows_after "$1" "$2" "$3") >= 1)); }             # DIR INSTANCE EPOCH
has_rows() { [[ -n $(first_row "$1" "$2") ]]; }                     # DIR INSTANCE

# ---- cli ----
start_ns cli "$SOCK,connect,nosuspend" 3001
wait_until 60 ready cli || { fail "$T: cli target ready" "$(tail -3 "$WORK/cli.log")"; exit 0; }
CPID=$(ns_pid 3001)
hide cli "$CPID" || fail "$T: cli: own socket removed" "no socket in its TMPDIR"
out=$("$TRIGGERDUMP" ps --diagnostic-port "$SOCK" 2>&1)
if grep -qE '^ +1 +10\.0\.[0-9]+ +CounterTarget ' <<<"$out"; then
	pass "$T: ps --diagnostic-port" "$(grep -E '^ +1 ' <<<"$out" | awk '{print "pid "$1", "$2", "$3}')"
else
	fail "$T: ps --diagnostic-port" "$out"
fi
"$TRIGGERDUMP" monitor --diagnostic-port "$SOCK" --format csv --duration 3 >"$WORK/monitor.csv" 2>"$WORK/monitor.err"
n=$(grep -c ',System.Runtime,gc-heap-size,' "$WORK/monitor.csv")
NCOUNTERS=$(cut -d, -f4 "$WORK/monitor.csv" | sed 1d | sort -u | wc -l)
if ((n >= 2)) && grep -q 'stopped trace session' "$WORK/monitor.err"; then
	pass "$T: monitor --diagnostic-port" "$n gc-heap-size samples, $NCOUNTERS counters, StopTracing confirmed"
else
	fail "$T: monitor --diagnostic-port" "$n samples; $(tail -2 "$WORK/monitor.err")"
fi
kill -KILL "$CPID" 2>/dev/null

start_ns clisus "$SOCK,connect,suspend" 3002
sleep 3
if ready clisus; then
	fail "$T: suspend waits (cli)" "READY before anyone listened"
else
	"$TRIGGERDUMP" monitor --diagnostic-port "$SOCK" --format csv --duration 3 >"$WORK/monitor2.csv" 2>"$WORK/monitor2.err"
	n=$(grep -c ',System.Runtime,gc-heap-size,' "$WORK/monitor2.csv")
	if ready clisus && ((n >= 2)); then
		pass "$T: suspend waits, monitor resumes it (cli)" "no READY for 3 s; then $n samples"
	else
		fail "$T: suspend waits, monitor resumes it (cli)" "ready: $(ready clisus && echo yes || echo no), $n samples; $(tail -2 "$WORK/monitor2.err")"
	fi
fi
kill -KILL "$(ns_pid 3002)" 2>/dev/null

# ---- plugin ----
CD=$WORK/cd
mkdir -p "$WORK/dumps"
collectd_start "$CD" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  Listen \"$SOCK\"
  <Listen \"$SOCK2\">
    Mode \"0600\"
  </Listen>
  <Process \"boxed\">
    CommandLine \"CounterTarget --seconds 3011\$\"
  </Process>
  <Process \"tri1\">
    CommandLine \"CounterTarget --seconds 3021\$\"
  </Process>
  <Process \"tri2\">
    CommandLine \"CounterTarget --seconds 3022\$\"
  </Process>
  <Process \"tri3\">
    CommandLine \"CounterTarget --seconds 3023\$\"
  </Process>
  <Process \"second\">
    CommandLine \"CounterTarget --seconds 3031\$\"
  </Process>
  <Process \"sus\">
    CommandLine \"CounterTarget --seconds 3041\$\"
  </Process>
  <Dump>
    Directory \"$WORK/dumps\"
    Type \"mini\"
    MaxDumps 1
  </Dump>
  <Trigger>
    Directory \"$WORK/types\"
    <Action \"heap-types\">
      MaxPerProcess 1
    </Action>
  </Trigger>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"boxed\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
      Persist false
    </Type>
  </Plugin>
</Plugin>" || { fail "$T: collectd" "did not start"; exit 0; }
if [[ -S $SOCK && $(stat -c %a "$SOCK") == 660 && -S $SOCK2 && $(stat -c %a "$SOCK2") == 600 ]]; then
	pass "$T: sockets made" "$(stat -c '%n %a %U:%G' "$SOCK" "$SOCK2" | tr '\n' ' ')"
else
	fail "$T: sockets made" "$(ls -l "$WORK/sock" "$WORK/sock2" 2>&1 | tr '\n' ' ')"
fi

start_ns boxed "$SOCK,connect,nosuspend" 3011
wait_until 60 ready boxed || { fail "$T: boxed target ready" "$(tail -3 "$WORK/boxed.log")"; exit 0; }
BPID=$(ns_pid 3011)
hide boxed "$BPID"
if wait_until 20 grep -q "instance \"boxed\": watching pid $BPID .*connected in" "$CD/collectd.log" &&
	wait_until 10 rows_ge "$CD" boxed 3; then
	nfiles=$(ls "$CD"/csv/*/dotnet-boxed | grep -vc derive-dump)
	if ((nfiles >= NCOUNTERS)); then
		pass "$T: plugin: counters under the block's name" "$nfiles series for the $NCOUNTERS counters monitor saw, pid $BPID (1 inside)"
	else
		fail "$T: plugin: counters under the block's name" "$nfiles series, monitor saw $NCOUNTERS counters"
	fi
else
	fail "$T: plugin: counters under the block's name" "$(grep dotnet "$CD/collectd.log" | tail -3)"
fi
if wait_until 60 bash -c "grep -q 'dump of pid $BPID written' '$CD/collectd.log'" &&
	f=$(ls "$WORK"/dumps/* 2>/dev/null | head -1) && [[ -s $f && $(stat -c %a "$f") == 600 ]]; then
	pass "$T: plugin: dump through the runtime's connection" "$(du -k "$f" | cut -f1) KiB"
else
	fail "$T: plugin: dump through the runtime's connection" "$(grep -i dump "$CD/collectd.log" | tail -3)"
fi
# the same breach's <Trigger>, at the same time as the dump: a heap
# snapshot through the runtime's connections too
if wait_until 60 bash -c "grep -q 'heap-types of pid $BPID (' '$CD/collectd.log'" &&
	f=$(ls "$WORK"/types/boxed-*.heap-types.json 2>/dev/null | head -1) &&
	[[ -s $f && $(stat -c %a "$f") == 600 ]] && grep -q '"complete":true' "$f"; then
	pass "$T: plugin: heap-types through the runtime's connection" \
		"$(grep -o 'heap-types of pid [0-9]* ([^)]*)' "$CD/collectd.log" | head -1), $(basename "$f")"
else
	fail "$T: plugin: heap-types through the runtime's connection" "$(grep -i 'heap-types' "$CD/collectd.log" | tail -3)"
fi
# killed and restarted: the instance is free again, values back within 2
# intervals of the new runtime's READY
kill -KILL "$BPID"
wait_until 10 bash -c "grep -q 'instance \"boxed\".*ended\|instance \"boxed\".*stream' '$CD/collectd.log'"
t_launch=$(date +%s.%N)
start_ns boxed2 "$SOCK,connect,nosuspend" 3011
wait_until 60 ready boxed2 || { fail "$T: restarted target ready" "$(tail -3 "$WORK/boxed2.log")"; exit 0; }
t_ready=$(date +%s.%N)
B2=$(ns_pid 3011)
# the first value of the new runtime, by its csv stamp, against its READY
if wait_until 10 row_after "$CD" boxed "$t_launch"; then
	f=$(csv_file "$CD" boxed bytes-gc-heap-size)
	first=$(awk -F, -v t="$t_launch" 'NR > 1 && $1 >= t { print $1; exit }' "$f")
	d=$(awk -v a="$t_ready" -v b="$first" 'BEGIN { printf "%.1f", b - a }')
	if awk -v d="$d" 'BEGIN { exit !(d <= 2.0) }'; then
		pass "$T: plugin: restart, values back within 2 intervals" "first value ${d} s after READY, $(awk -v a="$t_launch" -v b="$first" 'BEGIN { printf "%.1f", b - a }') s after launch, pid $B2"
	else
		fail "$T: plugin: restart, values back within 2 intervals" "first value ${d} s after READY"
	fi
else
	fail "$T: plugin: restart, values back within 2 intervals" "$(grep dotnet "$CD/collectd.log" | tail -3)"
fi
hide boxed2 "$B2"

# ---- suspend ----
t_launch=$(date +%s.%N)
start_ns sus "$SOCK,connect,suspend" 3041
if wait_until 30 ready sus; then
	t_ready=$(date +%s.%N)
	if wait_until 10 has_rows "$CD" sus; then
		first=$(first_row "$CD" sus)
		# the session started before the runtime ran: its first row is
		# stamped within one interval of READY (not a grid point later)
		if awk -v f="$first" -v r="$t_ready" 'BEGIN { exit !(f <= r + 1.5) }'; then
			pass "$T: suspend: resumed by the plugin, first interval caught" "READY $(awk -v a="$t_launch" -v b="$t_ready" 'BEGIN { printf "%.1f", b - a }') s after launch, first row at READY$(awk -v f="$first" -v r="$t_ready" 'BEGIN { printf "%+.1f", f - r }') s"
		else
			fail "$T: suspend: first interval caught" "first row $first, READY $t_ready"
		fi
	else
		fail "$T: suspend: first interval caught" "no rows for sus"
	fi
else
	fail "$T: suspend: resumed by the plugin" "no READY; $(grep -i 'resume\|sus' "$CD/collectd.log" | tail -3)"
fi

# ---- several ----
start_ns tri1 "$SOCK,connect,nosuspend" 3021
start_ns tri2 "$SOCK,connect,nosuspend" 3022
start_ns tri3 "$SOCK,connect,nosuspend" 3023
start_ns second "$SOCK2,connect,nosuspend" 3031
for i in tri1 tri2 tri3 second; do
	if wait_until 60 ready "$i" && wait_until 20 rows_ge "$CD" "$i" 2; then
		pass "$T: several: $i" "$(csv_rows "$CD" "$i" bytes-gc-heap-size) rows"
	else
		fail "$T: several: $i" "$(grep "\"$i\"" "$CD/collectd.log" | tail -2)"
	fi
done

# a suspended runtime that matches no block is asked again (its command
# line is its executable alone while it waits), then resumed, not held
start_ns stray "$SOCK,connect,suspend" 3061
if wait_until 30 ready stray && grep -q 'CounterTarget, pid [0-9]*, .*) matches no <Process> block: resumed, not watched' "$CD/collectd.log"; then
	pass "$T: an unmatched suspended runtime is resumed, not watched"
else
	fail "$T: an unmatched suspended runtime is resumed, not watched" "ready: $(ready stray && echo yes || echo no); $(grep 'matches no' "$CD/collectd.log" | tail -1)"
fi

# ---- hostile ----
fds() { ls "/proc/$COLLECTD_PID/fd" | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$COLLECTD_PID/status"; }
FD0=$(fds)
RSS0=$(rss)
ROWS0=$(csv_rows "$CD" tri1 bytes-gc-heap-size)
python3 - "$SOCK" >"$WORK/hostile.out" 2>&1 <<'PY'
import os, socket, struct, sys, time, resource, uuid
path = sys.argv[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
def dial():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except BlockingIOError:
        pass
    except OSError as e:
        s.close()
        return None
    return s
# a malformed advertise
s = dial(); s.send(b"ADVR_V2\0" + b"\x01" * 26); time.sleep(0.2); s.close()
# an advertise, then silence: the plugin asks it who it is and gets nothing
quiet = dial()
quiet.send(b"ADVR_V1\0" + uuid.uuid4().bytes + struct.pack("<QH", os.getpid(), 0))
# 1000 connections that never send
held = [c for c in (dial() for _ in range(1000)) if c is not None]
print("held", len(held))
time.sleep(4)
for c in held:
    c.close()
time.sleep(3)
quiet.close()
print("done")
PY
U=$(test_user) || U=
if [[ -n $U ]]; then
	out=$(setpriv --reuid="$U" --regid="$(id -g "$U")" --clear-groups /usr/bin/python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1]); print('connected')
except PermissionError:
    print('refused')" "$SOCK" 2>&1)
	if [[ $out == refused ]]; then
		pass "$T: hostile: another uid is refused by the socket's mode" "$U: EACCES"
	else
		fail "$T: hostile: another uid is refused by the socket's mode" "$U: $out"
	fi
fi
sleep 5
FD1=$(fds)
RSS1=$(rss)
ROWS1=$(csv_rows "$CD" tri1 bytes-gc-heap-size)
for pat in "sent no valid advertise" "connections have not advertised yet" "bytes of its advertise in"; do
	c=$(grep -c "$pat" "$CD/collectd.log")
	if ((c == 1)); then pass "$T: hostile: logged once: $pat"; else fail "$T: hostile: logged once: $pat" "$c lines"; fi
done
c=$(grep -c "a runtime that connected in .* does not answer" "$CD/collectd.log")
if ((c == 1)); then
	pass "$T: hostile: advertise then silence, logged once" "$(grep -o 'does not answer: .*' "$CD/collectd.log" | head -1)"
else
	fail "$T: hostile: advertise then silence" "$(grep -v 'watching' "$CD/collectd.log" | grep dotnet | tail -3)"
fi
if ((FD1 <= FD0 + 2)) && ((RSS1 - RSS0 < 4096)); then
	pass "$T: hostile: nothing leaks" "fds $FD0 -> $FD1, RSS $RSS0 -> $RSS1 KiB; $(head -1 "$WORK/hostile.out")"
else
	fail "$T: hostile: nothing leaks" "fds $FD0 -> $FD1, RSS $RSS0 -> $RSS1 KiB"
fi
if ((ROWS1 - ROWS0 >= 10)); then
	pass "$T: hostile: the targets keep their rows" "tri1: $((ROWS1 - ROWS0)) rows during the flood"
else
	fail "$T: hostile: the targets keep their rows" "tri1: $((ROWS1 - ROWS0)) rows"
fi
for i in tri1 tri2 tri3 second boxed sus; do
	ls "$CD/csv/"*"/dotnet-$i" >/dev/null 2>&1 || fail "$T: hostile: $i kept" "no csv"
done

secs=$(collectd_stop)
if awk -v s="$secs" 'BEGIN { exit !(s < 2) }'; then
	pass "$T: shutdown" "${secs} s with 6 runtimes connected in"
else
	fail "$T: shutdown" "${secs} s"
fi
if [[ ! -e $SOCK && ! -e $SOCK2 ]]; then
	pass "$T: sockets removed at shutdown"
else
	fail "$T: sockets removed at shutdown" "$(ls -A "$WORK/sock" "$WORK/sock2")"
fi

# ---- sidecar ----
SH=$WORK/shared
mkdir -p "$SH" "$WORK/tmp-side" "$WORK/dumps2"
chmod 0755 "$SH"
# the target sees the shared directory as $WORK/tmp-side/diag (a bind
# mount in its own mount namespace); collectd sees it as $SH
DOTNET_DiagnosticPorts=$WORK/tmp-side/diag/diag.sock,connect,nosuspend TMPDIR=$WORK/tmp-side \
	unshare -m -p -f --propagation private bash -c \
	'mount -t tmpfs tmpfs "$TMPDIR" && mkdir "$TMPDIR/diag" && mount --bind "$0" "$TMPDIR/diag" &&
	mount -t proc proc /proc && exec "$@"' "$SH" "${CMD[@]}" --seconds 3051 >"$WORK/side.log" 2>&1 &
COLLECTD_WRAPPER="unshare -p -f --mount-proc --kill-child=SIGTERM" collectd_start "$WORK/cd2" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Listen \"$SH/diag.sock\">
    DumpStaging \"$WORK/tmp-side/diag\" \"$SH\"
  </Listen>
  <Process \"side\">
    CommandLine \"CounterTarget.* --seconds 3051\$\"
  </Process>
  <Dump>
    Directory \"$WORK/dumps2\"
    Type \"mini\"
    MaxDumps 1
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"side\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
    </Type>
  </Plugin>
</Plugin>" || { fail "$T: sidecar collectd" "did not start"; exit 0; }
if wait_until 60 ready side && wait_until 20 grep -q 'instance "side": watching pid 0 .*connected in' "$WORK/cd2/collectd.log" &&
	wait_until 10 rows_ge "$WORK/cd2" side 2; then
	pass "$T: sidecar: counters of a runtime whose pid is not visible" "$(csv_rows "$WORK/cd2" side bytes-gc-heap-size) rows; $(grep -o 'runtime [0-9a-f]* connected: pid 1 ([0-9]* here)' "$WORK/cd2/collectd.log" | head -1)"
else
	fail "$T: sidecar: counters of a runtime whose pid is not visible" "$(grep dotnet "$WORK/cd2/collectd.log" | tail -3)"
fi
if wait_until 60 grep -q 'instance "side": dump of pid 1 written: .*\/side-1-' "$WORK/cd2/collectd.log" &&
	f=$(ls "$WORK"/dumps2/* 2>/dev/null | head -1) && [[ -s $f && $(stat -c %a "$f") == 600 ]] &&
	! compgen -G "$SH/collectd-dotnet-*" >/dev/null; then
	pass "$T: sidecar: dump through DumpStaging" "$(du -k "$f" | cut -f1) KiB, nothing left in the shared directory"
else
	fail "$T: sidecar: dump through DumpStaging" "$(grep -i 'dump' "$WORK/cd2/collectd.log" | grep -v Notification | tail -2)"
fi
collectd_stop >/dev/null
