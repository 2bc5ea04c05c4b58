/**
 * nsnet's firewall: one nftables table, `inet nsnet`, owned by nsnet and changed in one
 * libnftables transaction per operation (DESIGN.md decision 3). Nothing here reads,
 * flushes or edits any other table; `reset` deletes only `inet nsnet`.
 *
 * The rules are fixed; what varies lives in sets keyed by bridge name or subnet, so adding
 * a network is a few element insertions and the per-packet cost does not grow with the
 * number of networks:
 *
 *   forward (filter hook, priority filter):
 *     iifname . oifname @allow_pairs accept     same network (br_netfilter), later: policies
 *     iifname @internal drop                    internal networks have no path out…
 *     oifname @internal drop                    …and none in
 *     iifname @bridges oifname @bridges drop    different networks are isolated
 *     oifname @bridges ct state established,related accept   replies come back
 *     oifname @bridges drop                     no unsolicited ingress from outside
 *     iifname @bridges accept                   egress to the outside
 *   postrouting (nat hook, priority srcnat):
 *     ip saddr @masq4 ip daddr != @nets4 masquerade
 *     ip6 saddr @masq6 ip6 daddr != @nets6 masquerade
 *
 * Traffic between two members of one bridge is switched, not routed, so it never reaches
 * the inet forward hook unless br_netfilter is loaded; the allow_pairs rule keeps it
 * working when it is.
 */
import { NsnetError, isNsnetError } from '../errors.js';
import { Nft } from '../kernel/nftables/nft.js';
import type { NetworkRecord } from '../engine/types.js';
import { publish } from '../diagnostics.js';

export const TABLE_FAMILY = 'inet';
export const TABLE_NAME = 'nsnet';
const T = `${TABLE_FAMILY} ${TABLE_NAME}`;

const BASE = `
add table ${T}
add set ${T} bridges { type ifname; }
add set ${T} internal { type ifname; }
add set ${T} allow_pairs { type ifname . ifname; }
add set ${T} nets4 { type ipv4_addr; flags interval; }
add set ${T} nets6 { type ipv6_addr; flags interval; }
add set ${T} masq4 { type ipv4_addr; flags interval; }
add set ${T} masq6 { type ipv6_addr; flags interval; }
add chain ${T} forward { type filter hook forward priority filter; policy accept; }
add rule ${T} forward iifname . oifname @allow_pairs accept
add rule ${T} forward iifname @internal drop
add rule ${T} forward oifname @internal drop
add rule ${T} forward iifname @bridges oifname @bridges drop
add rule ${T} forward oifname @bridges ct state established,related accept
add rule ${T} forward oifname @bridges drop
add rule ${T} forward iifname @bridges accept
add chain ${T} postrouting { type nat hook postrouting priority srcnat; policy accept; }
add rule ${T} postrouting ip saddr @masq4 ip daddr != @nets4 masquerade
add rule ${T} postrouting ip6 saddr @masq6 ip6 daddr != @nets6 masquerade
`;

const q = (s: string): string => JSON.stringify(s);

/** The element statements (without verb) that describe one network in the sets. */
function networkElements(n: NetworkRecord): Array<[set: string, elem: string]> {
  const out: Array<[string, string]> = [
    ['bridges', q(n.bridge)],
    ['allow_pairs', `${q(n.bridge)} . ${q(n.bridge)}`],
  ];
  if (n.internal) out.push(['internal', q(n.bridge)]);
  for (const s of n.subnets) {
    const v6 = s.cidr.includes(':');
    out.push([v6 ? 'nets6' : 'nets4', s.cidr]);
    if (n.masquerade && !n.internal) out.push([v6 ? 'masq6' : 'masq4', s.cidr]);
  }
  return out;
}

function elementScript(verb: 'add' | 'delete', elems: Array<[string, string]>): string {
  return elems.map(([set, e]) => `${verb} element ${T} ${set} { ${e} }`).join('\n');
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

  tableExists(): boolean {
    return this.ctx().listTables().some((t) => t.family === TABLE_FAMILY && t.name === TABLE_NAME);
  }

  /**
   * Rebuilds the table from `networks` in one transaction (create-then-delete-then-create,
   * so it works whether or not the table exists). Used when the table is missing, and to
   * repair drift.
   */
  rebuild(networks: readonly NetworkRecord[]): void {
    const script = [
      `add table ${T}`,
      `delete table ${T}`,
      BASE.trim(),
      elementScript('add', networks.flatMap(networkElements)),
    ].filter(Boolean).join('\n');
    this.ctx().runText(script);
    publish('firewall:rebuild', { networks: networks.length });
  }

  /** Adds a network's elements; builds the table first if it is missing. */
  addNetwork(n: NetworkRecord, all: readonly NetworkRecord[]): void {
    if (!this.tableExists()) {
      this.rebuild(all.some((x) => x.name === n.name) ? all : [...all, n]);
      return;
    }
    this.ctx().runText(elementScript('add', networkElements(n)));
  }

  /**
   * Removes a network's elements. If the kernel no longer holds some of them (someone
   * edited our table), the whole table is rebuilt from `remaining` instead.
   */
  removeNetwork(n: NetworkRecord, remaining: readonly NetworkRecord[]): void {
    if (!this.tableExists()) {
      if (remaining.length > 0) this.rebuild(remaining);
      return;
    }
    try {
      this.ctx().runText(elementScript('delete', networkElements(n)));
    } catch (e) {
      if (!isNsnetError(e, 'NFT_ERROR')) throw e;
      this.rebuild(remaining);
    }
  }

  /** Deletes nsnet's table, and nothing else. */
  deleteTable(): void {
    if (!this.tableExists()) return;
    this.ctx().runText(`delete table ${T}`);
  }
}

export function firewallUnavailable(e: unknown): NsnetError | undefined {
  return isNsnetError(e, 'NFT_UNAVAILABLE') ? e : undefined;
}
