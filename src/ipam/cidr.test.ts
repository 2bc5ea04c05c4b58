import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { isNsnetError, type ErrorCode } from '../errors.js';
import { IpAddress } from './address.js';
import { Cidr, parseCidr, parseInterfaceCidr, prefixesOverlap } from './cidr.js';

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => isNsnetError(e, code) && (message === undefined || message.test(e.message)));
}

function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ip = (t: string): IpAddress => IpAddress.parse(t);

describe('parseCidr', () => {
  it('parses networks and prints them canonically', () => {
    const cases: [string, string, number][] = [
      ['10.0.0.0/24', '10.0.0.0/24', 4],
      ['fd00:10::/64', 'fd00:10::/64', 6],
      ['FD00:0010:0000::/64', 'fd00:10::/64', 6],
      ['0.0.0.0/0', '0.0.0.0/0', 4],
      ['::/0', '::/0', 6],
      ['10.0.0.7/32', '10.0.0.7/32', 4],
      ['2001:db8::5/128', '2001:db8::5/128', 6],
      ['2001:db8::/32', '2001:db8::/32', 6],
    ];
    for (const [input, canonical, family] of cases) {
      const c = parseCidr(input);
      assert.equal(c.toString(), canonical);
      assert.equal(c.family, family);
    }
  });

  it('rejects host bits and names the network meant', () => {
    throwsCode(() => parseCidr('10.0.0.5/24'), 'CIDR_INVALID', /host bits.*10\.0\.0\.0\/24/);
    throwsCode(() => parseCidr('2001:db8::1/64'), 'CIDR_INVALID', /2001:db8::\/64/);
    throwsCode(() => parseCidr('10.0.0.1/31'), 'CIDR_INVALID', /10\.0\.0\.0\/31/);
  });

  it('rejects malformed text with CIDR_INVALID', () => {
    for (const bad of [
      '10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/024', '10.0.0.0/-1', '10.0.0.0/+8', '10.0.0.0/24/1', '::/129',
      '010.0.0.0/8', '/24', '10.0.0.0/ 24', '10.0.0.0/2.5', 'fe80::%eth0/64', '',
    ]) {
      throwsCode(() => parseCidr(bad), 'CIDR_INVALID');
    }
  });
});

describe('parseInterfaceCidr', () => {
  it('keeps the host address and derives the subnet', () => {
    const a = parseInterfaceCidr('10.0.0.5/24');
    assert.equal(a.address.toString(), '10.0.0.5');
    assert.equal(a.prefixLength, 24);
    assert.equal(a.subnet.toString(), '10.0.0.0/24');
    assert.equal(a.toString(), '10.0.0.5/24');
    assert.equal(a.family, 4);
    const b = parseInterfaceCidr('fd00::5/64');
    assert.equal(b.subnet.toString(), 'fd00::/64');
    assert.equal(b.toString(), 'fd00::5/64');
    assert.equal(parseInterfaceCidr('10.0.0.0/24').address.toString(), '10.0.0.0');
    assert.equal(parseInterfaceCidr('10.1.2.3/0').subnet.toString(), '0.0.0.0/0');
    assert.ok(parseInterfaceCidr('10.0.0.5/24').equals(parseInterfaceCidr('10.0.0.5/24')));
    assert.ok(!parseInterfaceCidr('10.0.0.5/24').equals(parseInterfaceCidr('10.0.0.5/25')));
    throwsCode(() => parseInterfaceCidr('10.0.0.5'), 'CIDR_INVALID');
    throwsCode(() => parseInterfaceCidr('10.0.0.5/33'), 'CIDR_INVALID');
  });
});

describe('sizes, usable range, broadcast', () => {
  // Columns computed by hand: size, first usable, last usable, broadcast, last address.
  const table: [string, bigint, string, string, string | undefined, string][] = [
    ['10.0.0.0/24', 256n, '10.0.0.1', '10.0.0.254', '10.0.0.255', '10.0.0.255'],
    ['10.0.0.0/30', 4n, '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.3'],
    ['10.0.0.0/31', 2n, '10.0.0.0', '10.0.0.1', undefined, '10.0.0.1'],
    ['10.0.0.7/32', 1n, '10.0.0.7', '10.0.0.7', undefined, '10.0.0.7'],
    ['10.89.0.0/16', 65536n, '10.89.0.1', '10.89.255.254', '10.89.255.255', '10.89.255.255'],
    ['0.0.0.0/0', 4294967296n, '0.0.0.1', '255.255.255.254', '255.255.255.255', '255.255.255.255'],
    ['fd00::/64', 18446744073709551616n, 'fd00::1', 'fd00::ffff:ffff:ffff:ffff', undefined, 'fd00::ffff:ffff:ffff:ffff'],
    ['2001:db8::/126', 4n, '2001:db8::1', '2001:db8::3', undefined, '2001:db8::3'],
    ['2001:db8::/127', 2n, '2001:db8::', '2001:db8::1', undefined, '2001:db8::1'],
    ['2001:db8::5/128', 1n, '2001:db8::5', '2001:db8::5', undefined, '2001:db8::5'],
    ['::/0', 2n ** 128n, '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', undefined, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ];
  for (const [text, size, first, last, broadcast, lastAddress] of table) {
    it(text, () => {
      const c = parseCidr(text);
      assert.equal(c.size, size);
      assert.equal(c.firstUsable.toString(), first);
      assert.equal(c.lastUsable.toString(), last);
      assert.equal(c.broadcast?.toString(), broadcast);
      assert.equal(c.last.toString(), lastAddress);
    });
  }

  it('knows which addresses are usable hosts', () => {
    const v4 = parseCidr('10.0.0.0/24');
    assert.deepEqual(
      ['10.0.0.0', '10.0.0.1', '10.0.0.254', '10.0.0.255', '10.0.1.1'].map((t) => v4.isUsable(ip(t))),
      [false, true, true, false, false],
    );
    const p2p = parseCidr('10.0.0.0/31');
    assert.ok(p2p.isUsable(ip('10.0.0.0')) && p2p.isUsable(ip('10.0.0.1')));
    const v6 = parseCidr('fd00::/64');
    assert.deepEqual(
      ['fd00::', 'fd00::1', 'fd00::ffff:ffff:ffff:ffff', 'fd00:0:0:1::'].map((t) => v6.isUsable(ip(t))),
      [false, true, true, false],
    );
    const v6p2p = parseCidr('2001:db8::/127');
    assert.ok(v6p2p.isUsable(ip('2001:db8::')) && v6p2p.isUsable(ip('2001:db8::1')));
    assert.ok(!v4.isUsable(ip('::a00:1')));
  });
});

describe('contains and overlaps', () => {
  it('contains: hand cases', () => {
    const c = parseCidr('10.89.0.0/16');
    assert.ok(c.contains(ip('10.89.0.0')));
    assert.ok(c.contains(ip('10.89.255.255')));
    assert.ok(!c.contains(ip('10.90.0.0')));
    assert.ok(!c.contains(ip('10.88.255.255')));
    assert.ok(!c.contains(ip('::ffff:10.89.0.1')), 'IPv4-mapped IPv6 is not IPv4');
    assert.ok(parseCidr('0.0.0.0/0').contains(ip('255.255.255.255')));
    assert.ok(!parseCidr('0.0.0.0/0').contains(ip('::')));
    assert.ok(parseCidr('2001:db8::5/128').contains(ip('2001:db8::5')));
    assert.ok(!parseCidr('2001:db8::5/128').contains(ip('2001:db8::4')));
  });

  it('contains agrees with node:net BlockList on random prefixes (independent oracle)', () => {
    const rand = prng(17);
    for (const family of [4, 6] as const) {
      const length = family === 4 ? 4 : 16;
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const text = (bytes: number[]): string =>
        family === 4
          ? bytes.join('.')
          : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(':');
      for (let n = 0; n < 1000; n++) {
        const a = Array.from({ length }, () => Math.floor(rand() * 256));
        // b shares a random number of leading bytes with a, and one byte differs in a few bits.
        const b = [...a];
        const keep = Math.floor(rand() * (length + 1));
        for (let i = keep; i < length; i++) b[i] = Math.floor(rand() * 256);
        if (keep < length && rand() < 0.5) b[keep] = a[keep]! ^ (1 << Math.floor(rand() * 8));
        const prefix = Math.floor(rand() * (length * 8 + 1));
        const oracle = new BlockList();
        oracle.addSubnet(text(a), prefix, type);
        const cidr = parseInterfaceCidr(`${text(a)}/${prefix}`).subnet;
        assert.equal(cidr.contains(ip(text(b))), oracle.check(text(b), type), `${cidr.toString()} ∋ ${text(b)}`);
        assert.ok(cidr.contains(ip(text(a))));
      }
    }
  });

  it('overlaps: hand cases', () => {
    const o = (a: string, b: string): boolean => parseCidr(a).overlaps(parseCidr(b));
    assert.ok(o('10.0.0.0/8', '10.1.0.0/16') && o('10.1.0.0/16', '10.0.0.0/8'));
    assert.ok(o('10.0.0.0/24', '10.0.0.0/24'));
    assert.ok(!o('10.0.0.0/24', '10.0.1.0/24'));
    assert.ok(!o('10.0.0.0/25', '10.0.0.128/25'));
    assert.ok(o('10.0.0.0/23', '10.0.1.128/25'));
    assert.ok(!o('10.0.0.0/24', 'fd00::/64'));
    assert.ok(!o('0.0.0.0/0', '::/0'));
    assert.ok(o('::/0', 'fd00::/64'));
    assert.ok(!o('fd00::/64', 'fd00:0:0:1::/64'));
    assert.ok(o('fd00::/48', 'fd00:0:0:ffff::/64'));
    assert.ok(parseCidr('10.0.0.0/8').containsCidr(parseCidr('10.1.0.0/16')));
    assert.ok(!parseCidr('10.1.0.0/16').containsCidr(parseCidr('10.0.0.0/8')));
  });

  it('overlaps agrees with BlockList membership of the other network (independent oracle)', () => {
    const rand = prng(99);
    for (let n = 0; n < 1000; n++) {
      const bytesA = Array.from({ length: 4 }, () => Math.floor(rand() * 256));
      const bytesB = [10, bytesA[1]!, Math.floor(rand() * 4), Math.floor(rand() * 256)];
      bytesA[0] = 10;
      const pa = 8 + Math.floor(rand() * 25);
      const pb = 8 + Math.floor(rand() * 25);
      const a = parseInterfaceCidr(`${bytesA.join('.')}/${pa}`).subnet;
      const b = parseInterfaceCidr(`${bytesB.join('.')}/${pb}`).subnet;
      const inA = new BlockList();
      inA.addSubnet(a.network.toString(), pa, 'ipv4');
      const inB = new BlockList();
      inB.addSubnet(b.network.toString(), pb, 'ipv4');
      const expected = inA.check(b.network.toString(), 'ipv4') || inB.check(a.network.toString(), 'ipv4');
      assert.equal(a.overlaps(b), expected, `${a.toString()} vs ${b.toString()}`);
      assert.equal(b.overlaps(a), expected);
    }
  });

  it('Cidr.containing clears host bits', () => {
    assert.equal(Cidr.containing(ip('10.89.3.77'), 22).toString(), '10.89.0.0/22');
    assert.equal(Cidr.containing(ip('fd00::1:2:3:4'), 80).toString(), 'fd00::1:0:0:0/80');
    throwsCode(() => Cidr.containing(ip('10.0.0.1'), 33), 'CIDR_INVALID');
  });

  it('sorts by network then prefix length', () => {
    const list = ['10.1.0.0/16', 'fd00::/64', '10.0.0.0/24', '10.0.0.0/8'].map(parseCidr);
    assert.deepEqual(list.sort((a, b) => a.compare(b)).map(String), ['10.0.0.0/8', '10.0.0.0/24', '10.1.0.0/16', 'fd00::/64']);
    assert.ok(parseCidr('10.0.0.0/8').equals(parseCidr('10.0.0.0/8')));
    assert.equal(JSON.stringify(parseCidr('fd00::/64')), '"fd00::/64"');
  });
});

describe('prefixesOverlap', () => {
  it('takes interface addresses and networks, IPv4 and IPv6', () => {
    assert.equal(prefixesOverlap('10.244.3.7/16', '10.244.0.0/16'), true);
    assert.equal(prefixesOverlap('10.99.0.11/24', '10.244.0.0/16'), false);
    assert.equal(prefixesOverlap('10.0.0.0/8', '10.244.3.0/24'), true);
    assert.equal(prefixesOverlap('10.244.255.255/32', '10.244.0.0/16'), true);
    assert.equal(prefixesOverlap('10.245.0.0/32', '10.244.0.0/16'), false);
    assert.equal(prefixesOverlap('fd00:244:0:3::5/64', 'fd00:244::/48'), true);
    assert.equal(prefixesOverlap('fd00:245::1/64', 'fd00:244::/48'), false);
  });
  it('never across families', () => {
    assert.equal(prefixesOverlap('0.0.0.0/0', '::/0'), false);
  });
});
