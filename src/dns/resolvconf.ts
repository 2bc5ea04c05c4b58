/**
 * Per-namespace resolver configuration: /etc/netns/NAME/resolv.conf, which `ip netns exec`
 * and `nsnet ns exec` bind-mount over /etc/resolv.conf inside the namespace.
 *
 * Until nsnet's own DNS service exists, namespaces get the host's upstream servers.
 * Loopback servers (systemd-resolved's 127.0.0.53, a local dnsmasq) would point at the
 * namespace's own loopback, where nothing listens, so they are left out; when the host
 * has only those, systemd-resolved's list of real upstreams is used instead.
 */
import fs from 'node:fs';
import path from 'node:path';

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
