import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNsnetError } from '../errors.js';
import { makeConfig, parseConfig, parseLease, subnetKey, subnetOfKey, type SubnetLease } from './keys.js';
import { clusterSubnets, containerMtu, fitsConfig, pickFreeSubnet, planDataplane, tunnelMtu } from './plan.js';

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
