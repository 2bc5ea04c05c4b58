/**
 * The cluster under failure (reference/multihost-overlay.md §5.4 fault table), with
 * continuous pings between containers on different hosts: agent killed and restarted within
 * its lease, agent gone past its lease, etcd down longer than the lease TTL, kernel entries
 * and the VXLAN device deleted by hand, a compaction while an agent's watch is paused, a
 * partitioned host, and an MTU change on one underlay.
 *
 * Timers are shortened through the environment: subnet lease 6 s, heartbeat 3 s, resync 1 s.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR, ETCD_URL, Pinger, World, type Host, ETCD_MISSING } from './harness.js';
import { must, sleep } from '../harness/world.js';

const LEASE_TTL = 6;
const ENV = { NSNET_CLUSTER_LEASE_TTL: String(LEASE_TTL), NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
let w: World;
let h1: Host, h2: Host, h3: Host;
const ip: Record<string, string> = {};


function reachable(from: Host, to: Host): boolean {
  return from.ping(`c${from.name.slice(1)}`, ip[to.name]!).status === 0;
}

async function until(what: string, fn: () => boolean, timeout = 20_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(100);
  }
}

const states = (): string[] => w.hosts.map((h) => h.kernelState());

describe('cluster faults', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'b' }], env: ENV });
    [h1, h2, h3] = w.hosts as [Host, Host, Host];
    await w.startEtcd();
    h1.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR);
    await Promise.all(w.hosts.map((h) => h.startAgent()));
    await w.converged();
    for (const h of w.hosts) ip[h.name] = h.container(`c${h.name.slice(1)}`);
  });
  after(async () => { await w?.close(); });

  test('kill -9 an agent and restart it within the lease: same subnet, no packet lost, no kernel change', async () => {
    const before = states();
    const subnet = h2.subnet();
    const p12 = new Pinger(h1, 'c1', ip.h2!);
    const p32 = new Pinger(h3, 'c3', ip.h2!);
    await sleep(500);
    await h2.stopAgent('SIGKILL');
    await sleep(1000);
    await h2.startAgent();
    await h2.waitEvent('reconciled');
    await sleep(1500);
    const [a, b] = [await p12.stop(), await p32.stop()];
    assert.equal(h2.subnet(), subnet);
    assert.ok(a.sent >= 20 && b.sent >= 20, `pings sent: ${a.sent}, ${b.sent}`);
    assert.equal(a.received, a.sent, `h1→h2 lost ${a.sent - a.received} of ${a.sent}`);
    assert.equal(b.received, b.sent, `h3→h2 lost ${b.sent - b.received} of ${b.sent}`);
    assert.ok(a.tail <= 10 && b.tail <= 10, `answers continued to the end (unanswered at the end: ${a.tail}, ${b.tail})`);
    assert.deepEqual(states(), before);
    // The takeover revoked the killed run's lease: one lease holds the subnet key.
    const leases = w.etcdctl('lease', 'list').stdout.match(/[0-9a-f]{16}/g) ?? [];
    assert.equal(leases.length, 6, `3 subnet + 3 heartbeat leases, got: ${leases.join(' ')}`);
  });

  test('an agent gone past its lease is withdrawn by every peer; restarted, it takes its subnet back', async () => {
    const subnet = h2.subnet();
    await h2.stopAgent('SIGTERM');
    await until('peers withdraw h2', () => !h1.routes().some((r) => r.dst === subnet) && !h3.routes().some((r) => r.dst === subnet), (LEASE_TTL + 10) * 1000);
    assert.equal(reachable(h1, h2), false);
    // h2 itself keeps its data plane while its agent is down (nothing tears it down).
    assert.equal(h2.routes().length, 2);
    const status = JSON.parse(h1.nsnetOk('cluster', 'status', '--etcd', ETCD_URL, '--json')) as { nodes: Array<{ name: string }> };
    assert.deepEqual(status.nodes.map((n) => n.name), ['h1', 'h3']);
    await h2.startAgent();
    assert.equal(h2.subnet(), subnet);
    await w.converged();
    await until('h1 reaches h2 again', () => reachable(h1, h2));
    assert.ok(reachable(h3, h2));
  });

  test('etcd down for longer than the lease TTL: no data-plane change, no lost packet; leases come back', async () => {
    const before = states();
    const subnets = w.hosts.map((h) => h.subnet());
    const p13 = new Pinger(h1, 'c1', ip.h3!);
    const p21 = new Pinger(h2, 'c2', ip.h1!);
    await w.stopEtcd();
    await sleep((LEASE_TTL + 2) * 1000);
    assert.deepEqual(states(), before, 'kernel state changed while etcd was down');
    // Containers can still be attached on a host while etcd is away (local IPAM).
    const extra = h1.container('c1b');
    assert.ok(h1.ping('c1b', ip.h2!).status === 0, `c1b (${extra}) → h2`);
    await w.startEtcd();
    await sleep(3000);
    const [a, b] = [await p13.stop(), await p21.stop()];
    assert.equal(a.received, a.sent, `h1→h3 lost ${a.sent - a.received} of ${a.sent}`);
    assert.equal(b.received, b.sent, `h2→h1 lost ${b.sent - b.received} of ${b.sent}`);
    assert.ok(a.tail <= 10 && b.tail <= 10, `answers continued to the end (unanswered at the end: ${a.tail}, ${b.tail})`);
    assert.deepEqual(states(), before);
    const keys = w.etcdctl('get', '/nsnet/v1/subnets/', '--prefix', '--keys-only').stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(keys, subnets.map((s) => `/nsnet/v1/subnets/${s.replace('/', '-')}`).sort());
  });

  test('routes, neighbours and FDB entries deleted by hand are put back by the resync', async () => {
    const before = h1.kernelState();
    const vtep3 = h3.subnet().split('/')[0]!;
    const mac3 = h1.neighbours('nsnet.1')[0]!.lladdr;
    const from = h1.events.length;
    h1.must(`ip route del ${h2.subnet()}; ip route del ${h3.subnet()}; ip neigh del ${vtep3} dev nsnet.1; bridge fdb del ${mac3} dev nsnet.1 dst ${h3.ip} self`);
    await until('the resync put all four back', () => h1.kernelState() === before
      && h1.events.slice(from).filter((e) => e.event === 'reconciled' && e.why === 'timer').reduce((n, e) => n + Number(e.changes), 0) >= 4, 10_000);
    assert.ok(reachable(h1, h3) && reachable(h1, h2));
  });

  test('a deleted VXLAN device is recreated (same MAC) and fully reprogrammed', async () => {
    const before = h1.kernelState();
    const mac = JSON.parse(h1.must('ip -j link show nsnet.1'))[0].address as string;
    h1.must('ip link del nsnet.1');
    const from = h1.events.length;
    await h1.waitEvent('reconciled', 10_000, (e) => e.recreatedDevice === true, from);
    assert.equal(JSON.parse(h1.must('ip -j link show nsnet.1'))[0].address, mac);
    await until('routes, neighbour and FDB entries back', () => h1.kernelState() === before, 5000);
    await until('h1 reaches h3 over the recreated device', () => reachable(h1, h3));
  });

  test('compaction while an agent\'s watch is paused: one fresh listing, no hot loop', async () => {
    h1.must(`kill -STOP ${h1.agent!.pid}`);
    try {
      // Break the watch stream (etcd restarts), then move the cluster on and compact away
      // the revisions the paused watch would resume from.
      await w.stopEtcd();
      await w.startEtcd();
      const ghost = (n: number): string => JSON.stringify({ schema: 1, nodeId: `ghost-${n}`, node: `ghost${n}`, publicIp: `10.99.0.${90 + n}`, underlayMtu: 1500, vtepMac: `02:00:00:00:00:0${n}` });
      assert.equal(w.etcdctl('put', '/nsnet/v1/subnets/10.244.250.0-24', ghost(1)).status, 0);
      assert.equal(w.etcdctl('del', '/nsnet/v1/subnets/10.244.250.0-24').status, 0);
      assert.equal(w.etcdctl('put', '/nsnet/v1/subnets/10.244.251.0-24', ghost(2)).status, 0);
      const rev = /"revision":(\d+)/.exec(w.etcdctl('get', '/nsnet/v1/config', '-w', 'json').stdout)![1]!;
      const c = w.etcdctl('compact', rev);
      assert.equal(c.status, 0, c.stderr);
    } finally {
      h1.must(`kill -CONT ${h1.agent!.pid}`);
    }
    const from = h1.events.length;
    await until('h1 routes the ghost subnet (fresh listing)', () => h1.routes().some((r) => r.dst === '10.244.251.0/24'));
    await sleep(3000);
    const relists = h1.events.slice(from).filter((e) => e.event === 'relist');
    assert.ok(relists.length >= 1 && relists.length <= 2, `expected one fresh listing, got ${relists.length}: ${JSON.stringify(h1.events.slice(from).map((e) => e.event))}`);
    assert.ok(h1.events.slice(from).some((e) => e.event === 'watch-error'), 'the resumed watch was cancelled by etcd');
    // The fresh watch works: the ghost leaves, its route goes.
    w.etcdctl('del', '/nsnet/v1/subnets/10.244.251.0-24');
    await until('ghost route withdrawn', () => !h1.routes().some((r) => r.dst === '10.244.251.0/24'));
  });

  test('a partitioned host: peers withdraw it after its lease; healed, it re-registers and traffic resumes', async () => {
    const subnet = h2.subnet();
    const own = h2.kernelState();
    must('ip link set h2-ul down');
    try {
      await until('peers withdraw partitioned h2', () => !h1.routes().some((r) => r.dst === subnet) && !h3.routes().some((r) => r.dst === subnet), (LEASE_TTL + 10) * 1000);
      // The partitioned host keeps its own routes: cut off from etcd is not a reason to flush.
      assert.equal(h2.kernelState(), own);
    } finally {
      must('ip link set h2-ul up');
    }
    await until('h2 re-registered with the same subnet', () => h1.routes().some((r) => r.dst === subnet) && h3.routes().some((r) => r.dst === subnet), 30_000);
    assert.equal(h2.subnet(), subnet);
    await until('h1 reaches h2', () => reachable(h1, h2));
    assert.ok(reachable(h2, h3));
  });

  test('an MTU change on one underlay: the tunnel MTU follows; the largest ping passes, one byte more fails cleanly', async () => {
    // Before: 1500 everywhere → tunnel 1450 → 1422 bytes of ICMP payload fit.
    assert.equal(h1.ping('c1', ip.h3!, ['-M', 'do', '-s', '1422']).status, 0);
    must('ip link set h3-ul mtu 1400');
    h3.must('ip link set eth0 mtu 1400');
    const mtu = (h: Host): number => JSON.parse(h.must('ip -j link show nsnet.1'))[0].mtu as number;
    await until('every tunnel at 1350', () => w.hosts.every((h) => mtu(h) === 1350));
    // 1350 - 20 (IPv4) - 8 (ICMP) = 1322.
    const ok = h1.ping('c1', ip.h3!, ['-M', 'do', '-s', '1322']);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const back = h3.ping('c3', ip.h1!, ['-M', 'do', '-s', '1322']);
    assert.equal(back.status, 0, back.stdout + back.stderr);
    // One byte more: refused at the sending host with "fragmentation needed" (RFC 1191), not lost silently.
    const big = h1.ping('c1', ip.h3!, ['-M', 'do', '-s', '1323']);
    assert.notEqual(big.status, 0);
    assert.match(big.stdout + big.stderr, /mtu = 1350|message too long|Frag needed/i);
  });
});
