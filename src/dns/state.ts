/**
 * The DNS service's view of nsnet's state: its own connection to the SQLite database
 * (WAL mode lets it read while CLI processes write), never writing (`query_only`).
 *
 * `PRAGMA data_version` changes whenever another connection commits, and costs a few
 * microseconds: the service checks it before answering each query, so a `connect` that
 * has returned is visible to the very next query (https://sqlite.org/pragma.html#pragma_data_version).
 *
 * This reads the `networks`, `endpoints` and `remote_endpoints` tables of src/store/store.ts directly (the
 * Store class opens its connection for writing and creates the schema).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { NetworkSpec, SubnetRecord } from '../engine/types.js';
import { dnsListenAddresses, networkHasDns } from './resolvconf.js';
import type { ZoneEndpoint, ZoneNetwork } from './zone.js';

export const STATE_DB = 'state.db';

interface NetworkRow { name: string; subnets: string; internal: number; declared: string; ready: number }
interface EndpointRow { network: string; namespace: string; addresses: string; aliases: string }

export interface DnsNetwork extends ZoneNetwork {
  /** Ready endpoints on it. */
  endpoints: number;
}

export interface Snapshot {
  networks: DnsNetwork[];
  endpoints: ZoneEndpoint[];
}

const NETWORKS_SQL = `SELECT n.name, n.subnets, n.internal, n.declared,
  (SELECT COUNT(*) FROM endpoints e WHERE e.network = n.name AND e.state = 'ready') AS ready
  FROM networks n ORDER BY n.name`;
// Endpoints on other hosts of a multi-host network (src/cluster) answer like local ones; a
// local endpoint of the same name comes first.
const ENDPOINTS_SQL = `SELECT network, namespace, addresses, aliases FROM (
  SELECT network, namespace, addresses, aliases, created_at, 0 AS remote FROM endpoints WHERE state = 'ready'
  UNION ALL SELECT network, namespace, addresses, aliases, '', 1 FROM remote_endpoints
) ORDER BY remote, created_at, network, namespace`;

function parseJson<T>(text: string, fallback: T): T {
  try { return JSON.parse(text) as T; } catch { return fallback; }
}

/** DNS-enabled networks, with their ready-endpoint counts, read through `db`. */
const networksStatements = new WeakMap<Database.Database, Database.Statement<[], NetworkRow>>();

export function readDnsNetworks(db: Database.Database): DnsNetwork[] {
  let st = networksStatements.get(db);
  if (!st) networksStatements.set(db, (st = db.prepare<[], NetworkRow>(NETWORKS_SQL)));
  const rows = st.all();
  const out: DnsNetwork[] = [];
  for (const r of rows) {
    const declared = parseJson<NetworkSpec & { dns?: boolean; dnsServers?: string[] }>(r.declared, { name: r.name });
    if (!networkHasDns({ declared })) continue;
    const subnets = parseJson<SubnetRecord[]>(r.subnets, []);
    out.push({
      name: r.name, internal: r.internal === 1, subnets: subnets.map((s) => s.cidr), gateways: dnsListenAddresses({ subnets, declared }),
      upstreams: Array.isArray(declared.dnsServers) ? declared.dnsServers.filter((s) => typeof s === 'string') : [],
      endpoints: r.ready,
    });
  }
  return out;
}

export class StateReader {
  private db: Database.Database | undefined;
  private dataVersion: Database.Statement<[], number> | undefined;
  private readonly file: string;

  constructor(readonly dir: string) {
    this.file = path.join(dir, STATE_DB);
  }

  /** Opens the database if it exists now; false if there is none yet. */
  private open(): Database.Database | undefined {
    if (this.db) return this.db;
    if (!fs.existsSync(this.file)) return undefined;
    const db = new Database(this.file, { fileMustExist: true });
    db.pragma('busy_timeout = 2000');
    db.pragma('query_only = ON');
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.db = db;
    return db;
  }

  /** Changes whenever another connection commits; -1 while there is no database. */
  version(): number {
    return this.open() ? this.dataVersion!.get()! : -1;
  }

  snapshot(): Snapshot {
    const db = this.open();
    if (!db) return { networks: [], endpoints: [] };
    return db.transaction(() => {
      const networks = readDnsNetworks(db);
      const endpoints = db.prepare<[], EndpointRow>(ENDPOINTS_SQL).all().map((r) => ({
        network: r.network, namespace: r.namespace,
        addresses: parseJson<string[]>(r.addresses, []), aliases: parseJson<string[]>(r.aliases, []),
      }));
      return { networks, endpoints };
    })();
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }
}
