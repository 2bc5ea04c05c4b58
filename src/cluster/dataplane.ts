/**
 * The cluster's kernel state on one host, reconciled to a plan (plan.ts) with idempotent
 * steps: every call diffs what the kernel holds against what the plan wants, adds what is
 * missing, replaces what differs and deletes extras that are ours (and only ours). The same
 * call is the first programming, the answer to a watch event, and the periodic resync that
 * repairs entries deleted by hand (flannel's vxlan backend has no such resync: #1070, #2554).
 *
 * Per peer (reference/multihost-overlay.md §1.7):
 *   host-gw: ip route replace SUBNET via PEER_IP dev IFACE proto nsnet-cluster
 *   vxlan:   ip neigh replace VTEP_IP lladdr VTEP_MAC dev nsnet.VNI nud permanent
 *            bridge fdb replace VTEP_MAC dev nsnet.VNI dst PEER_IP self permanent
 *            ip route replace SUBNET via VTEP_IP dev nsnet.VNI onlink proto nsnet-cluster
 * Neighbour and FDB entries go in before the route (the kernel never has to resolve the
 * VTEP), and a route goes before its neighbour and FDB entries on removal.
 *
 * Dual stack, IPv6 carried over the IPv4 underlay. Linux has no IPv4 next hop for an IPv6
 * route (net/ipv6/route.c refuses RTA_VIA: "IPv6 does not support RTA_VIA attribute"; an
 * IPv4 nexthop object: "IPv6 routes can not use an IPv4 nexthop"), so per peer:
 *   host-gw: ip -6 route replace SUBNET6 via PEER_LINK_LOCAL dev IFACE proto nsnet-cluster
 *   vxlan:   ip -6 neigh replace VTEP6 lladdr VTEP_MAC dev nsnet.VNI nud permanent
 *            ip -6 route replace SUBNET6 via VTEP6 dev nsnet.VNI onlink proto nsnet-cluster
 * VTEP6 is a label (the IPv6 subnet's network address, assigned nowhere): the neighbour
 * entry turns it into the peer's VTEP MAC, whose FDB entry (above) sends the frame to the
 * peer's IPv4 underlay address — one tunnel, one FDB entry, both families inside.
 *
 * Our routes are recognised by their protocol number (RTPROT_CLUSTER); our neighbour and FDB
 * entries live on our own VXLAN device, so nothing here ever touches another program's state.
 */
import type { Netns } from '../kernel/netns/netns.js';
import { createVxlan, deleteLink, getLink, requireLink, setLinkMac, setLinkMtu, setLinkUp, type Link } from '../kernel/netlink/route/link.js';
import { addAddress, listAddresses } from '../kernel/netlink/route/addr.js';
import { deleteRoute, listRoutes, replaceRoute, type Route } from '../kernel/netlink/route/route.js';
import { deleteFdb, deleteNeighbour, listFdb, listNeighbours, replaceFdb, replaceNeighbour } from '../kernel/netlink/route/neigh.js';
import * as K from '../kernel/netlink/codec/constants.js';
import { writeSysctl } from '../kernel/netns/sysctl.js';
import { parseInterfaceCidr } from '../ipam/cidr.js';
import type { ClusterConfig } from './keys.js';
import type { DataplanePlan } from './plan.js';

/**
 * rtm_protocol of the routes the cluster agent owns (include/uapi/linux/rtnetlink.h leaves
 * values above RTPROT_STATIC to routing daemons; 0x6e is the single-host engine's). `ip route
 * show proto 0x6f` lists them.
 */
export const RTPROT_CLUSTER = 0x6f;

export function vxlanDeviceName(c: ClusterConfig): string {
  return `nsnet.${c.vni}`;
}

export interface Underlay {
  iface: string;
  index: number;
  publicIp: string;
  mtu: number;
  /** Prefixes of the interface's IPv4 addresses. */
  onLink: string[];
  /** The interface's IPv6 link-local address (host-gw IPv6 next hop for peers), if IPv6 is on. */
  linkLocal6: string | undefined;
}

export interface ReconcileResult {
  /** Entries added, replaced or deleted (0 when the kernel already matched). */
  changes: number;
  /** True when the VXLAN device had to be (re)created. */
  recreatedDevice: boolean;
}

/** The underlay interface's address, MTU and on-link prefixes; LINK_NOT_FOUND when it is missing. */
export function readUnderlay(host: Netns, iface: string): Underlay {
  const link = requireLink(host, iface);
  const addrs = listAddresses(host, { family: 4, dev: link.index }).filter((a) => a.scope === K.RT_SCOPE_UNIVERSE);
  const first = addrs[0];
  const ll = listAddresses(host, { family: 6, dev: link.index }).find((a) => a.scope === K.RT_SCOPE_LINK && a.address.startsWith('fe80:'));
  return {
    iface, index: link.index, publicIp: first?.address ?? '', mtu: link.mtu ?? 1500,
    onLink: addrs.map((a) => parseInterfaceCidr(`${a.address}/${a.prefixlen}`).subnet.toString()),
    linkLocal6: ll?.address,
  };
}

/** Ensures our VXLAN device: right VNI, port, local address and underlay; MAC, MTU, VTEP address, up. */
function ensureVxlan(host: Netns, c: ClusterConfig, u: Underlay, vtepMac: string, vtepIp: string, mtu: number): { link: Link; created: boolean; changes: number } {
  const name = vxlanDeviceName(c);
  let link = getLink(host, name);
  let created = false;
  let changes = 0;
  const compatible = link && link.kind === 'vxlan' && link.vxlan && link.vxlan.vni === c.vni && link.vxlan.port === c.port
    && link.vxlan.link === u.index && !link.vxlan.learning;
  if (link && !compatible) {
    deleteLink(host, name);
    link = undefined;
  }
  if (!link) {
    // nolearning: peers are known from etcd, never learned from traffic (flannel, RFC 7348
    // §4 leaves learning optional); the MAC is the one peers have in their neighbour tables.
    createVxlan(host, name, { vni: c.vni, port: c.port, local: u.publicIp, dev: u.index, learning: false, mac: vtepMac, mtu });
    // No IPv6 autoconfiguration on the tunnel (flannel sets accept_ra=0 too). A dual-stack
    // cluster needs IPv6 on (the kernel drops IPv6 output on a device where it is off) but
    // no address of its own: no link-local, so no DAD, router or MLD chatter into the tunnel.
    try {
      const conf = `net/ipv6/conf/${name}`;
      if (c.network6) {
        writeSysctl(host, `${conf}/accept_ra`, '0');
        writeSysctl(host, `${conf}/addr_gen_mode`, '1');
        writeSysctl(host, `${conf}/disable_ipv6`, '0');
      } else {
        writeSysctl(host, `${conf}/disable_ipv6`, '1');
      }
    } catch (e) {
      if (c.network6) throw e; // IPv6 off on the host: a dual-stack cluster cannot work here
    }
    link = requireLink(host, name);
    created = true;
    changes++;
  }
  if (link.mac !== vtepMac) { setLinkMac(host, link.index, vtepMac); changes++; }
  if (link.mtu !== mtu) { setLinkMtu(host, link.index, mtu); changes++; }
  const want = `${vtepIp}/32`;
  if (!listAddresses(host, { family: 4, dev: link.index }).some((a) => `${a.address}/${a.prefixlen}` === want)) {
    addAddress(host, link.index, want);
    changes++;
  }
  if (!link.up) { setLinkUp(host, link.index); changes++; }
  return { link: requireLink(host, name), created, changes };
}

/** What one route towards a peer must be, in either family. */
interface RouteWant { dst: string; backend: 'host-gw' | 'vxlan'; via: string }

function routeMatches(r: Route, w: RouteWant, u: Underlay, vxIndex: number | undefined): boolean {
  if (w.backend === 'host-gw') return r.gateway === w.via && r.dev === u.index;
  return r.gateway === w.via && r.dev === vxIndex && r.onlink;
}

function routeWants(plan: DataplanePlan): { v4: RouteWant[]; v6: RouteWant[] } {
  const v4: RouteWant[] = [];
  const v6: RouteWant[] = [];
  for (const p of plan.peers) {
    if (p.backend !== 'unreachable') v4.push({ dst: p.subnet, backend: p.backend, via: p.backend === 'host-gw' ? p.publicIp : p.vtepIp });
    if (p.v6 && p.v6.backend !== 'unreachable' && p.v6.via) v6.push({ dst: p.v6.subnet, backend: p.v6.backend, via: p.v6.via });
  }
  return { v4, v6 };
}

/**
 * Brings the kernel to `plan`. `ownSubnet` gives the VTEP address (its network address,
 * as flannel). Idempotent; safe to call at any time.
 */
export function reconcile(host: Netns, c: ClusterConfig, u: Underlay, ownSubnet: string, vtepMac: string, plan: DataplanePlan): ReconcileResult {
  let changes = 0;
  let recreatedDevice = false;
  let vx: Link | undefined;
  if (plan.vxlan) {
    const r = ensureVxlan(host, c, u, vtepMac, ownSubnet.split('/')[0]!, plan.tunnelMtu);
    vx = r.link;
    recreatedDevice = r.created;
    changes += r.changes;
  }
  const wanted = plan.peers.filter((p) => p.backend !== 'unreachable');
  const want = routeWants(plan);

  // 1. Routes that are ours but not wanted (or wrong): delete first, so a peer that moved
  //    from VXLAN to host-gw never has two paths.
  const good = new Set<string>();
  for (const [family, list] of [[4, want.v4], [6, want.v6]] as const) {
    const byDst = new Map(list.map((w) => [w.dst, w]));
    for (const r of listRoutes(host, { family }).filter((x) => x.protocol === RTPROT_CLUSTER)) {
      const w = byDst.get(r.dst);
      if (w && routeMatches(r, w, u, vx?.index)) { good.add(r.dst); continue; }
      deleteRoute(host, { dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev !== undefined ? { dev: r.dev } : {}), protocol: RTPROT_CLUSTER });
      changes++;
    }
  }

  // 2. VXLAN neighbour + FDB entries: wanted ones replaced when they differ, extras removed.
  //    IPv6 labels (dual stack) map to the same VTEP MACs as the IPv4 VTEP addresses.
  if (vx) {
    const vxPeers = wanted.filter((p) => p.backend === 'vxlan');
    const macOf = new Map(plan.peers.map((p) => [p.subnet, p.vtepMac]));
    const neighWant = new Map<string, string>(vxPeers.map((p) => [p.vtepIp, p.vtepMac]));
    for (const p of plan.peers) if (p.v6?.backend === 'vxlan' && p.v6.via) neighWant.set(p.v6.via, macOf.get(p.subnet)!);
    for (const family of c.network6 ? [4, 6] as const : [4] as const) {
      for (const n of listNeighbours(host, { family, ifindex: vx.index })) {
        if (!n.dst || (n.state & K.NUD_PERMANENT) === 0) continue;
        if (neighWant.get(n.dst) === n.mac) { neighWant.delete(n.dst); continue; }
        if (!neighWant.has(n.dst)) { deleteNeighbour(host, vx.index, n.dst); changes++; }
      }
    }
    for (const [ip, mac] of neighWant) { replaceNeighbour(host, vx.index, ip, mac); changes++; }
    // A peer reached over VXLAN in either family needs its FDB entry.
    const fdbPeers = plan.peers.filter((p) => p.backend === 'vxlan' || p.v6?.backend === 'vxlan');
    const fdbWant = new Map(fdbPeers.map((p) => [p.vtepMac, p.publicIp]));
    for (const f of listFdb(host, vx.index)) {
      // Only the device's own static entries towards a remote (NTF_SELF, NDA_DST set); the
      // all-zeros flood entry and anything else are not ours to judge.
      if (!f.mac || !f.dst || (f.flags & K.NTF_SELF) === 0 || f.mac === '00:00:00:00:00:00') continue;
      if (fdbWant.get(f.mac) === f.dst) { fdbWant.delete(f.mac); continue; }
      deleteFdb(host, { mac: f.mac, ifindex: vx.index, dst: f.dst });
      changes++;
    }
    for (const [mac, dst] of fdbWant) { replaceFdb(host, { mac, ifindex: vx.index, dst }); changes++; }
  }

  // 3. Routes last.
  for (const w of [...want.v4, ...want.v6]) {
    if (good.has(w.dst)) continue;
    if (w.backend === 'host-gw') {
      replaceRoute(host, { dst: w.dst, gateway: w.via, dev: u.index, protocol: RTPROT_CLUSTER });
    } else {
      if (!vx) continue;
      replaceRoute(host, { dst: w.dst, gateway: w.via, dev: vx.index, onlink: true, protocol: RTPROT_CLUSTER });
    }
    changes++;
  }
  return { changes, recreatedDevice };
}
