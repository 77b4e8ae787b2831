# shellcheck shell=bash
# tests/lib/dotnet.sh -- the .NET side of the collectd-dotnet test rig.
#
# Source it from a test (bash >= 4.4; safe under set -u; changes no shell
# options):   . "$REPO/tests/lib/dotnet.sh"
#
#   dotnet_build_targets [NAME[:VER]...]   build the test apps into $BUILD/targets
#   target_cmd [-v ARRAY] NAME VER         command to run a target (bash array)
#   target_path NAME VER                   its executable (echo)
#   target_runtime_version NAME VER        the .NET runtime version it runs on (echo)
#   start_target NAME VER [ARGS...]        start in background, wait for READY, echo pid
#   target_log PID                         stdout+stderr log of a started target (echo)
#   stop_target PID [TIMEOUT]              SIGTERM, wait, SIGKILL after TIMEOUT s
#   stop_all_targets                       stop what start_target started in this shell
#   target_alive PID                       true while it runs (zombies count as gone)
#   dotnet_diag_socket PID                 the target's diagnostic IPC socket (echo)
#   dotnet_tools_install                   dotnet-counters + dotnet-dump into $BUILD/tools
#   counters_reference PID SECONDS OUTFILE [COUNTERS]
#                                          dotnet-counters collect, CSV, 1 s interval
#
# NAME: CounterTarget, WebTarget (tests/targets/NAME) or SpikeApp (contrib/spike-app).
# VER:  8, 9 (self-contained publishes: real .NET 8/9 runtimes that need not be
#       installed), 10 (framework-dependent, runs on the installed runtime) or
#       11 (the net10.0 build published self-contained on the .NET 11.0.0
#       runtime pack: RuntimeFrameworkVersion 11.0.0).
#
# Variables (set before sourcing or before calling, all optional):
#   BUILD                 build root, default <repo>/build (set it before sourcing)
#   DOTNET                the dotnet CLI, default: dotnet from PATH
#   DOTNET_TARGET_LAUNCH  apphost (default) or muxer ("dotnet exec X.dll") for VER 10
#   DOTNET_READY_TIMEOUT  seconds start_target waits for READY + socket (default 60)
#   TARGET_RUN_DIR        where start_target puts logs (default $BUILD/run)
#   TARGET_USER           run targets as this user (setpriv, its own uid, gid,
#                         no supplementary groups, no new privileges), with
#                         TMPDIR and HOME a fresh 0700 directory it owns:
#                         target_tmpdir PID says which (test_user makes one)
#   DOTNET_TOOLS_VERSION  dotnet-counters / dotnet-dump version (default 10.0.750501)
# Set by this file: DOTNET_COUNTERS, DOTNET_DUMP (tool paths), TARGET_CMD.

DOTNET_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOTNET_REPO_ROOT=$(cd "$DOTNET_LIB_DIR/../.." && pwd)
BUILD=${BUILD:-$DOTNET_REPO_ROOT/build}
DOTNET=${DOTNET:-dotnet}
DOTNET_TOOLS_VERSION=${DOTNET_TOOLS_VERSION:-10.0.750501}
DOTNET_READY_TIMEOUT=${DOTNET_READY_TIMEOUT:-60}
DOTNET_TARGET_LAUNCH=${DOTNET_TARGET_LAUNCH:-apphost}
TARGET_RUN_DIR=${TARGET_RUN_DIR:-$BUILD/run}
DOTNET_COUNTERS=$BUILD/tools/dotnet-counters
# shellcheck disable=SC2034 # for the callers
DOTNET_DUMP=$BUILD/tools/dotnet-dump
DOTNET_TARGET_NAMES=(CounterTarget WebTarget SpikeApp)
DOTNET_TARGET_VERSIONS=(8 9 10 11)
# shellcheck disable=SC2034 # target_cmd sets it through a nameref
TARGET_CMD=()

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE=1 DOTNET_GENERATE_ASPNET_CERTIFICATE=false
# framework-dependent apphosts (VER 10) and the tools find the runtime through it
if [[ -z ${DOTNET_ROOT:-} ]] && command -v "$DOTNET" >/dev/null 2>&1; then
	DOTNET_ROOT=$(dirname "$(readlink -f "$(command -v "$DOTNET")")")
	export DOTNET_ROOT
fi

# Bump when the build recipe below changes: it is part of the stamp.
_DOTNET_RECIPE=2

_dotnet_err() { printf 'dotnet.sh: %s\n' "$*" >&2; }

_dotnet_now() { # seconds, with fractions
	if [[ -n ${EPOCHREALTIME:-} ]]; then printf '%s\n' "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi
}

_dotnet_before() { # _dotnet_before DEADLINE: true while now < DEADLINE
	awk -v n="$(_dotnet_now)" -v d="$1" 'BEGIN { exit !(n < d) }'
}

_dotnet_rid() {
	case $(uname -m) in
	x86_64) echo linux-x64 ;;
	aarch64) echo linux-arm64 ;;
	*) _dotnet_err "unsupported machine $(uname -m)"; return 1 ;;
	esac
}

_dotnet_project_dir() { # NAME -> directory holding NAME.csproj, relative to the repo
	case $1 in
	CounterTarget | WebTarget) echo "tests/targets/$1" ;;
	SpikeApp) echo "contrib/spike-app" ;;
	*) _dotnet_err "unknown target '$1' (known: ${DOTNET_TARGET_NAMES[*]})"; return 1 ;;
	esac
}

_dotnet_check_ver() {
	case $1 in
	8 | 9 | 10 | 11) return 0 ;;
	*) _dotnet_err "unknown .NET version '$1' (known: ${DOTNET_TARGET_VERSIONS[*]})"; return 1 ;;
	esac
}

_dotnet_out_dir() { echo "$BUILD/targets/$1/net$2"; }

# Hash of everything a build of NAME reads from the repo: the project folder
# (sources, csproj) and the Directory.* files of its parent folder.
_dotnet_src_hash() { # NAME
	local dir
	dir=$(_dotnet_project_dir "$1") || return 1
	(
		cd "$DOTNET_REPO_ROOT" || exit 1
		{
			find "$dir" -type f ! -path '*/bin/*' ! -path '*/obj/*' ! -name '*.md' -print0
			find "$(dirname "$dir")" -maxdepth 1 -type f -name 'Directory.*' -print0
		} | LC_ALL=C sort -z | xargs -0 sha256sum
	) | sha256sum | cut -c1-64
}

# dotnet_build_targets [NAME[:VER]...]
# Without arguments: every target for every version; NAME alone: all its
# versions. Publishes into $BUILD/targets/NAME/netVER; intermediate files go to
# $BUILD/dotnet. A target whose stamp (hash of its sources, the SDK version and
# this recipe) is unchanged is not rebuilt. The projects build in parallel
# (DOTNET_BUILD_JOBS, default 3; the versions of one project one after the
# other, as they share its restore output). Logs: $BUILD/dotnet/logs/.
dotnet_build_targets() {
	local -a specs=() names=()
	local name ver spec
	(($# == 0)) && set -- "${DOTNET_TARGET_NAMES[@]}"
	for spec in "$@"; do
		name=${spec%%:*}
		_dotnet_project_dir "$name" >/dev/null || return 1
		if [[ $spec == *:* ]]; then
			_dotnet_check_ver "${spec#*:}" || return 1
			specs+=("$spec")
		else
			for ver in "${DOTNET_TARGET_VERSIONS[@]}"; do specs+=("$name:$ver"); done
		fi
		[[ " ${names[*]} " == *" $name "* ]] || names+=("$name")
	done
	if ! command -v "$DOTNET" >/dev/null 2>&1; then
		_dotnet_err "the .NET SDK ('$DOTNET') is not on PATH"
		return 1
	fi
	local sdk rid
	if ! sdk=$("$DOTNET" --version 2>&1 </dev/null); then
		_dotnet_err "'$DOTNET --version' failed: $sdk"
		return 1
	fi
	rid=$(_dotnet_rid) || return 1
	mkdir -p "$BUILD/dotnet/logs" "$BUILD/targets" || return 1

	local jobs=${DOTNET_BUILD_JOBS:-3} rc=0 running=0 pid
	local -a pids=()
	for name in "${names[@]}"; do
		local -a mine=()
		for spec in "${specs[@]}"; do
			[[ ${spec%%:*} == "$name" ]] && mine+=("${spec#*:}")
		done
		if ((jobs <= 1)); then
			_dotnet_build_project "$name" "$sdk" "$rid" "${mine[@]}" || rc=1
			continue
		fi
		if ((running >= jobs)); then
			wait -n || rc=1
			running=$((running - 1))
		fi
		_dotnet_build_project "$name" "$sdk" "$rid" "${mine[@]}" &
		pids+=($!)
		running=$((running + 1))
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || rc=1
	done
	return "$rc"
}

# _dotnet_build_project NAME SDK RID VER...
_dotnet_build_project() {
	local name=$1 sdk=$2 rid=$3
	shift 3
	local proj src hash ver out stamp tfm log t0
	local -a args
	proj=$(_dotnet_project_dir "$name") || return 1
	proj=$DOTNET_REPO_ROOT/$proj/$name.csproj
	src=$(_dotnet_src_hash "$name") || return 1
	for ver in "$@"; do
		hash="recipe=$_DOTNET_RECIPE sdk=$sdk rid=$rid src=$src"
		out=$(_dotnet_out_dir "$name" "$ver")
		stamp=$out/.stamp
		if [[ -f $stamp && $(<"$stamp") == "$hash" && -x $out/$name ]]; then
			continue
		fi
		tfm=net$ver.0
		local artifacts=$BUILD/dotnet
		local -a extra=()
		if [[ $ver == 11 ]]; then
			# the SDK here targets net10.0 at most: the net10.0 build on the
			# 11.0.0 runtime pack, with intermediate files of its own
			tfm=net10.0
			artifacts=$BUILD/dotnet11
			extra=(-p:RuntimeFrameworkVersion=11.0.0)
		fi
		log=$BUILD/dotnet/logs/$name-net$ver.log
		# -p:TargetFrameworks=TFM: restore only what this TFM needs (no
		# runtime packs for the project's other TFMs)
		args=(publish "$proj" -c Release -f "$tfm" -p:TargetFrameworks="$tfm"
			--artifacts-path "$artifacts" -o "$out" -nologo -v:m -nodeReuse:false "${extra[@]}")
		if [[ $ver == 10 ]]; then
			args+=(--no-self-contained)
		else
			args+=(-r "$rid" --self-contained)
		fi
		rm -rf "$out"
		t0=$(_dotnet_now)
		if ! "$DOTNET" "${args[@]}" >"$log" 2>&1 </dev/null; then
			_dotnet_err "building $name for .NET $ver FAILED: '$DOTNET ${args[*]}'; log $log:"
			if grep -qE ': error ' "$log"; then
				grep -E ': error ' "$log" | sed 's/^ *//' | sort -u | head -n 20 >&2
			else
				tail -n 20 "$log" >&2
			fi
			rm -rf "$out"
			return 1
		fi
		if [[ ! -x $out/$name ]]; then
			_dotnet_err "building $name for .NET $ver FAILED: no $out/$name; log $log"
			return 1
		fi
		# the build output (bin/) is only a copy of the publish: for the
		# self-contained ones that is ~80 MB of runtime each
		[[ $ver == 10 ]] || rm -rf "$artifacts/bin/$name/release_${tfm}_$rid"
		printf '%s\n' "$hash" >"$stamp"
		awk -v a="$t0" -v b="$(_dotnet_now)" -v w="$name for .NET $ver" \
			'BEGIN { printf "dotnet.sh: built %s (%.1f s)\n", w, b - a }' >&2
	done
}

# target_cmd [-v ARRAY] NAME VER
# Sets ARRAY (default TARGET_CMD) to the command that runs target NAME on .NET
# VER. Fails when it is not built.  e.g.  target_cmd CounterTarget 8
#   -> TARGET_CMD=(<build>/targets/CounterTarget/net8/CounterTarget)
target_cmd() {
	local __var=TARGET_CMD
	if [[ ${1:-} == -v ]]; then
		__var=$2
		shift 2
	fi
	if (($# != 2)); then
		_dotnet_err "usage: target_cmd [-v ARRAY] NAME VER"
		return 2
	fi
	local __name=$1 __ver=$2 __out
	_dotnet_project_dir "$__name" >/dev/null && _dotnet_check_ver "$__ver" || return 1
	__out=$(_dotnet_out_dir "$__name" "$__ver")
	if [[ ! -x $__out/$__name ]]; then
		_dotnet_err "$__name for .NET $__ver is not built ($__out/$__name); run dotnet_build_targets"
		return 1
	fi
	local -n __ref=$__var
	if [[ $__ver == 10 && $DOTNET_TARGET_LAUNCH == muxer ]]; then
		__ref=("$DOTNET" exec "$__out/$__name.dll")
	else
		__ref=("$__out/$__name")
	fi
}

# target_path NAME VER: the executable (apphost) of a built target.
target_path() {
	# shellcheck disable=SC2034 # set through a nameref
	local -a c
	target_cmd -v c "$@" || return 1
	printf '%s\n' "$(_dotnet_out_dir "$1" "$2")/$1"
}

# target_runtime_version NAME VER: e.g. 8.0.31 (the runtime bundled into a
# self-contained publish, or for VER 10 the newest installed 10.x runtime).
target_runtime_version() {
	local out
	_dotnet_project_dir "$1" >/dev/null && _dotnet_check_ver "$2" || return 1
	out=$(_dotnet_out_dir "$1" "$2")
	if [[ $2 == 10 ]]; then
		"$DOTNET" --list-runtimes | awk '$1 == "Microsoft.NETCore.App" && $2 ~ /^10\./ { v = $2 } END { if (v == "") exit 1; print v }'
	else
		sed -n '/"Microsoft.NETCore.App"/,/version/ s/.*"version": *"\([^"]*\)".*/\1/p' \
			"$out/$1.runtimeconfig.json" | head -n 1 | grep .
	fi
}

# target_tmpdir PID: the TMPDIR a started target was given (echo).
target_tmpdir() {
	local d
	d=$(readlink "$TARGET_RUN_DIR/tmpdir-$1" 2>/dev/null) || d=${TMPDIR:-/tmp}
	printf '%s\n' "$d"
}

# dotnet_diag_socket PID: path of the process's diagnostic IPC socket (fails if none).
dotnet_diag_socket() {
	local s
	s=$(compgen -G "$(target_tmpdir "$1")/dotnet-diagnostic-$1-*-socket" | head -n 1)
	[[ -n $s && -S $s ]] || return 1
	printf '%s\n' "$s"
}

_dotnet_proc_start() { # PID -> start time in clock ticks (field 22 of /proc/PID/stat)
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# after "comm)": field 3 is the first; start time is field 22
	awk '{ print $20 }' <<<"$stat"
}

# target_alive PID: true while the process runs (a zombie that its parent has
# not reaped yet counts as gone; /proc/PID exists until then).
target_alive() { _dotnet_alive "$@"; }

_dotnet_alive() { # PID: running (not gone, not a zombie)
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# start_target NAME VER [ARGS...]
# Starts the target in the background (stdin /dev/null, stdout+stderr to a log
# under $TARGET_RUN_DIR, see target_log), waits until it printed "READY <pid>"
# and its diagnostic socket exists (deadline DOTNET_READY_TIMEOUT s), and
# echoes the pid, which is the .NET process itself.
#   pid=$(start_target CounterTarget 8 --heap-mb 50) || fail
start_target() {
	if (($# < 2)); then
		_dotnet_err "usage: start_target NAME VER [ARGS...]"
		return 2
	fi
	local name=$1 ver=$2
	shift 2
	local -a cmd
	target_cmd -v cmd "$name" "$ver" || return 1
	mkdir -p "$TARGET_RUN_DIR" || return 1
	local log pid deadline ready=
	log=$(mktemp "$TARGET_RUN_DIR/$name-net$ver.XXXXXX") || return 1
	local utmp=
	if [[ -n ${TARGET_USER:-} ]]; then
		# its own TMPDIR (the runtime's socket goes there) under /tmp, which
		# the user can reach; setpriv execs, so $! stays the .NET process
		utmp=$(mktemp -d /tmp/cdn-u.XXXXXX) && chown "$TARGET_USER:" "$utmp" || return 1
		cmd=(setpriv --reuid="$TARGET_USER" --regid="$(id -g "$TARGET_USER")" --clear-groups
			--no-new-privs env TMPDIR="$utmp" HOME="$utmp" "${cmd[@]}")
	fi
	# a simple command in the background: bash forks and execs it, so $! is
	# the .NET process (apphost and "dotnet exec" host the runtime in-process)
	"${cmd[@]}" "$@" </dev/null >"$log" 2>&1 &
	pid=$!
	ln -sfn "$(basename "$log")" "$TARGET_RUN_DIR/target-$pid.log"
	if [[ -n $utmp ]]; then ln -sfn "$utmp" "$TARGET_RUN_DIR/tmpdir-$pid"; else rm -f "$TARGET_RUN_DIR/tmpdir-$pid"; fi
	printf '%s %s %s\n' "$pid" "$(_dotnet_proc_start "$pid")" "$name-net$ver" >>"$TARGET_RUN_DIR/pids.$$"
	deadline=$(awk -v n="$(_dotnet_now)" -v t="$DOTNET_READY_TIMEOUT" 'BEGIN { printf "%.3f", n + t }')
	while :; do
		if [[ -z $ready ]] && grep -qE '^READY [0-9]+$' "$log"; then
			ready=$(grep -m 1 -E '^READY [0-9]+$' "$log")
			ready=${ready#READY }
			if [[ $ready != "$pid" ]]; then
				_dotnet_err "$name (.NET $ver) printed READY $ready but was started as pid $pid"
				stop_target "$pid" >/dev/null 2>&1
				return 1
			fi
		fi
		if [[ -n $ready ]] && dotnet_diag_socket "$pid" >/dev/null; then
			printf '%s\n' "$pid"
			return 0
		fi
		if ! _dotnet_alive "$pid"; then
			local code=unknown
			wait "$pid" 2>/dev/null && code=0 || code=$?
			((code == 127)) && code=unknown # not our child: reaped elsewhere
			_dotnet_err "$name (.NET $ver) exited before it was ready (exit code $code); log $log:"
			tail -n 20 "$log" >&2
			sed -i "/^$pid /d" "$TARGET_RUN_DIR/pids.$$"
			return 1
		fi
		if ! _dotnet_before "$deadline"; then
			_dotnet_err "$name (.NET $ver, pid $pid) not ready after ${DOTNET_READY_TIMEOUT}s" \
				"(READY seen: ${ready:-no}, diagnostic socket: $(dotnet_diag_socket "$pid" || echo none)); log $log:"
			tail -n 20 "$log" >&2
			stop_target "$pid" >/dev/null 2>&1
			return 1
		fi
		sleep 0.05
	done
}

# target_log PID: the log file of a target started by start_target.
target_log() {
	local l=$TARGET_RUN_DIR/target-$1.log
	[[ -e $l ]] || { _dotnet_err "no log for pid $1"; return 1; }
	readlink -f "$l"
}

# stop_target PID [TIMEOUT]: SIGTERM, wait up to TIMEOUT s (default 10), then
# SIGKILL. Returns 0 when the process ended on SIGTERM, 1 if it had to be killed.
stop_target() {
	local pid=${1:?usage: stop_target PID [TIMEOUT]} timeout=${2:-10} deadline rc=0
	if _dotnet_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		deadline=$(awk -v n="$(_dotnet_now)" -v t="$timeout" 'BEGIN { printf "%.3f", n + t }')
		while _dotnet_alive "$pid"; do
			if ! _dotnet_before "$deadline"; then
				_dotnet_err "pid $pid still running ${timeout}s after SIGTERM: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				rc=1
				break
			fi
			sleep 0.05
		done
	fi
	wait "$pid" 2>/dev/null || true # reap it if it is our child
	if ((rc)); then
		# killed: the runtime had no chance to remove its socket
		local sock
		for sock in "$(target_tmpdir "$pid")"/dotnet-diagnostic-"$pid"-*-socket; do
			[[ -S $sock ]] && rm -f "$sock"
		done
	fi
	local utmp
	utmp=$(readlink "$TARGET_RUN_DIR/tmpdir-$pid" 2>/dev/null) &&
		[[ $utmp == /tmp/cdn-u.* ]] && rm -rf "$utmp"
	rm -f "$TARGET_RUN_DIR/tmpdir-$pid"
	if [[ -f $TARGET_RUN_DIR/pids.$$ ]]; then
		sed -i "/^$pid /d" "$TARGET_RUN_DIR/pids.$$"
	fi
	return "$rc"
}

# stop_all_targets: stops every target started by start_target from this shell
# (or its subshells) that still runs; for an EXIT trap.
stop_all_targets() {
	local f=$TARGET_RUN_DIR/pids.$$ pid start
	[[ -f $f ]] || return 0
	while read -r pid start _; do
		# the same process, not a later one that reused the pid
		[[ $(_dotnet_proc_start "$pid" 2>/dev/null) == "$start" ]] || continue
		stop_target "$pid" 5 || true
	done <"$f"
	rm -f "$f"
}

# dotnet_tools_install: dotnet-counters and dotnet-dump, version
# DOTNET_TOOLS_VERSION, into $BUILD/tools (nothing to do when already there).
dotnet_tools_install() {
	local tool out
	for tool in dotnet-counters dotnet-dump; do
		if [[ -x $BUILD/tools/$tool && -d $BUILD/tools/.store/$tool/$DOTNET_TOOLS_VERSION ]]; then
			continue
		fi
		if [[ -e $BUILD/tools/$tool ]]; then
			"$DOTNET" tool uninstall --tool-path "$BUILD/tools" "$tool" >/dev/null 2>&1
		fi
		printf 'dotnet.sh: installing %s %s into %s\n' "$tool" "$DOTNET_TOOLS_VERSION" "$BUILD/tools" >&2
		if ! out=$("$DOTNET" tool install --tool-path "$BUILD/tools" "$tool" \
			--version "$DOTNET_TOOLS_VERSION" 2>&1 </dev/null); then
			_dotnet_err "dotnet tool install $tool $DOTNET_TOOLS_VERSION failed:"
			printf '%s\n' "$out" >&2
			return 1
		fi
	done
}

# counters_reference PID SECONDS OUTFILE [COUNTERS]
# Records the target's counters with dotnet-counters for SECONDS, one sample a
# second, as CSV into OUTFILE (for comparison with the C reader). COUNTERS is
# dotnet-counters' --counters list, e.g.
#   "System.Runtime,CollectdDotnet-Test,CollectdDotnet.Test"
#   'EventCounters\System.Runtime'   (the EventCounters, not the .NET 9+ Meter)
# Without it dotnet-counters records System.Runtime (the Meter on .NET 9+).
# A process serves one Meter (System.Diagnostics.Metrics) session at a time:
# while another tool reads its Meters, dotnet-counters gets "Another metrics
# collection session is already in progress" and this fails. EventCounters
# sessions can run side by side. dotnet-counters' own output: OUTFILE.log.
counters_reference() {
	if (($# < 3)); then
		_dotnet_err "usage: counters_reference PID SECONDS OUTFILE [COUNTERS]"
		return 2
	fi
	local pid=$1 secs=$2 outfile=$3 counters=${4:-} log
	[[ -x $DOTNET_COUNTERS ]] || dotnet_tools_install || return 1
	local -a args=(collect -p "$pid" --refresh-interval 1 --format csv -o "$outfile"
		--duration "$(printf '%02d:%02d:%02d' $((secs / 3600)) $((secs / 60 % 60)) $((secs % 60)))")
	[[ -n $counters ]] && args+=(--counters "$counters")
	log=$outfile.log
	rm -f "$outfile"
	if ! "$DOTNET_COUNTERS" "${args[@]}" </dev/null >"$log" 2>&1; then
		_dotnet_err "dotnet-counters ${args[*]} failed; log $log:"
		tail -n 20 "$log" >&2
		return 1
	fi
	if [[ ! -s $outfile ]]; then
		_dotnet_err "dotnet-counters wrote no $outfile; log $log:"
		tail -n 20 "$log" >&2
		return 1
	fi
}
