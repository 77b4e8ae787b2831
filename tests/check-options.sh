#!/usr/bin/env bash
# tests/check-options.sh -- every option the plugin's configuration parser
# accepts is in collectd-dotnet(5), and every option the page lists is one
# the parser accepts. Prints PASS/FAIL lines; exit 0 when both hold.
#
# The parser's options: the keys compared with strcasecmp("Key", c->key) in
# plugin/dotnet.c (blocks included). The page's: the first word of each
# .BI/.B line that opens an option (.TP before it) in the sections GLOBAL
# OPTIONS, LISTEN SOCKETS, PROCESS BLOCKS, DUMP BLOCK and TRIGGER BLOCK.
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
src=$REPO/plugin/dotnet.c
page=$REPO/doc/collectd-dotnet.5

parser=$(grep -o 'strcasecmp("[A-Za-z]*", c->key)' "$src" | sed 's/strcasecmp("\([A-Za-z]*\)".*/\1/' | sort -u)
documented=$(awk '
	/^\.SH / { on = ($0 ~ /GLOBAL OPTIONS|LISTEN SOCKETS|PROCESS BLOCKS|DUMP BLOCK|TRIGGER BLOCK/); next }
	on && prev == ".TP" && /^\.BI? / {
		w = $2; gsub(/"/, "", w); sub(/^</, "", w); sub(/>$/, "", w); sub(/\\.*$/, "", w)
		if (w != "") print w
	}
	{ prev = $1 }' "$page" | sort -u)

rc=0
missing=$(comm -23 <(printf '%s\n' "$parser") <(printf '%s\n' "$documented"))
extra=$(comm -13 <(printf '%s\n' "$parser") <(printf '%s\n' "$documented"))
n=$(printf '%s\n' "$parser" | grep -c .)
if [[ -z $missing ]]; then
	echo "PASS docs: the $n options the parser accepts are in collectd-dotnet(5)"
else
	echo "FAIL docs: options the parser accepts but collectd-dotnet(5) does not list: $(tr '\n' ' ' <<<"$missing")"
	rc=1
fi
if [[ -z $extra ]]; then
	echo "PASS docs: collectd-dotnet(5) lists no option the parser refuses"
else
	echo "FAIL docs: options in collectd-dotnet(5) the parser does not accept: $(tr '\n' ' ' <<<"$extra")"
	rc=1
fi
exit $rc
