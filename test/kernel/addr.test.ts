/**
 * Addresses against the real kernel (src/kernel/netlink/route/addr.ts): IPv4 and IPv6 add
 * (idempotent), delete (idempotent), list; IPv6 usable at once (no DAD wait). Oracles:
 * `ip -j addr`, `ip -j route`, `ping`.
 */
import '../harness/sandbox.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import { createVeth, deleteLink } from '../../src/kernel/netlink/route/link.js';
import { addAddress, deleteAddress, listAddresses } from '../../src/kernel/netlink/route/addr.js';
import { addrInfo, addrs, assertPings, link, routes } from './oracle.js';
import { throwsCode } from './expect.js';

const host = Netns.host();

describe('addresses', () => {
  let a: Netns, b: Netns;
  before(() => {
    a = createNetns('ad-a');
    b = createNetns('ad-b');
    createVeth(a, 'eth0', { name: 'eth0', ns: b, up: true }, { up: true });
  });
  after(() => { a.close(); b.close(); deleteNetns('ad-a'); deleteNetns('ad-b'); });

  it('IPv4: add with the broadcast `ip addr add … brd +` computes, and a connected route', () => {
    addAddress(a, 'eth0', '10.40.0.1/24');
    const info = addrInfo('eth0', '10.40.0.1', 'ad-a');
    assert.deepStrictEqual([info.family, info.prefixlen, info.broadcast, info.scope, info.label], ['inet', 24, '10.40.0.255', 'global', 'eth0']);
    assert.ok(routes({ ns: 'ad-a' }).some((r) => r.dst === '10.40.0.0/24' && r.dev === 'eth0' && r.protocol === 'kernel'));
  });

  it('IPv4: /31 and /32 get no broadcast', () => {
    addAddress(a, 'eth0', '10.41.0.0/31');
    addAddress(a, 'eth0', '10.42.0.7/32');
    assert.equal(addrInfo('eth0', '10.41.0.0', 'ad-a').broadcast, undefined);
    assert.equal(addrInfo('eth0', '10.42.0.7', 'ad-a').prefixlen, 32);
    deleteAddress(a, 'eth0', '10.41.0.0/31');
    deleteAddress(a, 'eth0', '10.42.0.7/32');
  });

  it('add is idempotent: the same address again is success, and stays single', () => {
    addAddress(a, 'eth0', '10.40.0.1/24');
    addAddress(a, link('eth0', 'ad-a').ifindex, '10.40.0.1/24');
    assert.deepStrictEqual(addrs('eth0', 'ad-a'), ['10.40.0.1/24']);
  });

  it('IPv6 is usable at once: not tentative, and a ping6 answers right away', () => {
    addAddress(a, 'eth0', 'fd40::1/64');
    addAddress(b, 'eth0', 'fd40::2/64');
    for (const [ns, ip] of [['ad-a', 'fd40::1'], ['ad-b', 'fd40::2']] as const) {
      const info = addrInfo('eth0', ip, ns);
      assert.equal(info.family, 'inet6');
      assert.equal(info.tentative, undefined, `${ip} must not wait for DAD`);
      assert.equal(info.dadfailed, undefined);
    }
    assertPings('ad-a', 'fd40::2');
    assert.ok(listAddresses(a, { family: 6 }).find((x) => x.address === 'fd40::1')!.tentative === false);
  });

  it('IPv4 across the pair', () => {
    addAddress(b, 'eth0', '10.40.0.2/24');
    assertPings('ad-a', '10.40.0.2');
    assertPings('ad-b', '10.40.0.1');
  });

  it('noPrefixRoute: the address without its connected route', () => {
    addAddress(a, 'eth0', '10.43.0.1/24', { noPrefixRoute: true });
    assert.ok(addrs('eth0', 'ad-a').includes('10.43.0.1/24'));
    assert.ok(!routes({ ns: 'ad-a' }).some((r) => r.dst === '10.43.0.0/24'));
    assert.ok(addrInfo('eth0', '10.43.0.1', 'ad-a').noprefixroute);
    deleteAddress(a, 'eth0', '10.43.0.1/24');
  });

  it('list: all, by family, by device (name or index), matching ip', () => {
    const all = listAddresses(a);
    const oracle = addrs('eth0', 'ad-a', { linkLocal: true }).concat(addrs('lo', 'ad-a'));
    const mine = all.map((x) => `${x.address}/${x.prefixlen}`);
    assert.deepStrictEqual([...mine].sort(), [...oracle].sort());
    assert.ok(listAddresses(a, { family: 4 }).every((x) => x.family === 4));
    assert.ok(listAddresses(a, { family: 6 }).every((x) => x.family === 6));
    const eth0 = link('eth0', 'ad-a').ifindex;
    const onEth0 = listAddresses(a, { dev: 'eth0' });
    assert.ok(onEth0.length >= 3 && onEth0.every((x) => x.index === eth0));
    assert.deepStrictEqual(listAddresses(a, { dev: eth0 }), onEth0);
    const lo = listAddresses(a, { dev: 'lo' }).map((x) => `${x.address}/${x.prefixlen}`).sort();
    assert.deepStrictEqual(lo, ['127.0.0.1/8', '::1/128']);
    const v4 = listAddresses(a, { family: 4, dev: 'eth0' })[0]!;
    assert.deepStrictEqual([v4.address, v4.prefixlen, v4.label, v4.family], ['10.40.0.1', 24, 'eth0', 4]);
  });

  it('delete, IPv4 and IPv6; deleting again is success (false), also when the link is gone', () => {
    assert.equal(deleteAddress(a, 'eth0', 'fd40::1/64'), true);
    assert.equal(deleteAddress(a, 'eth0', '10.40.0.1/24'), true);
    assert.deepStrictEqual(addrs('eth0', 'ad-a'), []);
    assert.equal(deleteAddress(a, 'eth0', '10.40.0.1/24'), false);
    assert.equal(deleteAddress(a, 'eth0', 'fd40::1/64'), false);
    assert.equal(deleteAddress(a, 'gone0', '10.40.0.1/24'), false);
    assert.equal(deleteAddress(a, 4242, '10.40.0.1/24'), false);
  });

  it('invalid addresses are typed errors and add nothing', () => {
    const before = addrs('eth0', 'ad-a', { linkLocal: true });
    throwsCode(() => addAddress(a, 'eth0', '10.0.0.300/24'), 'ADDRESS_INVALID', { object: '10.0.0.300' });
    throwsCode(() => addAddress(a, 'eth0', '10.0.0.1/33'), 'CIDR_INVALID', { object: '10.0.0.1/33' });
    throwsCode(() => addAddress(a, 'eth0', 'zz::1/64'), 'ADDRESS_INVALID', { object: 'zz::1' });
    throwsCode(() => addAddress(a, 'eth0', 'fd00::1/129'), 'CIDR_INVALID');
    throwsCode(() => addAddress(a, 'eth0', '10.0.0.1/'), 'CIDR_INVALID');
    throwsCode(() => addAddress(a, 'eth0', '10.0.0.1/-1'), 'CIDR_INVALID');
    throwsCode(() => addAddress(a, 'eth0', '10.0.0.1/24/1'), 'CIDR_INVALID');
    throwsCode(() => addAddress(a, 'eth0', '10.0.0.1/2x'), 'CIDR_INVALID');
    throwsCode(() => addAddress(a, 'eth0', ''), 'ADDRESS_INVALID');
    throwsCode(() => addAddress(a, 'missing0', '10.0.0.1/24'), 'LINK_NOT_FOUND', { object: 'missing0' });
    assert.deepStrictEqual(addrs('eth0', 'ad-a', { linkLocal: true }), before);
  });

  it('an address without a prefix length is a host address', () => {
    addAddress(a, 'eth0', '10.44.0.1');
    addAddress(a, 'eth0', 'fd44::1');
    assert.equal(addrInfo('eth0', '10.44.0.1', 'ad-a').prefixlen, 32);
    assert.equal(addrInfo('eth0', 'fd44::1', 'ad-a').prefixlen, 128);
    deleteAddress(a, 'eth0', '10.44.0.1');
    deleteAddress(a, 'eth0', 'fd44::1');
    assert.deepStrictEqual(addrs('eth0', 'ad-a'), []);
  });

  it('works in the sandbox’s own namespace too', () => {
    createVeth(host, 'ad-h0', { name: 'ad-h1' });
    addAddress(host, 'ad-h0', '10.45.0.1/24');
    assert.deepStrictEqual(addrs('ad-h0'), ['10.45.0.1/24']);
    deleteLink(host, 'ad-h0');
  });
});
