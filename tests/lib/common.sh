# shellcheck shell=bash
# tests/lib/common.sh -- what every integration test of collectd-dotnet uses.
#
# Source it from a test script (tests/integration/*.sh); tests/run sets:
#   REPO BUILD TRIGGERDUMP PLUGIN_SO RESULTS (file of PASS/FAIL lines)
#
#   pass NAME [DETAIL]        record a passed check
#   fail NAME REASON          record a failed check (and print why)
#   skip NAME REASON          record a check that cannot run here (data or a
#                             tool this machine lacks); never for a failure
#   check NAME CMD...         pass if CMD succeeds, fail otherwise
#   wait_until SECONDS CMD... poll CMD every 0.1 s until it succeeds or the
#                             deadline passes (returns 1 then); no bare sleeps
#   collectd_config DIR CONF_BODY  write DIR/collectd.conf and DIR/plugins only
#                             (for configurations collectd is expected to refuse)
#   collectd_start DIR CONF_BODY   write DIR/collectd.conf (common header:
#                             Hostname "test", BaseDir, PluginDir DIR/plugins
#                             with copies of dotnet.so and the Debian plugins
#                             named in COLLECTD_PLUGINS, logfile to
#                             DIR/collectd.log, csv to DIR/csv, Interval 1)
#                             + CONF_BODY, start collectd -f in the
#                             background; sets COLLECTD_PID
#   collectd_stop [TIMEOUT]   SIGTERM collectd, wait (default 10 s); echoes
#                             the seconds it took to exit and sets
#                             COLLECTD_STOP_SECONDS, COLLECTD_EXIT (call it
#                             directly, not in $(...): a subshell cannot wait
#                             for collectd)
#   csv_file DIR INSTANCE TYPE-TYPEINSTANCE   path of today's csv file
#   csv_last DIR INSTANCE TYPE-TYPEINSTANCE   last value written
#   csv_rows DIR INSTANCE TYPE-TYPEINSTANCE   number of data rows
#   test_user [NAME]          make sure an unprivileged system user NAME
#                             (default cdn-target) exists; echoes its name.
#                             Set TARGET_USER to it and start_target runs
#                             targets as that user (tests/lib/dotnet.sh)
#
# Variables: COLLECTD_WRAPPER (e.g. "valgrind --error-exitcode=99 ..."),
# COLLECTD_PLUGINS (extra Debian plugins to copy, default "csv logfile
# threshold unixsock"); COLLECTD_CSV=0 leaves the csv writer out.

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-$REPO/build}
RESULTS=${RESULTS:-$BUILD/results.txt}
TRIGGERDUMP=${TRIGGERDUMP:-$BUILD/c/triggerdump}
PLUGIN_SO=${PLUGIN_SO:-$BUILD/c/.libs/dotnet.so}
COLLECTD_PLUGINS=${COLLECTD_PLUGINS:-csv logfile threshold unixsock}
COLLECTD_PID=

# A result is one line of RESULTS: tests/run counts the lines that start
# with PASS, FAIL or SKIP, so a detail with line breaks (a log excerpt)
# has them made spaces.
_result() { # WORD NAME TEXT
	local text=${3//$'\n'/ }
	printf '%s %s%s\n' "$1" "$2" "$text" | tee -a "$RESULTS"
}

pass() { _result PASS "$1" "${2:+ ($2)}"; }

fail() { _result FAIL "$1" ": ${2:-failed}"; }

skip() { _result SKIP "$1" ": ${2:-skipped}"; }

check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

_now() { date +%s.%N; }

wait_until() {
	local secs=$1
	shift
	local deadline
	deadline=$(awk -v n="$(_now)" -v t="$secs" 'BEGIN { printf "%.3f", n + t }')
	while :; do
		"$@" && return 0
		awk -v n="$(_now)" -v d="$deadline" 'BEGIN { exit !(n >= d) }' && return 1
		sleep 0.1
	done
}

collectd_config() {
	local dir=$1 body=$2 p
	mkdir -p "$dir/plugins" "$dir/csv"
	# collectd refuses plugins behind symlinks: copies
	cp "$PLUGIN_SO" "$dir/plugins/dotnet.so"
	for p in ${COLLECTD_EXTRA_SO:-}; do # other plugins (bench/floor.c)
		cp "$p" "$dir/plugins/"
	done
	for p in $COLLECTD_PLUGINS; do
		cp "/usr/lib/collectd/$p.so" "$dir/plugins/"
	done
	cat >"$dir/collectd.conf" <<CONF
Hostname "test"
FQDNLookup false
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
PluginDir "$dir/plugins"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$dir/collectd.log"
  Timestamp true
  PrintSeverity true
</Plugin>
$(((${COLLECTD_CSV:-1})) && printf 'LoadPlugin csv\n<Plugin csv>\n  DataDir "%s"\n</Plugin>' "$dir/csv")
$body
CONF
	: >"$dir/collectd.log"
}

collectd_start() {
	local dir=$1 body=$2
	collectd_config "$dir" "$body"
	# shellcheck disable=SC2086
	${COLLECTD_WRAPPER:-} collectd -f -C "$dir/collectd.conf" >"$dir/stdout.log" 2>&1 &
	COLLECTD_PID=$!
	COLLECTD_DIR=$dir
	collectd_started "$dir" "$COLLECTD_PID" collectd
}

# collectd_started DIR PID NAME: waits (20 s at most) until the collectd of
# DIR (pid PID) has logged "Initialization complete"; else shows the end of
# its logs, saying NAME did not start, and fails
collectd_started() {
	local dir=$1 pid=$2 name=$3
	wait_until 20 bash -c "grep -q 'Initialization complete' '$dir/collectd.log' || ! kill -0 $pid 2>/dev/null" &&
		grep -q "Initialization complete" "$dir/collectd.log" || {
		echo "$name did not start; its log:" >&2
		tail -20 "$dir/collectd.log" "$dir/stdout.log" >&2
		return 1
	}
}

collectd_stop() {
	local timeout=${1:-10} t0 t1
	[[ -n $COLLECTD_PID ]] || return 0
	t0=$(_now)
	kill -TERM "$COLLECTD_PID" 2>/dev/null
	if ! wait_until "$timeout" bash -c "! kill -0 $COLLECTD_PID 2>/dev/null"; then
		kill -KILL "$COLLECTD_PID" 2>/dev/null
	fi
	wait "$COLLECTD_PID" 2>/dev/null
	COLLECTD_EXIT=$?
	t1=$(_now)
	COLLECTD_PID=
	COLLECTD_STOP_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	echo "$COLLECTD_STOP_SECONDS"
}

# csv_file DIR INSTANCE TYPE-TYPEINSTANCE: the csv rows of exactly that
# value. The csv plugin names its files NAME-YYYY-MM-DD (matched exactly, so
# that "x:requests" does not take "x:requests-per-second") and starts a new
# one at midnight: a run across midnight has two. Prints the path of the one
# file, or of a copy that joins them in order (header once) under
# DIR/csv-joined, so that rows, gaps and rates span the change of day.
csv_file() {
	local files f j
	mapfile -t files < <(compgen -G "$1/csv/*/dotnet-$2/$3-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]" | sort)
	((${#files[@]})) || return 1
	if ((${#files[@]} == 1)); then
		printf '%s\n' "${files[0]}"
		return 0
	fi
	j=$1/csv-joined/dotnet-$2/$3
	mkdir -p "${j%/*}" || return 1
	{
		head -n 1 "${files[0]}"
		for f in "${files[@]}"; do tail -n +2 "$f"; done
	} >"$j.$$" && mv -f "$j.$$" "$j" || return 1
	printf '%s\n' "$j"
}

csv_last() {
	local f
	f=$(csv_file "$@") || return 1
	tail -1 "$f" | cut -d, -f2
}

csv_rows() {
	local f
	f=$(csv_file "$@") || { echo 0; return 0; }
	echo $(($(wc -l <"$f") - 1))
}

test_user() {
	local u=${1:-cdn-target}
	if ! id -u "$u" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$u" >/dev/null 2>&1 || id -u "$u" >/dev/null 2>&1 || {
			echo "test_user: cannot create user $u" >&2
			return 1
		}
	fi
	printf '%s\n' "$u"
}

# putnotif SOCKET LINE...: sends each line to collectd's unixsock and prints
# each answer (PUTNOTIF answers after every notification callback returned)
putnotif() {
	python3 - "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
for line in sys.argv[2:]:
    f.write(line + "\n")
    f.flush()
    print(f.readline().rstrip("\n"))
PY
}

# notif_line INSTANCE HOST MESSAGE [META]: a PUTNOTIF naming plugin dotnet,
# INSTANCE, type_instance gc-heap-size, FAILURE, now (HOST "-": none)
notif_line() {
	local host=
	[[ $2 != - ]] && host="host=$2 "
	printf 'PUTNOTIF %stime=%s severity=failure plugin=dotnet plugin_instance=%s type=bytes type_instance=gc-heap-size message="%s"%s' \
		"$host" "$(date +%s)" "$1" "$3" "${4:+ $4}"
}

# sender_start DIR PORT: another collectd in DIR, Hostname "other", no
# dotnet plugin, its unixsock at DIR/sock, sending what it gets through the
# network plugin to 127.0.0.1:PORT; SENDER_PID is its pid
sender_start() {
	local S=$1 port=$2
	COLLECTD_PLUGINS="logfile unixsock network" COLLECTD_CSV=0 collectd_config "$S" "LoadPlugin unixsock
<Plugin unixsock>
  SocketFile \"$S/sock\"
</Plugin>
LoadPlugin network
<Plugin network>
  Server \"127.0.0.1\" \"$port\"
</Plugin>"
	sed -i 's/^Hostname "test"$/Hostname "other"/' "$S/collectd.conf"
	collectd -f -C "$S/collectd.conf" >"$S/stdout.log" 2>&1 &
	SENDER_PID=$!
}
