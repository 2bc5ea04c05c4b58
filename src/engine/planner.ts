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
 * Order of the plan, so that every step finds what it needs and leaves nothing in use:
 *   1. disconnects — endpoints no longer declared, changed, not `ready` (left half-made by a
 *      crash), or on a network or namespace that goes away in step 2 or 3;
 *   2. network removals (no longer declared, or recreated);
 *   3. namespace removals (no longer declared);
 *   4. namespace creations, 5. network creations, 6. connects.
 * Within a step, removals follow the order of the records, creations the order of the file.
 */
import { NsnetError } from '../errors.js';
import { IpAddress } from '../ipam/address.js';
import { Cidr } from '../ipam/cidr.js';
import type {
  Change, CurrentState, EndpointRecord, EndpointSpec, NamespaceRecord, NetworkRecord, NetworkSpec, Topology,
} from './types.js';

const EMPTY: CurrentState = { networks: [], namespaces: [], endpoints: [] };

type AnyRecord = NetworkRecord | NamespaceRecord | EndpointRecord;

/**
 * The changes that make the host match `desired`. `current` holds the records this file
 * created (source === desired.source); `others` holds everything else, so that a name owned
 * by someone else is reported instead of taken over. A record in the wrong argument is
 * sorted by its source, so passing the whole store as `current` is also correct.
 *
 * Throws TOPOLOGY_INVALID when the plan would take over or remove what this file did not
 * create, or when a pinned subnet, bridge name or static address is already used by a
 * network or endpoint that stays.
 */
export function planTopology(desired: Topology, current: CurrentState, others: CurrentState = EMPTY): Change[] {
  const { mine, foreign } = partition(desired.source, current, others);

  checkNotOwnedElsewhere('network', desired.networks.map((n) => n.name), foreign.networks, (r) => r.name);
  checkNotOwnedElsewhere('namespace', desired.namespaces.map((n) => n.name), foreign.namespaces, (r) => r.name);
  checkNotOwnedElsewhere('endpoint', desired.endpoints.map(endpointKey), foreign.endpoints, endpointKey);

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

  return [
    ...disconnects.map((e): Change => ({ kind: 'disconnect', network: e.network, namespace: e.namespace })),
    ...mine.networks.filter((n) => removedNetworks.has(n.name)).map((n): Change => ({ kind: 'remove-network', name: n.name })),
    ...mine.namespaces.filter((n) => removedNamespaces.has(n.name)).map((n): Change => ({ kind: 'remove-namespace', name: n.name })),
    ...createdNamespaces.map((n): Change => ({ kind: 'create-namespace', name: n.name })),
    ...createdNetworks.map((spec): Change => ({ kind: 'create-network', spec })),
    ...connects.map((spec): Change => ({ kind: 'connect', spec })),
  ];
}

/**
 * The changes that remove what this file created: every endpoint, network and namespace
 * whose source is the file — what it declares now and whatever an earlier version of it
 * declared and it no longer does, so nothing of the file is left behind. Throws
 * TOPOLOGY_INVALID when an endpoint someone else created (in `others`) is attached to one of
 * them: removing it would break what this file does not own.
 */
export function downTopology(desired: Topology, current: CurrentState, others: CurrentState = EMPTY): Change[] {
  const { mine, foreign } = partition(desired.source, current, others);
  const why = 'the file is taken down';
  checkNoForeignEndpoints(
    new Map(mine.networks.map((n) => [n.name, why])),
    new Map(mine.namespaces.map((n) => [n.name, why])),
    foreign.endpoints,
  );
  return [
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
  return {
    mine: { networks: myNetworks, namespaces: myNamespaces, endpoints: myEndpoints },
    foreign: { networks: otherNetworks, namespaces: otherNamespaces, endpoints: otherEndpoints },
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
 * `+ endpoint web@frontend (eth0, ip 192.168.10.10, aliases www)`, `- endpoint web@frontend`.
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
  }
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
 * `~ network frontend (subnets 10.0.0.0/24 → 10.1.0.0/24)` line, and an endpoint
 * disconnected and connected again as one `~ endpoint web@frontend (ip … → …)` line, at the
 * place of its creation. `current` is the state the plan was made from (for the old values).
 * An empty plan gives no lines (the CLI prints "no changes").
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
  return lines.filter((l): l is string => l !== undefined);
}
