/**
 * Independent oracles for the kernel tests: iproute2's `ip -j`, `bridge -j`, `ping`, run as
 * separate programs, so what they report is the kernel's state and not nsnet's reading of
 * it. Nothing here imports the code under test.
 *
 * `ns` is the name of a namespace under /run/netns (`ip -n NS …`, `ip netns exec NS …`);
 * undefined means the sandbox's own namespace ("the host" of the test).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Json = any;

function run(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function nsArgs(ns?: string): string[] {
  return ns === undefined ? [] : ['-n', ns];
}

/** `ip [-n NS] -j ARGS…`, parsed. */
export function ip(args: readonly string[], ns?: string): Json {
  const out = run('ip', [...nsArgs(ns), '-j', ...args]).trim();
  return out === '' ? [] : JSON.parse(out);
}

/** `ip [-n NS] -d -j link show DEV`, or undefined when the device does not exist. */
export function link(dev: string, ns?: string): Json | undefined {
  const r = spawnSync('ip', [...nsArgs(ns), '-d', '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return undefined;
    throw new Error(`ip link show ${dev}${ns ? ` in ${ns}` : ''}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout)[0];
}

/** Device names, in ifindex order. */
export function linkNames(ns?: string): string[] {
  return (ip(['link', 'show'], ns) as Json[]).map((l) => l.ifname);
}

/** `ip [-n NS] -j addr show dev DEV` → ["10.0.0.1/24", …] (without link-locals unless asked). */
export function addrs(dev: string, ns?: string, o: { linkLocal?: boolean } = {}): string[] {
  const [l] = ip(['addr', 'show', 'dev', dev], ns) as Json[];
  return ((l?.addr_info ?? []) as Json[])
    .filter((a) => o.linkLocal || !String(a.local).startsWith('fe80:'))
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** `ip [-n NS] -j addr show dev DEV`, the addr_info entry for one address. */
export function addrInfo(dev: string, address: string, ns?: string): Json | undefined {
  const [l] = ip(['addr', 'show', 'dev', dev], ns) as Json[];
  return ((l?.addr_info ?? []) as Json[]).find((a) => a.local === address);
}

/** `ip [-n NS] [-6] -j route show table T` */
export function routes(o: { ns?: string; family?: 4 | 6; table?: string | number } = {}): Json[] {
  return ip([...(o.family === 6 ? ['-6'] : o.family === 4 ? ['-4'] : []), 'route', 'show', 'table', String(o.table ?? 'main')], o.ns);
}

/** `bridge [-n NS] -j [-d] ARGS…` */
export function bridge(args: readonly string[], ns?: string): Json {
  const out = run('bridge', [...nsArgs(ns), '-j', ...args]).trim();
  return out === '' ? [] : JSON.parse(out);
}

/** `ip -j netns list` → names. */
export function netnsNames(): string[] {
  return (ip(['netns', 'list']) as Json[]).map((n) => n.name).sort();
}

/** Runs a program in a namespace the way the tutorials do: `ip netns exec NS …`. */
export function inNs(ns: string | undefined, argv: readonly string[], timeoutMs = 10_000): { status: number | null; stdout: string; stderr: string } {
  const [cmd, args] = ns === undefined ? [argv[0]!, argv.slice(1)] : ['ip', ['netns', 'exec', ns, ...argv]];
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One ICMP echo from `ns` to `addr` (IPv4 or IPv6); true when answered. */
export function ping(ns: string | undefined, addr: string, o: { count?: number; waitS?: number } = {}): boolean {
  const argv = ['ping', addr.includes(':') ? '-6' : '-4', '-n', '-q', '-c', String(o.count ?? 1), '-i', '0.2', '-W', String(o.waitS ?? 2), addr];
  return inNs(ns, argv).status === 0;
}

export function assertPings(ns: string | undefined, addr: string): void {
  const argv = ['ping', addr.includes(':') ? '-6' : '-4', '-n', '-c', '1', '-W', '2', addr];
  const r = inNs(ns, argv);
  assert.equal(r.status, 0, `ping ${addr} from ${ns ?? 'sandbox'} failed:\n${r.stdout}${r.stderr}`);
}

/** Polls `cond` until true or `ms` pass (namespace teardown in the kernel is asynchronous). */
export async function eventually(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** What a failed operation could leave behind: links of the sandbox and of each named namespace, the namespaces, /run/netns. */
export function worldSnapshot(): Record<string, string> {
  const snap: Record<string, string> = { netns: netnsNames().join(' '), host: linkNames().join(' ') };
  for (const n of netnsNames()) snap[`ns ${n}`] = linkNames(n).join(' ');
  return snap;
}
