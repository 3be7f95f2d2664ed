#!/usr/bin/env bash
# The benchmarks beyond the foundation run (bench/run.sh), all on loopback:
#
#  1. cached forwarded answers: clusterdns forwarding to an upstream on
#     127.0.0.2 (a second clusterdns serving the zone upstream.test with
#     10,000 names), the cache warmed by one pass, then dnsperf for
#     BENCH_SECONDS, server pinned to CPU 0 and dnsperf to CPU 1;
#  2. CPU per answered query at fixed rates (dnsperf -Q 5000 and -Q 100000)
#     of the foundation mix against the 10k-service cluster, clusterdns and
#     Knot DNS (one UDP worker) alternating, each alone on CPU 0 with
#     dnsperf on CPU 1: the server's utime+stime (/proc/PID/stat) divided
#     by dnsperf's answered queries; then 5,000 QPS with nothing pinned;
#  3. RSS with 10,000 services and 100,000 endpoints loaded from files
#     (1,000 headless services of 100 endpoints each), idle and after 5 s
#     of queries, and with an empty cluster;
#  4. the Go benchmarks of the hot path (allocs/op), of a cache miss over a
#     loopback upstream, and of one endpoint change with 10,000 services;
#  5. throughput beyond one dnsperf core: bench/loadgen (sendmmsg/recvmmsg
#     over several sockets) and dnsperf, each on CPU 1, against clusterdns
#     and Knot alone on CPU 0, with both sides' CPU; then clusterdns and
#     loadgen unpinned.
#
#   bash bench/extra.sh                  # 20 s runs
#   BENCH_SECONDS=5 bash bench/extra.sh  # quick check
#   BENCH_ROUNDS=5 BENCH_RATES="5000 20000 100000" bash bench/extra.sh
#   BENCH_SECTIONS="2 5" bash bench/extra.sh  # only the CPU per query and the throughput
#   BENCH_BASELINE=main bash bench/extra.sh    # section 2 also runs that commit's build
#   (also BENCH_LOADGEN_SOCKETS, 4, and BENCH_LOADGEN_WINDOW, 64)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECONDS:-20}
RATES=${BENCH_RATES:-5000 100000}
ROUNDS=${BENCH_ROUNDS:-3}
SECTIONS=${BENCH_SECTIONS:-1 2 3 4 5}
OUT=$(mktemp -d /tmp/clusterdns-extra.XXXXXX)
HZ=$(getconf CLK_TCK)
PORT=${BENCH_EXTRA_PORT:-15453}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
log() { printf '[extra %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for t in dnsperf dig taskset knotd; do command -v "$t" >/dev/null || { log "missing $t (make test-deps)"; exit 1; }; done
cd "$ROOT"
# shellcheck source=bench/knot.sh
source "$ROOT/bench/knot.sh"
go build -o "$OUT/clusterdns" ./cmd/clusterdns
go build -o "$OUT/gencluster" ./bench/gencluster
BASELINE=${BENCH_BASELINE:-}
if [[ -n $BASELINE ]]; then # a commit to compare with in section 2, built from git
	mkdir -p "$OUT/baseline-src"
	git -C "$ROOT" archive "$BASELINE" | tar -x -C "$OUT/baseline-src"
	(cd "$OUT/baseline-src" && go build -o "$OUT/clusterdns-baseline" ./cmd/clusterdns)
fi

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
on() { [[ " $SECTIONS " == *" $1 "* ]]; } # section N is to run
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # the whole machine
child_ticks() { awk '{print $16 + $17}' /proc/$$/stat; }                              # this script's waited-for children
# start_server clusterdns|baseline|knot LOG [free]: a fresh server on CPU 0
# (free: unpinned; clusterdns then with GOMAXPROCS = CPUs), answering on
# 127.0.0.1; sets $spid and $sport.
start_server() {
	local name=$1 logname=$2 pin=${3:-} bin=$OUT/clusterdns
	case $name in
	knot)
		sport=$KPORT
		if [[ $pin == free ]]; then knotd -c "$OUT/knot/knot.conf" >"$OUT/$logname-knot.log" 2>&1 &
		else taskset -c 0 knotd -c "$OUT/knot/knot.conf" >"$OUT/$logname-knot.log" 2>&1 &
		fi
		spid=$!
		pids+=("$spid")
		;;
	*)
		sport=$PORT
		[[ $name == baseline ]] && bin=$OUT/clusterdns-baseline
		if [[ $pin == free ]]; then
			"$bin" --health-listen= --metrics-listen= --lame-duck 0s --log-level warn --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$zdir" >"$OUT/$logname.log" 2>&1 &
		else
			taskset -c 0 env GOMAXPROCS=1 "$bin" --health-listen= --metrics-listen= --lame-duck 0s --log-level warn --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$zdir" >"$OUT/$logname.log" 2>&1 &
		fi
		spid=$!
		pids+=("$spid")
		;;
	esac
	wait_dns 127.0.0.1 "$sport" cluster.local
}
# The 10k-service cluster and its query file (sections 2 and 5), Knot's
# configuration serving it.
"$OUT/gencluster" -out "$OUT/c10k" -queries 200000 -check=false >"$OUT/gen10k.txt" 2>&1
zdir=$(find "$OUT/c10k" -name '*.yaml' -printf '%h\n' | head -1)
qfile=$(find "$OUT/c10k" -name '*queries*' | head -1)
KPORT=$((PORT + 1))
knot_conf "$OUT/knot" "$OUT/c10k" "$KPORT" 1


# ---- 1. cached forwarded answers -----------------------------------------
if on 1; then
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
	cat >"$OUT/summary-1.txt" <<-EOS
		cached forwarded answers (10,000 names, pinned server/dnsperf, ${SECS}s): $fwd_qps QPS, lost $fwd_lost, RSS $fwd_rss MiB
	EOS
fi

# ---- 2. CPU per answered query at fixed rates, clusterdns and Knot ------------
if on 2; then
	# Each run starts a fresh server on CPU 0 (clusterdns with GOMAXPROCS=1, Knot
	# with one UDP worker, bench/knot.sh) and dnsperf -Q RATE on CPU 1; the
	# server's utime+stime over the dnsperf run, divided by dnsperf's "Queries
	# completed", is its CPU per answered query. The servers alternate, the
	# order turning every round, so that a busy spell of the shared machine
	# falls on each; the table shows the median and every round, and what the
	# machine's other processes used meanwhile (cores).
	ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
	rss10k=
	# fixed_run SERVER RATE ROUND: appends "server rate round answered ticks
	# ctxsw latency-ms load others-ticks wall-seconds" to $OUT/fixed.tsv.
	fixed_run() {
		local name=$1 rate=$2 round=$3 t0 t1 c0 c1 b0 b1 g0 g1 w0 w1 f="$OUT/fixed-$1-$2-$3.txt"
		start_server "$name" "fixed-$rate-$round"
		t0=$(cputicks "$spid") c0=$(ctxsw "$spid") b0=$(busy_ticks) g0=$(child_ticks) w0=$(date +%s.%N)
		taskset -c 1 dnsperf -s 127.0.0.1 -p "$sport" -d "$qfile" -l "$SECS" -Q "$rate" -c 2 -q 200 -T 1 -e >"$f" 2>&1
		t1=$(cputicks "$spid") c1=$(ctxsw "$spid") b1=$(busy_ticks) g1=$(child_ticks) w1=$(date +%s.%N)
		[[ $name == clusterdns && $rate == 5000 && -z $rss10k ]] && rss10k=$(rss_mib "$spid")
		stop "$spid"
		echo "$name $rate $round $(awk '/Queries completed/ {print $3}' "$f") $((t1 - t0)) $((c1 - c0)) $(awk '/Average Latency/ {printf "%.3f", $4 * 1000}' "$f") $(cut -d' ' -f1 /proc/loadavg) $((b1 - b0 - (t1 - t0) - (g1 - g0))) $(awk -v a="$w0" -v b="$w1" 'BEGIN {print b - a}')" >>"$OUT/fixed.tsv"
	}
	: >"$OUT/fixed.tsv"
	servers="clusterdns knot${BASELINE:+ baseline}"
	for rate in $RATES; do
		for round in $(seq "$ROUNDS"); do
			order=$servers
			((round % 2)) || order=$(tr ' ' '\n' <<<"$servers" | tac | tr '\n' ' ')
			for s in $order; do fixed_run "$s" "$rate" "$round"; done
		done
	done
	# fixed_table: per rate and server the median µs of CPU per answered query,
	# every round's value, the answered rate, context switches per query, the
	# average latency, the load averages and the others' cores; then the ratios.
	fixed_table() {
		sort -k2,2n -k1,1 -k3,3n "$OUT/fixed.tsv" | awk -v hz="$HZ" -v secs="$SECS" '
			function flush(   i, j, t, m) {
				if (key == "") return
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
				m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
				med[key] = m
				printf "  %-7s %-10s %9.0f %9.2f   %-22s %6.2f %8.3f   %-16s %s\n", rate, srv, ans / n / secs, m, rounds, cs / ans, lat / n, loads, others
			}
			{ k = $2 " " $1; if (k != key) { flush(); key = k; n = 0; rounds = ""; loads = ""; others = ""; ans = 0; cs = 0; lat = 0; srv = $1; rate = $2; rates[$2] = 1 }
			  n++; v[n] = 1e6 * $5 / hz / $4; rounds = rounds sprintf("%s%.1f", (n > 1 ? "/" : ""), v[n]); loads = loads (n > 1 ? "/" : "") $8
			  o = $9 / hz / $10; if (o < 0) o = 0; others = others sprintf("%s%.1f", (n > 1 ? "/" : ""), o)
			  ans += $4; cs += $6; lat += $7 }
			END {
				flush()
				for (r in rates) {
					if (med[r " knot"] > 0) printf "  ratio clusterdns/Knot at %s QPS: %.2f (median CPU per answered query)\n", r, med[r " clusterdns"] / med[r " knot"]
					if (med[r " baseline"] > 0) printf "  ratio clusterdns/baseline at %s QPS: %.2f\n", r, med[r " clusterdns"] / med[r " baseline"]
				}
			}'
	}

	# The same 5,000 QPS with nothing pinned: GOMAXPROCS and UDP sockets = CPUs.
	"$OUT/clusterdns" --health-listen= --metrics-listen= --lame-duck 0s --log-level warn --listen 127.0.0.1:$PORT --upstreams= --zones-dir "$zdir" >"$OUT/fixed-free.log" 2>&1 &
	cpid=$!
	pids+=("$cpid")
	wait_dns 127.0.0.1 $PORT cluster.local
	t0=$(cputicks "$cpid")
	dnsperf -s 127.0.0.1 -p $PORT -d "$qfile" -l "$SECS" -Q 5000 -c 2 -T 1 -e >"$OUT/fixed-free.txt" 2>&1
	t1=$(cputicks "$cpid")
	free_cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", d / hz / s}')
	free_lat=$(awk '/Average Latency/ {printf "%.3f ms", $4 * 1000}' "$OUT/fixed-free.txt")
	stop "$cpid"
	{
		echo "CPU per answered query at fixed rates, 10k-service cluster mix (server alone on CPU 0: clusterdns GOMAXPROCS=1, Knot 1 UDP worker;"
		echo "  dnsperf -Q RATE -c 2 -q 200 -T 1 -e on CPU 1; ${SECS}s runs, $ROUNDS rounds alternating${BASELINE:+, baseline = $BASELINE}; load average at"
		echo "  each run's end, and the cores other processes used during it):"
		echo "  rate    server      answered/s  µs/query   every round (µs)       ctxsw/q  avg ms   load             others"
		fixed_table
		echo "fixed 5,000 QPS unpinned (GOMAXPROCS and UDP sockets = CPUs): server CPU $free_cpu core, average latency $free_lat"
		echo "RSS with 10,000 services / 10,000 endpoints (after a 5,000 QPS run): $rss10k MiB"
	} >"$OUT/summary-2.txt"
fi

# ---- 3. RSS with 100,000 endpoints ------------------------------------------
if on 3; then
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
	cat >"$OUT/summary-3.txt" <<-EOS
		RSS with 10,000 services / 100,000 endpoints, 3 s after loading: $rss100k MiB ($rss100k_split MiB), after 5 s of 5,000 QPS: $rss100k_served MiB, then 5 s at full rate: $rss100k_full MiB
		RSS with an empty cluster: $rss_empty MiB
	EOS
fi

# ---- 4. Go benchmarks ---------------------------------------------------------
if on 4; then
	go test ./server -run '^$' -bench 'RespondA$|RespondNXDOMAIN|ForwardCached|ForwardMiss|EndpointChange|IndexHeap100k' -benchtime 1s >"$OUT/gobench.txt" 2>&1 || true
	{
		echo "Go benchmarks (go test ./server -bench ...):"
		grep -E '^Benchmark' "$OUT/gobench.txt"
	} >"$OUT/summary-4.txt"
fi

# ---- 5. throughput beyond one dnsperf core ------------------------------------
if on 5; then
	# bench/loadgen (several sockets, sendmmsg/recvmmsg batches) on CPU 1 against
	# the server alone on CPU 0, then dnsperf the same way; each line shows the
	# server's, the generator's and the other processes' CPU, so the saturated
	# side shows itself. Last, clusterdns and loadgen both unpinned: the
	# ceiling of the whole machine.
	go build -o "$OUT/loadgen" ./bench/loadgen
	LG_SOCKETS=${BENCH_LOADGEN_SOCKETS:-4}
	LG_WINDOW=${BENCH_LOADGEN_WINDOW:-64}
	# tput_run SERVER GEN [PIN]: one fresh server (on CPU 0, or free with
	# PIN=free), one run of GEN (loadgen|dnsperf) on CPU 1 (or free); appends
	# one line to $OUT/tput.txt. CPU figures are over the whole generator run.
	tput_run() {
		local name=$1 gen=$2 pin=${3:-} f="$OUT/tput-$1-$2${3:+-$3}.txt" t0 t1 b0 b1 g0 g1 w0 w1 cmd
		start_server "$name" "tput-$gen${pin:+-$pin}" "$pin"
		if [[ $gen == loadgen ]]; then
			cmd=("$OUT/loadgen" -s 127.0.0.1:"$sport" -d "$qfile" -l "${SECS}s" -sockets "$LG_SOCKETS" -q "$LG_WINDOW" -pid "$spid")
		else
			cmd=(dnsperf -s 127.0.0.1 -p "$sport" -d "$qfile" -l "$SECS" -c 2 -q 200 -T 1 -e)
		fi
		[[ $pin == free ]] || cmd=(taskset -c 1 "${cmd[@]}")
		t0=$(cputicks "$spid") b0=$(busy_ticks) g0=$(child_ticks) w0=$(date +%s.%N)
		"${cmd[@]}" >"$f" 2>&1
		t1=$(cputicks "$spid") b1=$(busy_ticks) g1=$(child_ticks) w1=$(date +%s.%N)
		stop "$spid"
		awk -v n="$name${pin:+ ($pin)}" -v g="$gen" -v s=$((t1 - t0)) -v gt=$((g1 - g0)) -v b=$((b1 - b0)) -v hz="$HZ" -v w="$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b - a}')" -v la="$(cut -d' ' -f1 /proc/loadavg)" '
			/Queries per second/ {q = $4} /Queries lost/ {lost = $4}
			/Latency \(ms\)/ {lat = sprintf("p50 %.3f p99 %.3f", $6, $10)} /Average Latency/ {lat = sprintf("avg %.3f", $4 * 1000)}
			END {o = (b - s - gt) / hz / w; if (o < 0) o = 0
				printf "  %-18s %-8s %8.0f QPS  lost %-8s %-22s  server %4.2f  generator %4.2f  others %4.2f  load %s\n", n, g, q, lost, lat " ms", s / hz / w, gt / hz / w, o, la}' "$f" >>"$OUT/tput.txt"
	}
	: >"$OUT/tput.txt"
	for s in clusterdns knot; do
		tput_run "$s" loadgen
		tput_run "$s" dnsperf
	done
	tput_run clusterdns loadgen free
	{
		echo "throughput, the server alone on CPU 0 and the generator on CPU 1 unless (free) (${SECS}s; loadgen -sockets $LG_SOCKETS -q $LG_WINDOW,"
		echo "  dnsperf -c 2 -q 200 -T 1 -e; CPU in cores over the generator's run, including its start and drain):"
		cat "$OUT/tput.txt"
		echo "  the side near 1 core is the ceiling; when neither is, the machine's other processes were"
	} >"$OUT/summary-5.txt"
fi

cat <<EOF

==================== clusterdns extra benchmarks ====================
$(cat "$OUT"/summary-*.txt)
outputs: $OUT
=====================================================================
EOF
