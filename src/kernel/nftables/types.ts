/**
 * The part of the libnftables JSON schema (libnftables-json(5), nftables 1.0.6, JSON schema
 * version 1) that nsnet writes and reads: tables, chains, rules, sets, maps, elements, and
 * the add/create/insert/replace/delete/flush/list commands over them.
 *
 * Thin on purpose: field names are the schema's, values are what libnftables accepts. Things
 * learnt from 1.0.6 itself (checked against the library, not just the man page):
 * - A map's `map` (data type) must be a string. A concatenated data type (`["ipv4_addr",
 *   "inet_service"]`) is silently ignored by 1.0.6's JSON parser, which then creates a *set*;
 *   Nft.run() rejects it. Create such maps with the text syntax
 *   (`add map inet t m { type inet_proto . inet_service : ipv4_addr . inet_service; }`);
 *   their elements can then be added through JSON with `concat` values.
 * - Verdicts as map data are objects (`{ accept: null }`, `{ jump: { target: 'c' } }`);
 *   the bare string `"accept"` fails with "Can't parse symbolic netfilter verdict expressions".
 * - A string that is not a literal address where an address is expected is resolved as a
 *   host name (getaddrinfo: DNS). Pass literal addresses only; prefixes as `{ prefix }`,
 *   never as "10.0.0.0/8".
 * - Adding one element to an `interval` set makes libnftables fetch the whole set first
 *   (for merging), so its cost grows with the set; plain sets and maps stay flat.
 */

export type NftFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';
export type NftChainType = 'filter' | 'nat' | 'route';
export type NftSetFlag = 'constant' | 'interval' | 'timeout' | 'dynamic';

/** A data type name (`ipv4_addr`, `inet_service`, `ifname`, `verdict`…) or, for a set key, a concatenation. */
export type NftDataType = string | string[];

export interface NftTable {
  family: NftFamily;
  name: string;
  handle?: number;
  flags?: string | string[];
  comment?: string;
}

export interface NftChain {
  family: NftFamily;
  table: string;
  name: string;
  handle?: number;
  /** Base chains only: type, hook, prio (a number; `filter` is 0, `dstnat` -100, `srcnat` 100) and policy. */
  type?: NftChainType;
  hook?: NftHook;
  prio?: number;
  policy?: 'accept' | 'drop';
  /** netdev ingress/egress chains: the device(s). */
  dev?: string | string[];
  comment?: string;
}

export interface NftRule {
  family: NftFamily;
  table: string;
  chain: string;
  /** Required to delete or replace a rule; the position for insert/add with `handle`/`index`. */
  handle?: number;
  index?: number;
  expr?: NftStatement[];
  comment?: string;
}

interface NftSetBase {
  family: NftFamily;
  table: string;
  name: string;
  handle?: number;
  /** Key type; an array for a concatenated key (`["ipv4_addr", "inet_service"]`). */
  type?: NftDataType;
  flags?: NftSetFlag[];
  policy?: 'performance' | 'memory';
  /** Initial elements (add/create), or the current ones (list output). */
  elem?: NftSetElem[];
  timeout?: number;
  'gc-interval'?: number;
  size?: number;
  'auto-merge'?: boolean;
  comment?: string;
}

export interface NftSet extends NftSetBase {
  elem?: NftExpression[];
}

export interface NftMap extends NftSetBase {
  /** Data type: a single type name or 'verdict'. Not an array in 1.0.6 (see the file comment). */
  map: string;
  elem?: NftMapElem[];
}

/** The element list of a set or map, for add/delete/create element. */
export interface NftElement {
  family: NftFamily;
  table: string;
  /** The set or map. */
  name: string;
  elem: NftSetElem[];
}

/** A set element: a value, or `{ elem: { val, timeout?, comment? } }` to attach options. */
export type NftSetElem = NftExpression | NftMapElem;
/** A map element: `[key, data]`. */
export type NftMapElem = [NftExpression, NftExpression];

export interface NftElemWithOptions {
  elem: { val: NftExpression; timeout?: number; expires?: number; comment?: string; counter?: unknown };
}

export type NftVerdict =
  | { accept: null }
  | { drop: null }
  | { continue: null }
  | { return: null }
  | { jump: { target: string } }
  | { goto: { target: string } };

/**
 * An expression: an immediate (`"10.0.0.1"`, `80`, `"tcp"`), a set reference (`"@name"`),
 * or one of the expression objects. Kinds not listed are still valid JSON for libnftables;
 * they can be written through the last member.
 */
export type NftExpression =
  | string
  | number
  | boolean
  | NftExpression[]
  | NftVerdict
  | NftElemWithOptions
  | { concat: NftExpression[] }
  | { set: NftExpression[] | string }
  | { map: { key: NftExpression; data: NftExpression } }
  | { prefix: { addr: NftExpression; len: number } }
  | { range: [NftExpression, NftExpression] }
  | { payload: { protocol: string; field: string } | { base: 'll' | 'nh' | 'th'; offset: number; len: number } }
  | { meta: { key: string } }
  | { ct: { key: string; family?: 'ip' | 'ip6'; dir?: 'original' | 'reply' } }
  | { fib: { result: string; flags?: string[] } }
  | { '&': [NftExpression, NftExpression] }
  | { '|': [NftExpression, NftExpression] }
  | { [kind: string]: unknown };

export type NftMatchOp = '==' | '!=' | '<' | '>' | '<=' | '>=' | 'in';

/** A rule statement. The common ones are spelled out; others pass through the last member. */
export type NftStatement =
  | NftVerdict
  | { match: { op: NftMatchOp; left: NftExpression; right: NftExpression } }
  | { counter: null | { packets: number; bytes: number } }
  | { vmap: { key: NftExpression; data: NftExpression } }
  | { snat: NftNatArgs | null }
  | { dnat: NftNatArgs | null }
  | { masquerade: { port?: NftExpression; flags?: string | string[] } | null }
  | { redirect: { port?: NftExpression; flags?: string | string[] } | null }
  | { reject: { type?: string; expr?: string } | null }
  | { log: { prefix?: string; level?: string; group?: number } | null }
  | { set: { op: 'add' | 'update' | 'delete'; elem: NftExpression; set: string } }
  | { mangle: { key: NftExpression; value: NftExpression } }
  | { notrack: null }
  | { [kind: string]: unknown };

export interface NftNatArgs {
  addr?: NftExpression;
  port?: NftExpression;
  /** Needed in inet tables: which address family `addr` is. */
  family?: 'ip' | 'ip6';
  flags?: string | string[];
}

/** The objects a command takes and a listing returns. */
export type NftObject =
  | { table: NftTable }
  | { chain: NftChain }
  | { rule: NftRule }
  | { set: NftSet }
  | { map: NftMap }
  | { element: NftElement };

/** Objects named only by family/table/name (delete, flush, list). */
export interface NftTableRef { family: NftFamily; name: string; handle?: number }
export interface NftInTableRef { family: NftFamily; table: string; name: string; handle?: number }

export type NftCommand =
  | { add: NftObject }
  | { create: NftObject }
  | { insert: { rule: NftRule } }
  | { replace: { rule: NftRule } }
  | { delete: NftDeleteTarget }
  | { flush: NftFlushTarget }
  | { list: NftListTarget };

export type NftDeleteTarget =
  | { table: NftTableRef }
  | { chain: NftInTableRef }
  | { rule: NftRule & { handle: number } }
  | { set: NftInTableRef }
  | { map: NftInTableRef }
  | { element: NftElement };

/** `flush ruleset` is deliberately absent: nsnet never flushes what it does not own (DESIGN 3). */
export type NftFlushTarget =
  | { table: NftTableRef }
  | { chain: NftInTableRef }
  | { set: NftInTableRef }
  | { map: NftInTableRef };

export type NftListTarget =
  | { table: NftTableRef }
  | { tables: null }
  | { chain: NftInTableRef }
  | { set: NftInTableRef }
  | { map: NftInTableRef }
  | { ruleset: null };

export interface NftMetainfo {
  metainfo: { version: string; release_name: string; json_schema_version: number };
}

/** What a list command prints: metainfo first, then the objects. */
export interface NftOutput {
  nftables: Array<NftMetainfo | NftObject>;
}
