/**
 * Test-only byte builder for the netlink codec tests (not part of the library).
 *
 * It is deliberately naive and shares no code with the codec under test: every byte is
 * laid out by hand with Buffer's explicit little-endian writes, lengths are summed by hand,
 * padding is written as literal zero bytes. Expected bytes in the codec tests come from here
 * or from kernel captures (fixtures.ts), never from `encodeMessage` (STYLE.md: pg-protocol,
 * dns-packet).
 *
 * Layouts (include/uapi/linux/netlink.h, rtnetlink.h, if_addr.h, neighbour.h):
 *   nlmsghdr   u32 len, u16 type, u16 flags, u32 seq, u32 pid                     16 bytes
 *   nlattr     u16 len (header + payload, unpadded), u16 type, payload, pad to 4
 *   ifinfomsg  u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change     16 bytes
 *   ifaddrmsg  u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index             8 bytes
 *   rtmsg      8 × u8 (family dst_len src_len tos table protocol scope type), u32 flags
 *   ndmsg      u8 family, u8 pad1, u16 pad2, i32 ifindex, u16 state, u8 flags, u8 type
 */

export function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}
export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}
export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
export function i32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}
export function be16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
/** A NUL-terminated string payload. */
export function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}
export function bytes(...v: number[]): Buffer {
  return Buffer.from(v);
}

/** Zero bytes that bring `n` up to a multiple of 4. */
function padFor(n: number): Buffer {
  const rem = n % 4;
  return Buffer.alloc(rem === 0 ? 0 : 4 - rem);
}

/** One attribute: header, payload, zero padding. `flags` are NLA_F_NESTED (0x8000) etc. */
export function nla(type: number, payload: Buffer | readonly Buffer[], flags = 0): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.concat([...payload]);
  const len = 4 + p.length;
  return Buffer.concat([u16(len), u16(type | flags), p, padFor(len)]);
}
/** A nested attribute (NLA_F_NESTED set), children already encoded. */
export function nest(type: number, ...children: Buffer[]): Buffer {
  return nla(type, Buffer.concat(children), 0x8000);
}

export interface Hdr {
  type: number;
  flags?: number;
  seq?: number;
  pid?: number;
}

/** One message: nlmsghdr with nlmsg_len = 16 + body length (body padded to 4 here). */
export function nlmsg(h: Hdr, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  const padded = Buffer.concat([b, padFor(b.length)]);
  return Buffer.concat([u32(16 + padded.length), u16(h.type), u16(h.flags ?? 0), u32(h.seq ?? 0), u32(h.pid ?? 0), padded]);
}

export function ifinfomsg(o: { family?: number; pad?: number; type?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  return Buffer.concat([u8(o.family ?? 0), u8(o.pad ?? 0), u16(o.type ?? 0), i32(o.index ?? 0), u32(o.flags ?? 0), u32(o.change ?? 0)]);
}
export function ifaddrmsg(o: { family: number; prefixlen: number; flags?: number; scope?: number; index: number }): Buffer {
  return Buffer.concat([u8(o.family), u8(o.prefixlen), u8(o.flags ?? 0), u8(o.scope ?? 0), u32(o.index)]);
}
export function rtmsg(o: {
  family: number; dstLen?: number; srcLen?: number; tos?: number; table?: number;
  protocol?: number; scope?: number; type?: number; flags?: number;
}): Buffer {
  return Buffer.concat([
    u8(o.family), u8(o.dstLen ?? 0), u8(o.srcLen ?? 0), u8(o.tos ?? 0), u8(o.table ?? 0),
    u8(o.protocol ?? 0), u8(o.scope ?? 0), u8(o.type ?? 0), u32(o.flags ?? 0),
  ]);
}
export function ndmsg(o: { family: number; pad1?: number; pad2?: number; ifindex: number; state?: number; flags?: number; type?: number }): Buffer {
  return Buffer.concat([u8(o.family), u8(o.pad1 ?? 0), u16(o.pad2 ?? 0), i32(o.ifindex), u16(o.state ?? 0), u8(o.flags ?? 0), u8(o.type ?? 0)]);
}

/**
 * NLMSG_ERROR (type 2): i32 error, then the request's header (16 bytes) — followed by the
 * request's payload unless `capped`; then the extended-ack TLVs. The caller sets the
 * header flags (NLM_F_CAPPED 0x100, NLM_F_ACK_TLVS 0x200).
 */
export function nlmsgerr(h: Omit<Hdr, 'type'>, error: number, request: Buffer, capped: boolean, ...tlvs: Buffer[]): Buffer {
  const echoed = capped ? request.subarray(0, 16) : request;
  return nlmsg({ ...h, type: 2 }, i32(error), echoed, padFor(echoed.length), ...tlvs);
}

/** NLMSG_DONE (type 3): i32 error (0), then optional TLVs. */
export function nlmsgDone(h: Omit<Hdr, 'type'>, error = 0, ...tlvs: Buffer[]): Buffer {
  return nlmsg({ ...h, type: 3 }, i32(error), ...tlvs);
}

/** Hex with any whitespace removed → bytes (fixtures are stored wrapped over lines). */
export function fromHex(hex: string): Buffer {
  const clean = hex.replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(clean)) throw new Error('fromHex: not an even-length hex string');
  return Buffer.from(clean, 'hex');
}

/** Offsets at which each message of a datagram starts (reads only nlmsg_len). */
export function messageOffsets(datagram: Buffer): number[] {
  const out: number[] = [];
  let at = 0;
  while (at + 16 <= datagram.length) {
    out.push(at);
    const len = datagram.readUInt32LE(at);
    if (len < 16) break;
    at += Math.ceil(len / 4) * 4;
  }
  return out;
}
