/**
 * Routes over rtnetlink: RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE
 * (include/uapi/linux/rtnetlink.h: struct rtmsg, enum rtattr_type_t).
 */
import { NsnetError, isNsnetError } from '../../../errors.js';
import type { Netns } from '../../netns/netns.js';
import { type Attr, attrBytes, attrU32, getBytes, getU32 } from '../codec/attr.js';
import * as K from '../codec/constants.js';
import type { NetlinkMessage, RtMsg } from '../codec/message.js';
import { bytesToIp, ipFamily, ipToBytes } from '../codec/inet.js';
import type { BatchRequest } from '../socket.js';
import * as libc from '../../sys/libc.js';

export interface RouteSpec {
  /** Destination CIDR, or 'default' (0.0.0.0/0 or ::/0 — give `family` then). */
  dst: string;
  family?: 4 | 6;
  gateway?: string;
  /** Output device ifindex. */
  dev?: number;
  metric?: number;
  /** Routing table; main (254) by default. */
  table?: number;
  /** rtm_protocol tag; nsnet's own (RTPROT_NSNET) by default so its routes are recognisable. */
  protocol?: number;
  /** Gateway is on-link even if no prefix covers it (RTNH_F_ONLINK). */
  onlink?: boolean;
  scope?: number;
  prefsrc?: string;
  type?: number;
}

export interface Route {
  family: 4 | 6;
  dst: string;
  gateway: string | undefined;
  dev: number | undefined;
  metric: number | undefined;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  onlink: boolean;
  prefsrc: string | undefined;
}

function parseDst(spec: RouteSpec): { family: 4 | 6; bytes: Buffer | undefined; len: number } {
  if (spec.dst === 'default') {
    const family = spec.family ?? (spec.gateway ? ipFamily(spec.gateway) : 4);
    return { family, bytes: undefined, len: 0 };
  }
  const [ip, lenText] = spec.dst.split('/');
  const family = ipFamily(ip ?? '');
  const max = family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > max) {
    throw new NsnetError('CIDR_INVALID', `invalid route destination "${spec.dst}"`, { object: spec.dst });
  }
  return { family, bytes: len === 0 ? undefined : ipToBytes(ip!), len };
}

function routeMsg(type: number, flags: number, spec: RouteSpec): NetlinkMessage {
  const { family, bytes, len } = parseDst(spec);
  const table = spec.table ?? K.RT_TABLE_MAIN;
  const attrs: Attr[] = [];
  if (bytes) attrs.push(attrBytes(K.RTA_DST, bytes));
  if (spec.gateway) {
    if (ipFamily(spec.gateway) !== family) {
      throw new NsnetError('ADDRESS_INVALID', `gateway ${spec.gateway} is not of the same family as ${spec.dst}`, { object: spec.gateway });
    }
    attrs.push(attrBytes(K.RTA_GATEWAY, ipToBytes(spec.gateway)));
  }
  if (spec.dev !== undefined) attrs.push(attrU32(K.RTA_OIF, spec.dev));
  if (spec.metric !== undefined) attrs.push(attrU32(K.RTA_PRIORITY, spec.metric));
  if (spec.prefsrc) attrs.push(attrBytes(K.RTA_PREFSRC, ipToBytes(spec.prefsrc)));
  if (table > 255) attrs.push(attrU32(K.RTA_TABLE, table));
  const rtm: RtMsg = {
    family: family === 4 ? K.AF_INET : K.AF_INET6,
    dstLen: len, srcLen: 0, tos: 0,
    table: table > 255 ? K.RT_TABLE_UNSPEC : table,
    protocol: spec.protocol ?? (type === K.RTM_NEWROUTE ? K.RTPROT_NSNET : K.RTPROT_UNSPEC),
    // A route without a gateway is link-scoped, as `ip route add CIDR dev DEV` makes it.
    scope: spec.scope ?? (type === K.RTM_DELROUTE ? K.RT_SCOPE_NOWHERE : spec.gateway ? K.RT_SCOPE_UNIVERSE : K.RT_SCOPE_LINK),
    type: spec.type ?? (type === K.RTM_DELROUTE ? K.RTN_UNSPEC : K.RTN_UNICAST),
    flags: spec.onlink ? K.RTNH_F_ONLINK : 0,
  };
  return { kind: 'route', header: { type, flags, seq: 0, pid: 0 }, rtm, attrs };
}

function describe(spec: RouteSpec): string {
  return `${spec.dst}${spec.gateway ? ` via ${spec.gateway}` : ''}${spec.dev !== undefined ? ` dev #${spec.dev}` : ''}`;
}

/** Adds a route; an existing identical route is success. Equivalent: `ip route add …`. */
export function addRoute(ns: Netns, spec: RouteSpec): void {
  ns.netlink().requestAll([addRouteRequest(ns, spec)]);
}

/** The request addRoute sends, for a batch (NetlinkSocket.requestAll). */
export function addRouteRequest(ns: Netns, spec: RouteSpec): BatchRequest {
  return {
    msg: routeMsg(K.RTM_NEWROUTE, K.NLM_F_CREATE | K.NLM_F_EXCL, spec),
    what: `add route ${describe(spec)} in ${ns.label}`, object: spec.dst, tolerate: [libc.EEXIST],
  };
}

/** Adds or replaces the route to `dst`. Equivalent: `ip route replace …`. */
export function replaceRoute(ns: Netns, spec: RouteSpec): void {
  ns.netlink().request(routeMsg(K.RTM_NEWROUTE, K.NLM_F_CREATE | K.NLM_F_REPLACE, spec), { what: `replace route ${describe(spec)} in ${ns.label}`, object: spec.dst });
}

/** Deletes a route; a missing one is success. Equivalent: `ip route del …`. */
export function deleteRoute(ns: Netns, spec: RouteSpec): boolean {
  try {
    ns.netlink().request(routeMsg(K.RTM_DELROUTE, 0, { ...spec, protocol: spec.protocol ?? K.RTPROT_UNSPEC }), { what: `delete route ${describe(spec)} in ${ns.label}`, object: spec.dst });
    return true;
  } catch (e) {
    // The kernel answers ESRCH (3), not ENOENT, for a route that is not there, and for a
    // table that does not exist (net/ipv4/fib_frontend.c: inet_rtm_delroute; ip6_route_del).
    if (isNsnetError(e, 'NETLINK_ENOENT') || isNsnetError(e, 'NETLINK_ENODEV') || (e instanceof NsnetError && e.errno === 3)) return false;
    throw e;
  }
}

export function decodeRoute(m: NetlinkMessage): Route {
  if (m.kind !== 'route') throw new Error(`expected a route message, got ${m.kind}`);
  const family = m.rtm.family === K.AF_INET6 ? 6 : 4;
  const dstBytes = getBytes(m.attrs, K.RTA_DST);
  const dst = dstBytes ? `${bytesToIp(dstBytes)}/${m.rtm.dstLen}` : m.rtm.dstLen === 0 ? 'default' : '?';
  const gw = getBytes(m.attrs, K.RTA_GATEWAY);
  const src = getBytes(m.attrs, K.RTA_PREFSRC);
  return {
    family,
    dst,
    gateway: gw ? bytesToIp(gw) : undefined,
    dev: getU32(m.attrs, K.RTA_OIF),
    metric: getU32(m.attrs, K.RTA_PRIORITY),
    table: getU32(m.attrs, K.RTA_TABLE) ?? m.rtm.table,
    protocol: m.rtm.protocol,
    scope: m.rtm.scope,
    type: m.rtm.type,
    onlink: (m.rtm.flags & K.RTNH_F_ONLINK) !== 0,
    prefsrc: src ? bytesToIp(src) : undefined,
  };
}

/**
 * Routes of one family (both when omitted) in one table (main by default; `all` for every
 * table). Equivalent: `ip [-6] route show [table T]`.
 */
export function listRoutes(ns: Netns, o: { family?: 4 | 6; table?: number | 'all' } = {}): Route[] {
  const family = o.family === 4 ? K.AF_INET : o.family === 6 ? K.AF_INET6 : K.AF_UNSPEC;
  const msgs = ns.netlink().dump(
    {
      kind: 'route', header: { type: K.RTM_GETROUTE, flags: 0, seq: 0, pid: 0 },
      rtm: { family, dstLen: 0, srcLen: 0, tos: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 },
      attrs: [],
    },
    { what: 'list routes' },
  );
  const table = o.table ?? K.RT_TABLE_MAIN;
  return msgs.filter((m) => m.kind === 'route').map(decodeRoute).filter((r) => table === 'all' || r.table === table);
}
