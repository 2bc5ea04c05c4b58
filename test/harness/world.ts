/**
 * Helpers for kernel tests that need "the world": the nsnet CLI, commands inside
 * namespaces, traffic probes, and an "outside" namespace holding a documentation-range
 * address (RFC 5737) reached through an uplink veth. Tests only ever send traffic to
 * namespaces they created, or to loopback.
 *
 *   sandbox (the test's "host")  uplink0 203.0.113.1/24, 2001:db8:ff::1/64, default via .2
 *        │ veth
 *   outside                      eth0 203.0.113.2/24, 2001:db8:ff::2/64   ("the internet")
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
// The shipped executable (package.json bin): the CommonJS entry that forwards to `nsnet serve`.
export const CLI = path.join(ROOT, 'dist/src/cli/nsnet.cjs');
export const OUTSIDE_V4 = '203.0.113.2';
export const UPLINK_V4 = '203.0.113.1';
export const OUTSIDE_V6 = '2001:db8:ff::2';
export const UPLINK_V6 = '2001:db8:ff::1';

export interface Run { status: number | null; stdout: string; stderr: string }

export function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, env: opts.env ?? process.env, timeout: opts.timeout ?? 30_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function sh(script: string): Run {
  return run('/bin/sh', ['-c', script]);
}

/** Runs a shell script and throws with its stderr if it fails. */
export function must(script: string): string {
  const r = sh(script);
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${script}\n${r.stderr}`);
  return r.stdout;
}

/** The nsnet CLI, as a user runs it (a new process per call). */
export function nsnet(...args: string[]): Run {
  return run(process.execPath, [CLI, ...args]);
}

/** nsnet that must succeed; returns stdout. */
export function nsnetOk(...args: string[]): string {
  const r = nsnet(...args);
  if (r.status !== 0) throw new Error(`nsnet ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export function inNs(ns: string, argv: string[], timeout = 15_000): Run {
  return run('ip', ['netns', 'exec', ns, ...argv], { timeout });
}

export function ping(ns: string, ip: string): boolean {
  return inNs(ns, ['ping', ip.includes(':') ? '-6' : '-4', '-c', '1', '-W', '1', ip]).status === 0;
}

export function ipJson(args: string): any {
  return JSON.parse(must(`ip -j ${args}`) || '[]');
}

/** Creates the "outside" namespace and the uplink; sets the sandbox's default routes via it. */
export function makeOutside(): void {
  must(`ip netns add outside
ip link add uplink0 type veth peer name eth0 netns outside
ip addr add ${UPLINK_V4}/24 dev uplink0
ip addr add ${UPLINK_V6}/64 dev uplink0 nodad
ip link set uplink0 up
ip -n outside addr add ${OUTSIDE_V4}/24 dev eth0
ip -n outside addr add ${OUTSIDE_V6}/64 dev eth0 nodad
ip -n outside link set eth0 up
ip -n outside link set lo up
ip route add default via ${OUTSIDE_V4}
ip -6 route add default via ${OUTSIDE_V6}`);
}

export function removeOutside(): void {
  sh('ip netns del outside; ip link del uplink0 2>/dev/null; true');
}

const SERVER = `
const net = require('net');
const port = Number(process.argv[1]);
const srv = net.createServer((s) => { s.end(JSON.stringify({ from: s.remoteAddress.replace(/^::ffff:/, ''), port: s.localPort }) + '\\n'); });
srv.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write('ready\\n'));
`;

/** A TCP server in `ns` on `port` that answers each connection with the client's address. */
export async function tcpServer(ns: string, port: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`tcp server in ${ns}:${port} did not start`)), 10_000);
    child.stdout!.once('data', () => { clearTimeout(t); resolve(); });
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`tcp server in ${ns} exited ${c}`)); });
  });
  return child;
}

const CLIENT = `
const net = require('net');
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 1500 });
let buf = '';
s.on('data', (d) => { buf += d; });
s.on('end', () => { process.stdout.write(buf); process.exit(0); });
s.on('timeout', () => { process.exit(2); });
s.on('error', () => { process.exit(3); });
`;

/** Connects from `ns` to ip:port; returns the address the server saw, or null if unreachable. */
export function tcpProbe(ns: string, ip: string, port: number): string | null {
  const r = inNs(ns, [process.execPath, '-e', CLIENT, ip, String(port)], 10_000);
  if (r.status !== 0) return null;
  try { return (JSON.parse(r.stdout) as { from: string }).from; } catch { return null; }
}

export function kill(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null) child.kill('SIGKILL');
}

/** Everything a failed operation must leave exactly as it was. */
export function kernelAndStore(): string {
  const links = must('ip -o link show').split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0]).filter(Boolean).sort().join(' ');
  const addrs = must('ip -o addr show').split('\n').map((l) => l.split(/\s+/).slice(1, 4).join(' ')).sort().join('; ');
  const netns = must('ip netns list').split('\n').map((l) => l.split(' ')[0]).sort().join(' ');
  const nft = must('nft list ruleset');
  const status = nsnetOk('status', '--json');
  const etc = fs.existsSync('/etc/netns') ? fs.readdirSync('/etc/netns').sort().join(' ') : '';
  return JSON.stringify({ links, addrs, netns, nft, status, etc }, null, 1);
}

/**
 * Runs an nsnet command that must be refused: exit status `exit` (1: refused, 2: usage;
 * either when omitted, never 70, a bug),
 * exactly one line on stderr starting "nsnet: " and matching `message`, and kernel and store
 * exactly as before.
 */
export function expectRefused(args: string[], message: RegExp, exit?: 1 | 2): void {
  const before = kernelAndStore();
  const r = nsnet(...args);
  if (exit === undefined) assert.ok(r.status === 1 || r.status === 2, `nsnet ${args.join(' ')} should be refused (exit 1 or 2), got ${r.status}; stderr: ${r.stderr}`);
  else assert.equal(r.status, exit, `nsnet ${args.join(' ')} should exit ${exit}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one-line error, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^nsnet: /);
  assert.match(lines[0]!, message);
  assert.equal(kernelAndStore(), before, `nsnet ${args.join(' ')} changed kernel or store`);
}

export { sleep };
