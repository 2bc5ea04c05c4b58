/**
 * `nsnet agent`: one per host. It leases a subnet of the cluster CIDR in etcd, creates the
 * local bridge network `cluster` holding that subnet (so `nsnet connect cluster c1` works
 * as on one host), and keeps the kernel's routes / VXLAN neighbour / FDB entries towards
 * every other host equal to what etcd says (dataplane.ts).
 *
 * Control loop (reference/multihost-overlay.md §5.2, flannel's lessons in §1.4–1.5):
 *  1. one consistent listing of `subnets/` at revision R, reconcile (at start-up the kernel
 *     is first programmed from the listing the subnet lease was taken against);
 *  2. a watch from R+1; events update the model and schedule a reconcile (debounced);
 *  3. a watch that is cancelled (compaction: `mvcc: required revision has been compacted`)
 *     or fails leads to one fresh listing at a new revision and a new watch, with backoff —
 *     never a hot loop (flannel #2470);
 *  4. a periodic kernel resync repairs entries deleted by hand and a deleted VXLAN device;
 *     a periodic re-list catches anything a watch could have missed;
 *  5. each reconcile also keeps the local `cluster` network's MTU at the cluster's smallest
 *     underlay MTU minus the encapsulation, and nsnet's VXLAN filter (UDP to the VXLAN port
 *     only from current peers' underlay addresses) equal to the peer set;
 *  6. etcd unreachable (or refusing the TLS handshake): the model and the data plane stay
 *     as they are (flannel #294, #636);
 *     leases are kept alive by etcd KeepAlive and re-granted + re-put (same subnet, by
 *     compare-and-swap) when lost — the agent never exits and never flushes routes for that;
 *     a failed TLS handshake or a refused user also re-reads the TLS files and the
 *     password, and changed ones (rotated certificates, a new password) replace the
 *     client (reloadTarget).
 *
 * Dual stack (`cluster init --cidr6`): the IPv6 subnet is the pair of the IPv4 one
 * (plan.ts subnet6Of) and travels in the same lease value, with the underlay's link-local
 * address as host-gw next hop; the `cluster` network holds both subnets, and every step
 * above (reconcile, resync, withdrawal, MTU) covers both families.
 *
 * Ownership: the subnet key is bound to a persistent node id (state dir), so a restarted
 * agent takes its own subnet back; the node name key (`nodes/NAME`, heartbeat lease) can be
 * held by one node id only, so two agents claiming one name cannot both win.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import { NsnetError, isNsnetError } from '../errors.js';
import { Netns } from '../kernel/netns/netns.js';
import { getLink } from '../kernel/netlink/route/link.js';
import { listRoutes } from '../kernel/netlink/route/route.js';
import { listAddresses } from '../kernel/netlink/route/addr.js';
import { prefixesOverlap } from '../ipam/cidr.js';
import { randomMac } from '../ipam/address.js';
import { Nsnet } from '../engine/engine.js';
import type { NetworkRecord } from '../engine/types.js';
import { connectEtcd, isTransient, unreachable, type EtcdTarget } from './etcd.js';
import {
  CONFIG_KEY, PREFIX, SCHEMA, SUBNETS_PREFIX, nodeKey, parseConfig, parseLease, parseNode, subnetKey, subnetOfKey,
  type ClusterConfig, type NodeRecord, type SubnetLease,
} from './keys.js';
import { containerMtu, fitsConfig, pickFreeSubnet, planDataplane, subnet6Of, type DataplanePlan } from './plan.js';
import { readUnderlay, reconcile, type Underlay } from './dataplane.js';
import { LocalNames, endpointKey, parseEndpointKey, parseShared, type SharedEndpoint } from './names.js';

export const CLUSTER_NETWORK = 'cluster';

export interface AgentOptions {
  /** etcd's endpoints and TLS material (etcd.ts etcdTarget), read at start. */
  etcd: EtcdTarget;
  /**
   * Makes the target again from the same options (re-reading the TLS files and the
   * password). Called when a TLS handshake fails or etcd refuses the user: rotated
   * certificates and a changed password are taken without a restart (Agent.reloadTarget).
   */
  reloadEtcd?: () => EtcdTarget;
  node: string;
  /** Underlay interface; default: the interface of the default route. */
  iface?: string;
  stateDir: string;
  /** Subnet lease TTL in seconds (the data plane towards a dead host is withdrawn after it). */
  leaseTtl: number;
  /** Heartbeat (node name) lease TTL in seconds. */
  heartbeatTtl: number;
  /** Kernel resync period, ms. */
  resyncMs: number;
  /** Full etcd re-list period, ms. */
  relistMs: number;
  /** Largest wait between etcd retries, ms. */
  maxBackoffMs: number;
  log: (event: string, fields?: Record<string, unknown>) => void;
}

interface LocalState {
  nodeId: string;
  vtepMac: string;
  subnet?: string;
  subnetLeaseId?: string;
  heartbeatLeaseId?: string;
}

interface Entry { lease: SubnetLease; modRevision: string }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What start() throws when stop() came first: the CLI treats it as a clean stop. */
const STOPPED = 'agent stopped';

/**
 * How long a watch event waits for others to reconcile with. A join is one subnet write;
 * a burst (many hosts starting, a relist) comes in one or a few watch responses. Every
 * millisecond here is added to every peer's convergence.
 */
const WATCH_COALESCE_MS = 5;

/** How long a status write waits for more reconciles to coalesce with (publishStatus). */
const STATUS_DELAY_MS = 1000;

export class Agent {
  private readonly host = Netns.host();
  private client!: Etcd3;
  private config!: ClusterConfig;
  private underlay!: Underlay;
  private state!: LocalState;
  private subnetLease: Lease | undefined;
  private heartbeatLease: Lease | undefined;
  private readonly model = new Map<string, Entry>();
  private revision = '0';
  private watcher: Watcher | undefined;
  private timers: NodeJS.Timeout[] = [];
  private pending: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Ends the back-off waits of start-up and re-listing at once when stop() is called. */
  private readonly stopping = new AbortController();
  /** start()'s run, which stop() waits for: nothing it makes may outlive the agent. */
  private starting: Promise<void> | undefined;
  private relisting = false;
  private relistFailures = 0;
  private lastStatus = '';
  private errors: string[] = [];
  private readonly stateFile: string;
  private readonly urls: string[];
  /** The target the client was made with (replaced by reloadTarget). */
  private etcd: EtcdTarget;
  /** start() has listed the cluster and started the watch and the timers. */
  private running = false;
  /** Names across hosts (names.ts): what we published, and every host's endpoints by key. */
  private names: LocalNames | undefined;
  private readonly published = new Map<string, string>();
  private forcePublish = true;
  private publishing = false;
  private readonly remote = new Map<string, { node: string; e: SharedEndpoint }>();
  private pendingNames: NodeJS.Timeout | undefined;
  /** The engine (store + firewall), opened on first use and held until stop(). */
  private net: Nsnet | undefined;
  /** The underlay filter last written (JSON of the ClusterFilter), '' before the first. */
  private filterKey = '';
  /** The `cluster` network's MTU as last stored (undefined: not known yet, check). */
  private networkMtu: number | undefined;

  constructor(private readonly o: AgentOptions) {
    this.stateFile = path.join(o.stateDir, 'cluster-agent.json');
    this.urls = o.etcd.urls;
    this.etcd = o.etcd;
  }

  // ---- start-up ---------------------------------------------------------------------------

  /**
   * Runs until stop(). Throws (before changing anything) on bad input. A stop() during
   * start-up (SIGTERM while etcd is away, say) ends it at its next step, with no lease,
   * timer or watch left behind.
   */
  start(): Promise<void> {
    this.starting ??= this.startUp();
    return this.starting;
  }

  /** Throws when stop() was called while start-up waited (for etcd, for the kernel). */
  private checkNotStopped(): void {
    if (this.stopped) throw new NsnetError('USAGE', STOPPED);
  }

  /** A back-off wait that stop() cuts short. */
  private pause(ms: number): Promise<void> {
    return delay(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  private async startUp(): Promise<void> {
    // Everything that can be refused is checked before the first change.
    const iface = this.o.iface ?? this.defaultIface();
    if (!getLink(this.host, iface)) {
      throw new NsnetError('LINK_NOT_FOUND', `underlay interface ${iface} not found on this host (--iface)`, { object: iface });
    }
    this.underlay = readUnderlay(this.host, iface);
    if (!this.underlay.publicIp) throw new NsnetError('LINK_NOT_FOUND', `underlay interface ${iface} has no IPv4 address`, { object: iface });
    this.state = this.loadState();
    this.client = connectEtcd(this.etcd);
    const config = this.retry('read the cluster config', () => this.readConfig());
    // While the first call connects and waits for etcd: open the store and libnftables
    // (~15 ms of CPU), which the first reconcile needs, instead of paying for them when
    // every peer is busy programming the host that is joining. (Loading the engine's
    // modules lazily here too was measured slower: the loading then lands in the window
    // where 29 peers reconcile on 2 CPUs, and the joiner's lease waited for it.)
    this.engine().warmUp();
    this.config = await config;
    this.checkNotStopped();
    this.o.log('config', { ...this.config });
    this.checkOverlap();
    await this.retry('claim the node name', () => this.claimNode());
    this.checkNotStopped();
    const subnet = await this.retry('lease a subnet', () => this.acquireSubnet());
    this.checkNotStopped();
    const subnet6 = subnet6Of(this.config, subnet);
    this.o.log('leased', { subnet, ...(subnet6 ? { subnet6 } : {}), node: this.o.node, publicIp: this.underlay.publicIp });
    // Program the kernel towards the peers at once, from the consistent listing the lease
    // was taken against (the peers are programming us from the same moment); the local
    // network, the names and the full listing + watch follow. A host joining is reachable
    // as soon as both sides are programmed, and the network is not needed for that.
    this.checkNetwork(subnet);
    for (const [s, e] of this.leasingListing) this.model.set(s, e);
    this.reconcileNow('lease');
    this.ensureNetwork(subnet);
    this.names = new LocalNames(this.o.stateDir, CLUSTER_NETWORK);
    await this.retry('list the cluster', () => this.relist());
    this.checkNotStopped();
    this.timers.push(setInterval(() => { void this.publishNames(); }, 250));
    this.timers.push(setInterval(() => this.resync('timer'), this.o.resyncMs));
    this.timers.push(setInterval(() => { void this.relistSafe('periodic'); }, this.o.relistMs));
    this.running = true;
  }

  /**
   * A failed etcd call as an NsnetError (etcd.ts unreachable); a TLS failure or a refused
   * user re-reads the files (reloadTarget).
   */
  private etcdError(e: unknown): NsnetError {
    const err = unreachable(this.etcd, e);
    if (err.code === 'ETCD_TLS' || err.code === 'ETCD_AUTH') this.reloadTarget();
    return err;
  }

  /**
   * After a failed TLS handshake or a refused user: re-reads the TLS files and the password
   * and, when they changed (a rotated client certificate, a new CA, a new password),
   * reconnects with them. The leases bound to the old client
   * are regained on the new one (regain: the path of a lost lease, the same subnet by
   * compare-and-swap), and the cluster is listed and watched again; the data plane is left
   * alone meanwhile. Files missing or broken mid-rotation are logged and read again on the
   * next failure. A certificate rotated while the connection stays up is taken at the next
   * failed handshake (or restart).
   */
  private reloadTarget(): void {
    if (!this.o.reloadEtcd || this.stopped) return;
    let next: EtcdTarget;
    try {
      next = this.o.reloadEtcd();
    } catch (e) {
      this.o.log('etcd-reload-failed', { error: (e as Error).message }); // the message names the option and the file
      return;
    }
    const pems = (t: EtcdTarget): string => JSON.stringify([t.tls?.ca?.pem.toString('base64'), t.tls?.cert?.pem.toString('base64'), t.tls?.key?.pem.toString('base64')]);
    const credentials = (t: EtcdTarget): string => JSON.stringify([t.auth?.user, t.auth?.password]);
    const tlsChanged = pems(next) !== pems(this.etcd);
    const authChanged = credentials(next) !== credentials(this.etcd);
    if (!tlsChanged && !authChanged) return;
    if (tlsChanged) this.o.log('tls-reloaded', { ca: next.tls?.ca?.file, cert: next.tls?.cert?.file, key: next.tls?.key?.file });
    if (authChanged) this.o.log('credentials-reloaded', { user: next.auth?.user, from: next.auth?.from });
    const old = this.client;
    this.etcd = next;
    this.client = connectEtcd(next);
    // As when a lease is lost (its keepalives could not get through either).
    for (const which of ['subnet', 'heartbeat'] as const) {
      const lease = which === 'subnet' ? this.subnetLease : this.heartbeatLease;
      if (!lease) continue;
      lease.removeAllListeners('lost');
      void this.regain(which);
    }
    void (async () => {
      await this.closeWatch();
      old.close();
      if (this.running) void this.relistSafe(tlsChanged ? 'tls-reload' : 'credentials-reload');
    })();
  }

  private defaultIface(): string {
    const def = listRoutes(this.host, { family: 4 }).find((r) => r.dst === 'default' && r.dev !== undefined);
    const link = def?.dev !== undefined ? getLink(this.host, def.dev) : undefined;
    if (!link) throw new NsnetError('LINK_NOT_FOUND', 'no default route to pick the underlay interface from: pass --iface', { object: 'default' });
    return link.name;
  }

  private loadState(): LocalState {
    try {
      const s = JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as LocalState;
      if (typeof s.nodeId === 'string' && typeof s.vtepMac === 'string') return s;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log('state-unreadable', { file: this.stateFile, error: String(e) });
    }
    const s: LocalState = { nodeId: crypto.randomUUID(), vtepMac: randomMac().toString() };
    this.saveState(s);
    return s;
  }

  private saveState(s: LocalState = this.state): void {
    fs.mkdirSync(path.dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
    fs.renameSync(tmp, this.stateFile);
  }

  /**
   * Retries `fn` while etcd is unreachable or refuses the TLS handshake (a certificate
   * being fixed or rotated on the server), with exponential backoff, logging one line per
   * attempt; refusals (NsnetError other than ETCD_UNREACHABLE, ETCD_TLS, not initialised)
   * propagate.
   */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let wait = 250;
    for (;;) {
      this.checkNotStopped();
      try {
        return await fn();
      } catch (e) {
        let err = e;
        if (!(e instanceof NsnetError)) err = this.etcdError(e);
        const ne = err as NsnetError;
        if (!isTransient(ne)) throw ne;
        this.o.log('retry', { what, error: ne.message, retryInMs: wait });
        await this.pause(wait);
        wait = Math.min(this.o.maxBackoffMs, wait * 2);
      }
    }
  }

  private async readConfig(): Promise<ClusterConfig> {
    const text = await this.client.get(CONFIG_KEY).string();
    if (text === null) {
      throw new NsnetError('CLUSTER_NOT_INITIALISED', `no cluster config in etcd at ${this.urls.join(',')}: run \`nsnet cluster init\` first`);
    }
    return parseConfig(text);
  }

  /** The cluster CIDRs must not overlap this host's underlay (they would shadow peers' addresses). */
  private checkOverlap(): void {
    const v6 = this.config.network6 ? listAddresses(this.host, { family: 6, dev: this.underlay.index }).map((a) => `${a.address}/${a.prefixlen}`) : [];
    for (const [net, mine, what] of [[this.config.network, this.underlay.onLink, 'CIDR'], [this.config.network6, v6, 'IPv6 CIDR']] as const) {
      const p = net === undefined ? undefined : mine.find((x) => prefixesOverlap(x, net));
      if (p) throw new NsnetError('SUBNET_OVERLAP', `cluster ${what} ${net} overlaps ${p} on the underlay interface ${this.underlay.iface}`, { object: net });
    }
  }

  private nodeRecord(): NodeRecord {
    const peers: NodeRecord['peers'] = {};
    for (const p of this.lastPlan?.peers ?? []) {
      peers[p.node] = { backend: p.backend, subnet: p.subnet, ...(p.v6 ? { subnet6: p.v6.subnet, backend6: p.v6.backend } : {}) };
    }
    const subnet6 = this.state.subnet ? subnet6Of(this.config, this.state.subnet) : undefined;
    return {
      schema: SCHEMA, nodeId: this.state.nodeId, subnet: this.state.subnet ?? '', ...(subnet6 ? { subnet6 } : {}), publicIp: this.underlay.publicIp,
      startedAt: this.startedAt, pid: process.pid, peers, revision: this.revision, errors: this.errors,
    };
  }

  private readonly startedAt = new Date().toISOString();
  private lastPlan: DataplanePlan | undefined;

  private newLease(ttl: number, which: 'subnet' | 'heartbeat'): Lease {
    const lease = this.client.lease(ttl);
    lease.on('lost', (err) => {
      if (this.stopped) return;
      this.o.log('lease-lost', { which, error: err.message });
      void this.regain(which);
    });
    return lease;
  }

  /**
   * The lease's id, granting it first if needed. The library's Lease keeps the promise of
   * its one grant: a grant that failed (etcd away) fails forever, so such a Lease is
   * dropped and the next attempt makes a new one.
   */
  private async grant(which: 'subnet' | 'heartbeat'): Promise<string> {
    let lease = which === 'subnet' ? this.subnetLease : this.heartbeatLease;
    if (!lease) {
      lease = this.newLease(which === 'subnet' ? this.o.leaseTtl : this.o.heartbeatTtl, which);
      if (which === 'subnet') this.subnetLease = lease; else this.heartbeatLease = lease;
    }
    try {
      return await lease.grant();
    } catch (e) {
      lease.removeAllListeners('lost');
      lease.release();
      if (which === 'subnet' && this.subnetLease === lease) this.subnetLease = undefined;
      if (which === 'heartbeat' && this.heartbeatLease === lease) this.heartbeatLease = undefined;
      throw e;
    }
  }

  /** Claims `nodes/NAME` for this node id; another live node id holding it is a refusal. */
  private async claimNode(): Promise<void> {
    const key = nodeKey(this.o.node);
    for (let attempt = 0; attempt < 10; attempt++) {
      // The read and the grant in one round trip (etcd answers both independently).
      const [res, id] = await Promise.all([this.client.get(key).exec(), this.grant('heartbeat')]);
      const kv = res.kvs[0];
      const value = JSON.stringify(this.nodeRecord());
      if (kv) {
        const cur = parseNode(kv.value.toString());
        if (!cur || cur.nodeId !== this.state.nodeId) {
          await this.dropLease('heartbeat');
          throw new NsnetError('NODE_NAME_IN_USE', `node name ${this.o.node} is held by a live agent (node id ${cur?.nodeId ?? '?'}, ${cur?.publicIp ?? '?'}, pid ${cur?.pid ?? '?'}): choose another --node`, { object: this.o.node });
        }
        const r = await this.client.if(key, 'Mod', '==', kv.mod_revision).then(this.client.put(key).value(value).lease(id)).commit();
        if (r.succeeded) return this.forgetOldLease('heartbeat', kv.lease, id);
      } else {
        const r = await this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(value).lease(id)).commit();
        if (r.succeeded) return this.forgetOldLease('heartbeat', undefined, id);
      }
    }
    throw new NsnetError('NODE_NAME_IN_USE', `node name ${this.o.node} keeps changing hands in etcd; is another agent starting with it?`, { object: this.o.node });
  }

  private async dropLease(which: 'subnet' | 'heartbeat'): Promise<void> {
    const l = which === 'subnet' ? this.subnetLease : this.heartbeatLease;
    if (which === 'subnet') this.subnetLease = undefined; else this.heartbeatLease = undefined;
    if (l) await l.revoke().catch(() => undefined);
  }

  /**
   * After taking a key over with a new lease, revokes the lease a previous run of this
   * agent left (recorded in the state file), so it does not linger for a full TTL.
   */
  private forgetOldLease(which: 'subnet' | 'heartbeat', previous: string | undefined, current: string): void {
    const field = which === 'subnet' ? 'subnetLeaseId' : 'heartbeatLeaseId';
    const old = this.state[field];
    this.state[field] = current;
    this.saveState();
    if (old && old !== current && (previous === undefined || previous === old)) {
      void this.client.leaseClient.leaseRevoke({ ID: old }).catch(() => undefined);
    }
  }

  private leaseValue(subnet: string): string {
    const v: SubnetLease = {
      schema: SCHEMA, nodeId: this.state.nodeId, node: this.o.node, publicIp: this.underlay.publicIp,
      underlayMtu: this.underlay.mtu, vtepMac: this.state.vtepMac,
    };
    // Dual stack: the paired IPv6 subnet and the host-gw IPv6 next hop, in the same value
    // (optional fields: agents that predate them ignore them).
    const subnet6 = subnet6Of(this.config, subnet);
    if (subnet6) {
      v.subnet6 = subnet6;
      if (this.underlay.linkLocal6) v.linkLocal6 = this.underlay.linkLocal6;
    }
    return JSON.stringify(v);
  }

  /**
   * Leases a subnet: the one in the state file if it is free or already ours (compare-and-
   * swap: etcd compares are AND-only, so "absent" and "mine at revision N" are two
   * transactions), otherwise a free one picked at random; 10 attempts against races.
   */
  private async acquireSubnet(): Promise<string> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const [id, all] = await Promise.all([this.grant('subnet'), this.client.getAll().prefix(SUBNETS_PREFIX).exec()]);
      const taken = new Map<string, { lease: SubnetLease | undefined; mod: string; leaseId: string }>();
      this.leasingListing.clear();
      for (const kv of all.kvs) {
        const s = subnetOfKey(kv.key.toString());
        if (!s) continue;
        const lease = parseLease(kv.value.toString());
        taken.set(s, { lease, mod: kv.mod_revision, leaseId: kv.lease });
        if (lease && fitsConfig(this.config, s)) this.leasingListing.set(s, { lease, modRevision: kv.mod_revision });
      }
      // A subnet this node already holds in etcd wins over the state file (state dir lost).
      let want = [...taken].find(([, v]) => v.lease?.nodeId === this.state.nodeId)?.[0];
      if (!want && this.state.subnet && fitsConfig(this.config, this.state.subnet)) {
        const cur = taken.get(this.state.subnet);
        if (!cur || cur.lease?.nodeId === this.state.nodeId) want = this.state.subnet;
      }
      want ??= pickFreeSubnet(this.config, new Set(taken.keys()));
      if (!fitsConfig(this.config, want)) want = pickFreeSubnet(this.config, new Set(taken.keys()));
      const key = subnetKey(want);
      const cur = taken.get(want);
      const put = this.client.put(key).value(this.leaseValue(want)).lease(id);
      const r = cur
        ? await this.client.if(key, 'Mod', '==', cur.mod).then(put).commit()
        : await this.client.if(key, 'Version', '==', 0).then(put).commit();
      if (r.succeeded) {
        this.state.subnet = want;
        this.forgetOldLease('subnet', cur?.leaseId, id);
        return want;
      }
      this.o.log('lease-race', { subnet: want, attempt });
    }
    throw new NsnetError('CLUSTER_SUBNETS_EXHAUSTED', 'could not lease a subnet after 10 attempts (other agents keep winning the race)');
  }

  /** The other hosts' leases as listed by the last acquireSubnet (start-up programs from it). */
  private readonly leasingListing = new Map<string, Entry>();

  private readonly regaining = new Set<'subnet' | 'heartbeat'>();

  /**
   * Re-grants a lost lease and re-puts our key(s) with it; retried with backoff, never exits.
   * Single-flight per lease: a lost lease and the deletion of our key often arrive together.
   */
  private async regain(which: 'subnet' | 'heartbeat'): Promise<void> {
    if (this.regaining.has(which)) return;
    this.regaining.add(which);
    const old = which === 'subnet' ? this.subnetLease : this.heartbeatLease;
    old?.release();
    if (which === 'subnet') this.subnetLease = undefined; else this.heartbeatLease = undefined;
    try {
      if (which === 'heartbeat') {
        await this.retry('re-claim the node name', () => this.claimNode());
      } else {
        const before = this.state.subnet;
        const s = await this.retry('re-lease the subnet', () => this.acquireSubnet());
        this.forcePublish = true; // the names were bound to the lost lease
        if (s !== before) {
          // Another node took our subnet while we were away: containers here keep their old
          // addresses, which now belong to someone else. Say so loudly; an operator must act.
          this.errors = [`subnet ${before} was taken by another node while this agent was cut off; now leased ${s}: restart the agent after moving containers`];
          this.o.log('subnet-changed', { from: before, to: s });
        } else {
          this.o.log('re-leased', { subnet: s });
        }
      }
    } catch (e) {
      if (this.stopped) return;
      this.o.log('regain-failed', { which, error: (e as Error).message });
    } finally {
      this.regaining.delete(which);
    }
  }

  /** Creates the local network `cluster` with the leased subnet (or checks the one there). */
  private ensureNetwork(subnet: string): void {
    // The cluster's smallest underlay, from the first reconcile's plan (the listing).
    const mtu = this.lastPlan?.containerMtu ?? containerMtu(this.config, this.underlay.mtu, []);
    const net = this.engine();
    const cur = this.checkNetwork(subnet);
    const subnets = this.networkSubnets(subnet);
    if (cur) {
      if (sameSubnets(cur, subnets)) { this.networkMtu = cur.mtu ?? undefined; return; }
      net.removeNetwork(CLUSTER_NETWORK);
    }
    // Dual stack: the IPv6 subnet beside the IPv4 one, as `nsnet net add --subnet … --subnet …`
    // would make it (gateways, forwarding, firewall sets per family); peers of both families.
    const peers = [this.config.network, ...(this.config.network6 ? [this.config.network6] : [])];
    net.createNetwork({ name: CLUSTER_NETWORK, subnets, mtu, peers });
    this.networkMtu = mtu;
    this.o.log('network', { name: CLUSTER_NETWORK, subnet, ...(subnets[1] ? { subnet6: subnets[1] } : {}), mtu });
  }

  /** The local `cluster` network's subnets for a leased IPv4 subnet: it, and its IPv6 pair. */
  private networkSubnets(subnet: string): string[] {
    const subnet6 = subnet6Of(this.config, subnet);
    return subnet6 ? [subnet, subnet6] : [subnet];
  }

  /**
   * The local `cluster` network as stored, refusing (before anything is programmed) one
   * that holds another subnet while containers are attached to it.
   */
  private checkNetwork(subnet: string): NetworkRecord | undefined {
    const net = this.engine();
    const cur = net.store.network(CLUSTER_NETWORK);
    const subnets = this.networkSubnets(subnet);
    if (cur && !sameSubnets(cur, subnets) && net.store.endpoints({ network: CLUSTER_NETWORK }).length > 0) {
      throw new NsnetError('NETWORK_IN_USE', `local network ${CLUSTER_NETWORK} holds ${cur.subnets.map((s) => s.cidr).join(',')} but this node leased ${subnets.join(',')}: disconnect its endpoints first`, { object: CLUSTER_NETWORK });
    }
    return cur;
  }

  /**
   * The engine, held for the agent's life: the store is SQLite in WAL mode (an idle
   * connection holds no lock, CLI calls go on beside it) and libnftables' context is built
   * once, so a join costs the agent a firewall transaction, not an engine start-up.
   */
  private engine(): Nsnet {
    this.net ??= new Nsnet({ stateDir: this.o.stateDir });
    return this.net;
  }

  // ---- listing, watching, reconciling -----------------------------------------------------

  private async relist(): Promise<void> {
    const res = await this.client.getAll().prefix(PREFIX).exec();
    this.model.clear();
    this.remote.clear();
    for (const kv of res.kvs) this.apply('put', kv.key.toString(), kv.value.toString(), kv.mod_revision);
    this.scheduleNames();
    this.revision = res.header.revision;
    this.o.log('listed', { revision: this.revision, subnets: this.model.size });
    this.reconcileNow('list');
    await this.watch();
  }

  /** Re-lists with backoff after a watch failure; only one at a time (no hot loop). */
  private async relistSafe(why: string): Promise<void> {
    if (this.relisting || this.stopped) return;
    this.relisting = true;
    try {
      await this.closeWatch();
      for (;;) {
        if (this.stopped) return;
        try {
          this.o.log('relist', { why });
          await this.relist();
          this.relistFailures = 0;
          return;
        } catch (e) {
          this.relistFailures++;
          const wait = Math.min(this.o.maxBackoffMs, 250 * 2 ** Math.min(this.relistFailures, 8));
          this.o.log('retry', { what: 'list the cluster', error: this.etcdError(e).message, retryInMs: wait });
          await this.pause(wait);
        }
      }
    } finally {
      this.relisting = false;
    }
  }

  private async closeWatch(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    // A watcher etcd already cancelled (compaction) never gets an answer to cancel(): bound
    // the wait, it only matters for live ones.
    if (w) await Promise.race([w.cancel().catch(() => undefined), sleep(1000)]);
  }

  private async watch(): Promise<void> {
    await this.closeWatch();
    const w = await this.client.watch().prefix(PREFIX).startRevision(String(BigInt(this.revision) + 1n)).create();
    if (this.stopped) { await w.cancel().catch(() => undefined); return; }
    this.watcher = w;
    w.on('data', (res) => {
      if (w !== this.watcher) return;
      let subnets = false;
      let names = false;
      for (const ev of res.events) {
        const kv = ev.kv;
        const key = kv.key.toString();
        subnets ||= key.startsWith(SUBNETS_PREFIX);
        names ||= parseEndpointKey(key) !== undefined;
        this.apply(ev.type === 'Delete' ? 'delete' : 'put', key, kv.value.toString(), kv.mod_revision);
      }
      this.revision = res.header.revision;
      // Only subnet changes touch the kernel; agents' status writes (nodes/) touch nothing.
      if (subnets) this.schedule();
      if (names) this.scheduleNames();
    });
    // A cancelled watch (compaction: the revision we resume from is gone) or a broken one:
    // start over with a fresh listing, exactly once (relistSafe is single-flight).
    w.on('error', (err) => {
      if (w !== this.watcher) return;
      this.watcher = undefined;
      this.o.log('watch-error', { error: err.message, revision: this.revision });
      void this.relistSafe('watch-error');
    });
    w.on('disconnected', (err) => { if (w === this.watcher) this.o.log('watch-disconnected', { error: this.etcdError(err).message }); });
  }

  private apply(kind: 'put' | 'delete', key: string, value: string, modRevision: string): void {
    const ep = parseEndpointKey(key);
    if (ep) {
      const e = kind === 'put' ? parseShared(value) : undefined;
      if (e) this.remote.set(key, { node: ep[0], e }); else this.remote.delete(key);
      return;
    }
    const subnet = subnetOfKey(key);
    if (!subnet) return;
    if (kind === 'delete') {
      this.model.delete(subnet);
      // Our own key gone (expired while we were cut off, or removed by hand) while we run:
      // put it back. Peers withdrew us meanwhile; they re-add us when it returns.
      if (subnet === this.state.subnet && !this.stopped) {
        this.o.log('own-lease-deleted', { subnet });
        void this.regain('subnet');
      }
      return;
    }
    const lease = parseLease(value);
    if (!lease) { this.o.log('bad-lease-value', { key }); return; }
    if (!fitsConfig(this.config, subnet)) { this.o.log('lease-outside-cidr', { key }); return; }
    this.model.set(subnet, { lease, modRevision });
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => { this.pending = undefined; this.reconcileNow('watch'); }, WATCH_COALESCE_MS);
  }

  private scheduleNames(): void {
    if (this.pendingNames || !this.names) return;
    this.pendingNames = setTimeout(() => {
      this.pendingNames = undefined;
      if (this.stopped || !this.names) return;
      try {
        this.names.writeRemote([...this.remote.values()].filter((r) => r.node !== this.o.node));
      } catch (e) {
        this.o.log('names-failed', { error: (e as Error).message });
      }
    }, 50);
  }

  /** Mirrors the local `cluster` endpoints to etcd (under the subnet lease) when they change. */
  private async publishNames(): Promise<void> {
    if (this.publishing || this.stopped || !this.names || !this.state.subnetLeaseId) return;
    const force = this.forcePublish;
    const local = force ? this.names.local() : this.names.changed();
    if (!local) return;
    this.publishing = true;
    this.forcePublish = false;
    try {
      const lease = this.state.subnetLeaseId;
      const want = new Map([...local].map(([ns, e]) => [endpointKey(this.o.node, ns), JSON.stringify(e)]));
      for (const [key, value] of want) {
        if (!force && this.published.get(key) === value) continue;
        await this.client.put(key).value(value).lease(lease).exec();
        this.published.set(key, value);
      }
      for (const key of [...this.published.keys()]) {
        if (want.has(key)) continue;
        await this.client.delete().key(key).exec();
        this.published.delete(key);
      }
    } catch (e) {
      this.forcePublish = true; // retried on the next tick
      this.o.log('retry', { what: 'publish endpoint names', error: this.etcdError(e).message });
    } finally {
      this.publishing = false;
    }
  }

  /** Periodic safety net: re-reads the underlay (MTU, address) and re-applies the plan. */
  private resync(why: string): void {
    if (this.stopped) return;
    try {
      const u = readUnderlay(this.host, this.underlay.iface);
      if (u.mtu !== this.underlay.mtu || u.publicIp !== this.underlay.publicIp || (this.config.network6 && u.linkLocal6 !== this.underlay.linkLocal6)) {
        this.o.log('underlay-changed', { mtu: u.mtu, publicIp: u.publicIp, ...(this.config.network6 ? { linkLocal6: u.linkLocal6 ?? null } : {}) });
        this.underlay = u;
        void this.republish();
      }
      this.underlay = u;
    } catch (e) {
      this.o.log('underlay-missing', { iface: this.underlay.iface, error: (e as Error).message });
      return;
    }
    this.reconcileNow(why);
    try { this.names?.ensureDns(); } catch (e) { this.o.log('dns-failed', { error: (e as Error).message }); }
  }

  /** Our lease value changed (underlay MTU or address): rewrite it under the same lease. */
  private async republish(): Promise<void> {
    const subnet = this.state.subnet;
    const id = this.state.subnetLeaseId;
    if (!subnet || !id) return;
    try {
      await this.client.put(subnetKey(subnet)).value(this.leaseValue(subnet)).lease(id).exec();
    } catch (e) {
      this.o.log('retry', { what: 'publish the underlay change', error: this.etcdError(e).message });
      setTimeout(() => { void this.republish(); }, 1000);
    }
  }

  private reconcileNow(why: string): void {
    if (this.stopped || !this.state.subnet) return;
    const leases = new Map([...this.model].map(([s, e]) => [s, e.lease]));
    const plan = planDataplane(this.config, { subnet: this.state.subnet, onLink: this.underlay.onLink, underlayMtu: this.underlay.mtu }, leases);
    const errors = [...plan.errors, ...plan.peers.flatMap((p) => [p.reason, p.v6?.reason !== p.reason ? p.v6?.reason : undefined]).filter((r): r is string => !!r)];
    try {
      const t0 = performance.now();
      // Peers are let in before routes point at them.
      const filtered = this.ensureFilter(plan, why === 'timer');
      const r = reconcile(this.host, this.config, this.underlay, this.state.subnet, this.state.vtepMac, plan);
      this.lastPlan = plan;
      this.errors = errors;
      const links = this.ensureNetworkMtu(plan.containerMtu, why === 'timer');
      if (r.changes + links + filtered > 0 || why !== 'timer') {
        this.o.log('reconciled', {
          why, changes: r.changes + links + filtered, recreatedDevice: r.recreatedDevice, peers: plan.peers.length, revision: this.revision,
          mtu: plan.containerMtu, ms: Math.round((performance.now() - t0) * 100) / 100,
        });
      }
    } catch (e) {
      // Kernel and firewall refusals are NsnetErrors; the store (MTU, filter) can also fail
      // transiently (SQLITE_BUSY past the busy timeout while a CLI holds the write lock).
      // Both are retried by the next event or resync; anything else is a bug and surfaces.
      if (!isNsnetError(e) && !isSqliteError(e)) throw e;
      const message = (e as Error).message;
      this.errors = [...errors, message];
      this.o.log('reconcile-failed', { why, error: message });
    }
    this.publishStatus();
  }

  /**
   * Keeps the `cluster` network's MTU (stored record, bridge, veths, containers' interfaces)
   * at `mtu`, so a container never sends a packet some underlay on its way would drop: an
   * underlay MTU change anywhere in the cluster reaches every container. Runs when the MTU
   * changed, and on the periodic resync (which also repairs interfaces changed by hand and
   * attaches that raced with a change). Returns links changed.
   */
  private ensureNetworkMtu(mtu: number, repair: boolean): number {
    if (mtu === this.networkMtu && !repair) return 0;
    // The first reconcile (at start-up) comes before the network exists on a new host:
    // ensureNetwork then creates it with this plan's MTU.
    if (this.networkMtu === undefined && !this.engine().store.network(CLUSTER_NETWORK)) return 0;
    const links = this.engine().setNetworkMtu(CLUSTER_NETWORK, mtu);
    if (links > 0 || (this.networkMtu !== undefined && mtu !== this.networkMtu)) this.o.log('network-mtu', { name: CLUSTER_NETWORK, from: this.networkMtu, mtu, links });
    this.networkMtu = mtu;
    return links;
  }

  /**
   * Keeps the underlay filter (firewall.ts ClusterFilter) equal to the current peers: UDP to
   * the VXLAN port only from their underlay addresses. One firewall transaction when the
   * peer set changes; the periodic resync rewrites it (a flushed set, a rebuilt table).
   * Host-gw peers are included: a peer's backend can change (auto) before we see it.
   * Returns 1 when the set changed.
   */
  private ensureFilter(plan: DataplanePlan, repair: boolean): number {
    const f = plan.vxlan ? { port: this.config.port, peers: [...new Set(plan.peers.map((p) => p.publicIp))].sort() } : null;
    const key = JSON.stringify(f);
    if (key === this.filterKey && !repair) return 0;
    this.engine().setClusterFilter(f);
    const changed = key !== this.filterKey;
    this.filterKey = key;
    return changed ? 1 : 0;
  }

  /**
   * Writes nodes/NAME a moment after a reconcile, coalescing: the status is for people
   * (`cluster status`), and every write reaches every agent's watch — when a host joins, N
   * agents reconcile at once and N status writes fan out to N watchers (N² events), which
   * would compete for the CPU with the programming that the join is waiting for.
   */
  private publishStatus(): void {
    if (this.pendingStatus || this.stopped) return;
    this.pendingStatus = setTimeout(() => {
      this.pendingStatus = undefined;
      void this.writeStatus();
    }, STATUS_DELAY_MS);
  }

  private pendingStatus: NodeJS.Timeout | undefined;

  /** Writes nodes/NAME (under the heartbeat lease) when what it says changed. */
  private async writeStatus(): Promise<void> {
    if (this.stopped) return;
    const rec = this.nodeRecord();
    const text = JSON.stringify({ ...rec, revision: '' });
    if (text === this.lastStatus || !this.heartbeatLease || !this.state.heartbeatLeaseId) return;
    this.lastStatus = text;
    try {
      await this.client.put(nodeKey(this.o.node)).value(JSON.stringify(rec)).lease(this.state.heartbeatLeaseId).exec();
    } catch {
      this.lastStatus = ''; // try again on the next reconcile
    }
  }

  /**
   * Stops the loops and releases the node name. The subnet lease and the kernel state stay:
   * a restart within the lease takes both back without a dropped packet (flannel keeps its
   * data plane on exit too); a host that stays away is withdrawn by peers when it expires.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    // A start-up under way ends at its next step; what it made until then (a lease being
    // granted, a watch being opened) is released below, not left running (a process that
    // never exits after SIGTERM).
    await this.starting?.catch(() => undefined);
    for (const t of this.timers) clearInterval(t);
    if (this.pending) clearTimeout(this.pending);
    if (this.pendingNames) clearTimeout(this.pendingNames);
    if (this.pendingStatus) clearTimeout(this.pendingStatus);
    this.names?.close();
    this.names = undefined;
    this.net?.close();
    this.net = undefined;
    await this.closeWatch();
    this.subnetLease?.release();
    await this.dropLease('heartbeat');
    this.client?.close();
  }
}

function sameSubnets(n: NetworkRecord, subnets: readonly string[]): boolean {
  return n.subnets.length === subnets.length && subnets.every((c) => n.subnets.some((s) => s.cidr === c));
}

/** better-sqlite3's SqliteError: its `code` is SQLite's result code name (SQLITE_BUSY …). */
function isSqliteError(e: unknown): boolean {
  return e instanceof Error && e.name === 'SqliteError' && typeof (e as { code?: unknown }).code === 'string';
}
