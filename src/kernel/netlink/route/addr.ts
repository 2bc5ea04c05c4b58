/**
 * Interface addresses over rtnetlink: RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR
 * (include/uapi/linux/if_addr.h).
 */
import { NsnetError, isNsnetError } from '../../../errors.js';
import type { Netns } from '../../netns/netns.js';
import { type Attr, attrBytes, attrU32, getBytes, getString, getU32 } from '../codec/attr.js';
import * as K from '../codec/constants.js';
import type { NetlinkMessage } from '../codec/message.js';
import { bytesToIp, ipFamily, ipToBytes } from '../codec/inet.js';
import { getLink, requireLink } from './link.js';
import type { BatchRequest } from '../socket.js';
import * as libc from '../../sys/libc.js';

export interface Address {
  family: 4 | 6;
  address: string;
  prefixlen: number;
  index: number;
  scope: number;
  flags: number;
  label: string | undefined;
  /** True while IPv6 duplicate address detection has not finished. */
  tentative: boolean;
}

export function decodeAddress(m: NetlinkMessage): Address {
  if (m.kind !== 'addr') throw new Error(`expected an addr message, got ${m.kind}`);
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
  const bytes = getBytes(m.attrs, K.IFA_LOCAL) ?? getBytes(m.attrs, K.IFA_ADDRESS) ?? Buffer.alloc(0);
  const flags = getU32(m.attrs, K.IFA_FLAGS) ?? m.ifa.flags;
  return {
    family: m.ifa.family === K.AF_INET6 ? 6 : 4,
    address: bytesToIp(bytes),
    prefixlen: m.ifa.prefixlen,
    index: m.ifa.index,
    scope: m.ifa.scope,
    flags,
    label: getString(m.attrs, K.IFA_LABEL),
    tentative: (flags & K.IFA_F_TENTATIVE) !== 0,
  };
}

function parseCidr(cidr: string): { ip: string; prefixlen: number; family: 4 | 6 } {
  const [ip, len, extra] = cidr.split('/');
  const family = ipFamily(ip ?? '');
  const prefixlen = len === undefined ? (family === 4 ? 32 : 128) : Number(len);
  if (extra !== undefined || !/^\d+$/.test(len ?? String(prefixlen)) || prefixlen > (family === 4 ? 32 : 128)) {
    throw new NsnetError('CIDR_INVALID', `invalid address/prefix "${cidr}"`, { object: cidr });
  }
  return { ip: ip!, prefixlen, family };
}

function addrMsg(type: number, flags: number, index: number, cidr: string, extraFlags: number): NetlinkMessage {
  const { ip, prefixlen, family } = parseCidr(cidr);
  const bytes = ipToBytes(ip);
  const attrs: Attr[] = [attrBytes(K.IFA_LOCAL, bytes), attrBytes(K.IFA_ADDRESS, bytes)];
  if (family === 4 && prefixlen < 31) {
    // The broadcast address `ip addr add … brd +` would compute.
    const b = Buffer.from(bytes);
    const host = 32 - prefixlen;
    const v = (b.readUInt32BE(0) | (host === 32 ? 0xffffffff : (2 ** host - 1))) >>> 0;
    b.writeUInt32BE(v);
    attrs.push(attrBytes(K.IFA_BROADCAST, b));
  }
  if (extraFlags) attrs.push(attrU32(K.IFA_FLAGS, extraFlags));
  return {
    kind: 'addr',
    header: { type, flags, seq: 0, pid: 0 },
    ifa: { family: family === 4 ? K.AF_INET : K.AF_INET6, prefixlen, flags: extraFlags & 0xff, scope: K.RT_SCOPE_UNIVERSE, index },
    attrs,
  };
}

/**
 * Adds an address; an identical existing address is success (idempotent). IPv6 addresses
 * are added with IFA_F_NODAD so they are usable at once (no 1–2 s duplicate-address wait).
 * Equivalent: `ip addr add CIDR dev DEV [nodad]`.
 */
export function addAddress(ns: Netns, dev: string | number, cidr: string, o: { noPrefixRoute?: boolean } = {}): void {
  const index = typeof dev === 'number' ? dev : requireLink(ns, dev).index;
  ns.netlink().requestAll([addAddressRequest(ns, index, cidr, o, String(dev))]);
}

/** The request addAddress sends, for a batch (NetlinkSocket.requestAll). */
export function addAddressRequest(ns: Netns, index: number, cidr: string, o: { noPrefixRoute?: boolean } = {}, dev: string = `#${index}`): BatchRequest {
  const v6 = parseCidr(cidr).family === 6;
  const flags = (v6 ? K.IFA_F_NODAD : 0) | (o.noPrefixRoute ? K.IFA_F_NOPREFIXROUTE : 0);
  return {
    msg: addrMsg(K.RTM_NEWADDR, K.NLM_F_CREATE | K.NLM_F_EXCL, index, cidr, flags),
    what: `add address ${cidr} to ${dev} in ${ns.label}`, object: dev, tolerate: [libc.EEXIST],
  };
}

/** Deletes an address; a missing one is success. Equivalent: `ip addr del CIDR dev DEV`. */
export function deleteAddress(ns: Netns, dev: string | number, cidr: string): boolean {
  // A link that is gone took its addresses with it: nothing to delete.
  const index = typeof dev === 'number' ? dev : getLink(ns, dev)?.index;
  if (index === undefined) return false;
  try {
    ns.netlink().request(addrMsg(K.RTM_DELADDR, 0, index, cidr, 0), { what: `delete address ${cidr} from ${dev} in ${ns.label}`, object: String(dev) });
    return true;
  } catch (e) {
    // EADDRNOTAVAIL (99): no such address; ENODEV: the link is gone with it.
    if (e instanceof NsnetError && (e.errno === 99 || e.errno === 19)) return false;
    throw e;
  }
}

/** Addresses, optionally of one family and/or one link. Equivalent: `ip addr show [dev DEV]`. */
export function listAddresses(ns: Netns, o: { family?: 4 | 6; dev?: string | number } = {}): Address[] {
  const family = o.family === 4 ? K.AF_INET : o.family === 6 ? K.AF_INET6 : K.AF_UNSPEC;
  const index = o.dev === undefined ? undefined : typeof o.dev === 'number' ? o.dev : requireLink(ns, o.dev).index;
  const msgs = ns.netlink().dump(
    { kind: 'addr', header: { type: K.RTM_GETADDR, flags: 0, seq: 0, pid: 0 }, ifa: { family, prefixlen: 0, flags: 0, scope: 0, index: 0 }, attrs: [] },
    { what: 'list addresses' },
  );
  return msgs
    .filter((m) => m.kind === 'addr')
    .map(decodeAddress)
    .filter((a) => index === undefined || a.index === index);
}
