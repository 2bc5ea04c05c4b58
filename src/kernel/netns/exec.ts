/**
 * Running a program inside a named namespace with the semantics of `ip netns exec`
 * (ip/ipnetns.c: netns_exec → netns_switch): the program joins the network namespace, gets
 * a private mount namespace in which every entry of /etc/netns/NAME/ is bind-mounted over
 * the same name in /etc (so a per-namespace resolv.conf works) and /sys is remounted so
 * /sys/class/net shows the namespace's devices.
 *
 * Node cannot enter a new *mount* namespace itself (unshare(CLONE_NEWNS) fails with EINVAL
 * while threads share the filesystem context), so the mount work happens in a short-lived
 * child: the main thread enters the network namespace just while it forks (a child
 * inherits the forking thread's namespaces), and util-linux `unshare --mount` plus a
 * POSIX shell do the bind mounts before exec'ing the program. This is not a hot path.
 */
import { spawn, spawnSync, type SpawnOptions, type SpawnSyncReturns, type ChildProcess } from 'node:child_process';
import { Netns, validateNetnsName } from './netns.js';

const SETUP = [
  'ns=$1; shift',
  'if [ -d "/etc/netns/$ns" ]; then',
  '  for f in "/etc/netns/$ns"/* "/etc/netns/$ns"/.[!.]*; do',
  '    [ -e "$f" ] || continue',
  '    t="/etc/${f##*/}"',
  '    [ -e "$t" ] || [ -L "$t" ] || continue',
  '    mount --bind "$f" "$t" || exit 126',
  '  done',
  'fi',
  'umount -l /sys 2>/dev/null; mount -t sysfs sysfs /sys 2>/dev/null',
  'exec "$@"',
].join('\n');

function wrap(name: string, argv: readonly string[]): [string, string[]] {
  validateNetnsName(name);
  if (argv.length === 0) throw new Error('execInNetns: no command');
  return ['unshare', ['--mount', '--propagation', 'slave', '--', '/bin/sh', '-c', SETUP, 'nsnet-exec', name, ...argv]];
}

/** Starts `argv` inside namespace `name` (see the file comment). */
export function spawnInNetns(name: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const ns = Netns.open(name);
  try {
    const [cmd, args] = wrap(name, argv);
    return ns.run(() => spawn(cmd, args, options));
  } finally {
    ns.close();
  }
}

export function spawnSyncInNetns(name: string, argv: readonly string[], options: Parameters<typeof spawnSync>[2] = {}): SpawnSyncReturns<string | Buffer> {
  const ns = Netns.open(name);
  try {
    const [cmd, args] = wrap(name, argv);
    return ns.run(() => spawnSync(cmd, args, options));
  } finally {
    ns.close();
  }
}
