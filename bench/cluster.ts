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
 *    all in this run. Two more host-gw rows explain the figure: the same pairs with client
 *    and server pinned to different CPUs (iperf3 -A; left to the scheduler, one stream's
 *    rate also depends on where its softirq work lands), and with nsnet's firewall tables
 *    removed from both hosts (agents paused), which leaves the kernel's own path: the gap
 *    that remains there is two IP forwards and the simulated wire, not nsnet's hooks. This 2-core machine is shared, and one run of the same path spreads
 *    by ±15% with the load: each cluster run is paired with a baseline run next to it
 *    (back to back, which goes first alternating, so drift and bursts of load hit both alike), and the ratio reported is
 *    the median of the per-pair ratios (robust to a pair spoiled by a burst), beside the
 *    medians of the raw numbers. The load average is printed with them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { CIDR, ETCD_URL, World, type Host } from '../test/cluster/harness.js';
import { median, ms, type Section, type Table, type Target } from './section.js';

delete process.env.NODE_EXTRA_CA_CERTS; // adds ~40 ms to every Node start here (bench/proc.ts)

const SIZES = [3, 10, 30];
const SAMPLES = 3;
/** iperf3 pairs per row (each a baseline run and a cluster run); NSNET_BENCH_PAIRS overrides. */
const PAIRS = Number(process.env.NSNET_BENCH_PAIRS ?? 11);
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

/** One iperf3 run; `pin` puts the client on CPU 0 and the server on CPU 1 (iperf3 -A). */
async function iperf(server: Host, sns: string, sip: string, client: Host, cns: string, pin = false): Promise<number> {
  const srv = spawn('nsenter', ['-t', String(server.pid), '-m', '-n', '--', 'ip', 'netns', 'exec', sns, 'iperf3', '-s', '-1', '-B', sip, ...(pin ? ['-A', '1'] : [])], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      const r = client.run(['ip', 'netns', 'exec', cns, 'iperf3', '-c', sip, '-t', IPERF_SECONDS, '-J', ...(pin ? ['-A', '0'] : [])], 30_000);
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

/** Which parts run: NSNET_BENCH_CLUSTER=convergence or =throughput (default: both). */
const PARTS = (process.env.NSNET_BENCH_CLUSTER ?? 'convergence,throughput').split(',');

type PathName = 'host-gw' | 'host-gw, pinned' | 'host-gw, no nsnet tables' | 'vxlan';

export async function run(): Promise<Section> {
  const converge = PARTS.includes('convergence');
  const max = converge ? Math.max(...SIZES) : 2;
  const specs = Array.from({ length: max }, (_, i) => ({ name: `h${i + 1}`, segment: (i % 3 === 2 ? 'b' : 'a') as 'a' | 'b' }));
  const w = new World({ hosts: specs, env: ENV });
  const conv: string[][] = [];
  const footer: string[] = [];
  let at30 = NaN;
  let rss: number[] = [];
  const attach: number[] = [];
  /** The cluster network's MTU during the host-gw rows, then the VXLAN row. */
  const mtus: number[] = [];
  /** Per path: the pairs' baseline runs, cluster runs and ratios (Gbit/s). */
  const pairsOf = new Map<PathName, { base: number[]; far: number[]; ratio: number[] }>();
  try {
    await w.startEtcd();
    w.hosts[0]!.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR);
    const h1 = w.host('h1');
    const h2 = w.host('h2');
    if (converge) {
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
      const h3 = w.host('h3');
      h3.container('probe');
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const ip = h1.container(`att${i}`);
        while (h3.ping('probe', ip, ['-W', '0.2']).status !== 0) if (Date.now() - t0 > 10_000) throw new Error('attached container unreachable');
        attach.push(Date.now() - t0);
      }
      // Throughput needs only h1 and h2 (same segment): stop and retire the others, so the
      // CPU is free.
      // Their DNS services go too (they live as long as their host), and the machine gets a
      // few seconds to settle after the 30-host phase before anything is timed.
      for (const h of w.hosts.slice(2)) {
        await h.stopAgent('SIGKILL');
        h1.nsnetOk('cluster', 'node', 'rm', h.name, '--etcd', ETCD_URL, '--force');
        h.nsnet('dns', 'stop');
      }
      await sleep(5000);
    } else {
      await Promise.all([h1.startAgent(), h2.startAgent()]);
    }
    if (PARTS.includes('throughput')) {
      phase('throughput');
      await w.converged([h1, h2], 20_000);
      const settled = Date.now() + 20_000;
      while (h1.routes().some((r) => r.dev !== 'nsbr-cluster' && r.dst.startsWith('10.244.') && r.dst !== h2.subnet())) {
        if (Date.now() > settled) throw new Error('h1 did not withdraw the retired hosts');
        await sleep(50);
      }
      h1.container('ip1');
      const b1 = h1.container('ip1b');
      const b2 = h2.container('ip2');
      const loads: number[] = [];
      mtus.push(clusterMtu(h1));
      /** PAIRS × (baseline on h1's bridge and the cluster path between h1 and h2, back to back). */
      const pairs = async (path: PathName, pin = false): Promise<void> => {
        const p = { base: [] as number[], far: [] as number[], ratio: [] as number[] };
        pairsOf.set(path, p);
        for (let r = 0; r < PAIRS; r++) {
          loads.push(os.loadavg()[0]!);
          // Which of the two goes first alternates too (no order effect favours either).
          const runBase = (): Promise<number> => iperf(h1, 'ip1b', b1, h1, 'ip1', pin);
          const runFar = (): Promise<number> => iperf(h2, 'ip2', b2, h1, 'ip1', pin);
          let base: number;
          let far: number;
          if (r % 2 === 0) { base = await runBase(); far = await runFar(); } else { far = await runFar(); base = await runBase(); }
          p.base.push(base);
          p.far.push(far);
          p.ratio.push(far / base);
        }
      };
      await pairs('host-gw');
      await pairs('host-gw, pinned', true);
      // The kernel's own path: nsnet's tables removed from both hosts (agents paused, so no
      // resync puts them back meanwhile), then restored as they were.
      const saved = [h1, h2].map((h) => h.must('nft list ruleset'));
      for (const h of [h1, h2]) { h.agent!.kill('SIGSTOP'); h.must('nft delete table inet nsnet; nft delete table bridge nsnet'); }
      try {
        await pairs('host-gw, no nsnet tables');
      } finally {
        [h1, h2].forEach((h, i) => { h.run(['nft', 'flush', 'ruleset']); h.must(`nft -f - <<'EOF'\n${saved[i]}\nEOF`); h.agent!.kill('SIGCONT'); });
      }
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
      mtus.push(clusterMtu(h1));
      await pairs('vxlan');
      footer.push(`load average (1 min) during the throughput runs: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} on ${os.cpus().length} CPUs`);
    }
  } finally {
    await w.close();
  }
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const gbit = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
  const pathRows: string[][] = [];
  const LABEL: Record<PathName, string> = {
    'host-gw': 'two hosts, host-gw',
    'host-gw, pinned': 'two hosts, host-gw; client on CPU 0, server on CPU 1 (both runs of each pair)',
    'host-gw, no nsnet tables': 'two hosts, host-gw; nsnet\'s tables removed on both hosts (both runs): the kernel path alone',
    vxlan: 'two hosts, VXLAN',
  };
  for (const [path, p] of pairsOf) {
    pathRows.push([LABEL[path], median(p.far).toFixed(2), median(p.base).toFixed(2), pct(median(p.ratio)), gbit(p.far), gbit(p.base), p.ratio.map(pct).join(' ')]);
  }
  const ratioOf = (path: PathName): number => median(pairsOf.get(path)?.ratio ?? []);
  if (rss.length) footer.push(`agent RSS at ${max} hosts: median ${median(rss).toFixed(1)} MiB, max ${Math.max(...rss).toFixed(1)} MiB`);
  const tables: Table[] = [];
  const targets: Target[] = [];
  if (conv.length) {
    tables.push({ head: ['hosts', 'agent spawn → all programmed, ms', 'lease written → all programmed, ms', 'joiner'], rows: conv });
    tables.push({ head: ['what', 'median', 'samples'], rows: [['container attach → reachable from a VXLAN peer, ms', ms(median(attach)), attach.map(ms).join(', ')]] });
    targets.push({ what: `convergence at ${max} hosts (agent spawn → all programmed, median)`, value: `${ms(at30)} ms`, met: at30 < 1000 });
  }
  if (pathRows.length) {
    tables.push({ head: ['path', 'Gbit/s (median)', 'one bridge, same pairs (median)', 'vs one bridge (median of pairs)', 'runs', 'baseline runs', 'per-pair ratios'], rows: pathRows });
    targets.push({ what: 'host-gw throughput vs one bridge (median of pairs)', value: pct(ratioOf('host-gw')), met: ratioOf('host-gw') >= 0.9 });
    targets.push({ what: 'VXLAN throughput vs one bridge (median of pairs)', value: pct(ratioOf('vxlan')), met: ratioOf('vxlan') >= 0.6 });
  }
  return {
    name: 'cluster',
    title: 'multi-host: convergence, agent memory, throughput over host-gw and VXLAN (issue 7)',
    notes: [
      `${max} simulated hosts (network + mount namespace each${converge ? '; every third behind a router' : ''}), etcd 3.4 in its own namespace; lease TTL 30 s, resync 30 s.${converge ? '' : ' (NSNET_BENCH_CLUSTER=throughput: convergence not measured)'}`,
      'Convergence: one agent joins running ones; time until every agent (it and all peers) logged a kernel reconcile with the full peer set.',
      'Three joins per size (median, then each sample); the joiner is retired with `cluster node rm` between samples.',
      `Throughput: iperf3, one TCP stream, ${IPERF_SECONDS} s per run; ${PAIRS} pairs per row, each a one-bridge run (two namespaces on h1's cluster bridge) and the cluster run back to back (alternating which goes first); "vs one bridge" is the median of the per-pair ratios. Containers on the cluster network, MTU ${mtus.join(' (host-gw rows), ')} (VXLAN row), the same for the one-bridge baseline of each pair (backend auto counts the VXLAN overhead even when every peer is on-link); the underlay bridges (the simulated switches) pass no frame through netfilter.`,
    ],
    tables,
    targets,
    footer,
  };
}

/** The MTU of the `cluster` bridge on `h`. */
function clusterMtu(h: Host): number {
  const j = JSON.parse(h.must('ip -j link show nsbr-cluster')) as Array<{ mtu: number }>;
  return j[0]!.mtu;
}
