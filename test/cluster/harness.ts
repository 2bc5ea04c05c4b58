/**
 * Simulated hosts for the multi-host tests, inside the test file's sandbox:
 *
 *   sandbox root = the switches:  ul0 (segment A, 10.99.0.0/24)   ul1 (segment B, 10.98.0.0/24)
 *   rt    router namespace        eth0 10.99.0.1 on ul0, eth1 10.98.0.1 on ul1, forwarding on
 *   etcd  namespace               eth0 10.99.0.2 on ul0; etcd listens on http://10.99.0.2:2379
 *                                 (https:// with client-certificate auth in a `tls` world)
 *   hN    one per host            eth0 on ul0 or ul1 (10.99.0.1N / 10.98.0.1N), default via .1
 *
 * A host is a network namespace *and* a mount namespace of its own, held by a `sleep`
 * process: tmpfs over /run/netns, /etc/netns and /var/lib/nsnet, so each host has its own
 * named namespaces ("containers"), resolv.conf files and nsnet state, exactly as separate
 * machines would. Commands run in a host through `nsenter -t HOLDER -m -n`; the agent is one
 * such child process, so `kill -9` hits only the agent and the host (and its containers)
 * stay. Hosts on segment B reach hosts on segment A only through the router (L3-only
 * peers: `auto` must pick VXLAN for them and host-gw within a segment).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, must, sh, sleep, type Run } from '../harness/world.js';
import { procStart } from '../../src/dns/paths.js';

export const ETCD_IP = '10.99.0.2';
export const ETCD_URL = `http://${ETCD_IP}:2379`;
export const ETCD_TLS_URL = `https://${ETCD_IP}:2379`;
/** The members' addresses of a three-member etcd (World.startEtcdCluster). */
export const ETCD_MEMBERS = [ETCD_IP, '10.99.0.3', '10.99.0.4'];
export const CIDR = '10.244.0.0/16';

/** Why the cluster tests cannot run here, if they cannot (a skip message). */
export const ETCD_MISSING = spawnSync('etcd', ['--version']).error || spawnSync('etcdctl', ['version']).error
  ? 'etcd and etcdctl (Debian etcd-server, etcd-client) are not installed: run scripts/setup.sh'
  : undefined;

export type Segment = 'a' | 'b';
const SEG = { a: { bridge: 'ul0', net: '10.99.0' }, b: { bridge: 'ul1', net: '10.98.0' } } as const;

export interface AgentEvent { ts: string; node: string; event: string; [k: string]: unknown }

export interface HostSpec { name: string; segment: Segment }

export class Host {
  holder: ChildProcess | undefined;
  agent: ChildProcess | undefined;
  events: AgentEvent[] = [];
  stderr = '';
  readonly ip: string;

  constructor(readonly name: string, readonly segment: Segment, index: number, readonly env: NodeJS.ProcessEnv,
    /** How the agent reaches etcd: `--etcd URL`, plus the CA and client certificate in a `tls` world. */
    readonly etcdArgs: string[] = ['--etcd', ETCD_URL]) {
    this.ip = `${SEG[segment].net}.${10 + index}`;
  }

  get pid(): number { return this.holder!.pid!; }

  /**
   * The DNS service a command starts in this host lives as long as the host: the process
   * holding its namespaces is its anchor (src/dns/control.ts sandboxAnchor), not the command.
   */
  private get anchor(): NodeJS.ProcessEnv {
    this.anchorText ??= `${this.pid} ${procStart(this.pid)!.start}`;
    return { NSNET_DNS_ANCHOR: this.anchorText };
  }
  private anchorText: string | undefined;

  /** Runs argv inside this host (its network and mount namespaces). */
  run(argv: string[], timeout = 30_000): Run {
    const r = spawnSync('nsenter', ['-t', String(this.pid), '-m', '-n', '--', ...argv], { encoding: 'utf8', timeout, env: { ...process.env, ...this.env, ...this.anchor } });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  sh(script: string, timeout?: number): Run {
    return this.run(['/bin/sh', '-c', script], timeout);
  }

  must(script: string): string {
    const r = this.sh(script);
    if (r.status !== 0) throw new Error(`on ${this.name}: command failed (${r.status}): ${script}\n${r.stderr}`);
    return r.stdout;
  }

  nsnet(...args: string[]): Run {
    return this.run([process.execPath, CLI, ...args]);
  }

  nsnetOk(...args: string[]): string {
    const r = this.nsnet(...args);
    if (r.status !== 0) throw new Error(`on ${this.name}: nsnet ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /**
   * Starts the agent; resolves when it logs `running` (or rejects if it exits first).
   * `etcdArgs` replaces the host's own (another certificate, none).
   */
  async startAgent(extra: string[] = [], o: { wait?: boolean; etcdArgs?: string[] } = {}): Promise<void> {
    this.events = [];
    this.stderr = '';
    const child = spawn('nsenter', ['-t', String(this.pid), '-m', '-n', '--', process.execPath, CLI, 'agent',
      ...(o.etcdArgs ?? this.etcdArgs), '--node', this.name, '--iface', 'eth0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env, ...this.anchor } });
    this.agent = child;
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try { this.events.push(JSON.parse(line) as AgentEvent); } catch { this.stderr += `${line}\n`; }
      }
    });
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    if (o.wait === false) return;
    await this.waitEvent('running', 30_000);
  }

  agentExit(): Promise<number | null> {
    const a = this.agent;
    if (!a || a.exitCode !== null || a.signalCode !== null) return Promise.resolve(a?.exitCode ?? null);
    return new Promise((resolve) => a.once('exit', (code) => resolve(code)));
  }

  async waitEvent(event: string, timeout = 20_000, pred: (e: AgentEvent) => boolean = () => true, from = 0): Promise<AgentEvent> {
    const end = Date.now() + timeout;
    for (;;) {
      const e = this.events.slice(from).find((x) => x.event === event && pred(x));
      if (e) return e;
      if (this.agent && (this.agent.exitCode !== null || this.agent.signalCode !== null)) {
        throw new Error(`agent on ${this.name} exited (${this.agent.exitCode ?? this.agent.signalCode}) before "${event}": ${this.stderr}`);
      }
      if (Date.now() > end) throw new Error(`agent on ${this.name}: no "${event}" within ${timeout} ms; events: ${this.events.map((x) => x.event).join(' ')}`);
      await sleep(50);
    }
  }

  async stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopChild(this.agent, signal);
  }

  /** The leased subnet, from the agent's log. */
  subnet(): string {
    const e = [...this.events].reverse().find((x) => x.event === 'leased');
    if (!e) throw new Error(`no lease on ${this.name}`);
    return e.subnet as string;
  }

  /** Adds container `c` on this host and attaches it to the cluster network; returns its address. */
  container(c: string): string {
    this.nsnetOk('ns', 'add', c);
    const e = JSON.parse(this.nsnetOk('connect', 'cluster', c, '--json')) as { addresses: string[] };
    return e.addresses[0]!.split('/')[0]!;
  }

  /** One ping from container `c` (on this host). */
  ping(c: string, ip: string, extra: string[] = []): Run {
    return this.run(['ip', 'netns', 'exec', c, 'ping', '-c', '1', '-W', '1', ...extra, ip], 10_000);
  }

  routes(): Array<{ dst: string; gateway?: string; dev: string; flags: string[] }> {
    return JSON.parse(this.must('ip -j route show proto 0x6f') || '[]');
  }

  neighbours(dev: string): Array<{ dst: string; lladdr: string; state: string[] }> {
    return JSON.parse(this.must(`ip -j neigh show dev ${dev} nud permanent 2>/dev/null || echo '[]'`) || '[]');
  }

  fdb(dev: string): Array<{ mac: string; dst?: string; flags: string[]; state?: string }> {
    return (JSON.parse(this.must(`bridge -j fdb show dev ${dev} 2>/dev/null || echo '[]'`) || '[]') as Array<{ mac: string; dst?: string; flags: string[] }>)
      .filter((f) => f.dst && f.mac !== '00:00:00:00:00:00');
  }

  /** Routes, neighbours and FDB entries the cluster owns here, canonically ordered. */
  kernelState(vxdev = 'nsnet.1'): string {
    const routes = this.routes().map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}${r.flags.includes('onlink') ? ' onlink' : ''}`).sort();
    const neigh = this.neighbours(vxdev).map((n) => `${n.dst} ${n.lladdr}`).sort();
    const fdb = this.fdb(vxdev).map((f) => `${f.mac} ${f.dst}`).sort();
    return JSON.stringify({ routes, neigh, fdb });
  }
}

/** What a refused command must leave exactly as it was on a host. */
export function snapshot(h: Host): string {
  return JSON.stringify({
    links: h.must("ip -o link show | awk -F': ' '{print $2}' | sort"),
    routes: h.must('ip -4 route show table all | sort'), // IPv6 link-local routes appear by themselves (DAD)
    nft: h.must('nft list ruleset'),
    state: h.nsnetOk('status', '--json'),
    netns: h.must('ls /run/netns'),
  });
}

/** Runs `nsnet ARGS` on `h`: exit status `exit`, one line on stderr matching `message`, the host unchanged. */
export function refused(h: Host, args: string[], message: RegExp, exit: 1 | 2 = 1, env: NodeJS.ProcessEnv = {}): void {
  const before = snapshot(h);
  const r = Object.keys(env).length ? h.run(['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, CLI, ...args]) : h.nsnet(...args);
  assert.equal(r.status, exit, `nsnet ${args.join(' ')}: exit ${r.status}, stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one-line error, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^nsnet: /);
  assert.match(lines[0]!, message);
  assert.equal(snapshot(h), before, `nsnet ${args.join(' ')} changed the host`);
}

/** A continuous ping (every 0.1 s) from a container on one host; stop() returns sent/received. */
export class Pinger {
  private child: ChildProcess;
  private out = '';

  constructor(host: Host, c: string, ip: string) {
    this.child = spawn('nsenter', ['-t', String(host.pid), '-m', '-n', '--', 'ip', 'netns', 'exec', c, 'ping', '-i', '0.1', '-W', '1', ip],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
  }

  /**
   * Stops the pings. Counted from the replies' sequence numbers: `sent` is the last one
   * answered, `received` how many of 1..sent were; requests still in flight when ping was
   * interrupted are not losses. `tail` is how many were sent after the last answer (large
   * when the path broke at the end).
   */
  async stop(): Promise<{ sent: number; received: number; tail: number }> {
    // 'close', not 'exit': the summary ping prints on SIGINT may still be in the pipe when
    // the process has exited.
    const done = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.child.kill('SIGINT');
    await done;
    const m = /(\d+) packets transmitted/.exec(this.out);
    if (!m) throw new Error(`ping summary missing: ${this.out.slice(-300)}`);
    const seqs = new Set([...this.out.matchAll(/bytes from .*icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
    const last = Math.max(0, ...seqs);
    return { sent: last, received: seqs.size, tail: Number(m[1]) - last };
  }
}

/**
 * The restart-within-the-lease scenario: containers on other hosts ping `target` every
 * 0.1 s while its agent is killed with SIGKILL, started again a second later, and given
 * 1.5 s past its first reconcile. Asserts that every pinger got at least 20 answers and lost
 * none; returns their counts (in the order of `pings`) for further checks.
 */
export async function restartAgentUnderPing(target: Host, pings: Array<{ from: Host; ns: string; ip: string }>):
    Promise<Array<{ sent: number; received: number; tail: number }>> {
  const pingers = pings.map((p) => new Pinger(p.from, p.ns, p.ip));
  await sleep(500);
  await target.stopAgent('SIGKILL');
  await sleep(1000);
  await target.startAgent();
  await target.waitEvent('reconciled');
  await sleep(1500);
  const results: Array<{ sent: number; received: number; tail: number }> = [];
  for (const p of pingers) results.push(await p.stop());
  results.forEach((r, i) => {
    const what = `${pings[i]!.from.name}→${target.name}`;
    assert.ok(r.sent >= 20, `${what}: only ${r.sent} pings sent`);
    assert.equal(r.received, r.sent, `${what} lost ${r.sent - r.received} of ${r.sent}`);
  });
  return results;
}

/** Signals a child (if it still runs) and waits for it to exit. */
async function stopChild(c: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  c.kill(signal);
  await done;
}

/** etcd in the world's etcd namespace, with the test timings and its log in `log`. */
function spawnEtcd(args: string[], log: string): ChildProcess {
  return spawn('nsenter', ['--net=/run/netns/etcd', '--', 'etcd', ...args, '--heartbeat-interval', '50', '--election-timeout', '500',
    '--logger', 'zap', '--log-outputs', log], { stdio: 'ignore' });
}

export interface WorldOptions {
  hosts: HostSpec[];
  /** Environment for agents and CLI calls in hosts (timer settings). */
  env?: NodeJS.ProcessEnv;
  /**
   * etcd on https://10.99.0.2:2379 requiring client certificates (--client-cert-auth), with
   * a throwaway PKI in `pki` (World.pki); agents get the CA and the client certificate.
   */
  tls?: boolean;
}

/**
 * The files of a `tls` world's throwaway PKI, made with openssl: `ca` signs the etcd server's
 * certificate (SAN IP:10.99.0.2) and the clients'; `otherCa` signs a client certificate etcd
 * must refuse; `wrongName` is a server certificate of `ca` for another address, `otherServer`
 * one of `otherCa` for etcd's address (a CA rotation).
 */
export interface Pki {
  dir: string;
  ca: string;
  server: { cert: string; key: string };
  wrongName: { cert: string; key: string };
  otherServer: { cert: string; key: string };
  client: { cert: string; key: string };
  otherCa: string;
  otherClient: { cert: string; key: string };
}

/** Makes the PKI in `dir` (P-256 keys, valid two days). */
export function makePki(dir: string): Pki {
  fs.mkdirSync(dir, { recursive: true });
  const f = (n: string): string => path.join(dir, n);
  const ca = (name: string): void => void must(`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=${name} -keyout ${f(`${name}.key`)} -out ${f(`${name}.crt`)} \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>&1`);
  const leaf = (name: string, signer: string, ext: string): { cert: string; key: string } => {
    fs.writeFileSync(f(`${name}.ext`), `${ext}\n`);
    must(`openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=${name} -keyout ${f(`${name}.key`)} -out ${f(`${name}.csr`)} 2>&1
openssl x509 -req -in ${f(`${name}.csr`)} -CA ${f(`${signer}.crt`)} -CAkey ${f(`${signer}.key`)} -CAcreateserial -days 2 -extfile ${f(`${name}.ext`)} -out ${f(`${name}.crt`)} 2>&1`);
    return { cert: f(`${name}.crt`), key: f(`${name}.key`) };
  };
  ca('ca');
  ca('other-ca');
  return {
    dir, ca: f('ca.crt'), otherCa: f('other-ca.crt'),
    server: leaf('server', 'ca', `subjectAltName=IP:${ETCD_IP}\nextendedKeyUsage=serverAuth`),
    wrongName: leaf('wrong-name', 'ca', 'subjectAltName=IP:10.99.0.3,DNS:etcd.example\nextendedKeyUsage=serverAuth'),
    otherServer: leaf('other-server', 'other-ca', `subjectAltName=IP:${ETCD_IP}\nextendedKeyUsage=serverAuth`),
    client: leaf('client', 'ca', 'extendedKeyUsage=clientAuth'),
    otherClient: leaf('other-client', 'other-ca', 'extendedKeyUsage=clientAuth'),
  };
}

export class World {
  readonly hosts: Host[] = [];
  etcd: ChildProcess | undefined;
  /** Members of a three-member etcd (startEtcdCluster), by index; undefined when stopped. */
  readonly members: Array<ChildProcess | undefined> = [];
  readonly etcdDir: string;
  /** The PKI of a `tls` world. */
  readonly pki: Pki | undefined;
  /** etcd's client URL: http://10.99.0.2:2379, or https:// in a `tls` world. */
  readonly etcdUrl: string;
  /** `--etcd URL` and, in a `tls` world, the CA and the client certificate: what agents and CLI calls in hosts pass. */
  readonly etcdArgs: string[];

  constructor(readonly o: WorldOptions) {
    this.etcdDir = fs.mkdtempSync('/run/etcd-');
    this.pki = o.tls ? makePki(path.join(this.etcdDir, 'pki')) : undefined;
    this.etcdUrl = o.tls ? ETCD_TLS_URL : ETCD_URL;
    this.etcdArgs = this.pki
      ? ['--etcd', this.etcdUrl, '--etcd-ca', this.pki.ca, '--etcd-cert', this.pki.client.cert, '--etcd-key', this.pki.client.key]
      : ['--etcd', this.etcdUrl];
    // The underlay bridges are the simulated switches: no host firewall pass for the frames
    // they carry (a real switch has none). br_netfilter's per-namespace default is to send
    // bridged IPv4/IPv6/ARP through this namespace's netfilter hooks
    // (net/bridge/br_netfilter_hooks.c, brnf_init_net); the sandbox root is private.
    sh('sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0');
    must(`ip link add ul0 type bridge && ip link set ul0 up
ip link add ul1 type bridge && ip link set ul1 up
ip netns add rt
ip link add rt-a type veth peer name eth0 netns rt && ip link set rt-a master ul0 up
ip link add rt-b type veth peer name eth1 netns rt && ip link set rt-b master ul1 up
ip -n rt addr add 10.99.0.1/24 dev eth0 && ip -n rt addr add 10.98.0.1/24 dev eth1
ip -n rt link set eth0 up && ip -n rt link set eth1 up && ip -n rt link set lo up
ip netns exec rt sysctl -qw net.ipv4.ip_forward=1
ip netns add etcd
ip link add etcd-ul type veth peer name eth0 netns etcd && ip link set etcd-ul master ul0 up
ip -n etcd addr add ${ETCD_IP}/24 dev eth0 && ip -n etcd link set eth0 up && ip -n etcd link set lo up
ip -n etcd route add default via 10.99.0.1`);
    o.hosts.forEach((h, i) => this.addHost(h, i + 1));
  }

  host(name: string): Host {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  addHost(spec: HostSpec, index: number): Host {
    const h = new Host(spec.name, spec.segment, index, this.o.env ?? {}, this.etcdArgs);
    const seg = SEG[spec.segment];
    must(`ip netns add ${h.name}
ip link add ${h.name}-ul type veth peer name eth0 netns ${h.name} && ip link set ${h.name}-ul master ${seg.bridge} up
ip -n ${h.name} addr add ${h.ip}/24 dev eth0 && ip -n ${h.name} link set eth0 up && ip -n ${h.name} link set lo up
ip -n ${h.name} route add default via ${seg.net}.1`);
    h.holder = spawn('nsenter', [`--net=/run/netns/${h.name}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c',
      'mount -t tmpfs host-netns /run/netns && mount -t tmpfs host-etc-netns /etc/netns && mount -t tmpfs host-state /var/lib/nsnet && exec sleep infinity'],
    { stdio: 'ignore' });
    // The holder is ready when its mount namespace differs from ours and /run/netns is empty.
    const mine = fs.readlinkSync('/proc/self/ns/mnt');
    for (let i = 0; i < 200; i++) {
      try {
        if (fs.readlinkSync(`/proc/${h.holder.pid}/ns/mnt`) !== mine && h.run(['sh', '-c', 'mountpoint -q /var/lib/nsnet']).status === 0) break;
      } catch { /* not yet */ }
      spawnSync('sleep', ['0.02']);
    }
    this.hosts.push(h);
    return h;
  }

  /**
   * Starts etcd (again, on the same data); `serverCert` replaces the server certificate of a
   * `tls` world; `extraArgs` are more etcd flags (`--auth-token-ttl 2`).
   */
  async startEtcd(o: { serverCert?: { cert: string; key: string }; extraArgs?: string[] } = {}): Promise<void> {
    const server = o.serverCert ?? this.pki?.server;
    const tls = this.pki && server
      ? ['--cert-file', server.cert, '--key-file', server.key, '--trusted-ca-file', this.pki.ca, '--client-cert-auth']
      : [];
    this.etcd = spawnEtcd(['--name', 'e0', '--data-dir', path.join(this.etcdDir, 'data'),
      '--listen-client-urls', this.etcdUrl, '--advertise-client-urls', this.etcdUrl, ...tls,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'e0=http://127.0.0.1:2380', ...(o.extraArgs ?? [])], path.join(this.etcdDir, 'etcd.log'));
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      // A server certificate for another address fails etcdctl's check too: only liveness counts here.
      if (this.etcdctl(...(o.serverCert ? ['--insecure-skip-tls-verify'] : []), 'endpoint', 'health').status === 0) return;
      await sleep(100);
    }
    throw new Error(`etcd did not start: ${fs.readFileSync(path.join(this.etcdDir, 'etcd.log'), 'utf8').slice(-2000)}`);
  }

  /**
   * A three-member etcd instead of the single one: members on 10.99.0.2, .3 and .4 (all in
   * the etcd namespace), each serving clients on its own address. Returns the client URLs.
   */
  async startEtcdCluster(): Promise<string[]> {
    sh('ip -n etcd addr add 10.99.0.3/24 dev eth0 && ip -n etcd addr add 10.99.0.4/24 dev eth0');
    for (let i = 0; i < ETCD_MEMBERS.length; i++) this.startMember(i);
    const urls = ETCD_MEMBERS.map((ip) => `http://${ip}:2379`);
    const end = Date.now() + 30_000;
    while (this.etcdctl('endpoint', 'health').status !== 0) {
      if (Date.now() > end) throw new Error(`etcd cluster did not start: ${fs.readFileSync(path.join(this.etcdDir, 'etcd-0.log'), 'utf8').slice(-2000)}`);
      await sleep(200);
    }
    return urls;
  }

  /** Starts member `i` of the three (again: its data directory is kept). */
  startMember(i: number): void {
    const ip = ETCD_MEMBERS[i]!;
    this.members[i] = spawnEtcd(['--name', `m${i}`, '--data-dir', path.join(this.etcdDir, `data-${i}`),
      '--listen-client-urls', `http://${ip}:2379`, '--advertise-client-urls', `http://${ip}:2379`,
      '--listen-peer-urls', `http://${ip}:2380`, '--initial-advertise-peer-urls', `http://${ip}:2380`,
      '--initial-cluster', ETCD_MEMBERS.map((m, j) => `m${j}=http://${m}:2380`).join(','), '--initial-cluster-token', 'nsnet-test'],
      path.join(this.etcdDir, `etcd-${i}.log`));
  }

  async stopMember(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const e = this.members[i];
    this.members[i] = undefined;
    await stopChild(e, signal);
  }

  async stopEtcd(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopChild(this.etcd, signal);
  }

  /** etcdctl against the world's etcd (with the CA and client certificate in a `tls` world). */
  etcdctl(...args: string[]): Run {
    const tls = this.pki ? ['--cacert', this.pki.ca, '--cert', this.pki.client.cert, '--key', this.pki.client.key] : [];
    // A three-member etcd: the members running.
    const endpoints = this.members.length > 0 ? ETCD_MEMBERS.filter((_, i) => this.members[i]).map((ip) => `http://${ip}:2379`).join(',') : this.etcdUrl;
    const r = spawnSync('nsenter', ['--net=/run/netns/etcd', '--', 'etcdctl', '--endpoints', endpoints, ...tls, '--dial-timeout', '1s', '--command-timeout', '3s', ...args],
      { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Waits until every host's agent has programmed a route to every other host's subnet. */
  async converged(hosts: Host[] = this.hosts, timeout = 20_000): Promise<void> {
    const end = Date.now() + timeout;
    for (;;) {
      const subnets = hosts.map((h) => h.subnet());
      const missing: string[] = [];
      for (const h of hosts) {
        const have = new Set(h.routes().map((r) => r.dst));
        for (const s of subnets) if (s !== h.subnet() && !have.has(s)) missing.push(`${h.name}→${s}`);
      }
      if (missing.length === 0) return;
      if (Date.now() > end) throw new Error(`not converged: missing ${missing.join(', ')}`);
      await sleep(100);
    }
  }

  async close(): Promise<void> {
    for (const h of this.hosts) {
      await h.stopAgent('SIGKILL');
      h.holder?.kill('SIGKILL');
    }
    await this.stopEtcd('SIGKILL');
    for (let i = 0; i < this.members.length; i++) await this.stopMember(i);
    sh(`for n in rt etcd ${this.hosts.map((h) => h.name).join(' ')}; do ip netns del $n 2>/dev/null; done; ip link del ul0; ip link del ul1; true`);
    fs.rmSync(this.etcdDir, { recursive: true, force: true });
  }
}
