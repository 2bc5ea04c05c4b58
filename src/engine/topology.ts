/**
 * Topology files: the YAML that `nsnet apply/plan/down -f FILE` reads. Parsing is pure
 * (`parseTopology`); only `loadTopology` reads the disk.
 *
 * ```yaml
 * networks:
 *   frontend:
 *     subnets: [192.168.10.0/24, "fd00:10::/64"]  # or `subnet:`; omitted: picked from a pool
 *     gateway: 192.168.10.1                       # or `gateways: [...]`, one per subnet at most
 *     internal: false
 *     masquerade: true
 *     mtu: 1500
 *     ipv6: true                                  # also pick an IPv6 /64 from the pool
 *     bridge: br-front
 *   lan:                                          # macvlan/ipvlan: interfaces on a host interface's LAN
 *     driver: macvlan                             # or ipvlan; default bridge
 *     parent: eth0                                # required for macvlan/ipvlan
 *     mode: bridge                                # macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s
 *     subnet: 192.168.1.0/24                      # required: the LAN's
 *     gateway: 192.168.1.1                        # the LAN's router
 *     ipRange: 192.168.1.192/27                   # or `ipRanges:`; dynamic addresses only from here
 *     auxAddresses: { printer: 192.168.1.200 }    # never handed out
 *     shim: 192.168.1.223                         # or a list; macvlan: host address for host↔endpoint traffic
 * namespaces:
 *   web:
 *     networks:
 *       frontend: { ip: 192.168.10.10, ifname: eth0, aliases: [www] }  # or `ips:`, `mac:`
 *     publish:                                    # published ports (Docker's -p syntax)
 *       - "80:80/tcp"
 *       - "127.0.0.1:8443:443"
 *       - { spec: "8080:80", network: frontend, from: [203.0.113.0/24] }
 *   api:
 *     networks: [backend]                         # list form: addresses from IPAM
 *   lonely: {}
 * policies:                                       # evaluated by priority (lower first), then creation order
 *   - { action: allow, from: frontend, to: backend }
 *   - { action: deny, from: frontend, to: db, ports: ["3306/tcp"], priority: 10, name: no-fe-db }
 * ```
 *
 * Three passes, each reporting the problem that comes first in the file as ONE line
 * `FILE:LINE:COL: key.path: what is wrong` (a CLI prints it as is; an editor can jump to it):
 * 1. YAML syntax (the `yaml` library's own errors and warnings);
 * 2. shape — unknown keys, wrong types, invalid names — with a zod schema; zod issue paths
 *    are mapped back to YAML nodes, whose source ranges a LineCounter turns into line:col;
 * 3. meaning — addresses, CIDRs, MACs, interface names, MTUs, and what refers to what — by
 *    hand, with the ipam/ and kernel helpers the engine itself uses, so a file that parses is
 *    one the engine accepts.
 *
 * The result is canonical (CIDRs and addresses as `Cidr`/`IpAddress` print them, MACs in
 * lowercase, `subnet:`/`gateway:`/`ip:` folded into their list forms, port specs as
 * `parsePortSpec` normalises them, policy selectors qualified as `network:NAME`/`ns:NAME`)
 * and holds only what the user declared, plus defaults that must not depend on the host:
 * interface names, the network a port is published on (the namespace's first non-internal
 * network), and policy names (`<file name>-<index>`). The planner compares declared with
 * declared, so a pool-picked subnet never reads as a change.
 */
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { NsnetError, isNsnetError } from '../errors.js';
import { IpAddress, isUnicastMac, MacAddress } from '../ipam/address.js';
import { defaultGateway } from '../ipam/allocator.js';
import { Cidr } from '../ipam/cidr.js';
import { validateGateway, validateSubnets } from '../ipam/validate.js';
import { validateIfname } from '../kernel/netlink/route/link.js';
import { portsOverlap } from './planner.js';
import { IPVLAN_MODES, MACVLAN_MODES, isVlanDriver } from '../drivers/macvlan.js';
import { validateIpamOptions } from '../ipam/limits.js';
import { parsePortFilter, parsePortSpec, type PortSpec } from './ports.js';
import type { EndpointSpec, NetworkSpec, PolicySpec, Topology } from './types.js';

/** Network and namespace names (DESIGN.md vocabulary); 64 fits a path component and a DNS label. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** One DNS label (RFC 1123 §2.1: letters, digits, hyphens, not at either end), 1-63 octets. */
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** 68: the smallest MTU every IPv4 host must accept (RFC 791); 65535: the largest IP packet. */
const MTU_MIN = 68;
const MTU_MAX = 65535;
/** The smallest MTU of a link that carries IPv6 (RFC 8200 §5); below it the kernel disables IPv6. */
const MTU_MIN_IPV6 = 1280;

// ---------------------------------------------------------------------------------------------
// Pass 2: the shape, as a zod schema

/** A strict object whose unknown-key error lists the keys that are allowed. */
function strict<T extends z.ZodRawShape>(shape: T, allowed: readonly string[] = Object.keys(shape)) {
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key (expected one of: ${allowed.join(', ')})` : undefined),
  });
}

const name = z.string().regex(NAME_PATTERN, {
  error: (iss) =>
    `invalid name ${JSON.stringify(iss.input)}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit`,
});

const networkSchema = strict({
  driver: z.enum(['bridge', 'macvlan', 'ipvlan'], { error: (iss) => `unknown driver ${JSON.stringify(iss.input)} (expected: bridge, macvlan, ipvlan)` }).optional(),
  subnet: z.string().optional(),
  subnets: z.array(z.string()).optional(),
  gateway: z.string().optional(),
  gateways: z.array(z.string()).optional(),
  internal: z.boolean().optional(),
  masquerade: z.boolean().optional(),
  mtu: z.number().int().optional(),
  dns: z.boolean().optional(),
  dnsServers: z.array(z.string()).optional(),
  ipv6: z.boolean().optional(),
  bridge: z.string().optional(),
  parent: z.string().optional(),
  mode: z.string().optional(),
  ipRange: z.string().optional(),
  ipRanges: z.array(z.string()).optional(),
  auxAddresses: z.record(z.string(), z.string()).optional(),
  shim: z.union([z.string(), z.array(z.string())]).optional(),
}).nullable();

const attachmentSchema = strict({
  ip: z.string().optional(),
  ips: z.array(z.string()).optional(),
  ifname: z.string().optional(),
  mac: z.string().optional(),
  aliases: z.array(z.string()).optional(),
}).nullable();

/** A published port: a spec string, or a mapping that also picks the network and the sources. */
const publishSchema = z.union([
  z.string(),
  strict({
    spec: z.string(),
    network: name.optional(),
    from: z.array(z.string()).optional(),
  }),
]);

const namespaceSchema = strict({
  networks: z.union([z.array(name), z.record(name, attachmentSchema)]).nullable().optional(),
  publish: z.array(publishSchema).nullable().optional(),
}).nullable();

const policySchema = strict({
  name: name.optional(),
  action: z.enum(['allow', 'deny'], {
    error: (iss) => (iss.input === undefined ? 'missing (expected allow or deny)' : `unknown action ${JSON.stringify(iss.input)} (expected: allow, deny)`),
  }),
  from: z.string(),
  to: z.string(),
  ports: z.array(z.union([z.string(), z.number().int()])).optional(),
  priority: z.number().int().optional(),
});

const topologySchema = strict({
  networks: z.record(name, networkSchema).nullable().optional(),
  namespaces: z.record(name, namespaceSchema).nullable().optional(),
  policies: z.array(policySchema).nullable().optional(),
}).nullable();

type RawTopology = z.infer<typeof topologySchema>;
type RawNetwork = NonNullable<z.infer<typeof networkSchema>>;
type RawAttachment = NonNullable<z.infer<typeof attachmentSchema>>;
type RawPublish = z.infer<typeof publishSchema>;
type RawPolicy = z.infer<typeof policySchema>;

// ---------------------------------------------------------------------------------------------
// Problems and where they are

type Path = readonly (string | number)[];

/** Something wrong at `path`; `at: 'key'` points at the mapping key rather than its value. */
interface Problem {
  path: Path;
  message: string;
  at: 'key' | 'value';
  /** A required key that is absent: reported after other problems at the same place. */
  missing?: boolean;
}

/** `networks.frontend.subnets[1]`; keys that are not plain identifiers are quoted. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Source offset of the node at `path` (its key when `at` is 'key'), or of its nearest ancestor. */
function offsetOf(doc: Document, path: Path, at: 'key' | 'value'): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isAlias(node)) node = node.resolve(doc);
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return offset;
      const keyStart = rangeStart(pair.key);
      const valueStart = rangeStart(pair.value);
      if (last && at === 'key') return keyStart ?? offset;
      offset = valueStart ?? keyStart ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      const start = rangeStart(item);
      if (start === undefined) return offset;
      offset = start;
      node = item;
    } else {
      return offset;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range?.[0];
}

/** The value at `path` in the plain-JS form of the document (for "got …" in messages). */
function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (Buffer.isBuffer(v)) return 'binary data';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  null: 'nothing',
};

/** Flattens zod issues into problems with absolute paths and one-line messages. */
function zodProblems(issues: readonly z.core.$ZodIssue[], prefix: Path, root: unknown): Problem[] {
  const out: Problem[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...(issue.path as (string | number)[])];
    switch (issue.code) {
      case 'invalid_union': {
        // A union (a namespace's `networks`: a list or a mapping) fails in every branch. If a
        // branch got past its type check, its errors are the useful ones; if none did, the
        // value has the wrong type for all of them.
        const deeper = issue.errors.find((branch) => !branch.every((i) => i.code === 'invalid_type' && i.path.length === 0));
        if (deeper) {
          out.push(...zodProblems(deeper, path, root));
        } else {
          const expected = issue.errors.map((b) => EXPECTED[(b[0] as { expected?: string }).expected ?? ''] ?? 'something else');
          out.push({ path, at: 'value', message: `expected ${expected.join(' or ')}, got ${describeValue(valueAt(root, path))}` });
        }
        break;
      }
      case 'invalid_key': {
        const inner = issue.issues[0];
        out.push({ path, at: 'key', message: inner?.message ?? issue.message });
        break;
      }
      case 'unrecognized_keys':
        for (const key of issue.keys) out.push({ path: [...path, key], at: 'key', message: issue.message });
        break;
      case 'invalid_type': {
        const expected = path.length === 0 ? 'a mapping with networks: and namespaces:' : EXPECTED[issue.expected] ?? issue.expected;
        const value = valueAt(root, path);
        const parent = valueAt(root, path.slice(0, -1));
        // A required key (a policy's `from:`, say) that is absent: point at its mapping.
        const missing = path.length > 0 && value === undefined && parent !== null && typeof parent === 'object' && !Array.isArray(parent) &&
          !Object.prototype.hasOwnProperty.call(parent, path[path.length - 1]!);
        out.push(missing
          ? { path, at: 'value', message: `missing (expected ${expected})`, missing: true }
          : { path, at: 'value', message: `expected ${expected}, got ${describeValue(value)}` });
        break;
      }
      default:
        out.push({ path, at: 'value', message: issue.message, missing: valueAt(root, path) === undefined });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/**
 * Parses and validates a topology file's text. `file` names the file in error messages and
 * becomes the topology's `source` as given (`loadTopology` makes it absolute). Throws
 * TOPOLOGY_INVALID with a one-line `file:line:col: key.path: problem` message.
 */
export function parseTopology(text: string, file: string): Topology {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const fail = (offset: number, path: Path, message: string): never => {
    const { line, col } = lineCounter.linePos(offset);
    const where = path.length > 0 ? `${formatPath(path)}: ` : '';
    throw new NsnetError('TOPOLOGY_INVALID', `${file}:${line}:${col}: ${where}${message}`, { object: file });
  };
  const failFirst = (problems: readonly Problem[]): void => {
    if (problems.length === 0) return;
    const located = problems.map((p) => ({ p, offset: offsetOf(doc, p.path, p.at) }));
    located.sort((a, b) => a.offset - b.offset || Number(a.p.missing ?? false) - Number(b.p.missing ?? false));
    const first = located[0]!;
    fail(first.offset, first.p.path, first.p.message);
  };

  // Pass 1: YAML syntax. Warnings (an unknown tag, say) are errors too: what they would
  // silently turn into is not what the user wrote.
  const yamlError = doc.errors[0] ?? doc.warnings[0];
  if (yamlError) {
    const message = yamlError.code === 'MULTIPLE_DOCS'
      ? "a topology file holds one YAML document (found a second '---')"
      : yamlError.message;
    fail(yamlError.pos[0], [], message);
  }
  // Keys must be scalars (`? [a, b]: 1` would be stringified), and every alias must resolve.
  let structural: { offset: number; message: string } | undefined;
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key)) {
        structural ??= { offset: rangeStart(pair.key) ?? 0, message: 'a key must be a plain name, not a list or a mapping' };
        return visit.BREAK;
      }
      return undefined;
    },
    Alias(_, alias) {
      if (alias.resolve(doc) === undefined) {
        structural ??= { offset: rangeStart(alias) ?? 0, message: `alias *${alias.source} has no anchor before it` };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  if (structural) fail(structural.offset, [], structural.message);
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    // The alias-expansion limit ("billion laughs"); the library gives no position.
    fail(0, [], cause instanceof Error ? cause.message : String(cause));
  }

  // Pass 2: shape.
  const shaped = topologySchema.safeParse(root === undefined ? null : root);
  if (!shaped.success) {
    failFirst(zodProblems(shaped.error.issues, [], root));
  }

  // Pass 3: meaning.
  const problems: Problem[] = [];
  const topology = interpret(shaped.data as RawTopology, file, problems);
  failFirst(problems);
  return topology;
}

/** Reads and parses a topology file; its `source` is the file's absolute path. */
export function loadTopology(path: string): Topology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (cause as Error).message;
    throw new NsnetError('TOPOLOGY_INVALID', `cannot read topology file ${path}: ${why}`, { object: path, cause });
  }
  return { ...parseTopology(text, path), source: resolve(path) };
}

// ---------------------------------------------------------------------------------------------
// Pass 3: meaning

/** What later checks need to know about a declared network. */
interface NetworkFacts {
  /** The declared subnets, or undefined when they are picked from the pool. */
  subnets: Cidr[] | undefined;
  /** The gateway of each declared subnet (declared or default), by subnet index. */
  gateways: Map<number, IpAddress>;
  /** Static addresses already given, to the namespace that has them. */
  staticIps: Map<string, string>;
  /** MACs already given, to the namespace that has them. */
  macs: Map<string, string>;
}

/** Runs `check`, turning an NsnetError into a problem at `path`; returns undefined then. */
function attempt<T>(problems: Problem[], path: Path, check: () => T): T | undefined {
  try {
    return check();
  } catch (e) {
    if (!isNsnetError(e)) throw e;
    problems.push({ path, at: 'value', message: e.message });
    return undefined;
  }
}

/** `x` and `xs` both given: point at whichever comes second. */
function bothGiven(problems: Problem[], base: Path, one: string, many: string): void {
  problems.push({ path: [...base, many], at: 'key', message: `give either \`${one}\` or \`${many}\`, not both` });
}

/** The entries of a `one:`/`many:` pair of keys, each with its own path. */
function entries(base: Path, one: string, oneValue: string | undefined, many: string, manyValue: string[] | undefined) {
  if (manyValue !== undefined) return manyValue.map((text, i) => ({ text, path: [...base, many, i] as Path }));
  if (oneValue !== undefined) return [{ text: oneValue, path: [...base, one] as Path }];
  return [];
}

function interpret(raw: RawTopology, source: string, problems: Problem[]): Topology {
  const topology: Topology = { source, networks: [], namespaces: [], endpoints: [], publish: [], policies: [] };
  const facts = new Map<string, NetworkFacts>();
  const hostPorts: HostPortUse[] = [];
  const allSubnets: { cidr: Cidr; network: string }[] = [];
  const bridges = new Map<string, string>();

  for (const [netName, rawNet] of Object.entries(raw?.networks ?? {})) {
    const spec = interpretNetwork(netName, rawNet ?? {}, problems, facts, allSubnets, bridges);
    topology.networks.push(spec);
  }

  for (const [nsName, rawNs] of Object.entries(raw?.namespaces ?? {})) {
    topology.namespaces.push({ name: nsName });
    const base: Path = ['namespaces', nsName, 'networks'];
    const networks = rawNs?.networks ?? [];
    const attachments: { network: string; path: Path; at: 'key' | 'value'; raw: RawAttachment }[] = Array.isArray(networks)
      ? networks.map((network, i) => ({ network, path: [...base, i], at: 'value' as const, raw: {} }))
      : Object.entries(networks).map(([network, att]) => ({ network, path: [...base, network], at: 'key' as const, raw: att ?? {} }));

    const seen = new Set<string>();
    const ifnames = new Map<string, string>();
    const endpoints: EndpointSpec[] = [];
    for (const a of attachments) {
      const net = facts.get(a.network);
      if (!net) {
        const declared = [...facts.keys()];
        problems.push({
          path: a.path, at: a.at,
          message: `network ${a.network} is not declared (${declared.length ? `declared networks: ${declared.join(', ')}` : 'no networks are declared'})`,
        });
        continue;
      }
      if (seen.has(a.network)) {
        problems.push({ path: a.path, at: a.at, message: `network ${a.network} is listed twice` });
        continue;
      }
      seen.add(a.network);
      const spec = interpretAttachment(nsName, a.network, net, a.raw, a.path, problems, ifnames);
      endpoints.push(spec);
    }

    // Default interface names, in declaration order: eth0, eth1 …, skipping explicit ones.
    let n = 0;
    for (const spec of endpoints) {
      if (spec.ifname !== undefined) continue;
      while (ifnames.has(`eth${n}`)) n++;
      spec.ifname = `eth${n}`;
      ifnames.set(spec.ifname, spec.network);
    }
    topology.endpoints.push(...endpoints.map(orderEndpointKeys));

    if (rawNs?.publish) {
      const networkSpecs = new Map(topology.networks.map((n) => [n.name, n]));
      topology.publish.push(...interpretPublish(nsName, rawNs.publish, endpoints, networkSpecs, problems, hostPorts));
    }
  }

  topology.policies = interpretPolicies(raw?.policies ?? [], source, topology, problems);
  return topology;
}

// ---------------------------------------------------------------------------------------------
// Published ports

/** A host port range that a spec in the file claims, to find two specs that claim the same port. */
interface HostPortUse {
  port: PortSpec;
  namespace: string;
}

/** What the network gives its endpoints: IPv4 unless only IPv6 subnets are pinned; IPv6 if asked. */
function families(n: NetworkSpec): { v4: boolean; v6: boolean } {
  const subnets = n.subnets ?? [];
  return {
    v4: subnets.length === 0 || subnets.some((t) => !t.includes(':')),
    v6: n.ipv6 === true || subnets.some((t) => t.includes(':')),
  };
}

/** Parses a `from:` entry the way the engine does: a CIDR, or an address as a /32 or /128. */
function sourceCidr(text: string): string {
  const t = text.trim();
  if (t.includes('/')) return Cidr.parse(t).toString();
  const ip = IpAddress.parse(t);
  return Cidr.containing(ip, ip.family === 4 ? 32 : 128).toString();
}

/**
 * A namespace's `publish:` list → one entry for the plain spec strings, one per mapping. The
 * network is resolved here when the file leaves it out — the namespace's first non-internal
 * network in declaration order — so that the plan does not depend on the order the engine
 * happens to list endpoints in. What only the host can tell (whether it has a host address,
 * whether a socket already holds the port) is checked by the engine when the plan runs.
 */
function interpretPublish(
  nsName: string,
  items: readonly RawPublish[],
  endpoints: readonly EndpointSpec[],
  networks: ReadonlyMap<string, NetworkSpec>,
  problems: Problem[],
  hostPorts: HostPortUse[],
): Topology['publish'] {
  const base: Path = ['namespaces', nsName, 'publish'];
  const out: Topology['publish'] = [];
  let plain: Topology['publish'][number] | undefined;
  const attached = endpoints.map((e) => e.network);
  const defaultNetwork = attached.find((n) => networks.get(n)?.internal !== true && !isVlanDriver(networks.get(n)?.driver));

  items.forEach((item, i) => {
    const raw = typeof item === 'string' ? { spec: item } : item;
    const itemPath: Path = typeof item === 'string' ? [...base, i] : [...base, i, 'spec'];

    // The network: declared, attached and not internal; or the default.
    let network: string | undefined;
    if (raw.network !== undefined) {
      const path: Path = [...base, i, 'network'];
      if (!attached.includes(raw.network)) {
        problems.push({
          path, at: 'value',
          message: `namespace ${nsName} is not connected to network ${raw.network} (its networks: ${attached.join(', ') || 'none'})`,
        });
        return;
      }
      if (networks.get(raw.network)?.internal === true) {
        problems.push({ path, at: 'value', message: `network ${raw.network} is internal (no path in from outside)` });
        return;
      }
      if (isVlanDriver(networks.get(raw.network)?.driver)) {
        problems.push({ path, at: 'value', message: `network ${raw.network} is ${networks.get(raw.network)!.driver}: no NAT, no published ports (its endpoints have their own LAN addresses)` });
        return;
      }
      network = raw.network;
    } else {
      if (defaultNetwork === undefined) {
        problems.push({
          path: typeof item === 'string' ? itemPath : [...base, i], at: 'value',
          message: attached.length === 0
            ? `namespace ${nsName} has no network to publish ports on`
            : `namespace ${nsName} has no non-internal network to publish ports on (its networks: ${attached.join(', ')})`,
        });
        return;
      }
      network = defaultNetwork;
    }

    const port = attempt(problems, itemPath, () => parsePortSpec(raw.spec));
    if (!port) return;
    const problem = (message: string): void => {
      problems.push({ path: itemPath, at: 'value', message: `${port.spec}: ${message}` });
    };
    if (port.hostIp === '::1') {
      problem('the kernel cannot DNAT IPv6 loopback (::1) traffic to another host; use 127.0.0.1 or a host address');
      return;
    }
    if (port.hostIp !== null) {
      const family = port.hostIp.includes(':') ? 6 : 4;
      const has = families(networks.get(network)!);
      if (family === 6 ? !has.v6 : !has.v4) {
        problem(`namespace ${nsName} has no IPv${family} address on network ${network} to forward it to`);
        return;
      }
    }
    const clash = hostPorts.find((u) => portsOverlap(u.port, port));
    if (clash) {
      const range = port.hostPort === port.hostPortEnd ? `${port.hostPort}` : `${port.hostPort}-${port.hostPortEnd}`;
      problem(`host port ${range}/${port.proto} is already published for namespace ${clash.namespace} (${clash.port.spec})`);
      return;
    }
    hostPorts.push({ port, namespace: nsName });

    let from: string[] | undefined;
    if (raw.from !== undefined) {
      if (raw.from.length === 0) {
        problems.push({ path: [...base, i, 'from'], at: 'value', message: 'an empty list: omit `from` to accept every source' });
        return;
      }
      from = [];
      for (const [j, text] of raw.from.entries()) {
        const cidr = attempt(problems, [...base, i, 'from', j], () => sourceCidr(text));
        if (cidr !== undefined && !from.includes(cidr)) from.push(cidr);
      }
    }

    if (typeof item === 'string') {
      if (!plain) {
        plain = { namespace: nsName, specs: [], network };
        out.push(plain);
      }
      plain.specs.push(port.spec);
    } else {
      const entry: Topology['publish'][number] = { namespace: nsName, specs: [port.spec], network };
      if (from) entry.from = from;
      out.push(entry);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Policies

/** 0-100000, as the engine accepts; omitted means 100. */
const PRIORITY_MAX = 100000;

/**
 * The name of a policy the file leaves unnamed: `<file name without extension>-<index in
 * policies:>`, e.g. `three-tier-0`, made to fit NAME_PATTERN. It depends only on the file's
 * name and the policy's place in it, so applying the same file twice plans nothing; moving
 * an unnamed policy renames it (it is removed and added again). Name policies to avoid that.
 */
export function defaultPolicyName(file: string, index: number): string {
  const suffix = `-${index}`;
  const stem = basename(file).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'policy';
  return `${stem.slice(0, 64 - suffix.length)}${suffix}`;
}

/**
 * A selector, canonical: `outside`, a CIDR (an address becomes a /32 or /128), or the name
 * of a network or namespace qualified as `network:NAME` or `ns:NAME` — so the engine never
 * has to guess, even when a network elsewhere shares a namespace's name. Names must be
 * declared in this file: a topology file is self-contained, so that it means the same on
 * every host, its plan can be checked before anything runs, and `down` never leaves a
 * policy pointing at something another file or a user may remove at any time.
 */
function interpretSelector(text: string, topology: Topology): string {
  const t = text.trim();
  if (t === 'outside') return 'outside';
  const m = /^(network|net|namespace|ns|cidr):(.+)$/.exec(t);
  const kind = m?.[1];
  const value = m?.[2] ?? t;
  if (kind === 'cidr' || (!kind && /^[0-9a-fA-F:.]+(\/\d+)?$/.test(value) && /[.:]/.test(value))) {
    try {
      return sourceCidr(value);
    } catch (e) {
      if (!isNsnetError(e)) throw e;
      throw new NsnetError('TOPOLOGY_INVALID', `invalid selector "${t}": ${e.message}`);
    }
  }
  const networks = topology.networks.map((n) => n.name);
  const namespaces = topology.namespaces.map((n) => n.name);
  const isNet = networks.includes(value);
  const isNs = namespaces.includes(value);
  const list = (names: string[]): string => names.join(', ') || 'none';
  const fail = (message: string): never => {
    throw new NsnetError('TOPOLOGY_INVALID', message);
  };
  if (kind === 'network' || kind === 'net') {
    return isNet ? `network:${value}` : fail(`network ${value} is not declared in this file (declared networks: ${list(networks)})`);
  }
  if (kind === 'namespace' || kind === 'ns') {
    return isNs ? `ns:${value}` : fail(`namespace ${value} is not declared in this file (declared namespaces: ${list(namespaces)})`);
  }
  if (isNet && isNs) fail(`"${t}" is both a network and a namespace in this file: write network:${t} or ns:${t}`);
  if (isNet) return `network:${value}`;
  if (isNs) return `ns:${value}`;
  return fail(
    `selector "${t}" names nothing this file declares: use a network or a namespace declared here, a CIDR, or outside ` +
      `(networks: ${list(networks)}; namespaces: ${list(namespaces)})`,
  );
}

/** A policy's port filter, canonical: `3306/tcp`, `8000-8100/udp`, `53` (TCP and UDP). */
function canonicalPortFilter(text: string): string {
  const f = parsePortFilter(text);
  const range = f.start === f.end ? `${f.start}` : `${f.start}-${f.end}`;
  return f.protos.length === 1 ? `${range}/${f.protos[0]}` : range;
}

function interpretPolicies(items: readonly RawPolicy[], file: string, topology: Topology, problems: Problem[]): PolicySpec[] {
  const out: PolicySpec[] = [];
  const names = new Map<string, { index: number; defaulted: boolean }>();
  items.forEach((p, i) => {
    const base: Path = ['policies', i];
    const name = p.name ?? defaultPolicyName(file, i);
    const earlier = names.get(name);
    if (earlier !== undefined) {
      const holder = `${earlier.defaulted ? 'the default name of' : 'used by'} policies[${earlier.index}]`;
      problems.push(p.name !== undefined
        ? { path: [...base, 'name'], at: 'value', message: `policy name ${name} is already ${holder}` }
        : { path: base, at: 'value', message: `this policy's default name ${name} is already ${holder}: give it a name` });
      return;
    }
    names.set(name, { index: i, defaulted: p.name === undefined });
    const from = attempt(problems, [...base, 'from'], () => interpretSelector(p.from, topology));
    const to = attempt(problems, [...base, 'to'], () => interpretSelector(p.to, topology));
    if (from === undefined || to === undefined) return;
    if (from === 'outside' && to === 'outside') {
      problems.push({ path: [...base, 'to'], at: 'value', message: 'a policy from outside to outside names nothing nsnet forwards' });
      return;
    }
    for (const [side, sel] of [['from', from], ['to', to]] as const) {
      const m = /^(network|ns):(.+)$/.exec(sel);
      const nets = m?.[1] === 'network' ? [m[2]!] : m?.[1] === 'ns' ? topology.endpoints.filter((e) => e.namespace === m[2]).map((e) => e.network) : [];
      const vlanNet = topology.networks.find((n) => nets.includes(n.name) && isVlanDriver(n.driver));
      if (vlanNet) {
        problems.push({
          path: [...base, side], at: 'value',
          message: `${sel} cannot be enforced: ${m?.[1] === 'ns' ? `it is on ${vlanNet.driver} network ${vlanNet.name}, whose` : `${vlanNet.driver} network's`} traffic never passes the host's firewall`,
        });
        return;
      }
    }
    const spec: PolicySpec = { name, action: p.action, from, to };
    if (p.ports !== undefined) {
      if (p.ports.length === 0) {
        problems.push({ path: [...base, 'ports'], at: 'value', message: 'an empty list: omit `ports` to match every protocol and port' });
        return;
      }
      const ports: string[] = [];
      p.ports.forEach((port, j) => {
        const text = attempt(problems, [...base, 'ports', j], () => canonicalPortFilter(String(port)));
        if (text !== undefined && !ports.includes(text)) ports.push(text);
      });
      spec.ports = ports;
    }
    if (p.priority !== undefined) {
      if (p.priority < 0 || p.priority > PRIORITY_MAX) {
        problems.push({ path: [...base, 'priority'], at: 'value', message: `priority ${p.priority} is out of range (0-${PRIORITY_MAX}; lower runs first)` });
        return;
      }
      spec.priority = p.priority;
    }
    out.push(spec);
  });
  return out;
}

function interpretNetwork(
  netName: string,
  n: RawNetwork,
  problems: Problem[],
  facts: Map<string, NetworkFacts>,
  allSubnets: { cidr: Cidr; network: string }[],
  bridges: Map<string, string>,
): NetworkSpec {
  const base: Path = ['networks', netName];
  const spec: NetworkSpec = { name: netName };
  if (n.driver !== undefined) spec.driver = n.driver;

  // Subnets: each valid, outside the reserved ranges, and overlapping no other subnet in the file.
  if (n.subnet !== undefined && n.subnets !== undefined) bothGiven(problems, base, 'subnet', 'subnets');
  if (n.subnets !== undefined && n.subnets.length === 0) {
    problems.push({ path: [...base, 'subnets'], at: 'value', message: 'an empty list: omit `subnets` to pick one from the pool' });
  }
  const subnetEntries = entries(base, 'subnet', n.subnet, 'subnets', n.subnets);
  const subnets: Cidr[] = [];
  for (const e of subnetEntries) {
    const cidr = attempt(problems, e.path, () => {
      const c = Cidr.parse(e.text);
      validateSubnets([c]);
      return c;
    });
    if (!cidr) continue;
    const clash = subnets.find((s) => s.overlaps(cidr));
    const other = allSubnets.find((s) => s.cidr.overlaps(cidr));
    if (clash) {
      problems.push({ path: e.path, at: 'value', message: `subnet ${cidr.toString()} overlaps ${clash.toString()}` });
    } else if (other) {
      problems.push({
        path: e.path, at: 'value',
        message: `subnet ${cidr.toString()} overlaps ${other.cidr.toString()} of network ${other.network}`,
      });
    }
    subnets.push(cidr);
    allSubnets.push({ cidr, network: netName });
  }
  const declaredSubnets = subnetEntries.length > 0 ? subnets : undefined;
  if (declaredSubnets) spec.subnets = subnets.map((s) => s.toString());

  // Gateways: each a usable address of one declared subnet, at most one per subnet.
  if (n.gateway !== undefined && n.gateways !== undefined) bothGiven(problems, base, 'gateway', 'gateways');
  const gatewayEntries = entries(base, 'gateway', n.gateway, 'gateways', n.gateways);
  const gateways = new Map<number, IpAddress>();
  const inSubnets = `(${subnets.map((s) => s.toString()).join(', ')})`;
  for (const e of gatewayEntries) {
    const gw = attempt(problems, e.path, () => IpAddress.parse(e.text));
    if (!gw) continue;
    if (!declaredSubnets) {
      problems.push({ path: e.path, at: 'value', message: 'a gateway needs declared subnets (a pool-picked subnet comes with its gateway)' });
      continue;
    }
    const index = subnets.findIndex((s) => s.contains(gw));
    if (index < 0) {
      problems.push({ path: e.path, at: 'value', message: `gateway ${gw.toString()} is not in any subnet of network ${netName} ${inSubnets}` });
      continue;
    }
    const subnet = subnets[index]!;
    const usable = attempt(problems, e.path, () => {
      validateGateway(subnet, gw);
      return true;
    });
    if (!usable) continue;
    const earlier = gateways.get(index);
    if (earlier) {
      problems.push({ path: e.path, at: 'value', message: `subnet ${subnet.toString()} already has gateway ${earlier.toString()}` });
      continue;
    }
    gateways.set(index, gw);
  }
  if (gatewayEntries.length > 0) spec.gateways = [...gateways.values()].map((g) => g.toString());
  subnets.forEach((s, i) => {
    if (!gateways.has(i)) gateways.set(i, defaultGateway(s));
  });

  if (n.internal !== undefined) spec.internal = n.internal;
  if (n.masquerade !== undefined) spec.masquerade = n.masquerade;
  if (n.internal === true && n.masquerade === true) {
    problems.push({
      path: [...base, 'masquerade'], at: 'value',
      message: 'masquerade: true contradicts internal: true (an internal network has no path to the outside)',
    });
  }
  if (n.ipv6 !== undefined) spec.ipv6 = n.ipv6;
  if (n.dns !== undefined) spec.dns = n.dns;
  if (n.dnsServers !== undefined) {
    n.dnsServers.forEach((s, i) => {
      const [addr, port] = s.split('#');
      try {
        IpAddress.parse(addr!);
        if (port !== undefined && (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65535)) throw new Error('bad port');
      } catch {
        problems.push({ path: [...base, 'dnsServers', i], at: 'value', message: `invalid DNS server ${JSON.stringify(s)}: use an IP address, optionally #PORT` });
      }
    });
    spec.dnsServers = n.dnsServers;
    if (n.dns === false && n.dnsServers.length > 0) {
      problems.push({ path: [...base, 'dnsServers'], at: 'key', message: 'dnsServers given, but dns: false turns DNS off for this network' });
    }
  }

  if (n.mtu !== undefined) {
    spec.mtu = n.mtu;
    const hasIPv6 = n.ipv6 === true || subnets.some((s) => s.family === 6);
    if (n.mtu < MTU_MIN || n.mtu > MTU_MAX) {
      problems.push({ path: [...base, 'mtu'], at: 'value', message: `mtu ${n.mtu} is out of range (${MTU_MIN}-${MTU_MAX})` });
    } else if (hasIPv6 && n.mtu < MTU_MIN_IPV6) {
      problems.push({
        path: [...base, 'mtu'], at: 'value',
        message: `mtu ${n.mtu} is below ${MTU_MIN_IPV6}, the IPv6 minimum (RFC 8200 §5), on a network with IPv6`,
      });
    }
  }

  if (n.bridge !== undefined) {
    const path = [...base, 'bridge'];
    attempt(problems, path, () => validateIfname(n.bridge!));
    const owner = bridges.get(n.bridge);
    if (owner !== undefined) {
      problems.push({ path, at: 'value', message: `bridge ${n.bridge} is already the bridge of network ${owner}` });
    }
    bridges.set(n.bridge, netName);
    spec.bridge = n.bridge;
  }

  interpretVlanOptions(n, spec, base, problems, subnets, gateways);

  facts.set(netName, { subnets: declaredSubnets, gateways, staticIps: new Map(), macs: new Map() });
  return spec;
}

/** macvlan/ipvlan keys, and the IPAM keys any driver may use, checked as the engine checks them. */
function interpretVlanOptions(n: RawNetwork, spec: NetworkSpec, base: Path, problems: Problem[], subnets: Cidr[], gateways: Map<number, IpAddress>): void {
  const vlan = isVlanDriver(spec.driver);
  if (n.parent !== undefined) spec.parent = n.parent;
  if (n.mode !== undefined) spec.mode = n.mode;
  if (n.ipRange !== undefined && n.ipRanges !== undefined) bothGiven(problems, base, 'ipRange', 'ipRanges');
  const ranges = entries(base, 'ipRange', n.ipRange, 'ipRanges', n.ipRanges);
  if (ranges.length > 0) spec.ipRanges = ranges.map((r) => attempt(problems, r.path, () => Cidr.parse(r.text).toString()) ?? r.text);
  if (n.auxAddresses !== undefined) {
    spec.auxAddresses = Object.fromEntries(Object.entries(n.auxAddresses).map(([k, v]) => [k, attempt(problems, [...base, 'auxAddresses', k], () => IpAddress.parse(v).toString()) ?? v]));
  }
  if (n.shim !== undefined) {
    const list = typeof n.shim === 'string' ? [n.shim] : n.shim;
    spec.shim = list.map((v, i) => attempt(problems, typeof n.shim === 'string' ? [...base, 'shim'] : [...base, 'shim', i], () => IpAddress.parse(v).toString()) ?? v);
  }
  if (!vlan) {
    for (const key of ['parent', 'mode', 'shim'] as const) {
      if (n[key] !== undefined) problems.push({ path: [...base, key], at: 'key', message: `${key} applies to macvlan/ipvlan networks (this one is a bridge network)` });
    }
  } else {
    const driver = spec.driver!;
    const modes: readonly string[] = driver === 'macvlan' ? MACVLAN_MODES : IPVLAN_MODES;
    const problem = (path: Path, message: string, at: 'key' | 'value' = 'value'): void => { problems.push({ path, at, message }); };
    if (n.parent === undefined) problem(base, `a ${driver} network needs \`parent:\` (the host interface whose LAN it joins)`);
    else attempt(problems, [...base, 'parent'], () => validateIfname(n.parent!));
    if (n.mode !== undefined && !modes.includes(n.mode)) problem([...base, 'mode'], `unknown ${driver} mode ${JSON.stringify(n.mode)} (expected: ${modes.join(', ')})`);
    if (subnets.length === 0 && n.subnet === undefined && n.subnets === undefined) problem(base, `a ${driver} network needs \`subnet:\` (its LAN's; nsnet cannot pick it from a pool)`);
    if (n.bridge !== undefined) problem([...base, 'bridge'], `a ${driver} network has no bridge`, 'key');
    if (n.masquerade === true) problem([...base, 'masquerade'], `a ${driver} network cannot masquerade (its endpoints have their own LAN addresses; no NAT)`);
    if (n.ipv6 === true && !subnets.some((c) => c.family === 6)) problem([...base, 'ipv6'], `a ${driver} network needs the LAN's IPv6 subnet, not one from the pool`);
    if (n.shim !== undefined && driver !== 'macvlan') problem([...base, 'shim'], 'a shim is for macvlan networks', 'key');
    else if (n.shim !== undefined && (n.mode ?? 'bridge') !== 'bridge') problem([...base, 'shim'], `a shim needs mode bridge (in mode ${n.mode} it could not reach the endpoints)`, 'key');
  }
  if (subnets.length > 0 && (spec.ipRanges || spec.auxAddresses || spec.shim)) {
    const records = subnets.map((c, i) => ({ cidr: c.toString(), gateway: (gateways.get(i) ?? defaultGateway(c)).toString() }));
    attempt(problems, base, () => validateIpamOptions(spec, records));
  }
}

function interpretAttachment(
  nsName: string,
  netName: string,
  net: NetworkFacts,
  a: RawAttachment,
  base: Path,
  problems: Problem[],
  ifnames: Map<string, string>,
): EndpointSpec {
  const spec: EndpointSpec = { network: netName, namespace: nsName };

  // Static addresses: each a usable, free address of a declared subnet, one per subnet.
  if (a.ip !== undefined && a.ips !== undefined) bothGiven(problems, base, 'ip', 'ips');
  const ipEntries = entries(base, 'ip', a.ip, 'ips', a.ips);
  const ips: string[] = [];
  const usedSubnets = new Set<number>();
  for (const e of ipEntries) {
    const ip = attempt(problems, e.path, () => IpAddress.parse(e.text));
    if (!ip) continue;
    const problem = (message: string): void => {
      problems.push({ path: e.path, at: 'value', message });
    };
    const text = ip.toString();
    if (!net.subnets) {
      problem(`a static ip needs declared subnets on network ${netName} (its subnet is picked from the pool)`);
      continue;
    }
    const index = net.subnets.findIndex((s) => s.contains(ip));
    const subnet = net.subnets[index];
    if (subnet === undefined) {
      problem(`${text} is not in any subnet of network ${netName} (${net.subnets.map((s) => s.toString()).join(', ')})`);
      continue;
    }
    const where = subnet.toString();
    if (!subnet.isUsable(ip)) {
      problem(`${text} is the ${subnet.family === 4 ? 'network or broadcast' : 'subnet-router anycast'} address of ${where}`);
    } else if (net.gateways.get(index)?.equals(ip)) {
      problem(`${text} is the gateway of ${where}`);
    } else if (usedSubnets.has(index)) {
      problem(`a second address in ${where}: an endpoint has at most one per subnet`);
    } else if (net.staticIps.has(text)) {
      problem(`${text} is already the address of namespace ${net.staticIps.get(text)} on network ${netName}`);
    } else {
      usedSubnets.add(index);
      net.staticIps.set(text, nsName);
      ips.push(text);
    }
  }
  if (ipEntries.length > 0) spec.ips = ips;

  if (a.ifname !== undefined) {
    const path = [...base, 'ifname'];
    attempt(problems, path, () => validateIfname(a.ifname!));
    const owner = ifnames.get(a.ifname);
    if (a.ifname === 'lo') {
      problems.push({ path, at: 'value', message: 'ifname lo is the loopback interface' });
    } else if (owner !== undefined) {
      problems.push({ path, at: 'value', message: `ifname ${a.ifname} is already used for network ${owner} in namespace ${nsName}` });
    }
    ifnames.set(a.ifname, netName);
    spec.ifname = a.ifname;
  }

  if (a.mac !== undefined) {
    const path = [...base, 'mac'];
    const mac = attempt(problems, path, () => MacAddress.parse(a.mac!));
    if (mac) {
      const text = mac.toString();
      if (!isUnicastMac(mac)) {
        problems.push({ path, at: 'value', message: `${text} is not a unicast MAC address (${mac.isZero ? 'all zeros' : 'the group bit is set'})` });
      } else if (net.macs.has(text)) {
        problems.push({ path, at: 'value', message: `${text} is already the MAC of namespace ${net.macs.get(text)} on network ${netName}` });
      }
      net.macs.set(text, nsName);
      spec.mac = text;
    }
  }

  if (a.aliases !== undefined) {
    const seen = new Set<string>();
    a.aliases.forEach((alias, i) => {
      const path = [...base, 'aliases', i];
      if (alias.length > 253 || !alias.split('.').every((label) => DNS_LABEL.test(label))) {
        problems.push({ path, at: 'value', message: `alias ${JSON.stringify(alias)} is not a DNS name (RFC 1123 §2.1)` });
      } else if (seen.has(alias.toLowerCase())) {
        problems.push({ path, at: 'value', message: `alias ${alias} is listed twice` });
      }
      seen.add(alias.toLowerCase());
    });
    spec.aliases = [...a.aliases];
  }
  return spec;
}

/** Key order network, namespace, ifname, ips, mac, aliases: the stored `declared` JSON reads well. */
function orderEndpointKeys(e: EndpointSpec): EndpointSpec {
  const out: EndpointSpec = { network: e.network, namespace: e.namespace };
  if (e.ifname !== undefined) out.ifname = e.ifname;
  if (e.ips !== undefined) out.ips = e.ips;
  if (e.mac !== undefined) out.mac = e.mac;
  if (e.aliases !== undefined) out.aliases = e.aliases;
  return out;
}
