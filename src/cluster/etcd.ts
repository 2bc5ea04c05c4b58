/**
 * The etcd client the cluster commands and the agent share (npm `etcd3`, DESIGN.md
 * decision 5), with the options reference/multihost-overlay.md §5.2 asks for:
 *  - a deadline on every unary call, so a dead or hung etcd fails a call instead of
 *    hanging it (streams — watches, lease keepalives — get none);
 *  - gRPC keepalives, so a SIGSTOPped etcd (TCP still open) is noticed;
 *  - no client-side retry or circuit breaker: the library's defaults retry three times and
 *    then refuse every call for 5 s after etcd is back; callers here retry with their own
 *    backoff and must see the first answer of a returning etcd;
 *  - a capped watch reconnect backoff (the library's grows to 30 s).
 */
import { Etcd3, type IOptions } from 'etcd3';
import { NsnetError } from '../errors.js';

export interface EtcdTarget {
  /** Endpoints as given (http://host:port), for messages. */
  urls: string[];
}

/** Splits `--etcd` (comma-separated) and checks each is an http(s) URL with a host. */
export function parseEndpoints(text: string | undefined): string[] {
  const raw = (text ?? process.env.NSNET_ETCD ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (raw.length === 0) throw new NsnetError('USAGE', 'no etcd endpoint: pass --etcd URL (or set NSNET_ETCD), e.g. --etcd http://10.0.0.2:2379');
  for (const u of raw) {
    let url: URL;
    try { url = new URL(u); } catch { throw new NsnetError('USAGE', `invalid etcd endpoint "${u}": expected a URL such as http://10.0.0.2:2379`, { object: u }); }
    if (url.protocol !== 'http:' || !url.hostname || !url.port) {
      throw new NsnetError('USAGE', `invalid etcd endpoint "${u}": expected http://HOST:PORT (TLS is not supported yet)`, { object: u });
    }
  }
  return raw;
}

/** A policy that just runs the call (cockatiel's IPolicy shape, as far as etcd3 uses it). */
const passThrough = {
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => T | PromiseLike<T>): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
};

class CappedBackoff {
  constructor(readonly duration: number, private readonly max: number) {}
  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.max, this.duration * 2), this.max);
  }
}

export function connectEtcd(urls: string[], o: { callTimeoutMs?: number } = {}): Etcd3 {
  const timeout = o.callTimeoutMs ?? 3000;
  const options: IOptions = {
    hosts: urls,
    dialTimeout: timeout,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    // etcd answers pings more often than every 5 s (--grpc-keepalive-min-time) with GOAWAY.
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000 },
    faultHandling: {
      host: () => passThrough as never,
      global: passThrough as never,
      watchBackoff: new CappedBackoff(200, 2000) as never,
    },
  };
  return new Etcd3(options);
}

/** The one-line error for an etcd that does not answer, naming the endpoint(s). */
export function unreachable(urls: string[], e: unknown): NsnetError {
  const why = ((e as Error)?.message ?? String(e)).split('\n')[0]!.replace(/^\d+ [A-Z_]+: /, '');
  return new NsnetError('ETCD_UNREACHABLE', `etcd at ${urls.join(',')} is unreachable: ${why}`, { object: urls.join(','), cause: e });
}

/** Runs `fn`; any non-nsnet error (gRPC unavailable, deadline) becomes ETCD_UNREACHABLE. */
export async function withEtcd<T>(urls: string[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof NsnetError) throw e;
    throw unreachable(urls, e);
  }
}
