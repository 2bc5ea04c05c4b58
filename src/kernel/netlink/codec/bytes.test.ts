/**
 * The byte reader/writer pair and the address converters, against hand-written bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, ByteWriter, DecodeError, align4, u16be } from './bytes.js';
import { bytesToIp, bytesToMac, ipFamily, ipToBytes, macToBytes } from './inet.js';
import { isNsnetError } from '../../../errors.js';

describe('ByteWriter / ByteReader', () => {
  it('writes little-endian fields, grows, pads and patches', () => {
    const w = new ByteWriter(1);
    w.u8(0xab).u16(0x0102).u32(0xdeadbeef).i32(-2).bytes(Buffer.from([7, 7, 7])).pad4();
    assert.equal(w.length, 16);
    w.zeros(2).pad4();
    w.patchU16(1, 0xffee);
    w.patchU32(3, 0x11223344);
    assert.deepStrictEqual(Buffer.from(w.finish()), Buffer.from([
      0xab, 0xee, 0xff, 0x44, 0x33, 0x22, 0x11, 0xfe, 0xff, 0xff, 0xff, 7, 7, 7, 0, 0, 0, 0, 0, 0,
    ]));
  });

  it('u32 accepts values above 2^31 and negative numbers as their unsigned form', () => {
    const w = new ByteWriter(4);
    w.u32(0xffffffff).u32(-1);
    assert.deepStrictEqual(Buffer.from(w.finish()), Buffer.alloc(8, 0xff));
  });

  it('reads what it is given and refuses to read past the end, naming the absolute offset', () => {
    const buf = Buffer.from([1, 2, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 9]);
    const r = new ByteReader(buf, 0, buf.length, 500);
    assert.deepStrictEqual([r.u8(), r.u16(), r.u32(), r.i32()], [1, 2, 3, -1]);
    assert.equal(r.remaining, 1);
    assert.throws(() => r.u16(), (e: unknown) => e instanceof DecodeError && e.offset === 511 && /u16 needs 2 bytes, 1 left/.test(e.message));
    assert.deepStrictEqual(r.bytes(1), Buffer.from([9]));
    assert.throws(() => r.skip(1), (e: unknown) => e instanceof DecodeError && e.offset === 512);
  });

  it('a reader bounded by `end` does not see bytes beyond it', () => {
    const r = new ByteReader(Buffer.from([1, 2, 3, 4, 5, 6]), 2, 4);
    assert.equal(r.u16(), 0x0403);
    assert.throws(() => r.u8(), DecodeError);
  });

  it('align4 and u16be', () => {
    assert.deepStrictEqual([0, 1, 2, 3, 4, 5, 8].map(align4), [0, 4, 4, 4, 4, 8, 8]);
    assert.deepStrictEqual(u16be(4789), Buffer.from([0x12, 0xb5]));
  });
});

describe('address bytes', () => {
  const cases: Array<[string, number[]]> = [
    ['10.0.0.1', [10, 0, 0, 1]],
    ['255.255.255.255', [255, 255, 255, 255]],
    ['::', Array(16).fill(0)],
    ['::1', [...Array(15).fill(0), 1]],
    ['fd00:1::1', [0xfd, 0, 0, 1, ...Array(11).fill(0), 1]],
    ['fe80::ff:fe00:1', [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 1]],
    ['2001:db8:0:1:1:1:1:1', [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]],
    ['1::', [0, 1, ...Array(14).fill(0)]],
  ];
  for (const [text, b] of cases) {
    it(`${text} ↔ ${b.length} bytes`, () => {
      assert.deepStrictEqual(ipToBytes(text), Buffer.from(b));
      assert.equal(bytesToIp(Buffer.from(b)), text);
    });
  }

  it('accepts non-canonical IPv6 text and prints RFC 5952 form', () => {
    assert.equal(bytesToIp(ipToBytes('FD00:0001:0000:0000:0000:0000:0000:0001')), 'fd00:1::1');
    assert.equal(bytesToIp(ipToBytes('::ffff:192.0.2.1')), '::ffff:c000:201');
    // leftmost of two equal zero runs is compressed; a single zero group is not
    assert.equal(bytesToIp(ipToBytes('1:0:0:2:0:0:3:4')), '1::2:0:0:3:4');
    assert.equal(bytesToIp(ipToBytes('1:0:2:3:4:5:6:7')), '1:0:2:3:4:5:6:7');
  });

  it('refuses invalid addresses with ADDRESS_INVALID', () => {
    for (const bad of ['10.0.0.300', 'zz::1', '10.0.0', '', 'fe80::1%eth0', '1.2.3.4/24']) {
      assert.throws(() => ipToBytes(bad), (e: unknown) => isNsnetError(e, 'ADDRESS_INVALID') && e.object === bad, bad);
    }
    assert.equal(ipFamily('10.1.2.3'), 4);
    assert.equal(ipFamily('fd00::1'), 6);
    assert.throws(() => bytesToIp(Buffer.alloc(5)), (e: unknown) => isNsnetError(e, 'ADDRESS_INVALID'));
  });

  it('MAC text ↔ 6 bytes; invalid MACs are MAC_INVALID', () => {
    assert.deepStrictEqual(macToBytes('02:00:0A:ff:00:01'), Buffer.from([2, 0, 10, 255, 0, 1]));
    assert.equal(bytesToMac(Buffer.from([2, 0, 10, 255, 0, 1])), '02:00:0a:ff:00:01');
    for (const bad of ['02:00:00:00:00', '02:00:00:00:00:0g', '0200.0000.0001', '02-00-00-00-00-01', '']) {
      assert.throws(() => macToBytes(bad), (e: unknown) => isNsnetError(e, 'MAC_INVALID'), bad);
    }
  });
});
