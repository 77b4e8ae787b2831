#!/usr/bin/env bash
# tests/integration/security-discovery.sh -- what a local user can do to
# discovery and the connector, against real collectd and real .NET runtimes.
#
# tests/run runs it (tests/run security-discovery); alone:
#   REPO=. BUILD=build TRIGGERDUMP=build/c/triggerdump \
#     PLUGIN_SO=build/c/.libs/dotnet.so RESULTS=/tmp/r.txt \
#     bash tests/integration/security-discovery.sh
# Parts (SECDISC_PARTS, default "silent ansi mknod names maxproc"):
#  silent  200 diagnostic sockets that accept and never answer (fake
#          servers, scenario hang: 120 run as root, 80 as an unprivileged
#          user), every one asked once; then a real .NET 8 runtime starts
#          beside them, with a pid above theirs (a connector that asks in
#          /proc order reaches it last): collectd (plugin Interval 5)
#          watches it within two intervals of its socket's creation. (A new
#          process costs up to an interval to be noticed, events being taken
#          once an interval, plus up to 1 s to the start grid, plus the
#          runtime's own start: Interval 5 leaves room for a loaded host.)
#  ansi    the unprivileged user runs a real .NET 8 runtime through a link
#          named ESC[31mX, with TMPDIR ".../tESC[31mQ<newline>R", and a fake
#          runtime there whose error replies carry ESC and a newline; then
#          replaces the real runtime's socket with a mknod'ed one (connects
#          refused, the path in the error). Neither `triggerdump ps` nor
#          collectd's log holds a raw ESC or a line that is not its own.
#  mknod   the unprivileged user fills its TMPDIR with 50000 socket files
#          (mknod S_IFSOCK, nothing listening): collectd's memory grows by
#          less than MKNOD_RSS_KB, the cap is logged once, and a real
#          runtime started there afterwards is still watched.
#  names   a <Process> rule by command line: the unprivileged user's fake
#          runtime takes the rule's name first; a root one matching too is
#          watched under "<name>-2" with a warning naming both pids and
#          uids; 8 more processes started and ended one after another
#          while the first holds the name all get "<name>-2": two plugin
#          instances in all, not one per pid.
#  maxproc MaxProcesses 2, AutoDiscover, one <Process> rule: three fake
#          runtimes anyone could start are found first; the rule's process
#          that comes after them is still watched (autodiscovered ones leave
#          a slot to each rule, at most half of MaxProcesses), and the cap
#          is logged once.
# About 3 minutes on 2 CPUs.
# shellcheck source-path=SCRIPTDIR
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

WORK=$BUILD/security-discovery
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$WORK/targets
FAKE=$REPO/tests/fake-diag-server.py
PY=$(python3 -c 'import sys; print(sys.executable)')
PY_USER=$PY # an interpreter the unprivileged user can run
[[ -x /usr/bin/python3 ]] && PY_USER=/usr/bin/python3
U=$(test_user) || exit 1
G=$(id -g "$U")
SILENT_ROOT=${SILENT_ROOT:-120}
SILENT_USER=${SILENT_USER:-80}
PLUGIN_INTERVAL=5
MKNOD_FILES=${MKNOD_FILES:-50000}
MKNOD_RSS_KB=${MKNOD_RSS_KB:-3072}
# CounterTarget --seconds (at most 4294967: its CancelAfter): long enough,
# and names our targets, one number a part
MARK=$((1000000 + $$ % 1000000 * 3))
OTHER_PIDS=()
TMP_DIRS=()

cleanup() {
	local p d
	[[ -n ${COLLECTD_PID:-} ]] && collectd_stop 10 >/dev/null
	stop_others
	stop_all_targets
	for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

part() { [[ " ${SECDISC_PARTS:-silent ansi mknod names maxproc} " == *" $1 "* ]]; }
log_has() { grep -qE -- "$2" "$1/collectd.log"; }
# "${AS_USER[@]}" CMD...: runs CMD as the unprivileged user, as start_target
# does (an array, not a function: in the background $! is then CMD itself)
AS_USER=(setpriv --reuid="$U" --regid="$G" --clear-groups --no-new-privs)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mtime() { "$PY" -c 'import os, sys; print("%.3f" % os.stat(sys.argv[1]).st_mtime)' "$1"; }
since() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.2f", b - a }'; }

# start_user_target TMPDIR ARGV0-PATH MARK: a real CounterTarget (.NET 8)
# run as the user with that TMPDIR (and an escape and a newline in its
# environment), through ARGV0-PATH (a link to its apphost), --seconds MARK;
# sets USER_TARGET to its pid once its socket exists (call it in this
# shell, not in $(...): the process is a child of this shell)
start_user_target() {
	local tdir=$1 exe=$2 mark=$3 log pid
	USER_TARGET=
	log=$(mktemp "$WORK/target.XXXXXX")
	"${AS_USER[@]}" env TMPDIR="$tdir" HOME="$tdir" CDN_NOTE=$'\e[31menv\nline' \
		"$exe" --seconds "$mark" </dev/null >"$log" 2>&1 &
	pid=$!
	OTHER_PIDS+=("$pid")
	wait_until 60 bash -c "grep -q '^READY $pid\$' '$log' && compgen -G '$tdir/dotnet-diagnostic-$pid-*-socket' >/dev/null" || {
		echo "the target did not start; its log:" >&2
		cat "$log" >&2
		return 1
	}
	USER_TARGET=$pid
}

# stop_others: ends what this part started in the background, and waits
stop_others() {
	local p
	for p in "${OTHER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${OTHER_PIDS[@]}"; do
		wait_until 10 bash -c "! kill -0 $p 2>/dev/null" || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	OTHER_PIDS=()
}

# ---- silent: 200 sockets that never answer, then a real runtime ----
if part silent; then
	D=$WORK/silent
	mkdir -p "$D"
	SD=$(mktemp -d /tmp/cdn-sd.XXXXXX) # where every socket of this part goes
	TMP_DIRS+=("$SD")
	chmod 1777 "$SD" "$D" # the user's fakes write their logs there too
	"$PY" "$FAKE" --scenario hang --only-for $$ --dir "$SD" --log "$D/root.log" \
		--ready "$D/root.ready" --tag "silent-root-$$" --instances "$SILENT_ROOT" \
		</dev/null >"$D/root.out" 2>&1 &
	OTHER_PIDS+=($!)
	"${AS_USER[@]}" "$PY_USER" "$FAKE" --scenario hang --only-for $$ --dir "$SD" --log "$D/user.log" \
		--ready "$D/user.ready" --tag "silent-user-$$" --instances "$SILENT_USER" \
		</dev/null >"$D/user.out" 2>&1 &
	OTHER_PIDS+=($!)
	total=$((SILENT_ROOT + SILENT_USER))
	nready() { cat "$D/root.ready" "$D/user.ready" 2>/dev/null | wc -l; }
	wait_until 60 bash -c "(( \$(cat '$D/root.ready' '$D/user.ready' 2>/dev/null | wc -l) >= $total ))"
	user_socks=$(find "$SD" -maxdepth 1 -type s -user "$U" -name 'dotnet-diagnostic-*' | wc -l)
	if (($(nready) >= total && user_socks >= SILENT_USER)); then
		pass "silent: $total silent diagnostic sockets, $user_socks of them owned by $U"
	else
		fail "silent: setup" "$(nready) of $total fake servers ready, $user_socks owned by $U"
	fi
	if collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval $PLUGIN_INTERVAL
  <Process \"real\">
    CommandLine \"--seconds $MARK\$\"
  </Process>
</Plugin>"; then
		# every silent socket asked once (its fake logs our connection)
		asked() { awk '/ client [0-9]+ ours$/ { print $2 }' "$D/root.log" "$D/user.log" 2>/dev/null | sort -u | wc -l; }
		t0=$(_now)
		if wait_until 120 bash -c "(( \$(awk '/ client [0-9]+ ours\$/ { print \$2 }' '$D/root.log' '$D/user.log' 2>/dev/null | sort -u | wc -l) >= $total ))"; then
			pass "silent: collectd asked every one of the $total silent sockets within $(since "$t0") s"
		else
			fail "silent: asked" "$(asked) of $total silent sockets asked after 120 s"
		fi
		# the runtime's pid above every silent one's, as on a host whose
		# pids have not wrapped since they started: a connector that asks in
		# /proc order reaches the runtime last (after a wrap it would reach
		# it first, and the test would not show what it is for)
		max=$(awk '{ print $2 }' "$D/root.ready" "$D/user.ready" | sort -n | tail -1)
		burnt=0
		while (($(sh -c 'echo $$') <= max && burnt < 70000)); do burnt=$((burnt + 1)); done
		export TMPDIR=$SD
		if P=$(start_target CounterTarget 8 --seconds "$MARK"); then
			echo "   the runtime is pid $P; the silent ones' highest $max ($burnt pids passed over)"
			sock=$(dotnet_diag_socket "$P")
			t_sock=$(mtime "$sock")
			limit=$((2 * PLUGIN_INTERVAL))
			if wait_until 30 log_has "$D" "instance \"real\": watching pid $P "; then
				took=$(since "$t_sock")
				if awk -v t="$took" -v l="$limit" 'BEGIN { exit !(t <= l) }'; then
					pass "silent: the new runtime (pid $P) watched $took s after its socket appeared (<= $limit s: 2 intervals) beside $total silent sockets"
				else
					fail "silent: watched within 2 intervals" "pid $P watched $took s after its socket appeared (want <= $limit s)"
				fi
			else
				fail "silent: new runtime watched" "pid $P not watched $(since "$t_sock") s after its socket appeared (want <= $limit s)"
			fi
			stop_target "$P" >/dev/null
		else
			fail "silent: start the real runtime" "see above"
		fi
		unset TMPDIR
		collectd_stop 10 >/dev/null
	else
		fail "silent: collectd start" "see $D/collectd.log"
	fi
	# every forked server by its pid too (READY <named> <server> <path>),
	# should a parent go before it has passed the signal on
	while read -r _ _ p _; do OTHER_PIDS+=("$p"); done < <(cat "$D/root.ready" "$D/user.ready" 2>/dev/null)
	stop_others
fi

# ---- ansi: escapes and newlines from the process and its runtime ----
if part ansi; then
	D=$WORK/ansi
	mkdir -p "$D"
	EB=$(mktemp -d /tmp/cdn-esc.XXXXXX)
	TMP_DIRS+=("$EB")
	chmod 755 "$EB"
	E=$EB/$'t\e[31mQ\nR' # the user's TMPDIR
	mkdir "$E" && chown "$U:" "$E"
	LINK=$EB/$'\e[31mX' # the apphost, called by a name with an escape
	ln -s "$(target_path CounterTarget 8)" "$LINK"
	cat >"$EB/fake-esc-peer.py" <<'PY'
# A "runtime" that answers every command with an error whose text carries
# an ANSI escape and a newline. argv[1]: a file to write READY to.
import os, socket, struct, sys
with open("/proc/self/stat") as f:
    stat = f.read()
start = int(stat[stat.rindex(")") + 2:].split()[19])
tmp = os.environ["TMPDIR"]
path = "%s/dotnet-diagnostic-%d-%d-socket" % (tmp, os.getpid(), start)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(16)
text = "\x1b[31mFAKE\nINJECTED"
payload = struct.pack("<II", 0x80004005, len(text) + 1) + (text + "\0").encode("utf-16-le")
msg = b"DOTNET_IPC_V1\0" + struct.pack("<HBBH", 20 + len(payload), 0xFF, 0xFF, 0) + payload
with open(sys.argv[1], "w") as f:
    f.write("READY %d\n" % os.getpid())
while True:
    c, _ = srv.accept()
    try:
        c.settimeout(2)
        c.recv(65536)
        c.sendall(msg)
    except OSError:
        pass
    c.close()
PY
	chmod 644 "$EB/fake-esc-peer.py"
	"${AS_USER[@]}" env TMPDIR="$E" "$PY_USER" "$EB/fake-esc-peer.py" "$E/ready" </dev/null >"$D/fake.out" 2>&1 &
	FAKE_ESC=$!
	OTHER_PIDS+=("$FAKE_ESC")
	REAL=
	if wait_until 15 test -s "$E/ready" && start_user_target "$E" "$LINK" "$((MARK + 1))"; then
		REAL=$USER_TARGET
		if tr '\0' ' ' <"/proc/$REAL/cmdline" | grep -q $'\e'; then
			pass "ansi: the real runtime (pid $REAL, user $U) has an escape in its command line and its TMPDIR"
		else
			fail "ansi: setup" "no escape in /proc/$REAL/cmdline"
		fi
	else
		fail "ansi: setup" "the fake or the real runtime did not start"
	fi
	if [[ -n $REAL ]] && collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"real\">
    Pid $REAL
  </Process>
  <Process \"esc\">
    Pid $FAKE_ESC
  </Process>
</Plugin>"; then
		wait_until 20 log_has "$D" "instance \"real\": watching pid $REAL " ||
			fail "ansi: real runtime watched" "no 'watching pid $REAL' in the log"
		wait_until 20 log_has "$D" "pid $FAKE_ESC matches <Process \"esc\"> but does not answer" ||
			fail "ansi: the fake's error logged" "no warning for pid $FAKE_ESC in the log"
		# the user swaps its runtime's socket for one nobody listens on:
		# connects are refused, and the error names the path (its TMPDIR)
		"${AS_USER[@]}" "$PY_USER" -c '
import glob, os, stat, sys
p = glob.glob("%s/dotnet-diagnostic-%s-*-socket" % (sys.argv[1], sys.argv[2]))[0]
os.unlink(p)
os.mknod(p, stat.S_IFSOCK | 0o600)' "$E" "$REAL"
		"$TRIGGERDUMP" ps >"$D/ps.out" 2>&1
		grep -E "^ *($REAL|$FAKE_ESC) " "$D/ps.out" | cat -v | sed 's/^/   ps: /'
		if grep -q $'\e' "$D/ps.out"; then
			fail "ansi: triggerdump ps" "a raw ESC in its output: $(cat -v "$D/ps.out" | grep -F '^[' | head -2)"
		elif bad=$(grep -vE '^ *(PID|[0-9]+) ' "$D/ps.out") && [[ -n $bad ]]; then
			fail "ansi: triggerdump ps" "a line it did not start (a newline from a peer or /proc): $(printf '%s' "$bad" | head -2 | cat -v)"
		elif grep -qE "^ *$FAKE_ESC .*\?\[31mFAKE\?INJECTED" "$D/ps.out" &&
			grep -qE "^ *$REAL .*cannot connect to .*t\?\[31mQ\?R/dotnet-diagnostic-$REAL-" "$D/ps.out"; then
			pass "ansi: triggerdump ps prints the runtime's error text and the TMPDIR with '?' for ESC and newline"
		else
			fail "ansi: triggerdump ps" "the two processes not listed as expected: $(grep -E "^ *($REAL|$FAKE_ESC) " "$D/ps.out" | cat -v)"
		fi
		sleep 2 # another pass or two of the connector
		collectd_stop 10 >/dev/null
		grep -E "pid $FAKE_ESC|pid $REAL" "$D/collectd.log" | cat -v | head -4 | sed 's/^/   log: /'
		if grep -q $'\e' "$D/collectd.log"; then
			fail "ansi: collectd log" "a raw ESC in it: $(grep -a $'\e' "$D/collectd.log" | head -2 | cat -v)"
		elif bad=$(grep -v '^\[' "$D/collectd.log") && [[ -n $bad ]]; then
			fail "ansi: collectd log" "a line collectd did not start (a newline from a peer): $(printf '%s' "$bad" | head -2 | cat -v)"
		elif grep -q "?\[31mFAKE?INJECTED" "$D/collectd.log"; then
			pass "ansi: collectd's log has the runtime's error text with '?' for ESC and newline, and no raw control character"
		else
			fail "ansi: collectd log" "the fake's error text is not in it"
		fi
	else
		fail "ansi: collectd start" "see $D/collectd.log"
	fi
	stop_others
fi

# ---- mknod: a TMPDIR full of socket files nobody listens on ----
if part mknod; then
	D=$WORK/mknod
	mkdir -p "$D"
	M=$(mktemp -d /tmp/cdn-mk.XXXXXX)
	TMP_DIRS+=("$M")
	chown "$U:" "$M"
	# a process of the user's with that TMPDIR: discovery lists it
	"${AS_USER[@]}" env TMPDIR="$M" sleep 600 </dev/null >/dev/null 2>&1 &
	OTHER_PIDS+=($!)
	if collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"mk\">
    CommandLine \"--seconds $((MARK + 2))\$\"
  </Process>
</Plugin>"; then
		sleep 3 # collectd settled: its threads, the first passes
		rss0=$(rss_kb "$COLLECTD_PID")
		t0=$(_now)
		"${AS_USER[@]}" "$PY_USER" -c '
import os, stat, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.mknod("%s/dotnet-diagnostic-%d-%d-socket" % (d, 100000 + i, i), stat.S_IFSOCK | 0o600)
' "$M" "$MKNOD_FILES"
		echo "   $MKNOD_FILES socket files made in $(since "$t0") s"
		# a full pass comes within 10 intervals; then some more passes
		wait_until 30 log_has "$D" "diagnostic socket names in"
		sleep 3
		rss1=$(rss_kb "$COLLECTD_PID")
		grow=$((rss1 - rss0))
		if ((grow < MKNOD_RSS_KB)); then
			pass "mknod: collectd's RSS grew by $grow KiB with $MKNOD_FILES socket files (< $MKNOD_RSS_KB KiB; $rss0 -> $rss1)"
		else
			fail "mknod: memory bounded" "collectd's RSS grew by $grow KiB ($rss0 -> $rss1) with $MKNOD_FILES socket files (want < $MKNOD_RSS_KB)"
		fi
		if start_user_target "$M" "$(target_path CounterTarget 8)" "$((MARK + 2))"; then
			P=$USER_TARGET
			if wait_until 30 log_has "$D" "instance \"mk\": watching pid $P "; then
				pass "mknod: a real runtime started among them (pid $P, user $U) is watched"
			else
				fail "mknod: real runtime watched" "no 'watching pid $P' 30 s after it started"
			fi
		else
			fail "mknod: start the real runtime" "see above"
		fi
		n=$(grep -c "diagnostic socket names in" "$D/collectd.log")
		grep -m1 "diagnostic socket names in" "$D/collectd.log" | sed 's/^/   log: /'
		if ((n == 1)); then
			pass "mknod: the cap of socket names is logged once"
		else
			fail "mknod: cap logged once" "$n lines say so"
		fi
		collectd_stop 10 >/dev/null
	else
		fail "mknod: collectd start" "see $D/collectd.log"
	fi
fi

# ---- names: a rule's name taken first, and processes that come and go ----
if part names; then
	D=$WORK/names
	mkdir -p "$D"
	chmod 1777 "$D"
	ND=$(mktemp -d /tmp/cdn-nm.XXXXXX)
	TMP_DIRS+=("$ND")
	chmod 1777 "$ND"
	TAG=svc-$$
	# fakefor NAME [AS-USER...]: a "normal" fake runtime tagged $TAG; sets
	# FAKE_PID to the pid its socket is named after
	fakefor() {
		local name=$1
		shift
		rm -f "$D/$name.ready"
		"$@" "$PY_USER" "$FAKE" --scenario normal --dir "$ND" --ready "$D/$name.ready" \
			--tag "$TAG" </dev/null >>"$D/$name.out" 2>&1 &
		OTHER_PIDS+=($!)
		FAKE_SERVER=$!
		wait_until 15 test -s "$D/$name.ready" || return 1
		read -r _ FAKE_PID _ <"$D/$name.ready"
	}
	if fakefor imposter "${AS_USER[@]}"; then
		IMP=$FAKE_PID
	else
		fail "names: setup" "the user's fake did not start"
	fi
	if [[ -n ${IMP:-} ]] && collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"svc\">
    CommandLine \"--tag $TAG\"
  </Process>
</Plugin>"; then
		if wait_until 20 log_has "$D" "instance \"svc\": watching pid $IMP "; then
			pass "names: the user's process (pid $IMP) matches first and is \"svc\""
		else
			fail "names: setup" "pid $IMP not watched as \"svc\""
		fi
		fakefor real
		R=$FAKE_PID
		if wait_until 15 log_has "$D" "watching pid $R " &&
			log_has "$D" "<Process \"svc\"> also matches pid $R \\(uid 0\\), while pid $IMP \\(uid $(id -u "$U")\\) holds the name \"svc\""; then
			pass "names: root's pid $R matching too is logged with both pids and uids: $(grep -o "also matches pid $R .*holds the name \"svc\": pid $R is \"[^\"]*\"" "$D/collectd.log")"
		else
			fail "names: taken name logged" "no warning naming pid $R and pid $IMP: $(grep -E "pid $R" "$D/collectd.log" | head -2)"
		fi
		# processes that come and go while the first holds the name
		kill -TERM "$FAKE_SERVER"
		wait_until 10 log_has "$D" "session with pid $R ended"
		for i in 1 2 3 4 5 6 7 8; do
			fakefor "churn$i" || break
			wait_until 15 log_has "$D" "watching pid $FAKE_PID " || break
			kill -TERM "$FAKE_SERVER"
			wait_until 10 log_has "$D" "session with pid $FAKE_PID ended" || break
		done
		names=$(sed -n 's/.*instance "\([^"]*\)": watching pid .*/\1/p' "$D/collectd.log" | sort -u | tr '\n' ' ')
		started=$(grep -c ': watching pid ' "$D/collectd.log")
		if ((started >= 10)) && [[ $names == "svc svc-2 " ]]; then
			pass "names: $started processes in turn under 2 instance names ($names)"
		else
			fail "names: bounded instance names" "$started processes watched under: $names"
		fi
		collectd_stop 10 >/dev/null
	else
		fail "names: collectd start" "see $D/collectd.log"
	fi
	stop_others
fi

# ---- maxproc: processes anyone can start do not crowd out a rule's ----
if part maxproc; then
	D=$WORK/maxproc
	mkdir -p "$D"
	XD=$(mktemp -d /tmp/cdn-mp.XXXXXX)
	TMP_DIRS+=("$XD")
	autos=()
	for i in 1 2 3; do
		rm -f "$D/auto$i.ready"
		"$PY" "$FAKE" --scenario normal --dir "$XD" --ready "$D/auto$i.ready" \
			--tag "auto-$$" </dev/null >>"$D/auto$i.out" 2>&1 &
		OTHER_PIDS+=($!)
		wait_until 15 test -s "$D/auto$i.ready" && read -r _ a _ <"$D/auto$i.ready" && autos+=("$a")
	done
	if collectd_start "$D" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  AutoDiscover true
  MaxProcesses 2
  <Process \"ruled\">
    CommandLine \"--tag ruled-$$\"
  </Process>
</Plugin>"; then
		# the autodiscovered ones (ours, and any other .NET process here)
		# take what they may
		wait_until 20 bash -c "grep -qE 'watching pid (${autos[0]}|${autos[1]}|${autos[2]}) ' '$D/collectd.log'"
		sleep 2
		rm -f "$D/ruled.ready"
		"$PY" "$FAKE" --scenario normal --dir "$XD" --ready "$D/ruled.ready" \
			--tag "ruled-$$" </dev/null >>"$D/ruled.out" 2>&1 &
		OTHER_PIDS+=($!)
		wait_until 15 test -s "$D/ruled.ready" && read -r _ R _ <"$D/ruled.ready"
		if wait_until 20 log_has "$D" "instance \"ruled\": watching pid ${R:-X} "; then
			pass "maxproc: the rule's process (pid $R) is watched beside $(($(grep -c ': watching pid ' "$D/collectd.log") - 1)) autodiscovered one (MaxProcesses 2)"
		else
			fail "maxproc: rule's process watched" "pid ${R:-?} not watched: $(grep -E 'MaxProcesses|pid '"${R:-X}" "$D/collectd.log" | head -2)"
		fi
		n=$(grep -c "kept for the <Process> blocks" "$D/collectd.log")
		if ((n == 1)); then
			pass "maxproc: the autodiscovery cap is logged once: $(grep -o 'not watching pid .*blocks' "$D/collectd.log")"
		else
			fail "maxproc: cap logged once" "$n lines say so"
		fi
		collectd_stop 10 >/dev/null
	else
		fail "maxproc: collectd start" "see $D/collectd.log"
	fi
	stop_others
fi
