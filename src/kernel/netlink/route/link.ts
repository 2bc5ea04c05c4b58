/**
 * Links (network devices) over rtnetlink: RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK
 * (include/uapi/linux/rtnetlink.h, if_link.h). Every operation takes the namespace handle
 * it acts in; none depends on an ambient "current namespace".
 */
import { NsnetError, isNsnetError } from '../../../errors.js';
import type { Netns } from '../../netns/netns.js';
import {
  type Attr, attrBytes, attrNested, attrString, attrU32, attrU8, attrU16,
  findAttr, getBytes, getNested, getString, getU32, getU8, getI32,
} from '../codec/attr.js';
import * as K from '../codec/constants.js';
import type { NetlinkMessage, IfInfoMsg } from '../codec/message.js';
import { bytesToMac, macToBytes, ipToBytes, ipFamily } from '../codec/inet.js';
import { u16be } from '../codec/bytes.js';
import type { BatchRequest } from '../socket.js';

export interface Link {
  index: number;
  name: string;
  /** ifi_flags (IFF_*). */
  flags: number;
  up: boolean;
  mtu: number | undefined;
  mac: string | undefined;
  /** ifindex of the master (bridge), if enslaved. */
  master: number | undefined;
  /** IFLA_INFO_KIND: 'veth', 'bridge', 'vxlan', 'macvlan'…; undefined for physical/loopback. */
  kind: string | undefined;
  /** IFLA_INFO_SLAVE_KIND: 'bridge' for a bridge port. */
  slaveKind: string | undefined;
  /** IF_OPER_* (RFC 2863 operstate). */
  operstate: number | undefined;
  /** IFLA_LINK: for veth, the peer's ifindex (in the peer's namespace). */
  link: number | undefined;
  /** IFLA_LINK_NETNSID: the peer's namespace id, as seen from this namespace. */
  linkNetnsId: number | undefined;
  /** Bridge-port flags, when the link is a bridge port. */
  bridgePort: { hairpin: boolean; isolated: boolean; learning: boolean } | undefined;
  /** VXLAN data, when kind is vxlan. */
  vxlan: { vni: number; port: number; learning: boolean; link: number | undefined } | undefined;
  /** All attributes as received, including those nsnet does not interpret. */
  attrs: Attr[];
}

export function decodeLink(m: NetlinkMessage): Link {
  if (m.kind !== 'link') throw new Error(`expected a link message, got ${m.kind}`);
  const a = m.attrs;
  const info = getNested(a, K.IFLA_LINKINFO);
  const kind = info ? getString(info, K.IFLA_INFO_KIND) : undefined;
  const slaveKind = info ? getString(info, K.IFLA_INFO_SLAVE_KIND) : undefined;
  const slaveData = info && slaveKind === 'bridge' ? getNested(info, K.IFLA_INFO_SLAVE_DATA) : undefined;
  const data = info ? getNested(info, K.IFLA_INFO_DATA) : undefined;
  const macBytes = getBytes(a, K.IFLA_ADDRESS);
  return {
    index: m.ifi.index,
    name: getString(a, K.IFLA_IFNAME) ?? '',
    flags: m.ifi.flags,
    up: (m.ifi.flags & K.IFF_UP) !== 0,
    mtu: getU32(a, K.IFLA_MTU),
    mac: macBytes && macBytes.length === 6 ? bytesToMac(macBytes) : undefined,
    master: getU32(a, K.IFLA_MASTER),
    kind,
    slaveKind,
    operstate: getU8(a, K.IFLA_OPERSTATE),
    link: getU32(a, K.IFLA_LINK),
    linkNetnsId: getI32(a, K.IFLA_LINK_NETNSID),
    bridgePort: slaveData
      ? {
          hairpin: (getU8(slaveData, K.IFLA_BRPORT_MODE) ?? 0) === 1,
          isolated: (getU8(slaveData, K.IFLA_BRPORT_ISOLATED) ?? 0) === 1,
          learning: (getU8(slaveData, K.IFLA_BRPORT_LEARNING) ?? 1) === 1,
        }
      : undefined,
    vxlan:
      kind === 'vxlan' && data
        ? {
            vni: getU32(data, K.IFLA_VXLAN_ID) ?? 0,
            port: getBytes(data, K.IFLA_VXLAN_PORT)?.readUInt16BE(0) ?? 0,
            learning: (getU8(data, K.IFLA_VXLAN_LEARNING) ?? 1) === 1,
            link: getU32(data, K.IFLA_VXLAN_LINK),
          }
        : undefined,
    attrs: a,
  };
}

/**
 * Interface names as the kernel accepts them (net/core/dev.c: dev_valid_name): 1–15 bytes,
 * not "." or "..", no '/', ':' or whitespace.
 */
export function validateIfname(name: string): void {
  const bytes = Buffer.byteLength(name);
  let why: string | undefined;
  if (bytes === 0) why = 'it is empty';
  else if (bytes > 15) why = `it is ${bytes} bytes long (the kernel allows 15)`;
  else if (name === '.' || name === '..') why = 'it is a path component';
  else if (/[/:\s]/.test(name)) why = "it contains '/', ':' or whitespace";
  if (why) throw new NsnetError('IFNAME_INVALID', `invalid interface name "${name}": ${why}`, { object: name });
}

function ifi(index = 0, flags = 0, change = 0): IfInfoMsg {
  return { family: K.AF_UNSPEC, pad: 0, type: 0, index, flags, change };
}

function linkMsg(type: number, flags: number, i: IfInfoMsg, attrs: Attr[]): NetlinkMessage {
  return { kind: 'link', header: { type, flags, seq: 0, pid: 0 }, ifi: i, attrs };
}

/** Get a link by name or index; undefined when it does not exist. Equivalent: `ip link show DEV`. */
export function getLink(ns: Netns, dev: string | number): Link | undefined {
  if (typeof dev === 'string') validateIfname(dev);
  const msg = typeof dev === 'number'
    ? linkMsg(K.RTM_GETLINK, 0, ifi(dev), [])
    : linkMsg(K.RTM_GETLINK, 0, ifi(), [attrString(K.IFLA_IFNAME, dev)]);
  try {
    const replies = ns.netlink().request(msg, { what: `get link ${dev}`, object: String(dev) });
    const m = replies.find((r) => r.kind === 'link');
    return m ? decodeLink(m) : undefined;
  } catch (e) {
    if (isNsnetError(e, 'NETLINK_ENODEV') || isNsnetError(e, 'NETLINK_ENOENT')) return undefined;
    throw e;
  }
}

/** Like getLink but a missing link is a LINK_NOT_FOUND error naming it and the namespace. */
export function requireLink(ns: Netns, dev: string | number): Link {
  const l = getLink(ns, dev);
  if (!l) throw new NsnetError('LINK_NOT_FOUND', `link ${dev} not found in ${ns.label}`, { object: String(dev) });
  return l;
}

/** All links. Equivalent: `ip -d link show`. */
export function listLinks(ns: Netns): Link[] {
  const msgs = ns.netlink().dump(linkMsg(K.RTM_GETLINK, 0, ifi(), []), { what: 'list links' });
  return msgs.filter((m) => m.kind === 'link').map(decodeLink);
}

export interface CommonLinkOptions {
  mtu?: number;
  mac?: string;
  up?: boolean;
  /** Enslave to this master (ifindex) at creation. */
  master?: number;
}

function commonAttrs(o: CommonLinkOptions): Attr[] {
  const a: Attr[] = [];
  if (o.mtu !== undefined) a.push(attrU32(K.IFLA_MTU, o.mtu));
  if (o.mac !== undefined) a.push(attrBytes(K.IFLA_ADDRESS, macToBytes(o.mac)));
  if (o.master !== undefined) a.push(attrU32(K.IFLA_MASTER, o.master));
  return a;
}

/**
 * Creates a link and returns it as the kernel echoed it (NLM_F_ECHO, honoured for new links
 * since Linux 6.3: net/core/rtnetlink.c rtnl_configure_link), so callers learn its ifindex
 * without a second request; undefined from a kernel that does not echo.
 */
function createLink(ns: Netns, name: string, kind: string, attrs: Attr[], info: Attr[], o: CommonLinkOptions): Link | undefined {
  validateIfname(name);
  const linkinfo = attrNested(K.IFLA_LINKINFO, [attrString(K.IFLA_INFO_KIND, kind), ...info]);
  const msg = linkMsg(
    K.RTM_NEWLINK,
    K.NLM_F_CREATE | K.NLM_F_EXCL | K.NLM_F_ECHO,
    ifi(0, o.up ? K.IFF_UP : 0, o.up ? K.IFF_UP : 0),
    [attrString(K.IFLA_IFNAME, name), ...commonAttrs(o), ...attrs, linkinfo],
  );
  try {
    const replies = ns.netlink().request(msg, { what: `create ${kind} link ${name} in ${ns.label}`, object: name });
    // Several notifications may be echoed (register, then configure); the last is current.
    const echoed = replies.filter((r) => r.kind === 'link' && r.header.type === K.RTM_NEWLINK).map(decodeLink).filter((l) => l.name === name);
    return echoed.at(-1);
  } catch (e) {
    if (isNsnetError(e, 'NETLINK_EEXIST')) {
      throw new NsnetError('NETLINK_EEXIST', `link ${name} already exists in ${ns.label}`, { object: name, errno: e.errno, cause: e });
    }
    if (isNsnetError(e, 'NETLINK_EOPNOTSUPP') && /unknown device type/i.test(e.extack ?? 'unknown device type')) {
      throw new NsnetError('LINK_TYPE_UNSUPPORTED', `this kernel does not support ${kind} links (creating ${name})`, { object: name, cause: e });
    }
    throw e;
  }
}

export interface VethPeer extends CommonLinkOptions {
  name: string;
  /** The namespace to create the peer in, directly (IFLA_NET_NS_FD); default: the same. */
  ns?: Netns;
}

/**
 * Creates a veth pair with the peer born in its target namespace, so there is never a
 * half-made pair to clean up: the kernel creates both ends or neither (drivers/net/veth.c:
 * veth_newlink). Equivalent: `ip link add NAME type veth peer name PEER netns NS`.
 */
export function createVeth(ns: Netns, name: string, peer: VethPeer, o: CommonLinkOptions = {}): { index: number; peerIndex: number } {
  validateIfname(peer.name);
  // The peer is described by a full ifinfomsg + attributes inside VETH_INFO_PEER.
  const peerAttrs: Attr[] = [attrString(K.IFLA_IFNAME, peer.name), ...commonAttrs(peer)];
  if (peer.ns && peer.ns !== ns) peerAttrs.push(attrU32(K.IFLA_NET_NS_FD, peer.ns.nsFd));
  // The peer cannot be brought up inside the create request: the kernel configures it
  // before the two ends are linked and veth_open() then fails with ENOTCONN.
  const peerMsg = encodePeer(Buffer.alloc(16), peerAttrs);
  const data = attrNested(K.IFLA_INFO_DATA, [attrBytes(K.VETH_INFO_PEER, peerMsg)]);
  const peerNs = peer.ns ?? ns;
  let made: Link | undefined;
  try {
    made = createLink(ns, name, 'veth', [], [data], o);
  } catch (e) {
    // EEXIST does not say which end's name is taken; name the peer when it is the one.
    if (isNsnetError(e, 'NETLINK_EEXIST') && !getLink(ns, name) && getLink(peerNs, peer.name)) {
      throw new NsnetError('NETLINK_EEXIST', `link ${peer.name} already exists in ${peerNs.label}`, { object: peer.name, errno: e.errno, cause: e });
    }
    throw e;
  }
  try {
    // A veth's IFLA_LINK is its peer's ifindex, in the peer's namespace (veth_get_iflink).
    const index = made?.index ?? requireLink(ns, name).index;
    const peerIndex = made?.link ?? requireLink(peerNs, peer.name).index;
    if (peer.up) setLinkUp(peerNs, peerIndex);
    return { index, peerIndex };
  } catch (e) {
    deleteLink(ns, name);
    throw e;
  }
}

function encodePeer(ifinfo: Buffer, attrs: Attr[]): Buffer {
  // VETH_INFO_PEER's payload is struct ifinfomsg followed by IFLA_* attributes.
  const nested = attrNested(0, attrs).data;
  return Buffer.concat([ifinfo, nested]);
}

/**
 * Ensures a bridge exists (creates it if missing; an existing link of the same name must
 * be a bridge). Equivalent: `ip link add NAME type bridge`.
 */
export function ensureBridge(ns: Netns, name: string, o: CommonLinkOptions & { stp?: boolean; nfCall?: boolean } = {}): Link {
  const existing = getLink(ns, name);
  if (existing) {
    if (existing.kind !== 'bridge') {
      throw new NsnetError('NETLINK_EEXIST', `link ${name} exists in ${ns.label} but is a ${existing.kind ?? 'device'}, not a bridge`, { object: name });
    }
    return existing;
  }
  const brOpts = [attrU32(K.IFLA_BR_STP_STATE, o.stp ? 1 : 0)];
  if (o.nfCall) brOpts.push(attrU8(K.IFLA_BR_NF_CALL_IPTABLES, 1), attrU8(K.IFLA_BR_NF_CALL_IP6TABLES, 1));
  const data = attrNested(K.IFLA_INFO_DATA, brOpts);
  return createLink(ns, name, 'bridge', [], [data], o) ?? requireLink(ns, name);
}

export interface VxlanOptions extends CommonLinkOptions {
  vni: number;
  /** UDP destination port; IANA's 4789 by default (RFC 7348 §5). */
  port?: number;
  local?: string;
  /** Underlay device ifindex. */
  dev?: number;
  learning?: boolean;
  ttl?: number;
}

/** Equivalent: `ip link add NAME type vxlan id VNI dstport PORT local IP dev DEV nolearning`. */
export function createVxlan(ns: Netns, name: string, o: VxlanOptions): void {
  if (!Number.isInteger(o.vni) || o.vni < 0 || o.vni > 0xffffff) {
    throw new NsnetError('NETLINK_EINVAL', `invalid VXLAN id ${o.vni} for ${name}: must be 0–16777215`, { object: name });
  }
  const d: Attr[] = [attrU32(K.IFLA_VXLAN_ID, o.vni), attrBytes(K.IFLA_VXLAN_PORT, u16be(o.port ?? 4789))];
  d.push(attrU8(K.IFLA_VXLAN_LEARNING, o.learning ? 1 : 0));
  if (o.local) d.push(attrBytes(ipFamily(o.local) === 4 ? K.IFLA_VXLAN_LOCAL : K.IFLA_VXLAN_LOCAL6, ipToBytes(o.local)));
  if (o.dev !== undefined) d.push(attrU32(K.IFLA_VXLAN_LINK, o.dev));
  if (o.ttl !== undefined) d.push(attrU8(K.IFLA_VXLAN_TTL, o.ttl));
  createLink(ns, name, 'vxlan', [], [attrNested(K.IFLA_INFO_DATA, d)], o);
}

export type MacvlanMode = keyof typeof K.MACVLAN_MODE;
export type IpvlanMode = keyof typeof K.IPVLAN_MODE;

/** Equivalent: `ip link add NAME link PARENT type macvlan mode MODE [netns NS]`. */
export function createMacvlan(ns: Netns, name: string, parent: number, mode: MacvlanMode, o: CommonLinkOptions & { targetNs?: Netns } = {}): void {
  const attrs: Attr[] = [attrU32(K.IFLA_LINK, parent)];
  if (o.targetNs) attrs.push(attrU32(K.IFLA_NET_NS_FD, o.targetNs.nsFd));
  createLink(ns, name, 'macvlan', attrs, [attrNested(K.IFLA_INFO_DATA, [attrU32(K.IFLA_MACVLAN_MODE, K.MACVLAN_MODE[mode])])], o);
}

/** Equivalent: `ip link add NAME link PARENT type ipvlan mode MODE [netns NS]`. */
export function createIpvlan(ns: Netns, name: string, parent: number, mode: IpvlanMode, o: CommonLinkOptions & { targetNs?: Netns } = {}): void {
  const attrs: Attr[] = [attrU32(K.IFLA_LINK, parent)];
  if (o.targetNs) attrs.push(attrU32(K.IFLA_NET_NS_FD, o.targetNs.nsFd));
  createLink(ns, name, 'ipvlan', attrs, [attrNested(K.IFLA_INFO_DATA, [attrU16(K.IFLA_IPVLAN_MODE, K.IPVLAN_MODE[mode])])], o);
}

function resolveIndex(ns: Netns, dev: string | number): number {
  return typeof dev === 'number' ? dev : requireLink(ns, dev).index;
}

function setLink(ns: Netns, dev: string | number, what: string, i: Partial<IfInfoMsg>, attrs: Attr[]): void {
  const index = resolveIndex(ns, dev);
  const msg = linkMsg(K.RTM_NEWLINK, 0, { ...ifi(index), ...i }, attrs);
  ns.netlink().request(msg, { what: `${what} ${dev} in ${ns.label}`, object: String(dev) });
}

/** Equivalent: `ip link set DEV up`. */
export function setLinkUp(ns: Netns, dev: string | number): void {
  ns.netlink().requestAll([setLinkUpRequest(ns, resolveIndex(ns, dev), String(dev))]);
}

/** The request setLinkUp sends for a known ifindex, for a batch (NetlinkSocket.requestAll). */
export function setLinkUpRequest(ns: Netns, index: number, dev: string = `#${index}`): BatchRequest {
  return { msg: linkMsg(K.RTM_NEWLINK, 0, { ...ifi(index), flags: K.IFF_UP, change: K.IFF_UP }, []), what: `set up ${dev} in ${ns.label}`, object: dev };
}

/** Equivalent: `ip link set DEV down`. */
export function setLinkDown(ns: Netns, dev: string | number): void {
  setLink(ns, dev, 'set down', { flags: 0, change: K.IFF_UP }, []);
}

/** Equivalent: `ip link set DEV mtu N`. */
export function setLinkMtu(ns: Netns, dev: string | number, mtu: number): void {
  setLink(ns, dev, `set mtu ${mtu} on`, {}, [attrU32(K.IFLA_MTU, mtu)]);
}

/** Equivalent: `ip link set DEV address MAC`. */
export function setLinkMac(ns: Netns, dev: string | number, mac: string): void {
  setLink(ns, dev, `set address ${mac} on`, {}, [attrBytes(K.IFLA_ADDRESS, macToBytes(mac))]);
}

/** Equivalent: `ip link set DEV master MASTER` (or `nomaster` with null). */
export function setLinkMaster(ns: Netns, dev: string | number, master: string | number | null): void {
  const m = master === null ? 0 : resolveIndex(ns, master);
  setLink(ns, dev, master === null ? 'set nomaster on' : `set master ${master} on`, {}, [attrU32(K.IFLA_MASTER, m)]);
}

/** Equivalent: `ip link set DEV name NEW`. The link must be down. */
export function renameLink(ns: Netns, dev: string | number, newName: string): void {
  validateIfname(newName);
  setLink(ns, dev, `rename to ${newName}`, {}, [attrString(K.IFLA_IFNAME, newName)]);
}

/**
 * Equivalent: `ip link set DEV netns NS [name NEW]`.
 *
 * The kernel moves the link first and renames it afterwards (net/core/rtnetlink.c:
 * do_setlink), so a NEW name already taken in the target fails only the rename and leaves
 * the link moved under its old name. That is refused before anything is sent, and a move
 * whose rename still fails (a race) is moved back.
 */
export function moveLink(ns: Netns, dev: string | number, target: Netns, newName?: string): void {
  const attrs = [attrU32(K.IFLA_NET_NS_FD, target.nsFd)];
  if (newName === undefined) {
    setLink(ns, dev, `move to ${target.label}`, {}, attrs);
    return;
  }
  validateIfname(newName);
  const link = requireLink(ns, dev);
  const taken = (): NsnetError =>
    new NsnetError('NETLINK_EEXIST', `link ${newName} already exists in ${target.label}`, { object: newName, errno: 17 });
  if (getLink(target, newName)) throw taken();
  attrs.push(attrString(K.IFLA_IFNAME, newName));
  try {
    setLink(ns, link.index, `move to ${target.label} as ${newName}: link`, {}, attrs);
  } catch (e) {
    // Only if the link did leave: a refused move (its old name taken in the target) left
    // nothing to undo, and the target's link of that name is someone else's.
    if (!isNsnetError(e, 'NETLINK_EEXIST') || getLink(ns, link.name)) throw e;
    const moved = getLink(target, link.name);
    if (!moved) throw e;
    setLink(target, moved.index, `move back to ${ns.label}`, {}, [attrU32(K.IFLA_NET_NS_FD, ns.nsFd)]);
    throw taken();
  }
}

export interface BridgePortFlags {
  hairpin?: boolean;
  isolated?: boolean;
  learning?: boolean;
}

/** Equivalent: `ip link set DEV type bridge_slave hairpin on isolated on learning off`. */
export function setBridgePort(ns: Netns, dev: string | number, f: BridgePortFlags): void {
  const d: Attr[] = [];
  if (f.hairpin !== undefined) d.push(attrU8(K.IFLA_BRPORT_MODE, f.hairpin ? 1 : 0));
  if (f.isolated !== undefined) d.push(attrU8(K.IFLA_BRPORT_ISOLATED, f.isolated ? 1 : 0));
  if (f.learning !== undefined) d.push(attrU8(K.IFLA_BRPORT_LEARNING, f.learning ? 1 : 0));
  if (d.length === 0) return;
  const info = attrNested(K.IFLA_LINKINFO, [attrString(K.IFLA_INFO_SLAVE_KIND, 'bridge'), attrNested(K.IFLA_INFO_SLAVE_DATA, d)]);
  setLink(ns, dev, 'set bridge port flags on', {}, [info]);
}

/**
 * Deletes a link; a link that does not exist is success (idempotent). Deleting one end of
 * a veth pair deletes both. Equivalent: `ip link del DEV`.
 */
export function deleteLink(ns: Netns, dev: string | number): boolean {
  if (typeof dev === 'string') validateIfname(dev);
  const msg = typeof dev === 'number'
    ? linkMsg(K.RTM_DELLINK, 0, ifi(dev), [])
    : linkMsg(K.RTM_DELLINK, 0, ifi(), [attrString(K.IFLA_IFNAME, dev)]);
  try {
    ns.netlink().request(msg, { what: `delete link ${dev} in ${ns.label}`, object: String(dev) });
    return true;
  } catch (e) {
    if (isNsnetError(e, 'NETLINK_ENODEV') || isNsnetError(e, 'NETLINK_ENOENT')) return false;
    throw e;
  }
}

export { findAttr };
