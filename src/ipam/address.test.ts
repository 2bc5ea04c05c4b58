import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNsnetError, type ErrorCode } from '../errors.js';
import { IpAddress, isUnicastMac, MacAddress, macFromIPv4, macFromRandomBytes, NSNET_MAC_PREFIX, randomMac } from './address.js';

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => isNsnetError(e, code) && (message === undefined || message.test(e.message)));
}

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('IPv4 parse', () => {
  it('parses dotted quads to the integer computed by hand', () => {
    const cases: [string, bigint][] = [
      ['0.0.0.0', 0n],
      ['255.255.255.255', 4294967295n],
      ['10.89.0.1', BigInt(10 * 16777216 + 89 * 65536 + 1)],
      ['192.0.2.1', BigInt(192 * 16777216 + 0 * 65536 + 2 * 256 + 1)],
      ['1.2.3.4', 0x01020304n],
    ];
    for (const [text, value] of cases) {
      const a = IpAddress.parse(text);
      assert.equal(a.family, 4, text);
      assert.equal(a.value, value, text);
      assert.equal(a.toString(), text);
    }
  });

  it('rejects leading zeros, out-of-range octets and malformed text', () => {
    for (const bad of [
      '010.1.1.1', '1.1.1.01', '00.0.0.0', '256.0.0.1', '1.2.3.300', '1.2.3', '1.2.3.4.5', '1.2.3.', '.1.2.3',
      '1..3.4', '', ' 1.2.3.4', '1.2.3.4 ', '+1.2.3.4', '1.2.3.-4', '0x1.2.3.4', '1.2.3.4/24', '1e2.0.0.1',
      '1234.0.0.1', 'a.b.c.d', '\u0661.2.3.4',
    ]) {
      throwsCode(() => IpAddress.parse(bad), 'ADDRESS_INVALID');
    }
  });

  it('says why a leading zero is refused', () => {
    throwsCode(() => IpAddress.parse('010.1.1.1'), 'ADDRESS_INVALID', /leading zeros/);
  });
});

describe('IPv6 parse and RFC 5952 format', () => {
  it('formats canonical text (table written by hand from RFC 5952 §4)', () => {
    const cases: [string, string][] = [
      ['2001:db8::1', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::', 'fe80::'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:DB8::A', '2001:db8::a'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed (§4.2.2)
      ['2001:db8:0:0:1:1:1:1', '2001:db8::1:1:1:1'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // longest run wins (§4.2.3)
      ['1:0:0:0:2:0:0:0', '1::2:0:0:0'], // first run wins a tie (§4.2.3)
      ['0:0:1:0:0:0:0:0', '0:0:1::'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
      ['fd00:10::', 'fd00:10::'],
      ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // IPv4-mapped keeps the dotted tail (§5)
      ['::ffff:c000:0201', '::ffff:192.0.2.1'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'], // not mapped: plain hex
      ['::1.2.3.4', '::102:304'],
    ];
    for (const [input, canonical] of cases) {
      const a = IpAddress.parse(input);
      assert.equal(a.family, 6, input);
      assert.equal(a.toString(), canonical, input);
      assert.ok(IpAddress.parse(canonical).equals(a), `${canonical} re-parses to the same address`);
    }
  });

  it('parses to the integer built group by group', () => {
    assert.equal(IpAddress.parse('2001:db8::1').value, (0x2001n << 112n) | (0xdb8n << 96n) | 1n);
    assert.equal(IpAddress.parse('::').value, 0n);
    assert.equal(IpAddress.parse('::ffff:192.0.2.1').value, (0xffffn << 32n) | 0xc0000201n);
  });

  it('rejects zone ids, several ::, bad groups and wrong group counts', () => {
    for (const bad of [
      '1::2::3', ':::', '1:::2', 'fe80::1%eth0', 'fe80::1%1', ':1::', '1::2:', ':1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:',
      '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7::8', '::1:2:3:4:5:6:7:8', '12345::', 'g::', '::1.2.3',
      '1.2.3.4::', '::1.2.3.4:5', '[::1]', '::ffff:010.0.0.1', '::ffff:1.2.3.4.5', '1:2:3:4:5:6:7:1.2.3.4', ' ::1',
      '::1 ', '0x1::',
    ]) {
      throwsCode(() => IpAddress.parse(bad), 'ADDRESS_INVALID');
    }
    throwsCode(() => IpAddress.parse('fe80::1%eth0'), 'ADDRESS_INVALID', /zone/);
    throwsCode(() => IpAddress.parse('1::2::3'), 'ADDRESS_INVALID', /only once/);
  });

  it('agrees with the WHATWG URL serializer on 2,000 random addresses (independent oracle)', () => {
    const rand = prng(5952);
    for (let n = 0; n < 2000; n++) {
      // Random groups, each zero with probability 1/2, to make many runs of zeros.
      const groups = Array.from({ length: 8 }, () => (rand() < 0.5 ? 0 : Math.floor(rand() * 0x10000)));
      if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) groups[5] = 0; // not IPv4-mapped
      const full = groups.map((g) => g.toString(16).padStart(4, '0').toUpperCase()).join(':');
      const expected = new URL(`http://[${full}]/`).hostname.slice(1, -1);
      const a = IpAddress.parse(full);
      assert.equal(a.toString(), expected, full);
      const bytes = Buffer.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
      assert.deepEqual(a.toBytes(), bytes, full);
      assert.ok(IpAddress.parse(expected).equals(a));
    }
  });
});

describe('bytes, comparison, arithmetic', () => {
  it('converts to and from netlink byte order', () => {
    assert.deepEqual(IpAddress.parse('192.0.2.1').toBytes(), Buffer.from([192, 0, 2, 1]));
    assert.deepEqual(IpAddress.parse('2001:db8::1').toBytes(), Buffer.from('20010db8000000000000000000000001', 'hex'));
    assert.equal(IpAddress.fromBytes(Buffer.from([10, 89, 0, 2])).toString(), '10.89.0.2');
    assert.equal(IpAddress.fromBytes(new Uint8Array([10, 89, 0, 2])).family, 4);
    const v6 = IpAddress.fromBytes(Buffer.from('fe800000000000000000000000000001', 'hex'));
    assert.equal(v6.family, 6);
    assert.equal(v6.toString(), 'fe80::1');
    throwsCode(() => IpAddress.fromBytes(Buffer.alloc(5)), 'ADDRESS_INVALID');
    throwsCode(() => IpAddress.fromBytes(Buffer.alloc(0)), 'ADDRESS_INVALID');
  });

  it('round-trips random IPv4 bytes through text', () => {
    const rand = prng(4);
    for (let n = 0; n < 500; n++) {
      const bytes = Buffer.from(Array.from({ length: 4 }, () => Math.floor(rand() * 256)));
      const text = [...bytes].join('.');
      const a = IpAddress.parse(text);
      assert.deepEqual(a.toBytes(), bytes);
      assert.equal(a.toString(), text);
      assert.ok(IpAddress.fromBytes(bytes).equals(a));
    }
  });

  it('orders by family then value', () => {
    const sorted = ['10.0.0.1', '10.0.0.2', '10.0.1.0', '::', '::1', 'fd00::'].map((t) => IpAddress.parse(t));
    const shuffled = [sorted[4]!, sorted[1]!, sorted[5]!, sorted[0]!, sorted[3]!, sorted[2]!];
    assert.deepEqual(shuffled.sort((a, b) => a.compare(b)).map(String), sorted.map(String));
    assert.equal(IpAddress.parse('10.0.0.1').compare(IpAddress.parse('10.0.0.1')), 0);
    assert.ok(IpAddress.parse('10.0.0.1').equals(IpAddress.parse('10.0.0.1')));
    assert.ok(!IpAddress.parse('0.0.0.1').equals(IpAddress.parse('::1')));
  });

  it('adds offsets with carries and refuses to leave the address space', () => {
    assert.equal(IpAddress.parse('10.0.0.255').add(1).toString(), '10.0.1.0');
    assert.equal(IpAddress.parse('10.0.1.0').add(-1).toString(), '10.0.0.255');
    assert.equal(IpAddress.parse('10.0.0.0').add(65536n).toString(), '10.1.0.0');
    assert.equal(IpAddress.parse('2001:db8::ffff').add(1).toString(), '2001:db8::1:0');
    assert.equal(IpAddress.parse('2001:db8::').add(1n << 64n).toString(), '2001:db8:0:1::');
    throwsCode(() => IpAddress.parse('255.255.255.255').add(1), 'ADDRESS_INVALID');
    throwsCode(() => IpAddress.parse('0.0.0.0').add(-1), 'ADDRESS_INVALID');
    throwsCode(() => IpAddress.parse('::').add(-1n), 'ADDRESS_INVALID');
    throwsCode(() => IpAddress.parse('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff').add(1), 'ADDRESS_INVALID');
    throwsCode(() => IpAddress.fromBigInt(4, 1n << 32n), 'ADDRESS_INVALID');
  });

  it('serialises to JSON as text', () => {
    assert.equal(JSON.stringify({ a: IpAddress.parse('fd00::1') }), '{"a":"fd00::1"}');
  });
});

describe('MAC addresses', () => {
  it('parses either case and formats lowercase', () => {
    const m = MacAddress.parse('AA:bb:CC:dd:EE:ff');
    assert.equal(m.toString(), 'aa:bb:cc:dd:ee:ff');
    assert.deepEqual(m.toBytes(), Buffer.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
    assert.ok(MacAddress.fromBytes(Buffer.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])).equals(m));
    assert.equal(MacAddress.fromBytes(new Uint8Array([0, 1, 2, 3, 4, 5])).toString(), '00:01:02:03:04:05');
  });

  it('rejects other notations and wrong lengths', () => {
    for (const bad of [
      'aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa-bb-cc-dd-ee-ff', 'aabb.ccdd.eeff', 'aabbccddeeff', 'a:bb:cc:dd:ee:ff',
      'gg:bb:cc:dd:ee:ff', ' aa:bb:cc:dd:ee:ff', 'aa:bb:cc:dd:ee:ff ', '',
    ]) {
      throwsCode(() => MacAddress.parse(bad), 'MAC_INVALID');
    }
    throwsCode(() => MacAddress.fromBytes(Buffer.alloc(5)), 'MAC_INVALID');
  });

  it('tells endpoint-usable unicast MACs from group and zero MACs', () => {
    const yes = ['02:42:ac:11:00:02', '00:16:3e:00:00:01', '02:6e:0a:59:00:02', 'fe:ff:ff:ff:ff:ff'];
    const no = ['01:00:5e:00:00:01', '33:33:00:00:00:01', 'ff:ff:ff:ff:ff:ff', '03:00:00:00:00:00', '00:00:00:00:00:00'];
    for (const t of yes) assert.equal(isUnicastMac(MacAddress.parse(t)), true, t);
    for (const t of no) assert.equal(isUnicastMac(MacAddress.parse(t)), false, t);
    assert.equal(MacAddress.parse('02:00:00:00:00:01').isLocallyAdministered, true);
    assert.equal(MacAddress.parse('00:16:3e:00:00:01').isLocallyAdministered, false);
  });

  it('derives 02:6e:<IPv4 octets in hex> from an IPv4 address', () => {
    assert.deepEqual([...NSNET_MAC_PREFIX], [0x02, 0x6e]);
    assert.equal(macFromIPv4(IpAddress.parse('10.89.0.2')).toString(), '02:6e:0a:59:00:02');
    assert.equal(macFromIPv4(IpAddress.parse('192.168.255.254')).toString(), '02:6e:c0:a8:ff:fe');
    const m = macFromIPv4(IpAddress.parse('0.0.0.0'));
    assert.ok(isUnicastMac(m) && m.isLocallyAdministered);
    throwsCode(() => macFromIPv4(IpAddress.parse('fd00::2')), 'ADDRESS_INVALID');
  });

  it('makes locally administered unicast MACs from random bytes', () => {
    assert.equal(macFromRandomBytes(Buffer.from([0xff, 1, 2, 3, 4, 5])).toString(), 'f2:01:02:03:04:05');
    assert.equal(macFromRandomBytes(Buffer.from([0x01, 0, 0, 0, 0, 0])).toString(), '02:00:00:00:00:00');
    assert.equal(macFromRandomBytes(Buffer.from([0x5d, 9, 9, 9, 9, 9, 7, 7])).toString(), '52:09:09:09:09:09');
    throwsCode(() => macFromRandomBytes(Buffer.alloc(5)), 'MAC_INVALID');
    for (let first = 0; first < 256; first++) {
      const m = macFromRandomBytes(Buffer.from([first, 0, 0, 0, 0, 0]));
      assert.ok(isUnicastMac(m) && m.isLocallyAdministered, `first octet ${first}`);
      assert.equal(m.toBytes()[0]! & 0x0f, 0x02, 'SLAP AAI quadrant');
    }
    const seen = new Set<string>();
    for (let n = 0; n < 100; n++) {
      const m = randomMac();
      assert.ok(isUnicastMac(m) && m.isLocallyAdministered);
      seen.add(m.toString());
    }
    assert.equal(seen.size, 100);
  });
});
