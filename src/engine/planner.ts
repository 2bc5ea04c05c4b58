/**
 * The declarative planner: a topology file against what nsnet holds → the changes that make
 * the host match the file. Pure (no I/O): the engine reads the store, calls `planTopology`,
 * shows the plan (`describeChange`/`describePlan`) or executes it in order.
 *
 * Ownership. Every record carries the `source` that created it: a topology file's absolute
 * path, or null when made imperatively. A file only ever changes or removes records whose
 * source is that file; declaring a name that someone else owns is an error naming the owner,
 * never a silent takeover (a later `down` would otherwise delete what the user made by hand).
 *
 * Comparison. Only what the user declared is compared: a record's `declared` spec with the
 * file's spec, after defaults are applied and lists canonicalised and sorted. So a subnet
 * that was picked from the pool is not a difference as long as the file still leaves it to
 * the pool, and `masquerade: true` equals an omitted `masquerade`. A network that differs is
 * recreated; an endpoint that differs is disconnected and connected again (a veth cannot be
 * re-addressed under a running container without it noticing anyway).
 *
 * Published ports are compared by (namespace, normalised spec) — one spec may be several
 * records (a range), grouped by spec — and then by network and sources; a port whose endpoint
 * is reconnected is published again, since its target address goes with the endpoint.
 * Policies are compared by name, then by their declared spec (defaults applied, ports
 * sorted); one that differs is removed and added again. The firewall evaluates policies of
 * equal priority in creation order, which the planner keeps equal to the file's order: when
 * a policy is (re-)added, the file's later policies of the same priority are re-added too.
 *
 * Order of the plan, so that every step finds what it needs and leaves nothing in use:
 *   1. policy removals (no longer declared, or changed) — policies name networks and
 *      namespaces, so they go before anything else does;
 *   2. unpublishes (no longer declared, changed, or on an endpoint that step 3 disconnects);
 *   3. disconnects — endpoints no longer declared, changed, not `ready` (left half-made by a
 *      crash), or on a network or namespace that goes away in step 4 or 5;
 *   4. network removals (no longer declared, or recreated);
 *   5. namespace removals (no longer declared);
 *   6. namespace creations, 7. network creations, 8. connects, 9. publishes (they need the
 *      endpoint), 10. policy additions (they need everything they name).
 * Within a step, removals follow the order of the records, creations the order of the file.
 */
import { NsnetError } from '../errors.js';
import { IpAddress } from '../ipam/address.js';
import { Cidr } from '../ipam/cidr.js';
import { parsePortSpec, type PortSpec } from './ports.js';
import type {
  Change, CurrentState, EndpointRecord, EndpointSpec, NamespaceRecord, NetworkRecord, NetworkSpec, PolicyRecord, PolicySpec,
  PublishRecord, Topology,
} from './types.js';

const EMPTY: CurrentState = { networks: [], namespaces: [], endpoints: [], ports: [], policies: [] };

type AnyRecord = NetworkRecord | NamespaceRecord | EndpointRecord | PublishRecord | PolicyRecord;

/**
 * The changes that make the host match `desired`. `current` holds the records this file
 * created (source === desired.source); `others` holds everything else, so that a name owned
 * by someone else is reported instead of taken over. A record in the wrong argument is
 * sorted by its source, so passing the whole store as `current` is also correct.
 *
 * Throws TOPOLOGY_INVALID when the plan would take over or remove what this file did not
 * create (a policy name, a published port on an endpoint it reconnects, a policy naming a
 * network it removes included), or when a pinned subnet, bridge name, static address or
 * host port is already used by something that stays.
 */
export function planTopology(desired: Topology, current: CurrentState, others: CurrentState = EMPTY): Change[] {
  const { mine, foreign } = partition(desired.source, current, others);

  checkNotOwnedElsewhere('network', desired.networks.map((n) => n.name), foreign.networks, (r) => r.name);
  checkNotOwnedElsewhere('namespace', desired.namespaces.map((n) => n.name), foreign.namespaces, (r) => r.name);
  checkNotOwnedElsewhere('endpoint', desired.endpoints.map(endpointKey), foreign.endpoints, endpointKey);
  checkNotOwnedElsewhere('policy', desired.policies.map(policyName), foreign.policies, (r) => r.name);
  checkPortClashes(desired.publish, foreign.ports);

  const wantedNetworks = new Map(desired.networks.map((n) => [n.name, n]));
  const wantedNamespaces = new Set(desired.namespaces.map((n) => n.name));
  const wantedEndpoints = new Map(desired.endpoints.map((e) => [endpointKey(e), e]));

  // Why each network or namespace goes away (for error messages).
  const removedNetworks = new Map<string, string>();
  for (const r of mine.networks) {
    const spec = wantedNetworks.get(r.name);
    if (!spec) {
      removedNetworks.set(r.name, 'no longer declared');
    } else {
      const diff = networkDiff(r.declared, spec);
      if (diff.length > 0) removedNetworks.set(r.name, `recreated: ${diff.join(', ')}`);
    }
  }
  const removedNamespaces = new Map<string, string>();
  for (const r of mine.namespaces) {
    if (!wantedNamespaces.has(r.name)) removedNamespaces.set(r.name, 'no longer declared');
  }
  checkNoForeignEndpoints(removedNetworks, removedNamespaces, foreign.endpoints);

  const myNetworks = new Set(mine.networks.map((n) => n.name));
  const myNamespaces = new Set(mine.namespaces.map((n) => n.name));
  const kept = (e: EndpointRecord): boolean => {
    const want = wantedEndpoints.get(endpointKey(e));
    return (
      want !== undefined &&
      e.state === 'ready' &&
      myNetworks.has(e.network) && !removedNetworks.has(e.network) &&
      myNamespaces.has(e.namespace) && !removedNamespaces.has(e.namespace) &&
      endpointDiff(e, want).length === 0
    );
  };
  const disconnects = mine.endpoints.filter((e) => !kept(e));
  const keptEndpoints = mine.endpoints.filter(kept);
  const keptKeys = new Set(keptEndpoints.map(endpointKey));
  const connects = desired.endpoints.filter((e) => !keptKeys.has(endpointKey(e)));
  const createdNetworks = desired.networks.filter((n) => !myNetworks.has(n.name) || removedNetworks.has(n.name));
  const createdNamespaces = desired.namespaces.filter((n) => !myNamespaces.has(n.name));

  // What stays on the host while the plan runs, for the clash checks.
  const stayingNetworks = [...foreign.networks, ...mine.networks.filter((n) => !removedNetworks.has(n.name))];
  const stayingEndpoints = [...foreign.endpoints, ...keptEndpoints];
  checkNetworkClashes(createdNetworks, stayingNetworks);
  checkAddressClashes(connects, stayingEndpoints);
  const gone = new Map([...removedNetworks].filter(([n]) => !wantedNetworks.has(n)));
  checkForeignPortsAndPolicies(gone, removedNamespaces, disconnects, foreign);

  // Published ports: kept when declared alike and their endpoint is kept.
  const wantedPorts = new Map(desiredPorts(desired).map((p) => [portKey(p), p]));
  const keptPort = (g: PortGroup): boolean => {
    const want = wantedPorts.get(portKey(g));
    return (
      want !== undefined &&
      (want.network === undefined || want.network === g.network) &&
      sameSources(want.from, g.from) &&
      keptKeys.has(endpointKey(g)) &&
      g.complete
    );
  };
  const myPorts = groupPorts(mine.ports);
  const keptPortKeys = new Set(myPorts.filter(keptPort).map(portKey));
  const publishes = desired.publish.flatMap((entry): Change[] => {
    const specs = entry.specs.map(normalSpec).filter((spec) => !keptPortKeys.has(portKey({ namespace: entry.namespace, spec })));
    return specs.length > 0 ? [publishChange(entry.namespace, specs, entry.network, entry.from)] : [];
  });

  // Policies: kept when declared alike and still in the file's order within their priority.
  const myPolicies = new Map(mine.policies.map((r) => [r.name, r]));
  const keptPolicies = new Set<string>();
  const lastId = new Map<number, number>();
  const reordered = new Set<number>();
  for (const p of desired.policies) {
    const priority = p.priority ?? DEFAULT_PRIORITY;
    const r = myPolicies.get(policyName(p));
    if (r && policyDiff(r.declared, p).length === 0 && !reordered.has(priority) && r.id > (lastId.get(priority) ?? -Infinity)) {
      keptPolicies.add(r.name);
      lastId.set(priority, r.id);
    } else {
      reordered.add(priority);
    }
  }

  return [
    ...mine.policies.filter((r) => !keptPolicies.has(r.name)).map((r): Change => ({ kind: 'remove-policy', name: r.name })),
    ...myPorts.filter((g) => !keptPortKeys.has(portKey(g))).map((g): Change => ({ kind: 'unpublish', namespace: g.namespace, spec: g.spec })),
    ...disconnects.map((e): Change => ({ kind: 'disconnect', network: e.network, namespace: e.namespace })),
    ...mine.networks.filter((n) => removedNetworks.has(n.name)).map((n): Change => ({ kind: 'remove-network', name: n.name })),
    ...mine.namespaces.filter((n) => removedNamespaces.has(n.name)).map((n): Change => ({ kind: 'remove-namespace', name: n.name })),
    ...createdNamespaces.map((n): Change => ({ kind: 'create-namespace', name: n.name })),
    ...createdNetworks.map((spec): Change => ({ kind: 'create-network', spec })),
    ...connects.map((spec): Change => ({ kind: 'connect', spec })),
    ...publishes,
    ...desired.policies.filter((p) => !keptPolicies.has(policyName(p))).map((spec): Change => ({ kind: 'add-policy', spec })),
  ];
}

/**
 * The changes that remove what this file created: every policy, published port, endpoint,
 * network and namespace whose source is the file — what it declares now and whatever an
 * earlier version of it declared and it no longer does, so nothing of the file is left
 * behind. Throws TOPOLOGY_INVALID when something someone else created (in `others`) uses one
 * of them — an endpoint attached, a port published on an endpoint, a policy naming a network
 * or namespace: removing it would break what this file does not own.
 */
export function downTopology(desired: Topology, current: CurrentState, others: CurrentState = EMPTY): Change[] {
  const { mine, foreign } = partition(desired.source, current, others);
  const why = 'the file is taken down';
  const networks = new Map(mine.networks.map((n) => [n.name, why]));
  const namespaces = new Map(mine.namespaces.map((n) => [n.name, why]));
  checkNoForeignEndpoints(networks, namespaces, foreign.endpoints);
  checkForeignPortsAndPolicies(networks, namespaces, mine.endpoints, foreign);
  return [
    ...mine.policies.map((r): Change => ({ kind: 'remove-policy', name: r.name })),
    ...groupPorts(mine.ports).map((g): Change => ({ kind: 'unpublish', namespace: g.namespace, spec: g.spec })),
    ...mine.endpoints.map((e): Change => ({ kind: 'disconnect', network: e.network, namespace: e.namespace })),
    ...mine.networks.map((n): Change => ({ kind: 'remove-network', name: n.name })),
    ...mine.namespaces.map((n): Change => ({ kind: 'remove-namespace', name: n.name })),
  ];
}

// ---------------------------------------------------------------------------------------------
// Ownership and clashes

function partition(source: string, a: CurrentState, b: CurrentState): { mine: CurrentState; foreign: CurrentState } {
  const split = <T extends AnyRecord>(records: readonly T[]): [T[], T[]] => [
    records.filter((r) => r.source === source),
    records.filter((r) => r.source !== source),
  ];
  const [myNetworks, otherNetworks] = split([...a.networks, ...b.networks]);
  const [myNamespaces, otherNamespaces] = split([...a.namespaces, ...b.namespaces]);
  const [myEndpoints, otherEndpoints] = split([...a.endpoints, ...b.endpoints]);
  const [myPorts, otherPorts] = split([...(a.ports ?? []), ...(b.ports ?? [])]);
  const [myPolicies, otherPolicies] = split([...(a.policies ?? []), ...(b.policies ?? [])]);
  return {
    mine: { networks: myNetworks, namespaces: myNamespaces, endpoints: myEndpoints, ports: myPorts, policies: myPolicies },
    foreign: { networks: otherNetworks, namespaces: otherNamespaces, endpoints: otherEndpoints, ports: otherPorts, policies: otherPolicies },
  };
}

function owner(r: AnyRecord): string {
  return r.source === null ? 'created imperatively' : `created by ${r.source}`;
}

function invalid(message: string, object: string): NsnetError {
  return new NsnetError('TOPOLOGY_INVALID', message, { object });
}

function checkNotOwnedElsewhere<R extends AnyRecord>(
  what: string,
  declared: readonly string[],
  foreign: readonly R[],
  key: (r: R) => string,
): void {
  const byKey = new Map(foreign.map((r) => [key(r), r]));
  for (const name of declared) {
    const r = byKey.get(name);
    if (r) throw invalid(`${what} ${name} exists and was not created by this file (${owner(r)})`, name);
  }
}

/** Refuses to remove a network or namespace that an endpoint this file did not create uses. */
function checkNoForeignEndpoints(
  networks: ReadonlyMap<string, string>,
  namespaces: ReadonlyMap<string, string>,
  foreign: readonly EndpointRecord[],
): void {
  for (const e of foreign) {
    const [what, name, why] = networks.has(e.network)
      ? ['network', e.network, networks.get(e.network)]
      : namespaces.has(e.namespace)
        ? ['namespace', e.namespace, namespaces.get(e.namespace)]
        : [];
    if (what === undefined) continue;
    throw invalid(
      `${what} ${name} would be removed (${why}), but endpoint ${endpointKey(e)} was not created by this file ` +
        `(${owner(e)}): disconnect it first`,
      name!,
    );
  }
}

/** Pinned subnets and bridge names of new networks must not be in use by networks that stay. */
function checkNetworkClashes(created: readonly NetworkSpec[], staying: readonly NetworkRecord[]): void {
  for (const spec of created) {
    for (const text of spec.subnets ?? []) {
      const cidr = Cidr.parse(text);
      for (const n of staying) {
        const clash = n.subnets.find((s) => Cidr.parse(s.cidr).overlaps(cidr));
        if (clash) {
          throw invalid(`subnet ${text} of network ${spec.name} overlaps ${clash.cidr} of network ${n.name} (${owner(n)})`, spec.name);
        }
      }
    }
    const bridge = spec.bridge;
    const user = bridge === undefined ? undefined : staying.find((n) => n.bridge === bridge);
    if (user) throw invalid(`bridge ${bridge} of network ${spec.name} is the bridge of network ${user.name} (${owner(user)})`, spec.name);
  }
}

/** Static addresses of new endpoints must not be held by endpoints that stay on the same network. */
function checkAddressClashes(connects: readonly EndpointSpec[], staying: readonly EndpointRecord[]): void {
  for (const spec of connects) {
    for (const text of spec.ips ?? []) {
      const ip = IpAddress.parse(text);
      const holder = staying.find(
        (e) => e.network === spec.network && e.addresses.some((a) => IpAddress.parse(a.slice(0, a.indexOf('/'))).equals(ip)),
      );
      if (holder) {
        throw invalid(
          `${text} for ${endpointKey(spec)} is the address of endpoint ${endpointKey(holder)} (${owner(holder)})`,
          endpointKey(spec),
        );
      }
    }
  }
}

/** A foreign port's host ports must not overlap a port the file publishes. */
function checkPortClashes(publish: Topology['publish'], foreign: readonly PublishRecord[]): void {
  for (const entry of publish) {
    for (const text of entry.specs) {
      const p = tryParse(() => parsePortSpec(text));
      if (!p) throw invalid(`invalid port spec ${text} for namespace ${entry.namespace}`, text);
      const holder = foreign.find((r) =>
        r.proto === p.proto && r.hostPort >= p.hostPort && r.hostPort <= p.hostPortEnd &&
        (r.hostIp === null || p.hostIp === null || r.hostIp === p.hostIp));
      if (holder) {
        throw invalid(
          `host port ${holder.hostPort}/${holder.proto} of ${p.spec} for namespace ${entry.namespace} is published for namespace ` +
            `${holder.namespace} (${holder.spec}, ${owner(holder)})`,
          p.spec,
        );
      }
    }
  }
}

/**
 * Refuses to remove what a foreign port or policy depends on: the engine drops the ports of
 * an endpoint it disconnects, and a policy naming a network or namespace that is gone for
 * good would match nothing (a network that is recreated keeps its policies).
 */
function checkForeignPortsAndPolicies(
  networks: ReadonlyMap<string, string>,
  namespaces: ReadonlyMap<string, string>,
  disconnected: readonly EndpointRecord[],
  foreign: CurrentState,
): void {
  const keys = new Set(disconnected.map(endpointKey));
  const port = foreign.ports.find((r) => keys.has(endpointKey(r)));
  if (port) {
    throw invalid(
      `endpoint ${endpointKey(port)} would be disconnected, but port ${port.spec} published on it was not created by this file ` +
        `(${owner(port)}): unpublish it first`,
      endpointKey(port),
    );
  }
  for (const p of foreign.policies) {
    for (const sel of [p.from, p.to]) {
      if (sel.kind !== 'network' && sel.kind !== 'namespace') continue;
      const why = (sel.kind === 'network' ? networks : namespaces).get(sel.name);
      if (why === undefined) continue;
      const what = sel.kind;
      throw invalid(
        `${what} ${sel.name} would be removed (${why}), but policy ${p.name} names it and was not created by this file ` +
          `(${owner(p)}): remove the policy first`,
        sel.name,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Published ports and policies

/** The firewall's priority for a policy that declares none (types.ts: PolicySpec.priority). */
const DEFAULT_PRIORITY = 100;

function policyName(p: PolicySpec): string {
  if (p.name === undefined) throw invalid('a policy in a topology needs a name (parseTopology gives every policy one)', '');
  return p.name;
}

/** The stored records of one published spec (a range is one record per host port). */
interface PortGroup {
  namespace: string;
  network: string;
  spec: string;
  from: string[];
  rows: PublishRecord[];
  /** Every host port of the spec has its record (a publish is all or nothing; a crash is not). */
  complete: boolean;
}

/** Two specs claim a common host port: same protocol, overlapping ranges and host addresses. */
export function portsOverlap(a: PortSpec, b: PortSpec): boolean {
  return (
    a.proto === b.proto &&
    a.hostPort <= b.hostPortEnd && b.hostPort <= a.hostPortEnd &&
    (a.hostIp === null || b.hostIp === null || a.hostIp === b.hostIp)
  );
}

function portKey(p: { namespace: string; spec: string }): string {
  return `${p.namespace}\0${p.spec}`;
}

function normalSpec(text: string): string {
  return tryParse(() => parsePortSpec(text).spec) ?? text;
}

function groupPorts(rows: readonly PublishRecord[]): PortGroup[] {
  const groups = new Map<string, PortGroup>();
  for (const r of rows) {
    const key = portKey(r);
    const g = groups.get(key);
    if (g) g.rows.push(r);
    else groups.set(key, { namespace: r.namespace, network: r.network, spec: r.spec, from: r.from, rows: [r], complete: false });
  }
  for (const g of groups.values()) {
    const p = tryParse(() => parsePortSpec(g.spec));
    g.complete = p !== undefined && g.rows.length === p.hostPortEnd - p.hostPort + 1 && g.rows.every((r) => r.network === g.network);
  }
  return [...groups.values()];
}

/** One row per declared spec, normalised. */
function desiredPorts(t: Topology): Array<{ namespace: string; spec: string; network?: string; from?: string[] }> {
  return t.publish.flatMap((e) => e.specs.map((spec) => ({ namespace: e.namespace, spec: normalSpec(spec), network: e.network, from: e.from })));
}

function sameSources(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return canonicalCidrs(a ?? []) === canonicalCidrs(b ?? []);
}

function publishChange(namespace: string, specs: string[], network: string | undefined, from: string[] | undefined): Change {
  const c: Change = { kind: 'publish', namespace, specs };
  if (network !== undefined) c.network = network;
  if (from !== undefined && from.length > 0) c.from = from;
  return c;
}

/** A policy spec as the fields the user can declare, defaults applied, in display form. */
function policyView(p: PolicySpec): [string, string][] {
  return [
    ['action', p.action],
    ['from', p.from.trim()],
    ['to', p.to.trim()],
    ['ports', p.ports && p.ports.length > 0 ? [...p.ports].sort().join(', ') : 'any'],
    ['priority', String(p.priority ?? DEFAULT_PRIORITY)],
  ];
}

/** What differs between two policy specs, as `field old → new`; empty when nothing does. */
export function policyDiff(had: PolicySpec, want: PolicySpec): string[] {
  const before = policyView(had);
  return policyView(want).flatMap(([field, value], i) => {
    const old = before[i]![1];
    return old === value ? [] : [`${field} ${old} → ${value}`];
  });
}

/** `network:frontend` → `frontend`, as plans print selectors. */
function selectorText(sel: string): string {
  return sel.replace(/^(network|net|namespace|ns):/, '');
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** `web@frontend`: the namespace at the network, as `describeChange` prints endpoints. */
export function endpointKey(e: { network: string; namespace: string }): string {
  return `${e.namespace}@${e.network}`;
}

function canonicalCidrs(list: readonly string[]): string {
  return list
    .map((t) => tryParse(() => Cidr.parse(t)) ?? t)
    .sort((a, b) => (typeof a === 'string' || typeof b === 'string' ? String(a).localeCompare(String(b)) : a.compare(b)))
    .join(', ');
}

function canonicalIps(list: readonly string[]): string {
  return list
    .map((t) => tryParse(() => IpAddress.parse(t)) ?? t)
    .sort((a, b) => (typeof a === 'string' || typeof b === 'string' ? String(a).localeCompare(String(b)) : a.compare(b)))
    .join(', ');
}

function tryParse<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch {
    return undefined;
  }
}

/** A network spec as the fields the user can declare, defaults applied, in display form. */
function networkView(s: NetworkSpec): [string, string][] {
  const hasV6 = (s.subnets ?? []).some((t) => t.includes(':'));
  const internal = s.internal ?? false;
  return [
    ['driver', s.driver ?? 'bridge'],
    ['subnets', s.subnets && s.subnets.length > 0 ? canonicalCidrs(s.subnets) : 'from pool'],
    // Meaningful only when no IPv6 subnet is pinned (types.ts: NetworkSpec.ipv6).
    ['IPv6 from pool', String(s.ipv6 === true && !hasV6)],
    ['gateways', s.gateways && s.gateways.length > 0 ? canonicalIps(s.gateways) : 'default'],
    ['internal', String(internal)],
    // Meaningless on an internal network (types.ts: NetworkSpec.masquerade).
    ['masquerade', internal ? '-' : String(s.masquerade ?? true)],
    ['mtu', s.mtu === undefined ? 'default' : String(s.mtu)],
    ['bridge', s.bridge ?? 'default'],
    // macvlan/ipvlan: another parent or mode is another network (the interfaces are remade).
    ['parent', s.parent ?? '-'],
    ['mode', s.mode ?? (s.driver === 'macvlan' ? 'bridge' : s.driver === 'ipvlan' ? 'l2' : '-')],
    ['ip ranges', s.ipRanges && s.ipRanges.length > 0 ? canonicalCidrs(s.ipRanges) : 'whole subnets'],
    ['aux addresses', Object.entries(s.auxAddresses ?? {}).map(([k, v]) => `${k}=${canonicalIps([v])}`).sort().join(', ') || 'none'],
    ['shim', s.shim && s.shim.length > 0 ? canonicalIps(s.shim) : 'none'],
    ['dns', String(s.dns ?? true)],
    ['dns servers', s.dnsServers && s.dnsServers.length > 0 ? s.dnsServers.join(', ') : 'host\'s'],
  ];
}

/** What differs between two network specs, as `field old → new`; empty when nothing does. */
export function networkDiff(had: NetworkSpec, want: NetworkSpec): string[] {
  const before = networkView(had);
  return networkView(want).flatMap(([field, value], i) => {
    const old = before[i]![1];
    return old === value ? [] : [`${field} ${old} → ${value}`];
  });
}

/**
 * What differs between an endpoint and the spec the file declares for it, as
 * `field old → new`. Interface names are compared with the actual name (the file's default
 * eth0, eth1 … equals what the engine picked); the rest with what was declared.
 */
export function endpointDiff(had: EndpointRecord, want: EndpointSpec): string[] {
  const diff: string[] = [];
  const field = (name: string, old: string, value: string): void => {
    if (old !== value) diff.push(`${name} ${old} → ${value}`);
  };
  if (want.ifname !== undefined) field('ifname', had.ifname, want.ifname);
  const ips = (s: EndpointSpec): string => (s.ips && s.ips.length > 0 ? canonicalIps(s.ips) : 'auto');
  field('ip', ips(had.declared), ips(want));
  const mac = (s: EndpointSpec): string => s.mac?.toLowerCase() ?? 'auto';
  field('mac', mac(had.declared), mac(want));
  const aliases = (s: EndpointSpec): string => [...new Set(s.aliases ?? [])].sort().join(', ') || 'none';
  field('aliases', aliases(had.declared), aliases(want));
  return diff;
}

// ---------------------------------------------------------------------------------------------
// Describing

/**
 * One line per change, as `nsnet plan` prints it:
 * `+ network frontend (192.168.10.0/24, fd00:10::/64)`, `- namespace old`,
 * `+ endpoint web@frontend (eth0, ip 192.168.10.10, aliases www)`, `- endpoint web@frontend`,
 * `+ publish web@frontend 80:80/tcp, 127.0.0.1:8443:443/tcp (from 203.0.113.0/24)` (the
 * endpoint that receives the traffic), `- publish web 80:80/tcp`,
 * `+ policy no-fe-db: deny frontend → database (ports 3306/tcp, priority 10)`, `- policy no-fe-db`.
 */
export function describeChange(c: Change): string {
  switch (c.kind) {
    case 'create-network':
      return `+ network ${c.spec.name} (${networkDetails(c.spec).join(', ')})`;
    case 'remove-network':
      return `- network ${c.name}`;
    case 'create-namespace':
      return `+ namespace ${c.name}`;
    case 'remove-namespace':
      return `- namespace ${c.name}`;
    case 'connect': {
      const details = endpointDetails(c.spec);
      return `+ endpoint ${endpointKey(c.spec)}${details.length > 0 ? ` (${details.join(', ')})` : ''}`;
    }
    case 'disconnect':
      return `- endpoint ${endpointKey(c)}`;
    case 'publish': {
      const target = c.network === undefined ? c.namespace : endpointKey({ namespace: c.namespace, network: c.network });
      return `+ publish ${target} ${c.specs.join(', ')}${c.from && c.from.length > 0 ? ` (from ${c.from.join(', ')})` : ''}`;
    }
    case 'unpublish':
      return `- publish ${c.namespace} ${c.spec}`;
    case 'add-policy': {
      const details = policyDetails(c.spec);
      return `+ policy ${c.spec.name ?? '(unnamed)'}: ${c.spec.action} ${selectorText(c.spec.from)} → ${selectorText(c.spec.to)}` +
        (details.length > 0 ? ` (${details.join(', ')})` : '');
    }
    case 'remove-policy':
      return `- policy ${c.name}`;
  }
}

function policyDetails(p: PolicySpec): string[] {
  const out: string[] = [];
  if (p.ports && p.ports.length > 0) out.push(`ports ${p.ports.join(', ')}`);
  if (p.priority !== undefined) out.push(`priority ${p.priority}`);
  return out;
}

function networkDetails(s: NetworkSpec): string[] {
  const out: string[] = [];
  const hasV6 = (s.subnets ?? []).some((t) => t.includes(':'));
  if (s.subnets && s.subnets.length > 0) out.push(...s.subnets);
  else out.push('subnet from pool');
  if (s.ipv6 === true && !hasV6) out.push('IPv6 subnet from pool');
  for (const g of s.gateways ?? []) out.push(`gateway ${g}`);
  if (s.internal === true) out.push('internal');
  else if (s.masquerade === false) out.push('no masquerade');
  if (s.mtu !== undefined) out.push(`mtu ${s.mtu}`);
  if (s.bridge !== undefined) out.push(`bridge ${s.bridge}`);
  if (s.driver !== undefined && s.driver !== 'bridge') out.push(`driver ${s.driver}`);
  if (s.parent !== undefined) out.push(`parent ${s.parent}${s.mode !== undefined ? ` mode ${s.mode}` : ''}`);
  for (const r of s.ipRanges ?? []) out.push(`ip range ${r}`);
  for (const [k, v] of Object.entries(s.auxAddresses ?? {})) out.push(`aux ${k}=${v}`);
  for (const a of s.shim ?? []) out.push(`shim ${a}`);
  if (s.dns === false) out.push('no dns');
  for (const d of s.dnsServers ?? []) out.push(`dns server ${d}`);
  return out;
}

function endpointDetails(s: EndpointSpec): string[] {
  const out: string[] = [];
  if (s.ifname !== undefined) out.push(s.ifname);
  if (s.ips && s.ips.length > 0) out.push(`ip ${s.ips.join(', ')}`);
  if (s.mac !== undefined) out.push(`mac ${s.mac}`);
  if (s.aliases && s.aliases.length > 0) out.push(`aliases ${s.aliases.join(', ')}`);
  return out;
}

/**
 * Like `changes.map(describeChange)`, but a network removed and created again reads as one
 * `~ network frontend (subnets 10.0.0.0/24 → 10.1.0.0/24)` line, an endpoint disconnected
 * and connected again as one `~ endpoint web@frontend (ip … → …)` line, a policy removed and
 * added again as `~ policy no-fe-db (action allow → deny)`, and ports unpublished and
 * published again as `~ publish web@frontend 80:80/tcp (endpoint web@frontend reconnected)`,
 * at the place of the creation. `current` is the state the plan was made from (for the old
 * values). An empty plan gives no lines (the CLI prints "no changes").
 */
export function describePlan(changes: readonly Change[], current: CurrentState): string[] {
  const lines: (string | undefined)[] = changes.map(describeChange);
  const recreated = new Set<string>();
  changes.forEach((c, i) => {
    if (c.kind !== 'create-network') return;
    const removed = changes.findIndex((r) => r.kind === 'remove-network' && r.name === c.spec.name);
    const had = current.networks.find((n) => n.name === c.spec.name);
    if (removed < 0 || !had) return;
    recreated.add(c.spec.name);
    lines[removed] = undefined;
    lines[i] = `~ network ${c.spec.name} (${networkDiff(had.declared, c.spec).join(', ') || 'recreated'})`;
  });
  changes.forEach((c, i) => {
    if (c.kind !== 'connect') return;
    const key = endpointKey(c.spec);
    const removed = changes.findIndex((r) => r.kind === 'disconnect' && endpointKey(r) === key);
    const had = current.endpoints.find((e) => endpointKey(e) === key);
    if (removed < 0 || !had) return;
    const diff = endpointDiff(had, c.spec);
    const why =
      diff.length > 0 ? diff.join(', ')
        : recreated.has(c.spec.network) ? `network ${c.spec.network} recreated`
          : had.state !== 'ready' ? `repair: was left ${had.state}`
            : 'reconnected';
    lines[removed] = undefined;
    lines[i] = `~ endpoint ${key} (${why})`;
  });
  changes.forEach((c, i) => {
    if (c.kind !== 'add-policy' || c.spec.name === undefined) return;
    const name = c.spec.name;
    const removed = changes.findIndex((r) => r.kind === 'remove-policy' && r.name === name);
    const had = current.policies?.find((p) => p.name === name);
    if (removed < 0 || !had) return;
    lines[removed] = undefined;
    lines[i] = `~ policy ${name} (${policyDiff(had.declared, c.spec).join(', ') || `re-added to keep the file's order at priority ${c.spec.priority ?? DEFAULT_PRIORITY}`})`;
  });
  changes.forEach((c, i) => {
    if (c.kind !== 'publish') return;
    const removed = c.specs.map((spec) => changes.findIndex((r) => r.kind === 'unpublish' && r.namespace === c.namespace && r.spec === spec));
    if (removed.some((j) => j < 0)) return;
    const why = new Set<string>();
    for (const spec of c.specs) {
      const had = groupPorts((current.ports ?? []).filter((r) => r.namespace === c.namespace && r.spec === spec))[0];
      if (!had) continue;
      if (c.network !== undefined && had.network !== c.network) why.add(`network ${had.network} → ${c.network}`);
      if (!sameSources(had.from, c.from)) why.add(`from ${had.from.join(', ') || 'anywhere'} → ${c.from?.join(', ') || 'anywhere'}`);
      const key = endpointKey(had);
      if (changes.some((d) => d.kind === 'disconnect' && endpointKey(d) === key) && had.network === (c.network ?? had.network)) {
        why.add(`endpoint ${key} reconnected`);
      }
      if (!had.complete) why.add('repair: incomplete');
    }
    for (const j of removed) lines[j] = undefined;
    lines[i] = `~${describeChange(c).slice(1).replace(/ \(from [^)]*\)$/, '')} (${[...why].join(', ') || 'republished'})`;
  });
  return lines.filter((l): l is string => l !== undefined);
}
