/**
 * Starting, signalling and stopping the DNS service from the engine and the CLI.
 *
 * `dnsAfterChange(store)` is what the engine calls after every change that can matter to
 * DNS (connect, disconnect, network create/remove, reset, repair). It is synchronous, like
 * the engine, and cheap in the steady state (one SQL query, one pidfile read, one signal:
 * well under a millisecond):
 *
 *   a DNS-enabled network has a ready endpoint, no service  → start it (detached), and
 *                                                             wait until it listens (once
 *                                                             per service life: ~0.1–0.2 s)
 *   no network needs it, service running                   → SIGTERM, wait for it to exit
 *   service running                                        → SIGHUP (after connect or
 *                                                             disconnect only if the listeners
 *                                                             must change); if the set of gateway
 *                                                             addresses changed, wait (≤ 1 s)
 *                                                             until it listens on the new set
 *
 * Names need no signal: the service checks SQLite's data_version before every query.
 * It never throws — DNS trouble must not fail a `connect` that succeeded — and reports
 * what it did (and any error) in its result and on the `dns:control` diagnostics channel.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { publish } from '../diagnostics.js';
import { dnsPaths, livePid, procStart, type DnsPaths } from './paths.js';
import { STATE_DB, readDnsNetworks } from './state.js';
import type { DnsStatusFile } from './service.js';
import { canonicalIp } from './zone.js';

/** The service's entry point, beside this file in dist/. */
export const DAEMON_SCRIPT = fileURLToPath(new URL('./daemon.js', import.meta.url));
const LOG_ROTATE_BYTES = 1 << 20;

/** The engine's Store (or just its directory). */
export type StateRef = string | { dir: string; db?: Database.Database };

export interface DnsChangeResult {
  action: 'none' | 'started' | 'reloaded' | 'stopped' | 'held' | 'error';
  pid?: number;
  error?: string;
  ms: number;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

const connections = new Map<string, Database.Database>();
function connection(dir: string): Database.Database | undefined {
  let db = connections.get(dir);
  if (db?.open) return db;
  const file = path.join(dir, STATE_DB);
  if (!fs.existsSync(file)) return undefined;
  db = new Database(file, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  connections.set(dir, db);
  return db;
}

/** What the store says the service should do: run or not, and on which gateways. */
export function dnsDemand(state: StateRef): { needed: boolean; wanted: string[] } {
  const dir = typeof state === 'string' ? state : state.dir;
  const db = (typeof state === 'string' ? undefined : state.db) ?? connection(dir);
  if (!db) return { needed: false, wanted: [] };
  const nets = readDnsNetworks(db);
  const wanted = nets.flatMap((n) => n.gateways.map((g) => canonicalIp(g) ?? g)).sort();
  return { needed: nets.some((n) => n.endpoints > 0), wanted };
}

export function readDnsStatusFile(p: DnsPaths): DnsStatusFile | undefined {
  try { return JSON.parse(fs.readFileSync(p.status, 'utf8')) as DnsStatusFile; } catch { return undefined; }
}

const sameList = (a: readonly string[] | undefined, b: readonly string[]): boolean =>
  !!a && a.length === b.length && a.every((x, i) => x === b[i]);

/** Polls `ok` every few ms for up to `ms`; true once it holds. */
function waitUntil(ms: number, ok: () => boolean, giveUp: () => boolean = () => false): boolean {
  const end = Date.now() + ms;
  for (let step = 1; ; step = Math.min(step * 2, 20)) {
    if (ok()) return true;
    if (giveUp() || Date.now() >= end) return false;
    sleepSync(step);
  }
}

/** The PID of the running service for `stateDir`, or undefined. */
export function dnsServicePid(stateDir: string): number | undefined {
  return livePid(dnsPaths(stateDir).pid);
}

function logTail(p: DnsPaths): string {
  try {
    const text = fs.readFileSync(p.log, 'utf8').trimEnd().split('\n');
    return text.slice(-5).join('\n');
  } catch { return ''; }
}

function netnsInode(pid: number | 'self'): string | undefined {
  try { return fs.readlinkSync(`/proc/${pid}/ns/net`); } catch { return undefined; }
}

function parentPid(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch { return 0; }
}

/**
 * Inside the test/demo sandbox (src/sandbox): the sandbox's first process — the oldest
 * ancestor still in this network namespace — as "PID STARTTIME". The service exits when
 * it is gone, so a test that forgot to stop it cannot keep its sandbox alive.
 */
function sandboxAnchor(): string | undefined {
  if (process.env.NSNET_SANDBOX !== '1') return undefined;
  // A harness that runs commands in a namespace from outside it (nsenter from the test, as
  // test/cluster's simulated hosts do) has no ancestor in that namespace to tie the service
  // to: the command itself would be the anchor, and the service would leave as soon as the
  // command that started it exits. Such a harness names the process holding the namespace.
  if (process.env.NSNET_DNS_ANCHOR) return process.env.NSNET_DNS_ANCHOR;
  const mine = netnsInode('self');
  let anchor = process.pid;
  for (let p = parentPid(process.pid); p > 1 && netnsInode(p) === mine; p = parentPid(p)) anchor = p;
  const st = procStart(anchor);
  return st ? `${anchor} ${st.start}` : undefined;
}

export interface StartOptions {
  /** Wait until the service listens (default true). */
  wait?: boolean;
  timeoutMs?: number;
  /** Extra environment for the service (NSNET_DNS_RATE_LIMIT, NSNET_DNS_PORT). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts the service for `stateDir` as a detached process (new session, stdio on its log
 * file, cwd /) unless one runs. Returns its PID; throws if it did not come up.
 */
export function startDnsService(stateDir: string, o: StartOptions = {}): { pid: number; started: boolean } {
  const dir = path.resolve(stateDir);
  const p = dnsPaths(dir);
  const running = livePid(p.pid);
  if (running) return { pid: running, started: false };
  fs.mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  try { if (fs.statSync(p.log).size > LOG_ROTATE_BYTES) fs.renameSync(p.log, `${p.log}.1`); } catch { /* no log yet */ }
  const fd = fs.openSync(p.log, 'a', 0o600);
  const anchor = sandboxAnchor();
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env, ...(anchor ? { NSNET_DNS_ANCHOR: anchor } : {}) };
  // The service never speaks TLS: extra CA certificates (set globally on some hosts) would
  // only cost it ~2 MiB of resident memory and ~40 ms of start-up, for as long as it runs.
  delete env.NODE_EXTRA_CA_CERTS;
  let childPid: number | undefined;
  try {
    const child = spawn(process.execPath, [DAEMON_SCRIPT, '--state-dir', dir], {
      detached: true, stdio: ['ignore', fd, fd], cwd: '/', env,
    });
    child.on('error', () => undefined);
    child.unref();
    childPid = child.pid;
  } finally {
    fs.closeSync(fd);
  }
  if (!childPid) throw new Error(`cannot start the DNS service: spawn ${process.execPath} failed`);
  if (o.wait === false) return { pid: childPid, started: true };
  return waitForDnsService(dir, childPid, o.timeoutMs);
}

/**
 * Waits until the service started as `childPid` (or another that won the start) listens on
 * the gateways the store wants. Throws with the tail of its log if it did not come up.
 */
export function waitForDnsService(stateDir: string, childPid: number, timeoutMs = 5000): { pid: number; started: boolean } {
  const dir = path.resolve(stateDir);
  const p = dnsPaths(dir);
  const { wanted } = dnsDemand(dir);
  let pid: number | undefined;
  const up = waitUntil(timeoutMs, () => {
    pid = livePid(p.pid);
    const st = pid ? readDnsStatusFile(p) : undefined;
    return !!pid && st?.pid === pid && sameList(st.wanted, wanted);
  }, () => {
    const child = procStart(childPid);
    return (!child || child.zombie) && !livePid(p.pid);
  });
  if (!up || !pid) {
    const tail = logTail(p);
    throw new Error(`the DNS service did not come up${tail ? `:\n${tail}` : ` (see ${p.log})`}`);
  }
  return { pid, started: pid === childPid };
}

/** Stops the service for `stateDir` (SIGTERM, then SIGKILL after `timeoutMs`). */
export function stopDnsService(stateDir: string, o: { timeoutMs?: number } = {}): { pid?: number; stopped: boolean } {
  const p = dnsPaths(stateDir);
  const pid = livePid(p.pid);
  if (!pid) {
    fs.rmSync(p.pid, { force: true });
    return { stopped: false };
  }
  const gone = (): boolean => { const st = procStart(pid); return !st || st.zombie; };
  try { process.kill(pid, 'SIGTERM'); } catch { /* exited meanwhile */ }
  if (!waitUntil(o.timeoutMs ?? 3000, gone)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
    waitUntil(1000, gone);
  }
  if (livePid(p.pid) === undefined) {
    fs.rmSync(p.pid, { force: true });
    fs.rmSync(p.status, { force: true });
  }
  return { pid, stopped: true };
}

/**
 * Tells the running service to reload, and — when `wanted` (the gateway set) is given —
 * waits up to `timeoutMs` until it listens on exactly that set. False on timeout.
 */
export function reloadDnsService(stateDir: string, o: { wanted?: string[]; timeoutMs?: number; pid?: number; onlyIfListenersChanged?: boolean } = {}): boolean {
  const p = dnsPaths(stateDir);
  const pid = o.pid ?? livePid(p.pid);
  if (!pid) return false;
  const wanted = o.wanted;
  const already = wanted ? sameList(readDnsStatusFile(p)?.wanted, wanted) : false;
  if (already && o.onlyIfListenersChanged) return true;
  try { process.kill(pid, 'SIGHUP'); } catch { return false; }
  if (!wanted || already) return true;
  return waitUntil(o.timeoutMs ?? 1000, () => sameList(readDnsStatusFile(p)?.wanted, wanted));
}

/**
 * The engine's hook: call after connect, disconnect, createNetwork, removeNetwork, reset
 * and repair have succeeded. See the file comment.
 */
export function dnsAfterChange(state: StateRef, o: { endpointsOnly?: boolean; noWait?: boolean } = {}): DnsChangeResult {
  const t0 = performance.now();
  const dir = path.resolve(typeof state === 'string' ? state : state.dir);
  let result: DnsChangeResult;
  try {
    const { needed, wanted } = dnsDemand(typeof state === 'string' ? dir : { dir, db: state.db });
    const pid = dnsServicePid(dir);
    if (needed && !pid && fs.existsSync(dnsPaths(dir).held)) {
      // The user stopped it (`nsnet dns stop`); only `nsnet dns start` brings it back.
      result = { action: 'held', ms: 0 };
    } else if (needed && !pid) {
      // noWait: the caller (a batch of changes) waits at its end (waitForDnsService), so
      // the service boots while the rest of the batch is made.
      const s = startDnsService(dir, { wait: o.noWait !== true });
      result = { action: 'started', pid: s.pid, ms: 0 };
    } else if (!needed && pid) {
      stopDnsService(dir);
      result = { action: 'stopped', pid, ms: 0 };
    } else if (pid) {
      // An endpoint change needs no signal unless the listener set moved: the service sees
      // names through SQLite's data_version before every query, and a SIGHUP would make it
      // rebuild everything for each connect (O(endpoints) work per connect, on our 2 cores).
      const ok = reloadDnsService(dir, { ...(o.noWait ? {} : { wanted }), pid, onlyIfListenersChanged: o.endpointsOnly === true });
      result = ok ? { action: 'reloaded', pid, ms: 0 } : { action: 'error', pid, error: 'the DNS service did not pick up the new gateways within 1 s', ms: 0 };
    } else {
      result = { action: 'none', ms: 0 };
    }
  } catch (e) {
    result = { action: 'error', error: (e as Error).message, ms: 0 };
  }
  result.ms = performance.now() - t0;
  publish('dns:control', result);
  return result;
}

/** Asks the running service over its control socket (`status` → live counters). */
export function queryDnsService(stateDir: string, request: 'status' | 'reload', timeoutMs = 2000): Promise<unknown> {
  const p = dnsPaths(stateDir);
  return new Promise((resolve) => {
    const s = net.connect({ path: p.control });
    let buf = '';
    const done = (v: unknown): void => { s.destroy(); resolve(v); };
    s.setTimeout(timeoutMs, () => done(undefined));
    s.on('error', () => done(undefined));
    s.on('connect', () => s.write(`${request}\n`));
    s.on('data', (d) => { buf += d.toString(); });
    s.on('end', () => { try { done(JSON.parse(buf)); } catch { done(undefined); } });
  });
}

export interface DnsServiceState {
  running: boolean;
  pid?: number;
  stateDir: string;
  log: string;
  status?: DnsStatusFile;
  live?: unknown;
  /** When the user stopped it with `nsnet dns stop` (the engine then leaves it stopped). */
  heldSince?: string;
}

/** Everything `nsnet dns status` shows. */
export async function dnsServiceState(stateDir: string): Promise<DnsServiceState> {
  const dir = path.resolve(stateDir);
  const p = dnsPaths(dir);
  const pid = livePid(p.pid);
  if (!pid) return { running: false, stateDir: dir, log: p.log, ...(fs.existsSync(p.held) ? { heldSince: fs.readFileSync(p.held, 'utf8').trim() } : {}) };
  const status = readDnsStatusFile(p);
  const live = await queryDnsService(dir, 'status');
  return { running: true, pid, stateDir: dir, log: p.log, ...(status ? { status } : {}), ...(live ? { live } : {}) };
}
