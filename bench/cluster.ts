/**
 * Bench section `cluster` (issue 7): containers across simulated hosts (the harness of
 * test/cluster: each host a network + mount namespace, underlay bridges, a router, etcd).
 *
 *  - Convergence: from an agent starting (process spawned) to every peer's kernel holding
 *    its route (each agent logs `reconciled` after programming the kernel; all processes
 *    share one clock), for 3, 10 and 30 hosts — also from its lease being written, which
 *    leaves out Node's start-up. Three joins per size: the joiner is stopped and retired
 *    (`cluster node rm`, peers withdraw it) between samples.
 *  - A container attaching on one host until a container on a VXLAN peer reaches it.
 *  - Agent memory (VmRSS) at 30 hosts.
 *  - Throughput (iperf3, one TCP stream, 4 s per run): two namespaces on one bridge (baseline),
 *    containers on two hosts over host-gw, and the same two hosts over VXLAN (the cluster
 *    switched to `--backend vxlan`, agents restarted: the reconcile replaces the routes),
 *    all in this run. This 2-core machine is shared, and one run of the same path spreads
 *    by ±15% with the load: each cluster run is paired with a baseline run next to it
 *    (back to back, which goes first alternating, so drift and bursts of load hit both alike), and the ratio reported is
 *    the median of the per-pair ratios (robust to a pair spoiled by a burst), beside the
 *    medians of the raw numbers. The load average is printed with them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { CIDR, ETCD_URL, World, type Host } from '../test/cluster/harness.js';
import { median, ms, type Section } from './section.js';

delete process.env.NODE_EXTRA_CA_CERTS; // adds ~40 ms to every Node start here (bench/proc.ts)

const SIZES = [3, 10, 30];
const SAMPLES = 3;
/** iperf3 pairs per cluster path (each a baseline run then a cluster run). */
const PAIRS = 7;
const IPERF_SECONDS = '4';
const ENV = { NSNET_CLUSTER_LEASE_TTL: '30', NSNET_CLUSTER_HEARTBEAT_TTL: '5', NSNET_CLUSTER_RESYNC: '30' };

const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

async function startBatch(hosts: Host[], batch = 4): Promise<void> {
  for (let i = 0; i < hosts.length; i += batch) await Promise.all(hosts.slice(i, i + batch).map((h) => h.startAgent()));
}

/** Joins `joiner` to the running agents; returns [ms from spawn, ms from lease written]. */
async function join(running: Host[], joiner: Host): Promise<[number, number]> {
  const marks = running.map((h) => h.events.length);
  const n = running.length + 1;
  const t0 = Date.now();
  await joiner.startAgent();
  const end = Date.now() + 30_000;
  for (;;) {
    const done = running.map((h, i) => h.events.slice(marks[i]).find((e) => e.event === 'reconciled' && Number(e.changes) > 0 && e.peers === n - 1));
    const own = joiner.events.find((e) => e.event === 'reconciled' && e.peers === n - 1);
    if (own && done.every(Boolean)) {
      const last = Math.max(Date.parse(own.ts), ...done.map((e) => Date.parse(e!.ts)));
      const leased = Date.parse(joiner.events.find((e) => e.event === 'leased')!.ts);
      return [last - t0, last - leased];
    }
    if (Date.now() > end) throw new Error(`join of ${joiner.name} did not converge at ${n} hosts`);
    await sleep(20);
  }
}

async function retire(running: Host[], joiner: Host): Promise<void> {
  const subnet = joiner.subnet();
  await joiner.stopAgent('SIGTERM');
  joiner.nsnetOk('cluster', 'node', 'rm', joiner.name, '--etcd', ETCD_URL, '--force');
  const end = Date.now() + 20_000;
  while (running.some((h) => h.routes().some((r) => r.dst === subnet))) {
    if (Date.now() > end) throw new Error('peers did not withdraw the retired host');
    await sleep(50);
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function iperf(server: Host, sns: string, sip: string, client: Host, cns: string): Promise<number> {
  const srv = spawn('nsenter', ['-t', String(server.pid), '-m', '-n', '--', 'ip', 'netns', 'exec', sns, 'iperf3', '-s', '-1', '-B', sip], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      const r = client.run(['ip', 'netns', 'exec', cns, 'iperf3', '-c', sip, '-t', IPERF_SECONDS, '-J'], 30_000);
      const j = r.status === 0 ? JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second: number } }; error?: string } : undefined;
      if (j?.end?.sum_received) return j.end.sum_received.bits_per_second / 1e9;
      if (process.env.NSNET_BENCH_DEBUG) console.error(`iperf3 ${cns} → ${sip}: ${r.status} ${j?.error ?? r.stderr.slice(0, 200)}`);
      await sleep(100);
    }
    throw new Error(`iperf3 ${cns} → ${sip} failed`);
  } finally {
    srv.kill('SIGKILL');
  }
}

const phase = (what: string): void => { if (process.env.NSNET_BENCH_DEBUG) console.error(`${new Date().toISOString()} ${what}`); };

export async function run(): Promise<Section> {
  const max = Math.max(...SIZES);
  const specs = Array.from({ length: max }, (_, i) => ({ name: `h${i + 1}`, segment: (i % 3 === 2 ? 'b' : 'a') as 'a' | 'b' }));
  const w = new World({ hosts: specs, env: ENV });
  const conv: string[][] = [];
  const footer: string[] = [];
  let at30 = NaN;
  let rss: number[] = [];
  const attach: number[] = [];
  const tput: Record<string, number[]> = { bridge: [], 'host-gw': [], vxlan: [] };
  const ratios: Record<string, number[]> = { 'host-gw': [], vxlan: [] };
  try {
    await w.startEtcd();
    w.hosts[0]!.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR);
    let running: Host[] = [];
    for (const n of SIZES) {
      const want = w.hosts.slice(0, n - 1);
      phase(`starting agents for ${n}`);
      await startBatch(want.filter((h) => !running.includes(h)));
      phase('started');
      running = want;
      await w.converged(running, 60_000);
      const joiner = w.hosts[n - 1]!;
      const fromSpawn: number[] = [];
      const fromLease: number[] = [];
      for (let s = 0; s < SAMPLES; s++) {
        phase(`join ${n} #${s}`);
        const [a, b] = await join(running, joiner);
        fromSpawn.push(a);
        fromLease.push(b);
        if (s < SAMPLES - 1 || n !== max) await retire(running, joiner);
      }
      if (n === max) at30 = median(fromSpawn);
      conv.push([String(n), `${ms(median(fromSpawn))} (${fromSpawn.map(ms).join(', ')})`, `${ms(median(fromLease))} (${fromLease.map(ms).join(', ')})`,
        joiner.segment === 'b' ? 'VXLAN to all' : 'host-gw on its segment, VXLAN to the other']);
    }
    rss = w.hosts.map((h) => rssMiB(h.agent!.pid!));

    phase('attach');
    // A container attaching on h1 until a container on h3 (a VXLAN peer) reaches it.
    const h1 = w.host('h1');
    const h2 = w.host('h2');
    const h3 = w.host('h3');
    h3.container('probe');
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const ip = h1.container(`att${i}`);
      while (h3.ping('probe', ip, ['-W', '0.2']).status !== 0) if (Date.now() - t0 > 10_000) throw new Error('attached container unreachable');
      attach.push(Date.now() - t0);
    }

    phase('throughput');
    // Throughput: keep h1, h2 (same segment); stop the others to free the CPU.
    for (const h of w.hosts.slice(2)) await h.stopAgent('SIGKILL');
    h1.container('ip1');
    const b1 = h1.container('ip1b');
    const b2 = h2.container('ip2');
    const loads: number[] = [];
    /** PAIRS × (baseline on h1's bridge and `path` between h1 and h2, back to back). */
    const pairs = async (path: 'host-gw' | 'vxlan'): Promise<void> => {
      for (let r = 0; r < PAIRS; r++) {
        loads.push(os.loadavg()[0]!);
        // Which of the two goes first alternates too (no order effect favours either).
        const runBase = (): Promise<number> => iperf(h1, 'ip1b', b1, h1, 'ip1');
        const runFar = (): Promise<number> => iperf(h2, 'ip2', b2, h1, 'ip1');
        let base: number;
        let far: number;
        if (r % 2 === 0) { base = await runBase(); far = await runFar(); } else { far = await runFar(); base = await runBase(); }
        tput.bridge!.push(base);
        tput[path]!.push(far);
        ratios[path]!.push(far / base);
      }
    };
    await pairs('host-gw');
    // Same two hosts over VXLAN: re-initialise with --backend vxlan and restart both agents.
    w.etcdctl('del', '/nsnet/v1/config');
    h1.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR, '--backend', 'vxlan');
    await h1.stopAgent();
    await h2.stopAgent();
    await Promise.all([h1.startAgent(), h2.startAgent()]);
    const end = Date.now() + 20_000;
    while (h1.routes().find((x) => x.dst === h2.subnet())?.dev !== 'nsnet.1') {
      if (Date.now() > end) throw new Error('h1 did not switch to VXLAN');
      await sleep(50);
    }
    await pairs('vxlan');
    footer.push(`load average (1 min) during the throughput runs: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} on ${os.cpus().length} CPUs`);
  } finally {
    await w.close();
  }
  const bridge = median(tput.bridge!);
  const hg = median(tput['host-gw']!);
  const vx = median(tput.vxlan!);
  const hgRatio = median(ratios['host-gw']!);
  const vxRatio = median(ratios.vxlan!);
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  footer.push(`agent RSS at ${max} hosts: median ${median(rss).toFixed(1)} MiB, max ${Math.max(...rss).toFixed(1)} MiB`);
  return {
    name: 'cluster',
    title: 'multi-host: convergence, agent memory, throughput over host-gw and VXLAN (issue 7)',
    notes: [
      `${max} simulated hosts (network + mount namespace each; every third behind a router), etcd 3.4 in its own namespace; lease TTL 30 s, resync 30 s.`,
      'Convergence: one agent joins running ones; time until every agent (it and all peers) logged a kernel reconcile with the full peer set.',
      'Three joins per size (median, then each sample); the joiner is retired with `cluster node rm` between samples.',
      `Throughput: iperf3, one TCP stream, ${IPERF_SECONDS} s per run; ${PAIRS} pairs per cluster path, each a one-bridge run and the cluster run back to back (alternating which goes first); "vs one bridge" is the median of the per-pair ratios. Containers on the cluster network (MTU 1450 everywhere, also on the one-bridge baseline); the underlay bridges (the simulated switches) pass no frame through netfilter.`,
    ],
    tables: [
      { head: ['hosts', 'agent spawn → all programmed, ms', 'lease written → all programmed, ms', 'joiner'], rows: conv },
      { head: ['what', 'median', 'samples'], rows: [
        ['container attach → reachable from a VXLAN peer, ms', ms(median(attach)), attach.map(ms).join(', ')],
      ] },
      { head: ['path', 'Gbit/s (median)', 'vs one bridge (median of pairs)', 'runs (Gbit/s)', 'per-pair ratios'], rows: [
        ['two namespaces, one bridge (baseline)', bridge.toFixed(2), '100%', tput.bridge!.map((x) => x.toFixed(2)).join(', '), ''],
        ['two hosts, host-gw', hg.toFixed(2), pct(hgRatio), tput['host-gw']!.map((x) => x.toFixed(2)).join(', '), ratios['host-gw']!.map(pct).join(' ')],
        ['two hosts, VXLAN', vx.toFixed(2), pct(vxRatio), tput.vxlan!.map((x) => x.toFixed(2)).join(', '), ratios.vxlan!.map(pct).join(' ')],
      ] },
    ],
    targets: [
      { what: `convergence at ${max} hosts (agent spawn → all programmed, median)`, value: `${ms(at30)} ms`, met: at30 < 1000 },
      { what: 'host-gw throughput vs one bridge (median of pairs)', value: pct(hgRatio), met: hgRatio >= 0.9 },
      { what: 'VXLAN throughput vs one bridge (median of pairs)', value: pct(vxRatio), met: vxRatio >= 0.6 },
    ],
    footer,
  };
}
