/**
 * ADD results (SPEC.md §"Success"): one internal shape (1.x: ips without `version`), converted to
 * the config's cniVersion on output, as libcni's pkg/types/{040,100} do:
 *   1.0.0, 1.1.0     interfaces{name,mac,mtu,sandbox}, ips{address,gateway,interface}, routes, dns
 *   0.3.0 … 0.4.0    the same, with ips[].version "4"/"6" and no interface mtu
 * A prevResult in any of these versions is read back into the internal shape.
 */
import { compareVersions, type CniVersion } from './spec.js';

export interface CniInterface { name: string; mac?: string; mtu?: number; sandbox?: string }
export interface CniIp { address: string; gateway?: string; interface?: number }
export interface CniRoute { dst: string; gw?: string }
export interface CniDns { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }

export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: CniDns;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a prevResult (0.3.0 … 1.1.0) into the internal shape; unknown members are dropped. */
export function readResult(v: Record<string, unknown>): CniResult {
  const list = (x: unknown): Record<string, unknown>[] => (Array.isArray(x) ? x.filter(isObject) : []);
  const str = (x: unknown): string | undefined => (typeof x === 'string' && x !== '' ? x : undefined);
  const out: CniResult = { interfaces: [], ips: [], routes: [], dns: {} };
  for (const i of list(v.interfaces)) {
    const name = str(i.name);
    if (!name) continue;
    out.interfaces.push({
      name, ...(str(i.mac) ? { mac: str(i.mac)! } : {}), ...(typeof i.mtu === 'number' ? { mtu: i.mtu } : {}),
      ...(str(i.sandbox) ? { sandbox: str(i.sandbox)! } : {}),
    });
  }
  for (const ip of list(v.ips)) {
    const address = str(ip.address);
    if (!address) continue;
    out.ips.push({ address, ...(str(ip.gateway) ? { gateway: str(ip.gateway)! } : {}), ...(typeof ip.interface === 'number' ? { interface: ip.interface } : {}) });
  }
  for (const r of list(v.routes)) {
    const dst = str(r.dst);
    if (dst) out.routes.push({ dst, ...(str(r.gw) ? { gw: str(r.gw)! } : {}) });
  }
  if (isObject(v.dns)) {
    const strs = (x: unknown): string[] | undefined => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : undefined);
    const d = v.dns;
    out.dns = {
      ...(strs(d.nameservers)?.length ? { nameservers: strs(d.nameservers)! } : {}), ...(str(d.domain) ? { domain: str(d.domain)! } : {}),
      ...(strs(d.search)?.length ? { search: strs(d.search)! } : {}), ...(strs(d.options)?.length ? { options: strs(d.options)! } : {}),
    };
  }
  return out;
}

/**
 * Appends this plugin's interfaces, addresses and routes to a previous plugin's result (a second
 * interface in a chain): address `interface` indexes move by the interfaces already there.
 */
export function mergeResults(prev: CniResult, mine: CniResult): CniResult {
  const offset = prev.interfaces.length;
  return {
    interfaces: [...prev.interfaces, ...mine.interfaces],
    ips: [...prev.ips, ...mine.ips.map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset }))],
    routes: [...prev.routes, ...mine.routes.filter((r) => !prev.routes.some((p) => p.dst === r.dst))],
    dns: Object.keys(prev.dns).length > 0 ? prev.dns : mine.dns,
  };
}

/** The result as the runtime expects it for `version`. */
export function renderResult(r: CniResult, version: CniVersion): Record<string, unknown> {
  const legacy = compareVersions(version, '1.0.0') < 0;
  return {
    cniVersion: version,
    interfaces: r.interfaces.map((i) => (legacy ? { name: i.name, ...(i.mac ? { mac: i.mac } : {}), ...(i.sandbox ? { sandbox: i.sandbox } : {}) } : i)),
    ips: r.ips.map((ip) => (legacy ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : ip)),
    routes: r.routes,
    dns: r.dns,
  };
}
