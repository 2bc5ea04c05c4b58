#!/bin/sh
# Runs a command in the same private sandbox the demo and the tests use (src/sandbox):
# a private network + mount namespace, tmpfs over /run, overlays over /etc and /var/lib.
# For trying nsnet by hand without touching the host:
#   scripts/sandbox.sh bash        (as root)
set -eu
[ $# -gt 0 ] || set -- "${SHELL:-/bin/sh}"
exec unshare --net --mount --propagation private -- /bin/sh -c '
set -e
mount -t tmpfs -o mode=0755 nsnet-sandbox /run
mkdir -p /run/.sandbox/etc.up /run/.sandbox/etc.work /run/.sandbox/lib.up /run/.sandbox/lib.work
mount -t overlay nsnet-etc -o lowerdir=/etc,upperdir=/run/.sandbox/etc.up,workdir=/run/.sandbox/etc.work /etc
mount -t overlay nsnet-varlib -o lowerdir=/var/lib,upperdir=/run/.sandbox/lib.up,workdir=/run/.sandbox/lib.work /var/lib
mkdir -p /etc/netns /var/lib/nsnet /run/netns
ip link set lo up
export NSNET_SANDBOX=1
exec "$@"' nsnet-sandbox "$@"
