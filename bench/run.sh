#!/usr/bin/env bash
# Foundation benchmark: clusterdns against Knot DNS serving the same
# 10,000-service cluster.local, measured with dnsperf over loopback.
#
#   bash bench/run.sh                   # 20 s per run, pinned and unpinned
#   BENCH_SECONDS=3 bash bench/run.sh   # quick check
#
# Pinned runs: the server on CPU 0 (clusterdns then has GOMAXPROCS 1; Knot
# runs 1 UDP, 1 TCP and 1 background worker), dnsperf on CPU 1. Unpinned
# runs: everything free on every CPU, Knot with the same one-worker
# configuration, plus one Knot run with a UDP worker per CPU (its default).
# Before measuring, a few names are asked of both servers with dig and the
# answers must be the same records; afterwards the response codes dnsperf saw
# must agree. Any failure exits non-zero.
#
# Environment (all optional):
#   BENCH_SECONDS      seconds per dnsperf run (20)
#   BENCH_CLIENTS      dnsperf -c (2)
#   BENCH_OUTSTANDING  dnsperf -q, queries in flight (200)
#   BENCH_THREADS      dnsperf -T in pinned runs (1: dnsperf has one CPU)
#   BENCH_THREADS_FREE dnsperf -T in unpinned runs (2)
#   BENCH_PORT         clusterdns port (15353); Knot uses BENCH_PORT+1
#   BENCH_OUT          output folder (bench/.out); each run goes to BENCH_OUT/runs/<time>
#   BENCH_COMPARE      query lines compared between the servers before measuring (2000)
#   BENCH_ONLY         knot | clusterdns: measure one server only (no comparison)
#   BENCH_UNPINNED     0 to skip the unpinned runs
#   BENCH_QUIET_WAIT   seconds to wait, before each run, for other users' load to drop (90)
#   BENCH_GEN_FLAGS    extra flags for bench/gencluster (e.g. "-services 1000 -headless 100")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/.out}
SECS=${BENCH_SECONDS:-20}
CLIENTS=${BENCH_CLIENTS:-2}
OUTSTANDING=${BENCH_OUTSTANDING:-200}
THREADS=${BENCH_THREADS:-1}
THREADS_FREE=${BENCH_THREADS_FREE:-2}
CDNS_PORT=${BENCH_PORT:-15353}
KNOT_PORT=$((CDNS_PORT + 1))
ONLY=${BENCH_ONLY:-}
UNPINNED=${BENCH_UNPINNED:-1}
NCPU=$(nproc)
HZ=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/runs/$STAMP
BIN=$OUT/bin
DATA=$OUT/data
mkdir -p "$RUN" "$BIN"
ln -sfn "runs/$STAMP" "$OUT/latest"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

case $ONLY in "" | knot | clusterdns) ;; *) die "BENCH_ONLY must be knot or clusterdns, not $ONLY" ;; esac
want() { [[ -z $ONLY || $ONLY == "$1" ]]; }

# ---- tools -----------------------------------------------------------------
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || need+=(knot)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null; } ||
		die "cannot install ${need[*]}"
fi
((NCPU >= 2)) || die "need at least 2 CPUs to pin the server and dnsperf apart (have $NCPU)"

# ---- servers ---------------------------------------------------------------
# shellcheck source=bench/knot.sh
source "$ROOT/bench/knot.sh"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hlun "sport = :$1" | grep -q . && ! ss -Hltn "sport = :$1" | grep -q .; }

# port_owners PORT: the pids with a UDP socket bound to PORT.
port_owners() { ss -Hlunp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' '; }

# start_clusterdns PIN LOG: sets SERVER_PID. PIN is a CPU list or "".
start_clusterdns() {
	local pin=$1 logf=$2
	port_free "$CDNS_PORT" || die "port $CDNS_PORT is in use (set BENCH_PORT)"
	${pin:+taskset -c $pin} "$BIN/clusterdns" --listen "127.0.0.1:$CDNS_PORT" \
		--zones-dir "$DATA/zones" --log-level warn >"$logf" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
}

# start_knot PIN UDP_WORKERS LOG: sets SERVER_PID.
start_knot() {
	local pin=$1 workers=$2 logf=$3 dir=$RUN/knot-w$2
	port_free "$KNOT_PORT" || die "port $KNOT_PORT is in use (set BENCH_PORT)"
	knot_conf "$dir" "$DATA" "$KNOT_PORT" "$workers"
	${pin:+taskset -c $pin} knotd -c "$dir/knot.conf" >"$logf" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
}

# wait_ready NAME PORT PID LOG: until the apex SOA is answered (60 s at most).
wait_ready() {
	local name=$1 port=$2 pid=$3 logf=$4 t0=$SECONDS
	for _ in $(seq 600); do
		kill -0 "$pid" 2>/dev/null || { sed 's/^/    /' "$logf" >&2; die "$name exited before answering (log: $logf)"; }
		if dig @127.0.0.1 -p "$port" +norec +time=1 +tries=1 cluster.local SOA 2>/dev/null |
			grep -q 'status: NOERROR'; then
			[[ $(port_owners "$port") == "$pid " ]] ||
				die "$name: UDP port $port is also bound by pid(s) $(port_owners "$port"), which would take part of the queries (set BENCH_PORT)"
			log "$name answers on 127.0.0.1:$port after $((SECONDS - t0)) s (pid $pid, RSS $(rss "$pid" VmRSS) KiB)"
			return 0
		fi
		sleep 0.1
	done
	sed 's/^/    /' "$logf" >&2
	die "$name does not answer on 127.0.0.1:$port after 60 s (log: $logf)"
}

stop_server() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 150); do # 15 s: clusterdns keeps answering a few seconds after SIGTERM
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

forget() { # PID: no longer ours to kill
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # KiB
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }       # utime+stime of all threads
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# ---- correctness -----------------------------------------------------------
# normalize: dig output (one or many responses) as sorted lines
# "<qname> <qtype> RCODE x" and "<qname> <qtype> ANS|AUTH|ADD <rr>",
# whitespace normalized, the SOA serial masked.
normalize() {
	awk '
		/->>HEADER<<-/ { match($0, /status: [A-Z]+/); rc = substr($0, RSTART + 8, RLENGTH - 8); s = ""; q = "?" }
		/^;; QUESTION SECTION:/ { s = "Q"; next }
		s == "Q" && /^;/ { q = substr($1, 2) " " $3; print q " RCODE " rc; s = ""; next }
		/^;; ANSWER SECTION:/ { s = "ANS"; next }
		/^;; AUTHORITY SECTION:/ { s = "AUTH"; next }
		/^;; ADDITIONAL SECTION:/ { s = "ADD"; next }
		/^$/ { s = ""; next }
		s != "" && s != "Q" && !/^;/ { $1 = $1; if ($4 == "SOA") $7 = "SERIAL"; print q " " s " " $0 }' | sort
}

# ask PORT FILE: the normalized responses to the "name type" lines of FILE.
ask() {
	dig @127.0.0.1 -p "$1" +norec +time=2 +tries=2 +bufsize=1232 -f "$2" 2>&1 | normalize
}

# answer PORT NAME TYPE: one normalized response.
answer() { ask "$1" <(echo "$2 $3"); }

# check_server NAME PORT: every sample answers as expected; saves the
# answers under $RUN/answers/NAME.
check_server() {
	local name=$1 port=$2 s q t na nadd rc f i=0 bad=0
	mkdir -p "$RUN/answers/$name"
	for s in "${SAMPLES[@]}"; do
		read -r q t na nadd rc <<<"$s"
		f=$RUN/answers/$name/$i.txt
		i=$((i + 1))
		answer "$port" "$q" "$t" >"$f"
		local got_rc got_na got_add
		got_rc=$(awk '$3 == "RCODE" {print $4}' "$f")
		got_na=$(awk '$3 == "ANS"' "$f" | wc -l)
		got_add=$(awk '$3 == "ADD"' "$f" | wc -l)
		if [[ $got_rc != "$rc" || $got_na != "$na" || $got_add != "$nadd" ]]; then
			log "$name: $q $t: got $got_rc with $got_na answers, $got_add additional; want $rc, $na, $nadd"
			sed 's/^/    /' "$f" >&2
			bad=1
		fi
		if [[ $rc == NXDOMAIN ]] && ! grep -q ' AUTH cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5$' "$f"; then
			log "$name: $q $t: NXDOMAIN without the zone's SOA (TTL 5) in authority"
			sed 's/^/    /' "$f" >&2
			bad=1
		fi
	done
	((bad == 0)) || die "$name answers wrongly (answers in $RUN/answers/$name)"
	log "$name: ${#SAMPLES[@]} sample names answered as expected"
}

# compare_answers: the samples, then the first BENCH_COMPARE (2000) lines of
# the query file, asked of both servers, must give the same responses.
compare_answers() {
	if ! diff -r "$RUN/answers/knot" "$RUN/answers/clusterdns" >"$RUN/answers/diff.txt"; then
		sed 's/^/    /' "$RUN/answers/diff.txt" | head -40 >&2
		die "clusterdns and Knot answer the sample names differently (< knot, > clusterdns; all in $RUN/answers/)"
	fi
	local n=${BENCH_COMPARE:-2000} nq
	head -n "$n" "$DATA/queries.txt" >"$RUN/answers/bulk-queries.txt"
	ask "$KNOT_PORT" "$RUN/answers/bulk-queries.txt" >"$RUN/answers/bulk-knot.txt"
	ask "$CDNS_PORT" "$RUN/answers/bulk-queries.txt" >"$RUN/answers/bulk-clusterdns.txt"
	nq=$(wc -l <"$RUN/answers/bulk-queries.txt")
	for s in knot clusterdns; do
		[[ $(awk '$3 == "RCODE"' "$RUN/answers/bulk-$s.txt" | wc -l) == "$nq" ]] ||
			die "$s did not answer all $nq queries of $RUN/answers/bulk-queries.txt (responses in $RUN/answers/bulk-$s.txt)"
	done
	if ! diff "$RUN/answers/bulk-knot.txt" "$RUN/answers/bulk-clusterdns.txt" >"$RUN/answers/bulk-diff.txt"; then
		sed 's/^/    /' "$RUN/answers/bulk-diff.txt" | head -40 >&2
		die "clusterdns and Knot answer the first $nq queries differently (< knot, > clusterdns; $RUN/answers/bulk-diff.txt)"
	fi
	log "clusterdns and Knot give the same responses (rcode, answer, authority, additional) to ${#SAMPLES[@]} sample names and the first $nq queries"
}

# ---- measurement -----------------------------------------------------------
declare -A QPS LOST NXPCT RCODES SCPU PCPU OTHER RSS_END RSS_PEAK RSS_IDLE
LABELS=()

# sample PID...: "wall-seconds machine-busy-ticks ticks-of-each-pid"
sample() {
	local p out
	out="$(date +%s.%N) $(busy_ticks)"
	for p in "$@"; do out+=" $(proc_ticks "$p" 2>/dev/null || echo 0)"; done
	echo "$out"
}

# wait_quiet: other users share this machine; before each run wait (up to
# BENCH_QUIET_WAIT seconds, 90 by default) until the rest of the machine uses
# less than a fifth of a core, so that both servers meet the same conditions.
wait_quiet() {
	local t0=$SECONDS max=${BENCH_QUIET_WAIT:-90} a b busy
	while :; do
		a=$(busy_ticks)
		sleep 1
		b=$(busy_ticks)
		busy=$((100 * (b - a) / HZ))
		((busy < 20)) && return 0
		if ((SECONDS - t0 >= max)); then
			log "the machine is still busy (others use ${busy}% of a core); measuring anyway"
			return 0
		fi
		((SECONDS - t0 < 2)) && log "waiting for the machine to be quiet (others use ${busy}% of a core)"
	done
}

# measure LABEL PID PORT PINNED(0/1) THREADS
measure() {
	local label=$1 pid=$2 port=$3 pinned=$4 threads=$5 f=$RUN/$1.dnsperf.txt
	local pin=() cmd dp s0 s1 win
	((pinned)) && pin=(taskset -c 1)
	wait_quiet
	RSS_IDLE[$label]=$(rss "$pid" VmRSS)
	cmd=("${pin[@]}" stdbuf -oL dnsperf -s 127.0.0.1 -p "$port" -d "$DATA/queries.txt" -l "$SECS" -t 2
		-c "$CLIENTS" -q "$OUTSTANDING" -T "$threads" -e)
	log "$label: ${cmd[*]}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# ${cmd[*]}" >"$f"
	"${cmd[@]}" >>"$f" 2>&1 &
	dp=$!
	PIDS+=("$dp")
	# CPU use is sampled inside the run (from 0.5 s after dnsperf starts
	# sending to 0.5 s before it stops), not over its start and drain.
	while ! grep -q 'Sending queries' "$f" && kill -0 "$dp" 2>/dev/null; do sleep 0.05; done
	win=$(awk -v s="$SECS" 'BEGIN {w = s - 1; if (w < 0.5) w = 0.5; print w}')
	sleep 0.5
	s0=$(sample "$pid" "$dp")
	sleep "$win"
	s1=$(sample "$pid" "$dp")
	wait "$dp" || die "$label: dnsperf failed (output in $f)"
	forget "$dp"
	kill -0 "$pid" 2>/dev/null || die "$label: the server died during the run"
	RSS_END[$label]=$(rss "$pid" VmRSS)
	RSS_PEAK[$label]=$(rss "$pid" VmHWM)
	QPS[$label]=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$f")
	LOST[$label]=$(awk '/Queries lost:/ {gsub(/[()]/, "", $4); print $4}' "$f")
	RCODES[$label]=$(sed -n 's/^ *Response codes: *//p' "$f")
	NXPCT[$label]=$(awk '/Response codes:/ {for (i = 1; i <= NF; i++) if ($i == "NXDOMAIN") {v = $(i + 2); gsub(/[(),%]/, "", v); print v}}' "$f")
	[[ -n ${QPS[$label]} ]] || die "$label: no result from dnsperf (output in $f)"
	local done_pct
	done_pct=$(awk '/Queries completed:/ {gsub(/[(%)]/, "", $4); print int($4)}' "$f")
	if ((done_pct < 95)); then
		log "$label: only $done_pct% of the queries were answered; port owners now: $(port_owners "$port"); dig says: $(dig @127.0.0.1 -p "$port" +norec +time=1 +tries=1 +short "${SAMPLES[0]%% *}" 2>&1 | head -1)"
		mv "$f" "$f.failed"
		return 1
	fi
	# CPU in % of one core; "others" is what the rest of the machine (other
	# users' processes, interrupts) used meanwhile.
	read -r SCPU[$label] PCPU[$label] OTHER[$label] < <(awk -v a="$s0" -v b="$s1" -v hz="$HZ" 'BEGIN {
		split(a, x, " "); split(b, y, " "); t = y[1] - x[1]
		sv = 100 * (y[3] - x[3]) / hz / t; dp = 100 * (y[4] - x[4]) / hz / t
		o = 100 * (y[2] - x[2]) / hz / t - sv - dp; if (o < 0) o = 0
		printf "%.0f %.0f %.0f\n", sv, dp, o }')
	LABELS+=("$label")
	log "$label: ${QPS[$label]} qps, lost ${LOST[$label]}, ${RCODES[$label]}; server CPU ${SCPU[$label]}%, dnsperf CPU ${PCPU[$label]}%, others ${OTHER[$label]}%; RSS ${RSS_END[$label]} KiB (peak ${RSS_PEAK[$label]} KiB)"
	if grep -Eq 'SERVFAIL|REFUSED|FORMERR|NOTIMP' <<<"${RCODES[$label]}"; then
		die "$label: unexpected response codes: ${RCODES[$label]}"
	fi
}

# ---- build and generate ----------------------------------------------------
cd "$ROOT"
log "output in $RUN"
go build -o "$BIN/gencluster" ./bench/gencluster || die "cannot build bench/gencluster"
if want clusterdns; then
	go build -o "$BIN/clusterdns" ./cmd/clusterdns || die "cannot build ./cmd/clusterdns"
fi
# shellcheck disable=SC2086
"$BIN/gencluster" -out "$DATA" ${BENCH_GEN_FLAGS:-} | tee "$RUN/gencluster.txt" >&2 || die "gencluster failed"
# shellcheck source=/dev/null
source "$DATA/samples.env"

# ---- correctness, both servers up ------------------------------------------
if want clusterdns; then
	start_clusterdns 0 "$RUN/clusterdns-check.log"
	CDNS_PID=$SERVER_PID
	wait_ready clusterdns "$CDNS_PORT" "$CDNS_PID" "$RUN/clusterdns-check.log"
	check_server clusterdns "$CDNS_PORT"
fi
if want knot; then
	start_knot 0 1 "$RUN/knot-check.log"
	KNOT_PID=$SERVER_PID
	wait_ready knot "$KNOT_PORT" "$KNOT_PID" "$RUN/knot-check.log"
	check_server knot "$KNOT_PORT"
fi
[[ -n $ONLY ]] || compare_answers
want clusterdns && stop_server "$CDNS_PID"
want knot && stop_server "$KNOT_PID"

# ---- measurements: one fresh server per run --------------------------------
# A run where the server answered less than 95% of the queries is repeated
# once with a fresh server, then fails the benchmark.
# run_measured SERVER LABEL PIN PORT START...: START... LOG starts the server,
# then one measured run; a run where most queries went unanswered is tried
# once more.
run_measured() {
	local server=$1 label=$2 pin=$3 port=$4 try
	shift 4
	for try in 1 2; do
		"$@" "$RUN/$label.log"
		wait_ready "$label" "$port" "$SERVER_PID" "$RUN/$label.log"
		if measure "$label" "$SERVER_PID" "$port" "$([[ -n $pin ]] && echo 1 || echo 0)" "$([[ -n $pin ]] && echo "$THREADS" || echo "$THREADS_FREE")"; then
			stop_server "$SERVER_PID"
			return 0
		fi
		stop_server "$SERVER_PID"
	done
	die "$label: $server left most queries unanswered twice (dnsperf output in $RUN/$label.dnsperf.txt.failed)"
}
run_clusterdns() { run_measured clusterdns "$1" "$2" "$CDNS_PORT" start_clusterdns "$2"; } # LABEL PIN
run_knot() { run_measured Knot "$1" "$2" "$KNOT_PORT" start_knot "$2" "$3"; }              # LABEL PIN WORKERS

want clusterdns && run_clusterdns clusterdns-pinned 0
want knot && run_knot knot-pinned 0 1
if ((UNPINNED)); then
	want clusterdns && run_clusterdns clusterdns-unpinned ""
	want knot && run_knot knot-unpinned "" 1
	want knot && run_knot "knot-unpinned-${NCPU}w" "" "$NCPU"
fi

# The same query file must get the same mix of response codes from both.
if [[ -z $ONLY ]]; then
	for mode in pinned unpinned; do
		[[ -n ${NXPCT[clusterdns-$mode]:-} && -n ${NXPCT[knot-$mode]:-} ]] || continue
		awk -v a="${NXPCT[clusterdns-$mode]}" -v b="${NXPCT[knot-$mode]}" 'BEGIN {d = a - b; exit !(d > 0.5 || d < -0.5)}' &&
			die "$mode: NXDOMAIN share differs: clusterdns ${NXPCT[clusterdns-$mode]}%, knot ${NXPCT[knot-$mode]}%"
	done
fi

# ---- summary ---------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="${QPS[$1]:-}" -v b="${QPS[$2]:-}" 'BEGIN {if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
{
	echo
	echo "==================== clusterdns foundation benchmark ===================="
	echo "when:     $STAMP   host: $(uname -n), $NCPU CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
	echo "cluster:  $(sed 's/^gencluster: //; s/ -> .*//' "$RUN/gencluster.txt" | head -1)"
	echo "queries:  70% ClusterIP A, 10% SRV, 10% headless A (10 records), 10% NXDOMAIN; dnsperf -e (EDNS 0)"
	echo "dnsperf:  -l $SECS -c $CLIENTS -q $OUTSTANDING, -T $THREADS on CPU 1 when pinned, -T $THREADS_FREE unpinned"
	echo "versions: $(knotd --version 2>&1 | head -1), $(dnsperf -h 2>&1 | grep '^Version'), $(go version | cut -d' ' -f3)"
	echo "CPU columns are % of one core during the run; 'others' is what other processes used meanwhile."
	echo
	printf '%-22s %10s %8s %7s %7s %8s %7s %10s %10s %10s\n' run QPS lost NXDOM% server dnsperf others "RSS before" "RSS end" "RSS peak"
	for l in "${LABELS[@]}"; do
		printf '%-22s %10s %8s %7s %6s%% %7s%% %6s%% %6s MiB %6s MiB %6s MiB\n' "$l" "${QPS[$l]}" "${LOST[$l]}" "${NXPCT[$l]}" \
			"${SCPU[$l]}" "${PCPU[$l]}" "${OTHER[$l]}" "$(mib "${RSS_IDLE[$l]}")" "$(mib "${RSS_END[$l]}")" "$(mib "${RSS_PEAK[$l]}")"
	done
	echo
	if [[ -z $ONLY ]]; then
		echo "ratio clusterdns/knot QPS, pinned (1 core each):     $(ratio clusterdns-pinned knot-pinned)"
		((UNPINNED)) && echo "ratio clusterdns/knot QPS, unpinned (Knot 1 worker): $(ratio clusterdns-unpinned knot-unpinned)"
		((UNPINNED)) && echo "ratio clusterdns/knot QPS, unpinned (Knot $NCPU workers): $(ratio clusterdns-unpinned "knot-unpinned-${NCPU}w")"
		echo "QPS pinned:   clusterdns ${QPS[clusterdns-pinned]}, knot ${QPS[knot-pinned]}"
		((UNPINNED)) && echo "QPS unpinned: clusterdns ${QPS[clusterdns-unpinned]}, knot ${QPS[knot-unpinned]} (1 worker), ${QPS[knot-unpinned-${NCPU}w]} ($NCPU workers)"
		echo "RSS at the end, pinned:   clusterdns $(mib "${RSS_END[clusterdns-pinned]}") MiB, knot $(mib "${RSS_END[knot-pinned]}") MiB"
		((UNPINNED)) && echo "RSS at the end, unpinned: clusterdns $(mib "${RSS_END[clusterdns-unpinned]}") MiB, knot $(mib "${RSS_END[knot-unpinned]}") MiB"
	fi
	for l in "${LABELS[@]}"; do
		if ((${OTHER[$l]} > 20)); then
			echo "note: $l: other processes used ${OTHER[$l]}% of a core during the run: the machine, not the server, set this number"
		elif [[ $l == *-pinned && ${SCPU[$l]} -lt 90 ]]; then
			echo "note: $l: the server used only ${SCPU[$l]}% of its core (dnsperf ${PCPU[$l]}% of CPU 1, others ${OTHER[$l]}%): the load generator, not the server, was the limit"
		fi
	done
	echo "full dnsperf outputs, server logs and sample answers: $RUN"
	echo "========================================================================="
} | tee "$RUN/summary.txt"
