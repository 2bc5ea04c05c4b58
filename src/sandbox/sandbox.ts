/**
 * A private sandbox for the demo and the tests: the calling program re-executes itself
 * (same Node, same flags, same arguments, same stdio) inside a private network + mount
 * namespace, so everything it does to the kernel — namespaces, links, routes, sysctls,
 * nftables tables — and to /run, /etc/netns and /var/lib/nsnet lives and dies with it:
 *
 *   unshare --net --mount --propagation private
 *   tmpfs over /run                          → /run/netns is private
 *   overlay (upper on tmpfs) over /etc        → /etc/netns/* never reaches the host
 *   overlay (upper on tmpfs) over /var/lib    → nor does the state dir /var/lib/nsnet
 *   lo up
 *
 * Call `enterSandbox()` before doing anything else. In the parent it never returns (it
 * exits with the child's status); in the child it returns after checking where it is.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { Netns } from '../kernel/netns/netns.js';
import { setLinkUp } from '../kernel/netlink/route/link.js';

const SETUP = `set -e
mount -t tmpfs -o mode=0755 nsnet-sandbox /run
mkdir -p /run/.sandbox/etc.up /run/.sandbox/etc.work /run/.sandbox/lib.up /run/.sandbox/lib.work
mount -t overlay nsnet-etc -o lowerdir=/etc,upperdir=/run/.sandbox/etc.up,workdir=/run/.sandbox/etc.work /etc
mount -t overlay nsnet-varlib -o lowerdir=/var/lib,upperdir=/run/.sandbox/lib.up,workdir=/run/.sandbox/lib.work /var/lib
mkdir -p /etc/netns /var/lib/nsnet /run/netns
exec "$@"`;

function netnsInode(): string {
  return String(fs.statSync('/proc/self/ns/net').ino);
}

export function inSandbox(): boolean {
  return process.env.NSNET_SANDBOX === '1';
}

export function enterSandbox(): void {
  if (!inSandbox()) {
    if (process.getuid?.() !== 0) {
      process.stderr.write('nsnet sandbox: needs root (it creates private network and mount namespaces)\n');
      process.exit(1);
    }
    const r = spawnSync(
      'unshare',
      ['--net', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', SETUP, 'nsnet-sandbox',
        process.execPath, ...process.execArgv, ...process.argv.slice(1)],
      { stdio: 'inherit', env: { ...process.env, NSNET_SANDBOX: '1', NSNET_SANDBOX_PARENT_NETNS: netnsInode() } },
    );
    if (r.error) {
      process.stderr.write(`nsnet sandbox: could not start unshare: ${r.error.message}\n`);
      process.exit(1);
    }
    process.exit(r.status ?? 1);
  }
  // Inside: refuse to go on if, somehow, this is still the parent's network namespace.
  if (netnsInode() === process.env.NSNET_SANDBOX_PARENT_NETNS) {
    process.stderr.write('nsnet sandbox: still in the parent network namespace; refusing to go on\n');
    process.exit(1);
  }
  setLinkUp(Netns.host(), 'lo');
  process.env.NSNET_STATE_DIR ??= '/var/lib/nsnet';
}
