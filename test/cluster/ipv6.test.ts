/**
 * Dual stack across hosts: `cluster init --cidr6` gives every host an IPv6 subnet beside its
 * IPv4 one (same lease), carried over the IPv4 underlay. Three hosts — h1 and h2 on one L2
 * segment (host-gw between them: IPv6 routes via the peer's underlay link-local address),
 * h3 behind a router (VXLAN: IPv6 routes via a label that a permanent neighbour entry maps
 * to the peer's VTEP MAC, in the same IPv4 tunnel). Containers ping each other over IPv6 in
 * every direction; routes deleted by hand come back; a host gone past its lease is
 * withdrawn; a restarted agent keeps its IPv6 subnet; bad --cidr6 input writes nothing.
 *
 * Timers are shortened through the environment: subnet lease 6 s, heartbeat 3 s, resync 1 s.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CIDR, ETCD_URL, World, restartAgentUnderPing, type Host, ETCD_MISSING } from './harness.js';
import { kill, sleep } from '../harness/world.js';

const CIDR6 = 'fd00:244::/48';
const LEASE_TTL = 6;
const ENV = { NSNET_CLUSTER_LEASE_TTL: String(LEASE_TTL), NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
let w: World;
let h1: Host, h2: Host, h3: Host;
/** Containers' addresses by host name. */
const ip4: Record<string, string> = {};
const ip6: Record<string, string> = {};

interface Route6 { dst: string; gateway?: string; dev: string; flags: string[] }

const routes6 = (h: Host): Route6[] => (JSON.parse(h.must('ip -6 -j route show proto 0x6f') || '[]') as Route6[])
  .map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), dev: r.dev, flags: r.flags }));
const neigh6 = (h: Host): Array<{ dst: string; lladdr: string }> =>
  JSON.parse(h.must('ip -6 -j neigh show dev nsnet.1 nud permanent 2>/dev/null || echo "[]"') || '[]') as Array<{ dst: string; lladdr: string }>;
/** The host's IPv6 subnet, from the agent's `leased` log line. */
const subnet6 = (h: Host): string => {
  const e = [...h.events].reverse().find((x) => x.event === 'leased');
  if (!e?.subnet6) throw new Error(`no IPv6 lease on ${h.name}`);
  return e.subnet6 as string;
};
/** IPv6 routes, neighbour entries and FDB entries the cluster owns on a host, canonically. */
const state6 = (h: Host): string => JSON.stringify({
  routes: routes6(h).map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}${r.flags.includes('onlink') ? ' onlink' : ''}`).sort(),
  neigh: neigh6(h).map((n) => `${n.dst} ${n.lladdr}`).sort(),
  fdb: h.fdb('nsnet.1').map((f) => `${f.mac} ${f.dst}`).sort(),
});
const linkLocal = (h: Host): string =>
  (JSON.parse(h.must('ip -6 -j addr show dev eth0 scope link'))[0].addr_info as Array<{ local: string }>)[0]!.local;

function ping6(from: Host, to: Host): { status: number | null; out: string } {
  const r = from.run(['ip', 'netns', 'exec', `c-${from.name}`, 'ping', '-6', '-c', '1', '-W', '1', ip6[to.name]!], 10_000);
  return { status: r.status, out: r.stdout + r.stderr };
}

async function until(what: string, fn: () => boolean, timeout = 20_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(100);
  }
}

/** Every host has an IPv6 route to every other host's IPv6 subnet. */
async function converged6(hosts: Host[] = w.hosts): Promise<void> {
  await until('IPv6 routes to every peer', () => hosts.every((h) => {
    const have = new Set(routes6(h).map((r) => r.dst));
    return hosts.every((p) => p === h || have.has(subnet6(p)));
  }));
}

/** What a refused command must leave exactly as it was: etcd, and the host. */
function snapshot(h: Host): string {
  return JSON.stringify({
    etcd: w.etcdctl('get', '/nsnet/', '--prefix').stdout,
    links: h.must("ip -o link show | awk -F': ' '{print $2}' | sort"),
    routes: h.must('ip -4 route show table all | sort'),
    routes6: h.must('ip -6 route show | grep -v "^fe80" | sort'),
    nft: h.must('nft list ruleset'),
    state: h.nsnetOk('status', '--json'),
  });
}

function refused(h: Host, args: string[], message: RegExp, exit: 1 | 2 = 1): void {
  const before = snapshot(h);
  const r = h.nsnet(...args);
  assert.equal(r.status, exit, `nsnet ${args.join(' ')}: exit ${r.status}, stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one-line error, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^nsnet: /);
  assert.match(lines[0]!, message);
  assert.equal(snapshot(h), before, `nsnet ${args.join(' ')} changed something`);
}

describe('cluster: IPv6 subnets across hosts (dual stack over the IPv4 underlay)', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'b' }], env: ENV });
    [h1, h2, h3] = w.hosts as [Host, Host, Host];
    await w.startEtcd();
  });
  after(async () => { await w?.close(); });

  test('bad --cidr6 input: one-line errors, nothing written', () => {
    const init = (...a: string[]): string[] => ['cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR, ...a];
    refused(h1, init('--cidr6', 'fd00:244::'), /invalid cluster IPv6 CIDR "fd00:244::"/);
    refused(h1, init('--cidr6', 'fd00:244::1/48'), /host bits set; the network is fd00:244::\/48/);
    refused(h1, init('--cidr6', '10.245.0.0/16'), /--cidr6 10\.245\.0\.0\/16 is IPv4/);
    refused(h1, init('--cidr6', 'fe80::/64'), /fe80::\/64 is not a unique local \(fc00::\/7\) or global unicast \(2000::\/3\) prefix/);
    refused(h1, init('--cidr6', 'fd00:244::/120'), /too small: use a prefix between \/16 and \/112/);
    refused(h1, init('--cidr6', CIDR6, '--subnet-len6', '48'), /IPv6 subnet length \/48 leaves no room in fd00:244::\/48/);
    refused(h1, init('--cidr6', 'fd00:244::/60'), /fd00:244::\/60 holds 16 IPv6 subnets of \/64, fewer than the 256 IPv4 host subnets of 10\.244\.0\.0\/16/);
    refused(h1, init('--subnet-len6', '64'), /--subnet-len6 needs --cidr6/);
    refused(h1, init('--cidr6', CIDR6, '--mtu', '1200'), /MTU 1200 is below IPv6's minimum of 1280/);
    refused(h1, init('--cidr6', CIDR6, '--subnet-len6', 'x'), /invalid --subnet-len6 "x"/, 2);
    // A prefix this host already uses.
    h2.must('ip -6 addr add fd00:244:0:9::5/64 dev eth0 nodad');
    try {
      refused(h2, init('--cidr6', CIDR6), /cluster IPv6 CIDR fd00:244::\/48 overlaps fd00:244:0:9::5\/64, which this host already uses/);
    } finally {
      h2.must('ip -6 addr del fd00:244:0:9::5/64 dev eth0');
    }
    assert.equal(w.etcdctl('get', '/nsnet/', '--prefix', '--keys-only').stdout.trim(), '', 'nothing in etcd');
  });

  test('init writes the IPv6 prefix beside the IPv4 one (optional fields of schema 1)', () => {
    const out = h1.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR, '--cidr6', CIDR6);
    assert.match(out, /cluster initialised: 10\.244\.0\.0\/16, \/24 per host \+ fd00:244::\/48, \/64 per host, backend auto/);
    const cfg = JSON.parse(w.etcdctl('get', '/nsnet/v1/config', '--print-value-only').stdout) as Record<string, unknown>;
    assert.deepEqual(cfg, { schema: 1, network: CIDR, subnetLen: 24, backend: 'auto', vni: 1, port: 8472, mtu: 0, network6: CIDR6, subnetLen6: 64 });
    assert.match(h2.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR, '--cidr6', CIDR6), /already initialised/);
    refused(h2, ['cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR], /already initialised with a different config \(10\.244\.0\.0\/16, \/24, fd00:244::\/48, \/64, auto\)/);
  });

  test('an agent whose underlay already uses part of the IPv6 prefix refuses at once', () => {
    h1.must('ip -6 addr add fd00:244:0:9::5/64 dev eth0 nodad');
    try {
      const r = h1.nsnet('agent', '--etcd', ETCD_URL, '--node', 'h1', '--iface', 'eth0');
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr.trim(), 'nsnet: cluster IPv6 CIDR fd00:244::/48 overlaps fd00:244:0:9::5/64 on the underlay interface eth0');
      assert.equal(w.etcdctl('get', '/nsnet/v1/subnets/', '--prefix', '--keys-only').stdout.trim(), '', 'no lease taken');
    } finally {
      h1.must('ip -6 addr del fd00:244:0:9::5/64 dev eth0');
    }
  });

  test('each host leases an IPv6 subnet paired with its IPv4 one, in one lease value; routes per backend', async () => {
    await Promise.all(w.hosts.map((h) => h.startAgent()));
    await w.converged();
    await converged6();
    for (const h of w.hosts) {
      const i = Number(h.subnet().split('.')[2]);
      assert.equal(subnet6(h), `fd00:244:0:${i.toString(16)}::/64`.replace(':0:0::', '::'));
      const v = JSON.parse(w.etcdctl('get', `/nsnet/v1/subnets/${h.subnet().replace('/', '-')}`, '--print-value-only').stdout) as Record<string, unknown>;
      assert.equal(v.subnet6, subnet6(h));
      assert.equal(v.linkLocal6, linkLocal(h));
      // The local network `cluster` holds both subnets, with a gateway each.
      const n = JSON.parse(h.nsnetOk('network', 'inspect', 'cluster', '--json')) as { subnets: Array<{ cidr: string; gateway: string }>; mtu: number };
      assert.deepEqual(n.subnets.map((s) => s.cidr), [h.subnet(), subnet6(h)]);
      assert.equal(h.must('cat /proc/sys/net/ipv6/conf/all/forwarding').trim(), '1');
    }
    // h1 ↔ h2 (same segment): via the peer's underlay link-local address on eth0.
    assert.deepEqual(routes6(h1).find((r) => r.dst === subnet6(h2)), { dst: subnet6(h2), gateway: linkLocal(h2), dev: 'eth0', flags: [] });
    assert.deepEqual(routes6(h2).find((r) => r.dst === subnet6(h1)), { dst: subnet6(h1), gateway: linkLocal(h1), dev: 'eth0', flags: [] });
    // h3 (behind the router): onlink via a label, mapped to h3's VTEP MAC, in the IPv4 tunnel.
    const mac3 = JSON.parse(h3.must('ip -j link show nsnet.1'))[0].address as string;
    const label3 = subnet6(h3).split('/')[0]!;
    const to3 = routes6(h1).find((r) => r.dst === subnet6(h3))!;
    assert.equal(to3.gateway, label3);
    assert.equal(to3.dev, 'nsnet.1');
    assert.ok(to3.flags.includes('onlink'));
    assert.deepEqual(neigh6(h1).map((n) => [n.dst, n.lladdr]), [[label3, mac3]]);
    assert.deepEqual(h1.fdb('nsnet.1').map((f) => [f.mac, f.dst]), [[mac3, h3.ip]], 'one FDB entry for both families');
    for (const p of [h1, h2]) assert.equal(routes6(h3).find((r) => r.dst === subnet6(p))?.dev, 'nsnet.1');
    // No IPv6 address, router solicitation or DAD on the tunnel itself.
    assert.equal(JSON.parse(h1.must('ip -6 -j addr show dev nsnet.1'))[0]?.addr_info?.length ?? 0, 0);
  });

  test('containers get both addresses and an IPv6 default route, and ping each other over IPv6 in every direction', async () => {
    for (const h of w.hosts) {
      h.nsnetOk('ns', 'add', `c-${h.name}`);
      const e = JSON.parse(h.nsnetOk('connect', 'cluster', `c-${h.name}`, '--json')) as { addresses: string[] };
      ip4[h.name] = e.addresses.find((a) => !a.includes(':'))!.split('/')[0]!;
      ip6[h.name] = e.addresses.find((a) => a.includes(':'))!.split('/')[0]!;
      assert.ok(ip6[h.name]!.startsWith(subnet6(h).split('::')[0]!), `${ip6[h.name]} in ${subnet6(h)}`);
      const def = JSON.parse(h.must(`ip -n c-${h.name} -6 -j route show default`)) as Array<{ gateway: string }>;
      assert.equal(def[0]?.gateway, `${subnet6(h).split('/')[0]}1`);
    }
    for (const a of w.hosts) {
      for (const b of w.hosts) {
        if (a === b) continue;
        let r = ping6(a, b);
        // The first packet may wait for neighbour discovery on the underlay (host-gw).
        for (let i = 0; i < 3 && r.status !== 0; i++) r = ping6(a, b);
        assert.equal(r.status, 0, `c-${a.name}@${a.name} → c-${b.name}@${b.name} (${ip6[b.name]}): ${r.out}`);
        assert.equal(a.ping(`c-${a.name}`, ip4[b.name]!).status, 0, `IPv4 still: ${a.name} → ${b.name}`);
      }
    }
  });

  test('IPv6 traffic between hosts is not masqueraded (TCP sees the client\'s own address), and is accepted in forward', async () => {
    for (const h of w.hosts) {
      const sets = h.must('nft list set inet nsnet peer_in6; nft list set inet nsnet peer_nat6');
      assert.match(sets, /"nsbr-cluster" \. fd00:244::\/48/);
      assert.match(sets, new RegExp(`${subnet6(h).replace(/[:/.]/g, (c) => `\\${c}`)} \\. fd00:244::/48`));
    }
    const srv = spawn('nsenter', ['-t', String(h3.pid), '-m', '-n', '--', 'ip', 'netns', 'exec', 'c-h3', process.execPath, '-e',
      "require('net').createServer((s)=>s.end(s.remoteAddress+'\\n')).listen(7000,'::',()=>console.log('ready'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => srv.stdout!.once('data', () => resolve()));
    try {
      for (const from of [h1, h2]) {
        const r = from.run(['ip', 'netns', 'exec', `c-${from.name}`, process.execPath, '-e',
          `const s=require('net').connect(7000,'${ip6.h3}');let b='';s.on('data',d=>b+=d);s.on('end',()=>{process.stdout.write(b);process.exit(0)});setTimeout(()=>process.exit(2),3000)`]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), ip6[from.name]);
      }
    } finally {
      kill(srv);
    }
  });

  test('names across hosts answer AAAA with the remote container\'s IPv6 address', async () => {
    for (const a of w.hosts) {
      for (const b of w.hosts) {
        if (a === b) continue;
        const q = (): ReturnType<Host['run']> => a.run(['ip', 'netns', 'exec', `c-${a.name}`, 'getent', 'ahostsv6', `c-${b.name}`]);
        let r = q();
        for (const end = Date.now() + 20_000; (r.status !== 0 || !r.stdout.includes(ip6[b.name]!)) && Date.now() < end;) {
          await sleep(100);
          r = q();
        }
        assert.equal(r.stdout.trim().split(/\s+/)[0], ip6[b.name], `c-${a.name} resolves c-${b.name} (AAAA): ${r.stdout}${r.stderr}`);
      }
    }
    const p = h1.run(['ip', 'netns', 'exec', 'c-h1', 'ping', '-6', '-c', '1', '-W', '1', 'c-h3']);
    assert.equal(p.status, 0, p.stdout + p.stderr);
  });

  test('cluster status shows the IPv6 subnet per node (text and --json)', async () => {
    let s: { config: { network6: string }; nodes: Array<{ name: string; subnet: string; subnet6: string; peers: Record<string, { backend: string; backend6: string; subnet6: string }> }> } | undefined;
    for (let i = 0; i < 50; i++) {
      s = JSON.parse(h1.nsnetOk('cluster', 'status', '--etcd', ETCD_URL, '--json'));
      if (s!.nodes.every((n) => Object.keys(n.peers).length === 2)) break;
      await sleep(100);
    }
    assert.equal(s!.config.network6, CIDR6);
    assert.deepEqual(s!.nodes.map((n) => [n.name, n.subnet, n.subnet6]), w.hosts.map((h) => [h.name, h.subnet(), subnet6(h)]));
    assert.deepEqual(s!.nodes.find((n) => n.name === 'h1')!.peers, {
      h2: { backend: 'host-gw', subnet: h2.subnet(), subnet6: subnet6(h2), backend6: 'host-gw' },
      h3: { backend: 'vxlan', subnet: h3.subnet(), subnet6: subnet6(h3), backend6: 'vxlan' },
    });
    const text = h2.nsnetOk('cluster', 'status', '--etcd', ETCD_URL);
    assert.match(text, /^cluster 10\.244\.0\.0\/16 \(\/24 per host \+ fd00:244::\/48 \(\/64\), backend auto/);
    assert.match(text, /^NODE\s+SUBNET\s+SUBNET6\s+ADDRESS\s+AGENT/m);
    assert.match(text, new RegExp(`h3\\s+${h3.subnet().replace(/[./]/g, '\\$&')}\\s+${subnet6(h3).replace(/[:/]/g, '\\$&')}\\s+10\\.98\\.0\\.13\\s+up`));
  });

  test('IPv6 routes and neighbour entries deleted by hand are put back by the resync', async () => {
    const before = state6(h1);
    const label3 = subnet6(h3).split('/')[0]!;
    const from = h1.events.length;
    h1.must(`ip -6 route del ${subnet6(h2)}; ip -6 route del ${subnet6(h3)}; ip -6 neigh del ${label3} dev nsnet.1`);
    assert.notEqual(state6(h1), before);
    await until('the resync put all three back', () => state6(h1) === before
      && h1.events.slice(from).filter((e) => e.event === 'reconciled' && e.why === 'timer').reduce((n, e) => n + Number(e.changes), 0) >= 3, 10_000);
    assert.equal(ping6(h1, h2).status, 0);
    assert.equal(ping6(h1, h3).status, 0);
  });

  test('an agent restarted (kill -9) keeps its IPv6 subnet; no IPv6 packet lost', async () => {
    const before = w.hosts.map(state6);
    const s6 = subnet6(h2);
    await restartAgentUnderPing(h2, [{ from: h1, ns: 'c-h1', ip: ip6.h2! }, { from: h3, ns: 'c-h3', ip: ip6.h2! }]);
    assert.equal(subnet6(h2), s6);
    assert.deepEqual(w.hosts.map(state6), before);
  });

  test('an agent gone past its lease: peers withdraw its IPv6 routes; restarted, they come back', async () => {
    const s6 = subnet6(h3);
    const label3 = s6.split('/')[0]!;
    await h3.stopAgent('SIGTERM');
    await until('peers withdraw h3', () => [h1, h2].every((h) => !routes6(h).some((r) => r.dst === s6) && !neigh6(h).some((n) => n.dst === label3)), (LEASE_TTL + 10) * 1000);
    assert.notEqual(ping6(h1, h3).status, 0);
    // h3 keeps its own data plane while its agent is down.
    assert.equal(routes6(h3).length, 2);
    await h3.startAgent();
    assert.equal(subnet6(h3), s6);
    await converged6();
    await until('h1 reaches h3 over IPv6 again', () => ping6(h1, h3).status === 0);
    assert.equal(ping6(h2, h3).status, 0);
  });
});
