/**
 * Bad input against the real kernel: each case gives a typed error with a stable code (and
 * the object, errno, extended-ack text where there is one) and leaves nothing behind — no
 * half-made link, namespace or address, checked with `ip` as the oracle.
 */
import '../harness/sandbox.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { NsnetError } from '../../src/errors.js';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import * as L from '../../src/kernel/netlink/route/link.js';
import { addAddress } from '../../src/kernel/netlink/route/addr.js';
import { spawnSyncInNetns } from '../../src/kernel/netns/exec.js';
import { addrs, link, worldSnapshot } from './oracle.js';
import { throwsCode } from './expect.js';

const host = Netns.host();
let ns: Netns;
let world: Record<string, string>;

before(() => {
  ns = createNetns('er-a');
  L.createVeth(host, 'er0', { name: 'er1', ns }, { up: true });
  L.ensureBridge(host, 'erbr');
});
after(() => {
  L.deleteLink(host, 'er0');
  L.deleteLink(host, 'erbr');
  ns.close();
  deleteNetns('er-a');
});

/** Asserts that `fn` fails with `code` and that no link, namespace or address changed. */
function refusedCleanly(fn: () => unknown, code: Parameters<typeof throwsCode>[1], x: Parameters<typeof throwsCode>[2] = {}): NsnetError {
  world = worldSnapshot();
  const addrsBefore = addrs('er0', undefined, { linkLocal: true });
  const e = throwsCode(fn, code, x);
  assert.deepStrictEqual(worldSnapshot(), world, 'nothing left behind');
  assert.deepStrictEqual(addrs('er0', undefined, { linkLocal: true }), addrsBefore);
  return e;
}

describe('interface names', () => {
  const bad: Array<[string, string]> = [
    ['16 bytes', 'abcdefghijklmnop'],
    ['15 characters but 18 bytes', 'ééééééééé'],
    ['a slash', 'veth/0'],
    ['a space', 'veth 0'],
    ['a colon', 'veth0:1'],
    ['a tab', 'veth\t0'],
    ['empty', ''],
    ['"."', '.'],
    ['".."', '..'],
  ];
  for (const [what, name] of bad) {
    it(`${what}: IFNAME_INVALID from every operation that takes a name`, () => {
      const x = { object: name };
      refusedCleanly(() => L.createVeth(host, name, { name: 'okpeer0' }), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.createVeth(host, 'okname0', { name, ns }), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.ensureBridge(host, name), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.createVxlan(host, name, { vni: 5 }), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.createMacvlan(host, name, link('er0').ifindex, 'bridge'), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.renameLink(host, 'er0', name), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.moveLink(host, 'er0', ns, name), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.getLink(host, name), 'IFNAME_INVALID', x);
      refusedCleanly(() => L.deleteLink(host, name), 'IFNAME_INVALID', x);
      assert.ok(link('er0'), 'the link asked to be renamed or moved is where it was');
    });
  }

  it('15 bytes is fine', () => {
    L.createVeth(host, 'abcdefghijklmno', { name: 'é12345678901' });
    assert.ok(link('abcdefghijklmno'));
    assert.ok(link('é12345678901'));
    L.deleteLink(host, 'abcdefghijklmno');
  });
});

describe('namespaces', () => {
  it('a namespace that does not exist: NS_NOT_FOUND', () => {
    refusedCleanly(() => Netns.open('er-ghost'), 'NS_NOT_FOUND', { object: 'er-ghost' });
    refusedCleanly(() => Netns.openPath('/run/netns/er-ghost'), 'NS_NOT_FOUND');
    refusedCleanly(() => spawnSyncInNetns('er-ghost', ['true']), 'NS_NOT_FOUND', { object: 'er-ghost' });
  });

  it('a peer namespace gone before it was opened: NS_NOT_FOUND, no veth made', () => {
    createNetns('er-gone').close();
    deleteNetns('er-gone');
    refusedCleanly(() => L.createVeth(host, 'gone0', { name: 'eth0', ns: Netns.open('er-gone') }), 'NS_NOT_FOUND', { object: 'er-gone' });
    assert.equal(link('gone0'), undefined);
  });

  it('a peer namespace that vanished with its process: NS_NOT_FOUND', () => {
    const child = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
    const pid = Number(child.stdout.trim());
    refusedCleanly(() => L.createVeth(host, 'gone1', { name: 'eth0', ns: Netns.openPid(pid) }), 'NS_NOT_FOUND', { object: `pid ${pid}` });
  });

  it('a peer namespace whose handle was closed half-way: refused before anything is sent', () => {
    const gone = createNetns('er-closed');
    gone.close();
    world = worldSnapshot();
    assert.throws(() => L.createVeth(host, 'gone2', { name: 'eth0', ns: gone }), /used after close/);
    assert.deepStrictEqual(worldSnapshot(), world);
    deleteNetns('er-closed');
  });

  it('an existing namespace name: NS_EXISTS', () => {
    refusedCleanly(() => createNetns('er-a'), 'NS_EXISTS', { object: 'er-a' });
  });
});

describe('links that already exist', () => {
  it('veth: NETLINK_EEXIST naming the link and where it is', () => {
    const e = refusedCleanly(() => L.createVeth(host, 'er0', { name: 'fresh0' }), 'NETLINK_EEXIST', { object: 'er0', errno: 17, message: /link er0 already exists in host/ });
    assert.ok(e instanceof NsnetError);
  });

  it('veth whose peer name is taken in the peer namespace: NETLINK_EEXIST naming the peer', () => {
    refusedCleanly(() => L.createVeth(host, 'fresh1', { name: 'er1', ns }), 'NETLINK_EEXIST', { object: 'er1', errno: 17, message: /link er1 already exists in er-a/ });
  });

  it('bridge over a veth, vxlan and macvlan over any link', () => {
    refusedCleanly(() => L.ensureBridge(host, 'er0'), 'NETLINK_EEXIST', { object: 'er0' });
    refusedCleanly(() => L.createVxlan(host, 'erbr', { vni: 9 }), 'NETLINK_EEXIST', { object: 'erbr', message: /erbr already exists/ });
    refusedCleanly(() => L.createMacvlan(host, 'erbr', link('er0').ifindex, 'bridge'), 'NETLINK_EEXIST', { object: 'erbr' });
  });

  it('rename onto a taken name, move into a namespace where the name is taken', () => {
    L.createVeth(host, 'er5', { name: 'er6' });
    refusedCleanly(() => L.renameLink(host, 'er5', 'er6'), 'NETLINK_EEXIST', { errno: 17 });
    // the kernel would move the link and then fail the rename, leaving it moved: refused up front
    refusedCleanly(() => L.moveLink(host, 'er5', ns, 'er1'), 'NETLINK_EEXIST', { errno: 17, object: 'er1', message: /er1 already exists in er-a/ });
    // its own name taken in the target, no rename asked
    L.createVeth(ns, 'er5', { name: 'er7' });
    refusedCleanly(() => L.moveLink(host, 'er5', ns), 'NETLINK_EEXIST', { errno: 17 });
    L.deleteLink(ns, 'er5');
    assert.ok(link('er5'));
    L.deleteLink(host, 'er5');
  });
});

describe('links that do not exist', () => {
  it('LINK_NOT_FOUND naming the link, for each operation on it', () => {
    const x = { object: 'er-nope' };
    refusedCleanly(() => L.setLinkUp(host, 'er-nope'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setLinkDown(host, 'er-nope'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setLinkMtu(host, 'er-nope', 1400), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setLinkMac(host, 'er-nope', '02:00:00:00:00:01'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setLinkMaster(host, 'er-nope', 'erbr'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setLinkMaster(host, 'er0', 'er-nope'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.renameLink(host, 'er-nope', 'er-new'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.moveLink(host, 'er-nope', ns), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setBridgePort(host, 'er-nope', { hairpin: true }), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => addAddress(host, 'er-nope', '10.0.0.1/24'), 'LINK_NOT_FOUND', x);
    refusedCleanly(() => L.setLinkUp(host, 424242), 'NETLINK_ENODEV', { errno: 19 });
    refusedCleanly(() => L.createMacvlan(host, 'ermv', 424242, 'bridge'), 'NETLINK_ENODEV', { object: 'ermv' });
  });
});

describe('addresses and MACs', () => {
  it('invalid addresses', () => {
    refusedCleanly(() => addAddress(host, 'er0', '10.0.0.300/24'), 'ADDRESS_INVALID', { object: '10.0.0.300' });
    refusedCleanly(() => addAddress(host, 'er0', '10.0.0.1/33'), 'CIDR_INVALID', { object: '10.0.0.1/33' });
    refusedCleanly(() => addAddress(host, 'er0', 'zz::1/64'), 'ADDRESS_INVALID', { object: 'zz::1' });
  });

  it('invalid MACs, at creation (either end) and when set', () => {
    for (const mac of ['02:00:00:00:00', '02:00:00:00:00:0g', '02-00-00-00-00-01', 'banana']) {
      refusedCleanly(() => L.createVeth(host, 'ermac0', { name: 'ermac1' }, { mac }), 'MAC_INVALID', { object: mac });
      refusedCleanly(() => L.createVeth(host, 'ermac0', { name: 'ermac1', mac, ns }), 'MAC_INVALID', { object: mac });
      refusedCleanly(() => L.setLinkMac(host, 'er0', mac), 'MAC_INVALID', { object: mac });
    }
  });

  it('a multicast MAC is the kernel’s to refuse: EADDRNOTAVAIL, link unchanged', () => {
    const before = link('er0').address;
    refusedCleanly(() => L.setLinkMac(host, 'er0', '01:00:5e:00:00:01'), 'NETLINK_ERROR', { errno: 99, object: 'er0' });
    assert.equal(link('er0').address, before);
  });
});

describe('the kernel’s extended ACK', () => {
  it('an MTU below the minimum: NETLINK_EINVAL with the kernel’s text', () => {
    const e = refusedCleanly(() => L.setLinkMtu(host, 'er0', 10), 'NETLINK_EINVAL', { errno: 22, object: 'er0', extack: /^mtu less than device minimum$/ });
    assert.match(e.message, /set mtu 10 on er0 in host: Invalid argument \(mtu less than device minimum\)/);
    assert.equal(link('er0').mtu, 1500);
  });

  it('an MTU above the maximum', () => {
    refusedCleanly(() => L.setLinkMtu(host, 'er0', 70000), 'NETLINK_EINVAL', { extack: /mtu greater than device maximum/ });
  });

  it('an invalid MTU at creation (no extack from veth here): nothing is created', () => {
    refusedCleanly(() => L.createVeth(host, 'ermtu0', { name: 'ermtu1', ns }, { mtu: 10 }), 'NETLINK_EINVAL', { errno: 22, object: 'ermtu0' });
    assert.equal(link('ermtu0'), undefined);
    assert.equal(link('ermtu1', 'er-a'), undefined);
  });

  it('a vxlan over an underlay device that does not exist: the kernel says which', () => {
    refusedCleanly(() => L.createVxlan(host, 'ervx', { vni: 5, dev: 424242 }), 'NETLINK_ENODEV', { object: 'ervx', extack: /device not found/i });
  });

  it('a bridge enslaved to itself', () => {
    refusedCleanly(() => L.setLinkMaster(host, 'erbr', 'erbr'), 'NETLINK_ERROR', { extack: /./ });
  });
});
