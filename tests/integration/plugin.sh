#!/usr/bin/env bash
# tests/integration/plugin.sh -- the dotnet plugin inside real collectd
# (Debian's collectd-core, csv + logfile plugins, collectd Interval 1 and
# plugin Interval 1) against real .NET 8 and 10 runtimes (issue 3).
#
#   1. values    every System.Runtime counter of a .NET 10 and a .NET 8
#                CounterTarget, with its type; sane values (gc-heap-size bytes,
#                cpu-usage 0..100, working-set bytes); every DERIVE monotonic;
#                rates from consecutive csv rows: ticks 1000/s, requests
#                50/s, orders 50/s, latency count 100/s
#   2. app       the target's EventSource "CollectdDotnet-Test" and Meter
#                "CollectdDotnet.Test" values, exact, under naming.c's names
#   3. web       WebTarget under a bounded curl load: Microsoft.AspNetCore.Hosting
#                requests-per-second / total-requests and the meter's
#                http.server.request.duration count grow by exactly the
#                requests sent
#   4. restart   SIGKILL + the same command line again: values resume under
#                the same plugin instance (time measured), the log says so
#   5. several   two <Process> blocks + AutoDiscover for a third; SIGSTOP one
#                for 5 s: the others keep writing every interval (rows
#                counted), SIGCONT: it resumes
#   6. stop      collectd exits within 2 s with live sessions (and with a
#                SIGSTOPped one), the log shows the sessions stopped
#   9. shared    plugin Interval 3 and dotnet-counters at a 1 s refresh on
#                the same target: the runtime sends every session a sample a
#                second, the plugin still dispatches one value per counter
#                and Interval (rows >= 2.1 s apart), rates stay right,
#                nothing logged
#   7. config    bad configurations are refused with an error naming the
#                option; a block matching nothing is a warning
#   8. valgrind  collectd + plugin under valgrind with live targets (one
#                killed midway): no error, no definite leak
#
# Run by tests/run; alone:
#   REPO=... BUILD=... PLUGIN_SO=... TRIGGERDUMP=... RESULTS=... bash tests/integration/plugin.sh
# PLUGIN_PARTS selects parts (default: all): values web lifecycle shared config valgrind
# Each collectd run writes under $BUILD/it/plugin/<run>/ (collectd.conf,
# collectd.log, csv/); the targets' logs are in $BUILD/it/plugin/targets/.
set -u
# shellcheck disable=SC2015 # "A && pass || fail": pass always succeeds
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

IT=$BUILD/it/plugin
rm -rf "$IT"
mkdir -p "$IT"
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T_BEGIN=$(_now)
# Every CounterTarget gets "--seconds $MARK": command lines no other test
# shares (the CommandLine rules match it), and each target ends by itself
# after 15 minutes should this script die without cleaning up.
MARK=900.$$
STOPPED_PIDS=()

cleanup() {
	local p
	[[ -n $COLLECTD_PID ]] && stop_collectd 10
	for p in "${STOPPED_PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; done
	stop_all_targets
}
trap cleanup EXIT

# ---------------------------------------------------------------- helpers

part() { [[ " ${PLUGIN_PARTS:-values web lifecycle shared config valgrind} " == *" $1 "* ]]; }

log() { printf '   %s\n' "$*"; }

elapsed() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.2f", b - a }'; }

# csv DIR INSTANCE TYPE-TYPEINSTANCE: the rows of exactly that value, every
# day's file joined (csv_file)
csv() { csv_file "$@"; }

# series CHECK DIR INSTANCE NAME: sets F to the csv file of the value, or
# records CHECK as failed
series() {
	F=$(csv "$2" "$3" "$4") && return 0
	fail "$1" "no csv file $3/$4-DATE"
	return 1
}

# nrows DIR INSTANCE NAME [AFTER]: data rows (with a time > AFTER)
nrows() {
	local f
	f=$(csv "$1" "$2" "$3") || { echo 0; return; }
	awk -F, -v t="${4:-0}" 'NR > 1 && $1 > t { n++ } END { print n + 0 }' "$f"
}

# has_rows MIN DIR INSTANCE NAME [AFTER]: for wait_until
has_rows() { (($(nrows "$2" "$3" "$4" "${5:-0}") >= $1)); }

# last_value DIR INSTANCE NAME
last_value() {
	local f
	f=$(csv "$1" "$2" "$3") || return 1
	awk -F, 'NR > 1 { v = $2 } END { if (NR < 2) exit 1; print v }' "$f"
}

# first_time_after FILE T: time of the first row after T ("" if none)
first_time_after() {
	awk -F, -v t="$2" 'NR > 1 && $1 > t { print $1; exit }' "$1"
}

# grid_offset FILE SINCE: over the rows stamped after SINCE, the largest
# distance (s) of a row's time from a whole second ("-" when none). The
# runtime stamps a sample when its counters' timer fires, one interval
# after another from the moment the session was enabled.
grid_offset() {
	awk -F, -v t="$2" 'NR > 1 && $1 > t { f = $1 - int($1); d = f < 1 - f ? f : 1 - f; if (d > m) m = d; n++ }
		END { if (n) printf "%.3f\n", m; else print "-" }' "$1"
}

# names_of DIR INSTANCE: the values (TYPE-TYPEINSTANCE) an instance wrote, sorted
names_of() {
	local f
	for f in "$1"/csv/*/"dotnet-$2"/*; do
		[[ -f $f ]] || continue
		f=${f##*/}
		printf '%s\n' "${f%-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]}"
	done | sort -u
}

# in_range NAME FILE MIN MAX: every value within [MIN, MAX]
in_range() {
	local name=$1 f=$2 lo=$3 hi=$4 out
	if out=$(awk -F, -v lo="$lo" -v hi="$hi" '
		NR > 1 { n++; if (n == 1 || $2 < mn) mn = $2; if (n == 1 || $2 > mx) mx = $2
		         if (!($2 >= lo && $2 <= hi)) bad++ }
		END { printf "%d rows, %g..%g", n, mn, mx; exit !(n > 0 && bad == 0) }' "$f"); then
		pass "$name" "$out, expected $lo..$hi"
	else
		fail "$name" "$out, expected $lo..$hi (${f##*/})"
	fi
}

# all_equal NAME FILE VALUE: every row has exactly VALUE
all_equal() {
	local name=$1 f=$2 want=$3 out
	if out=$(awk -F, -v w="$want" '
		NR > 1 { n++; if ($2 + 0 != w + 0) { bad++; if (!seen) { seen = 1; b = $2 } } }
		END { if (bad) printf "%d of %d rows differ, e.g. %s", bad, n, b; else printf "%d rows", n
		      exit !(n > 0 && bad == 0) }' "$f"); then
		pass "$name" "= $want in all $out"
	else
		fail "$name" "want $want: $out"
	fi
}

# monotonic FILE: prints the first decrease and fails if there is one
monotonic() {
	awk -F, 'NR > 2 && $2 < prev { printf "%s < %s at %s", $2, prev, $1; bad = 1; exit }
	         NR > 1 { prev = $2 } END { exit bad }' "$1"
}

# rate NAME FILE EXPECTED PAIR_TOL MEAN_TOL: (v[i]-v[i-1]) / (t[i]-t[i-1])
# over every pair of consecutive rows within EXPECTED +- PAIR_TOL (fraction),
# (v[n]-v[1]) / (t[n]-t[1]) within EXPECTED +- MEAN_TOL.
rate() {
	local name=$1 f=$2 want=$3 ptol=$4 mtol=$5 out
	if out=$(awk -F, -v w="$want" -v pt="$ptol" -v mt="$mtol" '
		NR > 1 { n++; t[n] = $1; v[n] = $2 }
		END {
			if (n < 4) { printf "only %d rows", n; exit 1 }
			for (i = 2; i <= n; i++) {
				r = (v[i] - v[i-1]) / (t[i] - t[i-1])
				if (i == 2 || r < lo) lo = r
				if (i == 2 || r > hi) hi = r
				if (r < w * (1 - pt) || r > w * (1 + pt)) bad++
			}
			m = (v[n] - v[1]) / (t[n] - t[1])
			printf "mean %.2f/s over %.1f s, %d pairs %.1f..%.1f/s; expected %g/s +-%g%% (pairs +-%g%%)",
				m, t[n] - t[1], n - 1, lo, hi, w, mt * 100, pt * 100
			exit !(bad == 0 && m >= w * (1 - mt) && m <= w * (1 + mt))
		}' "$f"); then
		pass "$name" "$out"
	else
		fail "$name" "$out"
	fi
}

# stop_collectd [TIMEOUT]: collectd_stop in this shell, not in a $(...)
# (there it could not wait for collectd, COLLECTD_EXIT and COLLECTD_PID would
# be lost); sets STOP_SECS
# thread_of PID COMM: the id of PID's thread named COMM
thread_of() {
	local t
	for t in /proc/"$1"/task/*; do
		[[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] && { printf '%s\n' "${t##*/}"; return 0; }
	done
	return 1
}

stop_collectd() {
	collectd_stop "${1:-10}" >"$IT/.stop-secs"
	STOP_SECS=$(<"$IT/.stop-secs")
}

# log_has DIR PATTERN (grep -E)
log_has() { grep -qE -- "$2" "$1/collectd.log"; }

# The 27 System.Runtime EventCounters (RuntimeEventSource) as TYPE-NAME, by
# the rules of plugin/naming.h: MB -> bytes, B -> bytes, % -> percent,
# increment counters -> derive / total_bytes (B) / total_time_in_ms (ms).
# .NET 8, 10 and 11 publish the same set (the .NET 9+ runtime metrics are
# the separate "System.Runtime" Meter, not asked for here).
RUNTIME_COUNTERS_NET8=(
	percent-cpu-usage bytes-working-set bytes-gc-heap-size
	derive-gen-0-gc-count derive-gen-1-gc-count derive-gen-2-gc-count
	gauge-threadpool-thread-count derive-monitor-lock-contention-count
	gauge-threadpool-queue-length derive-threadpool-completed-items-count
	total_bytes-alloc-rate gauge-active-timer-count percent-gc-fragmentation
	bytes-gc-committed derive-exception-count percent-time-in-gc
	total_time_in_ms-total-pause-time-by-gc bytes-gen-0-gc-budget
	bytes-gen-0-size bytes-gen-1-size bytes-gen-2-size bytes-loh-size
	bytes-poh-size gauge-assembly-count bytes-il-bytes-jitted
	gauge-methods-jitted-count total_time_in_ms-time-in-jit
)
RUNTIME_COUNTERS_NET10=("${RUNTIME_COUNTERS_NET8[@]}")
RUNTIME_COUNTERS_NET11=("${RUNTIME_COUNTERS_NET8[@]}")

# CounterTarget's own values (tests/targets/CounterTarget/Program.cs) under
# naming.h's names: "<provider>:<name>", meters with ":<tag>" / ":p50" / ":count".
APP_EXACT=(
	"gauge-CollectdDotnet-Test:fixed-value=42.5"
	"gauge-CollectdDotnet-Test:request-time=20"
	"gauge-CollectdDotnet.Test:queue-length=7"
	"gauge-CollectdDotnet.Test:temperature=21.5"
	"gauge-CollectdDotnet.Test:latency:p50=60"
	"gauge-CollectdDotnet.Test:latency:p95=100"
	"gauge-CollectdDotnet.Test:latency:p99=100"
)
# NAME=RATE/s PAIR_TOL MEAN_TOL. ticks is read from a Stopwatch when the
# counter is polled: exact but for the poll's jitter. requests, orders and
# latency move in steps of 100 ms: an interval holds 9..11 steps (+-10 %)
# plus the jitter of the sample times; over the whole run +-3 %.
APP_RATES=(
	"derive-CollectdDotnet-Test:ticks 1000 0.03 0.01"
	"derive-CollectdDotnet-Test:requests 50 0.15 0.03"
	"derive-CollectdDotnet.Test:orders:region=eu 50 0.15 0.03"
	"derive-CollectdDotnet.Test:latency:count 100 0.15 0.03"
)

COUNTER_PROVIDERS='    Provider "System.Runtime"
    Provider "CollectdDotnet-Test"
    Meter "CollectdDotnet.Test"'

# ======================================================= 1, 2, 6: values
run_values() {
	echo "== plugin: values of .NET 10, 8 and 11 (checks 1, 2, 6)"
	HEAP_MB=20
	p10=$(start_target CounterTarget 10 --seconds "$MARK" --heap-mb $HEAP_MB) || { fail "values: start CounterTarget 10" "see above"; return 1; }
	p8=$(start_target CounterTarget 8 --seconds "$MARK" --heap-mb $HEAP_MB) || { fail "values: start CounterTarget 8" "see above"; return 1; }
	p11=$(start_target CounterTarget 11 --seconds "$MARK" --heap-mb $HEAP_MB) || { fail "values: start CounterTarget 11" "see above"; return 1; }
	D=$IT/values
	if collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"net10\">
    Pid $p10
$COUNTER_PROVIDERS
  </Process>
  <Process \"net8\">
    Pid $p8
$COUNTER_PROVIDERS
  </Process>
  <Process \"net11\">
    Pid $p11
$COUNTER_PROVIDERS
  </Process>
</Plugin>"; then
		pass "values: collectd starts with the plugin"
		# 10 rows of ticks: >= 9 s of values of every counter
		for inst in net10 net8 net11; do
			wait_until 30 has_rows 10 "$D" $inst derive-CollectdDotnet-Test:ticks ||
				fail "values $inst: 10 rows of ticks within 30 s" "$(nrows "$D" $inst derive-CollectdDotnet-Test:ticks) rows"
		done
		# every System.Runtime counter, read after one more interval so that
		# each has >= 10 rows too
		t=$(_now)
		for inst in net10 net8 net11; do wait_until 5 has_rows 1 "$D" $inst percent-cpu-usage "$t"; done

		for inst in net10 net8 net11; do
			case $inst in
			net8) want=("${RUNTIME_COUNTERS_NET8[@]}") ;;
			net10) want=("${RUNTIME_COUNTERS_NET10[@]}") ;;
			net11) want=("${RUNTIME_COUNTERS_NET11[@]}") ;;
			esac
			ver=$(target_runtime_version CounterTarget "${inst#net}")
			got=$(names_of "$D" $inst | grep -v ':')
			missing=$(comm -23 <(printf '%s\n' "${want[@]}" | sort) <(printf '%s\n' "$got"))
			extra=$(comm -13 <(printf '%s\n' "${want[@]}" | sort) <(printf '%s\n' "$got"))
			if [[ -z $missing && -z $extra ]]; then
				pass "values $inst: all ${#want[@]} System.Runtime counters of .NET $ver, with their types"
			else
				fail "values $inst: System.Runtime counters of .NET $ver" \
					"missing: [$(tr '\n' ' ' <<<"$missing")] unexpected: [$(tr '\n' ' ' <<<"$extra")]"
			fi
			few=
			for n in "${want[@]}"; do
				r=$(nrows "$D" $inst "$n")
				((r >= 8)) || few+=" $n($r)"
			done
			if [[ -z $few ]]; then pass "values $inst: every System.Runtime counter has >= 8 rows"; else fail "values $inst: rows per counter" "fewer than 8:$few"; fi

			c="values $inst: gc-heap-size in bytes (> $HEAP_MB MiB live)"
			series "$c" "$D" $inst bytes-gc-heap-size && in_range "$c" "$F" $((HEAP_MB * 1048576)) 1e10
			c="values $inst: cpu-usage percent"
			series "$c" "$D" $inst percent-cpu-usage && in_range "$c" "$F" 0 100
			c="values $inst: working-set in bytes"
			series "$c" "$D" $inst bytes-working-set && in_range "$c" "$F" $((HEAP_MB * 1048576)) 1e10
			c="values $inst: time-in-gc percent"
			series "$c" "$D" $inst percent-time-in-gc && in_range "$c" "$F" 0 100
			c="values $inst: alloc-rate ~16 MiB/s (--alloc-mb-per-sec 16)"
			series "$c" "$D" $inst total_bytes-alloc-rate && rate "$c" "$F" 16777216 0.5 0.2

			# every DERIVE (derive, total_bytes, total_time_in_ms) never
			# decreases: 9 of System.Runtime, 4 of the app
			nd=0 bad=
			while read -r n; do
				[[ $n == derive-* || $n == total_* ]] || continue
				nd=$((nd + 1))
				why=$(monotonic "$(csv "$D" $inst "$n")") || bad+=" $n: $why;"
			done < <(names_of "$D" $inst)
			if [[ -z $bad && $nd -ge 13 ]]; then pass "values $inst: $nd DERIVE values monotonic non-decreasing"; else fail "values $inst: DERIVE monotonic ($nd values)" "${bad:-too few DERIVE values}"; fi

			# 2. the target's own counters and instruments, exact values
			for spec in "${APP_EXACT[@]}"; do
				c="app $inst: ${spec%=*}"
				series "$c" "$D" $inst "${spec%=*}" && all_equal "$c" "$F" "${spec##*=}"
			done
			for spec in "${APP_RATES[@]}"; do
				read -r n r pt mt <<<"$spec"
				c="values $inst: rate of $n"
				series "$c" "$D" $inst "$n" && rate "$c" "$F" "$r" "$pt" "$mt"
			done
			app=$(names_of "$D" $inst | grep -c ':')
			if ((app == 11)); then pass "app $inst: 11 values of CollectdDotnet-Test / CollectdDotnet.Test, no others"; else fail "app $inst: app values" "$app, want 11: $(names_of "$D" $inst | grep ':' | tr '\n' ' ')"; fi
		done

		# 6. stop with three live sessions
		stop_collectd 10
		if awk -v s="$STOP_SECS" 'BEGIN { exit !(s < 2) }'; then pass "stop: collectd exits in $STOP_SECS s with 3 live sessions (< 2 s)"; else fail "stop: collectd exit time" "$STOP_SECS s (want < 2 s)"; fi
		if ((COLLECTD_EXIT == 0)); then pass "stop: exit status 0"; else fail "stop: exit status" "$COLLECTD_EXIT"; fi
		if log_has "$D" "instance \"net10\": session with pid $p10 stopped" &&
			log_has "$D" "instance \"net8\": session with pid $p8 stopped" &&
			log_has "$D" "instance \"net11\": session with pid $p11 stopped"; then
			pass "stop: the log shows the three sessions stopped"
		else
			fail "stop: log" "no 'session with pid ... stopped' for all three ($D/collectd.log)"
		fi
		if grep -E '\[(error|warning)\]' "$D/collectd.log" | grep -q .; then
			fail "values: no error or warning in the log" "$(grep -E '\[(error|warning)\]' "$D/collectd.log" | head -3)"
		else
			pass "values: no error or warning in the log"
		fi
	else
		fail "values: collectd starts with the plugin" "see $D/collectd.log"
		stop_collectd 5
	fi
	stop_target "$p10" >/dev/null
	stop_target "$p8" >/dev/null
	stop_target "$p11" >/dev/null
}

# ============================================ 9: another tool, shorter interval
# min_gap FILE T0 T1: the smallest gap between consecutive rows with a time in
# [T0, T1], and how many rows ("GAP N")
min_gap() {
	awk -F, -v a="$2" -v b="$3" 'NR > 1 && $1 >= a && $1 <= b {
		n++; if (n > 1 && (m == "" || $1 - p < m)) m = $1 - p; p = $1 }
		END { printf "%.3f %d", m, n }' "$1"
}

run_shared() {
	echo "== plugin: Interval 3 and dotnet-counters at 1 s on the same process (check 9)"
	[[ -x $DOTNET_COUNTERS ]] || dotnet_tools_install >/dev/null 2>&1 || { fail "shared: dotnet-counters" "cannot install it (see dotnet_tools_install)"; return 1; }
	ps=$(start_target CounterTarget 10 --seconds "$MARK") || { fail "shared: start CounterTarget 10" "see above"; return 1; }
	D=$IT/shared
	if ! collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 3
  <Process \"shared\">
    Pid $ps
    Provider \"System.Runtime\"
    Provider \"CollectdDotnet-Test\"
  </Process>
</Plugin>"; then
		fail "shared: collectd starts with the plugin" "see $D/collectd.log"
		stop_target "$ps" >/dev/null
		return 1
	fi
	wait_until 30 has_rows 2 "$D" shared bytes-gc-heap-size ||
		fail "shared: values before dotnet-counters" "$(nrows "$D" shared bytes-gc-heap-size) rows of gc-heap-size in 30 s"
	# while no .NET process starts or ends, the connector sleeps: it passes
	# when inotify sees a diagnostic socket come or go, and for a full pass
	# every 10 intervals (here 3 s: 30 s), not every interval (10 wakeups
	# in 30 s before; retries of a process that does not answer add one
	# per 10 s)
	local c0 c1 tid
	tid=$(thread_of "$COLLECTD_PID" dotnet-connect)
	if [[ -n $tid ]]; then
		c0=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$COLLECTD_PID/task/$tid/status")
		sleep 30 # a measurement window, not a wait for an event
		c1=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$COLLECTD_PID/task/$tid/status")
		((c1 - c0 <= 5)) && pass "shared: the idle connector woke $((c1 - c0)) times in 30 s (Interval 3: 10 passes by time before)" ||
			fail "shared: idle connector" "$((c1 - c0)) wakeups in 30 s (want <= 5)"
	else
		fail "shared: idle connector" "no dotnet-connect thread in collectd"
	fi
	local ref=$D/dotnet-counters.csv secs=16 t0 t1
	t0=$(_now)
	# (EventCounters only: a second Metrics session would be refused, and
	# dotnet-counters tells its Metrics session from ours by its own id)
	"$DOTNET_COUNTERS" collect -p "$ps" --refresh-interval 1 --format csv -o "$ref" \
		--counters 'EventCounters\System.Runtime,CollectdDotnet-Test' --duration 00:00:$secs </dev/null >"$ref.log" 2>&1
	t1=$(_now)
	# the runtime really sent samples every second (to every session)
	local nref
	nref=$(grep -c 'GC Heap Size' "$ref" 2>/dev/null)
	if ((nref >= secs - 3)); then
		pass "shared: dotnet-counters got $nref gc-heap-size samples in $secs s (refresh 1 s)"
	else
		fail "shared: dotnet-counters at 1 s" "${nref:-0} gc-heap-size samples in $secs s (want >= $((secs - 3))); see $ref.log"
	fi
	# one more interval of ours, then look at [t0 + 1, t1 - 1]
	wait_until 8 has_rows 1 "$D" shared bytes-gc-heap-size "$t1"
	local a b gap n
	a=$(awk -v t="$t0" 'BEGIN { printf "%.3f", t + 1 }')
	b=$(awk -v t="$t1" 'BEGIN { printf "%.3f", t - 1 }')
	for name in bytes-gc-heap-size gauge-CollectdDotnet-Test:fixed-value derive-CollectdDotnet-Test:ticks; do
		read -r gap n < <(min_gap "$(csv "$D" shared "$name")" "$a" "$b")
		if awk -v g="$gap" -v n="$n" -v w="$(awk -v a="$a" -v b="$b" 'BEGIN { print (b - a) / 3 }')" \
			'BEGIN { exit !(g >= 2.1 && n >= w - 1 && n <= w + 1) }'; then
			pass "shared: $name: $n rows in the $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", b - a }') s of 1 s samples, >= $gap s apart"
		else
			fail "shared: $name: one row per Interval" "$n rows, smallest gap $gap s, in [$a, $b]"
		fi
	done
	# the rate once both sessions run (the runtime's start of the second
	# session restarts its counters' timer: the pair across it is short)
	if series "shared: ticks rate" "$D" shared derive-CollectdDotnet-Test:ticks; then
		awk -F, -v a="$(awk -v t="$t0" 'BEGIN { printf "%.3f", t + 4 }')" -v b="$t1" \
			'NR == 1 || ($1 >= a && $1 <= b)' "$F" >"$D/ticks-shared.csv"
		rate "shared: rate of ticks while dotnet-counters runs at 1 s" "$D/ticks-shared.csv" 1000 0.05 0.01
	fi
	if grep -E '\[(error|warning)\]' "$D/collectd.log" | grep -q .; then
		fail "shared: no error or warning in the log" "$(grep -E '\[(error|warning)\]' "$D/collectd.log" | head -3)"
	else
		pass "shared: no error or warning in the log (no \"value too old\")"
	fi
	stop_collectd 10
	stop_target "$ps" >/dev/null
}

# ============================================================ 3: web load
run_web() {
	echo "== plugin: ASP.NET Core under load (check 3)"
	NREQ=500
	command -v curl >/dev/null || { fail "web: curl" "not installed (Debian package curl)"; return 1; }
	pw=$(start_target WebTarget 10) || { fail "web: start WebTarget 10" "see above"; return 1; }
	url=$(sed -n 's/^LISTENING \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$(target_log "$pw")" | head -1)
	D=$IT/web
	if [[ -z $url ]]; then
		fail "web: WebTarget listens on 127.0.0.1" "no LISTENING line in $(target_log "$pw")"
	elif collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"web\">
    Pid $pw
    Provider \"Microsoft.AspNetCore.Hosting\"
    Meter \"Microsoft.AspNetCore.Hosting\"
  </Process>
</Plugin>"; then
		EC_TOTAL=gauge-Microsoft.AspNetCore.Hosting:total-requests
		EC_RATE=derive-Microsoft.AspNetCore.Hosting:requests-per-second
		# before the load: the EventCounters are there (the meter's histogram
		# series only appears with the first request)
		wait_until 20 has_rows 2 "$D" web "$EC_TOTAL" && wait_until 5 has_rows 2 "$D" web "$EC_RATE" ||
			fail "web: Microsoft.AspNetCore.Hosting counters before the load" "none after 20 s"
		total0=$(last_value "$D" web "$EC_TOTAL") || total0=0
		rate0=$(last_value "$D" web "$EC_RATE") || rate0=0
		# the load: NREQ sequential GETs on one connection (curl's URL globbing),
		# 127.0.0.1 only, at most 60 s
		t0=$(_now)
		codes=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}\n' "$url/?n=[1-$NREQ]" | sort | uniq -c | tr -s ' ')
		load_secs=$(elapsed "$t0")
		if [[ $codes == " $NREQ 200" ]]; then pass "web: $NREQ requests answered 200 in $load_secs s"; else fail "web: load" "answers: $codes"; fi
		# the histogram's count series: type derive, name cut + hashed if too
		# long, ":count" kept
		hist_count() { # the newest day's file: its last row is the latest value
			compgen -G "$D/csv/*/dotnet-web/derive-Microsoft.AspNetCore.Hosting:http.server.request.duration:*:count-[0-9]*" | sort | tail -1
		}
		grown() { # NAME FROM: the value grew by NREQ
			local v
			v=$(last_value "$D" web "$1") || return 1
			awk -v v="$v" -v f="$2" -v n="$NREQ" 'BEGIN { exit !(v - f >= n) }'
		}
		hist_grown() {
			local f
			f=$(hist_count) || return 1
			[[ -n $f ]] && (($(tail -1 "$f" | cut -d, -f2) >= NREQ))
		}
		wait_until 10 grown "$EC_TOTAL" "$total0"
		wait_until 5 grown "$EC_RATE" "$rate0"
		wait_until 5 hist_grown
		# all three exactly: nothing else talks to this target
		total1=$(last_value "$D" web "$EC_TOTAL")
		rate1=$(last_value "$D" web "$EC_RATE")
		hf=$(hist_count)
		d_total=$(awk -v a="$total0" -v b="$total1" 'BEGIN { print b - a }')
		d_rate=$((rate1 - rate0))
		if ((d_total == NREQ)); then pass "web: total-requests $total0 -> $total1 (+$d_total, sent $NREQ)"; else fail "web: total-requests" "$total0 -> $total1 (+$d_total), sent $NREQ"; fi
		if ((d_rate == NREQ)); then pass "web: requests-per-second running total $rate0 -> $rate1 (+$d_rate, sent $NREQ)"; else fail "web: requests-per-second" "$rate0 -> $rate1 (+$d_rate), sent $NREQ"; fi
		if [[ -n $hf ]]; then
			hc=$(tail -1 "$hf" | cut -d, -f2)
			if ((hc == NREQ)); then pass "web: http.server.request.duration count $hc (sent $NREQ; ${hf##*/})"; else fail "web: http.server.request.duration count" "$hc, sent $NREQ"; fi
			base=${hf%:count-*}
			base=${base##*/derive-}
			nq=0
			for q in p50 p95 p99; do
				compgen -G "$D/csv/*/dotnet-web/gauge-$base:$q-[0-9]*" >/dev/null && nq=$((nq + 1))
			done
			((nq == 3)) && pass "web: the histogram's p50, p95, p99 under the same name as its count" ||
				fail "web: histogram quantiles" "$nq of p50/p95/p99 beside $base:count"
			q50=$(tail -1 "$(compgen -G "$D/csv/*/dotnet-web/gauge-$base:p50-[0-9]*" | sort | tail -1)" | cut -d, -f2)
			awk -v q="$q50" 'BEGIN { exit !(q > 0 && q < 1) }' &&
				pass "web: request duration p50 $q50 s (unit s: a gauge in seconds)" || fail "web: request duration p50" "$q50"
		else
			fail "web: http.server.request.duration count" "no csv file: $(names_of "$D" web | tr '\n' ' ')"
		fi
		# collectd's limit (DATA_MAX_NAME_LEN 128), and no '/': it separates the
		# parts of collectd's identifiers
		long=$(names_of "$D" web | sed 's/^[a-z_]*-//' | awk 'length($0) > 127')
		[[ -z $long ]] && pass "web: every type instance within 127 bytes" || fail "web: type instance length" "$long"
		if names_of "$D" web | grep -q /; then fail "web: no '/' in type instances" "$(names_of "$D" web | grep /)"; fi
		stop_collectd 10
	else
		fail "web: collectd starts" "see $D/collectd.log"
		stop_collectd 5
	fi
	stop_target "$pw" >/dev/null
}

# ==================================== 4, 5, 6: restart, several targets, stop
run_lifecycle() {
	echo "== plugin: restart, three targets, SIGSTOP, stop (checks 4, 5, 6)"
	# a and b: <Process> blocks by command line; c: found by AutoDiscover (it
	# also watches any other .NET process running on this machine meanwhile,
	# with System.Runtime only, named by their entry assemblies)
	A_ARGS=(--seconds "$MARK" --heap-mb 11)
	B_ARGS=(--seconds "$MARK" --heap-mb 12)
	pa=$(start_target CounterTarget 10 "${A_ARGS[@]}") || { fail "lifecycle: start a" "see above"; return 1; }
	pb=$(start_target CounterTarget 8 "${B_ARGS[@]}") || { fail "lifecycle: start b" "see above"; return 1; }
	pc=$(start_target WebTarget 8) || { fail "lifecycle: start c" "see above"; return 1; }
	D=$IT/lifecycle
	RT=percent-cpu-usage # a System.Runtime value every target has
	if collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  AutoDiscover true
  <Process \"a\">
    CommandLine \"CounterTarget --seconds ${MARK//./\\\\.} --heap-mb 11\$\"
  </Process>
  <Process \"b\">
    CommandLine \"CounterTarget --seconds ${MARK//./\\\\.} --heap-mb 12\$\"
  </Process>
</Plugin>"; then
		# c's instance: its entry assembly, "WebTarget" ("WebTarget-<n>" if
		# another WebTarget on this machine took the name first)
		inst_c() { sed -n "s/.*instance \"\([^\"]*\)\": watching pid $pc .*/\1/p" "$D/collectd.log" | tail -1; }
		wait_until 20 bash -c "grep -q 'watching pid $pc ' '$D/collectd.log'"
		C=$(inst_c)
		if [[ $C == WebTarget || $C =~ ^WebTarget-[0-9]+$ ]]; then
			pass "several: AutoDiscover names pid $pc by its entry assembly: \"$C\""
		else
			fail "several: AutoDiscover instance of WebTarget pid $pc" "\"$C\""
			C=WebTarget
		fi
		ok=1
		for i in a b "$C"; do
			wait_until 20 has_rows 3 "$D" "$i" "$RT" || { ok=0; fail "several: $i writes values" "$(nrows "$D" "$i" "$RT") rows of $RT after 20 s"; }
		done
		((ok)) && pass "several: a (<Process> CommandLine, .NET 10), b (.NET 8) and $C (AutoDiscover) write values"

		# ---- 4. SIGKILL a, start it again with the same command line
		t_kill=$(_now)
		kill -KILL "$pa"
		if wait_until 10 log_has "$D" "instance \"a\": session with pid $pa ended"; then
			pass "restart: the log says the session with pid $pa ended ($(elapsed "$t_kill") s after SIGKILL)"
		else
			fail "restart: session end" "no 'instance \"a\": session with pid $pa ended' in the log"
		fi
		pa2=$(start_target CounterTarget 10 "${A_ARGS[@]}") || { fail "restart: start a again" "see above"; return 1; }
		t_ready=$(_now)
		FA=$(csv "$D" a "$RT")
		if wait_until 15 has_rows 1 "$D" a "$RT" "$t_kill"; then
			resume=$(elapsed "$t_ready")
			t_row=$(first_time_after "$FA" "$t_kill")
			gap=$(awk -v a="$t_kill" -v b="$t_row" 'BEGIN { printf "%.2f", b - a }')
			if awk -v r="$resume" 'BEGIN { exit !(r < 5) }'; then
				pass "restart: values of the new pid $pa2 under instance \"a\" $resume s after it was ready (< 5 s; $gap s between SIGKILL and its first value)"
			else
				fail "restart: resume time" "$resume s after ready (want < 5 s)"
			fi
		else
			fail "restart: values resume" "no new row for a 15 s after the restart"
		fi
		if log_has "$D" "instance \"a\": watching pid $pa2 "; then pass "restart: the log says a new session with pid $pa2 started"; else fail "restart: new session" "no 'instance \"a\": watching pid $pa2' in the log"; fi
		# sessions start on the whole second, so that the targets send
		# together: a's new session (started whenever a came back) as well
		# as b's and c's (started with collectd). Without the grid each
		# offset is anywhere in 0..0.5 s.
		for i in a b "$C"; do wait_until 10 has_rows 3 "$D" "$i" "$RT" "$t_ready"; done
		offs=
		ok=1
		for i in a b "$C"; do
			o=$(grid_offset "$(csv "$D" "$i" "$RT")" "$t_ready")
			offs+=" $i $o s;"
			[[ $o != - ]] && awk -v o="$o" 'BEGIN { exit !(o < 0.2) }' || ok=0
		done
		if ((ok)); then
			pass "grid: every sample of a (restarted), b and $C within 0.2 s of a whole second:$offs"
		else
			fail "grid: samples on the whole second" "largest distance from a whole second:$offs (want < 0.2 s)"
		fi
		extra=$(compgen -G "$D/csv/*/dotnet-a-*")
		[[ -z $extra ]] && pass "restart: no second plugin instance (no dotnet-a-<pid>)" || fail "restart: plugin instance" "$extra"
		# the restart must not disturb b and c
		for i in b "$C"; do
			wait_until 5 has_rows 1 "$D" "$i" "$RT" "$t_ready" || fail "restart: $i keeps writing" "no row since the restart"
		done

		# ---- 5. SIGSTOP b for >= 5 s (5 intervals): a and c go on writing
		# every interval
		t_stop=$(_now)
		kill -STOP "$pb"
		STOPPED_PIDS+=("$pb")
		others_go_on() {
			awk -v a="$t_stop" -v b="$(_now)" 'BEGIN { exit !(b - a >= 5) }' &&
				has_rows 4 "$D" a "$RT" "$t_stop" && has_rows 4 "$D" "$C" "$RT" "$t_stop"
		}
		wait_until 15 others_go_on
		t_cont=$(_now)
		kill -CONT "$pb"
		stop_secs=$(awk -v a="$t_stop" -v b="$t_cont" 'BEGIN { printf "%.1f", b - a }')
		if wait_until 10 has_rows 1 "$D" b "$RT" "$t_cont"; then
			pass "several: b writes again $(elapsed "$t_cont") s after SIGCONT"
		else
			fail "several: b after SIGCONT" "no row 10 s after SIGCONT"
		fi
		# the rows stamped within the stop (written up to an interval later:
		# once a row stamped after it is there, they all are), and the longest
		# gap between two rows from 1 s before the stop to 1 s after it
		wait_until 5 has_rows 1 "$D" a "$RT" "$t_cont"
		wait_until 5 has_rows 1 "$D" "$C" "$RT" "$t_cont"
		window() { # INSTANCE: "ROWS MAXGAP"
			awk -F, -v a="$t_stop" -v b="$t_cont" '
				NR > 1 && $1 >= a && $1 <= b { n++ }
				NR > 1 && $1 >= a - 1 && $1 <= b + 1 { if (p) { g = $1 - p; if (g > mg) mg = g } p = $1 }
				END { printf "%d %.2f\n", n, mg }' "$(csv "$D" "$1" "$RT")"
		}
		read -r ra ga <<<"$(window a)"
		read -r rc gc <<<"$(window "$C")"
		read -r rb _ <<<"$(window b)"
		want_rows=$(awk -v s="$stop_secs" 'BEGIN { print int(s) - 1 }')
		if ((ra >= want_rows && rc >= want_rows)) && awk -v x="$ga" -v y="$gc" 'BEGIN { exit !(x < 1.6 && y < 1.6) }'; then
			pass "several: b SIGSTOPped for $stop_secs s: a wrote $ra rows (longest gap $ga s), $C $rc rows (gap $gc s), b $rb rows (want >= $want_rows rows, gaps < 1.6 s)"
		else
			fail "several: the others during b's SIGSTOP ($stop_secs s)" "a $ra rows (gap $ga s), $C $rc rows (gap $gc s), b $rb; want >= $want_rows rows, gaps < 1.6 s"
		fi
		if log_has "$D" "session with pid $pb ended"; then
			fail "several: b's session survives the SIGSTOP" "it ended: $(grep -m1 "session with pid $pb ended" "$D/collectd.log")"
		else
			pass "several: b's session survives the SIGSTOP"
		fi

		# ---- 6. stop with live sessions, one of them SIGSTOPped (it cannot
		# answer StopTracing: the plugin must not wait for it)
		for i in a b "$C"; do wait_until 5 has_rows 1 "$D" "$i" "$RT" "$t_cont"; done
		kill -STOP "$pb"
		stop_collectd 10
		kill -CONT "$pb"
		if awk -v s="$STOP_SECS" 'BEGIN { exit !(s < 2) }'; then
			pass "stop: collectd exits in $STOP_SECS s with 3 live sessions, one of them SIGSTOPped (< 2 s)"
		else
			fail "stop: exit time with a SIGSTOPped target" "$STOP_SECS s (want < 2 s)"
		fi
		nstop=0
		for i in "a\": session with pid $pa2" "b\": session with pid $pb" "$C\": session with pid $pc"; do
			log_has "$D" "instance \"$i stopped" && nstop=$((nstop + 1))
		done
		((nstop == 3)) && pass "stop: the log shows the 3 sessions stopped" || fail "stop: log" "$nstop of 3 'session ... stopped' lines"
		# Gather (default 0.2 s): the streams of sessions on the common grid
		# come within ~0.1 s of each other and are read in one wakeup of the
		# reader, 2 to 3 reads a wakeup here (b is stopped for half the run).
		# With Gather 0: one read a wakeup (212 in 212, against 41 in 19).
		line=$(grep -m1 -o 'dotnet plugin: stopped: .* wakeups of the reader' "$D/collectd.log")
		read -r reads wakeups <<<"$(sed -n 's/.* \([0-9]*\) stream reads in \([0-9]*\) wakeups.*/\1 \2/p' <<<"$line")"
		if [[ -n $wakeups ]] && ((wakeups > 0 && 2 * reads >= 3 * wakeups)); then
			pass "gather: $reads stream reads in $wakeups wakeups of the reader (>= 1.5 a wakeup)"
		else
			fail "gather: stream reads a wakeup of the reader" "${line:-no 'stopped:' line} (want >= 1.5 reads a wakeup)"
		fi
		# a killed process stays a zombie until its parent reaps it, with
		# /proc/<pid> and its stale diagnostic socket: no .NET process to watch
		if log_has "$D" "cannot start a session with pid $pa:"; then
			fail "restart: the killed pid $pa (a zombie until reaped) is not taken for a .NET process" \
				"$(grep -m1 "with pid $pa:" "$D/collectd.log" | cut -c23-)"
		else
			pass "restart: the killed pid $pa (a zombie until reaped) is not taken for a .NET process"
		fi
		# expected: the notice about the SIGSTOPped b; the warning that "a"
		# matched nothing while it was down (README: logged again after a block
		# lost its process)
		errs=$(grep -E '\[(error|warning)\]' "$D/collectd.log" |
			grep -vE "with pid $pa:|<Process \"a\"> matches no .NET process yet")
		[[ -z $errs ]] && pass "lifecycle: no other error or warning in the log" || fail "lifecycle: errors in the log" "$(head -3 <<<"$errs")"
	else
		fail "lifecycle: collectd starts" "see $D/collectd.log"
		stop_collectd 5
	fi
	stop_target "$pa2" >/dev/null
	stop_target "$pb" >/dev/null
	stop_target "$pc" >/dev/null
}

# ======================================================= 7: configuration
run_config() {
	echo "== plugin: configuration errors (check 7)"
	# NAME|BODY of <Plugin dotnet>|what the error line must say (grep -F)
	BAD_CONFIGS=(
		'unknown option|  Bogus 1|dotnet plugin: unknown option "Bogus"'
		'unknown option in <Process>|  <Process "x">\n    Pid 1\n    Colour "red"\n  </Process>|dotnet plugin: <Process "x">: unknown option "Colour"'
		'bad regex|  <Process "x">\n    CommandLine "Counter(Target"\n  </Process>|dotnet plugin: <Process "x">: CommandLine "Counter(Target" is not a valid regular expression'
		'two match options|  <Process "x">\n    Pid 1\n    EntryAssembly "Shop"\n  </Process>|dotnet plugin: <Process "x"> needs exactly one of Pid, CommandLine or EntryAssembly (it has 2)'
		'no match option|  <Process "x">\n    Provider "System.Runtime"\n  </Process>|dotnet plugin: <Process "x"> needs exactly one of Pid, CommandLine or EntryAssembly (it has 0)'
		'Interval out of range|  Interval 0|dotnet plugin: Interval must be between 0.1 and 3600 seconds'
		'Gather out of range|  Gather -1|dotnet plugin: Gather must be between 0 and 900 seconds'
		'Interval not a number|  Interval "fast"|The `Interval'"'"' option requires exactly one numeric argument'
		'same <Process> twice|  <Process "x">\n    Pid 1\n  </Process>\n  <Process "x">\n    Pid 2\n  </Process>|dotnet plugin: <Process "x"> is defined twice'
		'unknown option in <Dump>|  <Dump>\n    Directory "/tmp"\n    Kind "heap"\n  </Dump>|dotnet plugin: <Dump>: unknown option "Kind"'
	)
	n=0
	for spec in "${BAD_CONFIGS[@]}"; do
		IFS='|' read -r name body want <<<"$spec"
		n=$((n + 1))
		D=$IT/config-$n
		COLLECTD_PLUGINS="csv logfile" collectd_config "$D" "LoadPlugin dotnet
<Plugin dotnet>
$(printf '%b' "$body")
</Plugin>"
		timeout 20 collectd -f -C "$D/collectd.conf" >"$D/stdout.log" 2>&1
		rc=$?
		line=$(grep -F -- "$want" "$D/collectd.log" | grep -m1 '\[error\]')
		if ((rc != 0 && rc != 124)) && [[ -n $line ]] &&
			grep -q "Parsing the config file failed" "$D/stdout.log"; then
			pass "config: $name refused (exit $rc): ${line#*\] \[error\] }"
		else
			fail "config: $name" "exit $rc, error line with '$want': ${line:-none} ($D)"
		fi
	done

	# a block that matches nothing: collectd runs, the plugin warns
	D=$IT/config-nomatch
	if collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"ghost\">
    CommandLine \"no-such-program-$$\"
  </Process>
</Plugin>"; then
		if wait_until 10 log_has "$D" "\[warning\] dotnet plugin: <Process \"ghost\"> matches no \.NET process"; then
			pass "config: a block matching nothing: $(grep -m1 -o 'dotnet plugin: <Process "ghost"> matches no .NET process.*' "$D/collectd.log")"
		else
			fail "config: a block matching nothing" "no warning 'matches no .NET process' within 10 s"
		fi
		stop_collectd 10
	else
		fail "config: a block matching nothing: collectd starts" "see $D/collectd.log"
		stop_collectd 5
	fi
}

# ============================================================ 8: valgrind
run_valgrind() {
	echo "== plugin: collectd + plugin under valgrind (check 8)"
	D=$IT/valgrind
	mkdir -p "$D"
	pv=$(start_target CounterTarget 10 --seconds "$MARK") || { fail "valgrind: start CounterTarget 10" "see above"; return 1; }
	pk=$(start_target CounterTarget 8 --seconds "$MARK") || { fail "valgrind: start CounterTarget 8" "see above"; return 1; }
	VG_LOG=$D/valgrind.log
	t0=$(_now)
	if COLLECTD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30 --suppressions=$REPO/tests/valgrind.supp --log-file=$VG_LOG" \
		collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"live\">
    Pid $pv
$COUNTER_PROVIDERS
  </Process>
  <Process \"killed\">
    Pid $pk
$COUNTER_PROVIDERS
  </Process>
</Plugin>"; then
		log "collectd under valgrind initialised in $(elapsed "$t0") s"
		# the session-end path too: one target is killed midway
		wait_until 60 has_rows 3 "$D" killed derive-CollectdDotnet-Test:ticks &&
			kill -KILL "$pk" && wait_until 20 log_has "$D" "session with pid $pk ended" ||
			fail "valgrind: values of the second target, then its session end" "$(nrows "$D" killed derive-CollectdDotnet-Test:ticks) rows"
		# >= 10 s of values from the live one
		t1=$(_now)
		if wait_until 60 has_rows 10 "$D" live derive-CollectdDotnet-Test:ticks; then
			pass "valgrind: values under valgrind ($(nrows "$D" live derive-CollectdDotnet-Test:ticks) rows of ticks, $(nrows "$D" killed derive-CollectdDotnet-Test:ticks) of the killed target)"
		else
			fail "valgrind: values under valgrind" "$(nrows "$D" live derive-CollectdDotnet-Test:ticks) rows of ticks after $(elapsed "$t1") s"
		fi
		f=$(csv "$D" live derive-CollectdDotnet-Test:ticks) && rate "valgrind: ticks rate under valgrind" "$f" 1000 0.05 0.02
		stop_collectd 120
		summary=$(grep -m1 'ERROR SUMMARY' "$VG_LOG" | sed 's/^==[0-9]*== //')
		definite=$(grep -m1 'definitely lost:' "$VG_LOG" | sed 's/^==[0-9]*== *//')
		# records (errors, leaks) with a frame of the plugin: in dotnet.so, or
		# at a line of one of its sources (plugin/*.c, with debug info)
		srcs=$(cd "$REPO/plugin" && ls -- *.c | sed 's/\.c$//' | paste -sd'|')
		ours=$(awk -v re="\\((in [^)]*dotnet\\.so|($srcs)\\.c:[0-9]+)\\)" '
			/^==[0-9]+== $/ { if (rec && hit) n++; rec = hit = 0; next }
			/^==[0-9]+== [A-Z0-9]/ { rec = 1 }
			rec && $0 ~ re { hit = 1 }
			END { print n + 0 }' "$VG_LOG")
		log "valgrind: $summary; ${definite:-no leak summary}; collectd stopped in $STOP_SECS s, exit $COLLECTD_EXIT"
		if ((COLLECTD_EXIT == 0)) && [[ $summary == "ERROR SUMMARY: 0 errors"* ]] && ((ours == 0)); then
			pass "valgrind: collectd exit 0, $summary, ${definite:-no definite leak}, nothing from the plugin"
		else
			fail "valgrind" "exit $COLLECTD_EXIT (99: valgrind found errors), $summary, ${definite:-}, $ours record(s) with a frame of the plugin; see $VG_LOG"
		fi
		log_has "$D" "instance \"live\": session with pid $pv stopped" &&
			pass "valgrind: the live session stopped at shutdown" || fail "valgrind: shutdown" "no 'session with pid $pv stopped'"
	else
		fail "valgrind: collectd starts under valgrind" "see $D/collectd.log, $VG_LOG"
		stop_collectd 60
	fi
	stop_target "$pv" >/dev/null
}

for p in values web lifecycle shared config valgrind; do
	if part $p; then "run_$p"; fi
	[[ -n $COLLECTD_PID ]] && stop_collectd 10 # after a part that gave up
	stop_all_targets
done
log "plugin.sh took $(elapsed "$T_BEGIN") s"
