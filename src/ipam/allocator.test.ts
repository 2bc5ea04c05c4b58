import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNsnetError, type ErrorCode } from '../errors.js';
import { IpAddress } from './address.js';
import { AddressSet, allocateAddress, defaultGateway } from './allocator.js';
import { parseCidr } from './cidr.js';

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
const ips = (...t: string[]): IpAddress[] => t.map(ip);
/** Dotted quad from an integer, by plain arithmetic (not the code under test). */
const dotted = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

describe('defaultGateway', () => {
  it('is the first usable address', () => {
    assert.equal(defaultGateway(parseCidr('10.89.0.0/24')).toString(), '10.89.0.1');
    assert.equal(defaultGateway(parseCidr('10.0.0.0/31')).toString(), '10.0.0.0');
    assert.equal(defaultGateway(parseCidr('10.0.0.9/32')).toString(), '10.0.0.9');
    assert.equal(defaultGateway(parseCidr('fd00:10::/64')).toString(), 'fd00:10::1');
    assert.equal(defaultGateway(parseCidr('2001:db8::/127')).toString(), '2001:db8::');
  });
});

describe('AddressSet', () => {
  it('has value semantics across parses and families', () => {
    const s = new AddressSet(ips('10.0.0.1', '::1'));
    assert.ok(s.has(ip('10.0.0.1')));
    assert.ok(s.has(ip('::1')));
    assert.ok(!s.has(ip('0.0.0.1')), 'IPv4 0.0.0.1 is not IPv6 ::1');
    assert.equal(s.size, 2);
    s.add(ip('10.0.0.1'));
    assert.equal(s.size, 2);
    assert.ok(s.delete(ip('10.0.0.1')));
    assert.ok(!s.delete(ip('10.0.0.1')));
    assert.deepEqual([...s].map(String), ['::1']);
  });
});

describe('allocateAddress: order', () => {
  const subnet = parseCidr('10.0.0.0/24');
  const gateway = ip('10.0.0.1');

  it('gives the lowest free address after the gateway on a fresh subnet', () => {
    assert.equal(allocateAddress({ subnet, gateway, inUse: [] }).toString(), '10.0.0.2');
    assert.equal(allocateAddress({ subnet, gateway, inUse: ips('10.0.0.2', '10.0.0.3') }).toString(), '10.0.0.4');
  });

  it('accepts any iterable of addresses, comparing by value', () => {
    const inUse = new Set(ips('10.0.0.2'));
    assert.equal(allocateAddress({ subnet, gateway, inUse }).toString(), '10.0.0.3');
    assert.equal(allocateAddress({ subnet, gateway, inUse: new AddressSet(ips('10.0.0.2')) }).toString(), '10.0.0.3');
  });

  it('without a gateway starts at the first usable address', () => {
    assert.equal(allocateAddress({ subnet, inUse: [] }).toString(), '10.0.0.1');
  });

  it('skips a gateway that is not the first address', () => {
    const gw = ip('10.0.0.254');
    assert.equal(allocateAddress({ subnet, gateway: gw, inUse: [] }).toString(), '10.0.0.1');
    assert.equal(allocateAddress({ subnet, gateway: gw, inUse: [], after: ip('10.0.0.253') }).toString(), '10.0.0.1');
  });

  it('continues after the cursor and wraps past the last usable address', () => {
    const inUse = ips('10.0.0.2', '10.0.0.3', '10.0.0.10', '10.0.0.11');
    assert.equal(allocateAddress({ subnet, gateway, inUse, after: ip('10.0.0.10') }).toString(), '10.0.0.12');
    // A released address behind the cursor (.4–.9 here) waits until the cursor comes round.
    assert.equal(allocateAddress({ subnet, gateway, inUse, after: ip('10.0.0.11') }).toString(), '10.0.0.12');
    assert.equal(allocateAddress({ subnet, gateway, inUse, after: ip('10.0.0.254') }).toString(), '10.0.0.4');
    assert.equal(allocateAddress({ subnet, gateway, inUse: [], after: ip('10.0.0.253') }).toString(), '10.0.0.254');
  });

  it('ignores a cursor outside the subnet or of the other family', () => {
    for (const after of ips('10.0.1.7', '10.0.0.255', '10.0.0.0', 'fd00::7')) {
      assert.equal(allocateAddress({ subnet, gateway, inUse: [], after }).toString(), '10.0.0.2', after.toString());
    }
  });

  it('never hands out the IPv6 subnet-router anycast address', () => {
    const v6 = parseCidr('fd00:10::/64');
    const gw6 = ip('fd00:10::1');
    assert.equal(allocateAddress({ subnet: v6, gateway: gw6, inUse: [] }).toString(), 'fd00:10::2');
    const after = ip('fd00:10::ffff:ffff:ffff:ffff');
    assert.equal(allocateAddress({ subnet: v6, gateway: gw6, inUse: [], after }).toString(), 'fd00:10::2');
    assert.equal(allocateAddress({ subnet: v6, inUse: [], after }).toString(), 'fd00:10::1');
  });

  it('matches a brute-force reading of the rule on random /27s', () => {
    const rand = prng(27);
    const small = parseCidr('10.0.0.32/27'); // usable .33–.62
    for (let n = 0; n < 2000; n++) {
      const usable = Array.from({ length: 30 }, (_, i) => 33 + i);
      const gwLast = usable[Math.floor(rand() * 30)]!;
      const used = usable.filter(() => rand() < 0.6);
      const afterLast = rand() < 0.2 ? undefined : 32 + Math.floor(rand() * 32); // sometimes .32 or .63: ignored
      const free = usable.filter((x) => x !== gwLast && !used.includes(x));
      const validCursor = afterLast !== undefined && afterLast >= 33 && afterLast <= 62;
      const expected = validCursor ? (free.find((x) => x > afterLast) ?? free[0]) : free[0];
      const request = {
        subnet: small,
        gateway: ip(`10.0.0.${gwLast}`),
        inUse: used.map((x) => ip(`10.0.0.${x}`)),
        after: afterLast === undefined ? undefined : ip(`10.0.0.${afterLast}`),
      };
      if (expected === undefined) {
        throwsCode(() => allocateAddress(request), 'IPAM_EXHAUSTED');
      } else {
        assert.equal(allocateAddress(request).toString(), `10.0.0.${expected}`);
      }
    }
  });
});

describe('allocateAddress: small and exhausted subnets', () => {
  it('a /30 holds two endpoints… minus the gateway', () => {
    const s = parseCidr('10.0.0.0/30');
    assert.equal(allocateAddress({ subnet: s, gateway: ip('10.0.0.1'), inUse: [] }).toString(), '10.0.0.2');
    throwsCode(
      () => allocateAddress({ subnet: s, gateway: ip('10.0.0.1'), inUse: ips('10.0.0.2') }),
      'IPAM_EXHAUSTED',
      /10\.0\.0\.0\/30/,
    );
  });

  it('/31 uses both addresses (RFC 3021)', () => {
    const s = parseCidr('10.0.0.0/31');
    assert.equal(allocateAddress({ subnet: s, gateway: ip('10.0.0.0'), inUse: [] }).toString(), '10.0.0.1');
    assert.equal(allocateAddress({ subnet: s, inUse: [] }).toString(), '10.0.0.0');
    throwsCode(() => allocateAddress({ subnet: s, gateway: ip('10.0.0.0'), inUse: ips('10.0.0.1') }), 'IPAM_EXHAUSTED');
  });

  it('/32 and /128 hold one address', () => {
    const s = parseCidr('10.0.0.9/32');
    assert.equal(allocateAddress({ subnet: s, inUse: [] }).toString(), '10.0.0.9');
    throwsCode(() => allocateAddress({ subnet: s, gateway: ip('10.0.0.9'), inUse: [] }), 'IPAM_EXHAUSTED', /10\.0\.0\.9\/32/);
    const s6 = parseCidr('2001:db8::9/128');
    assert.equal(allocateAddress({ subnet: s6, inUse: [] }).toString(), '2001:db8::9');
    throwsCode(() => allocateAddress({ subnet: s6, inUse: ips('2001:db8::9') }), 'IPAM_EXHAUSTED', /2001:db8::9\/128/);
  });

  it('/127 uses both addresses (RFC 6164)', () => {
    const s = parseCidr('2001:db8::/127');
    assert.equal(allocateAddress({ subnet: s, gateway: ip('2001:db8::'), inUse: [] }).toString(), '2001:db8::1');
    throwsCode(() => allocateAddress({ subnet: s, gateway: ip('2001:db8::'), inUse: ips('2001:db8::1') }), 'IPAM_EXHAUSTED');
  });

  it('/126 skips only the anycast address', () => {
    const s = parseCidr('2001:db8::/126');
    const got: string[] = [];
    const inUse = new AddressSet();
    for (;;) {
      try {
        const a = allocateAddress({ subnet: s, inUse });
        inUse.add(a);
        got.push(a.toString());
      } catch (e) {
        assert.ok(isNsnetError(e, 'IPAM_EXHAUSTED'));
        break;
      }
    }
    assert.deepEqual(got, ['2001:db8::1', '2001:db8::2', '2001:db8::3']);
  });
});

describe('allocateAddress: requested (static) addresses', () => {
  const subnet = parseCidr('10.0.0.0/24');
  const gateway = ip('10.0.0.1');
  const inUse = ips('10.0.0.7');

  it('returns a free requested address unchanged', () => {
    assert.equal(allocateAddress({ subnet, gateway, inUse, requested: ip('10.0.0.200') }).toString(), '10.0.0.200');
    assert.equal(
      allocateAddress({ subnet: parseCidr('10.0.0.0/31'), inUse: [], requested: ip('10.0.0.0') }).toString(),
      '10.0.0.0',
    );
  });

  it('refuses addresses outside the subnet', () => {
    throwsCode(() => allocateAddress({ subnet, gateway, inUse, requested: ip('10.0.1.5') }), 'IPAM_OUT_OF_SUBNET', /10\.0\.1\.5.*10\.0\.0\.0\/24/);
    throwsCode(() => allocateAddress({ subnet, gateway, inUse, requested: ip('fd00::5') }), 'IPAM_OUT_OF_SUBNET');
  });

  it('refuses reserved and used addresses, saying which', () => {
    const cases: [string, RegExp][] = [
      ['10.0.0.1', /gateway/],
      ['10.0.0.0', /network address/],
      ['10.0.0.255', /broadcast/],
      ['10.0.0.7', /already in use/],
    ];
    for (const [requested, why] of cases) {
      throwsCode(() => allocateAddress({ subnet, gateway, inUse, requested: ip(requested) }), 'IPAM_ADDRESS_TAKEN', why);
    }
    const v6 = parseCidr('fd00::/64');
    throwsCode(() => allocateAddress({ subnet: v6, inUse: [], requested: ip('fd00::') }), 'IPAM_ADDRESS_TAKEN', /anycast/);
    assert.equal(allocateAddress({ subnet: v6, inUse: [], requested: ip('fd00::ffff:ffff:ffff:ffff') }).toString(), 'fd00::ffff:ffff:ffff:ffff');
  });
});

describe('allocateAddress: filling a /16', () => {
  it('allocates 60,000 addresses in order with the cursor, then the rest, then reuses released ones', () => {
    const subnet = parseCidr('10.89.0.0/16');
    const gateway = defaultGateway(subnet);
    const base = (10 << 24) | (89 << 16); // 10.89.0.0, by hand
    const inUse = new AddressSet();
    let after: IpAddress | undefined;
    const take = (): IpAddress => {
      const a = allocateAddress({ subnet, gateway, inUse, after });
      inUse.add(a);
      after = a;
      return a;
    };

    for (let i = 0; i < 60_000; i++) {
      const a = take();
      if (a.toString() !== dotted(base + 2 + i)) assert.equal(a.toString(), dotted(base + 2 + i));
    }
    assert.equal(inUse.size, 60_000);

    // Release every 7th of the first 1,000; they come back only after the untouched tail.
    const released: number[] = [];
    for (let i = 0; i < 1000; i += 7) {
      inUse.delete(ip(dotted(base + 2 + i)));
      released.push(base + 2 + i);
    }
    const usable = 65_534 - 1; // .0.1–.255.254 minus the gateway
    for (let i = 60_000; i < usable; i++) {
      const a = take();
      if (a.toString() !== dotted(base + 2 + i)) assert.equal(a.toString(), dotted(base + 2 + i));
    }
    assert.equal(after?.toString(), '10.89.255.254');
    for (const r of released) assert.equal(take().toString(), dotted(r));
    assert.equal(inUse.size, usable);
    throwsCode(() => take(), 'IPAM_EXHAUSTED', /10\.89\.0\.0\/16/);
  });
});
