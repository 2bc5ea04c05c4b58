/**
 * The CNI verbs on top of the engine. One CNI network is one nsnet network (created from the
 * plugin config on the first ADD); one attachment, keyed by (CNI_CONTAINERID, CNI_IFNAME), is
 * one endpoint attached to the namespace file CNI_NETNS names. What the reference chain
 * bridge + host-local + portmap + firewall does in four programs is one engine call here:
 *
 *   ADD     connect (veth, bridge port, address from nsnet's IPAM, routes, anti-spoofing set
 *           elements, DNS names) + publish (DNAT map elements) → the result
 *   DEL     disconnect: works with the namespace gone, and always releases the address
 *   CHECK   the endpoint's interface, addresses and routes in the namespace, the host veth on the
 *           bridge, nsnet's firewall elements for it and its ports, and that prevResult has them
 *   STATUS  the network's address pools (51 when a subnet is full)
 *   GC      disconnect every attachment of the network that is not in the valid list
 *
 * Runs in a plugin process or in a resident `nsnet serve`: it reads nothing from process.env.
 */
import { createHash } from 'node:crypto';
import type { Nsnet } from '../engine/engine.js';
import type { EndpointRecord, NetworkRecord, NetworkSpec } from '../engine/types.js';
import { NsnetError, isNsnetError, type ErrorCode } from '../errors.js';
import { Netns } from '../kernel/netns/netns.js';
import { getLink } from '../kernel/netlink/route/link.js';
import { listAddresses } from '../kernel/netlink/route/addr.js';
import { listRoutes } from '../kernel/netlink/route/route.js';
import { Firewall } from '../firewall/firewall.js';
import { bridgeMac } from '../drivers/bridge.js';
import { DNS_DOMAIN, networkHasDns } from '../dns/resolvconf.js';
import { Cidr, parseCidr } from '../ipam/cidr.js';
import { IpAddress } from '../ipam/address.js';
import { CNI_ERR, CniError, attachmentKey, type Invocation } from './spec.js';
import { DNS_NAME_RE, portSpec, type PluginConf } from './config.js';
import { mergeResults, readResult, renderResult, type CniResult } from './result.js';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function keyOf(containerId: string, ifname: string): string {
  return attachmentKey(containerId, ifname, sha256);
}


/** Runs one verb; returns what goes to stdout (nothing for DEL, CHECK, STATUS, GC). Throws CniError. */
export function execute(nsnet: Nsnet, inv: Invocation, conf: PluginConf, args: Map<string, string>): string | undefined {
  try {
    switch (inv.verb) {
      case 'ADD': return JSON.stringify(renderResult(add(nsnet, inv, conf, args), conf.cniVersion));
      case 'DEL': del(nsnet, inv, conf); return undefined;
      case 'CHECK': check(nsnet, inv, conf); return undefined;
      case 'STATUS': status(nsnet, conf); return undefined;
      case 'GC': gc(nsnet, conf); return undefined;
      case 'VERSION': throw new Error('VERSION is answered before the engine loads');
    }
  } catch (e) {
    throw toCniError(e);
  }
}

/** NsnetError codes → CNI codes (SPEC.md §"Error"; 100+ are nsnet's, see spec.ts). */
const CODE_MAP: Partial<Record<ErrorCode, number>> = {
  IPAM_EXHAUSTED: CNI_ERR.ADDRESS_EXHAUSTED,
  IPAM_ADDRESS_TAKEN: CNI_ERR.ADDRESS_UNAVAILABLE,
  IPAM_OUT_OF_SUBNET: CNI_ERR.ADDRESS_UNAVAILABLE,
  PORT_IN_USE: CNI_ERR.PORT_IN_USE,
  ENDPOINT_EXISTS: CNI_ERR.INTERFACE_EXISTS,
  NETLINK_EEXIST: CNI_ERR.INTERFACE_EXISTS,
  SUBNET_OVERLAP: CNI_ERR.NETWORK_CONFLICT,
  NETWORK_EXISTS: CNI_ERR.NETWORK_CONFLICT,
  NS_NOT_FOUND: CNI_ERR.INVALID_NETNS,
  ADDRESS_INVALID: CNI_ERR.INVALID_CONFIG,
  CIDR_INVALID: CNI_ERR.INVALID_CONFIG,
  MAC_INVALID: CNI_ERR.INVALID_CONFIG,
  SUBNET_INVALID: CNI_ERR.INVALID_CONFIG,
  GATEWAY_INVALID: CNI_ERR.INVALID_CONFIG,
  NAME_INVALID: CNI_ERR.INVALID_CONFIG,
  IFNAME_INVALID: CNI_ERR.INVALID_CONFIG,
  USAGE: CNI_ERR.INVALID_CONFIG,
  STORE_ERROR: CNI_ERR.TRY_AGAIN_LATER,
};

export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof NsnetError) return new CniError(CODE_MAP[e.code] ?? CNI_ERR.NSNET_FAILED, e.message, `nsnet error ${e.code}`);
  // SQLITE_BUSY after busy_timeout: another process held the write lock too long.
  if ((e as { code?: string })?.code === 'SQLITE_BUSY') return new CniError(CNI_ERR.TRY_AGAIN_LATER, 'the nsnet state database is busy', String((e as Error).message));
  return new CniError(CNI_ERR.INTERNAL, `internal error in nsnet (a bug, please report it): ${(e as Error)?.message ?? String(e)}`, (e as Error)?.stack ?? '');
}

// ---- the network -----------------------------------------------------------------------------

function subnetsWanted(conf: PluginConf): PluginConf['subnets'] {
  return conf.runtime.ipRanges ?? conf.subnets;
}

function networkSpec(conf: PluginConf): NetworkSpec {
  const subnets = subnetsWanted(conf);
  return {
    name: conf.name, driver: 'bridge',
    ...(subnets ? { subnets: subnets.map((s) => s.subnet), gateways: subnets.flatMap((s) => (s.gateway ? [s.gateway] : [])) } : {}),
    ...(conf.bridge !== undefined ? { bridge: conf.bridge } : {}), ...(conf.internal !== undefined ? { internal: conf.internal } : {}),
    ...(conf.ipMasq !== undefined ? { masquerade: conf.ipMasq } : {}), ...(conf.mtu !== undefined ? { mtu: conf.mtu } : {}),
    ...(conf.ipv6 !== undefined ? { ipv6: conf.ipv6 } : {}),
  };
}

/** Differences between the config and an existing network (empty: compatible). */
function conflicts(conf: PluginConf, n: NetworkRecord): string[] {
  const out: string[] = [];
  if (conf.bridge !== undefined && conf.bridge !== n.bridge) out.push(`bridge ${n.bridge}, config says ${conf.bridge}`);
  const subnets = subnetsWanted(conf);
  if (subnets) {
    const want = subnets.map((s) => parseCidr(s.subnet).toString()).sort();
    const have = n.subnets.map((s) => s.cidr).sort();
    if (want.join() !== have.join()) out.push(`subnets ${have.join(', ')}, config says ${want.join(', ')}`);
    for (const s of subnets) {
      const rec = n.subnets.find((x) => x.cidr === parseCidr(s.subnet).toString());
      if (s.gateway && rec && IpAddress.parse(s.gateway).toString() !== rec.gateway) out.push(`gateway ${rec.gateway}, config says ${s.gateway}`);
    }
  }
  if (conf.internal !== undefined && conf.internal !== n.internal) out.push(`internal ${n.internal}, config says ${conf.internal}`);
  if (conf.ipMasq !== undefined && !n.internal && conf.ipMasq !== n.masquerade) out.push(`ipMasq ${n.masquerade}, config says ${conf.ipMasq}`);
  if (conf.mtu !== undefined && conf.mtu !== n.mtu) out.push(`mtu ${n.mtu ?? 'default'}, config says ${conf.mtu}`);
  return out;
}

/**
 * The network named by the config: created on first use. Creation runs inside the store's write
 * lock (BEGIN IMMEDIATE, with createNetwork's own transactions as savepoints), so parallel first
 * ADDs from many plugin processes create it once and the others wait, then find it ready.
 */
function ensureNetwork(nsnet: Nsnet, conf: PluginConf): NetworkRecord {
  let rec = nsnet.store.network(conf.name);
  if (!rec) {
    rec = nsnet.store.immediate(() => nsnet.store.network(conf.name) ?? nsnet.createNetwork(networkSpec(conf)));
  }
  const diff = conflicts(conf, rec);
  if (diff.length > 0) {
    throw new CniError(CNI_ERR.NETWORK_CONFLICT, `nsnet network ${conf.name} exists with other settings: ${diff.join('; ')}`,
      'remove it (nsnet network rm) or change the config to match');
  }
  return rec;
}

// ---- ADD -------------------------------------------------------------------------------------

function requestedIps(conf: PluginConf, args: Map<string, string>): string[] {
  const ips = [...conf.runtime.ips];
  const fromArgs = args.get('IP');
  if (fromArgs) ips.push(...fromArgs.split(',').filter(Boolean));
  return [...new Set(ips.map((ip) => ip.split('/')[0]!))];
}

function dnsNames(conf: PluginConf, args: Map<string, string>): string[] {
  const pod = args.get('K8S_POD_NAME');
  // The runtime's name for the container (podman passes it here) becomes a DNS name too.
  const names = [...conf.runtime.aliases, ...(pod && DNS_NAME_RE.test(pod) ? [pod] : [])];
  return [...new Set(names)];
}

function add(nsnet: Nsnet, inv: Invocation, conf: PluginConf, args: Map<string, string>): CniResult {
  // A missing namespace is refused before anything is created (libcni's ErrInvalidNetNS).
  Netns.openPath(inv.netns).close();
  const fresh = !nsnet.store.network(conf.name);
  const net = ensureNetwork(nsnet, conf);
  try {
    return attach(nsnet, net, inv, conf, args);
  } catch (e) {
    // A failed first ADD leaves no network behind (unless another container joined meanwhile).
    if (fresh && nsnet.store.endpoints({ network: net.name }).length === 0) {
      try { nsnet.removeNetwork(net.name); } catch { /* in use by a parallel ADD: keep it */ }
    }
    throw e;
  }
}

function attach(nsnet: Nsnet, net: NetworkRecord, inv: Invocation, conf: PluginConf, args: Map<string, string>): CniResult {
  const key = keyOf(inv.containerId, inv.ifname);
  const existing = nsnet.store.endpoint(net.name, key);
  if (existing?.state === 'ready') {
    throw new CniError(CNI_ERR.INTERFACE_EXISTS, `container ${inv.containerId} already has interface ${inv.ifname} on network ${net.name}`, 'DEL it first');
  }
  const mac = conf.runtime.mac ?? args.get('MAC');
  const ep = nsnet.connect({
    network: net.name, namespace: key, ifname: inv.ifname, netns: inv.netns, ips: requestedIps(conf, args),
    aliases: dnsNames(conf, args), ...(mac ? { mac } : {}),
  });
  if (conf.runtime.portMappings.length > 0) {
    try {
      nsnet.publish(key, conf.runtime.portMappings.map(portSpec), { network: net.name });
    } catch (e) {
      nsnet.disconnect(net.name, key);
      throw e;
    }
  }
  const mine = resultFor(nsnet, net, ep, inv.netns, conf);
  return conf.prevResult ? mergeResults(readResult(conf.prevResult), mine) : mine;
}

function gatewayOf(net: NetworkRecord, address: string): string | undefined {
  const ip = IpAddress.parse(address.split('/')[0]!);
  return net.subnets.find((s) => Cidr.parse(s.cidr).contains(ip))?.gateway;
}

function resultFor(nsnet: Nsnet, net: NetworkRecord, ep: EndpointRecord, sandbox: string, conf: PluginConf): CniResult {
  const mtu = net.mtu ? { mtu: net.mtu } : {};
  const hostMac = getLink(nsnet.host, ep.hostIfname)?.mac;
  const routes: CniResult['routes'] = [];
  if (!net.internal) {
    for (const fam of [4, 6] as const) {
      const s = net.subnets.find((x) => x.cidr.includes(':') === (fam === 6));
      if (s) routes.push({ dst: fam === 4 ? '0.0.0.0/0' : '::/0', gw: s.gateway });
    }
  }
  const dns = { ...(conf.dns ?? {}) };
  if (networkHasDns(net)) {
    // nsnet's DNS service answers on the gateways: the runtime writes them into resolv.conf.
    dns.nameservers = [...net.subnets.map((s) => s.gateway), ...(dns.nameservers ?? [])];
    dns.search = [DNS_DOMAIN, ...(dns.search ?? []), ...(conf.runtime.dns?.searches ?? [])];
  }
  if (conf.runtime.dns?.options?.length) dns.options = [...(dns.options ?? []), ...conf.runtime.dns.options];
  for (const k of Object.keys(dns) as Array<keyof typeof dns>) {
    const v = dns[k];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) delete dns[k];
  }
  return {
    interfaces: [
      { name: net.bridge, mac: bridgeMac(net.name), ...mtu },
      { name: ep.hostIfname, ...(hostMac ? { mac: hostMac } : {}), ...mtu },
      { name: ep.ifname, mac: ep.mac, ...mtu, sandbox },
    ],
    ips: ep.addresses.map((a) => {
      const gw = gatewayOf(net, a);
      return { address: a, ...(gw ? { gateway: gw } : {}), interface: 2 };
    }),
    routes,
    dns,
  };
}

// ---- DEL -------------------------------------------------------------------------------------

/**
 * Idempotent (SPEC.md §"DEL"): succeeds with the network or the attachment already gone, with the
 * namespace gone or CNI_NETNS empty, and with no prevResult. The address is released even when
 * the kernel side fails: the store row goes first thing after a failure, then the error is
 * reported (a leaked host veth is what `nsnet repair` removes).
 */
function del(nsnet: Nsnet, inv: Invocation, conf: PluginConf): void {
  const net = nsnet.store.network(conf.name);
  if (!net) return;
  const key = keyOf(inv.containerId, inv.ifname);
  if (!nsnet.store.endpoint(net.name, key)) return;
  try {
    nsnet.disconnect(net.name, key);
  } catch (e) {
    nsnet.store.immediate(() => {
      for (const p of nsnet.store.ports({ namespace: key })) nsnet.store.deletePort(p);
      nsnet.store.deleteEndpoint(net.name, key);
    });
    throw e;
  }
}

// ---- CHECK -----------------------------------------------------------------------------------

function check(nsnet: Nsnet, inv: Invocation, conf: PluginConf): void {
  if (!conf.prevResult) throw new CniError(CNI_ERR.INVALID_CONFIG, 'CHECK needs prevResult (the result of ADD)');
  const fail = (msg: string): CniError => new CniError(CNI_ERR.CHECK_FAILED, msg);
  const net = nsnet.store.network(conf.name);
  if (!net) throw fail(`nsnet network ${conf.name} does not exist`);
  const key = keyOf(inv.containerId, inv.ifname);
  const ep = nsnet.store.endpoint(net.name, key);
  if (!ep || ep.state !== 'ready') throw fail(`container ${inv.containerId} has no attachment ${inv.ifname} on network ${net.name}`);
  const prev = readResult(conf.prevResult);
  for (const a of ep.addresses) {
    if (!prev.ips.some((ip) => ip.address === a)) throw fail(`prevResult lacks address ${a} of ${inv.ifname}`);
  }
  const br = getLink(nsnet.host, net.bridge);
  if (!br) throw fail(`bridge ${net.bridge} of network ${net.name} is missing`);
  const host = getLink(nsnet.host, ep.hostIfname);
  if (!host) throw fail(`host veth ${ep.hostIfname} of ${inv.ifname} is missing`);
  if (host.master !== br.index) throw fail(`host veth ${ep.hostIfname} is not a port of bridge ${net.bridge}`);
  const ns = Netns.openPath(inv.netns);
  try {
    const link = getLink(ns, inv.ifname);
    if (!link) throw fail(`interface ${inv.ifname} is missing in ${inv.netns}`);
    const have = new Set(listAddresses(ns, { dev: link.index }).map((a) => `${a.address}/${a.prefixlen}`));
    for (const a of ep.addresses) if (!have.has(a)) throw fail(`address ${a} is missing on ${inv.ifname} in ${inv.netns}`);
    if (!net.internal) {
      const routes = listRoutes(ns);
      for (const s of net.subnets) {
        const fam = s.cidr.includes(':') ? 6 : 4;
        if (!routes.some((r) => r.family === fam && r.dst === 'default' && r.gateway === s.gateway)) {
          if (net.subnets.find((x) => x.cidr.includes(':') === (fam === 6)) === s) throw fail(`default route via ${s.gateway} is missing in ${inv.netns}`);
        }
      }
    }
  } finally {
    ns.close();
  }
  const fw = new Firewall();
  try {
    const missing = fw.missing(ep, nsnet.store.ports({ namespace: key }));
    if (missing.length > 0) throw fail(`nsnet firewall state for ${inv.ifname} is missing: ${missing.join('; ')}`);
  } finally {
    fw.close();
  }
}

// ---- STATUS ----------------------------------------------------------------------------------

/** Addresses an endpoint can get in a subnet: all but network, broadcast (IPv4) and gateway. */
function capacity(s: Cidr): bigint {
  let n = s.size - 1n; // the gateway
  if (s.hasReservedNetworkAddress) n -= 1n;
  if (s.broadcast !== undefined) n -= 1n;
  return n < 0n ? 0n : n;
}

function status(nsnet: Nsnet, conf: PluginConf): void {
  const net = nsnet.store.network(conf.name);
  if (!net) return; // ADD will create it
  const used = nsnet.store.allocatedAddresses(net.name).map((a) => IpAddress.parse(a));
  for (const s of net.subnets) {
    const c = Cidr.parse(s.cidr);
    const inUse = BigInt(used.filter((a) => c.contains(a)).length);
    if (inUse >= capacity(c)) {
      throw new CniError(CNI_ERR.LIMITED_CONNECTIVITY, `network ${net.name} cannot take another container: subnet ${s.cidr} is exhausted (${inUse} addresses in use)`);
    }
  }
  if (!getLink(nsnet.host, net.bridge)) {
    // ADD re-creates a missing bridge, but the containers attached to it have lost connectivity.
    if (nsnet.store.endpoints({ network: net.name }).length > 0) {
      throw new CniError(CNI_ERR.LIMITED_CONNECTIVITY, `bridge ${net.bridge} of network ${net.name} is missing: its containers are cut off (run nsnet repair)`);
    }
  }
}

// ---- GC --------------------------------------------------------------------------------------

/**
 * Disconnects every CNI attachment (an endpoint attached by namespace path) of this network that
 * the runtime did not list; keeps going after a failure and reports them all at the end.
 */
function gc(nsnet: Nsnet, conf: PluginConf): void {
  const net = nsnet.store.network(conf.name);
  if (!net) return;
  const keep = new Set(conf.validAttachments.map((a) => keyOf(a.containerID, a.ifname)));
  const errors: string[] = [];
  for (const ep of nsnet.store.endpoints({ network: net.name })) {
    if (ep.declared.netns === undefined || keep.has(ep.namespace)) continue;
    try {
      nsnet.disconnect(net.name, ep.namespace);
    } catch (e) {
      errors.push(`${ep.ifname} (${ep.addresses.join(' ')}): ${isNsnetError(e) ? e.message : String(e)}`);
      nsnet.store.immediate(() => nsnet.store.deleteEndpoint(net.name, ep.namespace));
    }
  }
  if (errors.length > 0) throw new CniError(CNI_ERR.NSNET_FAILED, `GC of network ${net.name} failed for ${errors.length} attachment(s)`, errors.join('\n'));
}
