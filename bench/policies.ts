/**
 * Benchmark section "policies" (issue 4): what a policy costs a new connection, and what
 * adding one costs, at 10, 100 and 1,000 policies, in one run, inside the sandbox:
 *   - nsnet, library path: one network, namespaces po-a (client) and po-b (TCP server on
 *     port 80); the bulk is deny policies between /32 CIDRs of 172.16.0.0/12 that never match
 *     the probe, so every new connection from po-a to po-b is looked up against all of them
 *     (the worst case of a rule list; for nsnet's compiled verdict map, one lookup);
 *   - baseline: the same policies as one iptables rule each in FORWARD
 *     (`-s X -d Y -j DROP`, the rule-per-policy way Docker's DOCKER-USER / hand-written
 *     tutorials do it), on a plain bridge made with `ip` whose nf_call_iptables is on, so
 *     bridged traffic between the two namespaces traverses the rules.
 * At each size: median and p90 of CONNECTS sequential TCP connects po-a → po-b (SYN →
 * SYN/ACK; each a new conntrack entry, so each walks the policy lookup), and the time to add
 * one more policy (library call / one `iptables -A` process).
 */
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { enterSandbox, inSandbox } from '../src/sandbox/sandbox.js';
import { Nsnet } from '../src/engine/engine.js';
import { type Section, medP90, median, ms, ratio } from './section.js';
import { exec, must } from './proc.js';
import { CLIENT, LineProc, SERVER } from './ports.js';

const SIZES = [10, 100, 1000] as const;
const CONNECTS = Number(process.env.NSNET_BENCH_POLICY_CONNECTS ?? 400);
const STATE = '/run/nsnet-bench-policies';
const NET = 'ponet';
const SUBNET = '10.93.0.0/24';
const A = 'po-a';
const B = 'po-b';
const B_IP = '10.93.0.3';
const BRIDGE = 'po-br';

const sh = (script: string): string => must('/bin/sh', ['-ec', script]);
const quiet = (script: string): void => { exec('/bin/sh', ['-c', script]); };
const bulk = (i: number): { from: string; to: string } => ({ from: `172.16.${i >> 8}.${i & 255}/32`, to: `172.17.${i >> 8}.${i & 255}/32` });

interface Point { size: number; connect: number[]; add: number; errors: Record<string, number> }

async function measure(label: string, grow: (from: number, to: number) => void, addOne: (i: number) => number, points: Point[]): Promise<void> {
  const server = await new LineProc(`server in ${B}`, B, SERVER, ['80']).ready();
  const client = await new LineProc(`client in ${A}`, A, CLIENT, []).ready();
  try {
    let have = 0;
    for (const size of SIZES) {
      process.stderr.write(`[policies] ${label}: ${size} policies…\n`);
      grow(have, size - 1);
      have = size - 1;
      const add = addOne(have);
      have++;
      await client.ask(JSON.stringify({ host: B_IP, port: 80, n: 30, timeout: 1000 })); // warm
      const r = JSON.parse(await client.ask(JSON.stringify({ host: B_IP, port: 80, n: CONNECTS, timeout: 1000 }))) as { ms: number[]; errors: Record<string, number> };
      points.push({ size, connect: r.ms, add, errors: r.errors });
    }
    // The server accepts asynchronously (a connect completes at the SYN/ACK): let it catch up.
    await new Promise((r) => setTimeout(r, 1000));
    const seen = JSON.parse(await server.ask('count')) as Record<string, number>;
    if ((seen['80'] ?? 0) < CONNECTS * SIZES.length) throw new Error(`${label}: the server saw ${seen['80']} connects, fewer than measured`);
  } finally {
    client.stop();
    server.stop();
  }
}

export async function run(): Promise<Section> {
  if (!inSandbox()) throw new Error('bench/policies: run inside the sandbox (enterSandbox() first)');
  const nsnetPoints: Point[] = [];
  const iptPoints: Point[] = [];
  quiet(`ip netns del ${A}; ip netns del ${B}; ip link del ${BRIDGE}; rm -rf ${STATE}`);

  // nsnet
  const net = new Nsnet({ stateDir: STATE });
  try {
    net.createNetwork({ name: NET, subnets: [SUBNET] });
    net.addNamespace(A);
    net.addNamespace(B);
    net.connect({ network: NET, namespace: A, ips: ['10.93.0.2'] });
    net.connect({ network: NET, namespace: B, ips: [B_IP] });
    await measure('nsnet', (from, to) => {
      for (let i = from; i < to; i++) net.addPolicy({ action: 'deny', ...bulk(i), name: `bulk${i}` });
    }, (i) => {
      const t = performance.now();
      net.addPolicy({ action: 'deny', ...bulk(i), name: `bulk${i}` });
      return performance.now() - t;
    }, nsnetPoints);
    const lookups = must('nft', ['-a', 'list', 'chain', 'inet', 'nsnet', 'policies']).split('\n').filter((l) => l.includes('vmap')).length;
    if (lookups !== 2) throw new Error(`nsnet: expected 2 lookups in the policies chain, found ${lookups}`);
  } finally {
    net.reset();
    net.close();
    quiet(`rm -rf ${STATE}`);
  }

  // iptables, one rule per policy, on a plain bridge
  try {
    sh(`ip link add ${BRIDGE} type bridge nf_call_iptables 1
ip addr add 10.93.0.1/24 dev ${BRIDGE}
ip link set ${BRIDGE} up
for x in a:2 b:3; do n=po-\${x%%:*}; i=\${x#*:}
  ip netns add $n
  ip link add po-h$i type veth peer name eth0 netns $n
  ip link set po-h$i master ${BRIDGE} up
  ip -n $n addr add 10.93.0.$i/24 dev eth0
  ip -n $n link set eth0 up
  ip -n $n link set lo up
done`);
    await measure('iptables', (from, to) => {
      if (to <= from) return;
      const lines = ['*filter'];
      for (let i = from; i < to; i++) { const b = bulk(i); lines.push(`-A FORWARD -s ${b.from} -d ${b.to} -j DROP`); }
      lines.push('COMMIT', '');
      must('iptables-restore', ['--noflush'], { input: lines.join('\n') });
    }, (i) => {
      const b = bulk(i);
      const t = performance.now();
      must('iptables', ['-A', 'FORWARD', '-s', b.from, '-d', b.to, '-j', 'DROP']);
      return performance.now() - t;
    }, iptPoints);
  } finally {
    quiet(`ip netns del ${A}; ip netns del ${B}; ip link del ${BRIDGE}; iptables -F FORWARD`);
  }

  const rows = SIZES.map((size, k) => {
    const n = nsnetPoints[k]!;
    const i = iptPoints[k]!;
    return [String(size), medP90(n.connect), medP90(i.connect), ms(n.add), ms(i.add), JSON.stringify({ ...n.errors, ...i.errors }).replace(/^\{\}$/, '—')];
  });
  const growth = (ps: Point[]): number => median(ps[ps.length - 1]!.connect) / median(ps[0]!.connect);
  return {
    name: 'policies',
    title: `a new connection through ${SIZES.join(' / ')} policies; adding one more — nsnet vs iptables rule per policy`,
    notes: [
      `${CONNECTS} sequential TCP connects po-a → po-b per size (median / p90, ms); bulk policies never match the probe.`,
      'nsnet: the policies chain is two fixed vmap lookups (checked); iptables: one FORWARD rule per policy, the probe passes all of them.',
    ],
    tables: [{ head: ['policies', 'nsnet connect', 'iptables connect', 'nsnet add one', 'iptables add one', 'connect errors'], rows }],
    targets: [
      { what: `nsnet connect at ${SIZES[SIZES.length - 1]} policies vs ${SIZES[0]} (median), ≤ 1.1`, value: ratio(growth(nsnetPoints)), met: growth(nsnetPoints) <= 1.1 },
    ],
    footer: [`iptables connect at ${SIZES[SIZES.length - 1]} vs ${SIZES[0]}: ${ratio(growth(iptPoints))}`],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  enterSandbox();
  const { printSection } = await import('./section.js');
  printSection(await run());
}
