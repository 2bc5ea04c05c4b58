/**
 * Checks the engine runs on user-given subnets and gateways before planning anything.
 * Pure: no I/O. Overlap with the host's own routes is the pool's concern (pool.ts); here only
 * the network's own subnets are checked against each other.
 */
import { NsnetError } from '../errors.js';
import type { IpAddress } from './address.js';
import { Cidr } from './cidr.js';

/**
 * Ranges a container subnet can never be carved from. Checked by overlap, so `0.0.0.0/0` or
 * `::/0` is refused as well.
 */
const RESERVED: readonly { cidr: Cidr; why: string }[] = [
  { cidr: Cidr.parse('0.0.0.0/8'), why: '"this network" (RFC 1122 §3.2.1.3)' },
  { cidr: Cidr.parse('127.0.0.0/8'), why: 'loopback (RFC 1122 §3.2.1.3)' },
  { cidr: Cidr.parse('224.0.0.0/4'), why: 'multicast (RFC 5771)' },
  { cidr: Cidr.parse('255.255.255.255/32'), why: 'limited broadcast (RFC 919 §7)' },
  { cidr: Cidr.parse('::/128'), why: 'the unspecified address (RFC 4291 §2.5.2)' },
  { cidr: Cidr.parse('::1/128'), why: 'loopback (RFC 4291 §2.5.3)' },
  { cidr: Cidr.parse('::ffff:0:0/96'), why: 'IPv4-mapped (RFC 4291 §2.5.5.2)' },
  { cidr: Cidr.parse('ff00::/8'), why: 'multicast (RFC 4291 §2.7)' },
];

/**
 * A network's subnets must not overlap one another (SUBNET_OVERLAP, naming both) nor any
 * reserved range (SUBNET_INVALID). Several subnets per family are allowed.
 */
export function validateSubnets(subnets: readonly Cidr[]): void {
  for (const s of subnets) {
    for (const r of RESERVED) {
      if (s.overlaps(r.cidr)) {
        throw new NsnetError('SUBNET_INVALID', `subnet ${s.toString()} overlaps ${r.cidr.toString()}, ${r.why}`, {
          object: s.toString(),
        });
      }
    }
  }
  // Sorted by network address, an overlapping pair is always adjacent: CIDR blocks nest or are
  // disjoint, and a block sorts directly before the blocks it contains (or before a block that
  // itself overlaps them).
  const sorted = [...subnets].sort((a, b) => a.compare(b));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.overlaps(b)) {
      throw new NsnetError('SUBNET_OVERLAP', `subnets ${a.toString()} and ${b.toString()} overlap`, { object: b.toString() });
    }
  }
}

/** The gateway must be a usable host address of the subnet (GATEWAY_INVALID otherwise). */
export function validateGateway(subnet: Cidr, gateway: IpAddress): void {
  const gw = gateway.toString();
  const where = subnet.toString();
  const invalid = (why: string): NsnetError => new NsnetError('GATEWAY_INVALID', `gateway ${gw} ${why}`, { object: gw });
  if (gateway.family !== subnet.family) throw invalid(`is IPv${gateway.family} but subnet ${where} is IPv${subnet.family}`);
  if (!subnet.contains(gateway)) throw invalid(`is not in subnet ${where}`);
  if (subnet.hasReservedNetworkAddress && gateway.equals(subnet.network)) {
    throw invalid(`is the ${subnet.family === 4 ? 'network' : 'subnet-router anycast'} address of ${where}`);
  }
  if (subnet.broadcast !== undefined && gateway.equals(subnet.broadcast)) throw invalid(`is the broadcast address of ${where}`);
}
