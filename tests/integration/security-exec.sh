#!/usr/bin/env bash
# tests/integration/security-exec.sh -- Method exec never runs what the
# target's user can write with more rights than that user has.
#
# A self-contained .NET 8 app (a copy of CounterTarget net8) is deployed
# into a directory owned by an unprivileged user (test_user), and its
# createdump is replaced by a script that appends `id -u` to a file and then
# runs the real createdump. Cases (checks named "security-exec/CASE: ..."):
#   user-cli       the app runs as the user; `triggerdump dump --method exec`:
#                  the script ran, as the user's uid and never as root; the
#                  dump is written; triggerdump says who ran createdump
#   user-collectd  the same through real collectd: the app's gc-heap-size
#                  breaches a threshold (WarningMax 1, which the process
#                  controls), Method exec: the script ran as the user's uid
#                  only, collectd's log says so, and the dump is written
#   root-userdir   the same app run by root from a directory owned by the
#                  user, its createdump a root-owned script there (which the
#                  user could swap before it runs): refused, with the reason
#                  and Method ipc named; the script did not run
#   user-dac       the user runs a root-owned copy of CounterTarget net8
#                  (0755 in root's 0755 directories, so createdump and its
#                  directories pass every check) with LD_PRELOAD of a fake libcoreclr.so from its
#                  own directory, where a libmscordaccore.so records who
#                  loads it: createdump loads "the DAC" from the first
#                  module named libcoreclr.so in the target's link map, so
#                  run as root it would run the user's code as root. It is
#                  loaded by createdump (non-vacuous), never as uid 0
#   root-confined  CounterTarget net8 as built run by root without
#                  CAP_SYS_ADMIN in its bounding set: refused (its createdump
#                  would run with more than it has), nothing written
#   root-installed CounterTarget net8 as built (root-owned directory chain)
#                  run by root: --method exec still makes a real heap dump
#                  (an ELF core; size and seconds reported)
# Pid reuse, maps lines over 4096 bytes and the directory chain rules are
# unit-tested in tests/test_dump_exec.c.
#
# Needs root (a second user, setpriv), CounterTarget net8 built. ~40 s.
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

T=security-exec
if [[ $(id -u) != 0 ]]; then
	fail "$T: setup" "needs root (to run the target as another user)"
	exit 0
fi
SRC=$BUILD/targets/CounterTarget/net8
if [[ ! -x $SRC/CounterTarget || ! -x $SRC/createdump ]]; then
	dotnet_build_targets CounterTarget:8 >&2 || {
		fail "$T: setup" "CounterTarget net8 not built"
		exit 0
	}
fi
U=$(test_user) || { fail "$T: setup" "no test user"; exit 0; }
UID_U=$(id -u "$U")
GID_U=$(id -g "$U")
WORK=$(mktemp -d "$BUILD/security-exec.XXXXXX") || exit 1
# the user's side lives under /tmp, which the user can reach
UDIR=$(mktemp -d /tmp/cdn-secexec.XXXXXX) || exit 1
chmod 0755 "$UDIR"
PIDS=()

cleanup() {
	collectd_stop 10 >/dev/null 2>&1
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	wait 2>/dev/null
	find "$WORK" "$UDIR" -name '*.dmp' -delete 2>/dev/null
	rm -rf "$UDIR"
	[[ ${SECEXEC_KEEP:-} == 1 ]] && echo "security-exec.sh: logs in $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

# deploy DIR OWNER SCRIPT-OWNER: a copy of the app in DIR (owned by OWNER),
# its createdump replaced by a script (owned by SCRIPT-OWNER, 0755) that
# appends its uid to DIR.ran and runs the real createdump
deploy() {
	local dir=$1 owner=$2 sowner=$3
	cp -a "$SRC" "$dir" || return 1
	mv "$dir/createdump" "$dir/createdump.real"
	cat >"$dir/createdump" <<EOF
#!/bin/sh
id -u >>"$dir.ran"
exec "$dir/createdump.real" "\$@"
EOF
	: >"$dir.ran"
	chmod 0666 "$dir.ran"
	chown -R "$owner:" "$dir"
	chown "$sowner:" "$dir/createdump"
	chmod 0755 "$dir/createdump"
}

# launch USER DIR STATE [ENV...]: starts DIR/CounterTarget as USER
# (setpriv, no groups, no new privileges, and LAUNCH_SETPRIV's options)
# with its own TMPDIR STATE.tmp, log STATE.log and the ENV given, waits for
# its diagnostic socket; sets TPID
launch() {
	local user=$1 dir=$2 tmp=$3.tmp log=$3.log
	shift 3
	mkdir -p "$tmp" && chown "$user:" "$tmp" && chmod 0700 "$tmp"
	# shellcheck disable=SC2086 # options, split on purpose
	setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups --no-new-privs \
		${LAUNCH_SETPRIV:-} env TMPDIR="$tmp" HOME="$tmp" "$@" "$dir/CounterTarget" --seconds 300 --heap-mb 16 \
		</dev/null >"$log" 2>&1 &
	TPID=$!
	PIDS+=("$TPID")
	wait_until 60 bash -c "grep -q '^READY' '$log' && compgen -G '$tmp/dotnet-diagnostic-$TPID-*-socket' >/dev/null"
}

ran_as() { sort -u "$1.ran" | tr '\n' ' ' | sed 's/ $//'; }

is_elf_core() { [[ $(head -c 4 "$1" | od -An -c | tr -d ' ') == '177ELF' ]]; }

# ---- user-cli ----
APP=$UDIR/user-app
deploy "$APP" "$U" "$U"
chown "$U:" "$UDIR"
if launch "$U" "$APP" "$APP"; then
	OUT=$WORK/cli-dumps
	mkdir -m 0700 "$OUT"
	f=$("$TRIGGERDUMP" dump "$TPID" -o "$OUT" --type mini --method exec 2>"$WORK/cli.err")
	rc=$?
	ran=$(ran_as "$APP")
	if [[ $ran == "$UID_U" ]]; then
		pass "$T/user-cli: the user's createdump ran as the user" "uid $ran, not root"
	else
		fail "$T/user-cli: the user's createdump ran as the user" "it ran as uid '${ran:-nothing}' (want $UID_U); $(tail -2 "$WORK/cli.err")"
	fi
	if grep -q "runs as uid $UID_U gid $GID_U, the target's user" "$WORK/cli.err"; then
		pass "$T/user-cli: triggerdump says who ran createdump" "$(grep -m1 'runs as uid' "$WORK/cli.err" | sed 's/^triggerdump: //')"
	else
		fail "$T/user-cli: triggerdump says who ran createdump" "$(tail -3 "$WORK/cli.err")"
	fi
	if ((rc == 0)) && [[ -s $f ]] && is_elf_core "$f"; then
		pass "$T/user-cli: the dump is written" "$(grep -m1 wrote "$WORK/cli.err" | sed 's/.*(//; s/)//')"
	else
		fail "$T/user-cli: the dump is written" "exit $rc; $(tail -2 "$WORK/cli.err")"
	fi
	rm -f "$f"
else
	fail "$T/user-cli: setup" "the app did not start as $U: $(tail -3 "$APP.log")"
fi

# ---- user-collectd: the same app (still running), through collectd ----
if [[ -n ${TPID:-} ]] && kill -0 "$TPID" 2>/dev/null; then
	: >"$APP.ran"
	CD=$WORK/cd
	DUMPS=$WORK/cd-dumps
	if collectd_start "$CD" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"userapp\">
    Pid $TPID
  </Process>
  <Dump>
    Directory \"$DUMPS\"
    Method \"exec\"
    Type \"mini\"
    MinInterval 600
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    Instance \"userapp\"
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax 1
    </Type>
  </Plugin>
</Plugin>"; then
		re="type = dump, .*message = dump of pid $TPID (written|failed)"
		if wait_until 60 grep -qE "$re" "$CD/collectd.log"; then
			collectd_stop 10 >/dev/null
			ran=$(ran_as "$APP")
			if [[ $ran == "$UID_U" ]]; then
				pass "$T/user-collectd: the user's createdump ran as the user" "uid $ran, not root"
			else
				fail "$T/user-collectd: the user's createdump ran as the user" "it ran as uid '${ran:-nothing}' (want $UID_U)"
			fi
			if grep -qE "\[info\] dotnet plugin: instance \"userapp\": pid $TPID: createdump .* runs as uid $UID_U gid $GID_U, the target's user" "$CD/collectd.log"; then
				pass "$T/user-collectd: collectd's log says who ran createdump"
			else
				fail "$T/user-collectd: collectd's log says who ran createdump" "$(grep -m3 'dotnet plugin' "$CD/collectd.log" | tail -2)"
			fi
			line=$(grep -m1 -E "$re" "$CD/collectd.log")
			f=$(find "$DUMPS" -maxdepth 1 -name '*.dmp' | head -1)
			if [[ $line == *written* && -n $f ]] && is_elf_core "$f"; then
				pass "$T/user-collectd: the dump is written" "${line##*written: }"
			else
				fail "$T/user-collectd: the dump is written" "${line##*message = }"
			fi
		else
			fail "$T/user-collectd: a dump notification" "none within 60 s: $(grep 'dotnet plugin' "$CD/collectd.log" | tail -3)"
		fi
		collectd_stop 10 >/dev/null
	else
		fail "$T/user-collectd: collectd starts" "see $CD/collectd.log"
	fi
	kill -TERM "$TPID" 2>/dev/null
	wait "$TPID" 2>/dev/null
fi

# ---- root-userdir: root runs the app from the user's directory (in a
# root-only tree, so that the user's directory is what is refused) ----
APP2=$WORK/root-app
deploy "$APP2" "$U" root
if launch root "$APP2" "$APP2"; then
	OUT=$WORK/rootdir-dumps
	mkdir -m 0700 "$OUT"
	f=$("$TRIGGERDUMP" dump "$TPID" -o "$OUT" --type mini --method exec 2>"$WORK/rootdir.err")
	rc=$?
	ran=$(ran_as "$APP2")
	if [[ -z $ran ]]; then
		pass "$T/root-userdir: createdump in a user's directory not run as root" "nothing ran"
	else
		fail "$T/root-userdir: createdump in a user's directory not run as root" "it ran as uid $ran"
	fi
	if ((rc != 0)) && grep -q "is owned by uid $UID_U, not root: refusing to run it as root" "$WORK/rootdir.err" &&
		grep -q "Method ipc" "$WORK/rootdir.err"; then
		pass "$T/root-userdir: refused with the reason" "$(grep -m1 refusing "$WORK/rootdir.err" | sed 's/^triggerdump: //')"
	else
		fail "$T/root-userdir: refused with the reason" "exit $rc: $(tail -2 "$WORK/rootdir.err")"
	fi
	[[ -n $f ]] && rm -f "$f"
	kill -TERM "$TPID" 2>/dev/null
	wait "$TPID" 2>/dev/null
else
	fail "$T/root-userdir: setup" "the app did not start: $(tail -3 "$APP2.log")"
fi

# ---- user-dac: the target names the library createdump loads ----
EV=$UDIR/evil
mkdir -p "$EV"
cat >"$EV/evil.c" <<EOF
#include <stdio.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void record(void) {
  char comm[32] = "";
  FILE *c = fopen("/proc/self/comm", "r");
  if (c) { if (!fgets(comm, sizeof(comm), c)) comm[0] = 0; fclose(c); }
  comm[strcspn(comm, "\\n")] = 0;
  FILE *f = fopen("$EV.loaded", "a");
  if (f) { fprintf(f, "%d %s\\n", (int)geteuid(), comm); fclose(f); }
}
EOF
if gcc -shared -fPIC -o "$EV/libcoreclr.so" "$EV/evil.c" 2>"$WORK/gcc.err"; then
	cp "$EV/libcoreclr.so" "$EV/libmscordaccore.so"
	: >"$EV.loaded"
	chmod 0666 "$EV.loaded"
	chown -R "$U:" "$EV"
	# the runtime as a package would install it: root's, 0755, in root's
	# directories (the build leaves createdump 0744: not the user's to run)
	INST=$WORK/installed-app
	cp -a "$SRC" "$INST" && chown -R root:root "$INST" && chmod -R go-w,a+rX "$INST" &&
		chmod 0755 "$INST/createdump" "$INST/CounterTarget" "$WORK"
	if launch "$U" "$INST" "$UDIR/dac" LD_PRELOAD="$EV/libcoreclr.so"; then
		OUT=$WORK/dac-dumps
		mkdir -m 0700 "$OUT"
		f=$("$TRIGGERDUMP" dump "$TPID" -o "$OUT" --type mini --method exec 2>"$WORK/dac.err")
		rc=$?
		by_cd=$(awk '$2 == "createdump" { print $1 }' "$EV.loaded" | sort -u | tr '\n' ' ' | sed 's/ $//')
		if [[ $by_cd == "$UID_U" ]]; then
			pass "$T/user-dac: the library the target named was loaded by createdump as the user only" "uid $by_cd; triggerdump exit $rc: $(tail -1 "$WORK/dac.err" | sed 's/^triggerdump: //' | cut -c1-160)"
		else
			fail "$T/user-dac: the library the target named was loaded by createdump as the user only" "loaded by createdump as uid '${by_cd:-nobody}' (want $UID_U); $(tail -1 "$WORK/dac.err")"
		fi
		[[ -n $f ]] && rm -f "$f"
		kill -TERM "$TPID" 2>/dev/null
		wait "$TPID" 2>/dev/null
	else
		fail "$T/user-dac: setup" "CounterTarget net8 did not start as $U with the preload: $(tail -3 "$UDIR/dac.log")"
	fi
else
	fail "$T/user-dac: setup" "cannot build the probe library: $(head -3 "$WORK/gcc.err")"
fi

# ---- root-confined: root, but with less than collectd's capabilities ----
if LAUNCH_SETPRIV="--bounding-set=-sys_admin" launch root "$SRC" "$WORK/confined"; then
	caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$TPID/status")
	OUT=$WORK/confined-dumps
	mkdir -m 0700 "$OUT"
	f=$("$TRIGGERDUMP" dump "$TPID" -o "$OUT" --type mini --method exec 2>"$WORK/confined.err")
	rc=$?
	if ((rc != 0)) && [[ -z $(find "$OUT" -name '*.dmp') ]] &&
		grep -q "pid $TPID runs as root but confined .*: its createdump would run with more; use Method ipc" "$WORK/confined.err"; then
		pass "$T/root-confined: a root target without CAP_SYS_ADMIN is refused" "CapEff $caps: $(grep -m1 "runs as root but confined" "$WORK/confined.err" | sed "s/.*failed: //" | cut -c1-140)"
	else
		fail "$T/root-confined: a root target without CAP_SYS_ADMIN is refused" "CapEff $caps, exit $rc: $(tail -1 "$WORK/confined.err")"
	fi
	[[ -n $f ]] && rm -f "$f"
	kill -TERM "$TPID" 2>/dev/null
	wait "$TPID" 2>/dev/null
else
	fail "$T/root-confined: setup" "CounterTarget net8 did not start: $(tail -3 "$WORK/confined.log")"
fi

# ---- root-installed: the untouched case still dumps ----
chain=$(p=$SRC; p=$(readlink -f "$p"); while [[ $p != / ]]; do stat -c '%U:%a' "$p"; p=$(dirname "$p"); done | sort -u | tr '\n' ' ')
if launch root "$SRC" "$WORK/installed"; then
	OUT=$WORK/installed-dumps
	mkdir -m 0700 "$OUT"
	f=$("$TRIGGERDUMP" dump "$TPID" -o "$OUT" --type heap --method exec 2>"$WORK/installed.err")
	rc=$?
	if ((rc == 0)) && [[ -s $f ]] && is_elf_core "$f" && ! grep -q "runs as uid" "$WORK/installed.err"; then
		pass "$T/root-installed: a root-owned runtime still dumps as root" \
			"$(grep -m1 wrote "$WORK/installed.err" | sed 's/.*(//; s/)//'), heap dump, chain $chain"
	else
		fail "$T/root-installed: a root-owned runtime still dumps as root" "exit $rc: $(tail -2 "$WORK/installed.err"); chain $chain"
	fi
	[[ -n $f ]] && rm -f "$f"
	kill -TERM "$TPID" 2>/dev/null
	wait "$TPID" 2>/dev/null
else
	fail "$T/root-installed: setup" "CounterTarget net8 did not start"
fi
