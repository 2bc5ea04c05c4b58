/**
 * DNS messages for the service. Queries are decoded and local answers encoded with
 * `dns-packet` (DESIGN.md: the well-kept library for the wire format). Forwarded answers
 * are relayed byte for byte; the only thing read or patched in them is what this file's
 * small walker finds at fixed offsets (RFC 1035 §4.1): the ID, the question name (to echo
 * the asker's letter case) and the TTL of each resource record (to age cached answers).
 */
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';

// RFC 1035 §4.1.1 header flags (the 16-bit word after the ID), and RCODEs.
export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];
/** RFC 6891 §6.1.1. */
const TYPE_OPT = 41;
/** RFC 1035 §4.2.1: without EDNS a UDP message carries at most 512 bytes. */
export const UDP_MIN = 512;
/** What nsnet accepts and advertises over UDP (the DNS flag day 2020 value). */
export const UDP_MAX = 1232;
const HEADER = 12;

export type Query = DecodedPacket & { opcode?: string; rcode?: string };

/**
 * What the header alone says about a message received as a query, before any decoding:
 * dns-packet sizes its section arrays by the header's counts, so 64 K of random counts
 * would cost more than the whole message — those are settled here, from 12 bytes.
 *   drop     not a query at all (too short, or QR set: a response)
 *   notimp   an opcode other than QUERY (RFC 1035 §4.1.1)
 *   formerr  not exactly one question, or records where a query has none (one OPT allowed)
 */
export function precheckQuery(msg: Buffer): 'ok' | 'drop' | 'notimp' | 'formerr' {
  if (msg.length < HEADER + 5) return 'drop';
  if ((msg[2]! & 0x80) !== 0) return 'drop';
  if (((msg[2]! >> 3) & 0xf) !== 0) return 'notimp';
  if (msg.readUInt16BE(4) !== 1 || msg.readUInt16BE(6) !== 0 || msg.readUInt16BE(8) !== 0 || msg.readUInt16BE(10) > 1) return 'formerr';
  return 'ok';
}

/** A header-only answer with `rcode` (for queries that are not decoded). */
export function headerReply(msg: Buffer, rcode: Rcode): Buffer {
  const out = Buffer.alloc(HEADER);
  msg.copy(out, 0, 0, 4);
  out[2] = (out[2]! | 0x80) & ~(FLAG_AA >> 8) & ~(FLAG_TC >> 8);
  out[3] = rcode; // RA = 0, Z = 0, RCODE
  return out;
}

export function decodeQuery(msg: Buffer): Query {
  return dnsPacket.decode(msg) as Query;
}

/** Offset just past the (possibly compressed) name at `off`; throws on a malformed name. */
export function skipName(buf: Buffer, off: number): number {
  for (let hops = 0; hops < 128; hops++) {
    if (off >= buf.length) throw new Error('name runs past the message');
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) {
      if (off + 2 > buf.length) throw new Error('pointer runs past the message');
      return off + 2;
    }
    if ((len & 0xc0) !== 0) throw new Error('bad label type');
    off += 1 + len;
  }
  throw new Error('name has too many labels');
}

/** Where the single question's name ends (the name starts at byte 12). */
export function questionNameEnd(msg: Buffer): number {
  return skipName(msg, HEADER);
}

export interface Walk {
  /** Byte offsets of every TTL field except OPT's (which holds EDNS flags, not a TTL). */
  ttlOffsets: number[];
  /** The smallest TTL of the answer and authority sections; undefined when both are empty. */
  minTtl: number | undefined;
  rcode: number;
  truncated: boolean;
}

/** Walks a response's sections; throws if it is not a well-formed message. */
export function walkResponse(msg: Buffer): Walk {
  if (msg.length < HEADER) throw new Error('short message');
  const counts = [msg.readUInt16BE(4), msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)] as const;
  let off = HEADER;
  for (let i = 0; i < counts[0]; i++) off = skipName(msg, off) + 4;
  const ttlOffsets: number[] = [];
  let minTtl: number | undefined;
  for (let s = 1; s <= 3; s++) {
    for (let i = 0; i < counts[s]!; i++) {
      off = skipName(msg, off);
      if (off + 10 > msg.length) throw new Error('record runs past the message');
      const type = msg.readUInt16BE(off);
      const ttl = msg.readUInt32BE(off + 4);
      const rdlen = msg.readUInt16BE(off + 8);
      if (type !== TYPE_OPT) {
        ttlOffsets.push(off + 4);
        if (s < 3) minTtl = minTtl === undefined ? ttl : Math.min(minTtl, ttl);
      }
      off += 10 + rdlen;
      if (off > msg.length) throw new Error('rdata runs past the message');
    }
  }
  const flags = msg.readUInt16BE(2);
  return { ttlOffsets, minTtl, rcode: flags & 0xf, truncated: (flags & FLAG_TC) !== 0 };
}

/**
 * A relayed or cached answer readied for one asker: its ID, the question name exactly as
 * it asked (letter case included), TTLs aged by `ageSeconds`. `qEnd`: where the query's
 * question name ends, when the caller has it already.
 */
export function readyAnswer(answer: Buffer, query: Buffer, ttlOffsets: readonly number[], ageSeconds: number, qEnd = questionNameEnd(query)): Buffer {
  const out = Buffer.from(answer);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  if (out.length >= qEnd && questionNameEnd(out) === qEnd) query.copy(out, HEADER, HEADER, qEnd);
  if (ageSeconds > 0) {
    for (const o of ttlOffsets) out.writeUInt32BE(Math.max(0, out.readUInt32BE(o) - ageSeconds), o);
  }
  return out;
}

/** True when `answer` answers `query`'s question (same name ignoring case, type, class). */
export function sameQuestion(query: Buffer, answer: Buffer): boolean {
  try {
    if (answer.length < HEADER || answer.readUInt16BE(4) !== 1) return false;
    const qEnd = questionNameEnd(query);
    if (questionNameEnd(answer) !== qEnd || answer.length < qEnd + 4) return false;
    for (let i = HEADER; i < qEnd + 4; i++) {
      let a = query[i]!;
      let b = answer[i]!;
      if (a >= 0x41 && a <= 0x5a) a |= 0x20;
      if (b >= 0x41 && b <= 0x5a) b |= 0x20;
      if (a !== b) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** The largest UDP answer the asker accepts (RFC 6891 §6.2.3–6.2.5). */
export function udpLimit(q: Query): number {
  const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  if (!opt) return UDP_MIN;
  return Math.min(Math.max(opt.udpPayloadSize ?? UDP_MIN, UDP_MIN), UDP_MAX);
}

export function hasOpt(q: Query): boolean {
  return q.additionals?.some((a) => a.type === 'OPT') ?? false;
}

export function dnssecOk(q: Query): boolean {
  const opt = q.additionals?.find((a) => a.type === 'OPT') as { flag_do?: boolean } | undefined;
  return opt?.flag_do === true;
}

export interface Reply {
  rcode: Rcode;
  aa?: boolean;
  ra?: boolean;
  answers?: Answer[];
  authorities?: Answer[];
}

/** Encodes nsnet's own answer to `q` (EDNS echoed when the asker used it). */
export function encodeReply(q: Query, r: Reply): Buffer {
  const flags = (r.aa ? FLAG_AA : 0) | (r.ra ? FLAG_RA : 0) | ((q.flags ?? 0) & (FLAG_RD | FLAG_CD)) | r.rcode;
  const p: Packet = {
    type: 'response', id: q.id ?? 0, flags,
    questions: (q.questions ?? []).slice(0, 1) as Question[],
    answers: r.answers ?? [], authorities: r.authorities ?? [],
    additionals: hasOpt(q) ? [{ type: 'OPT', name: '.', udpPayloadSize: UDP_MAX, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  };
  return dnsPacket.encode(p);
}

/**
 * The answer when the real one does not fit the asker's UDP limit: header and question
 * with TC set, which tells it to ask again over TCP (RFC 7766 §5, RFC 1035 §4.2.1).
 */
export function truncatedReply(query: Buffer, answer: Buffer): Buffer {
  const qEnd = questionNameEnd(query) + 4;
  const out = Buffer.alloc(qEnd);
  answer.copy(out, 0, 0, 4);
  out.writeUInt16BE(out.readUInt16BE(2) | FLAG_TC, 2);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(1, 4);
  query.copy(out, HEADER, HEADER, qEnd);
  return out;
}

/** Cache key of a question: name (any case), type, class, and the DO and CD bits. */
export function cacheKey(q: Query): string {
  const qu = q.questions![0]!;
  return `${qu.name.toLowerCase()}|${qu.type}|${qu.class ?? 'IN'}|${dnssecOk(q) ? 1 : 0}|${(q.flags ?? 0) & FLAG_CD ? 1 : 0}`;
}
