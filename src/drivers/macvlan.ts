/**
 * The macvlan and ipvlan drivers: each endpoint gets an interface of its own on a host
 * interface (the network's `parent`), directly on that interface's LAN — no bridge, no veth,
 * no NAT. The network's gateway is a router on that LAN, not the host. The engine owns
 * validation order, IPAM, the store; this file owns what is specific to these drivers.
 *
 * What a tutorial does by hand, and the call here that does it:
 *   ip link add eth0 link PARENT netns NS type macvlan mode bridge;
 *   ip -n NS addr add IP/24 dev eth0; ip -n NS link set eth0 up; ip -n NS link set lo up;
 *   ip -n NS route add default via GW                                     → attachVlanEndpoint
 *   ip -n NS link del eth0                                                → detachVlanEndpoint
 *   ip link add nsm-lan link PARENT type macvlan mode bridge;                (the shim)
 *   ip addr add HOSTIP/32 dev nsm-lan; ip link set nsm-lan up             → ensureVlanNetwork
 *   ip route add CONTAINERIP/32 dev nsm-lan src HOSTIP                    → attachVlanEndpoint
 *
 * The interface is created directly inside the namespace under its final name
 * (IFLA_NET_NS_FD with IFLA_LINK naming the parent in the caller's namespace,
 * net/core/rtnetlink.c: rtnl_newlink), instead of the tutorials' create-move-rename: the
 * kernel makes it whole or not at all, so no half-made interface is ever left on the host.
 *
 * Known limit (kernel, drivers/net/macvlan.c): frames the parent itself sends never reach
 * its macvlan children, and the children's frames to the parent's own address go out onto
 * the wire and do not come back. So the host cannot reach its macvlan endpoints through the
 * parent, nor they the host. The standard fix is the "shim": a macvlan interface of the
 * host's own on the same parent in bridge mode, with a host address on the LAN and a host
 * route per endpoint through it; macvlan bridge mode then switches between the shim and the
 * endpoints inside the kernel. `shim:` on a network does exactly that.
 *
 * ipvlan (drivers/net/ipvlan) shares the parent's MAC among all its interfaces; it is often
 * not built (CONFIG_IPVLAN): creating a network probes the kernel and names what is missing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { NsnetError, isNsnetError } from '../errors.js';
import type { Netns } from '../kernel/netns/netns.js';
import { addAddress, listAddresses } from '../kernel/netlink/route/addr.js';
import { addRoute, deleteRoute } from '../kernel/netlink/route/route.js';
import {
  createIpvlan, createMacvlan, deleteLink, getLink, listLinks, setLinkUp, validateIfname,
  type IpvlanMode, type Link, type MacvlanMode,
} from '../kernel/netlink/route/link.js';
import { getNested, getU32, findAttr, readU16 } from '../kernel/netlink/codec/attr.js';
import * as K from '../kernel/netlink/codec/constants.js';
import { IpAddress } from '../ipam/address.js';
import { Cidr } from '../ipam/cidr.js';
import type { Driver, EndpointRecord, NetworkRecord, NetworkSpec, SubnetRecord } from '../engine/types.js';

export type VlanDriver = 'macvlan' | 'ipvlan';

export const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'] as const;
export const IPVLAN_MODES = ['l2', 'l3', 'l3s'] as const;

export function isVlanDriver(d: Driver | string | undefined): d is VlanDriver {
  return d === 'macvlan' || d === 'ipvlan';
}

/** A macvlan/ipvlan network's options, parsed from its declared spec (canonical forms). */
export interface VlanConfig {
  driver: VlanDriver;
  parent: string;
  mode: MacvlanMode | IpvlanMode;
  ipRanges: Cidr[];
  /** Aux addresses by name. */
  aux: Map<string, IpAddress>;
  shim: IpAddress[];
}

const modesOf = (d: VlanDriver): readonly string[] => (d === 'macvlan' ? MACVLAN_MODES : IPVLAN_MODES);

/** The options of a macvlan/ipvlan network (spec or record's `declared`); throws USAGE on nonsense. */
export function vlanConfig(spec: NetworkSpec): VlanConfig {
  const driver = spec.driver;
  if (!isVlanDriver(driver)) throw new Error(`vlanConfig: network ${spec.name} has driver ${String(driver)}`);
  const parent = spec.parent ?? '';
  const mode = spec.mode ?? (driver === 'macvlan' ? 'bridge' : 'l2');
  if (!modesOf(driver).includes(mode)) {
    throw new NsnetError('USAGE', `invalid ${driver} mode "${mode}" for network ${spec.name}: use ${modesOf(driver).join(', ')}`, { object: spec.name });
  }
  const ip = (text: string, what: string): IpAddress => {
    try { return IpAddress.parse(text); } catch (e) {
      throw new NsnetError('ADDRESS_INVALID', `invalid ${what} "${text}" for network ${spec.name}`, { object: text, cause: e });
    }
  };
  const ipRanges = (spec.ipRanges ?? []).map((r) => {
    try { return Cidr.parse(r); } catch (e) {
      throw new NsnetError('CIDR_INVALID', `invalid --ip-range "${r}" for network ${spec.name}: ${(e as Error).message}`, { object: r, cause: e });
    }
  });
  const aux = new Map(Object.entries(spec.auxAddresses ?? {}).map(([k, v]) => [k, ip(v, `aux address ${k}`)] as const));
  const shim = (spec.shim ?? []).map((s) => ip(s, 'shim address'));
  return { driver, parent, mode: mode as MacvlanMode | IpvlanMode, ipRanges, aux, shim };
}

/** The host-side shim device of a network: `nsm-NAME`, or `nsm-` + a hash when that is too long. */
export function defaultShimName(network: string): string {
  const plain = `nsm-${network}`;
  return Buffer.byteLength(plain) <= 15 && /^[A-Za-z0-9_.-]+$/.test(network) ? plain : `nsm-${hash(network).slice(0, 10)}`;
}

function hash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

/** A stable, locally administered unicast MAC for a network's shim (LAN neighbours keep their ARP entry across repairs). */
function shimMac(network: string): string {
  const h = createHash('sha256').update(`nsnet-shim\0${network}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** The mode of a macvlan/ipvlan link (IFLA_INFO_DATA, include/uapi/linux/if_link.h), or undefined. */
export function linkVlanMode(l: Link): string | undefined {
  const info = getNested(l.attrs, K.IFLA_LINKINFO);
  const data = info ? getNested(info, K.IFLA_INFO_DATA) : undefined;
  if (!data) return undefined;
  if (l.kind === 'macvlan') {
    const m = getU32(data, K.IFLA_MACVLAN_MODE);
    return Object.entries(K.MACVLAN_MODE).find(([, v]) => v === m)?.[0];
  }
  if (l.kind === 'ipvlan') {
    const a = findAttr(data, K.IFLA_IPVLAN_MODE);
    const m = a ? readU16(a) : undefined;
    return Object.entries(K.IPVLAN_MODE).find(([, v]) => v === m)?.[0];
  }
  return undefined;
}

/**
 * Checks that need no kernel, before any subnet is resolved: the parent is named, the mode
 * exists, the subnets are declared (a macvlan network's subnet is its LAN's: nsnet cannot
 * pick one from a pool), and bridge-only options are absent.
 */
export function checkVlanSpec(spec: NetworkSpec): VlanConfig {
  const driver = spec.driver as VlanDriver;
  if (!spec.parent) {
    throw new NsnetError('USAGE', `a ${driver} network needs --parent: the host interface whose LAN network ${spec.name} joins`, { object: spec.name });
  }
  validateIfname(spec.parent);
  const cfg = vlanConfig(spec);
  if (!spec.subnets || spec.subnets.length === 0) {
    throw new NsnetError('USAGE', `a ${driver} network needs --subnet: the subnet of the LAN on ${spec.parent} (network ${spec.name})`, { object: spec.name });
  }
  if (spec.bridge !== undefined) throw new NsnetError('USAGE', `--bridge does not apply to ${driver} network ${spec.name}: it has no bridge`, { object: spec.name });
  if (spec.ipv6 && !spec.subnets.some((s) => s.includes(':'))) {
    throw new NsnetError('USAGE', `--ipv6 without an IPv6 --subnet does not apply to ${driver} network ${spec.name}: give the LAN's IPv6 subnet`, { object: spec.name });
  }
  if (spec.masquerade === true) {
    throw new NsnetError('USAGE', `${driver} network ${spec.name} cannot masquerade: its endpoints have their own addresses on the LAN and no NAT applies`, { object: spec.name });
  }
  if (cfg.shim.length > 0) {
    if (driver !== 'macvlan') {
      throw new NsnetError('USAGE', `--shim is for macvlan networks: ${driver} network ${spec.name} cannot have one`, { object: spec.name });
    }
    if (cfg.mode !== 'bridge') {
      throw new NsnetError('USAGE', `--shim needs mode bridge: in mode ${cfg.mode} the shim could not reach network ${spec.name}'s endpoints`, { object: spec.name });
    }
  }
  return cfg;
}

/** The parent link, or LINK_NOT_FOUND naming it. */
export function requireVlanParent(host: Netns, cfg: VlanConfig, network: string): Link {
  const parent = getLink(host, cfg.parent);
  if (!parent) throw new NsnetError('LINK_NOT_FOUND', `parent interface ${cfg.parent} of ${cfg.driver} network ${network} not found on the host`, { object: cfg.parent });
  return parent;
}

/**
 * Everything about a new macvlan/ipvlan network that needs the host: the parent exists and
 * can carry it, nothing on the parent conflicts (nsnet's networks and the kernel's own
 * macvlan/ipvlan links), the subnets match the parent's LAN, ranges/aux/shim addresses fit
 * the subnets, and the kernel supports the driver (probed). Throws before anything is made.
 */
export function validateVlanNetwork(host: Netns, spec: NetworkSpec, subnets: readonly SubnetRecord[], others: readonly NetworkRecord[]): VlanConfig {
  const cfg = checkVlanSpec(spec);
  const { driver, mode } = cfg;
  const parent = requireVlanParent(host, cfg, spec.name);
  if ((parent.flags & K.IFF_LOOPBACK) !== 0) {
    throw new NsnetError('USAGE', `parent ${cfg.parent} is the loopback interface: a ${driver} network needs an Ethernet interface`, { object: cfg.parent });
  }
  if (parent.master !== undefined && parent.slaveKind === 'bridge') {
    const br = getLink(host, parent.master)?.name ?? `#${parent.master}`;
    throw new NsnetError('PARENT_IN_USE', `parent ${cfg.parent} is a port of bridge ${br}: the bridge owns its frames; use ${br} as the parent instead`, { object: cfg.parent });
  }
  if (spec.mtu !== undefined && parent.mtu !== undefined && spec.mtu > parent.mtu) {
    throw new NsnetError('USAGE', `MTU ${spec.mtu} of network ${spec.name} is larger than its parent ${cfg.parent}'s (${parent.mtu})`, { object: spec.name });
  }

  // Conflicts with nsnet's other networks on the same parent.
  for (const o of others) {
    if (!isVlanDriver(o.driver) || o.name === spec.name) continue;
    const oc = vlanConfig(o.declared);
    if (oc.parent !== cfg.parent) continue;
    const used = `parent ${cfg.parent} is already used by ${oc.driver} network ${o.name} (mode ${oc.mode})`;
    if (oc.driver !== driver) throw new NsnetError('PARENT_IN_USE', `${used}: an interface carries macvlan or ipvlan interfaces, not both`, { object: cfg.parent });
    if (mode === 'passthru' || oc.mode === 'passthru') throw new NsnetError('PARENT_IN_USE', `${used}: passthru mode needs the parent to itself`, { object: cfg.parent });
    if (driver === 'ipvlan' && oc.mode !== mode) throw new NsnetError('PARENT_IN_USE', `${used}: all ipvlan interfaces on one parent share its mode`, { object: cfg.parent });
  }
  // Conflicts with macvlan/ipvlan links someone else made on the parent (in this namespace).
  for (const l of listLinks(host)) {
    if (l.link !== parent.index || l.linkNetnsId !== undefined || !isVlanDriver(l.kind)) continue;
    if (l.name === defaultShimName(spec.name)) continue;
    const lm = linkVlanMode(l) ?? '?';
    const used = `parent ${cfg.parent} already carries ${l.kind} interface ${l.name} (mode ${lm})`;
    if (l.kind !== driver) throw new NsnetError('PARENT_IN_USE', `${used}: an interface carries macvlan or ipvlan interfaces, not both`, { object: cfg.parent });
    if (mode === 'passthru' || lm === 'passthru') throw new NsnetError('PARENT_IN_USE', `${used}: passthru mode needs the parent to itself`, { object: cfg.parent });
    if (driver === 'ipvlan' && lm !== mode) throw new NsnetError('PARENT_IN_USE', `${used}: all ipvlan interfaces on one parent share its mode`, { object: cfg.parent });
  }

  // The subnets are the LAN's: where the parent has addresses of a family, one must be in the subnet.
  const cidrs = subnets.map((s) => Cidr.parse(s.cidr));
  const hostAddrs = listAddresses(host).filter((a) => !(a.family === 6 && a.scope === 253));
  const parentAddrs = hostAddrs.filter((a) => a.index === parent.index);
  for (const c of cidrs) {
    const mine = parentAddrs.filter((a) => a.family === c.family);
    if (mine.length > 0 && !mine.some((a) => c.overlaps(Cidr.containing(IpAddress.parse(a.address), a.prefixlen)))) {
      throw new NsnetError('SUBNET_INVALID', `subnet ${c} of network ${spec.name} does not match the LAN on parent ${cfg.parent} (${cfg.parent} has ${mine.map((a) => `${a.address}/${a.prefixlen}`).join(', ')})`, { object: spec.name });
    }
  }

  // Ranges, aux and shim addresses fit the subnets (validateIpamOptions, run by the engine
  // for every driver); a shim address must not be one the host already has.
  for (const a of cfg.shim) {
    if (hostAddrs.some((h) => IpAddress.parse(h.address).equals(a))) {
      throw new NsnetError('ADDRESS_INVALID', `shim address ${a} of network ${spec.name} is already an address of this host`, { object: a.toString() });
    }
  }
  probeKernel(host, spec.name, parent.index, cfg);
  return cfg;
}

/**
 * Creates and deletes a throwaway link of the driver on the parent: the kernel's own answer
 * to "is this driver built, and will this parent take it in this mode" (a missing driver is
 * `RTNETLINK: unknown device type`, EOPNOTSUPP: net/core/rtnetlink.c rtnl_newlink; a busy
 * parent EBUSY; a second passthru EINVAL, drivers/net/macvlan.c macvlan_common_newlink).
 */
function probeKernel(host: Netns, network: string, parentIndex: number, cfg: VlanConfig): void {
  const name = `nsp${randomBytes(6).toString('hex')}`;
  try {
    if (cfg.driver === 'macvlan') createMacvlan(host, name, parentIndex, cfg.mode as MacvlanMode);
    else createIpvlan(host, name, parentIndex, cfg.mode as IpvlanMode);
  } catch (e) {
    if (isNsnetError(e, 'LINK_TYPE_UNSUPPORTED')) {
      throw new NsnetError('LINK_TYPE_UNSUPPORTED',
        `this kernel has no ${cfg.driver} support (CONFIG_${cfg.driver.toUpperCase()}, module ${cfg.driver}): cannot create ${cfg.driver} network ${network}`,
        { object: network, cause: e });
    }
    if (isNsnetError(e, 'NETLINK_EBUSY') || isNsnetError(e, 'NETLINK_EINVAL')) {
      throw new NsnetError('PARENT_IN_USE', `the kernel refuses a ${cfg.driver} interface in mode ${cfg.mode} on parent ${cfg.parent}: ${e.extack ?? e.message}`, { object: cfg.parent, cause: e });
    }
    throw e;
  }
  deleteLink(host, name);
}

/** Host routes to an endpoint's addresses through the shim, one per address with a shim address of its family. */
function shimRoutes(n: NetworkRecord, cfg: VlanConfig, shimIndex: number, e: Pick<EndpointRecord, 'addresses'>): Array<Parameters<typeof addRoute>[1]> {
  const out: Array<Parameters<typeof addRoute>[1]> = [];
  for (const a of e.addresses) {
    const ip = IpAddress.parse(a.split('/')[0]!);
    const src = cfg.shim.find((s) => s.family === ip.family);
    if (!src) continue;
    out.push({ dst: `${ip}/${ip.family === 4 ? 32 : 128}`, family: ip.family, dev: shimIndex, prefsrc: src.toString() });
  }
  return out;
}

/**
 * Ensures the network's host side: with `shim`, a macvlan of the host's own on the parent in
 * bridge mode holding the shim addresses, up, with a route to every ready endpoint (so this is
 * also the repair). Without a shim there is nothing on the host.
 */
export function ensureVlanNetwork(host: Netns, n: NetworkRecord, endpoints: readonly EndpointRecord[]): void {
  const cfg = vlanConfig(n.declared);
  if (cfg.shim.length === 0) return;
  const parent = getLink(host, cfg.parent);
  if (!parent) throw new NsnetError('LINK_NOT_FOUND', `parent interface ${cfg.parent} of network ${n.name} not found on the host`, { object: cfg.parent });
  let shim = getLink(host, n.bridge);
  if (shim && (shim.kind !== 'macvlan' || shim.link !== parent.index)) {
    throw new NsnetError('NETLINK_EEXIST', `a link named ${n.bridge} exists on the host and is not network ${n.name}'s shim`, { object: n.bridge });
  }
  if (!shim) {
    createMacvlan(host, n.bridge, parent.index, 'bridge', { mac: shimMac(n.name), ...(n.mtu ? { mtu: n.mtu } : {}) });
    shim = getLink(host, n.bridge)!;
  }
  for (const a of cfg.shim) addAddress(host, shim.index, `${a}/${a.family === 4 ? 32 : 128}`);
  if (!shim.up) setLinkUp(host, shim.index);
  for (const e of endpoints) if (e.state === 'ready') for (const r of shimRoutes(n, cfg, shim.index, e)) addRoute(host, r);
}

/** Removes the network's host side (the shim and, with it, its routes). */
export function deleteVlanNetwork(host: Netns, n: NetworkRecord): void {
  const shim = getLink(host, n.bridge);
  if (shim && shim.kind === 'macvlan') deleteLink(host, shim.index);
}

/** What an endpoint's MAC will be when the driver decides it (ipvlan and passthru use the parent's). */
export function fixedVlanMac(host: Netns, n: NetworkRecord): string | undefined {
  const cfg = vlanConfig(n.declared);
  if (cfg.driver === 'macvlan' && cfg.mode !== 'passthru') return undefined;
  return getLink(host, cfg.parent)?.mac;
}

/** Checks before a connect reserves anything: passthru takes one endpoint; its MAC is the parent's. */
export function checkVlanConnect(n: NetworkRecord, endpoints: readonly EndpointRecord[], spec: { namespace: string; mac?: string | undefined }): void {
  const cfg = vlanConfig(n.declared);
  if (cfg.mode === 'passthru') {
    const other = endpoints.find((e) => e.namespace !== spec.namespace);
    if (other) {
      throw new NsnetError('PARENT_IN_USE', `network ${n.name} is in passthru mode and its parent ${cfg.parent} already serves namespace ${other.namespace}: passthru takes one endpoint`, { object: n.name });
    }
  }
  if (spec.mac !== undefined && (cfg.driver === 'ipvlan' || cfg.mode === 'passthru')) {
    throw new NsnetError('USAGE', `--mac does not apply on ${cfg.driver} network ${n.name}${cfg.driver === 'macvlan' ? ' in passthru mode' : ''}: its interfaces use the MAC of parent ${cfg.parent}`, { object: n.name });
  }
}

/**
 * Creates the endpoint's interface on the parent, born inside the namespace under its final
 * name; then addresses, loopback, up, default routes via the LAN's gateway, and with a shim
 * the host's routes to it. Throws after undoing its own work.
 */
export function attachVlanEndpoint(host: Netns, target: Netns, n: NetworkRecord, e: EndpointRecord): void {
  const cfg = vlanConfig(n.declared);
  const parent = getLink(host, cfg.parent);
  if (!parent) throw new NsnetError('LINK_NOT_FOUND', `parent interface ${cfg.parent} of network ${n.name} not found on the host`, { object: cfg.parent });
  if (getLink(target, e.ifname)) throw new NsnetError('NETLINK_EEXIST', `link ${e.ifname} already exists in ${target.label}`, { object: e.ifname });
  const mtu = n.mtu ? { mtu: n.mtu } : {};
  try {
    if (cfg.driver === 'macvlan') {
      // passthru: the interface takes the parent's MAC; setting one would change the parent's.
      createMacvlan(host, e.ifname, parent.index, cfg.mode as MacvlanMode, { targetNs: target, ...mtu, ...(cfg.mode === 'passthru' ? {} : { mac: e.mac }) });
    } else {
      createIpvlan(host, e.ifname, parent.index, cfg.mode as IpvlanMode, { targetNs: target, ...mtu });
    }
  } catch (err) {
    if (isNsnetError(err, 'LINK_TYPE_UNSUPPORTED')) {
      throw new NsnetError('LINK_TYPE_UNSUPPORTED', `this kernel has no ${cfg.driver} support (CONFIG_${cfg.driver.toUpperCase()}): cannot connect ${e.namespace} to network ${n.name}`, { object: n.name, cause: err });
    }
    if (isNsnetError(err, 'NETLINK_EEXIST')) throw new NsnetError('NETLINK_EEXIST', `link ${e.ifname} already exists in ${target.label}`, { object: e.ifname, cause: err });
    throw err;
  }
  const routes: Array<Parameters<typeof addRoute>[1]> = [];
  try {
    const link = getLink(target, e.ifname);
    if (!link) throw new Error(`${cfg.driver} ${e.ifname} vanished from ${target.label}`);
    for (const a of e.addresses) addAddress(target, link.index, a);
    setLinkUp(target, 1); // loopback; a no-op when nsnet created the namespace
    setLinkUp(target, link.index);
    if (!n.internal) {
      const seen = new Set<string>();
      for (const s of n.subnets) {
        const fam = s.cidr.includes(':') ? 6 : 4;
        if (seen.has(String(fam))) continue;
        seen.add(String(fam));
        addRoute(target, { dst: 'default', family: fam, gateway: s.gateway, dev: link.index });
      }
    }
    const shim = cfg.shim.length > 0 ? getLink(host, n.bridge) : undefined;
    if (shim) for (const r of shimRoutes(n, cfg, shim.index, e)) { addRoute(host, r); routes.push(r); }
  } catch (err) {
    for (const r of routes) deleteRoute(host, r);
    deleteLink(target, e.ifname);
    throw err;
  }
}

/**
 * Removes the endpoint's interface (only if it is still the driver's: a name reused by
 * someone else is left alone) and the host's shim routes to it. A namespace that is gone
 * took its macvlan/ipvlan interfaces with it (virtual devices are destroyed with their
 * namespace): success.
 */
export function detachVlanEndpoint(host: Netns, n: NetworkRecord | undefined, e: EndpointRecord, open: (ns: string) => Netns | undefined): void {
  if (n) {
    const cfg = vlanConfig(n.declared);
    const shim = cfg.shim.length > 0 ? getLink(host, n.bridge) : undefined;
    if (shim) for (const r of shimRoutes(n, cfg, shim.index, e)) deleteRoute(host, r);
  }
  const target = open(e.namespace);
  if (!target) return;
  try {
    const l = getLink(target, e.ifname);
    if (l && isVlanDriver(l.kind) && (n === undefined || l.kind === n.driver)) deleteLink(target, l.index);
  } finally {
    target.close();
  }
}

/** Whether a ready endpoint's interface is still there (for repair). */
export function vlanEndpointPresent(n: NetworkRecord, e: EndpointRecord, open: (ns: string) => Netns | undefined): boolean {
  const target = open(e.namespace);
  if (!target) return false;
  try {
    return getLink(target, e.ifname)?.kind === n.driver;
  } finally {
    target.close();
  }
}
