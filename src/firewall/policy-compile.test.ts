import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicies, elementKey, elementKeyText, elementText, evaluationOrder, kernelElement, type CompiledElement, type ResolvedSelector } from './policy-compile.js';
import { IpAddress } from '../ipam/address.js';
import { Cidr } from '../ipam/cidr.js';
import type { PolicyRecord, Selector } from '../engine/types.js';

function policy(id: number, action: 'allow' | 'deny', from: Selector, to: Selector, ports: PolicyRecord['ports'] = [], priority = 100): PolicyRecord {
  return { id, name: `p${id}`, action, from, to, ports, priority, source: null, declared: { action, from: '', to: '' } as never, createdAt: '' };
}

const NETS = { v4: ['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24'], v6: ['fd00:1::/64'] };
const NAMESPACES: Record<string, string[]> = { a: ['10.1.0.2', 'fd00:1::2'], b: ['10.1.0.3'], c: ['10.2.0.2'], d: ['10.3.0.9'] };

function resolve(sel: Selector): ResolvedSelector {
  switch (sel.kind) {
    case 'outside': return 'outside';
    case 'cidr': return sel.cidr.includes(':') ? { v4: [], v6: [sel.cidr] } : { v4: [sel.cidr], v6: [] };
    case 'network': {
      const i = Number(sel.name.slice(1));
      return { v4: [NETS.v4[i - 1]!], v6: i === 1 ? NETS.v6 : [] };
    }
    case 'namespace': {
      const as = NAMESPACES[sel.name] ?? [];
      return { v4: as.filter((x) => !x.includes(':')), v6: as.filter((x) => x.includes(':')) };
    }
  }
}

const inRange = (v: bigint, r: readonly [bigint, bigint]): boolean => r[0] <= v && v <= r[1];

function contains(sel: ResolvedSelector, a: IpAddress): boolean {
  const inCidrs = (xs: readonly string[]): boolean => xs.some((x) => {
    const c = x.includes('/') ? Cidr.parse(x) : Cidr.containing(IpAddress.parse(x), x.includes(':') ? 128 : 32);
    return c.family === a.family && inRange(a.value, [c.network.value, c.last.value]);
  });
  if (sel === 'outside') return !inCidrs([...NETS.v4, ...NETS.v6]);
  return inCidrs(a.family === 4 ? sel.v4 : sel.v6);
}

/** The old chain's semantics: the first policy in evaluation order that matches. */
function firstMatch(ps: readonly PolicyRecord[], s: IpAddress, d: IpAddress, proto: number, port: number): string | undefined {
  for (const p of evaluationOrder(ps)) {
    if (!contains(resolve(p.from), s) || !contains(resolve(p.to), d)) continue;
    if (p.ports.length > 0 && !p.ports.some((f) => f.protos.some((x) => ({ tcp: 6, udp: 17, sctp: 132 })[x] === proto) && f.start <= port && port <= f.end)) continue;
    return p.name;
  }
  return undefined;
}

function lookup(els: readonly CompiledElement[], s: IpAddress, d: IpAddress, proto: number, port: number): CompiledElement[] {
  const key = [s.value, d.value, BigInt(proto), BigInt(port)];
  return els.filter((e) => e.family === s.family && e.box.every((r, i) => inRange(key[i]!, r)));
}

// A small deterministic PRNG so a failure reproduces.
function rng(seed: number): () => number {
  let x = seed;
  return () => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x / 0x80000000; };
}

const SELECTORS: Selector[] = [
  { kind: 'network', name: 'n1' }, { kind: 'network', name: 'n2' }, { kind: 'network', name: 'n3' },
  { kind: 'namespace', name: 'a' }, { kind: 'namespace', name: 'b' }, { kind: 'namespace', name: 'c' }, { kind: 'namespace', name: 'd' },
  { kind: 'cidr', cidr: '10.0.0.0/8' }, { kind: 'cidr', cidr: '10.1.0.0/25' }, { kind: 'cidr', cidr: '192.0.2.0/24' }, { kind: 'cidr', cidr: 'fd00::/16' },
  { kind: 'outside' },
];
const PROBE_ADDRS = ['10.1.0.2', '10.1.0.3', '10.1.0.200', '10.2.0.2', '10.3.0.9', '10.9.9.9', '192.0.2.7', '203.0.113.2', 'fd00:1::2', 'fd00:1::9', 'fd00:2::1', '2001:db8::1']
  .map((x) => IpAddress.parse(x));
const PROBE_PORTS: Array<[number, number]> = [[1, 0], [6, 22], [6, 80], [6, 85], [6, 443], [17, 53], [17, 80], [132, 80], [6, 65535]];

test('compiled elements are disjoint and give the first matching policy for every probe (random policy sets)', () => {
  const r = rng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  for (let round = 0; round < 150; round++) {
    const ps: PolicyRecord[] = [];
    const n = 1 + Math.floor(r() * 8);
    for (let i = 0; i < n; i++) {
      const ports: PolicyRecord['ports'] = r() < 0.5 ? [] : [{ protos: (r() < 0.5 ? ['tcp'] : ['tcp', 'udp']) as Array<'tcp' | 'udp' | 'sctp'>, start: pick([22, 80, 53]), end: pick([80, 90, 443]) }]
        .map((f) => ({ ...f, end: Math.max(f.start, f.end) }));
      if (ports.length && r() < 0.3) ports.push({ protos: ['tcp', 'sctp'], start: 80, end: 80 });
      ps.push(policy(i + 1, r() < 0.5 ? 'allow' : 'deny', pick(SELECTORS), pick(SELECTORS), ports, pick([10, 100, 100, 200])));
    }
    const els = compilePolicies(ps, (p, side) => resolve(p[side]), NETS);
    for (const s of PROBE_ADDRS) {
      for (const d of PROBE_ADDRS) {
        if (s.family !== d.family) continue;
        for (const [proto, port] of PROBE_PORTS) {
          const hits = lookup(els, s, d, proto, port);
          assert.ok(hits.length <= 1, `round ${round}: ${hits.length} overlapping elements for ${s}→${d} ${proto}/${port}`);
          const want = firstMatch(ps, s, d, proto, port);
          const wantVerdict = want === undefined ? undefined : ps.find((p) => p.name === want)!.action === 'allow' ? 'accept' : 'drop';
          assert.equal(hits[0]?.verdict, wantVerdict, `round ${round}: ${s}→${d} ${proto}/${port}: want ${want}`);
        }
      }
    }
  }
});

test('a higher-priority deny carves a hole in a broader allow', () => {
  const ps = [
    policy(1, 'allow', { kind: 'network', name: 'n1' }, { kind: 'network', name: 'n2' }),
    policy(2, 'deny', { kind: 'namespace', name: 'a' }, { kind: 'namespace', name: 'c' }, [], 10),
  ];
  const els = compilePolicies(ps, (p, side) => resolve(p[side]), NETS).filter((e) => e.family === 4);
  assert.deepEqual(els.map(elementText), [
    '10.1.0.2 . 10.2.0.2 . 0-255 . 0-65535 : drop',
    '10.1.0.0-10.1.0.1 . 10.2.0.0-10.2.0.255 . 0-255 . 0-65535 : accept',
    '10.1.0.3-10.1.0.255 . 10.2.0.0-10.2.0.255 . 0-255 . 0-65535 : accept',
    '10.1.0.2 . 10.2.0.0-10.2.0.1 . 0-255 . 0-65535 : accept',
    '10.1.0.2 . 10.2.0.3-10.2.0.255 . 0-255 . 0-65535 : accept',
  ]);
});

test('outside is the complement of every nsnet subnet; no policies compile to nothing', () => {
  assert.deepEqual(compilePolicies([], () => 'outside', NETS), []);
  const els = compilePolicies([policy(1, 'deny', { kind: 'outside' }, { kind: 'namespace', name: 'd' }, [{ protos: ['udp'], start: 53, end: 53 }])], (p, side) => resolve(p[side]), NETS);
  assert.deepEqual(els.filter((e) => e.family === 4).map(elementText), [
    '0.0.0.0-10.0.255.255 . 10.3.0.9 . 17 . 53 : drop',
    '10.1.1.0-10.1.255.255 . 10.3.0.9 . 17 . 53 : drop',
    '10.2.1.0-10.2.255.255 . 10.3.0.9 . 17 . 53 : drop',
    '10.3.1.0-255.255.255.255 . 10.3.0.9 . 17 . 53 : drop',
  ]);
  // d has no IPv6 address: no IPv6 element at all.
  assert.equal(els.filter((e) => e.family === 6).length, 0);
});

test('elements read back from the kernel (libnftables JSON) compare equal to the compiled ones', () => {
  const ps = [
    policy(1, 'allow', { kind: 'network', name: 'n1' }, { kind: 'namespace', name: 'c' }, [{ protos: ['tcp'], start: 80, end: 89 }]),
    policy(2, 'deny', { kind: 'namespace', name: 'a' }, { kind: 'cidr', cidr: 'fd00::/16' }),
  ];
  const els = compilePolicies(ps, (p, side) => resolve(p[side]), NETS);
  // As nft 1.0.6 lists them: prefixes where a range is one, names for known protocols.
  const listed: Array<[4 | 6, unknown]> = [
    [4, [{ concat: [{ prefix: { addr: '10.1.0.0', len: 24 } }, '10.2.0.2', 'tcp', { range: [80, 89] }] }, { accept: null }]],
    [6, [{ concat: ['fd00:1::2', { prefix: { addr: 'fd00::', len: 16 } }, { range: [0, 255] }, { range: [0, 65535] }] }, { drop: null }]],
  ];
  const back = listed.map(([f, x]) => kernelElement(f, x)!);
  assert.deepEqual(back.map(elementKey).sort(), els.map(elementKey).sort());
  assert.equal(kernelElement(4, [{ concat: ['10.0.0.1'] }, { accept: null }]), undefined, 'a shape never written');
  assert.equal(elementKeyText(els[0]!), '10.1.0.0-10.1.0.255 . 10.2.0.2 . 6 . 80-89');
});
