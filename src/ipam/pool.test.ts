import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isNsnetError, type ErrorCode } from '../errors.js';
import { parseCidr, parseInterfaceCidr, type Cidr } from './cidr.js';
import { chooseSubnet, DEFAULT_IPV4_POOLS, DEFAULT_IPV6_POOLS, NSNET_ULA_PREFIX } from './pool.js';

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

const v4 = (...avoid: string[]): string => chooseSubnet({ family: 4, avoid: avoid.map(parseCidr) }).toString();
const v6 = (...avoid: string[]): string => chooseSubnet({ family: 6, avoid: avoid.map(parseCidr) }).toString();

describe('default pools', () => {
  it('are Podman’s IPv4 pools of /24s and one ULA /48 of /64s', () => {
    assert.deepEqual(
      DEFAULT_IPV4_POOLS.map((p) => `${p.base.toString()}:${p.prefixLength}`),
      ['10.89.0.0/16:24', '10.90.0.0/15:24', '10.92.0.0/14:24', '10.96.0.0/11:24', '10.128.0.0/9:24'],
    );
    assert.deepEqual(DEFAULT_IPV6_POOLS.map((p) => `${p.base.toString()}:${p.prefixLength}`), ['fd76:6cc8:6101::/48:64']);
  });

  it('the ULA Global ID is the first 40 bits of SHA-256("nsnet")', () => {
    const h = createHash('sha256').update('nsnet').digest('hex');
    const expected = `fd${h.slice(0, 2)}:${h.slice(2, 6)}:${h.slice(6, 10)}::/48`;
    assert.equal(NSNET_ULA_PREFIX.toString(), expected.replace(/:0+([0-9a-f])/g, ':$1'));
  });
});

describe('chooseSubnet IPv4', () => {
  it('starts at 10.89.0.0/24', () => {
    assert.equal(v4(), '10.89.0.0/24');
  });

  it('skips networks, host addresses and routes that overlap', () => {
    assert.equal(v4('10.89.0.0/24'), '10.89.1.0/24');
    assert.equal(chooseSubnet({ family: 4, avoid: [parseInterfaceCidr('10.89.0.5/24').subnet] }).toString(), '10.89.1.0/24');
    assert.equal(v4('10.89.0.0/23', '10.89.2.128/25'), '10.89.3.0/24');
    assert.equal(v4('10.89.0.0/23', '10.89.2.7/32'), '10.89.3.0/24');
    assert.equal(v4('10.89.0.0/17'), '10.89.128.0/24');
    assert.equal(v4('10.89.0.0/16'), '10.90.0.0/24');
    assert.equal(v4('10.89.0.0/16', '10.90.0.0/15', '10.92.0.0/14'), '10.96.0.0/24');
    assert.equal(v4('10.0.0.0/9'), '10.128.0.0/24');
    assert.equal(v4('10.88.0.0/16', '192.168.1.0/24', '172.17.0.0/16'), '10.89.0.0/24');
  });

  it('merges duplicate, nested and adjacent avoided prefixes', () => {
    assert.equal(v4('10.89.0.0/24', '10.89.0.0/17', '10.89.0.0/24', '10.89.128.0/17', '10.89.64.0/18'), '10.90.0.0/24');
    assert.equal(v4('10.89.1.0/24', '10.89.0.0/24', '10.89.2.0/24'), '10.89.3.0/24');
  });

  it('ignores the default route and the other family', () => {
    assert.equal(v4('0.0.0.0/0', '::/0', 'fd00::/8'), '10.89.0.0/24');
  });

  it('reports exhaustion naming the pools', () => {
    throwsCode(() => v4('10.0.0.0/8'), 'IPAM_EXHAUSTED', /IPv4 \/24.*10\.89\.0\.0\/16.*10\.128\.0\.0\/9.*explicitly/);
    throwsCode(() => v4('10.89.0.0/16', '10.90.0.0/15', '10.92.0.0/14', '10.96.0.0/11', '10.128.0.0/9'), 'IPAM_EXHAUSTED');
  });

  it('skips thousands of avoided /24s, in any order', () => {
    // Every /24 of 10.89.0.0–10.95.255.0 except 10.93.17.0, shuffled.
    const avoid: Cidr[] = [];
    for (let b = 89; b <= 95; b++) for (let c = 0; c < 256; c++) if (!(b === 93 && c === 17)) avoid.push(parseCidr(`10.${b}.${c}.0/24`));
    const rand = prng(1);
    for (let i = avoid.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [avoid[i], avoid[j]] = [avoid[j]!, avoid[i]!];
    }
    assert.equal(avoid.length, 7 * 256 - 1);
    assert.equal(chooseSubnet({ family: 4, avoid }).toString(), '10.93.17.0/24');
  });

  it('agrees with a per-/24 check against 5,000 random host routes', () => {
    const rand = prng(2);
    const taken = new Set<string>(); // "b.c" of each avoided 10.b.c.d/32
    const avoid: Cidr[] = [];
    for (let n = 0; n < 5000; n++) {
      const b = 89 + Math.floor(rand() * 2);
      const c = Math.floor(rand() * 256);
      const d = Math.floor(rand() * 256);
      avoid.push(parseCidr(`10.${b}.${c}.${d}/32`));
      taken.add(`${b}.${c}`);
    }
    let expected: string | undefined;
    for (let b = 89; b <= 90 && expected === undefined; b++) {
      for (let c = 0; c < 256 && expected === undefined; c++) if (!taken.has(`${b}.${c}`)) expected = `10.${b}.${c}.0/24`;
    }
    assert.equal(chooseSubnet({ family: 4, avoid }).toString(), expected ?? '10.91.0.0/24');
  });

  it('uses caller pools, in the given order', () => {
    const pools = [{ base: parseCidr('192.168.0.0/16'), prefixLength: 20 }];
    assert.equal(chooseSubnet({ family: 4, avoid: [parseCidr('192.168.0.0/24')], pools }).toString(), '192.168.16.0/20');
    const two = [
      { base: parseCidr('172.30.0.0/16'), prefixLength: 24 },
      { base: parseCidr('10.200.0.0/16'), prefixLength: 28 },
    ];
    assert.equal(chooseSubnet({ family: 4, avoid: [parseCidr('172.30.0.0/16')], pools: two }).toString(), '10.200.0.0/28');
    const tiny = [{ base: parseCidr('10.0.0.0/30'), prefixLength: 31 }];
    assert.equal(chooseSubnet({ family: 4, avoid: [parseCidr('10.0.0.0/31')], pools: tiny }).toString(), '10.0.0.2/31');
    throwsCode(
      () => chooseSubnet({ family: 4, avoid: [parseCidr('10.0.0.0/31'), parseCidr('10.0.0.2/31')], pools: tiny }),
      'IPAM_EXHAUSTED',
      /10\.0\.0\.0\/30/,
    );
  });

  it('refuses pools that cannot be carved', () => {
    throwsCode(() => chooseSubnet({ family: 4, avoid: [], pools: [{ base: parseCidr('10.0.0.0/16'), prefixLength: 8 }] }), 'SUBNET_INVALID');
    throwsCode(() => chooseSubnet({ family: 4, avoid: [], pools: [{ base: parseCidr('10.0.0.0/16'), prefixLength: 33 }] }), 'SUBNET_INVALID');
    throwsCode(() => chooseSubnet({ family: 4, avoid: [], pools: DEFAULT_IPV6_POOLS }), 'SUBNET_INVALID');
  });
});

describe('chooseSubnet IPv6', () => {
  it('carves /64s from the nsnet ULA /48', () => {
    assert.equal(v6(), 'fd76:6cc8:6101::/64');
    assert.equal(v6('fd76:6cc8:6101::/64'), 'fd76:6cc8:6101:1::/64');
    assert.equal(v6('fd76:6cc8:6101::/49'), 'fd76:6cc8:6101:8000::/64');
    assert.equal(v6('fd76:6cc8:6101::/49', 'fd76:6cc8:6101:8000::/50', 'fd76:6cc8:6101:c000::/64'), 'fd76:6cc8:6101:c001::/64');
    assert.equal(v6('fd76:6cc8:6101::5/128', '10.89.0.0/24'), 'fd76:6cc8:6101:1::/64');
    assert.equal(v6('::/0'), 'fd76:6cc8:6101::/64');
  });

  it('reports exhaustion', () => {
    throwsCode(() => v6('fd00::/8'), 'IPAM_EXHAUSTED', /IPv6 \/64.*fd76:6cc8:6101::\/48/);
    throwsCode(() => v6('fd76:6cc8:6101::/49', 'fd76:6cc8:6101:8000::/49'), 'IPAM_EXHAUSTED');
  });

  it('skips thousands of avoided /64s', () => {
    const avoid: Cidr[] = [];
    for (let i = 0; i < 4096; i++) if (i !== 3000) avoid.push(parseCidr(`fd76:6cc8:6101:${i.toString(16)}::/64`));
    avoid.reverse();
    assert.equal(chooseSubnet({ family: 6, avoid }).toString(), `fd76:6cc8:6101:${(3000).toString(16)}::/64`);
  });
});
