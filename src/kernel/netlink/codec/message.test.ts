/**
 * Netlink messages: every kind (link, addr, route, neigh, error with extended-ack TLVs —
 * echoed and capped —, done, raw) round-trips against bytes laid out by hand in
 * testing.ts; malformed datagrams raise DecodeError with the byte offset; concatenated
 * messages decode the same whichever message boundary a stream is split at.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, DecodeError } from './bytes.js';
import type { Attr } from './attr.js';
import {
  type NetlinkMessage, decodeMessages, encodeMessage, encodeMessageInto, extackMessage, extackOffset, messageKind,
} from './message.js';
import * as K from './constants.js';
import * as T from './testing.js';

const at = (type: number, data: Buffer, flags = 0): Attr => ({ type, flags, data });

/**
 * The one generic helper every message test goes through: bytes decode to exactly
 * `expected`, and `expected` encodes to exactly the bytes.
 */
function roundTrip(bytes: Buffer, expected: NetlinkMessage): void {
  assert.deepStrictEqual(decodeMessages(bytes), [expected]);
  assert.deepStrictEqual(encodeMessage(expected), bytes);
}

function throwsDecodeAt(fn: () => unknown, offset: number, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
    assert.equal(e.code, 'NETLINK_DECODE');
    assert.equal(e.offset, offset, `offset (message: ${e.message})`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

// ---- one example of each kind, as bytes and as the value they must decode to ----------

const LINK_BYTES = T.nlmsg(
  { type: 16, flags: 0x2, seq: 7, pid: 4242 },
  T.ifinfomsg({ family: 0, pad: 0x5a, type: 1, index: -1, flags: 0x11043, change: 0xffffffff }),
  T.nla(3, T.cstr('veth0')),
  T.nla(4, T.u32(1500)),
  T.nla(1, T.bytes(2, 0, 0, 0, 0, 1)),
  T.nest(18, T.nla(1, T.cstr('veth')), T.nest(2, T.nla(1, T.bytes(1, 2, 3)))),
  T.nla(0x3ff0, T.bytes(9)), // unknown to nsnet
);
const LINK: NetlinkMessage = {
  kind: 'link',
  header: { type: 16, flags: 0x2, seq: 7, pid: 4242 },
  ifi: { family: 0, pad: 0x5a, type: 1, index: -1, flags: 0x11043, change: 0xffffffff },
  attrs: [
    at(3, T.cstr('veth0')),
    at(4, T.u32(1500)),
    at(1, T.bytes(2, 0, 0, 0, 0, 1)),
    at(18, Buffer.concat([T.nla(1, T.cstr('veth')), T.nest(2, T.nla(1, T.bytes(1, 2, 3)))]), 0x8000),
    at(0x3ff0, T.bytes(9)),
  ],
};

const ADDR_BYTES = T.nlmsg(
  { type: 20, flags: 0x2, seq: 8, pid: 1 },
  T.ifaddrmsg({ family: 10, prefixlen: 64, flags: 0x80, scope: 0, index: 3 }),
  T.nla(1, T.bytes(0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)),
  T.nla(6, Buffer.concat([T.u32(0xffffffff), T.u32(0xffffffff), T.u32(100), T.u32(100)])),
  T.nla(8, T.u32(0x280)),
);
const ADDR: NetlinkMessage = {
  kind: 'addr',
  header: { type: 20, flags: 0x2, seq: 8, pid: 1 },
  ifa: { family: 10, prefixlen: 64, flags: 0x80, scope: 0, index: 3 },
  attrs: [
    at(1, T.bytes(0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)),
    at(6, Buffer.concat([T.u32(0xffffffff), T.u32(0xffffffff), T.u32(100), T.u32(100)])),
    at(8, T.u32(0x280)),
  ],
};

const ROUTE_BYTES = T.nlmsg(
  { type: 24, flags: 0x600 /* CREATE|EXCL */, seq: 9, pid: 0 },
  T.rtmsg({ family: 2, dstLen: 16, srcLen: 0, tos: 0, table: 254, protocol: 0x6e, scope: 0, type: 1, flags: 0x4 }),
  T.nla(1, T.bytes(10, 2, 0, 0)),
  T.nla(5, T.bytes(10, 1, 0, 254)),
  T.nla(4, T.u32(3)),
  T.nla(6, T.u32(50)),
  T.nla(15, T.u32(1000)),
);
const ROUTE: NetlinkMessage = {
  kind: 'route',
  header: { type: 24, flags: 0x600, seq: 9, pid: 0 },
  rtm: { family: 2, dstLen: 16, srcLen: 0, tos: 0, table: 254, protocol: 0x6e, scope: 0, type: 1, flags: 0x4 },
  attrs: [at(1, T.bytes(10, 2, 0, 0)), at(5, T.bytes(10, 1, 0, 254)), at(4, T.u32(3)), at(6, T.u32(50)), at(15, T.u32(1000))],
};

const NEIGH_BYTES = T.nlmsg(
  { type: 28, flags: 0x500 /* CREATE|REPLACE */, seq: 10, pid: 0 },
  T.ndmsg({ family: 7, pad1: 1, pad2: 0x0203, ifindex: 5, state: 0x80, flags: 0x2, type: 0 }),
  T.nla(2, T.bytes(2, 0, 0, 0, 0, 5)),
  T.nla(1, T.bytes(192, 0, 2, 1)),
  T.nla(7, T.u32(42)),
);
const NEIGH: NetlinkMessage = {
  kind: 'neigh',
  header: { type: 28, flags: 0x500, seq: 10, pid: 0 },
  ndm: { family: 7, pad1: 1, pad2: 0x0203, ifindex: 5, state: 0x80, flags: 0x2, type: 0 },
  attrs: [at(2, T.bytes(2, 0, 0, 0, 0, 5)), at(1, T.bytes(192, 0, 2, 1)), at(7, T.u32(42))],
};

const DONE_BYTES = T.nlmsgDone({ flags: 0x2, seq: 11, pid: 77 });
const DONE: NetlinkMessage = { kind: 'done', header: { type: 3, flags: 0x2, seq: 11, pid: 77 }, error: 0, tlvs: [] };

/** The request an error echoes: RTM_NEWLINK on ifindex 3 setting MTU 10. */
const REQUEST = T.nlmsg({ type: 16, flags: 0x5, seq: 12, pid: 0 }, T.ifinfomsg({ index: 3 }), T.nla(4, T.u32(10)));
const REQUEST_HDR = { len: 40, type: 16, flags: 0x5, seq: 12, pid: 0 };

describe('message kinds round-trip against hand-built bytes', () => {
  it('link (RTM_NEWLINK): ifinfomsg incl. pad byte and negative index, nested and unknown attrs', () => roundTrip(LINK_BYTES, LINK));
  it('addr (RTM_NEWADDR): ifaddrmsg, IPv6 address, cacheinfo, IFA_FLAGS', () => roundTrip(ADDR_BYTES, ADDR));
  it('route (RTM_NEWROUTE): rtmsg with onlink flag, table above 255 in RTA_TABLE', () => roundTrip(ROUTE_BYTES, ROUTE));
  it('neigh (RTM_NEWNEIGH, AF_BRIDGE fdb): ndmsg incl. pad fields, lladdr, dst, vni', () => roundTrip(NEIGH_BYTES, NEIGH));
  it('done (NLMSG_DONE)', () => roundTrip(DONE_BYTES, DONE));

  it('an ACK: NLMSG_ERROR with error 0, capped', () => {
    const bytes = T.nlmsgerr({ flags: 0x100, seq: 12, pid: 77 }, 0, REQUEST, true);
    assert.equal(bytes.length, 36);
    roundTrip(bytes, {
      kind: 'error', header: { type: 2, flags: 0x100, seq: 12, pid: 77 }, error: 0,
      request: REQUEST_HDR, requestPayload: Buffer.alloc(0), tlvs: [],
    });
  });

  it('an error echoing the whole request, with extack message and offset TLVs', () => {
    const tlvs = [T.nla(1, T.cstr('mtu less than device minimum')), T.nla(2, T.u32(32))];
    const bytes = T.nlmsgerr({ flags: 0x200, seq: 12, pid: 77 }, -22, REQUEST, false, ...tlvs);
    const expected: NetlinkMessage = {
      kind: 'error', header: { type: 2, flags: 0x200, seq: 12, pid: 77 }, error: -22,
      request: REQUEST_HDR, requestPayload: REQUEST.subarray(16),
      tlvs: [at(1, T.cstr('mtu less than device minimum')), at(2, T.u32(32))],
    };
    roundTrip(bytes, expected);
    assert.equal(extackMessage(expected), 'mtu less than device minimum');
    assert.equal(extackOffset(expected), 32);
  });

  it('a capped error (NLM_F_CAPPED|NLM_F_ACK_TLVS): header only, then the TLVs', () => {
    const bytes = T.nlmsgerr({ flags: 0x300, seq: 12, pid: 77 }, -34, REQUEST, true,
      T.nla(1, T.cstr('Attribute failed policy validation')), T.nla(2, T.u32(32)), T.nla(4, T.nla(1, T.u32(11))));
    const [m] = decodeMessages(bytes);
    assert.equal(m!.kind, 'error');
    if (m!.kind !== 'error') return;
    assert.equal(m.error, -34);
    assert.deepStrictEqual(m.request, REQUEST_HDR);
    assert.equal(m.requestPayload.length, 0);
    assert.deepStrictEqual(m.tlvs.map((t) => t.type), [1, 2, 4]); // NLMSGERR_ATTR_POLICY kept though unknown
    assert.equal(extackMessage(m), 'Attribute failed policy validation');
    assert.deepStrictEqual(encodeMessage(m), bytes);
  });

  it('an error echoing a request whose nlmsg_len is not 4-aligned (payload padded before TLVs)', () => {
    const odd = Buffer.concat([T.u32(21), T.u16(18), T.u16(0x5), T.u32(1), T.u32(0), T.bytes(1, 2, 3, 4, 5)]);
    const bytes = T.nlmsgerr({ flags: 0x200, seq: 1, pid: 2 }, -22, odd, false, T.nla(1, T.cstr('bad')));
    assert.equal(bytes.length, 16 + 4 + 24 + 8);
    roundTrip(bytes, {
      kind: 'error', header: { type: 2, flags: 0x200, seq: 1, pid: 2 }, error: -22,
      request: { len: 21, type: 18, flags: 0x5, seq: 1, pid: 0 }, requestPayload: T.bytes(1, 2, 3, 4, 5),
      tlvs: [at(1, T.cstr('bad'))],
    });
  });

  it('an error without NLM_F_ACK_TLVS has no TLVs and no extack', () => {
    const bytes = T.nlmsgerr({ flags: 0, seq: 12, pid: 0 }, -17, REQUEST, false);
    const [m] = decodeMessages(bytes);
    assert.ok(m!.kind === 'error');
    assert.deepStrictEqual(m!.tlvs, []);
    assert.equal(extackMessage(m!), undefined);
    assert.equal(extackOffset(m!), undefined);
    assert.deepStrictEqual(encodeMessage(m!), bytes);
  });

  it('a done carrying an error and an extack message (a failed dump)', () => {
    const bytes = T.nlmsgDone({ flags: 0x202, seq: 3, pid: 1 }, -4, T.nla(1, T.cstr('dump interrupted')));
    const m: NetlinkMessage = { kind: 'done', header: { type: 3, flags: 0x202, seq: 3, pid: 1 }, error: -4, tlvs: [at(1, T.cstr('dump interrupted'))] };
    roundTrip(bytes, m);
    assert.equal(extackMessage(m), 'dump interrupted');
  });

  it('a bare done without even the error int (very old kernels) decodes as error 0', () => {
    const [m] = decodeMessages(T.nlmsg({ type: 3, flags: 2, seq: 1 }));
    assert.deepStrictEqual(m, { kind: 'done', header: { type: 3, flags: 2, seq: 1, pid: 0 }, error: 0, tlvs: [] });
  });

  it('unknown message types are kept raw and re-encode unchanged', () => {
    for (const type of [K.NLMSG_NOOP, K.NLMSG_OVERRUN, 0x1234, 36 /* RTM_NEWQDISC */]) {
      const payload = T.bytes(1, 2, 3, 4, 5, 6, 7, 8);
      roundTrip(T.nlmsg({ type, flags: 1, seq: 2, pid: 3 }, payload), { kind: 'raw', header: { type, flags: 1, seq: 2, pid: 3 }, payload });
    }
    assert.equal(extackMessage({ kind: 'raw', header: { type: 1, flags: 0, seq: 0, pid: 0 }, payload: Buffer.alloc(0) }), undefined);
  });

  it('messageKind maps every NEW/DEL/GET type of each family', () => {
    const expect: Array<[number, string]> = [
      [16, 'link'], [17, 'link'], [18, 'link'], [19, 'link'], [20, 'addr'], [21, 'addr'], [22, 'addr'],
      [24, 'route'], [25, 'route'], [26, 'route'], [28, 'neigh'], [29, 'neigh'], [30, 'neigh'],
      [2, 'error'], [3, 'done'], [1, 'raw'], [23, 'raw'], [27, 'raw'],
    ];
    for (const [type, kind] of expect) assert.equal(messageKind(type), kind, `type ${type}`);
  });

  it('DEL and GET messages decode with their family header too', () => {
    const del = T.nlmsg({ type: 17, flags: 0x5, seq: 1 }, T.ifinfomsg({ index: 9 }));
    roundTrip(del, { kind: 'link', header: { type: 17, flags: 0x5, seq: 1, pid: 0 }, ifi: { family: 0, pad: 0, type: 0, index: 9, flags: 0, change: 0 }, attrs: [] });
    const get = T.nlmsg({ type: 26, flags: 0x301, seq: 1 }, T.rtmsg({ family: 10 }));
    roundTrip(get, {
      kind: 'route', header: { type: 26, flags: 0x301, seq: 1, pid: 0 },
      rtm: { family: 10, dstLen: 0, srcLen: 0, tos: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }, attrs: [],
    });
  });

  it('encodeMessageInto appends messages back to back, each with its own nlmsg_len', () => {
    const w = new ByteWriter(16); // forces the writer to grow
    for (const m of [LINK, ADDR, ROUTE]) encodeMessageInto(w, m);
    assert.deepStrictEqual(Buffer.from(w.finish()), Buffer.concat([LINK_BYTES, ADDR_BYTES, ROUTE_BYTES]));
  });
});

describe('concatenated messages (a multipart dump) split at every boundary', () => {
  const parts = [LINK_BYTES, ADDR_BYTES, ROUTE_BYTES, NEIGH_BYTES, DONE_BYTES];
  const all = Buffer.concat(parts);
  const expected = [LINK, ADDR, ROUTE, NEIGH, DONE];

  it('decodes the whole datagram in order', () => {
    assert.deepStrictEqual(decodeMessages(all), expected);
    assert.deepStrictEqual(T.messageOffsets(all).length, parts.length);
  });

  for (let i = 0; i <= parts.length; i++) {
    it(`split after message ${i}: both halves decode to the same messages`, () => {
      const cut = parts.slice(0, i).reduce((n, p) => n + p.length, 0);
      const got = [...decodeMessages(all.subarray(0, cut)), ...decodeMessages(all.subarray(cut))];
      assert.deepStrictEqual(got, expected);
    });
  }

  it('each message alone, as its own datagram, decodes and re-encodes', () => {
    const offs = T.messageOffsets(all);
    offs.forEach((o, i) => {
      const one = all.subarray(o, offs[i + 1] ?? all.length);
      assert.deepStrictEqual(decodeMessages(one), [expected[i]]);
      assert.deepStrictEqual(encodeMessage(expected[i]!), one);
    });
  });

  it('a cut inside a message is refused, naming where that message starts', () => {
    const offs = T.messageOffsets(all);
    for (let cut = 1; cut < all.length; cut++) {
      if (offs.includes(cut)) continue;
      const start = [...offs].reverse().find((o) => o < cut)!;
      const short = cut - start < 16;
      throwsDecodeAt(() => decodeMessages(all.subarray(0, cut)), start, short ? /truncated nlmsghdr/ : /overruns the datagram/);
    }
  });
});

describe('malformed datagrams raise DecodeError with the byte offset', () => {
  it('a truncated nlmsghdr, alone or after a good message', () => {
    for (let n = 1; n < 16; n++) throwsDecodeAt(() => decodeMessages(LINK_BYTES.subarray(0, n)), 0, /truncated nlmsghdr/);
    throwsDecodeAt(() => decodeMessages(Buffer.concat([ADDR_BYTES, T.bytes(1, 2, 3)])), ADDR_BYTES.length, /truncated nlmsghdr \(3 bytes\)/);
  });

  it('an nlmsg_len shorter than the header', () => {
    const bad = Buffer.from(DONE_BYTES);
    bad.writeUInt32LE(8, 0);
    throwsDecodeAt(() => decodeMessages(Buffer.concat([DONE_BYTES, bad])), DONE_BYTES.length, /nlmsg_len 8 shorter than the header/);
    const zero = Buffer.alloc(16);
    throwsDecodeAt(() => decodeMessages(zero), 0, /nlmsg_len 0/);
  });

  it('an nlmsg_len that overruns the datagram', () => {
    const bad = Buffer.from(ROUTE_BYTES);
    bad.writeUInt32LE(ROUTE_BYTES.length + 4, 0);
    throwsDecodeAt(() => decodeMessages(bad), 0, new RegExp(`nlmsg_len ${ROUTE_BYTES.length + 4} overruns the datagram \\(${ROUTE_BYTES.length} bytes left\\)`));
    throwsDecodeAt(() => decodeMessages(Buffer.concat([LINK_BYTES, ADDR_BYTES, bad])), LINK_BYTES.length + ADDR_BYTES.length);
  });

  it('an attribute overrunning its message (absolute offset within the datagram)', () => {
    // RTA_GATEWAY (the 2nd attribute, at 16 + 12 + 8 = 36) claims 40 bytes
    const bad = Buffer.from(ROUTE_BYTES);
    bad.writeUInt16LE(40, 36);
    throwsDecodeAt(() => decodeMessages(bad), 36, /attribute type 5 length 40 overruns its container/);
    const base = LINK_BYTES.length + NEIGH_BYTES.length;
    throwsDecodeAt(() => decodeMessages(Buffer.concat([LINK_BYTES, NEIGH_BYTES, bad, DONE_BYTES])), base + 36);
  });

  it('an attribute that would overrun into the next message is still an overrun', () => {
    // the last attribute of ADDR (IFA_FLAGS at len-8) claims 12 bytes: there are bytes after
    // it in the datagram (the next message), but not in its own message.
    const bad = Buffer.from(ADDR_BYTES);
    bad.writeUInt16LE(12, ADDR_BYTES.length - 8);
    throwsDecodeAt(() => decodeMessages(Buffer.concat([bad, DONE_BYTES])), ADDR_BYTES.length - 8, /overruns/);
  });

  it('an attribute length shorter than its header', () => {
    const bad = Buffer.from(LINK_BYTES);
    bad.writeUInt16LE(2, 32); // first attribute, right after ifinfomsg
    throwsDecodeAt(() => decodeMessages(Buffer.concat([DONE_BYTES, bad])), DONE_BYTES.length + 32, /shorter than its header/);
  });

  it('a family header cut short by nlmsg_len', () => {
    // a link message with 8 of the 16 ifinfomsg bytes: ifi_flags at 16 + 8 is missing
    const short = Buffer.concat([T.u32(24), T.u16(16), T.u16(0), T.u32(0), T.u32(0), T.ifinfomsg().subarray(0, 8)]);
    throwsDecodeAt(() => decodeMessages(short), 24, /u32 needs 4 bytes, 0 left/);
    throwsDecodeAt(() => decodeMessages(Buffer.concat([ADDR_BYTES, short])), ADDR_BYTES.length + 24);
    // rtmsg with 10 of its 12 bytes
    const r = Buffer.concat([T.u32(26), T.u16(24), T.u16(0), T.u32(0), T.u32(0), T.rtmsg({ family: 2 }).subarray(0, 10), T.bytes(0, 0)]);
    throwsDecodeAt(() => decodeMessages(r), 24, /u32 needs 4 bytes, 2 left/);
  });

  it('an error message too short for the echoed request header', () => {
    const bad = Buffer.concat([T.u32(24), T.u16(2), T.u16(0), T.u32(1), T.u32(0), T.i32(-1), T.u32(40)]);
    throwsDecodeAt(() => decodeMessages(bad), 24, /u16 needs 2 bytes/);
  });

  it('malformed TLVs after an extended ACK', () => {
    const good = T.nlmsgerr({ flags: 0x300, seq: 1 }, -22, REQUEST, true, T.nla(1, T.cstr('x')));
    const bad = Buffer.from(good);
    bad.writeUInt16LE(64, 36); // the TLV right after i32 error + echoed header
    throwsDecodeAt(() => decodeMessages(Buffer.concat([LINK_BYTES, bad])), LINK_BYTES.length + 36, /attribute type 1 length 64 overruns/);
  });

  it('a DecodeError is an NsnetError with the stable code NETLINK_DECODE', () => {
    try {
      decodeMessages(T.bytes(1, 2, 3));
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof DecodeError);
      assert.equal(e.code, 'NETLINK_DECODE');
      assert.equal(e.name, 'NsnetError');
      assert.match(e.message, /^netlink decode: truncated nlmsghdr \(3 bytes\) at byte 0$/);
    }
  });
});
