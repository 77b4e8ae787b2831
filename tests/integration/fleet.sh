#!/usr/bin/env bash
# tests/integration/fleet.sh -- a fleet: agents on several hosts send the
# dotnet plugin's values with collectd's own network plugin, signed
# (SecurityLevel Sign, HMAC-SHA-256), to a central collectd that writes them
# to Prometheus (write_prometheus, scraped by Debian's prometheus).
#
# The hosts are network namespaces this script makes, joined by veth pairs to
# a bridge in the central one, on 10.213.0.0/24; no namespace has a route
# anywhere else, and the machine's own namespace gets no address, link or
# route:
#   central   10.213.0.1 on br0: collectd with the network plugin's
#             <Listen> (SecurityLevel Sign, AuthFile: agent1 and agent2) and
#             write_prometheus on 127.0.0.1:9103; prometheus on
#             127.0.0.1:9090 scraping it every 1 s with honor_labels
#   agent1    10.213.0.11: collectd Hostname "agent1", the dotnet plugin
#             watching its own CounterTarget (.NET 10, --heap-mb 64,
#             16 MiB/s allocated) by Pid, sending signed as user agent1
#   agent2    10.213.0.12: the same with Hostname "agent2", user agent2, its
#             own CounterTarget (--heap-mb 192, 8 MiB/s)
#   intruder  10.213.0.66: collectd Hostname "intruder" watching agent2's
#             process, sending three ways the central one must refuse: signed
#             as agent2 with a wrong password, signed as a user the AuthFile
#             lacks, and unsigned
# The targets run in the machine's namespaces: the plugin reaches their
# diagnostic sockets (unix sockets: files, not network) from any network
# namespace. "ip netns exec" also gives each collectd a mount namespace of
# its own, so every process on the machine is in a foreign one to the plugin
# (its TMPDIR read through /proc/<pid>/root): hundreds of directories, and
# processes ending or turning zombie among them, while the agents run.
# Checks:
#   hosts        gc-heap-size in Prometheus (instance label = the agent's
#                Hostname): exactly agent1 and agent2, each in its own
#                target's range (agent1 64 MiB of live arrays, agent2 192 MiB)
#   counters     all 27 System.Runtime counters of both hosts in Prometheus
#   alloc-rate   rate() of each host's alloc-rate: its own target's rate
#   = csv        every sample Prometheus stored for a host's gc-heap-size
#                equals the agent's own csv row of that timestamp: values and
#                times cross the network unchanged
#   dashboard    the host variable query of contrib/dashboards/
#                dotnet-prometheus.json offers agent1 and agent2 (and nothing
#                else); check.sh with host=agent1, then agent2: every variable
#                and panel query returns that host's series (its dump
#                annotation has nothing to mark: no dump is made here)
#   refused      no series of host "intruder" ever, in Prometheus or in
#                write_prometheus' /metrics, though the intruder collected
#                (its csv) and sent (the central log names each refusal: hash
#                mismatch for agent2, unknown user, unsigned packet)
#   cleanup      namespaces (and with them the bridge and veths), collectd,
#                prometheus and targets are gone after the run, after a run
#                that fails half way (FLEET_SELFTEST=fail) and after SIGTERM
#                (FLEET_SELFTEST=term): the network namespaces themselves,
#                not only their names (no process is left in them)
#
# Run by tests/run; alone:
#   REPO=... BUILD=... PLUGIN_SO=... RESULTS=... bash tests/integration/fleet.sh
# Needs root (network namespaces), iproute2, Debian's prometheus, curl,
# network.so (with libgcrypt) and write_prometheus.so, and CounterTarget:10
# built. A SKIP only where no network namespace can be made at all (no
# privilege for it); anything else missing is a FAIL naming it. Logs,
# configs and data stay in $BUILD/it/fleet. About 45 s.
set -u
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

T=fleet
SELFTEST=${FLEET_SELFTEST:-} # fail | term: the cleanup checks (below)
IT=$BUILD/it/fleet${SELFTEST:+-selftest-$SELFTEST}
rm -rf "$IT"
mkdir -p "$IT"
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T_BEGIN=$(date +%s)
NET=10.213.0          # the /24 inside the namespaces
CENTRAL_IP=$NET.1
PORT=25826            # the network plugin's default
WP_PORT=9103          # write_prometheus, in the central namespace
PROM_PORT=9090        # prometheus, in the central namespace
HEAP1=64 HEAP2=192    # MiB of live arrays in agent1's and agent2's targets
ALLOC1=16 ALLOC2=8    # MiB/s they allocate
PW1="agent1-$$-$RANDOM" PW2="agent2-$$-$RANDOM"
MARK=900.$$           # CounterTarget --seconds: ends by itself
NSP=cdnfleet$$        # namespace names: $NSP-central, $NSP-agent1, ...
STATE=$IT/state       # what it made: "ns NAME INODE", "pid PID START-TIME"
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
NAMESPACES=() PIDS=()
: >"$STATE"

log() { printf '   %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.1f", b - a }'; }
ns() { printf '%s-%s\n' "$NSP" "$1"; }

# stop_pid PID: SIGTERM a process this script started, SIGKILL after 15 s
stop_pid() {
	local pid=$1
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	wait_until 15 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# Everything this run made, in reverse: the processes in the namespaces
# (collectd, prometheus), the targets, then each namespace: a process still
# in one (one this script started there and lost track of) is killed first,
# so that deleting its name ends the namespace, and with it its links.
cleanup() {
	local i n p
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
	PIDS=()
	stop_all_targets >/dev/null 2>&1
	for n in "${NAMESPACES[@]}"; do
		for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$n" 2>/dev/null
	done
	NAMESPACES=()
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# made_pid PID: note a process this run started (pid and start time)
made_pid() { printf 'pid %s %s\n' "$1" "$(_dotnet_proc_start "$1")" >>"$STATE"; }

# left_over STATE: what of a run's namespaces and processes is still there
# (empty output: nothing). A namespace counts while its name exists or any
# process is in it (its inode in /proc/*/ns/net); a process while it runs
# (not a zombie: a target's parent was a $(...) subshell, so init reaps it)
# with the start time noted (not a later one with its pid).
left_over() {
	local kind a b p
	local -A inodes=()
	while read -r kind a b; do
		case $kind in
		ns)
			[[ -e /run/netns/$a ]] && printf 'namespace %s ' "$a"
			inodes[$b]=$a
			;;
		pid)
			target_alive "$a" && [[ $(_dotnet_proc_start "$a") == "$b" ]] &&
				printf 'pid %s (%s) ' "$a" "$(tr -d '\0' <"/proc/$a/comm" 2>/dev/null)"
			;;
		esac
	done <"$1"
	for p in /proc/[0-9]*/ns/net; do
		b=$(readlink "$p" 2>/dev/null) || continue
		b=${b#net:[}
		b=${b%]}
		[[ -n ${inodes[$b]:-} ]] && printf 'a process (%s) in %s ' "${p//[^0-9]/}" "${inodes[$b]}"
	done
}

# ---------------------------------------------------------------- needs

# Can this machine make a network namespace at all? Only that is a SKIP.
if ! unshare --net true 2>/dev/null; then
	skip "$T: namespaces" "no network namespace can be made here ($(id -un), unshare --net: $(unshare --net true 2>&1 | head -1))"
	exit 0
fi
missing=()
for c in ip prometheus curl collectd; do
	command -v "$c" >/dev/null || missing+=("$c")
done
for p in network write_prometheus csv logfile; do
	if [[ ! -f /usr/lib/collectd/$p.so ]]; then
		missing+=("/usr/lib/collectd/$p.so")
	elif ldd "/usr/lib/collectd/$p.so" | grep -q 'not found'; then
		missing+=("$p.so's libraries: $(ldd "/usr/lib/collectd/$p.so" | awk '/not found/ { printf "%s ", $1 }')")
	fi
done
ldd /usr/lib/collectd/network.so 2>/dev/null | grep -q libgcrypt ||
	missing+=("network.so linked with libgcrypt (SecurityLevel Sign)")
target_cmd -v CTR_CMD CounterTarget 10 >/dev/null 2>&1 || missing+=("CounterTarget for .NET 10 (dotnet_build_targets)")
if ((${#missing[@]})); then
	fail "$T: needs" "missing ${missing[*]} (Debian: iproute2 prometheus curl collectd-core libprotobuf-c1 libmicrohttpd12)"
	exit 0
fi

# ---------------------------------------------------------------- the network

# ns_add NAME: a namespace with its loopback up
ns_add() {
	local n
	n=$(ns "$1")
	ip netns add "$n" || return 1
	NAMESPACES+=("$n")
	printf 'ns %s %s\n' "$n" "$(stat -L -c %i "/run/netns/$n")" >>"$STATE"
	ip -n "$n" link set lo up
}

# ns_join NAME ADDR: a veth pair made in place (eth0 in NAME, v-NAME in the
# central namespace, on its bridge); ADDR/24 on eth0. No route but the /24.
ns_join() {
	local n c
	n=$(ns "$1") c=$(ns central)
	ip link add eth0 netns "$n" type veth peer name "v-$1" netns "$c" &&
		ip -n "$c" link set "v-$1" master br0 up &&
		ip -n "$n" addr add "$2/24" dev eth0 &&
		ip -n "$n" link set eth0 up
}

setup_network() {
	ns_add central || return 1
	ip -n "$(ns central)" link add br0 type bridge &&
		ip -n "$(ns central)" addr add "$CENTRAL_IP/24" dev br0 &&
		ip -n "$(ns central)" link set br0 up || return 1
	ns_add agent1 && ns_join agent1 "$NET.11" || return 1
	ns_add agent2 && ns_join agent2 "$NET.12" || return 1
	ns_add intruder && ns_join intruder "$NET.66" || return 1
}

t0=$(_now)
if ! setup_network 2>"$IT/network.err"; then
	# unshare --net worked above: namespaces can be made, so this is a failure
	fail "$T: network" "making the namespaces failed: $(tr '\n' ' ' <"$IT/network.err")"
	exit 0
fi
if ((${#NAMESPACES[@]} != 4)) || ! ip -n "$(ns agent1)" -4 route | grep -q "^$NET.0/24 dev eth0"; then
	fail "$T: network" "expected 4 namespaces (${NAMESPACES[*]}) and a /24 route in agent1"
	exit 0
fi
routes=$(for n in "${NAMESPACES[@]}"; do ip -n "$n" -4 route; done | grep -v "^$NET.0/24 ")
if [[ -z $routes ]]; then
	[[ -n $SELFTEST ]] || pass "$T: network" "namespaces central (bridge br0, $CENTRAL_IP), agent1 .11, agent2 .12, intruder .66 in $NET.0/24, no other route; $(elapsed "$t0") s"
else
	fail "$T: network" "unexpected routes: $(tr '\n' ' ' <<<"$routes")"
	exit 0
fi

# ---------------------------------------------------------------- collectd per host

# ns_collectd NAME HOSTNAME DIR BODY: collectd with collectd_config's header
# (PluginDir of copies, logfile, csv, Interval 1) but Hostname HOSTNAME, run
# with "ip netns exec" (which execs: $! is collectd) in namespace NAME; sets
# NS_PID
ns_collectd() {
	local name=$1 host=$2 dir=$3 body=$4
	collectd_config "$dir" "$body"
	sed -i "s/^Hostname \"test\"$/Hostname \"$host\"/" "$dir/collectd.conf"
	grep -qx "Hostname \"$host\"" "$dir/collectd.conf" || { echo "no Hostname $host in $dir/collectd.conf" >&2; return 1; }
	ip netns exec "$(ns "$name")" collectd -f -C "$dir/collectd.conf" >"$dir/stdout.log" 2>&1 &
	NS_PID=$!
	PIDS+=("$NS_PID")
	made_pid "$NS_PID"
	collectd_started "$dir" "$NS_PID" "collectd ($name)"
}

# agent_body PID SERVER-BLOCKS...: the dotnet plugin watching PID alone, and
# the network plugin sending to the central collectd
agent_body() {
	local pid=$1
	shift
	printf '%s\n' "LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"app\">
    Pid $pid
  </Process>
</Plugin>
LoadPlugin network
<Plugin network>"
	printf '%s\n' "$@"
	printf '%s\n' "</Plugin>"
}

# server_block USER PASSWORD: a signed <Server> to the central collectd
server_block() {
	printf '  <Server "%s" "%s">\n    SecurityLevel Sign\n    Username "%s"\n    Password "%s"\n  </Server>' \
		"$CENTRAL_IP" "$PORT" "$1" "$2"
}

# the targets
T1=$(start_target CounterTarget 10 --seconds "$MARK" --heap-mb "$HEAP1" --alloc-mb-per-sec "$ALLOC1") ||
	{ fail "$T: targets" "CounterTarget (agent1) did not start"; exit 0; }
made_pid "$T1"
if [[ -z $SELFTEST ]]; then
	T2=$(start_target CounterTarget 10 --seconds "$MARK" --heap-mb "$HEAP2" --alloc-mb-per-sec "$ALLOC2") ||
		{ fail "$T: targets" "CounterTarget (agent2) did not start"; exit 0; }
	made_pid "$T2"
	log "targets: agent1's pid $T1 (--heap-mb $HEAP1), agent2's pid $T2 (--heap-mb $HEAP2)"
fi

# the central collectd: the users the AuthFile lists, and nothing else
mkdir -p "$IT/central"
printf 'agent1: %s\nagent2: %s\n' "$PW1" "$PW2" >"$IT/central/auth"
chmod 0600 "$IT/central/auth"
if ! COLLECTD_CSV=0 COLLECTD_PLUGINS="logfile network write_prometheus" ns_collectd central central "$IT/central" "
LoadPlugin network
<Plugin network>
  <Listen \"$CENTRAL_IP\" \"$PORT\">
    SecurityLevel Sign
    AuthFile \"$IT/central/auth\"
  </Listen>
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host \"127.0.0.1\"
  Port \"$WP_PORT\"
</Plugin>"; then
	fail "$T: central collectd" "did not start; see $IT/central/collectd.log"
	exit 0
fi
CENTRAL_PID=$NS_PID

COLLECTD_PLUGINS="csv logfile network"
if ! ns_collectd agent1 agent1 "$IT/agent1" "$(agent_body "$T1" "$(server_block agent1 "$PW1")")"; then
	fail "$T: agent1 collectd" "did not start; see $IT/agent1/collectd.log"
	exit 0
fi
A1_PID=$NS_PID

# ---------------------------------------------------------------- the cleanup self-tests

# FLEET_SELFTEST: the run above (network, a target, central and agent1
# collectd) ends here, by a failure or by SIGTERM; the parent run (below)
# checks that its trap removed everything STATE names
if [[ $SELFTEST == fail ]]; then
	echo "selftest: failing on purpose" >&2
	exit 1
elif [[ $SELFTEST == term ]]; then
	echo HELD >>"$STATE"
	wait_until 120 false
	exit 0
fi

if ! ns_collectd agent2 agent2 "$IT/agent2" "$(agent_body "$T2" "$(server_block agent2 "$PW2")")"; then
	fail "$T: agent2 collectd" "did not start; see $IT/agent2/collectd.log"
	exit 0
fi
A2_PID=$NS_PID
# the intruder: agent2's user with a wrong password, a user the AuthFile
# lacks, and no signature at all
if ! ns_collectd intruder intruder "$IT/intruder" "$(agent_body "$T2" \
	"$(server_block agent2 "not-$PW2")" "$(server_block intruder "$PW2")" \
	"  <Server \"$CENTRAL_IP\" \"$PORT\">
    SecurityLevel None
  </Server>")"; then
	fail "$T: intruder collectd" "did not start; see $IT/intruder/collectd.log"
	exit 0
fi
X_PID=$NS_PID

# ---------------------------------------------------------------- prometheus

mkdir -p "$IT/prometheus/data"
cat >"$IT/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: collectd
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$WP_PORT']
EOF
PROM=http://127.0.0.1:$PROM_PORT
# curl and check.sh reach prometheus inside the central namespace
in_central() { ip netns exec "$(ns central)" "$@"; }
http_ok() { in_central curl -fsS -m 5 -o /dev/null "$1" 2>/dev/null; }
t0=$(_now)
ip netns exec "$(ns central)" prometheus --config.file="$IT/prometheus/prometheus.yml" \
	--storage.tsdb.path="$IT/prometheus/data" \
	--web.listen-address="127.0.0.1:$PROM_PORT" \
	--storage.tsdb.retention.time=1d >"$IT/prometheus/prometheus.log" 2>&1 &
PROM_PID=$!
PIDS+=("$PROM_PID")
made_pid "$PROM_PID"
if wait_until 60 http_ok "$PROM/-/ready"; then
	pass "$T: prometheus up" "$(dpkg-query -W -f='prometheus ${Version}' prometheus 2>/dev/null), in the central namespace, ready after $(elapsed "$t0") s"
else
	fail "$T: prometheus up" "not ready after 60 s; $(tail -3 "$IT/prometheus/prometheus.log" | tr '\n' ' ')"
	exit 0
fi

promq() { # PATH ARGS... (curl --data-urlencode pairs) -> JSON on stdout
	local p=$1
	shift
	local a=() kv
	for kv in "$@"; do a+=(--data-urlencode "$kv"); done
	in_central curl -fsS -m 20 -G "${a[@]}" "$PROM$p"
}

# ---------------------------------------------------------------- collect

# until Prometheus holds >= 20 samples of gc-heap-size from each agent
enough() {
	promq /api/v1/query 'query=count_over_time(collectd_dotnet_bytes{type="gc-heap-size"}[5m])' 2>/dev/null |
		"$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
n = {s["metric"].get("instance"): float(s["value"][1]) for s in r}
sys.exit(0 if n.get("agent1", 0) >= 20 and n.get("agent2", 0) >= 20 else 1)'
}
t0=$(_now)
if wait_until 120 enough; then
	log "collected for $(elapsed "$t0") s: >= 20 samples of each agent in Prometheus"
else
	log "not 20 samples of each agent after $(elapsed "$t0") s"
fi
T_END=$(date +%s)

# ---------------------------------------------------------------- checks: values

if out=$(promq /api/v1/query 'query=collectd_dotnet_bytes{type="gc-heap-size"}' "time=$T_END" | "$PY" -c '
import json, sys
h1, h2 = float(sys.argv[1]) * 2**20, float(sys.argv[2]) * 2**20
r = json.load(sys.stdin)["data"]["result"]
got = {(s["metric"].get("instance"), s["metric"].get("dotnet")): float(s["value"][1]) for s in r}
print(", ".join("%s/%s %.1f MB" % (k[0], k[1], v / 1e6) for k, v in sorted(got.items())))
a1, a2 = got.get(("agent1", "app"), 0), got.get(("agent2", "app"), 0)
sys.exit(0 if set(got) == {("agent1", "app"), ("agent2", "app")}
         and h1 <= a1 < h2 and h2 <= a2 < 4 * h2 else 1)' "$HEAP1" "$HEAP2"); then
	pass "$T: both hosts in Prometheus" "collectd_dotnet_bytes{type=\"gc-heap-size\"}: $out (agent1 >= $HEAP1 MiB and below agent2's $HEAP2 MiB, agent2 >= $HEAP2 MiB)"
else
	fail "$T: both hosts in Prometheus" "${out:-no answer}; expected exactly agent1/app in [$HEAP1, $HEAP2) MiB and agent2/app >= $HEAP2 MiB"
fi

# every System.Runtime counter (TYPE-NAME, as in plugin.sh and stacks.sh)
COUNTERS=(
	percent-cpu-usage bytes-working-set bytes-gc-heap-size
	derive-gen-0-gc-count derive-gen-1-gc-count derive-gen-2-gc-count
	gauge-threadpool-thread-count derive-monitor-lock-contention-count
	gauge-threadpool-queue-length derive-threadpool-completed-items-count
	total_bytes-alloc-rate gauge-active-timer-count percent-gc-fragmentation
	bytes-gc-committed derive-exception-count percent-time-in-gc
	total_time_in_ms-total-pause-time-by-gc bytes-gen-0-gc-budget
	bytes-gen-0-size bytes-gen-1-size bytes-gen-2-size bytes-loh-size
	bytes-poh-size gauge-assembly-count bytes-il-bytes-jitted
	gauge-methods-jitted-count total_time_in_ms-time-in-jit
)
if out=$(promq /api/v1/query 'query={__name__=~"collectd_dotnet_.+", dotnet="app"}' "time=$T_END" | "$PY" -c '
import json, sys
fam = lambda t: "collectd_dotnet_" + t + ("_total" if t in ("derive", "total_bytes", "total_time_in_ms") else "")
want = [(fam(c.split("-", 1)[0]), c.split("-", 1)[1]) for c in sys.argv[1:]]
r = json.load(sys.stdin)["data"]["result"]
have = {(s["metric"].get("instance"), s["metric"]["__name__"], s["metric"].get("type")) for s in r}
bad = ["%s %s{type=%s}" % (h, n, t) for h in ("agent1", "agent2") for n, t in want if (h, n, t) not in have]
print("%d series; missing: %s" % (len(r), " ".join(bad) or "none"))
sys.exit(1 if bad else 0)' "${COUNTERS[@]}"); then
	pass "$T: every counter of both hosts" "all ${#COUNTERS[@]} System.Runtime counters with instance=agent1 and instance=agent2 ($out)"
else
	fail "$T: every counter of both hosts" "${out:-no answer}"
fi

# alloc-rate: each host's own target's rate (the runtime's running total,
# DERIVE, through rate()); +-20 %
if out=$(promq /api/v1/query 'query=rate(collectd_dotnet_total_bytes_total{type="alloc-rate"}[20s])' "time=$T_END" | "$PY" -c '
import json, sys
want = {"agent1": float(sys.argv[1]) * 2**20, "agent2": float(sys.argv[2]) * 2**20}
r = json.load(sys.stdin)["data"]["result"]
got = {s["metric"].get("instance"): float(s["value"][1]) for s in r}
print(", ".join("%s %.2f MB/s (its target: %.2f)" % (h, got.get(h, float("nan")) / 1e6, w / 1e6) for h, w in sorted(want.items())))
sys.exit(0 if set(got) == set(want) and all(0.8 * w <= got[h] <= 1.2 * w for h, w in want.items()) else 1)' "$ALLOC1" "$ALLOC2"); then
	pass "$T: alloc-rate per host" "rate(...alloc-rate[20s]): $out, +-20 %"
else
	fail "$T: alloc-rate per host" "${out:-no answer}"
fi

# every sample Prometheus stored for a host = that agent's own csv row with
# the same timestamp (ms)
for h in agent1 agent2; do
	if f=$(csv_file "$IT/$h" app bytes-gc-heap-size) &&
		out=$(promq /api/v1/query "query=collectd_dotnet_bytes{instance=\"$h\",dotnet=\"app\",type=\"gc-heap-size\"}[5m]" "time=$T_END" |
			"$PY" -c '
import json, sys
rows = {}
for line in list(open(sys.argv[1]))[1:]:
    t, v = line.strip().split(",")[:2]
    rows[round(float(t) * 1000)] = float(v)
r = json.load(sys.stdin)["data"]["result"]
pts = [(round(float(t) * 1000), float(v)) for t, v in r[0]["values"]] if len(r) == 1 else []
good = sum(1 for t, v in pts if t in rows and abs(rows[t] - v) <= 1e-6 * abs(v) + 1e-6)
print("%d of %d stored samples equal %s csv row of their timestamp (%d rows)" % (good, len(pts), sys.argv[2], len(rows)))
sys.exit(0 if len(pts) >= 15 and good == len(pts) else 1)' "$f" "$h's"); then
		pass "$T: Prometheus = $h's csv (gc-heap-size)" "$out"
	else
		fail "$T: Prometheus = $h's csv (gc-heap-size)" "${out:-no answer or no csv file under $IT/$h/csv}"
	fi
done

# ---------------------------------------------------------------- checks: the dashboard

DASH=$REPO/contrib/dashboards/dotnet-prometheus.json
HOSTQ=$("$PY" -c '
import json, re, sys
v = [v for v in json.load(open(sys.argv[1]))["templating"]["list"] if v["name"] == "host"][0]
q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q, re.S)
print(m.group(1) + "\t" + m.group(2))' "$DASH" 2>/dev/null)
if [[ -n $HOSTQ ]] && out=$(promq /api/v1/series "match[]=${HOSTQ%%$'\t'*}" "start=$T_BEGIN" "end=$T_END" |
	"$PY" -c '
import json, sys
vals = sorted({s[sys.argv[1]] for s in json.load(sys.stdin)["data"] if sys.argv[1] in s})
print(vals)
sys.exit(0 if vals == ["agent1", "agent2"] else 1)' "${HOSTQ#*$'\t'}"); then
	pass "$T: dashboard host variable" "label_values(${HOSTQ%%$'\t'*}, ${HOSTQ#*$'\t'}) offers $out"
else
	fail "$T: dashboard host variable" "label_values(${HOSTQ%%$'\t'*}, ${HOSTQ#*$'\t'}) offers ${out:-nothing}, expected ['agent1', 'agent2']"
fi

# check.sh against the live Prometheus, one host at a time. No dump is made
# here, so the dump annotation (instance=All) marks nothing: the one FAIL
# check.sh is expected to print, and the only one accepted
for h in agent1 agent2; do
	in_central bash "$REPO/contrib/dashboards/check.sh" --prometheus-url "$PROM" \
		--prometheus-dashboard "$DASH" --var "host=$h" --expect app \
		--from "$((T_END - 60))" --until "$T_END" --rate-interval 20s \
		--report "$IT/dashboard-$h.json" >"$IT/dashboard-$h.log" 2>&1
	rc=$?
	others=$(grep '^FAIL' "$IT/dashboard-$h.log" | grep -v '^FAIL prometheus annotation "dump written" \[All\]: .* no finite value$')
	npanel=$(grep -c '^ok   prometheus panel' "$IT/dashboard-$h.log")
	# every series the panels returned is this host's
	hosts=$("$PY" -c '
import json, sys
print(" ".join(sorted({s["labels"].get("instance", "-") for r in json.load(open(sys.argv[1]))
    if r["kind"] == "panel" for s in r["series"] if "dotnet" in s["labels"]})))' "$IT/dashboard-$h.json" 2>/dev/null)
	if ((rc <= 1 && npanel > 0)) && [[ -z $others && $hosts == "$h" ]] && grep -q '^check.sh: ' "$IT/dashboard-$h.log"; then
		pass "$T: dashboard with host=$h" "check.sh: $npanel panel queries (instance=All and app) return series, all of host $h; $(grep '^check.sh: ' "$IT/dashboard-$h.log" | sed 's/^check.sh: //') (the dump annotation: no dump here)"
	else
		fail "$T: dashboard with host=$h" "exit $rc, $npanel panels ok, series of hosts '$hosts': $(head -3 <<<"$others" | tr '\n' ' ') (see $IT/dashboard-$h.log)"
	fi
done

# ---------------------------------------------------------------- checks: the intruder

in_central curl -fsS -m 10 "http://127.0.0.1:$WP_PORT/metrics" >"$IT/metrics.txt" 2>/dev/null || true
inprom=$(promq /api/v1/series 'match[]={instance="intruder"}' "start=$T_BEGIN" "end=$T_END" |
	"$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["data"]))' 2>/dev/null)
inmetrics=$(grep -c 'instance="intruder"' "$IT/metrics.txt")
nmetrics=$(grep -c 'instance="agent[12]"' "$IT/metrics.txt")
sent=$(csv_rows "$IT/intruder" app bytes-gc-heap-size)
CLOG=$IT/central/collectd.log
mismatch=$(grep -c 'Verifying HMAC-SHA-256 signature failed: Hash mismatch. Username: agent2' "$CLOG")
unknown=$(grep -c 'Unknown user: intruder' "$CLOG")
unsigned=$(grep -c 'Unsigned packet or part has been ignored' "$CLOG")
if [[ $inprom == 0 && $inmetrics == 0 ]] && ((nmetrics > 0 && sent >= 20 && mismatch > 0)); then
	pass "$T: wrong password refused" "no series of host intruder in Prometheus or /metrics ($nmetrics lines of agent1/agent2 there), though it collected $sent rows of gc-heap-size; the central log: $mismatch x 'Hash mismatch. Username: agent2'"
else
	fail "$T: wrong password refused" "series of intruder: Prometheus ${inprom:-?}, /metrics $inmetrics (agents: $nmetrics); intruder's csv rows $sent; 'Hash mismatch' lines $mismatch"
fi
if [[ $inprom == 0 ]] && ((unknown > 0)); then
	pass "$T: unknown user refused" "$unknown x 'Unknown user: intruder' in the central log"
else
	fail "$T: unknown user refused" "'Unknown user: intruder' lines: $unknown; intruder series: ${inprom:-?}"
fi
if [[ $inprom == 0 ]] && ((unsigned > 0)); then
	pass "$T: unsigned packets refused" "'Unsigned packet or part has been ignored' in the central log (logged once)"
else
	fail "$T: unsigned packets refused" "no 'Unsigned packet or part has been ignored' in $CLOG; intruder series: ${inprom:-?}"
fi

# ---------------------------------------------------------------- checks: logs, cleanup

# every collectd still runs; each agent watched its own process only, and
# logged no error; the central one logged none but the refusals and
# Debian's write_prometheus warning about the order of libmicrohttpd's
# options
bad=()
for p in central:$CENTRAL_PID agent1:$A1_PID agent2:$A2_PID intruder:$X_PID; do
	target_alive "${p#*:}" || bad+=("${p%%:*}'s collectd (pid ${p#*:}) is gone")
done
for h in agent1 agent2; do
	e=$(grep '\[error\]' "$IT/$h/collectd.log" | head -2)
	[[ -z $e ]] || bad+=("$h: $e")
	n=$(find "$IT/$h/csv" -mindepth 2 -maxdepth 2 -type d | wc -l)
	((n == 1)) || bad+=("$h: $n plugin instance directories in its csv")
done
e=$(grep '\[error\]' "$CLOG" | grep -v -e 'Unknown user: intruder' \
	-e 'Verifying HMAC-SHA-256 signature failed with status -2' \
	-e 'write_prometheus plugin: MHD_OPTION_EXTERNAL_LOGGER is not the first option' | head -2)
[[ -z $e ]] || bad+=("central: $e")
if ((${#bad[@]} == 0)); then
	pass "$T: logs" "all four collectd still running; agents: one plugin instance each, no error; central: no error but the refusals"
else
	fail "$T: logs" "${bad[*]}"
fi

cleanup
if [[ -z $(left_over "$STATE") ]]; then
	pass "$T: cleanup" "$(grep -c '^ns ' "$STATE") namespaces gone (no name, no process in them), $(grep -c '^pid ' "$STATE") processes ended"
else
	fail "$T: cleanup" "left: $(left_over "$STATE")"
fi

# the trap, when a run fails half way and when it gets SIGTERM: a run of this
# script that makes the namespaces, starts a target, the central collectd and
# agent1's, and then fails (exit 1) or waits to be killed
for mode in fail term; do
	d=$BUILD/it/fleet-selftest-$mode
	rm -rf "$d" # no state of an earlier run
	t0=$(_now)
	FLEET_SELFTEST=$mode RESULTS=$IT/selftest-$mode.results bash "${BASH_SOURCE[0]}" \
		>"$IT/selftest-$mode.log" 2>&1 &
	child=$!
	if [[ $mode == term ]]; then
		if wait_until 120 grep -qsx HELD "$d/state"; then
			kill -TERM "$child"
		else
			log "selftest term: not HELD after 120 s"
			kill -TERM "$child" 2>/dev/null
		fi
	fi
	wait "$child"
	rc=$?
	made=$(grep -c '^ns ' "$d/state" 2>/dev/null)
	procs=$(grep -c '^pid ' "$d/state" 2>/dev/null)
	left=$(left_over "$d/state" 2>/dev/null)
	want_rc=1
	[[ $mode == term ]] && want_rc=143
	if ((rc == want_rc && made == 4 && procs == 3)) && [[ -z $left ]] && ! grep -qs "^FAIL" "$IT/selftest-$mode.results"; then
		pass "$T: cleanup after ${mode/term/SIGTERM}" "exit $rc after $(elapsed "$t0") s; its $made namespaces and $procs processes (target, central and agent1 collectd) gone"
	else
		fail "$T: cleanup after ${mode/term/SIGTERM}" "exit $rc (want $want_rc), $made namespaces and $procs processes made (want 4 and 3), left: ${left:-nothing}; $(grep '^FAIL' "$IT/selftest-$mode.results" 2>/dev/null | head -2 | tr '\n' ' ') (see $IT/selftest-$mode.log)"
	fi
done
log "fleet.sh took $(($(date +%s) - T_BEGIN)) s"
