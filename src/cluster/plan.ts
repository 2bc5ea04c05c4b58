/**
 * Pure decisions of the cluster agent (no I/O, unit-tested in plan.test.ts): which subnet to
 * lease, and what the kernel must hold towards each peer.
 */
import { NsnetError } from '../errors.js';
import { Cidr } from '../ipam/cidr.js';
import { IpAddress } from '../ipam/address.js';
import { VXLAN_OVERHEAD, type ClusterConfig, type SubnetLease } from './keys.js';

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
    peers.push(p);
  }
  return {
    peers,
    tunnelMtu: tunnelMtu(c, self.underlayMtu, leases.values()),
    containerMtu: containerMtu(c, self.underlayMtu, leases.values()),
    vxlan: c.backend !== 'host-gw',
  };
}
