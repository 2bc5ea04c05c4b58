/**
 * Address bytes for netlink attributes (IFA_LOCAL, RTA_DST, NDA_LLADDR…): IPv4/IPv6 text
 * ↔ 4/16-byte buffers, and MAC text ↔ 6 bytes. The kernel layer keeps its own small
 * converter so it does not depend on the IPAM layer above it.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { NsnetError } from '../../../errors.js';

export function ipFamily(ip: string): 4 | 6 {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip) && !ip.includes('%')) return 6;
  throw new NsnetError('ADDRESS_INVALID', `invalid IP address "${ip}"`, { object: ip });
}

export function ipToBytes(ip: string): Buffer {
  if (ipFamily(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipToBytes(v4[1]!);
    text = text.slice(0, v4.index) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = tail === undefined ? hs : [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new NsnetError('ADDRESS_INVALID', `address of ${b.length} bytes`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  // RFC 5952 §4.2: compress the longest run (leftmost on ties) of two or more zero groups.
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export function macToBytes(mac: string): Buffer {
  if (!MAC_RE.test(mac)) throw new NsnetError('MAC_INVALID', `invalid MAC address "${mac}"`, { object: mac });
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function bytesToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
