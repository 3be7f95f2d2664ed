#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd (and, when asked, kube-proxy) for
# clusterdns' integration tests, once, into a cache folder keyed by the
# sha256 of this module's go.sum:
#
#   ${CLUSTERDNS_CACHE:-$HOME/.cache/clusterdns}/apiserver/<sha256 of go.sum>/
#
# Usage:
#   bash test/apiserver/build.sh                 # kube-apiserver and etcd
#   bash test/apiserver/build.sh kube-proxy      # only kube-proxy
#   bash test/apiserver/build.sh kube-apiserver etcd kube-proxy
#
# The last line on stdout is the cache folder (export it as
# CLUSTERDNS_APISERVER_BIN for internal/testenv); everything else goes to
# stderr. When the binaries are already there it returns at once. A cold
# build takes about 10 minutes on 2 cores; later builds of a changed go.sum
# reuse Go's build cache because the flags below never change.
#
# internal/testenv/apiserver.go computes the same folder: keep them in step.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

hash="$(sha256sum go.sum | cut -d' ' -f1)"
root="${CLUSTERDNS_CACHE:-${HOME:-${TMPDIR:-/tmp}}/.cache/clusterdns}"
out="$root/apiserver/$hash"

if [ "$#" -eq 0 ]; then
	set -- kube-apiserver etcd
fi

pkg_of() {
	case "$1" in
	kube-apiserver) echo k8s.io/kubernetes/cmd/kube-apiserver ;;
	kube-proxy) echo k8s.io/kubernetes/cmd/kube-proxy ;;
	etcd) echo go.etcd.io/etcd/server/v3 ;;
	*)
		echo "build.sh: unknown binary '$1' (want kube-apiserver, etcd or kube-proxy)" >&2
		return 1
		;;
	esac
}

missing() {
	local b
	for b in "$@"; do
		pkg_of "$b" >/dev/null || exit 2
		[ -x "$out/$b" ] || echo "$b"
	done
}

todo="$(missing "$@")"
if [ -z "$todo" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out"
# One build at a time per folder (parallel test runs, CI and a developer).
exec 9>"$out/.lock"
flock 9
todo="$(missing "$@")"

# One fixed set of flags and environment, so Go's build cache is reused.
export GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)" # v1.37.2
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

for b in $todo; do
	pkg="$(pkg_of "$b")"
	echo "build.sh: building $b ($pkg) into $out" >&2
	start=$SECONDS
	go build -trimpath -ldflags="$ldflags" -o "$out/.$b.tmp" "$pkg" >&2
	mv -f "$out/.$b.tmp" "$out/$b"
	echo "build.sh: built $b in $((SECONDS - start))s" >&2
done
go version >"$out/go-version.txt"

echo "$out"
