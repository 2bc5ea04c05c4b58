import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNsnetError } from '../errors.js';
import { makeConfig, parseConfig, parseLease, subnetKey, subnetOfKey, type SubnetLease } from './keys.js';
import { clusterSubnets, containerMtu, fitsConfig, pickFreeSubnet, planDataplane, subnet6Of, tunnelMtu } from './plan.js';

const lease = (node: string, publicIp: string, underlayMtu = 1500): SubnetLease =>
  ({ schema: 1, nodeId: `id-${node}`, node, publicIp, underlayMtu, vtepMac: '02:00:00:00:00:01' });

describe('cluster keys', () => {
  it('subnet keys use flannel\'s a.b.c.d-len form and round-trip', () => {
    assert.equal(subnetKey('10.244.3.0/24'), '/nsnet/v1/subnets/10.244.3.0-24');
    assert.equal(subnetOfKey('/nsnet/v1/subnets/10.244.3.0-24'), '10.244.3.0/24');
    assert.equal(subnetOfKey('/nsnet/v1/nodes/h1'), undefined);
    assert.equal(subnetOfKey('/nsnet/v1/subnets/garbage'), undefined);
  });

  it('config defaults and validation', () => {
    assert.deepEqual(makeConfig({ cidr: '10.244.0.0/16' }), { schema: 1, network: '10.244.0.0/16', subnetLen: 24, backend: 'auto', vni: 1, port: 8472, mtu: 0 });
    assert.equal(makeConfig({ cidr: '10.0.0.0/26' }).subnetLen, 28);
    const refused = (o: Parameters<typeof makeConfig>[0], re: RegExp): void =>
      assert.throws(() => makeConfig(o), (e: unknown) => isNsnetError(e, 'CLUSTER_CONFIG_INVALID') && re.test(e.message));
    refused({ cidr: '10.0.0.0/29' }, /too small/);
    refused({ cidr: '10.0.0.0/7' }, /too large/);
    refused({ cidr: '10.0.0.0/16', subnetLen: 16 }, /leaves no room/);
    refused({ cidr: '10.0.0.0/16', subnetLen: 31 }, /leaves no room/);
    refused({ cidr: '10.0.0.0/16', vni: 0 }, /invalid VNI/);
    refused({ cidr: '10.0.0.0/16', backend: 'ipip' }, /invalid backend/);
    refused({ cidr: '10.0.0.0/16', mtu: 100 }, /invalid MTU/);
  });

  it('a stored config of another schema is refused by name', () => {
    assert.throws(() => parseConfig('{"schema":2,"network":"10.0.0.0/16"}'), /has schema 2; this nsnet understands schema 1/);
    assert.equal(parseLease('{"schema":2}'), undefined);
    assert.equal(parseLease('not json'), undefined);
    assert.deepEqual(parseLease(JSON.stringify(lease('h1', '10.0.0.1'))), lease('h1', '10.0.0.1'));
  });
});

describe('cluster plan', () => {
  const c = makeConfig({ cidr: '10.244.0.0/22', subnetLen: 24 });

  it('enumerates the host subnets and checks fit', () => {
    assert.deepEqual([...clusterSubnets(c)], ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    assert.ok(fitsConfig(c, '10.244.3.0/24'));
    assert.ok(!fitsConfig(c, '10.244.4.0/24'));
    assert.ok(!fitsConfig(c, '10.244.0.0/25'));
  });

  it('picks only free subnets, and says so when none is left', () => {
    const taken = new Set(['10.244.0.0/24', '10.244.2.0/24']);
    for (const r of [0, 0.49, 0.5, 0.99]) assert.ok(['10.244.1.0/24', '10.244.3.0/24'].includes(pickFreeSubnet(c, taken, () => r)));
    assert.throws(() => pickFreeSubnet(c, new Set(clusterSubnets(c))), (e: unknown) => isNsnetError(e, 'CLUSTER_SUBNETS_EXHAUSTED') && /no free \/24 left in cluster 10\.244\.0\.0\/22 \(4 leased\)/.test(e.message));
  });

  it('auto: host-gw for on-link peers, VXLAN for routed ones; host-gw refuses routed peers', () => {
    const leases = new Map([
      ['10.244.0.0/24', lease('h1', '10.99.0.11')],
      ['10.244.1.0/24', lease('h2', '10.99.0.12')],
      ['10.244.2.0/24', lease('h3', '10.98.0.13', 1400)],
    ]);
    const self = { subnet: '10.244.0.0/24', onLink: ['10.99.0.0/24'], underlayMtu: 1500 };
    const p = planDataplane(c, self, leases);
    assert.deepEqual(p.peers.map((x) => [x.node, x.backend, x.vtepIp]), [['h2', 'host-gw', '10.244.1.0'], ['h3', 'vxlan', '10.244.2.0']]);
    assert.equal(p.tunnelMtu, 1350);
    assert.equal(p.containerMtu, 1350, 'the smallest underlay in the cluster (h3, 1400) minus VXLAN');
    assert.ok(p.vxlan);
    const hg = planDataplane({ ...c, backend: 'host-gw' }, self, leases);
    assert.deepEqual(hg.peers.map((x) => x.backend), ['host-gw', 'unreachable']);
    assert.match(hg.peers[1]!.reason!, /host-gw needs h3 \(10\.98\.0\.13\) on the same L2 segment/);
    assert.ok(!hg.vxlan);
    const vx = planDataplane({ ...c, backend: 'vxlan' }, self, leases);
    assert.deepEqual(vx.peers.map((x) => x.backend), ['vxlan', 'vxlan']);
    assert.equal(tunnelMtu({ ...c, mtu: 1300 }, 1500, leases.values()), 1300);
    assert.equal(hg.containerMtu, 1400, 'host-gw adds no header');
    assert.equal(containerMtu({ ...c, backend: 'host-gw' }, 1500, [lease('h2', '10.99.0.12', 9000)]), 1500, 'our own underlay counts too');
    assert.equal(containerMtu({ ...c, mtu: 1300 }, 9000, leases.values()), 1300);
  });
});

describe('cluster dual stack (IPv6 beside IPv4)', () => {
  const refused = (o: Parameters<typeof makeConfig>[0], re: RegExp): void =>
    assert.throws(() => makeConfig(o), (e: unknown) => isNsnetError(e, 'CLUSTER_CONFIG_INVALID') && re.test(e.message) && !e.message.includes('\n'));

  it('--cidr6: defaults, and an IPv4-only config keeps its old shape', () => {
    const c = makeConfig({ cidr: '10.244.0.0/16', cidr6: 'fd00:244::/48' });
    assert.deepEqual(c, { schema: 1, network: '10.244.0.0/16', subnetLen: 24, backend: 'auto', vni: 1, port: 8472, mtu: 0, network6: 'fd00:244::/48', subnetLen6: 64 });
    assert.ok(!('network6' in makeConfig({ cidr: '10.244.0.0/16' })));
    assert.deepEqual(parseConfig(JSON.stringify(c)), c);
    assert.equal(makeConfig({ cidr: '10.244.0.0/16', cidr6: '2001:db8:5::/48', subnetLen6: 80 }).subnetLen6, 80);
    assert.equal(makeConfig({ cidr: '10.244.0.0/16', cidr6: 'FD00:0244:0::/48' }).network6, 'fd00:244::/48', 'canonical form');
  });

  it('--cidr6: one-line refusals', () => {
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::' }, /invalid cluster IPv6 CIDR "fd00:244::"/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::1/48' }, /invalid cluster IPv6 CIDR .*host bits set; the network is fd00:244::\/48/);
    refused({ cidr: '10.0.0.0/16', cidr6: '10.245.0.0/16' }, /--cidr6 10\.245\.0\.0\/16 is IPv4/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fe80::/48' }, /not a unique local \(fc00::\/7\) or global unicast \(2000::\/3\) prefix/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'ff00::/48' }, /not a unique local/);
    refused({ cidr: '10.0.0.0/16', cidr6: '::/0' }, /not a unique local/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::/120' }, /too small: use a prefix between \/16 and \/112/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::/48', subnetLen6: 48 }, /IPv6 subnet length \/48 leaves no room in fd00:244::\/48/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::/48', subnetLen6: 124 }, /leaves no room/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::/60', subnetLen6: 64 }, /fd00:244::\/60 holds 16 IPv6 subnets of \/64, fewer than the 256 IPv4 host subnets of 10\.0\.0\.0\/16/);
    refused({ cidr: '10.0.0.0/16', subnetLen6: 64 }, /--subnet-len6 needs --cidr6/);
    refused({ cidr: '10.0.0.0/16', cidr6: 'fd00:244::/48', mtu: 1200 }, /MTU 1200 is below IPv6's minimum of 1280/);
  });

  it('host subnet i of the IPv4 CIDR is paired with host subnet i of the IPv6 CIDR', () => {
    const c = makeConfig({ cidr: '10.244.0.0/16', cidr6: 'fd00:244::/48' });
    assert.equal(subnet6Of(c, '10.244.0.0/24'), 'fd00:244::/64');
    assert.equal(subnet6Of(c, '10.244.3.0/24'), 'fd00:244:0:3::/64');
    assert.equal(subnet6Of(c, '10.244.255.0/24'), 'fd00:244:0:ff::/64');
    assert.equal(subnet6Of(c, '10.245.0.0/24'), undefined, 'outside the cluster');
    assert.equal(subnet6Of(makeConfig({ cidr: '10.244.0.0/16' }), '10.244.3.0/24'), undefined, 'IPv4-only cluster');
    const odd = makeConfig({ cidr: '10.0.0.0/22', subnetLen: 26, cidr6: 'fd00:1:2:4::/62', subnetLen6: 66 });
    assert.deepEqual([...clusterSubnets(odd)].map((s) => subnet6Of(odd, s)).slice(0, 3), ['fd00:1:2:4::/66', 'fd00:1:2:4:4000::/66', 'fd00:1:2:4:8000::/66']);
    const all = [...clusterSubnets(odd)].map((s) => subnet6Of(odd, s));
    assert.equal(new Set(all).size, all.length, 'distinct');
  });

  it('plans IPv6 routes beside IPv4 ones: host-gw via the link-local, VXLAN via a label', () => {
    const c = makeConfig({ cidr: '10.244.0.0/16', cidr6: 'fd00:244::/48' });
    const l6 = (node: string, ip: string, subnet: string, ll?: string, mtu = 1500): SubnetLease =>
      ({ ...lease(node, ip, mtu), subnet6: subnet6Of(c, subnet)!, ...(ll ? { linkLocal6: ll } : {}) });
    const leases = new Map([
      ['10.244.1.0/24', l6('h1', '10.99.0.11', '10.244.1.0/24', 'fe80::1')],
      ['10.244.2.0/24', l6('h2', '10.99.0.12', '10.244.2.0/24', 'fe80::2')],
      ['10.244.3.0/24', l6('h3', '10.98.0.13', '10.244.3.0/24', 'fe80::3')],
      ['10.244.4.0/24', l6('h4', '10.99.0.14', '10.244.4.0/24')], // IPv6 off on its underlay
      ['10.244.5.0/24', lease('h5', '10.99.0.15')], // an agent that predates dual stack
    ]);
    const self = { subnet: '10.244.1.0/24', onLink: ['10.99.0.0/24'], underlayMtu: 1500 };
    const p = planDataplane(c, self, leases);
    assert.deepEqual(p.peers.map((x) => [x.node, x.backend, x.v6]), [
      ['h2', 'host-gw', { subnet: 'fd00:244:0:2::/64', backend: 'host-gw', via: 'fe80::2' }],
      ['h3', 'vxlan', { subnet: 'fd00:244:0:3::/64', backend: 'vxlan', via: 'fd00:244:0:3::' }],
      ['h4', 'host-gw', { subnet: 'fd00:244:0:4::/64', backend: 'vxlan', via: 'fd00:244:0:4::' }],
      ['h5', 'host-gw', undefined],
    ]);
    assert.deepEqual(p.errors, []);
    const hg = planDataplane({ ...c, backend: 'host-gw' }, self, leases);
    assert.deepEqual(hg.peers.map((x) => x.v6?.backend), ['host-gw', 'unreachable', 'unreachable', undefined]);
    assert.match(hg.peers[2]!.v6!.reason!, /host-gw IPv6 needs h4's underlay link-local address/);
    // A lease whose subnet6 is not the pair of its IPv4 subnet is not routed.
    const bad = new Map([['10.244.2.0/24', { ...lease('h2', '10.99.0.12'), subnet6: 'fd00:244:0:9::/64' }]]);
    assert.equal(planDataplane(c, self, bad).peers[0]!.v6, undefined);
    // MTU: IPv6 needs 1280 on every link.
    const small = planDataplane(c, { ...self, underlayMtu: 1320 }, new Map());
    assert.equal(small.containerMtu, 1270);
    assert.match(small.errors[0]!, /cluster MTU 1270 is below IPv6's minimum of 1280/);
    assert.deepEqual(planDataplane(makeConfig({ cidr: '10.244.0.0/16' }), { ...self, underlayMtu: 1320 }, new Map()).errors, []);
  });

  it('a lease keeps its dual-stack fields; malformed ones are dropped, not the lease', () => {
    const v = { ...lease('h1', '10.0.0.1'), subnet6: 'fd00:244:0:1::/64', linkLocal6: 'fe80::1' };
    assert.deepEqual(parseLease(JSON.stringify(v)), v);
    assert.deepEqual(parseLease(JSON.stringify({ ...v, subnet6: 'nope', linkLocal6: 'fd00::1' })), lease('h1', '10.0.0.1'));
  });
});
