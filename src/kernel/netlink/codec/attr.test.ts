/**
 * Netlink attributes: builders, nesting, flag bits, 4-byte alignment, unknown attributes,
 * malformed input. Expected bytes come from the hand-written builder in testing.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, DecodeError } from './bytes.js';
import {
  type Attr, attrBytes, attrFlag, attrI32, attrNested, attrString, attrU16, attrU32, attrU8, attrsLength,
  decodeAttrs, encodeAttrs, findAttr, getBytes, getI32, getNested, getString, getU32, getU8,
  readI32, readNested, readString, readU16, readU32, readU8,
} from './attr.js';
import * as T from './testing.js';

function encode(attrs: readonly Attr[]): Buffer {
  const w = new ByteWriter(8);
  encodeAttrs(w, attrs);
  return Buffer.from(w.finish());
}

/** Decode → equals `expected` (when given) → encode → the same bytes. */
function roundTrip(bytes: Buffer, expected?: Attr[]): Attr[] {
  const attrs = decodeAttrs(bytes);
  if (expected) assert.deepStrictEqual(attrs, expected);
  assert.deepStrictEqual(encode(attrs), bytes);
  assert.equal(attrsLength(attrs), bytes.length);
  return attrs;
}

function throwsDecodeAt(fn: () => unknown, offset: number, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
    assert.equal(e.code, 'NETLINK_DECODE');
    assert.equal(e.offset, offset, `offset (message: ${e.message})`);
    assert.match(e.message, new RegExp(`at byte ${offset}$`));
    if (message) assert.match(e.message, message);
    return true;
  });
}

describe('attribute builders', () => {
  const cases: Array<[string, Attr, Buffer]> = [
    ['u8', attrU8(7, 0x1ff), T.nla(7, T.u8(0xff))],
    ['u16', attrU16(1, 0xbeef), T.nla(1, T.u16(0xbeef))],
    ['u32', attrU32(4, 1500), T.nla(4, T.u32(1500))],
    ['u32 above 2^31', attrU32(4, 0xfffffffe), T.nla(4, T.u32(0xfffffffe))],
    ['i32 negative', attrI32(37, -1), T.nla(37, T.i32(-1))],
    ['string (NUL-terminated)', attrString(3, 'veth0'), T.nla(3, T.cstr('veth0'))],
    ['empty string', attrString(3, ''), T.nla(3, T.bytes(0))],
    ['utf-8 string', attrString(3, 'é1'), T.nla(3, T.bytes(0xc3, 0xa9, 0x31, 0))],
    ['bytes', attrBytes(1, Buffer.from([2, 0, 0, 0, 0, 1])), T.nla(1, T.bytes(2, 0, 0, 0, 0, 1))],
    ['flag (no payload)', attrFlag(9), T.nla(9, Buffer.alloc(0))],
    ['explicit flag bits', attrBytes(15, T.be16(4789), 0x4000), T.nla(15, T.be16(4789), 0x4000)],
  ];
  for (const [name, attr, bytes] of cases) {
    it(`${name}: encodes to the hand-built bytes and decodes back`, () => {
      assert.deepStrictEqual(encode([attr]), bytes);
      roundTrip(bytes, [attr]);
    });
  }

  it('builders accept a Uint8Array view without copying its neighbours', () => {
    const big = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const a = attrBytes(2, big.subarray(2, 5));
    assert.deepStrictEqual(encode([a]), T.nla(2, T.bytes(1, 2, 3)));
  });
});

describe('alignment and padding', () => {
  for (let n = 0; n <= 9; n++) {
    it(`a ${n}-byte payload is padded to ${Math.ceil((4 + n) / 4) * 4} bytes, length field ${4 + n}`, () => {
      const payload = Buffer.alloc(n, 0xab);
      const bytes = T.nla(5, payload);
      assert.equal(bytes.length % 4, 0);
      assert.equal(bytes.readUInt16LE(0), 4 + n);
      const [a] = roundTrip(bytes, [{ type: 5, flags: 0, data: payload }]);
      assert.equal(a!.data.length, n);
    });
  }

  it('a sequence of odd-sized attributes round-trips, each starting 4-aligned', () => {
    const bytes = Buffer.concat([T.nla(1, T.bytes(1)), T.nla(2, T.cstr('abc')), T.nla(3, T.bytes(1, 2, 3, 4, 5)), T.nla(4, T.u16(9))]);
    const attrs = roundTrip(bytes);
    assert.deepStrictEqual(attrs.map((a) => [a.type, a.data.length]), [[1, 1], [2, 4], [3, 5], [4, 2]]);
  });

  it('accepts a last attribute without its trailing padding (the kernel may omit it)', () => {
    const unpadded = Buffer.concat([T.nla(1, T.u32(1)), T.u16(5), T.u16(2), T.bytes(0x7f)]);
    assert.equal(unpadded.length, 13);
    const attrs = decodeAttrs(unpadded);
    assert.deepStrictEqual(attrs, [{ type: 1, flags: 0, data: T.u32(1) }, { type: 2, flags: 0, data: T.bytes(0x7f) }]);
    // Re-encoding adds the padding back.
    assert.deepStrictEqual(encode(attrs), Buffer.concat([unpadded, Buffer.alloc(3)]));
  });

  it('an empty attribute list is zero bytes both ways', () => {
    assert.deepStrictEqual(decodeAttrs(Buffer.alloc(0)), []);
    assert.equal(encode([]).length, 0);
  });
});

describe('nested attributes', () => {
  // IFLA_LINKINFO { IFLA_INFO_KIND "vxlan", IFLA_INFO_DATA { ID 42, PORT 4789 (BE), LEARNING 0 } }
  const data = T.nest(2, T.nla(1, T.u32(42)), T.nla(15, T.be16(4789)), T.nla(7, T.u8(0)));
  const linkinfo = T.nest(18, T.nla(1, T.cstr('vxlan')), data);

  it('attrNested builds the same bytes as the hand-made nest, NLA_F_NESTED set', () => {
    const built = attrNested(18, [
      attrString(1, 'vxlan'),
      attrNested(2, [attrU32(1, 42), attrBytes(15, T.be16(4789)), attrU8(7, 0)]),
    ]);
    assert.equal(built.flags, 0x8000);
    assert.deepStrictEqual(encode([built]), linkinfo);
  });

  it('decodes lazily: the nest is kept raw, readNested/getNested open it', () => {
    const [outer] = roundTrip(linkinfo);
    assert.equal(outer!.type, 18);
    assert.equal(outer!.flags, 0x8000);
    const inner = readNested(outer!);
    assert.equal(getString(inner, 1), 'vxlan');
    const d = getNested(inner, 2)!;
    assert.equal(getU32(d, 1), 42);
    assert.equal(getBytes(d, 15)!.readUInt16BE(0), 4789);
    assert.equal(getU8(d, 7), 0);
    assert.deepStrictEqual(encode(d), Buffer.concat([T.nla(1, T.u32(42)), T.nla(15, T.be16(4789)), T.nla(7, T.u8(0))]));
  });

  it('an empty nest is a bare header with the nested flag', () => {
    assert.deepStrictEqual(encode([attrNested(6, [])]), T.nla(6, Buffer.alloc(0), 0x8000));
    assert.deepStrictEqual(readNested(decodeAttrs(T.nla(6, Buffer.alloc(0), 0x8000))[0]!), []);
  });

  it('a nest sent without NLA_F_NESTED (older kernels, e.g. VETH_INFO_PEER) keeps flags 0', () => {
    const bytes = T.nla(2, T.nla(1, T.u32(1)));
    const [a] = roundTrip(bytes);
    assert.equal(a!.flags, 0);
    assert.deepStrictEqual(readNested(a!), [{ type: 1, flags: 0, data: T.u32(1) }]);
  });
});

describe('flag bits and unknown attributes', () => {
  it('keeps NLA_F_NESTED / NLA_F_NET_BYTEORDER separately from the type', () => {
    const bytes = Buffer.concat([T.nla(3, T.u32(1), 0x8000), T.nla(3, T.be16(80), 0x4000), T.nla(3, T.u8(1), 0xc000)]);
    const attrs = roundTrip(bytes);
    assert.deepStrictEqual(attrs.map((a) => [a.type, a.flags]), [[3, 0x8000], [3, 0x4000], [3, 0xc000]]);
  });

  it('re-encodes attributes it does not know byte for byte (types, flags, odd lengths)', () => {
    const bytes = Buffer.concat([
      T.nla(0x3fff, T.bytes(0xde, 0xad, 0xbe)),
      T.nla(0, Buffer.alloc(0)),
      T.nla(61, T.nest(1, T.nla(2, T.u32(3)))),
      T.nla(999, T.bytes(1, 2, 3, 4, 5, 6, 7), 0x8000),
    ]);
    roundTrip(bytes);
  });

  it('keeps duplicate attributes in order; findAttr returns the first', () => {
    const bytes = Buffer.concat([T.nla(53, T.cstr('alt1')), T.nla(53, T.cstr('alt2'))]);
    const attrs = roundTrip(bytes);
    assert.equal(readString(findAttr(attrs, 53)!), 'alt1');
    assert.equal(attrs.length, 2);
  });
});

describe('typed readers', () => {
  const attrs = decodeAttrs(Buffer.concat([
    T.nla(1, T.u8(200)), T.nla(2, T.u16(65000)), T.nla(3, T.u32(4000000000)), T.nla(4, T.i32(-5)),
    T.nla(5, Buffer.from('no-nul')), T.nla(6, Buffer.from('a\0junk')),
  ]));
  it('read each width little-endian', () => {
    assert.equal(readU8(attrs[0]!), 200);
    assert.equal(readU16(attrs[1]!), 65000);
    assert.equal(readU32(attrs[2]!), 4000000000);
    assert.equal(readI32(attrs[3]!), -5);
    assert.equal(getI32(attrs, 4), -5);
  });
  it('strings stop at the first NUL, and tolerate a missing one', () => {
    assert.equal(readString(attrs[4]!), 'no-nul');
    assert.equal(readString(attrs[5]!), 'a');
  });
  it('absent attributes read as undefined', () => {
    assert.equal(getU32(attrs, 77), undefined);
    assert.equal(getString(attrs, 77), undefined);
    assert.equal(getNested(attrs, 77), undefined);
  });
  it('a payload too short for its type is a DecodeError at the attribute', () => {
    const buf = Buffer.concat([T.nla(1, T.u32(0)), T.nla(2, T.u16(1))]);
    const a = decodeAttrs(buf, 100);
    throwsDecodeAt(() => readU32(a[1]!), 108, /attribute 2 \(u32\) has 2 bytes, needs 4/);
    throwsDecodeAt(() => readU32(attrU16(2, 1)), 0); // built, not decoded: no position to name
  });
});

describe('malformed attributes', () => {
  it('an attribute whose length overruns its container', () => {
    // second attribute claims 12 bytes, only 8 remain
    const buf = Buffer.concat([T.nla(1, T.u32(1)), T.u16(12), T.u16(2), T.u32(0)]);
    throwsDecodeAt(() => decodeAttrs(buf), 8, /attribute type 2 length 12 overruns its container/);
    throwsDecodeAt(() => decodeAttrs(buf, 40), 48);
  });

  it('an attribute length shorter than its own header', () => {
    const buf = Buffer.concat([T.nla(1, T.u32(1)), T.u16(3), T.u16(2), T.u32(0)]);
    throwsDecodeAt(() => decodeAttrs(buf, 20), 28, /shorter than its header/);
    // 0 would otherwise loop forever
    throwsDecodeAt(() => decodeAttrs(Buffer.alloc(8)), 0);
  });

  for (let n = 1; n <= 3; n++) {
    it(`${n} trailing byte(s), too few for a header`, () => {
      const buf = Buffer.concat([T.nla(1, T.u32(1)), Buffer.alloc(n)]);
      throwsDecodeAt(() => decodeAttrs(buf, 16), 24, /trailing bytes/);
    });
  }

  it('an overrun inside a nest names its absolute offset, however deep', () => {
    // outer(@0) { a(@4), inner(@12) { b(@16), bad(@24) claims 40 bytes } }
    const badInner = Buffer.concat([T.nla(1, T.u32(5)), T.u16(40), T.u16(2), T.u32(0)]);
    const buf = T.nest(18, T.nla(1, T.u32(9)), T.nla(2, badInner, 0x8000));
    const [outer] = decodeAttrs(buf, 1000); // the nest itself is well-formed
    const inner = readNested(outer!);
    throwsDecodeAt(() => readNested(inner[1]!), 1024, /length 40 overruns/);
  });
});
