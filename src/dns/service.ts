/**
 * nsnet's DNS service: UDP and TCP port 53 on the gateway addresses of every DNS-enabled
 * network, in the namespace it runs in (the host's). See README.md beside this file for
 * the whole design; in short:
 *
 *  - Who may ask: only endpoints. A query whose source address is not an endpoint's, or
 *    that arrives on the gateway of a network the asker is not attached to, gets no answer
 *    at all (not an open resolver, even though Linux delivers a packet for a gateway
 *    address that came in on the uplink). Then a token bucket per source.
 *  - What it answers itself: A/AAAA/ANY for namespace names and aliases on networks the
 *    asker shares (src/dns/zone.ts), with and without the search domain; PTR for their
 *    addresses; NXDOMAIN for other names in `dns.nsnet`, for single-label names and for
 *    other addresses in nsnet's subnets. TTL 5 s; negative answers are not cacheable.
 *  - What it forwards: everything else, to the network's own upstreams or the host's
 *    resolvers (src/dns/upstream.ts), through a small bounded cache (src/dns/cache.ts) —
 *    unless every network of the asker is internal: then REFUSED.
 *  - Freshness: it compares SQLite's `data_version` (any commit by any nsnet process
 *    changes it) every 2 ms of queries, and before every negative answer, and rebuilds its
 *    index when it moved — so a `connect` that returned is never answered NXDOMAIN, and a
 *    `disconnect` is seen within 2 ms without any signal (dnsAfterChange sends SIGHUP
 *    only when the listener set must change).
 *    Listeners follow on SIGHUP or the 1 s poll, without closing the ones that stay.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import type { Answer } from 'dns-packet';
import { AnswerCache, DEFAULT_CACHE_LIMITS, type CacheLimits } from './cache.js';
import { dnsPaths, livePid, pidfileLine, writeAtomic, type DnsPaths } from './paths.js';
import { DEFAULT_RATE_LIMIT, RateLimiter, type RateLimitOptions } from './ratelimit.js';
import { DNS_DOMAIN, hostResolvers } from './resolvconf.js';
import { StateReader } from './state.js';
import { DEFAULT_FORWARDER, Forwarder, parseUpstream, type ForwarderOptions, type Upstream } from './upstream.js';
import {
  RCODE, cacheKey, decodeQuery, encodeReply, headerReply, precheckQuery, questionNameEnd, readyAnswer, truncatedReply, udpLimit, walkResponse, type Query, type Reply,
} from './wire.js';
import { Zone, canonicalIp, normalName, ptrAddress, type Asker, type ZoneNetwork } from './zone.js';

/** TTL of nsnet's own answers: short, so a reconnected namespace's new address is seen soon. */
export const LOCAL_TTL = 5;
const TCP_MAX_CONNECTIONS = 256;
const TCP_MAX_PER_SOURCE = 16;
const TCP_IDLE_MS = 10_000;
const TCP_MAX_PENDING = 32;
const MEMO_MAX = 20_000;
/** Positive answers may be this old relative to the store (ms); negative ones never are. */
const FRESH_MS = 2;
const NEGATIVE_FRESH_MS = 0.1;

export interface DnsServiceOptions {
  stateDir: string;
  /** Port to listen on (53; another one only for experiments). */
  port?: number;
  rateLimit?: Partial<RateLimitOptions>;
  forwarder?: Partial<ForwarderOptions>;
  cache?: Partial<CacheLimits>;
  /** How often to look for changes nobody signalled, and retry failed binds (ms). */
  pollMs?: number;
  log?: (line: string) => void;
}

export interface ListenerStatus { address: string; network: string; udp: boolean; tcp: boolean; error?: string }

export interface DnsStatusFile {
  pid: number;
  startedAt: string;
  updatedAt: string;
  port: number;
  /** Gateways the service wants to listen on (from the store), sorted. */
  wanted: string[];
  listeners: ListenerStatus[];
  upstreams: string[];
  names: number;
  endpoints: number;
  networks: number;
}

export interface DnsCounters {
  received: number; answered: number; local: number; nxdomain: number; forwarded: number; cacheHits: number;
  refused: number; servfail: number; truncated: number; foreign: number; limited: number; malformed: number;
  tcpConnections: number; reloads: number;
}

interface Listener {
  address: string;
  network: string;
  udp?: dgram.Socket;
  tcp?: net.Server;
  conns: Set<net.Socket>;
  error?: string;
}

type Transport = 'udp' | 'tcp';

interface Memo { answer: Buffer; counter: 'local' | 'nxdomain' | 'refused'; negative: boolean }

/** NXDOMAIN or no data: answers that must not be given from a stale index. */
function isNegative(r: Reply | undefined): boolean {
  return !!r && (r.rcode === RCODE.NXDOMAIN || (r.rcode === RCODE.NOERROR && !r.answers?.length));
}

export class DnsServiceError extends Error {
  constructor(readonly code: 'DNS_RUNNING' | 'DNS_LOCK', message: string) { super(message); }
}

export class DnsService {
  readonly paths: DnsPaths;
  readonly port: number;
  private readonly state: StateReader;
  private readonly limiter: RateLimiter;
  private readonly forwarder: Forwarder;
  private readonly cache: AnswerCache;
  private readonly listeners = new Map<string, Listener>();
  private readonly pending = new Map<string, Promise<Buffer | undefined>>();
  /** Encoded local answers (see `handle`), emptied whenever the zone is rebuilt. */
  private memo = new Map<Asker, Map<Listener, Record<Transport, Map<string, Memo>>>>();
  private memoSize = 0;
  private checkedAt = 0;
  private readonly tcpPerSource = new Map<string, number>();
  private zone = new Zone([], []);
  private version = -2;
  private endpoints = 0;
  private chain: Promise<void> = Promise.resolve();
  private control: net.Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private hostStamp = '';
  private host: Upstream[] = [];
  private readonly startedAt = new Date().toISOString();
  private readonly log: (line: string) => void;
  readonly counters: DnsCounters = {
    received: 0, answered: 0, local: 0, nxdomain: 0, forwarded: 0, cacheHits: 0, refused: 0, servfail: 0, truncated: 0,
    foreign: 0, limited: 0, malformed: 0, tcpConnections: 0, reloads: 0,
  };

  constructor(private readonly opts: DnsServiceOptions) {
    this.paths = dnsPaths(opts.stateDir);
    this.port = opts.port ?? 53;
    this.state = new StateReader(opts.stateDir);
    this.limiter = new RateLimiter({ ...DEFAULT_RATE_LIMIT, ...opts.rateLimit });
    this.forwarder = new Forwarder({ ...DEFAULT_FORWARDER, ...opts.forwarder });
    this.cache = new AnswerCache({ ...DEFAULT_CACHE_LIMITS, ...opts.cache });
    this.log = opts.log ?? ((line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
  }

  // ---- life cycle ------------------------------------------------------------------------

  /** Takes the lock, writes the pidfile, binds, and serves until `stop`. */
  async start(): Promise<void> {
    fs.mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 });
    this.control = net.createServer((s) => this.onControl(s));
    await new Promise<void>((resolve, reject) => {
      this.control!.once('error', (e: NodeJS.ErrnoException) => {
        const pid = livePid(this.paths.pid);
        reject(e.code === 'EADDRINUSE'
          ? new DnsServiceError('DNS_RUNNING', `the DNS service for ${this.opts.stateDir} is already running${pid ? ` (pid ${pid})` : ''}`)
          : new DnsServiceError('DNS_LOCK', `cannot take the DNS service lock: ${e.message}`));
      });
      this.control!.listen({ path: this.paths.control }, () => resolve());
    });
    writeAtomic(this.paths.pid, pidfileLine(process.pid));
    this.log(`nsnet dns: started, pid ${process.pid}, state ${this.opts.stateDir}, port ${this.port}`);
    this.refresh(true);
    await this.reconcile();
    const poll = this.opts.pollMs ?? 1000;
    let ticks = 0;
    this.timer = setInterval(() => {
      this.refresh(false);
      if ([...this.listeners.values()].some((l) => l.error)) void this.reconcile();
      if (++ticks % 10 === 0) this.limiter.sweep();
    }, poll);
    this.timer.unref?.();
  }

  /** Rebuilds everything from the store (SIGHUP, `dns reload`). */
  reload(): Promise<void> {
    this.refresh(true);
    return this.reconcile();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.forwarder.close();
    await this.chain.catch(() => undefined);
    await Promise.all([...this.listeners.values()].map((l) => this.closeListener(l)));
    this.listeners.clear();
    await new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
    this.state.close();
    if (livePid(this.paths.pid) === process.pid) {
      fs.rmSync(this.paths.pid, { force: true });
      fs.rmSync(this.paths.status, { force: true });
    }
    this.log(`nsnet dns: stopped (${JSON.stringify(this.counters)})`);
  }

  // ---- state -----------------------------------------------------------------------------

  /**
   * Rebuilds the index if the store changed (or `force`); schedules listener changes.
   * True when it rebuilt. Reading data_version costs ~10 µs on a WAL database, so queries
   * check it at most every FRESH_MS (`recheck`), and before anything negative (an unknown
   * asker, NXDOMAIN, no data) at most every 0.1 ms — so a name or an endpoint that was
   * just connected is not denied, while a flood from unknown sources cannot make every
   * packet pay for the check.
   */
  private refresh(force: boolean): boolean {
    let v: number;
    this.checkedAt = performance.now();
    try { v = this.state.version(); } catch (e) { this.log(`nsnet dns: cannot read the state: ${(e as Error).message}`); return false; }
    if (!force && v === this.version) return false;
    this.version = v;
    const snap = this.state.snapshot();
    const before = this.gatewayKey();
    this.zone = new Zone(snap.networks, snap.endpoints);
    this.memo = new Map();
    this.memoSize = 0;
    this.endpoints = snap.endpoints.length;
    this.counters.reloads++;
    // `force` comes from start/reload, which reconcile themselves.
    if (!force && this.gatewayKey() !== before) void this.reconcile();
    return true;
  }

  /** refresh(false) unless the store was checked less than `ms` ago; true when it rebuilt. */
  private recheck(ms: number): boolean {
    return performance.now() - this.checkedAt >= ms && this.refresh(false);
  }

  private gatewayKey(): string {
    return this.zone.gateways().map((g) => `${g.address}@${g.network}`).sort().join(',');
  }

  /** Brings the listeners to the zone's gateways, one change at a time; then the status file. */
  private reconcile(): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.stopped) return;
      const want = new Map(this.zone.gateways().map((g) => [g.address, g.network]));
      const work: Array<Promise<void>> = [];
      for (const [addr, l] of this.listeners) {
        if (!want.has(addr)) { this.listeners.delete(addr); work.push(this.closeListener(l)); }
      }
      for (const [addr, network] of want) {
        const l = this.listeners.get(addr);
        if (l && !l.error) { l.network = network; continue; }
        if (l) await this.closeListener(l);
        work.push(this.openListener(addr, network));
      }
      await Promise.all(work);
      this.writeStatus();
    }).catch((e: unknown) => { this.log(`nsnet dns: reconcile failed: ${(e as Error).stack ?? String(e)}`); });
    return this.chain;
  }

  private async openListener(address: string, network: string): Promise<void> {
    const l: Listener = { address, network, conns: new Set() };
    this.listeners.set(address, l);
    const v6 = address.includes(':');
    try {
      // Answers go to the asker's address as received (always an IP literal): resolving it
      // through dns.lookup, as dgram does by default, costs a deferred tick and its garbage
      // on every answer.
      const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, lookup: (ip, _o, cb) => cb(null, ip, v6 ? 6 : 4) });
      l.udp = udp;
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address, port: this.port, exclusive: true }, () => { udp.off('error', reject); resolve(); });
      });
      try { udp.setRecvBufferSize(1 << 20); } catch { /* capped by net.core.rmem_max */ }
      udp.on('error', (e) => this.log(`nsnet dns: udp ${address}: ${e.message}`));
      udp.on('message', (msg, rinfo) => this.onUdp(l, msg, rinfo));
      const tcp = net.createServer((s) => this.onTcp(l, s));
      l.tcp = tcp;
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: address, port: this.port, ipv6Only: v6, backlog: 128 }, () => { tcp.off('error', reject); resolve(); });
      });
      tcp.on('error', (e) => this.log(`nsnet dns: tcp ${address}: ${e.message}`));
      if (l.error) this.log(`nsnet dns: listening on ${address} (${network}) after an earlier failure`);
      delete l.error;
    } catch (e) {
      const msg = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (l.error !== msg) this.log(`nsnet dns: cannot listen on ${address}:${this.port} (${network}): ${(e as Error).message}; retrying`);
      await this.closeListener(l);
      l.error = msg;
    }
  }

  private async closeListener(l: Listener): Promise<void> {
    const udp = l.udp;
    const tcp = l.tcp;
    l.udp = undefined;
    l.tcp = undefined;
    for (const c of l.conns) c.destroy();
    l.conns.clear();
    if (udp) await new Promise<void>((r) => { try { udp.close(() => r()); } catch { r(); } });
    if (tcp) await new Promise<void>((r) => { tcp.close(() => r()); });
  }

  private writeStatus(): void {
    if (this.stopped) return;
    const s: DnsStatusFile = {
      pid: process.pid, startedAt: this.startedAt, updatedAt: new Date().toISOString(), port: this.port,
      wanted: this.zone.gateways().map((g) => g.address).sort(),
      listeners: [...this.listeners.values()].map((l) => ({
        address: l.address, network: l.network, udp: !!l.udp, tcp: !!l.tcp, ...(l.error ? { error: l.error } : {}),
      })),
      upstreams: this.hostUpstreams().map((u) => (u.port === 53 ? u.address : `${u.address}#${u.port}`)),
      names: this.zone.nameCount, endpoints: this.endpoints, networks: this.zone.networks.size,
    };
    try { writeAtomic(this.paths.status, `${JSON.stringify(s, null, 2)}\n`); } catch (e) {
      this.log(`nsnet dns: cannot write ${this.paths.status}: ${(e as Error).message}`);
    }
  }

  /** Live numbers for `nsnet dns status`. */
  snapshot(): { counters: DnsCounters; cache: { entries: number; bytes: number }; rateLimited: number; upstream: unknown; memory: NodeJS.MemoryUsage } {
    return {
      counters: this.counters, cache: { entries: this.cache.size, bytes: this.cache.byteSize }, rateLimited: this.limiter.dropped,
      upstream: { ...this.forwarder.stats, inflight: this.forwarder.inflight }, memory: process.memoryUsage(),
    };
  }

  /** The control socket: one request line (`status` | `reload`), one JSON answer. */
  private onControl(s: net.Socket): void {
    let buf = '';
    s.setTimeout(2000, () => s.destroy());
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.length > 256) { s.destroy(); return; }
      if (!buf.includes('\n')) return;
      const cmd = buf.trim();
      if (cmd === 'status') s.end(`${JSON.stringify(this.snapshot())}\n`);
      else if (cmd === 'reload') void this.reload().then(() => s.end('{"reloaded":true}\n'));
      else s.end('{"error":"unknown request"}\n');
    });
  }

  // ---- upstreams -------------------------------------------------------------------------

  /**
   * The host's resolvers, re-read when /etc/resolv.conf changes (often it is replaced, not
   * rewritten: its inode, mtime and size are compared). Only forwards that miss the cache
   * get here, so the stat (a few µs) is never on the hot path.
   */
  private hostUpstreams(): Upstream[] {
    const stamp = this.resolvStamp();
    if (stamp === this.hostStamp && this.host.length > 0) return this.host;
    this.hostStamp = stamp;
    this.host = hostResolvers().map(parseUpstream).filter((u): u is Upstream => !!u);
    return this.host;
  }

  private resolvStamp(): string {
    try { const st = fs.statSync('/etc/resolv.conf'); return `${st.ino}:${st.mtimeMs}:${st.size}`; } catch { return ''; }
  }

  /** The network whose own upstream servers apply to this asker, if any (else the host's). */
  private upstreamScope(asker: Asker, via: string): ZoneNetwork | undefined {
    for (const n of [via, ...asker.networks]) {
      const net = this.zone.networks.get(n);
      if (net && !net.internal && net.upstreams.length > 0) return net;
    }
    return undefined;
  }

  private upstreamsFor(scope: ZoneNetwork | undefined): Upstream[] {
    const list = scope ? scope.upstreams.map(parseUpstream).filter((u): u is Upstream => !!u) : this.hostUpstreams();
    // Never forward to ourselves (a host whose resolv.conf names a gateway would loop).
    return list.filter((u) => !(u.port === this.port && this.listeners.has(canonicalIp(u.address) ?? u.address)));
  }

  // ---- queries ---------------------------------------------------------------------------

  private onUdp(l: Listener, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const answer = this.handle(l, msg, rinfo.address, 'udp');
    if (answer instanceof Promise) {
      void answer.then((a) => { if (a && l.udp) l.udp.send(a, rinfo.port, rinfo.address); });
    } else if (answer && l.udp) {
      l.udp.send(answer, rinfo.port, rinfo.address);
    }
  }

  private onTcp(l: Listener, sock: net.Socket): void {
    const src = sock.remoteAddress;
    sock.on('error', () => undefined);
    this.recheck(FRESH_MS);
    let asker = src ? this.zone.asker(src) : undefined;
    if (src && !asker && this.recheck(NEGATIVE_FRESH_MS)) asker = this.zone.asker(src);
    const perSource = (src && this.tcpPerSource.get(src)) || 0;
    let total = 0;
    for (const x of this.listeners.values()) total += x.conns.size;
    if (!src || !asker || !asker.networks.includes(l.network)) { this.counters.foreign++; sock.destroy(); return; }
    if (total >= TCP_MAX_CONNECTIONS || perSource >= TCP_MAX_PER_SOURCE) { this.counters.limited++; sock.destroy(); return; }
    this.counters.tcpConnections++;
    l.conns.add(sock);
    this.tcpPerSource.set(src, perSource + 1);
    sock.on('close', () => {
      l.conns.delete(sock);
      const n = (this.tcpPerSource.get(src) ?? 1) - 1;
      if (n <= 0) this.tcpPerSource.delete(src); else this.tcpPerSource.set(src, n);
    });
    sock.setNoDelay(true);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    // Frames are 2-byte length + message (RFC 1035 §4.2.2). Chunks are only joined once a
    // whole frame is there, so a peer dribbling bytes costs O(n), never O(n²).
    let chunks: Buffer[] = [];
    let have = 0;
    let need = 2;
    let pending = 0;
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      while (have >= need) {
        const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
        const len = buf.readUInt16BE(0);
        if (len < 12) { this.counters.malformed++; sock.destroy(); return; }
        if (have < 2 + len) { chunks = [buf]; need = 2 + len; return; }
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        const rest = buf.subarray(2 + len);
        chunks = rest.length ? [rest] : [];
        have = rest.length;
        need = 2;
        pending++;
        if (pending >= TCP_MAX_PENDING) sock.pause();
        const reply = (answer: Buffer | undefined): void => {
          pending--;
          if (sock.destroyed) return;
          if (!answer) { sock.destroy(); return; } // malformed or over the limit: hang up
          const frame = Buffer.allocUnsafe(2 + answer.length);
          frame.writeUInt16BE(answer.length, 0);
          answer.copy(frame, 2);
          sock.write(frame);
          if (pending < TCP_MAX_PENDING && sock.isPaused()) sock.resume();
        };
        const answer = this.handle(l, msg, src, 'tcp');
        if (answer instanceof Promise) void answer.then(reply); else reply(answer);
      }
    });
  }

  /**
   * One query. Returns the answer; or undefined when the query gets none (not an endpoint,
   * over the limit, malformed); or, when it is forwarded, a promise of one of those. nsnet's
   * own answers come back synchronously, so the UDP path allocates no continuation for them:
   * at 5,000 q/s every byte allocated per query is young-generation garbage, and each
   * scavenge is a pause every query behind it waits for.
   */
  private handle(l: Listener, msg: Buffer, src: string, transport: Transport): Buffer | undefined | Promise<Buffer | undefined> {
    this.counters.received++;
    try {
      this.recheck(FRESH_MS);
      let asker = this.zone.asker(src);
      if (!asker || !asker.networks.includes(l.network)) {
        if (this.recheck(NEGATIVE_FRESH_MS)) asker = this.zone.asker(src);
        if (!asker || !asker.networks.includes(l.network)) { this.counters.foreign++; return undefined; }
      }
      if (!this.limiter.take(src)) { this.counters.limited++; return undefined; }
      const pre = precheckQuery(msg);
      if (pre !== 'ok') {
        this.counters.malformed++;
        return pre === 'drop' ? undefined : headerReply(msg, pre === 'notimp' ? RCODE.NOTIMP : RCODE.FORMERR);
      }
      // nsnet's own answers are remembered per asker, receiving listener, transport and exact
      // question (name in any case, type, class, flags, EDNS bytes) until the zone changes: a
      // hit skips decoding and encoding. The first two levels are keyed by object identity,
      // so the only string built per query is the question's.
      let qEnd: number;
      let question: string;
      try {
        qEnd = questionNameEnd(msg);
        question = msg.toString('latin1', 2, 4) + msg.toString('latin1', 12, qEnd).toLowerCase() + msg.toString('latin1', qEnd);
      } catch { this.counters.malformed++; return undefined; }
      let memo = this.memoFor(asker, l, transport).get(question);
      if (memo?.negative && this.recheck(NEGATIVE_FRESH_MS)) {
        memo = undefined;
        asker = this.zone.asker(src);
        if (!asker || !asker.networks.includes(l.network)) { this.counters.foreign++; return undefined; }
      }
      if (memo) {
        this.counters.answered++;
        this.counters[memo.counter]++;
        return readyAnswer(memo.answer, msg, [], 0, qEnd);
      }
      let q: Query;
      try { q = decodeQuery(msg); } catch { this.counters.malformed++; return undefined; }
      if (q.questions?.length !== 1) return this.finish(q, msg, transport, encodeReply(q, { rcode: RCODE.FORMERR }));
      let local = this.answerLocally(q, asker, l.network);
      if (isNegative(local) && this.recheck(NEGATIVE_FRESH_MS)) {
        asker = this.zone.asker(src);
        if (!asker || !asker.networks.includes(l.network)) { this.counters.foreign++; return undefined; }
        local = this.answerLocally(q, asker, l.network);
      }
      if (local) {
        const counter = local.rcode === RCODE.REFUSED ? 'refused' : local.rcode === RCODE.NXDOMAIN ? 'nxdomain' : 'local';
        this.counters[counter]++;
        const encoded = encodeReply(q, local);
        if (transport === 'tcp' || encoded.length <= udpLimit(q)) {
          if (this.memoSize >= MEMO_MAX) { this.memo = new Map(); this.memoSize = 0; }
          this.memoFor(asker, l, transport).set(question, { answer: encoded, counter, negative: isNegative(local) });
          this.memoSize++;
        }
        return this.finish(q, msg, transport, encoded);
      }
      return this.forward(q, msg, asker, l.network, transport);
    } catch (e) {
      this.log(`nsnet dns: bug while answering a query: ${(e as Error).stack ?? String(e)}`);
      return undefined;
    }
  }

  /** The memo of answers for one asker through one listener and transport (see `handle`). */
  private memoFor(asker: Asker, l: Listener, transport: Transport): Map<string, Memo> {
    let byListener = this.memo.get(asker);
    if (!byListener) { byListener = new Map(); this.memo.set(asker, byListener); }
    let m = byListener.get(l);
    if (!m) { m = { udp: new Map(), tcp: new Map() }; byListener.set(l, m); }
    return m[transport];
  }

  /** Counts an answer, and truncates it when it is too large for the asker's UDP limit. */
  private finish(q: Query, msg: Buffer, transport: Transport, answer: Buffer): Buffer {
    this.counters.answered++;
    if (transport === 'udp' && answer.length > udpLimit(q)) {
      this.counters.truncated++;
      return truncatedReply(msg, answer);
    }
    return answer;
  }

  private soa(): Answer {
    return {
      type: 'SOA', name: DNS_DOMAIN, ttl: 0,
      data: { mname: `ns.${DNS_DOMAIN}`, rname: `hostmaster.${DNS_DOMAIN}`, serial: Math.max(0, this.version) >>> 0, refresh: 3600, retry: 600, expire: 86400, minimum: 0 },
    };
  }

  /** nsnet's own answer, or undefined when the query is to be forwarded. */
  private answerLocally(q: Query, asker: Asker, via: string): Reply | undefined {
    const qu = q.questions![0]!;
    const cls = qu.class ?? 'IN';
    const ra = asker.canForward;
    if (cls !== 'IN' && cls !== 'ANY') return { rcode: RCODE.REFUSED, ra };
    const name = normalName(qu.name === '.' ? '' : qu.name);
    const nodata: Reply = { rcode: RCODE.NOERROR, aa: true, ra, authorities: [this.soa()] };
    const nx: Reply = { rcode: RCODE.NXDOMAIN, aa: true, ra, authorities: [this.soa()] };
    if (name === DNS_DOMAIN) return qu.type === 'SOA' ? { rcode: RCODE.NOERROR, aa: true, ra, answers: [this.soa()] } : nodata;
    if (qu.type === 'PTR') {
      const addr = ptrAddress(name);
      if (addr) {
        const owner = this.zone.reverse(asker, addr);
        if (owner) {
          return { rcode: RCODE.NOERROR, aa: true, ra, answers: [{ type: 'PTR', name: qu.name, ttl: LOCAL_TTL, data: `${owner}.${DNS_DOMAIN}` }] };
        }
        if (owner === null) return { rcode: RCODE.NXDOMAIN, aa: true, ra };
      }
    }
    const inZone = name.endsWith(`.${DNS_DOMAIN}`);
    const short = inZone ? name.slice(0, -(DNS_DOMAIN.length + 1)) : name;
    const hit = this.zone.resolve(asker, via, short);
    if (hit) {
      const answers: Answer[] = [];
      if (qu.type === 'A' || qu.type === 'ANY' as string) for (const a of hit.v4) answers.push({ type: 'A', name: qu.name, ttl: LOCAL_TTL, data: a });
      if (qu.type === 'AAAA' || qu.type === 'ANY' as string) for (const a of hit.v6) answers.push({ type: 'AAAA', name: qu.name, ttl: LOCAL_TTL, data: a });
      return answers.length ? { rcode: RCODE.NOERROR, aa: true, ra, answers } : nodata;
    }
    // Our zone, and single-label names (meaningless upstream), end here.
    if (inZone || (short !== '' && !short.includes('.'))) return nx;
    if (!asker.canForward) return { rcode: RCODE.REFUSED, ra: false };
    return undefined;
  }

  private forward(q: Query, msg: Buffer, asker: Asker, via: string, transport: Transport): Buffer | Promise<Buffer | undefined> {
    // Answers from a network's own upstreams are kept apart from the host's.
    const scope = this.upstreamScope(asker, via);
    const key = scope ? `${scope.name}|${cacheKey(q)}` : cacheKey(q);
    const hit = this.cache.get(key);
    if (hit) {
      this.counters.cacheHits++;
      return this.finish(q, msg, transport, readyAnswer(hit.answer, msg, hit.ttlOffsets, Math.floor((Date.now() - hit.storedAt) / 1000)));
    }
    const servers = this.upstreamsFor(scope);
    if (servers.length === 0) {
      this.counters.servfail++;
      return this.finish(q, msg, transport, encodeReply(q, { rcode: RCODE.SERVFAIL, ra: true }));
    }
    // Identical questions in flight share one upstream exchange.
    const flight = `${transport}|${key}`;
    let p = this.pending.get(flight);
    if (!p) {
      this.counters.forwarded++;
      p = (transport === 'udp' ? this.forwarder.udp(msg, servers) : this.forwarder.tcp(msg, servers)).then((answer) => {
        this.pending.delete(flight);
        if (answer) this.store(key, answer);
        return answer;
      });
      this.pending.set(flight, p);
    }
    return p.then((answer) => {
      if (!answer) {
        this.counters.servfail++;
        return this.finish(q, msg, transport, encodeReply(q, { rcode: RCODE.SERVFAIL, ra: true }));
      }
      const w = walkResponse(answer);
      return this.finish(q, msg, transport, readyAnswer(answer, msg, w.ttlOffsets, 0));
    }).catch((e: unknown) => {
      this.log(`nsnet dns: bug while forwarding: ${(e as Error).stack ?? String(e)}`);
      return undefined;
    });
  }

  private store(key: string, answer: Buffer): void {
    let w;
    try { w = walkResponse(answer); } catch { return; }
    if (w.truncated || w.minTtl === undefined) return;
    if (w.rcode !== RCODE.NOERROR && w.rcode !== RCODE.NXDOMAIN) return;
    const negative = w.rcode === RCODE.NXDOMAIN || answer.readUInt16BE(6) === 0;
    this.cache.set(key, answer, w.ttlOffsets, w.minTtl, negative);
  }
}
