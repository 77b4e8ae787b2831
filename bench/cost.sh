#!/usr/bin/env bash
# bench/cost.sh -- what watching N .NET processes costs, side by side.
#
# Run on demand (not part of tests/run). For each N it starts N real .NET
# processes (CounterTarget, steady small allocation rate) and watches them at
# a 1 s interval, one mode after the other, REPS times:
#   plugin    collectd + the dotnet plugin (one <Process> block, CommandLine
#             regex matching exactly these targets) + the writer (-W): csv
#             to tmpfs (default; its rows give the missed intervals), or
#             network (collectd's binary protocol over UDP to a sink on
#             127.0.0.1, as collectd usually ships values to a server)
#   counters  one `dotnet-counters collect --refresh-interval 1` per process
#   baseline  the same collectd (logfile + writer) without the plugin
#   before    as plugin, with another build ($PLUGIN_SO_BEFORE): before/after
#   listen    as plugin, the targets reached through a Listen socket they
#             connect to (DOTNET_DiagnosticPorts, set on every target when
#             this mode is asked for) instead of their sockets in /tmp
#   tuned     as plugin, with collectd's global options given by -g (e.g.
#             -g "WriteThreads 1"): a tuning measured side by side
#   floor     collectd + bench/floor.c, a plugin that only dispatches as
#             many values as the dotnet plugin does (-V per process per
#             interval, N times): what any collectd plugin publishing these
#             values costs at least; floor_tuned: the same with -g
#   floor_loaded, floor_loaded_tuned
#             the floor modes while every target streams its counters
#             to a `triggerdump monitor` (one per target, output
#             dropped; their CPU is not counted): the targets' runtimes
#             do the EventPipe work they do for the plugin, so the
#             floor's collectd shares the CPUs with the same load as the
#             plugin's (the plain floor runs beside idle targets)
# Each run: start, warm up (until every watcher has written output, then
# WARMUP s more), then measure over SECONDS s:
#   CPU  utime+stime deltas (/proc/<pid>/stat) of collectd / of every
#        dotnet-counters
#   mem  RSS and PSS (/proc/<pid>/smaps_rollup) at the end of the window
#   load 1-minute load average at the start and the end of the window
#   miss (plugin) seconds without a row, over every instance's csv files:
#        a gap of g s between consecutive rows is g-1 missed intervals
# The summary prints, per N and mode, the median over the runs with min..max,
# per monitored process: CPU s per hour, µs CPU per second, RSS/PSS KiB; the
# ratios counters/plugin (c/p: raw collectd figures, the baseline not
# subtracted, which favours dotnet-counters; c/(p-b): against the plugin's
# net cost, what it adds to a collectd already running), the plugin's net
# cost, the same for tuned, and the command reproducing each row; with the
# floor modes, c/floor: the ratio no collectd plugin could beat (with
# floor_tuned for tuned).
#
# Usage: bench/cost.sh [-n "1 10 50 100"] [-r REPS] [-s SECONDS] [-m "plugin counters baseline"]
#                      [-w WARMUP] [-a ALLOC_MB_PER_SEC] [-v DOTNET_VER] [-o OUTDIR] [--scale "50 100 150"]
#                      [-W csv|network] [-g "GLOBAL OPTION"]... [-V VALUES]
# Environment: REPO, BUILD (default <repo>/build), PLUGIN_SO (default
# $BUILD/c/.libs/dotnet.so), COST_TMP (default /dev/shm, else $BUILD).
# Raw figures: OUTDIR/runs.tsv (one line per run); summary: OUTDIR/summary.txt.
set -u

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$REPO/build}
PLUGIN_SO=${PLUGIN_SO:-$BUILD/c/.libs/dotnet.so}
COLLECTD_PLUGINS="csv logfile"
NS="1 10 50 100"
REPS=3
SECONDS_=60
MODES="plugin counters baseline"
WARMUP=5
ALLOC=0.5
VER=10
SCALE=
OUT=
WRITER=csv
GLOBALS= GOPTS=()
# values the dotnet plugin publishes per .NET 10 CounterTarget and interval
# (27: the files of one instance in its csv output), for the floor modes
VPT=27
ARGS_ORIG=("$@")
while (($#)); do
	case $1 in
	-n) NS=$2; shift ;;
	-r) REPS=$2; shift ;;
	-s) SECONDS_=$2; shift ;;
	-m) MODES=$2; shift ;;
	-w) WARMUP=$2; shift ;;
	-a) ALLOC=$2; shift ;;
	-v) VER=$2; shift ;;
	-o) OUT=$2; shift ;;
	--scale) SCALE=$2; shift ;;
	-W) WRITER=$2; shift ;;
	-g) GOPTS+=("$2"); GLOBALS+="$2"$'\n'; shift ;;
	-V) VPT=$2; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "cost.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case $WRITER in
csv) ;;
network) export COLLECTD_CSV=0 COLLECTD_PLUGINS="logfile network" ;;
*) echo "cost.sh: -W csv or network" >&2; exit 2 ;;
esac
[[ $WRITER == network && -n $SCALE ]] && { echo "cost.sh: --scale counts csv rows: use -W csv" >&2; exit 2; }
[[ $MODES == *tuned* && -z $GLOBALS ]] && { echo "cost.sh: mode tuned needs -g \"OPTION VALUE\"" >&2; exit 2; }
[[ $VPT =~ ^[1-9][0-9]*$ ]] || { echo "cost.sh: -V needs a positive number" >&2; exit 2; }
OUT=${OUT:-$BUILD/bench/cost-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 1
TMPROOT=${COST_TMP:-/dev/shm}
[[ -d $TMPROOT && -w $TMPROOT ]] || TMPROOT=$BUILD
WORK=$(mktemp -d "$TMPROOT/dotnet-cost.XXXXXX") || exit 1
export TARGET_RUN_DIR=$WORK/targets

# shellcheck source=../tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

CLK_TCK=$(getconf CLK_TCK)
TAG=7777 # --seconds value that marks our targets (the CommandLine rule matches it)
COUNTERS_PIDS=()

cleanup() {
	local p
	for p in "${COUNTERS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${COUNTERS_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	COUNTERS_PIDS=()
	stop_monitors
	[[ -n ${COLLECTD_PID:-} ]] && collectd_stop 5 >/dev/null
	[[ -n ${SINK_PID:-} ]] && kill "$SINK_PID" 2>/dev/null
	stop_all_targets >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s cost.sh: %s\n' "$(date +%T)" "$*" >&2; }

cpu_ticks() { # PID...: sum of utime+stime (ticks)
	local p t=0 s
	for p in "$@"; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		# shellcheck disable=SC2086
		set -- $s
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}

sched_ns() { # PID [COMM-PREFIX]: CPU time of its threads (those named COMM-PREFIX*), ns (schedstat: exact, where stat has 10 ms ticks)
	local t x=0 ns c
	for t in /proc/"$1"/task/*; do
		if [[ -n ${2:-} ]]; then
			c=$(cat "$t/comm" 2>/dev/null) || continue
			[[ $c == "$2"* ]] || continue
		fi
		read -r ns _ <"$t/schedstat" 2>/dev/null || continue
		x=$((x + ns))
	done
	echo "$x"
}

mem_kib() { # PID...: "RSS PSS" summed (KiB)
	local p
	for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done |
		awk '/^Rss:/ { r += $2 } /^Pss:/ { p += $2 } END { printf "%d %d\n", r, p }'
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# start N targets, 4 at a time; TARGETS holds their pids
start_targets() {
	local n=$1 i f
	TARGETS=()
	f=$WORK/started
	: >"$f"
	local jobs=()
	for ((i = 0; i < n; i++)); do
		# with the listen mode, every target also connects to its socket
		# (retrying, without cost to collectd, while no run listens)
		if [[ " $MODES " == *" listen "* ]]; then
			DOTNET_DiagnosticPorts=$WORK/diag.sock,connect,nosuspend \
				start_target CounterTarget "$VER" --seconds "$TAG" --alloc-mb-per-sec "$ALLOC" >>"$f" &
		else
			start_target CounterTarget "$VER" --seconds "$TAG" --alloc-mb-per-sec "$ALLOC" >>"$f" &
		fi
		jobs+=($!)
		(((i + 1) % 4 == 0)) && { wait "${jobs[@]}"; jobs=(); }
	done
	((${#jobs[@]} == 0)) || wait "${jobs[@]}" # not the UDP sink
	mapfile -t TARGETS <"$f"
	((${#TARGETS[@]} == n)) || { say "started ${#TARGETS[@]} of $n targets"; return 1; }
}

# gaps in the plugin's csv rows inside [T0, T1]: "instances missed"
csv_missed() {
	local dir=$1 t0=$2 t1=$3
	# a value's rows continue in the next day's file (NAME-YYYY-MM-DD) at
	# midnight: files sorted by name, one series per NAME
	find "$dir/csv" -path '*/dotnet-*' -type f 2>/dev/null | sort |
		awk -F, -v t0="$t0" -v t1="$t1" '
		{ f = $0; n = split(f, a, "/"); inst = a[n - 1]; key = f; sub(/-[0-9]+-[0-9]+-[0-9]+$/, "", key)
		  if (key != prev) { last = ""; m = 0; prev = key }
		  while ((getline line < f) > 0) { split(line, c, ","); t = c[1] + 0
		    if (t < t0 || t > t1) continue
		    if (last != "") { g = int(t - last + 0.5); if (g > 1) m += g - 1 }
		    last = t }
		  close(f); seen[inst] = 1; if (m > miss[inst]) miss[inst] = m }
		END { for (i in seen) { k++; tot += miss[i] } printf "%d %d\n", k, tot }'
}

# the network writer's destination: a UDP sink on 127.0.0.1 that reads and
# drops (the "server"; its CPU is not counted)
SINK_PID=
SINK_PORT=
start_sink() {
	local f=$WORK/sink.port
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    s.recv(65536)' "$f" &
	SINK_PID=$!
	wait_until 10 test -s "$f" || { say "the UDP sink did not start"; return 1; }
	SINK_PORT=$(cat "$f")
}

# the load of the floor_loaded modes: a counters session to every target,
# one `triggerdump monitor` each (the plugin's providers and interval)
MONITOR_PIDS=()
start_monitors() {
	local dir=$1 p deadline
	MONITOR_PIDS=()
	for p in "${TARGETS[@]}"; do
		"$TRIGGERDUMP" monitor "$p" --interval 1 --format csv </dev/null >"$dir/monitor-$p.csv" 2>"$dir/monitor-$p.log" &
		MONITOR_PIDS+=($!)
	done
	# every session streaming: each monitor has printed a sample
	deadline=$((SECONDS + 120))
	while (($(find "$dir" -name 'monitor-*.csv' -size +0 | wc -l) < ${#TARGETS[@]})); do
		((SECONDS < deadline)) || { say "not every triggerdump monitor started in 120 s"; stop_monitors; return 1; }
		sleep 1
	done
}
stop_monitors() {
	local p
	for p in "${MONITOR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${MONITOR_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	MONITOR_PIDS=()
}

conf_writer() {
	[[ $WRITER == network ]] || return 0
	cat <<EOF
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "$SINK_PORT"
</Plugin>
EOF
}

conf_plugin() {
	cat <<EOF
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  MaxProcesses 512
  <Process "cost">
    CommandLine "CounterTarget --seconds $TAG "
  </Process>
</Plugin>
EOF
}

# hide_sockets hide|show: renames every target's diagnostic socket to a
# name discovery does not take, and back
HIDDEN=()
hide_sockets() {
	local p s
	if [[ $1 == hide ]]; then
		for p in "${TARGETS[@]}"; do
			s=$(dotnet_diag_socket "$p") || continue
			mv -f "$s" "${s%/*}/hidden-${s##*/}" && HIDDEN+=("$s")
		done
	else
		for s in "${HIDDEN[@]}"; do mv -f "${s%/*}/hidden-${s##*/}" "$s"; done
		HIDDEN=()
	fi
	return 0
}

# run_once MODE N REP: one measurement; appends to runs.tsv, echoes it
run_once() {
	local mode=$1 n=$2 rep=$3 dir pids=() p l0 l1 c0 c1 t0 t1 mem missed="-" inst="-" cmd deadline
	dir=$WORK/run-$mode-$n-$rep
	mkdir -p "$dir"
	case $mode in
	plugin | baseline | before | tuned | listen)
		local body so=$PLUGIN_SO
		body=$(conf_writer)
		[[ $mode == tuned ]] && body=$GLOBALS$body
		[[ $mode != baseline ]] && body+=$'\n'$(conf_plugin)
		# listen: the targets' sockets in /tmp are renamed for the run (the
		# runtimes keep listening on them), so that only their connections
		# to the Listen socket reach them
		[[ $mode == listen ]] && body=${body/<Plugin dotnet>/<Plugin dotnet>$'\n'"  Listen \"$WORK/diag.sock\""} &&
			hide_sockets hide
		[[ $mode == before ]] && so=$PLUGIN_SO_BEFORE
		PLUGIN_SO=$so collectd_start "$dir" "$body" || return 1
		pids=("$COLLECTD_PID")
		;;
	floor | floor_tuned | floor_loaded | floor_loaded_tuned)
		local body
		if [[ $mode == floor_loaded* ]]; then start_monitors "$dir" || return 1; fi
		body=$(conf_writer)
		[[ $mode == *tuned ]] && body=$GLOBALS$body
		body+=$'\n'"LoadPlugin floor"$'\n'"<Plugin floor>"$'\n'"  Values $((n * VPT))"$'\n'"  PerInstance $VPT"$'\n'"</Plugin>"
		COLLECTD_EXTRA_SO=$FLOOR_SO collectd_start "$dir" "$body" || return 1
		pids=("$COLLECTD_PID")
		;;
	counters)
		COUNTERS_PIDS=()
		for p in "${TARGETS[@]}"; do
			"$DOTNET_COUNTERS" collect -p "$p" --refresh-interval 1 --format csv \
				-o "$dir/counters-$p.csv" </dev/null >"$dir/counters-$p.log" 2>&1 &
			COUNTERS_PIDS+=($!)
		done
		pids=("${COUNTERS_PIDS[@]}")
		;;
	esac
	# warm up: every watcher has written output (or 120 s), then WARMUP s
	deadline=$((SECONDS + 120))
	while ((SECONDS < deadline)); do
		case $mode in
		plugin | before | tuned | listen)
			if [[ $WRITER == csv ]]; then
				(($(find "$dir/csv" -maxdepth 2 -type d -name 'dotnet-cost*' | wc -l) >= n)) && break
			else # every target watched (the plugin logs each session)
				(($(grep -c '": watching pid ' "$dir/collectd.log") >= n)) && break
			fi
			;;
		counters) (($(find "$dir" -name 'counters-*.csv' -size +1k | wc -l) >= n)) && break ;;
		baseline | floor*) break ;;
		esac
		sleep 1
	done
	sleep "$WARMUP"
	l0=$(load1)
	# CPU in ns: collectd (one process, threads that live as long as it) by
	# schedstat; dotnet-counters (many processes) by stat's ticks
	local w0=0 w1=0 c0 c1
	if [[ $mode == counters ]]; then c0=$(($(cpu_ticks "${pids[@]}") * 1000000000 / CLK_TCK)); else
		w0=$(sched_ns "${pids[0]}" writer); c0=$(sched_ns "${pids[0]}"); fi
	t0=$(date +%s.%N)
	sleep "$SECONDS_"
	if [[ $mode == counters ]]; then c1=$(($(cpu_ticks "${pids[@]}") * 1000000000 / CLK_TCK)); else
		c1=$(sched_ns "${pids[0]}"); w1=$(sched_ns "${pids[0]}" writer); fi
	t1=$(date +%s.%N)
	l1=$(load1)
	mem=$(mem_kib "${pids[@]}")
	if [[ ($mode == plugin || $mode == before || $mode == tuned || $mode == listen) && $WRITER == csv ]]; then
		read -r inst missed < <(csv_missed "$dir" "$t0" "$t1")
	fi
	case $mode in
	plugin | baseline | before | tuned | listen | floor*)
		collectd_stop 10 >/dev/null
		[[ $mode == listen ]] && hide_sockets show
		stop_monitors
		;;
	counters)
		for p in "${COUNTERS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
		for p in "${COUNTERS_PIDS[@]}"; do wait "$p" 2>/dev/null; done
		COUNTERS_PIDS=()
		;;
	esac
	rm -rf "$dir"
	local line
	line=$(awk -v mode="$mode" -v n="$n" -v rep="$rep" -v c="$((c1 - c0))" \
		-v t0="$t0" -v t1="$t1" -v mem="$mem" -v l0="$l0" -v l1="$l1" -v inst="$inst" -v missed="$missed" -v w="$((w1 - w0))" \
		'BEGIN { split(mem, m, " "); printf "%s\t%d\t%d\t%.4f\t%.3f\t%d\t%d\t%s\t%s\t%s\t%s\t%.4f\n",
			mode, n, rep, c / 1e9, t1 - t0, m[1], m[2], l0, l1, inst, missed, w / 1e9 }')
	printf '%s\n' "$line" >>"$OUT/runs.tsv"
	say "$(printf '%s' "$line" | tr '\t' ' ')"
}

summarise() {
	local self
	self="bench/cost.sh -r $REPS -s $SECONDS_ -a $ALLOC -v $VER -W $WRITER"
	((${#GOPTS[@]})) && self+=$(printf ' -g "%s"' "${GOPTS[@]}")
	awk -F'\t' -v self="$self" '
	function median(arr, k,   i, j, t) { for (i = 2; i <= k; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
		return k % 2 ? arr[(k + 1) / 2] : (arr[k / 2] + arr[k / 2 + 1]) / 2 }
	function stat3(key, col,   k, a, i, lo, hi) { k = cnt[key]; for (i = 1; i <= k; i++) a[i] = v[key, i, col]
		med = median(a, k); lo = a[1]; hi = a[k]; s_lo = lo; s_hi = hi; return med }
	$1 == "mode" { next }
	{ key = $1 SUBSEP $2; i = ++cnt[key]; n = $2
	  v[key, i, "cpuh"] = $4 / $5 * 3600 / n           # CPU s per monitored process per hour
	  v[key, i, "us"] = $4 / $5 * 1e6 / n              # µs CPU per monitored process per second
	  v[key, i, "rss"] = $6 / n; v[key, i, "pss"] = $7 / n
	  v[key, i, "raw_rss"] = $6; v[key, i, "raw_pss"] = $7; v[key, i, "cpu_s"] = $4 / $5
	  v[key, i, "load"] = ($8 + $9) / 2
	  v[key, i, "nowr"] = ($4 - ($12 == "" ? 0 : $12)) / $5 * 1e6 / n   # µs/proc/s without the collectd write threads
	  v[key, i, "miss"] = ($11 == "-" ? 0 : $11); v[key, i, "inst"] = ($10 == "-" ? 0 : $10)
	  if (!(n in seen_n)) { seen_n[n] = 1; ns[++nn] = n }
	  modes[$1] = 1 }
	END {
	  printf "%-9s %4s  %-22s %-20s %-22s %-22s %-14s %s\n", "mode", "N", "CPU s/proc/h", "µs CPU/proc/s", "RSS KiB/proc", "PSS KiB/proc", "load1", "missed"
	  for (x = 1; x <= nn; x++) { n = ns[x]
	    for (mo in modes) { key = mo SUBSEP n; if (!(key in cnt)) continue
	      cpuh = stat3(key, "cpuh"); c1 = s_lo; c2 = s_hi
	      us = stat3(key, "us"); u1 = s_lo; u2 = s_hi
	      rss = stat3(key, "rss"); r1 = s_lo; r2 = s_hi
	      pss = stat3(key, "pss"); p1 = s_lo; p2 = s_hi
	      ld = stat3(key, "load"); ld1 = s_lo; ld2 = s_hi
	      ms = stat3(key, "miss"); m2 = s_hi; ins = stat3(key, "inst")
	      M[mo, n, "us"] = us; M[mo, n, "pss"] = pss; M[mo, n, "rss"] = rss
	      M[mo, n, "rawpss"] = stat3(key, "raw_pss"); M[mo, n, "cpus"] = stat3(key, "cpu_s")
	      M[mo, n, "nowr"] = stat3(key, "nowr"); M[mo, n, "nowr_lo"] = s_lo; M[mo, n, "nowr_hi"] = s_hi
	      printf "%-9s %4d  %7.2f (%.2f..%.2f)  %7.1f (%.1f..%.1f)  %8.0f (%.0f..%.0f)  %8.0f (%.0f..%.0f)  %.2f (%.2f..%.2f)  %s\n",
	        mo, n, cpuh, c1, c2, us, u1, u2, rss, r1, r2, pss, p1, p2, ld, ld1, ld2,
	        ((mo == "plugin" || mo == "before" || mo == "tuned" || mo == "listen") && ins > 0 ? sprintf("%d (max %d) over %d inst, %d runs", ms, m2, ins, cnt[key]) : sprintf("%d runs", cnt[key]))
	      printf "          reproduce: %s -n %d -m %s\n", self, n, mo } }
	  print ""
	  printf "%-7s %4s  %-10s %-14s %-10s %-10s %-10s %-12s %-14s %-24s %s\n", "", "N", "CPU c/p", "CPU c/(p-b)", "c/floor", "PSS c/p", "RSS c/p", "net µs/s", "net PSS KiB", "µs/s w/o write threads", "above loaded floor"
	  for (x = 1; x <= nn; x++) { n = ns[x]
	    for (y = 1; y <= 2; y++) { p = y == 1 ? "plugin" : "tuned"
	      if (!((p, n, "us") in M)) continue
	      cr = (M[p, n, "us"] > 0 && ("counters", n, "us") in M) ? sprintf("%.1fx", M["counters", n, "us"] / M[p, n, "us"]) : "-"
	      net = ("baseline", n, "us") in M ? M[p, n, "us"] - M["baseline", n, "us"] : -1
	      cn = (net > 0 && ("counters", n, "us") in M) ? sprintf("%.1fx", M["counters", n, "us"] / net) : "-"
	      fl = y == 1 ? "floor" : "floor_tuned"
	      cf = ((fl, n, "us") in M && ("counters", n, "us") in M) ? sprintf("%.1fx", M["counters", n, "us"] / M[fl, n, "us"]) : "-"
	      pr = ("counters", n, "pss") in M ? sprintf("%.0fx", M["counters", n, "pss"] / M[p, n, "pss"]) : "-"
	      rr = ("counters", n, "rss") in M ? sprintf("%.0fx", M["counters", n, "rss"] / M[p, n, "rss"]) : "-"
	      nu = net >= 0 ? sprintf("%.1f", net) : "-"
	      np = ("baseline", n, "pss") in M ? sprintf("%.0f", (M[p, n, "rawpss"] - M["baseline", n, "rawpss"]) / n) : "-"
	      nw = sprintf("%.1f (%.1f..%.1f)", M[p, n, "nowr"], M[p, n, "nowr_lo"], M[p, n, "nowr_hi"])
	      fld = y == 1 ? "floor_loaded" : "floor_loaded_tuned"
	      af = (fld, n, "us") in M ? sprintf("%.1f", M[p, n, "us"] - M[fld, n, "us"]) : "-"
	      printf "%-7s %4d  %-10s %-14s %-10s %-10s %-10s %-12s %-14s %-24s %s\n", p, n, cr, cn, cf, pr, rr, nu, np, nw, af } } }' "$OUT/runs.tsv"
}

# scale: the largest N (of SCALE) whose plugin run at 1 s misses no interval
scale() {
	local n best=0 line
	for n in $SCALE; do
		stop_all_targets >/dev/null 2>&1
		start_targets "$n" || break
		run_once plugin "$n" scale >/dev/null || break
		# shellcheck disable=SC2046
		set -- $(tail -1 "$OUT/runs.tsv")
		if [[ ${11} == 0 && ${10} == "$n" ]]; then best=$n; else say "N=$n: ${11} missed intervals over ${10} instances"; break; fi
	done
	echo "scale: largest N without a missed interval at 1 s: $best (tried: $SCALE)"
}

[[ -x $DOTNET_COUNTERS ]] || dotnet_tools_install || exit 1
[[ -f $PLUGIN_SO ]] || { echo "cost.sh: no plugin at $PLUGIN_SO" >&2; exit 1; }
FLOOR_SO=$WORK/floor.so
TRIGGERDUMP=${TRIGGERDUMP:-$BUILD/c/triggerdump}
[[ $MODES != *floor_loaded* || -x $TRIGGERDUMP ]] || { echo "cost.sh: no triggerdump at $TRIGGERDUMP (tests/run build)" >&2; exit 1; }
if [[ $MODES == *floor* ]]; then
	${CC:-gcc} -std=c11 -O2 -fPIC -shared -DHAVE_CONFIG_H -I/usr/include/collectd -I/usr/include/collectd/core \
		-I/usr/include/collectd/core/daemon -Wall -Wextra -Werror -o "$FLOOR_SO" "$REPO/bench/floor.c" ||
		{ echo "cost.sh: cannot build bench/floor.c" >&2; exit 1; }
fi
[[ -f $OUT/runs.tsv ]] || printf 'mode\tN\trep\tcpu_s\twindow_s\trss_kib\tpss_kib\tload_start\tload_end\tinstances\tmissed\twriter_cpu_s\n' >"$OUT/runs.tsv"
[[ $WRITER == network ]] && { start_sink || exit 1; }
say "results in $OUT; work in $WORK; plugin $PLUGIN_SO; writer $WRITER; args: ${ARGS_ORIG[*]}"
for n in $NS; do
	stop_all_targets >/dev/null 2>&1
	say "starting $n CounterTarget (.NET $VER, --alloc-mb-per-sec $ALLOC)"
	start_targets "$n" || exit 1
	for ((rep = 1; rep <= REPS; rep++)); do
		for mode in $MODES; do run_once "$mode" "$n" "$rep"; done
	done
done
stop_all_targets >/dev/null 2>&1
[[ -n $SCALE ]] && scale | tee "$OUT/scale.txt"
{ echo "cost.sh ${ARGS_ORIG[*]}  ($(date -Is), $(nproc) CPUs, plugin $PLUGIN_SO, writer $WRITER)"; summarise; } | tee "$OUT/summary.txt"
