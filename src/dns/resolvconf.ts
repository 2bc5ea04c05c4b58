/**
 * Per-namespace resolver configuration: /etc/netns/NAME/resolv.conf, which `ip netns exec`
 * and `nsnet ns exec` bind-mount over /etc/resolv.conf inside the namespace.
 *
 * A namespace attached to at least one network with DNS (the default) gets nsnet's DNS
 * service: its gateways as nameservers and the search domain `dns.nsnet`, so `api` and
 * `api.dns.nsnet` both resolve (see README.md beside this file). A namespace with no such
 * network gets the host's upstream servers, as before the service existed: loopback
 * servers (systemd-resolved's 127.0.0.53, a local dnsmasq) would point at the namespace's
 * own loopback, where nothing listens, so they are left out; when the host has only
 * those, systemd-resolved's list of real upstreams is used instead.
 *
 * The DNS service itself runs on the host, so it uses every host resolver, loopback ones
 * included (`hostResolvers`).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { NetworkRecord } from '../engine/types.js';

/** The search domain of nsnet's names: `NAME.dns.nsnet` (like Podman's `dns.podman`). */
export const DNS_DOMAIN = 'dns.nsnet';
/** glibc reads at most MAXNS (resolv/resolv.h) nameserver lines. */
const MAXNS = 3;

export const NETNS_ETC_DIR = '/etc/netns';

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

function readIf(file: string): string | undefined {
  try { return fs.readFileSync(file, 'utf8'); } catch { return undefined; }
}

/**
 * Whether a network's endpoints get nsnet's DNS service. Every network has it for now; a
 * network declared with `dns: false` (a future option) does not.
 */
export function networkHasDns(n: Pick<NetworkRecord, 'declared'>): boolean {
  const d = n.declared as { dns?: unknown; driver?: string; shim?: unknown } | undefined;
  if (d?.dns === false) return false;
  // macvlan/ipvlan: the gateway is a router on the LAN, not the host, so the service can
  // only listen where the host has an address on the network: its shim (src/drivers/macvlan.ts).
  if (d?.driver === 'macvlan' || d?.driver === 'ipvlan') return Array.isArray(d.shim) && d.shim.length > 0;
  return true;
}

/**
 * Where the DNS service listens for a network, and what its namespaces' resolv.conf names:
 * the gateways of a bridge network (addresses of the host's bridge); the host's shim
 * addresses on a macvlan network.
 */
export function dnsListenAddresses(n: Pick<NetworkRecord, 'subnets' | 'declared'>): string[] {
  const d = n.declared as { driver?: string; shim?: unknown } | undefined;
  if (d?.driver === 'macvlan' || d?.driver === 'ipvlan') return Array.isArray(d.shim) ? d.shim.filter((s): s is string => typeof s === 'string') : [];
  return n.subnets.map((s) => s.gateway);
}

/**
 * The resolv.conf of a namespace attached to `networks` (its endpoints' networks, in the
 * order it was connected): the gateways of the DNS-enabled ones — IPv4 first, since a
 * namespace always has an IPv4 route to an IPv4 gateway — at most three (MAXNS), the
 * search domain `dns.nsnet` followed by the host's own search domains. Without any
 * DNS-enabled network: the host's upstreams (`hostUpstreams`).
 */
export function dnsResolvConf(networks: ReadonlyArray<Pick<NetworkRecord, 'subnets' | 'declared'>>): ResolvConf {
  const withDns = networks.filter(networkHasDns);
  if (withDns.length === 0) return hostUpstreams();
  const gws = withDns.flatMap(dnsListenAddresses);
  const v4 = gws.filter((g) => !g.includes(':'));
  const v6 = gws.filter((g) => g.includes(':'));
  const nameservers = [...new Set([...v4, ...v6])].slice(0, MAXNS);
  const host = parseResolvConf(readIf('/etc/resolv.conf') ?? '');
  const search = [...new Set([DNS_DOMAIN, ...host.search.filter((d) => d !== '.' && d.toLowerCase() !== DNS_DOMAIN)])];
  return { nameservers, search, options: [] };
}

/**
 * Every resolver the host uses, loopback ones included (for the DNS service, which runs on
 * the host), in order; systemd-resolved's upstream list when /etc/resolv.conf has none.
 */
export function hostResolvers(): string[] {
  const main = parseResolvConf(readIf('/etc/resolv.conf') ?? '').nameservers;
  if (main.length > 0) return main;
  return parseResolvConf(readIf('/run/systemd/resolve/resolv.conf') ?? '').nameservers;
}

/** The host's upstream resolvers that work from inside a namespace. */
export function hostUpstreams(): ResolvConf {
  const main = parseResolvConf(readIf('/etc/resolv.conf') ?? '');
  let servers = main.nameservers.filter((s) => !isLoopback(s));
  if (servers.length === 0) {
    const resolved = parseResolvConf(readIf('/run/systemd/resolve/resolv.conf') ?? '');
    servers = resolved.nameservers.filter((s) => !isLoopback(s));
  }
  return { nameservers: servers, search: main.search, options: main.options };
}

export function renderResolvConf(c: ResolvConf): string {
  const lines = ['# written by nsnet'];
  for (const s of c.nameservers) lines.push(`nameserver ${s}`);
  if (c.search.length) lines.push(`search ${c.search.join(' ')}`);
  if (c.options.length) lines.push(`options ${c.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export function writeNamespaceResolvConf(namespace: string, c: ResolvConf): void {
  const dir = path.join(NETNS_ETC_DIR, namespace);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'resolv.conf');
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, renderResolvConf(c));
  fs.renameSync(tmp, file);
}

/** Removes /etc/netns/NAME/resolv.conf, and the directory if nsnet left it empty. */
export function removeNamespaceEtc(namespace: string): void {
  const dir = path.join(NETNS_ETC_DIR, namespace);
  fs.rmSync(path.join(dir, 'resolv.conf'), { force: true });
  try { fs.rmdirSync(dir); } catch { /* not empty (the user's files) or absent */ }
}
