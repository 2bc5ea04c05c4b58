/**
 * Operator commands on the cluster's etcd state: `cluster init`, `cluster status`,
 * `cluster node rm`. Each opens a client, does one thing, closes it; an etcd that does not
 * answer is one ETCD_UNREACHABLE error naming the URL (ETCD_TLS when the TLS handshake
 * failed: an untrusted server, a name mismatch, a refused client certificate).
 */
import type { Etcd3 } from 'etcd3';
import { NsnetError } from '../errors.js';
import { prefixesOverlap } from '../ipam/cidr.js';
import { Netns } from '../kernel/netns/netns.js';
import { listAddresses } from '../kernel/netlink/route/addr.js';
import { listRoutes } from '../kernel/netlink/route/route.js';
import { connectEtcd, withEtcd, type EtcdTarget } from './etcd.js';
import {
  CONFIG_KEY, NODES_PREFIX, SUBNETS_PREFIX, makeConfig, parseConfig, parseLease, parseNode, subnetOfKey,
  type ClusterConfig, type NodeRecord, type SubnetLease,
} from './keys.js';
import { CLUSTER_NETWORK } from './agent.js';
import { listLinks } from '../kernel/netlink/route/link.js';
import { defaultBridgeName } from '../engine/engine.js';
import { RTPROT_CLUSTER } from './dataplane.js';

async function session<T>(etcd: EtcdTarget, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  const c = connectEtcd(etcd);
  try {
    return await withEtcd(etcd, () => fn(c));
  } finally {
    c.close();
  }
}

/**
 * Prefixes this host already uses (addresses and routes), except the cluster's own: its
 * routes, its VXLAN device and the bridge of the local network `cluster` (init run again on
 * a host whose agent already runs).
 */
function localPrefixes(family: 4 | 6 = 4): string[] {
  const host = Netns.host();
  const own = new Set(listLinks(host).filter((l) => l.name === defaultBridgeName(CLUSTER_NETWORK) || l.name.startsWith('nsnet.')).map((l) => l.index));
  const out: string[] = [];
  for (const a of listAddresses(host, { family })) {
    // Loopback and link-local (fe80::/10 on every IPv6 interface) are never cluster prefixes.
    if (a.address.startsWith('127.') || a.address === '::1' || a.address.startsWith('fe80:') || own.has(a.index)) continue;
    out.push(`${a.address}/${a.prefixlen}`);
  }
  for (const r of listRoutes(host, { family })) {
    if (r.dst === 'default' || r.dst === '?' || r.protocol === RTPROT_CLUSTER || (r.dev !== undefined && own.has(r.dev))) continue;
    if (r.dst.startsWith('fe80:') || r.dst.startsWith('ff00:') || r.dst === '::1/128' || r.dst.startsWith('multicast')) continue;
    out.push(r.dst);
  }
  return out;
}

export interface InitOptions { cidr: string; subnetLen?: number; backend?: string; vni?: number; port?: number; mtu?: number; cidr6?: string; subnetLen6?: number }

/**
 * Writes the cluster config once (create-only transaction). The same config again is a
 * no-op; a different one is refused (changing the CIDR under running agents would
 * renumber every host).
 */
export async function initCluster(etcd: EtcdTarget, o: InitOptions): Promise<{ config: ClusterConfig; created: boolean }> {
  const config = makeConfig(o);
  for (const [net, family, what] of [[config.network, 4, 'CIDR'], [config.network6, 6, 'IPv6 CIDR']] as const) {
    const p = net === undefined ? undefined : localPrefixes(family).find((x) => prefixesOverlap(x, net));
    if (p) throw new NsnetError('SUBNET_OVERLAP', `cluster ${what} ${net} overlaps ${p}, which this host already uses`, { object: net });
  }
  return session(etcd, async (c) => {
    const text = JSON.stringify(config);
    const r = await c.if(CONFIG_KEY, 'Version', '==', 0).then(c.put(CONFIG_KEY).value(text)).else(c.get(CONFIG_KEY)).commit();
    if (r.succeeded) return { config, created: true };
    const existing = r.responses[0]?.response_range?.kvs[0]?.value.toString() ?? '';
    let cur: ClusterConfig | undefined;
    try { cur = parseConfig(existing); } catch { /* reported below */ }
    if (cur && JSON.stringify(cur) === text) return { config: cur, created: false };
    throw new NsnetError('CLUSTER_EXISTS', `the cluster at ${etcd.urls.join(',')} is already initialised with a different config (${cur ? `${cur.network}, /${cur.subnetLen}${cur.network6 ? `, ${cur.network6}, /${cur.subnetLen6}` : ''}, ${cur.backend}` : existing.slice(0, 80)})`, { object: CONFIG_KEY });
  });
}

export interface NodeStatus {
  name: string;
  subnet: string | null;
  /** Dual stack: the IPv6 subnet leased with `subnet` (null in an IPv4-only cluster). */
  subnet6: string | null;
  publicIp: string | null;
  underlayMtu: number | null;
  /** The agent's heartbeat key exists. */
  alive: boolean;
  /** Seconds left on the subnet lease. */
  leaseTtl: number | null;
  peers: NodeRecord['peers'];
  errors: string[];
}

export interface ClusterStatus {
  etcd: string[];
  config: ClusterConfig;
  revision: string;
  nodes: NodeStatus[];
}

export async function clusterStatus(etcd: EtcdTarget): Promise<ClusterStatus> {
  return session(etcd, async (c) => {
    const cfgText = await c.get(CONFIG_KEY).string();
    if (cfgText === null) throw new NsnetError('CLUSTER_NOT_INITIALISED', `no cluster config in etcd at ${etcd.urls.join(',')}: run \`nsnet cluster init\` first`);
    const config = parseConfig(cfgText);
    const subnets = await c.getAll().prefix(SUBNETS_PREFIX).exec();
    const nodes = await c.getAll().prefix(NODES_PREFIX).exec();
    const byName = new Map<string, NodeStatus>();
    const get = (name: string): NodeStatus => {
      let n = byName.get(name);
      if (!n) {
        n = { name, subnet: null, subnet6: null, publicIp: null, underlayMtu: null, alive: false, leaseTtl: null, peers: {}, errors: [] };
        byName.set(name, n);
      }
      return n;
    };
    for (const kv of subnets.kvs) {
      const s = subnetOfKey(kv.key.toString());
      const l: SubnetLease | undefined = parseLease(kv.value.toString());
      if (!s || !l) continue;
      const n = get(l.node);
      n.subnet = s;
      n.subnet6 = l.subnet6 ?? null;
      n.publicIp = l.publicIp;
      n.underlayMtu = l.underlayMtu;
      if (kv.lease !== '0') {
        const ttl = await c.leaseClient.leaseTimeToLive({ ID: kv.lease }).catch(() => undefined);
        n.leaseTtl = ttl ? Number(ttl.TTL) : null;
      }
    }
    for (const kv of nodes.kvs) {
      const rec = parseNode(kv.value.toString());
      if (!rec) continue;
      const n = get(kv.key.toString().slice(NODES_PREFIX.length));
      n.alive = true;
      n.peers = rec.peers;
      n.errors = rec.errors;
      n.publicIp ??= rec.publicIp;
    }
    return {
      etcd: etcd.urls, config, revision: subnets.header.revision,
      nodes: [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)),
    };
  });
}

/**
 * Retires a dead host's lease now instead of waiting for it to expire (flannel #954). A
 * host whose agent still runs is refused unless `force` (its agent would lease again).
 */
export async function removeNode(etcd: EtcdTarget, name: string, o: { force?: boolean } = {}): Promise<{ subnets: string[] }> {
  return session(etcd, async (c) => {
    const alive = await c.get(`${NODES_PREFIX}${name}`).string();
    const subnets = await c.getAll().prefix(SUBNETS_PREFIX).exec();
    const mine = subnets.kvs.filter((kv) => parseLease(kv.value.toString())?.node === name);
    if (mine.length === 0 && alive === null) throw new NsnetError('NODE_NOT_FOUND', `node ${name} not found in the cluster at ${etcd.urls.join(',')}`, { object: name });
    if (alive !== null && !o.force) {
      throw new NsnetError('NODE_ALIVE', `node ${name} has a running agent (heartbeat in etcd): stop it first, or use --force`, { object: name });
    }
    for (const kv of mine) {
      // Compare on the revision read, so a lease the node just renewed is not removed blindly.
      await c.if(kv.key, 'Mod', '==', kv.mod_revision).then(c.delete().key(kv.key)).commit();
    }
    if (alive !== null) await c.delete().key(`${NODES_PREFIX}${name}`).exec();
    return { subnets: mine.map((kv) => subnetOfKey(kv.key.toString()) ?? kv.key.toString()) };
  });
}
