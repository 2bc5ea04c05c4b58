/**
 * Neighbours (ARP/NDP entries) and bridge FDB entries over rtnetlink: RTM_NEWNEIGH /
 * RTM_DELNEIGH / RTM_GETNEIGH (include/uapi/linux/neighbour.h). The FDB is the same
 * message family with ndm_family = AF_BRIDGE (net/bridge/br_fdb.c, and
 * drivers/net/vxlan/vxlan_core.c for a VXLAN device's remote entries).
 */
import { isNsnetError } from '../../../errors.js';
import type { Netns } from '../../netns/netns.js';
import { type Attr, attrBytes, attrU32, getBytes, getU32 } from '../codec/attr.js';
import * as K from '../codec/constants.js';
import type { NetlinkMessage } from '../codec/message.js';
import { bytesToIp, bytesToMac, ipFamily, ipToBytes, macToBytes } from '../codec/inet.js';

export interface Neighbour {
  family: 4 | 6 | 'bridge';
  ifindex: number;
  /** IP for ARP/NDP entries; for FDB entries, the remote VTEP (NDA_DST) if any. */
  dst: string | undefined;
  mac: string | undefined;
  state: number;
  flags: number;
  master: number | undefined;
  vni: number | undefined;
}

function neighMsg(type: number, flags: number, family: number, ifindex: number, state: number, ntf: number, attrs: Attr[]): NetlinkMessage {
  return {
    kind: 'neigh', header: { type, flags, seq: 0, pid: 0 },
    ndm: { family, pad1: 0, pad2: 0, ifindex, state, flags: ntf, type: 0 }, attrs,
  };
}

export function decodeNeighbour(m: NetlinkMessage): Neighbour {
  if (m.kind !== 'neigh') throw new Error(`expected a neigh message, got ${m.kind}`);
  const dst = getBytes(m.attrs, K.NDA_DST);
  const ll = getBytes(m.attrs, K.NDA_LLADDR);
  return {
    family: m.ndm.family === K.AF_BRIDGE ? 'bridge' : m.ndm.family === K.AF_INET6 ? 6 : 4,
    ifindex: m.ndm.ifindex,
    dst: dst ? bytesToIp(dst) : undefined,
    mac: ll && ll.length === 6 ? bytesToMac(ll) : undefined,
    state: m.ndm.state,
    flags: m.ndm.flags,
    master: getU32(m.attrs, K.NDA_MASTER),
    vni: getU32(m.attrs, K.NDA_VNI),
  };
}

/** Adds or replaces a permanent neighbour entry. Equivalent: `ip neigh replace IP lladdr MAC dev DEV nud permanent`. */
export function replaceNeighbour(ns: Netns, ifindex: number, ip: string, mac: string): void {
  const family = ipFamily(ip) === 4 ? K.AF_INET : K.AF_INET6;
  const msg = neighMsg(K.RTM_NEWNEIGH, K.NLM_F_CREATE | K.NLM_F_REPLACE, family, ifindex, K.NUD_PERMANENT, 0,
    [attrBytes(K.NDA_DST, ipToBytes(ip)), attrBytes(K.NDA_LLADDR, macToBytes(mac))]);
  ns.netlink().request(msg, { what: `replace neighbour ${ip} lladdr ${mac} on #${ifindex} in ${ns.label}`, object: ip });
}

/** Deletes a neighbour entry; missing is success. Equivalent: `ip neigh del IP dev DEV`. */
export function deleteNeighbour(ns: Netns, ifindex: number, ip: string): boolean {
  const family = ipFamily(ip) === 4 ? K.AF_INET : K.AF_INET6;
  try {
    ns.netlink().request(neighMsg(K.RTM_DELNEIGH, 0, family, ifindex, 0, 0, [attrBytes(K.NDA_DST, ipToBytes(ip))]),
      { what: `delete neighbour ${ip} on #${ifindex} in ${ns.label}`, object: ip });
    return true;
  } catch (e) {
    if (isNsnetError(e, 'NETLINK_ENOENT') || isNsnetError(e, 'NETLINK_ENODEV')) return false;
    throw e;
  }
}

/** Equivalent: `ip [-4|-6] neigh show [dev DEV]`. */
export function listNeighbours(ns: Netns, o: { family?: 4 | 6; ifindex?: number } = {}): Neighbour[] {
  const family = o.family === 4 ? K.AF_INET : o.family === 6 ? K.AF_INET6 : K.AF_UNSPEC;
  const msgs = ns.netlink().dump(neighMsg(K.RTM_GETNEIGH, 0, family, 0, 0, 0, []), { what: 'list neighbours' });
  return msgs.filter((m) => m.kind === 'neigh').map(decodeNeighbour)
    .filter((n) => n.family !== 'bridge' && (o.ifindex === undefined || n.ifindex === o.ifindex));
}

export interface FdbEntry {
  mac: string;
  /** The device the entry is on (a bridge port, or a VXLAN device). */
  ifindex: number;
  /** Remote VTEP address, for VXLAN devices. */
  dst?: string;
  vni?: number;
}

/**
 * Adds or replaces a static FDB entry on the device itself (NTF_SELF: a VXLAN device's own
 * table). Equivalent: `bridge fdb replace MAC dev DEV dst IP self permanent`.
 *
 * The all-zeros MAC (where a VXLAN device floods broadcast/unknown traffic) and multicast
 * MACs hold a *list* of remotes, one per VTEP, and the kernel refuses NLM_F_REPLACE for
 * them (drivers/net/vxlan/vxlan_core.c: vxlan_fdb_update_create, EOPNOTSUPP). For those the
 * remote is appended instead — `bridge fdb append 00:00:00:00:00:00 dev DEV dst IP` — which
 * is idempotent too (an existing remote is left as it is).
 */
export function replaceFdb(ns: Netns, e: FdbEntry): void {
  const mac = macToBytes(e.mac);
  const attrs: Attr[] = [attrBytes(K.NDA_LLADDR, mac)];
  if (e.dst) attrs.push(attrBytes(K.NDA_DST, ipToBytes(e.dst)));
  if (e.vni !== undefined) attrs.push(attrU32(K.NDA_VNI, e.vni));
  const floodList = mac.every((b) => b === 0) || (mac[0]! & 1) === 1;
  const how = floodList ? K.NLM_F_APPEND : K.NLM_F_REPLACE;
  ns.netlink().request(neighMsg(K.RTM_NEWNEIGH, K.NLM_F_CREATE | how, K.AF_BRIDGE, e.ifindex, K.NUD_PERMANENT, K.NTF_SELF, attrs),
    { what: `${floodList ? 'append' : 'replace'} fdb ${e.mac} on #${e.ifindex}${e.dst ? ` dst ${e.dst}` : ''} in ${ns.label}`, object: e.mac });
}

/** Deletes an FDB entry; missing is success. Equivalent: `bridge fdb del MAC dev DEV [dst IP] self`. */
export function deleteFdb(ns: Netns, e: FdbEntry): boolean {
  const attrs: Attr[] = [attrBytes(K.NDA_LLADDR, macToBytes(e.mac))];
  if (e.dst) attrs.push(attrBytes(K.NDA_DST, ipToBytes(e.dst)));
  try {
    ns.netlink().request(neighMsg(K.RTM_DELNEIGH, 0, K.AF_BRIDGE, e.ifindex, 0, K.NTF_SELF, attrs),
      { what: `delete fdb ${e.mac} on #${e.ifindex} in ${ns.label}`, object: e.mac });
    return true;
  } catch (err) {
    if (isNsnetError(err, 'NETLINK_ENOENT') || isNsnetError(err, 'NETLINK_ENODEV')) return false;
    throw err;
  }
}

/** FDB entries of one device. Equivalent: `bridge fdb show dev DEV`. */
export function listFdb(ns: Netns, ifindex?: number): Neighbour[] {
  const msgs = ns.netlink().dump(neighMsg(K.RTM_GETNEIGH, 0, K.AF_BRIDGE, 0, 0, 0, []), { what: 'list fdb' });
  return msgs.filter((m) => m.kind === 'neigh').map(decodeNeighbour)
    .filter((n) => ifindex === undefined || n.ifindex === ifindex);
}
