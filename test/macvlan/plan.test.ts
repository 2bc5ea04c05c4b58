/**
 * macvlan/ipvlan without a kernel: topology keys (parsed, canonical, refused with file:line),
 * the planner (a changed driver, parent or mode is a replace; an unchanged file is no change),
 * and the IPAM limits (--ip-range, --aux-address, shim addresses).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNsnetError } from '../../src/errors.js';
import { parseTopology } from '../../src/engine/topology.js';
import { planTopology, describePlan } from '../../src/engine/planner.js';
import type { CurrentState, NetworkRecord, Topology } from '../../src/engine/types.js';
import { AddressSet, allocateAddress } from '../../src/ipam/allocator.js';
import { IpAddress } from '../../src/ipam/address.js';
import { Cidr } from '../../src/ipam/cidr.js';
import { ipamLimits, validateIpamOptions } from '../../src/ipam/limits.js';

const SOURCE = '/srv/lan.yaml';
const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`;
const parse = (text: string): Topology => parseTopology(text, 'lan.yaml');

function bad(text: string, message: RegExp): void {
  assert.throws(() => parse(text), (e: unknown) => {
    assert.ok(isNsnetError(e, 'TOPOLOGY_INVALID'), `expected TOPOLOGY_INVALID, got ${String(e)}`);
    assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

const LAN = [
  'networks:',
  '  lan:',
  '    driver: macvlan',
  '    parent: eth0',
  '    subnet: 192.168.1.0/24',
  '    gateway: 192.168.1.1',
];

describe('topology: macvlan and ipvlan keys', () => {
  it('parses driver, parent, mode, ip ranges, aux addresses and shim, canonically', () => {
    const t = parse(yaml(...LAN, '    mode: bridge', '    ipRange: 192.168.1.192/27', '    auxAddresses: { printer: 192.168.1.200 }',
      '    shim: 192.168.1.223', 'namespaces:', '  a: { networks: [lan] }'));
    assert.deepEqual(t.networks[0], {
      name: 'lan', driver: 'macvlan', subnets: ['192.168.1.0/24'], gateways: ['192.168.1.1'], parent: 'eth0', mode: 'bridge',
      ipRanges: ['192.168.1.192/27'], auxAddresses: { printer: '192.168.1.200' }, shim: ['192.168.1.223'],
    });
    const i = parse(yaml('networks:', '  l3:', '    driver: ipvlan', '    parent: eth0', '    mode: l3', '    subnets: [10.20.0.0/24]'));
    assert.equal(i.networks[0]!.driver, 'ipvlan');
    assert.equal(i.networks[0]!.mode, 'l3');
  });

  it('refuses what the engine would refuse, at the right line', () => {
    bad(yaml('networks:', '  lan:', '    driver: macvlan', '    subnet: 192.168.1.0/24'), /^lan\.yaml:3:5: networks\.lan: a macvlan network needs `parent:`/);
    bad(yaml('networks:', '  lan:', '    driver: macvlan', '    parent: eth0'), /networks\.lan: a macvlan network needs `subnet:`/);
    bad(yaml(...LAN, '    mode: l3'), /^lan\.yaml:7:11: networks\.lan\.mode: unknown macvlan mode "l3" \(expected: bridge, private, vepa, passthru\)/);
    bad(yaml(...LAN, '    shim: 192.168.1.223', '    mode: private'), /networks\.lan\.shim: a shim needs mode bridge/);
    bad(yaml(...LAN, '    ipRange: 10.0.0.0/27'), /ip range 10\.0\.0\.0\/27 of network lan is not inside any of its subnets/);
    bad(yaml(...LAN, '    auxAddresses: { r: 192.168.1.1 }'), /aux address r 192\.168\.1\.1 is the gateway of network lan/);
    bad(yaml(...LAN, '    bridge: br0'), /networks\.lan\.bridge: a macvlan network has no bridge/);
    bad(yaml('networks:', '  b:', '    parent: eth0'), /networks\.b\.parent: parent applies to macvlan\/ipvlan networks/);
    bad(yaml(...LAN, 'namespaces:', '  a:', '    networks: [lan]', '    publish: ["80:80"]'), /namespace a has no non-internal network to publish ports on/);
    bad(yaml(...LAN, 'namespaces:', '  a:', '    networks: [lan]', '    publish: [{ spec: "80:80", network: lan }]'), /network lan is macvlan: no NAT, no published ports/);
    bad(yaml(...LAN, 'namespaces:', '  a: { networks: [lan] }', 'policies:', '  - { action: deny, from: lan, to: outside }'),
      /policies\[0\]\.from: network:lan cannot be enforced/);
    bad(yaml(...LAN, 'namespaces:', '  a: { networks: [lan] }', 'policies:', '  - { action: deny, from: outside, to: a }'),
      /policies\[0\]\.to: ns:a cannot be enforced: it is on macvlan network lan/);
  });
});

/** A record as the engine stores it for a spec. */
function record(t: Topology, name: string): NetworkRecord {
  const spec = t.networks.find((n) => n.name === name)!;
  return {
    name, driver: spec.driver ?? 'bridge', bridge: `nsm-${name}`, subnets: (spec.subnets ?? []).map((c) => ({ cidr: c, gateway: spec.gateways?.[0] ?? '' })),
    internal: false, masquerade: false, mtu: null, source: SOURCE, declared: spec, createdAt: '2024-01-01T00:00:00.000Z',
  };
}

describe('planner: a changed driver, parent or mode replaces the network', () => {
  const before = parseTopology(yaml(...LAN), SOURCE);
  const current: CurrentState = { networks: [record(before, 'lan')], namespaces: [], endpoints: [], ports: [], policies: [] };
  it('the same file is no change', () => {
    assert.deepEqual(planTopology(parseTopology(yaml(...LAN, '    mode: bridge'), SOURCE), current), []);
  });
  for (const [what, line, diff] of [
    ['parent', '    parent: eth1', /parent eth0 → eth1/],
    ['mode', '    mode: private', /mode bridge → private/],
    ['shim', '    shim: 192.168.1.223', /shim none → 192\.168\.1\.223/],
  ] as const) {
    it(`${what}`, () => {
      const lines = LAN.filter((l) => !(what === 'parent' && l.includes('parent:')));
      const after = parseTopology(yaml(...lines, line), SOURCE);
      const changes = planTopology(after, current);
      assert.deepEqual(changes.map((c) => c.kind), ['remove-network', 'create-network']);
      assert.match(describePlan(changes, current).join('\n'), diff);
    });
  }
  it('driver macvlan → bridge', () => {
    const after = parseTopology(yaml('networks:', '  lan:', '    subnet: 192.168.1.0/24'), SOURCE);
    assert.match(describePlan(planTopology(after, current), current).join('\n'), /driver macvlan → bridge/);
  });
});

describe('IPAM: ip ranges, aux addresses, shim addresses', () => {
  const subnet = Cidr.parse('192.168.1.0/24');
  const gateway = IpAddress.parse('192.168.1.1');
  it('dynamic addresses come only from the range; static ones may be anywhere in the subnet', () => {
    const range = Cidr.parse('192.168.1.192/30');
    const inUse = new AddressSet();
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const a = allocateAddress({ subnet, gateway, inUse, range });
      inUse.add(a);
      got.push(a.toString());
    }
    assert.deepEqual(got, ['192.168.1.192', '192.168.1.193', '192.168.1.194', '192.168.1.195']);
    assert.throws(() => allocateAddress({ subnet, gateway, inUse, range }), /no free address left in 192\.168\.1\.192\/30 \(the ip range of 192\.168\.1\.0\/24\)/);
    assert.equal(allocateAddress({ subnet, gateway, inUse, range, requested: IpAddress.parse('192.168.1.10') }).toString(), '192.168.1.10');
  });
  it('aux and shim addresses are reserved, with the reason', () => {
    const l = ipamLimits({ name: 'lan', auxAddresses: { printer: '192.168.1.2' }, shim: ['192.168.1.3'] });
    assert.equal(l.reserved.get('192.168.1.2'), 'aux address printer');
    assert.equal(l.reserved.get('192.168.1.3'), "the host's shim address");
    const inUse = new AddressSet([...l.reserved.keys()].map((a) => IpAddress.parse(a)));
    assert.equal(allocateAddress({ subnet, gateway, inUse }).toString(), '192.168.1.4');
  });
  it('validation: inside the subnets, one range per subnet, no gateway, no duplicates', () => {
    const subnets = [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }];
    assert.doesNotThrow(() => validateIpamOptions({ name: 'lan', ipRanges: ['192.168.1.128/25'], auxAddresses: { a: '192.168.1.5' }, shim: ['192.168.1.6'] }, subnets));
    assert.throws(() => validateIpamOptions({ name: 'lan', ipRanges: ['192.168.1.0/25', '192.168.1.128/25'] }, subnets), /two ip ranges in subnet/);
    assert.throws(() => validateIpamOptions({ name: 'lan', auxAddresses: { a: '10.0.0.5' } }, subnets), /aux address a 10\.0\.0\.5 is outside/);
    assert.throws(() => validateIpamOptions({ name: 'lan', auxAddresses: { a: '192.168.1.5' }, shim: ['192.168.1.5'] }, subnets), /shim address 192\.168\.1\.5 of network lan is also aux address a/);
    assert.throws(() => validateIpamOptions({ name: 'lan', shim: ['192.168.1.255'] }, subnets), /not a usable address/);
  });
});
