#!/usr/bin/env bash
# tests/integration/install.sh -- a plain "./configure && make && make
# install" puts dotnet.so where the installed collectd loads plugins from,
# and collectd loads it from there by name (LoadPlugin dotnet, no PluginDir).
# Installed under a DESTDIR, then loaded with collectd -t on a config whose
# PluginDir is that DESTDIR's copy of collectd's own directory.
set -u
. "$REPO/tests/lib/common.sh"

IT=$(mktemp -d "${TMPDIR:-/tmp}/install.XXXXXX")
trap 'rm -rf "$IT"' EXIT
want=$(collectd -h | sed -n 's/^ *Plugin directory *//p')
if [[ -z $want ]]; then
	fail "install: collectd -h" "names no plugin directory"
	exit 0
fi

mkdir -p "$IT/b"
if (cd "$IT/b" && "$REPO/configure" -q && make -j"$(nproc)" >make.log 2>&1 &&
	make install DESTDIR="$IT/root" >install.log 2>&1); then
	if [[ -f $IT/root$want/dotnet.so ]]; then
		pass "install: default configure puts dotnet.so into $want"
	else
		fail "install: default configure" "no $want/dotnet.so under DESTDIR; installed: $(cd "$IT/root" && find . -name 'dotnet*.so' | tr '\n' ' ')"
	fi
else
	fail "install: configure, make, make install" "see $IT/b/*.log"
	tail -20 "$IT/b/make.log" "$IT/b/install.log" 2>/dev/null
fi

# collectd takes that file as its plugin "dotnet"
if [[ -f $IT/root$want/dotnet.so ]]; then
	cat >"$IT/collectd.conf" <<CONF
PluginDir "$IT/root$want"
LoadPlugin dotnet
<Plugin dotnet>
  AutoDiscover false
</Plugin>
CONF
	if out=$(collectd -t -C "$IT/collectd.conf" 2>&1); then
		pass "install: collectd -t loads the installed dotnet.so"
	else
		fail "install: collectd -t loads the installed dotnet.so" "$out"
	fi
fi

# with no collectd to ask, configure stops and names the option to pass
mkdir -p "$IT/nocd"
if out=$(cd "$IT/nocd" && PATH=/usr/bin:/bin ac_cv_path_COLLECTD_BIN= COLLECTD_BIN=/nonexistent \
	"$REPO/configure" -q 2>&1); then
	fail "install: configure without a collectd to ask" "it succeeded"
else
	if grep -q -- '--with-plugindir=' <<<"$out"; then
		pass "install: configure without a collectd to ask names --with-plugindir"
	else
		fail "install: configure without a collectd to ask" "message: $out"
	fi
fi
exit 0
