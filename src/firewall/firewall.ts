/**
 * nsnet's firewall: two nftables tables that nsnet owns — `inet nsnet` (routing, NAT,
 * published ports, policies) and `bridge nsnet` (anti-spoofing at each bridge port) —
 * changed in one libnftables transaction per operation (DESIGN.md decision 3). Nothing
 * here reads, flushes or edits any other table; `reset` deletes only these two.
 *
 * The rules are fixed. What varies lives in sets and maps keyed by bridge, address or
 * port, so adding a network, an endpoint or a published port is a few element insertions
 * and the per-packet cost does not grow with their number. Policies too: they are compiled
 * (policy-compile.ts) into one interval verdict map per family, `pol4`/`pol6`, keyed by
 * source . destination . protocol . port, with priorities resolved into disjoint elements,
 * so a new connection costs one lookup however many policies there are.
 *
 * Hooks used (document for the host's own firewall):
 *   bridge prerouting  (filter, priority filter)  anti-spoofing on nsnet bridge ports only
 *   inet prerouting    (filter, priority raw)      drop packets for 127.0.0.0/8 not from lo, and packets
 *                                                  from an nsnet subnet that arrive on any other
 *                                                  interface than nsnet's bridges (spoofed from the uplink);
 *                                                  every packet of every interface passes here, so
 *                                                  each is decided with at most one lookup of its
 *                                                  input interface (ordered accepts, not repeated
 *                                                  `iifname !=` tests)
 *   inet prerouting    (nat, priority dstnat)      published ports, for packets to local addresses
 *   inet output        (nat, priority -100)        published ports, for the host's own connections
 *   inet forward       (filter, priority filter)   isolation, policies, ingress/egress defaults
 *   inet postrouting   (nat, priority srcnat)      masquerade: egress, hairpin (a container reaching a
 *                                                  published port through the host, so replies
 *                                                  come back through the host), host via 127.0.0.1
 *   inet input         (filter, priority filter)   multi-host: UDP to the VXLAN port only from the
 *                                                  underlay addresses of current cluster peers
 * Published traffic is accepted in nsnet's forward chain; a drop in another table's forward
 * hook still applies to it (an accept in one table does not override a drop in another).
 *
 * Forward chain order (first match wins):
 *   1. established/related traffic of nsnet networks: accept (policies are stateful)
 *   2. user policies, by priority (lower first), then creation order: accept or drop
 *   3. published ports (ct status dnat): accept
 *   4. same bridge: accept; the network's prefixes on other hosts (multi-host peers): accept
 *   5. internal networks: drop in and out
 *   6. between two nsnet networks: drop;  7. from outside into a network: drop
 *   8. from a network to the outside: accept
 * Bridged traffic between members of one network reaches these hooks because nsnet's
 * bridges set nf_call_iptables/ip6tables (per bridge, not the host-wide sysctl).
 */
import { isNsnetError } from '../errors.js';
import { Nft } from '../kernel/nftables/nft.js';
import type { EndpointRecord, NetworkRecord, PolicyRecord, PublishRecord, Selector } from '../engine/types.js';
import { publish } from '../diagnostics.js';
import { type CompiledElement, compilePolicies, elementKey, elementKeyText, elementText, kernelElement } from './policy-compile.js';

export const TABLE_NAME = 'nsnet';
const T = `inet ${TABLE_NAME}`;
const B = `bridge ${TABLE_NAME}`;

const BASE = `
add table ${T}
add set ${T} bridges { type ifname; }
add set ${T} internal { type ifname; }
add set ${T} allow_pairs { type ifname . ifname; }
add set ${T} nets4 { type ipv4_addr; flags interval; }
add set ${T} nets6 { type ipv6_addr; flags interval; }
add set ${T} masq4 { type ipv4_addr; flags interval; }
add set ${T} masq6 { type ipv6_addr; flags interval; }
add set ${T} peer_in4 { type ifname . ipv4_addr; flags interval; }
add set ${T} peer_nat4 { type ipv4_addr . ipv4_addr; flags interval; }
add set ${T} peer_in6 { type ifname . ipv6_addr; flags interval; }
add set ${T} peer_nat6 { type ipv6_addr . ipv6_addr; flags interval; }
add map ${T} pub4_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map ${T} pub4_ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map ${T} pub6_any { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map ${T} pub6_ip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add set ${T} vxlan_ports { type inet_service; }
add set ${T} vxlan_peers4 { type ipv4_addr . inet_service; }
add counter ${T} vxlan_dropped
add set ${T} restricted4 { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set ${T} restricted6 { type ipv6_addr . inet_proto . inet_service; flags interval; }
add set ${T} allowed4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval; }
add set ${T} allowed6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags interval; }
add chain ${T} raw_prerouting { type filter hook prerouting priority raw; policy accept; }
add rule ${T} raw_prerouting iifname "lo" accept
add rule ${T} raw_prerouting ip daddr 127.0.0.0/8 drop
add rule ${T} raw_prerouting iifname @bridges accept
add rule ${T} raw_prerouting ip saddr @nets4 drop
add rule ${T} raw_prerouting ip6 saddr @nets6 drop
add chain ${T} publish
add rule ${T} publish ip daddr . meta l4proto . th dport @restricted4 ip saddr . ip daddr . meta l4proto . th dport != @allowed4 return
add rule ${T} publish ip6 daddr . meta l4proto . th dport @restricted6 ip6 saddr . ip6 daddr . meta l4proto . th dport != @allowed6 return
add rule ${T} publish dnat ip to ip daddr . meta l4proto . th dport map @pub4_ip
add rule ${T} publish dnat ip to meta l4proto . th dport map @pub4_any
add rule ${T} publish dnat ip6 to ip6 daddr . meta l4proto . th dport map @pub6_ip
add rule ${T} publish dnat ip6 to meta l4proto . th dport map @pub6_any
add chain ${T} nat_prerouting { type nat hook prerouting priority dstnat; policy accept; }
add rule ${T} nat_prerouting fib daddr type local jump publish
add chain ${T} nat_output { type nat hook output priority -100; policy accept; }
add rule ${T} nat_output fib daddr type local jump publish
add chain ${T} policies
add map ${T} pol4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service : verdict; flags interval; }
add map ${T} pol6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service : verdict; flags interval; }
add rule ${T} policies meta nfproto ipv4 ip saddr . ip daddr . meta l4proto . th dport vmap @pol4
add rule ${T} policies meta nfproto ipv6 ip6 saddr . ip6 daddr . meta l4proto . th dport vmap @pol6
add chain ${T} forward { type filter hook forward priority filter; policy accept; }
add rule ${T} forward iifname @bridges ct state established,related accept
add rule ${T} forward oifname @bridges ct state established,related accept
add rule ${T} forward iifname @bridges jump policies
add rule ${T} forward iifname != @bridges oifname @bridges jump policies
add rule ${T} forward oifname @bridges ct status dnat accept
add rule ${T} forward iifname . oifname @allow_pairs accept
add rule ${T} forward oifname . ip saddr @peer_in4 accept
add rule ${T} forward oifname . ip6 saddr @peer_in6 accept
add rule ${T} forward iifname @internal drop
add rule ${T} forward oifname @internal drop
add rule ${T} forward iifname @bridges oifname @bridges drop
add rule ${T} forward oifname @bridges drop
add rule ${T} forward iifname @bridges accept
add chain ${T} input { type filter hook input priority filter; policy accept; }
add rule ${T} input udp dport @vxlan_ports ip saddr . udp dport != @vxlan_peers4 counter name vxlan_dropped drop
add chain ${T} nat_postrouting { type nat hook postrouting priority srcnat; policy accept; }
add rule ${T} nat_postrouting ct status dnat ip saddr @nets4 ip daddr @nets4 masquerade
add rule ${T} nat_postrouting ct status dnat ip6 saddr @nets6 ip6 daddr @nets6 masquerade
add rule ${T} nat_postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
add rule ${T} nat_postrouting ip saddr . ip daddr @peer_nat4 return
add rule ${T} nat_postrouting ip6 saddr . ip6 daddr @peer_nat6 return
add rule ${T} nat_postrouting ip saddr @masq4 ip daddr != @nets4 masquerade
add rule ${T} nat_postrouting ip6 saddr @masq6 ip6 daddr != @nets6 masquerade
add table ${B}
add set ${B} guarded { type ifname; }
add set ${B} own_mac { type ifname . ether_addr; }
add set ${B} own4 { type ifname . ipv4_addr; }
add set ${B} own6 { type ifname . ipv6_addr; }
add chain ${B} prerouting { type filter hook prerouting priority filter; policy accept; }
add rule ${B} prerouting iifname != @guarded accept
add rule ${B} prerouting iifname . ether saddr != @own_mac drop
add rule ${B} prerouting meta protocol ip iifname . ip saddr != @own4 drop
add rule ${B} prerouting meta protocol arp iifname . arp saddr ip != @own4 drop
add rule ${B} prerouting meta protocol ip6 ip6 saddr { ::, fe80::/10 } accept
add rule ${B} prerouting meta protocol ip6 iifname . ip6 saddr != @own6 drop
`;

const q = (s: string): string => JSON.stringify(s);
const isV6 = (s: string): boolean => s.includes(':');
const addrOf = (cidr: string): string => cidr.split('/')[0]!;

type Elem = [table: string, set: string, elem: string];

function networkElements(n: NetworkRecord): Elem[] {
  const out: Elem[] = [[T, 'bridges', q(n.bridge)], [T, 'allow_pairs', `${q(n.bridge)} . ${q(n.bridge)}`]];
  if (n.internal) out.push([T, 'internal', q(n.bridge)]);
  for (const s of n.subnets) {
    out.push([T, isV6(s.cidr) ? 'nets6' : 'nets4', s.cidr]);
    if (n.masquerade && !n.internal) out.push([T, isV6(s.cidr) ? 'masq6' : 'masq4', s.cidr]);
  }
  // Multi-host: the network's prefixes on other hosts reach its members (after policies),
  // and traffic between them is not masqueraded (src/cluster).
  for (const p of n.declared.peers ?? []) {
    if (n.internal) continue;
    const fam = isV6(p) ? 6 : 4;
    out.push([T, `peer_in${fam}`, `${q(n.bridge)} . ${p}`]);
    for (const s of n.subnets) if (isV6(s.cidr) === (fam === 6)) out.push([T, `peer_nat${fam}`, `${s.cidr} . ${p}`]);
  }
  return out;
}

/** Anti-spoofing: the bridge port may only send with the endpoint's MAC and addresses. */
function endpointElements(e: EndpointRecord): Elem[] {
  const port = q(e.hostIfname);
  const out: Elem[] = [[B, 'guarded', port], [B, 'own_mac', `${port} . ${e.mac}`]];
  for (const a of e.addresses) out.push([B, isV6(a) ? 'own6' : 'own4', `${port} . ${addrOf(a)}`]);
  return out;
}

function portElements(p: PublishRecord): Elem[] {
  const out: Elem[] = [];
  const key = `${p.proto} . ${p.hostPort}`;
  const v6host = p.hostIp !== null && isV6(p.hostIp);
  const v4host = p.hostIp !== null && !isV6(p.hostIp);
  if (p.target4 && !v6host) {
    out.push(v4host ? [T, 'pub4_ip', `${p.hostIp} . ${key} : ${p.target4} . ${p.containerPort}`] : [T, 'pub4_any', `${key} : ${p.target4} . ${p.containerPort}`]);
  }
  if (p.target6 && !v4host) {
    out.push(v6host ? [T, 'pub6_ip', `${p.hostIp} . ${key} : ${p.target6} . ${p.containerPort}`] : [T, 'pub6_any', `${key} : ${p.target6} . ${p.containerPort}`]);
  }
  if (p.from.length > 0) {
    // Keyed by the mapping's own host address (every address for a wildcard mapping), so two
    // mappings of one port on different host addresses keep their own source lists, and
    // removing one leaves the other restricted. Conflicting mappings are refused, so the
    // intervals never overlap (which the kernel would refuse).
    for (const fam of [4, 6] as const) {
      if (fam === 4 ? !p.target4 || v6host : !p.target6 || v4host) continue;
      const dst = p.hostIp ?? (fam === 4 ? '0.0.0.0/0' : '::/0');
      out.push([T, `restricted${fam}`, `${dst} . ${key}`]);
      for (const c of p.from) if (isV6(c) === (fam === 6)) out.push([T, `allowed${fam}`, `${c} . ${dst} . ${key}`]);
    }
  }
  return out;
}

/**
 * The cluster agent's underlay filter (src/cluster): the VXLAN port, and the underlay
 * addresses allowed to send to it. A VXLAN device decapsulates whatever arrives on its
 * port and hands the inner frame to the overlay as if a peer had sent it (RFC 7348 §7:
 * VXLAN has no authentication of its own), so anyone who can reach the port could inject
 * traffic into the cluster network with any inner source address. The set holds every
 * current peer; everything else sent to the port is counted in `vxlan_dropped` and dropped.
 */
export interface ClusterFilter { port: number; peers: readonly string[] }

function clusterElements(f: ClusterFilter | null | undefined): Elem[] {
  if (!f) return [];
  return [[T, 'vxlan_ports', String(f.port)], ...f.peers.map((p): Elem => [T, 'vxlan_peers4', `${p} . ${f.port}`])];
}

/** Addresses a selector stands for, per family, resolved against the store's state. */
export interface SelectorResolver {
  (sel: Selector): { v4: string[]; v6: string[] } | 'outside';
}

/** The policy maps' elements for the whole state. */
function compiled(s: FirewallState): CompiledElement[] {
  if (s.policies.length === 0) return [];
  const nets = { v4: [] as string[], v6: [] as string[] };
  for (const n of s.networks) for (const x of n.subnets) (isV6(x.cidr) ? nets.v6 : nets.v4).push(x.cidr);
  return compilePolicies(s.policies, (p, side) => s.resolve(p[side]), nets);
}
const policyMap = (e: CompiledElement): string => (e.family === 4 ? 'pol4' : 'pol6');

function script(verb: 'add' | 'delete', elems: readonly Elem[]): string[] {
  // Group per set: one statement per set keeps the transaction small.
  const groups = new Map<string, string[]>();
  for (const [table, set, e] of elems) {
    const k = `${table} ${set}`;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(e);
  }
  return [...groups].map(([k, es]) => `${verb} element ${k} { ${es.join(', ')} }`);
}

export interface FirewallState {
  networks: readonly NetworkRecord[];
  endpoints: readonly EndpointRecord[];
  ports: readonly PublishRecord[];
  policies: readonly PolicyRecord[];
  resolve: SelectorResolver;
  /** The cluster agent's underlay filter, if an agent set one. */
  cluster?: ClusterFilter | null;
}

export class Firewall {
  private nft: Nft | undefined;

  private ctx(): Nft {
    // Constructed on first use, on the main thread in the host namespace: libnftables
    // opens its netlink socket in nft_ctx_new (src/kernel/nftables/nft.ts).
    this.nft ??= new Nft();
    return this.nft;
  }

  /** Builds the libnftables context now (~4 ms) rather than in the first change. */
  open(): void {
    this.ctx();
  }

  close(): void {
    this.nft?.close();
    this.nft = undefined;
  }

  private run(lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.ctx().runText(lines.join('\n'));
  }

  tablesExist(): boolean {
    const tables = this.ctx().listTables();
    return tables.some((t) => t.family === 'inet' && t.name === TABLE_NAME) && tables.some((t) => t.family === 'bridge' && t.name === TABLE_NAME);
  }

  /**
   * Rebuilds both tables from the full state in one transaction (add-then-delete-then-add,
   * so it works whether or not they exist). Used when a table is missing, by `repair`, and
   * as the fallback when an incremental change finds the kernel out of step.
   */
  rebuild(s: FirewallState): void {
    const lines = [
      `add table ${T}`, `delete table ${T}`, `add table ${B}`, `delete table ${B}`,
      ...BASE.trim().split('\n'),
      ...script('add', [
        ...s.networks.flatMap(networkElements),
        ...s.endpoints.filter((e) => e.state === 'ready').flatMap(endpointElements),
        ...s.ports.flatMap(portElements),
        ...compiled(s).map((e): Elem => [T, policyMap(e), elementText(e)]),
        ...clusterElements(s.cluster),
      ]),
    ];
    this.run(lines);
    publish('firewall:rebuild', { networks: s.networks.length, endpoints: s.endpoints.length, ports: s.ports.length, policies: s.policies.length });
  }

  /**
   * Applies an incremental change in one transaction; if the tables are missing or the
   * kernel refuses (someone edited nsnet's tables), rebuilds from `state()` instead.
   */
  private change(lines: string[], state: () => FirewallState): void {
    // No existence check first: listing tables through libnftables costs ~10 ms (it builds
    // its cache), the change itself ~0.1 ms. A missing table makes the change fail, and the
    // rebuild covers it.
    try {
      this.run(lines);
    } catch (e) {
      if (!isNsnetError(e, 'NFT_ERROR')) throw e;
      publish('firewall:drift', { error: e.message });
      this.rebuild(state());
    }
  }

  /** A network was added (or removed): its set elements, and policies that name it. */
  network(verb: 'add' | 'delete', n: NetworkRecord, affected: readonly PolicyRecord[], state: () => FirewallState): void {
    this.change([...script(verb, networkElements(n)), ...this.refreshPolicies(affected, state)], state);
  }

  /** An endpoint became ready (or went away): anti-spoofing, and policies that name its namespace. */
  endpoint(verb: 'add' | 'delete', e: EndpointRecord, affected: readonly PolicyRecord[], state: () => FirewallState): void {
    this.change([...script(verb, endpointElements(e)), ...this.refreshPolicies(affected, state)], state);
  }

  ports(verb: 'add' | 'delete', ps: readonly PublishRecord[], state: () => FirewallState): void {
    // Every element belongs to exactly one mapping (restrictions are keyed by host address too).
    this.change(script(verb, ps.flatMap(portElements)), state);
  }

  /**
   * Replaces the cluster's underlay filter in one transaction (flush and refill: the kernel
   * commits a transaction as a whole, so no packet sees the set half-filled). `null` turns
   * the filter off (no port listed: the input rule matches nothing).
   */
  cluster(f: ClusterFilter | null, state: () => FirewallState): void {
    this.change([`flush set ${T} vxlan_ports`, `flush set ${T} vxlan_peers4`, ...script('add', clusterElements(f))], state);
  }

  /** A policy was added or removed: the policy maps follow, in one transaction. */
  policies(state: () => FirewallState): void {
    this.change(this.policyChanges(state()), state);
  }

  /** The policy maps again when a change touched something `affected` policies name. */
  private refreshPolicies(affected: readonly PolicyRecord[], state: () => FirewallState): string[] {
    return affected.length === 0 ? [] : this.policyChanges(state());
  }

  /**
   * Statements that bring `pol4`/`pol6` from what the kernel holds to what the state
   * compiles to: only the elements that differ are deleted and added, so the kernel's work
   * per change is the change (a new policy between two namespaces: an element or two), not
   * a rewrite of every policy. Reading the maps back costs ~6–20 ms at 1,000 elements
   * (measured) — far less than re-adding them all (~120 ms). If the maps cannot be read or
   * hold something this code never writes, they are flushed and refilled instead.
   */
  private policyChanges(s: FirewallState): string[] {
    const want = compiled(s);
    let have: CompiledElement[] | undefined = [];
    if (s.policies.length === 0 && want.length === 0) {
      // Nothing to compile: empty maps, whatever they held (no listing needed).
      return [`flush map ${T} pol4`, `flush map ${T} pol6`];
    }
    try {
      // One list per call: libnftables 1.0.6 cannot list twice in one (nft.ts checkCommands).
      for (const name of ['pol4', 'pol6'] as const) {
        const out = this.ctx().run([{ list: { map: { family: 'inet', table: TABLE_NAME, name } } }]);
        for (const o of (out?.nftables ?? []) as Array<{ map?: { name: string; elem?: unknown[] } }>) {
          for (const x of o.map?.elem ?? []) {
            const e = kernelElement(name === 'pol4' ? 4 : 6, x);
            if (!e) throw new Error(`${name}: an element nsnet never writes`);
            have.push(e);
          }
        }
      }
    } catch {
      have = undefined;
    }
    if (!have) return [`flush map ${T} pol4`, `flush map ${T} pol6`, ...script('add', want.map((e): Elem => [T, policyMap(e), elementText(e)]))];
    const wantKeys = new Set(want.map(elementKey));
    const haveKeys = new Set(have.map(elementKey));
    const gone = have.filter((e) => !wantKeys.has(elementKey(e)));
    const added = want.filter((e) => !haveKeys.has(elementKey(e)));
    return [
      ...script('delete', gone.map((e): Elem => [T, policyMap(e), elementKeyText(e)])),
      ...script('add', added.map((e): Elem => [T, policyMap(e), elementText(e)])),
    ];
  }

  /**
   * The set and map elements an endpoint and its published ports should have that the kernel's
   * tables lack (`get element` for each): what CNI CHECK reports as missing firewall state.
   */
  missing(e: EndpointRecord, ports: readonly PublishRecord[]): string[] {
    const out: string[] = [];
    for (const [table, set, elem] of [...endpointElements(e), ...ports.flatMap(portElements)]) {
      try {
        this.ctx().runText(`get element ${table} ${set} { ${elem.split(' : ')[0]} }`);
      } catch (err) {
        if (!isNsnetError(err, 'NFT_ERROR')) throw err;
        out.push(`${table} ${set} { ${elem} }`);
      }
    }
    return out;
  }

  /** Deletes nsnet's tables, and nothing else. */
  deleteTables(): void {
    const tables = this.ctx().listTables();
    const lines: string[] = [];
    if (tables.some((t) => t.family === 'inet' && t.name === TABLE_NAME)) lines.push(`delete table ${T}`);
    if (tables.some((t) => t.family === 'bridge' && t.name === TABLE_NAME)) lines.push(`delete table ${B}`);
    this.run(lines);
  }
}
