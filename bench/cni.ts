/**
 * Benchmark section "cni" (issue 6): ADD then DEL of 200 containers, one plugin process per
 * call as a runtime does (CNI_* environment, config on stdin), without and with one port
 * mapping, side by side in the same run:
 *   - nsnet's CNI plugin (installed with `nsnet cni install`), running the engine in each
 *     plugin process, and handing the call to a resident `nsnet serve`;
 *   - the reference chain from Debian's containernetworking-plugins: bridge + host-local,
 *     and + portmap (chained: portmap gets bridge's result as prevResult; DEL in reverse);
 *   - netavark 1.4.0 (iptables driver), IPs chosen by the caller as podman does.
 * Every tool gets its own network; an anchor container made before the measurement means the
 * network (bridge, NAT) exists already. A tool's numbers are printed only when verified: ping
 * of the gateway and of an outside namespace through NAT from the first and last container,
 * with ports a TCP connection from the outside namespace through the last container's
 * published port, and no bridge port left after the DELs.
 *
 * Must run inside the private sandbox (bench/run.ts enters it).
 */
import crypto from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
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
const WORK = '/run/nsnet-bench-cni';
const BIN = path.join(WORK, 'bin');
const CNI_DIR = '/usr/lib/cni';
const NETAVARK = '/usr/lib/podman/netavark';
const OUTSIDE_NS = 'cb-outside';
const UPLINK_IP = '203.0.113.1';
const OUTSIDE_IP = '203.0.113.2';
const PORT_BASE = 30_000;

const sh = (script: string): string => must('/bin/sh', ['-ec', script]);
const quiet = (script: string): void => { exec('/bin/sh', ['-c', script]); };
const ipBatch = (lines: string[]): void => { if (lines.length) must('ip', ['-batch', '-'], { input: `${lines.join('\n')}\n` }); };
const names = (prefix: string): string[] => Array.from({ length: N }, (_, i) => `${prefix}${i}`);
const hostIp = (net: string, i: number): string => {
  const [a, b] = net.split('.');
  const h = i + 2;
  return `${a}.${b}.${h >> 8}.${h & 255}`;
};

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function addNamespaces(list: string[]): void { ipBatch(list.map((n) => `netns add ${n}`)); }
function delNamespaces(list: string[]): void {
  const present = new Set(exec('ip', ['netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]));
  ipBatch(list.filter((n) => present.has(n)).map((n) => `netns del ${n}`));
}
function ping(ns: string, ip: string): boolean {
  return exec('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W2', ip]).status === 0;
}
function bridgePorts(bridge: string): number {
  const r = exec('ip', ['-o', 'link', 'show', 'master', bridge]);
  return r.status === 0 ? r.stdout.split('\n').filter((l) => l.trim()).length : 0;
}

const SERVER = "require('net').createServer((s)=>s.end('ok\\n')).listen(80,()=>process.stdout.write('ready\\n'))";
const CLIENT = "const s=require('net').connect(+process.argv[2],process.argv[1]);s.setTimeout(2000,()=>process.exit(2));s.on('data',()=>process.exit(0));s.on('error',()=>process.exit(3))";

/** A TCP connection from the outside namespace to host:port reaches a server in `ns` on port 80. */
async function portWorks(ns: string, hostPort: number): Promise<boolean> {
  const srv: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await new Promise<void>((resolve, reject) => {
      srv.stdout!.once('data', () => resolve());
      srv.once('exit', () => reject(new Error('server exited')));
    });
    return exec('ip', ['netns', 'exec', OUTSIDE_NS, process.execPath, '-e', CLIENT, UPLINK_IP, String(hostPort)]).status === 0;
  } finally {
    srv.kill('SIGKILL');
  }
}

// ---- drivers ---------------------------------------------------------------------------------

interface Driver {
  tool: string;
  prefix: string;
  gateway: string;
  bridge: string;
  ports: boolean;
  setup(): void | Promise<void>;
  add(ns: string, i: number): void;
  del(ns: string, i: number): void;
  cleanup(): void;
}

interface Result { tool: string; ports: boolean; add: number[]; del: number[]; addWall: number; error?: string }

async function runDriver(d: Driver): Promise<Result> {
  const list = names(d.prefix);
  const res: Result = { tool: d.tool, ports: d.ports, add: [], del: [], addWall: 0 };
  try {
    addNamespaces(list);
    await d.setup();
    const t0 = performance.now();
    list.forEach((ns, i) => res.add.push(timed(() => d.add(ns, i))));
    res.addWall = performance.now() - t0;
    for (const ns of [list[0]!, list[list.length - 1]!]) {
      if (!ping(ns, d.gateway)) throw new Error(`verification failed: ${ns} cannot ping its gateway ${d.gateway}`);
      if (!ping(ns, OUTSIDE_IP)) throw new Error(`verification failed: ${ns} cannot reach ${OUTSIDE_IP} through NAT`);
    }
    if (d.ports && !(await portWorks(list[list.length - 1]!, PORT_BASE + list.length - 1))) {
      throw new Error(`verification failed: outside → ${UPLINK_IP}:${PORT_BASE + list.length - 1} does not reach ${list[list.length - 1]}:80`);
    }
    list.forEach((ns, i) => res.del.push(timed(() => d.del(ns, i))));
    const left = bridgePorts(d.bridge) - 1; // the anchor stays
    if (left > 0) throw new Error(`verification failed: ${left} port(s) left on ${d.bridge} after DEL`);
  } catch (e) {
    process.stderr.write(`[cni] ${d.tool}: ${(e as Error).message}\n`);
    res.error = (e as Error).message.split('\n').slice(0, 2).join(' ').slice(0, 240);
  } finally {
    try { d.cleanup(); } catch (e) { res.error ??= `cleanup: ${(e as Error).message}`; }
    delNamespaces(list);
  }
  return res;
}

function invoke(plugin: string, cmd: string, ns: string, id: string, conf: unknown): string {
  const r = exec(plugin, [], {
    input: JSON.stringify(conf),
    env: { ...CHILD_ENV, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: `${BIN}:${CNI_DIR}` },
  });
  if (r.status !== 0) throw new Error(`${path.basename(plugin)} ${cmd} ${ns} exited ${r.status}: ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
  return r.stdout;
}

const mapping = (i: number): Array<Record<string, unknown>> => [{ hostPort: PORT_BASE + i, containerPort: 80, protocol: 'tcp', hostIP: '' }];

function nsnetDriver(ports: boolean, served: boolean, subnet: string): Driver {
  const key = `${served ? 'srv' : 'loc'}${ports ? 'p' : ''}`;
  const stateDir = path.join(WORK, `state-${key}`);
  const name = `bench${key}`;
  const base = { cniVersion: '1.1.0', name, type: 'nsnet', subnets: [`${subnet}/16`], stateDir };
  const results = new Map<string, unknown>();
  let server: ChildProcess | undefined;
  const conf = (i: number, prev?: unknown): unknown => ({ ...base, runtimeConfig: ports && i >= 0 ? { portMappings: mapping(i) } : {}, ...(prev ? { prevResult: prev } : {}) });
  const plugin = path.join(BIN, 'nsnet');
  return {
    tool: `nsnet plugin${served ? ' + nsnet serve' : ' (engine per call)'}${ports ? ' + 1 port' : ''}`,
    prefix: `n${key}`, gateway: hostIp(subnet, -1), bridge: `nsbr-${name}`, ports,
    async setup() {
      if (served) {
        server = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'serve'], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'] });
        await new Promise<void>((resolve, reject) => {
          server!.stdout!.once('data', () => resolve());
          server!.once('exit', (c) => reject(new Error(`nsnet serve exited ${c}`)));
        });
        server.stdout!.resume(); // "served: …" lines: read and dropped
      }
      addNamespaces([`n${key}-anchor`]);
      results.set('anchor', JSON.parse(invoke(plugin, 'ADD', `n${key}-anchor`, `${key}-anchor`, conf(-1))));
    },
    add(ns, i) { results.set(ns, JSON.parse(invoke(plugin, 'ADD', ns, `${key}-${ns}`, conf(i)))); },
    del(ns, i) { invoke(plugin, 'DEL', ns, `${key}-${ns}`, conf(i, results.get(ns))); },
    cleanup() {
      server?.kill('SIGTERM');
      delNamespaces([`n${key}-anchor`]);
      exec(process.execPath, [CLI, '--state-dir', stateDir, 'reset', '--yes']);
    },
  };
}

function referenceDriver(ports: boolean): Driver {
  const br = ports ? 'br-refp' : 'br-ref';
  const subnet = ports ? '10.98.0.0' : '10.97.0.0';
  const name = ports ? 'benchrefp' : 'benchref';
  const dataDir = path.join(WORK, `ipam-${name}`);
  const bridge = {
    type: 'bridge', bridge: br, isGateway: true, ipMasq: true, hairpinMode: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: `${subnet}/16`, gateway: hostIp(subnet, -1) }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  const portmap = { type: 'portmap', snat: true };
  const results = new Map<string, unknown>();
  const call = (type: string, cmd: string, ns: string, conf: Record<string, unknown>): string =>
    invoke(path.join(CNI_DIR, type), cmd, ns, `${name}-${ns}`, { cniVersion: '1.0.0', name, ...conf });
  const add = (ns: string, i: number): void => {
    const r1 = JSON.parse(call('bridge', 'ADD', ns, { ...bridge, runtimeConfig: {} }));
    const r = ports ? JSON.parse(call('portmap', 'ADD', ns, { ...portmap, runtimeConfig: { portMappings: i >= 0 ? mapping(i) : [] }, prevResult: r1 })) : r1;
    results.set(ns, r);
  };
  return {
    tool: `reference bridge + host-local${ports ? ' + portmap' : ''}`, prefix: ports ? 'rp' : 'rf', gateway: hostIp(subnet, -1), bridge: br, ports,
    setup() {
      if (!fs.existsSync(path.join(CNI_DIR, 'bridge'))) throw new Error(`${CNI_DIR}/bridge not installed`);
      addNamespaces([`${name}-anchor`]);
      add(`${name}-anchor`, -1);
    },
    add,
    del(ns, i) {
      const prev = results.get(ns);
      if (ports) call('portmap', 'DEL', ns, { ...portmap, runtimeConfig: { portMappings: mapping(i) }, prevResult: prev });
      call('bridge', 'DEL', ns, { ...bridge, runtimeConfig: {}, prevResult: prev });
    },
    cleanup() {
      delNamespaces([`${name}-anchor`]);
      quiet(`ip link del ${br}; rm -rf ${dataDir}; for t in nat filter mangle; do iptables -t $t -F; iptables -t $t -X; done 2>/dev/null`);
    },
  };
}

function netavarkVersion(): string {
  try { return JSON.parse(must(NETAVARK, ['version'])).version as string; } catch { return '?'; }
}

function netavarkDriver(ports: boolean): Driver {
  const br = ports ? 'br-nvp' : 'br-nv';
  const subnet = ports ? '10.100.0.0' : '10.99.0.0';
  const config = path.join(WORK, `netavark-${br}`);
  const netName = ports ? 'benchnvp' : 'benchnv';
  const netId = crypto.createHash('sha256').update(netName).digest('hex');
  const opts = (ns: string, i: number): string => JSON.stringify({
    container_id: crypto.createHash('sha256').update(ns).digest('hex'), container_name: ns,
    port_mappings: ports && i >= 0 ? [{ host_ip: '', container_port: 80, host_port: PORT_BASE + i, range: 1, protocol: 'tcp' }] : null,
    networks: { [netName]: { interface_name: 'eth0', static_ips: [i < 0 ? hostIp(subnet, 65000) : hostIp(subnet, i)] } },
    network_info: {
      [netName]: {
        name: netName, id: netId, driver: 'bridge', network_interface: br, subnets: [{ subnet: `${subnet}/16`, gateway: hostIp(subnet, -1) }],
        ipv6_enabled: false, internal: false, dns_enabled: false, ipam_options: { driver: 'host-local' },
      },
    },
    dns_servers: null,
  });
  const env = { ...CHILD_ENV, NETAVARK_FW: 'iptables' };
  const call = (cmd: 'setup' | 'teardown', ns: string, i: number): void => {
    must(NETAVARK, ['--config', config, cmd, `/run/netns/${ns}`], { input: opts(ns, i), env });
  };
  return {
    tool: `netavark ${netavarkVersion()} iptables${ports ? ' + 1 port' : ''}`, prefix: ports ? 'vp' : 'vn', gateway: hostIp(subnet, -1), bridge: br, ports,
    setup() {
      if (!fs.existsSync(NETAVARK)) throw new Error(`${NETAVARK} not installed`);
      fs.mkdirSync(config, { recursive: true });
      addNamespaces([`${netName}-anchor`]);
      call('setup', `${netName}-anchor`, -1);
    },
    add(ns, i) { call('setup', ns, i); },
    del(ns, i) { call('teardown', ns, i); },
    cleanup() {
      try { call('teardown', `${netName}-anchor`, -1); } catch { /* best effort */ }
      delNamespaces([`${netName}-anchor`]);
      quiet(`ip link del ${br}; rm -rf ${config}; for t in nat filter mangle; do iptables -t $t -F; iptables -t $t -X; done 2>/dev/null`);
    },
  };
}

// ---- report ----------------------------------------------------------------------------------

const EARLY = [5, 25] as const;
const LATE = [N - 20, N] as const;
const WINDOWS = `mean ADD of #${LATE[0] + 1}–#${LATE[1]} / mean of #${EARLY[0] + 1}–#${EARLY[1]}`;
const growth = (xs: number[]): number => mean(xs.slice(...LATE)) / mean(xs.slice(...EARLY));

export async function run(): Promise<Section> {
  if (!inSandbox()) throw new Error('bench/cni: run inside the sandbox (bench/run.ts enters it)');
  const started = performance.now();
  const loadBefore = os.loadavg()[0]!;
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  must(process.execPath, [CLI, 'cni', 'install', '--dir', BIN]);
  quiet(`ip netns del ${OUTSIDE_NS} 2>/dev/null; ip link del cb-up 2>/dev/null`);
  sh(`ip netns add ${OUTSIDE_NS}
ip link add cb-up type veth peer name up0 netns ${OUTSIDE_NS}
ip addr add ${UPLINK_IP}/24 dev cb-up
ip link set cb-up up
ip -n ${OUTSIDE_NS} addr add ${OUTSIDE_IP}/24 dev up0
ip -n ${OUTSIDE_NS} link set up0 up
ip -n ${OUTSIDE_NS} link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward`);

  // NSNET_BENCH_CNI_ONLY=loc,srv,ref,nv runs a subset (for debugging).
  const only = process.env.NSNET_BENCH_CNI_ONLY?.split(',');
  const want = (k: string): boolean => !only || only.includes(k);
  const drivers: Array<[string, Driver]> = [
    ['srv', nsnetDriver(false, true, '10.101.0.0')], ['srv', nsnetDriver(true, true, '10.102.0.0')],
    ['loc', nsnetDriver(false, false, '10.103.0.0')], ['loc', nsnetDriver(true, false, '10.104.0.0')],
    ['ref', referenceDriver(false)], ['ref', referenceDriver(true)],
    ['nv', netavarkDriver(false)], ['nv', netavarkDriver(true)],
  ];
  const results: Result[] = [];
  for (const [k, d] of drivers) {
    if (!want(k)) continue;
    process.stderr.write(`[cni] ${d.tool}: ${N} ADD + ${N} DEL…\n`);
    results.push(await runDriver(d));
  }
  quiet(`ip netns del ${OUTSIDE_NS}; ip link del cb-up`);

  const ok = (r: Result | undefined): r is Result => !!r && !r.error;
  const find = (prefix: string, ports: boolean): Result | undefined => results.find((r) => r.tool.startsWith(prefix) && r.ports === ports && ok(r));
  const rows = results.map((r) => {
    if (r.error) return [r.tool, 'not measured', '', '', '', ''];
    const nsnetPeer = find('nsnet plugin + nsnet serve', r.ports);
    return [
      r.tool, medP90(r.add), medP90(r.del), duration(r.addWall), ratio(growth(r.add)),
      nsnetPeer && r !== nsnetPeer ? `${ratio(median(r.add) / median(nsnetPeer.add))} ADD, ${ratio(median(r.del) / median(nsnetPeer.del))} DEL` : r === nsnetPeer ? '(reference row)' : '',
    ];
  });

  const targets: Target[] = [];
  for (const ports of [true, false]) {
    const served = find('nsnet plugin + nsnet serve', ports);
    const local = find('nsnet plugin (engine', ports);
    const suffix = ports ? ' with one port mapping' : '';
    if (ports && served) targets.push({ what: 'ADD with a port mapping ≤ 100 ms median (plugin + nsnet serve)', value: `${ms(median(served.add))} ms`, met: median(served.add) <= 100 });
    if (ports && local) targets.push({ what: 'ADD with a port mapping ≤ 100 ms median (plugin alone, engine loaded per call)', value: `${ms(median(local.add))} ms`, met: median(local.add) <= 100 });
    for (const r of [served, local]) {
      if (!r) continue;
      const g = growth(r.add);
      targets.push({ what: `no growth 10th → 200th${suffix} (${r.tool}: ${WINDOWS}) ≤ 1.2`, value: ratio(g), met: g <= 1.2 });
    }
    for (const peer of [find('reference', ports), find('netavark', ports)]) {
      if (!peer || !served) continue;
      const ra = median(peer.add) / median(served.add);
      targets.push({ what: `faster than ${peer.tool} (median ADD ${ms(median(served.add))} vs ${ms(median(peer.add))} ms)`, value: ratio(ra), met: ra > 1 });
    }
  }

  return {
    name: 'cni',
    title: `CNI ADD then DEL of ${N} containers, one plugin process per call, without and with one port mapping`,
    notes: [
      `Each tool: its own network (/16), ${N} namespaces made beforehand, an anchor container attached first (the network exists),`,
      `then ${N} ADDs one by one, then ${N} DELs (with prevResult). Each call timed around one spawnSync (process start included).`,
      'Children run with NODE_EXTRA_CA_CERTS deleted from their environment (the installed nsnet wrapper unsets it too).',
      'nsnet plugin = the `nsnet cni install` wrapper (sh → node dist/src/cni/main.cjs), cniVersion 1.1.0, subnets + stateDir in the config;',
      '  "+ nsnet serve": a resident `nsnet serve` for the state dir runs the verb (the plugin process only parses and forwards);',
      '  "engine per call": no server, the plugin loads the engine itself.',
      `reference = ${CNI_DIR}/bridge (+ host-local) [+ ${CNI_DIR}/portmap chained with prevResult], cniVersion 1.0.0, isGateway, ipMasq, hairpin;`,
      '  DEL runs portmap then bridge. netavark = setup|teardown /run/netns/NS, NETAVARK_FW=iptables, static IPs and ports from the caller.',
    ],
    tables: [{ head: ['tool', 'ADD med / p90', 'DEL med / p90', `${N} ADDs`, 'last20/10th', 'vs nsnet + serve (same ports)'], rows }],
    targets,
    footer: [
      ...results.filter((r) => r.error).map((r) => `${r.tool}: NOT MEASURED — ${r.error}`),
      `last20/10th = ${WINDOWS}. Ratios > 1 mean the peer is slower than nsnet.`,
      `verified per tool: gateway and ${OUTSIDE_IP} (through NAT) pinged from the first and last container; with ports, a TCP connection from`,
      `the outside namespace to ${UPLINK_IP}:${PORT_BASE + N - 1} reached the last container's port 80; no bridge port left after the DELs (anchor aside).`,
      `(section took ${duration(performance.now() - started)}; 1-min load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after, on ${os.cpus().length} CPUs)`,
    ],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  enterSandbox();
  printSection(await run());
}
