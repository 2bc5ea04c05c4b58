/**
 * The engine's vocabulary (DESIGN.md): networks, namespaces, endpoints. Records are what
 * the store holds; specs are what a user asks for (CLI flags, library calls, topology
 * files). Addresses are text in canonical form (IPv6 per RFC 5952).
 */

/**
 * bridge: a Linux bridge on the host, veths to it, NAT (src/drivers/bridge.ts).
 * macvlan / ipvlan: an interface of the endpoint's own on a host interface (`parent`),
 * directly on that interface's LAN; no bridge, no NAT (src/drivers/macvlan.ts).
 */
export type Driver = 'bridge' | 'macvlan' | 'ipvlan';

/** A user's request for a network. Omitted fields take defaults. */
export interface NetworkSpec {
  name: string;
  driver?: Driver;
  /** CIDRs; none → one IPv4 /24 from the default pool (plus an IPv6 /64 with `ipv6`). */
  subnets?: string[];
  /** Gateways, at most one per subnet, matched to subnets by containment. */
  gateways?: string[];
  /** Ask for a pool-picked IPv6 subnet too (when `subnets` has no IPv6 one). */
  ipv6?: boolean;
  /** Bridge device name; default derived from the network name. */
  bridge?: string;
  internal?: boolean;
  /** Masquerade traffic to the outside (default true; meaningless when internal). */
  masquerade?: boolean;
  mtu?: number;
  /** Serve names on this network from nsnet's DNS service (default true). */
  dns?: boolean;
  /** Upstream resolvers for names that are not nsnet's (default: the host's). `IP` or `IP#PORT`. */
  dnsServers?: string[];
  /** macvlan/ipvlan: the host interface the endpoints' interfaces are created on. */
  parent?: string;
  /** macvlan: bridge (default) | private | vepa | passthru; ipvlan: l2 (default) | l3 | l3s. */
  mode?: string;
  /** IPAM hands out dynamic addresses only from these CIDRs (at most one per subnet). */
  ipRanges?: string[];
  /** Addresses IPAM never hands out (already used on the LAN), by name: `{ router2: '192.0.2.2' }`. */
  auxAddresses?: Record<string, string>;
  /**
   * macvlan: host addresses on the network, on a host-side macvlan "shim" device in bridge
   * mode, so the host and its endpoints can talk (at most one per subnet). Without it they
   * cannot: the parent does not deliver its own traffic to its macvlan children.
   */
  shim?: string[];
  /**
   * Multi-host (src/cluster): prefixes where the same network continues on other hosts.
   * Traffic between them and this network's members is routed without NAT and let in.
   */
  peers?: string[];
}

export interface SubnetRecord {
  cidr: string;
  gateway: string;
}

export interface NetworkRecord {
  name: string;
  driver: Driver;
  /** The bridge device; for macvlan/ipvlan the host-side shim device's name (present only with `shim`). */
  bridge: string;
  subnets: SubnetRecord[];
  internal: boolean;
  masquerade: boolean;
  mtu: number | null;
  /** Which topology file created it (absolute path), or null when made imperatively. */
  source: string | null;
  /** The spec as declared (for the planner: what the user pinned vs what was picked). */
  declared: NetworkSpec;
  createdAt: string;
}

export interface NamespaceRecord {
  name: string;
  /** True when nsnet created /run/netns/NAME (and so removes it); false when adopted. */
  managed: boolean;
  source: string | null;
  createdAt: string;
}

export interface EndpointSpec {
  network: string;
  namespace: string;
  /** Static addresses (no prefix: the subnet's is used), at most one per subnet. */
  ips?: string[];
  ifname?: string;
  mac?: string;
  aliases?: string[];
  /**
   * A namespace file to attach instead of /run/netns/NAME: a runtime's `/proc/PID/ns/net` or
   * `/run/netns/cni-…` (the CNI face). `namespace` is then only the endpoint's key (and a DNS
   * name); nsnet records no namespace for it and writes no resolv.conf (the runtime does).
   */
  netns?: string;
}

export type EndpointState = 'creating' | 'ready' | 'removing';

export interface EndpointRecord {
  network: string;
  namespace: string;
  ifname: string;
  /** The host-side veth, derived deterministically from (network, namespace). */
  hostIfname: string;
  mac: string;
  /** Interface addresses with prefix, e.g. 10.89.0.2/24, fd00::2/64. */
  addresses: string[];
  aliases: string[];
  state: EndpointState;
  source: string | null;
  declared: EndpointSpec;
  createdAt: string;
}

/** A parsed, validated topology file (see src/engine/topology.ts). */
export interface Topology {
  /** Absolute path of the file, used as the `source` of everything it creates. */
  source: string;
  networks: NetworkSpec[];
  namespaces: Array<{ name: string }>;
  endpoints: EndpointSpec[];
  /**
   * Published ports, one entry per group of specs published together. Specs are normalised
   * (`parsePortSpec(...).spec`); `network` is always set by the parser (the file's choice, or
   * the namespace's first non-internal network); `from` holds canonical CIDRs.
   */
  publish: Array<{ namespace: string; specs: string[]; network?: string; from?: string[] }>;
  /** Policies, each with a name (declared, or derived from the file name and list index). */
  policies: PolicySpec[];
}

/** One step of a plan; the applier executes them in order. */
export type Change =
  | { kind: 'create-network'; spec: NetworkSpec }
  | { kind: 'remove-network'; name: string }
  | { kind: 'create-namespace'; name: string }
  | { kind: 'remove-namespace'; name: string }
  | { kind: 'connect'; spec: EndpointSpec }
  | { kind: 'disconnect'; network: string; namespace: string }
  | { kind: 'publish'; namespace: string; specs: string[]; network?: string; from?: string[] }
  | { kind: 'unpublish'; namespace: string; spec: string }
  | { kind: 'add-policy'; spec: PolicySpec }
  | { kind: 'remove-policy'; name: string };

/** What the planner compares a topology with: the records a file created earlier. */
export interface CurrentState {
  networks: NetworkRecord[];
  namespaces: NamespaceRecord[];
  endpoints: EndpointRecord[];
  ports: PublishRecord[];
  policies: PolicyRecord[];
}

/** A published port as stored: one row per host port (ranges are expanded). */
export interface PublishRecord {
  namespace: string;
  /** The network whose endpoint receives the traffic. */
  network: string;
  /** The spec as the user wrote it (normalised); `unpublish` names mappings by it. */
  spec: string;
  hostIp: string | null;
  proto: 'tcp' | 'udp' | 'sctp';
  hostPort: number;
  containerPort: number;
  /** The endpoint addresses traffic is forwarded to (IPv4 and/or IPv6). */
  target4: string | null;
  target6: string | null;
  /** Source CIDRs allowed to use the mapping; empty means everyone. */
  from: string[];
  source: string | null;
}

export type PolicyAction = 'allow' | 'deny';

/** A selector names a network, a namespace, a CIDR, or `outside` (everything not nsnet's). */
export type Selector =
  | { kind: 'network'; name: string }
  | { kind: 'namespace'; name: string }
  | { kind: 'cidr'; cidr: string }
  | { kind: 'outside' };

export interface PolicySpec {
  name?: string;
  action: PolicyAction;
  from: string;
  to: string;
  /** `3306/tcp`, `8000-8100/udp`, `53` (TCP+UDP); none = every protocol and port. */
  ports?: string[];
  /** Lower numbers are evaluated first; default 100. */
  priority?: number;
}

export interface PolicyRecord {
  id: number;
  name: string;
  action: PolicyAction;
  from: Selector;
  to: Selector;
  ports: Array<{ protos: Array<'tcp' | 'udp' | 'sctp'>; start: number; end: number }>;
  priority: number;
  source: string | null;
  declared: PolicySpec;
  createdAt: string;
}
