/**
 * How much one `add element` costs through Nft.run() when a set or map already holds 1,000
 * elements (DESIGN.md decision 3 depends on it staying flat). Prints, asserts nothing.
 *
 *   unshare --net --mount --propagation private env NSNET_SANDBOX=1 \
 *     node dist/src/kernel/nftables/element-cost.bench.js
 */
import fs from 'node:fs';
import { Nft, type NftExpression, type NftSetElem } from '../src/kernel/nftables/nft.js';

// include/linux/proc_ns.h: PROC_NET_INIT_INO, the initial network namespace.
if (process.env['NSNET_SANDBOX'] !== '1' || fs.readlinkSync('/proc/self/ns/net') === `net:[${0xeffffff9}]`) {
  console.error('refusing to run outside a private network namespace (see the comment at the top)');
  process.exit(2);
}

const T = { family: 'inet' as const, table: 'nsnet_bench' };
const nft = new Nft();
nft.run([
  { add: { table: { family: 'inet', name: T.table } } },
  { add: { chain: { ...T, name: 'c' } } },
  { add: { map: { ...T, name: 'vmap', type: 'inet_service', map: 'verdict' } } },
  { add: { map: { ...T, name: 'ports', type: ['inet_proto', 'inet_service'], map: 'ipv4_addr' } } },
  { add: { set: { ...T, name: 'members', type: 'ipv4_addr' } } },
  { add: { set: { ...T, name: 'cidrs', type: 'ipv4_addr', flags: ['interval'] } } },
]);

const ip = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const kinds: Array<[string, (i: number) => NftSetElem]> = [
  ['map inet_service : verdict', (i) => [i, { accept: null }]],
  ['map inet_proto . inet_service : ipv4_addr', (i) => [{ concat: ['tcp', i] }, ip(i)] as [NftExpression, NftExpression]],
  ['set ipv4_addr', (i) => ip(i)],
  ['set ipv4_addr, flags interval', (i) => ({ prefix: { addr: ip(i << 8), len: 24 } })],
];
const names = ['vmap', 'ports', 'members', 'cidrs'];

function perOp(name: string, mk: (i: number) => NftSetElem, from: number, n: number, op: 'add' | 'delete'): number[] {
  const ms: number[] = [];
  for (let i = from; i < from + n; i++) {
    const t0 = process.hrtime.bigint();
    nft.run([{ [op]: { element: { ...T, name, elem: [mk(i)] } } } as never]);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

const N = 300;
kinds.forEach(([label, mk], k) => {
  const name = names[k]!;
  perOp(name, mk, 60_000, 20, 'add'); // warm up
  const empty = perOp(name, mk, 50_000, N, 'add');
  perOp(name, mk, 50_000, N, 'delete');
  const elems: NftSetElem[] = [];
  for (let i = 1; i <= 1000; i++) elems.push(mk(i));
  nft.run([{ add: { element: { ...T, name, elem: elems } } }]);
  const full = perOp(name, mk, 2000, N, 'add');
  const del = perOp(name, mk, 2000, N, 'delete');
  console.log(
    `${label.padEnd(42)} add, ~20 present: median ${median(empty).toFixed(3)} ms | ` +
      `add, 1,000 present: median ${median(full).toFixed(3)} ms, mean ${mean(full).toFixed(3)} ms | ` +
      `delete: median ${median(del).toFixed(3)} ms`,
  );
});

nft.run([{ delete: { table: { family: 'inet', name: T.table } } }]);
nft.close();
