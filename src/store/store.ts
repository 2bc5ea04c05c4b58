/**
 * nsnet's state: an SQLite database (better-sqlite3 v12; v13 crashes on Node 20) in WAL
 * mode under the state directory (DESIGN.md decision 4). Every mutation is one
 * transaction; IPAM allocations are taken inside `BEGIN IMMEDIATE` so parallel processes
 * (20 `nsnet connect` at once, parallel CNI ADDs) serialise on the write lock and a
 * UNIQUE(network, address) constraint makes a double allocation impossible even if the
 * logic above were wrong.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { NsnetError } from '../errors.js';
import type {
  EndpointRecord, EndpointSpec, EndpointState, NamespaceRecord, NetworkRecord, NetworkSpec, PolicyRecord, PublishRecord, SubnetRecord,
} from '../engine/types.js';

export const DEFAULT_STATE_DIR = '/var/lib/nsnet';
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (
  name TEXT PRIMARY KEY,
  driver TEXT NOT NULL,
  bridge TEXT NOT NULL UNIQUE,
  subnets TEXT NOT NULL,          -- JSON SubnetRecord[]
  internal INTEGER NOT NULL,
  masquerade INTEGER NOT NULL,
  mtu INTEGER,
  source TEXT,
  declared TEXT NOT NULL,         -- JSON NetworkSpec
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS namespaces (
  name TEXT PRIMARY KEY,
  managed INTEGER NOT NULL,
  source TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
  network TEXT NOT NULL REFERENCES networks(name),
  namespace TEXT NOT NULL,
  ifname TEXT NOT NULL,
  host_ifname TEXT NOT NULL UNIQUE,
  mac TEXT NOT NULL,
  addresses TEXT NOT NULL,        -- JSON string[] with prefix
  aliases TEXT NOT NULL,          -- JSON string[]
  state TEXT NOT NULL,
  source TEXT,
  declared TEXT NOT NULL,         -- JSON EndpointSpec
  created_at TEXT NOT NULL,
  PRIMARY KEY (network, namespace)
);
CREATE TABLE IF NOT EXISTS allocations (
  network TEXT NOT NULL,
  address TEXT NOT NULL,          -- without prefix
  namespace TEXT NOT NULL,
  PRIMARY KEY (network, address)
);
CREATE TABLE IF NOT EXISTS ports (
  namespace TEXT NOT NULL,
  network TEXT NOT NULL,
  spec TEXT NOT NULL,
  host_ip TEXT NOT NULL,          -- '' for every host address
  proto TEXT NOT NULL,
  host_port INTEGER NOT NULL,
  container_port INTEGER NOT NULL,
  target4 TEXT,
  target6 TEXT,
  sources TEXT NOT NULL,          -- JSON string[] of allowed source CIDRs
  source TEXT,
  PRIMARY KEY (host_ip, proto, host_port)
);
CREATE INDEX IF NOT EXISTS ports_by_port ON ports (proto, host_port);
CREATE INDEX IF NOT EXISTS ports_by_spec ON ports (namespace, spec);
CREATE TABLE IF NOT EXISTS policies (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  action TEXT NOT NULL,
  sel_from TEXT NOT NULL,         -- JSON Selector
  sel_to TEXT NOT NULL,
  ports TEXT NOT NULL,            -- JSON
  priority INTEGER NOT NULL,
  source TEXT,
  declared TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
  network TEXT NOT NULL,
  subnet TEXT NOT NULL,
  last TEXT NOT NULL,             -- last address handed out (host-local's last_reserved_ip)
  PRIMARY KEY (network, subnet)
);
CREATE TABLE IF NOT EXISTS remote_endpoints (   -- multi-host: endpoints on other hosts (src/cluster), for DNS
  network TEXT NOT NULL,
  namespace TEXT NOT NULL,
  node TEXT NOT NULL,
  addresses TEXT NOT NULL,        -- JSON, without prefix
  aliases TEXT NOT NULL,          -- JSON
  PRIMARY KEY (network, namespace)
);
`;

interface NetworkRow {
  name: string; driver: string; bridge: string; subnets: string; internal: number; masquerade: number;
  mtu: number | null; source: string | null; declared: string; created_at: string;
}
interface NamespaceRow { name: string; managed: number; source: string | null; created_at: string }
interface EndpointRow {
  network: string; namespace: string; ifname: string; host_ifname: string; mac: string; addresses: string;
  aliases: string; state: string; source: string | null; declared: string; created_at: string;
}

interface PortRow {
  namespace: string; network: string; spec: string; host_ip: string; proto: string; host_port: number; container_port: number;
  target4: string | null; target6: string | null; sources: string; source: string | null;
}
interface PolicyRow {
  id: number; name: string; action: string; sel_from: string; sel_to: string; ports: string; priority: number;
  source: string | null; declared: string; created_at: string;
}
function toPort(r: PortRow): PublishRecord {
  return {
    namespace: r.namespace, network: r.network, spec: r.spec, hostIp: r.host_ip === '' ? null : r.host_ip,
    proto: r.proto as PublishRecord['proto'], hostPort: r.host_port, containerPort: r.container_port,
    target4: r.target4, target6: r.target6, from: JSON.parse(r.sources) as string[], source: r.source,
  };
}
function toPolicy(r: PolicyRow): PolicyRecord {
  return {
    id: r.id, name: r.name, action: r.action as PolicyRecord['action'], from: JSON.parse(r.sel_from), to: JSON.parse(r.sel_to),
    ports: JSON.parse(r.ports), priority: r.priority, source: r.source, declared: JSON.parse(r.declared), createdAt: r.created_at,
  };
}

function toNetwork(r: NetworkRow): NetworkRecord {
  return {
    name: r.name, driver: r.driver as NetworkRecord['driver'], bridge: r.bridge, subnets: JSON.parse(r.subnets) as SubnetRecord[],
    internal: r.internal === 1, masquerade: r.masquerade === 1, mtu: r.mtu, source: r.source,
    declared: JSON.parse(r.declared) as NetworkSpec, createdAt: r.created_at,
  };
}
function toNamespace(r: NamespaceRow): NamespaceRecord {
  return { name: r.name, managed: r.managed === 1, source: r.source, createdAt: r.created_at };
}
function toEndpoint(r: EndpointRow): EndpointRecord {
  return {
    network: r.network, namespace: r.namespace, ifname: r.ifname, hostIfname: r.host_ifname, mac: r.mac,
    addresses: JSON.parse(r.addresses) as string[], aliases: JSON.parse(r.aliases) as string[],
    state: r.state as EndpointState, source: r.source, declared: JSON.parse(r.declared) as EndpointSpec, createdAt: r.created_at,
  };
}

export function resolveStateDir(explicit?: string): string {
  return path.resolve(explicit ?? process.env.NSNET_STATE_DIR ?? DEFAULT_STATE_DIR);
}

export class Store {
  readonly db: Database.Database;
  private readonly stmts;

  constructor(readonly dir: string) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.db = new Database(path.join(dir, 'state.db'));
    } catch (e) {
      throw new NsnetError('STORE_ERROR', `cannot open the state database in ${dir}: ${(e as Error).message}`, { object: dir, cause: e });
    }
    this.db.pragma('busy_timeout = 10000');
    // WAL is a property of the database file: set once, then only checked.
    if (this.db.pragma('journal_mode', { simple: true }) !== 'wal') this.db.pragma('journal_mode = WAL');
    // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the
    // last transactions, which `repair` then reconciles against the kernel.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    // The schema is created once per database (user_version marks it), not on every open:
    // every CLI invocation opens the store, and parallel CNI ADDs should not queue on it.
    if (this.db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
      this.immediate(() => {
        this.db.exec(SCHEMA);
        this.db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      });
    }
    this.stmts = {
      network: this.db.prepare<[string], NetworkRow>('SELECT * FROM networks WHERE name = ?'),
      networkByBridge: this.db.prepare<[string], NetworkRow>('SELECT * FROM networks WHERE bridge = ?'),
      networks: this.db.prepare<[], NetworkRow>('SELECT * FROM networks ORDER BY name'),
      insertNetwork: this.db.prepare(
        'INSERT INTO networks (name, driver, bridge, subnets, internal, masquerade, mtu, source, declared, created_at) VALUES (@name, @driver, @bridge, @subnets, @internal, @masquerade, @mtu, @source, @declared, @created_at)'),
      deleteNetwork: this.db.prepare('DELETE FROM networks WHERE name = ?'),
      setNetworkMtu: this.db.prepare('UPDATE networks SET mtu = ?, declared = ? WHERE name = ?'),
      namespace: this.db.prepare<[string], NamespaceRow>('SELECT * FROM namespaces WHERE name = ?'),
      namespaces: this.db.prepare<[], NamespaceRow>('SELECT * FROM namespaces ORDER BY name'),
      insertNamespace: this.db.prepare('INSERT INTO namespaces (name, managed, source, created_at) VALUES (?, ?, ?, ?)'),
      deleteNamespace: this.db.prepare('DELETE FROM namespaces WHERE name = ?'),
      endpoint: this.db.prepare<[string, string], EndpointRow>('SELECT * FROM endpoints WHERE network = ? AND namespace = ?'),
      endpoints: this.db.prepare<[], EndpointRow>('SELECT * FROM endpoints ORDER BY network, namespace'),
      endpointsOfNetwork: this.db.prepare<[string], EndpointRow>('SELECT * FROM endpoints WHERE network = ? ORDER BY namespace'),
      endpointsOfNamespace: this.db.prepare<[string], EndpointRow>('SELECT * FROM endpoints WHERE namespace = ? ORDER BY network'),
      insertEndpoint: this.db.prepare(
        'INSERT INTO endpoints (network, namespace, ifname, host_ifname, mac, addresses, aliases, state, source, declared, created_at) VALUES (@network, @namespace, @ifname, @host_ifname, @mac, @addresses, @aliases, @state, @source, @declared, @created_at)'),
      setEndpointState: this.db.prepare('UPDATE endpoints SET state = ? WHERE network = ? AND namespace = ?'),
      deleteEndpoint: this.db.prepare('DELETE FROM endpoints WHERE network = ? AND namespace = ?'),
      allocations: this.db.prepare<[string], { address: string }>('SELECT address FROM allocations WHERE network = ?'),
      allocationOwner: this.db.prepare<[string, string], { namespace: string }>('SELECT namespace FROM allocations WHERE network = ? AND address = ?'),
      insertAllocation: this.db.prepare('INSERT INTO allocations (network, address, namespace) VALUES (?, ?, ?)'),
      releaseEndpoint: this.db.prepare('DELETE FROM allocations WHERE network = ? AND namespace = ?'),
      releaseNetwork: this.db.prepare('DELETE FROM allocations WHERE network = ?'),
      cursor: this.db.prepare<[string, string], { last: string }>('SELECT last FROM cursors WHERE network = ? AND subnet = ?'),
      setCursor: this.db.prepare('INSERT INTO cursors (network, subnet, last) VALUES (?, ?, ?) ON CONFLICT (network, subnet) DO UPDATE SET last = excluded.last'),
      deleteCursors: this.db.prepare('DELETE FROM cursors WHERE network = ?'),
      meta: this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      deleteMeta: this.db.prepare('DELETE FROM meta WHERE key = ?'),
      ports: this.db.prepare<[], PortRow>('SELECT * FROM ports ORDER BY proto, host_port, host_ip'),
      portsOfNamespace: this.db.prepare<[string], PortRow>('SELECT * FROM ports WHERE namespace = ? ORDER BY proto, host_port, host_ip'),
      portsOn: this.db.prepare<[string, number], PortRow>('SELECT * FROM ports WHERE proto = ? AND host_port = ?'),
      portsBySpec: this.db.prepare<[string, string], PortRow>('SELECT * FROM ports WHERE namespace = ? AND spec = ?'),
      insertPort: this.db.prepare('INSERT INTO ports (namespace, network, spec, host_ip, proto, host_port, container_port, target4, target6, sources, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      deletePort: this.db.prepare('DELETE FROM ports WHERE host_ip = ? AND proto = ? AND host_port = ?'),
      policies: this.db.prepare<[], PolicyRow>('SELECT * FROM policies ORDER BY priority, id'),
      policy: this.db.prepare<[string], PolicyRow>('SELECT * FROM policies WHERE name = ?'),
      insertPolicy: this.db.prepare('INSERT INTO policies (name, action, sel_from, sel_to, ports, priority, source, declared, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      deletePolicy: this.db.prepare('DELETE FROM policies WHERE name = ?'),
      policySeq: this.db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'policies'"),
    };
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction: it holds the write lock from the start. */
  immediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // ---- networks -------------------------------------------------------------------------

  network(name: string): NetworkRecord | undefined {
    const r = this.stmts.network.get(name);
    return r ? toNetwork(r) : undefined;
  }
  networkByBridge(bridge: string): NetworkRecord | undefined {
    const r = this.stmts.networkByBridge.get(bridge);
    return r ? toNetwork(r) : undefined;
  }
  networks(): NetworkRecord[] {
    return this.stmts.networks.all().map(toNetwork);
  }
  insertNetwork(n: NetworkRecord): void {
    this.stmts.insertNetwork.run({
      name: n.name, driver: n.driver, bridge: n.bridge, subnets: JSON.stringify(n.subnets),
      internal: n.internal ? 1 : 0, masquerade: n.masquerade ? 1 : 0, mtu: n.mtu, source: n.source,
      declared: JSON.stringify(n.declared), created_at: n.createdAt,
    });
  }
  /** Changes a network's MTU (the column and the declared spec, so `plan` sees no drift). */
  setNetworkMtu(name: string, mtu: number | null): void {
    const n = this.network(name);
    if (!n) return;
    const declared = { ...n.declared };
    if (mtu === null) delete declared.mtu; else declared.mtu = mtu;
    this.stmts.setNetworkMtu.run(mtu, JSON.stringify(declared), name);
  }
  deleteNetwork(name: string): void {
    this.stmts.releaseNetwork.run(name);
    this.stmts.deleteCursors.run(name);
    this.stmts.deleteNetwork.run(name);
  }

  // ---- namespaces -----------------------------------------------------------------------

  namespace(name: string): NamespaceRecord | undefined {
    const r = this.stmts.namespace.get(name);
    return r ? toNamespace(r) : undefined;
  }
  namespaces(): NamespaceRecord[] {
    return this.stmts.namespaces.all().map(toNamespace);
  }
  insertNamespace(n: NamespaceRecord): void {
    this.stmts.insertNamespace.run(n.name, n.managed ? 1 : 0, n.source, n.createdAt);
  }
  deleteNamespace(name: string): void {
    this.stmts.deleteNamespace.run(name);
  }

  // ---- endpoints ------------------------------------------------------------------------

  endpoint(network: string, namespace: string): EndpointRecord | undefined {
    const r = this.stmts.endpoint.get(network, namespace);
    return r ? toEndpoint(r) : undefined;
  }
  endpoints(filter: { network?: string; namespace?: string } = {}): EndpointRecord[] {
    const rows = filter.network !== undefined ? this.stmts.endpointsOfNetwork.all(filter.network)
      : filter.namespace !== undefined ? this.stmts.endpointsOfNamespace.all(filter.namespace)
      : this.stmts.endpoints.all();
    return rows.map(toEndpoint).filter((e) => filter.namespace === undefined || e.namespace === filter.namespace);
  }
  insertEndpoint(e: EndpointRecord): void {
    this.stmts.insertEndpoint.run({
      network: e.network, namespace: e.namespace, ifname: e.ifname, host_ifname: e.hostIfname, mac: e.mac,
      addresses: JSON.stringify(e.addresses), aliases: JSON.stringify(e.aliases), state: e.state, source: e.source,
      declared: JSON.stringify(e.declared), created_at: e.createdAt,
    });
  }
  setEndpointState(network: string, namespace: string, state: EndpointState): void {
    this.stmts.setEndpointState.run(state, network, namespace);
  }
  /** Deletes the endpoint and releases its addresses, in the caller's transaction. */
  deleteEndpoint(network: string, namespace: string): void {
    this.stmts.releaseEndpoint.run(network, namespace);
    this.stmts.deleteEndpoint.run(network, namespace);
  }

  // ---- IPAM -----------------------------------------------------------------------------

  allocatedAddresses(network: string): string[] {
    return this.stmts.allocations.all(network).map((r) => r.address);
  }
  allocationOwner(network: string, address: string): string | undefined {
    return this.stmts.allocationOwner.get(network, address)?.namespace;
  }
  insertAllocation(network: string, address: string, namespace: string): void {
    this.stmts.insertAllocation.run(network, address, namespace);
  }
  cursor(network: string, subnet: string): string | undefined {
    return this.stmts.cursor.get(network, subnet)?.last;
  }
  setCursor(network: string, subnet: string, last: string): void {
    this.stmts.setCursor.run(network, subnet, last);
  }

  // ---- published ports -------------------------------------------------------------------

  ports(filter: { namespace?: string } = {}): PublishRecord[] {
    const rows = filter.namespace === undefined
      ? this.stmts.ports.all()
      : this.stmts.portsOfNamespace.all(filter.namespace);
    return rows.map(toPort);
  }
  /** Mappings on the same protocol and host port (any host address): the conflict candidates. */
  portsOn(proto: string, hostPort: number): PublishRecord[] {
    return this.stmts.portsOn.all(proto, hostPort).map(toPort);
  }
  /** The rows of one published spec (a range is one spec, several rows). */
  portsBySpec(namespace: string, spec: string): PublishRecord[] {
    return this.stmts.portsBySpec.all(namespace, spec).map(toPort);
  }
  insertPort(p: PublishRecord): void {
    this.stmts.insertPort.run(p.namespace, p.network, p.spec, p.hostIp ?? '', p.proto, p.hostPort, p.containerPort, p.target4, p.target6, JSON.stringify(p.from), p.source);
  }
  deletePort(p: Pick<PublishRecord, 'hostIp' | 'proto' | 'hostPort'>): void {
    this.stmts.deletePort.run(p.hostIp ?? '', p.proto, p.hostPort);
  }

  // ---- policies --------------------------------------------------------------------------

  policies(): PolicyRecord[] {
    return this.stmts.policies.all().map(toPolicy);
  }
  policy(name: string): PolicyRecord | undefined {
    const r = this.stmts.policy.get(name);
    return r ? toPolicy(r) : undefined;
  }
  insertPolicy(p: Omit<PolicyRecord, 'id'>): number {
    const r = this.stmts.insertPolicy.run(p.name, p.action, JSON.stringify(p.from), JSON.stringify(p.to), JSON.stringify(p.ports), p.priority, p.source, JSON.stringify(p.declared), p.createdAt);
    return Number(r.lastInsertRowid);
  }
  deletePolicy(name: string): void {
    this.stmts.deletePolicy.run(name);
  }
  nextPolicyId(): number {
    const r = this.stmts.policySeq.get();
    return (r?.seq ?? 0) + 1;
  }

  // ---- meta -----------------------------------------------------------------------------

  meta(key: string): string | undefined {
    return this.stmts.meta.get(key)?.value;
  }
  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }
  deleteMeta(key: string): void {
    this.stmts.deleteMeta.run(key);
  }
}
