#!/usr/bin/env bash
# tests/integration/dumps.sh -- dumps triggered by collectd's threshold plugin
# (issue 4), end to end: Debian's collectd and its threshold plugin, the
# dotnet plugin, SpikeApp (contrib/spike-app: ~250 MB GC heap, spikes to
# ~630 MB) on real .NET runtimes, createdump (run by the runtime or by the
# plugin), and dotnet-dump to open what was written.
#
# Every case starts its own SpikeApp (spiking until stopped) and its own
# collectd (Interval 1) that watches it by pid, with this threshold rule:
#   <Plugin "dotnet"><Type "bytes"> Instance "gc-heap-size"
#     WarningMax 500000000  Persist true </Type></Plugin>
# and its own <Dump> block:
#   heap-ipc   .NET 10, Method ipc, Type heap, MinInterval 600, over two
#              spikes: exactly one dump, mode 0600, in a directory the plugin
#              created 0711, an OKAY notification with its path, the
#              MinInterval refusal logged once; dotnet-dump shows a GC heap
#              above 500 MB in it (the spike, not the baseline)
#   heap-exec  the same with Method exec (createdump run by the plugin) on a
#              self-contained .NET 8
#   flapping   6 spikes of 2 s every 4 s, Type mini, MinInterval 5, MaxDumps 2:
#              exactly two dumps, at least MinInterval apart; each refusal
#              logged once, not at every notification
#   readonly   Directory on a read-only tmpfs (as root; else a 0500 directory):
#              FAILURE notification with the reason, collectd keeps collecting
#   full-ipc, full-exec
#              Directory on a full 1 MB tmpfs (root only): FAILURE with the
#              writer's reason (no space), no partial dump or staging
#              directory left behind, collectd keeps collecting
#   timeout    Method exec, Timeout 0.3 s, Type heap: createdump is killed,
#              FAILURE, and the target it had stopped runs on
#   missing    the threshold plugin's "not updated" FAILURE (target stopped,
#              then gone), with Severity failure and MinInterval 0: no dump
#   minfree    MinFreeSpace above the free space: FAILURE "below MinFreeSpace",
#              no file
#   symlink    Directory is a symbolic link: FAILURE, nothing written through it
# Every case with a dump or a failed one (heap-*, flapping and the failure
# cases) also checks the plugin's counters in the csv files, read after
# collectd stopped: derive-dumps = the dumps written (= OKAY notifications),
# derive-dump-failures = the FAILURE notifications, and both series exist
# from the first read (first row 0).
# Timing is not asserted here (bench/breach-to-dump.sh measures it).
# DUMPS_CASES="flapping symlink" runs only the cases named; DUMPS_KEEP=1
# keeps the logs (not the dumps) in $BUILD/dumps-test.*.
#
# Needs: collectd, SpikeApp for .NET 10 and 8 and dotnet-dump (tests/run
# builds and installs them; run alone, this script does so when missing),
# ~1 GB free under $BUILD (a heap dump is ~740 MB; each is deleted as soon as
# it is checked), root for the tmpfs cases. Takes about 2 minutes.
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

THRESHOLD=500000000 # bytes; the spike is ~630 MB, the baseline ~250 MB
T0=$(_now)
NFAIL0=$(grep -c '^FAIL' "$RESULTS" 2>/dev/null)
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/dumps-test.XXXXXX") || exit 1
MOUNTS=()
TPID=
TRUNNING=0
CDIR=
TLOG=

cleanup() {
	collectd_stop 10 >/dev/null 2>&1
	stop_all_targets
	local m
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && umount "$m"
	done
	# dumps are big: never leave one behind; keep the logs when a check
	# failed (or DUMPS_KEEP=1)
	find "$WORK" -name '*.dmp' -delete 2>/dev/null
	if (($(grep -c '^FAIL' "$RESULTS" 2>/dev/null) > NFAIL0)) || [[ ${DUMPS_KEEP:-} == 1 ]]; then
		echo "dumps.sh: logs kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# ---- helpers ----

# conf_body PID DUMP-OPTIONS: the plugin watching PID as instance "spike",
# the <Dump> block, the threshold rule
conf_body() {
	cat <<CONF
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process "spike">
    Pid $1
  </Process>
  <Dump>
$2
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin "dotnet">
    <Type "bytes">
      Instance "gc-heap-size"
      WarningMax $THRESHOLD
      Persist true
    </Type>
  </Plugin>
</Plugin>
CONF
}

# start_case NAME VER DUMP-OPTIONS SPIKEAPP-ARGS...: SpikeApp on .NET VER,
# then collectd watching it, in $WORK/NAME. Sets TPID, TLOG, CDIR.
start_case() {
	local name=$1 ver=$2 dump=$3
	shift 3
	CDIR=$WORK/$name
	mkdir -p "$CDIR"
	if ! TPID=$(start_target SpikeApp "$ver" "$@"); then
		fail "dumps/$name" "SpikeApp (.NET $ver) did not start"
		return 1
	fi
	TRUNNING=1
	TLOG=$(target_log "$TPID")
	if ! collectd_start "$CDIR" "$(conf_body "$TPID" "$dump")"; then
		fail "dumps/$name" "collectd did not start (log $CDIR/collectd.log)"
		return 1
	fi
	if ! wait_until 30 heap_rows_at_least 1; then
		fail "dumps/$name" "no gc-heap-size value of pid $TPID within 30 s"
		return 1
	fi
}

# end_case: stops collectd and the target (TPID stays set for the checks)
end_case() {
	collectd_stop 10 >/dev/null
	if ((TRUNNING)); then
		stop_target "$TPID" >/dev/null 2>&1
		TRUNNING=0
	fi
}

utc_epoch() { date -u -d "$1" +%s.%3N; } # 2026-11-26T10:39:49.712Z -> epoch

# spike_epoch start|end N: when SpikeApp's Nth spike started/ended (epoch)
spike_epoch() {
	local t
	t=$(sed -nE "s/^SPIKE $1 ([^ ]+) .* n=$2( .*)?\$/\\1/p" "$TLOG" | head -1)
	[[ -n $t ]] && utc_epoch "$t"
}

# heap_row_after EPOCH lt|gt: a gc-heap-size row newer than EPOCH is below
# (lt) / above (gt) the threshold, i.e. collectd has seen and judged it
heap_row_after() {
	local f
	f=$(csv_file "$CDIR" spike bytes-gc-heap-size) || return 1
	awk -F, -v t="$1" -v th="$THRESHOLD" -v op="$2" '
		NR > 1 && $1 > t && ((op == "lt" && $2 < th) || (op == "gt" && $2 > th)) { f = 1; exit }
		END { exit !f }' "$f"
}

heap_rows_at_least() { (($(csv_rows "$CDIR" spike bytes-gc-heap-size) >= $1)); }

# wait_spike_over N SECS: SpikeApp's Nth spike ended and collectd has judged
# a value after it (every notification the spike caused has been handled)
wait_spike_over() {
	local end
	wait_until "$2" grep -qE "^SPIKE end .* n=$1\$" "$TLOG" || return 1
	end=$(spike_epoch end "$1") || return 1
	wait_until 20 heap_row_after "$end" lt
}

dumps_in() { find "$1" -maxdepth 1 -name '*.dmp' -type f 2>/dev/null | sort; }
count_lines() { grep -cE "$1" "$CDIR/collectd.log"; } # ERE -> count
dump_ok_re() { echo "severity = OKAY, .*type = dump, .*message = dump of pid $TPID written: "; }
dump_fail_re() { echo "severity = FAILURE, .*type = dump, .*message = dump of pid $TPID failed: "; }
# failure_reason: the reason in the first FAILURE notification of a dump
failure_reason() { grep -m1 -E "$(dump_fail_re)" "$CDIR/collectd.log" | sed 's/.* failed: //'; }

# stamp_epoch FILE: the dump's start time from its name
# (<instance>-<pid>-YYYYmmddTHHMMSS.mmmZ.dmp)
stamp_epoch() {
	local s
	s=$(basename "$1" | sed -nE 's/.*-([0-9]{8})T([0-9]{2})([0-9]{2})([0-9]{2})\.([0-9]{3})Z\.dmp$/\1 \2:\3:\4.\5/p')
	[[ -n $s ]] && date -u -d "$s" +%s.%3N
}

# gc_heap_bytes FILE: the GC heap size that dotnet-dump sees in the dump
gc_heap_bytes() {
	timeout 180 "$DOTNET_DUMP" analyze "$1" -c "eeheap -gc" -c exit </dev/null 2>&1 |
		tee "$CDIR/eeheap.txt" |
		sed -nE 's/.*GC (Allocated )?Heap Size: .*\(([0-9]+)\) bytes.*/\2/p' | tail -1
}

mode_of() { stat -c %a "$1"; }

# tmpfs_at DIR OPTIONS: mount a small tmpfs (root only); unmounted at the end
tmpfs_at() {
	mkdir -p "$1" && mount -t tmpfs -o "$2" tmpfs "$1" && MOUNTS+=("$1")
}
unmount() { mountpoint -q "$1" && umount "$1"; }

# ---- what the cases need ----

for v in 10 8; do
	target_path SpikeApp "$v" >/dev/null 2>&1 || dotnet_build_targets "SpikeApp:$v" >&2 || {
		fail "dumps: setup" "cannot build SpikeApp for .NET $v"
		exit 1
	}
done
[[ -x $DOTNET_DUMP ]] || dotnet_tools_install >&2 || {
	fail "dumps: setup" "cannot install dotnet-dump"
	exit 1
}
[[ $(id -u) == 0 ]] && IS_ROOT=1 || IS_ROOT=0

# check_dump_counts P WRITTEN: the csv files derive-dumps and
# derive-dump-failures of instance spike (call after end_case, so that the
# last read is written): their first row is 0 (the series exist before the
# first dump), their last row is WRITTEN and the number of FAILURE
# notifications; WRITTEN must equal the OKAY notifications too
check_dump_counts() {
	local P=$1 want=$2 ok fails f0 g0 d df
	ok=$(count_lines "$(dump_ok_re)")
	fails=$(count_lines "$(dump_fail_re)")
	d=$(csv_last "$CDIR" spike derive-dumps)
	df=$(csv_last "$CDIR" spike derive-dump-failures)
	f0=$(csv_file "$CDIR" spike derive-dumps) && f0=$(sed -n 2p "$f0" | cut -d, -f2)
	g0=$(csv_file "$CDIR" spike derive-dump-failures) && g0=$(sed -n 2p "$g0" | cut -d, -f2)
	if [[ $d == "$want" && $d == "$ok" && $df == "$fails" && $f0 == 0 && $g0 == 0 ]]; then
		pass "$P: dump counters" "derive-dumps 0 -> $d ($ok OKAY), derive-dump-failures 0 -> $df ($fails FAILURE)"
	else
		fail "$P: dump counters" "derive-dumps ${f0:-?} -> ${d:-?} (want $want, $ok OKAY), derive-dump-failures ${g0:-?} -> ${df:-?} (want $fails FAILURE)"
	fi
}

# ---- heap-ipc, heap-exec: one dump over two spikes, opened by dotnet-dump ----

# heap_case NAME VER METHOD
heap_case() {
	local name=$1 ver=$2 method=$3 dir n f path size heap t
	# a directory that does not exist yet, two levels deep
	dir=$WORK/$name/dumps/new
	start_case "$name" "$ver" "    Directory \"$dir\"
    Type \"heap\"
    Method \"$method\"
    MinInterval 600
    Timeout 120" \
		--delay-seconds 4 --spike-seconds 5 --period-seconds 10 || { end_case; return; }
	local P="dumps/$name (.NET $ver, Method $method)"

	if ! wait_until 120 grep -qE "$(dump_ok_re)" "$CDIR/collectd.log"; then
		fail "$P: dump" "no OKAY dump notification within 120 s: $(failure_reason)"
		end_case
		return
	fi
	if wait_spike_over 2 90; then
		pass "$P: collectd saw both spikes"
	else
		fail "$P: collectd saw both spikes" "no end of spike 2 / no value after it"
	fi
	end_case

	mapfile -t files < <(dumps_in "$dir")
	n=${#files[@]}
	if ((n == 1)); then
		pass "$P: exactly one dump over two spikes" "${files[0]##*/}"
	else
		fail "$P: exactly one dump over two spikes" "$n dumps: ${files[*]}"
	fi
	check_dump_counts "$P" "$n"
	((n >= 1)) || return
	f=${files[0]}
	path=$(grep -m1 -E "$(dump_ok_re)" "$CDIR/collectd.log" | sed -E 's/.* written: ([^ ]+) \(.*/\1/')
	check "$P: the OKAY notification names the file" test "$path" = "$f"
	check "$P: dump mode 0600" test "$(mode_of "$f")" = 600
	if [[ $(mode_of "$dir") == 711 && $(mode_of "$WORK/$name/dumps") == 711 ]]; then
		pass "$P: directories created 0711"
	else
		fail "$P: directories created 0711" "$(stat -c '%n %a' "$WORK/$name/dumps" "$dir")"
	fi
	if [[ -z $(find "$dir" -mindepth 1 -path '*/.staging*') ]]; then
		pass "$P: no staging directory left"
	else
		fail "$P: no staging directory left" "$(find "$dir" -mindepth 1 -path '*/.staging*')"
	fi
	# who ran createdump: the runtime (Method ipc) prints its output into the
	# target's log; the plugin (Method exec) captures it
	if [[ $method == exec ]]; then
		if grep -q "dumping pid $TPID (heap, method exec" "$CDIR/collectd.log" &&
			! grep -q '^\[createdump\]' "$TLOG"; then
			pass "$P: createdump run by the plugin"
		else
			fail "$P: createdump run by the plugin" "no 'method exec' line, or createdump output in the target's log"
		fi
	else
		check "$P: createdump run by the runtime" grep -q '^\[createdump\] Dump successfully written' "$TLOG"
	fi
	# notifications kept coming while the plugin refused; it said so once
	local warn refused
	warn=$(count_lines "severity = WARNING, .*type_instance = gc-heap-size")
	refused=$(count_lines "no dump: last dump of pid $TPID started .* MinInterval is 600 s")
	if ((refused == 1 && warn >= 4)); then
		pass "$P: MinInterval refusal logged once" "$warn WARNING notifications"
	else
		fail "$P: MinInterval refusal logged once" "logged $refused times, $warn WARNING notifications"
	fi
	size=$(stat -c %s "$f")
	t=$(stamp_epoch "$f")
	heap=$(gc_heap_bytes "$f")
	if [[ -n $heap ]] && ((heap > THRESHOLD)); then
		pass "$P: dotnet-dump shows the spike's heap" \
			"GC heap $((heap / 1000000)) MB in a $((size / 1000000)) MB dump started at $(date -u -d "@$t" +%T.%3N)"
	else
		fail "$P: dotnet-dump shows the spike's heap" \
			"GC heap '${heap:-?}' bytes (need > $THRESHOLD); dotnet-dump said: $(tail -3 "$CDIR/eeheap.txt" | tr '\n' ' ')"
	fi
	rm -f "$f"
}

# ---- flapping: MinInterval and MaxDumps under short, repeated spikes ----

flapping_case() {
	local dir=$WORK/flapping/dumps n gap warn min_ref max_ref all_ref after
	start_case flapping 10 "    Directory \"$dir\"
    Type \"mini\"
    MinInterval 5
    MaxDumps 2" \
		--delay-seconds 3 --spike-seconds 2 --period-seconds 4 || { end_case; return; }
	local P="dumps/flapping (MinInterval 5, MaxDumps 2)"
	wait_spike_over 6 120 || fail "$P: collectd saw all 6 spikes" "no end of spike 6 / no value after it"
	end_case

	mapfile -t files < <(dumps_in "$dir")
	n=${#files[@]}
	if ((n == 2)); then
		gap=$(awk -v a="$(stamp_epoch "${files[0]}")" -v b="$(stamp_epoch "${files[1]}")" 'BEGIN { printf "%.3f", b - a }')
		pass "$P: exactly 2 dumps over 6 spikes" "$(stat -c %s "${files[@]}" | awk '{ printf "%s%.1f MB", (NR > 1 ? ", " : ""), $1 / 1e6 }')"
		# names carry the start time in ms; MinInterval counts from the
		# start (monotonic clock), so allow a few ms of clock difference
		if awk -v g="$gap" 'BEGIN { exit !(g >= 4.99) }'; then
			pass "$P: dumps spaced >= MinInterval" "$gap s apart"
		else
			fail "$P: dumps spaced >= MinInterval" "$gap s apart"
		fi
	else
		fail "$P: exactly 2 dumps over 6 spikes" "$n dumps: ${files[*]##*/}"
	fi
	check "$P: OKAY notifications" test "$(count_lines "$(dump_ok_re)")" = "$n"
	check_dump_counts "$P" "$n"
	warn=$(count_lines "severity = WARNING, .*type_instance = gc-heap-size")
	min_ref=$(count_lines "no dump: last dump of pid $TPID .*MinInterval is 5 s")
	max_ref=$(count_lines "no dump: MaxDumps \\(2\\) reached for pid $TPID")
	all_ref=$(count_lines "dotnet plugin: instance \"spike\": no dump: ")
	# WARNING notifications after the refusal that MaxDumps was reached
	after=$(awk '/no dump: MaxDumps/ { m = 1 } m && /severity = WARNING, .*type_instance = gc-heap-size/ { c++ } END { print c + 0 }' "$CDIR/collectd.log")
	# a refusal is logged once, and again only after a dump was allowed:
	# MinInterval at most once per dump, MaxDumps once, whatever came after
	if ((max_ref == 1 && min_ref <= 2 && after >= 2 && all_ref <= 5)); then
		pass "$P: refusals logged once" \
			"$warn WARNING notifications, $all_ref refusals logged (MinInterval ${min_ref}x, MaxDumps 1x, then $after more notifications)"
	else
		fail "$P: refusals logged once" \
			"$warn WARNING notifications, $all_ref refusals logged (MinInterval ${min_ref}x, MaxDumps ${max_ref}x, $after notifications after it)"
	fi
	rm -f "${files[@]}"
}

# ---- failures: a FAILURE notification with the reason, and collectd goes on ----

# failure_case NAME DIRECTORY EXTRA-OPTIONS: starts, waits for the FAILURE
# notification; sets REASON (empty if none came). The caller ends the case.
failure_case() {
	local name=$1 dir=$2 extra=$3
	REASON=
	start_case "$name" 10 "    Directory \"$dir\"
    Type \"mini\"
$extra" \
		--delay-seconds 3 --spike-seconds 4 --period-seconds 8 || return 1
	if ! wait_until 60 grep -qE "$(dump_fail_re)" "$CDIR/collectd.log"; then
		fail "dumps/$name: FAILURE notification" "none within 60 s (OKAY: $(count_lines "$(dump_ok_re)"))"
		return 1
	fi
	REASON=$(failure_reason)
	# the failure is counted at the next read (checked by failure_counts)
	wait_until 10 dump_failures_at_least "$(count_lines "$(dump_fail_re)")"
	# logged as an error, too (the notification may go nowhere else)
	grep -qE "\[error\] dotnet plugin: instance \"spike\": dump of pid $TPID failed" "$CDIR/collectd.log" ||
		fail "dumps/$name: error logged" "no [error] line"
}

dump_failures_at_least() { (($(csv_last "$CDIR" spike derive-dump-failures || echo 0) >= $1)); }

# failure_counts NAME: after end_case of a failure case: no dump counted,
# every FAILURE notification counted (at least one)
failure_counts() {
	if (($(count_lines "$(dump_fail_re)") >= 1)); then
		check_dump_counts "dumps/$1" 0
	else
		fail "dumps/$1: dump counters" "no FAILURE notification to count"
	fi
}

# still_collecting NAME: csv rows of gc-heap-size keep coming after the failure
still_collecting() {
	local rows
	rows=$(csv_rows "$CDIR" spike bytes-gc-heap-size)
	if wait_until 20 heap_rows_at_least $((rows + 3)); then
		pass "dumps/$1: collectd goes on collecting" "$rows rows at the failure, $(csv_rows "$CDIR" spike bytes-gc-heap-size) now"
	else
		fail "dumps/$1: collectd goes on collecting" "csv rows stuck at $(csv_rows "$CDIR" spike bytes-gc-heap-size)"
	fi
	kill -0 "$COLLECTD_PID" 2>/dev/null || fail "dumps/$1: collectd alive" "collectd exited"
}

# read-only: as root, access(W_OK) passes on a 0500 directory; a read-only
# mount is read-only for root too
readonly_case() {
	local ro=$WORK/readonly/ro want
	if ((IS_ROOT)); then
		tmpfs_at "$ro" ro,size=1m,mode=0700 || {
			fail "dumps/readonly: setup" "cannot mount a read-only tmpfs"
			return
		}
		want="Read-only file system"
	else
		mkdir -p "$ro" && chmod 0500 "$ro"
		want="Permission denied"
	fi
	if failure_case readonly "$ro" ""; then
		if [[ $REASON == *"$want"* ]]; then
			pass "dumps/readonly: FAILURE with the reason" "$REASON"
		else
			fail "dumps/readonly: FAILURE with the reason" "'$REASON' (want '$want')"
		fi
		still_collecting readonly
	fi
	end_case
	[[ -n $REASON ]] && failure_counts readonly
	unmount "$ro"
}

# full_case ipc|exec: a full filesystem (root: a 1 MB tmpfs): the dump fails
# half written, with the writer's reason; nothing may stay behind
full_case() {
	local method=$1 full=$WORK/full-$1/fs left
	((IS_ROOT)) || return 0
	tmpfs_at "$full" size=1m,mode=0700 || {
		fail "dumps/full-$method: setup" "cannot mount a tmpfs"
		return
	}
	if failure_case "full-$method" "$full" "    Method \"$method\""; then
		if [[ $REASON == *"No space left on device"* ]]; then
			pass "dumps/full-$method: FAILURE with the reason" "$REASON"
		else
			fail "dumps/full-$method: FAILURE with the reason" "'$REASON'"
		fi
		left=$(find "$full" -mindepth 1)
		if [[ -z $left ]]; then
			pass "dumps/full-$method: no partial dump left" "$(df -k --output=used "$full" | tail -1 | tr -d ' ') KiB used"
		else
			fail "dumps/full-$method: no partial dump left" "$left"
		fi
		still_collecting "full-$method"
	fi
	end_case
	[[ -n $REASON ]] && failure_counts "full-$method"
	unmount "$full"
}

# a createdump that takes longer than Timeout is killed; the target, which
# it had stopped, runs on
timeout_case() {
	local dir=$WORK/timeout/dumps state
	if failure_case timeout "$dir" "    Method \"exec\"
    Timeout 0.3
    Type \"heap\""; then
		if [[ $REASON == *"took longer than 300 ms: killed"* ]]; then
			pass "dumps/timeout: FAILURE with the reason" "$REASON"
		else
			fail "dumps/timeout: FAILURE with the reason" "'$REASON'"
		fi
		state=$(awk '/^State:/ { print $2 }' "/proc/$TPID/status" 2>/dev/null)
		if [[ $state != T && $state != t ]] && wait_until 30 grep -qE '^SPIKE end .* n=1$' "$TLOG"; then
			pass "dumps/timeout: the target runs on" "state $state, its spike ended on time"
		else
			fail "dumps/timeout: the target runs on" "state '$state'"
		fi
		check "dumps/timeout: no file left" test -z "$(find "$dir" -mindepth 1)"
	fi
	end_case
	[[ -n $REASON ]] && failure_counts timeout
}

# missing: the threshold plugin's FAILURE "... has not been updated for N
# seconds" (it comes after every heap dump, which stops the runtime for a few
# seconds, and when a target exits) is no breach: no dump and no refusal,
# even with Severity failure and MinInterval 0. Here the target is stopped
# (SIGSTOP) for a while, then resumed, then ended.
missing_case() {
	local dir=$WORK/missing/dumps P=dumps/missing n rows
	start_case missing 10 "    Directory \"$dir\"
    Type \"mini\"
    Severity \"failure\"
    MinInterval 0" --delay-seconds 600 || { end_case; return; }
	local re="gc-heap-size has not been updated for"
	wait_until 20 heap_rows_at_least 2
	kill -STOP "$TPID"
	wait_until 20 grep -q "$re" "$CDIR/collectd.log"
	kill -CONT "$TPID"
	rows=$(csv_rows "$CDIR" spike bytes-gc-heap-size)
	wait_until 20 heap_rows_at_least $((rows + 2)) ||
		fail "$P: the target runs again" "no new value after SIGCONT"
	stop_target "$TPID" >/dev/null 2>&1
	TRUNNING=0
	wait_until 20 bash -c "(( \$(grep -c '$re' '$CDIR/collectd.log') >= 2 ))"
	end_case
	n=$(count_lines "severity = FAILURE, .*$re")
	if ((n >= 2)) && ! grep -qE "dumping pid|no dump: " "$CDIR/collectd.log" &&
		[[ -z $(find "$dir" -mindepth 1 2>/dev/null) ]]; then
		pass "$P: no dump on missing-value notifications" "$n of them"
	else
		fail "$P: no dump on missing-value notifications" \
			"$n missing-value notifications; $(grep -cE 'dumping pid|no dump: ' "$CDIR/collectd.log") dump/refusal lines"
	fi
}

# MinFreeSpace above what is free
minfree_case() {
	local mf=$WORK/minfree/dumps avail_mb
	mkdir -p "$mf"
	avail_mb=$(($(df -k --output=avail "$mf" | tail -1) / 1024))
	if failure_case minfree "$mf" "    MinFreeSpace \"$((avail_mb * 2 + 1024))M\""; then
		if [[ $REASON == *"below MinFreeSpace"* ]]; then
			pass "dumps/minfree: FAILURE below MinFreeSpace" "$REASON"
		else
			fail "dumps/minfree: FAILURE below MinFreeSpace" "'$REASON'"
		fi
		check "dumps/minfree: no file written" test -z "$(find "$mf" -mindepth 1)"
	fi
	end_case
	[[ -n $REASON ]] && failure_counts minfree
}

# Directory is a symlink (to a directory we could write): refused
symlink_case() {
	local real=$WORK/symlink/real link=$WORK/symlink/link
	mkdir -p "$real" && chmod 0700 "$real" && ln -s "$real" "$link"
	if failure_case symlink "$link" ""; then
		if [[ $REASON == *"symbolic link"* ]]; then
			pass "dumps/symlink: FAILURE with the reason" "$REASON"
		else
			fail "dumps/symlink: FAILURE with the reason" "'$REASON'"
		fi
		check "dumps/symlink: nothing written through the link" test -z "$(find "$real" -mindepth 1)"
		check "dumps/symlink: the link is untouched" test "$(readlink "$link")" = "$real"
	fi
	end_case
	[[ -n $REASON ]] && failure_counts symlink
}

# ---- run (DUMPS_CASES="flapping symlink" runs only those) ----

want_case() { [[ -z ${DUMPS_CASES:-} || " $DUMPS_CASES " == *" $1 "* ]]; }
want_case heap-ipc && heap_case heap-ipc 10 ipc
want_case heap-exec && heap_case heap-exec 8 exec
want_case flapping && flapping_case
want_case readonly && readonly_case
want_case full-ipc && full_case ipc
want_case full-exec && full_case exec
want_case timeout && timeout_case
want_case missing && missing_case
want_case minfree && minfree_case
want_case symlink && symlink_case

awk -v a="$T0" -v b="$(_now)" 'BEGIN { printf "dumps.sh: %.0f s\n", b - a }'
