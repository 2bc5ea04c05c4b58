/**
 * Netlink attributes (struct nlattr, include/uapi/linux/netlink.h): a 4-byte header
 * (u16 length including the header, u16 type with NLA_F_NESTED / NLA_F_NET_BYTEORDER flag
 * bits) followed by the payload, padded to 4 bytes.
 *
 * An attribute is kept as its raw payload. Decoding never interprets what it does not know,
 * so unknown attributes survive a decode → encode round trip byte for byte; typed access
 * (strings, integers, nested lists) is done on demand by the readers below.
 */
import { ByteReader, ByteWriter, DecodeError, align4 } from './bytes.js';
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK } from './constants.js';

export interface Attr {
  /** The attribute type without flag bits. */
  type: number;
  /** The flag bits as sent (NLA_F_NESTED, NLA_F_NET_BYTEORDER); kept for byte-identical re-encoding. */
  flags: number;
  data: Buffer;
}

/**
 * Where each decoded payload sat in the outermost datagram. Nested attributes are decoded
 * lazily (readNested), long after their datagram's offsets are out of scope; this lets a
 * malformed nest still report its absolute byte offset. Keyed by the payload view itself.
 */
const payloadOffsets = new WeakMap<Buffer, number>();

export function decodeAttrs(buf: Buffer, base = 0): Attr[] {
  const r = new ByteReader(buf, 0, buf.length, base);
  const out: Attr[] = [];
  while (r.remaining >= NLA_HDRLEN) {
    const at = r.offset;
    const len = r.u16();
    const rawType = r.u16();
    if (len < NLA_HDRLEN) throw new DecodeError(`attribute length ${len} shorter than its header`, base + at);
    if (at + len > buf.length) throw new DecodeError(`attribute type ${rawType & NLA_TYPE_MASK} length ${len} overruns its container`, base + at);
    const data = r.bytes(len - NLA_HDRLEN);
    payloadOffsets.set(data, base + at + NLA_HDRLEN);
    out.push({ type: rawType & NLA_TYPE_MASK, flags: rawType & ~NLA_TYPE_MASK, data });
    // The last attribute may legitimately lack trailing padding.
    r.offset = Math.min(at + align4(len), buf.length);
  }
  if (r.remaining !== 0) throw new DecodeError(`${r.remaining} trailing bytes after attributes`, base + r.offset);
  return out;
}

export function encodeAttrs(w: ByteWriter, attrs: readonly Attr[]): void {
  for (const a of attrs) {
    w.u16(NLA_HDRLEN + a.data.length);
    w.u16(a.type | a.flags);
    w.bytes(a.data);
    w.pad4();
  }
}

export function attrsLength(attrs: readonly Attr[]): number {
  let n = 0;
  for (const a of attrs) n += align4(NLA_HDRLEN + a.data.length);
  return n;
}

// ---- builders -------------------------------------------------------------------------

export function attrBytes(type: number, data: Uint8Array, flags = 0): Attr {
  return { type, flags, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
}
export function attrU8(type: number, v: number): Attr {
  return attrBytes(type, Buffer.from([v & 0xff]));
}
export function attrU16(type: number, v: number): Attr {
  const b = Buffer.alloc(2); b.writeUInt16LE(v); return attrBytes(type, b);
}
export function attrU32(type: number, v: number): Attr {
  const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return attrBytes(type, b);
}
export function attrI32(type: number, v: number): Attr {
  const b = Buffer.alloc(4); b.writeInt32LE(v); return attrBytes(type, b);
}
/** A NUL-terminated string (NLA_NUL_STRING / NLA_STRING as iproute2 sends them). */
export function attrString(type: number, s: string): Attr {
  return attrBytes(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]));
}
export function attrNested(type: number, children: readonly Attr[]): Attr {
  const w = new ByteWriter(attrsLength(children) || 4);
  encodeAttrs(w, children);
  return { type, flags: NLA_F_NESTED, data: Buffer.from(w.finish()) };
}
export function attrFlag(type: number): Attr {
  return attrBytes(type, Buffer.alloc(0));
}

// ---- readers --------------------------------------------------------------------------

export function findAttr(attrs: readonly Attr[], type: number): Attr | undefined {
  for (const a of attrs) if (a.type === type) return a;
  return undefined;
}

function expectLen(a: Attr, n: number, what: string): void {
  if (a.data.length < n) {
    const at = payloadOffsets.get(a.data);
    throw new DecodeError(`attribute ${a.type} (${what}) has ${a.data.length} bytes, needs ${n}`, at === undefined ? 0 : at - NLA_HDRLEN);
  }
}

export function readU8(a: Attr): number { expectLen(a, 1, 'u8'); return a.data.readUInt8(0); }
export function readU16(a: Attr): number { expectLen(a, 2, 'u16'); return a.data.readUInt16LE(0); }
export function readU32(a: Attr): number { expectLen(a, 4, 'u32'); return a.data.readUInt32LE(0); }
export function readI32(a: Attr): number { expectLen(a, 4, 'i32'); return a.data.readInt32LE(0); }
export function readString(a: Attr): string {
  const nul = a.data.indexOf(0);
  return a.data.toString('utf8', 0, nul < 0 ? a.data.length : nul);
}
export function readNested(a: Attr): Attr[] {
  return decodeAttrs(a.data, payloadOffsets.get(a.data) ?? 0);
}

export function getU32(attrs: readonly Attr[], type: number): number | undefined {
  const a = findAttr(attrs, type); return a ? readU32(a) : undefined;
}
export function getI32(attrs: readonly Attr[], type: number): number | undefined {
  const a = findAttr(attrs, type); return a ? readI32(a) : undefined;
}
export function getU8(attrs: readonly Attr[], type: number): number | undefined {
  const a = findAttr(attrs, type); return a ? readU8(a) : undefined;
}
export function getString(attrs: readonly Attr[], type: number): string | undefined {
  const a = findAttr(attrs, type); return a ? readString(a) : undefined;
}
export function getBytes(attrs: readonly Attr[], type: number): Buffer | undefined {
  return findAttr(attrs, type)?.data;
}
export function getNested(attrs: readonly Attr[], type: number): Attr[] | undefined {
  const a = findAttr(attrs, type); return a ? readNested(a) : undefined;
}
