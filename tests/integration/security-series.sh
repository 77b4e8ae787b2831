#!/usr/bin/env bash
# tests/integration/security-series.sh -- a watched process cannot flood
# collectd with series, with values, or with escape sequences (issue 18:
# "No cap on series or on rate", control characters in counter names).
#
# Real collectd (csv, unixsock) + the dotnet plugin against two fake runtimes
# (tests/fake-diag-server.py --scenario series-flood) run as an unprivileged
# user. Each sends, 10 times a second, with its clock running 2 s a sample:
# a counter "steady", a new counter "c-<n>" every sample, a counter named
# "evil\nname\e[31mred", a histogram whose quantiles include a new one every
# sample, and a meter gauge with an empty session id. "flood" is watched
# with Meter "Flood.Meter" and MaxSeries 40, "nometer" without meters.
# Checks:
#   - LISTVAL: every line parses (no identifier spans two lines); flood has
#     at most MaxSeries series, and at least MaxSeries - 6 (the cap was
#     reached: not a vacuous pass)
#   - the log says, once, that flood has more counters than MaxSeries allows
#   - the histogram's series are p50, p95, p99 and count only
#   - no meter series from the gauge no session asked for; none at all for
#     nometer (which asked for no meters)
#   - steady: at most one value per Interval (1 s) by the wall clock,
#     whatever the peer's timestamps say, and no value stamped in the future
#   - no ESC byte in collectd's log, no control character in a csv path;
#     the counter with the escape is there as "evil_name_[31mred"
# SERIES_SECONDS (default 8): how long the fakes flood. SERIES_MAXSERIES=0
# leaves MaxSeries out of the configuration (for a build that does not know
# it; the default cap, 512, is then not reached: the cap checks fail).
#
# Run by tests/run (tests/run security-series); writes under
# $BUILD/it/security-series/.
set -u
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"

IT=$BUILD/it/security-series
rm -rf "$IT"
mkdir -p "$IT"
FAKE=$REPO/tests/fake-diag-server.py
PY=$(python3 -c 'import sys; print(sys.executable)')
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3 # one the test user can run
SECS=${SERIES_SECONDS:-8}
MAXS=40

cleanup() {
	local p
	[[ -n $COLLECTD_PID ]] && collectd_stop 10 >/dev/null
	# the fakes are started in command substitutions ($(fake NAME)): their
	# pids do not reach this shell, their tags do
	pkill -TERM -f -- "--tag ser-[a-z]*-$$\$" 2>/dev/null
}
trap cleanup EXIT

U=$(test_user) || { fail "series: test user" "cannot create one"; exit 1; }
G=$(id -g "$U")
UD=$IT/user # the fakes' TMPDIR, ready files and logs: the user's
mkdir -p "$UD"
chown "$U:$G" "$UD"
chmod 0700 "$UD"

# fake NAME: a series-flood server run as $U; echoes its pid
fake() {
	local name=$1 ready=$UD/$1.ready
	setpriv --reuid="$U" --regid="$G" --clear-groups env TMPDIR="$UD" \
		"$PY" "$FAKE" --scenario series-flood --only-for $$ --dir "$UD" \
		--ready "$ready" --log "$UD/$name.log" --tag "ser-$name-$$" \
		</dev/null >>"$IT/$name.out" 2>&1 &
	wait_until 15 test -s "$ready" || { echo "fake $name did not start" >&2; return 1; }
	read -r _ named _ _ <"$ready"
	echo "$named"
}

PA=$(fake flood) || { fail "series: fakes" "flood did not start"; exit 1; }
PB=$(fake nometer) || { fail "series: fakes" "nometer did not start"; exit 1; }

maxseries="MaxSeries $MAXS"
((${SERIES_MAXSERIES:-1})) || maxseries=
collectd_start "$IT" "
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile \"$IT/sock\"
</Plugin>
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  $maxseries
  <Process \"flood\">
    Pid $PA
    Meter \"Flood.Meter\"
  </Process>
  <Process \"nometer\">
    Pid $PB
  </Process>
</Plugin>" || { fail "series: collectd" "did not start"; exit 1; }
T0=$(date +%s)

has_steady() { csv_file "$IT" flood gauge-steady >/dev/null 2>&1; }
wait_until 20 has_steady || fail "series: values" "no value of flood's steady within 20 s"
sleep "$SECS"

listval() {
	"$PY" - "$IT/sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"LISTVAL\n")
f = s.makefile("rb")
head = f.readline()
sys.stdout.buffer.write(head)
for _ in range(int(head.split()[0])):
    sys.stdout.buffer.write(f.readline())
PY
}
listval >"$IT/listval.txt" || fail "series: LISTVAL" "unixsock did not answer"
T1=$(date +%s)
collectd_stop 10 >/dev/null

n=$(head -1 "$IT/listval.txt" | cut -d' ' -f1)
bad=$(tail -n +2 "$IT/listval.txt" | grep -cvE '^[0-9]+(\.[0-9]+)? test/dotnet-[A-Za-z0-9_.-]+/[^/ ]+-[^/]+$')
if [[ $n =~ ^[0-9]+$ ]] && ((n > 0 && bad == 0)); then
	pass "series: LISTVAL parses" "$n identifiers, each on its line"
else
	fail "series: LISTVAL parses" "$bad of ${n:-?} lines are not an identifier (see $IT/listval.txt)"
fi

# every series ever published has a csv file (LISTVAL shows only those
# updated lately: a "c-<n>" comes once)
flood=$(find "$IT/csv/test/dotnet-flood" -type f -printf '%f\n' | sed -E 's/-[0-9]{4}-[0-9]{2}-[0-9]{2}$//' | sort -u | wc -l)
listed=$(grep -c ' test/dotnet-flood/' "$IT/listval.txt")
if ((flood <= MAXS && flood >= MAXS - 6 && listed <= MAXS)); then
	pass "series: MaxSeries caps a process's series" "$flood series of flood in csv, $listed in LISTVAL, MaxSeries $MAXS"
else
	fail "series: MaxSeries caps a process's series" "$flood series of flood in csv, $listed in LISTVAL (want $((MAXS - 6))..$MAXS)"
fi

said=$(grep -cE 'instance "flood": pid [0-9]+ has more counters than MaxSeries allows' "$IT/collectd.log")
if ((said == 1)); then
	pass "series: the cap is logged once"
else
	fail "series: the cap is logged once" "logged $said times"
fi

quantiles=$(grep -o 'dotnet-flood/[a-z_]*-Flood\.Meter:lat:[^ ]*' "$IT/listval.txt" | sed 's/.*:lat://' | sort | tr '\n' ' ')
if [[ $quantiles == "count p50 p95 p99 " ]]; then
	pass "series: only the runtime's quantiles" "$quantiles"
else
	fail "series: only the runtime's quantiles" "histogram series: ${quantiles:-none}"
fi

if ! grep -q 'Flood\.Meter:orphan' "$IT/listval.txt" && ! grep -q 'dotnet-nometer/.*Flood\.Meter' "$IT/listval.txt" &&
	grep -q 'dotnet-nometer/gauge-steady' "$IT/listval.txt"; then
	pass "series: no meter sample a session did not ask for"
else
	fail "series: no meter sample a session did not ask for" "$(grep -E 'orphan|nometer/.*Flood' "$IT/listval.txt" | head -3 | tr '\n' ' ')"
fi

f=$(csv_file "$IT" flood gauge-steady)
rows=$(csv_rows "$IT" flood gauge-steady)
wall=$(($(date +%s) - T0))
last=$(tail -1 "$f" | cut -d, -f1 | cut -d. -f1)
if ((rows >= 3 && rows <= wall + 2)); then
	pass "series: one value per Interval whatever the peer's clock" "$rows values of steady in $wall s"
else
	fail "series: one value per Interval whatever the peer's clock" "$rows values of steady in $wall s"
fi
if ((last <= T1 + 2)); then
	pass "series: no value stamped in the future" "last at $((last - T1)) s from the end"
else
	fail "series: no value stamped in the future" "last value stamped $((last - T1)) s after the end"
fi

esc=$(grep -c $'\x1b' "$IT/collectd.log")
ctl=$(find "$IT/csv" -name $'*[\x01-\x1f\x7f]*' | wc -l)
evil=$(find "$IT/csv" -path '*/dotnet-flood/gauge-evil_name_\[31mred-*' | wc -l)
if ((esc == 0 && ctl == 0 && evil > 0)); then
	pass "series: no control character or escape in names" "evil_name_[31mred"
else
	fail "series: no control character or escape in names" "$esc ESC in the log, $ctl csv paths with control characters"
fi
