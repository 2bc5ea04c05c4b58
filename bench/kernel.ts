/**
 * Benchmark section "kernel" (issue 2): in one run, inside the sandbox, create N (500)
 * namespaces, each with a veth pair to the sandbox's namespace, a /30 on both ends and a
 * default route in the namespace, then delete them all — once through nsnet's kernel layer
 * (in this process), once as the tutorials do it: a shell loop of `ip` commands
 * (`ip netns add`, `ip link add … netns`, `ip addr add`, `ip -n … link set up`,
 * `ip route add default`, `ip netns del`).
 *
 * Both runs do the same kernel work per namespace: namespace + loopback up; veth pair with
 * the peer born in the namespace, both ends up; one address on each end; a default route;
 * deletion of the namespace (the kernel then removes the pair). Each run is verified before
 * its deletes (pings both ways from the first and the last namespace, the namespace count,
 * the last namespace's default route) and the kernel's asynchronous teardown is drained
 * between runs, so one run's cleanup does not land in the other's numbers.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Netns, createNetns, deleteNetns, listNetns } from '../src/kernel/netns/netns.js';
import { createVeth, listLinks } from '../src/kernel/netlink/route/link.js';
import { addAddress } from '../src/kernel/netlink/route/addr.js';
import { addRoute } from '../src/kernel/netlink/route/route.js';
import { type Section, duration, mean, medP90, median, ms, ratio } from './section.js';
import { CHILD_ENV } from './proc.js';

const N = Number(process.env.NSNET_BENCH_KERNEL_N ?? 500);
/** The growth windows: setups #6–#15 (around the 10th) and the last ten, #491–#500. */
const EARLY = [5, 15] as const;
const LATE = [N - 10, N] as const;


const OPS = ['create namespace (+ lo up)', 'veth pair, peer in ns, both up', 'addresses (both ends)', 'default route in ns', 'delete namespace'] as const;
type Op = (typeof OPS)[number];

interface Run {
  tool: string;
  samples: Record<Op, number[]>;
  /** Per-namespace setup time: create + veth + addresses + route. */
  setup: number[];
  setupWall: number;
  deleteWall: number;
  verified: string[];
  drainMs: number;
}

/** A /30 per pair: host side .1, namespace side .2 of 10.<net>.x.y. */
function pairAddrs(net: number, i: number): { host: string; peer: string } {
  const base = i * 4;
  const p = `10.${net}.${base >> 8}.`;
  return { host: `${p}${(base & 255) + 1}`, peer: `${p}${(base & 255) + 2}` };
}

function sh(file: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(file, args, { encoding: 'utf8', env: CHILD_ENV, maxBuffer: 16 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Pings both ways and checks the route, from outside the timed part. Returns failures. */
function verify(nsPrefix: string, net: number, hostPrefix: string): string[] {
  const bad: string[] = [];
  const names = listNetns().filter((n) => n.startsWith(nsPrefix));
  if (names.length !== N) bad.push(`${names.length} namespaces instead of ${N}`);
  for (const i of [0, N - 1]) {
    const { host, peer } = pairAddrs(net, i);
    const ns = `${nsPrefix}${i}`;
    if (sh('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W2', '-q', host]).status !== 0) bad.push(`ping ${ns} → ${host} failed`);
    if (sh('ping', ['-c1', '-W2', '-q', peer]).status !== 0) bad.push(`ping sandbox → ${peer} (${ns}) failed`);
    const r = sh('ip', ['-n', ns, '-j', 'route', 'show', 'default']);
    const gw = r.status === 0 ? (JSON.parse(r.stdout) as Array<{ gateway?: string }>)[0]?.gateway : undefined;
    if (gw !== host) bad.push(`${ns}: default route via ${gw ?? 'nothing'}, expected ${host}`);
    if (sh('ip', ['-o', 'link', 'show', 'dev', `${hostPrefix}${i}`]).status !== 0) bad.push(`${hostPrefix}${i} missing`);
  }
  return bad;
}

/** Waits until the kernel has finished tearing down deleted namespaces (their veth ends gone). */
async function drain(baseline: number): Promise<number> {
  const t = performance.now();
  while (listLinks(Netns.host()).length > baseline) {
    if (performance.now() - t > 30_000) throw new Error('kernel teardown did not finish within 30 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t;
}

function emptySamples(): Record<Op, number[]> {
  return Object.fromEntries(OPS.map((o) => [o, [] as number[]])) as unknown as Record<Op, number[]>;
}

async function runNsnet(baselineLinks: number): Promise<Run> {
  const host = Netns.host();
  const s = emptySamples();
  const setup: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const { host: hostIp, peer } = pairAddrs(200, i);
    const a = performance.now();
    const ns = createNetns(`bk-${i}`);
    const b = performance.now();
    createVeth(host, `bkh${i}`, { name: 'eth0', ns, up: true }, { up: true });
    const c = performance.now();
    addAddress(host, `bkh${i}`, `${hostIp}/30`);
    addAddress(ns, 'eth0', `${peer}/30`);
    const d = performance.now();
    addRoute(ns, { dst: 'default', gateway: hostIp });
    const e = performance.now();
    // The namespace lives on in its bind mount; its fd and socket are not needed any more.
    ns.close();
    s['create namespace (+ lo up)'].push(b - a);
    s['veth pair, peer in ns, both up'].push(c - b);
    s['addresses (both ends)'].push(d - c);
    s['default route in ns'].push(e - d);
    setup.push(e - a);
  }
  const setupWall = performance.now() - t0;
  const verified = verify('bk-', 200, 'bkh');
  const t1 = performance.now();
  for (let i = 0; i < N; i++) {
    const a = performance.now();
    deleteNetns(`bk-${i}`);
    s['delete namespace'].push(performance.now() - a);
  }
  const deleteWall = performance.now() - t1;
  const drainMs = await drain(baselineLinks);
  return { tool: 'nsnet (in-process)', samples: s, setup, setupWall, deleteWall, verified, drainMs };
}

// The tutorials' loop. bash's $EPOCHREALTIME is a builtin variable, so reading the clock
// around each group of commands starts no extra process.
const IP_SETUP = String.raw`
set -e
n=$1
for ((i=0; i<n; i++)); do
  b=$((i * 4)); p="10.201.$((b >> 8))."; h="$p$(((b & 255) + 1))"; c="$p$(((b & 255) + 2))"
  t0=$EPOCHREALTIME
  ip netns add bi-$i
  ip -n bi-$i link set lo up
  t1=$EPOCHREALTIME
  ip link add bih$i type veth peer name eth0 netns bi-$i
  ip link set bih$i up
  ip -n bi-$i link set eth0 up
  t2=$EPOCHREALTIME
  ip addr add $h/30 dev bih$i
  ip -n bi-$i addr add $c/30 dev eth0
  t3=$EPOCHREALTIME
  ip -n bi-$i route add default via $h
  t4=$EPOCHREALTIME
  echo "$t0 $t1 $t2 $t3 $t4"
done`;
const IP_DELETE = String.raw`
set -e
n=$1
for ((i=0; i<n; i++)); do
  t0=$EPOCHREALTIME
  ip netns del bi-$i
  t1=$EPOCHREALTIME
  echo "$t0 $t1"
done`;

function stamps(out: string, cols: number): number[][] {
  const rows = out.trim().split('\n').map((l) => l.trim().split(' ').map((x) => Number(x) * 1000));
  if (rows.length !== N || rows.some((r) => r.length !== cols || r.some((x) => !Number.isFinite(x)))) {
    throw new Error(`ip loop: unexpected timing output (${rows.length} lines)`);
  }
  return rows;
}

async function runIpLoop(baselineLinks: number): Promise<Run> {
  const s = emptySamples();
  const setup: number[] = [];
  let t = performance.now();
  const r1 = sh('/bin/bash', ['-c', IP_SETUP, 'ip-loop', String(N)]);
  const setupWall = performance.now() - t;
  if (r1.status !== 0) throw new Error(`ip loop setup failed: ${r1.stderr.trim().slice(0, 500)}`);
  for (const [a, b, c, d, e] of stamps(r1.stdout, 5)) {
    s['create namespace (+ lo up)'].push(b! - a!);
    s['veth pair, peer in ns, both up'].push(c! - b!);
    s['addresses (both ends)'].push(d! - c!);
    s['default route in ns'].push(e! - d!);
    setup.push(e! - a!);
  }
  const verified = verify('bi-', 201, 'bih');
  t = performance.now();
  const r2 = sh('/bin/bash', ['-c', IP_DELETE, 'ip-loop', String(N)]);
  const deleteWall = performance.now() - t;
  if (r2.status !== 0) throw new Error(`ip loop delete failed: ${r2.stderr.trim().slice(0, 500)}`);
  for (const [a, b] of stamps(r2.stdout, 2)) s['delete namespace'].push(b! - a!);
  const drainMs = await drain(baselineLinks);
  return { tool: 'ip loop (bash)', samples: s, setup, setupWall, deleteWall, verified, drainMs };
}

const windowMean = (xs: number[], [from, to]: readonly [number, number]): number => mean(xs.slice(from, to));

export async function run(): Promise<Section> {
  if (process.env.NSNET_SANDBOX !== '1') throw new Error('bench/kernel: run inside the sandbox (bench/run.ts enters it)');
  const started = performance.now();
  const baselineLinks = listLinks(Netns.host()).length;
  process.stderr.write(`[kernel] nsnet: ${N} namespaces…\n`);
  const lib = await runNsnet(baselineLinks);
  process.stderr.write(`[kernel] ip loop: ${N} namespaces…\n`);
  const ip = await runIpLoop(baselineLinks);

  const libTotal = lib.setupWall + lib.deleteWall;
  const ipTotal = ip.setupWall + ip.deleteWall;
  const rows = OPS.map((op) => [op, medP90(lib.samples[op]), medP90(ip.samples[op]), ratio(median(ip.samples[op]) / median(lib.samples[op]))]);
  rows.push(['setup per namespace (sum of the four)', medP90(lib.setup), medP90(ip.setup), ratio(median(ip.setup) / median(lib.setup))]);
  rows.push([`total: ${N} setups`, duration(lib.setupWall), duration(ip.setupWall), ratio(ip.setupWall / lib.setupWall)]);
  rows.push([`total: ${N} deletes`, duration(lib.deleteWall), duration(ip.deleteWall), ratio(ip.deleteWall / lib.deleteWall)]);
  rows.push(['total', duration(libTotal), duration(ipTotal), ratio(ipTotal / libTotal)]);
  const libAll = libTotal + lib.drainMs, ipAll = ipTotal + ip.drainMs;
  rows.push(['total + kernel teardown after the deletes', duration(libAll), duration(ipAll), ratio(ipAll / libAll)]);

  const growth = (r: Run): number => windowMean(r.setup, LATE) / windowMean(r.setup, EARLY);
  const windows = `mean setup of #${LATE[0] + 1}–#${LATE[1]} / mean of #${EARLY[0] + 1}–#${EARLY[1]}`;
  const ok = lib.verified.length === 0 && ip.verified.length === 0;
  return {
    name: 'kernel',
    title: `${N} namespaces, each with a veth pair to the sandbox, a /30 on both ends and a default route; then all deleted`,
    notes: [
      'nsnet runs in this process (rtnetlink + setns through koffi): Node start-up is not in its numbers, so',
      'NODE_EXTRA_CA_CERTS (which slows a Node start by ~40 ms here) cannot affect them; children (bash, ip, ping) run with it unset.',
      'ip loop = one bash running 9 `ip` commands per namespace (+ `ip netns del`), timed per step with $EPOCHREALTIME.',
      'times in ms, median / p90 over the samples; ratio = ip loop / nsnet.',
    ],
    tables: [{ head: ['operation', 'nsnet med / p90', 'ip loop med / p90', 'ratio'], rows }],
    targets: [
      { what: 'nsnet total ≥ 10× faster than the ip loop', value: ratio(ipTotal / libTotal), met: ipTotal / libTotal >= 10 },
      { what: `${N}th namespace no slower than the 10th, ≤ 1.5 (nsnet, ${windows})`, value: ratio(growth(lib)), met: growth(lib) <= 1.5 },
    ],
    footer: [
      `for comparison, the ip loop's ${windows}: ${ratio(growth(ip))}`,
      `verified before the deletes (namespace count; ping both ways and default route for #1 and #${N}): ${ok ? 'ok' : [...lib.verified, ...ip.verified].join('; ')}`,
      `kernel teardown (the kernel frees deleted namespaces asynchronously; waited for before the next run): nsnet ${duration(lib.drainMs)}, ip loop ${duration(ip.drainMs)}`,
      `(section took ${duration(performance.now() - started)}; ${ms(mean(lib.setup))} ms mean nsnet setup)`,
    ],
  };
}
