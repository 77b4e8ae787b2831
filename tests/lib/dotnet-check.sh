#!/usr/bin/env bash
# tests/lib/dotnet-check.sh -- checks the .NET side of the test rig against
# the reference tool: builds the test apps, runs each on .NET 8, 9 and 10 and
# compares what dotnet-counters reads with the figures the apps are built to
# show. About a minute and a half; ends with "N passed, N failed".
#
# usage: tests/lib/dotnet-check.sh [VER...]      (default: 8 9 10)
set -u
# shellcheck source=tests/lib/dotnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/dotnet.sh"
trap stop_all_targets EXIT

vers=("$@")
((${#vers[@]})) || vers=("${DOTNET_TARGET_VERSIONS[@]}")
work=$BUILD/dotnet-check
mkdir -p "$work"
passed=0 failed=0

check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		printf 'ok     %s\n' "$what"
	else
		failed=$((failed + 1))
		printf 'FAILED %s\n' "$what"
	fi
}

# values CSV PROVIDER NAME: the values of one series, one a line
values() {
	awk -F, -v p="$2" -v n="$3" '$2 == p && $3 == n { print $5 }' "$1"
}

# in_range CSV PROVIDER NAME LO HI: the last value is within [LO, HI]
in_range() {
	local v
	v=$(values "$1" "$2" "$3" | tail -n 1)
	[[ -n $v ]] || { echo "    no '$2' '$3' in $1" >&2; return 1; }
	awk -v v="$v" -v lo="$4" -v hi="$5" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
		{ echo "    '$2' '$3' = $v, expected $4..$5" >&2; return 1; }
}

dotnet_build_targets || exit 1
dotnet_tools_install || exit 1

for v in "${vers[@]}"; do
	rt=$(target_runtime_version CounterTarget "$v")
	csv=$work/counter-net$v.csv
	pid=$(start_target CounterTarget "$v" --heap-mb 100) || { check "CounterTarget .NET $v starts" false; continue; }
	check "CounterTarget .NET $v ($rt): dotnet-counters collect" \
		counters_reference "$pid" 5 "$csv" 'EventCounters\System.Runtime,CollectdDotnet-Test,CollectdDotnet.Test'
	check "CounterTarget .NET $v: stops on SIGTERM" stop_target "$pid"
	T=CollectdDotnet-Test M=CollectdDotnet.Test R=System.Runtime
	check "  fixed-value = 42.5" in_range "$csv" $T "Fixed value" 42.5 42.5
	check "  ticks ~ 1000/s" in_range "$csv" $T "Ticks (Count / 1 sec)" 950 1050
	check "  request-time mean = 20" in_range "$csv" $T "Request time (ms)" 20 20
	check "  requests ~ 50/s" in_range "$csv" $T "Requests (Count / 1 sec)" 40 60
	check "  orders ~ 50/s" in_range "$csv" $M "orders ({order} / 1 sec)[region=eu]" 40 60
	check "  queue-length = 7" in_range "$csv" $M "queue-length ({item})" 7 7
	check "  temperature = 21.5" in_range "$csv" $M "temperature (Cel)" 21.5 21.5
	check "  latency p50 = 60" in_range "$csv" $M "latency (ms)[Percentile=50]" 60 60
	check "  latency p95 = 100" in_range "$csv" $M "latency (ms)[Percentile=95]" 100 100
	check "  latency p99 = 100" in_range "$csv" $M "latency (ms)[Percentile=99]" 100 100
	check "  gc-heap-size >= 104 MB (--heap-mb 100)" in_range "$csv" $R "GC Heap Size (MB)" 104 200
	check "  gen-0 GCs happen" bash -c "awk -F, '\$3 ~ /^Gen 0 GC Count/ { s += \$5 } END { exit !(s > 0) }' '$csv'"

	port=$((18400 + v))
	pid=$(start_target WebTarget "$v" --urls "http://127.0.0.1:$port") || { check "WebTarget .NET $v starts" false; continue; }
	check "WebTarget .NET $v: GET / = ok" test "$(curl -s --max-time 5 "http://127.0.0.1:$port/")" = ok
	check "WebTarget .NET $v: GET /work" test "$(curl -s --max-time 5 "http://127.0.0.1:$port/work")" = "done 1048576"
	check "WebTarget .NET $v: stops on SIGTERM" stop_target "$pid"

	csv=$work/spike-net$v.csv
	pid=$(start_target SpikeApp "$v" --delay-seconds 3 --spike-seconds 4 --period-seconds 9 --spikes 1) ||
		{ check "SpikeApp .NET $v starts" false; continue; }
	check "SpikeApp .NET $v: dotnet-counters collect" \
		counters_reference "$pid" 12 "$csv" 'EventCounters\System.Runtime[gc-heap-size]'
	log=$(target_log "$pid")
	stop_target "$pid" >/dev/null
	heap=$(values "$csv" System.Runtime "GC Heap Size (MB)" | awk '{ printf "%.0f ", $1 }')
	echo "    gc-heap-size: $heap"
	check "  baseline ~250 MB" bash -c "awk '{ exit !(\$1 >= 249 && \$1 <= 256) }' <<<'$heap'"
	check "  spike ~630 MB" bash -c "tr ' ' '\n' <<<'$heap' | awk '\$1 >= 629 && \$1 <= 640 { n++ } END { exit !(n >= 3) }'"
	check "  back to ~250 MB" bash -c "awk '{ exit !(\$NF >= 249 && \$NF <= 256) }' <<<'$heap'"
	check "  SPIKE start/end lines" bash -c "grep -q '^SPIKE start .*Z heap=6' '$log' && grep -q '^SPIKE end .*Z heap=2' '$log'"
done

echo "$passed passed, $failed failed"
((failed == 0))
