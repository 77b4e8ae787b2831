#!/usr/bin/env bash
# tests/integration/stacks.sh -- the stacks users run (issue 5): the dotnet
# plugin's values through Debian's collectd into Graphite (write_graphite ->
# carbon-cache -> whisper files) and Prometheus (write_prometheus -> the
# prometheus server), and the shipped Grafana dashboards
# (contrib/dashboards/*.json) checked against what came out.
#
# One collectd (csv + write_graphite + write_prometheus + threshold, Interval 1)
# watches two targets:
#   ctr    CounterTarget on .NET 10, --heap-mb 64 (gc-heap-size >= 67.1 MB),
#          allocating 16 MiB/s (alloc-rate 16.78 MB/s)
#   spike  SpikeApp on a self-contained .NET 8: GC heap ~40 MB, one spike to
#          ~160 MB for 5 s; a threshold rule (WarningMax 100 MB on
#          gc-heap-size) makes the plugin write one mini dump during it
#   meter  WebTarget on .NET 10 with the System.Runtime meter and no
#          System.Runtime EventCounters (Provider
#          "Microsoft.AspNetCore.Hosting", Meter "System.Runtime"): the
#          meter-only user; a few malformed requests make Kestrel throw (the
#          meter's dotnet.exceptions appears at the first exception)
#   mspike SpikeApp on .NET 10, meter-only likewise, the same spike 2 s
#          later; the threshold rule for a meter-only user (WarningMax 100 MB
#          on the LOH size at the last GC,
#          System.Runtime:dotnet.gc.last_collection.heap.size:gc.heap.generation=loh,
#          also a <Dump> Counter) makes the plugin dump it during its spike
# and the checks are
#   graphite    carbon-cache (Debian's graphite-carbon, in the foreground on
#               127.0.0.1, storage under $BUILD/it/stacks) holds a whisper file
#               for each of the 27 System.Runtime counters of both instances,
#               1 s per point; read back with whisper-fetch: gc-heap-size sane
#               for both (ctr 67..300 MB; spike's baseline below and spike
#               above 100 MB), every whisper point equal to the csv value of
#               the same second, alloc-rate (write_graphite's StoreRates) =
#               16.78 MB/s +-15 %
#   scrape      write_prometheus' /metrics: every counter of both instances
#               under collectd_dotnet_<type>{dotnet=,type=,instance="test"},
#               counters typed counter, gauges gauge; the gc-heap-size sample
#               equal to the csv value with the same timestamp
#   prometheus  Debian's prometheus (foreground, 127.0.0.1, scraping every
#               1 s with honor_labels, TSDB in a temp dir): the target is up,
#               PromQL gc-heap-size returns both instances, every stored sample
#               of ctr equal to the csv row of its timestamp, rate(alloc-rate)
#               = 16.78 MB/s +-15 %
#   dashboards  contrib/dashboards/check.sh against the whisper tree and the
#               live prometheus (every variable, panel and annotation query
#               returns series, with instance=All and each instance alone);
#               seven broken copies of the dashboards must fail it
#   meter       the meter instance is meter-only (no gc-heap-size, every
#               meter series the meter dashboards use in whisper);
#               check.sh --meter runs dotnet-meter-*.json against the same
#               carbon and prometheus (instance=All, and meter alone: mspike
#               never throws, so its exceptions panel is rightly empty);
#               three broken copies of them must fail it
#   dumps       spike dumped by its gc-heap-size rule, mspike by its LOH rule,
#               each during its spike
#   counters    the plugin's dump counters in /metrics: derive-dumps and
#               derive-dump-failures for both instances, spike's dumps = 1
#               (its one dump), everything else 0
#   annotation  the dashboards' dump annotation (the derive-dumps series):
#               marks spike and mspike (the meter dashboards and the
#               Graphite EventCounters one, whose instance variable lists
#               every instance) or spike alone (the Prometheus EventCounters
#               one), in Graphite and Prometheus, each at the time of its dump (the OKAY line in collectd's log): Graphite
#               one point 0..3 s after it, Prometheus one region starting
#               0..step+3 s after it
#
# Run by tests/run; alone:
#   REPO=... BUILD=... PLUGIN_SO=... RESULTS=... bash tests/integration/stacks.sh
# Needs the Debian packages graphite-carbon python3-whisper prometheus
# libprotobuf-c1 libmicrohttpd12 (the last two for write_prometheus.so) curl,
# and the targets CounterTarget:10 and SpikeApp:8 built; a missing one is a
# FAIL naming it; likewise WebTarget:10. Every server listens on 127.0.0.1 on free ports. Logs, the
# collectd.conf, carbon's and prometheus' configs and data stay in
# $BUILD/it/stacks; the dump is deleted. About 30 s.
set -u
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/common.sh
. "$REPO/tests/lib/common.sh"
# shellcheck source=../lib/dotnet.sh
. "$REPO/tests/lib/dotnet.sh"

IT=$BUILD/it/stacks
rm -rf "$IT"
mkdir -p "$IT"
# shellcheck disable=SC2034 # read by tests/lib/dotnet.sh
TARGET_RUN_DIR=$IT/targets
T_BEGIN=$(_now)
THRESHOLD=100000000           # bytes: spike's baseline ~40 MB, its spike ~160 MB
# the meter-only threshold: the large object heap at the last GC (SpikeApp's
# 1 MB arrays live there)
LOH=System.Runtime:dotnet.gc.last_collection.heap.size:gc.heap.generation=loh
ALLOC_RATE=16777216           # CounterTarget's default 16 MiB/s
CTR_HEAP_MIN=67108864         # --heap-mb 64: 64 MiB of live arrays
MARK=900.$$                   # CounterTarget --seconds: ends by itself
CARBON_PID=
PROM_PID=
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3 # Debian's, with whisper

cleanup() {
	[[ -n $COLLECTD_PID ]] && collectd_stop 10 >/dev/null
	stop_pid "$PROM_PID"
	stop_pid "$CARBON_PID"
	stop_all_targets
	rm -rf "$IT/dumps"
}
trap cleanup EXIT

log() { printf '   %s\n' "$*"; }

elapsed() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.1f", b - a }'; }

# stop_pid PID: SIGTERM a process this script started, SIGKILL after 15 s
stop_pid() {
	local pid=$1
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	wait_until 15 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# free_ports N: N distinct free TCP ports on 127.0.0.1
free_ports() {
	"$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

listening() { # PORT
	"$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

http_ok() { curl -fsS -m 5 -o /dev/null "$1" 2>/dev/null; }

# csv_of INSTANCE TYPE-NAME: the rows of exactly that value (csv_file)
csv_of() { csv_file "$CD" "$1" "$2"; }

# ---------------------------------------------------------------- needs

missing=()
for c in carbon-cache whisper-fetch whisper-info prometheus curl; do
	command -v "$c" >/dev/null || missing+=("$c")
done
for p in write_graphite write_prometheus threshold csv logfile; do
	if [[ ! -f /usr/lib/collectd/$p.so ]]; then
		missing+=("/usr/lib/collectd/$p.so")
	elif ldd "/usr/lib/collectd/$p.so" | grep -q 'not found'; then
		missing+=("$p.so's libraries: $(ldd "/usr/lib/collectd/$p.so" | awk '/not found/ { printf "%s ", $1 }')")
	fi
done
if ((${#missing[@]})); then
	fail "stacks: needs" "missing ${missing[*]}(Debian: graphite-carbon python3-whisper prometheus libprotobuf-c1 libmicrohttpd12 curl)"
	exit 0
fi
# shellcheck disable=SC2034 # set through target_cmd's nameref
CTR_CMD=() SPIKE_CMD=() WEB_CMD=()
if ! target_cmd -v CTR_CMD CounterTarget 10 || ! target_cmd -v SPIKE_CMD SpikeApp 8 ||
	! target_cmd -v WEB_CMD WebTarget 10; then
	fail "stacks: needs" "CounterTarget and WebTarget for .NET 10 and SpikeApp for .NET 8 are not built (dotnet_build_targets)"
	exit 0
fi

read -r CARBON_PORT PICKLE_PORT QUERY_PORT WP_PORT PROM_PORT <<<"$(free_ports 5)"
log "ports: carbon line $CARBON_PORT, write_prometheus $WP_PORT, prometheus $PROM_PORT"

# ---------------------------------------------------------------- carbon-cache

WSP=$IT/carbon/whisper
mkdir -p "$IT/carbon/conf" "$WSP" "$IT/carbon/log" "$IT/carbon/lists"
cat >"$IT/carbon/conf/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $IT/carbon/
LOCAL_DATA_DIR = $WSP/
WHITELISTS_DIR = $IT/carbon/lists/
CONF_DIR = $IT/carbon/conf/
LOG_DIR = $IT/carbon/log/
PID_DIR = $IT/carbon/
DATABASE = whisper
ENABLE_LOGROTATION = False
ENABLE_TAGS = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $CARBON_PORT
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $PICKLE_PORT
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $QUERY_PORT
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = True
WHISPER_FALLOCATE_CREATE = False
CARBON_METRIC_INTERVAL = 0
EOF
cat >"$IT/carbon/conf/storage-schemas.conf" <<EOF
[collectd]
pattern = ^collectd\.
retentions = 1s:1h
EOF
t0=$(_now)
# --nodaemon: stays in the foreground (its log on stdout), its pid is $!
carbon-cache --config="$IT/carbon/conf/carbon.conf" --nodaemon \
	--pidfile="$IT/carbon/carbon.pid" start >"$IT/carbon/carbon.log" 2>&1 &
CARBON_PID=$!
if wait_until 60 listening "$CARBON_PORT"; then
	pass "stacks: carbon-cache up" "$(dpkg-query -W -f='graphite-carbon ${Version}' graphite-carbon 2>/dev/null), listening on 127.0.0.1:$CARBON_PORT after $(elapsed "$t0") s"
else
	fail "stacks: carbon-cache up" "not listening on $CARBON_PORT after 60 s; $(tail -3 "$IT/carbon/carbon.log" | tr '\n' ' ')"
	exit 0
fi

# ---------------------------------------------------------------- targets + collectd

CTR=$(start_target CounterTarget 10 --seconds "$MARK" --heap-mb 64) || { fail "stacks: targets" "CounterTarget did not start"; exit 0; }
SPIKE=$(start_target SpikeApp 8 --baseline-mb 40 --spike-mb 160 --spike-seconds 5 \
	--delay-seconds 12 --spikes 1 --period-seconds 600) || { fail "stacks: targets" "SpikeApp did not start"; exit 0; }
SPIKE_LOG=$(target_log "$SPIKE")
METER=$(start_target WebTarget 10) || { fail "stacks: targets" "WebTarget did not start"; exit 0; }
MSPIKE=$(start_target SpikeApp 10 --baseline-mb 40 --spike-mb 160 --spike-seconds 5 \
	--delay-seconds 14 --spikes 1 --period-seconds 600) || { fail "stacks: targets" "SpikeApp 10 did not start"; exit 0; }
MSPIKE_LOG=$(target_log "$MSPIKE")
METER_URL=$(sed -n 's/^LISTENING \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$(target_log "$METER")" | head -1)
log "targets: ctr = CounterTarget .NET 10 pid $CTR, spike = SpikeApp .NET 8 pid $SPIKE, meter = WebTarget .NET 10 pid $METER ($METER_URL), mspike = SpikeApp .NET 10 pid $MSPIKE"

CD=$IT/collectd
mkdir -p "$IT/dumps"
chmod 0700 "$IT/dumps"
# shellcheck disable=SC2034 # read by collectd_start (tests/lib/common.sh)
COLLECTD_PLUGINS="csv logfile threshold write_graphite write_prometheus"
T_DATA=$(date +%s)
if ! collectd_start "$CD" "
LoadPlugin dotnet
<Plugin dotnet>
  Interval 1
  <Process \"ctr\">
    Pid $CTR
  </Process>
  <Process \"spike\">
    Pid $SPIKE
  </Process>
  <Process \"meter\">
    Pid $METER
    Provider \"Microsoft.AspNetCore.Hosting\"
    Meter \"System.Runtime\"
  </Process>
  <Process \"mspike\">
    Pid $MSPIKE
    Provider \"Microsoft.AspNetCore.Hosting\"
    Meter \"System.Runtime\"
  </Process>
  <Dump>
    Directory \"$IT/dumps\"
    Type \"mini\"
    Counter \"gc-heap-size\"
    Counter \"$LOH\"
    MinInterval 600
    MaxDumps 1
    MinFreeSpace \"100M\"
  </Dump>
</Plugin>
LoadPlugin threshold
<Plugin threshold>
  <Plugin \"dotnet\">
    <Type \"bytes\">
      Instance \"gc-heap-size\"
      WarningMax $THRESHOLD
      Persist true
    </Type>
    <Type \"bytes\">
      Instance \"$LOH\"
      WarningMax $THRESHOLD
      Persist true
    </Type>
  </Plugin>
</Plugin>
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node \"carbon\">
    Host \"127.0.0.1\"
    Port \"$CARBON_PORT\"
    Protocol \"tcp\"
    Prefix \"collectd.\"
  </Node>
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host \"127.0.0.1\"
  Port \"$WP_PORT\"
</Plugin>
"; then
	fail "stacks: collectd" "did not start; see $CD/collectd.log"
	exit 0
fi

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
t0=$(_now)
prometheus --config.file="$IT/prometheus/prometheus.yml" \
	--storage.tsdb.path="$IT/prometheus/data" \
	--web.listen-address="127.0.0.1:$PROM_PORT" \
	--storage.tsdb.retention.time=1d >"$IT/prometheus/prometheus.log" 2>&1 &
PROM_PID=$!
if wait_until 60 http_ok "$PROM/-/ready"; then
	pass "stacks: prometheus up" "$(dpkg-query -W -f='prometheus ${Version}' prometheus 2>/dev/null), ready on 127.0.0.1:$PROM_PORT after $(elapsed "$t0") s"
else
	fail "stacks: prometheus up" "not ready after 60 s; $(tail -3 "$IT/prometheus/prometheus.log" | tr '\n' ' ')"
	exit 0
fi

# ---------------------------------------------------------------- collect

# the meter instance: once its session is up (its first meter value), some
# requests, and malformed ones: Kestrel throws on a bad request line. The
# meter's dotnet.exceptions series starts at the first exception, with the
# count so far (no rate yet); a second batch once it exists must show as a
# rate in the Exceptions panels
METER_WS="bytes-System.Runtime:dotnet.process.memory.working_set"
METER_EXC="derive-System.Runtime:dotnet.exceptions:error.type=BadHttpRequestException"
meter_up() { csv_of meter "$METER_WS" >/dev/null; }
meter_threw() { csv_of meter "$METER_EXC" >/dev/null; }
prom_has_exc() {
	curl -fsS -m 5 -G --data-urlencode 'query=collectd_dotnet_derive_total{dotnet="meter",type=~"System.Runtime:dotnet.exceptions:.*"}' \
		"$PROM/api/v1/query" 2>/dev/null | "$PY" -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
}
bad_requests() { # N
	local i
	for ((i = 0; i < $1; i++)); do
		"$PY" - "${METER_URL##*:}" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"NOT A REQUEST LINE\r\n\r\n")
s.settimeout(5)
try:
    s.recv(4096)
except OSError:
    pass
s.close()
EOF
	done
}
if [[ -n $METER_URL ]] && wait_until 30 meter_up; then
	for _ in 1 2 3; do curl -fsS -m 5 -o /dev/null "$METER_URL/work" 2>/dev/null; done
	bad_requests 3
	# the series in the csv and in prometheus (scraped) before the second
	# batch, so that both see it rise
	wait_until 15 meter_threw || log "meter: no $METER_EXC after 15 s"
	wait_until 15 prom_has_exc || log "meter: prometheus has no dotnet.exceptions sample after 15 s"
	sleep 1
	bad_requests 5
else
	log "meter: no $METER_WS for the meter instance after 30 s (${METER_URL:-no LISTENING line})"
fi

# until the spike is over and 8 s of baseline follow it, and the dump is written
spike_over() { # LOG
	local end
	end=$(sed -n 's/^SPIKE end \([^ ]*\).*/\1/p' "$1" | head -1)
	[[ -n $end ]] && (($(date +%s) >= $(date -d "$end" +%s) + 8))
}
dump_written() { grep -q "instance \"$1\": dump of pid [0-9]* written" "$CD/collectd.log"; }
t0=$(_now)
if wait_until 150 spike_over "$SPIKE_LOG" && wait_until 60 spike_over "$MSPIKE_LOG" &&
	wait_until 60 dump_written spike && wait_until 60 dump_written mspike; then
	log "collected for $(elapsed "$t0") s (spike over, dump written)"
else
	log "spike or dump not seen after $(elapsed "$t0") s: $(tail -2 "$SPIKE_LOG" "$MSPIKE_LOG" | tr '\n' ' ')"
fi
# until the values of this second reached carbon's whisper file and prometheus
T_STOP=$(date +%s)
whisper_caught_up() {
	whisper-fetch --from="$((T_STOP - 30))" "$WSP/collectd/test/dotnet-ctr/bytes-gc-heap-size.wsp" 2>/dev/null |
		awk -v t="$T_STOP" '$2 != "None" && $1 >= t - 1 { f = 1 } END { exit !f }'
}
prom_caught_up() {
	curl -fsS -m 5 -G --data-urlencode 'query=timestamp(collectd_dotnet_bytes{dotnet="ctr",type="gc-heap-size"})' \
		"$PROM/api/v1/query" 2>/dev/null | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
sys.exit(0 if r and float(r[0]["value"][1]) >= float(sys.argv[1]) - 1 else 1)' "$T_STOP"
}
wait_until 20 whisper_caught_up || log "whisper has no point for $T_STOP - 1 after 20 s"
wait_until 20 prom_caught_up || log "prometheus has no sample for $T_STOP - 1 after 20 s"
T_END=$((T_STOP + 1))

# ---------------------------------------------------------------- graphite

# The System.Runtime counters as TYPE-NAME (plugin.sh's list)
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

HOSTDIR=$WSP/collectd/test
for inst in ctr spike; do
	miss=()
	for c in "${COUNTERS[@]}"; do
		[[ -s $HOSTDIR/dotnet-$inst/$c.wsp ]] || miss+=("$c")
	done
	n=$(find "$HOSTDIR/dotnet-$inst" -name '*.wsp' 2>/dev/null | wc -l)
	if ((${#miss[@]} == 0)); then
		pass "stacks: graphite whisper files ($inst)" "all ${#COUNTERS[@]} counters under collectd.test.dotnet-$inst ($n files)"
	else
		fail "stacks: graphite whisper files ($inst)" "missing ${miss[*]} ($n files in $HOSTDIR/dotnet-$inst)"
	fi
done

wfetch() { # FILE: "time value" lines with a value, from whisper-fetch
	whisper-fetch --from="$((T_DATA - 5))" --until="$T_END" "$1" 2>/dev/null |
		awk '$2 != "None" { print $1, $2 }'
}

if out=$(whisper-info "$HOSTDIR/dotnet-ctr/bytes-gc-heap-size.wsp" 2>&1) &&
	grep -q 'secondsPerPoint: 1$' <<<"$out"; then
	pass "stacks: graphite retention" "whisper-info: 1 s per point, $(awk '/^maxRetention/ { print $2 }' <<<"$out") s"
else
	fail "stacks: graphite retention" "whisper-info: $(head -3 <<<"$out" | tr '\n' ' ')"
fi

# gc-heap-size, ctr: every point within 67..300 MB
wfetch "$HOSTDIR/dotnet-ctr/bytes-gc-heap-size.wsp" >"$IT/ctr-heap.wsp.txt"
if out=$(awk -v lo="$CTR_HEAP_MIN" -v hi=300000000 '
	{ n++; if (n == 1 || $2 < mn) mn = $2; if (n == 1 || $2 > mx) mx = $2; if ($2 < lo || $2 > hi) bad++ }
	END { printf "%d points, %.1f..%.1f MB", n, mn / 1e6, mx / 1e6; exit !(n >= 10 && !bad) }' "$IT/ctr-heap.wsp.txt"); then
	pass "stacks: graphite gc-heap-size (ctr)" "whisper-fetch: $out, expected >= 10 points in $(awk -v a=$CTR_HEAP_MIN 'BEGIN { printf "%.1f", a / 1e6 }')..300 MB"
else
	fail "stacks: graphite gc-heap-size (ctr)" "whisper-fetch: $out, expected >= 10 points in 67.1..300 MB"
fi

# gc-heap-size, spike: a baseline below the threshold and a spike above it
wfetch "$HOSTDIR/dotnet-spike/bytes-gc-heap-size.wsp" >"$IT/spike-heap.wsp.txt"
if out=$(awk -v t="$THRESHOLD" '
	{ n++; if (n == 1 || $2 < mn) mn = $2; if (n == 1 || $2 > mx) mx = $2; if ($2 > t) up++ }
	END { printf "%d points, %.1f..%.1f MB, %d above %.0f MB", n, mn / 1e6, mx / 1e6, up, t / 1e6
	      exit !(n >= 10 && mn >= 30e6 && mn < 80e6 && mx > 140e6 && mx < 300e6 && up >= 3) }' "$IT/spike-heap.wsp.txt"); then
	pass "stacks: graphite gc-heap-size (spike)" "whisper-fetch: $out; expected baseline 30..80 MB, spike 140..300 MB"
else
	fail "stacks: graphite gc-heap-size (spike)" "whisper-fetch: $out; expected baseline 30..80 MB, spike 140..300 MB"
fi

# every whisper point = the csv value written for the same second
# (write_graphite sends the value's time rounded to the second)
compare_wsp_csv() { # NAME WSP-TXT CSV
	local out
	if out=$(awk -F'[ ,]' '
		FNR == NR { if (FNR > 1) { s = int($1 + 0.5); v[s] = v[s] " " $2 } ; next }
		{ n++; ok = 0; split(v[$1], c, " ")
		  for (i in c) { d = c[i] - $2; if (d < 0) d = -d; if (d <= 1e-6 * (c[i] < 0 ? -c[i] : c[i]) + 1e-6) ok = 1 }
		  if (ok) good++; else if (!bad++) first = $1 " " $2 " csv:" v[$1] }
		END { printf "%d of %d whisper points equal the csv value of their second", good, n
		      if (bad) printf "; first differing: %s", first
		      exit !(n >= 10 && good == n) }' "$3" "$2"); then
		pass "$1" "$out"
	else
		fail "$1" "$out"
	fi
}
if f=$(csv_of ctr bytes-gc-heap-size); then
	compare_wsp_csv "stacks: graphite = csv (ctr gc-heap-size)" "$IT/ctr-heap.wsp.txt" "$f"
else
	fail "stacks: graphite = csv (ctr gc-heap-size)" "no csv file"
fi
if f=$(csv_of spike bytes-gc-heap-size); then
	compare_wsp_csv "stacks: graphite = csv (spike gc-heap-size)" "$IT/spike-heap.wsp.txt" "$f"
else
	fail "stacks: graphite = csv (spike gc-heap-size)" "no csv file"
fi

# alloc-rate: write_graphite's StoreRates turns the running total into bytes/s
wfetch "$HOSTDIR/dotnet-ctr/total_bytes-alloc-rate.wsp" >"$IT/ctr-alloc.wsp.txt"
if out=$(awk -v w="$ALLOC_RATE" '
	{ n++; s += $2 } END { m = n ? s / n : 0; printf "%d points, mean %.2f MB/s, expected %.2f MB/s +-15%%", n, m / 1e6, w / 1e6
	  exit !(n >= 8 && m >= w * 0.85 && m <= w * 1.15) }' "$IT/ctr-alloc.wsp.txt"); then
	pass "stacks: graphite alloc-rate (ctr)" "$out"
else
	fail "stacks: graphite alloc-rate (ctr)" "$out"
fi

# ---------------------------------------------------------------- write_prometheus scrape

curl -fsS -m 10 "http://127.0.0.1:$WP_PORT/metrics" >"$IT/metrics.txt" 2>"$IT/metrics.err" || true
family() { # TYPE -> metric name
	case $1 in
	derive | total_bytes | total_time_in_ms) echo "collectd_dotnet_$1_total" ;;
	*) echo "collectd_dotnet_$1" ;;
	esac
}
for inst in ctr spike; do
	miss=()
	for c in "${COUNTERS[@]}"; do
		typ=${c%%-*} name=${c#*-}
		grep -qF "$(family "$typ"){dotnet=\"$inst\",type=\"$name\",instance=\"test\"} " "$IT/metrics.txt" || miss+=("$c")
	done
	if ((${#miss[@]} == 0)); then
		pass "stacks: scrape /metrics ($inst)" "all ${#COUNTERS[@]} counters as collectd_dotnet_<type>{dotnet=\"$inst\",type=...,instance=\"test\"}"
	else
		fail "stacks: scrape /metrics ($inst)" "missing ${miss[*]} in $IT/metrics.txt ($(wc -l <"$IT/metrics.txt") lines; $(head -c 200 "$IT/metrics.err"))"
	fi
done
want_types="collectd_dotnet_bytes gauge
collectd_dotnet_percent gauge
collectd_dotnet_gauge gauge
collectd_dotnet_derive_total counter
collectd_dotnet_total_bytes_total counter
collectd_dotnet_total_time_in_ms_total counter"
got_types=$(awk '$1 == "#" && $2 == "TYPE" && $3 ~ /^collectd_dotnet_/ { print $3, $4 }' "$IT/metrics.txt" | sort)
if [[ $got_types == "$(sort <<<"$want_types")" ]]; then
	pass "stacks: scrape metric types" "$(tr '\n' ';' <<<"$got_types" | sed 's/;$//; s/;/; /g')"
else
	fail "stacks: scrape metric types" "got: $(tr '\n' ';' <<<"$got_types")"
fi
line=$(grep -F 'collectd_dotnet_bytes{dotnet="ctr",type="gc-heap-size",instance="test"} ' "$IT/metrics.txt" | head -1)
if [[ -n $line ]] && f=$(csv_of ctr bytes-gc-heap-size) &&
	out=$(awk -F, -v val="$(awk '{ print $2 }' <<<"$line")" -v ms="$(awk '{ print $3 }' <<<"$line")" '
		NR > 1 && int($1 * 1000 + 0.5) == ms { found = 1; d = $2 - val; if (d < 0) d = -d
			printf "%s at %.3f = csv row %s,%s", val, ms / 1000, $1, $2; exit !(d <= 1e-6 * val + 1e-6) }
		END { if (!found) { printf "no csv row at %.3f for %s", ms / 1000, val; exit 1 } }' "$f"); then
	pass "stacks: scrape = csv (ctr gc-heap-size)" "$out"
else
	fail "stacks: scrape = csv (ctr gc-heap-size)" "${out:-no line for ctr gc-heap-size in /metrics}"
fi

# ---------------------------------------------------------------- prometheus server

promq() { # PATH ARGS... (curl --data-urlencode pairs) -> JSON on stdout
	local p=$1
	shift
	local a=() kv
	for kv in "$@"; do a+=(--data-urlencode "$kv"); done
	curl -fsS -m 20 -G "${a[@]}" "$PROM$p"
}
target_up() {
	promq /api/v1/targets | "$PY" -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(0 if t and all(x["health"] == "up" for x in t) else 1)'
}
if wait_until 30 target_up; then
	pass "stacks: prometheus scrapes write_prometheus" "target 127.0.0.1:$WP_PORT health up"
else
	fail "stacks: prometheus scrapes write_prometheus" "$(promq /api/v1/targets | head -c 300)"
fi

if out=$(promq /api/v1/query 'query=collectd_dotnet_bytes{type="gc-heap-size"}' "time=$T_END" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
got = {s["metric"].get("dotnet"): (s["metric"].get("instance"), float(s["value"][1])) for s in r}
print(", ".join("%s: instance=%s %.1f MB" % (k, v[0], v[1] / 1e6) for k, v in sorted(got.items())))
ok = set(got) == {"ctr", "spike"} and all(v[0] == "test" and 30e6 < v[1] < 300e6 for v in got.values())
sys.exit(0 if ok else 1)'); then
	pass "stacks: PromQL gc-heap-size" "collectd_dotnet_bytes{type=\"gc-heap-size\"}: $out"
else
	fail "stacks: PromQL gc-heap-size" "${out:-no answer}; expected ctr and spike, instance=test, 30..300 MB"
fi

# every sample prometheus stored for ctr's gc-heap-size = the csv row with
# its timestamp (write_prometheus exports the value's own time)
if f=$(csv_of ctr bytes-gc-heap-size) &&
	out=$(promq /api/v1/query "query=collectd_dotnet_bytes{dotnet=\"ctr\",type=\"gc-heap-size\"}[5m]" "time=$T_END" |
		"$PY" -c '
import json, sys
rows = {}
for line in list(open(sys.argv[1]))[1:]:
    t, v = line.strip().split(",")[:2]
    rows[round(float(t) * 1000)] = float(v)
r = json.load(sys.stdin)["data"]["result"]
pts = [(round(float(t) * 1000), float(v)) for t, v in r[0]["values"]] if r else []
good = sum(1 for t, v in pts if t in rows and abs(rows[t] - v) <= 1e-6 * abs(v) + 1e-6)
print("%d of %d stored samples equal the csv row of their timestamp" % (good, len(pts)))
sys.exit(0 if len(pts) >= 10 and good == len(pts) else 1)' "$f"); then
	pass "stacks: prometheus = csv (ctr gc-heap-size)" "$out"
else
	fail "stacks: prometheus = csv (ctr gc-heap-size)" "${out:-no answer}"
fi

if out=$(promq /api/v1/query 'query=rate(collectd_dotnet_total_bytes_total{dotnet="ctr",type="alloc-rate"}[10s])' "time=$T_END" |
	"$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
v = float(r[0]["value"][1]) if r else float("nan")
w = float(sys.argv[1])
print("%.2f MB/s, expected %.2f MB/s +-15%%" % (v / 1e6, w / 1e6))
sys.exit(0 if w * 0.85 <= v <= w * 1.15 else 1)' "$ALLOC_RATE"); then
	pass "stacks: PromQL rate(alloc-rate)" "$out"
else
	fail "stacks: PromQL rate(alloc-rate)" "${out:-no answer}"
fi

# ---------------------------------------------------------------- dashboards

t0=$(_now)
bash "$REPO/contrib/dashboards/check.sh" --whisper "$WSP" --prometheus-url "$PROM" \
	--expect ctr --expect spike --var "dump_threshold=$THRESHOLD" \
	--from "$((T_DATA - 5))" --until "$T_END" --rate-interval 10s \
	--report "$IT/dashboards.json" >"$IT/dashboards.log" 2>&1
rc=$?
for kind in graphite prometheus; do
	n=$(grep -c "^[a-zA-Z]* *$kind " "$IT/dashboards.log")
	nbad=$(grep -c "^FAIL $kind " "$IT/dashboards.log")
	nq=$(grep -c "^ok   $kind \(panel\|annotation\)" "$IT/dashboards.log")
	if ((n > 0 && nbad == 0 && rc == 0)); then
		pass "stacks: dashboard dotnet-$kind.json" "$n checks: variables offer ctr and spike, $nq panel/annotation queries return series (instance=All and each alone), all 18 required counters"
	else
		fail "stacks: dashboard dotnet-$kind.json" "$nbad of $n checks failed (exit $rc): $(grep -m3 -E "^FAIL $kind|^check.sh|Traceback|Error" "$IT/dashboards.log" | tr '\n' ' ')"
	fi
done
log "check.sh took $(elapsed "$t0") s; its output: $IT/dashboards.log"

# the meter-only instance: no System.Runtime EventCounter, and in whisper
# every meter series the meter dashboards use (Debian's write_graphite
# writes . and : as _)
METER_SERIES=(
	"bytes-System.Runtime:dotnet.gc.last_collection.heap.size:gc.heap.generation="{gen0,gen1,gen2,loh,poh}
	"derive-System.Runtime:dotnet.gc.collections:gc.heap.generation="{gen0,gen1,gen2}
	"total_time_in_ms-System.Runtime:dotnet.process.cpu.time:cpu.mode="{user,system}
	total_bytes-System.Runtime:dotnet.gc.heap.total_allocated
	total_time_in_ms-System.Runtime:dotnet.gc.pause.time
	"$METER_WS"
	derive-System.Runtime:dotnet.thread_pool.work_item.count
	gauge-System.Runtime:dotnet.thread_pool.{thread.count,queue.length}
	derive-System.Runtime:dotnet.monitor.lock_contentions
	derive-System.Runtime:dotnet.jit.compiled_methods
	total_time_in_ms-System.Runtime:dotnet.jit.compilation.time
)
for inst in meter mspike; do
	miss=()
	for c in "${METER_SERIES[@]}"; do
		[[ -s $HOSTDIR/dotnet-$inst/${c//[.:]/_}.wsp ]] || miss+=("$c")
	done
	exc=$(find "$HOSTDIR/dotnet-$inst" -name 'derive-System_Runtime_dotnet_exceptions_error_type=*.wsp' -printf '%f ' 2>/dev/null)
	ec=$(find "$HOSTDIR/dotnet-$inst" -name '*gc-heap-size*' -printf '%f ' 2>/dev/null)
	n=$(find "$HOSTDIR/dotnet-$inst" -name '*.wsp' 2>/dev/null | wc -l)
	# only meter throws (Kestrel's bad requests)
	if ((${#miss[@]} == 0)) && [[ -z $ec ]] && [[ $inst == mspike || -n $exc ]]; then
		pass "stacks: meter-only instance ($inst)" "$n whisper files under collectd.test.dotnet-$inst: the ${#METER_SERIES[@]} meter series${exc:+, exceptions ${exc% }}, no gc-heap-size"
	else
		fail "stacks: meter-only instance ($inst)" "missing ${miss[*]:-none}; exceptions: ${exc:-none}; EventCounters: ${ec:-none} ($n files)"
	fi
done

t0=$(_now)
bash "$REPO/contrib/dashboards/check.sh" --meter --whisper "$WSP" --prometheus-url "$PROM" \
	--expect meter --var "dump_threshold=$THRESHOLD" \
	--from "$((T_DATA - 5))" --until "$T_END" --rate-interval 10s \
	--report "$IT/dashboards-meter.json" >"$IT/dashboards-meter.log" 2>&1
rc=$?
for kind in graphite prometheus; do
	n=$(grep -c "^[a-zA-Z]* *$kind " "$IT/dashboards-meter.log")
	nbad=$(grep -c "^FAIL $kind " "$IT/dashboards-meter.log")
	nq=$(grep -c "^ok   $kind \(panel\|annotation\)" "$IT/dashboards-meter.log")
	nr=$(sed -n "s/^ok   $kind dashboard: all \([0-9]*\) required counters.*/\1/p" "$IT/dashboards-meter.log")
	if ((n > 0 && nbad == 0 && rc == 0)); then
		pass "stacks: dashboard dotnet-meter-$kind.json" "$n checks: the instance variable offers meter, $nq panel/annotation queries return series (instance=All and meter alone), all $nr required meter series"
	else
		fail "stacks: dashboard dotnet-meter-$kind.json" "$nbad of $n checks failed (exit $rc): $(grep -m3 -E "^FAIL $kind|^check.sh|Traceback|Error" "$IT/dashboards-meter.log" | tr '\n' ' ')"
	fi
done
log "check.sh --meter took $(elapsed "$t0") s; its output: $IT/dashboards-meter.log"
# the second batch of bad requests as a rate: in the Graphite Exceptions
# panel (check.sh's report), and in Prometheus through the panel's rate() at
# every second of the run (check.sh asks only for the last)
if out=$("$PY" - "$IT/dashboards-meter.json" <<'EOF'
import json, sys
rep = json.load(open(sys.argv[1]))
s = [x for r in rep if r["dashboard"] == "graphite" and r["kind"] == "panel"
     and r["where"].startswith('panel "Exceptions"') and r["selection"] == "All" for x in r["series"]]
peak = max((x.get("max", 0) for x in s), default=0)
print("%s, peak %.2f/s" % (", ".join(x["name"] for x in s) or "no series", peak))
sys.exit(0 if s and peak > 0 else 1)
EOF
); then
	pass "stacks: meter exceptions panel (graphite)" "$out"
else
	fail "stacks: meter exceptions panel (graphite)" "$out"
fi
if out=$(promq /api/v1/query "query=max_over_time(rate(collectd_dotnet_derive_total{dotnet=\"meter\", type=~\"System.Runtime:dotnet.exceptions:.*\"}[10s])[$((T_END - T_DATA + 5))s:1s])" "time=$T_END" |
	"$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(", ".join("%s peak %.2f/s" % (x["metric"]["type"], float(x["value"][1])) for x in r) or "no series")
sys.exit(0 if r and max(float(x["value"][1]) for x in r) > 0 else 1)'); then
	pass "stacks: meter exceptions panel (prometheus)" "$out"
else
	fail "stacks: meter exceptions panel (prometheus)" "${out:-no answer}"
fi

# check.sh itself: broken copies of the dashboards must fail, naming the query
# KIND|TEXT IN THE JSON|REPLACEMENT|WHAT check.sh MUST SAY
# shellcheck disable=SC2016 # Grafana variables, not shell ones
BROKEN=(
	'graphite|dotnet-$instance.bytes-gc-heap-size, |dotnet-$instance.bytes-gc_heap_size, |matches no whisper file'
	'graphite|aliasSub(${prefix}${host}.dotnet-$instance.percent-cpu-usage|aliasSubstitute(${prefix}${host}.dotnet-$instance.percent-cpu-usage|is not evaluated by check.sh'
	'graphite|"query": "${prefix}${host}.dotnet-*"|"query": "${prefix}${host}.dotnet_*"|offers nothing'
	'prometheus|collectd_dotnet_total_bytes_total{|collectd_dotnet_total_bytes{|no finite value'
	'prometheus|type=\"time-in-jit\"|type=\"jit-time\"|no finite value'
	'prometheus|"legendFormat": "{{dotnet}} {{type}}"|"legendFormat": "{{dotnet}} {{counter}}"|legend names labels'
	'prometheus|type=\"dumps\"}[1m]|type=\"dump\"}[1m]|annotation .*no finite value'
	'meter-graphite|gc_heap_generation?{gen0,gen1,gen2}|gc_heap_generation={gen0,gen1,gen2}|unescaped'
	'meter-graphite|dotnet_process_memory_working_set|dotnet.process.memory.working_set|matches no whisper file'
	'meter-prometheus|type=\"System.Runtime:dotnet.gc.pause.time\"|type=\"System.Runtime:dotnet.gc.pause_time\"|no finite value'
)
caught=0 notes=()
mkdir -p "$IT/broken"
for i in "${!BROKEN[@]}"; do
	IFS='|' read -r kind old new want <<<"${BROKEN[$i]}"
	copy=$IT/broken/$i-dotnet-$kind.json
	if ! "$PY" - "$REPO/contrib/dashboards/dotnet-$kind.json" "$copy" "$old" "$new" <<'EOF'
import sys
src, dst, old, new = sys.argv[1:5]
text = open(src).read()
if old not in text:
    sys.exit(1)
open(dst, "w").write(text.replace(old, new, 1))
EOF
	then
		notes+=("#$i: '$old' not in dotnet-$kind.json")
		continue
	fi
	case $kind in
	graphite) a=(--whisper "$WSP" --graphite-dashboard "$copy" --expect ctr --expect spike) ;;
	prometheus) a=(--prometheus-url "$PROM" --prometheus-dashboard "$copy" --expect ctr --expect spike) ;;
	meter-graphite) a=(--meter --whisper "$WSP" --graphite-dashboard "$copy" --expect meter) ;;
	meter-prometheus) a=(--meter --prometheus-url "$PROM" --prometheus-dashboard "$copy" --expect meter) ;;
	esac
	bash "$REPO/contrib/dashboards/check.sh" "${a[@]}" \
		--var "dump_threshold=$THRESHOLD" --from "$((T_DATA - 5))" --until "$T_END" \
		--rate-interval 10s >"$copy.log" 2>&1
	rc=$?
	if ((rc == 1)) && grep -q "^FAIL .*$want" "$copy.log"; then
		caught=$((caught + 1))
	else
		notes+=("#$i ($kind: $new): exit $rc, no FAIL saying '$want'")
	fi
done
if ((caught == ${#BROKEN[@]})); then
	pass "stacks: check.sh catches broken dashboards" "$caught of ${#BROKEN[@]} broken copies fail (wrong counter name, unknown function, bad variable query, wrong metric family, wrong type label, legend label, wrong dump series; meter: unescaped =, unescaped dots, wrong instrument)"
else
	fail "stacks: check.sh catches broken dashboards" "$caught of ${#BROKEN[@]}: ${notes[*]}"
fi

# ---------------------------------------------------------------- the dump annotation

# dump_check INSTANCE SPIKE-LOG RULE: the instance's one dump was written
# during its spike; sets DUMP_T[INSTANCE] (the OKAY line's whole second)
declare -A DUMP_T=()
dump_check() {
	local inst=$1 slog=$2 rule=$3 line start end t d
	line=$(grep -m1 "instance \"$inst\": dump of pid [0-9]* written" "$CD/collectd.log")
	start=$(sed -n 's/^SPIKE start \([^ ]*\).*/\1/p' "$slog" | head -1)
	end=$(sed -n 's/^SPIKE end \([^ ]*\).*/\1/p' "$slog" | head -1)
	if [[ -z $line ]]; then
		fail "stacks: dump during the spike ($inst)" "no 'dump of pid ... written' for $inst in $CD/collectd.log: $(grep -m2 "\"$inst\".*dump" "$CD/collectd.log" | tr '\n' ' ')"
		return
	fi
	# "[2026-11-26 11:05:07] [info] dotnet plugin: ... (12.3 MB, 0.41 s)":
	# written at t (whole seconds), started d earlier, inside the spike
	t=$(date -d "$(sed -n 's/^\[\([^]]*\)\].*/\1/p' <<<"$line")" +%s)
	d=$(sed -n 's/.*, \([0-9.]*\) s)$/\1/p' <<<"$line")
	DUMP_T[$inst]=$t
	if awk -v t="$t" -v d="${d:-0}" -v a="$(date -d "${start:-@0}" +%s.%N)" \
		-v b="$(date -d "${end:-@0}" +%s.%N)" 'BEGIN { exit !(t - d >= a - 1 && t - d <= b + 1) }' &&
		grep -q "instance \"$inst\": WARNING notification for $rule: dumping" "$CD/collectd.log"; then
		pass "stacks: dump during the spike ($inst)" "by the rule on $rule: ${line#*dotnet plugin: }; spike $start..$end"
	else
		fail "stacks: dump during the spike ($inst)" "${line#*dotnet plugin: }; spike $start..$end, rule $rule: $(grep -m1 "\"$inst\": WARNING notification" "$CD/collectd.log")"
	fi
}
dump_check spike "$SPIKE_LOG" gc-heap-size
dump_check mspike "$MSPIKE_LOG" "$LOH"
rm -f "$IT"/dumps/*.dmp

# the plugin's dump counters, as write_prometheus exported them at the end
# (DERIVE: collectd_dotnet_derive_total): spike and mspike wrote one dump
# each, nothing failed
curl -fsS -m 10 "http://127.0.0.1:$WP_PORT/metrics" >"$IT/metrics-end.txt" 2>/dev/null || true
counters=() bad=()
for inst in ctr spike meter mspike; do
	for c in dumps dump-failures; do
		want=0
		[[ ($inst == spike || $inst == mspike) && $c == dumps ]] && want=1
		v=$(awk -v k="collectd_dotnet_derive_total{dotnet=\"$inst\",type=\"$c\",instance=\"test\"}" '$1 == k { print $2 }' "$IT/metrics-end.txt")
		counters+=("$inst/$c=${v:-none}")
		[[ $v == "$want" ]] || bad+=("$inst/$c=${v:-none} (want $want)")
	done
done
if ((${#bad[@]} == 0)); then
	pass "stacks: dump counters" "/metrics: ${counters[*]}"
else
	fail "stacks: dump counters" "${bad[*]}"
fi

# REPORT KIND EXPECTED-INSTANCES (comma-separated)
for a in "dashboards graphite spike,mspike" "dashboards prometheus spike" \
	"dashboards-meter graphite spike,mspike" "dashboards-meter prometheus mspike"; do
	read -r rep kind want <<<"$a"
	name=dotnet-$kind.json
	[[ $rep == dashboards-meter ]] && name=dotnet-meter-$kind.json
	if out=$("$PY" - "$IT/$rep.json" "$kind" "$want" "spike=${DUMP_T[spike]:-0}" "mspike=${DUMP_T[mspike]:-0}" <<'EOF'
import json, sys, time
rep, kind = json.load(open(sys.argv[1])), sys.argv[2]
want = set(sys.argv[3].split(","))
dump_t = {k: int(v) for k, v in (x.split("=") for x in sys.argv[4:])}  # OKAY lines, whole seconds
a = [r for r in rep if r["dashboard"] == kind and r["kind"] == "annotation" and r["selection"] == "All"]
if not a:
    print("no annotation result from check.sh"); sys.exit(1)
if not all(dump_t[w] for w in want):
    print("no dump in collectd's log for %s" % sorted(w for w in want if not dump_t[w])); sys.exit(1)
times = {}
for s in a[0]["series"]:
    who = s.get("labels", {}).get("dotnet") if kind == "prometheus" else s["name"].split(":")[0]
    times.setdefault(who, []).extend(s.get("times", []))
hm = lambda t: time.strftime("%H:%M:%S", time.localtime(t))
if set(k for k, v in times.items() if v) != want:
    print("marks %s, expected %s" % (sorted(k for k, v in times.items() if v), sorted(want))); sys.exit(1)
msgs, good = [], True
for who in sorted(want):
    t, dt = sorted(times[who]), dump_t[who]
    if kind == "graphite":
        # one point per whisper second with a non-zero rate: the read after
        # the dump (<= 1 s later), rounded to the second by write_graphite
        msgs.append("%s: %d point(s) at %s; dump written at %s" % (who, len(t), ", ".join(hm(x) for x in t), hm(dt)))
        good = good and 1 <= len(t) <= 2 and all(dt <= x <= dt + 3 for x in t)
    else:
        # Grafana groups Prometheus steps <= step apart into one region; it
        # must start at the first step after the dump (the step is 10 s; +1 s
        # for the read, +1 s for the scrape, +1 s for the log's whole seconds)
        step = 10
        regions = []
        for x in t:
            if regions and x - regions[-1][1] <= step:
                regions[-1][1] = x
            else:
                regions.append([x, x])
        msgs.append("%s: %d region(s), %s..%s (%d steps); dump written at %s" % (
            who, len(regions), hm(t[0]), hm(t[-1]), len(t), hm(dt)))
        good = good and len(regions) == 1 and dt <= t[0] <= dt + step + 3
print("; ".join(msgs))
sys.exit(0 if good else 1)
EOF
	); then
		pass "stacks: dump annotation ($name)" "$out"
	else
		fail "stacks: dump annotation ($name)" "$out"
	fi
done

# ---------------------------------------------------------------- end

collectd_stop 10 >"$IT/.stop-secs" # not in $(...): it must wait for collectd
secs=$(<"$IT/.stop-secs")
# Debian's write_prometheus logs one "MHD_OPTION_EXTERNAL_LOGGER is not the
# first option" at startup (libmicrohttpd's warning about the order in which
# write_prometheus passes its options): not ours, and harmless
errors=$(grep '\[error\]' "$CD/collectd.log" | grep -v 'write_prometheus plugin: MHD_OPTION_EXTERNAL_LOGGER is not the first option')
if [[ ${COLLECTD_EXIT:-1} == 0 && -z $errors ]]; then
	pass "stacks: collectd clean" "exit 0 after $secs s, no error in its log"
else
	fail "stacks: collectd clean" "exit ${COLLECTD_EXIT:-?}; $(head -3 <<<"$errors" | tr '\n' ' ')"
fi
log "stacks.sh took $(elapsed "$T_BEGIN") s"
