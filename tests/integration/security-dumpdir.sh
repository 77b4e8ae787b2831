#!/usr/bin/env bash
# tests/integration/security-dumpdir.sh -- the dump files against a hostile
# target. The target is a fake runtime (tests/fake-diag-server.py, its
# GenerateCoreDump answer replaced by the scenarios below) run as the
# unprivileged test user, or a real .NET target run as that user:
#   open        a dump Directory the target's user owns; the target swaps
#               its staging directory for a symlink to a canary directory
#               while it "writes" the dump: refused, the canary untouched
#   swap        the same target with a Directory only root can write: its
#               swap fails, the canary untouched, the dump written
#   litter      the target leaves symlinks to the canary, a FIFO and a
#               directory with contents in its staging directory: none
#               followed or entered, the directory reported
#   keep-fd     the target keeps an fd to its dump and writes on after the
#               answer: the final file does not change
#   dir-swap    the target keeps swapping its dump for a directory (with a
#               file inside) after the answer, 20 dumps: no directory ever
#               at a final path, every dump a regular 0600 root file
#   real        a real .NET 10 target run as the test user, Method ipc, into
#               a Directory created by the dump (the default layout): a dump
#               dotnet-dump opens, 0600 root; the same through the plugin
#   container   a target in its own mount and pid namespaces and chroot,
#               whose TMPDIR is an absolute symlink to a host directory,
#               answering with a sparse 1 TiB file: the file is looked for
#               inside the container's root (not in the host directory) and
#               refused before any copy; then, under collectd, with the host
#               directory shared into the container, a sparse 3 GiB one:
#               collectd stopped during the copy exits in < 2 s, no file left
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$REPO/tests/lib/dotnet.sh"
T=dumpdir
WORK=$BUILD/it/security-dumpdir
FAKE=$REPO/tests/fake-diag-server.py
NSPID=
# the fakes run in the background of $(...) subshells: their pids go to a file
kill_fakes() {
	local p
	[[ -f $WORK/fakes.pids ]] || return 0
	while read -r p; do kill -TERM "$p" 2>/dev/null; done <"$WORK/fakes.pids"
	rm -f "$WORK/fakes.pids"
}
cleanup() {
	collectd_stop >/dev/null 2>&1
	kill_fakes
	[[ -n $NSPID ]] && kill -KILL "$NSPID" 2>/dev/null
	stop_all_targets >/dev/null 2>&1
	wait 2>/dev/null
	mountpoint -q "$WORK/small" && umount "$WORK/small"
	rm -rf "$WORK"
}
trap cleanup EXIT
if [[ $(id -u) != 0 ]]; then
	fail "$T: setup" "needs root (the target runs as another user)"
	exit 0
fi
mountpoint -q "$WORK/small" 2>/dev/null && umount "$WORK/small"
rm -rf "$WORK"
mkdir -p "$WORK"
chmod 0755 "$WORK"
U=$(test_user) || { fail "$T: setup" "no test user"; exit 0; }
UG=$(id -g "$U")

# The hostile runtime: fake-diag-server.py with its GenerateCoreDump answer
# replaced by EVIL_MODE (the rest, ProcessInfo and counters, as "normal").
cat >"$WORK/evil.py" <<'EOF'
import ctypes, importlib.util, os, struct, sys, time
spec = importlib.util.spec_from_file_location("fds", os.environ["EVIL_FAKE"])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
MODE = os.environ["EVIL_MODE"]
CANARY = os.environ.get("EVIL_CANARY", "/nonexistent")


def answer(conn):
    conn.sendall(m.ok(struct.pack("<I", 0)))


def write(path, n):
    with open(path, "wb") as f:
        f.write(b"D" * n)


def dump(conn, payload, sc):
    path, _ = m.take_string(payload, 0)
    m.log("dump asked for %s" % path)
    d = os.path.dirname(path)
    if MODE == "swap":
        # the staging directory becomes a symlink to the canary
        try:
            os.rename(d, d + ".moved")
            os.symlink(CANARY, d)
            m.log("swapped %s for a symlink to %s" % (d, CANARY))
        except OSError as e:
            m.log("swap refused: %s" % e.strerror)
        try:
            write(path, 4096)
        except OSError as e:
            m.log("write failed: %s" % e.strerror)
        answer(conn)
    elif MODE == "litter":
        write(path, 4096)
        os.symlink(CANARY, os.path.join(d, "to-canary"))
        os.symlink(os.path.join(CANARY, "precious"), os.path.join(d, "to-precious"))
        os.mkfifo(os.path.join(d, "fifo"))
        os.mkdir(os.path.join(d, "sub"))
        write(os.path.join(d, "sub", "mine"), 10)
        os.symlink(CANARY, os.path.join(d, "sub", "to-canary"))
        m.log("littered %s" % d)
        answer(conn)
    elif MODE == "keep-fd":
        f = open(path, "wb")
        f.write(b"D" * (1 << 20))
        f.flush()
        answer(conn)
        time.sleep(0.5)  # after the dump was taken, as a rule
        n = 0
        end = time.time() + 3
        while time.time() < end:
            f.seek(0)
            f.write(b"X" * 4096)  # over the head
            f.seek(0, 2)
            f.write(b"G" * 65536)  # and on at the end
            f.flush()
            n += 1
            time.sleep(0.02)
        f.flush()
        m.log("kept writing: %d times, %d bytes now" % (n, os.fstat(f.fileno()).st_size))
    elif MODE == "dir-swap":
        # the dump and a directory (with a file inside) exchange names,
        # atomically (renameat2 RENAME_EXCHANGE), as fast as we can
        write(path, 65536)
        dd = path + ".d"
        os.mkdir(dd)
        write(os.path.join(dd, "inside"), 10)
        libc = ctypes.CDLL(None, use_errno=True)
        a, b = path.encode(), dd.encode()
        answer(conn)
        n = 0
        end = time.time() + 2
        while time.time() < end:
            for _ in range(100):
                if libc.renameat2(-100, a, -100, b, 2) != 0:
                    break
                n += 1
            else:
                continue
            break  # the staging directory is being emptied
        m.log("dir-swapped %d times" % n)
    elif MODE == "sparse":
        with open(path, "wb") as f:
            f.truncate(int(os.environ.get("EVIL_SIZE", str(1 << 40))))
        m.log("sparse dump at %s" % path)
        answer(conn)


m.dump = dump
m.main()
EOF
chmod 0644 "$WORK/evil.py"

# evil NAME MODE [ARGS...]: an evil fake as the test user (its own TMPDIR);
# echoes its pid
evil() {
	local name=$1 mode=$2 utmp
	shift 2
	utmp=$WORK/u-$name
	mkdir -p "$utmp"
	chown "$U:$UG" "$utmp"
	chmod 0700 "$utmp"
	setpriv --reuid="$U" --regid="$UG" --clear-groups --no-new-privs \
		env TMPDIR="$utmp" EVIL_FAKE="$FAKE" EVIL_MODE="$mode" EVIL_CANARY="$WORK/canary" \
		python3 "$WORK/evil.py" --scenario normal --log "$utmp/log" --ready "$utmp/ready" \
		--entry "Evil$name" "$@" </dev/null >"$WORK/$name.out" 2>&1 &
	echo $! >>"$WORK/fakes.pids"
	wait_until 15 test -s "$utmp/ready" || { echo "evil $name did not start: $(tail -2 "$WORK/$name.out")" >&2; return 1; }
	local named
	read -r _ named _ _ <"$utmp/ready"
	echo "$named"
}
evil_log() { cat "$WORK/u-$1/log" 2>/dev/null; }

# the canary: files of root the target must never get us to touch
make_canary() {
	rm -rf "$WORK/canary"
	mkdir -p "$WORK/canary/sub"
	printf 'precious\n' >"$WORK/canary/precious"
	printf 'root file named like a dump\n' >"$WORK/canary/dump"
	printf 'deep\n' >"$WORK/canary/sub/deep"
	chmod 0755 "$WORK/canary"
}
canary_state() { (cd "$WORK/canary" && find . -printf '%p %y %s %m %U\n' | sort | md5sum); }

# ---- open: a Directory the target's user owns
make_canary
C0=$(canary_state)
mkdir -p "$WORK/open"
chown "$U:$UG" "$WORK/open"
chmod 0755 "$WORK/open"
P=$(evil open swap) || { fail "$T: open: fake" "did not start"; exit 0; }
OUT=$(timeout 60 "$TRIGGERDUMP" dump "$P" -o "$WORK/open" 2>&1)
RC=$?
if [[ $(canary_state) == "$C0" ]] && ((RC == 1)) &&
	grep -q "belongs to uid $(id -u "$U"); the dump directory and every directory above it must belong to root" <<<"$OUT"; then
	pass "$T: a Directory the target's user owns is refused, the canary untouched" "$(grep -o 'failed: .*' <<<"$OUT" | cut -c1-120)"
else
	fail "$T: a Directory the target's user owns" "exit $RC, canary $( [[ $(canary_state) == "$C0" ]] && echo intact || echo CHANGED: "$(ls -A "$WORK/canary" | paste -sd' ')"); fake: $(evil_log open | grep -E 'swap|dump' | cut -d' ' -f3- | paste -sd';'); $(tail -1 <<<"$OUT")"
fi
make_canary
C0=$(canary_state)
# group- or other-writable, owned by root: refused as well
mkdir -p "$WORK/sticky"
chmod 1777 "$WORK/sticky"
OUT=$(timeout 60 "$TRIGGERDUMP" dump "$P" -o "$WORK/sticky" 2>&1)
RC=$?
if ((RC == 1)) && grep -q "is writable by others (mode 1777)" <<<"$OUT" && [[ -z $(ls -A "$WORK/sticky") ]]; then
	pass "$T: a Directory writable by others (1777) is refused, nothing made in it"
else
	fail "$T: a 1777 Directory" "exit $RC: $(tail -1 <<<"$OUT"); in it: $(ls -A "$WORK/sticky")"
fi
# triggerdump's default, the current directory, under the same rule
OUT=$(cd "$WORK/sticky" && timeout 60 "$TRIGGERDUMP" dump "$P" 2>&1)
RC=$?
((RC == 1)) && grep -q "$WORK/sticky is writable by others" <<<"$OUT" &&
	pass "$T: triggerdump's default -o (the current directory) follows the rule" ||
	fail "$T: triggerdump default -o" "exit $RC: $(tail -1 <<<"$OUT")"

# ---- swap: the same hostile target, a Directory only root can write
mkdir -p "$WORK/dumps"
chmod 0755 "$WORK/dumps"
OUT=$(timeout 60 "$TRIGGERDUMP" dump "$P" -o "$WORK/dumps" 2>&1)
RC=$?
f=$(grep -o "wrote [^ ]*" <<<"$OUT" | cut -d' ' -f2)
if ((RC == 0)) && [[ $(canary_state) == "$C0" && -f $f && $(stat -c '%a %U %s' "$f") == "600 root 4096" ]] &&
	evil_log open | grep -q "swap refused: Permission denied"; then
	pass "$T: in the root-only layout the target cannot swap its staging directory (EACCES), the canary untouched, the dump 0600 root"
else
	fail "$T: swap in the root-only layout" "exit $RC: $(tail -1 <<<"$OUT"); $(evil_log open | grep swap | tail -1)"
fi
if [[ -n $(evil_log open | grep -o "dump asked for $WORK/dumps/.staging/[0-9a-f]\{32\}/dump") && ! -e $WORK/dumps/.staging ]]; then
	pass "$T: the target wrote in .staging/<32 random hex digits>/, the staging area gone after the dump"
else
	fail "$T: staging area" "$(evil_log open | grep 'dump asked' | tail -1); $(find "$WORK/dumps/.staging" 2>&1 | head -3)"
fi

# ---- litter: symlinks, a FIFO, a directory left in the staging directory
P=$(evil litter litter) || fail "$T: litter: fake" "did not start"
OUT=$(timeout 60 "$TRIGGERDUMP" dump "$P" -o "$WORK/dumps" 2>&1)
RC=$?
left=$(find "$WORK/dumps/.staging" -mindepth 1 | sed "s|$WORK/dumps/.staging/[0-9a-f]*|S|" | sort | paste -sd' ')
if ((RC == 0)) && [[ $(canary_state) == "$C0" && $left == "S S/sub S/sub/mine S/sub/to-canary" ]] &&
	grep -q "left sub in its staging directory" <<<"$OUT"; then
	pass "$T: litter in the staging directory: links removed (not followed), the non-empty directory left and reported, not entered; canary untouched" "$(grep -o 'the dump.s writer left [^:]*' <<<"$OUT")"
else
	fail "$T: litter" "exit $RC, left: $left; canary $( [[ $(canary_state) == "$C0" ]] && echo intact || echo CHANGED); $(tail -2 <<<"$OUT" | paste -sd' ')"
fi
rm -rf "$WORK/dumps/.staging/"*

# ---- keep-fd: the target writes on into its dump after answering
P=$(evil keepfd keep-fd) || fail "$T: keep-fd: fake" "did not start"
OUT=$(timeout 60 "$TRIGGERDUMP" dump "$P" -o "$WORK/dumps" 2>&1)
RC=$?
f=$(grep -o "wrote [^ ]*" <<<"$OUT" | cut -d' ' -f2)
s0=$(stat -c %s "$f" 2>/dev/null)
h0=$(md5sum <"$f" 2>/dev/null)
wait_until 10 bash -c "grep -q 'kept writing' '$WORK/u-keepfd/log'"
grew=$(evil_log keepfd | grep -o 'kept writing.*')
now=$(grep -o '[0-9]* bytes now' <<<"$grew" | cut -d' ' -f1)
if ((RC == 0)) && [[ -n $grew && $(stat -c %s "$f") == "$s0" && $(md5sum <"$f") == "$h0" ]] && ((s0 < ${now:-0})); then
	pass "$T: the target writes on into its dump after the answer ($grew): the final file stays $s0 bytes, unchanged"
else
	fail "$T: keep-fd" "exit $RC, size $s0 -> $(stat -c %s "$f" 2>&1), ${grew:-the fake did not write on}; $(tail -1 <<<"$OUT")"
fi

# ---- dir-swap: the dump swapped for a directory after the answer, 20 times
P=$(evil dirswap dir-swap) || fail "$T: dir-swap: fake" "did not start"
mkdir -p "$WORK/dumps/ds"
ok=0 refused=0 other=0
for i in $(seq 20); do
	OUT=$(timeout 60 "$TRIGGERDUMP" dump "$P" -o "$WORK/dumps/ds" 2>&1)
	if grep -q '^triggerdump: wrote ' <<<"$OUT"; then ok=$((ok + 1))
	elif grep -qE 'refusing it|wrote no dump' <<<"$OUT"; then refused=$((refused + 1))
	else other=$((other + 1)); echo "dir-swap: $OUT" >&2; fi
done
wait_until 10 bash -c "(( \$(grep -c 'dir-swapped' '$WORK/u-dirswap/log') >= 20 ))"
dirs=$(find "$WORK/dumps/ds" -maxdepth 1 -name '*.dmp' ! -type f | wc -l)
bad=$(find "$WORK/dumps/ds" -maxdepth 1 -name '*.dmp' -type f \( ! -perm 0600 -o ! -user root \) | wc -l)
swaps=$(evil_log dirswap | grep -o 'dir-swapped [0-9]*' | awk '{ s += $2 } END { print s + 0 }')
if ((dirs == 0 && bad == 0 && other == 0 && ok + refused == 20 && swaps > 0)); then
	pass "$T: the dump swapped for a directory ($swaps swaps over 20 dumps): $ok written, $refused refused, no directory at a final path, every dump 0600 root"
else
	fail "$T: dir-swap" "$dirs non-files and $bad not 0600 root among the dumps, $ok written, $refused refused, $other other, $swaps swaps"
fi
kill_fakes

# ---- real: a real .NET target as the test user, Method ipc, default layout
TARGET_USER=$U
RT=$(start_target CounterTarget 10 --seconds 300) || { fail "$T: real target" "did not start"; RT=; }
unset TARGET_USER
if [[ -n $RT ]]; then
	OUT=$(timeout 120 "$TRIGGERDUMP" dump "$RT" -o "$WORK/fresh/dumps/" --type mini --method ipc 2>&1)
	RC=$?
	f=$(grep -o "wrote [^ ]*" <<<"$OUT" | cut -d' ' -f2)
	if ((RC == 0)) && [[ $(stat -c '%U' "/proc/$RT") == "$U" && -s $f && $(stat -c '%a %U %G' "$f") == "600 root root" &&
		$(stat -c %a "$WORK/fresh" "$WORK/fresh/dumps" | paste -sd' ') == "711 711" ]] &&
		"$DOTNET_DUMP" analyze "$f" -c "clrthreads" -c exit >"$WORK/analyze.log" 2>&1 && grep -q "ThreadCount" "$WORK/analyze.log"; then
		pass "$T: a real .NET 10 target run as $U, Method ipc, into a new Directory (created 0711): $(du -k "$f" | cut -f1) KiB, 0600 root, opened by dotnet-dump"
	else
		fail "$T: real target as $U, Method ipc" "exit $RC: $(tail -2 <<<"$OUT" | paste -sd' '); $(stat -c '%n %a %U' "$WORK/fresh" "$WORK/fresh/dumps" "$f" 2>&1 | paste -sd' ')"
	fi
	ls "$WORK/fresh/dumps/.staging" 2>/dev/null | grep -q . &&
		fail "$T: real target: staging left" "$(ls "$WORK/fresh/dumps/.staging")" ||
		pass "$T: real target: nothing left in the staging area"
	# another user cannot list the staging area or the Directory
	if ! setpriv --reuid=nobody --regid=nogroup --clear-groups ls "$WORK/fresh/dumps/.staging" >/dev/null 2>&1 &&
		! setpriv --reuid=nobody --regid=nogroup --clear-groups ls "$WORK/fresh/dumps" >/dev/null 2>&1 &&
		! setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$f" >/dev/null 2>&1; then
		pass "$T: another user can neither list the Directory or its staging area nor read the dump"
	else
		fail "$T: other users" "could list or read"
	fi
	# the same through the plugin: <Dump> Directory made by the plugin
	if collectd_start "$WORK/cdu" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"asuser\">
    Pid $RT
  </Process>
  <Dump>
    Directory \"$WORK/plugin/dumps\"
    Method \"ipc\"
    Type \"mini\"
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"asuser\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
    </Type>
  </Plugin>
</Plugin>"; then
		if wait_until 90 grep -qE "dump of pid $RT (written|failed)" "$WORK/cdu/collectd.log"; then
			f=$(grep -m1 -oE "dump of pid $RT written: [^ ]+" "$WORK/cdu/collectd.log" | awk '{ print $NF }')
			if [[ -n $f && -s $f && $(stat -c '%a %U %G' "$f") == "600 root root" &&
				$(stat -c %a "$WORK/plugin" "$WORK/plugin/dumps" | paste -sd' ') == "711 711" ]]; then
				pass "$T: the plugin dumps a real target run as $U with Method ipc into the Directory it made (0711): ${f##*/}, $(du -k "$f" | cut -f1) KiB, 0600 root"
			else
				fail "$T: plugin, real target as $U" "$(grep -m1 -E "dump of pid $RT" "$WORK/cdu/collectd.log" | cut -c1-300)"
			fi
		else
			fail "$T: plugin, real target as $U" "no dump: $(grep dotnet "$WORK/cdu/collectd.log" | tail -3)"
		fi
		collectd_stop >/dev/null
	else
		fail "$T: plugin, real target as $U" "collectd did not start: $(tail -3 "$WORK/cdu/collectd.log")"
	fi
	stop_target "$RT" >/dev/null 2>&1
fi

# ---- container: TMPDIR an absolute symlink, a sparse 1 TiB dump
if ! command -v unshare >/dev/null || ! command -v chroot >/dev/null; then
	fail "$T: container: setup" "needs unshare and chroot"
	exit 0
fi
R=$WORK/croot
HOSTD=$WORK/hostdir
mkdir -p "$R/usr" "$R/proc" "$R/opt/t/fixtures" "$R/dev" "$R$HOSTD" "$HOSTD"
for l in bin lib lib64 sbin; do [[ -L /$l ]] && ln -s "$(readlink "/$l")" "$R/$l"; done
cp "$FAKE" "$WORK/evil.py" "$R/opt/t/"
cp "$REPO/tests/fixtures/counters-net10.nettrace" "$R/opt/t/fixtures/"
printf 'precious\n' >"$HOSTD/precious"
# the container's TMPDIR: an absolute symlink to a directory of the host
ln -s "$HOSTD" "$R/ctmp"
mkdir -p "$WORK/small"
mount -t tmpfs -o size=64m,mode=0755 tmpfs "$WORK/small"
# start_box SIZE SHARED: a boxed evil fake answering with a sparse file of
# SIZE; SHARED 1: the host directory is shared into the container at the
# same path (a volume), 0: the container has its own directory there
start_box() {
	rm -f "$R/opt/t/log" "$R/opt/t/ready"
	unshare -m -p -f --propagation private bash -c '
		R=$1 H=$2
		{ [[ $4 == 0 ]] || mount --bind "$H" "$R$H"; } &&
		mount --bind /usr "$R/usr" && mount -t proc proc "$R/proc" &&
		exec chroot "$R" /usr/bin/env -i PATH=/usr/bin TMPDIR=/ctmp EVIL_FAKE=/opt/t/fake-diag-server.py \
			EVIL_MODE=sparse EVIL_SIZE="$3" python3 /opt/t/evil.py --scenario normal \
			--log /opt/t/log --ready /opt/t/ready --entry Boxed' _ "$R" "$HOSTD" "$1" "$2" \
		</dev/null >"$WORK/box.out" 2>&1 &
	NSPID=
	wait_until 30 test -s "$R/opt/t/ready" || { echo "box: $(tail -3 "$WORK/box.out")" >&2; return 1; }
	local p
	for p in $(pgrep -f "python3 /opt/t/evil.py"); do
		grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$p/status" 2>/dev/null && [[ $(readlink "/proc/$p/root") == "$R" ]] && NSPID=$p
	done
	[[ -n $NSPID ]]
}
# Its own directory: /proc/<pid>/root/ctmp followed from here leads to the
# host's directory. Discovery reads the socket's path that way, so the
# socket is linked there too (a discovery that resolves inside the root
# finds it either way); the dump must be looked for inside the root.
if start_box $((1 << 40)) 0; then
	read -r _ _ _ sock <"$R/opt/t/ready"
	ln "$R$HOSTD/${sock##*/}" "$HOSTD/${sock##*/}"
	printf 'host file\n' >"$HOSTD/precious"
	t0=$(_now)
	OUT=$(timeout 120 "$TRIGGERDUMP" dump "$NSPID" -o "$WORK/small" 2>&1)
	RC=$?
	secs=$(awk -v a="$t0" -v b="$(_now)" 'BEGIN { printf "%.2f", b - a }')
	if ((RC == 1)) && grep -q "the dump is 1048576 MiB, and $WORK/small has 64 MiB free with MinFreeSpace 0 MiB: refusing to copy it" <<<"$OUT" &&
		grep -q "sparse dump at /ctmp/collectd-dotnet-" "$R/opt/t/log" && [[ -z $(ls -A "$WORK/small") ]]; then
		pass "$T: container: TMPDIR an absolute symlink, a sparse 1 TiB dump: found inside the container's root, refused before any copy in $secs s, nothing written" "$(grep -o 'the dump is.*' <<<"$OUT")"
	else
		fail "$T: container: sparse 1 TiB dump behind an absolute symlink" "exit $RC in $secs s: $(tail -1 <<<"$OUT"); in the Directory: $(ls -A "$WORK/small" | head -3 | paste -sd' ')"
	fi
	if [[ -z $(ls "$R$HOSTD" | grep -v '^dotnet-diagnostic-') && -z $(ls "$HOSTD" | grep -v '^precious$\|^dotnet-diagnostic-') &&
		$(cat "$HOSTD/precious") == "host file" ]]; then
		pass "$T: container: the sparse file removed from the container's TMPDIR, the host directory untouched"
	else
		fail "$T: container: after" "container TMPDIR: $(ls "$R$HOSTD" | paste -sd' '); host directory: $(ls "$HOSTD" | paste -sd' ')"
	fi
	kill -KILL "$NSPID" 2>/dev/null
	NSPID=
	rm -f "$HOSTD/${sock##*/}"
fi
umount "$WORK/small"

# ---- container under collectd: shutdown during the copy of a 3 GiB dump
if start_box $((3 << 30)) 1; then
	mkdir -p "$WORK/cd-dumps"
	chmod 0755 "$WORK/cd-dumps"
	if collectd_start "$WORK/cd" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"box\">
    Pid $NSPID
  </Process>
  <Dump>
    Directory \"$WORK/cd-dumps\"
    MinFreeSpace \"1G\"
    Timeout 120
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"box\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
    </Type>
  </Plugin>
</Plugin>"; then
		if wait_until 60 grep -qs "sparse dump at" "$R/opt/t/log"; then
			sleep 0.5 # the copy is under way
			collectd_stop 30 >/dev/null
			secs=$COLLECTD_STOP_SECONDS
			if awk -v s="$secs" 'BEGIN { exit !(s < 2) }' && [[ -z $(find "$WORK/cd-dumps" -name '*.dmp') ]] &&
				grep -q "dump of pid $NSPID failed: cancelled (shutting down) while copying the dump" "$WORK/cd/collectd.log"; then
				pass "$T: container: collectd stopped during the copy of a 3 GiB dump exits in $secs s (< 2 s), no file left" "$(grep -m1 -o "dump of pid $NSPID failed: .*" "$WORK/cd/collectd.log")"
			else
				fail "$T: container: shutdown during the copy" "$secs s; dumps: $(find "$WORK/cd-dumps" -name '*.dmp' | head -2); $(grep -E "dump of pid $NSPID" "$WORK/cd/collectd.log" | tail -2)"
			fi
		else
			fail "$T: container: collectd asked for a dump" "$(grep dotnet "$WORK/cd/collectd.log" | tail -3)"
		fi
	else
		fail "$T: container: collectd" "did not start: $(tail -3 "$WORK/cd/collectd.log")"
	fi
	kill -KILL "$NSPID" 2>/dev/null
	NSPID=
fi
