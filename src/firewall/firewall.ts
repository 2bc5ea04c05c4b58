/**
 * nsnet's firewall: two nftables tables that nsnet owns — `inet nsnet` (routing, NAT,
 * published ports, policies) and `bridge nsnet` (anti-spoofing at each bridge port) —
 * changed in one libnftables transaction per operation (DESIGN.md decision 3). Nothing
 * here reads, flushes or edits any other table; `reset` deletes only these two.
 *
 * The rules are fixed. What varies lives in sets and maps keyed by bridge, address or
 * port, so adding a network, an endpoint or a published port is a few element insertions
 * and the per-packet cost does not grow with their number. Policies are the exception:
 * one rule per policy (its members are sets), so the per-packet cost grows with the number
 * of policies — not with the endpoints they cover.
 *
 * Hooks used (document for the host's own firewall):
 *   bridge prerouting  (filter, priority filter)  anti-spoofing on nsnet bridge ports only
 *   inet prerouting    (filter, priority raw)      drop packets for 127.0.0.0/8 not from lo, and packets
 *                                                  from an nsnet subnet that arrive on any other
 *                                                  interface than nsnet's bridges (spoofed from the uplink)
 *   inet prerouting    (nat, priority dstnat)      published ports, for packets to local addresses
 *   inet output        (nat, priority -100)        published ports, for the host's own connections
 *   inet forward       (filter, priority filter)   isolation, policies, ingress/egress defaults
 *   inet postrouting   (nat, priority srcnat)      masquerade: egress, hairpin (a container reaching a
 *                                                  published port through the host, so replies
 *                                                  come back through the host), host via 127.0.0.1
 * Published traffic is accepted in nsnet's forward chain; a drop in another table's forward
 * hook still applies to it (an accept in one table does not override a drop in another).
 *
 * Forward chain order (first match wins):
 *   1. established/related traffic of nsnet networks: accept (policies are stateful)
 *   2. user policies, by priority (lower first), then creation order: accept or drop
 *   3. published ports (ct status dnat): accept
 *   4. same bridge: accept;  5. internal networks: drop in and out
 *   6. between two nsnet networks: drop;  7. from outside into a network: drop
 *   8. from a network to the outside: accept
 * Bridged traffic between members of one network reaches these hooks because nsnet's
 * bridges set nf_call_iptables/ip6tables (per bridge, not the host-wide sysctl).
 */
import { isNsnetError } from '../errors.js';
import { Nft } from '../kernel/nftables/nft.js';
import type { EndpointRecord, NetworkRecord, PolicyRecord, PublishRecord, Selector } from '../engine/types.js';
import { publish } from '../diagnostics.js';

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
add map ${T} pub4_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map ${T} pub4_ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map ${T} pub6_any { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map ${T} pub6_ip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add set ${T} restricted { type inet_proto . inet_service; }
add set ${T} allowed4 { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set ${T} allowed6 { type ipv6_addr . inet_proto . inet_service; flags interval; }
add chain ${T} raw_prerouting { type filter hook prerouting priority raw; policy accept; }
add rule ${T} raw_prerouting iifname != "lo" ip daddr 127.0.0.0/8 drop
add rule ${T} raw_prerouting iifname != "lo" iifname != @bridges ip saddr @nets4 drop
add rule ${T} raw_prerouting iifname != "lo" iifname != @bridges ip6 saddr @nets6 drop
add chain ${T} publish
add rule ${T} publish meta l4proto . th dport @restricted ip saddr . meta l4proto . th dport != @allowed4 return
add rule ${T} publish meta l4proto . th dport @restricted ip6 saddr . meta l4proto . th dport != @allowed6 return
add rule ${T} publish dnat ip to ip daddr . meta l4proto . th dport map @pub4_ip
add rule ${T} publish dnat ip to meta l4proto . th dport map @pub4_any
add rule ${T} publish dnat ip6 to ip6 daddr . meta l4proto . th dport map @pub6_ip
add rule ${T} publish dnat ip6 to meta l4proto . th dport map @pub6_any
add chain ${T} nat_prerouting { type nat hook prerouting priority dstnat; policy accept; }
add rule ${T} nat_prerouting fib daddr type local jump publish
add chain ${T} nat_output { type nat hook output priority -100; policy accept; }
add rule ${T} nat_output fib daddr type local jump publish
add chain ${T} policies
add chain ${T} forward { type filter hook forward priority filter; policy accept; }
add rule ${T} forward iifname @bridges ct state established,related accept
add rule ${T} forward oifname @bridges ct state established,related accept
add rule ${T} forward iifname @bridges jump policies
add rule ${T} forward iifname != @bridges oifname @bridges jump policies
add rule ${T} forward oifname @bridges ct status dnat accept
add rule ${T} forward iifname . oifname @allow_pairs accept
add rule ${T} forward iifname @internal drop
add rule ${T} forward oifname @internal drop
add rule ${T} forward iifname @bridges oifname @bridges drop
add rule ${T} forward oifname @bridges drop
add rule ${T} forward iifname @bridges accept
add chain ${T} nat_postrouting { type nat hook postrouting priority srcnat; policy accept; }
add rule ${T} nat_postrouting ct status dnat ip saddr @nets4 ip daddr @nets4 masquerade
add rule ${T} nat_postrouting ct status dnat ip6 saddr @nets6 ip6 daddr @nets6 masquerade
add rule ${T} nat_postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
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
    out.push([T, 'restricted', key]);
    for (const c of p.from) out.push([T, isV6(c) ? 'allowed6' : 'allowed4', `${c} . ${key}`]);
  }
  return out;
}

/** Addresses a selector stands for, per family, resolved against the store's state. */
export interface SelectorResolver {
  (sel: Selector): { v4: string[]; v6: string[] } | 'outside';
}

function policySetNames(p: PolicyRecord): { from4: string; from6: string; to4: string; to6: string; ports: string } {
  return { from4: `p${p.id}_from4`, from6: `p${p.id}_from6`, to4: `p${p.id}_to4`, to6: `p${p.id}_to6`, ports: `p${p.id}_ports` };
}

function policySetDecls(p: PolicyRecord): string[] {
  const n = policySetNames(p);
  const out = [
    `add set ${T} ${n.from4} { type ipv4_addr; flags interval; }`,
    `add set ${T} ${n.from6} { type ipv6_addr; flags interval; }`,
    `add set ${T} ${n.to4} { type ipv4_addr; flags interval; }`,
    `add set ${T} ${n.to6} { type ipv6_addr; flags interval; }`,
  ];
  if (p.ports.length > 0) out.push(`add set ${T} ${n.ports} { type inet_proto . inet_service; flags interval; }`);
  return out;
}

function policyMembers(p: PolicyRecord, resolve: SelectorResolver): Elem[] {
  const n = policySetNames(p);
  const out: Elem[] = [];
  const from = resolve(p.from);
  const to = resolve(p.to);
  if (from !== 'outside') { for (const a of from.v4) out.push([T, n.from4, a]); for (const a of from.v6) out.push([T, n.from6, a]); }
  if (to !== 'outside') { for (const a of to.v4) out.push([T, n.to4, a]); for (const a of to.v6) out.push([T, n.to6, a]); }
  for (const f of p.ports) for (const proto of f.protos) out.push([T, n.ports, `${proto} . ${f.start === f.end ? f.start : `${f.start}-${f.end}`}`]);
  return out;
}

function policyRules(p: PolicyRecord): string[] {
  const n = policySetNames(p);
  const verdict = p.action === 'allow' ? 'accept' : 'drop';
  const ports = p.ports.length > 0 ? ` meta l4proto . th dport @${n.ports}` : '';
  const comment = ` comment ${q(`policy ${p.name}`)}`;
  const side = (fam: 'ip' | 'ip6', dir: 'saddr' | 'daddr', sel: Selector, set: string): string =>
    sel.kind === 'outside' ? `${fam} ${dir} != @nets${fam === 'ip' ? 4 : 6}` : `${fam} ${dir} @${set}`;
  return [
    `add rule ${T} policies ${side('ip', 'saddr', p.from, n.from4)} ${side('ip', 'daddr', p.to, n.to4)}${ports} ${verdict}${comment}`,
    `add rule ${T} policies ${side('ip6', 'saddr', p.from, n.from6)} ${side('ip6', 'daddr', p.to, n.to6)}${ports} ${verdict}${comment}`,
  ];
}

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
}

export class Firewall {
  private nft: Nft | undefined;

  private ctx(): Nft {
    // Constructed on first use, on the main thread in the host namespace: libnftables
    // opens its netlink socket in nft_ctx_new (src/kernel/nftables/nft.ts).
    this.nft ??= new Nft();
    return this.nft;
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
      ...s.policies.flatMap(policySetDecls),
      ...s.policies.flatMap(policyRules),
      ...script('add', [
        ...s.networks.flatMap(networkElements),
        ...s.endpoints.filter((e) => e.state === 'ready').flatMap(endpointElements),
        ...s.ports.flatMap(portElements),
        ...s.policies.flatMap((p) => policyMembers(p, s.resolve)),
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
    // Restricted-source bookkeeping is shared per (proto, port); deleting is done per element.
    this.change(script(verb, ps.flatMap(portElements)), state);
  }

  /** Re-derives the policies chain (one rule pair per policy) and the changed policy's sets. */
  policies(all: readonly PolicyRecord[], added: PolicyRecord | undefined, removed: PolicyRecord | undefined, state: () => FirewallState): void {
    const lines = [`flush chain ${T} policies`];
    if (added) lines.push(...policySetDecls(added));
    lines.push(...all.flatMap(policyRules));
    if (added) lines.push(...script('add', policyMembers(added, state().resolve)));
    if (removed) {
      const n = policySetNames(removed);
      lines.push(`delete set ${T} ${n.from4}`, `delete set ${T} ${n.from6}`, `delete set ${T} ${n.to4}`, `delete set ${T} ${n.to6}`);
      if (removed.ports.length > 0) lines.push(`delete set ${T} ${n.ports}`);
    }
    this.change(lines, state);
  }

  /** Statements that reset the member sets of `affected` policies to what the state says now. */
  private refreshPolicies(affected: readonly PolicyRecord[], state: () => FirewallState): string[] {
    if (affected.length === 0) return [];
    const resolve = state().resolve;
    const lines: string[] = [];
    for (const p of affected) {
      const n = policySetNames(p);
      lines.push(`flush set ${T} ${n.from4}`, `flush set ${T} ${n.from6}`, `flush set ${T} ${n.to4}`, `flush set ${T} ${n.to6}`);
      lines.push(...script('add', policyMembers(p, resolve).filter(([, set]) => set !== n.ports)));
    }
    return lines;
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
