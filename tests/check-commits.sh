#!/usr/bin/env bash
# tests/check-commits.sh -- the subject of every commit after FIRST (the
# first commit of the current subject rule; history before it stays as it
# was published) has at most 72 characters and the form "area: what".
# Prints PASS/FAIL lines, or one SKIP line outside a git checkout (a
# tarball) or when FIRST is not in its history (a shallow clone).
#
#   tests/check-commits.sh [FIRST]       (default: a0fc5b4)
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
first=${1:-a0fc5b4}
if ! git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	echo "SKIP commits: not a git checkout"
	exit 0
fi
if ! git -C "$REPO" merge-base --is-ancestor "$first" HEAD 2>/dev/null; then
	echo "SKIP commits: $first is not in this checkout's history"
	exit 0
fi
# "area: what": an area of letters, digits and . _ / - (a module, a file,
# a directory), a colon, one space, then text
bad=$(git -C "$REPO" log --format='%h %s' "$first~1..HEAD" | awk '{
	h = $1; s = substr($0, length(h) + 2)
	if (length(s) > 72) print h " (" length(s) " characters)"
	else if (s !~ /^[A-Za-z0-9._\/-]+(, ?[A-Za-z0-9._\/-]+)*: [^ ]/) print h " (not \"area: what\")"
}')
n=$(git -C "$REPO" rev-list --count "$first~1..HEAD")
if [[ -z $bad ]]; then
	echo "PASS commits: the $n subjects since $first are \"area: what\" in at most 72 characters"
else
	echo "FAIL commits: subjects to reword: $(tr '\n' ' ' <<<"$bad")"
	exit 1
fi
