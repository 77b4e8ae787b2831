#!/usr/bin/env bash
# tests/integration/security-notify.sh -- which notifications make a dump,
# and notifications during shutdown. Debian's collectd (threshold, unixsock,
# network, python plugins), the dotnet plugin, real .NET 10 targets.
#
#   forged    collectd "test" watches two CounterTargets as instances
#             "local" and "remote" (their gc-heap-size far below the
#             threshold) and a SpikeApp as "spike", with <Dump> (Type mini,
#             MinInterval 600) and the threshold rule WarningMax 500000000 on
#             gc-heap-size. Meanwhile:
#             - unixsock PUTNOTIF into it, naming plugin dotnet, instance
#               "local", type_instance gc-heap-size, severity FAILURE: host
#               "test" (its own), with and without the threshold plugin's
#               meta as strings (PUTNOTIF has only "s:" meta), and without a
#               host;
#             - the same for instance "remote" through the network plugin
#               from a second collectd (Hostname "other", on 127.0.0.1 and a
#               free port): Host "other", and Host "test" spoofed;
#             no dump of "local" nor of "remote" (no file, no "dumping" line,
#             derive-dumps and derive-dump-failures stay 0, while their
#             values keep coming, so the processes were there to dump); the
#             reasons logged, each kind once, however many came;
#             the real threshold notification of SpikeApp's spike still makes
#             a real dump of "spike" (its "dumping" line, an OKAY dump
#             notification, the file).
#   shutdown  a python plugin loaded after dotnet (so its shutdown comes
#             after dotnet's) dispatches notifications shaped like the
#             threshold plugin's for "watched" from its own thread, without
#             pause, from before SIGTERM until its own shutdown: every one
#             goes through the dump worker while dotnet_shutdown frees it.
#             SHUTDOWN_ROUNDS (default 5) rounds; with build/asan present the
#             ASan-built dotnet.so (or SHUTDOWN_SO) is loaded into collectd
#             with libasan preloaded. Each round: collectd exits 0, no sanitizer report,
#             notifications were dispatched during the shutdown.
#   race      the same without chance: a preload library (compiled here)
#             holds the python thread's notification at the callback's first
#             lock after it decided to go to the dump worker, collectd gets
#             SIGTERM, the dotnet plugin shuts down (frees the worker and the
#             watch), then the notification goes on. It must return without
#             a dump, collectd exit 0, no ASan report (43eaee5: heap-use-
#             after-free in watch_lookup). Needs the ASan build.
#
# NOTIFY_CASES="forged" runs only the cases named. Logs stay in
# $BUILD/it/security-notify when a check failed (or NOTIFY_KEEP=1).
set -u
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=tests/lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

IT=$BUILD/it/security-notify
rm -rf "$IT"
mkdir -p "$IT"
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T0=$(_now)
NFAIL0=$(grep -c '^FAIL' "$RESULTS" 2>/dev/null)
THRESHOLD=500000000
SENDER_PID=

cleanup() {
	collectd_stop 10 >/dev/null 2>&1
	if [[ -n $SENDER_PID ]]; then
		kill -TERM "$SENDER_PID" 2>/dev/null
		wait "$SENDER_PID" 2>/dev/null
	fi
	stop_all_targets
	find "$IT" -name '*.dmp' -delete 2>/dev/null
	if (($(grep -c '^FAIL' "$RESULTS" 2>/dev/null) > NFAIL0)) || [[ ${NOTIFY_KEEP:-} == 1 ]]; then
		echo "security-notify.sh: logs kept in $IT" >&2
	else
		rm -rf "$IT"
	fi
}
trap cleanup EXIT

target_path SpikeApp 10 >/dev/null 2>&1 || dotnet_build_targets "SpikeApp:10" >&2 || {
	fail "security-notify: setup" "cannot build SpikeApp for .NET 10"
	exit 1
}
target_path CounterTarget 10 >/dev/null 2>&1 || dotnet_build_targets "CounterTarget:10" >&2 || {
	fail "security-notify: setup" "cannot build CounterTarget for .NET 10"
	exit 1
}

# free_udp_port: a UDP port on 127.0.0.1 that nobody has bound just now
free_udp_port() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

count_in() { grep -cE "$2" "$1"; } # FILE ERE -> count of lines
# rows_ge DIR INSTANCE TYPE-TYPEINSTANCE N: at least N csv rows
rows_ge() { (($(csv_rows "$1" "$2" "$3") >= $4)); }
# count_ge FILE ERE N: at least N lines match
count_ge() { (($(count_in "$1" "$2") >= $3)); }

# ---- forged ----

forged_case() {
	local P=security-notify/forged R=$IT/forged S=$IT/sender port lpid rpid spid
	local dir=$IT/forged/dumps log answers n
	port=$(free_udp_port)
	if ! lpid=$(start_target CounterTarget 10 --seconds 900) ||
		! rpid=$(start_target CounterTarget 10 --seconds 901); then
		fail "$P: setup" "CounterTarget did not start"
		return
	fi
	# the spike comes once collectd watches it, the next only after 10 min
	if ! spid=$(start_target SpikeApp 10 --delay-seconds 8 --spike-seconds 6 --period-seconds 600); then
		fail "$P: setup" "SpikeApp did not start"
		return
	fi
	COLLECTD_PLUGINS="csv logfile threshold unixsock network" collectd_start "$R" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"local\">
    Pid $lpid
  </Process>
  <Process \"remote\">
    Pid $rpid
  </Process>
  <Process \"spike\">
    Pid $spid
  </Process>
  <Dump>
    Directory \"$dir\"
    Type \"mini\"
    MinInterval 600
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax $THRESHOLD
    </Type>
  </Plugin>
</Plugin>
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile \"$R/sock\"
</Plugin>
LoadPlugin network
<Plugin network>
  Listen \"127.0.0.1\" \"$port\"
</Plugin>" || {
		fail "$P: setup" "collectd did not start"
		return
	}
	log=$R/collectd.log
	# the sender: another collectd, Hostname "other", no dotnet plugin
	sender_start "$S" "$port"
	if ! wait_until 20 grep -q 'Initialization complete' "$S/collectd.log"; then
		fail "$P: setup" "the sender collectd did not start"
		return
	fi
	# both are live: values come, so a dump of them could be made
	local inst
	for inst in local remote; do
		if ! wait_until 30 rows_ge "$R" $inst bytes-gc-heap-size 2 || ! wait_until 10 rows_ge "$R" $inst derive-dumps 1; then
			fail "$P: setup" "no values of \"$inst\" within 30 s"
			return
		fi
	done

	# through the network: 5 from "other", 5 spoofing host "test"
	local lines=() i meta
	for i in $(seq 5); do
		lines+=("$(notif_line remote other "network-other-$i")")
		lines+=("$(notif_line remote test "network-spoofed-$i")")
	done
	putnotif "$S/sock" "${lines[@]}" >/dev/null
	if wait_until 20 count_ge "$log" 'host = other, .*message = network-other-' 5 &&
		wait_until 5 count_ge "$log" 'host = test, .*message = network-spoofed-' 5; then
		pass "$P: the network notifications arrived" "5 with host other, 5 with host test"
	else
		fail "$P: the network notifications arrived" "$(count_in "$log" 'message = network-other-') from other, $(count_in "$log" 'message = network-spoofed-') spoofed in $log"
	fi
	# PUTNOTIF into collectd itself: 10 with its own host, 10 with the
	# threshold plugin's meta as strings, 1 without a host
	lines=()
	meta='s:DataSource=value s:CurrentValue=900000000 s:WarningMin=nan s:WarningMax=500000000 s:FailureMin=nan s:FailureMax=nan'
	for i in $(seq 10); do
		lines+=("$(notif_line local test "putnotif-own-host-$i")")
		lines+=("$(notif_line local test "putnotif-string-meta-$i" "$meta")")
	done
	lines+=("$(notif_line local - "putnotif-no-host")")
	answers=$(putnotif "$R/sock" "${lines[@]}")
	n=$(grep -c '^0 Success' <<<"$answers")
	if ((n == ${#lines[@]})); then
		pass "$P: PUTNOTIF accepted by unixsock" "$n notifications"
	else
		fail "$P: PUTNOTIF accepted by unixsock" "$n of ${#lines[@]}: $(sort -u <<<"$answers" | tr '\n' ' ')"
	fi
	# the dump worker and the read have had time to act on them: 3 more reads
	local rows
	rows=$(csv_rows "$R" remote derive-dumps)
	wait_until 20 rows_ge "$R" remote derive-dumps $((rows + 3))

	# the real threshold notification of "spike"
	if wait_until 120 grep -qE "severity = OKAY, .*plugin_instance = spike, type = dump, .*message = dump of pid $spid written: " "$log"; then
		pass "$P: the threshold plugin's notification still makes a dump" \
			"$(grep -m1 -oE "WARNING notification for gc-heap-size: dumping pid $spid \(.*\)" "$log")"
	else
		fail "$P: the threshold plugin's notification still makes a dump" \
			"no OKAY dump notification of pid $spid within 120 s: $(grep -E 'spike.*(dump|no dump)' "$log" | tail -3 | tr '\n' ' ')"
	fi
	if [[ -n $(find "$dir" -maxdepth 1 -name "spike-$spid-*.dmp" -type f) ]]; then
		pass "$P: the dump of \"spike\" is there" "$(find "$dir" -maxdepth 1 -name 'spike-*.dmp' -printf '%f %s bytes\n')"
	else
		fail "$P: the dump of \"spike\" is there" "no spike-$spid-*.dmp in $dir"
	fi
	# both were live all along
	for inst in local remote; do
		rows=$(csv_rows "$R" $inst bytes-gc-heap-size)
		wait_until 10 rows_ge "$R" $inst bytes-gc-heap-size $((rows + 1)) ||
			fail "$P: \"$inst\" still watched" "no new value"
	done
	collectd_stop 10 >/dev/null
	kill -TERM "$SENDER_PID" 2>/dev/null
	wait "$SENDER_PID" 2>/dev/null
	SENDER_PID=

	local files dumping d df how
	for inst in local remote; do
		[[ $inst == local ]] && how="PUTNOTIF" || how="the network plugin"
		files=$(find "$dir" -maxdepth 1 -name "$inst-*" 2>/dev/null | tr '\n' ' ')
		dumping=$(count_in "$log" "instance \"$inst\": .*dumping pid")
		d=$(csv_last "$R" $inst derive-dumps)
		df=$(csv_last "$R" $inst derive-dump-failures)
		if [[ -z $files && $dumping == 0 && $d == 0 && $df == 0 ]]; then
			pass "$P: no dump of \"$inst\" from $how" "no file, no dumping line, derive-dumps $d, derive-dump-failures $df"
		else
			fail "$P: no dump of \"$inst\" from $how" \
				"files: '${files}', $dumping dumping lines ($(grep -m1 "instance \"$inst\": .*dumping pid" "$log")), derive-dumps ${d:-?}, derive-dump-failures ${df:-?}"
		fi
	done
	local host_re shape_re nh ns all
	host_re='instance "(local|remote)": no dump: a notification for gc-heap-size names host "(other)?", not this host \("test"\)'
	shape_re='instance "(local|remote)": no dump: a notification for gc-heap-size \(host "test"\) is not the threshold plugin'"'"'s'
	nh=$(count_in "$log" "$host_re")
	ns=$(count_in "$log" "$shape_re")
	all=$(count_in "$log" 'dotnet plugin: .*no dump: ')
	if ((nh == 1 && ns == 1 && all == 2)); then
		pass "$P: the log says why, once per kind" "$(grep -m1 -oE 'no dump: a notification for gc-heap-size names host.*' "$log" | cut -c1-90)...; $(grep -m1 -oE 'no dump: a notification for gc-heap-size \(host.*' "$log" | cut -c1-90)..."
	else
		fail "$P: the log says why, once per kind" "other host logged ${nh}x, not threshold ${ns}x, $all 'no dump' lines in all (want 1, 1, 2)"
	fi
}

# ---- shutdown ----

SPAM_PY='
import collectd, os, threading, time

cfg = {}
stop = threading.Event()
worker = None

def config(c):
    for ch in c.children:
        cfg[ch.key.lower()] = ch.values[0]

def run():
    while not stop.is_set() and not os.path.exists(cfg["go"]):
        time.sleep(0.02)
    n = 0
    while not stop.is_set():
        collectd.Notification(host="test", plugin="dotnet", plugin_instance=cfg["instance"],
            type="bytes", type_instance="gc-heap-size", severity=collectd.NOTIF_FAILURE,
            message="spam %d" % n, meta={"DataSource": "value", "CurrentValue": 9e8,
            "WarningMin": float("nan"), "WarningMax": 5e8, "FailureMin": float("nan"),
            "FailureMax": float("nan")}).dispatch()
        n += 1
        if not os.path.exists(cfg["go"] + ".logged"):
            time.sleep(0.001)
    collectd.info("spam: %d notifications dispatched" % n)

def init():
    global worker
    worker = threading.Thread(target=run)
    worker.start()

def shutdown():
    collectd.info("spam: shutdown")
    stop.set()
    worker.join()

collectd.register_config(config)
collectd.register_init(init)
collectd.register_shutdown(shutdown)
'

shutdown_case() {
	local P=security-notify/shutdown rounds=${SHUTDOWN_ROUNDS:-5} wpid r R so=$PLUGIN_SO asan= preload=
	if [[ -f ${SHUTDOWN_SO:-$BUILD/asan/.libs/dotnet.so} ]]; then
		so=${SHUTDOWN_SO:-$BUILD/asan/.libs/dotnet.so}
		preload=$(gcc -print-file-name=libasan.so)
		asan=" (ASan dotnet.so, libasan preloaded)"
	fi
	if ! wpid=$(start_target CounterTarget 10 --seconds 900); then
		fail "$P: setup" "CounterTarget did not start"
		return
	fi
	mkdir -p "$IT/py"
	printf '%s' "$SPAM_PY" >"$IT/py/spam.py"
	local ok=0 bad=() exits=() counts=()
	for ((r = 1; r <= rounds; r++)); do
		R=$IT/shutdown-$r
		PLUGIN_SO=$so COLLECTD_PLUGINS="csv logfile python" \
			COLLECTD_WRAPPER="env LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1" \
			collectd_start "$R" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"watched\">
    Pid $wpid
  </Process>
  <Dump>
    Directory \"$R/dumps\"
    Type \"mini\"
    MinInterval 600
  </Dump>
</Plugin>
<LoadPlugin python>
  Globals true
</LoadPlugin>
<Plugin python>
  ModulePath \"$IT/py\"
  Import \"spam\"
  <Module spam>
    Go \"$R/go\"
    Instance \"watched\"
  </Module>
</Plugin>" || {
			bad+=("round $r: collectd did not start")
			continue
		}
		wait_until 30 rows_ge "$R" watched derive-dumps 1
		# one dump is made; every later notification is refused by MinInterval
		# inside the dump worker (a lock and a lookup of it each)
		touch "$R/go"
		wait_until 60 grep -qE 'type = dump, .*message = dump of pid' "$R/collectd.log"
		wait_until 10 grep -q 'no dump: last dump of pid' "$R/collectd.log"
		touch "$R/go.logged" # from here, without pause
		collectd_stop 20 >/dev/null
		exits+=("$COLLECTD_EXIT")
		local spam
		spam=$(sed -nE 's/.*spam: ([0-9]+) notifications dispatched.*/\1/p' "$R/collectd.log")
		counts+=("${spam:-?}")
		if [[ $COLLECTD_EXIT == 0 ]] && ! grep -qE 'AddressSanitizer|runtime error:|Segmentation|Aborted' "$R/stdout.log" "$R/collectd.log" &&
			grep -q 'dotnet plugin: stopped:' "$R/collectd.log" && [[ -n $spam ]] &&
			awk '/dotnet plugin: stopped:/ { s = 1 } s && /spam: shutdown/ { f = 1 } END { exit !f }' "$R/collectd.log"; then
			ok=$((ok + 1))
		else
			bad+=("round $r: exit $COLLECTD_EXIT, $(grep -m1 -E 'AddressSanitizer|runtime error:' "$R/stdout.log" "$R/collectd.log")")
		fi
		find "$R" -name '*.dmp' -delete
	done
	stop_target "$wpid" >/dev/null 2>&1
	if ((ok == rounds)); then
		pass "$P: notifications while dotnet_shutdown frees the worker$asan" \
			"$rounds rounds, collectd exit ${exits[*]}, notifications dispatched per round: ${counts[*]}"
	else
		fail "$P: notifications while dotnet_shutdown frees the worker$asan" "${bad[*]}"
	fi
}

# ---- race: one notification held inside dotnet_notify across the shutdown ----

# A preload library that holds the thread named "cdn-hold" at its first
# pthread_mutex_lock called from dotnet.so (the first frame outside this
# library and libasan), until $HOLD_DIR/release exists; $HOLD_DIR/held says
# it is held. The held call is the callback's first lock after it decided
# to go to the dump worker (43eaee5: the watch's, in watch_lookup; now
# notify_lock).
HOLD_C='
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int (*real_lock)(pthread_mutex_t *);

__attribute__((constructor)) static void hold_init(void) {
  void *f[2];
  backtrace(f, 2); /* loads the unwinder now, not under a lock */
}

static const char *file_of(void *addr) {
  Dl_info di;
  return dladdr(addr, &di) && di.dli_fname ? di.dli_fname : "";
}

static int ends_with(const char *s, const char *t) {
  size_t a = strlen(s), b = strlen(t);
  return a >= b && strcmp(s + a - b, t) == 0;
}

int pthread_mutex_lock(pthread_mutex_t *m) {
  if (real_lock == NULL)
    real_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
  char name[16] = "";
  prctl(PR_GET_NAME, name, 0, 0, 0);
  if (strcmp(name, "cdn-hold") != 0)
    return real_lock(m);
  void *f[16];
  int n = backtrace(f, 16);
  const char *self = file_of((void *)hold_init); /* this library */
  for (int i = 0; i < n; i++) {
    const char *file = file_of(f[i]);
    if (strcmp(file, self) == 0 || strstr(file, "libasan") != NULL)
      continue;
    if (ends_with(file, "/dotnet.so")) {
      const char *dir = getenv("HOLD_DIR");
      char held[4096], release[4096];
      snprintf(held, sizeof(held), "%s/held", dir);
      snprintf(release, sizeof(release), "%s/release", dir);
      prctl(PR_SET_NAME, "cdn-held", 0, 0, 0);
      close(open(held, O_WRONLY | O_CREAT, 0600));
      for (int k = 0; k < 3000 && access(release, F_OK) != 0; k++)
        usleep(10000);
    }
    break;
  }
  return real_lock(m);
}
'

HOLD_PY='
import collectd, ctypes, os, threading, time

cfg = {}
worker = None
libc = ctypes.CDLL(None)

def config(c):
    for ch in c.children:
        cfg[ch.key.lower()] = ch.values[0]

def run():
    while not os.path.exists(cfg["go"]):
        time.sleep(0.02)
    libc.prctl(15, b"cdn-hold", 0, 0, 0)  # PR_SET_NAME: this thread
    collectd.Notification(host="test", plugin="dotnet", plugin_instance=cfg["instance"],
        type="bytes", type_instance="gc-heap-size", severity=collectd.NOTIF_FAILURE,
        message="held", meta={"DataSource": "value", "CurrentValue": 9e8,
        "WarningMin": float("nan"), "WarningMax": 5e8, "FailureMin": float("nan"),
        "FailureMax": float("nan")}).dispatch()
    libc.prctl(15, b"cdn-done", 0, 0, 0)
    collectd.info("hold: dispatched")

def init():
    global worker
    worker = threading.Thread(target=run)
    worker.start()

def shutdown():
    collectd.info("hold: shutdown")
    with open(cfg["go"], "w"):
        pass
    worker.join()

collectd.register_config(config)
collectd.register_init(init)
collectd.register_shutdown(shutdown)
'

race_case() {
	local P=security-notify/race R=$IT/race so=${SHUTDOWN_SO:-$BUILD/asan/.libs/dotnet.so} wpid libasan
	if [[ ! -f $so ]]; then
		fail "$P: setup" "no ASan build of dotnet.so at $so (tests/run unit makes it)"
		return
	fi
	libasan=$(gcc -print-file-name=libasan.so)
	mkdir -p "$R/py"
	printf '%s' "$HOLD_C" >"$R/hold.c"
	printf '%s' "$HOLD_PY" >"$R/py/hold.py"
	if ! gcc -shared -fPIC -O1 -Wall -Werror -o "$R/hold.so" "$R/hold.c" -ldl 2>"$R/hold.log"; then
		fail "$P: setup" "cannot build the hold library: $(head -3 "$R/hold.log")"
		return
	fi
	if ! wpid=$(start_target CounterTarget 10 --seconds 900); then
		fail "$P: setup" "CounterTarget did not start"
		return
	fi
	PLUGIN_SO=$so COLLECTD_PLUGINS="csv logfile python" \
		COLLECTD_WRAPPER="env HOLD_DIR=$R LD_PRELOAD=$libasan:$R/hold.so ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1" \
		collectd_start "$R/c" "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"watched\">
    Pid $wpid
  </Process>
  <Dump>
    Directory \"$R/dumps\"
    Type \"mini\"
  </Dump>
</Plugin>
<LoadPlugin python>
  Globals true
</LoadPlugin>
<Plugin python>
  ModulePath \"$R/py\"
  Import \"hold\"
  <Module hold>
    Go \"$R/go\"
    Instance \"watched\"
  </Module>
</Plugin>" || {
		fail "$P: setup" "collectd did not start"
		return
	}
	local log=$R/c/collectd.log pid=$COLLECTD_PID held=no
	wait_until 30 rows_ge "$R/c" watched bytes-gc-heap-size 1 ||
		fail "$P: setup" "no value of \"watched\" within 30 s"
	touch "$R/go"
	wait_until 20 test -e "$R/held" && held=yes
	# collectd stops while the notification is held: dotnet_shutdown, then
	# the python plugin's shutdown, which waits for the held thread
	kill -TERM "$pid"
	wait_until 20 grep -q 'hold: shutdown' "$log"
	touch "$R/release"
	collectd_stop 20 >/dev/null
	local report
	report=$(grep -m1 -E 'ERROR: AddressSanitizer: [a-z-]+|runtime error:' "$R/c/stdout.log")
	if [[ $held == yes && $COLLECTD_EXIT == 0 && -z $report ]] && grep -q 'dotnet plugin: stopped:' "$log" &&
		grep -q 'hold: dispatched' "$log" && [[ -z $(find "$R/dumps" -name '*.dmp' 2>/dev/null) ]]; then
		pass "$P: a notification held across dotnet_shutdown" \
			"held in the callback's first lock while the plugin stopped; then it returned, no dump, collectd exit 0, no ASan report"
	else
		fail "$P: a notification held across dotnet_shutdown" \
			"held $held, collectd exit $COLLECTD_EXIT, ${report:-no sanitizer report}$(grep -q 'hold: dispatched' "$log" || echo ', the callback never returned')"
	fi
	stop_target "$wpid" >/dev/null 2>&1
}

want_case() { [[ -z ${NOTIFY_CASES:-} || " $NOTIFY_CASES " == *" $1 "* ]]; }
want_case forged && forged_case
want_case shutdown && shutdown_case
want_case race && race_case

awk -v a="$T0" -v b="$(_now)" 'BEGIN { printf "security-notify.sh: %.0f s\n", b - a }'
