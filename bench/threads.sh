#!/usr/bin/env bash
# bench/threads.sh -- where collectd's CPU goes, thread by thread, while it
# watches N real .NET processes with the dotnet plugin.
#
# Run on demand (not part of tests/run). Starts N CounterTargets (.NET 10,
# 0.5 MB/s of allocations), collectd with the plugin (one <Process> block
# matching them) and a writer, waits until every target is watched and
# WARMUP s more, then reads every thread's run time (schedstat, ns) and its
# voluntary and involuntary context switches before and after SECONDS s.
# Prints per thread: µs of CPU per second per watched process, wakeups
# (voluntary switches) per second, preemptions per second.
#
# Usage: bench/threads.sh [-n N] [-s SECONDS] [-w WARMUP] [-i INTERVAL]
#                         [-W network|csv] [-g "GLOBAL OPTION"]...
#   -g adds a global collectd option (e.g. -g "WriteThreads 1")
# Environment: REPO, BUILD (default <repo>/build), PLUGIN_SO (default
# $BUILD/c/.libs/dotnet.so).
set -u

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$REPO/build}
PLUGIN_SO=${PLUGIN_SO:-$BUILD/c/.libs/dotnet.so}
N=1 SECS=30 WARMUP=5 INTERVAL=1 WRITER=network GLOBALS=
while (($#)); do
	case $1 in
	-n) N=$2; shift ;;
	-s) SECS=$2; shift ;;
	-w) WARMUP=$2; shift ;;
	-i) INTERVAL=$2; shift ;;
	-W) WRITER=$2; shift ;;
	-g) GLOBALS+="$2"$'\n'; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "threads.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[[ -f $PLUGIN_SO ]] || { echo "threads.sh: no plugin at $PLUGIN_SO (tests/run build)" >&2; exit 1; }
export REPO BUILD PLUGIN_SO
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotnet-threads.XXXXXX") || exit 1
export TARGET_RUN_DIR=$WORK/targets
# shellcheck source=../tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"
SINK=
cleanup() {
	[[ -n ${COLLECTD_PID:-} ]] && collectd_stop 5 >/dev/null 2>&1
	stop_all_targets >/dev/null 2>&1
	[[ -n $SINK ]] && kill "$SINK" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

dotnet_build_targets >"$WORK/build.log" 2>&1 || { echo "threads.sh: building the targets failed" >&2; cat "$WORK/build.log" >&2; exit 1; }
for ((i = 0; i < N; i++)); do
	start_target CounterTarget 10 --seconds 7778 --alloc-mb-per-sec 0.5 >/dev/null || exit 1
done
body=$GLOBALS
if [[ $WRITER == network ]]; then
	export COLLECTD_CSV=0 COLLECTD_PLUGINS="logfile network"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    s.recv(65536)' "$WORK/port" &
	SINK=$!
	wait_until 10 test -s "$WORK/port" || { echo "threads.sh: no UDP sink" >&2; exit 1; }
	body+="LoadPlugin network
<Plugin network>
  Server \"127.0.0.1\" \"$(cat "$WORK/port")\"
</Plugin>"
fi
body+="
LoadPlugin dotnet
<Plugin dotnet>
  Interval $INTERVAL
  MaxProcesses 512
  <Process \"bench\">
    CommandLine \"CounterTarget --seconds 7778 \"
  </Process>
</Plugin>"
collectd_start "$WORK/cd" "$body" || exit 1
watched() { (($(grep -c '": watching pid ' "$WORK/cd/collectd.log") >= N)); }
wait_until 120 watched || { echo "threads.sh: not every target watched in 120 s" >&2; exit 1; }
sleep "$WARMUP"

snap() { # one line per thread: tid comm run_ns voluntary involuntary
	local t
	for t in /proc/"$COLLECTD_PID"/task/*; do
		printf '%s %s %s %s %s\n' "${t##*/}" "$(tr ' ' '_' <"$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")" \
			"$(awk '/^voluntary_ctxt/ { print $2 }' "$t/status")" \
			"$(awk '/^nonvoluntary_ctxt/ { print $2 }' "$t/status")"
	done | sort
}
snap >"$WORK/a"
sleep "$SECS" # the measurement window
snap >"$WORK/b"
echo "# collectd watching $N CounterTarget(s), Interval $INTERVAL, writer $WRITER, ${SECS} s; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
[[ -n $GLOBALS ]] && echo "# global options: $(tr '\n' ';' <<<"$GLOBALS")"
join "$WORK/a" "$WORK/b" | awk -v s="$SECS" -v n="$N" '
	{ cpu = ($7 - $3) / 1e3 / s / n; tot += cpu
	  printf "%-16s %8.1f µs/s per process  %6.2f wakeups/s  %5.2f preemptions/s\n", $2, cpu, ($8 - $4) / s, ($9 - $5) / s }
	END { printf "%-16s %8.1f µs/s per process\n", "all threads", tot }'
