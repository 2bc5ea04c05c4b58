/**
 * Conntrack entries over ctnetlink (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_CTNETLINK;
 * include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h). Used to forget UDP
 * flows of a removed port mapping: UDP has no end, so a client that keeps sending would
 * stay DNATed to the old target for as long as the entry lives (nf_conntrack_udp_timeout_stream).
 *
 * Message: nlmsghdr (type = subsys << 8 | msg) + struct nfgenmsg { u8 family; u8 version;
 * __be16 res_id } + attributes. Equivalent: `conntrack -D -p udp --orig-port-dst P --reply-src IP`.
 */
import type { Netns } from '../netns/netns.js';
import { NetlinkSocket } from './socket.js';
import * as libc from '../sys/libc.js';
import { type Attr, attrNested, decodeAttrs, findAttr, readNested } from './codec/attr.js';
import { bytesToIp, ipFamily } from './codec/inet.js';
import { AF_INET, AF_INET6 } from './codec/constants.js';
import type { NetlinkMessage } from './codec/message.js';

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const NFNETLINK_V0 = 0;
// enum ctattr_type / ctattr_tuple / ctattr_ip / ctattr_l4proto
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V6_SRC = 3;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const IPPROTO_UDP = 17;

function ctMessage(msg: number, family: number, flags: number, attrs: Attr[]): NetlinkMessage {
  const nfgen = Buffer.from([family, NFNETLINK_V0, 0, 0]);
  const body = attrNested(0, attrs).data;
  return { kind: 'raw', header: { type: (NFNL_SUBSYS_CTNETLINK << 8) | msg, flags, seq: 0, pid: 0 }, payload: Buffer.concat([nfgen, body]) };
}

interface Tuple { raw: Attr; src: string | undefined; proto: number | undefined; sport: number | undefined; dport: number | undefined }

function tuple(a: Attr): Tuple {
  const inner = readNested(a);
  const ip = findAttr(inner, CTA_TUPLE_IP);
  const proto = findAttr(inner, CTA_TUPLE_PROTO);
  const ipAttrs = ip ? readNested(ip) : [];
  const src = findAttr(ipAttrs, CTA_IP_V4_SRC) ?? findAttr(ipAttrs, CTA_IP_V6_SRC);
  const p = proto ? readNested(proto) : [];
  return {
    raw: a,
    src: src ? bytesToIp(src.data) : undefined,
    proto: findAttr(p, CTA_PROTO_NUM)?.data.readUInt8(0),
    sport: findAttr(p, CTA_PROTO_SRC_PORT)?.data.readUInt16BE(0),
    dport: findAttr(p, CTA_PROTO_DST_PORT)?.data.readUInt16BE(0),
  };
}

const sockets = new WeakMap<Netns, NetlinkSocket>();

/**
 * Deletes the UDP conntrack entries of a port mapping in `ns`: original destination port
 * `hostPort`, reply source `target:containerPort` (that is, flows DNATed to the target).
 * Returns how many it deleted. Entries that vanish meanwhile are ignored.
 */
export function clearUdpConntrack(ns: Netns, m: { hostPort: number; target: string; containerPort: number }): number {
  let sock = sockets.get(ns);
  if (!sock) {
    sock = ns.run(() => NetlinkSocket.open(libc.NETLINK_NETFILTER));
    sockets.set(ns, sock);
  }
  const family = ipFamily(m.target) === 4 ? AF_INET : AF_INET6;
  const entries = sock.dump(ctMessage(IPCTNL_MSG_CT_GET, family, 0, []), { what: 'list conntrack entries' });
  let deleted = 0;
  for (const e of entries) {
    if (e.kind !== 'raw' || e.payload.length < 4) continue;
    const attrs = decodeAttrs(e.payload.subarray(4));
    const origAttr = findAttr(attrs, CTA_TUPLE_ORIG);
    const replyAttr = findAttr(attrs, CTA_TUPLE_REPLY);
    if (!origAttr || !replyAttr) continue;
    const orig = tuple(origAttr);
    const reply = tuple(replyAttr);
    if (orig.proto !== IPPROTO_UDP || orig.dport !== m.hostPort) continue;
    if (reply.src !== m.target || reply.sport !== m.containerPort) continue;
    try {
      sock.request(ctMessage(IPCTNL_MSG_CT_DELETE, family, 0, [{ ...orig.raw }]), { what: 'delete conntrack entry' });
      deleted++;
    } catch (err) {
      if ((err as { errno?: number }).errno !== libc.ENOENT) throw err;
    }
  }
  return deleted;
}

