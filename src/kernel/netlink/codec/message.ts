/**
 * Netlink messages: struct nlmsghdr (include/uapi/linux/netlink.h) followed by a family
 * header and attributes. Decoded messages are a discriminated union on `kind`.
 *
 * Family headers (include/uapi/linux/rtnetlink.h, if_addr.h, neighbour.h):
 *   ifinfomsg  u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change   (16 bytes)
 *   ifaddrmsg  u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index          ( 8 bytes)
 *   rtmsg      u8 family, dst_len, src_len, tos, table, protocol, scope, type,
 *              u32 flags                                                       (12 bytes)
 *   ndmsg      u8 family, u8 pad1, u16 pad2, i32 ifindex, u16 state, u8 flags,
 *              u8 type                                                         (12 bytes)
 *   nlmsgerr   i32 error, struct nlmsghdr msg [+ original payload unless
 *              NLM_F_CAPPED] [+ TLVs when NLM_F_ACK_TLVS]
 */
import { ByteReader, ByteWriter, DecodeError, align4 } from './bytes.js';
import { type Attr, decodeAttrs, encodeAttrs, getString, getU32 } from './attr.js';
import * as K from './constants.js';

export interface NlMsgHdr {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export interface IfInfoMsg { family: number; pad: number; type: number; index: number; flags: number; change: number }
export interface IfAddrMsg { family: number; prefixlen: number; flags: number; scope: number; index: number }
export interface RtMsg {
  family: number; dstLen: number; srcLen: number; tos: number; table: number;
  protocol: number; scope: number; type: number; flags: number;
}
export interface NdMsg { family: number; pad1: number; pad2: number; ifindex: number; state: number; flags: number; type: number }

export type NetlinkMessage =
  | { kind: 'link'; header: NlMsgHdr; ifi: IfInfoMsg; attrs: Attr[] }
  | { kind: 'addr'; header: NlMsgHdr; ifa: IfAddrMsg; attrs: Attr[] }
  | { kind: 'route'; header: NlMsgHdr; rtm: RtMsg; attrs: Attr[] }
  | { kind: 'neigh'; header: NlMsgHdr; ndm: NdMsg; attrs: Attr[] }
  | {
      kind: 'error';
      header: NlMsgHdr;
      /** 0 for an ACK, else a negative errno. */
      error: number;
      /** The request's header as echoed by the kernel. */
      request: NlMsgHdr & { len: number };
      /** The rest of the echoed request (empty when NLM_F_CAPPED). */
      requestPayload: Buffer;
      /** Extended-ack TLVs (NLMSGERR_ATTR_*), when NLM_F_ACK_TLVS. */
      tlvs: Attr[];
    }
  | { kind: 'done'; header: NlMsgHdr; error: number; tlvs: Attr[] }
  | { kind: 'raw'; header: NlMsgHdr; payload: Buffer };

export function messageKind(type: number): NetlinkMessage['kind'] {
  switch (type) {
    case K.RTM_NEWLINK: case K.RTM_DELLINK: case K.RTM_GETLINK: case K.RTM_SETLINK: return 'link';
    case K.RTM_NEWADDR: case K.RTM_DELADDR: case K.RTM_GETADDR: return 'addr';
    case K.RTM_NEWROUTE: case K.RTM_DELROUTE: case K.RTM_GETROUTE: return 'route';
    case K.RTM_NEWNEIGH: case K.RTM_DELNEIGH: case K.RTM_GETNEIGH: return 'neigh';
    case K.NLMSG_ERROR: return 'error';
    case K.NLMSG_DONE: return 'done';
    default: return 'raw';
  }
}

// ---- encode ---------------------------------------------------------------------------

function encodeHeaderAt(w: ByteWriter, h: NlMsgHdr): number {
  const start = w.length;
  w.u32(0).u16(h.type).u16(h.flags).u32(h.seq).u32(h.pid);
  return start;
}

function encodeBody(w: ByteWriter, m: NetlinkMessage): void {
  switch (m.kind) {
    case 'link':
      w.u8(m.ifi.family).u8(m.ifi.pad).u16(m.ifi.type).i32(m.ifi.index).u32(m.ifi.flags).u32(m.ifi.change);
      encodeAttrs(w, m.attrs);
      return;
    case 'addr':
      w.u8(m.ifa.family).u8(m.ifa.prefixlen).u8(m.ifa.flags).u8(m.ifa.scope).u32(m.ifa.index);
      encodeAttrs(w, m.attrs);
      return;
    case 'route': {
      const r = m.rtm;
      w.u8(r.family).u8(r.dstLen).u8(r.srcLen).u8(r.tos).u8(r.table).u8(r.protocol).u8(r.scope).u8(r.type).u32(r.flags);
      encodeAttrs(w, m.attrs);
      return;
    }
    case 'neigh':
      w.u8(m.ndm.family).u8(m.ndm.pad1).u16(m.ndm.pad2).i32(m.ndm.ifindex).u16(m.ndm.state).u8(m.ndm.flags).u8(m.ndm.type);
      encodeAttrs(w, m.attrs);
      return;
    case 'error': {
      w.i32(m.error);
      const q = m.request;
      w.u32(q.len).u16(q.type).u16(q.flags).u32(q.seq).u32(q.pid);
      w.bytes(m.requestPayload);
      w.pad4();
      encodeAttrs(w, m.tlvs);
      return;
    }
    case 'done':
      w.i32(m.error);
      encodeAttrs(w, m.tlvs);
      return;
    case 'raw':
      w.bytes(m.payload);
      w.pad4();
      return;
  }
}

/** Appends one message to `w`; nlmsg_len is patched in once the body is known. */
export function encodeMessageInto(w: ByteWriter, m: NetlinkMessage): void {
  const start = encodeHeaderAt(w, m.header);
  encodeBody(w, m);
  w.patchU32(start, w.length - start);
}

export function encodeMessage(m: NetlinkMessage): Buffer {
  const w = new ByteWriter(512);
  encodeMessageInto(w, m);
  return w.finish();
}

// ---- decode ---------------------------------------------------------------------------

function decodeOne(buf: Buffer, at: number, len: number, header: NlMsgHdr): NetlinkMessage {
  const r = new ByteReader(buf, at + K.NLMSG_HDRLEN, at + len);
  const attrsFrom = (from: number): Attr[] => decodeAttrs(buf.subarray(from, at + len), from);
  const kind = messageKind(header.type);
  switch (kind) {
    case 'link': {
      const ifi = { family: r.u8(), pad: r.u8(), type: r.u16(), index: r.i32(), flags: r.u32(), change: r.u32() };
      return { kind, header, ifi, attrs: attrsFrom(r.offset) };
    }
    case 'addr': {
      const ifa = { family: r.u8(), prefixlen: r.u8(), flags: r.u8(), scope: r.u8(), index: r.u32() };
      return { kind, header, ifa, attrs: attrsFrom(r.offset) };
    }
    case 'route': {
      const rtm = {
        family: r.u8(), dstLen: r.u8(), srcLen: r.u8(), tos: r.u8(), table: r.u8(),
        protocol: r.u8(), scope: r.u8(), type: r.u8(), flags: r.u32(),
      };
      return { kind, header, rtm, attrs: attrsFrom(r.offset) };
    }
    case 'neigh': {
      const ndm = { family: r.u8(), pad1: r.u8(), pad2: r.u16(), ifindex: r.i32(), state: r.u16(), flags: r.u8(), type: r.u8() };
      return { kind, header, ndm, attrs: attrsFrom(r.offset) };
    }
    case 'error': {
      const error = r.i32();
      const qAt = r.offset;
      const request = { len: r.u32(), type: r.u16(), flags: r.u16(), seq: r.u32(), pid: r.u32() };
      let payloadLen = 0;
      if (!(header.flags & K.NLM_F_CAPPED)) {
        payloadLen = Math.max(0, Math.min(request.len, at + len - qAt) - K.NLMSG_HDRLEN);
      }
      const requestPayload = Buffer.from(r.bytes(payloadLen, 'echoed request'));
      r.offset = Math.min(qAt + align4(K.NLMSG_HDRLEN + payloadLen), at + len);
      const tlvs = header.flags & K.NLM_F_ACK_TLVS ? attrsFrom(r.offset) : [];
      return { kind, header, error, request, requestPayload, tlvs };
    }
    case 'done': {
      // A DONE may carry just the int (or nothing at all from very old kernels).
      const error = r.remaining >= 4 ? r.i32() : 0;
      const tlvs = header.flags & K.NLM_F_ACK_TLVS ? attrsFrom(r.offset) : [];
      return { kind, header, error, tlvs };
    }
    default:
      return { kind: 'raw', header, payload: Buffer.from(r.bytes(r.remaining)) };
  }
}

/** Decodes every message in one datagram. Malformed input throws DecodeError with the offset. */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < K.NLMSG_HDRLEN) throw new DecodeError(`truncated nlmsghdr (${buf.length - at} bytes)`, at);
    const len = buf.readUInt32LE(at);
    if (len < K.NLMSG_HDRLEN) throw new DecodeError(`nlmsg_len ${len} shorter than the header`, at);
    if (at + len > buf.length) throw new DecodeError(`nlmsg_len ${len} overruns the datagram (${buf.length - at} bytes left)`, at);
    const header = {
      type: buf.readUInt16LE(at + 4), flags: buf.readUInt16LE(at + 6),
      seq: buf.readUInt32LE(at + 8), pid: buf.readUInt32LE(at + 12),
    };
    out.push(decodeOne(buf, at, len, header));
    at += align4(len);
  }
  return out;
}

/** The extended-ack text of an error or done message, if the kernel sent one. */
export function extackMessage(m: NetlinkMessage): string | undefined {
  if (m.kind !== 'error' && m.kind !== 'done') return undefined;
  return getString(m.tlvs, K.NLMSGERR_ATTR_MSG);
}

export function extackOffset(m: NetlinkMessage): number | undefined {
  if (m.kind !== 'error' && m.kind !== 'done') return undefined;
  return getU32(m.tlvs, K.NLMSGERR_ATTR_OFFS);
}
