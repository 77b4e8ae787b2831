#!/usr/bin/env bash
# bench/breach-to-dump.sh -- how long from the GC heap sample that breaches a
# collectd threshold to the start of the dump, per spike of SpikeApp.
#
#   bench/breach-to-dump.sh [SPIKES]      default 20 (at least 10 make sense)
#
# Runs SpikeApp (contrib/spike-app: ~250 MB GC heap, spikes to ~630 MB held
# for 5 s, one every PERIOD s) under Debian's collectd with the dotnet plugin
# (Interval 1), the threshold rule
#   <Type "bytes"> Instance "gc-heap-size" WarningMax 500000000 </Type>
# (Persist false: one WARNING per spike) and <Dump> with MinInterval 0, so
# that every spike makes one dump. Per spike it prints
#   sample   the first gc-heap-size value above the threshold (its time, as
#            the runtime stamped it: the csv epoch column, ms)
#   notified how long that value took to reach the plugin's notification
#            callback (the plugin logs "dumping pid ... (N ms after the value)")
#   start    the dump's start: the UTC ms time in its file name, taken just
#            before the GenerateCoreDump command / createdump
#   b->s     start - sample, the figure this bench is about
#   left     how much of the spike was left when the dump started (> 0: the
#            dump caught the spike)
# then the median and the worst b->s, and whether every dump started while
# its spike lasted. The spike's own start ("SPIKE start" in SpikeApp's log) is
# when its heap was complete; a sample may breach a little before that, while
# it grows.
#
# Environment: VER (.NET 8, 9 or 10; default 10), METHOD (ipc | exec, default
# ipc), TYPE (default mini), PERIOD (s between spike starts, default 8),
# BUILD (default <repo>/build: targets, tools, and out/), PLUGIN_SO (default
# $BUILD/c/.libs/dotnet.so), KEEP=1 keeps the run directory (dumps deleted).
# Writes a TSV of the spikes to $BUILD/bench/breach-to-dump-<UTC time>.tsv.
# Exit status 0 when every spike got a dump that started before it ended.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
export REPO
# shellcheck source=tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

SPIKES=${1:-20}
VER=${VER:-10}
METHOD=${METHOD:-ipc}
TYPE=${TYPE:-mini}
PERIOD=${PERIOD:-8}
SPIKE_SECONDS=5
DELAY=4
THRESHOLD=500000000
if ! [[ $SPIKES =~ ^[0-9]+$ ]] || ((SPIKES < 1)); then
	echo "usage: $0 [SPIKES]" >&2
	exit 2
fi
((SPIKES >= 10)) || echo "breach-to-dump: only $SPIKES spikes; 10 or more give a useful median" >&2

target_path SpikeApp "$VER" >/dev/null 2>&1 || dotnet_build_targets "SpikeApp:$VER" >&2 || exit 1
[[ -f $PLUGIN_SO ]] || {
	echo "breach-to-dump: no plugin at $PLUGIN_SO (build it, or set PLUGIN_SO)" >&2
	exit 1
}
mkdir -p "$BUILD/bench"
RUN=$(mktemp -d "$BUILD/bench/breach-to-dump.XXXXXX") || exit 1
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$BUILD/bench/breach-to-dump-$STAMP.tsv
TARGET_RUN_DIR=$RUN/targets
TPID=

cleanup() {
	collectd_stop 10 >/dev/null 2>&1
	stop_all_targets
	find "$RUN" -name '*.dmp' -delete 2>/dev/null
	if [[ ${KEEP:-} == 1 ]]; then echo "breach-to-dump: run directory kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT

TPID=$(start_target SpikeApp "$VER" --delay-seconds "$DELAY" --spike-seconds "$SPIKE_SECONDS" \
	--period-seconds "$PERIOD" --spikes "$SPIKES") || exit 1
TLOG=$(target_log "$TPID")
collectd_start "$RUN" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"spike\">
    Pid $TPID
  </Process>
  <Dump>
    Directory \"$RUN/dumps\"
    Type \"$TYPE\"
    Method \"$METHOD\"
    MinInterval 0
    MaxDumps $((SPIKES + 10))
    MaxDumpsTotal $((SPIKES + 10))
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax $THRESHOLD
      Persist false
    </Type>
  </Plugin>
</Plugin>" || exit 1
printf 'breach-to-dump: %d spikes of %d s every %d s, SpikeApp .NET %s (%s), pid %d; Type %s, Method %s; about %d s\n' \
	"$SPIKES" "$SPIKE_SECONDS" "$PERIOD" "$VER" "$(target_runtime_version SpikeApp "$VER")" "$TPID" \
	"$TYPE" "$METHOD" $((DELAY + SPIKES * PERIOD + 5))
if ! wait_until $((DELAY + SPIKES * PERIOD + 60)) grep -q '^EXIT ' "$TLOG"; then
	echo "breach-to-dump: SpikeApp did not finish; its log: $TLOG" >&2
	KEEP=1
	exit 1
fi
# the last dump, if any, is written by now: wait for its notification
want=$(grep -c 'dumping pid' "$RUN/collectd.log")
wait_until 30 bash -c "(( \$(grep -cE 'type = dump, .*message = dump of pid' '$RUN/collectd.log') >= $want ))"
collectd_stop 10 >/dev/null

# ---- the data, one line per event, sorted by time ----
#   S k epoch | E k epoch      SpikeApp's spike k started / ended
#   V epoch value              a gc-heap-size value (csv)
#   D epoch file               a dump started (its name)
# and in order: the plugin's "dumping" lines (lag ms) and OKAY/FAILURE lines
{
	sed -nE 's/^SPIKE (start|end) ([^ ]+) .* n=([0-9]+).*/\1 \3 \2/p' "$TLOG" |
		while read -r what k t; do
			printf '%s %s %s\n' "$([[ $what == start ]] && echo S || echo E)" "$k" "$(date -u -d "$t" +%s.%3N)"
		done
	cat "$RUN"/csv/*/dotnet-spike/bytes-gc-heap-size-* 2>/dev/null |
		awk -F, '$1 ~ /^[0-9.]+$/ { printf "V %s %s\n", $1, $2 }'
	find "$RUN/dumps" -maxdepth 1 -name '*.dmp' -printf '%f\n' 2>/dev/null |
		sed -nE 's/.*-([0-9]{8})T([0-9]{2})([0-9]{2})([0-9]{2})\.([0-9]{3})Z\.dmp$/\1 \2:\3:\4.\5 &/p' |
		while read -r d t f; do printf 'D %s %s\n' "$(date -u -d "$d $t" +%s.%3N)" "$f"; done
} >"$RUN/events"
grep -oE 'dumping pid [0-9]+ \(.*, ([0-9]+) ms after the value\)' "$RUN/collectd.log" |
	sed -E 's/.*, ([0-9]+) ms after the value\)/\1/' >"$RUN/lags"
grep -E 'type = dump, .*message = dump of pid' "$RUN/collectd.log" |
	sed -E 's/.*message = dump of pid [0-9]+ //' >"$RUN/outcomes"

awk -v n="$SPIKES" -v th="$THRESHOLD" -v tsv="$TSV" -v lagfile="$RUN/lags" -v outfile="$RUN/outcomes" '
function fmt(t) { return t == "" ? "-" : strftime("%H:%M:%S", int(t), 1) sprintf(".%03d", (t - int(t)) * 1000 + 0.5) }
function ms(x) { return sprintf("%.0f", x * 1000) }
$1 == "S" { s[$2] = $3 }
$1 == "E" { e[$2] = $3 }
$1 == "V" { nv++; vt[nv] = $2; vv[nv] = $3 }
$1 == "D" { nd++; dt[nd] = $2; df[nd] = $3 }
END {
	while ((getline l < lagfile) > 0) lag[++nl] = l
	while ((getline l < outfile) > 0) out[++no] = l
	# sort values and dumps by time (few hundred: insertion sort)
	for (i = 2; i <= nv; i++) for (j = i; j > 1 && vt[j] < vt[j-1]; j--) {
		x = vt[j]; vt[j] = vt[j-1]; vt[j-1] = x; x = vv[j]; vv[j] = vv[j-1]; vv[j-1] = x }
	for (i = 2; i <= nd; i++) for (j = i; j > 1 && dt[j] < dt[j-1]; j--) {
		x = dt[j]; dt[j] = dt[j-1]; dt[j-1] = x; x = df[j]; df[j] = df[j-1]; df[j-1] = x }
	print "spike\tspike_start\tspike_end\tsample\tnotified_ms\tdump_start\tbreach_to_start_ms\tleft_ms\toutcome" > tsv
	printf "%5s  %-12s  %-12s  %-12s  %8s  %-12s  %7s  %7s  %s\n", "spike", "spike start", "spike end",
		"sample", "notified", "dump start", "b->s ms", "left ms", "dump"
	prev = 0; di = 1; got = 0; inspike = 0; nb = 0; nn = 0
	for (k = 1; k <= n; k++) {
		if (!(k in e)) { printf "%5d  spike did not happen (SpikeApp stopped?)\n", k; continue }
		b = ""
		for (i = 1; i <= nv; i++) if (vt[i] > prev && vt[i] <= e[k] && vv[i] > th) { b = vt[i]; break }
		# the first dump that started after the breaching sample, before the next spike
		d = ""; f = ""
		while (di <= nd && b != "" && dt[di] < b) di++
		if (di <= nd && b != "" && (!((k + 1) in s) || dt[di] < s[k + 1])) { d = dt[di]; f = df[di]; got++; di++ }
		# the plugin logs one "dumping" line and one outcome per dump, in order
		l = (d != "" && got <= nl) ? lag[got] : ""
		o = (d != "" && got <= no) ? out[got] : "none"
		sub(/^written: [^ ]+ /, "", o)
		bs = (d != "") ? d - b : ""
		left = (d != "") ? e[k] - d : ""
		if (d != "") { bsl[++nb] = bs; if (left > 0) inspike++ }
		if (d != "" && l != "") nsl[++nn] = bs * 1000 - l   # notification to start, ms
		printf "%5d  %-12s  %-12s  %-12s  %8s  %-12s  %7s  %7s  %s\n", k, fmt(s[k]), fmt(e[k]), fmt(b),
			(l == "" ? "-" : l " ms"), fmt(d), (bs == "" ? "-" : ms(bs)), (left == "" ? "-" : ms(left)), o
		printf "%d\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\n", k, s[k], e[k], b, l, d, (bs == "" ? "" : ms(bs)),
			(left == "" ? "" : ms(left)), o > tsv
		prev = e[k]
	}
	# median and worst of breach-to-start
	for (i = 2; i <= nb; i++) for (j = i; j > 1 && bsl[j] < bsl[j-1]; j--) { x = bsl[j]; bsl[j] = bsl[j-1]; bsl[j-1] = x }
	if (nb > 0) {
		med = (nb % 2) ? bsl[(nb + 1) / 2] : (bsl[nb / 2] + bsl[nb / 2 + 1]) / 2
		printf "\nbreach to dump start over %d spikes: median %s ms, worst %s ms, best %s ms\n", nb, ms(med), ms(bsl[nb]), ms(bsl[1])
	}
	# the notification lag alone
	for (i = 2; i <= nl; i++) for (j = i; j > 1 && lag[j] + 0 < lag[j-1] + 0; j--) { x = lag[j]; lag[j] = lag[j-1]; lag[j-1] = x }
	if (nl > 0)
		printf "sample to notification callback: median %s ms, worst %s ms\n",
			(nl % 2) ? lag[(nl + 1) / 2] : (lag[nl / 2] + lag[nl / 2 + 1]) / 2, lag[nl]
	for (i = 2; i <= nn; i++) for (j = i; j > 1 && nsl[j] < nsl[j-1]; j--) { x = nsl[j]; nsl[j] = nsl[j-1]; nsl[j-1] = x }
	if (nn > 0)
		printf "notification callback to dump start: median %s ms, worst %s ms\n",
			sprintf("%.0f", (nn % 2) ? nsl[(nn + 1) / 2] : (nsl[nn / 2] + nsl[nn / 2 + 1]) / 2) + 0,
			sprintf("%.0f", nsl[nn]) + 0
	printf "dumps: %d for %d spikes (%d files); started while the spike lasted: %d of %d\n", got, n, nd, inspike, n
	printf "table: %s\n", tsv
	exit !(got == n && inspike == n)
}' "$RUN/events"
