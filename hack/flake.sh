#!/usr/bin/env bash
# Runs the whole test suite N times (default 5) and prints, per package, how
# many runs passed and failed, so a flaky package shows up as "3/5".
#
#   bash hack/flake.sh [N]            # or: make flake N=5
#   FLAKE_LOAD=1 bash hack/flake.sh 5 # the same while a build loop loads every CPU
#   FLAKE_PKGS='./test/e2e/ ./server/' bash hack/flake.sh 5
#
# Each run is `go test -count=1` as `make test` runs it (after the same
# set-up: test deps and the test apiserver). Logs: $FLAKE_DIR (a temp folder
# unless set), one file per run. Exits non-zero when any package failed once.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5}"
dir="${FLAKE_DIR:-$(mktemp -d -t clusterdns-flake.XXXXXX)}"
mkdir -p "$dir"
bash hack/install-test-deps.sh
CLUSTERDNS_APISERVER_BIN="$(bash test/apiserver/build.sh | tail -n 1)"
export CLUSTERDNS_APISERVER_BIN

load_pid=
if [ "${FLAKE_LOAD:-0}" = 1 ]; then
	# A build from scratch in a cache of its own, over and over: real CPU
	# load on every core, as a busy CI machine has.
	(
		cache="$(mktemp -d)"
		trap 'rm -rf "$cache"' EXIT
		while :; do GOCACHE="$cache" go build -a -o /dev/null ./... >/dev/null 2>&1 || true; done
	) &
	load_pid=$!
	trap 'kill -- -$load_pid 2>/dev/null || kill $load_pid 2>/dev/null || true' EXIT
fi

# shellcheck disable=SC2086
pkgs=${FLAKE_PKGS:-./...}
for i in $(seq 1 "$n"); do
	start=$(date +%s)
	# shellcheck disable=SC2086
	go test -count=1 -p 2 -timeout 25m $pkgs >"$dir/run-$i.log" 2>&1 || true
	echo "run $i: $(($(date +%s) - start)) s, $(grep -c '^ok' "$dir/run-$i.log" || true) packages ok, $(grep -c '^FAIL[[:space:]]' "$dir/run-$i.log" || true) failed ($dir/run-$i.log)"
done

# ok / FAIL lines of every run → passes and failures per package.
awk '
	$1 == "ok" { pass[$2]++; seen[$2] = 1 }
	$1 == "FAIL" && NF >= 2 && $2 ~ /\// { fail[$2]++; seen[$2] = 1 }
	END {
		bad = 0
		for (p in seen) {
			printf "%-60s %d/%d passed\n", p, pass[p] + 0, pass[p] + fail[p]
			if (fail[p]) bad = 1
		}
		exit bad
	}' "$dir"/run-*.log | sort
