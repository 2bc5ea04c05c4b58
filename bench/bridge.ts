/**
 * Benchmark section "bridge" (issue 3): attach 200 existing namespaces to one bridge network
 * (NAT already in place), then detach them, with
 *   - nsnet, library path (one process, `Nsnet.connect` / `disconnect` per namespace);
 *   - nsnet, CLI path (one `node dist/src/cli/nsnet.cjs connect|disconnect` per namespace,
 *     NODE_EXTRA_CA_CERTS deleted from the child's environment);
 *   - (a) a shell script of `ip` commands as in the tutorials (one `sh` per attach/detach);
 *   - (b) the CNI reference plugins bridge + host-local (Debian containernetworking-plugins),
 *     invoked as a runtime does: CNI_* environment + config JSON on stdin;
 *   - (c) netavark 1.4.0 from Debian (iptables driver), IPs chosen by the caller as podman does;
 * plus `nsnet apply -f` / `down -f` of a file declaring 200 attached namespaces.
 *
 * Every tool gets its own bridge and subnet and is cleaned up before the next one. A tool's
 * numbers are only printed if its run is verified: ping of the gateway and, through NAT, of an
 * "outside" namespace (203.0.113.2, which has no route back to the containers) from the first
 * and the last namespace, and no ports left on the bridge after the detaches.
 *
 * Must run inside the private sandbox (bench/run.ts enters it; standalone:
 * `node dist/bench/bridge.js` enters it itself).
 */
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { enterSandbox, inSandbox } from '../src/sandbox/sandbox.js';
import { type Section, type Target, duration, mean, medP90, median, ms, printSection, ratio } from './section.js';
import { CHILD_ENV, exec, must } from './proc.js';

const N = Number(process.env.NSNET_BENCH_N ?? 200);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'nsnet.cjs');
const WORK = '/run/nsnet-bench-bridge';
const CNI_DIR = '/usr/lib/cni';
const NETAVARK = '/usr/lib/podman/netavark';
const OUTSIDE_NS = 'bench-outside';
const OUTSIDE_IP = '203.0.113.2';


// ---- helpers ---------------------------------------------------------------------------------




const sh = (script: string): string => must('/bin/sh', ['-ec', script]);
const ipBatch = (lines: string[]): void => { if (lines.length) must('ip', ['-batch', '-'], { input: `${lines.join('\n')}\n` }); };
const quiet = (script: string): void => { exec('/bin/sh', ['-c', script]); };

function timed<T>(fn: () => T): [number, T] {
  const t0 = performance.now();
  const v = fn();
  return [performance.now() - t0, v];
}

const names = (prefix: string): string[] => Array.from({ length: N }, (_, i) => `${prefix}${i}`);
/** Host address i (0-based) of a /16 `a.b.0.0`, skipping .0.0 and the gateway .0.1. */
const hostIp = (net: string, i: number): string => {
  const [a, b] = net.split('.');
  const h = i + 2;
  return `${a}.${b}.${h >> 8}.${h & 255}`;
};

function addNamespaces(list: string[]): void {
  ipBatch(list.map((n) => `netns add ${n}`));
}
function delNamespaces(list: string[]): void {
  const present = new Set(exec('ip', ['netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]));
  ipBatch(list.filter((n) => present.has(n)).map((n) => `netns del ${n}`));
}

function ping(ns: string, ip: string): boolean {
  return exec('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W2', ip]).status === 0;
}

/** Gateway and outside (through NAT) from the first and last namespace; throws if any fails. */
function verifyAttached(nsList: string[], gw: string): string {
  for (const ns of [nsList[0]!, nsList[nsList.length - 1]!]) {
    if (!ping(ns, gw)) throw new Error(`verification failed: ${ns} cannot ping its gateway ${gw}`);
    if (!ping(ns, OUTSIDE_IP)) throw new Error(`verification failed: ${ns} cannot reach ${OUTSIDE_IP} (NAT)`);
  }
  return 'ok';
}

function bridgePorts(bridge: string): string[] {
  const r = exec('ip', ['-o', 'link', 'show', 'master', bridge]);
  return r.status === 0 ? r.stdout.split('\n').filter((l) => l.trim()).map((l) => l.split(':')[1]!.trim()) : [];
}

function verifyDetached(bridge: string, allowed = 0): void {
  const ports = bridgePorts(bridge);
  if (ports.length > allowed) {
    throw new Error(`verification failed: ${ports.length - allowed} port(s) still on ${bridge} after detach (${ports.join(' ')})`);
  }
}

function setupOutside(): void {
  quiet(`ip netns del ${OUTSIDE_NS} 2>/dev/null; ip link del bench-up 2>/dev/null`);
  sh(`ip netns add ${OUTSIDE_NS}
ip link add bench-up type veth peer name up0 netns ${OUTSIDE_NS}
ip addr add 203.0.113.1/24 dev bench-up
ip link set bench-up up
ip -n ${OUTSIDE_NS} addr add ${OUTSIDE_IP}/24 dev up0
ip -n ${OUTSIDE_NS} link set up0 up
ip -n ${OUTSIDE_NS} link set lo up`);
}

function flushIptables(): void {
  quiet('for t in nat filter mangle; do iptables -t $t -F; iptables -t $t -X; done 2>/dev/null');
}

// ---- one tool --------------------------------------------------------------------------------

interface Result {
  tool: string;
  attach: number[];
  detach: number[];
  attachWall: number;
  detachWall: number;
  note?: string;
  error?: string;
}

interface Driver {
  tool: string;
  prefix: string;
  /** Creates the network (NAT in place); untimed. */
  setup(nsList: string[]): void;
  attach(ns: string, i: number): void;
  detach(ns: string, i: number): void;
  gateway: string;
  bridge: string;
  /** Ports that stay on the bridge by design (an anchor container). */
  anchorPorts?: number;
  cleanup(nsList: string[]): void;
}

function runDriver(d: Driver): Result {
  const nsList = names(d.prefix);
  const res: Result = { tool: d.tool, attach: [], detach: [], attachWall: 0, detachWall: 0 };
  try {
    addNamespaces(nsList);
    d.setup(nsList);
    const t0 = performance.now();
    nsList.forEach((ns, i) => { res.attach.push(timed(() => d.attach(ns, i))[0]); });
    res.attachWall = performance.now() - t0;
    verifyAttached(nsList, d.gateway);
    const t1 = performance.now();
    nsList.forEach((ns, i) => { res.detach.push(timed(() => d.detach(ns, i))[0]); });
    res.detachWall = performance.now() - t1;
    verifyDetached(d.bridge, d.anchorPorts ?? 0);
  } catch (e) {
    process.stderr.write(`[bridge] ${d.tool}: ${(e as Error).message}\n`);
    res.error = (e as Error).message.split('\n').slice(0, 2).join(' ').slice(0, 200);
  } finally {
    try { d.cleanup(nsList); } catch (e) { res.error ??= `cleanup: ${(e as Error).message}`; }
    delNamespaces(nsList);
  }
  return res;
}

// ---- nsnet -----------------------------------------------------------------------------------

async function nsnetLibrary(): Promise<Result> {
  const { Nsnet } = await import('../src/engine/engine.js');
  const stateDir = path.join(WORK, 'state-lib');
  let nsnet: InstanceType<typeof Nsnet> | undefined;
  const net = 'benchlib';
  return runDriver({
    tool: 'nsnet library (1 process)', prefix: 'lib', gateway: '10.89.0.1', bridge: 'nsbr-benchlib',
    setup() {
      nsnet = new Nsnet({ stateDir });
      nsnet.createNetwork({ name: net, subnets: ['10.89.0.0/16'] });
    },
    attach(ns) { nsnet!.connect({ network: net, namespace: ns }); },
    detach(ns) { nsnet!.disconnect(net, ns); },
    cleanup() { nsnet?.reset(); nsnet?.close(); },
  });
}

function cli(stateDir: string, args: string[]): void {
  must(process.execPath, [CLI, '--state-dir', stateDir, ...args]);
}

function nsnetCli(): Result {
  const stateDir = path.join(WORK, 'state-cli');
  const net = 'benchcli';
  return runDriver({
    tool: 'nsnet CLI (1 node per op)', prefix: 'cli', gateway: '10.90.0.1', bridge: 'nsbr-benchcli',
    setup() { cli(stateDir, ['network', 'create', net, '--subnet', '10.90.0.0/16']); },
    attach(ns) { cli(stateDir, ['connect', net, ns]); },
    detach(ns) { cli(stateDir, ['disconnect', net, ns]); },
    cleanup() { cli(stateDir, ['reset', '--yes']); },
  });
}

/**
 * The CLI again, with a resident `nsnet serve` for the state dir: each `node nsnet.cjs connect`
 * hands the command to it instead of loading the engine (src/cli/server.ts).
 */
async function nsnetCliServed(): Promise<Result> {
  const stateDir = path.join(WORK, 'state-serve');
  const net = 'benchsrv';
  const server = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'serve'], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (c) => reject(new Error(`nsnet serve exited ${c}`)));
    });
    return runDriver({
      tool: 'nsnet CLI + nsnet serve', prefix: 'srv', gateway: '10.95.0.1', bridge: 'nsbr-benchsrv',
      setup() { cli(stateDir, ['network', 'create', net, '--subnet', '10.95.0.0/16']); },
      attach(ns) { cli(stateDir, ['connect', net, ns]); },
      detach(ns) { cli(stateDir, ['disconnect', net, ns]); },
      cleanup() { cli(stateDir, ['reset', '--yes']); },
    });
  } finally {
    server.kill('SIGTERM');
  }
}

interface ApplyResult { applyMs?: number; downMs?: number; error?: string }

function nsnetApply(): ApplyResult {
  const stateDir = path.join(WORK, 'state-apply');
  const file = path.join(WORK, `apply-${N}.yaml`);
  const nsList = names('app');
  const yaml = [
    '# generated by bench/bridge.ts', 'networks:', '  benchapply:', '    subnet: 10.91.0.0/16', 'namespaces:',
    ...nsList.flatMap((n) => [`  ${n}:`, '    networks: [benchapply]']),
  ].join('\n');
  fs.writeFileSync(file, `${yaml}\n`);
  const out: ApplyResult = {};
  try {
    out.applyMs = timed(() => cli(stateDir, ['apply', '-f', file]))[0];
    verifyAttached(nsList, '10.91.0.1');
    out.downMs = timed(() => cli(stateDir, ['down', '-f', file]))[0];
    const left = exec('ip', ['netns', 'list']).stdout.split('\n').filter((l) => /^app\d+\b/.test(l)).length;
    if (left > 0) throw new Error(`verification failed: ${left} namespace(s) left after down`);
    if (exec('ip', ['link', 'show', 'nsbr-benchapply']).status === 0) throw new Error('verification failed: bridge left after down');
  } catch (e) {
    out.error = (e as Error).message.split('\n')[0];
  } finally {
    exec(process.execPath, [CLI, '--state-dir', stateDir, 'reset', '--yes']);
    delNamespaces(nsList);
  }
  return out;
}

// ---- (a) shell script of ip commands ---------------------------------------------------------

const IP_ATTACH = `# as in the tutorials: $1 namespace, $2 host veth, $3 address/prefix, $4 gateway, $5 bridge
ip link add "$2" type veth peer name eth0 netns "$1"
ip link set "$2" master "$5"
ip link set "$2" up
ip -n "$1" addr add "$3" dev eth0
ip -n "$1" link set eth0 up
ip -n "$1" link set lo up
ip -n "$1" route add default via "$4"
`;
const IP_DETACH = `ip link del "$1"\n`;

function ipScript(): Result {
  const br = 'br-ipsh';
  const attachSh = path.join(WORK, 'ip-attach.sh');
  const detachSh = path.join(WORK, 'ip-detach.sh');
  fs.writeFileSync(attachSh, `#!/bin/sh\nset -e\n${IP_ATTACH}`);
  fs.writeFileSync(detachSh, `#!/bin/sh\nset -e\n${IP_DETACH}`);
  return runDriver({
    tool: '(a) sh + ip script', prefix: 'ipsh', gateway: '10.92.0.1', bridge: br,
    setup() {
      sh(`ip link add ${br} type bridge
ip addr add 10.92.0.1/16 dev ${br}
ip link set ${br} up
echo 1 > /proc/sys/net/ipv4/ip_forward
iptables -t nat -A POSTROUTING -s 10.92.0.0/16 ! -o ${br} -j MASQUERADE`);
    },
    attach(ns, i) { must('/bin/sh', [attachSh, ns, `vipsh${i}`, `${hostIp('10.92.0.0', i)}/16`, '10.92.0.1', br]); },
    detach(_ns, i) { must('/bin/sh', [detachSh, `vipsh${i}`]); },
    cleanup() { quiet(`ip link del ${br}`); flushIptables(); },
  });
}

// ---- (b) CNI reference plugins ---------------------------------------------------------------

function cniBridge(): Result {
  const br = 'br-cni';
  const dataDir = path.join(WORK, 'cni-ipam');
  const conf = {
    cniVersion: '1.0.0', name: 'benchcni', type: 'bridge', bridge: br, isGateway: true, ipMasq: true,
    ipam: {
      type: 'host-local', dataDir,
      ranges: [[{ subnet: '10.93.0.0/16', gateway: '10.93.0.1' }]],
      routes: [{ dst: '0.0.0.0/0' }],
    },
  };
  const results = new Map<string, unknown>();
  const call = (cmd: 'ADD' | 'DEL', ns: string): void => {
    const input = JSON.stringify({ ...conf, runtimeConfig: {}, ...(cmd === 'DEL' && results.has(ns) ? { prevResult: results.get(ns) } : {}) });
    const r = exec(path.join(CNI_DIR, 'bridge'), [], {
      input,
      env: { ...CHILD_ENV, CNI_COMMAND: cmd, CNI_CONTAINERID: `bench-${ns}`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: CNI_DIR },
    });
    if (r.status !== 0) throw new Error(`CNI ${cmd} ${ns} exited ${r.status}: ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
    if (cmd === 'ADD') results.set(ns, JSON.parse(r.stdout));
  };
  return runDriver({
    tool: '(b) CNI bridge+host-local', prefix: 'cni', gateway: '10.93.0.1', bridge: br, anchorPorts: 1,
    setup() {
      if (!fs.existsSync(path.join(CNI_DIR, 'bridge'))) throw new Error(`${CNI_DIR}/bridge not installed`);
      // The network exists before the measurement: an anchor container creates the bridge.
      addNamespaces(['cni-anchor']);
      call('ADD', 'cni-anchor');
    },
    attach(ns) { call('ADD', ns); },
    detach(ns) { call('DEL', ns); },
    cleanup() {
      try { if (results.has('cni-anchor')) call('DEL', 'cni-anchor'); } finally {
        delNamespaces(['cni-anchor']);
        quiet(`ip link del ${br}; rm -rf ${dataDir}`);
        flushIptables();
      }
    },
  });
}

// ---- (c) netavark ----------------------------------------------------------------------------

function netavarkVersion(): string {
  try { return JSON.parse(must(NETAVARK, ['version'])).version as string; } catch { return '?'; }
}

function netavark(): Result {
  const br = 'br-nv';
  const config = path.join(WORK, 'netavark');
  const netId = crypto.createHash('sha256').update('nsnet-bench').digest('hex');
  const opts = (ns: string, i: number): string => JSON.stringify({
    container_id: crypto.createHash('sha256').update(ns).digest('hex'),
    container_name: ns,
    port_mappings: null,
    networks: { benchnv: { interface_name: 'eth0', static_ips: [i < 0 ? '10.94.255.254' : hostIp('10.94.0.0', i)] } },
    network_info: {
      benchnv: {
        name: 'benchnv', id: netId, driver: 'bridge', network_interface: br,
        subnets: [{ subnet: '10.94.0.0/16', gateway: '10.94.0.1' }],
        ipv6_enabled: false, internal: false, dns_enabled: false, ipam_options: { driver: 'host-local' },
      },
    },
    dns_servers: null,
  });
  const env = { ...CHILD_ENV, NETAVARK_FW: 'iptables' };
  const call = (cmd: 'setup' | 'teardown', ns: string, i: number): void => {
    must(NETAVARK, ['--config', config, cmd, `/run/netns/${ns}`], { input: opts(ns, i), env });
  };
  let anchored = false;
  return runDriver({
    tool: `(c) netavark ${netavarkVersion()} iptables`, prefix: 'nv', gateway: '10.94.0.1', bridge: br, anchorPorts: 1,
    setup() {
      if (!fs.existsSync(NETAVARK)) throw new Error(`${NETAVARK} not installed`);
      fs.mkdirSync(config, { recursive: true });
      // The network exists before the measurement: an anchor container creates bridge + rules.
      addNamespaces(['nv-anchor']);
      call('setup', 'nv-anchor', -1);
      anchored = true;
    },
    attach(ns, i) { call('setup', ns, i); },
    detach(ns, i) { call('teardown', ns, i); },
    cleanup() {
      try { if (anchored) call('teardown', 'nv-anchor', -1); } finally {
        delNamespaces(['nv-anchor']);
        quiet(`ip link del ${br}; rm -rf ${config}`);
        flushIptables();
      }
    },
  });
}

// ---- report ----------------------------------------------------------------------------------

/** The growth windows: mean attach of #6–#25 (around the 10th, after warm-up) and of the last 20. */
const EARLY = [5, 25] as const;
const LATE = [N - 20, N] as const;
const WINDOWS = `mean attach of #${LATE[0] + 1}–#${LATE[1]} / mean of #${EARLY[0] + 1}–#${EARLY[1]}`;
const growth = (xs: number[]): number => mean(xs.slice(...LATE)) / mean(xs.slice(...EARLY));

/** Waits until the kernel has freed what deleted namespaces held (it does so asynchronously). */
async function drain(baselineLinks: number): Promise<number> {
  const t = performance.now();
  const links = (): number => exec('ip', ['-o', 'link', 'show']).stdout.split('\n').filter((l) => l.trim()).length;
  while (links() > baselineLinks) {
    if (performance.now() - t > 30_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - t;
}

export async function run(): Promise<Section> {
  if (!inSandbox()) throw new Error('bench/bridge: run inside the sandbox (bench/run.ts enters it)');
  const started = performance.now();
  const loadBefore = os.loadavg()[0]!;
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  setupOutside();
  const baselineLinks = exec('ip', ['-o', 'link', 'show']).stdout.split('\n').filter((l) => l.trim()).length;

  // NSNET_BENCH_BRIDGE_ONLY=lib,cli,serve,apply,ip,cni,netavark runs a subset (for debugging).
  const only = process.env.NSNET_BENCH_BRIDGE_ONLY?.split(',');
  const want = (k: string): boolean => !only || only.includes(k);
  const byKey = new Map<string, Result>();
  const drains: string[] = [];
  const step = async (key: string, fn: () => Result | Promise<Result>): Promise<void> => {
    if (!want(key)) return;
    process.stderr.write(`[bridge] ${key}: ${N} attaches + ${N} detaches…\n`);
    const r = await fn();
    byKey.set(key, r);
    drains.push(`${key} ${duration(await drain(baselineLinks))}`);
  };
  await step('lib', nsnetLibrary);
  await step('cli', nsnetCli);
  await step('serve', nsnetCliServed);
  let app: ApplyResult = { error: 'skipped' };
  if (want('apply')) {
    process.stderr.write(`[bridge] apply/down of ${N} namespaces…\n`);
    app = nsnetApply();
    drains.push(`apply ${duration(await drain(baselineLinks))}`);
  }
  await step('ip', ipScript);
  await step('cni', cniBridge);
  await step('netavark', netavark);
  quiet(`ip netns del ${OUTSIDE_NS}; ip link del bench-up`);

  const ok = (r: Result | undefined): r is Result => !!r && !r.error;
  const lib = byKey.get('lib');
  const cliR = byKey.get('cli');
  const baselines = ['ip', 'cni', 'netavark'].map((k) => byKey.get(k)).filter(ok);
  const fastest = baselines.length ? baselines.reduce((a, b) => (median(a.attach) <= median(b.attach) ? a : b)) : undefined;

  const rows: string[][] = [];
  for (const r of byKey.values()) {
    if (r.error) { rows.push([r.tool, 'not measured', '', '', '', '', '']); continue; }
    rows.push([
      r.tool, medP90(r.attach), medP90(r.detach), duration(r.attachWall), duration(r.detachWall),
      ratio(growth(r.attach)),
      r === lib && fastest ? ratio(median(fastest.attach) / median(r.attach))
        : fastest && r !== fastest ? ratio(median(r.attach) / median(fastest.attach)) : r === fastest ? '(fastest baseline)' : '',
    ]);
  }

  const targets: Target[] = [];
  if (ok(lib)) {
    const m = median(lib.attach);
    targets.push({ what: 'library ≤ 4 ms per attach (median)', value: `${ms(m)} ms`, met: m <= 4 });
    if (fastest) {
      const r = median(fastest.attach) / m;
      targets.push({ what: `library ≥ 10× faster than the fastest baseline (${fastest.tool}, median attach ${ms(median(fastest.attach))} ms)`, value: ratio(r), met: r >= 10 });
    }
    const g = growth(lib.attach);
    targets.push({ what: `200th attach no slower than the 10th, ≤ 1.2 (library, ${WINDOWS})`, value: ratio(g), met: g <= 1.2 });
  }
  for (const [label, r] of [['CLI', cliR], ['CLI + serve', byKey.get('serve')]] as const) {
    if (!ok(r)) continue;
    for (const key of ['cni', 'netavark']) {
      const b = byKey.get(key);
      if (!ok(b)) continue;
      const ra = median(b.attach) / median(r.attach);
      const rd = median(b.detach) / median(r.detach);
      targets.push({
        what: `${label} faster than ${b.tool} (median: attach ${ms(median(r.attach))} vs ${ms(median(b.attach))} ms, detach ${ms(median(r.detach))} vs ${ms(median(b.detach))} ms)`,
        value: `attach ${ratio(ra)}, detach ${ratio(rd)}`, met: ra > 1 && rd > 1,
      });
    }
    const g = growth(r.attach);
    targets.push({ what: `200th attach no slower than the 10th, ≤ 1.2 (${label}, same windows)`, value: ratio(g), met: g <= 1.2 });
  }
  if (want('apply') && !app.error) {
    targets.push({ what: `apply -f of ${N} attached namespaces under 2 s (CLI, one process, total)`, value: duration(app.applyMs!), met: app.applyMs! < 2000 });
  }

  const failures = [...byKey.values()].filter((r) => r.error).map((r) => `${r.tool}: NOT MEASURED — ${r.error}`);
  if (want('apply') && app.error) failures.push(`nsnet apply/down: NOT MEASURED — ${app.error}`);
  return {
    name: 'bridge',
    title: `attach ${N} existing namespaces to one bridge network (NAT in place), then detach them`,
    notes: [
      `Each tool: its own bridge and /16 (10.89–10.94), ${N} namespaces made beforehand with \`ip -batch\`, attached one by one, then`,
      'detached one by one; cleaned up (namespaces, bridge, iptables) and the kernel\'s async teardown drained before the next tool.',
      'Times in ms, median / p90 over the samples; each op timed around one spawnSync (process start included) or one library call.',
      'Children run with NODE_EXTRA_CA_CERTS deleted from their environment (pinned: unset; it adds ~40 ms to a Node start here).',
      'nsnet CLI = `node dist/src/cli/nsnet.cjs --state-dir DIR connect|disconnect NET NS` (the bin), one process per op.',
      '(a) = one `sh` per attach running 7 `ip` commands (veth with peer in netns, master, up, addr, lo up, eth0 up, default route),',
      '    one `sh` + `ip link del` per detach; bridge + MASQUERADE rule made beforehand.',
      `(b) = ${CNI_DIR}/bridge (calls host-local) with CNI_* env + config on stdin, cniVersion 1.0.0, isGateway + ipMasq,`,
      '    DEL with prevResult; (c) = netavark setup|teardown /run/netns/NS, NETAVARK_FW=iptables, static_ips chosen by the caller.',
      '    (b) and (c) keep one extra anchor container attached throughout, so the network (bridge, NAT chains) already exists.',
    ],
    tables: [{
      head: ['tool', 'attach med / p90', 'detach med / p90', `${N} attaches`, `${N} detaches`, 'last20/10th', 'vs fastest baseline'],
      rows,
    }],
    targets,
    footer: [
      ...(want('apply') && !app.error
        ? [`nsnet apply -f FILE (${N} namespaces declared, created and attached, one CLI process): ${duration(app.applyMs!)}; down -f: ${duration(app.downMs!)}`]
        : []),
      ...failures,
      `last20/10th = ${WINDOWS}; "vs fastest baseline" = how much faster (library) or slower (others) than the fastest baseline's median attach.`,
      `verified for every measured tool: ping of the gateway and of ${OUTSIDE_IP} through NAT (an outside namespace with no route back) from the`,
      'first and the last namespace after the attaches; no port left on the bridge (anchor aside) after the detaches.',
      `kernel teardown drained after each tool: ${drains.join(', ')}`,
      `(section took ${duration(performance.now() - started)}; 1-min load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after, on ${os.cpus().length} CPUs — other work on the machine inflates every row)`,
    ],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  enterSandbox();
  printSection(await run());
}
