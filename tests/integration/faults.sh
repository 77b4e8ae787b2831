#!/usr/bin/env bash
# tests/integration/faults.sh -- hostile input, faults and misuse never crash
# collectd, leak, hang, or let anyone in (issue 7).
#
# Real collectd + the dotnet plugin (and triggerdump) against real .NET
# targets and tests/fake-diag-server.py, a fake diagnostic server that
# injects one fault per scenario. A real CounterTarget ("steady") runs
# alongside every collectd run: its values must keep coming whatever the
# others do.
#
#   hostile  one collectd watching steady, a real "victim" (SIGSTOPped 4 s,
#            then SIGKILLed mid-stream), a fake per fault (an IPC reply that
#            never comes, garbage, bad magic, lying/short size fields,
#            truncated reply, UnknownCommand everywhere, an HRESULT error, no
#            session id; a stream that is garbage, has a bad magic, a huge
#            block length, endless zeros, is cut mid-block, stalls mid-block),
#            two impersonators (a socket named after another live process, one
#            served by root, one by nobody), a socket for steady's pid with
#            another key and a stale one, a stale socket of a dead pid, and
#            a self-contained .NET 8 whose createdump is writable by others
#            (the threshold hook must refuse to run it): each gives its log
#            line, once; failures are retried every 10 s; steady never
#            misses an interval; collectd stops in < 2 s
#   cli      triggerdump against the same: each refusal / reason, no crash
#   dumps    the dump path: a symlink instead of the dump, a dump swapped
#            for a symlink while it is being secured, a hostile entry
#            assembly name, directory 0711 / dump 0600 (a name planted at
#            the final path: tests/test_dump.c); createdump owned by another uid,
#            writable by others, a symlink: refused
#   stop50   collectd stopped while 50 fake sessions (10 of them never
#            answer StopTracing), 2 real ones and a GenerateCoreDump that is
#            never answered are live: exits within 2 s (measured)
#   cycles   collectd's fds, threads and RSS after 50 warm-up cycles, after
#            500 more with fake targets (SIGKILL, every 4th a clean end)
#            and after up to 500 restarts of a real .NET 10 target (as many
#            as fit in REAL_CYCLES_SECS, at least 100): same fds and threads,
#            RSS within RSS_BOUND_KB
#   valgrind collectd under valgrind with the hostile fakes, impersonators
#            and 40 fake restart cycles: no error, no definite leak
# FAULTS_PARTS selects parts (default: all of the above).
#
# Run by tests/run; alone:
#   REPO=... BUILD=... PLUGIN_SO=... TRIGGERDUMP=... RESULTS=... bash tests/integration/faults.sh
# Writes under $BUILD/it/faults/ (kept; the fakes' logs are fake-*.log).
# Every process it starts has a TMPDIR of its own (there go the sockets), and
# the fakes inject faults only into clients descending from this script
# (--only-for): on a shared machine another test's AutoDiscover sees plain
# fake runtimes, not faults.
set -u
# shellcheck disable=SC2015 # "A && pass || fail": pass always succeeds
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

IT=$BUILD/it/faults
rm -rf "$IT"
mkdir -p "$IT/tmp" "$IT/fakes"
chmod 0700 "$IT/tmp"
export TMPDIR=$IT/tmp
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T_BEGIN=$(_now)
MARK=900.$$ # CounterTargets end by themselves after 15 minutes
FAKE=$REPO/tests/fake-diag-server.py
PY=$(python3 -c 'import sys; print(sys.executable)') # not pyenv's shim
# the impersonator that runs as nobody needs an interpreter nobody can run
PY_NOBODY=$PY
[[ -x /usr/bin/python3 ]] && PY_NOBODY=/usr/bin/python3
MARK_RC=901.$$ # the restarted CounterTargets
FK=$IT/fakes
RSS_BOUND_KB=${RSS_BOUND_KB:-2048}
# longest gap between two values of steady while the others misbehave: an
# interval is 1 s; generous, for a loaded shared machine
GAP_MAX=${GAP_MAX:-4}
# real .NET restarts: ~0.2 s each on an idle 2-core machine; as many as fit
REAL_CYCLES=${REAL_CYCLES:-500}
REAL_CYCLES_SECS=${REAL_CYCLES_SECS:-150}
OTHER_PIDS=() # sleepers and other helpers to kill at the end

cleanup() {
	local p
	[[ -n $COLLECTD_PID ]] && stop_collectd 10
	if [[ -f $FK/servers ]]; then
		while read -r _ p; do kill -TERM "$p" 2>/dev/null; done <"$FK/servers"
	fi
	for p in "${OTHER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[[ -n ${CT8:-} ]] && kill -CONT "$CT8" 2>/dev/null
	stop_all_targets
	[[ -n ${CT8:-} ]] && { kill -KILL "$CT8" 2>/dev/null; wait "$CT8" 2>/dev/null; }
	rm -rf "$IT/ct8" 2>/dev/null # 70 MB of runtime
}
trap cleanup EXIT

part() { [[ " ${FAULTS_PARTS:-hostile cli dumps stop50 cycles valgrind} " == *" $1 "* ]]; }
log() { printf '   %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.2f", b - a }'; }

stop_collectd() { # like plugin.sh: in this shell; sets STOP_SECS
	collectd_stop "${1:-10}" >"$IT/.stop-secs"
	STOP_SECS=$(<"$IT/.stop-secs")
}

# fake NAME SCENARIO [ARGS...]: starts a fake server (log $FK/NAME.log) and
# echoes the pid its socket is named after (its own unless --as-pid)
fake() {
	local name=$1 sc=$2
	shift 2
	local ready=$FK/$name.ready
	rm -f "$ready"
	"$PY" "$FAKE" --scenario "$sc" --only-for $$ --log "$FK/$name.log" \
		--ready "$ready" --tag "$name-$$" "$@" </dev/null >>"$FK/$name.out" 2>&1 &
	echo "$name $!" >>"$FK/servers"
	wait_until 15 test -s "$ready" || { echo "fake $name did not start" >&2; return 1; }
	read -r _ named _ _ <"$ready"
	echo "$named"
}

# fakes NAME SCENARIO N [ARGS...]: N servers forked by one (their pids,
# one a line, in $FK/NAME.ready)
fakes() {
	local name=$1 sc=$2 n=$3
	shift 3
	rm -f "$FK/$name.ready"
	"$PY" "$FAKE" --scenario "$sc" --only-for $$ --log "$FK/$name.log" \
		--ready "$FK/$name.ready" --tag "$name-$$" --instances "$n" "$@" </dev/null >>"$FK/$name.out" 2>&1 &
	echo "$name $!" >>"$FK/servers"
	wait_until 30 bash -c "[[ -f '$FK/$name.ready' ]] && (( \$(wc -l <'$FK/$name.ready') >= $n ))"
}

# kill_fakes NAME...: stops those servers (and the ones they forked)
kill_fakes() {
	local n p name
	for n in "$@"; do
		while read -r name p; do
			[[ $name == "$n" ]] && kill -TERM "$p" 2>/dev/null
		done <"$FK/servers"
	done
}

ours() { grep -c " client [0-9]* ours$" "$FK/$1.log" 2>/dev/null; } # connections from us
# log_count DIR REGEX: lines of collectd.log matching (grep -E)
log_count() { grep -cE -- "$2" "$1/collectd.log"; }
log_has() { grep -qE -- "$2" "$1/collectd.log"; }
log_line() { grep -m1 -E -- "$2" "$1/collectd.log" | cut -c23-; }
# csv_rows_after DIR INSTANCE NAME T: rows with a time > T
csv_rows_after() {
	local f
	f=$(csv_file "$1" "$2" "$3") || { echo 0; return; }
	awk -F, -v t="$4" 'NR > 1 && $1 > t { n++ } END { print n + 0 }' "$f"
}
has_rows_after() { (($(csv_rows_after "$2" "$3" "$4" "$5") >= $1)); }
# max_gap DIR INSTANCE NAME FROM TO: rows in [FROM, TO] and the longest gap
# between two of them (from FROM and to TO included)
max_gap() {
	local f
	f=$(csv_file "$1" "$2" "$3") || { echo "0 999"; return; }
	awk -F, -v a="$4" -v b="$5" '
		NR > 1 && $1 >= a && $1 <= b { n++; g = $1 - p; if (g > mg) mg = g; p = $1 }
		NR == 1 { p = a }
		END { g = b - p; if (g > mg) mg = g; printf "%d %.2f\n", n, mg }' "$f"
}
# proc_usage PID: "FDS THREADS RSS_KB", the smallest of 50 samples 0.1 s
# apart: collectd's csv writer threads open and close a file per value, and
# the plugin's discovery pass holds /proc open, and a connection while it
# asks a process (any .NET process on the machine, once, then every 10 s
# while it does not answer, up to 2 s each): a sample may catch those
proc_usage() {
	local i fds threads rss min_f=999999 min_t=999999 min_r=999999999
	for ((i = 0; i < 50; i++)); do
		fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		threads=$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
		((fds < min_f)) && min_f=$fds
		((threads < min_t)) && min_t=$threads
		((rss < min_r)) && min_r=$rss
		sleep 0.1
	done
	echo "$min_f $min_t $min_r"
}
start_time_of() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat"; }

# the self-contained .NET 8 CounterTarget, copied (createdump beside
# libcoreclr.so), started from the copy; sets CT8
start_ct8() {
	rm -rf "$IT/ct8"
	cp -a "$BUILD/targets/CounterTarget/net8" "$IT/ct8" || return 1
	"$IT/ct8/CounterTarget" --seconds "$MARK" </dev/null >"$IT/ct8.log" 2>&1 &
	CT8=$!
	wait_until 30 bash -c "grep -q '^READY' '$IT/ct8.log' && compgen -G '$TMPDIR/dotnet-diagnostic-$CT8-*-socket' >/dev/null"
}

STEADY_VALUE=bytes-gc-heap-size

# ============================================================ hostile
run_hostile() {
	echo "== faults: hostile targets, faulty IPC and streams, impersonation (one collectd)"
	local D=$IT/hostile
	STEADY=$(start_target CounterTarget 10 --seconds "$MARK") || { fail "hostile: start steady" "see above"; return 1; }
	local victim
	victim=$(start_target CounterTarget 10 --seconds "$MARK") || { fail "hostile: start victim" "see above"; return 1; }
	start_ct8 || { fail "hostile: start the copied .NET 8 target" "see $IT/ct8.log"; return 1; }
	chmod o+w "$IT/ct8/createdump"

	# one fake per fault
	FAULTS=(hang garbage-reply bad-magic lying-size tiny-size truncated-reply
		unknown-command error-reply collect-no-id stream-garbage stream-bad-magic
		stream-huge-block stream-zeros stream-truncated stream-stall slow-collect normal)
	declare -gA FPID=()
	local sc body=""
	for sc in "${FAULTS[@]}"; do
		FPID[$sc]=$(fake "$sc" "$sc") || { fail "hostile: fake $sc" "did not start"; return 1; }
		body+="  <Process \"$sc\">
    Pid ${FPID[$sc]}
  </Process>
"
	done
	# impersonators: sockets named after other live processes, in their TMPDIR
	mkdir -p "$IT/imp1" "$IT/imp2"
	chmod 0700 "$IT/imp1"
	chmod 1777 "$IT/imp2" # like /tmp: nobody may create its socket there
	TMPDIR=$IT/imp1 sleep 900 &
	SLEEP1=$!
	TMPDIR=$IT/imp2 sleep 900 &
	SLEEP2=$!
	OTHER_PIDS+=("$SLEEP1" "$SLEEP2")
	fake imp-root normal --as-pid "$SLEEP1" --dir "$IT/imp1" >/dev/null || { fail "hostile: impersonator" "did not start"; return 1; }
	rm -f "$FK/imp-nobody.ready"
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$PY_NOBODY" "$FAKE" --scenario normal --as-pid "$SLEEP2" \
		--dir "$IT/imp2" --only-for $$ --ready "$IT/imp2/ready" </dev/null >"$FK/imp-nobody.out" 2>&1 &
	echo "imp-nobody $!" >>"$FK/servers"
	wait_until 15 test -s "$IT/imp2/ready" || fail "hostile: impersonator as nobody" "did not start: $(head -3 "$FK/imp-nobody.out")"
	read -r _ _ IMP2_SERVER _ <"$IT/imp2/ready"
	IMP1_SERVER=$(awk '{ print $3 }' "$FK/imp-root.ready")
	# a socket bound and never listened on, its process alive: refused for
	# good (after 5 s of quiet retries: a runtime starting up)
	FPID[refusing]=$(fake refusing late-listen --delay 900) || { fail "hostile: fake refusing" "did not start"; return 1; }
	body+="  <Process \"refusing\">
    Pid ${FPID[refusing]}
  </Process>
"
	# steady's pid with another key: a live impostor and a stale file (a dead
	# process that had steady's pid: pid reuse), both newer than the real one
	local skey
	skey=$(start_time_of "$STEADY")
	fake wrongkey normal --as-pid "$STEADY" --key $((skey + 7)) >/dev/null || fail "hostile: wrong-key fake" "did not start"
	"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
		"$TMPDIR/dotnet-diagnostic-$STEADY-$((skey - 3))-socket"
	# a stale socket of a dead pid
	sleep 0 &
	DEAD=$!
	wait "$DEAD"
	"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
		"$TMPDIR/dotnet-diagnostic-$DEAD-12345-socket"

	T0=$(_now)
	if ! collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"steady\">
    Pid $STEADY
  </Process>
  <Process \"victim\">
    Pid $victim
  </Process>
  <Process \"ct8\">
    Pid $CT8
  </Process>
$body  <Process \"imp-root\">
    Pid $SLEEP1
  </Process>
  <Process \"imp-nobody\">
    Pid $SLEEP2
  </Process>
  <Process \"dead\">
    Pid $DEAD
  </Process>
  <Dump>
    Directory \"$IT/dumps-exec\"
    Method \"exec\"
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"ct8\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
    </Type>
  </Plugin>
</Plugin>"; then
		fail "hostile: collectd starts" "see $D/collectd.log"
		return 1
	fi
	pass "hostile: collectd starts with ${#FAULTS[@]} fakes, 2 impersonators, 3 real targets"
	wait_until 10 has_rows_after 2 "$D" steady "$STEADY_VALUE" "$T0" ||
		fail "hostile: steady writes values" "no rows 10 s after the start"
	wait_until 10 has_rows_after 2 "$D" victim "$STEADY_VALUE" "$T0"

	# the victim: SIGSTOP for 4 s (4 intervals), SIGCONT, then SIGKILL
	local t_stop t_cont t_kill
	t_stop=$(_now)
	kill -STOP "$victim"
	sleep 4
	t_cont=$(_now)
	kill -CONT "$victim"
	if wait_until 10 has_rows_after 1 "$D" victim "$STEADY_VALUE" "$t_cont"; then
		pass "hostile: victim SIGSTOPped for $(awk -v a="$t_stop" -v b="$t_cont" 'BEGIN { printf "%.1f", b - a }') s writes again $(elapsed "$t_cont") s after SIGCONT"
	else
		fail "hostile: victim after SIGSTOP" "no value 10 s after SIGCONT"
	fi
	if log_has "$D" "session with pid $victim ended"; then
		fail "hostile: the victim's session survives the SIGSTOP" "$(log_line "$D" "session with pid $victim ended")"
	else
		pass "hostile: the victim's session survives a SIGSTOP longer than the interval"
	fi
	t_kill=$(_now)
	kill -KILL "$victim"
	if wait_until 10 log_has "$D" "instance \"victim\": session with pid $victim ended: the stream ended early"; then
		pass "hostile: SIGKILL mid-stream, $(elapsed "$t_kill") s later: $(log_line "$D" "session with pid $victim ended" | sed 's/^\[[a-z]*\] dotnet plugin: //')"
	else
		fail "hostile: SIGKILL mid-stream" "no 'session with pid $victim ended: the stream ended early' line"
	fi
	wait "$victim" 2>/dev/null

	# >= 18 s after the start: every retry (10 s) has happened once (the
	# connector is one thread: each pass also waits 2 s on each of the two
	# targets that never answer)
	while ! awk -v a="$T0" -v b="$(_now)" 'BEGIN { exit !(b - a >= 18) }'; do sleep 0.2; done
	local t_end
	t_end=$(_now)

	# each fault: its line, logged once
	# NAME|REGEX of the line (grep -E)
	local -a EXPECT=(
		"hang|pid ${FPID[hang]} matches <Process \"hang\"> but does not answer: no answer from the runtime in time \(retrying every 10 s; logged once\)"
		"garbage-reply|pid ${FPID[garbage-reply]} matches <Process \"garbage-reply\"> but does not answer: the reply is not a Diagnostic IPC message \(bad magic or size\)"
		"bad-magic|pid ${FPID[bad-magic]} matches <Process \"bad-magic\"> but does not answer: the reply is not a Diagnostic IPC message"
		"lying-size|pid ${FPID[lying-size]} matches <Process \"lying-size\"> but does not answer: reading the reply failed: Connection timed out"
		"tiny-size|pid ${FPID[tiny-size]} matches <Process \"tiny-size\"> but does not answer: the reply is not a Diagnostic IPC message"
		"truncated-reply|pid ${FPID[truncated-reply]} matches <Process \"truncated-reply\"> but does not answer: reading the reply failed: truncated"
		"refusing|pid ${FPID[refusing]} matches <Process \"refusing\"> but does not answer: cannot connect to [^ ]*: Connection refused \(retrying every 10 s; logged once\)"
		"unknown-command|pid ${FPID[unknown-command]} matches <Process \"unknown-command\"> but does not answer: the runtime answered CORDIAGIPC_E_UNKNOWN_COMMAND \(0x80131385\)"
		"error-reply|instance \"error-reply\": cannot start a session with pid ${FPID[error-reply]}: the runtime answered E_ACCESSDENIED \(0x80070005\) \(retrying every 10 s; logged once\)"
		"collect-no-id|instance \"collect-no-id\": cannot start a session with pid ${FPID[collect-no-id]}: CollectTracing reply without a session id"
		"stream-garbage|instance \"stream-garbage\": session with pid ${FPID[stream-garbage]} ended: bad nettrace stream: not a nettrace stream \(bad magic\) at byte 0 \(retrying every 10 s"
		"stream-bad-magic|instance \"stream-bad-magic\": session with pid ${FPID[stream-bad-magic]} ended: bad nettrace stream: not a nettrace stream \(bad magic\) at byte 0"
		"stream-huge-block|instance \"stream-huge-block\": session with pid ${FPID[stream-huge-block]} ended: bad nettrace stream: block of 4294967280 bytes exceeds max_object \([0-9]+\) at byte [0-9]+"
		"stream-zeros|instance \"stream-zeros\": session with pid ${FPID[stream-zeros]} ended: bad nettrace stream: bad object tag 0x00 at byte [0-9]+"
		"stream-truncated|instance \"stream-truncated\": session with pid ${FPID[stream-truncated]} ended: the stream ended early \(process exited\?\) at byte [0-9]+: stream truncated inside an object \([0-9]+ bytes held\)"
		"imp-root|pid $SLEEP1 matches <Process \"imp-root\"> but does not answer: socket [^ ]* is served by pid $IMP1_SERVER, not by pid $SLEEP1: refusing it"
		"imp-nobody|pid $SLEEP2 matches <Process \"imp-nobody\"> but does not answer: socket [^ ]* is served by pid ${IMP2_SERVER:-X}, not by pid $SLEEP2: refusing it"
		"dead|<Process \"dead\"> matches no .NET process yet \(Pid $DEAD\)"
		"ct8|instance \"ct8\": dump of pid $CT8 failed: $IT/ct8/createdump is writable by group or others \(mode 0[0-7]+\): refusing to run it"
	)
	local spec name re n
	for spec in "${EXPECT[@]}"; do
		name=${spec%%|*}
		re=${spec#*|}
		n=$(log_count "$D" "$re")
		if ((n == 1)); then
			pass "hostile: $name: $(log_line "$D" "$re" | sed 's/^\[[a-z]*\] dotnet plugin: //')"
		elif ((n > 1)); then
			fail "hostile: $name logged once" "$n times: $(log_line "$D" "$re")"
		else
			fail "hostile: $name" "no line /$re/ in $D/collectd.log"
		fi
	done
	# retried, not hammered: >= 2 attempts from us (10 s apart), a few in 18 s
	for name in hang garbage-reply error-reply stream-garbage stream-huge-block stream-truncated imp-root; do
		n=$(ours "$name")
		if ((n >= 2 && n <= 6)); then
			pass "hostile: $name retried, not hammered ($n connections from collectd in $(elapsed "$T0") s)"
		else
			fail "hostile: $name retries" "$n connections from collectd in $(elapsed "$T0") s (want 2..6)"
		fi
	done
	# the impersonators got no command: the plugin refused before sending
	if grep -q ' command ' "$FK/imp-root.log"; then
		fail "hostile: imp-root received nothing" "$(grep -m1 ' command ' "$FK/imp-root.log")"
	else
		pass "hostile: imp-root: $(ours imp-root) connection(s) from collectd, not one byte sent to it"
	fi
	# steady's pid with another key: never used
	n=$(ours wrongkey)
	((n == 0)) && pass "hostile: a live socket for steady's pid with another key is never connected to (the start-time key wins)" ||
		fail "hostile: wrong-key socket" "$n connections from collectd"
	log_has "$D" "watching pid $STEADY " && ! log_has "$D" "with pid $STEADY:" &&
		pass "hostile: steady watched through its own socket beside a stale one and an impostor with its pid" ||
		fail "hostile: steady's socket" "$(log_line "$D" "pid $STEADY")"
	# stale socket of a dead pid: never looked at
	if log_has "$D" "pid $DEAD:" || log_has "$D" "watching pid $DEAD "; then
		fail "hostile: stale socket of dead pid $DEAD unused" "$(log_line "$D" "pid $DEAD")"
	else
		pass "hostile: stale socket of dead pid $DEAD: not used, no error"
	fi
	# the stalled stream: a live session, no values, no end
	if log_has "$D" "session with pid ${FPID[stream-stall]} ended"; then
		fail "hostile: stream-stall" "$(log_line "$D" "session with pid ${FPID[stream-stall]} ended")"
	else
		pass "hostile: stream-stall (a block that never completes): the session waits, nothing logged"
	fi
	# a runtime that answers CollectTracing in 1.5 s (a loaded machine) is
	# watched: the IPC timeout is 2 s
	log_has "$D" "instance \"slow-collect\": watching pid ${FPID[slow-collect]} " &&
		pass "hostile: a runtime answering CollectTracing after 1.5 s is watched (IPC timeout 2 s)" ||
		fail "hostile: slow runtime" "$(log_line "$D" "pid ${FPID[slow-collect]}")"
	# the normal fake's values (control): the fixture's gc-heap-size
	((${#FAULTS[@]} > 0)) && has_rows_after 1 "$D" normal "$STEADY_VALUE" 0 &&
		pass "hostile: the well-behaved fake's values are written (control)" ||
		fail "hostile: control fake" "no values of instance \"normal\""
	# no createdump run, no file
	if [[ -z $(find "$IT/dumps-exec" -mindepth 1 2>/dev/null) ]] && ! grep -q createdump "$IT/ct8.log"; then
		pass "hostile: the refused createdump was not run; nothing written"
	else
		fail "hostile: refused createdump" "$(find "$IT/dumps-exec" -mindepth 1 | head -3) $(grep -m1 createdump "$IT/ct8.log")"
	fi

	# steady never missed an interval
	local span
	span=$(awk -v a="$T0" -v b="$t_end" 'BEGIN { printf "%.0f", b - a - 3 }')
	read -r rows gap <<<"$(max_gap "$D" steady "$STEADY_VALUE" "$(awk -v a="$T0" 'BEGIN { printf "%.3f", a + 3 }')" "$t_end")"
	if awk -v g="$gap" -v r="$rows" -v s="$span" -v m="$GAP_MAX" 'BEGIN { exit !(g < m && r >= s / 2) }'; then
		pass "hostile: steady wrote $rows rows over $span s of faults, longest gap $gap s (< $GAP_MAX s)"
	else
		fail "hostile: steady unaffected" "$rows rows over $span s, longest gap $gap s (want < $GAP_MAX s, >= $span / 2 rows)"
	fi
	# nothing else went wrong
	local unexpected
	unexpected=$(grep -E '\[(error|warning)\] dotnet plugin' "$D/collectd.log" | grep -vE "$(printf '%s\n' "${EXPECT[@]}" | cut -d'|' -f2- | paste -sd'|')|Process \"victim\"> matches no|instance \"ct8\": no dump|Notification:")
	[[ -z $unexpected ]] && pass "hostile: no other error or warning" || fail "hostile: unexpected log lines" "$(head -3 <<<"$unexpected")"
	kill -0 "$COLLECTD_PID" 2>/dev/null && pass "hostile: collectd alive after $(elapsed "$T0") s of faults" || fail "hostile: collectd alive" "it exited"

	stop_collectd 10
	if awk -v s="$STOP_SECS" 'BEGIN { exit !(s < 2) }' && ((COLLECTD_EXIT == 0)); then
		pass "hostile: collectd exits in $STOP_SECS s (< 2 s), status 0, with hung, stalled and refused targets"
	else
		fail "hostile: stop" "$STOP_SECS s, exit status $COLLECTD_EXIT"
	fi
	chmod o-w "$IT/ct8/createdump"

	# stopped while the plugin waits (up to the 2 s IPC timeout) for a target
	# that never answers
	local n0
	n0=$(ours hang)
	if collectd_start "$IT/hang-stop" "LoadPlugin dotnet
<Plugin dotnet>
  <Process \"hang\">
    Pid ${FPID[hang]}
  </Process>
</Plugin>" && wait_until 10 bash -c "(( \$(grep -c ' client [0-9]* ours\$' '$FK/hang.log') > $n0 ))"; then
		sleep 0.3
		stop_collectd 10
		if awk -v s="$STOP_SECS" 'BEGIN { exit !(s < 0.5) }' && ! log_has "$IT/hang-stop" '\[(warning|error)\] dotnet plugin'; then
			pass "hostile: stopped while it waits for a target that never answers: collectd exits in $STOP_SECS s (< 0.5 s), nothing logged"
		else
			fail "hostile: stop during a wait" "$STOP_SECS s; $(log_line "$IT/hang-stop" '\[(warning|error)\] dotnet plugin')"
		fi
	else
		fail "hostile: stop during a wait" "collectd did not start or did not ask the hung fake"
		stop_collectd 10
	fi
}

# ============================================================ cli
run_cli() {
	echo "== faults: triggerdump against the same faults"
	[[ -n ${FPID[hang]:-} ]] || { fail "cli" "needs the hostile part's fakes"; return 1; }
	local out rc
	# NAME|ARGS|REGEX of stderr
	local -a CASES=(
		"hang|monitor ${FPID[hang]} --duration 1|cannot start a trace session in pid ${FPID[hang]}: no answer from the runtime in time"
		"garbage-reply|monitor ${FPID[garbage-reply]} --duration 1|the reply is not a Diagnostic IPC message"
		"lying-size|monitor ${FPID[lying-size]} --duration 1|the reply is too large \(65515 bytes\)"
		"error-reply|monitor ${FPID[error-reply]} --duration 1|the runtime answered E_ACCESSDENIED \(0x80070005\)"
		"stream-huge-block|monitor ${FPID[stream-huge-block]} --duration 3|pid ${FPID[stream-huge-block]}: bad nettrace stream: block of 4294967280 bytes exceeds max_object"
		"stream-zeros|monitor ${FPID[stream-zeros]} --duration 3|bad nettrace stream: bad object tag 0x00"
		"stream-truncated|monitor ${FPID[stream-truncated]} --duration 3|the stream ended early \(process exited\?\) at byte [0-9]+: stream truncated inside an object"
		"imp-root|monitor $SLEEP1 --duration 1|socket [^ ]* is served by pid $IMP1_SERVER, not by pid $SLEEP1: refusing it \(another process may be impersonating the target\)"
		"imp-nobody|monitor $SLEEP2 --duration 1|socket [^ ]* is served by pid ${IMP2_SERVER:-X}, not by pid $SLEEP2: refusing it"
		"dead|monitor $DEAD --duration 1|no process with pid $DEAD"
	)
	local spec name args re
	for spec in "${CASES[@]}"; do
		IFS='|' read -r name args re <<<"$spec"
		# shellcheck disable=SC2086
		out=$(timeout 20 "$TRIGGERDUMP" $args 2>&1 >/dev/null)
		rc=$?
		if ((rc == 1)) && grep -qE -- "$re" <<<"$out"; then
			pass "cli: $name: exit 1, $(grep -m1 -E -- "$re" <<<"$out" | sed 's/^triggerdump: //')"
		else
			fail "cli: $name" "exit $rc (want 1), stderr: $(head -2 <<<"$out")"
		fi
	done
	# a runtime that does not accept connections (its listen queue full):
	# said so, after waiting for room until the timeout (was: the unconnected
	# socket's SO_PEERCRED read as an impersonator, "served by uid 4294967295")
	local full
	if full=$(fake full no-accept); then
		timeout 20 "$TRIGGERDUMP" monitor "$full" --duration 1 >/dev/null 2>&1 # queued, never accepted: the queue is full
		out=$(timeout 20 "$TRIGGERDUMP" monitor "$full" --duration 1 2>&1 >/dev/null)
		rc=$?
		if ((rc == 1)) && grep -q "cannot connect to [^ ]*: the runtime does not accept connections (its listen queue is full)" <<<"$out"; then
			pass "cli: full listen queue: exit 1, $(sed 's/^triggerdump: //' <<<"$out" | head -1)"
		else
			fail "cli: full listen queue" "exit $rc (want 1), stderr: $(head -2 <<<"$out")"
		fi
	else
		fail "cli: full listen queue" "the no-accept fake did not start"
	fi
	kill_fakes full
	# ps lists the fakes, not the impersonated sleepers nor the dead pid
	out=$(timeout 60 "$TRIGGERDUMP" ps 2>&1)
	if grep -qE "^ *${FPID[normal]} " <<<"$out" && ! grep -qE "^ *($SLEEP1|$SLEEP2|$DEAD) .*[0-9]+\.[0-9]" <<<"$out"; then
		pass "cli: ps lists the fake runtimes; the impersonated sleepers are not listed as runtimes, the dead pid not at all"
	else
		fail "cli: ps" "$(grep -E "^ *(${FPID[normal]}|$SLEEP1|$SLEEP2|$DEAD) " <<<"$out")"
	fi
}

# ============================================================ dumps
run_dumps() {
	echo "== faults: dump path attacks and createdump refusals"
	local DD=$IT/dumps victim=$IT/victim out rc f
	mkdir -p "$DD"
	chmod 0700 "$DD"
	printf 'precious\n' >"$victim"
	chown nobody "$victim"
	chmod 0644 "$victim"
	local vstat
	vstat=$(stat -c '%u %a %s %Y' "$victim")

	# dump_case NAME SCENARIO ARGS...: a fake, one `triggerdump dump`; sets OUT, RC, FPD
	dump_case() {
		local name=$1 sc=$2
		shift 2
		FPD=$(fake "$name" "$sc" --victim "$victim" "$@") || return 1
		OUT=$(timeout 20 "$TRIGGERDUMP" dump "$FPD" -o "$DD" 2>&1)
		RC=$?
	}
	dump_case dump-symlink-staged dump-symlink-staged
	if ((RC == 1)) && grep -qE "dump of pid $FPD failed: .*/dump is not a (regular|plain) file" <<<"$OUT"; then
		pass "dumps: a symlink instead of the dump: $(grep -o 'failed: .*' <<<"$OUT" | sed "s|$DD/||")"
	else
		fail "dumps: symlink instead of the dump" "exit $RC: $OUT"
	fi
	# a hostile runtime swaps its dump for a symlink while it is checked,
	# chmod-ed, chown-ed and renamed: 40 dumps
	FPD=$(fake dump-swap dump-swap --victim "$victim")
	local i ok=0 refused=0 other=0
	for i in $(seq 40); do
		OUT=$(timeout 20 "$TRIGGERDUMP" dump "$FPD" -o "$DD/swap/" 2>&1)
		if grep -q '^triggerdump: wrote ' <<<"$OUT"; then ok=$((ok + 1))
		elif grep -qE 'refusing it' <<<"$OUT"; then refused=$((refused + 1))
		else other=$((other + 1)); log "swap: $OUT"; fi
	done
	local links notreg
	links=$(find "$DD/swap" -maxdepth 1 -name '*.dmp' -type l | wc -l)
	notreg=$(find "$DD/swap" -maxdepth 1 -name '*.dmp' ! -type f | wc -l)
	local bad600
	bad600=$(find "$DD/swap" -maxdepth 1 -name '*.dmp' -type f ! -perm 0600 | wc -l)
	if [[ $(stat -c '%u %a %s %Y' "$victim") == "$vstat" ]] && ((links == 0 && notreg == 0 && bad600 == 0 && other == 0)); then
		pass "dumps: a dump swapped for a symlink while being secured, 40 times: $ok written (regular, 0600), $refused refused, no symlink among the dumps, the link's target untouched"
	else
		fail "dumps: swapped dump" "victim $(stat -c '%u %a %s %Y' "$victim") (was $vstat), $links symlinks / $notreg non-files / $bad600 not 0600 among the dumps, $ok written, $refused refused, $other other"
	fi
	# a hostile entry assembly: the file name is sanitised, in the directory
	dump_case dump-evil-name dump-ok --entry "a/../../../tmp/evil name"
	f=$(grep -o "wrote [^ ]*" <<<"$OUT" | cut -d' ' -f2)
	if ((RC == 0)) && [[ $f == "$DD"/a_.._.._.._tmp_evil_name-"$FPD"-*.dmp && -f $f ]]; then
		pass "dumps: entry assembly \"a/../../../tmp/evil name\" becomes ${f##*/} inside the directory"
	else
		fail "dumps: hostile entry assembly" "exit $RC: $OUT"
	fi
	dump_case dump-dot-name dump-ok --entry ".."
	f=$(grep -o "wrote [^ ]*" <<<"$OUT" | cut -d' ' -f2)
	[[ $RC == 0 && ${f##*/} == dotnet-"$FPD"-*.dmp ]] && pass "dumps: entry assembly \"..\" becomes ${f##*/}" || fail "dumps: entry \"..\"" "exit $RC: $OUT"
	# a new directory: created 0711 (each level: a target of another user
	# reaches its own staging directory, lists nothing), the dump 0600
	OUT=$(timeout 20 "$TRIGGERDUMP" dump "$FPD" -o "$DD/new/sub/" 2>&1)
	f=$(grep -o "wrote [^ ]*" <<<"$OUT" | cut -d' ' -f2)
	if [[ $(stat -c %a "$DD/new" "$DD/new/sub" 2>/dev/null | paste -sd' ') == "711 711" && $(stat -c %a "$f" 2>/dev/null) == 600 ]]; then
		pass "dumps: a new dump directory is created 0711 (each level), the dump is 0600"
	else
		fail "dumps: modes" "$(stat -c '%n %a' "$DD/new" "$DD/new/sub" "$f" 2>&1 | paste -sd' ')"
	fi

	# createdump refusals: the copied self-contained .NET 8
	if [[ -z ${CT8:-} ]] || ! kill -0 "$CT8" 2>/dev/null; then
		start_ct8 || { fail "dumps: start the copied .NET 8 target" "see $IT/ct8.log"; return 1; }
	fi
	local cd=$IT/ct8/createdump
	chmod 0755 "$cd"
	chmod o+w "$cd"
	OUT=$(timeout 30 "$TRIGGERDUMP" dump "$CT8" --method exec -o "$DD/exec/" 2>&1)
	RC=$?
	((RC == 1)) && grep -q "$cd is writable by group or others (mode 0757): refusing to run it" <<<"$OUT" &&
		pass "dumps: createdump writable by others: $(grep -o "createdump is writable.*" <<<"$OUT")" ||
		fail "dumps: createdump o+w" "exit $RC: $OUT"
	chmod 0775 "$cd"
	OUT=$(timeout 30 "$TRIGGERDUMP" dump "$CT8" --method exec -o "$DD/exec/" 2>&1)
	RC=$?
	((RC == 1)) && grep -q "is writable by group or others (mode 0775)" <<<"$OUT" &&
		pass "dumps: createdump writable by its group: refused (mode 0775)" || fail "dumps: createdump g+w" "exit $RC: $OUT"
	chmod 0755 "$cd"
	chown nobody "$cd"
	OUT=$(timeout 30 "$TRIGGERDUMP" dump "$CT8" --method exec -o "$DD/exec/" 2>&1)
	RC=$?
	((RC == 1)) && grep -q "$cd is owned by uid $(id -u nobody), not root: refusing to run it as root" <<<"$OUT" &&
		pass "dumps: createdump owned by another uid: $(grep -o "createdump is owned.*" <<<"$OUT")" ||
		fail "dumps: createdump owner" "exit $RC: $OUT"
	chown root "$cd"
	mv "$cd" "$cd.real"
	ln -s /bin/true "$cd"
	OUT=$(timeout 30 "$TRIGGERDUMP" dump "$CT8" --method exec -o "$DD/exec/" 2>&1)
	RC=$?
	((RC == 1)) && grep -q "$cd is a symbolic link: refusing to run it as root" <<<"$OUT" &&
		pass "dumps: createdump a symlink: refused" || fail "dumps: createdump symlink" "exit $RC: $OUT"
	rm -f "$cd"
	mv "$cd.real" "$cd"
	if [[ -z $(find "$DD/exec" -mindepth 1 -name '*.dmp' 2>/dev/null) ]] && ! grep -q '\[createdump\]' "$IT/ct8.log"; then
		pass "dumps: no refused createdump ran, no dump written"
	else
		fail "dumps: refused createdump ran" "$(find "$DD/exec" -mindepth 1 | head -3)"
	fi
	kill -0 "$CT8" 2>/dev/null && [[ $(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$CT8/stat") != T ]] &&
		pass "dumps: the target runs on" || fail "dumps: the target after the refusals" "not running"
}

# ============================================================ stop50
run_stop50() {
	echo "== faults: collectd stopped with 50 fake + 2 real sessions and a hung dump"
	local D=$IT/stop50 real2
	[[ -n ${STEADY:-} ]] && kill -0 "$STEADY" 2>/dev/null ||
		STEADY=$(start_target CounterTarget 10 --seconds "$MARK") || { fail "stop50: start steady" "see above"; return 1; }
	real2=$(start_target CounterTarget 8 --seconds "$MARK") || { fail "stop50: start a .NET 8 target" "see above"; return 1; }
	fakes s50n normal 40 || { fail "stop50: 40 fakes" "did not start"; return 1; }
	fakes s50h stop-hang 10 || { fail "stop50: 10 fakes" "did not start"; return 1; }
	local dh
	dh=$(fake s50d dump-hang) || { fail "stop50: dump-hang fake" "did not start"; return 1; }
	local t0
	t0=$(_now)
	if ! collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"steady\">
    Pid $STEADY
  </Process>
  <Process \"real2\">
    Pid $real2
  </Process>
  <Process \"n\">
    CommandLine \"fake-diag-server\\\\.py .*--tag s50n-$$\"
  </Process>
  <Process \"h\">
    CommandLine \"fake-diag-server\\\\.py .*--tag s50h-$$\"
  </Process>
  <Process \"dh\">
    Pid $dh
  </Process>
  <Dump>
    Directory \"$IT/dumps-ipc\"
    Timeout 120
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"dh\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
    </Type>
  </Plugin>
</Plugin>"; then
		fail "stop50: collectd starts" "see $D/collectd.log"
		return 1
	fi
	local n
	if wait_until 60 bash -c "(( \$(grep -c 'watching pid' '$D/collectd.log') >= 53 ))"; then
		pass "stop50: 53 sessions live (40 + 10 fakes by CommandLine, 1 fake, 2 real) $(elapsed "$t0") s after collectd's start"
	else
		fail "stop50: sessions" "$(grep -c 'watching pid' "$D/collectd.log") of 53 'watching pid' lines after 60 s"
	fi
	wait_until 20 grep -q 'dump asked' "$FK/s50d.log" && pass "stop50: a GenerateCoreDump is in progress (never answered)" ||
		fail "stop50: dump in progress" "the dump-hang fake was not asked for a dump"
	wait_until 10 has_rows_after 1 "$D" real2 "$STEADY_VALUE" 0
	read -r fds threads rss <<<"$(proc_usage "$COLLECTD_PID")"
	log "collectd with 53 sessions: $fds fds, $threads threads, RSS $rss kB"
	stop_collectd 10
	if awk -v s="$STOP_SECS" 'BEGIN { exit !(s < 2) }' && ((COLLECTD_EXIT == 0)); then
		pass "stop50: collectd exits in $STOP_SECS s (< 2 s), status 0, with 53 live sessions (10 never answer StopTracing) and a hung dump"
	else
		fail "stop50: stop time" "$STOP_SECS s, exit status $COLLECTD_EXIT (want < 2 s, 0)"
	fi
	n=$(log_count "$D" 'session with pid [0-9]+ stopped')
	((n == 53)) && pass "stop50: the log shows the 53 sessions stopped" || fail "stop50: stopped sessions" "$n of 53"
	log_has "$D" "10 session\(s\) did not confirm StopTracing within 500 ms; closed" &&
		pass "stop50: $(log_line "$D" 'did not confirm StopTracing' | sed 's/^\[[a-z]*\] dotnet plugin: //')" ||
		fail "stop50: unconfirmed StopTracing" "no '10 session(s) did not confirm StopTracing' line: $(log_line "$D" 'did not confirm')"
	log_has "$D" "dump of pid $dh failed: GenerateCoreDump failed: cancelled \(shutting down\)" &&
		pass "stop50: the hung dump is abandoned at shutdown: $(log_line "$D" "dump of pid $dh failed" | sed 's/^\[[a-z]*\] dotnet plugin: //')" ||
		fail "stop50: hung dump at shutdown" "$(log_line "$D" "dump of pid $dh")"
	n=$(grep -c ' stop tracing ' "$FK/s50n.log")
	((n >= 40)) && pass "stop50: the 40 answering fakes got StopTracing ($n)" || fail "stop50: StopTracing sent" "$n of 40"
	stop_target "$real2" >/dev/null
	kill_fakes s50n s50h s50d
}

# ============================================================ cycles
# cycle_fakes NAME N: N restart cycles of fake targets; echoes "DONE MISSED"
cycle_fakes() {
	local out
	out=$("$PY" "$FAKE" --scenario cycle --cycle "$2" --only-for $$ --tag "cyc-$$" \
		--log "$FK/$1.log" </dev/null 2>>"$FK/$1.err")
	awk '/^CYCLES/ { print $2, $3 }' <<<"$out"
}

# cycle_real D N [SECONDS]: up to N restarts of a real CounterTarget (each
# started before the previous is SIGKILLed, so the session end wakes the
# plugin onto it), fewer if SECONDS run out; echoes "DONE MISSED"
cycle_real() {
	local D=$1 n=$2 budget=${3:-600} cur nxt i done=0 missed=0 t0
	t0=$(_now)
	cur=$(start_target CounterTarget 10 --seconds "$MARK_RC") || { echo "0 $n"; return; }
	wait_until 10 log_has "$D" "watching pid $cur " || missed=$((missed + 1))
	for ((i = 0; i < n; i++)); do
		awk -v a="$t0" -v b="$(_now)" -v l="$budget" 'BEGIN { exit !(b - a > l) }' && break
		nxt=$(start_target CounterTarget 10 --seconds "$MARK_RC") || { missed=$((missed + 1)); continue; }
		kill -KILL "$cur"
		stop_target "$cur" >/dev/null 2>&1 # reap, remove its stale socket
		cur=$nxt
		if wait_until 10 log_has "$D" "watching pid $cur "; then done=$((done + 1)); else missed=$((missed + 1)); fi
	done
	stop_target "$cur" >/dev/null 2>&1
	wait_until 10 log_has "$D" "session with pid $cur ended" >&2
	echo "$done $missed"
}

run_cycles() {
	echo "== faults: restart cycles: collectd's fds, threads and RSS"
	local D=$IT/cycles
	[[ -n ${STEADY:-} ]] && kill -0 "$STEADY" 2>/dev/null ||
		STEADY=$(start_target CounterTarget 10 --seconds "$MARK") || { fail "cycles: start steady" "see above"; return 1; }
	# AlignSessions false: a restart is watched at once instead of at the
	# next whole second, so that 500 of them, one after the other, fit in
	# seconds (the grid itself: plugin.sh "grid", stop50, valgrind below)
	if ! collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  AlignSessions false
  <Process \"steady\">
    Pid $STEADY
  </Process>
  <Process \"cyc\">
    CommandLine \"fake-diag-server\\\\.py .*--tag cyc-$$\"
  </Process>
  <Process \"rc\">
    CommandLine \"CounterTarget --seconds ${MARK_RC//./\\\\.}\$\"
  </Process>
  <Process \"late\">
    CommandLine \"fake-diag-server\\\\.py .*--tag late-$$\"
  </Process>
  <Process \"mutec\">
    CommandLine \"fake-diag-server\\\\.py .*--tag mutec[0-9]-$$\"
  </Process>
</Plugin>"; then
		fail "cycles: collectd starts" "see $D/collectd.log"
		return 1
	fi
	local t0 r u0 u1 u2 f0 th0 rss0 f1 th1 rss1 f2 th2 rss2
	t0=$(_now)
	r=$(cycle_fakes cyc0 50)
	log "warm-up: 50 fake cycles ($r done/missed), $(cycle_real "$D" 10) real restarts done/missed, $(elapsed "$t0") s"
	sleep 1.5
	u0=$(proc_usage "$COLLECTD_PID")
	ls -l "/proc/$COLLECTD_PID/fd" >"$D/fds-0.txt" # for a look when they differ
	read -r f0 th0 rss0 <<<"$u0"

	t0=$(_now)
	r=$(cycle_fakes cyc1 500)
	local secs1
	secs1=$(elapsed "$t0")
	read -r d1 m1 <<<"$r"
	sleep 1.5
	u1=$(proc_usage "$COLLECTD_PID")
	ls -l "/proc/$COLLECTD_PID/fd" >"$D/fds-1.txt" # for a look when they differ
	read -r f1 th1 rss1 <<<"$u1"
	((d1 >= 495)) && pass "cycles: 500 fake target restarts in $secs1 s, each watched ($d1 watched, ${m1:-?} missed)" ||
		fail "cycles: fake restarts" "$d1 watched, $m1 missed of 500"

	t0=$(_now)
	r=$(cycle_real "$D" "$REAL_CYCLES" "$REAL_CYCLES_SECS")
	local secs2
	secs2=$(elapsed "$t0")
	read -r d2 m2 <<<"$r"
	sleep 1.5
	u2=$(proc_usage "$COLLECTD_PID")
	ls -l "/proc/$COLLECTD_PID/fd" >"$D/fds-2.txt" # for a look when they differ
	read -r f2 th2 rss2 <<<"$u2"
	if ((d2 >= 100 && m2 <= d2 / 50)); then
		pass "cycles: $d2 real .NET 10 restarts (SIGKILL) in $secs2 s, each watched ($m2 missed; up to $REAL_CYCLES within $REAL_CYCLES_SECS s)"
	else
		fail "cycles: real restarts" "$d2 watched, $m2 missed in $secs2 s (want >= 100, <= 2 % missed)"
	fi

	local summary="after warm-up $f0 fds / $th0 threads / $rss0 kB; after 500 fake cycles $f1 / $th1 / $rss1 kB; after $d2 real restarts $f2 / $th2 / $rss2 kB"
	log "collectd: $summary"
	if ((f1 <= f0 && f2 <= f0)); then
		pass "cycles: collectd's fds not grown ($f0 -> $f1 -> $f2)"
	else
		fail "cycles: fds" "$summary"
		ls -l "/proc/$COLLECTD_PID/fd" >&2
		cat "/proc/$COLLECTD_PID/net/unix" | grep -F "$TMPDIR" >&2
	fi
	((th1 == th0 && th2 == th0)) && pass "cycles: collectd's threads unchanged ($th0 -> $th1 -> $th2)" || fail "cycles: threads" "$summary"
	if ((rss1 - rss0 <= RSS_BOUND_KB && rss2 - rss0 <= RSS_BOUND_KB)); then
		pass "cycles: collectd's RSS $rss0 -> $rss1 -> $rss2 kB (growth $((rss1 - rss0)) / $((rss2 - rss0)) kB <= $RSS_BOUND_KB kB)"
	else
		fail "cycles: RSS" "$summary (bound +$RSS_BOUND_KB kB)"
	fi
	# a runtime binds its socket a moment before it listens, and the
	# socket's inotify event brings the plugin in at once: here its
	# connects are refused for 3 s. Retried quietly, watched once it
	# listens (a warning fails "no error or warning" below; a retry 10 s
	# later fails this). Meanwhile four other processes never answer
	# ProcessInfo (the plugin matches no rule to them, so it asks them who
	# they are) and five that match a rule never answer CollectTracing:
	# asked alongside, each up to its 2 s timeout, they hold up nobody
	# (asked one after the other, they took the connector 8 s and 10 s).
	local late t_late m
	for m in mute1 mute2 mute3; do fake "$m" hang >/dev/null; done
	fake mute4 lying-size >/dev/null
	for m in mutec1 mutec2 mutec3 mutec4 mutec5; do fake "$m" slow-collect --delay 1000 >/dev/null; done
	t_late=$(_now)
	if late=$(fake late late-listen --delay 3) &&
		wait_until 6 log_has "$D" "instance \"late\": watching pid $late "; then
		pass "cycles: a runtime listening 3 s after its socket appeared is watched $(elapsed "$t_late") s after it appeared (< 6 s), while 4 others never answer ProcessInfo and 5 never answer CollectTracing"
	else
		fail "cycles: late listener" "$(log_line "$D" "pid ${late:-X}"), $(elapsed "$t_late") s (see $FK/late.log)"
	fi
	local nc re_c='instance "mutec[^"]*": cannot start a session with pid [0-9]+: no answer from the runtime in time \(retrying every 10 s; logged once\)'
	wait_until 10 bash -c "(( \$(grep -cE '$re_c' '$D/collectd.log') >= 5 ))"
	nc=$(grep -cE "$re_c" "$D/collectd.log")
	((nc == 5)) && pass "cycles: the 5 that never answer CollectTracing are reported, once each" ||
		fail "cycles: CollectTracing never answered" "$nc of 5 'cannot start a session' lines"
	kill_fakes late mute1 mute2 mute3 mute4 mutec1 mutec2 mutec3 mutec4 mutec5
	# steady meanwhile
	read -r rows gap <<<"$(max_gap "$D" steady "$STEADY_VALUE" "$(awk -v a="$T_CYC" 'BEGIN { printf "%.3f", a + 3 }')" "$(_now)")"
	awk -v g="$gap" -v m="$GAP_MAX" 'BEGIN { exit !(g < m) }' && pass "cycles: steady wrote $rows rows meanwhile, longest gap $gap s (< $GAP_MAX s)" ||
		fail "cycles: steady" "$rows rows, longest gap $gap s (want < $GAP_MAX s)"
	local errs
	errs=$(grep -E '\[(error|warning)\] dotnet plugin' "$D/collectd.log" | grep -v 'matches no .NET process yet' |
		grep -v 'instance "mutec[^"]*": cannot start a session')
	[[ -z $errs ]] && pass "cycles: no error or warning in the log" || fail "cycles: log" "$(head -3 <<<"$errs")"
	stop_collectd 10
	awk -v s="$STOP_SECS" 'BEGIN { exit !(s < 2) }' && pass "cycles: collectd exits in $STOP_SECS s" || fail "cycles: stop" "$STOP_SECS s"
}

# ============================================================ valgrind
run_valgrind() {
	echo "== faults: collectd + plugin under valgrind with the hostile fakes"
	local D=$IT/valgrind body="" sc p
	mkdir -p "$D"
	for sc in hang garbage-reply truncated-reply error-reply stream-garbage stream-huge-block stream-zeros stream-truncated stream-stall normal; do
		p=$(fake "vg-$sc" "$sc") || { fail "valgrind: fake $sc" "did not start"; return 1; }
		body+="  <Process \"$sc\">
    Pid $p
  </Process>
"
	done
	[[ -n ${SLEEP1:-} ]] && kill -0 "$SLEEP1" 2>/dev/null && body+="  <Process \"imp-root\">
    Pid $SLEEP1
  </Process>
"
	local VG_LOG=$D/valgrind.log t0
	t0=$(_now)
	if ! COLLECTD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30 --suppressions=$REPO/tests/valgrind.supp --log-file=$VG_LOG" \
		collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
$body  <Process \"cyc\">
    CommandLine \"fake-diag-server\\\\.py .*--tag cyc-$$\"
  </Process>
</Plugin>"; then
		fail "valgrind: collectd starts under valgrind" "see $D/collectd.log, $VG_LOG"
		stop_collectd 60
		return 1
	fi
	log "collectd under valgrind initialised in $(elapsed "$t0") s"
	wait_until 30 log_has "$D" "session with pid [0-9]+ ended: bad nettrace stream: block of"
	local r
	r=$(cycle_fakes vg-cyc 40)
	log "40 fake restart cycles under valgrind: $r done/missed"
	# the retries of the 10 s back-off
	while awk -v a="$t0" -v b="$(_now)" 'BEGIN { exit !(b - a < 15) }'; do sleep 0.5; done
	stop_collectd 120
	local summary definite srcs ours_
	summary=$(grep -m1 'ERROR SUMMARY' "$VG_LOG" | sed 's/^==[0-9]*== //')
	definite=$(grep -m1 'definitely lost:' "$VG_LOG" | sed 's/^==[0-9]*== *//')
	srcs=$(cd "$REPO/plugin" && ls -- *.c | sed 's/\.c$//' | paste -sd'|')
	ours_=$(awk -v re="\\((in [^)]*dotnet\\.so|($srcs)\\.c:[0-9]+)\\)" '
		/^==[0-9]+== $/ { if (rec && hit) n++; rec = hit = 0; next }
		/^==[0-9]+== [A-Z0-9]/ { rec = 1 }
		rec && $0 ~ re { hit = 1 }
		END { print n + 0 }' "$VG_LOG")
	local ended
	ended=$(log_count "$D" 'session with pid [0-9]+ ended')
	if ((COLLECTD_EXIT == 0)) && [[ $summary == "ERROR SUMMARY: 0 errors"* ]] && ((ours_ == 0)); then
		pass "valgrind: hostile fakes + 40 restart cycles ($ended session ends): exit 0, $summary, ${definite:-no definite leak}, nothing from the plugin"
	else
		fail "valgrind" "exit $COLLECTD_EXIT (99: valgrind found errors), $summary, ${definite:-}, $ours_ record(s) with a frame of the plugin; see $VG_LOG"
	fi
}

T_CYC=$T_BEGIN
for p in hostile cli dumps stop50 cycles valgrind; do
	if part $p; then
		[[ $p == cycles ]] && T_CYC=$(_now)
		"run_$p"
	fi
	[[ -n $COLLECTD_PID ]] && stop_collectd 10 # after a part that gave up
done
log "faults.sh took $(elapsed "$T_BEGIN") s"
