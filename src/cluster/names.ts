/**
 * Names across hosts: each agent mirrors the ready endpoints of its local `cluster`
 * network to etcd (`/nsnet/v1/endpoints/NODE/NAMESPACE`, bound to its subnet lease, so they
 * vanish with the host), and writes every other host's into the local store's
 * `remote_endpoints` table, which the embedded DNS service reads beside local endpoints
 * (src/dns/state.ts). `nsnet ns exec c1 -- ping c2` then works across hosts as on one.
 *
 * Local changes are noticed through SQLite's `PRAGMA data_version` (a few µs; any commit by
 * any nsnet process changes it), polled every 250 ms.
 */
import { Store } from '../store/store.js';
import { dnsAfterChange, dnsServicePid } from '../dns/control.js';
import { SCHEMA, PREFIX } from './keys.js';

export const ENDPOINTS_PREFIX = `${PREFIX}endpoints/`;

export interface SharedEndpoint {
  schema: number;
  network: string;
  namespace: string;
  /** Without prefix. */
  addresses: string[];
  aliases: string[];
}

export function endpointKey(node: string, namespace: string): string {
  return `${ENDPOINTS_PREFIX}${node}/${namespace}`;
}

/** `…/endpoints/NODE/NS` → [NODE, NS]. */
export function parseEndpointKey(key: string): [string, string] | undefined {
  if (!key.startsWith(ENDPOINTS_PREFIX)) return undefined;
  const parts = key.slice(ENDPOINTS_PREFIX.length).split('/');
  return parts.length === 2 && parts[0] && parts[1] ? [parts[0], parts[1]] : undefined;
}

export function parseShared(text: string): SharedEndpoint | undefined {
  try {
    const v = JSON.parse(text) as SharedEndpoint;
    return v.schema === SCHEMA && typeof v.namespace === 'string' && Array.isArray(v.addresses) && Array.isArray(v.aliases) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The local side: what this host's store says, and the remote table it feeds. */
export class LocalNames {
  private readonly store: Store;
  private readonly version;
  private seen = -1;

  constructor(stateDir: string, private readonly network: string) {
    this.store = new Store(stateDir);
    this.version = this.store.db.prepare<[], number>('PRAGMA data_version').pluck();
  }

  /** The local endpoints when the store changed since the last call; undefined otherwise. */
  changed(): Map<string, SharedEndpoint> | undefined {
    const v = this.version.get()!;
    if (v === this.seen) return undefined;
    this.seen = v;
    return this.local();
  }

  local(): Map<string, SharedEndpoint> {
    const rows = this.store.db.prepare<[string], { namespace: string; addresses: string; aliases: string }>(
      "SELECT namespace, addresses, aliases FROM endpoints WHERE network = ? AND state = 'ready' ORDER BY namespace").all(this.network);
    return new Map(rows.map((r) => [r.namespace, {
      schema: SCHEMA, network: this.network, namespace: r.namespace,
      addresses: (JSON.parse(r.addresses) as string[]).map((a) => a.split('/')[0]!), aliases: JSON.parse(r.aliases) as string[],
    }]));
  }

  /** Replaces the remote endpoints (all hosts but this one) in one transaction; tells DNS. */
  writeRemote(entries: ReadonlyArray<{ node: string; e: SharedEndpoint }>): void {
    this.store.immediate(() => {
      this.store.db.prepare('DELETE FROM remote_endpoints WHERE network = ?').run(this.network);
      const ins = this.store.db.prepare('INSERT OR REPLACE INTO remote_endpoints (network, namespace, node, addresses, aliases) VALUES (?, ?, ?, ?, ?)');
      for (const { node, e } of entries) ins.run(this.network, e.namespace, node, JSON.stringify(e.addresses), JSON.stringify(e.aliases));
    });
    dnsAfterChange(this.store);
  }

  /**
   * Starts the DNS service if it should run and does not (it died, or was started by a
   * short-lived process it was tied to): names from other hosts must keep answering.
   */
  ensureDns(): void {
    if (dnsServicePid(this.store.dir) === undefined) dnsAfterChange(this.store);
  }

  close(): void {
    this.store.close();
  }
}
