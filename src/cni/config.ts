/**
 * The plugin configuration a runtime sends on stdin (SPEC.md §"Plugin configuration objects"),
 * parsed and validated without the engine: what network to create on first use, and what
 * this one attachment asks for (runtimeConfig capabilities, `args`, CNI_ARGS).
 *
 *   {
 *     "cniVersion": "1.1.0", "name": "appnet", "type": "nsnet",
 *     "bridge": "appbr0",                          default nsbr-NAME
 *     "subnets": ["10.42.0.0/24", {"subnet": "fd42::/64", "gateway": "fd42::1"}],
 *     "ranges": [[{"subnet": "10.42.0.0/24", "gateway": "10.42.0.1"}]],   host-local's shape, also accepted
 *     "ipMasq": true, "mtu": 1500, "internal": false, "isolation": "network",
 *     "dns": {"nameservers": [...], "search": [...], "options": [...]},   added to the result's
 *     "stateDir": "/var/lib/nsnet",
 *     "capabilities": {"portMappings": true, "ips": true, "mac": true, "aliases": true, "dns": true, "ipRanges": true}
 *   }
 */
import { isIP } from 'node:net';
import { CNI_ERR, CniError, ID_RE, isSupportedVersion, compareVersions, type CniVersion, type Verb } from './spec.js';

/** DNS names: RFC 1123 labels, dot-separated (what the DNS service can answer). */
export const DNS_NAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface SubnetConf { subnet: string; gateway?: string }

export interface PortMappingConf { hostPort: number; containerPort: number; protocol: 'tcp' | 'udp' | 'sctp'; hostIP: string | null }

export interface DnsConf { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }

export interface PluginConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  bridge?: string;
  subnets?: SubnetConf[];
  ipMasq?: boolean;
  mtu?: number;
  internal?: boolean;
  ipv6?: boolean;
  dns?: DnsConf;
  stateDir?: string;
  prevResult?: Record<string, unknown>;
  runtime: {
    portMappings: PortMappingConf[];
    ips: string[];
    mac?: string;
    aliases: string[];
    ipRanges?: SubnetConf[];
    dns?: { servers?: string[]; searches?: string[]; options?: string[] };
  };
  /** GC: the attachments to keep. */
  validAttachments: Array<{ containerID: string; ifname: string }>;
}

/** Keys this plugin reads; anything else at the top level is refused (SPEC.md: plugins may reject unknown keys). */
const KNOWN = new Set([
  'cniVersion', 'cniVersions', 'name', 'type', 'bridge', 'subnets', 'ranges', 'ipMasq', 'mtu', 'internal', 'isolation', 'ipv6', 'dns',
  'stateDir', 'capabilities', 'runtimeConfig', 'args', 'prevResult', 'ipam',
  'cni.dev/valid-attachments', 'cni.dev/attachments',
]);

const invalid = (msg: string, details = ''): CniError => new CniError(CNI_ERR.INVALID_CONFIG, msg, details);
const unsupported = (key: string, value: unknown, why: string): CniError =>
  new CniError(CNI_ERR.UNSUPPORTED_FIELD, `unsupported field "${key}" = ${JSON.stringify(value)}: ${why}`);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function strings(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw invalid(`${what} must be a list of strings`);
  return v as string[];
}
function bool(v: unknown, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalid(`${what} must be true or false, not ${JSON.stringify(v)}`);
  return v;
}

function subnetConf(v: unknown, what: string): SubnetConf {
  if (typeof v === 'string') return { subnet: v };
  if (!isObject(v) || typeof v.subnet !== 'string') throw invalid(`${what} must be a CIDR or {"subnet": CIDR, "gateway": IP}`);
  for (const k of ['rangeStart', 'rangeEnd']) {
    if (v[k] !== undefined) throw unsupported(`${what}.${k}`, v[k], 'nsnet allocates from the whole subnet');
  }
  if (v.gateway !== undefined && typeof v.gateway !== 'string') throw invalid(`${what}.gateway must be an IP address`);
  return { subnet: v.subnet, ...(typeof v.gateway === 'string' ? { gateway: v.gateway } : {}) };
}

/** host-local `ranges`: a list of range sets; one subnet per set (the first range of each). */
function rangesConf(v: unknown, what: string): SubnetConf[] {
  if (!Array.isArray(v)) throw invalid(`${what} must be a list of range sets (lists of ranges)`);
  return v.map((set, i) => {
    if (!Array.isArray(set) || set.length === 0) throw invalid(`${what}[${i}] must be a non-empty list of ranges`);
    if (set.length > 1) throw unsupported(`${what}[${i}]`, set, 'one range per range set (nsnet allocates from the whole subnet)');
    return subnetConf(set[0], `${what}[${i}][0]`);
  });
}

function portMappings(v: unknown): PortMappingConf[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid('runtimeConfig.portMappings must be a list');
  return v.map((m, i) => {
    const at = `runtimeConfig.portMappings[${i}]`;
    if (!isObject(m)) throw invalid(`${at} must be an object`);
    const port = (x: unknown, k: string): number => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 65535) throw invalid(`${at}.${k} must be a port 1–65535, not ${JSON.stringify(x)}`);
      return x;
    };
    const protocol = (m.protocol === undefined || m.protocol === '' ? 'tcp' : String(m.protocol).toLowerCase());
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') throw invalid(`${at}.protocol "${String(m.protocol)}" is not tcp, udp or sctp`);
    const hostIP = typeof m.hostIP === 'string' && m.hostIP !== '' && m.hostIP !== '0.0.0.0' && m.hostIP !== '::' ? m.hostIP : null;
    return { hostPort: port(m.hostPort, 'hostPort'), containerPort: port(m.containerPort, 'containerPort'), protocol, hostIP };
  });
}

/** `aliases`: a list, or podman's map from network name to list (libnetwork/cni/run.go). */
function aliases(v: unknown, network: string): string[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return strings(v, 'runtimeConfig.aliases');
  if (isObject(v)) return strings(v[network], `runtimeConfig.aliases.${network}`);
  throw invalid('runtimeConfig.aliases must be a list of names or a map from network name to names');
}

export function parseJson(stdin: string): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(stdin); } catch (e) {
    throw new CniError(CNI_ERR.DECODING_FAILURE, 'error parsing configuration: not JSON', (e as Error).message);
  }
  if (!isObject(v)) throw new CniError(CNI_ERR.DECODING_FAILURE, 'error parsing configuration: not a JSON object');
  return v;
}

/**
 * Validates the configuration for `verb`. Version rules (skel.go): the config's cniVersion must be
 * supported (code 1); CHECK needs ≥ 0.4.0, STATUS and GC ≥ 1.1.0.
 */
export function parseConf(raw: Record<string, unknown>, verb: Verb): PluginConf {
  const version = raw.cniVersion;
  if (!isSupportedVersion(version)) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `incompatible CNI versions: config is ${JSON.stringify(version ?? '')}, plugin supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0`);
  }
  if (verb === 'CHECK' && compareVersions(version, '0.4.0') < 0) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `config version ${version} does not allow CHECK`, 'CHECK needs cniVersion 0.4.0 or later');
  }
  if ((verb === 'STATUS' || verb === 'GC') && compareVersions(version, '1.1.0') < 0) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `config version ${version} does not allow ${verb}`, `${verb} needs cniVersion 1.1.0 or later`);
  }
  if (typeof raw.name !== 'string' || !ID_RE.test(raw.name)) {
    throw invalid(`invalid network name ${JSON.stringify(raw.name ?? '')}`, `it must match ${ID_RE.source}`);
  }
  if (raw.name.length > 64) throw invalid(`network name "${raw.name}" is longer than nsnet's 64 characters`);
  if (typeof raw.type !== 'string' || raw.type === '') throw invalid('missing "type"');
  for (const k of Object.keys(raw)) {
    if (!KNOWN.has(k)) throw unsupported(k, raw[k], 'not an nsnet plugin setting');
  }
  if (raw.ipam !== undefined && !(isObject(raw.ipam) && Object.keys(raw.ipam).length === 0)) {
    throw unsupported('ipam', raw.ipam, 'nsnet does its own address management: put "subnets" or "ranges" in the plugin config');
  }
  if (raw.isolation !== undefined && raw.isolation !== 'network' && raw.isolation !== true) {
    throw unsupported('isolation', raw.isolation, 'nsnet always isolates networks from each other ("network"); isolating containers of one network is not available');
  }
  const name = raw.name;
  const conf: PluginConf = {
    cniVersion: version, name, type: raw.type, runtime: { portMappings: [], ips: [], aliases: [] }, validAttachments: [],
  };
  if (raw.bridge !== undefined) {
    if (typeof raw.bridge !== 'string') throw invalid('"bridge" must be an interface name');
    conf.bridge = raw.bridge;
  }
  if (raw.subnets !== undefined && raw.ranges !== undefined) throw invalid('give "subnets" or "ranges", not both');
  if (raw.subnets !== undefined) {
    if (!Array.isArray(raw.subnets)) throw invalid('"subnets" must be a list');
    conf.subnets = raw.subnets.map((s, i) => subnetConf(s, `subnets[${i}]`));
  }
  if (raw.ranges !== undefined) conf.subnets = rangesConf(raw.ranges, 'ranges');
  const masq = bool(raw.ipMasq, 'ipMasq');
  if (masq !== undefined) conf.ipMasq = masq;
  const internal = bool(raw.internal, 'internal');
  if (internal !== undefined) conf.internal = internal;
  const ipv6 = bool(raw.ipv6, 'ipv6');
  if (ipv6 !== undefined) conf.ipv6 = ipv6;
  if (raw.mtu !== undefined) {
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || raw.mtu < 68 || raw.mtu > 65535) throw invalid(`invalid mtu ${JSON.stringify(raw.mtu)}: must be 68–65535`);
    conf.mtu = raw.mtu;
  }
  if (raw.dns !== undefined) {
    if (!isObject(raw.dns)) throw invalid('"dns" must be an object');
    conf.dns = {
      nameservers: strings(raw.dns.nameservers, 'dns.nameservers'), search: strings(raw.dns.search, 'dns.search'),
      options: strings(raw.dns.options, 'dns.options'), ...(typeof raw.dns.domain === 'string' ? { domain: raw.dns.domain } : {}),
    };
  }
  if (raw.stateDir !== undefined) {
    if (typeof raw.stateDir !== 'string' || !raw.stateDir.startsWith('/')) throw invalid('"stateDir" must be an absolute path');
    conf.stateDir = raw.stateDir;
  }
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    if (!isObject(raw.prevResult)) throw new CniError(CNI_ERR.DECODING_FAILURE, 'prevResult is not a JSON object');
    conf.prevResult = raw.prevResult;
  }

  const rc = raw.runtimeConfig ?? {};
  if (!isObject(rc)) throw invalid('runtimeConfig must be an object');
  conf.runtime.portMappings = portMappings(rc.portMappings);
  conf.runtime.ips = strings(rc.ips, 'runtimeConfig.ips');
  if (rc.mac !== undefined && rc.mac !== '') {
    if (typeof rc.mac !== 'string') throw invalid('runtimeConfig.mac must be a MAC address');
    conf.runtime.mac = rc.mac;
  }
  conf.runtime.aliases = aliases(rc.aliases, name);
  for (const a of conf.runtime.aliases) {
    if (!DNS_NAME_RE.test(a)) throw invalid(`invalid alias "${a}": not a DNS name`);
  }
  if (rc.ipRanges !== undefined && rc.ipRanges !== null) conf.runtime.ipRanges = rangesConf(rc.ipRanges, 'runtimeConfig.ipRanges');
  if (isObject(rc.dns)) {
    conf.runtime.dns = { servers: strings(rc.dns.servers, 'runtimeConfig.dns.servers'), searches: strings(rc.dns.searches, 'runtimeConfig.dns.searches'), options: strings(rc.dns.options, 'runtimeConfig.dns.options') };
  }
  const bw = rc.bandwidth;
  if (isObject(bw) && Object.values(bw).some((x) => typeof x === 'number' && x > 0)) {
    // Traffic shaping (tc tbf/ingress on the host veth, as the bandwidth plugin does) needs a
    // tc codec nsnet's kernel layer does not have yet: refuse rather than silently not shape.
    throw new CniError(CNI_ERR.NOT_IMPLEMENTED, 'the bandwidth capability is not implemented by nsnet', 'chain the reference "bandwidth" plugin after nsnet to shape traffic');
  }

  // args.cni (CONVENTIONS.md §"args in network config"): ips and mac, like runtimeConfig.
  if (raw.args !== undefined) {
    if (!isObject(raw.args)) throw invalid('"args" must be an object');
    const cni = raw.args.cni;
    if (isObject(cni)) {
      conf.runtime.ips.push(...strings(cni.ips, 'args.cni.ips'));
      if (typeof cni.mac === 'string' && cni.mac !== '' && conf.runtime.mac === undefined) conf.runtime.mac = cni.mac;
    }
  }

  // Checked here, before anything is created: a bad request changes nothing.
  for (const ip of conf.runtime.ips) {
    if (isIP(ip.split('/')[0]!) === 0) throw invalid(`invalid IP "${ip}" in the requested addresses`);
  }
  if (conf.runtime.mac !== undefined) {
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(conf.runtime.mac)) throw invalid(`invalid MAC "${conf.runtime.mac}"`);
    // IEEE 802: the I/G bit (least significant bit of the first octet) marks group addresses.
    if (parseInt(conf.runtime.mac.slice(0, 2), 16) & 1) throw invalid(`MAC ${conf.runtime.mac} is not a unicast address`);
  }

  // GC (SPEC.md §"GC"): the spec's key, and libcni's duplicate (cni#1101).
  for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
    const list = raw[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw invalid(`"${key}" must be a list`);
    for (const a of list) {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        throw invalid(`"${key}" entries must be {"containerID": ..., "ifname": ...}`);
      }
      conf.validAttachments.push({ containerID: a.containerID, ifname: a.ifname });
    }
  }
  return conf;
}

/** A port mapping in nsnet's `-p` syntax ([HOSTIP:]HOSTPORT:PORT/PROTO). */
export function portSpec(m: PortMappingConf): string {
  const host = m.hostIP === null ? '' : m.hostIP.includes(':') ? `[${m.hostIP}]:` : `${m.hostIP}:`;
  return `${host}${m.hostPort}:${m.containerPort}/${m.protocol}`;
}
