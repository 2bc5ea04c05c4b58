/**
 * The CNI protocol as a runtime speaks it (CNI SPEC.md 1.1.0, and libcni/skel where they are
 * stricter): versions, error codes, the per-verb environment and its validation, CNI_ARGS.
 * No I/O and no engine imports: the plugin's entry point loads this module on every call.
 */

/** Versions nsnet reads and writes, oldest first (SPEC.md §"Version"; 0.1.0/0.2.0 are not offered). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

/** Error codes, SPEC.md §"Error"; 8 and 999 are libcni's (pkg/types/types.go); 100+ are nsnet's. */
export const CNI_ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODING_FAILURE: 6,
  INVALID_CONFIG: 7,
  INVALID_NETNS: 8,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  /** nsnet's own: the kernel, the firewall or the store refused (details say which). */
  NSNET_FAILED: 100,
  /** No free address left in a subnet of the network. */
  ADDRESS_EXHAUSTED: 101,
  /** A requested address (`ips`, `IP=`) is taken, the gateway, or outside the subnets. */
  ADDRESS_UNAVAILABLE: 102,
  /** A requested host port is published already, or a host socket holds it. */
  PORT_IN_USE: 103,
  /** The interface already exists in the container, or this (container, ifname) is attached. */
  INTERFACE_EXISTS: 104,
  /** The network exists with different settings, or its subnet overlaps another network's. */
  NETWORK_CONFLICT: 105,
  /** CHECK found the attachment's state missing or different. */
  CHECK_FAILED: 106,
  /** A capability nsnet does not implement (bandwidth). */
  NOT_IMPLEMENTED: 107,
  /** A bug in nsnet (libcni's ErrInternal). */
  INTERNAL: 999,
} as const;

export class CniError extends Error {
  constructor(readonly code: number, message: string, readonly details = '') {
    super(message);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export type Verb = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
const VERBS: readonly Verb[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

/** skel.go's per-verb required variables (CNI_NETNS is optional for DEL: SPEC.md §"DEL"). */
const REQUIRED: Record<Verb, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  STATUS: ['CNI_PATH'],
  GC: ['CNI_PATH'],
  VERSION: [],
};

/** Container ids and network names (pkg/utils/utils.go: ValidateContainerID / ValidateNetworkName). */
export const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface Invocation {
  verb: Verb;
  containerId: string;
  netns: string;
  ifname: string;
  path: string;
  args: string;
}

/** CNI_IFNAME rules (pkg/utils/utils.go ValidateInterfaceName): ≤ 15 bytes, not . or .., no / : or space. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (Buffer.byteLength(name) > 15) return 'it is longer than 15 bytes';
  if (name === '.' || name === '..') return 'it is . or ..';
  if (/[/:\s]/.test(name)) return "it contains '/', ':' or whitespace";
  return undefined;
}

/** Reads and validates the invocation from the environment; throws code 4 naming the variables. */
export function parseInvocation(env: Readonly<Record<string, string | undefined>>): Invocation {
  const command = env.CNI_COMMAND ?? '';
  if (!VERBS.includes(command as Verb)) {
    throw new CniError(CNI_ERR.INVALID_ENV, command === '' ? 'required env variables [CNI_COMMAND] missing' : `unknown CNI_COMMAND: ${command}`);
  }
  const verb = command as Verb;
  const missing = REQUIRED[verb].filter((k) => (env[k] ?? '') === '');
  if (missing.length > 0) throw new CniError(CNI_ERR.INVALID_ENV, `required env variables [${missing.join(',')}] missing`);
  const inv: Invocation = {
    verb, containerId: env.CNI_CONTAINERID ?? '', netns: env.CNI_NETNS ?? '', ifname: env.CNI_IFNAME ?? '',
    path: env.CNI_PATH ?? '', args: env.CNI_ARGS ?? '',
  };
  if (REQUIRED[verb].includes('CNI_CONTAINERID') && !ID_RE.test(inv.containerId)) {
    throw new CniError(CNI_ERR.INVALID_ENV, `invalid characters in CNI_CONTAINERID "${inv.containerId}"`, `it must match ${ID_RE.source}`);
  }
  if (REQUIRED[verb].includes('CNI_IFNAME')) {
    const why = interfaceNameProblem(inv.ifname);
    if (why) throw new CniError(CNI_ERR.INVALID_ENV, `invalid CNI_IFNAME "${inv.ifname}": ${why}`);
  }
  return inv;
}

/**
 * CNI_ARGS: `K1=V1;K2=V2` (SPEC.md §"Parameters"). Keys nsnet understands: IP, MAC,
 * K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID, IgnoreUnknown.
 * Any other key is refused (code 2) unless IgnoreUnknown is true, as the reference plugins do
 * (pkg/types/args.go LoadArgs).
 */
const KNOWN_ARGS = new Set(['IP', 'MAC', 'K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID', 'IgnoreUnknown']);

export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (text === '') return out;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CNI_ERR.INVALID_ENV, `invalid CNI_ARGS pair "${pair}": expected KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const ignore = /^(1|true)$/i.test(out.get('IgnoreUnknown') ?? '');
  if (!ignore) {
    const unknown = [...out.keys()].filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length > 0) throw new CniError(CNI_ERR.UNSUPPORTED_FIELD, `unknown CNI_ARGS key(s) ${unknown.join(', ')}`, 'set IgnoreUnknown=1 to ignore them');
  }
  return out;
}

/** Orders two version strings (x.y.z). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** The VERSION answer (SPEC.md §"VERSION"). */
export function versionResult(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The endpoint key nsnet stores a CNI attachment under: (container id, ifname), hashed to fit a name. */
export function attachmentKey(containerId: string, ifname: string, hash: (s: string) => string): string {
  return `cni-${hash(`${containerId}\0${ifname}`).slice(0, 20)}`;
}
