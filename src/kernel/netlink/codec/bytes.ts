/**
 * The one byte reader/writer pair. Netlink headers and most attributes are in host byte
 * order (little-endian on every platform nsnet supports: x86_64, aarch64); the few
 * network-order fields (IFLA_VXLAN_PORT) use the explicit `*BE` methods.
 */
import { NsnetError } from '../../../errors.js';

export class DecodeError extends NsnetError {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super('NETLINK_DECODE', `netlink decode: ${message} at byte ${offset}`);
    this.offset = offset;
  }
}

export const align4 = (n: number): number => (n + 3) & ~3;

export class ByteReader {
  constructor(
    readonly buf: Buffer,
    public offset = 0,
    readonly end = buf.length,
    /** Offset of `buf[0]` within the outermost datagram, so errors name absolute positions. */
    readonly base = 0,
  ) {}

  get remaining(): number {
    return this.end - this.offset;
  }

  need(n: number, what: string): void {
    if (this.offset + n > this.end) {
      throw new DecodeError(`${what} needs ${n} bytes, ${this.end - this.offset} left`, this.base + this.offset);
    }
  }

  u8(): number { this.need(1, 'u8'); return this.buf.readUInt8(this.offset++); }
  u16(): number { this.need(2, 'u16'); const v = this.buf.readUInt16LE(this.offset); this.offset += 2; return v; }
  u32(): number { this.need(4, 'u32'); const v = this.buf.readUInt32LE(this.offset); this.offset += 4; return v; }
  i32(): number { this.need(4, 'i32'); const v = this.buf.readInt32LE(this.offset); this.offset += 4; return v; }
  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
  skip(n: number): void { this.need(n, 'padding'); this.offset += n; }
}

export class ByteWriter {
  private buf: Buffer;
  length = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  u8(v: number): this { this.ensure(1); this.buf.writeUInt8(v, this.length); this.length += 1; return this; }
  u16(v: number): this { this.ensure(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; return this; }
  u32(v: number): this { this.ensure(4); this.buf.writeUInt32LE(v >>> 0, this.length); this.length += 4; return this; }
  i32(v: number): this { this.ensure(4); this.buf.writeInt32LE(v, this.length); this.length += 4; return this; }
  bytes(b: Uint8Array): this { this.ensure(b.length); this.buf.set(b, this.length); this.length += b.length; return this; }
  zeros(n: number): this { this.ensure(n); this.buf.fill(0, this.length, this.length + n); this.length += n; return this; }
  pad4(): this { return this.zeros(align4(this.length) - this.length); }

  /** Overwrites a u16/u32 already written (length fields known only at the end). */
  patchU16(at: number, v: number): void { this.buf.writeUInt16LE(v, at); }
  patchU32(at: number, v: number): void { this.buf.writeUInt32LE(v >>> 0, at); }

  finish(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

export function u16be(v: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; }
