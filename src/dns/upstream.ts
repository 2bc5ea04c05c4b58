/**
 * Forwarding to upstream servers, over UDP and TCP.
 *
 * UDP uses a new connected socket per attempt: a kernel-chosen random source port plus a
 * random ID (RFC 5452 §9.2), and ICMP "port unreachable" from a dead server arrives as an
 * error at once. Attempts are hedged: the first server gets the query; if it has not
 * answered within `attemptTimeoutMs` the next one gets it too, while the first may still
 * answer — so one dead server costs a query at most one attempt timeout (aardvark-dns
 * waited 5 s per server, containers/aardvark-dns#482). A server that failed is tried last
 * for `penaltyMs`, so later queries do not pay even that. SERVFAIL and REFUSED count as
 * failures (the next server may do better) but are relayed if nothing better comes.
 *
 * TCP (for askers that came over TCP, typically after a truncated UDP answer) tries the
 * servers one after the other, each within the attempt timeout.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { RCODE, sameQuestion, walkResponse } from './wire.js';

export interface Upstream { address: string; port: number }

export interface ForwarderOptions {
  attemptTimeoutMs: number;
  /** The whole forward, all servers included; the asker gets SERVFAIL after it. */
  deadlineMs: number;
  /** Forwards in flight at once; beyond it queries get SERVFAIL at once. */
  maxInflight: number;
  penaltyMs: number;
}

export const DEFAULT_FORWARDER: ForwarderOptions = { attemptTimeoutMs: 700, deadlineMs: 3000, maxInflight: 512, penaltyMs: 30_000 };

/** `IP`, or `IP#PORT` (dnsmasq's notation) for a server on another port. */
export function parseUpstream(s: string): Upstream | undefined {
  const [address, port] = s.split('#') as [string, string | undefined];
  if (!net.isIP(address.split('%')[0]!)) return undefined;
  const p = port === undefined ? 53 : Number(port);
  if (!Number.isInteger(p) || p < 1 || p > 65535) return undefined;
  return { address, port: p };
}

const key = (u: Upstream): string => `${u.address}#${u.port}`;

export interface ForwarderStats { sent: number; answers: number; timeouts: number; errors: number; failed: number; overloaded: number }

export class Forwarder {
  private readonly penalties = new Map<string, number>();
  private readonly live = new Set<{ abort(): void }>();
  inflight = 0;
  readonly stats: ForwarderStats = { sent: 0, answers: 0, timeouts: 0, errors: 0, failed: 0, overloaded: 0 };

  constructor(readonly opts: ForwarderOptions = DEFAULT_FORWARDER) {}

  /** Servers in the order to try them: those without a recent failure first. */
  order(servers: readonly Upstream[]): Upstream[] {
    const t = Date.now();
    const good = servers.filter((s) => (this.penalties.get(key(s)) ?? 0) <= t);
    const bad = servers.filter((s) => (this.penalties.get(key(s)) ?? 0) > t)
      .sort((a, b) => this.penalties.get(key(a))! - this.penalties.get(key(b))!);
    return [...good, ...bad];
  }

  private penalize(s: Upstream): void {
    this.penalties.set(key(s), Date.now() + this.opts.penaltyMs);
  }

  private forgive(s: Upstream): void {
    this.penalties.delete(key(s));
  }

  /** Aborts every forward in flight (service shutdown). */
  close(): void {
    for (const l of [...this.live]) l.abort();
  }

  /** Forwards `query` over UDP; resolves to the answer (carrying the upstream ID), or undefined. */
  udp(query: Buffer, servers: readonly Upstream[]): Promise<Buffer | undefined> {
    return this.run(servers, (order, finish) => {
      const id = crypto.randomInt(0x10000);
      const q = Buffer.from(query);
      q.writeUInt16BE(id, 0);
      const sockets: dgram.Socket[] = [];
      const timers: NodeJS.Timeout[] = [];
      let next = 0;
      let failed = 0;
      let fallback: Buffer | undefined;
      const fail = (s: Upstream): void => {
        this.penalize(s);
        failed++;
        if (failed >= order.length) finish(fallback);
        else if (next < order.length && failed >= next) launch();
      };
      const launch = (): void => {
        if (next >= order.length) return;
        const s = order[next++]!;
        let settled = false;
        const settle = (ok: boolean): void => { if (!settled) { settled = true; if (ok) this.forgive(s); else fail(s); } };
        const sock = dgram.createSocket(s.address.includes(':') ? 'udp6' : 'udp4');
        sockets.push(sock);
        sock.on('error', () => { this.stats.errors++; settle(false); });
        sock.on('message', (msg) => {
          if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg[2]! & 0x80) === 0 || !sameQuestion(q, msg)) return;
          let rcode: number;
          try { rcode = walkResponse(msg).rcode; } catch { return; }
          if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
            fallback ??= msg;
            settle(false);
            return;
          }
          settled = true;
          this.forgive(s);
          this.stats.answers++;
          finish(msg);
        });
        // On failure (no route…) Node calls the connect callback with the error.
        sock.connect(s.port, s.address, ((err?: Error) => {
          if (err) { this.stats.errors++; settle(false); return; }
          this.stats.sent++;
          try {
            sock.send(q, (e) => { if (e) { this.stats.errors++; settle(false); } });
          } catch {
            this.stats.errors++;
            settle(false);
          }
        }) as () => void);
        timers.push(setTimeout(() => {
          if (settled) return;
          this.stats.timeouts++;
          this.penalize(s);
          launch(); // hedge: the slow server may still answer
        }, this.opts.attemptTimeoutMs));
      };
      launch();
      return () => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) { try { s.close(); } catch { /* already closed */ } }
      };
    });
  }

  /** Forwards `query` over TCP, one server after the other. */
  tcp(query: Buffer, servers: readonly Upstream[]): Promise<Buffer | undefined> {
    return this.run(servers, (order, finish) => {
      const id = crypto.randomInt(0x10000);
      const q = Buffer.alloc(query.length + 2);
      q.writeUInt16BE(query.length, 0);
      query.copy(q, 2);
      q.writeUInt16BE(id, 2);
      let sock: net.Socket | undefined;
      let fallback: Buffer | undefined;
      let i = 0;
      const attempt = (): void => {
        if (i >= order.length) { finish(fallback); return; }
        const s = order[i++]!;
        let done = false;
        let buf = Buffer.alloc(0);
        const give = (ok: boolean): void => {
          if (done) return;
          done = true;
          sock?.destroy();
          if (!ok) { this.penalize(s); attempt(); }
        };
        sock = net.connect({ host: s.address, port: s.port });
        sock.setTimeout(this.opts.attemptTimeoutMs * 2, () => { this.stats.timeouts++; give(false); });
        sock.on('error', () => { this.stats.errors++; give(false); });
        sock.on('close', () => give(false));
        sock.on('connect', () => { this.stats.sent++; sock!.write(q); });
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length > 65_537) { give(false); return; }
          if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          if (msg.length < 12 || msg.readUInt16BE(0) !== id || !sameQuestion(q.subarray(2), msg)) { give(false); return; }
          let rcode: number;
          try { rcode = walkResponse(msg).rcode; } catch { give(false); return; }
          if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) { fallback ??= Buffer.from(msg); give(false); return; }
          this.forgive(s);
          this.stats.answers++;
          done = true;
          sock!.destroy();
          finish(Buffer.from(msg));
        });
      };
      attempt();
      return () => { sock?.destroy(); };
    });
  }

  /**
   * Common frame: in-flight accounting, the overall deadline, cleanup. `start` launches
   * the attempts and returns its cleanup; it calls `finish` once with the outcome.
   */
  private run(servers: readonly Upstream[], start: (order: Upstream[], finish: (a: Buffer | undefined) => void) => () => void): Promise<Buffer | undefined> {
    if (servers.length === 0) return Promise.resolve(undefined);
    if (this.inflight >= this.opts.maxInflight) { this.stats.overloaded++; return Promise.resolve(undefined); }
    this.inflight++;
    return new Promise((resolve) => {
      let cleanup: (() => void) | undefined;
      let over = false;
      const handle = { abort: (): void => finish(undefined) };
      const finish = (a: Buffer | undefined): void => {
        if (over) return;
        over = true;
        clearTimeout(deadline);
        this.live.delete(handle);
        this.inflight--;
        if (!a) this.stats.failed++;
        // When `start` fails synchronously, cleanup is not known yet: it runs just below.
        cleanup?.();
        resolve(a);
      };
      const deadline = setTimeout(() => finish(undefined), this.opts.deadlineMs);
      this.live.add(handle);
      cleanup = start(this.order(servers), finish);
      if (over) cleanup();
    });
  }
}
