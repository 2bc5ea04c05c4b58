/**
 * The cluster's etcd key layout (schema 1). Every key lives under one prefix; every value
 * is JSON carrying `"schema": 1`, so a later layout can live beside this one
 * (`/nsnet/v2/…`) during an upgrade. Reference: ../shared/reference/multihost-overlay.md §5.1,
 * modelled on flannel's `<prefix>/config` + `<prefix>/subnets/<a.b.c.d>-<len>`.
 *
 *   /nsnet/v1/config                  ClusterConfig          no lease; written by `cluster init`
 *   /nsnet/v1/subnets/10.244.3.0-24   SubnetLease            subnet lease (long TTL): the data plane
 *                                                            follows this key, and only this key;
 *                                                            a dual-stack cluster's IPv6 subnet is a
 *                                                            field of the same value (`subnet6`)
 *   /nsnet/v1/endpoints/h1/c1         SharedEndpoint         h1's subnet lease: names for DNS on
 *                                                            the other hosts (names.ts)
 *   /nsnet/v1/nodes/h1                NodeRecord             heartbeat lease (short TTL): liveness,
 *                                                            node-name ownership, agent status
 *
 * Everything a peer needs to program routes / neighbour / FDB towards host B is in B's
 * `subnets/` value (one key per host, as flannel). Node identity is a persistent random
 * node id kept in the agent's state dir, never the public IP (flannel's Vagrant trap).
 */
import { NsnetError } from '../errors.js';
import { Cidr } from '../ipam/cidr.js';
import { IpAddress } from '../ipam/address.js';

export const SCHEMA = 1;
export const PREFIX = '/nsnet/v1/';
export const CONFIG_KEY = `${PREFIX}config`;
export const SUBNETS_PREFIX = `${PREFIX}subnets/`;
export const NODES_PREFIX = `${PREFIX}nodes/`;

export type BackendType = 'auto' | 'vxlan' | 'host-gw';

export interface ClusterConfig {
  schema: number;
  /** The cluster CIDR (IPv4), e.g. 10.244.0.0/16. */
  network: string;
  /** Prefix length of each host's subnet, e.g. 24. */
  subnetLen: number;
  /** auto: a plain route to peers on the same L2 segment, VXLAN to the others. */
  backend: BackendType;
  vni: number;
  /** VXLAN UDP port; flannel's and the kernel's 8472 by default (IANA's 4789 clashes with NSX/ESXi). */
  port: number;
  /** Tunnel MTU; 0 = smallest underlay MTU in the cluster minus 50 (VXLAN over IPv4 overhead). */
  mtu: number;
  /**
   * Dual stack (optional; absent = IPv4 only, and agents that predate it ignore it): the
   * cluster's IPv6 prefix, e.g. fd00:244::/48, and the length of each host's IPv6 subnet.
   * Host subnet i of `network` is paired with host subnet i of `network6` (subnet6Of), so
   * the IPv4 lease key stays the one unit of ownership.
   */
  network6?: string;
  subnetLen6?: number;
}

export interface SubnetLease {
  schema: number;
  /** The persistent node id of the owner (its state dir), not its name or address. */
  nodeId: string;
  node: string;
  /** Underlay address: the next hop for host-gw, the VTEP for VXLAN. */
  publicIp: string;
  underlayMtu: number;
  vtepMac: string;
  /** Dual stack: the IPv6 subnet paired with this lease's IPv4 subnet (subnet6Of). */
  subnet6?: string;
  /**
   * Dual stack: the IPv6 link-local address of the underlay interface, the next hop of
   * host-gw IPv6 routes (Linux has no IPv4 next hop for an IPv6 route: `ip -6 route … via
   * inet …` is refused with "IPv6 does not support RTA_VIA attribute", and an IPv4 nexthop
   * object with "IPv6 routes can not use an IPv4 nexthop"). Absent: IPv6 off on the underlay.
   */
  linkLocal6?: string;
}

export interface NodeRecord {
  schema: number;
  nodeId: string;
  subnet: string;
  /** Dual stack: the IPv6 subnet (absent in an IPv4-only cluster). */
  subnet6?: string;
  publicIp: string;
  startedAt: string;
  pid: number;
  /** What this agent programmed towards each peer (by node name). */
  peers: Record<string, { backend: 'host-gw' | 'vxlan' | 'unreachable'; subnet: string; subnet6?: string; backend6?: 'host-gw' | 'vxlan' | 'unreachable' }>;
  /** The etcd revision of the listing the kernel state was last reconciled against. */
  revision: string;
  errors: string[];
}

/** VXLAN over IPv4: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 (RFC 7348 §5). */
export const VXLAN_OVERHEAD = 50;

/** IPv6's minimum link MTU (RFC 8200 §5): below it Linux turns IPv6 off on the interface. */
export const IPV6_MIN_MTU = 1280;

export function subnetKey(cidr: string): string {
  return `${SUBNETS_PREFIX}${cidr.replace('/', '-')}`;
}

/** `…/subnets/10.244.3.0-24` → `10.244.3.0/24`, or undefined for a key of another shape. */
export function subnetOfKey(key: string): string | undefined {
  if (!key.startsWith(SUBNETS_PREFIX)) return undefined;
  const m = /^(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(key.slice(SUBNETS_PREFIX.length));
  return m ? `${m[1]}/${m[2]}` : undefined;
}

export function nodeKey(name: string): string {
  return `${NODES_PREFIX}${name}`;
}

const NODE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function validateNodeName(name: string): void {
  if (!NODE_NAME_RE.test(name)) {
    throw new NsnetError('USAGE', `invalid node name "${name}": use 1–63 letters, digits, '_', '.', '-', starting with a letter or digit`, { object: name });
  }
}

function invalid(msg: string): NsnetError {
  return new NsnetError('CLUSTER_CONFIG_INVALID', msg);
}

/**
 * Validates a cluster configuration (pure). The rules: an IPv4 CIDR between /8 and /28,
 * host subnets strictly longer than it and at most /30 (a gateway and at least one
 * container), and room for at least two hosts.
 */
export function makeConfig(o: { cidr: string; subnetLen?: number; backend?: string; vni?: number; port?: number; mtu?: number; cidr6?: string; subnetLen6?: number }): ClusterConfig {
  let net: Cidr;
  try {
    net = Cidr.parse(o.cidr);
  } catch (e) {
    throw invalid(`invalid cluster CIDR "${o.cidr}": ${(e as Error).message}`);
  }
  if (net.family !== 4) throw invalid(`cluster CIDR ${o.cidr} is IPv6: only IPv4 clusters are supported`);
  if (net.prefixLength < 8 || net.prefixLength > 28) {
    throw invalid(`cluster CIDR ${o.cidr} is ${net.prefixLength < 8 ? 'too large' : 'too small'}: use a prefix between /8 and /28`);
  }
  const subnetLen = o.subnetLen ?? (net.prefixLength <= 22 ? 24 : net.prefixLength + 2);
  if (!Number.isInteger(subnetLen) || subnetLen <= net.prefixLength || subnetLen > 30) {
    throw invalid(`subnet length /${subnetLen} leaves no room in ${net}: it must be longer than /${net.prefixLength} and at most /30`);
  }
  if (subnetLen - net.prefixLength < 1) throw invalid(`subnet length /${subnetLen} gives ${net} room for fewer than two hosts`);
  const backend = (o.backend ?? 'auto') as BackendType;
  if (!['auto', 'vxlan', 'host-gw'].includes(backend)) throw invalid(`invalid backend "${o.backend}": use auto, vxlan or host-gw`);
  const vni = o.vni ?? 1;
  if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) throw invalid(`invalid VNI ${o.vni}: must be 1–16777215 (RFC 7348 §5: 24 bits)`);
  const port = o.port ?? 8472;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`invalid VXLAN port ${o.port}: must be 1–65535`);
  const mtu = o.mtu ?? 0;
  if (!Number.isInteger(mtu) || (mtu !== 0 && (mtu < 576 || mtu > 65535))) throw invalid(`invalid MTU ${o.mtu}: must be 576–65535 (or 0: from the underlay)`);
  const c: ClusterConfig = { schema: SCHEMA, network: net.toString(), subnetLen, backend, vni, port, mtu };
  if (o.cidr6 === undefined) {
    if (o.subnetLen6 !== undefined) throw invalid('--subnet-len6 needs --cidr6 (the cluster\'s IPv6 prefix)');
    return c;
  }
  return { ...c, ...makeConfig6(c, o.cidr6, o.subnetLen6) };
}

/** ULA (RFC 4193) and global unicast (RFC 4291 §2.4, 2000::/3): the prefixes a cluster can route. */
const ROUTABLE6 = [Cidr.parse('fc00::/7'), Cidr.parse('2000::/3')];

/**
 * The IPv6 half of a dual-stack config: a ULA or global prefix between /16 and /112, host
 * subnets longer than it and at most /120 (a gateway and containers), and at least as many
 * of them as the IPv4 layout has (host subnet i of each family belong to the same lease).
 */
function makeConfig6(c: ClusterConfig, cidr6: string, len6: number | undefined): { network6: string; subnetLen6: number } {
  let net6: Cidr;
  try {
    net6 = Cidr.parse(cidr6);
  } catch (e) {
    throw invalid(`invalid cluster IPv6 CIDR "${cidr6}": ${(e as Error).message}`);
  }
  if (net6.family !== 6) throw invalid(`--cidr6 ${cidr6} is IPv4: give the cluster's IPv6 prefix, e.g. fd00:244::/48`);
  if (!ROUTABLE6.some((r) => r.containsCidr(net6))) {
    throw invalid(`cluster IPv6 CIDR ${net6} is not a unique local (fc00::/7) or global unicast (2000::/3) prefix`);
  }
  if (net6.prefixLength < 16 || net6.prefixLength > 112) {
    throw invalid(`cluster IPv6 CIDR ${net6} is ${net6.prefixLength < 16 ? 'too large' : 'too small'}: use a prefix between /16 and /112`);
  }
  const subnetLen6 = len6 ?? 64;
  if (!Number.isInteger(subnetLen6) || subnetLen6 <= net6.prefixLength || subnetLen6 > 120) {
    throw invalid(`IPv6 subnet length /${subnetLen6} leaves no room in ${net6}: it must be longer than /${net6.prefixLength} and at most /120`);
  }
  const hosts4 = c.subnetLen - Cidr.parse(c.network).prefixLength;
  if (subnetLen6 - net6.prefixLength < hosts4) {
    throw invalid(`${net6} holds ${2n ** BigInt(subnetLen6 - net6.prefixLength)} IPv6 subnets of /${subnetLen6}, fewer than the ${2n ** BigInt(hosts4)} IPv4 host subnets of ${c.network}: use a shorter --cidr6 or a longer --subnet-len6`);
  }
  if (c.mtu && c.mtu < IPV6_MIN_MTU) throw invalid(`MTU ${c.mtu} is below IPv6's minimum of ${IPV6_MIN_MTU} (RFC 8200 §5): use --mtu ${IPV6_MIN_MTU} or more with --cidr6`);
  return { network6: net6.toString(), subnetLen6 };
}

/** Parses a stored config; a value of another schema is refused with a clear message. */
export function parseConfig(text: string): ClusterConfig {
  let v: Partial<ClusterConfig>;
  try { v = JSON.parse(text) as Partial<ClusterConfig>; } catch { throw invalid(`${CONFIG_KEY} is not JSON`); }
  if (v.schema !== SCHEMA) throw invalid(`${CONFIG_KEY} has schema ${String(v.schema)}; this nsnet understands schema ${SCHEMA}`);
  return makeConfig({
    cidr: String(v.network), subnetLen: v.subnetLen, backend: v.backend, vni: v.vni, port: v.port, mtu: v.mtu,
    ...(v.network6 !== undefined ? { cidr6: String(v.network6), subnetLen6: v.subnetLen6 } : {}),
  });
}

/** Parses a lease value; undefined for values this agent cannot use (logged by the caller). */
export function parseLease(text: string): SubnetLease | undefined {
  try {
    const v = JSON.parse(text) as SubnetLease;
    if (v.schema !== SCHEMA || typeof v.nodeId !== 'string' || typeof v.node !== 'string' || typeof v.vtepMac !== 'string') return undefined;
    IpAddress.parse(v.publicIp);
    if (!Number.isInteger(v.underlayMtu)) return undefined;
    // Dual-stack fields are optional; a malformed one is dropped, not the whole lease
    // (the IPv4 data plane towards the host does not depend on them).
    if (v.subnet6 !== undefined && !isCidr6(v.subnet6)) delete v.subnet6;
    if (v.linkLocal6 !== undefined && !isLinkLocal6(v.linkLocal6)) delete v.linkLocal6;
    return v;
  } catch {
    return undefined;
  }
}

function isCidr6(text: unknown): boolean {
  try { return typeof text === 'string' && Cidr.parse(text).family === 6; } catch { return false; }
}

const LINK_LOCAL6 = Cidr.parse('fe80::/10');

function isLinkLocal6(text: unknown): boolean {
  try { return typeof text === 'string' && LINK_LOCAL6.contains(IpAddress.parse(text)); } catch { return false; }
}

export function parseNode(text: string): NodeRecord | undefined {
  try {
    const v = JSON.parse(text) as NodeRecord;
    return v.schema === SCHEMA && typeof v.nodeId === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
