/**
 * Permanent neighbours and bridge FDB entries against the real kernel
 * (src/kernel/netlink/route/neigh.ts). Oracles: `ip -j neigh`, `bridge -j fdb`, and
 * traffic: a wrong permanent MAC black-holes a ping, the right one carries it; a VXLAN
 * overlay with learning off carries a ping only through the FDB entries nsnet wrote.
 */
import '../harness/sandbox.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import { createVeth, createVxlan, getLink } from '../../src/kernel/netlink/route/link.js';
import { addAddress } from '../../src/kernel/netlink/route/addr.js';
import {
  deleteFdb, deleteNeighbour, listFdb, listNeighbours, replaceFdb, replaceNeighbour,
} from '../../src/kernel/netlink/route/neigh.js';
import * as K from '../../src/kernel/netlink/codec/constants.js';
import { type Json, assertPings, bridge, ip, link, ping } from './oracle.js';
import { throwsCode } from './expect.js';

let a: Netns, b: Netns;
let aEth0: number;
let bMac: string;

before(() => {
  a = createNetns('nb-a');
  b = createNetns('nb-b');
  createVeth(a, 'eth0', { name: 'eth0', ns: b, up: true }, { up: true });
  addAddress(a, 'eth0', '10.80.0.1/24');
  addAddress(a, 'eth0', 'fd80::1/64');
  addAddress(b, 'eth0', '10.80.0.2/24');
  addAddress(b, 'eth0', 'fd80::2/64');
  aEth0 = link('eth0', 'nb-a').ifindex;
  bMac = link('eth0', 'nb-b').address;
});
after(() => {
  a.close();
  b.close();
  deleteNetns('nb-a');
  deleteNetns('nb-b');
});

const neigh = (dst: string, ns = 'nb-a'): Json | undefined =>
  (ip(['neigh', 'show', 'dev', 'eth0'], ns) as Json[]).find((n) => n.dst === dst);

describe('neighbours', () => {
  it('a permanent IPv4 entry, replaced in place', () => {
    replaceNeighbour(a, aEth0, '10.80.0.9', '02:00:00:00:09:01');
    let n = neigh('10.80.0.9');
    assert.deepStrictEqual([n.lladdr, n.state], ['02:00:00:00:09:01', ['PERMANENT']]);
    replaceNeighbour(a, aEth0, '10.80.0.9', '02:00:00:00:09:02');
    n = neigh('10.80.0.9');
    assert.deepStrictEqual([n.lladdr, n.state], ['02:00:00:00:09:02', ['PERMANENT']]);
    assert.equal((ip(['neigh', 'show', 'dev', 'eth0'], 'nb-a') as Json[]).filter((x) => x.dst === '10.80.0.9').length, 1);
  });

  it('a permanent IPv6 entry', () => {
    replaceNeighbour(a, aEth0, 'fd80::9', '02:00:00:00:09:06');
    const n = neigh('fd80::9');
    assert.deepStrictEqual([n.lladdr, n.state], ['02:00:00:00:09:06', ['PERMANENT']]);
  });

  it('list: both families, one family, one device', () => {
    const all = listNeighbours(a);
    const v4 = all.find((x) => x.dst === '10.80.0.9')!;
    assert.deepStrictEqual([v4.family, v4.ifindex, v4.mac, v4.state], [4, aEth0, '02:00:00:00:09:02', K.NUD_PERMANENT]);
    assert.ok(all.some((x) => x.dst === 'fd80::9' && x.family === 6));
    assert.ok(listNeighbours(a, { family: 4 }).every((x) => x.family === 4));
    assert.ok(listNeighbours(a, { family: 6 }).some((x) => x.dst === 'fd80::9'));
    assert.ok(listNeighbours(a, { ifindex: aEth0 }).every((x) => x.ifindex === aEth0));
    assert.deepStrictEqual(listNeighbours(a, { ifindex: 4242 }), []);
    assert.ok(all.every((x) => x.family !== 'bridge'));
  });

  it('delete, and delete again is success (false)', () => {
    assert.equal(deleteNeighbour(a, aEth0, '10.80.0.9'), true);
    assert.equal(deleteNeighbour(a, aEth0, 'fd80::9'), true);
    assert.equal(neigh('10.80.0.9'), undefined);
    assert.equal(neigh('fd80::9'), undefined);
    assert.equal(deleteNeighbour(a, aEth0, '10.80.0.9'), false);
    assert.equal(deleteNeighbour(a, aEth0, 'fd80::9'), false);
  });

  it('traffic follows the permanent entry: a wrong MAC loses the ping, the right one carries it', () => {
    replaceNeighbour(a, aEth0, '10.80.0.2', '02:00:00:00:de:ad');
    assert.equal(ping('nb-a', '10.80.0.2', { waitS: 1 }), false);
    assert.equal(neigh('10.80.0.2').state[0], 'PERMANENT', 'a permanent entry is never re-resolved');
    replaceNeighbour(a, aEth0, '10.80.0.2', bMac);
    assertPings('nb-a', '10.80.0.2');
    assert.deepStrictEqual([neigh('10.80.0.2').lladdr, neigh('10.80.0.2').state], [bMac, ['PERMANENT']]);
    replaceNeighbour(a, aEth0, 'fd80::2', bMac);
    assertPings('nb-a', 'fd80::2');
    deleteNeighbour(a, aEth0, '10.80.0.2');
    deleteNeighbour(a, aEth0, 'fd80::2');
  });

  it('bad input is typed and writes nothing', () => {
    throwsCode(() => replaceNeighbour(a, aEth0, '10.80.0.300', '02:00:00:00:00:01'), 'ADDRESS_INVALID');
    throwsCode(() => replaceNeighbour(a, aEth0, '10.80.0.7', '02:00:00:00:00'), 'MAC_INVALID', { object: '02:00:00:00:00' });
    throwsCode(() => replaceNeighbour(a, 4242, '10.80.0.7', '02:00:00:00:00:01'), 'NETLINK_ENODEV');
    assert.equal(neigh('10.80.0.7'), undefined);
  });
});

describe('FDB entries on a VXLAN device', () => {
  // underlay: the veth a/eth0 10.80.0.1 — b/eth0 10.80.0.2; overlay vx0 10.81.0.x, VNI 81, learning off
  let aVx: number, bVx: number;
  before(() => {
    for (const [ns, local, mac] of [[a, '10.80.0.1', '02:00:00:00:81:01'], [b, '10.80.0.2', '02:00:00:00:81:02']] as const) {
      createVxlan(ns, 'vx0', { vni: 81, local, dev: getLink(ns, 'eth0')!.index, learning: false, mac, up: true });
    }
    addAddress(a, 'vx0', '10.81.0.1/24');
    addAddress(b, 'vx0', '10.81.0.2/24');
    aVx = link('vx0', 'nb-a').ifindex;
    bVx = link('vx0', 'nb-b').ifindex;
  });

  const fdb = (ns: string): Json[] => bridge(['fdb', 'show', 'dev', 'vx0'], ns);

  it('with learning off and no entries, the overlay carries nothing', () => {
    assert.equal(ping('nb-a', '10.81.0.2', { waitS: 1 }), false);
  });

  it('a unicast entry: MAC → remote VTEP (dst), self, permanent', () => {
    replaceFdb(a, { mac: '02:00:00:00:81:02', ifindex: aVx, dst: '10.80.0.2' });
    const e = fdb('nb-a').find((x) => x.mac === '02:00:00:00:81:02');
    assert.deepStrictEqual([e.dst, e.flags, e.state], ['10.80.0.2', ['self'], 'permanent']);
    // replace moves it to another VTEP in place
    replaceFdb(a, { mac: '02:00:00:00:81:02', ifindex: aVx, dst: '10.80.0.99' });
    assert.deepStrictEqual(fdb('nb-a').filter((x) => x.mac === '02:00:00:00:81:02').map((x) => x.dst), ['10.80.0.99']);
    replaceFdb(a, { mac: '02:00:00:00:81:02', ifindex: aVx, dst: '10.80.0.2' });
  });

  it('the all-zeros flood entry (one per remote VTEP), idempotent', () => {
    replaceFdb(a, { mac: '00:00:00:00:00:00', ifindex: aVx, dst: '10.80.0.2' });
    replaceFdb(a, { mac: '00:00:00:00:00:00', ifindex: aVx, dst: '10.80.0.2' });
    replaceFdb(a, { mac: '00:00:00:00:00:00', ifindex: aVx, dst: '10.80.0.3' });
    const zeros = fdb('nb-a').filter((x) => x.mac === '00:00:00:00:00:00').map((x) => x.dst).sort();
    assert.deepStrictEqual(zeros, ['10.80.0.2', '10.80.0.3']);
    assert.equal(deleteFdb(a, { mac: '00:00:00:00:00:00', ifindex: aVx, dst: '10.80.0.3' }), true);
    assert.deepStrictEqual(fdb('nb-a').filter((x) => x.mac === '00:00:00:00:00:00').map((x) => x.dst), ['10.80.0.2']);
  });

  it('a VNI on the entry', () => {
    replaceFdb(a, { mac: '02:00:00:00:81:77', ifindex: aVx, dst: '10.80.0.7', vni: 4711 });
    const e = fdb('nb-a').find((x) => x.mac === '02:00:00:00:81:77');
    assert.deepStrictEqual([e.dst, e.vni], ['10.80.0.7', 4711]);
    assert.equal(listFdb(a, aVx).find((x) => x.mac === '02:00:00:00:81:77')!.vni, 4711);
    deleteFdb(a, { mac: '02:00:00:00:81:77', ifindex: aVx, dst: '10.80.0.7' });
  });

  it('list matches bridge fdb show', () => {
    const mine = listFdb(a, aVx).map((x) => `${x.mac} ${x.dst}`).sort();
    const theirs = fdb('nb-a').map((x) => `${x.mac} ${x.dst}`).sort();
    assert.deepStrictEqual(mine, theirs);
    assert.ok(listFdb(a, aVx).every((x) => x.family === 'bridge' && x.ifindex === aVx && (x.flags & K.NTF_SELF) !== 0));
    assert.ok(listFdb(a).length >= mine.length);
  });

  it('the overlay carries a ping through the entries on both sides', () => {
    replaceFdb(b, { mac: '00:00:00:00:00:00', ifindex: bVx, dst: '10.80.0.1' });
    replaceFdb(b, { mac: '02:00:00:00:81:01', ifindex: bVx, dst: '10.80.0.1' });
    // The earlier negative ping left 10.81.0.2 FAILED in nb-a's neighbour cache; until it
    // ages out the kernel answers "unreachable" at once (how soon depends on the machine's
    // load), so start from an empty cache.
    for (const ns of ['nb-a', 'nb-b']) ip(['neigh', 'flush', 'dev', 'vx0'], ns);
    assertPings('nb-a', '10.81.0.2');
    assertPings('nb-b', '10.81.0.1');
  });

  it('delete, and delete again is success (false)', () => {
    assert.equal(deleteFdb(a, { mac: '02:00:00:00:81:02', ifindex: aVx, dst: '10.80.0.2' }), true);
    assert.equal(fdb('nb-a').find((x) => x.mac === '02:00:00:00:81:02'), undefined);
    assert.equal(deleteFdb(a, { mac: '02:00:00:00:81:02', ifindex: aVx, dst: '10.80.0.2' }), false);
    assert.equal(deleteFdb(a, { mac: '02:00:00:00:81:02', ifindex: aVx }), false);
  });

  it('bad input is typed and writes nothing', () => {
    const before = JSON.stringify(fdb('nb-a'));
    throwsCode(() => replaceFdb(a, { mac: 'zz:00:00:00:00:01', ifindex: aVx, dst: '10.80.0.2' }), 'MAC_INVALID');
    throwsCode(() => replaceFdb(a, { mac: '02:00:00:00:00:01', ifindex: aVx, dst: '10.80.0.256' }), 'ADDRESS_INVALID');
    throwsCode(() => replaceFdb(a, { mac: '02:00:00:00:00:01', ifindex: 4242, dst: '10.80.0.2' }), 'NETLINK_ENODEV');
    assert.equal(JSON.stringify(fdb('nb-a')), before);
  });
});
