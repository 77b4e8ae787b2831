#!/usr/bin/env bash
# tests/fuzz/run.sh -- builds and runs the libFuzzer targets of the parsers.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]     (default 20)
#
# Builds fuzz_nettrace, fuzz_counters, fuzz_ipc, fuzz_gctypes and fuzz_trace
# with clang
# (-fsanitize=fuzzer,address,undefined) into $BUILD/fuzz, replays every file
# of tests/fuzz/regressions/<target>/ (each must run clean), then fuzzes each
# target for SECONDS_PER_TARGET starting from a scratch copy of the committed
# corpus tests/fuzz/corpus/<target>/. Prints one line per target:
#   PASS fuzz_<name> (<execs> execs, <cov> cov)
#   FAIL fuzz_<name>: <reason>
# and appends them to $RESULTS when that is set (tests/run sets it). A crash
# input is saved under $BUILD/fuzz/crashes/<target>/. Exit status: 0 when
# every target passed, 1 when one failed, 2 when nothing could be built.
# Environment: BUILD (default <repo>/build), CC (default clang),
# FUZZ_JOBS (parallel fuzzing processes per target, default 1).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$REPO/build}
CC=${CC:-clang}
SECONDS_PER_TARGET=${1:-20}
OUT=$BUILD/fuzz
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror"

# target: sources and -max_len (bytes)
declare -A SOURCES=(
	[fuzz_nettrace]="plugin/nettrace.c plugin/counters.c plugin/counters_table.c"
	[fuzz_counters]="plugin/nettrace.c plugin/counters.c plugin/counters_decoder.c plugin/counters_table.c"
	[fuzz_ipc]="plugin/ipc.c"
	[fuzz_gctypes]="plugin/nettrace.c plugin/gctypes.c"
	[fuzz_trace]="plugin/trace.c plugin/session.c plugin/ipc.c plugin/nettrace.c plugin/counters.c plugin/counters_decoder.c"
)
declare -A MAX_LEN=([fuzz_nettrace]=65536 [fuzz_counters]=4096 [fuzz_ipc]=4096)
MAX_LEN[fuzz_gctypes]=65536
MAX_LEN[fuzz_trace]=1024
TARGETS=(fuzz_nettrace fuzz_counters fuzz_ipc)
TARGETS+=(fuzz_gctypes fuzz_trace)

report() { # LINE
	printf '%s\n' "$1"
	[[ -n ${RESULTS:-} ]] && printf '%s\n' "$1" >>"$RESULTS"
	return 0
}

command -v "$CC" >/dev/null || {
	for t in "${TARGETS[@]}"; do report "FAIL $t: $CC not found"; done
	exit 2
}
mkdir -p "$OUT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rc=0
built=0
for t in "${TARGETS[@]}"; do
	log=$OUT/$t.log
	srcs=()
	for s in ${SOURCES[$t]}; do srcs+=("$REPO/$s"); done
	# shellcheck disable=SC2086
	if ! $CC $CFLAGS -o "$OUT/$t" "$HERE/$t.c" "${srcs[@]}" -lm >"$OUT/$t.build.log" 2>&1; then
		report "FAIL $t: does not build, see $OUT/$t.build.log"
		rc=1
		continue
	fi
	built=1

	# 1. the regression inputs of crashes found before: each must run clean
	regs=()
	if [[ -d $HERE/regressions/$t ]]; then
		for f in "$HERE/regressions/$t"/*; do [[ -f $f ]] && regs+=("$f"); done
	fi
	if ((${#regs[@]})) && ! "$OUT/$t" -runs=1 "${regs[@]}" >"$OUT/$t.regressions.log" 2>&1; then
		bad=$(grep -m1 -oE '(ERROR: [A-Za-z]+: [^ ]+|runtime error: .*|deadly signal|Running: .*)' \
			"$OUT/$t.regressions.log" | head -1)
		report "FAIL $t: a regression input fails again (${bad:-see $OUT/$t.regressions.log})"
		rc=1
		continue
	fi

	# 2. fuzz from a scratch copy of the committed corpus
	corpus=$OUT/corpus/$t
	crashes=$OUT/crashes/$t
	rm -rf "$corpus"
	mkdir -p "$corpus" "$crashes"
	cp "$HERE/corpus/$t"/* "$corpus/" 2>/dev/null
	"$OUT/$t" -max_total_time="$SECONDS_PER_TARGET" -max_len="${MAX_LEN[$t]}" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$corpus" >"$log" 2>&1
	status=$?
	execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log" | tail -1)
	cov=$(grep -oE '(cov|ft): [0-9]+' "$log" | awk '$1 == "cov:" { c = $2 } END { print c + 0 }')
	if ((status == 0)); then
		report "PASS $t (${execs:-?} execs, ${cov:-?} cov)"
		continue
	fi
	rc=1
	art=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | awk '{ print $NF }')
	what=$(grep -m1 -oE '(ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+[^(]*|runtime error: .*|deadly signal)' "$log" |
		head -1 | cut -c1-120)
	report "FAIL $t: ${what:-exit status $status}; input ${art:-not saved}, log $log"
done
((built)) || exit 2
exit "$rc"
