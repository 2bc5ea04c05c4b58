/**
 * sysctl read/write inside a network namespace. Equivalent: `ip netns exec NS sysctl -w K=V`.
 *
 * /proc/sys/net/* resolves the namespace from the *opening* task (fs/proc/proc_sysctl.c
 * looks the table set up through current->nsproxy->net_ns at open time), so the file is
 * opened while the main thread is inside the namespace.
 */
import fs from 'node:fs';
import { NsnetError } from '../../errors.js';
import type { Netns } from './netns.js';

const KEY_RE = /^[A-Za-z0-9_.\-/]+$/;

function keyPath(key: string): string {
  if (!KEY_RE.test(key) || key.includes('..')) {
    throw new NsnetError('SYSCTL_FAILED', `invalid sysctl key "${key}"`, { object: key });
  }
  // The slashed form is taken as is: an interface name may hold dots (`nsnet.1`), which
  // the dotted form cannot tell from separators (sysctl(8) has the same rule).
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

/** Reads a sysctl (dotted `net.ipv4.ip_forward`, or slashed `net/ipv6/conf/nsnet.1/accept_ra` for a name with dots). */
export function readSysctl(ns: Netns, key: string): string {
  const file = keyPath(key);
  try {
    return ns.run(() => fs.readFileSync(file, 'utf8')).trim();
  } catch (e) {
    throw new NsnetError('SYSCTL_FAILED', `read sysctl ${key} in ${ns.label}: ${(e as NodeJS.ErrnoException).code ?? e}`, { object: key, cause: e });
  }
}

/** Writes a sysctl; a no-op when it already holds `value` (avoids needless writes). */
export function writeSysctl(ns: Netns, key: string, value: string): void {
  const file = keyPath(key);
  try {
    ns.run(() => {
      const fd = fs.openSync(file, 'r+');
      try {
        const cur = fs.readFileSync(fd, 'utf8').trim();
        if (cur === value) return;
        fs.writeSync(fd, value, 0);
      } finally {
        fs.closeSync(fd);
      }
    });
  } catch (e) {
    throw new NsnetError('SYSCTL_FAILED', `write sysctl ${key}=${value} in ${ns.label}: ${(e as NodeJS.ErrnoException).code ?? e}`, { object: key, cause: e });
  }
}
