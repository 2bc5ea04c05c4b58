/**
 * Benchmark section "ports" (issue 4): published ports at 10, 1,000 and 10,000 mappings, in one
 * run, inside the sandbox:
 *   - nsnet, library path (this process): one network, namespaces pb-a (the probe target),
 *     pb-b (holds the bulk: ranges `20000-…:20000-…` in chunks of ≤ 1,000) and pb-c (empty);
 *   - baseline: iptables DNAT rules as Docker and the CNI portmap plugin write them — one
 *     `-p tcp --dport N -j DNAT --to-destination IP:PORT` rule per port in a custom chain
 *     jumped from PREROUTING (`-m addrtype --dst-type LOCAL`), big sets loaded with
 *     `iptables-restore --noflush`, to the same addresses on a plain bridge made with `ip`.
 * The two never apply together: nsnet's tables are deleted (`reset()`) before the iptables run,
 * and the iptables run starts with no nat table (checked).
 *
 * At each size, for both: the time to add one more mapping and to remove it (library call, or
 * one `iptables -t nat -A/-D` process each), and the TCP connect latency from an "outside"
 * namespace to the host's uplink address through the probe mapping 8080 → pb-a:80, which is
 * re-added after each growth so it is the newest (for iptables: the last rule of the chain,
 * the worst case of a linear rule list; for an nft map the position does not matter). Connects
 * come from one long-lived Node client in the outside namespace (connect() → 'connect' event,
 * i.e. SYN → SYN/ACK through the DNAT), each immediately closed. A size's connect numbers are
 * only printed if the servers saw the connects: the probe's server in pb-a counts accepts, and
 * a second server in pb-b on the last bulk port checks the bulk mappings are in effect too.
 * After 10,000 both shrink back to 10 and are measured again: the run's own noise control.
 *
 * Must run inside the private sandbox (bench/run.ts enters it; standalone:
 * `node dist/bench/ports.js` enters it itself).
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { enterSandbox, inSandbox } from '../src/sandbox/sandbox.js';
import { type Section, type Table, type Target, duration, medP90, median, ms, printSection, ratio } from './section.js';
import { CHILD_ENV, exec, must } from './proc.js';

const SIZES = [10, 1000, 10_000] as const;
const CONNECTS = Number(process.env.NSNET_BENCH_PORTS_CONNECTS ?? 600);
const WARM = 30;
const LIB_REPS = 50;
const IPT_REPS = 20;
const CHUNK = 1000;

const WORK = '/run/nsnet-bench-ports';
const OUT_NS = 'pb-outside';
const UPLINK = 'pb-up';
const UPLINK_IP = '203.0.113.1';
const OUTSIDE_IP = '203.0.113.2';
const NET = 'pbnet';
const SUBNET = '10.95.0.0/24';
const GW = '10.95.0.1';
const A_IP = '10.95.0.2'; // pb-a: the probe target
const B_IP = '10.95.0.3'; // pb-b: the bulk
const C_IP = '10.95.0.4'; // pb-c: empty (diagnostic row)
const PROBE_HOST = 8080;
const PROBE_PORT = 80;
const BULK_BASE = 20_000;
const ONE_MORE = 40_000;
/** With S mappings in total: S-1 bulk ports 20000…20000+S-2, plus the probe. */
const lastBulk = (size: number): number => BULK_BASE + size - 2;
const CHAIN = 'PB-DNAT';


// ---- helpers ---------------------------------------------------------------------------------


const sh = (script: string): string => must('/bin/sh', ['-ec', script]);
const quiet = (script: string): void => { exec('/bin/sh', ['-c', script]); };
const time = (fn: () => unknown): number => { const t = performance.now(); fn(); return performance.now() - t; };
const nftTables = (): string[] => exec('nft', ['list', 'tables']).stdout.split('\n').map((l) => l.replace(/^table /, '').trim()).filter(Boolean);
const fmtN = (n: number): string => n.toLocaleString('en-US');

// ---- long-lived helper processes in namespaces -----------------------------------------------

/** A TCP server on the given ports that accepts and closes; `count` on stdin → accepts per port. */
export const SERVER = `
const net = require('net');
const counts = {};
let pending = 0;
for (const p of process.argv.slice(1).map(Number)) {
  counts[p] = 0; pending++;
  net.createServer((s) => { counts[p]++; s.on('error', () => {}); s.destroy(); })
    .listen({ port: p, host: '0.0.0.0', backlog: 511 }, () => { if (--pending === 0) process.stdout.write('ready\\n'); });
}
require('readline').createInterface({ input: process.stdin })
  .on('line', () => process.stdout.write(JSON.stringify(counts) + '\\n'))
  .on('close', () => process.exit(0));
`;

/** Sequential connects; a JSON request per line → { ms: [...], errors: { CODE: n } }. */
export const CLIENT = `
const net = require('net');
function once(host, port, timeout) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect({ host, port });
    const timer = setTimeout(() => { s.destroy(); resolve({ err: 'timeout' }); }, timeout);
    s.once('connect', () => { const d = Number(process.hrtime.bigint() - t0) / 1e6; clearTimeout(timer); s.destroy(); resolve({ ms: d }); });
    s.once('error', (e) => { clearTimeout(timer); s.destroy(); resolve({ err: e.code || String(e) }); });
  });
}
require('readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const q = JSON.parse(line); const ms = []; const errors = {};
  for (let i = 0; i < q.n; i++) {
    const r = await once(q.host, q.port, q.timeout);
    if (r.err) errors[r.err] = (errors[r.err] || 0) + 1; else ms.push(r.ms);
  }
  process.stdout.write(JSON.stringify({ ms, errors }) + '\\n');
}).on('close', () => process.exit(0));
process.stdout.write('ready\\n');
`;

export class LineProc {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiter: ((l: string) => void) | undefined;
  private exited: string | undefined;

  constructor(readonly label: string, ns: string, script: string, args: string[]) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: CHILD_ENV });
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (this.waiter) { const w = this.waiter; this.waiter = undefined; w(l); } else this.lines.push(l);
    });
    this.child.once('exit', (c, s) => { this.exited = `exited ${c ?? s}`; });
  }

  next(timeoutMs = 120_000): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited) return Promise.reject(new Error(`${this.label} ${this.exited}`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiter = undefined; reject(new Error(`${this.label}: no answer within ${timeoutMs} ms`)); }, timeoutMs);
      this.waiter = (x) => { clearTimeout(t); resolve(x); };
    });
  }

  async ask(line: string): Promise<string> {
    this.child.stdin!.write(`${line}\n`);
    return this.next();
  }

  async ready(): Promise<this> {
    const l = await this.next(20_000);
    if (l !== 'ready') throw new Error(`${this.label}: expected "ready", got ${l}`);
    return this;
  }

  stop(): void {
    this.child.stdin?.end();
    setTimeout(() => { if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL'); }, 2000).unref();
  }
}


/**
 * The sweep both tools run: grow to each size in SIZES (filling with `grow`), measure a point
 * there, then shrink back to the smallest size and measure it again (the noise check).
 * Returns the points and the nft ruleset summary taken at the largest size.
 */
async function sweep(
  tool: string,
  grow: (n: number) => number,
  shrink: () => void,
  probe: () => void,
  point: (label: string, size: number) => Promise<Point>,
  points: Point[],
): Promise<string[]> {
  let tables: string[] = [];
  for (const size of SIZES) {
    process.stderr.write(`[ports] ${tool}: ${fmtN(size)} mappings…\n`);
    const fill = grow(size - 1);
    probe();
    const p = await point(fmtN(size), size);
    p.fill = fill;
    points.push(p);
    if (size === SIZES[SIZES.length - 1]) tables = nftTables();
  }
  process.stderr.write(`[ports] ${tool}: back to ${SIZES[0]}…\n`);
  const fill = time(shrink);
  probe();
  const p = await point(`${SIZES[0]} again (shrunk from ${fmtN(SIZES[SIZES.length - 1])})`, SIZES[0]);
  p.fill = fill;
  points.push(p);
  return tables;
}

async function server(ns: string, ports: number[]): Promise<LineProc> {
  return new LineProc(`server in ${ns}`, ns, SERVER, ports.map(String)).ready();
}
async function counts(s: LineProc): Promise<Record<string, number>> {
  return JSON.parse(await s.ask('count')) as Record<string, number>;
}
interface Connects { ms: number[]; errors: Record<string, number> }
async function connects(client: LineProc, port: number, n: number): Promise<Connects> {
  return JSON.parse(await client.ask(JSON.stringify({ host: UPLINK_IP, port, n, timeout: 1000 }))) as Connects;
}

// ---- measurement common to both tools --------------------------------------------------------

interface Point {
  label: string;
  size: number;
  add: number[];
  del: number[];
  /** nsnet only: add/remove in the empty namespace pb-c. */
  addEmpty?: number[];
  delEmpty?: number[];
  connect?: number[];
  fill?: number;
  verified?: string;
  error?: string;
  /** nsnet only: where one add's time goes. */
  parts?: Record<string, number>;
}

interface Servers { a: LineProc; b: LineProc }

/** Connect latency through the probe; verified by the servers' counts. */
async function measureConnect(client: LineProc, srv: Servers, p: Point): Promise<void> {
  const before = await counts(srv.a);
  const beforeB = await counts(srv.b);
  const warm = await connects(client, PROBE_HOST, WARM);
  const r = await connects(client, PROBE_HOST, CONNECTS);
  const bulk = await connects(client, lastBulk(p.size), 5);
  let seen = 0, seenB = 0;
  for (let i = 0; i < 20; i++) {
    seen = (await counts(srv.a))[PROBE_PORT]! - before[PROBE_PORT]!;
    seenB = (await counts(srv.b))[lastBulk(p.size)]! - beforeB[lastBulk(p.size)]!;
    if (seen >= warm.ms.length + r.ms.length && seenB >= bulk.ms.length) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const errs = (c: Connects): string => Object.entries(c.errors).map(([k, v]) => `${v}× ${k}`).join(', ');
  const problems: string[] = [];
  if (r.ms.length < CONNECTS) problems.push(`${CONNECTS - r.ms.length} of ${CONNECTS} probe connects failed (${errs(r)})`);
  if (seen !== warm.ms.length + r.ms.length) problems.push(`pb-a server saw ${seen} connects, the client made ${warm.ms.length + r.ms.length}`);
  if (bulk.ms.length < 5 || seenB !== bulk.ms.length) problems.push(`last bulk port ${lastBulk(p.size)}: ${bulk.ms.length}/5 connected, pb-b server saw ${seenB}`);
  if (r.ms.length > 0 && seen > 0) p.connect = r.ms;
  if (problems.length) p.error = problems.join('; ');
  else p.verified = `pb-a saw ${seen}/${seen}, pb-b (port ${lastBulk(p.size)}) ${seenB}/5`;
}

function settle(): void {
  // Let the kernel and the loaded machine quiet down a little between phases.
  spawnSync('sleep', ['0.3']);
}

// ---- nsnet -----------------------------------------------------------------------------------

async function runNsnet(client: LineProc): Promise<{ points: Point[]; tables: string[] }> {
  const { Nsnet } = await import('../src/engine/engine.js');
  const { Nft } = await import('../src/kernel/nftables/nft.js');
  const { findPortHolder } = await import('../src/engine/listeners.js');
  const { listAddresses } = await import('../src/kernel/netlink/route/addr.js');
  const { Netns } = await import('../src/kernel/netns/netns.js');
  const nsnet = new Nsnet({ stateDir: path.join(WORK, 'state') });
  const points: Point[] = [];
  let srv: Servers | undefined;
  let tables: string[] = [];
  const nft = new Nft();
  // libnftables time inside nsnet's calls, per kind of command.
  let nftMs: Record<string, number> = {};
  const onNft = (m: unknown): void => {
    const { input, durationMs } = m as { input: string; durationMs: number };
    const k = input.includes('"tables"') ? 'nft: list tables (tablesExist)' : 'nft: add/delete element';
    nftMs[k] = (nftMs[k] ?? 0) + durationMs;
  };
  try {
    nsnet.createNetwork({ name: NET, subnets: [SUBNET] });
    for (const [ns, ip] of [['pb-a', A_IP], ['pb-b', B_IP], ['pb-c', C_IP]] as const) {
      nsnet.addNamespace(ns);
      nsnet.connect({ network: NET, namespace: ns, ips: [ip] });
    }
    srv = { a: await server('pb-a', [PROBE_PORT]), b: await server('pb-b', SIZES.map(lastBulk)) };
    const specs: string[] = [];
    let bulk = 0;
    const grow = (to: number): number => time(() => {
      while (bulk < to) {
        const n = Math.min(CHUNK, to - bulk);
        const spec = `${BULK_BASE + bulk}-${BULK_BASE + bulk + n - 1}:${BULK_BASE + bulk}-${BULK_BASE + bulk + n - 1}`;
        nsnet.publish('pb-b', [spec]);
        specs.push(`${spec}/tcp`);
        bulk += n;
      }
    });
    const probe = (): void => {
      if (nsnet.listPorts('pb-a').length) nsnet.unpublish('pb-a', `${PROBE_HOST}:${PROBE_PORT}`);
      nsnet.publish('pb-a', [`${PROBE_HOST}:${PROBE_PORT}`]);
    };
    const addRemove = (ns: string, reps: number): { add: number[]; del: number[] } => {
      const add: number[] = [], del: number[] = [];
      for (let i = 0; i < reps + 5; i++) {
        const a = time(() => nsnet.publish(ns, [`${ONE_MORE}:${ONE_MORE}`]));
        const d = time(() => nsnet.unpublish(ns, `${ONE_MORE}:${ONE_MORE}`));
        if (i >= 5) { add.push(a); del.push(d); }
      }
      return { add, del };
    };
    const host = Netns.host();
    /** The pieces of one publish/unpublish, timed on their own (median of 20 each). */
    const parts = (): Record<string, number> => {
      const m = (fn: () => unknown): number => median(Array.from({ length: 20 }, () => time(fn)));
      const elem = `inet nsnet pub4_any { tcp . ${ONE_MORE + 1} : ${B_IP} . ${ONE_MORE + 1} }`;
      return {
        'nft: list tables, alone (what a tablesExist() check per change costs)': m(() => nft.listTables()),
        'nft: add + delete element, alone': m(() => { nft.runText(`add element ${elem}`); nft.runText(`delete element ${elem}`); }),
        'store.portsOn(tcp, port) (conflict check, per row)': m(() => nsnet.store.portsOn('tcp', ONE_MORE)),
        "store.ports({namespace: 'pb-b'}) (unpublish's lookup)": m(() => nsnet.store.ports({ namespace: 'pb-b' })),
        'findPortHolder (reads /proc/net/tcp{,6})': m(() => findPortHolder('tcp', ONE_MORE, null)),
        'listAddresses(host) (rtnetlink dump)': m(() => listAddresses(host)),
      };
    };
    const point = async (label: string, size: number): Promise<Point> => {
      settle();
      diagnostics_channel.subscribe('nsnet.kernel.nftables', onNft);
      nftMs = {};
      const big = addRemove('pb-b', LIB_REPS);
      const nftPerRep = Object.fromEntries(Object.entries(nftMs).map(([k, v]) => [`${k} (in the ops above, per add+remove)`, v / (LIB_REPS + 5)]));
      diagnostics_channel.unsubscribe('nsnet.kernel.nftables', onNft);
      const empty = addRemove('pb-c', LIB_REPS);
      const p: Point = { label, size, add: big.add, del: big.del, addEmpty: empty.add, delEmpty: empty.del, parts: { ...nftPerRep, ...parts() } };
      const n = nsnet.listPorts().length;
      if (n !== size) p.error = `store holds ${n} mappings, expected ${size}`;
      else await measureConnect(client, srv!, p);
      return p;
    };

    tables = await sweep('nsnet', grow, () => {
      while (specs.length > 1) nsnet.unpublish('pb-b', specs.pop()!);
      bulk = SIZES[0] - 1;
    }, probe, point, points);
  } catch (e) {
    points.push({ label: 'FAILED', size: 0, add: [], del: [], error: (e as Error).message.split('\n')[0] });
  } finally {
    srv?.a.stop();
    srv?.b.stop();
    nft.close();
    nsnet.reset();
    nsnet.close();
  }
  return { points, tables };
}

// ---- iptables --------------------------------------------------------------------------------

const rule = (port: number, ip: string, to: number): string => `-p tcp --dport ${port} -j DNAT --to-destination ${ip}:${to}`;
const restore = (lines: string[]): void => { must('iptables-restore', ['--noflush'], { input: `*nat\n${lines.join('\n')}\nCOMMIT\n` }); };
const ipt = (args: string): void => { must('iptables', ['-t', 'nat', ...args.split(' ')]); };

async function runIptables(client: LineProc): Promise<{ points: Point[]; tables: string[]; variant: string }> {
  const points: Point[] = [];
  const variant = exec('iptables', ['-V']).stdout.trim();
  let tables: string[] = [];
  let srv: Servers | undefined;
  try {
    const left = nftTables();
    if (left.length) throw new Error(`tables left before the iptables run: ${left.join(', ')}`);
    // The same addresses as nsnet's, on a plain bridge, as in the tutorials.
    sh(`ip link add pbbr0 type bridge
ip addr add ${GW}/24 dev pbbr0
ip link set pbbr0 up
echo 1 > /proc/sys/net/ipv4/ip_forward
for x in a:${A_IP} b:${B_IP}; do
  n=\${x%%:*}; ip=\${x#*:}
  ip netns add pb-$n
  ip link add pbv-$n type veth peer name eth0 netns pb-$n
  ip link set pbv-$n master pbbr0 up
  ip -n pb-$n addr add $ip/24 dev eth0
  ip -n pb-$n link set eth0 up
  ip -n pb-$n link set lo up
  ip -n pb-$n route add default via ${GW}
done`);
    srv = { a: await server('pb-a', [PROBE_PORT]), b: await server('pb-b', SIZES.map(lastBulk)) };
    // Docker's and CNI portmap's shape: a chain of DNAT rules jumped from PREROUTING for local destinations.
    restore([`:${CHAIN} - [0:0]`, `-A PREROUTING -m addrtype --dst-type LOCAL -j ${CHAIN}`]);
    let bulk = 0;
    const grow = (to: number): number => time(() => {
      const lines: string[] = [];
      for (; bulk < to; bulk++) lines.push(`-A ${CHAIN} ${rule(BULK_BASE + bulk, B_IP, BULK_BASE + bulk)}`);
      if (lines.length) restore(lines);
    });
    let probeIn = false;
    const probe = (): void => {
      if (probeIn) ipt(`-D ${CHAIN} ${rule(PROBE_HOST, A_IP, PROBE_PORT)}`);
      ipt(`-A ${CHAIN} ${rule(PROBE_HOST, A_IP, PROBE_PORT)}`);
      probeIn = true;
    };
    const point = async (label: string, size: number): Promise<Point> => {
      settle();
      const add: number[] = [], del: number[] = [];
      for (let i = 0; i < IPT_REPS + 2; i++) {
        const a = time(() => ipt(`-A ${CHAIN} ${rule(ONE_MORE, B_IP, ONE_MORE)}`));
        const d = time(() => ipt(`-D ${CHAIN} ${rule(ONE_MORE, B_IP, ONE_MORE)}`));
        if (i >= 2) { add.push(a); del.push(d); }
      }
      const p: Point = { label, size, add, del };
      const listed = must('iptables', ['-t', 'nat', '-S', CHAIN]).split('\n').filter((l) => l.startsWith(`-A ${CHAIN} `));
      const n = listed.length;
      const last = listed[listed.length - 1] ?? '';
      if (n !== size) p.error = `chain holds ${n} rules, expected ${size}`;
      else if (!last.includes(`--dport ${PROBE_HOST} `)) p.error = `the probe rule is not last: ${last}`;
      else await measureConnect(client, srv!, p);
      return p;
    };

    tables = await sweep('iptables', grow, () => {
      ipt(`-F ${CHAIN}`);
      bulk = 0;
      grow(SIZES[0] - 1);
      probeIn = false;
    }, probe, point, points);
  } catch (e) {
    points.push({ label: 'FAILED', size: 0, add: [], del: [], error: (e as Error).message.split('\n')[0] });
  } finally {
    srv?.a.stop();
    srv?.b.stop();
    quiet(`iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j ${CHAIN}; iptables -t nat -F ${CHAIN}; iptables -t nat -X ${CHAIN}
ip netns del pb-a; ip netns del pb-b; ip link del pbbr0`);
  }
  return { points, tables, variant };
}

// ---- report ----------------------------------------------------------------------------------

export async function run(): Promise<Section> {
  if (!inSandbox()) throw new Error('bench/ports: run inside the sandbox (bench/run.ts enters it)');
  const started = performance.now();
  const loadBefore = os.loadavg()[0]!;
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  quiet(`ip netns del ${OUT_NS} 2>/dev/null; ip link del ${UPLINK} 2>/dev/null`);
  // As test/harness/world.ts makeOutside: the host's uplink and an "outside" namespace behind it.
  sh(`ip netns add ${OUT_NS}
ip link add ${UPLINK} type veth peer name eth0 netns ${OUT_NS}
ip addr add ${UPLINK_IP}/24 dev ${UPLINK}
ip link set ${UPLINK} up
ip -n ${OUT_NS} addr add ${OUTSIDE_IP}/24 dev eth0
ip -n ${OUT_NS} link set eth0 up
ip -n ${OUT_NS} link set lo up
ip route add default via ${OUTSIDE_IP}`);
  const client = await new LineProc('client in outside', OUT_NS, CLIENT, []).ready();
  let lib: Awaited<ReturnType<typeof runNsnet>>;
  let ipt: Awaited<ReturnType<typeof runIptables>>;
  try {
    lib = await runNsnet(client);
    ipt = await runIptables(client);
  } finally {
    client.stop();
    quiet(`ip netns del ${OUT_NS}; ip link del ${UPLINK}`);
  }

  const cell = (xs: number[] | undefined): string => (xs && xs.length ? ms(median(xs)) : '—');
  const conn = (p: Point | undefined): string => (p?.connect && !p.error ? medP90(p.connect) : p?.connect ? `${medP90(p.connect)} (!)` : '—');
  const labels = [...new Set([...lib.points, ...ipt.points].map((p) => p.label))];
  const at = (ps: Point[], l: string): Point | undefined => ps.find((p) => p.label === l);
  const main: Table = {
    head: ['mappings', 'nsnet add one', 'nsnet remove one', 'iptables -A one', 'iptables -D one', 'nsnet connect med / p90', 'iptables connect med / p90', 'nsnet fill', 'iptables fill'],
    rows: labels.map((l) => {
      const a = at(lib.points, l), b = at(ipt.points, l);
      return [l, cell(a?.add), cell(a?.del), cell(b?.add), cell(b?.del), conn(a), conn(b), a?.fill !== undefined ? duration(a.fill) : '—', b?.fill !== undefined ? duration(b.fill) : '—'];
    }),
  };
  const partNames = [...new Set(lib.points.flatMap((p) => Object.keys(p.parts ?? {})))];
  const libLabels = lib.points.filter((p) => p.parts).map((p) => p.label);
  const breakdown: Table = {
    head: ['nsnet, one mapping: where the time goes (ms, median)', ...libLabels],
    rows: [
      ['add one, in pb-b (holds the bulk) — as above', ...libLabels.map((l) => cell(at(lib.points, l)!.add))],
      ['add one, in pb-c (empty namespace)', ...libLabels.map((l) => cell(at(lib.points, l)!.addEmpty))],
      ['remove one, in pb-b', ...libLabels.map((l) => cell(at(lib.points, l)!.del))],
      ['remove one, in pb-c', ...libLabels.map((l) => cell(at(lib.points, l)!.delEmpty))],
      ...partNames.map((n) => [n, ...libLabels.map((l) => ms(at(lib.points, l)!.parts![n] ?? NaN))]),
    ],
  };

  // The machine is shared and its load drifts over the run, so the size-10 reference pools the
  // samples taken before the growth and after shrinking back (they bracket the 10,000 point).
  const targets: Target[] = [];
  const first = lib.points.find((p) => p.size === SIZES[0] && !p.label.includes('again'));
  const last = lib.points.find((p) => p.size === SIZES[SIZES.length - 1]);
  const again = lib.points.find((p) => p.label.includes('again'));
  const pooled = (f: (p: Point) => number[] | undefined): number[] => [...(first ? f(first) ?? [] : []), ...(again ? f(again) ?? [] : [])];
  const vs = (x: number, f: (p: Point) => number[] | undefined): string =>
    `pooled; ${[first, again].filter((p): p is Point => !!p && !!f(p)?.length).map((p) => `${ratio(x / median(f(p)!))} vs ${p.label.includes('again') ? 'after' : 'before'}`).join(', ')}`;
  if (first?.add.length && last?.add.length) {
    const x = median(last.add);
    const g = x / median(pooled((p) => p.add));
    targets.push({ what: `adding one more mapping at ${fmtN(last.size)} costs the same as at ${first.size}, ≤ 1.2 (nsnet library, median, pb-b)`, value: `${ratio(g)} (${vs(x, (p) => p.add)})`, met: g <= 1.2 });
    targets.push({ what: `adding one more mapping at ${fmtN(last.size)} under 2 ms (nsnet library, median)`, value: `${ms(x)} ms`, met: x < 2 });
  }
  const okConn = (p: Point | undefined): number[] | undefined => (p?.connect && !p.error ? p.connect : undefined);
  if (okConn(first) && okConn(last)) {
    const x = median(last!.connect!);
    const g = x / median(pooled(okConn));
    targets.push({ what: `connect latency at ${fmtN(last!.size)} within 10% of that at ${first!.size} (nsnet, median)`, value: `${ratio(g)} (${vs(x, okConn)})`, met: g <= 1.1 });
  } else {
    targets.push({ what: 'connect latency at 10,000 within 10% of that at 10 (nsnet)', value: 'not measured (unverified)', met: false });
  }

  const iFirst = ipt.points.find((p) => p.size === SIZES[0]), iLast = ipt.points.find((p) => p.size === SIZES[SIZES.length - 1]);
  const verify = (name: string, ps: Point[]): string[] =>
    ps.map((p) => `  ${name} ${p.label}: ${p.error ? `NOT VERIFIED — ${p.error}` : `ok (${p.verified})`}`);
  return {
    name: 'ports',
    title: `published ports at ${SIZES.map(fmtN).join(' / ')} mappings: add/remove one more, and TCP connect latency through DNAT — nsnet vs iptables DNAT rules`,
    notes: [
      `nsnet: library, this process; one network ${SUBNET}; bulk = ranges of ≤ ${fmtN(CHUNK)} ports (${BULK_BASE}-…:${BULK_BASE}-…) published to pb-b, probe ${PROBE_HOST}:${PROBE_PORT} to pb-a.`,
      `iptables: ${ipt.variant}; chain ${CHAIN} jumped from PREROUTING (-m addrtype --dst-type LOCAL), one \`${rule(0, 'IP', 0).replace('0 ', 'N ').replace(':0', ':PORT')}\``,
      '  rule per port (Docker / CNI portmap), bulk loaded with `iptables-restore --noflush`; plain bridge and veths made with `ip`, same addresses.',
      `  nsnet's tables were deleted (reset) before the iptables run; tables in effect at 10,000: nsnet run [${lib.tables.join(', ')}], iptables run [${ipt.tables.join(', ')}].`,
      `add/remove one more = publish + unpublish of ${ONE_MORE}:${ONE_MORE} (library call each, median of ${LIB_REPS} after 5 warm-ups) | iptables -t nat -A/-D (one process each, median of ${IPT_REPS}).`,
      `connect = ${CONNECTS} sequential connects (after ${WARM} warm-ups) from one Node client in the outside namespace to ${UPLINK_IP}:${PROBE_HOST}, connect() → 'connect' (SYN → SYN/ACK).`,
      '  The probe mapping is re-added after each growth: last rule of the chain for iptables. Times in ms; fill = time to grow to the size (or shrink back).',
      `  (!) after a figure = partially unverified (see below); — = not measured or not reachable. Children run with NODE_EXTRA_CA_CERTS unset.`,
      '  Targets compare 10,000 with the size-10 samples pooled from before the growth and after shrinking back (the load drifts here).',
    ],
    tables: [main, breakdown],
    targets,
    footer: [
      'verified (the servers counted the connects; 5 connects to the last bulk port reached pb-b):',
      ...verify('nsnet', lib.points),
      ...verify('iptables', ipt.points),
      ...(again?.connect && first?.connect ? [`noise control (same size, same tool, before vs after the 10,000 run): nsnet connect median ${ms(median(first.connect))} vs ${ms(median(again.connect))} ms, add one ${ms(median(first.add))} vs ${ms(median(again.add))} ms`] : []),
      ...(iFirst?.connect && iLast?.connect ? [`for comparison, iptables connect median at 10,000 / at 10: ${ratio(median(iLast.connect) / median(iFirst.connect))}; iptables -A at 10,000 / at 10: ${ratio(median(iLast.add) / median(iFirst.add))}`] : []),
      `(section took ${duration(performance.now() - started)}; 1-min load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after, on ${os.cpus().length} CPUs — other work on the machine inflates every row)`,
    ],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  enterSandbox();
  printSection(await run());
}
