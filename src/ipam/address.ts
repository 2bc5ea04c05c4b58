/**
 * IP and MAC addresses as small immutable value types. Pure: no I/O.
 *
 * An `IpAddress` is a family (4 or 6) plus the address as an unsigned bigint, most
 * significant bit first (network byte order). Everything else — CIDR arithmetic, allocation,
 * pools — is integer arithmetic on that value.
 *
 * Text forms:
 * - IPv4 is strict dotted-quad: four decimal octets 0–255, no leading zeros (`010.1.1.1` is
 *   rejected because inet_aton() would read it as octal 8 — the classic ambiguity).
 * - IPv6 follows RFC 4291 §2.2 on input (hex groups of 1–4 digits, one `::` at most, an
 *   optional dotted-quad tail such as `::ffff:192.0.2.1`) and RFC 5952 §4 on output
 *   (lowercase, no leading zeros, the longest run of two or more zero groups compressed,
 *   the first one on ties). Zone ids (`fe80::1%eth0`) are refused: an address stored in a
 *   network or an endpoint never carries one, and the zone belongs to the interface.
 * - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) are accepted but stay
 *   family 6: they are never silently unmapped, because on the wire they are not the IPv4
 *   address. They are formatted with the dotted tail, as RFC 5952 §5 recommends.
 */
import { randomBytes } from 'node:crypto';
import { NsnetError } from '../errors.js';

export type IpFamily = 4 | 6;

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;
/** ::ffff:0:0/96 — IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2). */
const V4_MAPPED_PREFIX = 0xffffn << 32n;

export function familyBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

export function familyMax(family: IpFamily): bigint {
  return family === 4 ? V4_MAX : V6_MAX;
}

export class IpAddress {
  readonly family: IpFamily;
  /** The address as an unsigned integer, most significant bit first. */
  readonly value: bigint;

  private constructor(family: IpFamily, value: bigint) {
    this.family = family;
    this.value = value;
  }

  /** Parses `192.0.2.1` or `2001:db8::1` strictly (see the file comment); throws ADDRESS_INVALID. */
  static parse(text: string): IpAddress {
    if (text.includes(':')) return new IpAddress(6, parseV6(text));
    return new IpAddress(4, parseV4(text, text));
  }

  /** From the 4- or 16-byte network-order form used by netlink (IFA_ADDRESS, RTA_DST…). */
  static fromBytes(bytes: Uint8Array): IpAddress {
    if (bytes.length !== 4 && bytes.length !== 16) {
      throw new NsnetError('ADDRESS_INVALID', `an IP address is 4 or 16 bytes, got ${bytes.length}`);
    }
    let value = 0n;
    for (const b of bytes) value = (value << 8n) | BigInt(b);
    return new IpAddress(bytes.length === 4 ? 4 : 6, value);
  }

  /** From an integer; throws ADDRESS_INVALID when it does not fit the family. */
  static fromBigInt(family: IpFamily, value: bigint): IpAddress {
    if (value < 0n || value > familyMax(family)) {
      throw new NsnetError('ADDRESS_INVALID', `${value} is outside the IPv${family} address space`);
    }
    return new IpAddress(family, value);
  }

  get bitLength(): 32 | 128 {
    return familyBits(this.family);
  }

  /** ::ffff:0:0/96 (RFC 4291 §2.5.5.2). Always false for family 4. */
  get isIPv4Mapped(): boolean {
    return this.family === 6 && this.value >> 32n === V4_MAPPED_PREFIX >> 32n;
  }

  /** Network byte order, 4 or 16 bytes: what netlink attributes carry. */
  toBytes(): Buffer {
    const length = this.family === 4 ? 4 : 16;
    const out = Buffer.alloc(length);
    let v = this.value;
    for (let i = length - 1; i >= 0; i--) {
      out[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return out;
  }

  toString(): string {
    return this.family === 4 ? formatV4(this.value) : formatV6(this.value);
  }

  toJSON(): string {
    return this.toString();
  }

  /** Total order: every IPv4 address sorts before every IPv6 address, then by value. */
  compare(other: IpAddress): -1 | 0 | 1 {
    if (this.family !== other.family) return this.family < other.family ? -1 : 1;
    if (this.value === other.value) return 0;
    return this.value < other.value ? -1 : 1;
  }

  equals(other: IpAddress): boolean {
    return this.family === other.family && this.value === other.value;
  }

  /** This address plus `offset` (may be negative); throws ADDRESS_INVALID past either end. */
  add(offset: bigint | number): IpAddress {
    const value = this.value + BigInt(offset);
    if (value < 0n || value > familyMax(this.family)) {
      throw new NsnetError('ADDRESS_INVALID', `${this.toString()} + ${offset} leaves the IPv${this.family} address space`, {
        object: this.toString(),
      });
    }
    return new IpAddress(this.family, value);
  }
}

function invalidAddress(text: string, why: string): NsnetError {
  return new NsnetError('ADDRESS_INVALID', `"${text}" is not a valid IP address: ${why}`, { object: text });
}

const V4_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/** Dotted quad to integer. `whole` is the full input, for the error message. */
function parseV4(text: string, whole: string): bigint {
  const parts = text.split('.');
  if (parts.length !== 4) throw invalidAddress(whole, 'an IPv4 address has four dot-separated octets');
  let value = 0;
  for (const part of parts) {
    if (!V4_OCTET.test(part)) {
      throw invalidAddress(whole, 'IPv4 octets are decimal numbers without leading zeros');
    }
    const octet = Number(part);
    if (octet > 255) throw invalidAddress(whole, `IPv4 octet ${octet} is greater than 255`);
    value = value * 256 + octet;
  }
  return BigInt(value);
}

const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV6(text: string): bigint {
  if (text.includes('%')) throw invalidAddress(text, 'zone ids (%iface) are not accepted here');
  const halves = text.split('::');
  if (halves.length > 2) throw invalidAddress(text, "'::' may appear only once");
  const compressed = halves.length === 2;
  const head = parseV6Groups(halves[0]!, text, !compressed);
  const tail = compressed ? parseV6Groups(halves[1]!, text, true) : [];
  const count = head.length + tail.length;
  if (compressed ? count > 7 : count !== 8) {
    throw invalidAddress(text, compressed ? "too many groups for '::' to stand for at least one" : 'an IPv6 address has eight groups');
  }
  const groups = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** Colon-separated groups; a dotted quad is allowed only as the very last part of the address. */
function parseV6Groups(part: string, whole: string, mayEndWithV4: boolean): number[] {
  if (part === '') return [];
  const pieces = part.split(':');
  const groups: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if (piece.includes('.') && mayEndWithV4 && i === pieces.length - 1) {
      const v4 = Number(parseV4(piece, whole));
      groups.push(v4 >>> 16, v4 & 0xffff);
    } else if (V6_GROUP.test(piece)) {
      groups.push(parseInt(piece, 16));
    } else {
      throw invalidAddress(whole, piece === '' ? 'empty group' : `"${piece}" is not a 1-4 digit hex group`);
    }
  }
  return groups;
}

function formatV4(value: bigint): string {
  const n = Number(value);
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** RFC 5952 §4: lowercase, no leading zeros, longest zero run (≥ 2 groups, first on ties) as `::`. */
function formatV6(value: bigint): string {
  if (value >> 32n === V4_MAPPED_PREFIX >> 32n) return `::ffff:${formatV4(value & V4_MAX)}`;
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

// ---------------------------------------------------------------------------------------------
// MAC addresses

/**
 * A 48-bit IEEE 802 MAC address. Text form is six colon-separated two-digit hex octets
 * (`aa:bb:cc:dd:ee:ff`, either case on input, lowercase on output) — the form `ip link` prints.
 */
export class MacAddress {
  readonly #bytes: Buffer;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  static parse(text: string): MacAddress {
    if (!/^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/.test(text)) {
      throw new NsnetError('MAC_INVALID', `"${text}" is not a MAC address (expected aa:bb:cc:dd:ee:ff)`, { object: text });
    }
    return new MacAddress(Buffer.from(text.replaceAll(':', ''), 'hex'));
  }

  /** From the 6-byte form netlink carries (IFLA_ADDRESS). */
  static fromBytes(bytes: Uint8Array): MacAddress {
    if (bytes.length !== 6) throw new NsnetError('MAC_INVALID', `a MAC address is 6 bytes, got ${bytes.length}`);
    return new MacAddress(Buffer.from(bytes));
  }

  /** I/G bit (bit 0 of the first octet): set for group (multicast and broadcast) addresses. */
  get isMulticast(): boolean {
    return (this.#bytes[0]! & 0x01) !== 0;
  }

  /** U/L bit (bit 1 of the first octet): set for locally administered addresses. */
  get isLocallyAdministered(): boolean {
    return (this.#bytes[0]! & 0x02) !== 0;
  }

  get isZero(): boolean {
    return this.#bytes.every((b) => b === 0);
  }

  toBytes(): Buffer {
    return Buffer.from(this.#bytes);
  }

  toString(): string {
    return [...this.#bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
  }

  toJSON(): string {
    return this.toString();
  }

  equals(other: MacAddress): boolean {
    return this.#bytes.equals(other.#bytes);
  }
}

/**
 * True when `mac` may be given to an endpoint's interface: not a group address and not all
 * zeros — the same test as the kernel's is_valid_ether_addr() (include/linux/etherdevice.h),
 * which makes `ip link set … address` fail with EADDRNOTAVAIL otherwise.
 */
export function isUnicastMac(mac: MacAddress): boolean {
  return !mac.isMulticast && !mac.isZero;
}

/**
 * First two octets of the MACs nsnet derives from IPv4 addresses: `02:6e` ("n" for nsnet).
 * 0x02 is unicast, locally administered, and in the AAI quadrant ("administratively assigned",
 * IEEE 802c-2017 SLAP: low nibble 0b0010) — the same quadrant as Docker's 02:42, with a different
 * second octet so that nsnet and Docker endpoints on one L2 segment cannot collide.
 */
export const NSNET_MAC_PREFIX: readonly [number, number] = [0x02, 0x6e];

/**
 * `02:6e:a:b:c:d` for the IPv4 address a.b.c.d: stable across restarts, so neighbours' ARP
 * caches stay right when an endpoint is re-created with the same address (Docker's reasoning
 * for 02:42:…). Throws ADDRESS_INVALID for IPv6.
 */
export function macFromIPv4(address: IpAddress): MacAddress {
  if (address.family !== 4) {
    throw new NsnetError('ADDRESS_INVALID', `a MAC can be derived only from an IPv4 address, not ${address.toString()}`, {
      object: address.toString(),
    });
  }
  return MacAddress.fromBytes(Buffer.concat([Buffer.from(NSNET_MAC_PREFIX), address.toBytes()]));
}

/**
 * A locally administered unicast MAC made from the first six of `bytes` (which should be
 * random): the first octet's low nibble is forced to 0b0010 (unicast, local, SLAP AAI
 * quadrant); the other 44 bits are kept as given. Like the kernel's eth_random_addr(), minus
 * the two SLAP quadrant bits.
 */
export function macFromRandomBytes(bytes: Uint8Array): MacAddress {
  if (bytes.length < 6) throw new NsnetError('MAC_INVALID', `need 6 random bytes for a MAC, got ${bytes.length}`);
  const out = Buffer.from(bytes.subarray(0, 6));
  out[0] = (out[0]! & 0xf0) | 0x02;
  return MacAddress.fromBytes(out);
}

/** `macFromRandomBytes` fed by the CSPRNG. */
export function randomMac(): MacAddress {
  return macFromRandomBytes(randomBytes(6));
}
