#!/usr/bin/env bash
# tests/integration/trace.sh -- triggerdump trace against real .NET 8, 9,
# 10 and 11 processes, its files read by TraceEvent and dotnet-trace.
#
# tests/run runs it; alone:
#   REPO=. BUILD=build TRIGGERDUMP=build/c/triggerdump RESULTS=/tmp/r.txt \
#     bash tests/integration/trace.sh
# Needs the targets built (dotnet_build_targets), python3 and the .NET SDK:
# builds tests/tools/TraceCheck (TraceEvent from NuGet) into
# $BUILD/tracecheck and installs dotnet-trace (DOTNET_TOOLS_VERSION) into
# $BUILD/gctools, as gctypes.sh does dotnet-gcdump.
#
# For each runtime (checks named "trace netN: ..."), a 5 s trace of
# tests/targets/CounterTarget (8 KiB arrays at 16 MB/s, a busy main loop):
#  1. exit 0, a file of mode 0600, the CLI's summary (bytes, events, CPU
#     samples, seconds; in the PASS line with the events per second);
#  2. TraceEvent (TraceCheck) reads it whole, with as many events as the
#     CLI counted; SampleProfiler samples with stacks, at least
#     NAMED_PCT % of their frames named (the rundown) and some in the
#     app's own code (CollectdDotnet.); DotNETRuntime GC/Start events; the
#     rundown's provider;
#  3. `dotnet-trace convert --format speedscope` converts it: profiles, and
#     frames named after the app's methods;
#  4. `triggerdump stats` reads it whole, the same number of events.
# Once (on .NET 10): usage errors (no -o, an option of another command:
# exit 2), a process that is not .NET (exit 1), --help; a --providers list
# that does not parse and filter arguments (exit 2, no file); the
# providers given (GC only: no samples); --max-size 1 (stopped early at
# 512 KiB, a whole file under 1 MiB); -o an existing file or a symlink
# (exit 1, both untouched); SIGINT mid-trace (exit 0, a whole file); the
# target ending mid-trace on SIGTERM (its runtime ends the session with the
# rundown: exit 0, a whole file); a target of an unprivileged user (.NET
# 8); the target killed mid-trace (exit 3, a message, the file holds what
# came: TraceEvent reads its events up to the cut).
# Hostile runtimes (tests/fake-diag-server.py): a start never answered or
# refused (exit 1, no file), StopTracing never answered and a stream that
# stalls (exit 3 after --timeout), garbage, a huge block, zeros (exit 1,
# the reader's reason), a stream cut short (exit 3); each within 15 s.
# shellcheck source-path=SCRIPTDIR
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

WORK=$BUILD/trace
read -r -a VERSIONS <<<"${TRACE_VERSIONS:-8 9 10 11}" # e.g. TRACE_VERSIONS=10
DURATION=5    # seconds of each trace
NAMED_PCT=90  # frames of the samples with a method name
TRACE_TOOL=$BUILD/gctools/dotnet-trace
CHECK_DLL=$BUILD/tracecheck/bin/TraceCheck/release/TraceCheck.dll

rm -rf "$WORK"
mkdir -p "$WORK"
trap 'stop_all_targets' EXIT

if [[ ! -x $TRACE_TOOL ]]; then
	"$DOTNET" tool install --tool-path "$BUILD/gctools" dotnet-trace \
		--version "$DOTNET_TOOLS_VERSION" >"$WORK/trace-install.log" 2>&1 </dev/null ||
		fail "trace: install dotnet-trace" "see $WORK/trace-install.log"
fi
"$DOTNET" build -c Release "$REPO/tests/tools/TraceCheck/TraceCheck.csproj" \
	--artifacts-path "$BUILD/tracecheck" -nologo -v:q -nodeReuse:false -m:1 \
	>"$WORK/tracecheck-build.log" 2>&1 </dev/null ||
	fail "trace: build tests/tools/TraceCheck" "see $WORK/tracecheck-build.log"

# check_file NAME FILE WANT_EVENTS: TraceCheck's report of FILE (into
# FILE.check) against what a whole default trace holds
CHECK_PY=$WORK/check.py
cat >"$CHECK_PY" <<'PY'
import json, sys

def report(path):
    r = {'provider': {}, 'event': {}, 'top': []}
    for line in open(path):
        k, _, v = line.rstrip('\n').partition(' ')
        if k in ('provider', 'event'):
            name, _, n = v.rpartition(' ')
            r[k][name] = int(n)
        elif k == 'top':
            r['top'].append(v)
        elif k in ('read', 'tracelog'):
            r[k] = v
        else:
            r[k] = int(v)
    return r

def die(msg):
    print(msg)
    sys.exit(1)

def whole(path, want_events, named_pct):
    r = report(path)
    if r.get('read') != 'whole':
        die('TraceEvent: ' + r.get('read', '?'))
    if 'tracelog' in r:
        die('TraceLog: ' + r['tracelog'])
    if r['events'] != want_events:
        die('TraceEvent read %d events, triggerdump wrote %d' % (r['events'], want_events))
    sp = r['provider'].get('Microsoft-DotNETCore-SampleProfiler', 0)
    gc = r['event'].get('Microsoft-Windows-DotNETRuntime/GC/Start', 0)
    rd = r['provider'].get('Microsoft-Windows-DotNETRuntimeRundown', 0)
    if sp == 0 or r['stacks'] == 0:
        die('no CPU samples with stacks (%d samples, %d stacks)' % (sp, r['stacks']))
    if gc == 0:
        die('no GC/Start event')
    if rd == 0:
        die('no rundown event')
    pct = r['named'] * 100.0 / max(r['frames'], 1)
    if pct < named_pct:
        die('%.1f %% of %d frames named' % (pct, r['frames']))
    if r['prefixed'] == 0:
        die('no frame in the app\'s code; top: %s' % '; '.join(r['top']))
    print('%d events: %d CPU samples, %d GC/Start, %d rundown; %.1f %% of %d frames named, %d in the app'
          % (r['events'], sp, gc, rd, pct, r['frames'], r['prefixed']))

def speedscope(path, prefix):
    j = json.load(open(path))
    profiles = j.get('profiles', [])
    frames = j.get('shared', {}).get('frames', [])
    app = [f['name'] for f in frames if f.get('name', '').find(prefix) >= 0]
    if not profiles or not frames:
        die('%d profiles, %d frames' % (len(profiles), len(frames)))
    if not app:
        die('no frame names %s*' % prefix)
    events = sum(len(p.get('events', p.get('samples', []))) for p in profiles)
    print('%d profiles, %d frames (%d of the app, e.g. %s), %d events'
          % (len(profiles), len(frames), len(app), app[0][:60], events))

def cut(path, max_events):
    r = report(path)
    if not (0 < r['events'] <= max_events):
        die('TraceEvent read %d events of the %d that came (%s)' % (r['events'], max_events, r.get('read')))
    print('TraceEvent read %d of %d events (%s)' % (r['events'], max_events, r.get('read')))

what = sys.argv[1]
if what == 'whole':
    whole(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif what == 'speedscope':
    speedscope(sys.argv[2], sys.argv[3])
elif what == 'cut':
    cut(sys.argv[2], int(sys.argv[3]))
PY

# say N FILE: FILE's first N bytes on one line (a result is one line)
say() { head -c "$1" "$2" | tr '\n' ' '; }

# py NAME CHECK ARGS...: a check of check.py, its line as the detail
py() {
	local name=$1 out
	shift
	if out=$(python3 "$CHECK_PY" "$@" 2>&1); then pass "$name" "$out"; else fail "$name" "$out"; fi
}

# tracecheck FILE: TraceCheck's report into FILE.check (bounded in time)
tracecheck() {
	timeout 120 "$DOTNET" "$CHECK_DLL" "$1" CollectdDotnet. >"$1.check" 2>&1 </dev/null
}

# summary ERRFILE KEY: a figure of the CLI's summary line (bytes, events,
# samples, seconds)
summary() {
	local line
	line=$(grep -m1 'triggerdump: trace of pid' "$1")
	case $2 in
	bytes) sed -n 's/.*: \([0-9]*\) bytes, .*/\1/p' <<<"$line" ;;
	events) sed -n 's/.* bytes, \([0-9]*\) events .*/\1/p' <<<"$line" ;;
	samples) sed -n 's/.* (\([0-9]*\) CPU samples).*/\1/p' <<<"$line" ;;
	seconds) sed -n 's/.* in \([0-9.]*\) s.*/\1/p' <<<"$line" ;;
	esac
}

for ver in "${VERSIONS[@]}"; do
	n="trace net$ver"
	d=$WORK/net$ver
	mkdir -p "$d"
	if ! pid=$(start_target CounterTarget "$ver"); then
		fail "$n: CounterTarget" "did not start"
		continue
	fi
	f=$d/cpu.nettrace
	t0=$(date +%s.%N)
	timeout 60 "$TRIGGERDUMP" trace "$pid" -o "$f" --duration "$DURATION" >"$d/trace.out" 2>"$d/trace.err"
	rc=$?
	wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	stop_target "$pid" >/dev/null
	bytes=$(summary "$d/trace.err" bytes)
	events=$(summary "$d/trace.err" events)
	samples=$(summary "$d/trace.err" samples)
	mode=$(stat -c %a "$f" 2>/dev/null)
	# 1. the CLI
	if ((rc == 0)) && [[ $mode == 600 && -n $bytes && $bytes == $(stat -c %s "$f") && -n $events ]]; then
		pass "$n: a ${DURATION} s trace" "$bytes bytes, $events events ($((events / DURATION))/s), $samples CPU samples, ${wall} s wall, mode $mode"
	else
		fail "$n: a ${DURATION} s trace" "exit $rc, mode ${mode:-none}: $(say 400 "$d/trace.err")"
		continue
	fi
	# 2. TraceEvent
	tracecheck "$f"
	py "$n: TraceEvent reads it whole, samples named" whole "$f.check" "$events" "$NAMED_PCT"
	# 3. dotnet-trace convert
	# (-o NAME.json writes NAME.speedscope.json)
	rm -f "$d/cpu.speedscope.json"
	if timeout 120 "$TRACE_TOOL" convert --format speedscope -o "$d/cpu.json" "$f" \
		>"$d/convert.log" 2>&1 </dev/null && [[ -s $d/cpu.speedscope.json ]]; then
		py "$n: dotnet-trace convert --format speedscope" speedscope "$d/cpu.speedscope.json" CollectdDotnet.
	else
		fail "$n: dotnet-trace convert --format speedscope" "$(tail -n 3 "$d/convert.log" | tr '\n' ' ')"
	fi
	# 4. triggerdump stats
	"$TRIGGERDUMP" stats "$f" >"$d/stats.out" 2>&1
	rc=$?
	got=$(sed -n 's/^events \([0-9]*\),.*/\1/p' "$d/stats.out")
	if ((rc == 0)) && [[ $got == "$events" ]]; then
		pass "$n: triggerdump stats reads it whole" "$got events"
	else
		fail "$n: triggerdump stats reads it whole" "exit $rc, ${got:-no} events of $events: $(tail -n 2 "$d/stats.out" | tr '\n' ' ')"
	fi
done

# ---- once, on .NET 10 ----
n="trace"
d=$WORK/once
mkdir -p "$d"
if ! pid=$(start_target CounterTarget 10); then
	fail "$n: CounterTarget" "did not start"
	exit 0
fi

# a list that does not parse: a usage error, no file
"$TRIGGERDUMP" trace "$pid" -o "$d/bad.nettrace" --providers 'Microsoft-Windows-DotNETRuntime:0xZZ' \
	>"$d/bad.out" 2>"$d/bad.err"
rc=$?
if ((rc == 2)) && grep -q "keywords '0xZZ' are not hexadecimal" "$d/bad.err" && [[ ! -e $d/bad.nettrace ]]; then
	pass "$n: a --providers list that does not parse" "$(say 200 "$d/bad.err")"
else
	fail "$n: a --providers list that does not parse" "exit $rc: $(say 300 "$d/bad.err")"
fi
"$TRIGGERDUMP" trace "$pid" -o "$d/bad.nettrace" --providers 'A:1:4:Key=Value' >/dev/null 2>"$d/bad2.err"
rc=$?
if ((rc == 2)) && grep -q "filter arguments" "$d/bad2.err" && [[ ! -e $d/bad.nettrace ]]; then
	pass "$n: filter arguments are refused" "$(say 200 "$d/bad2.err")"
else
	fail "$n: filter arguments are refused" "exit $rc: $(say 300 "$d/bad2.err")"
fi

# expect_error NAME RC PATTERN ARGS...: triggerdump ARGS exits RC, prints
# nothing on stdout and a message matching PATTERN (grep -E) on stderr, and
# makes no file
expect_error() {
	local name=$1 want=$2 pattern=$3 rc
	shift 3
	"$TRIGGERDUMP" "$@" >"$d/err.out" 2>"$d/err.err"
	rc=$?
	if ((rc == want)) && grep -Eq -- "$pattern" "$d/err.err" && [[ ! -s $d/err.out && ! -e $d/x ]]; then
		pass "$n: $name" "$(say 200 "$d/err.err")"
	else
		fail "$n: $name" "exit $rc: $(say 300 "$d/err.err")"
	fi
}
expect_error "trace without -o" 2 "trace needs -o FILE" trace "$pid"
expect_error "trace refuses --interval by name" 2 "trace: --interval is not an option" \
	trace "$pid" -o "$d/x" --interval 1
expect_error "a process that is not .NET" 1 "no \.NET diagnostic socket" trace $$ -o "$d/x"
"$TRIGGERDUMP" trace --help >"$d/help.out" 2>&1
rc=$?
"$TRIGGERDUMP" help trace >"$d/help2.out" 2>&1
if ((rc == 0)) && grep -q "^Usage: triggerdump trace " "$d/help.out" && cmp -s "$d/help.out" "$d/help2.out" &&
	"$TRIGGERDUMP" --help | grep -q "^  triggerdump trace "; then
	pass "$n: trace --help, as 'help trace' and in the usage"
else
	fail "$n: trace --help, as 'help trace' and in the usage" "exit $rc: $(head -n 2 "$d/help.out" | tr '\n' ' ')"
fi

# the providers given: GC events only, no samples
f=$d/gc.nettrace
"$TRIGGERDUMP" trace "$pid" -o "$f" --duration 2 --providers 'Microsoft-Windows-DotNETRuntime:0x1:4' \
	>/dev/null 2>"$d/gc.err"
rc=$?
tracecheck "$f"
if ((rc == 0)) && grep -q '^read whole$' "$f.check" &&
	grep -q '^event Microsoft-Windows-DotNETRuntime/GC/Start [1-9]' "$f.check" &&
	! grep -q '^provider Microsoft-DotNETCore-SampleProfiler' "$f.check"; then
	pass "$n: --providers, GC only" "$(grep -m1 'trace of pid' "$d/gc.err" | cut -c1-160)"
else
	fail "$n: --providers, GC only" "exit $rc: $(say 300 "$d/gc.err"); $(grep -E '^(read|provider)' "$f.check" | tr '\n' ' ')"
fi

# --max-size 1: stopped early at 512 KiB, read to its end, a whole
# file under the cap
f=$d/cap.nettrace
"$TRIGGERDUMP" trace "$pid" -o "$f" --duration 60 --max-size 1 >/dev/null 2>"$d/cap.err"
rc=$?
size=$(stat -c %s "$f" 2>/dev/null)
tracecheck "$f"
if ((rc == 0)) && grep -q "stopped early at [0-9]* bytes, near the size cap (1048576 bytes)" "$d/cap.err" &&
	((size >= 524288 && size <= 1048576)) && grep -q '^read whole$' "$f.check" &&
	grep -q '^prefixed [1-9]' "$f.check"; then
	pass "$n: --max-size 1 stops it early, a whole file" "$size bytes; $(grep -m1 'trace of pid' "$d/cap.err" | cut -c1-200)"
else
	fail "$n: --max-size 1 stops it early, a whole file" "exit $rc, ${size:-no} bytes: $(say 300 "$d/cap.err"); $(grep '^read' "$f.check")"
fi
expect_error "--max-size 0 is a usage error" 2 "--max-size takes 1 to 65536" trace "$pid" -o "$d/x" --max-size 0

# -o: an existing file, a symlink (to a file, to a missing one)
echo keep >"$d/exists"
ln -s "$d/exists" "$d/link"
ln -s "$d/missing" "$d/dangling"
for o in exists link dangling; do
	"$TRIGGERDUMP" trace "$pid" -o "$d/$o" --duration 1 >/dev/null 2>"$d/o-$o.err"
	rc=$?
	if ((rc == 1)) && grep -q "cannot create $d/$o: File exists" "$d/o-$o.err" &&
		[[ $(cat "$d/exists") == keep && ! -e $d/missing ]]; then
		pass "$n: -o $o is refused" "$(say 200 "$d/o-$o.err")"
	else
		fail "$n: -o $o is refused" "exit $rc: $(say 300 "$d/o-$o.err")"
	fi
done

# SIGINT mid-trace: stopped as at the duration's end, a whole file
f=$d/int.nettrace
"$TRIGGERDUMP" trace "$pid" -o "$f" --duration 60 >/dev/null 2>"$d/int.err" &
td=$!
wait_until 10 test -s "$f"
sleep 1
t0=$(date +%s.%N)
kill -INT "$td"
wait "$td"
rc=$?
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
tracecheck "$f"
if ((rc == 0)) && grep -q '^read whole$' "$f.check" && grep -q '^named [1-9]' "$f.check"; then
	pass "$n: SIGINT stops it, a whole file" "ended ${took} s after SIGINT; $(grep -m1 'trace of pid' "$d/int.err" | cut -c1-160)"
else
	fail "$n: SIGINT stops it, a whole file" "exit $rc: $(say 300 "$d/int.err"); $(grep '^read' "$f.check")"
fi
stop_target "$pid" >/dev/null

# the target ends mid-trace (SIGTERM): its runtime ends the session with
# the rundown: exit 0, a whole file, the message says so
if pid=$(start_target CounterTarget 10); then
	f=$d/term.nettrace
	"$TRIGGERDUMP" trace "$pid" -o "$f" --duration 60 >/dev/null 2>"$d/term.err" &
	td=$!
	wait_until 10 test -s "$f"
	sleep 1
	stop_target "$pid" >/dev/null
	timeout 20 tail --pid="$td" -f /dev/null
	wait "$td"
	rc=$?
	tracecheck "$f"
	if ((rc == 0)) && grep -q "the runtime ended the session before it was stopped" "$d/term.err" &&
		grep -q '^read whole$' "$f.check" && grep -q '^prefixed [1-9]' "$f.check"; then
		pass "$n: the target exits mid-trace (SIGTERM)" "$(grep -m1 'trace of pid' "$d/term.err" | cut -c1-200)"
	else
		fail "$n: the target exits mid-trace (SIGTERM)" "exit $rc: $(say 300 "$d/term.err"); $(grep '^read' "$f.check")"
	fi
else
	fail "$n: CounterTarget" "did not start"
fi

# a target of another, unprivileged user
if pid=$(TARGET_USER=$(test_user) start_target CounterTarget 8); then
	f=$d/user.nettrace
	"$TRIGGERDUMP" trace "$pid" -o "$f" --duration 2 >/dev/null 2>"$d/user.err"
	rc=$?
	stop_target "$pid" >/dev/null
	tracecheck "$f"
	if ((rc == 0)) && grep -q '^read whole$' "$f.check" && grep -q '^prefixed [1-9]' "$f.check"; then
		pass "$n: a target of an unprivileged user" "$(grep -m1 'trace of pid' "$d/user.err" | cut -c1-200)"
	else
		fail "$n: a target of an unprivileged user" "exit $rc: $(say 300 "$d/user.err"); $(grep '^read' "$f.check")"
	fi
else
	fail "$n: CounterTarget as $(test_user)" "did not start"
fi

# the target killed mid-trace: exit 3, a message, the file holds what came
if pid=$(start_target CounterTarget 10); then
	f=$d/killed.nettrace
	"$TRIGGERDUMP" trace "$pid" -o "$f" --duration 60 >/dev/null 2>"$d/killed.err" &
	td=$!
	wait_until 10 test -s "$f"
	sleep 2
	kill -KILL "$pid"
	t0=$(date +%s.%N)
	timeout 20 tail --pid="$td" -f /dev/null
	wait "$td"
	rc=$?
	took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	stop_target "$pid" >/dev/null
	events=$(sed -n 's/.* bytes that came (\([0-9]*\) events).*/\1/p' "$d/killed.err")
	if ((rc == 3)) && grep -q "cut short after .*the stream ended early" "$d/killed.err" &&
		grep -q "is incomplete" "$d/killed.err" && [[ -n $events ]]; then
		pass "$n: the target killed mid-trace" "exit 3 ${took} s after SIGKILL: $(grep -m1 "cut short" "$d/killed.err" | cut -c1-250)"
		tracecheck "$f"
		py "$n: TraceEvent reads a cut trace up to its cut" cut "$f.check" "$events"
	else
		fail "$n: the target killed mid-trace" "exit $rc: $(say 300 "$d/killed.err")"
	fi
else
	fail "$n: CounterTarget" "did not start"
fi

# ---- hostile runtimes: tests/fake-diag-server.py, one fault each ----
n="trace: hostile"
FK=$WORK/fakes
mkdir -p "$FK"
FAKE=$REPO/tests/fake-diag-server.py
# (fake runs in $(...): its servers' pids go to a file for the EXIT trap)
trap 'stop_all_targets; while read -r p; do kill -TERM "$p" 2>/dev/null; done <"$FK/pids"' EXIT
: >"$FK/pids"
# fake SCENARIO: starts a fake runtime; echoes the pid its socket is named after
fake() {
	local ready=$FK/$1.ready
	rm -f "$ready"
	python3 "$FAKE" --scenario "$1" --only-for $$ --ready "$ready" --log "$FK/$1.log" \
		</dev/null >>"$FK/$1.out" 2>&1 &
	echo "$!" >>"$FK/pids"
	wait_until 15 test -s "$ready" || return 1
	read -r _ named _ _ <"$ready"
	echo "$named"
}
# hostile SCENARIO RC REGEX FILE ARGS...: triggerdump trace of the fake exits
# RC within 15 s, says REGEX; FILE: "none" (no file left) or "kept"
hostile() {
	local sc=$1 want=$2 re=$3 file=$4 fpid rc t0 took
	shift 4
	if ! fpid=$(fake "$sc"); then
		fail "$n: $sc" "the fake did not start"
		return
	fi
	local f=$FK/$sc.nettrace
	t0=$(date +%s.%N)
	timeout 30 "$TRIGGERDUMP" trace "$fpid" -o "$f" "$@" >/dev/null 2>"$FK/$sc.err"
	rc=$?
	took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	if ((rc == want)) && grep -qE -- "$re" "$FK/$sc.err" &&
		awk -v t="$took" 'BEGIN { exit !(t < 15) }' &&
		{ [[ $file == none && ! -e $f ]] || [[ $file == kept && -s $f ]]; }; then
		pass "$n: $sc" "exit $rc in $took s: $(grep -m1 -E -- "$re" "$FK/$sc.err" | cut -c1-200)"
	else
		fail "$n: $sc" "exit $rc (want $want) in $took s, file $( [[ -e $f ]] && echo kept || echo none) (want $file): $(say 300 "$FK/$sc.err")"
	fi
}
hostile normal 0 "trace of pid [0-9]*: [0-9]* bytes" kept --duration 1
hostile hang 1 "cannot start the session: no answer from the runtime in time" none --timeout 2
hostile error-reply 1 "cannot start the session: the runtime answered E_ACCESSDENIED" none
hostile stop-hang 3 "timed out after .*StopTracing: no answer from the runtime in time" kept --duration 1 --timeout 2
hostile stream-stall 3 "timed out after .*did not come within 2000 ms of StopTracing" kept --duration 1 --timeout 2
hostile stream-garbage 1 "failed: bad nettrace stream" kept --duration 3
hostile stream-huge-block 1 "failed: bad nettrace stream: block of 4294967280 bytes exceeds max_object" kept --duration 3
hostile stream-zeros 1 "failed: bad nettrace stream: bad object tag 0x00" kept --duration 3
hostile stream-truncated 3 "cut short after .*the stream ended early" kept --duration 3
exit 0
