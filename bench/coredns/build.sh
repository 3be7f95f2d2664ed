#!/usr/bin/env bash
# Builds CoreDNS (the version bench/coredns/go.mod requires) once, into a
# cache folder keyed by the sha256 of this module's go.sum:
#
#   ${CLUSTERDNS_CACHE:-$HOME/.cache/clusterdns}/coredns/<sha256 of go.sum>/coredns
#
# Usage: bash bench/coredns/build.sh
#
# The last line on stdout is the cache folder (export it as
# CLUSTERDNS_COREDNS_BIN for test/kube's benchmarks); everything else goes to
# stderr. When the binary is already there it returns at once. A cold build
# takes several minutes on 2 cores. Only the benchmarks use CoreDNS (they run
# clusterdns alone, and say so, when it is missing); the test suite never
# needs it. test/kube/bench_test.go computes the same folder: keep them in step.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

hash="$(sha256sum go.sum | cut -d' ' -f1)"
root="${CLUSTERDNS_CACHE:-${HOME:-${TMPDIR:-/tmp}}/.cache/clusterdns}"
out="$root/coredns/$hash"

if [ -x "$out/coredns" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out"
# One build at a time per folder (parallel benchmark runs and a developer).
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/coredns" ]; then
	export GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
	echo "build.sh: building CoreDNS $(go list -m -f '{{.Version}}' github.com/coredns/coredns) into $out" >&2
	start=$SECONDS
	go build -trimpath -ldflags="-s -w" -o "$out/.coredns.tmp" github.com/coredns/coredns >&2
	mv -f "$out/.coredns.tmp" "$out/coredns"
	go version >"$out/go-version.txt"
	echo "build.sh: built coredns in $((SECONDS - start))s" >&2
fi

echo "$out"
