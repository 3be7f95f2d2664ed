#!/usr/bin/env bash
# Builds the release binaries of clusterdns into OUTDIR: static (no cgo),
# reproducible paths (-trimpath), stripped (-s -w).
#
#   bash deploy/build-binaries.sh OUTDIR
#
# The Dockerfile's build stage runs this script, and so does
# test/deploy (which checks that the binaries are static), so the image is
# built by the very commands that are tested. cmd/nodeproxy is skipped, with
# a note on stderr, while it does not exist.
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/clusterdns" ./cmd/clusterdns
if [ -d cmd/nodeproxy ]; then
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/nodeproxy" ./cmd/nodeproxy
else
	echo "build-binaries.sh: cmd/nodeproxy does not exist yet, nodeproxy not built" >&2
fi
