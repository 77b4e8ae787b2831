#!/usr/bin/env bash
# tests/integration/debian.sh -- the Debian package collectd-dotnet (issue 5),
# built, linted, installed, used by a real collectd and removed again.
#
#   1. build     a copy of the source tree (the files git tracks or would
#                track: uncommitted work included, build output and the
#                generated autotools files not) in $BUILD/it/debian/src;
#                dpkg-source --build (a native source package) and
#                dpkg-buildpackage -us -uc -b, whose dh_auto_test runs the
#                unit tests (make check): they pass (or skip: test_nettrace
#                without ../shared), the C code compiles without a warning
#                under Debian's hardening flags, and debian/rules clean gives
#                the tree back file for file
#   2. contents  exactly the expected files (dpkg-deb -c): the plugin in
#                /usr/lib/collectd, no .la, triggerdump, both manual pages,
#                the example configuration under the doc dir (not in /etc:
#                no conffile), copyright; Depends on collectd-core
#   3. lintian   (when installed) no error (E:) on the binary package and on
#                the source package; warnings are listed, not failed
#   4. install   apt-get install ./collectd-dotnet_*.deb: installed, files in
#                place, /usr/bin/triggerdump ps lists a CounterTarget (.NET 10)
#   5. collectd  collectd -f with PluginDir /usr/lib/collectd, LoadPlugin
#                dotnet and a <Process> block (Pid) for the CounterTarget:
#                the installed dotnet.so is mapped into collectd and csv
#                values of bytes-gc-heap-size appear (> 0)
#   6. example   collectd runs the installed example configuration
#                (examples/dotnet.conf, with AutoDiscover off, its dump
#                directory under $BUILD and a Pid block added): no error
#   7. remove    apt-get purge: not installed any more, every file of the
#                package gone. An EXIT trap purges it too: the package is
#                never left installed (later tests use the build tree's
#                plugin).
#
# Installing is serialised between concurrent runs with a lock
# (/run/lock/collectd-dotnet-debian-test.lock). If the package is installed
# when the test starts (an earlier run that was killed), it is purged first;
# if one of its files exists without belonging to it (a `make install` into
# /usr), the test refuses to overwrite it and fails.
#
# Needs (tests/run installs them): dpkg-dev, debhelper (with dh-autoreconf),
# collectd-core, collectd-dev, lintian (optional: skipped with a note when
# missing), the .NET SDK for the CounterTarget; root or password-less sudo.
# About 40 s on 2 CPUs (the package build: ~17 s).
#
# tests/run runs it; alone:
#   REPO=. BUILD=build RESULTS=/tmp/r.txt bash tests/integration/debian.sh
# Output: $BUILD/it/debian/ (build.log, source.log, lintian-*.txt, the
# packages, collectd runs under run/ and example/).
# shellcheck source-path=SCRIPTDIR
set -u
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

PKG=collectd-dotnet
IT=$BUILD/it/debian
rm -rf "$IT"
mkdir -p "$IT"
IT=$(cd "$IT" && pwd) # absolute: the steps below change directories
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T_BEGIN=$(_now)
LOCK=/run/lock/collectd-dotnet-debian-test.lock
[[ -d /run/lock && -w /run/lock ]] || LOCK=${TMPDIR:-/tmp}/collectd-dotnet-debian-test.lock
SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo -n)
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=180)
INSTALLED_BY_US=0

# Every file the package must hold, and nothing else (dpkg-deb -c; dirs
# aside).
EXPECTED_FILES="/usr/bin/triggerdump
/usr/lib/collectd/dotnet.so
/usr/share/doc/collectd-dotnet/README.md.gz
/usr/share/doc/collectd-dotnet/README.Debian
/usr/share/doc/collectd-dotnet/changelog.gz
/usr/share/doc/collectd-dotnet/copyright
/usr/share/doc/collectd-dotnet/examples/dotnet.conf
/usr/share/man/man1/triggerdump.1.gz
/usr/share/man/man5/collectd-dotnet.5.gz"

log() { printf '   %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.1f", b - a }'; }
is_installed() { dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -qx installed; }
# listed in dpkg's database at all (installed, config-files, half-installed...)
is_known() {
	local s
	s=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null) || return 1
	[[ -n $s && $s != not-installed ]]
}

purge_pkg() { # purge the package (waits for the dpkg lock); true when gone
	is_known || return 0
	"${APT[@]}" purge "$PKG" >>"$IT/apt.log" 2>&1 ||
		"${SUDO[@]}" dpkg --purge "$PKG" >>"$IT/apt.log" 2>&1
	! is_known
}

cleanup() {
	[[ -n $COLLECTD_PID ]] && collectd_stop 10 >/dev/null
	stop_all_targets
	if ((INSTALLED_BY_US)) && is_known; then
		purge_pkg || echo "debian.sh: could not purge $PKG; see $IT/apt.log" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- 0. tools

missing=()
for t in dpkg-buildpackage dpkg-source dh dh_autoreconf collectd; do
	command -v "$t" >/dev/null || missing+=("$t")
done
[[ -f /usr/include/collectd/core/daemon/plugin.h ]] || missing+=(collectd-dev)
if ((${#missing[@]})); then
	fail "debian: tools" "missing ${missing[*]} (Debian packages dpkg-dev debhelper collectd-core collectd-dev)"
	exit 0
fi
if ((${#SUDO[@]})) && ! sudo -n true 2>/dev/null; then
	fail "debian: tools" "installing a package needs root or password-less sudo"
	exit 0
fi

# ---------------------------------------------------------------- 1. build

SRC=$IT/src
mkdir -p "$SRC"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked + untracked-but-not-ignored files that exist: the tree as a
	# fresh checkout of this work would have it
	(cd "$REPO" && git ls-files -z -co --exclude-standard |
		while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
		tar -cf - --null --no-recursion -T -) | tar -xf - -C "$SRC"
else
	tar -C "$REPO" --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$SRC"
fi
if [[ ! -f $SRC/debian/control || ! -f $SRC/configure.ac ]]; then
	fail "debian: source copy" "no debian/control or configure.ac in $SRC"
	exit 0
fi
VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
ARCH=$(dpkg --print-architecture)
DEB=$IT/${PKG}_${VERSION}_$ARCH.deb
log "source copy: $(du -sh "$SRC" | cut -f1) in $SRC; version $VERSION"
(cd "$SRC" && find . -type f | sort) >"$IT/tree-before.txt"

# the source package first, while the tree is clean (a native package takes
# the whole tree)
t0=$(_now)
if (cd "$IT" && dpkg-source --build src) >"$IT/source.log" 2>&1 &&
	[[ -f $IT/${PKG}_$VERSION.dsc ]]; then
	pass "debian: source package" "$(basename "$IT"/"${PKG}_$VERSION".tar.*) $(du -h "$IT"/"${PKG}_$VERSION".tar.* | cut -f1), $(elapsed "$t0") s"
else
	fail "debian: source package" "dpkg-source --build failed; see $IT/source.log"
fi

t0=$(_now)
# DEB_BUILD_OPTIONS of the caller (nocheck, ...) do not apply: only parallel
if (cd "$SRC" && DEB_BUILD_OPTIONS=parallel=$(nproc) dpkg-buildpackage -us -uc -b) >"$IT/build.log" 2>&1 &&
	[[ -f $DEB ]]; then
	pass "debian: dpkg-buildpackage -us -uc -b" "$(basename "$DEB"), $(elapsed "$t0") s"
else
	fail "debian: dpkg-buildpackage -us -uc -b" "no $DEB; see $IT/build.log:"
	tail -25 "$IT/build.log" | sed 's/^/     /'
	exit 0
fi

# debian/rules clean gives the tree back as it was (a second build works)
if (cd "$SRC" && debian/rules clean) >"$IT/clean.log" 2>&1; then
	(cd "$SRC" && find . -type f | sort) >"$IT/tree-after.txt"
	if cmp -s "$IT/tree-before.txt" "$IT/tree-after.txt"; then
		pass "debian: debian/rules clean restores the source tree"
	else
		fail "debian: debian/rules clean restores the source tree" \
			"$(diff "$IT/tree-before.txt" "$IT/tree-after.txt" | grep '^[<>]' | head -8 | paste -sd ' ')"
	fi
else
	fail "debian: debian/rules clean restores the source tree" "debian/rules clean failed; see $IT/clean.log"
fi

# dh_auto_test ran make check: automake's summary
if grep -q '^# TOTAL:' "$IT/build.log"; then
	summary=$(grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR|XPASS):' "$IT/build.log" |
		awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), tolower($2), $3 }' | tr -d :)
	skipped=$(grep -E '^SKIP: ' "$IT/build.log" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 }')
	if grep -qE '^# (FAIL|ERROR|XPASS): +[1-9]' "$IT/build.log"; then
		fail "debian: make check in the package build" "$summary; see $IT/build.log"
	else
		pass "debian: make check in the package build" "$summary${skipped:+; skipped: $skipped}"
	fi
else
	fail "debian: make check in the package build" "dh_auto_test did not run the unit tests (no automake summary in $IT/build.log)"
fi

# -Werror is off in the package build (debian/rules): warnings must still not
# be there
warnings=$(grep -E '^[^ ]+\.[ch]:[0-9]+:[0-9]+: warning:' "$IT/build.log" | sort -u)
if [[ -z $warnings ]]; then
	pass "debian: no compiler warning with Debian's build flags" \
		"$(grep -m1 -oE -- '-fstack-protector-strong|-D_FORTIFY_SOURCE=[0-9]' "$IT/build.log" | head -1) ..."
else
	fail "debian: no compiler warning with Debian's build flags" "$(wc -l <<<"$warnings") warnings, e.g. $(head -1 <<<"$warnings")"
fi

# ---------------------------------------------------------------- 2. contents

dpkg-deb -c "$DEB" >"$IT/contents.txt"
files=$(awk '$1 !~ /^d/ { p = $6; sub(/^\./, "", p); print p }' "$IT/contents.txt" | sort)
unexpected=$(comm -13 <(sort <<<"$EXPECTED_FILES") <(printf '%s\n' "$files"))
lacking=$(comm -23 <(sort <<<"$EXPECTED_FILES") <(printf '%s\n' "$files"))
if [[ -z $unexpected && -z $lacking ]]; then
	pass "debian: package contents" "$(wc -l <<<"$files") files, as expected"
else
	fail "debian: package contents" "missing: ${lacking//$'\n'/ } unexpected: ${unexpected//$'\n'/ }"
fi
if grep -q ' \./etc/' "$IT/contents.txt"; then
	fail "debian: no file under /etc" "$(grep ' \./etc/' "$IT/contents.txt" | head -3 | paste -sd ' ')"
else
	pass "debian: no file under /etc (the example is not an active conffile)"
fi
depends=$(dpkg-deb -f "$DEB" Depends)
if [[ $depends == *collectd-core* ]]; then
	pass "debian: Depends" "$depends"
else
	fail "debian: Depends" "no collectd-core in '$depends'"
fi
# the plugin exports module_register and nothing else of its own
if syms=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./usr/lib/collectd/dotnet.so >"$IT/dotnet.so" &&
	nm -D --defined-only "$IT/dotnet.so" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | grep -vE '^(_init|_fini)$'); then
	if [[ $syms == module_register ]]; then
		pass "debian: dotnet.so exports only module_register"
	else
		fail "debian: dotnet.so exports only module_register" "exports: ${syms//$'\n'/ }"
	fi
else
	fail "debian: dotnet.so exports only module_register" "could not read /usr/lib/collectd/dotnet.so from $DEB"
fi

# ---------------------------------------------------------------- 3. lintian

lint() { # NAME FILE
	local name=$1 file=$2 out=$IT/lintian-$1.txt ne nw
	lintian --allow-root --display-info "$file" >"$out" 2>&1
	ne=$(grep -c '^E: ' "$out")
	nw=$(grep -c '^W: ' "$out")
	if ((ne)); then
		fail "debian: lintian $name" "$ne errors: $(grep '^E: ' "$out" | head -5 | sed 's/^E: //' | paste -sd ';')"
	else
		pass "debian: lintian $name" "no error, $nw warnings, $(grep -c '^I: ' "$out") infos"
	fi
	grep -E '^[EWI]: ' "$out" | sed 's/^/     /'
}
if command -v lintian >/dev/null; then
	lint binary "$IT/${PKG}_${VERSION}_$ARCH.changes"
	[[ -f $IT/${PKG}_$VERSION.dsc ]] && lint source "$IT/${PKG}_$VERSION.dsc"
else
	log "lintian is not installed: not linted"
fi

# ---------------------------------------------------------------- 4. install

exec 9>"$LOCK"
if ! flock -w 300 9; then
	fail "debian: install" "another run holds $LOCK for over 300 s"
	exit 0
fi
if is_known; then
	log "$PKG was installed before this test (an interrupted run?): purging it first"
	purge_pkg || { fail "debian: install" "could not purge the $PKG installed before; see $IT/apt.log"; exit 0; }
fi
clobber=()
while read -r f; do
	[[ -e $f ]] && clobber+=("$f")
done <<<"$EXPECTED_FILES"
if ((${#clobber[@]})); then
	fail "debian: install" "refusing to overwrite files no package owns: ${clobber[*]}"
	exit 0
fi
INSTALLED_BY_US=1
t0=$(_now)
if "${APT[@]}" install --no-install-recommends "$DEB" >"$IT/apt.log" 2>&1 && is_installed; then
	pass "debian: apt-get install ./$(basename "$DEB")" "$(elapsed "$t0") s"
else
	fail "debian: apt-get install ./$(basename "$DEB")" "see $IT/apt.log: $(tail -2 "$IT/apt.log" | paste -sd ' ')"
	exit 0
fi
listed=$(dpkg -L "$PKG" | while read -r f; do [[ -f $f ]] && printf '%s\n' "$f"; done | sort)
if [[ $listed == "$(sort <<<"$EXPECTED_FILES")" ]]; then
	pass "debian: installed files" "dpkg -L: the $(wc -l <<<"$listed") expected files, all present"
else
	fail "debian: installed files" "dpkg -L lists: ${listed//$'\n'/ }"
fi
ok=1
[[ -x /usr/bin/triggerdump ]] || ok=0
cmp -s "$SRC/contrib/collectd.conf.d/dotnet.conf" /usr/share/doc/$PKG/examples/dotnet.conf || ok=0
man -w triggerdump 2>/dev/null | grep -q '^/usr/share/man/man1/triggerdump.1.gz$' || ok=0
man -w 5 collectd-dotnet 2>/dev/null | grep -q '^/usr/share/man/man5/collectd-dotnet.5.gz$' || ok=0
name="debian: triggerdump executable, example = contrib/collectd.conf.d/dotnet.conf, man finds both pages"
if ((ok)); then
	pass "$name"
else
	fail "$name" "$(stat -c '%A %n' /usr/bin/triggerdump /usr/share/doc/$PKG/examples/* 2>&1 | paste -sd ' ')"
fi

# ---------------------------------------------------------------- 5. collectd

if ! dotnet_build_targets CounterTarget:10 >"$IT/dotnet-build.log" 2>&1; then
	fail "debian: CounterTarget" "not built; see $IT/dotnet-build.log"
elif ! TPID=$(start_target CounterTarget 10 --seconds 600 --heap-mb 32); then
	fail "debian: CounterTarget" "did not start"
else
	if /usr/bin/triggerdump ps >"$IT/ps.txt" 2>&1 && awk -v p="$TPID" '$1 == p { f = 1 } END { exit !f }' "$IT/ps.txt"; then
		pass "debian: /usr/bin/triggerdump ps lists the target" "pid $TPID"
	else
		fail "debian: /usr/bin/triggerdump ps lists the target" "pid $TPID not in: $(head -5 "$IT/ps.txt" | paste -sd ' ')"
	fi

	# $1: the run's directory; $2: the body after the common header
	write_conf() {
		mkdir -p "$1/csv"
		cat >"$1/collectd.conf" <<CONF
Hostname "test"
FQDNLookup false
BaseDir "$1"
PIDFile "$1/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$1/collectd.log"
  Timestamp true
  PrintSeverity true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$1/csv"
</Plugin>
$2
CONF
	}
	start_collectd() { # DIR
		: >"$1/collectd.log"
		collectd -f -C "$1/collectd.conf" >"$1/stdout.log" 2>&1 &
		COLLECTD_PID=$!
		wait_until 30 grep -q "Initialization complete" "$1/collectd.log"
	}
	has_values() { # DIR MIN-ROWS
		local f
		f=$(csv_file "$1" pkg bytes-gc-heap-size) || return 1
		(($(wc -l <"$f") - 1 >= $2))
	}

	RUN=$IT/run
	mkdir -p "$RUN"
	write_conf "$RUN" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"pkg\">
    Pid $TPID
  </Process>
</Plugin>"
	t0=$(_now)
	if ! start_collectd "$RUN"; then
		fail "debian: collectd with PluginDir /usr/lib/collectd" "did not start; $(tail -3 "$RUN/collectd.log" "$RUN/stdout.log" | paste -sd ' ')"
	else
		if grep -q ' /usr/lib/collectd/dotnet\.so$' "/proc/$COLLECTD_PID/maps"; then
			pass "debian: collectd loaded /usr/lib/collectd/dotnet.so" "$(grep -m1 -o 'plugin "dotnet" successfully loaded' "$RUN/collectd.log")"
		else
			fail "debian: collectd loaded /usr/lib/collectd/dotnet.so" "not in /proc/$COLLECTD_PID/maps: $(grep -m1 dotnet "/proc/$COLLECTD_PID/maps")"
		fi
		if wait_until 30 has_values "$RUN" 3; then
			f=$(csv_file "$RUN" pkg bytes-gc-heap-size)
			v=$(csv_last "$RUN" pkg bytes-gc-heap-size)
			if awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }'; then
				pass "debian: csv values of gc-heap-size" "$(($(wc -l <"$f") - 1)) rows in ${f#"$RUN"/csv/}, last $v bytes, first after $(awk -F, -v t="$t0" 'NR == 2 { printf "%.1f", $1 - t }' "$f") s"
			else
				fail "debian: csv values of gc-heap-size" "last value '$v' in $f"
			fi
		else
			fail "debian: csv values of gc-heap-size" "fewer than 3 rows of dotnet-pkg/bytes-gc-heap-size after 30 s; log: $(grep -iE 'error|warn' "$RUN/collectd.log" | tail -3 | paste -sd ' ')"
		fi
		secs=$(collectd_stop 10)
		if grep -q '\[error\]' "$RUN/collectd.log"; then
			fail "debian: collectd log without errors" "$(grep -m3 '\[error\]' "$RUN/collectd.log" | paste -sd ' ')"
		else
			pass "debian: collectd log without errors" "stopped in $secs s"
		fi
	fi

	# ---------------------------------------------------------------- 6. example
	EX=$IT/example
	mkdir -p "$EX"
	# the installed example, made safe for a shared test machine: no
	# AutoDiscover (it would attach to every .NET process here), dumps
	# under $EX, 1 s interval, and a block for our target
	sed -e 's/^\([[:space:]]*\)AutoDiscover .*/\1AutoDiscover false/' \
		-e "s#^\\([[:space:]]*\\)Directory .*#\\1Directory \"$EX/dumps\"#" \
		-e 's/^\([[:space:]]*\)Interval .*/\1Interval 1/' \
		-e "s#^<Plugin dotnet>\$#&\\n  <Process \"pkg\">\\n    Pid $TPID\\n  </Process>#" \
		/usr/share/doc/$PKG/examples/dotnet.conf >"$EX/dotnet.conf"
	if ! grep -q '^ *AutoDiscover false' "$EX/dotnet.conf" || grep -q 'AutoDiscover true' "$EX/dotnet.conf" ||
		! grep -q "Directory \"$EX/dumps\"" "$EX/dotnet.conf" || ! grep -q "Pid $TPID" "$EX/dotnet.conf"; then
		fail "debian: the example configuration runs" "could not adapt it (its layout changed?); see $EX/dotnet.conf"
	else
		write_conf "$EX" "Include \"$EX/dotnet.conf\""
		if start_collectd "$EX" && wait_until 30 has_values "$EX" 2; then
			collectd_stop 10 >/dev/null
			if grep -q '\[error\]' "$EX/collectd.log"; then
				fail "debian: the example configuration runs" "$(grep -m3 '\[error\]' "$EX/collectd.log" | paste -sd ' ')"
			else
				pass "debian: the example configuration runs" "no error, $(grep -c '\[warning\]' "$EX/collectd.log") warning(s); $(grep -m1 -oE '[0-9]+ <Process> block\(s\).*' "$EX/collectd.log")"
			fi
		else
			collectd_stop 10 >/dev/null
			fail "debian: the example configuration runs" "no gc-heap-size values; $(grep -E '\[(error|warning)\]' "$EX/collectd.log" | head -3 | paste -sd ' ')"
		fi
	fi
	stop_target "$TPID" >/dev/null
fi

# ---------------------------------------------------------------- 7. remove

t0=$(_now)
if purge_pkg; then
	pass "debian: apt-get purge" "$(elapsed "$t0") s"
else
	fail "debian: apt-get purge" "$PKG is still known to dpkg; see $IT/apt.log"
fi
left=()
while read -r f; do
	[[ -e $f ]] && left+=("$f")
done <<<"$EXPECTED_FILES"
[[ -e /usr/share/doc/$PKG ]] && left+=("/usr/share/doc/$PKG")
if ((${#left[@]})); then
	fail "debian: files gone after purge" "still there: ${left[*]}"
else
	pass "debian: files gone after purge"
fi
INSTALLED_BY_US=0
flock -u 9

log "debian.sh took $(elapsed "$T_BEGIN") s"
