#!/usr/bin/env bash
# tests/integration/namespaces.sh -- a target in its own mount and pid
# namespaces, as in a container: its TMPDIR (where its diagnostic socket is)
# is a tmpfs mounted only in its namespace (here the same directory stays
# empty), reachable from here only through /proc/<pid>/root, and it sees
# itself as pid 1 (the socket is named dotnet-diagnostic-1-...). The tmpfs
# is not mounted over /tmp itself: the build tree may live under /tmp.
# Discovery, counters (CLI and collectd) and Method ipc dumps (copied out of
# the target's TMPDIR) work through that; Method exec is refused (it would
# run the container's createdump outside the container).
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$REPO/tests/lib/dotnet.sh"
T=namespaces
WORK=$BUILD/it/namespaces
rm -rf "$WORK"
mkdir -p "$WORK"
NSPID=
cleanup() {
	collectd_stop >/dev/null 2>&1
	[[ -n $NSPID ]] && kill -KILL "$NSPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$WORK/dumps"
}
trap cleanup EXIT

if [[ $(id -u) != 0 ]] || ! command -v unshare >/dev/null; then
	fail "$T: setup" "needs root and unshare (util-linux) to make namespaces"
	exit 0
fi
target_cmd -v CMD CounterTarget 10 || { fail "$T: setup" "no CounterTarget 10"; exit 0; }
NSTMP=$WORK/nstmp
mkdir -p "$NSTMP"
# unshare forks (-f): the target is the child of the unshare process
TMPDIR=$NSTMP unshare -m -p -f --propagation private bash -c \
	'mount -t tmpfs tmpfs "$TMPDIR" && mount -t proc proc /proc && exec "$@"' _ \
	"${CMD[@]}" --seconds 300 >"$WORK/target.log" 2>&1 &
find_ns_target() {
	local p
	for p in $(pgrep -f -- "CounterTarget.dll --seconds 300|CounterTarget --seconds 300"); do
		grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$p/status" 2>/dev/null && { NSPID=$p; return 0; }
	done
	return 1
}
wait_until 60 find_ns_target || { fail "$T: target in namespaces started" "$(tail -3 "$WORK/target.log")"; exit 0; }
wait_until 60 grep -q '^READY 1$' "$WORK/target.log" || { fail "$T: target ready" "no READY 1"; exit 0; }
wait_until 30 bash -c "ls /proc/$NSPID/root$NSTMP/dotnet-diagnostic-1-*-socket >/dev/null 2>&1" ||
	fail "$T: socket in the target's TMPDIR" "none under /proc/$NSPID/root$NSTMP"
# Inside its namespaces the target is pid 1: its socket is
# dotnet-diagnostic-1-KEY-socket. Neither that name nor anything else may show
# in $NSTMP as seen from here, nor in our TMPDIR or /tmp (where it would be if
# the target had not used its own TMPDIR). Only this KEY counts: /tmp may hold
# stale sockets of other processes, even ones named for pid 1.
SOCK=$(compgen -G "/proc/$NSPID/root$NSTMP/dotnet-diagnostic-1-*-socket" | head -n 1)
SOCK=${SOCK##*/}
if [[ -z $SOCK || -n $(ls -A "$NSTMP") || -e /tmp/$SOCK || -e ${TMPDIR:-/tmp}/$SOCK ]]; then
	fail "$T: socket private" "the target's socket ${SOCK:-(none)} is visible from here without /proc/<pid>/root"
else
	pass "$T: socket private" "pid $NSPID sees itself as 1; its TMPDIR is its own tmpfs"
fi

if "$TRIGGERDUMP" ps | grep -qE "^ *$NSPID +10\.0\.[0-9]+ +CounterTarget"; then
	pass "$T: ps lists the target"
else
	fail "$T: ps lists the target" "$("$TRIGGERDUMP" ps 2>&1 | tail -5)"
fi

"$TRIGGERDUMP" monitor "$NSPID" --format csv --duration 3 >"$WORK/monitor.csv" 2>"$WORK/monitor.err"
n=$(grep -c ",System.Runtime,gc-heap-size," "$WORK/monitor.csv")
if ((n >= 2)); then pass "$T: monitor through /proc/<pid>/root" "$n gc-heap-size samples"; else fail "$T: monitor through /proc/<pid>/root" "$n samples; $(tail -2 "$WORK/monitor.err")"; fi

# Method exec would run the container's createdump outside the container:
# refused, nothing written
mkdir -p "$WORK/dumps"
if "$TRIGGERDUMP" dump "$NSPID" -o "$WORK/dumps" --type mini --method exec >/dev/null 2>"$WORK/dump-exec.err"; then
	fail "$T: dump --method exec refused" "it wrote $(ls "$WORK/dumps")"
elif grep -q "another mount namespace (a container).*use Method ipc" "$WORK/dump-exec.err" &&
	[[ -z $(ls -A "$WORK/dumps") ]]; then
	pass "$T: dump --method exec refused" "$(grep -o 'another mount namespace.*' "$WORK/dump-exec.err")"
else
	fail "$T: dump --method exec refused" "$(tail -2 "$WORK/dump-exec.err"); in the directory: $(ls -A "$WORK/dumps")"
fi
rm -rf "$WORK/dumps"

for method in ipc; do
	mkdir -p "$WORK/dumps"
	if f=$("$TRIGGERDUMP" dump "$NSPID" -o "$WORK/dumps" --type mini --method "$method" 2>"$WORK/dump-$method.err") &&
		[[ -s $f && $(stat -c %a "$f") == 600 ]] &&
		"$DOTNET_DUMP" analyze "$f" -c "clrthreads" -c exit >"$WORK/analyze-$method.log" 2>&1 &&
		grep -q "ThreadCount" "$WORK/analyze-$method.log"; then
		pass "$T: dump --method $method" "$(du -k "$f" | cut -f1) KiB, 0600, opened by dotnet-dump"
	else
		fail "$T: dump --method $method" "$(tail -2 "$WORK/dump-$method.err")"
	fi
	rm -rf "$WORK/dumps"
	# nothing left behind in the target's TMPDIR
	if ls "/proc/$NSPID/root$NSTMP/"collectd-dotnet-*.dmp >/dev/null 2>&1; then
		fail "$T: no staging left ($method)" "a dump is left in the target's TMPDIR"
	else
		pass "$T: no staging left ($method)"
	fi
done

collectd_start "$WORK/cd" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"boxed\">
    EntryAssembly \"CounterTarget\"
  </Process>
</Plugin>" || { fail "$T: collectd" "did not start"; exit 0; }
# EntryAssembly also matches other CounterTargets of other tests: pin to ours
if wait_until 30 bash -c "grep -q 'watching pid $NSPID' '$WORK/cd/collectd.log'"; then
	inst=$(grep -o "instance \"[^\"]*\": watching pid $NSPID" "$WORK/cd/collectd.log" | head -1 | cut -d'"' -f2)
	if wait_until 20 bash -c "[[ -n \$(ls $WORK/cd/csv/*/dotnet-$inst/bytes-gc-heap-size-* 2>/dev/null) ]]"; then
		pass "$T: collectd plugin watches it" "instance $inst, gc-heap-size $(csv_last "$WORK/cd" "$inst" bytes-gc-heap-size)"
	else
		fail "$T: collectd plugin watches it" "no csv for $inst"
	fi
else
	fail "$T: collectd plugin watches it" "$(grep dotnet "$WORK/cd/collectd.log" | tail -3)"
fi
collectd_stop >/dev/null
