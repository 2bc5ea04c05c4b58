import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Zone, canonicalIp, ptrAddress, type ZoneEndpoint, type ZoneNetwork } from './zone.js';

test('canonicalIp: RFC 5952 text for IPv6, zone index dropped, non-addresses rejected', () => {
  assert.equal(canonicalIp('10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalIp('FD00:0:0:0:0:0:0:0001'), 'fd00::1');
  assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(canonicalIp('fe80::1%eth0'), 'fe80::1');
  assert.equal(canonicalIp('nope'), undefined);
});

test('ptrAddress: in-addr.arpa and ip6.arpa names, only whole addresses', () => {
  assert.equal(ptrAddress('4.3.2.10.in-addr.arpa'), '10.2.3.4');
  assert.equal(ptrAddress('4.3.2.10.IN-ADDR.ARPA.'), '10.2.3.4');
  assert.equal(ptrAddress('3.2.10.in-addr.arpa'), undefined);
  assert.equal(ptrAddress('256.3.2.10.in-addr.arpa'), undefined);
  assert.equal(ptrAddress('04.3.2.10.in-addr.arpa'), undefined);
  const v6 = `${'2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f'}.ip6.arpa`;
  assert.equal(ptrAddress(v6), 'fd00::2');
  assert.equal(ptrAddress('1.0.ip6.arpa'), undefined);
  assert.equal(ptrAddress('example.com'), undefined);
});

const nets: ZoneNetwork[] = [
  { name: 'front', internal: false, gateways: ['10.1.0.1', 'fd00:1::1'], subnets: ['10.1.0.0/24', 'fd00:1::/64'], upstreams: [] },
  { name: 'back', internal: true, gateways: ['10.2.0.1'], subnets: ['10.2.0.0/24'], upstreams: [] },
];
const eps: ZoneEndpoint[] = [
  { network: 'front', namespace: 'a', addresses: ['10.1.0.2/24', 'fd00:1::2/64'], aliases: ['WWW', 'lb'] },
  { network: 'front', namespace: 'b', addresses: ['10.1.0.3/24'], aliases: ['lb'] },
  { network: 'back', namespace: 'c', addresses: ['10.2.0.2/24'], aliases: [] },
  { network: 'front', namespace: 'd', addresses: ['10.1.0.4/24'], aliases: [] },
  { network: 'back', namespace: 'd', addresses: ['10.2.0.4/24'], aliases: ['dee'] },
  { network: 'gone', namespace: 'x', addresses: ['10.3.0.2/24'], aliases: [] },
];
const zone = new Zone(nets, eps);

test('asker: only endpoints; all networks of its namespace; forwarding unless all internal', () => {
  assert.equal(zone.asker('10.9.9.9'), undefined);
  assert.equal(zone.asker('10.3.0.2'), undefined, 'endpoints of networks without DNS do not count');
  assert.deepEqual(zone.asker('fd00:1:0::2'), { namespace: 'a', network: 'front', networks: ['front'], canForward: true });
  assert.deepEqual(zone.asker('10.2.0.2')?.canForward, false);
  const d = zone.asker('10.2.0.4')!;
  assert.deepEqual([...d.networks].sort(), ['back', 'front']);
  assert.equal(d.canForward, true);
});

test('resolve: names and aliases on shared networks, their addresses on those networks only', () => {
  const a = zone.asker('10.1.0.2')!;
  const c = zone.asker('10.2.0.2')!;
  const d = zone.asker('10.1.0.4')!;
  assert.deepEqual(zone.resolve(a, 'front', 'b'), { v4: ['10.1.0.3'], v6: [] });
  assert.deepEqual(zone.resolve(a, 'front', 'www'), { v4: ['10.1.0.2'], v6: ['fd00:1::2'] });
  assert.deepEqual(zone.resolve(a, 'front', 'lb'), { v4: ['10.1.0.2', '10.1.0.3'], v6: ['fd00:1::2'] }, 'a shared alias: both');
  assert.equal(zone.resolve(a, 'front', 'c'), undefined, 'not on a shared network');
  assert.equal(zone.resolve(c, 'back', 'a'), undefined);
  assert.deepEqual(zone.resolve(c, 'back', 'd'), { v4: ['10.2.0.4'], v6: [] }, 'd seen from back: its back address only');
  assert.deepEqual(zone.resolve(d, 'back', 'd'), { v4: ['10.2.0.4', '10.1.0.4'], v6: [] }, 'the receiving network first');
  assert.deepEqual(zone.resolve(c, 'back', 'dee'), { v4: ['10.2.0.4'], v6: [] });
  assert.equal(zone.resolve(a, 'front', 'dee'), undefined, 'an alias belongs to its endpoint\'s network');
  assert.equal(zone.nameCount, 9, 'one per name per endpoint');
});

test('reverse: visible owner, hidden nsnet address (null), foreign address (undefined)', () => {
  const a = zone.asker('10.1.0.2')!;
  const c = zone.asker('10.2.0.2')!;
  assert.equal(zone.reverse(a, '10.1.0.3'), 'b');
  assert.equal(zone.reverse(a, 'fd00:1::2'), 'a');
  assert.equal(zone.reverse(c, '10.1.0.3'), null);
  assert.equal(zone.reverse(a, '10.1.0.200'), null);
  assert.equal(zone.reverse(a, '192.0.2.1'), undefined);
  assert.equal(zone.reverse(a, '2001:db8::1'), undefined);
});

test('gateways: every DNS network\'s, canonical', () => {
  assert.deepEqual(zone.gateways(), [
    { address: '10.1.0.1', network: 'front' }, { address: 'fd00:1::1', network: 'front' }, { address: '10.2.0.1', network: 'back' },
  ]);
});
