/**
 * The engine: the typed library API that every face (CLI, CNI, agent) calls. It validates
 * everything first, records intent in the store, then drives the kernel through idempotent
 * driver steps, and undoes its own work when a step fails — so bad input and failures
 * leave kernel and store as they were.
 *
 * Crash safety: an endpoint is written as `creating` (with its addresses reserved) before
 * any kernel work and marked `ready` after. A process killed in between leaves a
 * `creating` row whose kernel objects have deterministic names; the next operation on the
 * same endpoint, or `repair`, removes them and the row.
 */
import crypto from 'node:crypto';
import { NsnetError, isNsnetError } from '../errors.js';
import { Netns, createNetns, deleteNetns, netnsExists } from '../kernel/netns/netns.js';
import { readSysctl, writeSysctl } from '../kernel/netns/sysctl.js';
import { getLink, listLinks, validateIfname } from '../kernel/netlink/route/link.js';
import { listAddresses } from '../kernel/netlink/route/addr.js';
import { listRoutes } from '../kernel/netlink/route/route.js';
import { Store, resolveStateDir } from '../store/store.js';
import { Firewall, type ClusterFilter, type FirewallState } from '../firewall/firewall.js';
import { expandPortSpec, parsePortFilter, parsePortSpec, type PortMapping } from './ports.js';
import { clearUdpConntrack } from '../kernel/netlink/conntrack.js';
import { HostSockets, findPortHolder, portIsFree } from './listeners.js';
import { attachEndpoint, deleteBridgeNetwork, detachEndpoint, ensureBridgeNetwork, setBridgeNetworkMtu } from '../drivers/bridge.js';
import {
  attachVlanEndpoint, checkVlanConnect, checkVlanSpec, requireVlanParent, defaultShimName, deleteVlanNetwork, detachVlanEndpoint, ensureVlanNetwork,
  fixedVlanMac, isVlanDriver, validateVlanNetwork, vlanConfig, vlanEndpointPresent,
} from '../drivers/macvlan.js';
import { ipamLimits, validateIpamOptions } from '../ipam/limits.js';
import { dnsResolvConf, removeNamespaceEtc, writeNamespaceResolvConf } from '../dns/resolvconf.js';
import { dnsAfterChange, waitForDnsService } from '../dns/control.js';
import { Cidr, parseCidr } from '../ipam/cidr.js';
import { IpAddress, MacAddress, isUnicastMac, randomMac } from '../ipam/address.js';
import { AddressSet, allocateAddress, defaultGateway } from '../ipam/allocator.js';
import { chooseSubnet } from '../ipam/pool.js';
import { validateGateway, validateSubnets } from '../ipam/validate.js';
import { publish } from '../diagnostics.js';
import type {
  Change, CurrentState, EndpointRecord, EndpointSpec, NamespaceRecord, NetworkRecord, NetworkSpec, PolicyRecord, PolicySpec,
  PublishRecord, Selector, SubnetRecord, Topology,
} from './types.js';
import { describePlan, downTopology, planTopology } from './planner.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Host-side veth names: `nsv` + 9 hex digits of a hash of (network, namespace). */
const HOST_VETH_PREFIX = 'nsv';

export function validateName(kind: 'network' | 'namespace', name: string): void {
  if (!NAME_RE.test(name)) {
    throw new NsnetError(kind === 'network' ? 'NAME_INVALID' : 'NS_NAME_INVALID',
      `invalid ${kind} name "${name}": use 1–64 letters, digits, '_', '.', '-', starting with a letter or digit`, { object: name });
  }
}

function hash(...parts: string[]): string {
  return crypto.createHash('sha256').update(parts.join('\0')).digest('hex');
}

export function hostVethName(network: string, namespace: string): string {
  return `${HOST_VETH_PREFIX}${hash(network, namespace).slice(0, 9)}`;
}

export function defaultBridgeName(network: string): string {
  const plain = `nsbr-${network}`;
  return Buffer.byteLength(plain) <= 15 && /^[A-Za-z0-9_.-]+$/.test(network) ? plain : `nsbr-${hash(network).slice(0, 10)}`;
}

const now = (): string => new Date().toISOString();
/** Store meta key of the cluster agent's underlay filter (setClusterFilter). */
const CLUSTER_FILTER_KEY = 'cluster:filter';

/**
 * Fault injection for the crash-recovery tests: with NSNET_CRASH_AT=<point> the process
 * kills itself with SIGKILL at that point, exactly like `kill -9` between two steps.
 */
function crashPoint(point: string): void {
  if (process.env.NSNET_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

export interface NsnetOptions {
  /** State directory; default $NSNET_STATE_DIR or /var/lib/nsnet. */
  stateDir?: string;
}

export interface OpOptions {
  /** The topology file that makes the object (apply), or undefined for imperative calls. */
  source?: string | null;
}

export interface ApplyResult {
  changes: Change[];
  descriptions: string[];
}

export interface NamespaceStatus extends NamespaceRecord {
  exists: boolean;
  endpoints: EndpointRecord[];
}

export class Nsnet {
  readonly store: Store;
  readonly host: Netns;
  private readonly firewall = new Firewall();

  constructor(opts: NsnetOptions = {}) {
    this.store = new Store(resolveStateDir(opts.stateDir));
    this.host = Netns.host();
  }

  /**
   * Prepares what the first firewall change would otherwise build (the libnftables
   * context), for a long-lived caller that can do it while it waits for something else.
   */
  warmUp(): void {
    this.firewall.open();
  }

  close(): void {
    this.firewall.close();
    this.store.close();
  }

  // ---- namespaces ------------------------------------------------------------------------

  /** Creates a named namespace with loopback up. Equivalent: `ip netns add NAME`. */
  addNamespace(name: string, o: OpOptions = {}): NamespaceRecord {
    validateName('namespace', name);
    if (this.store.namespace(name) || netnsExists(name)) {
      throw new NsnetError('NS_EXISTS', `namespace ${name} already exists`, { object: name });
    }
    const ns = createNetns(name);
    ns.close();
    const rec: NamespaceRecord = { name, managed: true, source: o.source ?? null, createdAt: now() };
    try {
      this.store.immediate(() => this.store.insertNamespace(rec));
    } catch (e) {
      deleteNetns(name);
      throw e;
    }
    publish('engine:namespace-added', { name });
    return rec;
  }

  /** Disconnects every endpoint of the namespace and deletes it (if nsnet created it). */
  removeNamespace(name: string): void {
    validateName('namespace', name);
    const rec = this.store.namespace(name);
    if (!rec && !netnsExists(name)) throw new NsnetError('NS_NOT_FOUND', `namespace ${name} not found`, { object: name });
    for (const e of this.store.endpoints({ namespace: name })) this.disconnect(e.network, name);
    if (!rec || rec.managed) deleteNetns(name);
    removeNamespaceEtc(name);
    this.store.immediate(() => this.store.deleteNamespace(name));
    publish('engine:namespace-removed', { name });
  }

  listNamespaces(): NamespaceStatus[] {
    const endpoints = this.store.endpoints();
    return this.store.namespaces().map((n) => ({
      ...n, exists: netnsExists(n.name), endpoints: endpoints.filter((e) => e.namespace === n.name),
    }));
  }

  // ---- networks --------------------------------------------------------------------------

  /** Everything a new subnet must not overlap: nsnet's networks and the host's routes and addresses. */
  private occupiedPrefixes(): Cidr[] {
    const out: Cidr[] = [];
    for (const n of this.store.networks()) for (const s of n.subnets) out.push(Cidr.parse(s.cidr));
    for (const r of listRoutes(this.host, { table: 'all' })) {
      if (r.dst === 'default' || r.dst === '?') continue;
      try { out.push(Cidr.containing(IpAddress.parse(r.dst.split('/')[0]!), Number(r.dst.split('/')[1]))); } catch { /* multicast etc. */ }
    }
    for (const a of listAddresses(this.host)) {
      if (a.scope === 253 && a.family === 6) continue; // link-local
      try { out.push(Cidr.containing(IpAddress.parse(a.address), a.prefixlen)); } catch { /* ignore */ }
    }
    return out;
  }

  private resolveSubnets(spec: NetworkSpec): SubnetRecord[] {
    const given = (spec.subnets ?? []).map((s) => parseCidr(s));
    const gateways = (spec.gateways ?? []).map((g) => {
      try { return IpAddress.parse(g); } catch (e) {
        throw new NsnetError('GATEWAY_INVALID', `invalid gateway "${g}" for network ${spec.name}`, { object: spec.name, cause: e });
      }
    });
    const subnets = [...given];
    if (subnets.length === 0 || (spec.ipv6 && !subnets.some((s) => s.family === 6))) {
      const avoid = this.occupiedPrefixes();
      if (subnets.length === 0) subnets.push(chooseSubnet({ family: 4, avoid }));
      if (spec.ipv6 && !subnets.some((s) => s.family === 6)) subnets.push(chooseSubnet({ family: 6, avoid }));
    }
    validateSubnets(subnets);
    // Overlap with other nsnet networks.
    for (const other of this.store.networks()) {
      if (other.name === spec.name) continue;
      for (const s of subnets) for (const o of other.subnets) {
        if (s.overlaps(Cidr.parse(o.cidr))) {
          throw new NsnetError('SUBNET_OVERLAP', `subnet ${s} of network ${spec.name} overlaps ${o.cidr} of network ${other.name}`, { object: spec.name });
        }
      }
    }
    const used = new Set<number>();
    const records = subnets.map((s) => {
      const gi = gateways.findIndex((g, i) => !used.has(i) && g.family === s.family && s.contains(g));
      let gw: IpAddress;
      if (gi >= 0) {
        used.add(gi);
        gw = gateways[gi]!;
        validateGateway(s, gw);
      } else {
        gw = defaultGateway(s);
      }
      return { cidr: s.toString(), gateway: gw.toString() };
    });
    gateways.forEach((g, i) => {
      if (!used.has(i)) {
        throw new NsnetError('GATEWAY_INVALID', `gateway ${g} of network ${spec.name} is not inside any of its subnets (${records.map((r) => r.cidr).join(', ')})`, { object: spec.name });
      }
    });
    return records;
  }

  /**
   * Creates a network: a bridge, or macvlan/ipvlan on a host interface (src/drivers/macvlan.ts).
   * Equivalent: `docker network create [-d macvlan -o parent=IF]` / `podman network create`.
   */
  createNetwork(spec: NetworkSpec, o: OpOptions = {}): NetworkRecord {
    validateName('network', spec.name);
    const driver = spec.driver ?? 'bridge';
    const vlan = isVlanDriver(driver);
    if (driver !== 'bridge' && !vlan) {
      throw new NsnetError('USAGE', `unknown network driver "${String(spec.driver)}" for network ${spec.name}: use bridge, macvlan or ipvlan`, { object: spec.name });
    }
    if (!vlan && (spec.parent !== undefined || spec.mode !== undefined || spec.shim !== undefined)) {
      throw new NsnetError('USAGE', `--parent, --mode and --shim apply to macvlan/ipvlan networks, not to bridge network ${spec.name}`, { object: spec.name });
    }
    if (vlan) requireVlanParent(this.host, checkVlanSpec(spec), spec.name);
    if (this.store.network(spec.name)) throw new NsnetError('NETWORK_EXISTS', `network ${spec.name} already exists`, { object: spec.name });
    for (const s of spec.dnsServers ?? []) {
      const [addr, port] = s.split('#');
      const ok = (() => { try { IpAddress.parse(addr!); return true; } catch { return false; } })();
      if (!ok || (port !== undefined && !/^[1-9]\d{0,4}$/.test(port)) || Number(port ?? 53) > 65535) {
        throw new NsnetError('USAGE', `invalid DNS server "${s}" for network ${spec.name}: use an IP address, optionally #PORT`, { object: spec.name });
      }
    }
    if (spec.dns === false && (spec.dnsServers ?? []).length > 0) {
      throw new NsnetError('USAGE', `network ${spec.name}: DNS servers given, but DNS is off for it`, { object: spec.name });
    }
    if (spec.mtu !== undefined && (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535)) {
      throw new NsnetError('USAGE', `invalid MTU ${spec.mtu} for network ${spec.name}: must be 68–65535`, { object: spec.name });
    }
    // macvlan/ipvlan: the `bridge` column holds the name of the network's host-side shim.
    const bridge = vlan ? defaultShimName(spec.name) : spec.bridge ?? defaultBridgeName(spec.name);
    validateIfname(bridge);
    const owner = this.store.networkByBridge(bridge);
    if (owner) throw new NsnetError('NETWORK_EXISTS', `bridge ${bridge} is already used by network ${owner.name}`, { object: bridge });
    if ((!vlan || (spec.shim ?? []).length > 0) && getLink(this.host, bridge)) {
      throw new NsnetError('NETLINK_EEXIST', `a link named ${bridge} already exists and is not nsnet's${vlan ? '' : ': choose another --bridge'}`, { object: bridge });
    }
    const subnets = this.resolveSubnets(spec);
    validateIpamOptions(spec, subnets);
    if (vlan) validateVlanNetwork(this.host, spec, subnets, this.store.networks());
    const rec: NetworkRecord = {
      name: spec.name, driver, bridge, subnets, internal: spec.internal ?? false,
      masquerade: vlan ? false : spec.masquerade ?? true, mtu: spec.mtu ?? null, source: o.source ?? null,
      declared: spec, createdAt: now(),
    };
    this.store.immediate(() => {
      if (this.store.network(spec.name)) throw new NsnetError('NETWORK_EXISTS', `network ${spec.name} already exists`, { object: spec.name });
      this.store.insertNetwork(rec);
    });
    crashPoint('network:recorded');
    if (vlan) {
      try {
        ensureVlanNetwork(this.host, rec, []);
      } catch (e) {
        deleteVlanNetwork(this.host, rec);
        this.store.immediate(() => this.store.deleteNetwork(rec.name));
        throw e;
      }
      publish('engine:network-created', { name: rec.name, subnets: rec.subnets });
      this.dnsChanged();
      return rec;
    }
    try {
      ensureBridgeNetwork(this.host, rec);
      this.enableForwarding(rec);
      this.firewall.network('add', rec, this.policiesNaming({ kind: 'network', name: rec.name }), () => this.firewallState());
    } catch (e) {
      deleteBridgeNetwork(this.host, rec);
      this.store.immediate(() => this.store.deleteNetwork(rec.name));
      if (this.firewall.tablesExist()) this.firewall.rebuild(this.firewallState());
      throw e;
    }
    publish('engine:network-created', { name: rec.name, subnets: rec.subnets });
    this.dnsChanged();
    return rec;
  }

  /**
   * Turns on forwarding for the families a routed network needs. The value found before
   * nsnet first changed it is kept in the store so `reset` can put it back.
   */
  private enableForwarding(n: NetworkRecord): void {
    if (n.internal) return;
    // The host reaches published ports via 127.0.0.1: after DNAT the packet leaves through
    // the bridge with a loopback source, which the kernel drops unless route_localnet is on
    // for that device (net/ipv4/route.c). Scoped to nsnet's own bridge.
    if (n.subnets.some((s) => !s.cidr.includes(':'))) writeSysctl(this.host, `net.ipv4.conf.${n.bridge}.route_localnet`, '1');
    const keys = new Set<string>();
    for (const s of n.subnets) keys.add(s.cidr.includes(':') ? 'net.ipv6.conf.all.forwarding' : 'net.ipv4.ip_forward');
    for (const key of keys) {
      const cur = readSysctl(this.host, key);
      if (cur === '1') continue;
      this.store.immediate(() => {
        if (this.store.meta(`sysctl:${key}`) === undefined) this.store.setMeta(`sysctl:${key}`, cur);
      });
      writeSysctl(this.host, key, '1');
    }
  }

  /** Removes a network; with endpoints only when `force` (they are disconnected first). */
  removeNetwork(name: string, o: { force?: boolean } = {}): void {
    const rec = this.requireNetwork(name);
    const eps = this.store.endpoints({ network: name });
    if (eps.length > 0 && !o.force) {
      throw new NsnetError('NETWORK_IN_USE', `network ${name} has ${eps.length} endpoint(s) (${eps.map((e) => e.namespace).join(', ')}): disconnect them or use --force`, { object: name });
    }
    for (const e of eps) this.disconnect(name, e.namespace);
    if (isVlanDriver(rec.driver)) deleteVlanNetwork(this.host, rec);
    else deleteBridgeNetwork(this.host, rec);
    this.store.immediate(() => this.store.deleteNetwork(name));
    if (!isVlanDriver(rec.driver)) this.firewall.network('delete', rec, this.policiesNaming({ kind: 'network', name }), () => this.firewallState());
    publish('engine:network-removed', { name });
    this.dnsChanged();
  }

  /**
   * Changes a bridge network's MTU: the stored record (new attaches use it), the bridge, and
   * both ends of every endpoint's veth, inside the namespaces too. Idempotent: returns how
   * many links it changed (0 when everything already had `mtu`). The cluster agent calls it
   * when the underlay MTU changes (src/cluster/agent.ts).
   * Equivalent: `ip link set BRIDGE mtu N; ip link set VETH mtu N; ip -n NS link set eth0 mtu N` …
   */
  setNetworkMtu(name: string, mtu: number): number {
    const rec = this.requireNetwork(name);
    if (isVlanDriver(rec.driver)) {
      throw new NsnetError('USAGE', `network ${name} is a ${rec.driver} network: its MTU follows its parent interface`, { object: name });
    }
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw new NsnetError('USAGE', `invalid MTU ${mtu} for network ${name}: must be 68–65535`, { object: name });
    }
    if (rec.mtu !== mtu) this.store.immediate(() => this.store.setNetworkMtu(name, mtu));
    const eps = this.store.endpoints({ network: name }).filter((e) => e.state === 'ready');
    const changes = setBridgeNetworkMtu(this.host, rec, eps, mtu,
      (e) => ifPresent(() => openEndpointNetns({ namespace: e.namespace, netns: e.declared.netns })));
    if (rec.mtu !== mtu || changes > 0) publish('engine:network-mtu', { name, mtu, links: changes });
    return changes;
  }

  /**
   * The multi-host agent's underlay filter: UDP to `port` (VXLAN) accepted only from
   * `peers` (underlay IPv4 addresses), in one firewall transaction; null removes it. Kept in
   * the store too, so a firewall rebuild (repair, drift) puts it back as it was.
   */
  setClusterFilter(f: ClusterFilter | null): void {
    const text = f ? JSON.stringify({ port: f.port, peers: [...f.peers].sort() }) : undefined;
    if (this.store.meta(CLUSTER_FILTER_KEY) !== text) {
      this.store.immediate(() => (text === undefined ? this.store.deleteMeta(CLUSTER_FILTER_KEY) : this.store.setMeta(CLUSTER_FILTER_KEY, text)));
    }
    this.firewall.cluster(f, () => this.firewallState());
  }

  private clusterFilter(): ClusterFilter | null {
    const text = this.store.meta(CLUSTER_FILTER_KEY);
    if (text === undefined) return null;
    try { return JSON.parse(text) as ClusterFilter; } catch { return null; }
  }

  requireNetwork(name: string): NetworkRecord {
    const rec = this.store.network(name);
    if (!rec) throw new NsnetError('NETWORK_NOT_FOUND', `network ${name} not found`, { object: name });
    return rec;
  }

  listNetworks(): Array<NetworkRecord & { endpoints: number }> {
    const eps = this.store.endpoints();
    return this.store.networks().map((n) => ({ ...n, endpoints: eps.filter((e) => e.network === n.name).length }));
  }

  inspectNetwork(name: string): NetworkRecord & { endpoints: EndpointRecord[]; bridgeIndex: number | undefined } {
    const rec = this.requireNetwork(name);
    return { ...rec, endpoints: this.store.endpoints({ network: name }), bridgeIndex: getLink(this.host, rec.bridge)?.index };
  }

  // ---- endpoints -------------------------------------------------------------------------

  /** Reserves addresses and writes the endpoint as `creating`, in one IMMEDIATE transaction. */
  private reserveEndpoint(net: NetworkRecord, spec: EndpointSpec, target: Netns, source: string | null, fixedMac?: string): EndpointRecord {
    const requested = (spec.ips ?? []).map((ip) => {
      try { return IpAddress.parse(ip.split('/')[0]!); } catch (e) {
        throw new NsnetError('ADDRESS_INVALID', `invalid IP "${ip}" for ${spec.namespace} on ${net.name}`, { object: ip, cause: e });
      }
    });
    const subnets = net.subnets.map((s) => ({ rec: s, cidr: Cidr.parse(s.cidr), gw: IpAddress.parse(s.gateway) }));
    const bySubnet = new Map<number, IpAddress>();
    for (const r of requested) {
      const i = subnets.findIndex((s) => s.cidr.contains(r));
      if (i < 0) {
        throw new NsnetError('IPAM_OUT_OF_SUBNET', `address ${r} is outside network ${net.name}'s subnets (${net.subnets.map((s) => s.cidr).join(', ')})`, { object: r.toString() });
      }
      if (bySubnet.has(i)) throw new NsnetError('USAGE', `two addresses requested in subnet ${subnets[i]!.rec.cidr}`, { object: r.toString() });
      bySubnet.set(i, r);
    }
    // --ip-range and --aux-address (and a macvlan shim's host addresses): never handed out.
    const limits = ipamLimits(net.declared);
    for (const r of requested) {
      const why = limits.reserved.get(r.toString());
      if (why) throw new NsnetError('IPAM_ADDRESS_TAKEN', `address ${r} on network ${net.name} is reserved (${why})`, { object: r.toString() });
    }
    let mac: string;
    if (fixedMac) {
      mac = fixedMac;
    } else if (spec.mac) {
      const m = MacAddress.parse(spec.mac);
      if (!isUnicastMac(m)) throw new NsnetError('MAC_INVALID', `MAC ${spec.mac} is not a unicast address`, { object: spec.mac });
      mac = m.toString();
    } else {
      mac = randomMac().toString();
    }
    const ifname = spec.ifname ?? this.nextIfname(spec.namespace, target);
    validateIfname(ifname);
    const rec: EndpointRecord = {
      network: net.name, namespace: spec.namespace, ifname, hostIfname: hostVethName(net.name, spec.namespace), mac,
      addresses: [], aliases: spec.aliases ?? [], state: 'creating', source, declared: spec, createdAt: now(),
    };
    this.store.immediate(() => {
      const existing = this.store.endpoint(net.name, spec.namespace);
      if (existing) {
        throw new NsnetError('ENDPOINT_EXISTS', `namespace ${spec.namespace} is already connected to network ${net.name}`, { object: `${spec.namespace}@${net.name}` });
      }
      for (const other of this.store.endpoints({ namespace: spec.namespace })) {
        if (other.ifname === ifname) {
          throw new NsnetError('ENDPOINT_EXISTS', `namespace ${spec.namespace} already has interface ${ifname} (network ${other.network})`, { object: ifname });
        }
      }
      const inUse = new StoreAddressSet(this.store, net.name);
      for (const r of limits.reserved.keys()) inUse.add(IpAddress.parse(r));
      subnets.forEach((s, i) => {
        const want = bySubnet.get(i);
        if (want) {
          const owner = this.store.allocationOwner(net.name, want.toString());
          if (owner) {
            throw new NsnetError('IPAM_ADDRESS_TAKEN', `address ${want} on network ${net.name} is already used by ${owner}`, { object: want.toString() });
          }
        }
        const cursor = this.store.cursor(net.name, s.rec.cidr);
        const addr = allocateAddress({
          subnet: s.cidr, gateway: s.gw, inUse, requested: want,
          after: cursor ? IpAddress.parse(cursor) : undefined, range: limits.ranges.find((r) => s.cidr.containsCidr(r)),
        });
        this.store.insertAllocation(net.name, addr.toString(), spec.namespace);
        if (!want) this.store.setCursor(net.name, s.rec.cidr, addr.toString());
        inUse.add(addr);
        rec.addresses.push(`${addr}/${s.cidr.prefixLength}`);
      });
      if (spec.netns === undefined && !this.store.namespace(spec.namespace)) {
        // A namespace made by someone else (`ip netns add`): adopted, never deleted by nsnet.
        this.store.insertNamespace({ name: spec.namespace, managed: false, source: null, createdAt: now() });
      }
      this.store.insertEndpoint(rec);
    });
    return rec;
  }

  /** eth0, eth1 …: the first name neither another endpoint nor the namespace itself uses. */
  private nextIfname(namespace: string, target: Netns): string {
    const taken = new Set(this.store.endpoints({ namespace }).map((e) => e.ifname));
    for (let i = 0; ; i++) {
      const name = `eth${i}`;
      if (!taken.has(name) && !getLink(target, name)) return name;
    }
  }

  /**
   * Attaches a namespace to a network: veth pair, bridge port, addresses, loopback, default
   * routes, resolv.conf. Equivalent: `docker network connect NET CONTAINER`.
   */
  connect(spec: EndpointSpec, o: OpOptions = {}): EndpointRecord {
    validateName('namespace', spec.namespace);
    const net = this.requireNetwork(spec.network);
    if (spec.ifname !== undefined) validateIfname(spec.ifname);
    const stale = this.store.endpoint(net.name, spec.namespace);
    if (stale && stale.state !== 'ready') this.rollbackEndpoint(stale);
    // Open the namespace before reserving anything: a missing one is a clean error.
    const target = openEndpointNetns(spec);
    const vlan = isVlanDriver(net.driver);
    try {
      if (vlan) {
        checkVlanConnect(net, this.store.endpoints({ network: net.name }), spec);
        const p = this.policiesNaming({ kind: 'namespace', name: spec.namespace })[0];
        if (p) throw this.unenforceable(p, net, spec.namespace);
      }
      const rec = this.reserveEndpoint(net, spec, target, o.source ?? null, vlan ? fixedVlanMac(this.host, net) : undefined);
      crashPoint('connect:reserved');
      try {
        if (vlan) {
          attachVlanEndpoint(this.host, target, net, rec);
        } else {
          const br = getLink(this.host, net.bridge) ?? ensureBridgeNetwork(this.host, net);
          attachEndpoint(this.host, target, net, br.index, rec);
        }
        crashPoint('connect:attached');
      } catch (e) {
        this.store.immediate(() => this.store.deleteEndpoint(net.name, spec.namespace));
        throw e;
      }
      this.store.immediate(() => this.store.setEndpointState(net.name, spec.namespace, 'ready'));
      rec.state = 'ready';
      try {
        if (!vlan) this.firewall.endpoint('add', rec, this.policiesNaming({ kind: 'namespace', name: spec.namespace }), () => this.firewallState());
      } catch (e) {
        this.disconnect(net.name, spec.namespace);
        throw e;
      }
      if (spec.netns === undefined) this.writeResolvConf(spec.namespace);
      publish('engine:connected', { network: net.name, namespace: spec.namespace, addresses: rec.addresses });
      this.dnsChanged({ endpointsOnly: true });
      return rec;
    } finally {
      target.close();
    }
  }

  /** Detaches a namespace from a network and releases its addresses. */
  disconnect(network: string, namespace: string): void {
    const e = this.store.endpoint(network, namespace);
    if (!e) {
      this.requireNetwork(network);
      throw new NsnetError('ENDPOINT_NOT_FOUND', `namespace ${namespace} is not connected to network ${network}`, { object: `${namespace}@${network}` });
    }
    const ports = this.store.ports({ namespace }).filter((p) => p.network === network);
    this.store.immediate(() => this.store.setEndpointState(network, namespace, 'removing'));
    crashPoint('disconnect:marked');
    if (ports.length > 0) this.removePorts(ports);
    const net = this.store.network(network);
    this.detach(e);
    this.store.immediate(() => this.store.deleteEndpoint(network, namespace));
    if (!isVlanDriver(net?.driver)) this.firewall.endpoint('delete', e, this.policiesNaming({ kind: 'namespace', name: namespace }), () => this.firewallState());
    if (e.declared.netns === undefined) this.writeResolvConf(namespace);
    publish('engine:disconnected', { network, namespace });
    this.dnsChanged({ endpointsOnly: true });
  }

  /** resolv.conf for a namespace: nsnet's DNS on its gateways, or removed with its last endpoint. */
  private writeResolvConf(namespace: string): void {
    const nets = this.store.endpoints({ namespace }).flatMap((e) => this.store.network(e.network) ?? []);
    if (nets.length === 0) removeNamespaceEtc(namespace);
    else writeNamespaceResolvConf(namespace, dnsResolvConf(nets));
  }

  /** Removes an endpoint's kernel side, whatever its network's driver. */
  private detach(e: EndpointRecord): void {
    const net = this.store.network(e.network);
    if (isVlanDriver(net?.driver)) detachVlanEndpoint(this.host, net, e, openIfPresent);
    else detachEndpoint(this.host, e);
  }

  /** The error for a policy that would cover a macvlan/ipvlan endpoint, whose traffic no host firewall sees. */
  private unenforceable(p: { name?: string }, net: NetworkRecord, namespace?: string): NsnetError {
    const parent = vlanConfig(net.declared).parent;
    const what = namespace ? `namespace ${namespace} on ${net.driver} network ${net.name}` : `${net.driver} network ${net.name}`;
    return new NsnetError('USAGE',
      `${p.name ? `policy ${p.name}` : 'the policy'} cannot be enforced for ${what}: traffic of macvlan/ipvlan endpoints leaves through ${parent} from inside their namespaces and never passes the host's firewall`,
      { object: net.name });
  }

  private rollbackEndpoint(e: EndpointRecord): void {
    this.detach(e);
    this.store.immediate(() => this.store.deleteEndpoint(e.network, e.namespace));
    publish('engine:rolled-back', { network: e.network, namespace: e.namespace, state: e.state });
  }

  // ---- firewall state --------------------------------------------------------------------

  /** Everything the firewall derives from, read from the store (for rebuilds and policy sets). */
  private firewallState(): FirewallState {
    // macvlan/ipvlan traffic never passes the host's hooks: only bridge networks are the firewall's.
    const networks = this.store.networks().filter((n) => !isVlanDriver(n.driver));
    const bridged = new Set(networks.map((n) => n.name));
    const endpoints = this.store.endpoints().filter((e) => bridged.has(e.network));
    return {
      networks, endpoints, ports: this.store.ports(), policies: this.store.policies(), cluster: this.clusterFilter(),
      resolve: (sel) => {
        const v4: string[] = [];
        const v6: string[] = [];
        const push = (a: string): void => { (a.includes(':') ? v6 : v4).push(a); };
        switch (sel.kind) {
          case 'outside': return 'outside';
          case 'cidr': push(sel.cidr); break;
          case 'network': for (const n of networks) if (n.name === sel.name) n.subnets.forEach((x) => push(x.cidr)); break;
          case 'namespace':
            for (const e of endpoints) if (e.namespace === sel.name && e.state === 'ready') e.addresses.forEach((a) => push(a.split('/')[0]!));
            break;
        }
        return { v4, v6 };
      },
    };
  }

  private policiesNaming(sel: Selector): PolicyRecord[] {
    if (sel.kind !== 'network' && sel.kind !== 'namespace') return [];
    // "outside" is every address no nsnet network holds: a network change moves it too.
    const same = (a: Selector): boolean => (a.kind === sel.kind && a.name === sel.name) || (sel.kind === 'network' && a.kind === 'outside');
    return this.store.policies().filter((p) => same(p.from) || same(p.to));
  }

  // ---- published ports -------------------------------------------------------------------

  /**
   * Publishes host ports to a namespace's endpoint (DNAT), reachable from outside, from the
   * host (its addresses and 127.0.0.1) and from containers (hairpin). Equivalent:
   * `docker run -p`. `network` picks the endpoint when the namespace has several.
   */
  publish(namespace: string, specs: readonly string[], o: { network?: string; from?: string[]; source?: string | null } = {}): PublishRecord[] {
    validateName('namespace', namespace);
    const parsed = specs.map(parsePortSpec);
    const from = (o.from ?? []).map((c) => {
      try {
        return c.includes('/') ? parseCidr(c).toString() : Cidr.containing(IpAddress.parse(c), c.includes(':') ? 128 : 32).toString();
      } catch (e) {
        throw new NsnetError('USAGE', `invalid --from "${c}": not an address or CIDR`, { object: c, cause: e });
      }
    });
    const eps = this.store.endpoints({ namespace }).filter((e) => e.state === 'ready');
    if (!this.store.namespace(namespace) && eps.length === 0) throw new NsnetError('NS_NOT_FOUND', `namespace ${namespace} not found`, { object: namespace });
    if (o.network !== undefined) this.publishable(o.network);
    const candidates = eps.filter((e) => {
      const n = this.store.network(e.network);
      return o.network ? e.network === o.network : !n?.internal && !isVlanDriver(n?.driver);
    });
    const ep = candidates[0];
    if (!ep && o.network === undefined && eps.length > 0) this.publishable(eps[0]!.network);
    if (!ep) {
      throw new NsnetError('ENDPOINT_NOT_FOUND', o.network
        ? `namespace ${namespace} is not connected to network ${o.network}`
        : `namespace ${namespace} has no endpoint on a non-internal network to publish ports to`, { object: namespace });
    }
    if (this.store.network(ep.network)?.internal) {
      throw new NsnetError('USAGE', `cannot publish ports on network ${ep.network}: it is internal (no path in from outside)`, { object: ep.network });
    }
    const target4 = ep.addresses.find((a) => !a.includes(':'))?.split('/')[0] ?? null;
    const target6 = ep.addresses.find((a) => a.includes(':'))?.split('/')[0] ?? null;
    const hostAddrs = new Set(listAddresses(this.host).map((a) => a.address));
    const rows: PublishRecord[] = [];
    for (const p of parsed) {
      if (p.hostIp !== null) {
        if (p.hostIp === '::1') {
          throw new NsnetError('USAGE', `cannot publish ${p.spec}: the kernel cannot DNAT IPv6 loopback (::1) traffic to another host; use 127.0.0.1 or a host address`, { object: p.spec });
        }
        if (!hostAddrs.has(p.hostIp) && !p.hostIp.startsWith('127.')) {
          throw new NsnetError('USAGE', `cannot publish ${p.spec}: the host has no address ${p.hostIp}`, { object: p.spec });
        }
        if (p.hostIp.includes(':') ? !target6 : !target4) {
          throw new NsnetError('USAGE', `cannot publish ${p.spec}: ${namespace} has no IPv${p.hostIp.includes(':') ? 6 : 4} address on ${ep.network}`, { object: p.spec });
        }
      }
      for (const m of expandPortSpec(p)) rows.push({ ...m, namespace, network: ep.network, target4, target6, from, source: o.source ?? null });
    }
    // Conflicts: with other nsnet mappings (same protocol and port, overlapping host
    // address), within this request, and with sockets already listening on the host.
    const seen = new Map<string, PortMapping>();
    const hostSockets = new HostSockets(); // /proc/net read at most once per publish, only on a conflict
    const overlaps = (a: string | null, b: string | null): boolean => a === null || b === null || a === b;
    for (const r of rows) {
      for (const other of this.store.portsOn(r.proto, r.hostPort)) {
        if (overlaps(other.hostIp, r.hostIp)) {
          throw new NsnetError('PORT_IN_USE', `host port ${r.hostPort}/${r.proto} is already published by nsnet for ${other.namespace} (${other.spec})`, { object: r.spec });
        }
      }
      const k = `${r.proto}/${r.hostPort}`;
      const dup = seen.get(k);
      if (dup && overlaps(dup.hostIp, r.hostIp)) {
        throw new NsnetError('PORT_IN_USE', `host port ${r.hostPort}/${r.proto} is requested twice (${dup.spec}, ${r.spec})`, { object: r.spec });
      }
      seen.set(k, r);
      if (!portIsFree(r.proto, r.hostPort, r.hostIp)) {
        const holder = findPortHolder(r.proto, r.hostPort, r.hostIp, hostSockets) ?? 'a socket nsnet cannot attribute';
        throw new NsnetError('PORT_IN_USE', `host port ${r.hostPort}/${r.proto} is already in use on the host by ${holder}`, { object: r.spec });
      }
    }
    this.store.immediate(() => {
      for (const r of rows) {
        if (this.store.portsOn(r.proto, r.hostPort).some((x) => overlaps(x.hostIp, r.hostIp))) {
          throw new NsnetError('PORT_IN_USE', `host port ${r.hostPort}/${r.proto} was just published by another nsnet process`, { object: r.spec });
        }
        this.store.insertPort(r);
      }
    });
    try {
      this.firewall.ports('add', rows, () => this.firewallState());
    } catch (e) {
      this.store.immediate(() => rows.forEach((r) => this.store.deletePort(r)));
      throw e;
    }
    publish('engine:published', { namespace, specs: parsed.map((p) => p.spec) });
    return rows;
  }

  /**
   * Throws unless ports can be published to endpoints of `network`: on macvlan/ipvlan there
   * is no NAT (the endpoints have their own LAN addresses; the host is not on their path).
   */
  publishable(network: string): void {
    const n = this.requireNetwork(network);
    if (isVlanDriver(n.driver)) {
      throw new NsnetError('USAGE',
        `cannot publish ports on ${n.driver} network ${n.name}: it has no NAT — its endpoints have their own addresses on the LAN of ${vlanConfig(n.declared).parent}; reach them there directly`,
        { object: n.name });
    }
  }

  /** Removes published ports by spec (as `ports` shows it), and clears their UDP conntrack entries. */
  unpublish(namespace: string, spec: string): PublishRecord[] {
    const want = parsePortSpec(spec).spec;
    const rows = this.store.portsBySpec(namespace, want);
    if (rows.length === 0) {
      throw new NsnetError('PORT_NOT_FOUND', `namespace ${namespace} has no published port ${want}`, { object: want });
    }
    this.removePorts(rows);
    return rows;
  }

  private removePorts(rows: readonly PublishRecord[]): void {
    this.store.immediate(() => rows.forEach((r) => this.store.deletePort(r)));
    this.firewall.ports('delete', rows, () => this.firewallState());
    // Without this, a UDP flow that keeps sending would stay DNATed to the old target.
    for (const r of rows) {
      if (r.proto !== 'udp') continue;
      for (const target of [r.target4, r.target6]) if (target) clearUdpConntrack(this.host, { hostPort: r.hostPort, target, containerPort: r.containerPort });
    }
  }

  listPorts(namespace?: string): PublishRecord[] {
    return this.store.ports(namespace === undefined ? {} : { namespace });
  }

  // ---- policies --------------------------------------------------------------------------

  /**
   * Parses a selector: `outside`, a CIDR or address, or the name of a network or a
   * namespace (`network:NAME` / `ns:NAME` when a name is both).
   */
  parseSelector(text: string): Selector {
    const t = text.trim();
    if (t === 'outside') return { kind: 'outside' };
    const m = /^(network|net|namespace|ns|cidr):(.+)$/.exec(t);
    const kind = m?.[1];
    const value = m?.[2] ?? t;
    if (kind === 'cidr' || (!kind && /^[0-9a-fA-F:.]+(\/\d+)?$/.test(value) && /[.:]/.test(value))) {
      try {
        const c = value.includes('/') ? parseCidr(value) : Cidr.containing(IpAddress.parse(value), value.includes(':') ? 128 : 32);
        return { kind: 'cidr', cidr: c.toString() };
      } catch (e) {
        throw new NsnetError('USAGE', `invalid selector "${t}": ${(e as Error).message}`, { object: t });
      }
    }
    const isNet = this.store.network(value) !== undefined;
    const isNs = this.store.namespace(value) !== undefined;
    if (kind === 'network' || kind === 'net') {
      if (!isNet) throw new NsnetError('NETWORK_NOT_FOUND', `selector "${t}": network ${value} not found`, { object: t });
      return { kind: 'network', name: value };
    }
    if (kind === 'namespace' || kind === 'ns') {
      if (!isNs) throw new NsnetError('NS_NOT_FOUND', `selector "${t}": namespace ${value} not found`, { object: t });
      return { kind: 'namespace', name: value };
    }
    if (isNet && isNs) throw new NsnetError('USAGE', `selector "${t}" is both a network and a namespace: write network:${t} or ns:${t}`, { object: t });
    if (isNet) return { kind: 'network', name: value };
    if (isNs) return { kind: 'namespace', name: value };
    throw new NsnetError('USAGE', `selector "${t}" names nothing: not a network, a namespace, a CIDR or "outside"`, { object: t });
  }

  /** Adds an allow/deny policy between selectors; stateful (replies to allowed traffic pass). */
  addPolicy(spec: PolicySpec, o: OpOptions = {}): PolicyRecord {
    if (spec.action !== 'allow' && spec.action !== 'deny') {
      throw new NsnetError('USAGE', `invalid policy action "${String(spec.action)}": use allow or deny`);
    }
    const from = this.parseSelector(spec.from);
    const to = this.parseSelector(spec.to);
    if (from.kind === 'outside' && to.kind === 'outside') {
      throw new NsnetError('USAGE', 'a policy from outside to outside names nothing nsnet forwards');
    }
    for (const sel of [from, to]) {
      const nets = sel.kind === 'network' ? [this.store.network(sel.name)]
        : sel.kind === 'namespace' ? this.store.endpoints({ namespace: sel.name }).map((e) => this.store.network(e.network)) : [];
      const vlanNet = nets.find((n) => isVlanDriver(n?.driver));
      if (vlanNet) throw this.unenforceable(spec, vlanNet, sel.kind === 'namespace' ? sel.name : undefined);
    }
    const ports = (spec.ports ?? []).map(parsePortFilter);
    const priority = spec.priority ?? 100;
    if (!Number.isInteger(priority) || priority < 0 || priority > 100000) {
      throw new NsnetError('USAGE', `invalid priority ${String(spec.priority)}: use an integer 0–100000`);
    }
    if (spec.name !== undefined && !NAME_RE.test(spec.name)) {
      throw new NsnetError('NAME_INVALID', `invalid policy name "${spec.name}"`, { object: spec.name });
    }
    let rec: PolicyRecord | undefined;
    this.store.immediate(() => {
      const name = spec.name ?? `p${this.store.nextPolicyId()}`;
      if (this.store.policy(name)) throw new NsnetError('POLICY_EXISTS', `policy ${name} already exists`, { object: name });
      const draft = { name, action: spec.action, from, to, ports, priority, source: o.source ?? null, declared: spec, createdAt: now() };
      rec = { ...draft, id: this.store.insertPolicy(draft) };
    });
    try {
      this.firewall.policies(() => this.firewallState());
    } catch (e) {
      this.store.immediate(() => this.store.deletePolicy(rec!.name));
      throw e;
    }
    publish('engine:policy-added', { name: rec!.name });
    return rec!;
  }

  removePolicy(name: string): void {
    const rec = this.store.policy(name);
    if (!rec) throw new NsnetError('POLICY_NOT_FOUND', `policy ${name} not found`, { object: name });
    this.store.immediate(() => this.store.deletePolicy(name));
    this.firewall.policies(() => this.firewallState());
    publish('engine:policy-removed', { name });
  }

  listPolicies(): PolicyRecord[] {
    return this.store.policies();
  }

  // ---- overview --------------------------------------------------------------------------

  status(): { networks: Array<NetworkRecord & { endpoints: number }>; namespaces: NamespaceStatus[]; endpoints: EndpointRecord[] } {
    return { networks: this.listNetworks(), namespaces: this.listNamespaces(), endpoints: this.store.endpoints() };
  }

  // ---- declarative -----------------------------------------------------------------------

  private currentState(filter: (source: string | null) => boolean): CurrentState {
    return {
      networks: this.store.networks().filter((n) => filter(n.source)),
      namespaces: this.store.namespaces().filter((n) => filter(n.source)),
      endpoints: this.store.endpoints().filter((e) => filter(e.source)),
      ports: this.store.ports().filter((p) => filter(p.source)),
      policies: this.store.policies().filter((p) => filter(p.source)),
    };
  }

  plan(t: Topology): ApplyResult {
    const current = this.currentState((s) => s === t.source);
    const changes = planTopology(t, current, this.currentState((s) => s !== t.source));
    return { changes, descriptions: describePlan(changes, current) };
  }

  apply(t: Topology, onChange?: (c: Change, i: number, total: number) => void): ApplyResult {
    const result = this.plan(t);
    this.execute(result.changes, t.source, onChange);
    return result;
  }

  down(t: Topology, onChange?: (c: Change, i: number, total: number) => void): ApplyResult {
    const current = this.currentState((s) => s === t.source);
    const changes = downTopology(t, current, this.currentState((s) => s !== t.source));
    const descriptions = describePlan(changes, current);
    this.execute(changes, t.source, onChange);
    return { changes, descriptions };
  }

  /**
   * Tells the DNS service about a change (src/dns/control.ts). Inside a batch (`execute`)
   * only until the service is running or starting — without waiting for it, so it boots
   * while the rest of the batch is made — and once, waiting, after the batch.
   */
  private dnsChanged(o: { endpointsOnly?: boolean } = {}): void {
    const b = this.batch;
    if (!b) { dnsAfterChange(this.store, o); return; }
    b.changed = true;
    if (b.serviceSeen) return;
    const r = dnsAfterChange(this.store, { ...o, noWait: true });
    if (r.action === 'started') b.startedPid = r.pid;
    if (r.pid !== undefined || r.action === 'held') b.serviceSeen = true;
  }
  private batch: { changed: boolean; serviceSeen: boolean; startedPid?: number } | undefined;

  private execute(changes: readonly Change[], source: string, onChange?: (c: Change, i: number, total: number) => void): void {
    const outer = this.batch;
    const batch = (this.batch ??= { changed: false, serviceSeen: false });
    try {
      this.executeChanges(changes, source, onChange);
    } finally {
      if (!outer) {
        this.batch = undefined;
        if (batch.startedPid !== undefined) {
          try { waitForDnsService(this.store.dir, batch.startedPid); } catch (e) { publish('dns:control', { action: 'error', error: (e as Error).message, ms: 0 }); }
        }
        if (batch.changed) dnsAfterChange(this.store);
      }
    }
  }

  private executeChanges(changes: readonly Change[], source: string, onChange?: (c: Change, i: number, total: number) => void): void {
    changes.forEach((c, i) => {
      onChange?.(c, i, changes.length);
      switch (c.kind) {
        case 'create-network': this.createNetwork(c.spec, { source }); break;
        case 'remove-network': this.removeNetwork(c.name, { force: true }); break;
        case 'create-namespace': this.addNamespace(c.name, { source }); break;
        case 'remove-namespace': this.removeNamespace(c.name); break;
        case 'connect': this.connect(c.spec, { source }); break;
        case 'disconnect': this.disconnect(c.network, c.namespace); break;
        case 'publish': this.publish(c.namespace, c.specs, { network: c.network, from: c.from, source }); break;
        case 'unpublish': this.unpublish(c.namespace, c.spec); break;
        case 'add-policy': this.addPolicy(c.spec, { source }); break;
        case 'remove-policy': this.removePolicy(c.name); break;
      }
    });
  }

  // ---- whole-system ----------------------------------------------------------------------

  /**
   * Removes everything nsnet created — endpoints, networks, namespaces it made, its
   * nftables table, the per-namespace resolv.conf files — restores the sysctls it changed,
   * and nothing else.
   */
  reset(): { endpoints: number; networks: number; namespaces: number } {
    const counts = { endpoints: 0, networks: 0, namespaces: 0 };
    for (const e of this.store.endpoints()) { this.detach(e); counts.endpoints++; }
    for (const n of this.store.networks()) {
      if (isVlanDriver(n.driver)) deleteVlanNetwork(this.host, n);
      else deleteBridgeNetwork(this.host, n);
      counts.networks++;
    }
    for (const n of this.store.namespaces()) {
      if (n.managed) { deleteNetns(n.name); counts.namespaces++; }
      removeNamespaceEtc(n.name);
    }
    this.firewall.deleteTables();
    for (const key of ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']) {
      const orig = this.store.meta(`sysctl:${key}`);
      if (orig !== undefined) writeSysctl(this.host, key, orig);
    }
    this.store.immediate(() => {
      this.store.db.exec('DELETE FROM endpoints; DELETE FROM allocations; DELETE FROM cursors; DELETE FROM ports; DELETE FROM policies; DELETE FROM networks; DELETE FROM namespaces; DELETE FROM meta WHERE key LIKE \'sysctl:%\' OR key LIKE \'cluster:%\';');
    });
    this.leakedHostVeths().forEach((l) => detachEndpoint(this.host, { hostIfname: l }));
    publish('engine:reset', counts);
    this.dnsChanged();
    return counts;
  }

  /** Host veths with nsnet's prefix that no endpoint owns (left by a crash). */
  private leakedHostVeths(): string[] {
    const owned = new Set(this.store.endpoints().map((e) => e.hostIfname));
    return listLinks(this.host)
      .filter((l) => l.kind === 'veth' && l.name.startsWith(HOST_VETH_PREFIX) && /^nsv[0-9a-f]{9}$/.test(l.name) && !owned.has(l.name))
      .map((l) => l.name);
  }

  /**
   * Reconciles the kernel with the store after a crash: rolls back endpoints caught half
   * way, deletes leaked host veths, re-ensures every network's bridge, addresses and
   * forwarding, and rebuilds nsnet's firewall table from the store.
   */
  repair(): { rolledBack: string[]; leaked: string[]; networks: string[] } {
    const rolledBack: string[] = [];
    for (const e of this.store.endpoints()) {
      if (e.state !== 'ready') { this.rollbackEndpoint(e); rolledBack.push(`${e.namespace}@${e.network}`); continue; }
      const net = this.store.network(e.network);
      if (isVlanDriver(net?.driver) ? !vlanEndpointPresent(net!, e, openIfPresent) : !getLink(this.host, e.hostIfname)) {
        // The namespace vanished (deleted by hand): its veth went with it.
        this.store.immediate(() => this.store.deleteEndpoint(e.network, e.namespace));
        rolledBack.push(`${e.namespace}@${e.network}`);
      }
    }
    const leaked = this.leakedHostVeths();
    for (const l of leaked) detachEndpoint(this.host, { hostIfname: l });
    // Allocations without an endpoint.
    this.store.immediate(() => {
      this.store.db.exec('DELETE FROM allocations WHERE NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.network = allocations.network AND e.namespace = allocations.namespace)');
    });
    const networks = this.store.networks();
    for (const n of networks) {
      if (isVlanDriver(n.driver)) { ensureVlanNetwork(this.host, n, this.store.endpoints({ network: n.name })); continue; }
      ensureBridgeNetwork(this.host, n);
      this.enableForwarding(n);
    }
    if (networks.some((n) => !isVlanDriver(n.driver)) || this.firewall.tablesExist()) this.firewall.rebuild(this.firewallState());
    this.dnsChanged();
    return { rolledBack, leaked, networks: networks.map((n) => n.name) };
  }
}

/**
 * The addresses in use on one network, looked up in the store as the allocator probes them:
 * with the cursor the first probe is almost always free, so an allocation costs one indexed
 * lookup instead of loading every allocated address of the network.
 */
class StoreAddressSet extends AddressSet {
  constructor(private readonly store: Store, private readonly network: string) {
    super();
  }
  override has(address: IpAddress): boolean {
    return super.has(address) || this.store.allocationOwner(this.network, address.toString()) !== undefined;
  }
  override hasValue(family: 4 | 6, value: bigint): boolean {
    return super.hasValue(family, value) || this.store.allocationOwner(this.network, IpAddress.fromBigInt(family, value).toString()) !== undefined;
  }
}

/** An endpoint's namespace: the file a CNI runtime gave (`netns`), else the named one. */
function openEndpointNetns(e: { namespace: string; netns?: string | undefined }): Netns {
  return e.netns !== undefined ? Netns.openPath(e.netns) : Netns.open(e.namespace);
}

/** `open()`'s namespace, or undefined when it is gone. */
function ifPresent(open: () => Netns): Netns | undefined {
  try {
    return open();
  } catch (e) {
    if (isNsnetError(e, 'NS_NOT_FOUND')) return undefined;
    throw e;
  }
}

/** Opens a named namespace, or undefined when it is gone. */
function openIfPresent(name: string): Netns | undefined {
  return ifPresent(() => Netns.open(name));
}

export function isMissingNamespace(e: unknown): boolean {
  return isNsnetError(e, 'NS_NOT_FOUND');
}

