/**
 * Benchmark section "dns" (issue 5): nsnet's DNS service under load from many clients in
 * parallel, and Debian's aardvark-dns 1.4 (Podman's resolver) answering the same names in
 * the same run, on the same gateway, from the same clients.
 *
 *   - 100 namespaces on one bridge network, 10 names each (the namespace + 9 aliases):
 *     1,000 registered names; 2 of the namespaces are the clients (NSNET_BENCH_DNS_CLIENTS).
 *   - Load: one generator process per client namespace (a small Node program, hand-built
 *     queries, 32 sockets = 32 clients each: NSNET_BENCH_DNS_SOCKETS), UDP to the gateway,
 *     after a 2 s warm-up (JIT) that is not measured:
 *       open loop at 5,000 queries/s for 5 s → achieved q/s, p50 / p99 / max latency, lost;
 *       closed loop, 16 queries outstanding per process for 5 s → the most q/s it sustains.
 *     Few processes with many sockets, because on 2 cores the generators compete with the
 *     server for CPU: every extra Node process adds scheduling noise to the latencies.
 *   - Local names (random among the 1,000), and cached forwarded names (100 names under
 *     example.test, answered by test/dns/upstream-server.js in an "outside" namespace and
 *     warmed once before measuring).
 *   - Memory: the service's RSS with the clients' names only, then with 1,000 names.
 * nsnet's service runs with its per-source rate limit off (NSNET_DNS_RATE_LIMIT=0): the
 * closed loop pushes one source far past the default 1,000 q/s; aardvark-dns has none.
 *
 * Must run inside the private sandbox (bench/run.ts enters it; standalone:
 * `node dist/bench/dns.js` enters it itself). Leaves nothing behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { enterSandbox, inSandbox } from '../src/sandbox/sandbox.js';
import { Nsnet } from '../src/engine/engine.js';
import { dnsServicePid, queryDnsService, startDnsService, stopDnsService } from '../src/dns/control.js';
import { CHILD_ENV, exec, must } from './proc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const UPSTREAM_SERVER = path.join(ROOT, 'dist', 'test', 'dns', 'upstream-server.js');
const AARDVARK = '/usr/lib/podman/aardvark-dns';
const WORK = '/run/nsnet-bench-dns';
const NET = 'benchdns';
const SUBNET = '10.98.0.0/16';
const GW = '10.98.0.1';
const OUT_NS = 'bench-dns-out';
const OUT_HOST = '198.51.100.1';
const OUT_IP = '198.51.100.2';
const HOLDERS = 100;
const ALIASES = 9;
const CLIENTS = Number(process.env.NSNET_BENCH_DNS_CLIENTS ?? 2);
/** UDP sockets (source ports) per client namespace. */
const SOCKETS = Number(process.env.NSNET_BENCH_DNS_SOCKETS ?? 32);
const RATE = Number(process.env.NSNET_BENCH_DNS_RATE ?? 5000);
let SECONDS = Number(process.env.NSNET_BENCH_DNS_SECONDS ?? 5);
const WINDOW = 16;

const sh = (script: string): string => must('/bin/sh', ['-ec', script]);
const quiet = (script: string): void => { exec('/bin/sh', ['-c', script]); };

/**
 * The load generator (runs in a client namespace). argv: mode(open|closed) server seconds
 * rate-or-window namesFile sockets. Prints {sent, received, lost, qps, p50, p99, max} (ms).
 */
const LOAD = String.raw`
const dgram = require('dgram');
const fs = require('fs');
const [mode, server, seconds, param, namesFile, sockets] = process.argv.slice(1);
const names = fs.readFileSync(namesFile, 'utf8').trim().split('\n');
function query(id, name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const h = Buffer.alloc(12); h.writeUInt16BE(id, 0); h.writeUInt16BE(0x0100, 2); h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
const S = Number(sockets), dur = Number(seconds) * 1000;
const socks = [], pending = [];
const lat = [];
let sent = 0, received = 0, bad = 0, next = 0, done = false;
const t0 = performance.now();
function send(i) {
  const s = socks[i], p = pending[i];
  let id = (next++) & 0xffff;
  p.set(id, performance.now());
  s.send(query(id, names[(Math.random() * names.length) | 0]));
  sent++;
}
for (let i = 0; i < S; i++) {
  const s = dgram.createSocket('udp4');
  const p = new Map();
  s.on('message', (m) => {
    const id = m.readUInt16BE(0), t = p.get(id);
    if (t === undefined) return;
    p.delete(id);
    if ((m[3] & 0xf) !== 0 || m.readUInt16BE(6) === 0) bad++;
    received++; lat.push(performance.now() - t);
    if (mode === 'closed' && !done) send(i);
  });
  s.on('error', () => {});
  socks.push(s); pending.push(p);
}
let ready = 0;
if (!(S > 0)) throw new Error('no sockets');
socks.forEach((s) => s.connect(53, server, () => { if (++ready === S) start(); }));
function start() {
  if (mode === 'open') {
    const rate = Number(param);
    const tick = setInterval(() => {
      const el = performance.now() - t0;
      if (el >= dur) { clearInterval(tick); return finish(); }
      const due = Math.floor((el / 1000) * rate);
      while (sent < due) send(sent % S);
    }, 1);
  } else {
    for (let k = 0; k < Number(param); k++) send(k % S);
    setTimeout(finish, dur);
  }
}
function finish() {
  done = true;
  const measured = performance.now() - t0;
  setTimeout(() => {
    lat.sort((a, b) => a - b);
    const q = (x) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] : NaN;
    process.stdout.write(JSON.stringify({ sent, received, bad, lost: sent - received, qps: received / (measured / 1000), p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] }));
    process.exit(0);
  }, 1000);
}
`;

interface Load { sent: number; received: number; bad: number; lost: number; qps: number; p50: number; p99: number; max: number }

async function load(mode: 'open' | 'closed', clients: string[], namesFile: string, param: number): Promise<Load> {
  const runs = clients.map((ns) => new Promise<Load>((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LOAD, mode, GW, String(SECONDS), String(param), namesFile, String(SOCKETS)], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('error', reject);
    c.on('exit', (code) => { try { resolve(JSON.parse(out) as Load); } catch { reject(new Error(`load generator in ${ns} exited ${code}: ${out}`)); } });
  }));
  const all = await Promise.all(runs);
  // Aggregate: sums for counts and rates; latency percentiles as the worst client's (conservative).
  return {
    sent: sum(all.map((r) => r.sent)), received: sum(all.map((r) => r.received)), bad: sum(all.map((r) => r.bad)),
    lost: sum(all.map((r) => r.lost)), qps: sum(all.map((r) => r.qps)),
    p50: Math.max(...all.map((r) => r.p50)), p99: Math.max(...all.map((r) => r.p99)), max: Math.max(...all.map((r) => r.max)),
  };
}
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

const DNSPERF = '/usr/bin/dnsperf';

/**
 * The same open loop driven by dnsperf 2.10 (Debian's C generator): its event loop does not
 * share Node's costs (GC, timers), so the latencies it sees are the server's plus the
 * kernel's. `-v` prints every answer's latency ("> NOERROR name A 0.000234"), from which
 * the percentiles come; "T" lines are timeouts.
 */
async function dnsperfLoad(clients: string[], namesFile: string, rate: number): Promise<Load> {
  const runs = clients.map((ns) => new Promise<Load>((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', ns, DNSPERF, '-s', GW, '-d', namesFile, '-Q', String(Math.round(rate)), '-l', String(SECONDS), '-c', String(SOCKETS), '-t', '1', '-v'],
      { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.resume();
    c.on('error', reject);
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`dnsperf in ${ns} exited ${code}`));
      const lat: number[] = [];
      let bad = 0;
      let lost = 0;
      for (const line of out.split('\n')) {
        const m = /^> (\S+) \S+ \S+ ([\d.]+)$/.exec(line);
        if (m) { lat.push(Number(m[2]) * 1000); if (m[1] !== 'NOERROR') bad++; } else if (/^> T /.test(line)) lost++;
      }
      const sent = Number(/Queries sent:\s+(\d+)/.exec(out)?.[1] ?? lat.length + lost);
      const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
      lat.sort((a, b) => a - b);
      const q = (x: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(x * lat.length))]! : NaN);
      resolve({ sent, received: lat.length, bad, lost: sent - lat.length, qps, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] ?? NaN });
    });
  }));
  const all = await Promise.all(runs);
  return {
    sent: sum(all.map((r) => r.sent)), received: sum(all.map((r) => r.received)), bad: sum(all.map((r) => r.bad)),
    lost: sum(all.map((r) => r.lost)), qps: sum(all.map((r) => r.qps)),
    p50: Math.max(...all.map((r) => r.p50)), p99: Math.max(...all.map((r) => r.p99)), max: Math.max(...all.map((r) => r.max)),
  };
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU time (user + system) the process has used, in µs (from /proc/PID/stat, clock ticks of 10 ms). */
function cpuMicros(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

type Row = Load & { cpuPerQuery: number };
interface Section { server: string; rows: Array<[string, Row]>; memory: string[] }

async function measure(server: string, pid: number, clients: string[], localNames: string, cachedNames: string, warm: () => void): Promise<Section> {
  const rows: Section['rows'] = [];
  const one = async (label: string, mode: 'open' | 'closed', names: string, param: number): Promise<void> => {
    const c0 = cpuMicros(pid);
    const r = await load(mode, clients, names, param);
    rows.push([label, { ...r, cpuPerQuery: (cpuMicros(pid) - c0) / Math.max(1, r.received) }]);
  };
  process.stderr.write(`[dns] ${server}: warm-up, local names…\n`);
  const saved = SECONDS;
  SECONDS = 2;
  await load('closed', clients, localNames, WINDOW);
  SECONDS = saved;
  await one(`local names, open loop ${RATE} q/s`, 'open', localNames, RATE / clients.length);
  if (fs.existsSync(DNSPERF)) {
    const c0 = cpuMicros(pid);
    const r = await dnsperfLoad(clients, `${localNames}.dnsperf`, RATE / clients.length);
    rows.push([`local names, open loop ${RATE} q/s, dnsperf`, { ...r, cpuPerQuery: (cpuMicros(pid) - c0) / Math.max(1, r.received) }]);
  }
  await one(`local names, closed loop ${WINDOW}/client`, 'closed', localNames, WINDOW);
  process.stderr.write(`[dns] ${server}: forwarded names…\n`);
  warm();
  await one(`forwarded names (${server === 'nsnet' ? 'cached' : 'no cache: each forwarded'}), open loop ${RATE} q/s`, 'open', cachedNames, RATE / clients.length);
  await one(`forwarded names, closed loop ${WINDOW}/client`, 'closed', cachedNames, WINDOW);
  return { server, rows, memory: [] };
}

function dig(ns: string, name: string): string {
  return spawnSync('ip', ['netns', 'exec', ns, 'dig', '+short', '+time=2', '+tries=1', `@${GW}`, name], { encoding: 'utf8' }).stdout.trim();
}

const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((x, c) => x.padEnd(w[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

export async function run(): Promise<void> {
  if (!inSandbox()) throw new Error('bench/dns: run inside the sandbox (enterSandbox() first)');
  const started = performance.now();
  const stateDir = path.join(WORK, 'state');
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  const savedResolv = fs.existsSync('/etc/resolv.conf') ? fs.readFileSync('/etc/resolv.conf') : undefined;
  const net = new Nsnet({ stateDir });
  const holders = Array.from({ length: HOLDERS }, (_, i) => `bdns${i}`);
  const clients = holders.slice(0, CLIENTS);
  let upstream: ReturnType<typeof spawn> | undefined;
  const sections: Section[] = [];
  let aardvarkNote = '';
  try {
    console.log(`\n== dns: ${HOLDERS * (ALIASES + 1)} names on one network, ${CLIENTS} client namespaces, UDP ==`);
    // "Outside": the upstream for forwarded names.
    quiet(`ip netns del ${OUT_NS} 2>/dev/null; ip link del bdns-up 2>/dev/null`);
    sh(`ip netns add ${OUT_NS}
ip link add bdns-up type veth peer name up0 netns ${OUT_NS}
ip addr add ${OUT_HOST}/24 dev bdns-up
ip link set bdns-up up
ip -n ${OUT_NS} addr add ${OUT_IP}/24 dev up0
ip -n ${OUT_NS} link set up0 up`);
    upstream = spawn('ip', ['netns', 'exec', OUT_NS, process.execPath, UPSTREAM_SERVER, '--answer', OUT_IP], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      upstream!.stdout!.once('data', () => resolve());
      upstream!.once('exit', (c) => reject(new Error(`upstream server exited ${c}`)));
    });
    upstream.stdout!.resume();
    fs.rmSync('/etc/resolv.conf', { force: true });
    fs.writeFileSync('/etc/resolv.conf', `nameserver ${OUT_IP}\n`);

    const aliases = (n: string): string[] => Array.from({ length: ALIASES }, (_, k) => `${n}-a${k}`);
    net.createNetwork({ name: NET, subnets: [SUBNET] });
    for (const n of clients) { net.addNamespace(n); net.connect({ network: NET, namespace: n, aliases: aliases(n) }); }
    // Once the engine starts the service by itself, it does so with the default rate limit: restart it without.
    stopDnsService(stateDir);
    startDnsService(stateDir, { env: { ...CHILD_ENV, NSNET_DNS_RATE_LIMIT: '0' } });
    const pid = dnsServicePid(stateDir)!;
    await sleep(500);
    const rssSmall = rssKiB(pid);
    for (const n of holders.slice(CLIENTS)) { net.addNamespace(n); net.connect({ network: NET, namespace: n, aliases: aliases(n) }); }
    const allNames = holders.flatMap((n) => [n, ...aliases(n)]);
    const localNames = path.join(WORK, 'local.txt');
    fs.writeFileSync(localNames, `${allNames.join('\n')}\n`);
    fs.writeFileSync(`${localNames}.dnsperf`, `${allNames.map((n) => `${n} A`).join('\n')}\n`);
    const cachedNames = path.join(WORK, 'cached.txt');
    const fwd = Array.from({ length: 100 }, (_, i) => `n${i}.example.test`);
    fs.writeFileSync(cachedNames, `${fwd.join('\n')}\n`);
    await queryDnsService(stateDir, 'reload');
    const live = await queryDnsService(stateDir, 'status') as { memory?: NodeJS.MemoryUsage } | undefined;
    const names = JSON.parse(fs.readFileSync(path.join(stateDir, 'dns', 'status.json'), 'utf8')) as { names: number };
    if (dig(clients[0]!, allNames[allNames.length - 1]!) === '') throw new Error('verification failed: nsnet does not answer a local name');
    const warm = (): void => { for (const n of fwd) if (dig(clients[0]!, n) !== '198.51.100.7') throw new Error(`verification failed: ${n} not forwarded`); };

    const s = await measure('nsnet', pid, clients, localNames, cachedNames, warm);
    s.memory.push(`nsnet: RSS ${(rssSmall / 1024).toFixed(1)} MiB with ${CLIENTS * (ALIASES + 1)} names, ${(rssKiB(pid) / 1024).toFixed(1)} MiB with ${names.names} names after the load (heap used ${((live?.memory?.heapUsed ?? NaN) / 1048576).toFixed(1)} MiB before it)`);
    sections.push(s);
    stopDnsService(stateDir);

    // aardvark-dns, the same names (1.4 config format: see ../shared/reference/netavark.md).
    if (!fs.existsSync(AARDVARK)) {
      aardvarkNote = `aardvark-dns: NOT MEASURED: ${AARDVARK} absent (Debian package aardvark-dns, standalone; no podman needed)`;
    } else {
      const cfg = path.join(WORK, 'aardvark');
      fs.mkdirSync(cfg, { recursive: true });
      const eps = net.inspectNetwork(NET).endpoints;
      const lines = [GW, ...eps.map((e, i) => `${String(i).padStart(64, '0')} ${e.addresses[0]!.split('/')[0]}  ${[e.namespace, ...e.aliases].join(',')}`)];
      fs.writeFileSync(path.join(cfg, NET), `${lines.join('\n')}\n`);
      const r = spawnSync(AARDVARK, ['--config', cfg, '-p', '53', 'run'], { encoding: 'utf8', env: CHILD_ENV, timeout: 10_000 });
      const apid = Number(fs.readFileSync(path.join(cfg, 'aardvark.pid'), 'utf8').trim());
      try {
        if (r.status !== 0 || !apid) throw new Error(`aardvark-dns run exited ${r.status}: ${r.stderr}`);
        if (dig(clients[0]!, allNames[allNames.length - 1]!) === '') throw new Error('verification failed: aardvark-dns does not answer a local name');
        const a = await measure('aardvark-dns 1.4', apid, clients, localNames, cachedNames, warm);
        a.memory.push(`aardvark-dns: RSS ${(rssKiB(apid) / 1024).toFixed(1)} MiB with ${names.names} names after the load`);
        sections.push(a);
      } finally {
        if (apid) { try { process.kill(apid, 'SIGTERM'); } catch { /* gone */ } }
      }
    }
  } finally {
    stopDnsService(stateDir);
    try { net.reset(); } catch (e) { process.stderr.write(`[dns] reset: ${(e as Error).message}\n`); }
    net.close();
    upstream?.kill('SIGKILL');
    quiet(`ip netns del ${OUT_NS} 2>/dev/null; ip link del bdns-up 2>/dev/null`);
    fs.rmSync('/etc/resolv.conf', { force: true });
    if (savedResolv) fs.writeFileSync('/etc/resolv.conf', savedResolv);
    fs.rmSync(WORK, { recursive: true, force: true });
  }

  const rows: string[][] = [['server', 'test', 'q/s achieved', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'wrong', 'server CPU µs/q']];
  for (const s of sections) {
    for (const [label, r] of s.rows) {
      rows.push([s.server, label, r.qps.toFixed(0), f2(r.p50), f2(r.p99), f2(r.max), `${r.lost}/${r.sent}`, String(r.bad), r.cpuPerQuery.toFixed(0)]);
    }
  }
  console.log('');
  console.log(table(rows));
  for (const s of sections) for (const m of s.memory) console.log(m);
  if (aardvarkNote) console.log(aardvarkNote);
  for (const [label, local] of sections[0]?.rows.filter(([l]) => l.startsWith('local names, open loop')) ?? []) {
    const ok = local.p99 < 2 && local.qps >= RATE * 0.95;
    console.log(`target: p99 < 2 ms for local names at ${RATE} q/s (${label.includes('dnsperf') ? 'dnsperf' : 'Node generator'}): p99 ${f2(local.p99)} ms at ${local.qps.toFixed(0)} q/s — ${ok ? 'MET' : 'MISSED'}`);
  }
  console.log('latencies are per client, measured in the generator process (Node, or dnsperf where the row says so); the row shows the worst client.');
  console.log(`server CPU µs/q: the server's user+system time over the run / answers (independent of other load on the machine); load average now ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}.`);
  console.log(`(section took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  enterSandbox();
  await run();
}
