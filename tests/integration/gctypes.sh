#!/usr/bin/env bash
# tests/integration/gctypes.sh -- triggerdump heap-types and alloc-types
# against real .NET 8, 9, 10 and 11 processes.
#
# tests/run runs it; alone:
#   REPO=. BUILD=build TRIGGERDUMP=build/c/triggerdump RESULTS=/tmp/r.txt \
#     bash tests/integration/gctypes.sh
# Needs the targets built (dotnet_build_targets) and python3; installs
# dotnet-gcdump (DOTNET_TOOLS_VERSION) into $BUILD/gctools, as
# tests/fixtures/capture-gc.sh does.
#
# For each runtime (checks named "gctypes netN: ..."):
#  1. heap-types --format json of contrib/spike-app's SpikeApp holding a
#     spike of SPIKE_MB System.Byte[] of 1,000,000 elements (1,000,024 bytes
#     each): exit 0, complete, System.Byte[] first with its bytes within
#     5 % of what the app holds; the snapshot's time, the GC's pause and the
#     CLI's maximum RSS (under RSS_LIMIT_KB) are in the PASS line.
#  2. against `dotnet-gcdump collect` + `report` of the same process right
#     after it (one dotnet-gcdump collect before 1. warms the process up): the object counts of the report's 10 most numerous types are
#     ours, within COUNT_TOLERANCE_PCT (the sessions themselves allocate a
#     few objects in the target between the two snapshots), and the total
#     bytes within 2 %. The report's bytes column is the size of one object
#     of the type, so bytes per type are not compared.
#  3. heap-types --format csv: the header type,count,bytes, every row
#     parses, System.Byte[] first; --format text: its totals line says
#     "complete".
#  4. alloc-types --duration 3 of tests/targets/CounterTarget (8 KiB
#     System.Byte[] at 16 MB/s): json complete, System.Byte[] first with at
#     least 80 % of the sampled bytes; csv header type,samples,bytes.
#  5. a SpikeApp run as an unprivileged user (test_user): heap-types as root
#     names System.Byte[] first.
# Once: a pid that is no process, and one that is no .NET process: exit 1
# with a message that says so; --top 0 and heap-types --duration are usage
# errors (exit 2); each command's --help is `help CMD`'s and in the usage;
# a heap of a million objects of one class (a file-based app the .NET 10
# SDK builds, on its runtime): complete, each one counted, max RSS under
# RSS_LIMIT_KB, the snapshot's time and the GC's pause reported; a
# --timeout too short for the snapshot: exit 1, a message naming --timeout,
# and the target serves a new snapshot afterwards.
# shellcheck source-path=SCRIPTDIR
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

WORK=$BUILD/gctypes
read -r -a VERSIONS <<<"${GCTYPES_VERSIONS:-8 9 10 11}" # e.g. GCTYPES_VERSIONS=10
SPIKE_MB=60              # SpikeApp --spike-mb: the app holds SPIKE_MB arrays
CHUNK_BYTES=1000024      # one of them: 1,000,000 bytes + the array header
HEAP_TOLERANCE_PCT=5     # System.Byte[] against what the app holds
COUNT_TOLERANCE_PCT=0    # our counts against dotnet-gcdump's, see 3.
RSS_LIMIT_KB=16384       # the CLI's maximum RSS
GCDUMP=$BUILD/gctools/dotnet-gcdump

rm -rf "$WORK"
mkdir -p "$WORK"
many_pid= # the million-object app (not a start_target target)
trap 'stop_all_targets; [[ -n $many_pid ]] && kill "$many_pid" 2>/dev/null' EXIT

if [[ ! -x $GCDUMP ]]; then
	"$DOTNET" tool install --tool-path "$BUILD/gctools" dotnet-gcdump \
		--version "$DOTNET_TOOLS_VERSION" >"$WORK/gcdump-install.log" 2>&1 </dev/null ||
		fail "gctypes: install dotnet-gcdump" "see $WORK/gcdump-install.log"
fi

# ---- the reader of triggerdump's output and of dotnet-gcdump's report ----
CHECK_PY=$WORK/check.py
cat >"$CHECK_PY" <<'PY'
import csv, json, re, sys

def die(msg):
    print(msg)
    sys.exit(1)

def heap(path, want_type, want_bytes, tol_pct):
    """heap-types json: complete, want_type first, its bytes near want_bytes."""
    j = json.loads(open(path).read())
    if not j['complete']:
        die('incomplete: ' + j['reason'])
    top = j['top'][0]
    if top['type'] != want_type:
        die('first type %s, not %s' % (top['type'], want_type))
    dev = abs(top['bytes'] - want_bytes) * 100 / want_bytes
    if dev > tol_pct:
        die('%s %d bytes, the app holds %d (%.2f %% off)' % (want_type, top['bytes'], want_bytes, dev))
    print('%s %d bytes in %d objects, app %d (%.2f %% off), GC pause %.1f ms'
          % (want_type, top['bytes'], top['count'], want_bytes, dev, j['gc']['pause_ms']))

def report(path):
    """dotnet-gcdump report: total bytes and objects per type (its size
    ranges, "(Bytes > 1M)", added up)."""
    total, counts = None, {}
    row = re.compile(r'^\s*([\d,]+)\s+([\d,]+)\s+(.*?)(?:\s+\(Bytes > [^)]*\))?\s+\[[^\]]*\]\s*$')
    for line in open(path):
        m = re.match(r'^\s*([\d,]+)\s+GC Heap bytes', line)
        if m:
            total = int(m.group(1).replace(',', ''))
        m = row.match(line)
        if m:
            name = m.group(3)
            counts[name] = counts.get(name, 0) + int(m.group(2).replace(',', ''))
    if total is None or not counts:
        die('no figures in the report ' + path)
    return total, counts

def versus(ours_path, report_path, tol_pct):
    """Our counts of the report's 10 most numerous types, and the totals."""
    j = json.loads(open(ours_path).read())
    ours = {t['type']: t['count'] for t in j['top']}
    total, counts = report(report_path)
    top10 = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    bad = []
    for name, n in top10:
        got = ours.get(name)
        if got is None or abs(got - n) * 100 > tol_pct * n:
            bad.append('%s %s vs %d' % (name, got, n))
    dev = abs(j['bytes'] - total) * 100 / total
    if dev > 2:
        bad.append('total %d bytes vs %d (%.2f %%)' % (j['bytes'], total, dev))
    if bad:
        die('differ from dotnet-gcdump: ' + '; '.join(bad[:6]))
    exact = sum(1 for name, n in top10 if ours[name] == n)
    print('top 10 by count: %d of 10 equal, the rest within %g %%; total %d vs %d bytes'
          % (exact, tol_pct, j['bytes'], total))

def csvfile(path, header, want_type):
    rows = list(csv.reader(open(path)))
    if not rows or ','.join(rows[0]) != header:
        die('header %r, not %r' % (rows[0] if rows else None, header))
    if len(rows) < 2:
        die('no rows')
    for r in rows[1:]:
        if len(r) != 3 or not r[1].isdigit() or not r[2].isdigit():
            die('bad row %r' % (r,))
    if rows[1][0] != want_type:
        die('first type %s, not %s' % (rows[1][0], want_type))
    print('%d rows' % (len(rows) - 1))

def alloc(path, want_type, min_share):
    j = json.loads(open(path).read())
    if not j['complete']:
        die('incomplete: ' + j['reason'])
    top = j['top'][0]
    if top['type'] != want_type or top['share'] < min_share:
        die('first type %s with %.1f %%' % (top['type'], top['share'] * 100))
    print('%s %.1f %% of %d bytes in %d samples (%s)'
          % (want_type, top['share'] * 100, j['bytes'], j['samples'], j['method']))

what = sys.argv[1]
if what == 'heap':
    heap(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
elif what == 'versus':
    versus(sys.argv[2], sys.argv[3], float(sys.argv[4]))
elif what == 'csv':
    csvfile(sys.argv[2], sys.argv[3], sys.argv[4])
elif what == 'alloc':
    alloc(sys.argv[2], sys.argv[3], float(sys.argv[4]))
PY

# py NAME CHECK ARGS...: a check of check.py, its line as the detail
py() {
	local name=$1 out
	shift
	if out=$(python3 "$CHECK_PY" "$@" 2>&1); then pass "$name" "$out"; else fail "$name" "$out"; fi
}

# spike_app VER: a SpikeApp holding SPIKE_MB MB, started; echoes its pid
spike_app() {
	local pid
	pid=$(start_target SpikeApp "$1" --baseline-mb 20 --spike-mb "$SPIKE_MB" --delay-seconds 1 \
		--spike-seconds 600 --period-seconds 1000 --spikes 1) || return 1
	wait_until 30 grep -q '^SPIKE start' "$(target_log "$pid")" || return 1
	echo "$pid"
}

# td OUT ERR ARGS...: triggerdump ARGS, stdout to OUT, stderr to ERR (with
# /usr/bin/time's maximum RSS appended); sets RC
td() {
	local out=$1 err=$2
	shift 2
	/usr/bin/time -f 'maxrss_kb=%M' -a -o "$err" "$TRIGGERDUMP" "$@" >"$out" 2>>"$err"
	RC=$? # time's status is the command's
}

for ver in "${VERSIONS[@]}"; do
	n="gctypes net$ver"
	d=$WORK/net$ver
	mkdir -p "$d"
	if ! pid=$(spike_app "$ver"); then
		fail "$n: SpikeApp" "did not start or reach its spike"
		continue
	fi
	# a first dotnet-gcdump: the runtime's EventSource code allocates on a
	# process's first sessions (reflection over its events), which would
	# differ between the two snapshots compared in 3.
	"$GCDUMP" collect -p "$pid" -o "$d/warm.gcdump" >"$d/gcdump-warm.log" 2>&1 </dev/null
	# 1. heap-types against what the app holds
	: >"$d/heap.err"
	td "$d/heap.json" "$d/heap.err" heap-types "$pid" --format json --top 64
	rss=$(sed -n 's/^maxrss_kb=//p' "$d/heap.err")
	took=$(sed -n 's/.*heap snapshot of pid [0-9]* in \([0-9.]*\) s.*/\1/p' "$d/heap.err")
	if ((RC == 0)); then
		py "$n: heap-types names the spike's type first" heap "$d/heap.json" System.Byte[] \
			$((SPIKE_MB * CHUNK_BYTES)) "$HEAP_TOLERANCE_PCT"
	else
		fail "$n: heap-types names the spike's type first" "exit $RC: $(head -c 300 "$d/heap.err")"
	fi
	if [[ -n $rss ]] && ((rss < RSS_LIMIT_KB)); then
		pass "$n: heap-types' maximum RSS and time" "${rss} kB, snapshot ${took:-?} s"
	else
		fail "$n: heap-types' maximum RSS and time" "${rss:-?} kB (limit $RSS_LIMIT_KB), snapshot ${took:-?} s"
	fi
	# 2. csv and text
	: >"$d/heap-csv.err"
	td "$d/heap.csv" "$d/heap-csv.err" heap-types -p "$pid" --format=csv --top 10
	if ((RC == 0)); then
		py "$n: heap-types --format csv" csv "$d/heap.csv" type,count,bytes System.Byte[]
	else
		fail "$n: heap-types --format csv" "exit $RC"
	fi
	: >"$d/heap-text.err"
	td "$d/heap.txt" "$d/heap-text.err" heap-types "$pid" --top 3
	if ((RC == 0)) && head -n 1 "$d/heap.txt" | grep -q ', complete$' &&
		sed -n 3p "$d/heap.txt" | grep -q ' System\.Byte\[\]$'; then
		pass "$n: heap-types --format text" "$(head -n 1 "$d/heap.txt")"
	else
		fail "$n: heap-types --format text" "exit $RC: $(head -n 3 "$d/heap.txt" | tr '\n' '|')"
	fi
	# 3. against dotnet-gcdump, just after a heap-types of its own
	: >"$d/vs.err"
	td "$d/vs.json" "$d/vs.err" heap-types "$pid" --format json --top 64
	if ((RC != 0)); then
		fail "$n: heap-types against dotnet-gcdump" "heap-types exit $RC: $(head -c 300 "$d/vs.err")"
	elif "$GCDUMP" collect -p "$pid" -o "$d/ref.gcdump" >"$d/gcdump.log" 2>&1 </dev/null &&
		"$GCDUMP" report "$d/ref.gcdump" >"$d/ref.report" 2>>"$d/gcdump.log"; then
		py "$n: heap-types against dotnet-gcdump" versus "$d/vs.json" "$d/ref.report" "$COUNT_TOLERANCE_PCT"
	else
		fail "$n: heap-types against dotnet-gcdump" "dotnet-gcdump failed, see $d/gcdump.log"
	fi
	stop_target "$pid" >/dev/null

	# 4. alloc-types
	if pid=$(start_target CounterTarget "$ver"); then
		: >"$d/alloc.err"
		td "$d/alloc.json" "$d/alloc.err" alloc-types "$pid" --duration 3 --format json
		if ((RC == 0)); then
			py "$n: alloc-types names the allocated type first" alloc "$d/alloc.json" System.Byte[] 0.8
		else
			fail "$n: alloc-types names the allocated type first" "exit $RC: $(head -c 300 "$d/alloc.err")"
		fi
		: >"$d/alloc-csv.err"
		td "$d/alloc.csv" "$d/alloc-csv.err" alloc-types "$pid" --duration 2 --format csv --top 5
		if ((RC == 0)); then
			py "$n: alloc-types --format csv" csv "$d/alloc.csv" type,samples,bytes System.Byte[]
		else
			fail "$n: alloc-types --format csv" "exit $RC"
		fi
		stop_target "$pid" >/dev/null
	else
		fail "$n: CounterTarget" "did not start"
	fi

	# 5. a target of another user
	if pid=$(TARGET_USER=$(test_user) spike_app "$ver"); then
		: >"$d/user.err"
		td "$d/user.json" "$d/user.err" heap-types "$pid" --format json
		if ((RC == 0)); then
			py "$n: heap-types of an unprivileged user's target" heap "$d/user.json" System.Byte[] \
				$((SPIKE_MB * CHUNK_BYTES)) "$HEAP_TOLERANCE_PCT"
		else
			fail "$n: heap-types of an unprivileged user's target" "exit $RC: $(head -c 300 "$d/user.err")"
		fi
		stop_target "$pid" >/dev/null
	else
		fail "$n: SpikeApp as $(test_user)" "did not start"
	fi
done

# ---- once: errors ----
n="gctypes"
bogus=4194303
while kill -0 "$bogus" 2>/dev/null; do bogus=$((bogus - 1)); done
# expect_error NAME RC PATTERN ARGS...: triggerdump ARGS exits RC, prints
# nothing on stdout and a message matching PATTERN (grep -E) on stderr.
expect_error() {
	local name=$1 want=$2 pattern=$3 rc
	shift 3
	"$TRIGGERDUMP" "$@" >"$WORK/err.out" 2>"$WORK/err.err"
	rc=$?
	if ((rc == want)) && grep -Eq -- "$pattern" "$WORK/err.err" && [[ ! -s $WORK/err.out ]]; then
		pass "$n: $name" "$(head -c 300 "$WORK/err.err")"
	else
		fail "$n: $name" "exit $rc: $(head -c 300 "$WORK/err.err")"
	fi
}
expect_error "a pid that is no process" 1 "no process with pid $bogus" heap-types "$bogus"
expect_error "a process that is not .NET" 1 "no \.NET diagnostic socket" alloc-types $$
expect_error "--top 0 is a usage error" 2 "--top takes" heap-types "$bogus" --top 0
expect_error "heap-types refuses --duration by name" 2 "heap-types: --duration is not an option" \
	heap-types "$bogus" --duration 3
for cmd in heap-types alloc-types; do
	"$TRIGGERDUMP" "$cmd" --help >"$WORK/help-$cmd.out" 2>&1
	RC=$?
	"$TRIGGERDUMP" help "$cmd" >"$WORK/help2-$cmd.out" 2>&1
	if ((RC == 0)) && grep -q "^Usage: triggerdump $cmd " "$WORK/help-$cmd.out" &&
		cmp -s "$WORK/help-$cmd.out" "$WORK/help2-$cmd.out" &&
		"$TRIGGERDUMP" --help | grep -q "^  triggerdump $cmd "; then
		pass "$n: $cmd --help, as 'help $cmd' and in the usage"
	else
		fail "$n: $cmd --help, as 'help $cmd' and in the usage" "exit $RC: $(head -n 2 "$WORK/help-$cmd.out" | tr '\n' ' ')"
	fi
done
# a heap of a million objects: a file-based app of the SDK (.NET 10+)
MANY=$WORK/many
mkdir -p "$MANY"
cp "$REPO/tests/targets/many.cs" "$MANY/many.cs"
if "$DOTNET" build "$MANY/many.cs" -o "$MANY/out" >"$MANY/build.log" 2>&1 </dev/null; then
	"$MANY/out/many" </dev/null >"$MANY/run.log" 2>&1 &
	many_pid=$!
	if wait_until 30 grep -q "^READY $many_pid$" "$MANY/run.log"; then
		: >"$MANY/heap.err"
		td "$MANY/heap.json" "$MANY/heap.err" heap-types "$many_pid" --format json --top 3
		rss=$(sed -n 's/^maxrss_kb=//p' "$MANY/heap.err")
		took=$(sed -n 's/.*heap snapshot of pid [0-9]* in \([0-9.]* s, GC pause [0-9.]* ms\).*/\1/p' "$MANY/heap.err")
		if ((RC == 0)) && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
t = j["top"][0]
sys.exit(not (j["complete"] and t["type"] == "Node" and t["count"] == 1000000 and t["bytes"] == 24000000))
' "$MANY/heap.json" && ((rss < RSS_LIMIT_KB)); then
			pass "$n: a heap of a million objects" "Node 1000000 objects 24000000 bytes; ${rss} kB max RSS; $took"
		else
			fail "$n: a heap of a million objects" "exit $RC, ${rss:-?} kB max RSS: $(head -c 300 "$MANY/heap.json")"
		fi
	else
		fail "$n: a heap of a million objects" "the app did not start: $(head -c 300 "$MANY/run.log")"
	fi
	kill "$many_pid" 2>/dev/null
	wait "$many_pid" 2>/dev/null
	many_pid=
else
	fail "$n: a heap of a million objects" "dotnet build many.cs failed, see $MANY/build.log"
fi

ver=${VERSIONS[${#VERSIONS[@]} - 1]}
if pid=$(spike_app "$ver"); then
	"$TRIGGERDUMP" heap-types "$pid" --timeout 0.001 >"$WORK/timeout.out" 2>"$WORK/timeout.err"
	RC=$?
	if ((RC == 1)) && grep -q -- '--timeout' "$WORK/timeout.err"; then
		pass "$n: --timeout too short (.NET $ver)" "$(grep -m 1 -e --timeout "$WORK/timeout.err")"
	else
		fail "$n: --timeout too short (.NET $ver)" "exit $RC: $(cat "$WORK/timeout.err")"
	fi
	# the runtime ends the abandoned session; a new one gets its snapshot
	if wait_until 20 "$TRIGGERDUMP" heap-types "$pid" --top 1 >"$WORK/after.out" 2>&1 &&
		grep -q 'System\.Byte\[\]$' "$WORK/after.out"; then
		pass "$n: a snapshot after the timeout (.NET $ver)"
	else
		fail "$n: a snapshot after the timeout (.NET $ver)" "$(head -c 300 "$WORK/after.out")"
	fi
	stop_target "$pid" >/dev/null
else
	fail "$n: SpikeApp (.NET $ver)" "did not start"
fi
exit 0
