/**
 * Helpers for the DNS tests: `dig` inside namespaces (parsed), the nsnet commands that
 * change DNS-relevant state, the tests' upstream server, and the service's state.
 * Everything goes through the shipped `nsnet` executable: nothing but `nsnet connect` starts
 * the service and writes resolv.conf, and `nsnet dns …` is the real command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { inNs, nsnet, nsnetOk, type Run } from '../harness/world.js';
import { dnsServicePid, stopDnsService } from '../../src/dns/control.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
export const STATE = process.env.NSNET_STATE_DIR ?? '/var/lib/nsnet';

/** `nsnet dns ARGS…`. */
export function dnsCli(...args: string[]): Run {
  return nsnet('dns', ...args);
}

export interface DnsState { running: boolean; pid?: number; status?: { wanted: string[]; listeners: Array<{ address: string; error?: string }> }; live?: { counters: Record<string, number> } }

export function dnsState(): DnsState {
  const r = dnsCli('status', '--json');
  if (r.status !== 0) throw new Error(`nsnet dns status failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as DnsState;
}

/** `nsnet ARGS…` that changes state (the namespaces it touches are for the reader). */
export function change(args: string[], _namespaces: string[] = []): string {
  return nsnetOk(...args);
}

export const connect = (network: string, ns: string, ...more: string[]): { addresses: string[] } =>
  JSON.parse(change(['connect', network, ns, '--json', ...more], [ns])) as { addresses: string[] };
export const disconnect = (network: string, ns: string): string => change(['disconnect', network, ns], [ns]);

export interface DigAnswer { name: string; ttl: number; type: string; data: string }
export interface Dig {
  /** A response arrived. */
  answered: boolean;
  status?: string;
  flags: string[];
  answers: DigAnswer[];
  ms: number;
  out: string;
}

export function parseDig(out: string, ms: number): Dig {
  const status = /status: ([A-Z]+)/.exec(out)?.[1];
  const flags = /;; flags: ([a-z ]+);/.exec(out)?.[1]?.trim().split(/\s+/) ?? [];
  const answers: DigAnswer[] = [];
  const sec = out.split(';; ANSWER SECTION:\n')[1];
  if (sec) {
    for (const line of sec.split('\n')) {
      if (!line.trim() || line.startsWith(';')) break;
      const [name, ttl, , type, ...data] = line.split(/\s+/);
      answers.push({ name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') });
    }
  }
  return { answered: status !== undefined, status, flags, answers, ms, out };
}

/**
 * `dig @SERVER -q NAME -t TYPE [+opts]` inside namespace `ns`: one try, `time` s timeout
 * (`-q` so that a name like `a` is never taken for a record type).
 */
export function dig(ns: string, server: string, name: string, type = 'A', opts: string[] = [], time = 2): Dig {
  return digRaw(ns, server, ['-q', name, '-t', type, ...opts], time);
}

/** `dig @SERVER -x ADDRESS` inside namespace `ns`. */
export function digPtr(ns: string, server: string, address: string, opts: string[] = []): Dig {
  return digRaw(ns, server, ['-x', address, ...opts], 2);
}

export function digRaw(ns: string, server: string, args: string[], time: number): Dig {
  const t0 = performance.now();
  const r = inNs(ns, ['dig', `+time=${time}`, '+tries=1', '+nocookie', `@${server}`, ...args], (time + 5) * 1000);
  return parseDig(r.stdout + r.stderr, performance.now() - t0);
}

export const answerData = (d: Dig, type?: string): string[] => d.answers.filter((a) => !type || a.type === type).map((a) => a.data).sort();

/** `getent hosts KEY` inside the namespace, the way a program there resolves names. */
export function getent(ns: string, key: string): Run {
  return nsnet('ns', 'exec', ns, '--', 'getent', 'hosts', key);
}

export interface Upstream { child: ChildProcess; log: Array<{ name: string; type: string; transport: string; from: string; server: string }> }

/** Starts the tests' upstream server in the "outside" namespace (test/dns/upstream-server.ts). */
export async function startUpstream(args: string[]): Promise<Upstream> {
  const child = spawn('ip', ['netns', 'exec', 'outside', process.execPath, path.join(ROOT, 'dist/test/dns/upstream-server.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const up: Upstream = { child, log: [] };
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('upstream server did not start')), 15_000);
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`upstream server exited ${c}`)); });
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'ready') { clearTimeout(t); resolve(); } else up.log.push(JSON.parse(line) as Upstream['log'][number]);
      }
    });
  });
  return up;
}

/**
 * The upstream's log fills from its stdout, which is read only while the event loop runs
 * (dig runs synchronously): wait a little for lines in flight, until `ok` holds.
 */
export async function upstreamLog(up: Upstream, ok: (log: Upstream['log']) => boolean = () => true, ms = 1000): Promise<Upstream['log']> {
  const end = Date.now() + ms;
  do { await new Promise((r) => setTimeout(r, 20)); } while (!ok(up.log) && Date.now() < end);
  return up.log;
}

/** Replaces the sandbox's /etc/resolv.conf (an overlay: the host's file is never touched). */
export function setHostResolvers(servers: string[]): void {
  fs.rmSync('/etc/resolv.conf', { force: true });
  fs.writeFileSync('/etc/resolv.conf', servers.map((s) => `nameserver ${s}\n`).join(''));
}

/** Stops the service of this sandbox, whatever state it is in (for `after`). */
export function stopService(): void {
  stopDnsService(STATE);
  const pid = dnsServicePid(STATE);
  if (pid) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
}

export function servicePid(): number | undefined {
  return dnsServicePid(STATE);
}

export { nsnet, nsnetOk, inNs };
