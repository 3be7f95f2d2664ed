#!/usr/bin/env bash
# Node proxy benchmarks (issue 6), in throw-away network namespaces:
#
#   1. connection setup through a ClusterIP (DNATed by nodeproxy) versus
#      straight to the backend pod: TCP connect and a small HTTP GET,
#      BENCH_CONNECTS (2000) sequential connections of each kind;
#   2. kube-proxy (nftables mode) and nodeproxy (--source kubernetes) side
#      by side against the same real API server with BENCH_SERVICES
#      (1000,10000) services × 10 endpoints: first full sync, RSS, and
#      BENCH_CHANGES (20) single endpoint changes until the data plane has
#      them.
#
# Usage: sudo bash bench/nodeproxy.sh            (root: network namespaces, nft)
#   BENCH_SERVICES=1000 bash bench/nodeproxy.sh  (quicker: about a minute)
#   BENCH_PROXIES=nodeproxy bash bench/nodeproxy.sh
#   BENCH_ONLY=latency|compare bash bench/nodeproxy.sh
#   BENCH_LOAD=api: create all services through the API (slow past a few
#     thousand: kube-apiserver's ClusterIP allocator; by default only the
#     first 1,000 are, the rest written straight into its etcd)
#
# Needs root, ip, nft, and the test API server (bash test/apiserver/build.sh,
# built here when missing); kube-proxy is built here too
# (bash test/apiserver/build.sh kube-proxy, under a minute once the API
# server's build cache exists) and left out, with a note, when that fails.
# About 4-5 minutes on 2 cores, most of it kube-proxy's first sync of
# 10,000 services. The summary is printed; test output and each proxy's log
# are kept under $BENCH_OUT (default /tmp/clusterdns-bench/nodeproxy-<time>).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="${BENCH_OUT:-/tmp/clusterdns-bench/nodeproxy-$STAMP}"
mkdir -p "$OUT"
log() { echo "nodeproxy.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[[ $(id -u) == 0 ]] || die "needs root (network namespaces, nftables)"
for tool in ip nft go; do
	command -v "$tool" >/dev/null || die "needs $tool on PATH"
done
cd "$ROOT" || die "cannot cd to $ROOT"

ONLY=${BENCH_ONLY:-}
export CLUSTERDNS_BENCH=1
export CLUSTERDNS_BENCH_CONNECTS=${BENCH_CONNECTS:-2000}
export CLUSTERDNS_BENCH_SERVICES=${BENCH_SERVICES:-1000,10000}
export CLUSTERDNS_BENCH_CHANGES=${BENCH_CHANGES:-20}
export CLUSTERDNS_BENCH_PROXIES=${BENCH_PROXIES:-kube-proxy,nodeproxy}
export CLUSTERDNS_BENCH_LOAD=${BENCH_LOAD:-etcd}
export CLUSTERDNS_BENCH_LOGDIR=$OUT

if [[ $ONLY != latency ]]; then
	bins=$(bash test/apiserver/build.sh 2>"$OUT/build.log" | tail -1) ||
		die "cannot build the test API server (log: $OUT/build.log)"
	export CLUSTERDNS_APISERVER_BIN=$bins
	if [[ $CLUSTERDNS_BENCH_PROXIES == *kube-proxy* ]]; then
		log "building kube-proxy (cached after the first time)"
		bash test/apiserver/build.sh kube-proxy >/dev/null 2>>"$OUT/build.log" ||
			log "kube-proxy does not build (log: $OUT/build.log): the comparison runs nodeproxy alone"
	fi
fi

log "compiling the test binary"
go test -c -o "$OUT/nodeproxy.test" ./nodeproxy/ 2>"$OUT/compile.log" || die "go test -c ./nodeproxy/ failed (log: $OUT/compile.log)"

status=0
run() { # NAME TESTREGEX TIMEOUT
	log "running $1 (output: $OUT/$1.txt)"
	# The test binary runs in the package folder, as go test would.
	(cd nodeproxy && "$OUT/nodeproxy.test" -test.run "^$2\$" -test.v -test.count 1 -test.timeout "$3") >"$OUT/$1.txt" 2>&1 || {
		log "$1 FAILED (exit $?); the end of its output:"
		tail -40 "$OUT/$1.txt" >&2
		status=1
	}
	grep '^nodeproxy-bench: ' "$OUT/$1.txt" | sed 's/^nodeproxy-bench: //' >"$OUT/$1.summary"
	if grep -q -- '--- SKIP' "$OUT/$1.txt"; then
		grep -A2 -- '--- SKIP' "$OUT/$1.txt" >&2
	fi
}

t0=$SECONDS
[[ -z $ONLY || $ONLY == latency ]] && run latency TestBenchConnectLatency 5m
[[ -z $ONLY || $ONLY == compare ]] && run compare TestBenchProxyComparison 15m

{
	echo
	echo "==================== node proxy benchmark ===================="
	echo "when: $STAMP   host: $(uname -n), $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	for f in latency compare; do
		[[ -s $OUT/$f.summary ]] || continue
		echo
		cat "$OUT/$f.summary"
	done
	echo
	echo "took $((SECONDS - t0)) s; full outputs in $OUT"
	echo "=============================================================="
} | tee "$OUT/summary.txt"
exit $status
