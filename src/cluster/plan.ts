/**
 * Pure decisions of the cluster agent (no I/O, unit-tested in plan.test.ts): which subnet to
 * lease, and what the kernel must hold towards each peer.
 */
import { NsnetError } from '../errors.js';
import { Cidr } from '../ipam/cidr.js';
import { IpAddress } from '../ipam/address.js';
import { IPV6_MIN_MTU, VXLAN_OVERHEAD, type ClusterConfig, type SubnetLease } from './keys.js';

/** Every host subnet of the cluster CIDR, in order. */
export function* clusterSubnets(c: ClusterConfig): Generator<string> {
  const net = Cidr.parse(c.network);
  const count = 1n << BigInt(c.subnetLen - net.prefixLength);
  const step = 1n << BigInt(32 - c.subnetLen);
  for (let i = 0n; i < count; i++) yield `${net.network.add(i * step).toString()}/${c.subnetLen}`;
}

/** Does `subnet` belong to this cluster's layout (inside the CIDR, of the configured length)? */
export function fitsConfig(c: ClusterConfig, subnet: string): boolean {
  try {
    const s = Cidr.parse(subnet);
    return s.prefixLength === c.subnetLen && Cidr.parse(c.network).containsCidr(s);
  } catch {
    return false;
  }
}

/**
 * The IPv6 subnet paired with an IPv4 host subnet in a dual-stack cluster: host subnet i of
 * `network` ↔ host subnet i of `network6` (10.244.3.0/24 in 10.244.0.0/16 ↔ fd00:244:0:3::/64
 * in fd00:244::/48). A pure function of the IPv4 lease, so the etcd transaction that makes
 * the IPv4 subnet unique makes the IPv6 one unique too, and a host that takes its IPv4
 * subnet back after a restart has its IPv6 subnet back as well. Undefined for an IPv4-only
 * cluster or a subnet outside the layout.
 */
export function subnet6Of(c: ClusterConfig, subnet: string): string | undefined {
  if (!c.network6 || c.subnetLen6 === undefined || !fitsConfig(c, subnet)) return undefined;
  const net = Cidr.parse(c.network);
  const index = (Cidr.parse(subnet).network.value - net.network.value) >> BigInt(32 - c.subnetLen);
  const net6 = Cidr.parse(c.network6);
  return `${net6.network.add(index << BigInt(128 - c.subnetLen6)).toString()}/${c.subnetLen6}`;
}

/**
 * Picks a free subnet: collects up to 100 free candidates in order and takes one at random
 * (flannel's allocateSubnet), so agents starting together rarely race for the same key;
 * the etcd transaction (create only if absent) settles the races that remain.
 */
export function pickFreeSubnet(c: ClusterConfig, taken: ReadonlySet<string>, random: () => number = Math.random): string {
  const free: string[] = [];
  for (const s of clusterSubnets(c)) {
    if (!taken.has(s)) free.push(s);
    if (free.length >= 100) break;
  }
  if (free.length === 0) {
    throw new NsnetError('CLUSTER_SUBNETS_EXHAUSTED', `no free /${c.subnetLen} left in cluster ${c.network} (${taken.size} leased): retire dead hosts with \`nsnet cluster node rm\``);
  }
  return free[Math.floor(random() * free.length)]!;
}

export type PeerBackend = 'host-gw' | 'vxlan' | 'unreachable';

export interface PeerPlan {
  node: string;
  subnet: string;
  backend: PeerBackend;
  publicIp: string;
  /** The peer's VTEP address on the overlay: its subnet's network address (flannel). */
  vtepIp: string;
  vtepMac: string;
  /** Why a host-gw peer is unreachable. */
  reason?: string;
  /**
   * Dual stack: the peer's IPv6 subnet, how it is reached and the IPv6 next hop — host-gw:
   * the peer's underlay link-local address on our underlay interface; vxlan: a label (the
   * subnet's network address, as the IPv4 VTEP address) that a permanent neighbour entry
   * maps to the peer's VTEP MAC, so IPv6 frames take the same FDB entry as IPv4 ones.
   * Absent when the cluster or the peer (an agent that predates dual stack) has no IPv6.
   */
  v6?: { subnet: string; backend: PeerBackend; via?: string; reason?: string };
}

export interface SelfView {
  subnet: string;
  /** Prefixes of the underlay interface's IPv4 addresses: who is on the same L2 segment. */
  onLink: readonly string[];
}

export interface DataplanePlan {
  peers: PeerPlan[];
  /** MTU of the VXLAN device (and the largest inner packet between hosts). */
  tunnelMtu: number;
  /**
   * MTU of the local `cluster` network (bridge, veths, containers' interfaces): the largest
   * packet a container can send to any other host without it being dropped on the way.
   */
  containerMtu: number;
  /** True when a VXLAN device is needed at all. */
  vxlan: boolean;
  /** Problems to report in the node's status (a container MTU below IPv6's minimum). */
  errors: string[];
}

function isOnLink(ip: string, onLink: readonly string[]): boolean {
  const a = IpAddress.parse(ip);
  return onLink.some((p) => { try { return Cidr.parse(p).contains(a); } catch { return false; } });
}

/** The tunnel MTU: configured, or the smallest underlay MTU in the cluster minus the VXLAN overhead. */
export function tunnelMtu(c: ClusterConfig, ownUnderlayMtu: number, leases: Iterable<SubnetLease>): number {
  if (c.mtu) return c.mtu;
  let min = ownUnderlayMtu;
  for (const l of leases) min = Math.min(min, l.underlayMtu);
  return min - VXLAN_OVERHEAD;
}

/**
 * The containers' MTU: configured, or the smallest underlay MTU in the cluster minus what the
 * backend adds — 50 bytes for VXLAN over IPv4 (RFC 7348 §5), nothing for host-gw (plain
 * routing). The smallest one in the whole cluster, not this host's: a container here sends
 * to every host, and a frame larger than the receiving underlay's MTU is dropped by the
 * receiving link without any ICMP (a veth or bridge port only counts it), so path MTU
 * discovery cannot find it. `auto` counts the overhead even when every peer is on-link,
 * so a routed host joining later does not need every container's MTU lowered.
 */
export function containerMtu(c: ClusterConfig, ownUnderlayMtu: number, leases: Iterable<SubnetLease>): number {
  if (c.mtu) return c.mtu;
  let min = ownUnderlayMtu;
  for (const l of leases) min = Math.min(min, l.underlayMtu);
  return min - (c.backend === 'host-gw' ? 0 : VXLAN_OVERHEAD);
}

/** What the kernel must hold towards every other host (flannel DirectRouting semantics for `auto`). */
export function planDataplane(c: ClusterConfig, self: SelfView & { underlayMtu: number }, leases: ReadonlyMap<string, SubnetLease>): DataplanePlan {
  const peers: PeerPlan[] = [];
  for (const [subnet, l] of [...leases].sort(([a], [b]) => a.localeCompare(b))) {
    if (subnet === self.subnet) continue;
    const direct = isOnLink(l.publicIp, self.onLink);
    const backend: PeerBackend = c.backend === 'vxlan' ? 'vxlan' : direct ? 'host-gw' : c.backend === 'auto' ? 'vxlan' : 'unreachable';
    const p: PeerPlan = { node: l.node, subnet, backend, publicIp: l.publicIp, vtepIp: subnet.split('/')[0]!, vtepMac: l.vtepMac };
    if (backend === 'unreachable') p.reason = `host-gw needs ${l.node} (${l.publicIp}) on the same L2 segment; it is behind a router`;
    const subnet6 = c.network6 ? subnet6Of(c, subnet) : undefined;
    if (subnet6 && l.subnet6 === subnet6) p.v6 = plan6(c, p, subnet6, l);
    peers.push(p);
  }
  const mtu = containerMtu(c, self.underlayMtu, leases.values());
  const errors: string[] = [];
  if (c.network6 && mtu < IPV6_MIN_MTU) {
    errors.push(`cluster MTU ${mtu} is below IPv6's minimum of ${IPV6_MIN_MTU} (RFC 8200 §5): containers get no IPv6 on the cluster network; raise the smallest underlay MTU to ${IPV6_MIN_MTU + (c.backend === 'host-gw' ? 0 : VXLAN_OVERHEAD)} or more`);
  }
  return {
    peers,
    tunnelMtu: tunnelMtu(c, self.underlayMtu, leases.values()),
    containerMtu: mtu,
    vxlan: c.backend !== 'host-gw',
    errors,
  };
}

/**
 * How the peer's IPv6 subnet is reached: as its IPv4 subnet, except that host-gw needs the
 * peer's underlay link-local address (Linux routes IPv6 only via IPv6 next hops); without
 * one, `auto` takes VXLAN (IPv6 in the same IPv4 tunnel) and `host-gw` reports it.
 */
function plan6(c: ClusterConfig, p: PeerPlan, subnet6: string, l: SubnetLease): NonNullable<PeerPlan['v6']> {
  if (p.backend === 'vxlan') return { subnet: subnet6, backend: 'vxlan', via: subnet6.split('/')[0]! };
  if (p.backend === 'host-gw') {
    if (l.linkLocal6) return { subnet: subnet6, backend: 'host-gw', via: l.linkLocal6 };
    if (c.backend === 'auto') return { subnet: subnet6, backend: 'vxlan', via: subnet6.split('/')[0]! };
    return { subnet: subnet6, backend: 'unreachable', reason: `host-gw IPv6 needs ${l.node}'s underlay link-local address; IPv6 is off on its underlay interface` };
  }
  return { subnet: subnet6, backend: 'unreachable', reason: p.reason };
}
