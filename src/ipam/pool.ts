/**
 * Choosing a subnet for a network created without one. Pure: the caller passes every prefix
 * to stay clear of — the subnets of existing nsnet networks and every address and route on
 * the host (Docker's overlap check, libnetwork/ipamutils) — and gets the first free block.
 *
 * Default pools:
 * - IPv4: /24s from 10.89.0.0/16, 10.90.0.0/15, 10.92.0.0/14, 10.96.0.0/11, 10.128.0.0/9 — i.e.
 *   10.89.0.0/24 … 10.255.255.0/24, Podman's `default_subnet_pools` (containers/common
 *   pkg/config/default.go). 10.88.0.0/16 is left to Podman's default network; /24s rather than
 *   Docker's old /16s (docker/for-linux#1543).
 * - IPv6: /64s from the ULA prefix fd76:6cc8:6101::/48 (RFC 4193). Its 40-bit Global ID is
 *   the first 40 bits of SHA-256("nsnet") rather than a per-host random one, so that every
 *   host picks from the same documented block (reproduce: `printf nsnet | sha256sum`).
 *
 * Search: the avoided prefixes are sorted and merged into disjoint intervals once
 * (O(m log m)); each pool is then walked by jumping past whole overlapping intervals, so a
 * candidate is tested once per interval it hits, never address by address: thousands of
 * avoided prefixes — or one 10.0.0.0/8 route — cost microseconds.
 */
import { NsnetError } from '../errors.js';
import { familyBits, IpAddress, type IpFamily } from './address.js';
import { Cidr } from './cidr.js';

/** Carve blocks of `prefixLength` out of `base`, lowest first. */
export interface SubnetPool {
  readonly base: Cidr;
  readonly prefixLength: number;
}

function pool(base: string, prefixLength: number): SubnetPool {
  return Object.freeze({ base: Cidr.parse(base), prefixLength });
}

export const DEFAULT_IPV4_POOLS: readonly SubnetPool[] = Object.freeze([
  pool('10.89.0.0/16', 24),
  pool('10.90.0.0/15', 24),
  pool('10.92.0.0/14', 24),
  pool('10.96.0.0/11', 24),
  pool('10.128.0.0/9', 24),
]);

/** fd + first 40 bits of SHA-256("nsnet"): see the file comment. */
export const NSNET_ULA_PREFIX: Cidr = Cidr.parse('fd76:6cc8:6101::/48');

export const DEFAULT_IPV6_POOLS: readonly SubnetPool[] = Object.freeze([
  Object.freeze({ base: NSNET_ULA_PREFIX, prefixLength: 64 }),
]);

export interface ChooseSubnetOptions {
  family: IpFamily;
  /**
   * Prefixes the new subnet must not overlap: existing networks, host addresses (as their
   * subnets) and host routes. Other-family entries are ignored, and so are /0 entries: a
   * default route covers everything and would make every pool look taken (Docker skips
   * routes without a destination for the same reason).
   */
  avoid: Iterable<Cidr>;
  /** Defaults to DEFAULT_IPV4_POOLS / DEFAULT_IPV6_POOLS. */
  pools?: readonly SubnetPool[] | undefined;
}

/** The first block of the pools, in order, that overlaps nothing in `avoid`; IPAM_EXHAUSTED otherwise. */
export function chooseSubnet(options: ChooseSubnetOptions): Cidr {
  const { family } = options;
  const pools = options.pools ?? (family === 4 ? DEFAULT_IPV4_POOLS : DEFAULT_IPV6_POOLS);
  const bits = familyBits(family);
  const avoided = mergeIntervals(options.avoid, family);

  for (const p of pools) {
    if (p.base.family !== family || !Number.isInteger(p.prefixLength) || p.prefixLength < p.base.prefixLength || p.prefixLength > bits) {
      throw new NsnetError('SUBNET_INVALID', `pool ${p.base.toString()} cannot be carved into IPv${family} /${p.prefixLength}s`, {
        object: p.base.toString(),
      });
    }
    // base.network is a multiple of step because base's prefix is no longer than the pool's.
    const step = 1n << BigInt(bits - p.prefixLength);
    const end = p.base.last.value;
    let candidate = p.base.network.value;
    let i = firstEndingAtOrAfter(avoided, candidate);
    while (candidate + step - 1n <= end) {
      while (i < avoided.length && avoided[i]!.last < candidate) i++;
      const hit = avoided[i];
      if (hit === undefined || hit.first > candidate + step - 1n) {
        return Cidr.containing(IpAddress.fromBigInt(family, candidate), p.prefixLength);
      }
      // Jump to the first aligned block after the interval that overlaps this one.
      candidate = ((hit.last + step) / step) * step;
    }
  }

  const list = pools.map((p) => p.base.toString()).join(', ');
  const size = pools.length > 0 ? ` /${pools[0]!.prefixLength}` : '';
  throw new NsnetError(
    'IPAM_EXHAUSTED',
    `no free IPv${family}${size} subnet left in the pools (${list}): every block overlaps an existing network ` +
      `or a host address/route; give the network a subnet explicitly`,
    { object: `ipv${family}-pool` },
  );
}

interface Interval {
  first: bigint;
  last: bigint;
}

/** The avoided prefixes of `family` as sorted, disjoint, non-adjacent-merged intervals. */
function mergeIntervals(avoid: Iterable<Cidr>, family: IpFamily): Interval[] {
  const raw: Interval[] = [];
  for (const c of avoid) {
    if (c.family === family && c.prefixLength > 0) raw.push({ first: c.network.value, last: c.last.value });
  }
  raw.sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const merged: Interval[] = [];
  for (const r of raw) {
    const top = merged[merged.length - 1];
    if (top !== undefined && r.first <= top.last + 1n) {
      if (r.last > top.last) top.last = r.last;
    } else {
      merged.push({ ...r });
    }
  }
  return merged;
}

/** Index of the first interval whose last address is ≥ value (binary search). */
function firstEndingAtOrAfter(intervals: Interval[], value: bigint): number {
  let lo = 0;
  let hi = intervals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (intervals[mid]!.last < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
