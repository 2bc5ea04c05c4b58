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
 * namespaces:
 *   web:
 *     networks:
 *       frontend: { ip: 192.168.10.10, ifname: eth0, aliases: [www] }  # or `ips:`, `mac:`
 *   api:
 *     networks: [backend]                         # list form: addresses from IPAM
 *   lonely: {}
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
 * lowercase, `subnet:`/`gateway:`/`ip:` folded into their list forms) and holds only what
 * the user declared, plus default interface names: the planner compares declared with
 * declared, so a pool-picked subnet never reads as a change.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { NsnetError, isNsnetError } from '../errors.js';
import { IpAddress, isUnicastMac, MacAddress } from '../ipam/address.js';
import { defaultGateway } from '../ipam/allocator.js';
import { Cidr } from '../ipam/cidr.js';
import { validateGateway, validateSubnets } from '../ipam/validate.js';
import { validateIfname } from '../kernel/netlink/route/link.js';
import type { EndpointSpec, NetworkSpec, Topology } from './types.js';

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
  driver: z.enum(['bridge'], { error: (iss) => `unknown driver ${JSON.stringify(iss.input)} (expected: bridge)` }).optional(),
  subnet: z.string().optional(),
  subnets: z.array(z.string()).optional(),
  gateway: z.string().optional(),
  gateways: z.array(z.string()).optional(),
  internal: z.boolean().optional(),
  masquerade: z.boolean().optional(),
  mtu: z.number().int().optional(),
  ipv6: z.boolean().optional(),
  bridge: z.string().optional(),
}).nullable();

const attachmentSchema = strict({
  ip: z.string().optional(),
  ips: z.array(z.string()).optional(),
  ifname: z.string().optional(),
  mac: z.string().optional(),
  aliases: z.array(z.string()).optional(),
}).nullable();

const namespaceSchema = strict({
  networks: z.union([z.array(name), z.record(name, attachmentSchema)]).nullable().optional(),
  // Published ports: accepted and ignored until the issue that implements them.
  publish: z.unknown().optional(),
}).nullable();

const topologySchema = strict({
  networks: z.record(name, networkSchema).nullable().optional(),
  namespaces: z.record(name, namespaceSchema).nullable().optional(),
  // Policies between networks and namespaces: accepted and ignored until the issue that
  // implements them.
  policies: z.unknown().optional(),
}).nullable();

type RawTopology = z.infer<typeof topologySchema>;
type RawNetwork = NonNullable<z.infer<typeof networkSchema>>;
type RawAttachment = NonNullable<z.infer<typeof attachmentSchema>>;

// ---------------------------------------------------------------------------------------------
// Problems and where they are

type Path = readonly (string | number)[];

/** Something wrong at `path`; `at: 'key'` points at the mapping key rather than its value. */
interface Problem {
  path: Path;
  message: string;
  at: 'key' | 'value';
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
        out.push({ path, at: 'value', message: `expected ${expected}, got ${describeValue(valueAt(root, path))}` });
        break;
      }
      default:
        out.push({ path, at: 'value', message: issue.message });
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
    located.sort((a, b) => a.offset - b.offset);
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
  const topology: Topology = { source, networks: [], namespaces: [], endpoints: [] };
  const facts = new Map<string, NetworkFacts>();
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
  }
  return topology;
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

  facts.set(netName, { subnets: declaredSubnets, gateways, staticIps: new Map(), macs: new Map() });
  return spec;
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
