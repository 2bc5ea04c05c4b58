/**
 * Containers across hosts, end to end: three simulated hosts (two on one L2 segment, one
 * behind a router) start their agents together on an empty etcd; each leases a distinct
 * subnet, every host programs every peer (host-gw within the segment, VXLAN to the routed
 * host), and containers on different hosts reach each other by address (ICMP and TCP).
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR, ETCD_URL, World, ETCD_MISSING } from './harness.js';
import { kill } from '../harness/world.js';
import { spawn } from 'node:child_process';

const ENV = { NSNET_CLUSTER_LEASE_TTL: '6', NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
let w: World;


describe('cluster: three hosts on an empty etcd', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'b' }], env: ENV });
    await w.startEtcd();
  });
  after(async () => { await w?.close(); });

  const ips: Record<string, string> = {};

  test('init writes the config under the schema-1 prefix', () => {
    const out = w.host('h1').nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR, '--subnet-len', '24');
    assert.match(out, /cluster initialised: 10\.244\.0\.0\/16, \/24 per host, backend auto/);
    const cfg = JSON.parse(w.etcdctl('get', '/nsnet/v1/config', '--print-value-only').stdout) as Record<string, unknown>;
    assert.deepEqual(cfg, { schema: 1, network: CIDR, subnetLen: 24, backend: 'auto', vni: 1, port: 8472, mtu: 0 });
    // The same config again is a no-op; a different one is refused.
    assert.match(w.host('h2').nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR), /already initialised/);
    const r = w.host('h2').nsnet('cluster', 'init', '--etcd', ETCD_URL, '--cidr', '10.245.0.0/16');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^nsnet: the cluster at http:\/\/10\.99\.0\.2:2379 is already initialised with a different config/);
  });

  test('agents started together lease distinct subnets and program a full mesh', async () => {
    await Promise.all(w.hosts.map((h) => h.startAgent()));
    await w.converged();
    const subnets = w.hosts.map((h) => h.subnet());
    assert.equal(new Set(subnets).size, 3, `distinct subnets: ${subnets.join(' ')}`);
    for (const s of subnets) assert.match(s, /^10\.244\.\d+\.0\/24$/);
    // Keys: one lease per host under the documented layout.
    const keys = w.etcdctl('get', '/nsnet/v1/', '--prefix', '--keys-only').stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(keys, ['/nsnet/v1/config', '/nsnet/v1/nodes/h1', '/nsnet/v1/nodes/h2', '/nsnet/v1/nodes/h3',
      ...subnets.map((s) => `/nsnet/v1/subnets/${s.replace('/', '-')}`).sort()].sort());

    const [h1, h2, h3] = w.hosts as [typeof w.hosts[0], typeof w.hosts[0], typeof w.hosts[0]];
    // h1 ↔ h2 share segment A: plain routes via the peer's underlay address.
    const r1 = h1.routes();
    assert.deepEqual(r1.find((r) => r.dst === h2.subnet()), { dst: h2.subnet(), gateway: h2.ip, dev: 'eth0', flags: [] });
    // h3 is behind the router: VXLAN (neighbour + FDB + onlink route).
    const vtep3 = h3.subnet().split('/')[0]!;
    const to3 = r1.find((r) => r.dst === h3.subnet());
    assert.equal(to3?.gateway, vtep3);
    assert.equal(to3?.dev, 'nsnet.1');
    assert.ok(to3?.flags.includes('onlink'));
    const mac3 = JSON.parse(h3.must('ip -j link show nsnet.1'))[0].address as string;
    assert.deepEqual(h1.neighbours('nsnet.1').map((n) => [n.dst, n.lladdr]), [[vtep3, mac3]]);
    assert.deepEqual(h1.fdb('nsnet.1').map((f) => [f.mac, f.dst]), [[mac3, h3.ip]]);
    const link = JSON.parse(h1.must('ip -d -j link show nsnet.1'))[0];
    assert.equal(link.linkinfo.info_data.id, 1);
    assert.equal(link.linkinfo.info_data.port, 8472);
    assert.equal(link.linkinfo.info_data.learning, false);
    assert.equal(link.mtu, 1450);
    // h3 reaches both through VXLAN.
    for (const p of [h1, h2]) assert.equal(h3.routes().find((r) => r.dst === p.subnet())?.dev, 'nsnet.1');
    // The local network "cluster" holds the leased subnet.
    for (const h of w.hosts) {
      const n = JSON.parse(h.nsnetOk('network', 'inspect', 'cluster', '--json')) as { subnets: Array<{ cidr: string; gateway: string }>; mtu: number };
      assert.equal(n.subnets[0]!.cidr, h.subnet());
      assert.equal(n.mtu, 1450);
    }
  });

  test('containers on different hosts reach each other (ICMP and TCP), without NAT', async () => {
    for (const h of w.hosts) ips[h.name] = h.container(`c-${h.name}`);
    for (const a of w.hosts) {
      for (const b of w.hosts) {
        if (a === b) continue;
        const r = a.ping(`c-${a.name}`, ips[b.name]!);
        assert.equal(r.status, 0, `c-${a.name}@${a.name} → c-${b.name}@${b.name} (${ips[b.name]}): ${r.stdout}${r.stderr}`);
      }
    }
    // TCP across the overlay: the server sees the client's own address (no masquerade).
    const h3 = w.host('h3');
    const srv = spawn('nsenter', ['-t', String(h3.pid), '-m', '-n', '--', 'ip', 'netns', 'exec', 'c-h3', process.execPath, '-e',
      "require('net').createServer((s)=>s.end(s.remoteAddress+'\\n')).listen(7000,()=>console.log('ready'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => srv.stdout!.once('data', () => resolve()));
    try {
      for (const from of ['h1', 'h2']) {
        const r = w.host(from).run(['ip', 'netns', 'exec', `c-${from}`, process.execPath, '-e',
          `const s=require('net').connect(7000,'${ips.h3}');let b='';s.on('data',d=>b+=d);s.on('end',()=>{process.stdout.write(b);process.exit(0)});setTimeout(()=>process.exit(2),3000)`]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim().replace(/^::ffff:/, ''), ips[from]);
      }
    } finally {
      kill(srv);
    }
  });

  test('containers on different hosts find each other by name (embedded DNS)', async () => {
    const keys = w.etcdctl('get', '/nsnet/v1/endpoints/', '--prefix', '--keys-only').stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(keys, ['/nsnet/v1/endpoints/h1/c-h1', '/nsnet/v1/endpoints/h2/c-h2', '/nsnet/v1/endpoints/h3/c-h3']);
    for (const a of w.hosts) {
      for (const b of w.hosts) {
        if (a === b) continue;
        let r = a.run(['ip', 'netns', 'exec', `c-${a.name}`, 'getent', 'hosts', `c-${b.name}`]);
        for (const end = Date.now() + 20_000; r.status !== 0 && Date.now() < end;) {
          await new Promise((res) => setTimeout(res, 100));
          r = a.run(['ip', 'netns', 'exec', `c-${a.name}`, 'getent', 'hosts', `c-${b.name}`]);
        }
        assert.equal(r.status, 0, `c-${a.name} resolves c-${b.name}: ${r.stderr}`);
        assert.equal(r.stdout.trim().split(/\s+/)[0], ips[b.name]);
      }
    }
    // Each host's DNS service lives with the host (its anchor is the process holding the
    // host's namespaces), not with the CLI call that started it.
    for (const h of w.hosts) assert.doesNotMatch(h.must('cat /var/lib/nsnet/dns/dns.log'), /is gone; stopping/, h.name);
    const p = w.host('h1').run(['ip', 'netns', 'exec', 'c-h1', 'ping', '-c', '1', '-W', '1', 'c-h3.dns.nsnet']);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    // A container leaving its host leaves every host's names.
    w.host('h2').nsnetOk('ns', 'add', 'tmp2');
    w.host('h2').nsnetOk('connect', 'cluster', 'tmp2');
    const resolves = (): boolean => w.host('h1').run(['ip', 'netns', 'exec', 'c-h1', 'getent', 'hosts', 'tmp2']).status === 0;
    for (let i = 0; i < 50 && !resolves(); i++) await new Promise((res) => setTimeout(res, 100));
    assert.ok(resolves(), 'tmp2 on h2 resolves on h1');
    w.host('h2').nsnetOk('ns', 'rm', 'tmp2');
    for (let i = 0; i < 50 && resolves(); i++) await new Promise((res) => setTimeout(res, 100));
    assert.ok(!resolves(), 'tmp2 gone from h1 after it left h2');
  });

  test('policies and published ports apply to cluster traffic', async () => {
    const [h1, h2, h3] = w.hosts as [typeof w.hosts[0], typeof w.hosts[0], typeof w.hosts[0]];
    // A deny from h2's subnet to c-h1, on h1: h2's container is cut off, h3's is not.
    h1.nsnetOk('policy', 'add', '--deny', '--from', h2.subnet(), '--to', 'ns:c-h1', '--name', 'no-h2');
    assert.notEqual(h2.ping('c-h2', ips.h1!).status, 0, 'denied by the policy on h1');
    assert.equal(h3.ping('c-h3', ips.h1!).status, 0);
    h1.nsnetOk('policy', 'rm', 'no-h2');
    assert.equal(h2.ping('c-h2', ips.h1!).status, 0);
    // A port published on h1 is reachable from a container on h3 through h1's underlay address.
    const srv = spawn('nsenter', ['-t', String(h1.pid), '-m', '-n', '--', 'ip', 'netns', 'exec', 'c-h1', process.execPath, '-e',
      "require('net').createServer((s)=>s.end('hello\\n')).listen(7000,()=>console.log('ready'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => srv.stdout!.once('data', () => resolve()));
    try {
      h1.nsnetOk('publish', 'c-h1', '8080:7000');
      const r = h3.run(['ip', 'netns', 'exec', 'c-h3', process.execPath, '-e',
        `const s=require('net').connect(8080,'${h1.ip}');let b='';s.on('data',d=>b+=d);s.on('end',()=>{process.stdout.write(b);process.exit(0)});setTimeout(()=>process.exit(2),3000)`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'hello');
    } finally {
      kill(srv);
    }
  });

  test('cluster status --json: nodes, subnets, backend per peer', async () => {
    // Status is published after each reconcile; give the last one a moment.
    let s: { nodes: Array<{ name: string; subnet: string; alive: boolean; publicIp: string; peers: Record<string, { backend: string }> }> } | undefined;
    for (let i = 0; i < 50; i++) {
      s = JSON.parse(w.host('h1').nsnetOk('cluster', 'status', '--etcd', ETCD_URL, '--json'));
      if (s!.nodes.every((n) => Object.keys(n.peers).length === 2)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(s!.nodes.map((n) => [n.name, n.subnet, n.publicIp, n.alive]), w.hosts.map((h) => [h.name, h.subnet(), h.ip, true]));
    const peers = Object.fromEntries(s!.nodes.map((n) => [n.name, Object.fromEntries(Object.entries(n.peers).map(([p, v]) => [p, v.backend]))]));
    assert.deepEqual(peers, {
      h1: { h2: 'host-gw', h3: 'vxlan' },
      h2: { h1: 'host-gw', h3: 'vxlan' },
      h3: { h1: 'vxlan', h2: 'vxlan' },
    });
    const text = w.host('h2').nsnetOk('cluster', 'status', '--etcd', ETCD_URL);
    assert.match(text, /^NODE\s+SUBNET\s+ADDRESS\s+AGENT/m);
    assert.match(text, /h1\s+10\.244\.\d+\.0\/24\s+10\.99\.0\.11\s+up/);
  });
});
