/**
 * What a network's IPAM must not hand out beyond its gateway, and where dynamic addresses
 * come from — Docker's `--ip-range` and `--aux-address` (docs: `docker network create`):
 *   ipRanges       dynamic addresses only from these CIDRs, at most one per subnet (static
 *                  addresses may be anywhere in the subnet);
 *   auxAddresses   NAME=IP pairs already used on the network's LAN (a second router, a
 *                  printer …): never handed out, not even when asked for;
 *   shim           a macvlan network's host addresses (src/drivers/macvlan.ts): likewise.
 * Pure: the engine validates with `validateIpamOptions` at create and consults `ipamLimits`
 * in the connect transaction.
 */
import { NsnetError } from '../errors.js';
import { IpAddress } from './address.js';
import { Cidr } from './cidr.js';

export interface IpamOptions {
  name: string;
  ipRanges?: string[] | undefined;
  auxAddresses?: Record<string, string> | undefined;
  shim?: string[] | undefined;
}

const AUX_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function parseIp(network: string, what: string, text: string): IpAddress {
  try {
    return IpAddress.parse(text);
  } catch (e) {
    throw new NsnetError('ADDRESS_INVALID', `invalid ${what} "${text}" for network ${network}`, { object: text, cause: e });
  }
}

/** Throws unless every range is inside one subnet (one per subnet) and every aux/shim address is a free usable one. */
export function validateIpamOptions(spec: IpamOptions, subnets: ReadonlyArray<{ cidr: string; gateway: string }>): void {
  const cidrs = subnets.map((s) => Cidr.parse(s.cidr));
  const gateways = subnets.map((s) => IpAddress.parse(s.gateway));
  const inSubnets = `(${cidrs.join(', ')})`;
  const rangeOf = new Set<number>();
  for (const text of spec.ipRanges ?? []) {
    let r: Cidr;
    try { r = Cidr.parse(text); } catch (e) {
      throw new NsnetError('CIDR_INVALID', `invalid ip range "${text}" for network ${spec.name}: ${(e as Error).message}`, { object: text, cause: e });
    }
    const i = cidrs.findIndex((c) => c.containsCidr(r));
    if (i < 0) throw new NsnetError('SUBNET_INVALID', `ip range ${r} of network ${spec.name} is not inside any of its subnets ${inSubnets}`, { object: r.toString() });
    if (rangeOf.has(i)) throw new NsnetError('USAGE', `two ip ranges in subnet ${cidrs[i]} of network ${spec.name}: at most one per subnet`, { object: r.toString() });
    rangeOf.add(i);
  }
  const seen = new Map<string, string>();
  const check = (what: string, ip: IpAddress): number => {
    const i = cidrs.findIndex((c) => c.contains(ip));
    if (i < 0) throw new NsnetError('IPAM_OUT_OF_SUBNET', `${what} ${ip} is outside network ${spec.name}'s subnets ${inSubnets}`, { object: ip.toString() });
    if (!cidrs[i]!.isUsable(ip)) throw new NsnetError('ADDRESS_INVALID', `${what} ${ip} is not a usable address of ${cidrs[i]}`, { object: ip.toString() });
    if (gateways[i]!.equals(ip)) throw new NsnetError('ADDRESS_INVALID', `${what} ${ip} is the gateway of network ${spec.name}`, { object: ip.toString() });
    const dup = seen.get(ip.toString());
    if (dup) throw new NsnetError('USAGE', `${what} ${ip} of network ${spec.name} is also ${dup}`, { object: ip.toString() });
    seen.set(ip.toString(), what);
    return i;
  };
  for (const [name, text] of Object.entries(spec.auxAddresses ?? {})) {
    if (!AUX_NAME.test(name)) throw new NsnetError('USAGE', `invalid aux address name "${name}" for network ${spec.name}: use letters, digits, '_', '.', '-'`, { object: name });
    check(`aux address ${name}`, parseIp(spec.name, `aux address ${name}`, text));
  }
  const shimSubnets = new Set<number>();
  for (const text of spec.shim ?? []) {
    const i = check('shim address', parseIp(spec.name, 'shim address', text));
    if (shimSubnets.has(i)) throw new NsnetError('USAGE', `two shim addresses in subnet ${cidrs[i]} of network ${spec.name}: at most one per subnet`, { object: text });
    shimSubnets.add(i);
  }
}

/** The network's ranges, and its reserved addresses (canonical text → why) for the allocator. */
export function ipamLimits(spec: IpamOptions): { ranges: Cidr[]; reserved: Map<string, string> } {
  const ranges = (spec.ipRanges ?? []).map((r) => Cidr.parse(r));
  const reserved = new Map<string, string>();
  for (const [name, text] of Object.entries(spec.auxAddresses ?? {})) reserved.set(IpAddress.parse(text).toString(), `aux address ${name}`);
  for (const text of spec.shim ?? []) reserved.set(IpAddress.parse(text).toString(), 'the host\'s shim address');
  return { ranges, reserved };
}
