#!/usr/bin/env bash
# tests/check-dead-code.sh -- no function in plugin/ that no product code
# calls. Prints PASS/FAIL lines; exit 0 when all hold.
#
#   tests/check-dead-code.sh [BUILD_C_DIR]     (default: $BUILD/c)
#
# Read from the built objects (nm, objdump: binutils, which the C build
# needs anyway), not from the sources, so comments, strings and #if'd code
# fool nothing:
#  - a function defined non-static in a plugin/ object is used when another
#    plugin/ object refers to it (nm -u), or its own object does (a
#    relocation naming it: a call, or its address taken). The library's
#    objects are built -fPIC, where GCC keeps a call to a global function a
#    call through its symbol (never inlined away: it could be interposed).
#    Tests calling it do not make it used: a function that only tests call
#    is listed in tests/dead-code-allow.txt, with why; an entry that names
#    no function any more is itself a failure, so the list stays short.
#    module_register (collectd's) and main (the CLI's) are entry points.
#  - a static function never called: the compiler says so (-Wunused-function,
#    part of -Wall) and -Werror makes it fatal; checked to be in the flags.
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
dir=${1:-${BUILD:-$REPO/build}/c}
allow=$REPO/tests/dead-code-allow.txt

objs=()
while IFS= read -r o; do objs+=("$o"); done < <(find "$dir/plugin" -name '*.o' 2>/dev/null | sort)
if ((${#objs[@]} == 0)); then
	echo "FAIL dead code: no objects under $dir/plugin (build first)"
	exit 1
fi

# "module symbol" lines: the module is the source's name (libtool's
# "dotnet_la-dotnet.o" and ".libs/" copies are the same source)
module() { local m=${1##*/}; m=${m%.o}; echo "${m##*-}"; }
defined=$(for o in "${objs[@]}"; do
	nm -g --defined-only "$o" | awk -v m="$(module "$o")" '$2 == "T" { print m, $3 }'
done | sort -u)
wanted=$(for o in "${objs[@]}"; do
	m=$(module "$o")
	nm -u "$o" | awk -v m="$m" '{ print m, $2 }'
	# relocations of the object's own code and data that name a symbol:
	# "OFFSET TYPE SYMBOL[+-ADDEND]"
	objdump -r "$o" | awk -v m="$m" '$1 ~ /^[0-9a-f]+$/ && NF >= 3 {
		s = $3; sub(/[-+].*$/, "", s); print m, s, "own" }'
done | sort -u)
allowed=$(sed 's/#.*//' "$allow" 2>/dev/null | awk 'NF { print $1 }' | sort -u)

# a definition is used when another module wants it, or its own module
# does (an "own" line: objdump; nm -u never lists a symbol the object defines)
dead=$(awk 'NR == FNR { if ($3 == "own") own[$1 " " $2] = 1; else other[$2] = other[$2] " " $1; next }
	{ used = ((($1 " " $2) in own)); n = split(other[$2], w, " ")
	  for (i = 1; i <= n; i++) if (w[i] != $1) used = 1
	  if (!used && $2 != "module_register" && $2 != "main") print $2 " (plugin/" $1 ".c)" }' \
	<(printf '%s\n' "$wanted") <(printf '%s\n' "$defined"))
unlisted=$(printf '%s\n' "$dead" | awk 'NF' | while read -r f where; do
	grep -qx "$f" <<<"$allowed" || echo "$f $where"
done)
stale=$(printf '%s\n' "$allowed" | awk 'NF' | while read -r f; do
	grep -q " $f\$" <<<"$defined" || echo "$f"
done)

rc=0
n=$(printf '%s\n' "$defined" | grep -c .)
if [[ -z $unlisted ]]; then
	echo "PASS dead code: each of the $n non-static functions in plugin/ has a caller in plugin/ (or is a test's, in tests/dead-code-allow.txt)"
else
	echo "FAIL dead code: no caller in plugin/: $(tr '\n' ' ' <<<"$unlisted")"
	rc=1
fi
if [[ -z $stale ]]; then
	echo "PASS dead code: tests/dead-code-allow.txt names only functions that exist"
else
	echo "FAIL dead code: tests/dead-code-allow.txt names functions that are gone: $(tr '\n' ' ' <<<"$stale")"
	rc=1
fi
if grep -q '^WARN_CFLAGS = .*-Wall.*-Werror' "$dir/Makefile" 2>/dev/null; then
	echo "PASS dead code: static functions never called are errors (-Wall -Werror: -Wunused-function)"
else
	echo "FAIL dead code: $dir/Makefile does not build with -Wall -Werror (an unused static function would pass)"
	rc=1
fi
exit $rc
