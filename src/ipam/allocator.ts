/**
 * The address-allocation planner. Pure: it is given the subnet, the gateway, the addresses in
 * use and an optional cursor, and returns the address to use; the caller records it (in one
 * store transaction) and persists the cursor.
 *
 * Allocation order — a round-robin cursor, as host-local's `last_reserved_ip`:
 * - Without a cursor the search starts at the subnet's first usable address, so a fresh
 *   network hands out the lowest free address (with the default gateway `.1`: `.2`, `.3`, …).
 * - With `after` (the last address this subnet handed out, persisted by the caller) the
 *   search starts just after it and wraps from the last usable address to the first.
 *   Filling a subnet therefore costs O(1) per allocation instead of a scan from the bottom
 *   each time (which makes filling a /16 quadratic); a released address is reused only after
 *   the cursor has gone round, which also keeps a just-freed address (still in neighbours'
 *   ARP caches and in conntrack) out of use for as long as possible.
 * - The gateway, the network address and the IPv4 broadcast address (see cidr.ts for the
 *   rules) are never handed out.
 *
 * Each step is one hash lookup; a search visits at most (addresses in use in the run it
 * crosses) + 2 addresses, so it ends quickly even in an IPv6 /64. Only a completely full
 * subnet is scanned end to end, and that ends in IPAM_EXHAUSTED.
 */
import { NsnetError } from '../errors.js';
import { IpAddress, type IpFamily } from './address.js';
import type { Cidr } from './cidr.js';

/**
 * A set of IP addresses with value semantics (a `Set<IpAddress>` compares objects by identity,
 * so two parses of the same text would be different members).
 */
export class AddressSet implements Iterable<IpAddress> {
  readonly #v4 = new Set<bigint>();
  readonly #v6 = new Set<bigint>();

  constructor(addresses: Iterable<IpAddress> = []) {
    for (const a of addresses) this.add(a);
  }

  #of(family: IpFamily): Set<bigint> {
    return family === 4 ? this.#v4 : this.#v6;
  }

  add(address: IpAddress): this {
    this.#of(address.family).add(address.value);
    return this;
  }

  delete(address: IpAddress): boolean {
    return this.#of(address.family).delete(address.value);
  }

  has(address: IpAddress): boolean {
    return this.#of(address.family).has(address.value);
  }

  /** `has` without building an IpAddress: the allocator's inner loop. */
  hasValue(family: IpFamily, value: bigint): boolean {
    return this.#of(family).has(value);
  }

  get size(): number {
    return this.#v4.size + this.#v6.size;
  }

  *[Symbol.iterator](): Iterator<IpAddress> {
    for (const v of this.#v4) yield IpAddress.fromBigInt(4, v);
    for (const v of this.#v6) yield IpAddress.fromBigInt(6, v);
  }
}

export interface AllocationRequest {
  subnet: Cidr;
  /** Never handed out. Omit for a network without a gateway (e.g. internal). */
  gateway?: IpAddress | undefined;
  /**
   * Addresses already taken. Pass an `AddressSet` kept up to date by the caller for O(1)
   * lookups; any other iterable is copied into one first (O(n)). Addresses outside the
   * subnet are ignored.
   */
  inUse: AddressSet | Iterable<IpAddress>;
  /** A static address the user asked for: checked, then returned as is. */
  requested?: IpAddress | undefined;
  /** The cursor: the last address handed out in this subnet (ignored if outside it). */
  after?: IpAddress | undefined;
  /**
   * Dynamic addresses come only from this CIDR inside the subnet (Docker's `--ip-range`);
   * a requested address may be anywhere in the subnet.
   */
  range?: Cidr | undefined;
}

/** The gateway a network gets when the user names none: its first usable address. */
export function defaultGateway(subnet: Cidr): IpAddress {
  return subnet.firstUsable;
}

/**
 * Returns the address to give an endpoint in `request.subnet`, or throws:
 * IPAM_OUT_OF_SUBNET (requested address not in the subnet), IPAM_ADDRESS_TAKEN (requested
 * address is the gateway, the network or broadcast address, or in use — the message says
 * which), IPAM_EXHAUSTED (no free address; the message names the subnet).
 */
export function allocateAddress(request: AllocationRequest): IpAddress {
  const { subnet, gateway, requested, after } = request;
  const inUse = request.inUse instanceof AddressSet ? request.inUse : new AddressSet(request.inUse);
  if (requested !== undefined) {
    checkRequested(subnet, gateway, inUse, requested);
    return requested;
  }

  const family = subnet.family;
  let low = subnet.firstUsable.value;
  let high = subnet.lastUsable.value;
  if (request.range !== undefined && request.range.family === family) {
    if (request.range.network.value > low) low = request.range.network.value;
    if (request.range.last.value < high) high = request.range.last.value;
    if (low > high) {
      throw new NsnetError('IPAM_EXHAUSTED', `no free address left in ${request.range.toString()} (the ip range of ${subnet.toString()})`, { object: subnet.toString() });
    }
  }
  const gw = gateway !== undefined && gateway.family === family ? gateway.value : -1n;

  let start = low;
  if (after !== undefined && after.family === family && after.value >= low && after.value < high) {
    start = after.value + 1n;
  }
  let v = start;
  do {
    if (v !== gw && !inUse.hasValue(family, v)) return IpAddress.fromBigInt(family, v);
    v = v === high ? low : v + 1n;
  } while (v !== start);

  const where = request.range !== undefined && request.range.family === family ? `${request.range.toString()} (the ip range of ${subnet.toString()})` : subnet.toString();
  throw new NsnetError('IPAM_EXHAUSTED', `no free address left in ${where}`, { object: subnet.toString() });
}

function checkRequested(subnet: Cidr, gateway: IpAddress | undefined, inUse: AddressSet, requested: IpAddress): void {
  const text = requested.toString();
  const where = subnet.toString();
  if (!subnet.contains(requested)) {
    throw new NsnetError('IPAM_OUT_OF_SUBNET', `${text} is not in subnet ${where}`, { object: text });
  }
  const taken = (what: string): NsnetError =>
    new NsnetError('IPAM_ADDRESS_TAKEN', `${text} is ${what} of ${where}`, { object: text });
  if (gateway !== undefined && requested.equals(gateway)) throw taken('the gateway');
  if (subnet.hasReservedNetworkAddress && requested.equals(subnet.network)) {
    throw taken(subnet.family === 4 ? 'the network address' : 'the subnet-router anycast address (RFC 4291 §2.6.1)');
  }
  const broadcast = subnet.broadcast;
  if (broadcast !== undefined && requested.equals(broadcast)) throw taken('the broadcast address');
  if (inUse.has(requested)) {
    throw new NsnetError('IPAM_ADDRESS_TAKEN', `${text} is already in use in ${where}`, { object: text });
  }
}
