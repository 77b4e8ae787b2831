#!/usr/bin/env bash
# tests/integration/cli.sh -- triggerdump (and the library under it) against
# real .NET 8, 9 and 10 processes (tests/targets/CounterTarget --heap-mb 64).
#
# tests/run runs it; alone:
#   REPO=. BUILD=build TRIGGERDUMP=build/c/triggerdump RESULTS=/tmp/r.txt \
#     bash tests/integration/cli.sh
# Needs the targets built (dotnet_build_targets), dotnet-counters and
# dotnet-dump (dotnet_tools_install), python3 (to read CSV and JSON).
#
# For each runtime (checks named "cli netN: ..."):
#  1. monitor --format csv --interval 1 for 6 s: the exact CSV header, ISO 8601
#     UTC times of this run, and every System.Runtime EventCounter of these
#     runtimes (RUNTIME_COUNTERS below) in at least 5 of the 6 intervals;
#     dotnet-counters sees as many counters.
#  2. gc-heap-size and working-set against `dotnet-counters collect
#     --counters EventCounters\System.Runtime`, run at the same time: each
#     reference sample paired with ours nearest in time (within 1 s); the
#     median difference of the pairs within MEDIAN_TOLERANCE_PCT, and at least
#     3 pairs identical (tolerance: see there).
#  3. --providers CollectdDotnet-Test (JSON): fixed-value 42.5, ticks 1000/s,
#     request-time mean 20 min 10 max 30 count 3, requests 50/interval;
#     --meters CollectdDotnet.Test (JSON): orders 50/interval, queue-length 7,
#     temperature 21.5, latency p50 60 p95 100 p99 100; every line is JSON.
#  4. ps lists the target with its runtime version and entry assembly.
#  5. record: tests/fixtures/capture.sh re-captures the fixtures into $BUILD;
#     stats reads each to its end; the same counters as the committed
#     fixture; tests/test_fixtures passes on the fresh capture.
#  6. dump --type mini (IPC) and --method exec: a 0600 non-empty ELF core
#     that dotnet-dump analyze opens; `<pid> 10` (under the heap) dumps and
#     exits 0; `<pid> 100000` keeps watching until SIGINT, then stops its
#     session and exits (status 1: no dump) within 2 s.
#  8. SIGINT and SIGTERM stop monitor within STOP_LIMIT_S; the target keeps
#     running and serves a new session.
#  3b. monitor -p PID --counters 'System.Runtime[gc-heap-size,cpu-usage]'
#     --format=csv --refresh-interval=1 -o FILE: those two counters alone, in
#     every interval, into FILE (nothing on stdout).
# Once: 7. errors (missing pid, a non-.NET pid, bad options: exit 2 with a
# message; stats on a truncated or corrupted fixture); monitor ends, status
# 1, when its target exits.
#  9. the conventions: --version (configure's PACKAGE_VERSION); each
#     command's --help, the same as `help CMD`; an option a command does not
#     take refused by name (exit 2); "--" ends the options; -n NAME finds a
#     target by its process name (an apphost behind a symlink of a name of
#     ours), several of one name are an error with their pids (exit 1);
#     --collectd-names shows, per runtime, exactly the type-type_instance
#     names of the csv files the plugin (real collectd) writes for the same
#     process (histograms' :count aside); dump -o FILE writes exactly FILE
#     (0600 ELF, alone), never over an existing file nor through a symlink,
#     not in a directory others may write; -o NEWDIR/ creates it 0711; the
#     threshold form refuses --providers without System.Runtime (exit 2),
#     takes it among others, writes -o FILE, and refuses an existing FILE
#     before it waits. About 90 s on 2 CPUs.
# shellcheck source-path=SCRIPTDIR
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

WORK=$BUILD/cli
read -r -a VERSIONS <<<"${CLI_VERSIONS:-8 9 10 11}" # e.g. CLI_VERSIONS=10
HEAP_MB=64             # CounterTarget --heap-mb: gc-heap-size >= 67.1 MB
MONITOR_S=6            # seconds of each monitor run: N intervals of 1 s
MEDIAN_TOLERANCE_PCT=3 # see the comment at the comparison
STOP_LIMIT_S=2         # SIGINT/SIGTERM to exit

# The EventCounters of System.Runtime (RuntimeEventSource) on .NET 8, 9 and
# 10: the same 27 on all three (9 and 10 added their new metrics to the
# System.Runtime Meter only); dotnet-counters' count is checked against it.
RUNTIME_COUNTERS=cpu-usage,working-set,gc-heap-size,gen-0-gc-count,gen-1-gc-count,gen-2-gc-count,threadpool-thread-count,monitor-lock-contention-count,threadpool-queue-length,threadpool-completed-items-count,alloc-rate,active-timer-count,gc-fragmentation,gc-committed,exception-count,time-in-gc,gen-0-size,gen-1-size,gen-2-size,loh-size,poh-size,assembly-count,il-bytes-jitted,methods-jitted-count,time-in-jit,gen-0-gc-budget,total-pause-time-by-gc

T_START=$(_now)
rm -rf "$WORK"
mkdir -p "$WORK"

# ---- background processes of this script ----
BG_PIDS=()
# still running as a child of this shell (not a later process with its pid)
our_child() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # after "comm)": state, ppid, ...
	[[ $(awk '{ print $2 }' <<<"$stat") == "$$" ]]
}
cleanup() {
	local p
	for p in "${BG_PIDS[@]}"; do
		our_child "$p" && kill -KILL "$p" 2>/dev/null
	done
	stop_all_targets
}
trap cleanup EXIT

spawn() { # OUT ERR CMD...: start CMD in the background; sets BG
	local out=$1 err=$2
	shift 2
	if [[ $out == "$err" ]]; then
		"$@" >"$out" 2>&1 &
	else
		"$@" >"$out" 2>"$err" &
	fi
	BG=$!
	BG_PIDS+=("$BG")
}

alive() { target_alive "$1"; } # running, not a zombie
gone() { ! target_alive "$1"; }

# await PID SECS: waits for our child PID to exit (SIGKILL after SECS);
# sets RC (124 when it had to be killed).
await() {
	local pid=$1 secs=$2
	if ! wait_until "$secs" gone "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		RC=124
		return 1
	fi
	wait "$pid" 2>/dev/null
	RC=$?
}

# stop_time PID SIGNAL: sends SIGNAL (none for "-"), waits (20 ms steps, up
# to 10 s) until PID has exited; sets STOP_S (seconds, 2 decimals) and RC.
stop_time() {
	local pid=$1 sig=$2 t0 t1
	t0=$(_now)
	[[ $sig == - ]] || kill "-$sig" "$pid"
	while alive "$pid"; do
		awk -v a="$t0" -v b="$(_now)" 'BEGIN { exit !(b - a > 10) }' && break
		sleep 0.02
	done
	t1=$(_now)
	STOP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	await "$pid" 5
}

le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# ---- the readers of triggerdump's output (python3: csv, json) ----
CHECK_PY=$WORK/check.py
cat >"$CHECK_PY" <<'PY'
import csv, datetime, json, math, re, statistics, sys, time

ISO = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')

def iso_s(t):
    return datetime.datetime.strptime(t, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()

errors = []
def err(msg):
    if len(errors) < 12:
        errors.append(msg)

def finish(detail):
    if errors:
        print('; '.join(errors))
        sys.exit(1)
    print(detail)

def check_time(t, t0, t1, where):
    if not ISO.match(t):
        err(f'{where}: time {t!r} is not ISO 8601 UTC (YYYY-MM-DDTHH:MM:SS.mmmZ)')
        return None
    s = iso_s(t)
    if not (t0 - 2 <= s <= t1 + 2):
        err(f'{where}: time {t} outside this run ({t0:.0f}..{t1:.0f})')
    return s

def monitor_csv(path):
    """monitor's CSV: its lines, and (line number, row) for each row of the
    six fields under the header (a wrong header or row is an error)."""
    with open(path, newline='') as f:
        lines = f.read().splitlines()
    if not lines or lines[0] != 'time,pid,provider,counter,value,unit':
        err(f'header is {lines[0] if lines else None!r}')
    rows = []
    for i, row in enumerate(csv.reader(lines[1:]), 2):
        if len(row) != 6:
            err(f'line {i}: {len(row)} fields')
            continue
        rows.append((i, row))
    return lines, rows

def runtime_csv(path, pid, t0, t1, n, expected):
    """System.Runtime in CSV: header, fields, times, every counter >= n-1 times."""
    t0, t1, n = float(t0), float(t1), int(n)
    expected = expected.split(',')
    lines, rows = monitor_csv(path)
    counts = {}
    for i, row in rows:
        t, p, prov, name, value, unit = row
        check_time(t, t0, t1, f'line {i}')
        if p != pid:
            err(f'line {i}: pid {p}')
        if prov != 'System.Runtime':
            err(f'line {i}: provider {prov}')
        try:
            if not math.isfinite(float(value)):
                err(f'line {i}: value {value}')
        except ValueError:
            err(f'line {i}: value {value!r}')
        counts[name] = counts.get(name, 0) + 1
    missing = [c for c in expected if c not in counts]
    rare = [f'{c} {counts[c]}x' for c in expected if 0 < counts.get(c, 0) < n - 1]
    extra = [c for c in counts if c not in expected]
    if missing:
        err(f'missing: {",".join(missing)}')
    if rare:
        err(f'in fewer than {n - 1} of {n} intervals: {", ".join(rare)}')
    if extra:
        err(f'not in the expected list: {",".join(extra)}')
    got = [counts[c] for c in expected if c in counts]
    finish(f'{len(counts)} counters, {min(got, default=0)}-{max(got, default=0)} '
           f'samples each in {n} s, {len(lines) - 1} rows')

def compare(ours_path, ref_path, tolerance_pct, ncounters):
    """gc-heap-size and working-set: ours (CSV) vs dotnet-counters (CSV)."""
    tolerance_pct, ncounters = float(tolerance_pct), int(ncounters)
    ours = {}
    with open(ours_path, newline='') as f:
        for row in csv.DictReader(f):
            ours.setdefault(row['counter'], []).append((iso_s(row['time']), float(row['value'])))
    ref, ref_names = {}, set()
    with open(ref_path, newline='') as f:
        for row in csv.DictReader(f):
            ref_names.add(row['Counter Name'])
            # "11/26/2026 10:40:08", local time, the second the event fell in
            s = time.mktime(time.strptime(row['Timestamp'], '%m/%d/%Y %H:%M:%S'))
            ref.setdefault(row['Counter Name'], []).append((s, float(row['Mean/Increment'])))
    if len(ref_names) != ncounters:
        err(f'dotnet-counters reported {len(ref_names)} System.Runtime counters, we {ncounters}')
    out = []
    for name, ref_name, unit in (('gc-heap-size', 'GC Heap Size (MB)', 'MB'),
                                 ('working-set', 'Working Set (MB)', 'MB')):
        a, b = ours.get(name, []), ref.get(ref_name, [])
        if not a or not b:
            err(f'{name}: {len(a)} samples of ours, {len(b)} of dotnet-counters')
            continue
        # Pair each dotnet-counters sample (somewhere in its second, local
        # time) with our sample nearest to the middle of that second, within
        # 1 s: both tools read the same runtime payloads, so paired values
        # are normally identical; comparing paired values, not medians over
        # windows, keeps a busy machine's shifted windows from mattering.
        pairs = []
        for s, v in b:
            t, w = min(a, key=lambda tw: abs(tw[0] - (s + 0.5)))
            if abs(t - (s + 0.5)) <= 1.0:
                pairs.append((w, v))
        if len(pairs) < 3:
            err(f'{name}: only {len(pairs)} samples of ours within 1 s of '
                f'dotnet-counters\' {len(b)}')
            continue
        ma = statistics.median(w for w, v in pairs)
        mb = statistics.median(v for w, v in pairs)
        pct = statistics.median(abs(w - v) / v * 100 for w, v in pairs)
        same = sum(1 for w, v in pairs if abs(w - v) <= 1e-6 * abs(v))
        if pct > tolerance_pct:
            err(f'{name}: paired samples differ by {pct:.2f}% (median) > '
                f'{tolerance_pct}%: ours {ma:.3f} vs dotnet-counters {mb:.3f} {unit}')
        if same < 3:
            err(f'{name}: only {same} seconds with the same value as dotnet-counters')
        out.append(f'{name} {ma:.2f} vs {mb:.2f} {unit} ({pct:.2f}% median '
                   f'difference of {len(pairs)} paired seconds, {same} identical)')
    finish('; '.join(out) + f'; dotnet-counters saw {len(ref_names)} counters')

def read_json(path, pid, t0, t1):
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except ValueError as e:
                err(f'line {i} is not JSON ({e}): {line[:80]!r}')
                continue
            keys = {'time': str, 'pid': int, 'provider': str, 'counter': str, 'unit': str}
            bad = [k for k, ty in keys.items() if not isinstance(o.get(k), ty)]
            if bad or 'value' not in o or not (o['value'] is None or isinstance(o['value'], (int, float))):
                err(f'line {i}: wrong or missing keys {bad or ["value"]}: {line[:80]!r}')
                continue
            check_time(o['time'], t0, t1, f'line {i}')
            if str(o['pid']) != pid:
                err(f'line {i}: pid {o["pid"]}')
            o['t'] = iso_s(o['time']) if ISO.match(o['time']) else 0
            rows.append(o)
    return rows

def values(rows):
    return ','.join(f'{o["value"]:g}' for o in rows)

def series(rows, provider, counter):
    return [o for o in rows if o['provider'] == provider and o['counter'] == counter]

def expect_each(rows, provider, counter, n_min, pred, what):
    s = series(rows, provider, counter)
    if len(s) < n_min:
        err(f'{counter}: {len(s)} samples, expected >= {n_min}')
    wrong = [o for o in s if not pred(o)]
    if wrong:
        o = wrong[0]
        err(f'{counter}: {len(wrong)} of {len(s)} not {what}, e.g. '
            + json.dumps({k: v for k, v in o.items() if k != 't'}))
    return s

def test_json(path, pid, t0, t1, n):
    """CollectdDotnet-Test EventCounters, as CounterTarget defines them."""
    t0, t1, n = float(t0), float(t1), int(n)
    rows = read_json(path, pid, t0, t1)
    P = 'CollectdDotnet-Test'
    expect_each(rows, P, 'fixed-value', n - 1,
                lambda o: o['value'] == 42.5 and o.get('min') == 42.5 and o.get('max') == 42.5,
                '42.5 (min = max = 42.5)')
    expect_each(rows, P, 'request-time', n - 1,
                lambda o: o['value'] == 20 and o.get('min') == 10 and o.get('max') == 30
                and o.get('count') == 3 and o['unit'] == 'ms',
                'mean 20 min 10 max 30 count 3 ms')
    # ticks: 1000 x the interval's real length; each interval is 1 s plus
    # timer jitter (10 %); over the run, increments / elapsed time of the
    # events (the first interval, from the session's start, left out) is
    # 1000/s within 2 %.
    ticks = expect_each(rows, P, 'ticks', n - 1, lambda o: 900 <= o['value'] <= 1100,
                        'within 1000 +- 10%')
    rate = None
    if len(ticks) >= 3:
        dt = ticks[-1]['t'] - ticks[0]['t']
        rate = sum(o['value'] for o in ticks[1:]) / dt if dt > 0 else 0
        if not 980 <= rate <= 1020:
            err(f'ticks: {rate:.1f}/s over {dt:.2f} s, expected 1000 +- 2%')
    # requests: +5 every 100 ms: 50 an interval, one step more or less when
    # an interval edge falls between two steps
    req = expect_each(rows, P, 'requests', n - 1, lambda o: o['value'] in (45, 50, 55),
                      '50 +- one step of 5')
    finish(f'fixed-value {values(series(rows, P, "fixed-value")[:1])}, '
           f'request-time 20/10/30 x3 in {len(series(rows, P, "request-time"))} intervals, '
           f'ticks {values(ticks)} ({rate and round(rate, 1)}/s), requests {values(req)}')

def meter_json(path, pid, t0, t1, n):
    """CollectdDotnet.Test Meter instruments (and System.Runtime beside them)."""
    t0, t1, n = float(t0), float(t1), int(n)
    rows = read_json(path, pid, t0, t1)
    M = 'CollectdDotnet.Test'
    # the Meter's first collection comes one interval after the start
    m = n - 2
    orders = expect_each(rows, M, 'orders[region=eu]', m,
                         lambda o: o['value'] in (45, 50, 55) and o['unit'] == '{order}',
                         '50 {order} +- one step of 5')
    expect_each(rows, M, 'queue-length', m, lambda o: o['value'] == 7 and o['unit'] == '{item}',
                '7 {item}')
    expect_each(rows, M, 'temperature', m, lambda o: o['value'] == 21.5 and o['unit'] == 'Cel',
                '21.5 Cel')
    for q, v in (('p50', 60), ('p95', 100), ('p99', 100)):
        expect_each(rows, M, f'latency[{q}]', m,
                    lambda o, v=v: o['value'] == v and o['unit'] == 'ms'
                    and 90 <= o.get('count', 0) <= 110 and o.get('sum') == o.get('count') * 55,
                    f'{v} ms (count ~100, sum = 55 x count)')
    if not series(rows, 'System.Runtime', 'gc-heap-size'):
        err('no System.Runtime gc-heap-size beside the meter')
    finish(f'orders {values(orders)}, queue-length 7, '
           f'temperature 21.5, latency p50 60 p95 100 p99 100 in '
           f'{len(series(rows, M, "latency[p50]"))} intervals; {len(rows)} JSON lines')

def only_counters(path, pid, t0, t1, n, names):
    """--counters: exactly the named counters, each in most intervals."""
    t0, t1, n, names = float(t0), float(t1), int(n), names.split(',')
    _, rows = monitor_csv(path)
    counts = {}
    for i, row in rows:
        check_time(row[0], t0, t1, f'line {i}')
        if row[1] != pid or row[2] != 'System.Runtime':
            err(f'line {i}: pid {row[1]}, provider {row[2]}')
        counts[row[3]] = counts.get(row[3], 0) + 1
    if sorted(counts) != sorted(names):
        err(f'counters {sorted(counts)}, expected {sorted(names)}')
    rare = [f'{c} {k}x' for c, k in counts.items() if k < n - 1]
    if rare:
        err(f'in fewer than {n - 1} intervals: {", ".join(rare)}')
    finish(', '.join(f'{c} {k}x' for c, k in sorted(counts.items())) + ', nothing else')

def collectd_names(json_path, csv_dir, pid):
    """--collectd-names: the names monitor shows are the files the plugin's
    csv writer made for the same process (type-type_instance), but for the
    histograms' :count series, which monitor does not print."""
    shown = set()
    with open(json_path) as f:
        for i, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except ValueError:
                err(f'line {i} is not JSON: {line[:80]!r}')
                continue
            if str(o.get('pid')) != pid:
                err(f'line {i}: pid {o.get("pid")}')
            t, ti = o.get('collectd_type'), o.get('collectd_type_instance')
            if not isinstance(t, str) or not isinstance(ti, str) or t == '-':
                err(f'line {i}: collectd_type {t!r}, collectd_type_instance {ti!r}')
                continue
            shown.add(f'{t}-{ti}')
    import os
    published = set()
    for name in os.listdir(csv_dir):
        m = re.match(r'^(.*)-\d{4}-\d\d-\d\d$', name)
        if m and not m.group(1).endswith(':count'):
            published.add(m.group(1))
    if not shown:
        err('monitor showed no names')
    if shown - published:
        err(f'shown, not published: {sorted(shown - published)[:6]}')
    if published - shown:
        err(f'published, not shown: {sorted(published - shown)[:6]}')
    ex = [x for x in sorted(shown) if 'gc-heap-size' in x or 'latency' in x or 'orders' in x]
    finish(f'{len(shown)} names, the same as the plugin\'s, e.g. {", ".join(ex[:5])}')

globals()[sys.argv[1].replace('-', '_')](*sys.argv[2:])
PY

py() { python3 "$CHECK_PY" "$@"; }

# check_py NAME CMD...: pass with the checker's summary, or fail with its reasons
check_py() {
	local name=$1 out
	shift
	if out=$(py "$@" 2>&1); then pass "$name" "$out"; else fail "$name" "$out"; fi
}

# ---- prerequisites ----
prereq_ok=1
for need in "$TRIGGERDUMP" "$DOTNET_COUNTERS" "$DOTNET_DUMP"; do
	[[ -x $need ]] || { fail "cli: prerequisites" "$need is missing"; prereq_ok=0; }
done
command -v python3 >/dev/null || { fail "cli: prerequisites" "python3 is missing"; prereq_ok=0; }
((prereq_ok)) || exit 1

# ---- the targets ----
declare -A PID VERSION
for v in "${VERSIONS[@]}"; do
	if PID[$v]=$(start_target CounterTarget "$v" --heap-mb "$HEAP_MB"); then
		VERSION[$v]=$(target_runtime_version CounterTarget "$v")
	else
		fail "cli net$v: start CounterTarget" "see $TARGET_RUN_DIR"
		PID[$v]=
	fi
done

# ---- 4. ps ----
ps_out=$WORK/ps.txt
if "$TRIGGERDUMP" ps >"$ps_out" 2>"$WORK/ps.err"; then
	for v in "${VERSIONS[@]}"; do
		[[ -n ${PID[$v]} ]] || continue
		line=$(awk -v p="${PID[$v]}" '$1 == p' "$ps_out")
		read -r _ rt entry _ <<<"$line"
		if [[ $rt == "${VERSION[$v]}" && $rt =~ ^$v\.0\.[0-9]+$ && $entry == CounterTarget ]]; then
			pass "cli net$v: ps lists the target" "pid ${PID[$v]}, runtime $rt, entry assembly $entry"
		else
			fail "cli net$v: ps lists the target" \
				"expected '${PID[$v]} ${VERSION[$v]} CounterTarget', got '${line:-no line}'"
		fi
	done
else
	fail "cli: ps" "exit status $?: $(head -3 "$WORK/ps.err")"
fi

# ---- per runtime ----
for v in "${VERSIONS[@]}"; do
	pid=${PID[$v]}
	[[ -n $pid ]] || continue
	d=$WORK/net$v
	mkdir -p "$d"
	T="cli net$v"

	# -- 1, 2, 3: System.Runtime (CSV) beside dotnet-counters, the test
	# EventSource (JSON), the test Meter (JSON), all at once: EventCounters
	# sessions run side by side, and dotnet-counters' EventCounters form
	# opens no Metrics session.
	# dotnet-counters first (it takes a second or more to start): ours start
	# once its session runs, and it runs 2 s longer, to cover the same seconds
	spawn "$d/ref.out" "$d/ref.err" counters_reference "$pid" $((MONITOR_S + 2)) "$d/ref.csv" 'EventCounters\System.Runtime'
	ref_bg=$BG
	wait_until 30 grep -qs 'Starting a counter session' "$d/ref.csv.log"
	t0=$(date +%s.%N)
	spawn "$d/runtime.csv" "$d/runtime.err" "$TRIGGERDUMP" monitor "$pid" --format csv --interval 1 --duration "$MONITOR_S"
	rt_bg=$BG
	spawn "$d/test.json" "$d/test.err" "$TRIGGERDUMP" monitor "$pid" --format json --interval 1 \
		--providers CollectdDotnet-Test --duration "$MONITOR_S"
	test_bg=$BG
	spawn "$d/meter.json" "$d/meter.err" "$TRIGGERDUMP" monitor "$pid" --format json --interval 1 \
		--meters CollectdDotnet.Test --duration "$MONITOR_S"
	meter_bg=$BG
	# dotnet-counters' spellings, --opt=value, -o FILE: only the two counters
	# named, into the file, nothing on stdout
	spawn "$d/counters.out" "$d/counters.err" "$TRIGGERDUMP" monitor --format=csv --refresh-interval=1 \
		--counters 'System.Runtime[gc-heap-size,cpu-usage]' --duration="$MONITOR_S" -o "$d/counters.csv" -p "$pid"
	counters_bg=$BG
	await "$rt_bg" $((MONITOR_S + 15)); rt_rc=$RC
	await "$counters_bg" 15; counters_rc=$RC
	await "$test_bg" 15; test_rc=$RC
	await "$meter_bg" 15; meter_rc=$RC
	await "$ref_bg" 60; ref_rc=$RC
	t1=$(date +%s.%N)

	if ((rt_rc == 0)); then
		check_py "$T: monitor csv: every System.Runtime counter in every interval" \
			runtime-csv "$d/runtime.csv" "$pid" "$t0" "$t1" "$MONITOR_S" "$RUNTIME_COUNTERS"
	else
		fail "$T: monitor csv" "exit status $rt_rc: $(head -3 "$d/runtime.err")"
	fi
	# Tolerance: both tools read the very same payloads (the runtime keeps
	# one counter timer per EventSource and interval for all sessions), so
	# over the same seconds the medians match (measured: 0-0.2 %); 3 %
	# leaves room for a sample more or less at the edges of the common
	# window (gc-heap-size moves by the gen0 allocations, 2-3 % of the 67 MB
	# live heap, working-set by less) and still catches MiB for MB (4.9 %).
	# Exact to 1e-6: at least 3 seconds where both printed the same value.
	if ((ref_rc == 0 && rt_rc == 0)); then
		check_py "$T: gc-heap-size and working-set agree with dotnet-counters (within $MEDIAN_TOLERANCE_PCT%)" \
			compare "$d/runtime.csv" "$d/ref.csv" "$MEDIAN_TOLERANCE_PCT" \
			"$(tr ',' '\n' <<<"$RUNTIME_COUNTERS" | wc -l)"
	else
		fail "$T: agreement with dotnet-counters" \
			"dotnet-counters exit status $ref_rc: $(tail -3 "$d/ref.err" "$d/ref.csv.log" 2>/dev/null | tr '\n' ' ')"
	fi
	if ((test_rc == 0)); then
		check_py "$T: monitor --providers CollectdDotnet-Test: the target's values" \
			test-json "$d/test.json" "$pid" "$t0" "$t1" "$MONITOR_S"
	else
		fail "$T: monitor --providers CollectdDotnet-Test" "exit status $test_rc: $(head -3 "$d/test.err")"
	fi
	if ((meter_rc == 0)); then
		check_py "$T: monitor --meters CollectdDotnet.Test: the target's instruments" \
			meter-json "$d/meter.json" "$pid" "$t0" "$t1" "$MONITOR_S"
	else
		fail "$T: monitor --meters CollectdDotnet.Test" "exit status $meter_rc: $(head -3 "$d/meter.err")"
	fi

	if ((counters_rc == 0)) && [[ ! -s $d/counters.out ]]; then
		check_py "$T: monitor -p PID --counters 'System.Runtime[gc-heap-size,cpu-usage]' --format=csv -o FILE: only those two, into FILE" \
			only-counters "$d/counters.csv" "$pid" "$t0" "$t1" "$MONITOR_S" gc-heap-size,cpu-usage
	else
		fail "$T: monitor --counters ... -o FILE" "exit status $counters_rc, $(wc -c <"$d/counters.out") bytes on stdout: $(head -3 "$d/counters.err")"
	fi

	# -- 8. SIGINT / SIGTERM stop monitor promptly; the target lives on
	for sig in INT TERM; do
		spawn "$d/stop-$sig.out" "$d/stop-$sig.err" "$TRIGGERDUMP" monitor "$pid" --interval 1
		mon=$BG
		if ! wait_until 15 grep -q 'gc-heap-size' "$d/stop-$sig.out"; then
			fail "$T: SIG$sig stops monitor" "no counters within 15 s: $(head -3 "$d/stop-$sig.err")"
			our_child "$mon" && kill -KILL "$mon" 2>/dev/null
			continue
		fi
		stop_time "$mon" "$sig"
		if ((RC == 0)) && le "$STOP_S" "$STOP_LIMIT_S" && grep -q 'stopped trace session' "$d/stop-$sig.err"; then
			pass "$T: SIG$sig stops monitor" "exited 0 in $STOP_S s, session stopped"
		else
			fail "$T: SIG$sig stops monitor" "exit status $RC after $STOP_S s (limit $STOP_LIMIT_S s): $(tr '\n' ' ' <"$d/stop-$sig.err")"
		fi
	done
	# still alive, and a new session (text format) gets its counters
	after_rc=0
	"$TRIGGERDUMP" monitor "$pid" --duration 2.5 >"$d/after.txt" 2>"$d/after.err" || after_rc=$?
	if alive "$pid" && ((after_rc == 0)) && grep -qE ' System\.Runtime +gc-heap-size +[0-9.]+ MB$' "$d/after.txt"; then
		pass "$T: the target runs on after the signals" "a new session: $(grep -c . "$d/after.txt") text rows in 2.5 s"
	else
		fail "$T: the target runs on after the signals" \
			"alive: $(alive "$pid" && echo yes || echo no), monitor exit $after_rc, $(grep -c gc-heap-size "$d/after.txt") gc-heap-size rows"
	fi

	# -- 6. dumps
	for how in "--type mini" "--type mini --method exec"; do
		dd=$d/dump-${how##* }
		mkdir -p "$dd"
		name="$T: dump $how"
		# shellcheck disable=SC2086
		if ! "$TRIGGERDUMP" dump "$pid" $how -o "$dd" >"$dd.out" 2>"$dd.err"; then
			fail "$name" "exit status $?: $(tr '\n' ' ' <"$dd.err")"
			continue
		fi
		f=$(grep '\.dmp$' "$dd.out" | tail -1)
		if [[ -z $f || ! -f $f ]]; then
			fail "$name" "no dump path on stdout: $(head -3 "$dd.out")"
			continue
		fi
		mode=$(stat -c %a "$f")
		size=$(stat -c %s "$f")
		magic=$(head -c 4 "$f" | od -An -c | tr -d ' ')
		if [[ $mode == 600 && $size -gt 0 && $magic == '177ELF' ]]; then
			pass "$name: a 0600 core file" "$(basename "$f"), $((size / 1024)) KiB"
		else
			fail "$name: a 0600 core file" "mode $mode, $size bytes, magic '$magic'"
		fi
		# stdout is for the path alone: scripts do f=$(triggerdump dump ...)
		if [[ $(grep -c . "$dd.out") == 1 ]]; then
			pass "$name: stdout holds only the dump's path"
		else
			fail "$name: stdout holds only the dump's path" \
				"$(grep -c . "$dd.out") lines, e.g. '$(head -1 "$dd.out")'"
		fi
		an_rc=0
		"$DOTNET_DUMP" analyze "$f" -c clrthreads -c exit >"$dd.analyze" 2>&1 </dev/null || an_rc=$?
		threads=$(awk '/^ThreadCount:/ { print $2 }' "$dd.analyze")
		if ((an_rc == 0)) && [[ ${threads:-0} -ge 1 ]] && ! grep -qiE 'error|fail|unable|not a valid' "$dd.analyze"; then
			pass "$name: dotnet-dump analyze opens it" "clrthreads: $threads managed threads"
			rm -f "$f" # ~7 MB each; failed ones stay for a look
		else
			fail "$name: dotnet-dump analyze opens it" "exit status $an_rc: $(grep -iE 'error|fail|unable|valid' "$dd.analyze" | head -3 | tr '\n' ' ')"
		fi
	done

	# -- 6. threshold mode: under the heap: a dump at once
	td=$d/threshold
	mkdir -p "$td"
	spawn "$td.out" "$td.err" "$TRIGGERDUMP" "$pid" 10 --interval 1 --type mini -o "$td"
	await "$BG" 30
	f=$(grep '\.dmp$' "$td.out" | tail -1)
	if ((RC == 0)) && [[ -n $f && -s $f && $(stat -c %a "$f") == 600 ]]; then
		pass "$T: threshold 10 MB (under the heap) writes a dump" "$(grep -m1 -o 'gc-heap-size [0-9.]* MB' "$td.err"); $(basename "$f"), $(($(stat -c %s "$f") / 1024)) KiB"
		rm -f "$f"
	else
		fail "$T: threshold 10 MB (under the heap) writes a dump" "exit status $RC, '$f': $(tail -3 "$td.err" | tr '\n' ' ')"
	fi
	# above the heap: keeps watching until SIGINT, then stops its session
	td=$d/threshold-high
	mkdir -p "$td"
	spawn "$td.out" "$td.err" "$TRIGGERDUMP" "$pid" 100000 --interval 1 --type mini -o "$td"
	thr=$BG
	if wait_until 15 bash -c "(( \$(grep -c 'gc-heap-size' '$td.err') >= 3 ))" && alive "$thr"; then
		stop_time "$thr" INT
		n=$(compgen -G "$td/*.dmp" | grep -c .)
		if ((RC == 1)) && le "$STOP_S" "$STOP_LIMIT_S" && ((n == 0)) &&
			grep -q 'stopped trace session' "$td.err" && grep -q 'no dump written' "$td.err"; then
			pass "$T: threshold 100000 MB waits, SIGINT ends it" \
				"$(grep -c gc-heap-size "$td.err") intervals watched; exit 1 in $STOP_S s; session stopped; no dump"
		else
			fail "$T: threshold 100000 MB waits, SIGINT ends it" \
				"exit status $RC in $STOP_S s, $n dumps: $(tail -3 "$td.err" | tr '\n' ' ')"
		fi
	else
		fail "$T: threshold 100000 MB waits, SIGINT ends it" \
			"not watching after 15 s (running: $(alive "$thr" && echo yes || echo no)): $(tail -3 "$td.err" | tr '\n' ' ')"
		our_child "$thr" && kill -KILL "$thr" 2>/dev/null
	fi
	if alive "$pid"; then
		pass "$T: the target survives the dumps"
	else
		fail "$T: the target survives the dumps" "pid $pid is gone; its log: $(tail -3 "$(target_log "$pid")" | tr '\n' ' ')"
	fi
done

# ---- a target that exits while monitored: monitor ends at once, saying so ----
v=${VERSIONS[-1]}
if short=$(start_target CounterTarget "$v" --seconds 4); then
	d=$WORK/exit
	spawn "$d.out" "$d.err" "$TRIGGERDUMP" monitor "$short" --interval 1
	mon=$BG
	if wait_until 15 grep -q gc-heap-size "$d.out" && wait_until 15 gone "$short"; then
		stop_time "$mon" -
		if ((RC == 1)) && le "$STOP_S" "$STOP_LIMIT_S" && grep -q "pid $short: the stream ended" "$d.err"; then
			pass "cli net$v: monitor ends when the target exits" "exit 1 $STOP_S s after the target: $(head -1 "$d.err")"
		else
			fail "cli net$v: monitor ends when the target exits" "exit status $RC $STOP_S s after the target: $(tr '\n' ' ' <"$d.err")"
		fi
	else
		fail "cli net$v: monitor ends when the target exits" "no counters, or the target did not exit: $(head -3 "$d.err")"
		our_child "$mon" && kill -KILL "$mon" 2>/dev/null
	fi
	stop_target "$short" >/dev/null 2>&1
else
	fail "cli net$v: monitor ends when the target exits" "cannot start CounterTarget --seconds 4"
fi

# ---- 5. fixtures: re-capture, read back, compare with the committed ones ----
# the three at once (capture.sh records one after the other)
fx=$WORK/fixtures
declare -A CAP
for v in "${VERSIONS[@]}"; do
	[[ -n ${PID[$v]} ]] || continue
	spawn "$WORK/capture-net$v.log" "$WORK/capture-net$v.log" \
		bash "$REPO/tests/fixtures/capture.sh" -d "$fx" "$v:${PID[$v]}"
	CAP[$v]=$BG
done
ncaptured=0
for v in "${VERSIONS[@]}"; do
	[[ -n ${CAP[$v]:-} ]] || continue
	T="cli net$v"
	f=$fx/counters-net$v.nettrace
	if await "${CAP[$v]}" 60 && ((RC == 0)) && [[ -s $f ]]; then
		ncaptured=$((ncaptured + 1))
		pass "$T: record captures a counters session" "$(stat -c %s "$f") bytes, $(grep -c "^sample" "${f%.nettrace}.summary") counters"
	else
		fail "$T: record captures a counters session" "exit status $RC: $(tail -5 "$WORK/capture-net$v.log" | tr '\n' ' ')"
		continue
	fi
	st_rc=0
	"$TRIGGERDUMP" stats "$f" >"$f.stats" 2>"$f.stats.err" || st_rc=$?
	total=$(awk '/^events [0-9]+,/ { gsub(",", ""); print $2, $4, $7, $NF }' "$f.stats")
	read -r events dropped samples bytes <<<"$total"
	if ((st_rc == 0)) && [[ ! -s $f.stats.err && ${bytes:-0} == "$(stat -c %s "$f")" ]] &&
		((${events:-0} > 50 && ${samples:-0} > 50 && ${dropped:-1} == 0)); then
		pass "$T: stats reads the fresh capture to its end" "$bytes bytes, $events events, $samples counter samples"
	else
		fail "$T: stats reads the fresh capture to its end" "exit $st_rc, '$total': $(head -3 "$f.stats.err")"
	fi
	committed=$REPO/tests/fixtures/counters-net$v.summary
	if [[ -f $committed ]]; then
		if diff <(awk '$1 == "sample" { print $2, $3 }' "$committed") \
			<(awk '$1 == "sample" { print $2, $3 }' "${f%.nettrace}.summary") >"$f.diff"; then
			pass "$T: a fresh capture decodes to the committed fixture's counters" \
				"$(grep -c '^sample' "$committed") counters"
		else
			fail "$T: a fresh capture decodes to the committed fixture's counters" "$(head -4 "$f.diff" | tr '\n' ' ')"
		fi
	else
		fail "$T: committed fixture" "$committed is missing"
	fi
done
unit=$(dirname "$TRIGGERDUMP")/tests/test_fixtures
if [[ ! -x $unit ]]; then
	fail "cli: tests/test_fixtures on the fresh capture" "$unit is not built (Makefile.am)"
elif ((ncaptured == ${#VERSIONS[@]})); then
	if "$unit" "$fx" >"$WORK/test_fixtures.log" 2>&1; then
		pass "cli: tests/test_fixtures on the fresh capture" "$(grep -c '^ok' "$WORK/test_fixtures.log") tests ok"
	else
		fail "cli: tests/test_fixtures on the fresh capture" "$(grep -E '^(not ok|# FAIL)' "$WORK/test_fixtures.log" | head -4 | tr '\n' ' ')"
	fi
fi

# ---- 9. the conventions of dotnet-counters users ----
# expect_error NAME STATUS PATTERN CMD...: CMD exits STATUS ("nonzero" for
# any but 0) and says PATTERN (grep -E) on stderr
expect_error() {
	local name=$1 want=$2 pat=$3 rc=0
	shift 3
	timeout 20 "$@" >"$WORK/err.out" 2>"$WORK/err.txt" </dev/null || rc=$?
	local msg
	msg=$(head -1 "$WORK/err.txt")
	if { [[ $want == nonzero ]] && ((rc != 0 && rc != 124)) || [[ $rc == "$want" ]]; } &&
		grep -qE -- "$pat" "$WORK/err.txt"; then
		pass "cli: $name" "exit $rc: $msg"
	else
		fail "cli: $name" "exit $rc (want $want), stderr: $(head -3 "$WORK/err.txt" | tr '\n' ' ')"
	fi
}
# expect_ok NAME PATTERN CMD...: CMD exits 0 and prints PATTERN (grep -E)
# on stdout
expect_ok() {
	local name=$1 pat=$2 rc=0
	shift 2
	timeout 20 "$@" >"$WORK/ok.out" 2>"$WORK/ok.err" </dev/null || rc=$?
	if ((rc == 0)) && grep -qE -- "$pat" "$WORK/ok.out"; then
		pass "cli: $name" "$(head -1 "$WORK/ok.out")"
	else
		fail "cli: $name" "exit $rc, stdout: $(head -2 "$WORK/ok.out" | tr '\n' ' ') stderr: $(head -2 "$WORK/ok.err" | tr '\n' ' ')"
	fi
}
conv=$WORK/conv
mkdir -p "$conv"
any=${PID[${VERSIONS[-1]}]:-$$}
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$(dirname "$TRIGGERDUMP")/dotnet_config.h")
expect_ok "--version prints the package version" "^triggerdump \(collectd-dotnet\) ${version//./\\.}$" "$TRIGGERDUMP" --version
for cmd in ps monitor record stats dump threshold; do
	if [[ $cmd == threshold ]]; then args=("$any" 10 --help); else args=("$cmd" --help); fi
	rc=0
	"$TRIGGERDUMP" "${args[@]}" >"$conv/help-$cmd.out" 2>&1 || rc=$?
	"$TRIGGERDUMP" help "$cmd" >"$conv/help2-$cmd.out" 2>&1
	if ((rc == 0)) && grep -q "^Usage: triggerdump ${cmd/threshold/<pid> <threshold-MB>}" "$conv/help-$cmd.out" &&
		cmp -s "$conv/help-$cmd.out" "$conv/help2-$cmd.out"; then
		pass "cli: ${args[*]}: the command's own help, as 'help $cmd'" "$(head -1 "$conv/help-$cmd.out"), $(wc -l <"$conv/help-$cmd.out") lines"
	else
		fail "cli: ${args[*]}: the command's own help" "exit $rc: $(head -2 "$conv/help-$cmd.out" | tr '\n' ' ')"
	fi
done
missing=
for o in --process-id --name --refresh-interval --counters --collectd-names --output --format --duration --meters --providers; do
	grep -q -- "$o" "$conv/help-monitor.out" || missing+=" $o"
done
[[ -z $missing ]] && pass "cli: monitor --help lists its options" ||
	fail "cli: monitor --help lists its options" "missing:$missing"
# an option the command does not use: refused by name, exit 2
expect_error "ps refuses --format" 2 "ps: --format is not an option of this command" "$TRIGGERDUMP" ps --format csv
expect_error "monitor refuses --type" 2 "monitor: --type is not an option" "$TRIGGERDUMP" monitor "$any" --type mini
expect_error "record refuses --format" 2 "record: --format is not an option" "$TRIGGERDUMP" record "$any" -o "$conv/x" --format csv
expect_error "record refuses --counters" 2 "record: --counters is not an option" "$TRIGGERDUMP" record "$any" -o "$conv/x" --counters System.Runtime
expect_error "dump refuses --interval" 2 "dump: --interval is not an option" "$TRIGGERDUMP" dump "$any" --interval=1
expect_error "stats refuses --duration" 2 "stats: --duration is not an option" "$TRIGGERDUMP" stats --duration 1 "$conv/x"
expect_error "threshold refuses --meters" 2 "threshold: --meters is not an option" "$TRIGGERDUMP" "$any" 10 --meters X
expect_error "threshold refuses --duration without alloc-types" 2 "threshold: --duration is for --actions alloc-types only" "$TRIGGERDUMP" "$any" 10 --duration 5
expect_error "threshold refuses --top without a types action" 2 "threshold: --top is for --actions heap-types or alloc-types only" "$TRIGGERDUMP" "$any" 10 --actions dump --top 5
expect_error "a flag given a value" 2 "--collectd-names takes no value" "$TRIGGERDUMP" monitor "$any" --collectd-names=1
expect_error "-p and a pid" 2 "give the process once" "$TRIGGERDUMP" monitor "$any" -p "$any"
expect_error "-p not a pid" 2 "-p takes a pid, not 'x'" "$TRIGGERDUMP" dump -p x
expect_error "--counters without its ']'" 2 "no '\]' after the counters of 'System.Runtime'" \
	"$TRIGGERDUMP" monitor "$any" --counters 'System.Runtime[gc-heap-size'
expect_error "help of an unknown command" 2 "help takes one of" "$TRIGGERDUMP" help frobnicate
[[ -e $conv/x ]] && fail "cli: refused commands created no file" "$conv/x exists"
# threshold mode reads System.Runtime's gc-heap-size: a list without it is refused
expect_error "threshold --providers without System.Runtime" 2 "--providers CollectdDotnet-Test lacks System.Runtime" \
	"$TRIGGERDUMP" "$any" 10 --providers CollectdDotnet-Test
# "--" ends the options: a file whose name starts with '-'
src=$REPO/tests/fixtures/counters-net${VERSIONS[0]}.nettrace
cp "$src" "$conv/-dash.nettrace"
(cd "$conv" && expect_ok "stats -- -dash.nettrace: -- ends the options" "^events [0-9]+," "$TRIGGERDUMP" stats -- -dash.nettrace)
(cd "$conv" && expect_error "stats -dash.nettrace without --: an unknown option" 2 "unknown option -d" "$TRIGGERDUMP" stats -dash.nettrace)
expect_ok "monitor --duration=2 --format=csv -- PID" "^time,pid,provider,counter,value,unit$" \
	"$TRIGGERDUMP" monitor --duration=2 --format=csv -- "$any"

# -n NAME: a target whose process name is ours alone (its apphost behind a
# symlink of that name: /proc/PID/comm), and the name of all of them
vn=${VERSIONS[-1]}
named_name=cdncli-$$
ln -sfn "$(target_path CounterTarget "$vn")" "$conv/$named_name"
"$conv/$named_name" --seconds 300 </dev/null >"$conv/named.log" 2>&1 &
named=$!
BG_PIDS+=("$named")
if wait_until 30 dotnet_diag_socket "$named" >/dev/null; then
	rc=0
	"$TRIGGERDUMP" monitor -n "$named_name" --format csv --duration 2.5 >"$conv/named.csv" 2>"$conv/named.err" || rc=$?
	rows=$(awk -F, -v p="$named" 'NR > 1 && $2 == p' "$conv/named.csv" | wc -l)
	others=$(awk -F, -v p="$named" 'NR > 1 && $2 != p' "$conv/named.csv" | wc -l)
	if ((rc == 0 && rows > 0 && others == 0)); then
		pass "cli: monitor -n $named_name finds pid $named by its process name" "$rows rows of pid $named"
	else
		fail "cli: monitor -n $named_name" "exit $rc, $rows rows of pid $named, $others of others: $(head -2 "$conv/named.err" | tr '\n' ' ')"
	fi
	expect_error "-n CounterTarget: several processes, their pids" 1 "[0-9]+ \.NET processes are named 'CounterTarget' \(pids [0-9]+(, [0-9]+)+(, \.\.\.)?\): give one with -p PID" \
		"$TRIGGERDUMP" monitor -n CounterTarget --duration 1
	our_child "$named" && kill -TERM "$named" 2>/dev/null
	await "$named" 10
else
	fail "cli: monitor -n NAME" "the target behind $conv/$named_name did not start: $(tail -3 "$conv/named.log" | tr '\n' ' ')"
fi
expect_error "-n of no process" 1 "no \.NET process is named 'nosuch-$$'" "$TRIGGERDUMP" dump -n "nosuch-$$"

# --collectd-names: the names of the plugin's csv files for the same process
if [[ -x ${PLUGIN_SO:-} ]] && command -v collectd >/dev/null; then
	D=$conv/collectd
	body="LoadPlugin dotnet
<Plugin dotnet>
  Interval 1"
	for v in "${VERSIONS[@]}"; do
		[[ -n ${PID[$v]} ]] && body+="
  <Process \"net$v\">
    Pid ${PID[$v]}
    Provider \"System.Runtime\"
    Provider \"CollectdDotnet-Test\"
    Meter \"CollectdDotnet.Test\"
  </Process>"
	done
	body+="
</Plugin>"
	if COLLECTD_PLUGINS="csv logfile" collectd_start "$D" "$body"; then
		declare -A NAMES_BG
		for v in "${VERSIONS[@]}"; do
			[[ -n ${PID[$v]} ]] || continue
			spawn "$conv/names-net$v.json" "$conv/names-net$v.err" "$TRIGGERDUMP" monitor "${PID[$v]}" \
				--collectd-names --format json --providers System.Runtime,CollectdDotnet-Test \
				--meters CollectdDotnet.Test --duration "$MONITOR_S"
			NAMES_BG[$v]=$BG
		done
		for v in "${!NAMES_BG[@]}"; do await "${NAMES_BG[$v]}" 20; done
		sleep 1
		collectd_stop 10 >/dev/null
		for v in "${!NAMES_BG[@]}"; do
			check_py "cli net$v: monitor --collectd-names shows the names the plugin publishes" \
				collectd-names "$conv/names-net$v.json" "$(compgen -G "$D/csv/*/dotnet-net$v" | head -1)" "${PID[$v]}"
		done
	else
		fail "cli: --collectd-names against the plugin" "collectd did not start: $(tail -3 "$D/collectd.log" | tr '\n' ' ')"
	fi
else
	skip "cli: --collectd-names against the plugin" "no PLUGIN_SO or collectd"
fi

# dump -o FILE: exactly that file, under dump.c's rules
dd=$conv/dumps
mkdir -p "$dd"
chmod 0755 "$dd"
f=$dd/core.dmp
rc=0
out=$("$TRIGGERDUMP" dump -p "$any" --type mini -o "$f" 2>"$conv/dump-file.err") || rc=$?
if ((rc == 0)) && [[ $out == "$f" && -f $f && ! -L $f && $(stat -c %a "$f") == 600 && $(head -c 4 "$f" | od -An -c | tr -d ' ') == '177ELF' ]] &&
	[[ $(find "$dd" -mindepth 1 | wc -l) == 1 ]]; then
	pass "cli: dump -o FILE writes exactly FILE" "$out, 0600 ELF, $(($(stat -c %s "$f") / 1024)) KiB, nothing else in the directory"
else
	fail "cli: dump -o FILE writes exactly FILE" "exit $rc, stdout '$out', in $dd: $(ls -A "$dd" | tr '\n' ' ') $(tail -2 "$conv/dump-file.err" | tr '\n' ' ')"
fi
before=$(stat -c '%i %s %Y' "$f" 2>/dev/null)
expect_error "dump -o FILE never replaces FILE" 1 "$f exists already: refusing to overwrite it" \
	"$TRIGGERDUMP" dump "$any" --type mini -o "$f"
[[ $(stat -c '%i %s %Y' "$f" 2>/dev/null) == "$before" ]] || fail "cli: dump -o FILE left FILE alone" "was '$before', now '$(stat -c '%i %s %Y' "$f")'"
printf 'precious\n' >"$conv/victim"
ln -sfn "$conv/victim" "$dd/link.dmp"
expect_error "dump -o LINK: never through a symlink" 1 "$dd/link.dmp exists already" \
	"$TRIGGERDUMP" dump "$any" --type mini -o "$dd/link.dmp"
[[ -L $dd/link.dmp && $(cat "$conv/victim") == precious ]] || fail "cli: dump -o LINK left the link and its target alone" "$(ls -l "$dd/link.dmp") $(head -c 20 "$conv/victim" | od -c | head -1)"
mkdir -p "$conv/open"
chmod 0777 "$conv/open"
expect_error "dump -o FILE in a directory others may write: refused" 1 "$conv/open is writable by others" \
	"$TRIGGERDUMP" dump "$any" --type mini -o "$conv/open/core.dmp"
[[ -z $(ls -A "$conv/open") ]] || fail "cli: nothing written into the open directory" "$(ls -A "$conv/open")"
rc=0
out=$("$TRIGGERDUMP" dump "$any" --type mini -o "$conv/newdir/" 2>"$conv/dump-dir.err") || rc=$?
if ((rc == 0)) && [[ $out == "$conv/newdir/CounterTarget-$any-"*.dmp && -f $out && $(stat -c %a "$conv/newdir") == 711 ]]; then
	pass "cli: dump -o NEWDIR/ creates the directory, the generated name inside" "${out#"$conv/"}"
else
	fail "cli: dump -o NEWDIR/" "exit $rc, '$out': $(tail -2 "$conv/dump-dir.err" | tr '\n' ' ')"
fi
# the threshold form: System.Runtime among others, -o FILE
f=$dd/threshold.dmp
rc=0
out=$(timeout 30 "$TRIGGERDUMP" "$any" 10 --providers CollectdDotnet-Test,System.Runtime --interval 1 --type mini -o "$f" 2>"$conv/thr.err") || rc=$?
if ((rc == 0)) && [[ $out == "$f" && -f $f && $(stat -c %a "$f") == 600 ]]; then
	pass "cli: threshold --providers CollectdDotnet-Test,System.Runtime -o FILE writes FILE" "$(grep -m1 -o 'gc-heap-size [0-9.]* MB' "$conv/thr.err")"
else
	fail "cli: threshold --providers ...,System.Runtime -o FILE" "exit $rc, '$out': $(tail -2 "$conv/thr.err" | tr '\n' ' ')"
fi
t0=$(_now)
expect_error "threshold -o FILE that exists: said before waiting" 1 "$f exists already: refusing to overwrite it" \
	"$TRIGGERDUMP" "$any" 100000 -o "$f"
le "$(awk -v a="$t0" -v b="$(_now)" 'BEGIN { print b - a }')" 5 || fail "cli: threshold -o FILE that exists" "took more than 5 s"
rm -f "$dd"/*.dmp "$conv/newdir"/*.dmp

# ---- 7. errors ----
nopid=$(($(cat /proc/sys/kernel/pid_max) - 1))
while [[ -e /proc/$nopid ]]; do nopid=$((nopid - 1)); done
any=${PID[${VERSIONS[0]}]:-$$}
expect_error "monitor of a missing pid" 1 "no process with pid $nopid" "$TRIGGERDUMP" monitor "$nopid"
expect_error "dump of a missing pid" 1 "no process with pid $nopid" "$TRIGGERDUMP" dump "$nopid"
expect_error "threshold on a missing pid" 1 "no process with pid $nopid" "$TRIGGERDUMP" "$nopid" 100
expect_error "monitor of a non-.NET pid" 1 "pid $$ has no \.NET diagnostic socket: it is not a \.NET process" \
	"$TRIGGERDUMP" monitor "$$"
expect_error "dump of a non-.NET pid" 1 "pid $$ has no \.NET diagnostic socket" "$TRIGGERDUMP" dump "$$"
expect_error "bad option: no command" 2 "Usage" "$TRIGGERDUMP"
expect_error "bad option: unknown command" 2 "unknown command 'frobnicate'" "$TRIGGERDUMP" frobnicate
expect_error "bad option: monitor without a pid" 2 "monitor needs a pid" "$TRIGGERDUMP" monitor
expect_error "bad option: unknown option" 2 "unknown option --bogus" "$TRIGGERDUMP" monitor "$any" --bogus 1
expect_error "bad option: --format xml" 2 "--format is text, csv or json, not 'xml'" "$TRIGGERDUMP" monitor "$any" --format xml
expect_error "bad option: --interval 0" 2 "--interval takes seconds" "$TRIGGERDUMP" monitor "$any" --interval 0
expect_error "bad option: --duration without a value" 2 "--duration needs a value" "$TRIGGERDUMP" monitor "$any" --duration
expect_error "bad option: an extra argument" 2 "unexpected argument 'extra'" "$TRIGGERDUMP" monitor "$any" extra
expect_error "bad option: record without -o" 2 "record needs -o FILE" "$TRIGGERDUMP" record "$any"
expect_error "bad option: --type huge" 2 "--type is mini, heap, triage or full" "$TRIGGERDUMP" dump "$any" --type huge
expect_error "bad option: --method magic" 2 "--method is ipc or exec" "$TRIGGERDUMP" dump "$any" --method magic
expect_error "bad option: threshold not a number" 2 "threshold must be a size in MB" "$TRIGGERDUMP" "$any" lots
expect_error "bad option: stats without a file" 2 "stats takes one nettrace file" "$TRIGGERDUMP" stats
expect_error "stats of a missing file" 1 "cannot open $WORK/none.nettrace" "$TRIGGERDUMP" stats "$WORK/none.nettrace"
src=$REPO/tests/fixtures/counters-net${VERSIONS[0]}.nettrace
if [[ -s $src ]]; then
	len=$(stat -c %s "$src")
	head -c $((len - 100)) "$src" >"$WORK/truncated.nettrace"
	expect_error "stats of a truncated fixture (100 bytes short)" 1 "truncated stream at byte" \
		"$TRIGGERDUMP" stats "$WORK/truncated.nettrace"
	head -c $((len / 2)) "$src" >"$WORK/half.nettrace"
	expect_error "stats of a truncated fixture (half)" 1 "truncated stream at byte" \
		"$TRIGGERDUMP" stats "$WORK/half.nettrace"
	# the "Nettrace" magic spoiled
	{ printf 'Netrace!'; tail -c +9 "$src"; } >"$WORK/corrupt.nettrace"
	expect_error "stats of a corrupted fixture" 1 "corrupt.nettrace: .* at byte 0" \
		"$TRIGGERDUMP" stats "$WORK/corrupt.nettrace"
else
	fail "cli: stats of a truncated fixture" "$src is missing"
fi

for v in "${VERSIONS[@]}"; do
	[[ -n ${PID[$v]} ]] && ! alive "${PID[$v]}" &&
		fail "cli net$v: target alive at the end" "pid ${PID[$v]} exited: $(tail -3 "$(target_log "${PID[$v]}")" | tr '\n' ' ')"
done
printf 'cli.sh took %s s\n' "$(awk -v a="$T_START" -v b="$(_now)" 'BEGIN { printf "%.0f", b - a }')"
