#!/usr/bin/env bash
# The benchmarks beyond the foundation run (bench/run.sh), all on loopback:
#
#  1. cached forwarded answers: clusterdns forwarding to an upstream on
#     127.0.0.2 (a second clusterdns serving the zone upstream.test with
#     10,000 names), the cache warmed by one pass, then dnsperf for
#     BENCH_SECONDS, server pinned to CPU 0 and dnsperf to CPU 1;
#  2. a fixed 5,000 QPS of the foundation mix against the 10k-service
#     cluster: the server's CPU (from /proc/PID/stat) and dnsperf's average
#     latency, pinned (server CPU 0, dnsperf CPU 1) and unpinned;
#  3. RSS with 10,000 services and 100,000 endpoints loaded from files
#     (1,000 headless services of 100 endpoints each), idle and after 5 s
#     of queries, and with an empty cluster;
#  4. the Go benchmarks of the hot path (allocs/op), of a cache miss over a
#     loopback upstream, and of one endpoint change with 10,000 services.
#
#   bash bench/extra.sh                  # 20 s runs
#   BENCH_SECONDS=5 bash bench/extra.sh  # quick check
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECONDS:-20}
OUT=$(mktemp -d /tmp/clusterdns-extra.XXXXXX)
HZ=$(getconf CLK_TCK)
PORT=${BENCH_EXTRA_PORT:-15453}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
log() { printf '[extra %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for t in dnsperf dig taskset; do command -v "$t" >/dev/null || { log "missing $t (make test-deps)"; exit 1; }; done
cd "$ROOT"
go build -o "$OUT/clusterdns" ./cmd/clusterdns
go build -o "$OUT/gencluster" ./bench/gencluster

cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
rss_split() { awk '/RssAnon|RssFile/ {printf "%s%s %.1f", sep, $1, $2/1024; sep=", "}' "/proc/$1/status"; }
wait_dns() { # addr port name: until the zone answers NOERROR (SERVFAIL while loading)
	for _ in $(seq 300); do
		dig +time=1 +tries=1 @"$1" -p "$2" "$3" SOA 2>/dev/null | grep -q 'status: NOERROR' && return 0
		sleep 0.1
	done
	log "server on $1:$2 did not answer"; return 1
}
started=
start() { # name cpu args...; sets $started to the PID
	local name=$1 cpu=$2; shift 2
	taskset -c "$cpu" env GOMAXPROCS=1 "$OUT/clusterdns" --health-listen= --metrics-listen= --lame-duck 0s --log-level warn "$@" >"$OUT/$name.log" 2>&1 &
	started=$!
	pids+=("$started")
}
stop() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }
qps() { awk '/Queries per second/ {print $4}' "$1"; }

# ---- 1. cached forwarded answers -----------------------------------------
mkdir -p "$OUT/up"
{
	echo '$ORIGIN upstream.test.'
	echo '@ 3600 IN SOA ns h 1 3600 600 86400 300'
	for i in $(seq 0 9999); do echo "n$i 3600 IN A 192.0.2.$((i % 250 + 1))"; done
} >"$OUT/up/upstream.test.zone"
for i in $(seq 0 9999); do echo "n$i.upstream.test A"; done >"$OUT/fwd.queries"
start upstream 1 --listen 127.0.0.2:$PORT --upstreams= --zones-dir "$OUT/up"; upid=$started
wait_dns 127.0.0.2 $PORT upstream.test
start forwarder 0 --listen 127.0.0.1:$PORT --upstreams 127.0.0.2:$PORT --cache-size 20000 --prefetch 0; fpid=$started
wait_dns 127.0.0.1 $PORT cluster.local
dnsperf -s 127.0.0.1 -p $PORT -d "$OUT/fwd.queries" -n 1 -c 2 -q 100 >"$OUT/fwd-warm.txt" 2>&1
stop "$upid" # from now on only the cache answers
taskset -c 1 dnsperf -s 127.0.0.1 -p $PORT -d "$OUT/fwd.queries" -l "$SECS" -c 2 -q 200 -T 1 >"$OUT/fwd.txt" 2>&1
fwd_qps=$(qps "$OUT/fwd.txt")
fwd_lost=$(awk '/Queries lost/ {print $3, $4}' "$OUT/fwd.txt")
fwd_rss=$(rss_mib "$fpid")
stop "$fpid"

# ---- 2. fixed 5,000 QPS on the 10k-service cluster ---------------------------
"$OUT/gencluster" -out "$OUT/c10k" -queries 200000 -check=false >"$OUT/gen10k.txt" 2>&1
zdir=$(find "$OUT/c10k" -name '*.yaml' -printf '%h\n' | head -1)
qfile=$(find "$OUT/c10k" -name '*queries*' | head -1)
start fixed 0 --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$zdir"; cpid=$started
wait_dns 127.0.0.1 $PORT cluster.local
t0=$(cputicks "$cpid")
taskset -c 1 dnsperf -s 127.0.0.1 -p $PORT -d "$qfile" -l "$SECS" -Q 5000 -c 2 -T 1 >"$OUT/fixed.txt" 2>&1
t1=$(cputicks "$cpid")
fixed_cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", d / hz / s}')
fixed_lat=$(awk '/Average Latency/ {printf "%.3f ms", $4 * 1000}' "$OUT/fixed.txt")
fixed_qps=$(qps "$OUT/fixed.txt")
rss10k=$(rss_mib "$cpid")
stop "$cpid"
# The same rate with nothing pinned: GOMAXPROCS and UDP sockets = CPUs.
"$OUT/clusterdns" --health-listen= --metrics-listen= --lame-duck 0s --log-level warn --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$zdir" >"$OUT/fixed-free.log" 2>&1 &
cpid=$!
pids+=("$cpid")
wait_dns 127.0.0.1 $PORT cluster.local
t0=$(cputicks "$cpid")
dnsperf -s 127.0.0.1 -p $PORT -d "$qfile" -l "$SECS" -Q 5000 -c 2 -T 1 >"$OUT/fixed-free.txt" 2>&1
t1=$(cputicks "$cpid")
free_cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", d / hz / s}')
free_lat=$(awk '/Average Latency/ {printf "%.3f ms", $4 * 1000}' "$OUT/fixed-free.txt")
stop "$cpid"

# ---- 3. RSS with 100,000 endpoints ------------------------------------------
"$OUT/gencluster" -out "$OUT/c100k" -endpoints 100 -queries 1000 -check=false >"$OUT/gen100k.txt" 2>&1
zdir=$(find "$OUT/c100k" -name '*.yaml' -printf '%h\n' | head -1)
start big 0 --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$zdir"; bpid=$started
wait_dns 127.0.0.1 $PORT cluster.local
sleep 3 # the full build's garbage (and the binary's startup pages) are returned to the OS after the first snapshot
rss100k=$(rss_mib "$bpid")
rss100k_split=$(rss_split "$bpid")
qfile=$(find "$OUT/c100k" -name '*queries*' | head -1)
taskset -c 1 dnsperf -s 127.0.0.1 -p $PORT -d "$qfile" -l 5 -Q 5000 -c 2 -T 1 >"$OUT/big.txt" 2>&1
rss100k_served=$(rss_mib "$bpid")
taskset -c 1 dnsperf -s 127.0.0.1 -p $PORT -d "$qfile" -l 5 -c 2 -q 200 -T 1 >"$OUT/big-full.txt" 2>&1
rss100k_full=$(rss_mib "$bpid")
stop "$bpid"
# An empty cluster: what the process itself costs.
mkdir -p "$OUT/empty"
start empty 0 --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$OUT/empty"; epid=$started
wait_dns 127.0.0.1 $PORT cluster.local
sleep 3
rss_empty=$(rss_mib "$epid")
stop "$epid"

# ---- 4. Go benchmarks ---------------------------------------------------------
go test ./server -run '^$' -bench 'RespondA$|RespondNXDOMAIN|ForwardCached|ForwardMiss|EndpointChange|IndexHeap100k' -benchtime 1s >"$OUT/gobench.txt" 2>&1 || true

cat <<EOF

==================== clusterdns extra benchmarks ====================
cached forwarded answers (10,000 names, pinned server/dnsperf, ${SECS}s): $fwd_qps QPS, lost $fwd_lost, RSS $fwd_rss MiB
fixed 5,000 QPS, 10k-service cluster mix: server CPU $fixed_cpu core, average latency $fixed_lat (dnsperf: $fixed_qps QPS; server pinned to CPU 0, GOMAXPROCS=1)
  the same unpinned (GOMAXPROCS and UDP sockets = CPUs): server CPU $free_cpu core, average latency $free_lat
RSS with 10,000 services / 10,000 endpoints (after the 5,000 QPS run): $rss10k MiB
RSS with 10,000 services / 100,000 endpoints, 3 s after loading: $rss100k MiB ($rss100k_split MiB), after 5 s of 5,000 QPS: $rss100k_served MiB, then 5 s at full rate: $rss100k_full MiB
RSS with an empty cluster: $rss_empty MiB
Go benchmarks (go test ./server -bench ...):
$(grep -E '^Benchmark' "$OUT/gobench.txt")
outputs: $OUT
=====================================================================
EOF
