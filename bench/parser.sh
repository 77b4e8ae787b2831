#!/usr/bin/env bash
# bench/parser.sh -- parser throughput (nettrace reader + counters_decode),
# single core, -O2, on a real capture of a .NET 10 counters session.
#
#   bench/parser.sh [CAPTURE.nettrace] [parser options: --mb N --runs N --chunk B]
#
# Without CAPTURE it uses $BUILD/bench/counters-net10-10s.nettrace, recording
# it first if missing: CounterTarget (.NET 10) started with --heap-mb 64, then
# `triggerdump record` for 10 s of System.Runtime + CollectdDotnet-Test +
# meter CollectdDotnet.Test at a 1 s interval. Needs the C build and the test
# targets (tests/run builds both). See bench/README.md for what is measured.
set -eu
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
CC=${CC:-gcc}
TRIGGERDUMP=${TRIGGERDUMP:-$BUILD/c/triggerdump}
OUT=$BUILD/bench
mkdir -p "$OUT"

capture=$OUT/counters-net10-10s.nettrace
if [[ $# -gt 0 && $1 != -* ]]; then
	capture=$1
	shift
fi
if [[ ! -s $capture ]]; then
	target=$BUILD/targets/CounterTarget/net10/CounterTarget
	[[ -x $target && -x $TRIGGERDUMP ]] || {
		echo "bench/parser.sh: no capture; need $target and $TRIGGERDUMP to record one" >&2
		exit 2
	}
	fifo=$OUT/target.out
	"$target" --heap-mb 64 >"$fifo" 2>&1 &
	tpid=$!
	trap 'kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null' EXIT
	for _ in $(seq 100); do grep -q '^READY' "$fifo" && break; sleep 0.1; done
	"$TRIGGERDUMP" record "$tpid" -o "$capture.tmp" --duration 10 --interval 1 \
		--providers System.Runtime,CollectdDotnet-Test --meters CollectdDotnet.Test >&2
	mv "$capture.tmp" "$capture"
fi

$CC -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$OUT/parser" \
	"$REPO/bench/parser.c" "$REPO/plugin/nettrace.c" "$REPO/plugin/counters.c" "$REPO/plugin/counters_decoder.c" -lm
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
echo "# $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $($CC --version | head -1)"
echo "# reproduce: ${pin[*]} $OUT/parser $capture $*"
"${pin[@]}" "$OUT/parser" "$capture" "$@"
