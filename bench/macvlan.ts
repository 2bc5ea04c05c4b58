/**
 * Benchmark section "macvlan" (issue 8), in two parts, each in one run so the figures share
 * the machine's load:
 *
 * 1. Attach/detach latency, N existing namespaces (NSNET_BENCH_N, default 100) per network:
 *    nsnet library (`Nsnet.connect`/`disconnect`) on a macvlan network and on a bridge network,
 *    interleaved namespace by namespace; plus the tutorials' shell script of `ip` commands
 *    for a macvlan attach (one `sh` per attach/detach) as the peer.
 * 2. Container-to-container data path, two namespaces each: over macvlan (bridge mode, on a
 *    veth parent), over an nsnet bridge, and over a plain veth pair between them — iperf3 TCP
 *    throughput (ROUNDS × SECONDS s, interleaved) and ping round-trip time (PINGS echoes at
 *    5 ms intervals, interleaved).
 *
 * The "LAN" is a bridge in its own namespace with the parent veth's peer on it; nothing
 * leaves the sandbox. Figures are printed only for verified setups (pings between the pair).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { enterSandbox } from '../src/sandbox/sandbox.js';
import { type Section, type Target, duration, median, medP90, ms, printSection, ratio } from './section.js';
import { CHILD_ENV, exec, must } from './proc.js';

const N = Number(process.env.NSNET_BENCH_N ?? 100);
const ROUNDS = 3;
const SECONDS = 3;
const PINGS = 200;
const WORK = '/run/nsnet-bench-macvlan';
const LAN_NS = 'mvb-lan';
const PARENT = 'mvbpar0';
const PARENT2 = 'mvbpar1';

const sh = (script: string): string => must('/bin/sh', ['-ec', script]);
const quiet = (script: string): void => { exec('/bin/sh', ['-c', script]); };
const names = (prefix: string, n = N): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const ipBatch = (lines: string[]): void => { if (lines.length) must('ip', ['-batch', '-'], { input: `${lines.join('\n')}\n` }); };

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function ping1(ns: string, ip: string): boolean {
  return exec('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W2', ip]).status === 0;
}

function makeLan(): void {
  cleanupLan();
  sh(`ip netns add ${LAN_NS}
ip -n ${LAN_NS} link add seg type bridge
ip -n ${LAN_NS} link set seg up
ip link add ${PARENT} type veth peer name p0 netns ${LAN_NS}
ip link add ${PARENT2} type veth peer name p1 netns ${LAN_NS}
ip -n ${LAN_NS} link set p0 master seg up
ip -n ${LAN_NS} link set p1 master seg up
ip link set ${PARENT} up
ip link set ${PARENT2} up`);
}
function cleanupLan(): void {
  quiet(`ip netns del ${LAN_NS} 2>/dev/null; ip link del ${PARENT} 2>/dev/null; ip link del ${PARENT2} 2>/dev/null`);
}

// ---- part 1: attach latency ---------------------------------------------------------------

interface Attach { attach: number[]; detach: number[]; verified: string }

async function attachLatency(): Promise<{ macvlan: Attach; bridge: Attach; script: Attach }> {
  const { Nsnet } = await import('../src/engine/engine.js');
  const stateDir = path.join(WORK, 'state');
  fs.rmSync(stateDir, { recursive: true, force: true });
  const nsnet = new Nsnet({ stateDir });
  const mv = names('mva');
  const br = names('bra');
  const sc = names('sca');
  ipBatch([...mv, ...br, ...sc].map((n) => `netns add ${n}`));
  const macvlan: Attach = { attach: [], detach: [], verified: '' };
  const bridge: Attach = { attach: [], detach: [], verified: '' };
  const script: Attach = { attach: [], detach: [], verified: '' };
  try {
    nsnet.createNetwork({ name: 'mvl', driver: 'macvlan', parent: PARENT, subnets: ['10.93.0.0/16'] });
    nsnet.createNetwork({ name: 'brl', subnets: ['10.94.0.0/16'] });
    // Warm-up: the first connect of a process loads the firewall library and opens sockets.
    for (const [net, ns] of [['mvl', mv[0]!], ['brl', br[0]!]] as const) { nsnet.connect({ network: net, namespace: ns }); nsnet.disconnect(net, ns); }
    for (let i = 0; i < N; i++) {
      bridge.attach.push(timed(() => nsnet.connect({ network: 'brl', namespace: br[i]! })));
      macvlan.attach.push(timed(() => nsnet.connect({ network: 'mvl', namespace: mv[i]! })));
      // The peer: the tutorials' commands for one macvlan endpoint, one shell per attach.
      const ip = `10.95.${(i + 2) >> 8}.${(i + 2) & 255}`;
      script.attach.push(timed(() => sh(`ip link add eth0 link ${PARENT2} netns ${sc[i]} type macvlan mode bridge
ip -n ${sc[i]} addr add ${ip}/16 dev eth0
ip -n ${sc[i]} link set eth0 up
ip -n ${sc[i]} link set lo up
ip -n ${sc[i]} route add default via 10.95.0.1`)));
    }
    const addr = (ns: string, net: string): string => nsnet.store.endpoint(net, ns)!.addresses[0]!.split('/')[0]!;
    const check = (a: string, b: string, ip: string): string => {
      if (!ping1(a, ip)) throw new Error(`verification failed: ${a} cannot ping ${b} (${ip})`);
      return `${a} → ${b} ok`;
    };
    macvlan.verified = check(mv[0]!, mv[N - 1]!, addr(mv[N - 1]!, 'mvl'));
    bridge.verified = check(br[0]!, br[N - 1]!, addr(br[N - 1]!, 'brl'));
    script.verified = check(sc[0]!, sc[N - 1]!, `10.95.${(N + 1) >> 8}.${(N + 1) & 255}`);
    for (let i = 0; i < N; i++) {
      bridge.detach.push(timed(() => nsnet.disconnect('brl', br[i]!)));
      macvlan.detach.push(timed(() => nsnet.disconnect('mvl', mv[i]!)));
      script.detach.push(timed(() => sh(`ip -n ${sc[i]} link del eth0`)));
    }
    const left = [...mv, ...sc].filter((n) => exec('ip', ['-n', n, '-o', 'link']).stdout.trim().split('\n').length !== 1);
    if (left.length > 0) throw new Error(`verification failed: ${left.length} namespace(s) still have an interface after detach (${left.slice(0, 3).join(' ')}…)`);
  } finally {
    nsnet.reset();
    nsnet.close();
    ipBatch([...mv, ...br, ...sc].map((n) => `netns del ${n}`));
  }
  return { macvlan, bridge, script };
}

// ---- part 2: data path --------------------------------------------------------------------

interface Path { name: string; a: string; b: string; bAddr: string; gbps: number[]; rtt: number[]; mdev: number[] }

function iperf(p: Path): number {
  const server = spawn('ip', ['netns', 'exec', p.b, 'iperf3', '-s', '-1', '-B', p.bAddr], { env: CHILD_ENV, stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      if (exec('ip', ['netns', 'exec', p.b, 'ss', '-ltn', `sport = :5201`]).stdout.includes('5201')) break;
      exec('sleep', ['0.05']);
    }
    const out = must('ip', ['netns', 'exec', p.a, 'iperf3', '-c', p.bAddr, '-t', String(SECONDS), '-J'], { timeout: (SECONDS + 20) * 1000 });
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

function pingRtt(p: Path): { avg: number; mdev: number } {
  const out = must('ip', ['netns', 'exec', p.a, 'ping', '-q', '-c', String(PINGS), '-i', '0.005', p.bAddr], { timeout: 60_000 });
  // rtt min/avg/max/mdev = 0.031/0.045/0.120/0.010 ms
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (!m || !/ 0% packet loss/.test(out)) throw new Error(`ping ${p.name}: ${out.trim()}`);
  return { avg: Number(m[2]), mdev: Number(m[4]) };
}

async function dataPath(): Promise<Path[]> {
  const { Nsnet } = await import('../src/engine/engine.js');
  const stateDir = path.join(WORK, 'state-data');
  fs.rmSync(stateDir, { recursive: true, force: true });
  const nsnet = new Nsnet({ stateDir });
  const all = ['mvd1', 'mvd2', 'brd1', 'brd2', 'ved1', 'ved2'];
  ipBatch(all.map((n) => `netns add ${n}`));
  try {
    nsnet.createNetwork({ name: 'mvd', driver: 'macvlan', parent: PARENT, subnets: ['10.96.0.0/24'] });
    nsnet.createNetwork({ name: 'brd', subnets: ['10.97.0.0/24'] });
    for (const n of ['mvd1', 'mvd2']) nsnet.connect({ network: 'mvd', namespace: n });
    for (const n of ['brd1', 'brd2']) nsnet.connect({ network: 'brd', namespace: n });
    sh(`ip link add eth0 netns ved1 type veth peer name eth0 netns ved2
ip -n ved1 addr add 10.98.0.1/24 dev eth0
ip -n ved2 addr add 10.98.0.2/24 dev eth0
for n in ved1 ved2; do ip -n $n link set eth0 up; ip -n $n link set lo up; done`);
    const addr = (ns: string, net: string): string => nsnet.store.endpoint(net, ns)!.addresses[0]!.split('/')[0]!;
    const paths: Path[] = [
      { name: 'macvlan (bridge mode)', a: 'mvd1', b: 'mvd2', bAddr: addr('mvd2', 'mvd'), gbps: [], rtt: [], mdev: [] },
      { name: 'nsnet bridge', a: 'brd1', b: 'brd2', bAddr: addr('brd2', 'brd'), gbps: [], rtt: [], mdev: [] },
      { name: 'veth pair', a: 'ved1', b: 'ved2', bAddr: '10.98.0.2', gbps: [], rtt: [], mdev: [] },
    ];
    for (const p of paths) if (!ping1(p.a, p.bAddr)) throw new Error(`verification failed: ${p.name}: ${p.a} cannot ping ${p.bAddr}`);
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of paths) {
        const { avg, mdev } = pingRtt(p);
        p.rtt.push(avg);
        p.mdev.push(mdev);
      }
      for (const p of paths) p.gbps.push(iperf(p));
    }
    return paths;
  } finally {
    nsnet.reset();
    nsnet.close();
    ipBatch(all.map((n) => `netns del ${n}`));
  }
}

// ---- the section --------------------------------------------------------------------------

export async function run(): Promise<Section> {
  const started = performance.now();
  const load = os.loadavg()[0]!;
  fs.mkdirSync(WORK, { recursive: true });
  makeLan();
  let lat: Awaited<ReturnType<typeof attachLatency>>;
  let paths: Path[];
  try {
    lat = await attachLatency();
    paths = await dataPath();
  } finally {
    cleanupLan();
  }
  const row = (tool: string, a: Attach): string[] => [tool, medP90(a.attach), medP90(a.detach), duration(a.attach.reduce((x, y) => x + y, 0))];
  const best = (xs: number[]): number => Math.max(...xs);
  const [pm, pb, pv] = paths as [Path, Path, Path];
  const targets: Target[] = [
    { what: 'macvlan attach median / bridge attach median (library, same run)', value: ratio(median(lat.macvlan.attach) / median(lat.bridge.attach)), met: median(lat.macvlan.attach) <= median(lat.bridge.attach) },
    { what: 'nsnet macvlan attach median vs `ip` script median (×faster)', value: ratio(median(lat.script.attach) / median(lat.macvlan.attach)), met: median(lat.macvlan.attach) < median(lat.script.attach) },
    { what: 'macvlan RTT median / bridge RTT median', value: ratio(median(pm.rtt) / median(pb.rtt)), met: median(pm.rtt) <= median(pb.rtt) },
    { what: 'macvlan throughput (best round) / bridge throughput (best round)', value: ratio(best(pm.gbps) / best(pb.gbps)), met: best(pm.gbps) >= best(pb.gbps) },
  ];
  return {
    name: 'macvlan',
    title: 'macvlan networks: attach/detach latency vs bridge; container-to-container throughput and latency over macvlan vs bridge vs veth pair',
    notes: [
      `Parent: a veth (${PARENT}) whose peer is a port of a bridge in namespace ${LAN_NS} (the "LAN"); the script peer uses ${PARENT2} on the same LAN.`,
      `Attach/detach: ${N} existing namespaces per row, interleaved (bridge i, macvlan i, script i), after one warm-up connect per network; times in ms, median / p90.`,
      '  nsnet = library calls in this process (store transaction + netlink; bridge also: veth, bridge port, firewall elements).',
      '  ip script = `ip link add eth0 link PARENT netns NS type macvlan mode bridge` + addr + up + lo + default route, one `sh -ec` per attach, one `ip link del` per detach.',
      `Data path: two namespaces per path; ping = ${PINGS} echoes at 5 ms intervals (avg RTT per round); iperf3 = one TCP stream, ${SECONDS} s per round; ${ROUNDS} rounds interleaved.`,
    ],
    tables: [
      { head: ['attach (N namespaces)', 'attach ms', 'detach ms', `total attach`], rows: [row('nsnet macvlan', lat.macvlan), row('nsnet bridge', lat.bridge), row('ip script, macvlan', lat.script)] },
      {
        head: ['container → container', 'RTT ms (median of rounds)', 'mdev ms', 'Gbit/s (best)', 'Gbit/s (rounds)'],
        rows: paths.map((p) => [p.name, (median(p.rtt) * 1).toFixed(3), median(p.mdev).toFixed(3), best(p.gbps).toFixed(2), p.gbps.map((g) => g.toFixed(2)).join(' ')]),
      },
    ],
    targets,
    footer: [
      `verified: ${lat.macvlan.verified} (macvlan), ${lat.bridge.verified} (bridge), ${lat.script.verified} (script); every path pinged before measuring; no interface left after detach.`,
      `for comparison: veth pair RTT ${median(pv.rtt).toFixed(3)} ms, ${best(pv.gbps).toFixed(2)} Gbit/s — the floor a namespace pair can reach here; macvlan/veth throughput ${ratio(best(pm.gbps) / best(pv.gbps))}, bridge/veth ${ratio(best(pb.gbps) / best(pv.gbps))}.`,
      `detach medians: macvlan ${ms(median(lat.macvlan.detach))} ms, bridge ${ms(median(lat.bridge.detach))} ms, script ${ms(median(lat.script.detach))} ms.`,
      `(section took ${duration(performance.now() - started)}; 1-min load average ${load.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after, on ${os.cpus().length} CPUs)`,
    ],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  enterSandbox();
  printSection(await run());
}
