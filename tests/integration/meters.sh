#!/usr/bin/env bash
# tests/integration/meters.sh -- the System.Runtime meter (.NET 9 and later:
# the runtime's metrics under their OpenTelemetry names) through the plugin
# in real collectd, on .NET 10 and 11.
#
#   cpu time   dotnet.process.cpu.time (unit s, one series per cpu.mode) is
#              published as total_time_in_ms: its rate, user + system, is
#              the process's own CPU time from /proc/<pid>/stat over the same
#              seconds (a DERIVE in whole seconds had a rate of 0 or 1)
#   gc pause   dotnet.gc.pause.time (unit s) likewise, and never decreases
#   levels     dotnet.thread_pool.thread.count and .queue.length, declared
#              counters by the runtime, are published as gauges
#   heap       the EventCounter gc-heap-size (the threshold's usual counter)
#              and the meter's dotnet.gc.last_collection.heap.size per
#              generation come from one session: with both asked for, a
#              threshold on gc-heap-size works beside meter dashboards
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$REPO/tests/lib/dotnet.sh"

IT=$BUILD/it/meters
rm -rf "$IT"
mkdir -p "$IT"
TARGET_RUN_DIR=$IT/targets
MARK=901.$$
trap 'collectd_stop >/dev/null 2>&1; stop_all_targets' EXIT

ticks=$(getconf CLK_TCK)
# proc_cpu_ms PID: utime + stime of the process in ms
proc_cpu_ms() {
	local stat
	stat=$(cat "/proc/$1/stat") || return 1
	stat=${stat##*) }
	awk -v t="$ticks" '{ printf "%.0f", ($12 + $13) * 1000 / t }' <<<"$stat"
}

# value_at DIR INSTANCE NAME EPOCH: "TIME VALUE", the first row of that csv
# at or after EPOCH
value_at() {
	local f
	f=$(csv_file "$1" "$2" "$3") || return 1
	awk -F, -v t="$4" 'NR > 1 && $1 >= t { print $1, $2; found = 1; exit } END { exit !found }' "$f"
}

for ver in 10 11; do
	T="meters net$ver"
	pid=$(start_target CounterTarget "$ver" --seconds "$MARK" --heap-mb 32 --alloc-mb-per-sec 200 --busy-ms-per-sec 60) ||
		{ fail "$T: start CounterTarget $ver" "see $TARGET_RUN_DIR"; continue; }
	D=$IT/net$ver
	collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"m$ver\">
    Pid $pid
    Provider \"System.Runtime\"
    Meter \"System.Runtime\"
  </Process>
</Plugin>" || { fail "$T: collectd starts" "see $D/collectd.log"; stop_target "$pid" >/dev/null; continue; }
	user="total_time_in_ms-System.Runtime:dotnet.process.cpu.time:cpu.mode=user"
	sys="total_time_in_ms-System.Runtime:dotnet.process.cpu.time:cpu.mode=system"
	pause="total_time_in_ms-System.Runtime:dotnet.gc.pause.time"
	if ! wait_until 30 bash -c "[[ \$(ls $D/csv/*/dotnet-m$ver/$user-* 2>/dev/null) ]]"; then
		fail "$T: dotnet.process.cpu.time as total_time_in_ms" "not published; types: $(ls "$D"/csv/*/dotnet-m"$ver"/ 2>/dev/null | grep cpu | tr '\n' ' ')"
		collectd_stop >/dev/null
		stop_target "$pid" >/dev/null
		continue
	fi
	pass "$T: dotnet.process.cpu.time as total_time_in_ms, per cpu.mode"
	# 10 s of values, and the process's own CPU time over the same seconds:
	# /proc read when the samples are stamped (the first sample of each
	# whole second after t0 and t1)
	sleep 2
	t0=$(($(date +%s) + 1))
	while (($(date +%s) < t0)); do sleep 0.01; done
	c0=$(proc_cpu_ms "$pid")
	sleep 10
	t1=$(date +%s)
	c1=$(proc_cpu_ms "$pid")
	sleep 2.5 # the values stamped after t1 have arrived
	read -r ut0 u0 < <(value_at "$D" "m$ver" "$user" "$t0")
	read -r ut1 u1 < <(value_at "$D" "m$ver" "$user" "$t1")
	read -r _ s0 < <(value_at "$D" "m$ver" "$sys" "$t0")
	read -r _ s1 < <(value_at "$D" "m$ver" "$sys" "$t1")
	if [[ -n ${u0:-} && -n ${u1:-} && -n ${s0:-} && -n ${s1:-} ]]; then
		read -r got want ok < <(awk -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" \
			-v a="$ut0" -v b="$ut1" -v c0="$c0" -v c1="$c1" -v dt=$((t1 - t0)) 'BEGIN {
			got = ((u1 - u0) + (s1 - s0)) / (b - a); want = (c1 - c0) / dt
			# samples and /proc a fraction of a second apart, /proc to a
			# tick: 15 % or 5 ms/s, whichever is more; the target spins
			# 60 ms/s, so at least 30 ms/s shows it ran as asked
			tol = want * 0.15; if (tol < 5) tol = 5
			d = got - want; if (d < 0) d = -d
			printf "%.1f %.1f %d\n", got, want, (want >= 30 && d <= tol) }')
		if ((ok)); then
			pass "$T: CPU time rate matches /proc/<pid>/stat" "$got ms/s published, $want ms/s by /proc over $((t1 - t0)) s"
		else
			fail "$T: CPU time rate" "$got ms/s published, $want ms/s by /proc over $((t1 - t0)) s"
		fi
	else
		fail "$T: CPU time rate" "no values around $t0..$t1"
	fi
	f=$(csv_file "$D" "m$ver" "$pause")
	if [[ -n $f ]] && awk -F, 'NR > 1 { if (n++ && $2 < p) bad = 1; p = $2 } END { exit !(n >= 5 && !bad && p > 0) }' "$f"; then
		pass "$T: dotnet.gc.pause.time in ms, never decreasing" "$(tail -1 "$f" | cut -d, -f2) ms after $(($(wc -l <"$f") - 1)) values"
	else
		fail "$T: dotnet.gc.pause.time" "${f:-not published}: $(tail -2 "$f" 2>/dev/null | tr '\n' ' ')"
	fi
	heap=$(csv_last "$D" "m$ver" bytes-gc-heap-size)
	gen2=$(ls "$D"/csv/*/dotnet-m"$ver"/ | grep -c 'dotnet.gc.last_collection.heap.size:gc.heap.generation=')
	if [[ -n $heap ]] && ((gen2 >= 3)); then
		pass "$T: gc-heap-size beside the meter's heap size per generation" "gc-heap-size $heap, $gen2 generations"
	else
		fail "$T: gc-heap-size beside the meter" "gc-heap-size '${heap}', $gen2 generation series"
	fi
	# thread.count and queue.length are levels (the runtime declares them
	# counters): gauges, never DERIVE
	lv=$(ls "$D"/csv/*/dotnet-m"$ver"/ | grep -E 'dotnet.thread_pool.(thread.count|queue.length)-' | sed 's/-[0-9-]*$//' | sort | tr '\n' ' ')
	if [[ $lv == "gauge-System.Runtime:dotnet.thread_pool.queue.length gauge-System.Runtime:dotnet.thread_pool.thread.count " ]]; then
		tc=$(csv_last "$D" "m$ver" gauge-System.Runtime:dotnet.thread_pool.thread.count)
		pass "$T: thread pool thread count and queue length are gauges" "thread.count $tc"
	else
		fail "$T: thread pool levels" "published as: $lv"
	fi
	if grep -E '\[(error|warning)\]' "$D/collectd.log" | grep -q .; then
		fail "$T: no error or warning in the log" "$(grep -E '\[(error|warning)\]' "$D/collectd.log" | head -3)"
	else
		pass "$T: no error or warning in the log"
	fi
	collectd_stop >/dev/null
	stop_target "$pid" >/dev/null
done
exit 0
