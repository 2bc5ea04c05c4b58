/**
 * The codec against datagrams captured from the real kernel (fixtures.ts, recorded by
 * test/kernel/tools/capture-netlink-fixtures.ts): every datagram decodes to the topology
 * the capture built, re-encodes to exactly the captured bytes, and a dump stream decodes
 * the same whichever message boundary it is split at.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessages, encodeMessage, extackMessage, extackOffset, type NetlinkMessage } from './message.js';
import { getNested, getString } from './attr.js';
import * as K from './constants.js';
import * as F from './fixtures.js';
import * as T from './testing.js';
import { decodeLink, type Link } from '../route/link.js';
import { decodeAddress } from '../route/addr.js';
import { decodeRoute } from '../route/route.js';
import { decodeNeighbour } from '../route/neigh.js';

const CAPTURES: Array<[string, F.Capture]> = Object.entries(F).filter(
  (e): e is [string, F.Capture] => typeof e[1] === 'object' && e[1] !== null && 'datagrams' in e[1],
);

const datagrams = (c: F.Capture): Buffer[] => c.datagrams.map(T.fromHex);
const messages = (c: F.Capture): NetlinkMessage[] => datagrams(c).flatMap((d) => decodeMessages(d));

describe('kernel captures: decode → encode gives back the captured bytes', () => {
  assert.ok(CAPTURES.length >= 10);
  for (const [name, c] of CAPTURES) {
    it(`${name} (${c.what})`, () => {
      for (const d of datagrams(c)) {
        const ms = decodeMessages(d);
        assert.ok(ms.length > 0);
        assert.deepStrictEqual(Buffer.concat(ms.map(encodeMessage)), d);
        // every message re-encodes alone to its own slice
        const offs = T.messageOffsets(d);
        assert.equal(offs.length, ms.length);
        ms.forEach((m, i) => assert.deepStrictEqual(encodeMessage(m), d.subarray(offs[i]!, offs[i + 1] ?? d.length)));
      }
    });
  }
});

describe('kernel captures: a dump stream split at every message boundary', () => {
  for (const [name, c] of CAPTURES) {
    it(name, () => {
      const stream = Buffer.concat(datagrams(c));
      const whole = decodeMessages(stream);
      const offs = T.messageOffsets(stream);
      assert.equal(offs.length, whole.length);
      for (const cut of [...offs, stream.length]) {
        const got = [...decodeMessages(stream.subarray(0, cut)), ...decodeMessages(stream.subarray(cut))];
        assert.deepStrictEqual(got, whole, `split at ${cut}`);
      }
    });
  }
});

describe('kernel captures: decoded fields', () => {
  it('a dump ends with NLMSG_DONE; every part is NLM_F_MULTI with the request seq', () => {
    for (const c of [F.linkDump, F.addrDump, F.routeDump4, F.routeDump6, F.neighDump4, F.fdbDump]) {
      const ms = messages(c);
      const last = ms[ms.length - 1]!;
      assert.equal(last.kind, 'done');
      if (last.kind === 'done') assert.equal(last.error, 0);
      const seq = ms[0]!.header.seq;
      for (const m of ms) {
        assert.ok(m.header.flags & K.NLM_F_MULTI, `${m.kind} NLM_F_MULTI`);
        assert.equal(m.header.seq, seq);
        assert.equal(m.header.flags & K.NLM_F_DUMP_INTR, 0);
      }
    }
  });

  it('links: lo, veth pair (one end a bridge port), bridge, vxlan', () => {
    const links = messages(F.linkDump).filter((m) => m.kind === 'link').map(decodeLink);
    const by = (n: string): Link => links.find((l) => l.name === n)!;
    assert.deepStrictEqual(links.map((l) => l.name), ['lo', 'veth1', 'veth0', 'br0', 'vx0']);

    const lo = by('lo');
    assert.equal(lo.index, 1);
    assert.ok(lo.flags & K.IFF_LOOPBACK);
    assert.equal(lo.mtu, 65536);
    assert.equal(lo.kind, undefined);

    const veth0 = by('veth0'), veth1 = by('veth1'), br0 = by('br0'), vx0 = by('vx0');
    assert.deepStrictEqual([veth0.kind, veth0.mac, veth0.mtu, veth0.up], ['veth', '02:00:00:00:00:01', 1400, true]);
    assert.equal(veth0.link, veth1.index); // IFLA_LINK: the peer
    assert.equal(veth1.link, veth0.index);
    assert.equal(veth0.master, undefined);
    assert.equal(veth0.bridgePort, undefined);

    assert.deepStrictEqual([veth1.mac, veth1.master, veth1.slaveKind], ['02:00:00:00:00:02', br0.index, 'bridge']);
    assert.deepStrictEqual(veth1.bridgePort, { hairpin: false, isolated: false, learning: true });

    assert.deepStrictEqual([br0.kind, br0.mac, br0.up], ['bridge', '02:00:00:00:00:03', true]);

    assert.equal(vx0.kind, 'vxlan');
    assert.equal(vx0.up, false);
    assert.deepStrictEqual(vx0.vxlan, { vni: 42, port: 4789, learning: false, link: veth0.index });
    // IFLA_VXLAN_LOCAL (4) holds 10.1.0.1, in the nest the typed decoder does not interpret
    const data = getNested(getNested(vx0.attrs, K.IFLA_LINKINFO)!, K.IFLA_INFO_DATA)!;
    assert.deepStrictEqual(data.find((a) => a.type === K.IFLA_VXLAN_LOCAL)?.data, T.bytes(10, 1, 0, 1));
    // the kernel sends far more than nsnet interprets; all of it is kept
    assert.ok(veth0.attrs.length > 30);
    assert.equal(getString(veth0.attrs, K.IFLA_IFNAME), 'veth0');
  });

  it('addresses: IPv4 with label, IPv6 added nodad is not tentative, link-locals are', () => {
    const addrs = messages(F.addrDump).filter((m) => m.kind === 'addr').map(decodeAddress);
    const find = (a: string) => addrs.find((x) => x.address === a)!;
    assert.deepStrictEqual(
      addrs.map((a) => `${a.address}/${a.prefixlen}`).filter((a) => !a.startsWith('fe80')),
      ['127.0.0.1/8', '10.1.0.1/24', '::1/128', 'fd00:1::1/64'],
    );
    const v4 = find('10.1.0.1');
    assert.deepStrictEqual([v4.family, v4.index, v4.label, v4.scope, v4.tentative], [4, 3, 'veth0', K.RT_SCOPE_UNIVERSE, false]);
    const v6 = find('fd00:1::1');
    assert.deepStrictEqual([v6.family, v6.index, v6.tentative], [6, 3, false]);
    assert.ok(v6.flags & K.IFA_F_NODAD);
    assert.ok(v6.flags & K.IFA_F_PERMANENT);
    const ll = addrs.filter((a) => a.address.startsWith('fe80::'));
    assert.ok(ll.length >= 1 && ll.every((a) => a.tentative && a.scope === K.RT_SCOPE_LINK));
    assert.equal(find('127.0.0.1').scope, K.RT_SCOPE_HOST);
  });

  it('IPv4 routes: gateway, metric, protocol tag, table, link scope, default', () => {
    const routes = messages(F.routeDump4).filter((m) => m.kind === 'route').map(decodeRoute);
    const find = (dst: string, table = K.RT_TABLE_MAIN) => routes.find((r) => r.dst === dst && r.table === table)!;
    assert.deepStrictEqual(find('10.2.0.0/16'), {
      family: 4, dst: '10.2.0.0/16', gateway: '10.1.0.254', dev: 3, metric: 50, table: 254,
      protocol: 110, scope: K.RT_SCOPE_UNIVERSE, type: K.RTN_UNICAST, onlink: false, prefsrc: undefined,
    });
    const dflt = find('default');
    assert.deepStrictEqual([dflt.gateway, dflt.dev, dflt.protocol, dflt.metric], ['10.1.0.254', 3, K.RTPROT_BOOT, undefined]);
    const connected = find('10.1.0.0/24');
    assert.deepStrictEqual([connected.protocol, connected.scope, connected.prefsrc], [K.RTPROT_KERNEL, K.RT_SCOPE_LINK, '10.1.0.1']);
    const t100 = find('192.0.2.0/24', 100);
    assert.deepStrictEqual([t100.dev, t100.scope, t100.gateway], [3, K.RT_SCOPE_LINK, undefined]);
    assert.equal(find('10.1.0.1/32', K.RT_TABLE_LOCAL).type, K.RTN_LOCAL);
    assert.equal(find('10.1.0.255/32', K.RT_TABLE_LOCAL).type, K.RTN_BROADCAST);
  });

  it('IPv6 routes: gateway and metric, kernel prefix routes', () => {
    const routes = messages(F.routeDump6).filter((m) => m.kind === 'route').map(decodeRoute);
    const r = routes.find((x) => x.dst === 'fd00:2::/48')!;
    assert.deepStrictEqual([r.family, r.gateway, r.metric, r.dev, r.table], [6, 'fd00:1::fe', 7, 3, 254]);
    const p = routes.find((x) => x.dst === 'fd00:1::/64')!;
    assert.deepStrictEqual([p.protocol, p.metric, p.gateway], [K.RTPROT_KERNEL, 256, undefined]);
    assert.ok(routes.some((x) => x.dst === '::1/128' && x.table === K.RT_TABLE_LOCAL));
  });

  it('neighbours: the permanent entry', () => {
    const ns = messages(F.neighDump4).filter((m) => m.kind === 'neigh').map(decodeNeighbour);
    const n = ns.find((x) => x.dst === '10.1.0.9')!;
    assert.deepStrictEqual([n.family, n.ifindex, n.mac, n.state], [4, 3, '02:00:00:00:00:09', K.NUD_PERMANENT]);
  });

  it('bridge FDB: vxlan self entries with a remote dst, bridge-port entries with a master', () => {
    const fdb = messages(F.fdbDump).filter((m) => m.kind === 'neigh').map(decodeNeighbour);
    const vx = fdb.filter((e) => e.ifindex === 5);
    assert.deepStrictEqual(
      vx.map((e) => [e.family, e.mac, e.dst, (e.flags & K.NTF_SELF) !== 0, (e.state & K.NUD_PERMANENT) !== 0]).sort(),
      [['bridge', '00:00:00:00:00:00', '10.1.0.2', true, true], ['bridge', '02:00:00:00:00:05', '10.1.0.3', true, true]],
    );
    const port = fdb.find((e) => e.mac === '02:00:00:00:00:02')!;
    assert.deepStrictEqual([port.ifindex, port.master, port.state], [2, 4, K.NUD_PERMANENT]);
  });

  it('an extended ACK with the request echoed: errno, message, request payload', () => {
    const [m] = messages(F.errorExtack);
    assert.ok(m && m.kind === 'error');
    assert.equal(m.error, -22);
    assert.equal(m.header.flags, K.NLM_F_ACK_TLVS);
    assert.equal(extackMessage(m), 'mtu less than device minimum');
    assert.deepStrictEqual(m.request, { len: 40, type: K.RTM_NEWLINK, flags: K.NLM_F_REQUEST | K.NLM_F_ACK, seq: m.header.seq, pid: 0 });
    // what the capture script sent: ifinfomsg for veth0 (index 3), IFLA_MTU 10
    assert.deepStrictEqual(m.requestPayload, Buffer.concat([T.ifinfomsg({ index: 3 }), T.nla(4, T.u32(10))]));
  });

  it('a capped extended ACK: header only', () => {
    const [m] = messages(F.errorExtackCapped);
    assert.ok(m && m.kind === 'error');
    assert.equal(m.header.flags, K.NLM_F_CAPPED | K.NLM_F_ACK_TLVS);
    assert.equal(m.requestPayload.length, 0);
    assert.equal(m.request.len, 40);
    assert.equal(extackMessage(m), 'mtu less than device minimum');
  });

  it('an extended ACK pointing at the offending attribute (NLMSGERR_ATTR_OFFS)', () => {
    const [m] = messages(F.errorExtackOffset);
    assert.ok(m && m.kind === 'error');
    assert.equal(m.error, -34); // ERANGE: IFLA_IFNAME longer than IFNAMSIZ
    assert.equal(extackMessage(m), 'Attribute failed policy validation');
    assert.equal(extackOffset(m), 32); // nlmsghdr 16 + ifinfomsg 16: the IFLA_IFNAME attribute
    assert.ok(m.tlvs.some((t) => t.type === 4)); // NLMSGERR_ATTR_POLICY, kept as an unknown TLV
  });

  it('a plain ACK', () => {
    const [m] = messages(F.ack);
    assert.ok(m && m.kind === 'error');
    assert.equal(m.error, 0);
    assert.equal(m.tlvs.length, 0);
  });
});
