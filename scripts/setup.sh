#!/bin/sh
# Installs everything nsnet needs on a fresh Debian 12 machine (as root), then builds it.
# Idempotent: a second run only re-checks.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="iproute2 nftables libnftables1 iptables iputils-ping dnsutils tcpdump conntrack util-linux procps
  containernetworking-plugins netavark aardvark-dns etcd-server etcd-client iperf3 dnsperf
  podman containerd runc busybox-static"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

# Node dependencies from package-lock.json. better-sqlite3 builds from source here (its
# prebuilt download is unreachable by design); koffi ships its binaries in the package.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
npm run --silent build
