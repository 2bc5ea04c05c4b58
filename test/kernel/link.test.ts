/**
 * Links against the real kernel (src/kernel/netlink/route/link.ts): veth (peer born in
 * another namespace), bridge, vxlan, macvlan, ipvlan, up/down, MTU, MAC, master, bridge-port
 * flags, move, rename, delete, get, list. Every effect is checked with `ip -d -j link` or
 * `bridge -j` — never with nsnet's own reading alone.
 */
import '../harness/sandbox.js';
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import * as L from '../../src/kernel/netlink/route/link.js';
import { addAddress } from '../../src/kernel/netlink/route/addr.js';
import { isNsnetError } from '../../src/errors.js';
import { bridge, eventually, ip, link, linkNames } from './oracle.js';
import { throwsCode } from './expect.js';

const host = Netns.host();
const idx = (name: string, ns?: string): number => link(name, ns)!.ifindex;

describe('veth', () => {
  let ns: Netns;
  before(() => { ns = createNetns('lk-veth'); });
  after(() => { ns.close(); deleteNetns('lk-veth'); });

  it('creates a pair with the peer born directly in another namespace, both configured', () => {
    const made = L.createVeth(host, 've-a', { name: 'eth0', ns, up: true, mtu: 1400, mac: '02:00:00:00:01:02' }, { up: true, mtu: 1400, mac: '02:00:00:00:01:01' });
    const a = link('ve-a');
    assert.equal(a.linkinfo.info_kind, 'veth');
    assert.deepStrictEqual([a.mtu, a.address], [1400, '02:00:00:00:01:01']);
    assert.ok(a.flags.includes('UP'));
    assert.equal(typeof a.link_netnsid, 'number', 'the peer lives in another namespace');
    const b = link('eth0', 'lk-veth');
    assert.equal(b.linkinfo.info_kind, 'veth');
    assert.deepStrictEqual([b.mtu, b.address], [1400, '02:00:00:00:01:02']);
    assert.ok(b.flags.includes('UP'));
    assert.ok(link('ve-a').flags.includes('LOWER_UP'), 'both ends up: carrier');
    assert.equal(link('eth0'), undefined, 'the peer never appears in the creating namespace');
    // nsnet's own view agrees
    const got = L.getLink(host, 've-a')!;
    assert.deepStrictEqual(made, { index: a.ifindex, peerIndex: b.ifindex }, 'createVeth returns both ends’ ifindexes (from the echo)');
    assert.equal(got.link, b.ifindex);
    assert.equal(got.linkNetnsId, a.link_netnsid);
    assert.equal(got.kind, 'veth');
  });

  it('deleting one end deletes the peer in the other namespace', () => {
    assert.equal(L.deleteLink(host, 've-a'), true);
    assert.equal(link('ve-a'), undefined);
    assert.equal(link('eth0', 'lk-veth'), undefined);
    assert.deepStrictEqual(linkNames('lk-veth'), ['lo']);
  });

  it('creates a pair inside one namespace, down by default', () => {
    L.createVeth(host, 'vs-a', { name: 'vs-b' });
    const a = link('vs-a'), b = link('vs-b');
    assert.equal(a.link, 'vs-b'); // same namespace: ip names the peer
    assert.equal(b.link, 'vs-a');
    assert.equal(a.link_netnsid, undefined);
    assert.ok(!a.flags.includes('UP') && !b.flags.includes('UP'));
    L.deleteLink(host, 'vs-b');
    assert.equal(link('vs-a'), undefined);
  });

  it('creates a pair in a namespace other than the caller’s, peer back in the sandbox', () => {
    L.createVeth(ns, 'inner', { name: 'outer', ns: host, up: true });
    assert.ok(link('inner', 'lk-veth'));
    assert.ok(link('outer').flags.includes('UP'));
    L.deleteLink(ns, 'inner');
    assert.equal(link('outer'), undefined);
  });

  it('can enslave the new end to a bridge at creation (master)', () => {
    const br = L.ensureBridge(host, 'br-vm');
    L.createVeth(host, 'vm-a', { name: 'vm-b' }, { master: br.index });
    assert.equal(link('vm-a').master, 'br-vm');
    assert.equal(link('vm-b').master, undefined);
    L.deleteLink(host, 'vm-a');
    L.deleteLink(host, 'br-vm');
  });
});

describe('bridge', () => {
  after(() => { for (const n of ['br-t', 'br-stp', 'br-port-a', 'br-notbr', 'br-notbr2']) L.deleteLink(host, n); });

  it('ensureBridge creates a bridge, and is idempotent', () => {
    const b1 = L.ensureBridge(host, 'br-t', { up: true, mtu: 1450 });
    const o = link('br-t');
    assert.equal(o.linkinfo.info_kind, 'bridge');
    assert.equal(o.linkinfo.info_data.stp_state, 0);
    assert.equal(o.mtu, 1450);
    assert.ok(o.flags.includes('UP'));
    assert.deepStrictEqual([b1.index, b1.kind, b1.name], [o.ifindex, 'bridge', 'br-t']);
    const b2 = L.ensureBridge(host, 'br-t');
    assert.equal(b2.index, b1.index);
    assert.equal(linkNames().filter((n) => n === 'br-t').length, 1);
  });

  it('ensureBridge with stp', () => {
    L.ensureBridge(host, 'br-stp', { stp: true });
    assert.equal(link('br-stp').linkinfo.info_data.stp_state, 1);
  });

  it('ensureBridge refuses a link of that name that is not a bridge, and leaves it alone', () => {
    L.createVeth(host, 'br-notbr', { name: 'br-notbr2' });
    const before = link('br-notbr');
    throwsCode(() => L.ensureBridge(host, 'br-notbr'), 'NETLINK_EEXIST', { object: 'br-notbr', message: /is a veth, not a bridge/ });
    const afterwards = link('br-notbr');
    assert.deepStrictEqual([afterwards.ifindex, afterwards.linkinfo.info_kind], [before.ifindex, 'veth']);
  });

  it('master / nomaster', () => {
    L.createVeth(host, 'br-port-a', { name: 'br-port-b' });
    L.setLinkMaster(host, 'br-port-a', 'br-t');
    assert.equal(link('br-port-a').master, 'br-t');
    assert.equal(link('br-port-a').linkinfo.info_slave_kind, 'bridge');
    const l = L.getLink(host, 'br-port-a')!;
    assert.deepStrictEqual([l.master, l.slaveKind], [idx('br-t'), 'bridge']);
    assert.ok(bridge(['link', 'show']).some((p: { ifname: string; master: string }) => p.ifname === 'br-port-a' && p.master === 'br-t'));
    L.setLinkMaster(host, 'br-port-a', null);
    assert.equal(link('br-port-a').master, undefined);
    assert.equal(L.getLink(host, 'br-port-a')!.master, undefined);
    // by index, both sides
    L.setLinkMaster(host, idx('br-port-a'), idx('br-t'));
    assert.equal(link('br-port-a').master, 'br-t');
  });

  it('bridge-port flags: hairpin, isolated, learning (on and off again)', () => {
    const slave = (): { hairpin: boolean; isolated: boolean; learning: boolean } => link('br-port-a').linkinfo.info_slave_data;
    const viaBridge = (): { hairpin: boolean; isolated: boolean; learning: boolean } =>
      (bridge(['-d', 'link', 'show', 'dev', 'br-port-a']) as Array<{ hairpin: boolean; isolated: boolean; learning: boolean }>)[0]!;
    assert.deepStrictEqual([slave().hairpin, slave().isolated, slave().learning], [false, false, true]);

    L.setBridgePort(host, 'br-port-a', { hairpin: true, isolated: true, learning: false });
    assert.deepStrictEqual([slave().hairpin, slave().isolated, slave().learning], [true, true, false]);
    const b = viaBridge();
    assert.deepStrictEqual([b.hairpin, b.isolated, b.learning], [true, true, false]);
    assert.deepStrictEqual(L.getLink(host, 'br-port-a')!.bridgePort, { hairpin: true, isolated: true, learning: false });

    L.setBridgePort(host, 'br-port-a', { isolated: false }); // only what is given changes
    assert.deepStrictEqual([slave().hairpin, slave().isolated, slave().learning], [true, false, false]);
    L.setBridgePort(host, 'br-port-a', { hairpin: false, learning: true });
    assert.deepStrictEqual([slave().hairpin, slave().isolated, slave().learning], [false, false, true]);
    L.setBridgePort(host, 'br-port-a', {}); // nothing asked, nothing sent
    assert.deepStrictEqual(L.getLink(host, 'br-port-a')!.bridgePort, { hairpin: false, isolated: false, learning: true });
  });
});

describe('vxlan', () => {
  before(() => {
    L.createVeth(host, 'ul0', { name: 'ul1' }, { up: true });
    addAddress(host, 'ul0', '10.30.0.1/24');
    addAddress(host, 'ul0', 'fd30::1/64');
  });
  after(() => { for (const n of ['vx-t', 'vx-d', 'vx-6', 'ul0']) L.deleteLink(host, n); });

  it('id, port, local, underlay device, learning off, ttl', () => {
    L.createVxlan(host, 'vx-t', { vni: 4242, port: 8472, local: '10.30.0.1', dev: idx('ul0'), learning: false, ttl: 64, mtu: 1400 });
    const o = link('vx-t');
    assert.equal(o.linkinfo.info_kind, 'vxlan');
    const d = o.linkinfo.info_data;
    assert.deepStrictEqual([d.id, d.port, d.local, d.link, d.learning, d.ttl], [4242, 8472, '10.30.0.1', 'ul0', false, 64]);
    assert.equal(o.mtu, 1400);
    assert.deepStrictEqual(L.getLink(host, 'vx-t')!.vxlan, { vni: 4242, port: 8472, learning: false, link: idx('ul0') });
  });

  it('defaults: IANA port 4789, learning off; learning can be turned on', () => {
    L.createVxlan(host, 'vx-d', { vni: 1 });
    const d = link('vx-d').linkinfo.info_data;
    assert.deepStrictEqual([d.id, d.port, d.learning], [1, 4789, false]);
    L.deleteLink(host, 'vx-d');
    L.createVxlan(host, 'vx-d', { vni: 16777215, learning: true });
    const e = link('vx-d').linkinfo.info_data;
    assert.deepStrictEqual([e.id, e.learning], [16777215, true]);
  });

  it('an IPv6 local address', () => {
    L.createVxlan(host, 'vx-6', { vni: 6, local: 'fd30::1', dev: idx('ul0') });
    assert.equal(link('vx-6').linkinfo.info_data.local6, 'fd30::1');
  });

  it('a VNI outside 0–2^24-1 is refused before anything is sent', () => {
    for (const vni of [-1, 16777216, 1.5]) {
      throwsCode(() => L.createVxlan(host, 'vx-bad', { vni }), 'NETLINK_EINVAL', { object: 'vx-bad' });
    }
    assert.equal(link('vx-bad'), undefined);
  });
});

describe('macvlan', () => {
  let ns: Netns;
  before(() => {
    ns = createNetns('lk-mv');
    L.createVeth(host, 'mvp0', { name: 'mvp1' }, { up: true });
  });
  after(() => { L.deleteLink(host, 'mvp0'); ns.close(); deleteNetns('lk-mv'); });

  for (const mode of ['bridge', 'private', 'vepa', 'source'] as const) {
    it(`mode ${mode}`, () => {
      L.createMacvlan(host, `mv-${mode}`, idx('mvp0'), mode, { mac: '02:00:00:00:0a:01' });
      const o = link(`mv-${mode}`);
      assert.equal(o.linkinfo.info_kind, 'macvlan');
      assert.equal(o.linkinfo.info_data.mode, mode);
      assert.equal(o.link, 'mvp0');
      assert.equal(o.address, '02:00:00:00:0a:01');
      assert.equal(L.getLink(host, `mv-${mode}`)!.kind, 'macvlan');
      L.deleteLink(host, `mv-${mode}`);
    });
  }

  it('created directly in another namespace (targetNs), its parent staying put', () => {
    L.createMacvlan(host, 'eth1', idx('mvp0'), 'bridge', { targetNs: ns, up: true });
    assert.equal(link('eth1'), undefined);
    const o = link('eth1', 'lk-mv');
    assert.equal(o.linkinfo.info_data.mode, 'bridge');
    assert.ok(o.flags.includes('UP'));
    assert.ok(link('mvp0'));
  });

  it('deleting the parent deletes its macvlans, wherever they are', async () => {
    L.createVeth(host, 'mvq0', { name: 'mvq1' });
    L.createMacvlan(host, 'eth2', idx('mvq0'), 'bridge', { targetNs: ns });
    assert.ok(link('eth2', 'lk-mv'));
    L.deleteLink(host, 'mvq0');
    await eventually(() => link('eth2', 'lk-mv') === undefined, 3000, 'eth2 to go');
  });
});

describe('ipvlan', () => {
  let unsupported: Error | undefined;
  before(() => {
    L.createVeth(host, 'ivp0', { name: 'ivp1' });
    try {
      L.createIpvlan(host, 'iv-probe', idx('ivp0'), 'l2');
      L.deleteLink(host, 'iv-probe');
    } catch (e) {
      if (!isNsnetError(e, 'LINK_TYPE_UNSUPPORTED')) throw e;
      unsupported = e;
    }
  });
  after(() => { L.deleteLink(host, 'ivp0'); });

  it('a kernel without ipvlan gives LINK_TYPE_UNSUPPORTED and leaves nothing', (t: TestContext) => {
    if (!unsupported) return t.skip('this kernel has ipvlan: the positive test below covers it');
    const before = linkNames();
    const e = throwsCode(() => L.createIpvlan(host, 'iv0', idx('ivp0'), 'l3'), 'LINK_TYPE_UNSUPPORTED', { object: 'iv0', message: /does not support ipvlan/ });
    assert.match(String((e.cause as { extack?: string }).extack), /Unknown device type/i);
    assert.deepStrictEqual(linkNames(), before);
    assert.equal(link('iv0'), undefined);
  });

  for (const mode of ['l2', 'l3', 'l3s'] as const) {
    it(`mode ${mode}`, (t: TestContext) => {
      if (unsupported) return t.skip(`kernel lacks ipvlan: ${unsupported.message}`);
      L.createIpvlan(host, 'iv0', idx('ivp0'), mode);
      const o = link('iv0');
      assert.equal(o.linkinfo.info_kind, 'ipvlan');
      assert.equal(o.linkinfo.info_data.mode, mode);
      L.deleteLink(host, 'iv0');
    });
  }
});

describe('link state: up/down, MTU, MAC, rename, move', () => {
  let ns: Netns;
  before(() => {
    ns = createNetns('lk-st');
    L.createVeth(host, 'st0', { name: 'st1' });
  });
  after(() => { L.deleteLink(host, 'st0'); L.deleteLink(host, 'st9'); ns.close(); deleteNetns('lk-st'); });

  it('up and down, by name and by index', () => {
    L.setLinkUp(host, 'st0');
    assert.ok(link('st0').flags.includes('UP'));
    assert.ok(L.getLink(host, 'st0')!.up);
    L.setLinkDown(host, idx('st0'));
    assert.ok(!link('st0').flags.includes('UP'));
    assert.equal(L.getLink(host, 'st0')!.up, false);
    L.setLinkUp(host, idx('st0'));
    L.setLinkUp(host, 'st1');
    assert.equal(link('st0').operstate, 'UP');
    L.setLinkUp(host, 'st0'); // already up: fine
  });

  it('MTU', () => {
    L.setLinkMtu(host, 'st0', 1280);
    assert.equal(link('st0').mtu, 1280);
    L.setLinkMtu(host, idx('st0'), 9000);
    assert.equal(link('st0').mtu, 9000);
    assert.equal(L.getLink(host, 'st0')!.mtu, 9000);
  });

  it('MAC', () => {
    L.setLinkMac(host, 'st0', '02:AB:00:00:00:01');
    assert.equal(link('st0').address, '02:ab:00:00:00:01');
    assert.equal(L.getLink(host, 'st0')!.mac, '02:ab:00:00:00:01');
  });

  it('rename', () => {
    L.setLinkDown(host, 'st1');
    const i = idx('st1');
    L.renameLink(host, 'st1', 'st9');
    assert.equal(link('st1'), undefined);
    assert.equal(link('st9').ifindex, i);
    L.renameLink(host, i, 'st1');
    assert.equal(link('st1').ifindex, i);
  });

  it('move to another namespace, keeping its name, and back', () => {
    L.createVeth(host, 'mv-a', { name: 'mv-b' });
    L.moveLink(host, 'mv-a', ns);
    assert.equal(link('mv-a'), undefined);
    assert.equal(link('mv-a', 'lk-st').linkinfo.info_kind, 'veth');
    L.moveLink(ns, 'mv-a', host);
    assert.ok(link('mv-a'));
    assert.equal(link('mv-a', 'lk-st'), undefined);
    L.deleteLink(host, 'mv-a');
  });

  it('move to another namespace with a new name (the container’s eth0)', () => {
    L.createVeth(host, 'mv-c', { name: 'mv-d' }, { mac: '02:00:00:00:0c:01' });
    L.moveLink(host, idx('mv-c'), ns, 'eth0');
    assert.equal(link('mv-c'), undefined);
    const o = link('eth0', 'lk-st');
    assert.equal(o.address, '02:00:00:00:0c:01');
    assert.equal(link('mv-d').link_netnsid !== undefined, true);
    assert.deepStrictEqual(linkNames('lk-st'), ['lo', 'eth0']);
    L.deleteLink(host, 'mv-d');
    assert.deepStrictEqual(linkNames('lk-st'), ['lo']);
  });
});

describe('get, list, delete', () => {
  let ns: Netns;
  before(() => {
    ns = createNetns('lk-get');
    L.createVeth(host, 'g0', { name: 'g1', ns }, { mtu: 1300, mac: '02:00:00:00:0d:01', up: true });
    L.ensureBridge(host, 'gbr');
  });
  after(() => { L.deleteLink(host, 'g0'); L.deleteLink(host, 'gbr'); ns.close(); deleteNetns('lk-get'); });

  it('get by name and by index agree with ip', () => {
    const o = link('g0');
    const byName = L.getLink(host, 'g0')!;
    const byIndex = L.getLink(host, o.ifindex)!;
    for (const l of [byName, byIndex]) {
      assert.deepStrictEqual([l.index, l.name, l.mtu, l.mac, l.kind, l.up], [o.ifindex, 'g0', 1300, '02:00:00:00:0d:01', 'veth', true]);
    }
    const lo = L.getLink(ns, 'lo')!;
    assert.deepStrictEqual([lo.index, lo.up, lo.kind], [1, true, undefined]);
  });

  it('a missing link: getLink → undefined, requireLink → LINK_NOT_FOUND naming it', () => {
    assert.equal(L.getLink(host, 'nope0'), undefined);
    assert.equal(L.getLink(host, 99999), undefined);
    throwsCode(() => L.requireLink(host, 'nope0'), 'LINK_NOT_FOUND', { object: 'nope0', message: /nope0 not found in host/ });
    throwsCode(() => L.requireLink(ns, 'g0'), 'LINK_NOT_FOUND', { message: /lk-get/ });
  });

  it('list gives what ip lists, in each namespace', () => {
    const mine = L.listLinks(host).map((l) => [l.index, l.name, l.kind ?? null]);
    const theirs = (ip(['-d', 'link', 'show']) as Array<{ ifindex: number; ifname: string; linkinfo?: { info_kind: string } }>)
      .map((l) => [l.ifindex, l.ifname, l.linkinfo?.info_kind ?? null]);
    assert.deepStrictEqual(mine, theirs);
    assert.deepStrictEqual(L.listLinks(ns).map((l) => l.name), linkNames('lk-get'));
    assert.deepStrictEqual(L.listLinks(ns).map((l) => l.name), ['lo', 'g1']);
  });

  it('delete is idempotent, by name or index', () => {
    L.createVeth(host, 'd0', { name: 'd1' });
    const i = idx('d0');
    assert.equal(L.deleteLink(host, 'd0'), true);
    assert.equal(L.deleteLink(host, 'd0'), false);
    assert.equal(L.deleteLink(host, i), false);
    assert.equal(link('d1'), undefined);
    L.ensureBridge(host, 'd2');
    assert.equal(L.deleteLink(host, idx('d2')), true);
    assert.equal(link('d2'), undefined);
  });
});
