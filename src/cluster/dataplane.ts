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
import type { ClusterConfig } from './keys.js';
import type { DataplanePlan, PeerPlan } from './plan.js';

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
  const prefix = (ip: string, len: number): string => {
    const v = ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) & (((1n << 32n) - 1n) ^ ((1n << BigInt(32 - len)) - 1n));
    return `${[24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.')}/${len}`;
  };
  return {
    iface, index: link.index, publicIp: first?.address ?? '', mtu: link.mtu ?? 1500,
    onLink: addrs.map((a) => prefix(a.address, a.prefixlen)),
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
    // No IPv6 autoconfiguration on the tunnel (flannel sets accept_ra=0 too).
    try { writeSysctl(host, `net.ipv6.conf.${name}.disable_ipv6`, '1'); } catch { /* IPv6 disabled */ }
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

function routeMatches(r: Route, p: PeerPlan, u: Underlay, vxIndex: number | undefined): boolean {
  if (p.backend === 'host-gw') return r.gateway === p.publicIp && r.dev === u.index;
  return r.gateway === p.vtepIp && r.dev === vxIndex && r.onlink;
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
  const byDst = new Map(wanted.map((p) => [p.subnet, p]));

  // 1. Routes that are ours but not wanted (or wrong): delete first, so a peer that moved
  //    from VXLAN to host-gw never has two paths.
  const routes = listRoutes(host, { family: 4 }).filter((r) => r.protocol === RTPROT_CLUSTER);
  const good = new Set<string>();
  for (const r of routes) {
    const p = byDst.get(r.dst);
    if (p && routeMatches(r, p, u, vx?.index)) { good.add(r.dst); continue; }
    deleteRoute(host, { dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev !== undefined ? { dev: r.dev } : {}), protocol: RTPROT_CLUSTER });
    changes++;
  }

  // 2. VXLAN neighbour + FDB entries: wanted ones replaced when they differ, extras removed.
  if (vx) {
    const vxPeers = wanted.filter((p) => p.backend === 'vxlan');
    const neighWant = new Map(vxPeers.map((p) => [p.vtepIp, p.vtepMac]));
    for (const n of listNeighbours(host, { family: 4, ifindex: vx.index })) {
      if (!n.dst || (n.state & K.NUD_PERMANENT) === 0) continue;
      if (neighWant.get(n.dst) === n.mac) { neighWant.delete(n.dst); continue; }
      if (!neighWant.has(n.dst)) { deleteNeighbour(host, vx.index, n.dst); changes++; }
    }
    for (const [ip, mac] of neighWant) { replaceNeighbour(host, vx.index, ip, mac); changes++; }
    const fdbWant = new Map(vxPeers.map((p) => [p.vtepMac, p.publicIp]));
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
  for (const p of wanted) {
    if (good.has(p.subnet)) continue;
    if (p.backend === 'host-gw') {
      replaceRoute(host, { dst: p.subnet, gateway: p.publicIp, dev: u.index, protocol: RTPROT_CLUSTER });
    } else {
      if (!vx) continue;
      replaceRoute(host, { dst: p.subnet, gateway: p.vtepIp, dev: vx.index, onlink: true, protocol: RTPROT_CLUSTER });
    }
    changes++;
  }
  return { changes, recreatedDevice };
}
