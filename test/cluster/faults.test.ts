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
import { CIDR, ETCD_URL, Pinger, World, restartAgentUnderPing, type Host, ETCD_MISSING } from './harness.js';
import { spawnSync } from 'node:child_process';
import { must, sh, sleep } from '../harness/world.js';

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
    const [a, b] = await restartAgentUnderPing(h2, [{ from: h1, ns: 'c1', ip: ip.h2! }, { from: h3, ns: 'c3', ip: ip.h2! }]);
    assert.equal(h2.subnet(), subnet);
    assert.ok(a.tail <= 10 && b.tail <= 10, `answers continued to the end (unanswered at the end: ${a.tail}, ${b.tail})`);
    assert.deepEqual(states(), before);
    // The takeover revoked the killed run's lease: one lease holds the subnet key.
    const leases = w.etcdctl('lease', 'list').stdout.match(/[0-9a-f]{16}/g) ?? [];
    assert.equal(leases.length, 6, `3 subnet + 3 heartbeat leases, got: ${leases.join(' ')}`);
  });

  test('SIGTERM at any step of start-up: the agent stops at once (exit 0); restarted, it takes its subnet back', async () => {
    const subnet = h2.subnet();
    await h2.stopAgent('SIGTERM');
    // Each step of start-up, from the config read to the first listing; a stop must end the
    // start-up there and leave no timer, lease keepalive or watch holding the process.
    for (const step of ['config', 'leased', 'reconciled', 'listed']) {
      await h2.startAgent([], { wait: false });
      await h2.waitEvent(step, 20_000);
      const exited = h2.stopAgent('SIGTERM');
      const inTime = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!inTime) h2.agent!.kill('SIGKILL');
      assert.ok(inTime, `the agent stopped within 10 s of a SIGTERM after "${step}" (events: ${h2.events.map((e) => e.event).join(' ')})`);
      assert.equal(h2.agent!.exitCode, 0, h2.stderr);
      assert.equal(h2.events.at(-1)?.event, 'stopped');
    }
    await h2.startAgent();
    assert.equal(h2.subnet(), subnet);
    await w.converged();
    assert.ok(reachable(h1, h2) && reachable(h3, h2));
  });

  test('an agent gone past its lease is withdrawn by every peer; restarted, it takes its subnet back', async () => {
    const subnet = h2.subnet();
    await h2.stopAgent('SIGTERM');
    await until('peers withdraw h2', () => !h1.routes().some((r) => r.dst === subnet) && !h3.routes().some((r) => r.dst === subnet), (LEASE_TTL + 10) * 1000);
    assert.equal(reachable(h1, h2), false);
    // Its underlay address left h1's VXLAN filter with it.
    assert.doesNotMatch(h1.must('nft list set inet nsnet vxlan_peers4'), new RegExp(`${h2.ip.replaceAll('.', '\\.')} `));
    assert.match(h1.must('nft list set inet nsnet vxlan_peers4'), new RegExp(`${h3.ip.replaceAll('.', '\\.')} `));
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

  test('VXLAN is accepted only from peers: a crafted packet from another underlay address is dropped, not decapsulated', () => {
    const vxRx = (): number => (JSON.parse(h1.must('ip -s -j link show nsnet.1'))[0].stats64.rx.packets as number);
    const dropped = (): number => {
      const c = JSON.parse(h1.must('nft -j list counter inet nsnet vxlan_dropped')) as { nftables: Array<{ counter?: { packets: number } }> };
      return c.nftables.find((x) => x.counter)!.counter!.packets;
    };
    // The set holds every peer's underlay address with the port, and nothing else.
    const set = JSON.parse(h1.must('nft -j list set inet nsnet vxlan_peers4')) as { nftables: Array<{ set?: { elem?: Array<{ concat: [string, number] }> } }> };
    const elems = set.nftables.find((x) => x.set)!.set!.elem!.map((e) => e.concat.join(' . ')).sort();
    assert.deepEqual(elems, [`${h2.ip} . 8472`, `${h3.ip} . 8472`].sort());

    // A VXLAN packet (RFC 7348 §5) whose inner frame pretends to be c3 pinging c1: built
    // here byte by byte, sent as plain UDP to h1's VXLAN port.
    const vtepMac1 = JSON.parse(h1.must('ip -j link show nsnet.1'))[0].address as string;
    const packet = vxlanEcho(1, vtepMac1, '02:00:00:00:00:33', ip.h3!, ip.h1!);
    const send = (argv: string[]): void => {
      const script = `const d=require('dgram').createSocket('udp4');const b=Buffer.from('${packet.toString('hex')}','hex');let n=0;`
        + `const f=()=>d.send(b,8472,'${h1.ip}',(e)=>{if(e)throw e;if(++n<20)f();else d.close();});f();`;
      const r = spawnSync(argv[0]!, [...argv.slice(1), process.execPath, '-e', script], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };

    // From a peer (h3's underlay address) the same bytes are decapsulated: the packet is valid.
    let rx = vxRx();
    let drops = dropped();
    send(['nsenter', '-t', String(h3.pid), '-m', '-n', '--']);
    assert.ok(vxRx() - rx >= 20, `h1's nsnet.1 received ${vxRx() - rx} of 20 from the peer`);
    assert.equal(dropped(), drops);

    // From a namespace on the same underlay segment that is not a peer: dropped before the
    // VXLAN socket, every one counted.
    must(`ip netns add rogue
ip link add rogue-ul type veth peer name eth0 netns rogue && ip link set rogue-ul master ul0 up
ip -n rogue addr add 10.99.0.77/24 dev eth0 && ip -n rogue link set eth0 up`);
    try {
      rx = vxRx();
      drops = dropped();
      send(['ip', 'netns', 'exec', 'rogue']);
      assert.equal(dropped() - drops, 20);
      assert.ok(vxRx() - rx < 20, `h1's nsnet.1 decapsulated ${vxRx() - rx} of the rogue's 20`);
    } finally {
      sh('ip netns del rogue; ip link del rogue-ul');
    }
    // Peers still work.
    assert.ok(reachable(h1, h3) && reachable(h3, h1));
  });

  test('an MTU change on one underlay: the path MTU follows into every container; the largest ping passes, one byte more fails cleanly', async () => {
    const linkMtu = (h: Host, dev: string, ns?: string): number =>
      JSON.parse(h.must(`${ns ? `ip -n ${ns} ` : 'ip '}-j link show ${dev}`))[0].mtu as number;
    const veth = new Map(w.hosts.map((h) => [h.name, (JSON.parse(h.nsnetOk('network', 'inspect', 'cluster', '--json')) as { endpoints: Array<{ namespace: string; hostIfname: string }> })
      .endpoints.find((e) => e.namespace === `c${h.name.slice(1)}`)!.hostIfname]));
    /** Tunnel, bridge, both veth ends of the containers, and the stored network, on every host. */
    const mtus = (): string[] => w.hosts.flatMap((h) => {
      const c = `c${h.name.slice(1)}`;
      const links = new Map((JSON.parse(h.must('ip -j link show')) as Array<{ ifname: string; mtu: number }>).map((l) => [l.ifname, l.mtu]));
      const stored = (JSON.parse(h.nsnetOk('network', 'inspect', 'cluster', '--json')) as { mtu: number }).mtu;
      return [`${h.name} tunnel ${links.get('nsnet.1')}`, `${h.name} bridge ${links.get('nsbr-cluster')}`, `${h.name} veth ${links.get(veth.get(h.name)!)}`,
        `${h.name} ${c} ${linkMtu(h, 'eth0', c)}`, `${h.name} stored ${stored}`];
    });
    const all = (mtu: number): string[] => w.hosts.flatMap((h) => [`${h.name} tunnel ${mtu}`, `${h.name} bridge ${mtu}`, `${h.name} veth ${mtu}`,
      `${h.name} c${h.name.slice(1)} ${mtu}`, `${h.name} stored ${mtu}`]);
    /**
     * From containers on two hosts (h1 on segment A, h3 behind the router, over VXLAN; and
     * h1 → h2 over host-gw), with DF set: a payload of mtu - 20 (IPv4) - 8 (ICMP) passes,
     * one byte more is refused by the sender's own stack with EMSGSIZE ("message too long"),
     * never lost on the way.
     */
    const largest = (mtu: number): void => {
      const max = mtu - 28;
      for (const [from, c, to] of [[h1, 'c1', h3], [h3, 'c3', h1], [h1, 'c1', h2]] as const) {
        const ok = from.ping(c, ip[to.name]!, ['-M', 'do', '-s', String(max)]);
        assert.equal(ok.status, 0, `${c} → ${to.name}, ${max} bytes: ${ok.stdout}${ok.stderr}`);
        const big = from.ping(c, ip[to.name]!, ['-M', 'do', '-s', String(max + 1)]);
        assert.notEqual(big.status, 0, `${c} → ${to.name}, ${max + 1} bytes passed`);
        assert.match(big.stdout + big.stderr, new RegExp(`message too long, mtu=${mtu}`), `${c} → ${to.name}, ${max + 1} bytes`);
      }
    };
    // Before: 1500 everywhere → 1450 in every container.
    assert.deepEqual(mtus(), all(1450));
    largest(1450);

    must('ip link set h3-ul mtu 1400');
    h3.must('ip link set eth0 mtu 1400');
    await until('tunnels, bridges, veths and containers at 1350 on every host', () => JSON.stringify(mtus()) === JSON.stringify(all(1350)));
    largest(1350);
    // A container attached after the change gets the new MTU from the stored network.
    h1.container('c1m');
    assert.equal(linkMtu(h1, 'eth0', 'c1m'), 1350);

    // Raised back: everything grows again (the kernel raises the PMTU it learned, too).
    h3.must('ip link set eth0 mtu 1500');
    must('ip link set h3-ul mtu 1500');
    await until('tunnels, bridges, veths and containers back at 1450', () => JSON.stringify(mtus()) === JSON.stringify(all(1450)));
    assert.equal(linkMtu(h1, 'eth0', 'c1m'), 1450);
    largest(1450);
  });
});

/**
 * A VXLAN datagram's payload (RFC 7348 §5): the 8-byte VXLAN header (flags 0x08 = VNI
 * valid), then an Ethernet frame carrying an ICMP echo request from `src` to `dst`.
 * Written out field by field, independently of the code under test.
 */
function vxlanEcho(vni: number, dstMac: string, srcMac: string, src: string, dst: string): Buffer {
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  const ip4 = (a: string): number[] => a.split('.').map(Number);
  const sum = (b: number[]): number => {
    let s = 0;
    for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (b[i + 1] ?? 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
    return ~s & 0xffff;
  };
  const icmp = [8, 0, 0, 0, 0x12, 0x34, 0, 1, ...Buffer.from('nsnet-rogue-vxlan')];
  const ck = sum(icmp);
  icmp[2] = ck >> 8; icmp[3] = ck & 0xff;
  const len = 20 + icmp.length;
  const iph = [0x45, 0, len >> 8, len & 0xff, 0, 0, 0x40, 0, 64, 1, 0, 0, ...ip4(src), ...ip4(dst)];
  const ipck = sum(iph);
  iph[10] = ipck >> 8; iph[11] = ipck & 0xff;
  return Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0,
    ...mac(dstMac), ...mac(srcMac), 0x08, 0x00, ...iph, ...icmp]);
}
