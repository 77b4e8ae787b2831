#!/usr/bin/env bash
# bench/compare-parsers.sh -- the C reader+decoder (bench/parser.c) and
# TraceEvent's EventPipeEventSource (bench/traceevent) on the very same
# bytes, taking turns on the same core, ROUNDS times.
#
#   bench/compare-parsers.sh [ROUNDS]        # default 5; ~40 s a round
#
# A shared VM's speed drifts by 2x over minutes, so the two are never
# compared across time: each round runs the C parser (3 runs) and then
# TraceEvent (3 runs, after its 200-parse warm-up) back to back on core 0,
# and the ratio is taken within the round. Prints, per workload (stream,
# fresh; see bench/README.md), each side's MB/s (median of the round
# medians, and the best run) and the ratio C/TraceEvent per round, median
# and min..max; and the same against TraceEvent's best run of each round
# (its runs are bimodal: the conservative figure). Needs the capture and
# the plugin's sources (bench/parser.sh records the capture when missing)
# and the .NET SDK.
#
#   bench/compare-parsers.sh --paired [PAIRS]   # default 40; ~1.5 s a pair
#
# Paired runs: the VM switches between a fast and a slow mode (~1.8x) every
# few minutes, sometimes between the two halves of a round. Here both
# parsers stay up (parser --serve, TraceEventBench --serve: warmed up, then
# one timed run per request) and take turns run by run, C first in odd
# pairs and TraceEvent first in even ones, so that the two runs of a pair
# lie within a second of each other, in the same mode (a first pair is
# run and not counted). Prints, per
# workload, the ratio C/TraceEvent of each pair: median, min..max, and the
# median over the pairs where C ran in the fast mode (at least 75 % of its
# best run) and where it ran in the slow mode.
set -eu
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
OUT=$BUILD/bench
paired=0
if [[ ${1:-} == --paired ]]; then
	paired=1
	shift
fi
ROUNDS=${1:-5}
[[ $paired == 0 ]] || ROUNDS=${1:-40}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "usage: compare-parsers.sh [--paired] [COUNT]" >&2; exit 2; }
capture=$OUT/counters-net10-10s.nettrace
stream=$OUT/stream-100mb.bin
mkdir -p "$OUT"

[[ -s $capture ]] || "$REPO/bench/parser.sh" --runs 1 >/dev/null
${CC:-gcc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$OUT/parser" \
	"$REPO/bench/parser.c" "$REPO/plugin/nettrace.c" "$REPO/plugin/counters.c" "$REPO/plugin/counters_decoder.c" -lm
[[ -s $stream ]] || "$OUT/parser" "$capture" --runs 1 --write "$stream" >/dev/null
dotnet build -c Release "$REPO/bench/traceevent/TraceEventBench.csproj" >"$OUT/traceevent-build.log" 2>&1 ||
	{ echo "compare-parsers.sh: dotnet build failed, see $OUT/traceevent-build.log" >&2; exit 1; }
te=$(find "$OUT/traceevent/bin" -name TraceEventBench.dll -path '*release*' | head -1)
[[ -n $te ]] || { echo "compare-parsers.sh: no TraceEventBench.dll" >&2; exit 1; }

pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
log=$OUT/compare-parsers-$(date +%Y%m%d-%H%M%S).log

if [[ $paired == 1 ]]; then
	echo "# $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(${CC:-gcc} --version | head -1), $(dotnet --version) SDK"
	echo "# C:          ${pin[*]} $OUT/parser $capture --serve"
	echo "# TraceEvent: DOTNET_gcConcurrent=0 ${pin[*]} dotnet $te $stream $capture --serve"
	echo "# $ROUNDS pairs per workload, taking turns run by run; raw output: $log"
	tmp=$(mktemp -d)
	mkfifo "$tmp/c.in" "$tmp/c.out" "$tmp/t.in" "$tmp/t.out"
	exec {cin}<>"$tmp/c.in" {tin}<>"$tmp/t.in"
	"${pin[@]}" "$OUT/parser" "$capture" --serve <"$tmp/c.in" >"$tmp/c.out" &
	cpid=$!
	DOTNET_gcConcurrent=0 "${pin[@]}" dotnet "$te" "$stream" "$capture" --serve <"$tmp/t.in" >"$tmp/t.out" &
	tpid=$!
	exec {cout}<"$tmp/c.out" {tout}<"$tmp/t.out"
	trap 'kill $cpid $tpid 2>/dev/null; rm -rf "$tmp"' EXIT
	# each prints what it is, then "ready" once warmed up
	ready() {
		local fd=$1 line
		while IFS= read -r -t 300 -u "$fd" line; do
			echo "$line" >>"$log"
			[[ $line == ready ]] && return 0
		done
		echo "compare-parsers.sh: a parser did not get ready (see $log)" >&2
		exit 1
	}
	ready "$cout"
	ready "$tout"
	# one timed run of workload $2 on side $1: "<side> <pair> <workload> <MB/s>"
	run() {
		local side=$1 w=$2 i=$3 name mbs in out
		if [[ $side == C ]]; then in=$cin out=$cout; else in=$tin out=$tout; fi
		echo "$w" >&"$in"
		IFS=' ' read -r -t 300 -u "$out" name mbs ||
			{ echo "compare-parsers.sh: no answer from $side" >&2; exit 1; }
		[[ $name == "$w" ]] || { echo "compare-parsers.sh: $side answered \"$name $mbs\"" >&2; exit 1; }
		echo "$side $i $w $mbs" >>"$log"
	}
	# pair 0, not counted: each side's first run after its warm-up is slower
	# (TraceEvent's first timed stream has run at a seventh of the rest)
	for ((i = 0; i <= ROUNDS; i++)); do
		for w in stream fresh; do
			if ((i % 2)); then run C "$w" "$i"; run TE "$w" "$i"; else run TE "$w" "$i"; run C "$w" "$i"; fi
		done
	done
	awk '
	function med(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n == 0 ? 0 : n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	($1 == "C" || $1 == "TE") && $2 > 0 { v[$1, $3, $2] = $4 + 0; if ($2 > pairs) pairs = $2
		if ($1 == "C" && $4 + 0 > best[$3]) best[$3] = $4 + 0 }
	END {
		printf "%-7s %-22s %-22s %-34s %-24s %s\n", "", "C MB/s median", "TraceEvent MB/s median", "C / TraceEvent per pair: median", "C fast: pairs, median", "C slow: pairs, median"
		split("stream fresh", ws, " ")
		for (k = 1; k <= 2; k++) { w = ws[k]; n = nf = ns = 0; lo = 1e18; hi = 0
			for (i = 1; i <= pairs; i++) { if (v["TE", w, i] <= 0) continue
				q = v["C", w, i] / v["TE", w, i]; c[++n] = v["C", w, i]; t[n] = v["TE", w, i]; r[n] = q
				if (q < lo) lo = q; if (q > hi) hi = q
				if (v["C", w, i] >= 0.75 * best[w]) f[++nf] = q; else s[++ns] = q }
			printf "%-7s %-22.0f %-22.0f %-34s %-24s %s\n", w, med(c, n), med(t, n), sprintf("%.1fx (%.1f..%.1f), %d pairs", med(r, n), lo, hi, n),
				sprintf("%d, %.1fx", nf, med(f, nf)), sprintf("%d, %.1fx", ns, med(s, ns))
			delete c; delete t; delete r; delete f; delete s
		} }' "$log"
	exit 0
fi
echo "# $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(${CC:-gcc} --version | head -1), $(dotnet --version) SDK"
echo "# C:          ${pin[*]} $OUT/parser $capture --runs 3"
echo "# TraceEvent: DOTNET_gcConcurrent=0 ${pin[*]} dotnet $te $stream $capture 3"
echo "# raw output: $log"
for ((r = 1; r <= ROUNDS; r++)); do
	echo "== round $r C" >>"$log"
	"${pin[@]}" "$OUT/parser" "$capture" --runs 3 >>"$log"
	echo "== round $r TE" >>"$log"
	DOTNET_gcConcurrent=0 "${pin[@]}" dotnet "$te" "$stream" "$capture" 3 >>"$log"
done
# "== round R SIDE", then "stream: ..." / "fresh: ..." headers, each followed
# by "  throughput median X MB/s (min A, max B)"
awk '
function med(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
/^== round/ { r = $3; side = $4 }
/^(stream|fresh):/ { w = substr($1, 1, length($1) - 1) }
/^  throughput/ { m = $3 + 0; mx = $NF; sub(/\)/, "", mx); mx += 0
	v[side, w, r] = m; top[side, w, r] = mx; if (mx > best[side, w]) best[side, w] = mx; rounds = r }
END {
	printf "%-7s %-26s %-26s %-44s %s\n", "", "C MB/s median (best)", "TraceEvent MB/s median (best)", "C / TraceEvent per round: median (min..max)", "C / the best TraceEvent run of the round"
	split("stream fresh", ws, " ")
	for (k = 1; k <= 2; k++) { w = ws[k]
		for (r = 1; r <= rounds; r++) { c[r] = v["C", w, r]; t[r] = v["TE", w, r]; q[r] = t[r] > 0 ? c[r] / t[r] : 0
			qb[r] = top["TE", w, r] > 0 ? c[r] / top["TE", w, r] : 0 }
		mc = med(c, rounds); mt = med(t, rounds)
		lo = 1e18; hi = 0; for (r = 1; r <= rounds; r++) { if (q[r] < lo) lo = q[r]; if (q[r] > hi) hi = q[r] }
		mq = med(q, rounds)
		lb = 1e18; hb = 0; for (r = 1; r <= rounds; r++) { if (qb[r] < lb) lb = qb[r]; if (qb[r] > hb) hb = qb[r] }
		mb = med(qb, rounds)
		printf "%-7s %8.0f (%6.0f)            %8.0f (%6.0f)            %-44s %.1fx (%.1f..%.1f)\n", w, mc, best["C", w], mt, best["TE", w], sprintf("%.1fx (%.1f..%.1f)", mq, lo, hi), mb, lb, hb
	} }' "$log"
