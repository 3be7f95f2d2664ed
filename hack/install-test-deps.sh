#!/usr/bin/env bash
# Installs, from Debian's packages, the tools the test suite uses and the
# machine lacks: dig, dnsperf, knotd (benchmark reference), nft, ip, conntrack,
# curl, python3 and node (backends of the node proxy's end-to-end test).
# kdig (knot-dnsutils) is the DNS over TLS client.
set -euo pipefail
declare -A pkg=(
  [dig]=dnsutils [dnsperf]=dnsperf [knotd]=knot [nft]=nftables [ip]=iproute2
  [conntrack]=conntrack [curl]=curl [python3]=python3 [node]=nodejs [taskset]=util-linux
  [getent]=libc-bin [kdig]=knot-dnsutils
)
missing=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
