/**
 * The names nsnet's DNS service answers, and who may see them: an immutable index built
 * from the store's networks and ready endpoints on every reload. Pure (no I/O).
 *
 * Scoping (the same rule as Podman's aardvark-dns, and Docker's per-network resolution):
 *   asker's source address → its endpoint → its namespace → every DNS-enabled network that
 *   namespace is attached to. A name (a namespace's name, or an alias of one of its
 *   endpoints) is visible only through a network the asker shares with it, and resolves
 *   to the target's addresses on the shared networks only — the network whose gateway
 *   received the query first.
 */
import { isIP } from 'node:net';

export interface ZoneNetwork {
  name: string;
  internal: boolean;
  gateways: string[];
  /** CIDRs (with prefix). */
  subnets: string[];
  /** Per-network upstream servers; empty → the host's. */
  upstreams: string[];
}

export interface ZoneEndpoint {
  network: string;
  namespace: string;
  /** Addresses without prefix. */
  addresses: string[];
  aliases: string[];
}

export interface Asker {
  namespace: string;
  /** The network of the source address. */
  network: string;
  /** Every DNS-enabled network of the asker's namespace. */
  networks: readonly string[];
  /** False when all of them are internal: nothing is forwarded for it. */
  canForward: boolean;
}

export interface Addresses { v4: string[]; v6: string[] }

/**
 * Canonical text of an address (RFC 5952 for IPv6, via the WHATWG URL serializer, which
 * follows it), without a zone index; undefined if it is not an address.
 */
export function canonicalIp(s: string): string | undefined {
  const bare = s.split('%')[0]!;
  const fam = isIP(bare);
  if (fam === 4) return bare;
  if (fam !== 6) return undefined;
  return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
}

/** The address a PTR name stands for (`4.3.2.1.in-addr.arpa`, 32 nibbles `.ip6.arpa`). */
export function ptrAddress(name: string): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n.endsWith('.in-addr.arpa')) {
    const parts = n.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
    return parts.reverse().join('.');
  }
  if (n.endsWith('.ip6.arpa')) {
    const nibbles = n.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((x) => /^[0-9a-f]$/.test(x))) return undefined;
    const hex = nibbles.reverse().join('');
    return canonicalIp(hex.match(/.{4}/g)!.join(':'));
  }
  return undefined;
}

/** Bytes of an address, for prefix matching. */
function addrBytes(ip: string): Uint8Array {
  if (!ip.includes(':')) return Uint8Array.from(ip.split('.').map(Number));
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 255; });
  return out;
}

interface Prefix { bytes: Uint8Array; len: number }

function parsePrefix(cidr: string): Prefix | undefined {
  const [a, l] = cidr.split('/');
  const c = a ? canonicalIp(a) : undefined;
  if (!c) return undefined;
  return { bytes: addrBytes(c), len: Number(l) };
}

function inPrefix(ip: Uint8Array, p: Prefix): boolean {
  if (ip.length !== p.bytes.length) return false;
  let bits = p.len;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i]! & mask) !== (p.bytes[i]! & mask)) return false;
  }
  return true;
}

/** Lower-case DNS name without the trailing dot. */
export function normalName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export class Zone {
  /** Source address → its endpoint. Subnets never overlap, so an address has one owner. */
  private readonly byAddress = new Map<string, ZoneEndpoint>();
  /** Namespace → its DNS-enabled networks (connection order). */
  private readonly nsNetworks = new Map<string, string[]>();
  /** Network → lower-case name → endpoints answering to it (aliases may be shared: round robin). */
  private readonly names = new Map<string, Map<string, ZoneEndpoint[]>>();
  private readonly askers = new Map<string, Asker>();
  private readonly prefixes: Prefix[] = [];
  readonly networks = new Map<string, ZoneNetwork>();
  readonly nameCount: number;

  constructor(networks: readonly ZoneNetwork[], endpoints: readonly ZoneEndpoint[]) {
    for (const n of networks) {
      this.networks.set(n.name, n);
      this.names.set(n.name, new Map());
      for (const s of n.subnets) { const p = parsePrefix(s); if (p) this.prefixes.push(p); }
    }
    let count = 0;
    for (const raw of endpoints) {
      const names = this.names.get(raw.network);
      if (!names) continue; // not a DNS-enabled network
      const e: ZoneEndpoint = { ...raw, addresses: raw.addresses.map((a) => canonicalIp(a.split('/')[0]!)).filter((a): a is string => !!a) };
      for (const a of e.addresses) this.byAddress.set(a, e);
      const list = this.nsNetworks.get(e.namespace) ?? [];
      list.push(e.network);
      this.nsNetworks.set(e.namespace, list);
      for (const name of new Set([e.namespace, ...e.aliases].map(normalName))) {
        const at = names.get(name);
        if (at) at.push(e); else names.set(name, [e]);
        count++;
      }
    }
    this.nameCount = count;
  }

  /** Who is asking, from the source address; undefined for anyone who is not an endpoint. */
  asker(source: string): Asker | undefined {
    const hit = this.askers.get(source);
    if (hit) return hit;
    let e = this.byAddress.get(source);
    if (!e) {
      const c = canonicalIp(source);
      if (c && c !== source) e = this.byAddress.get(c);
    }
    if (!e) return undefined;
    const networks = this.nsNetworks.get(e.namespace) ?? [e.network];
    const asker: Asker = {
      namespace: e.namespace, network: e.network, networks,
      canForward: networks.some((n) => this.networks.get(n)?.internal === false),
    };
    if (this.askers.size < 100_000) this.askers.set(source, asker);
    return asker;
  }

  /**
   * Addresses of `name` (lower case, without the search domain) as `asker` may see them,
   * or undefined when no shared network has that name.
   */
  resolve(asker: Asker, via: string, name: string): Addresses | undefined {
    const order = [via, ...asker.networks.filter((n) => n !== via)];
    let found = false;
    const v4: string[] = [];
    const v6: string[] = [];
    for (const net of order) {
      if (!asker.networks.includes(net)) continue;
      const eps = this.names.get(net)?.get(name);
      if (!eps) continue;
      found = true;
      for (const e of eps) for (const a of e.addresses) (a.includes(':') ? v6 : v4).push(a);
    }
    if (!found) return undefined;
    return { v4: [...new Set(v4)], v6: [...new Set(v6)] };
  }

  /**
   * Reverse lookup: the namespace owning `address` if the asker shares that endpoint's
   * network; null if the address lies in a DNS-enabled network's subnet but is not
   * visible (answered NXDOMAIN: nsnet's private reverse zones are never forwarded);
   * undefined if it is not nsnet's address at all (forwarded).
   */
  reverse(asker: Asker, address: string): string | null | undefined {
    const e = this.byAddress.get(address);
    if (e && asker.networks.includes(e.network)) return e.namespace;
    const bytes = addrBytes(address);
    return this.prefixes.some((p) => inPrefix(bytes, p)) ? null : undefined;
  }

  /** True when `address` is in one of nsnet's DNS-enabled subnets. */
  isOurs(address: string): boolean {
    const bytes = addrBytes(address);
    return this.prefixes.some((p) => inPrefix(bytes, p));
  }

  /** Every gateway address of a DNS-enabled network, with its network. */
  gateways(): Array<{ address: string; network: string }> {
    const out: Array<{ address: string; network: string }> = [];
    for (const n of this.networks.values()) for (const g of n.gateways) {
      const c = canonicalIp(g);
      if (c) out.push({ address: c, network: n.name });
    }
    return out;
  }
}
