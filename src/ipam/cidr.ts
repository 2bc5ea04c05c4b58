/**
 * CIDR blocks (network address + prefix length) and interface addresses (host address +
 * prefix length). Pure: no I/O.
 *
 * Usable host addresses — the ones IPAM may hand out or accept as a gateway:
 * - IPv4: everything but the network address and the broadcast address; on a /31 both
 *   addresses are usable (RFC 3021 point-to-point links) and a /32 is its one address.
 * - IPv6: everything but the Subnet-Router anycast address, the all-zero host part
 *   (RFC 4291 §2.6.1). IPv6 has no broadcast. On a /127 both addresses are usable
 *   (RFC 6164 §5 asks routers not to use the anycast address there), and a /128 is its one
 *   address — the same shape as IPv4's /31 and /32.
 */
import { NsnetError } from '../errors.js';
import { familyBits, familyMax, IpAddress, type IpFamily } from './address.js';

const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/** Splits `addr/len` and parses both halves; errors are CIDR_INVALID. */
function splitCidr(text: string): { address: IpAddress; prefixLength: number } {
  const slash = text.indexOf('/');
  if (slash < 0 || slash !== text.lastIndexOf('/')) {
    throw new NsnetError('CIDR_INVALID', `"${text}" is not a CIDR (expected address/prefix-length, e.g. 10.89.0.0/24)`, {
      object: text,
    });
  }
  let address: IpAddress;
  try {
    address = IpAddress.parse(text.slice(0, slash));
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new NsnetError('CIDR_INVALID', `"${text}" is not a CIDR: ${why}`, { object: text, cause });
  }
  const lengthText = text.slice(slash + 1);
  const prefixLength = Number(lengthText);
  if (!PREFIX.test(lengthText) || prefixLength > address.bitLength) {
    throw new NsnetError('CIDR_INVALID', `"${text}" is not a CIDR: prefix length must be 0-${address.bitLength}`, {
      object: text,
    });
  }
  return { address, prefixLength };
}

function hostMask(family: IpFamily, prefixLength: number): bigint {
  return (1n << BigInt(familyBits(family) - prefixLength)) - 1n;
}

export class Cidr {
  /** The first address of the block; its host bits are all zero. */
  readonly network: IpAddress;
  readonly prefixLength: number;

  private constructor(network: IpAddress, prefixLength: number) {
    this.network = network;
    this.prefixLength = prefixLength;
  }

  /**
   * Parses `10.89.0.0/24` or `fd00:10::/64`. Host bits must be zero (`10.0.0.5/24` is an
   * interface address: use `parseInterfaceCidr`); throws CIDR_INVALID naming the network meant.
   */
  static parse(text: string): Cidr {
    const { address, prefixLength } = splitCidr(text);
    const cidr = Cidr.containing(address, prefixLength);
    if (!cidr.network.equals(address)) {
      throw new NsnetError('CIDR_INVALID', `"${text}" has host bits set; the network is ${cidr.toString()}`, { object: text });
    }
    return cidr;
  }

  /** The block of length `prefixLength` that contains `address` (host bits cleared). */
  static containing(address: IpAddress, prefixLength: number): Cidr {
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > address.bitLength) {
      throw new NsnetError('CIDR_INVALID', `prefix length ${prefixLength} is not 0-${address.bitLength}`);
    }
    const value = address.value & ~hostMask(address.family, prefixLength) & familyMax(address.family);
    return new Cidr(IpAddress.fromBigInt(address.family, value), prefixLength);
  }

  get family(): IpFamily {
    return this.network.family;
  }

  /** Number of addresses in the block, 2^(bits − prefix), usable or not. */
  get size(): bigint {
    return 1n << BigInt(this.network.bitLength - this.prefixLength);
  }

  /** The last address of the block (host bits all ones). */
  get last(): IpAddress {
    return IpAddress.fromBigInt(this.family, this.network.value | hostMask(this.family, this.prefixLength));
  }

  /** IPv4 broadcast address; undefined for IPv6 and for /31 and /32 (RFC 3021). */
  get broadcast(): IpAddress | undefined {
    return this.family === 4 && this.prefixLength <= 30 ? this.last : undefined;
  }

  /** Lowest usable host address (see the file comment). */
  get firstUsable(): IpAddress {
    return this.hasReservedNetworkAddress ? this.network.add(1) : this.network;
  }

  /** Highest usable host address (see the file comment). */
  get lastUsable(): IpAddress {
    return this.broadcast !== undefined ? this.last.add(-1) : this.last;
  }

  /** Whether the all-zero host address is reserved: IPv4 ≤ /30, IPv6 ≤ /126. */
  get hasReservedNetworkAddress(): boolean {
    return this.network.bitLength - this.prefixLength >= 2;
  }

  contains(address: IpAddress): boolean {
    return (
      address.family === this.family &&
      (address.value & ~hostMask(this.family, this.prefixLength)) === this.network.value
    );
  }

  /** True when every address of `other` is in this block. */
  containsCidr(other: Cidr): boolean {
    return other.family === this.family && other.prefixLength >= this.prefixLength && this.contains(other.network);
  }

  /** True when the two blocks share an address (CIDR blocks either nest or are disjoint). */
  overlaps(other: Cidr): boolean {
    return this.containsCidr(other) || other.containsCidr(this);
  }

  /** True when `address` is in the block and is a usable host address. */
  isUsable(address: IpAddress): boolean {
    return (
      this.contains(address) &&
      address.value >= this.firstUsable.value &&
      address.value <= this.lastUsable.value
    );
  }

  equals(other: Cidr): boolean {
    return this.prefixLength === other.prefixLength && this.network.equals(other.network);
  }

  /** By network address (IPv4 first), then shorter prefix first. */
  compare(other: Cidr): -1 | 0 | 1 {
    const byNetwork = this.network.compare(other.network);
    if (byNetwork !== 0) return byNetwork;
    if (this.prefixLength === other.prefixLength) return 0;
    return this.prefixLength < other.prefixLength ? -1 : 1;
  }

  /** Canonical form: `10.89.0.0/24`, `fd00:10::/64` (RFC 5952 for the address). */
  toString(): string {
    return `${this.network.toString()}/${this.prefixLength}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** An address on an interface with its prefix length, as `ip addr add 10.89.0.5/24` takes it. */
export class InterfaceAddress {
  readonly address: IpAddress;
  readonly prefixLength: number;

  constructor(address: IpAddress, prefixLength: number) {
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > address.bitLength) {
      throw new NsnetError('CIDR_INVALID', `prefix length ${prefixLength} is not 0-${address.bitLength}`);
    }
    this.address = address;
    this.prefixLength = prefixLength;
  }

  get family(): IpFamily {
    return this.address.family;
  }

  /** The network the address is on: `10.89.0.5/24` → `10.89.0.0/24`. */
  get subnet(): Cidr {
    return Cidr.containing(this.address, this.prefixLength);
  }

  equals(other: InterfaceAddress): boolean {
    return this.prefixLength === other.prefixLength && this.address.equals(other.address);
  }

  toString(): string {
    return `${this.address.toString()}/${this.prefixLength}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** Parses a strict CIDR (host bits must be zero); see `Cidr.parse`. */
export function parseCidr(text: string): Cidr {
  return Cidr.parse(text);
}

/** Parses `10.89.0.5/24` or `fd00::5/64`: an address with its prefix length, host bits allowed. */
export function parseInterfaceCidr(text: string): InterfaceAddress {
  const { address, prefixLength } = splitCidr(text);
  return new InterfaceAddress(address, prefixLength);
}

/**
 * Whether two prefixes share an address: each an interface address (`10.0.0.5/24`) or a
 * network (`10.244.0.0/16`), IPv4 or IPv6; prefixes of different families never do.
 */
export function prefixesOverlap(a: string, b: string): boolean {
  return parseInterfaceCidr(a).subnet.overlaps(parseInterfaceCidr(b).subnet);
}
