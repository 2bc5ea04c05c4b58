/**
 * The etcd client the cluster commands and the agent share (npm `etcd3`, DESIGN.md
 * decision 5), with the options reference/multihost-overlay.md §5.2 asks for:
 *  - a deadline on every unary call, so a dead or hung etcd fails a call instead of
 *    hanging it (streams — watches, lease keepalives — get none);
 *  - gRPC keepalives, so a SIGSTOPped etcd (TCP still open) is noticed;
 *  - no client-wide retry or circuit breaker: the library's defaults retry three times and
 *    then refuse every call for 5 s after etcd is back; callers here retry with their own
 *    backoff and must see the first answer of a returning etcd;
 *  - fail-over between the members of an etcd cluster (MemberFailover): a call that finds
 *    its member down is tried on the others at once, and a member that just failed is
 *    skipped for a while by calls, watches and lease keepalives alike (the library sticks
 *    to a dead member unless a host policy refuses it);
 *  - a capped watch reconnect backoff (the library's grows to 30 s);
 *  - TLS, with an optional client certificate, for https:// endpoints (etcd-tls.ts): the
 *    key material is read and checked once, when the target is made;
 *  - a user and password for an etcd with authentication enabled (etcd-auth.ts).
 */
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { NsnetError } from '../errors.js';
import { describeAuthFailure, loadAuth, type AuthOptions, type EtcdAuth } from './etcd-auth.js';
import { describeTlsFailure, loadTls, tlsChoices, type EtcdTls, type TlsOptions } from './etcd-tls.js';

/** Where etcd is and how to talk to it: what every cluster command and the agent take. */
export interface EtcdTarget {
  /** Endpoints as given (http://host:port or https://host:port), for messages. */
  urls: string[];
  /** Present exactly when the endpoints are https:// (etcd-tls.ts). */
  tls?: EtcdTls | undefined;
  /** Present when a user is given (etcd-auth.ts). */
  auth?: EtcdAuth | undefined;
}

/**
 * Splits `--etcd` (comma-separated) and checks each is an http(s) URL with a host and a
 * port, all of one scheme (etcd3 uses one set of channel credentials for every endpoint).
 */
export function parseEndpoints(text: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = (text ?? env.NSNET_ETCD ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (raw.length === 0) throw new NsnetError('USAGE', 'no etcd endpoint: pass --etcd URL (or set NSNET_ETCD), e.g. --etcd https://10.0.0.2:2379');
  for (const u of raw) {
    let url: URL;
    try { url = new URL(u); } catch { throw new NsnetError('USAGE', `invalid etcd endpoint "${u}": expected a URL such as https://10.0.0.2:2379`, { object: u }); }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname || !url.port || (url.pathname !== '/' && url.pathname !== '')) {
      throw new NsnetError('USAGE', `invalid etcd endpoint "${u}": expected http://HOST:PORT or https://HOST:PORT`, { object: u });
    }
  }
  const schemes = new Set(raw.map((u) => new URL(u).protocol));
  if (schemes.size > 1) {
    throw new NsnetError('USAGE', `etcd endpoints mix http:// and https:// (${raw.join(',')}): use one scheme for all of them`, { object: raw.join(',') });
  }
  return raw;
}

/**
 * The endpoints and, for https://, the checked key material: everything the options say,
 * validated before anything talks to etcd or touches the kernel. One-line USAGE errors
 * name the option and the file.
 */
export function etcdTarget(o: { etcd?: string | undefined } & TlsOptions & AuthOptions, env: NodeJS.ProcessEnv = process.env): EtcdTarget {
  const urls = parseEndpoints(o.etcd, env);
  const auth = loadAuth(o, env);
  const https = urls[0]!.startsWith('https:');
  if (!https) {
    tlsChoices(o, env, 'http'); // refuses TLS files with http:// endpoints
    return { urls, ...(auth ? { auth } : {}) };
  }
  return { urls, tls: loadTls(o, env), ...(auth ? { auth } : {}) };
}

type PolicyFn<T> = (ctx: { signal: AbortSignal; attempt: number }) => T | PromiseLike<T>;

/** Refused by a member's policy while it is marked down: etcd3 then tries the next member. */
export class MemberDown extends Error {}

/** How long a member that failed is skipped while another one is not. */
const MEMBER_DOWN_MS = 3000;

/**
 * Fail-over across etcd's members, in cockatiel's IPolicy shape as far as etcd3 uses it.
 * etcd3 runs each call through the global policy, and inside it tries the members in a
 * random order through each member's own policy: a member policy that refuses without
 * calling (a breaker) makes it try the next member; a call that went through and failed is
 * thrown. So:
 *  - a member whose call (or watch, or keepalive stream) failed as etcd3 deems recoverable
 *    (unavailable, deadline, reset…) is marked down, and refused for MEMBER_DOWN_MS — unless
 *    every member is down: then calls go through, and the first answer of a returning etcd
 *    is seen at once, as with one member;
 *  - the global policy tries such a call again at once, up to once per other member: with
 *    the failed member refused, the next try lands on another one.
 * With one endpoint this is a plain pass-through.
 */
export class MemberFailover {
  private readonly downSince = new Map<string, number>();
  constructor(private readonly members: number, private readonly now: () => number = Date.now) {}

  private isDown(host: string, now: number): boolean {
    const t = this.downSince.get(host);
    return t !== undefined && now - t < MEMBER_DOWN_MS;
  }

  member(host: string) {
    return {
      execute: async <T>(fn: PolicyFn<T>): Promise<T> => {
        const now = this.now();
        if (this.isDown(host, now) && [...this.downSince.keys()].filter((h) => this.isDown(h, now)).length < this.members) {
          throw new MemberDown(`etcd member ${host} failed less than ${MEMBER_DOWN_MS} ms ago`);
        }
        try {
          const r = await fn({ signal: new AbortController().signal, attempt: 0 });
          this.downSince.delete(host);
          return r;
        } catch (e) {
          if (isRecoverableError(e as Error)) this.downSince.set(host, this.now());
          throw e;
        }
      },
    };
  }

  readonly global = {
    execute: async <T>(fn: PolicyFn<T>): Promise<T> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({ signal: new AbortController().signal, attempt });
        } catch (e) {
          if (attempt + 1 >= this.members || !isRecoverableError(e as Error)) throw e;
        }
      }
    },
  };
}

class CappedBackoff {
  constructor(readonly duration: number, private readonly max: number) {}
  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.max, this.duration * 2), this.max);
  }
}

export function connectEtcd(target: EtcdTarget, o: { callTimeoutMs?: number } = {}): Etcd3 {
  const timeout = o.callTimeoutMs ?? 3000;
  const failover = new MemberFailover(target.urls.length);
  const options: IOptions = {
    hosts: target.urls,
    dialTimeout: timeout,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    // etcd answers pings more often than every 5 s (--grpc-keepalive-min-time) with GOAWAY.
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000 },
    faultHandling: {
      host: (host: string) => failover.member(host) as never,
      global: failover.global as never,
      watchBackoff: new CappedBackoff(200, 2000) as never,
    },
  };
  // etcd3 exchanges these for a token before the first call, and for a new one when etcd
  // says the token is invalid (expired: etcd's --auth-token-ttl, or etcd restarted).
  if (target.auth) options.auth = { username: target.auth.user, password: target.auth.password };
  if (target.tls) {
    const { ca, cert, key } = target.tls;
    // grpc-js's createSsl: null roots = Node's built-in ones (no system bundle was found).
    options.credentials = { rootCertificate: (ca?.pem ?? null) as Buffer, certChain: cert?.pem, privateKey: key?.pem };
    quietIpServerName();
  }
  return new Etcd3(options);
}

let quieted = false;
/**
 * grpc-js puts the endpoint's host in the TLS server name (SNI) even when it is an IP
 * address — most etcd endpoints are — and Node then prints DEP0123 (RFC 6066 §3 allows only
 * host names there) to stderr, once: that would break the CLI's one-line errors and the
 * agent's JSON log. Only that warning is dropped; the server's certificate is still checked
 * against the address (its IP SAN) by tls.checkServerIdentity.
 */
function quietIpServerName(): void {
  if (quieted) return;
  quieted = true;
  const emit = process.emitWarning.bind(process) as (...a: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]): void => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

/**
 * grpc-js's text for a failed connection, without its decoration: "14 UNAVAILABLE: No
 * connection established. Last error: X (2026-…Z). Resolution note: " becomes X.
 */
export function grpcReason(e: unknown): string {
  const text = (e as Error)?.message ?? String(e);
  const last = /Last error: ([\s\S]*?)(?: \(\d{4}-\d\d-\d\dT[\d:.]+Z\))?\.? Resolution note:/.exec(text)?.[1];
  return (last ?? text).split('\n')[0]!.replace(/^\d+ [A-Z_]+: /, '').replace(/^Error(?: \[[A-Z_0-9]+\])?: /, '').trim();
}

/**
 * The one-line error for an etcd that does not answer, naming the endpoint(s): ETCD_TLS
 * when the TLS handshake failed (what to fix: the CA, the name, the client certificate),
 * ETCD_AUTH when etcd refused the user (wrong password, no permission on /nsnet/, no user
 * given to an etcd that wants one), ETCD_UNREACHABLE otherwise. All are "try again later"
 * for the agent: each is fixed outside it (a file, a role, a server).
 */
export function unreachable(target: EtcdTarget, e: unknown): NsnetError {
  const where = target.urls.join(',');
  let why = grpcReason(e);
  const auth = describeAuthFailure(why, target.auth, where);
  if (auth) return new NsnetError('ETCD_AUTH', auth, { object: target.auth?.user ?? where, cause: e });
  const tls = target.tls ? describeTlsFailure(why, target.tls) : undefined;
  if (tls) return new NsnetError('ETCD_TLS', `etcd at ${where}: ${tls}`, { object: where, cause: e });
  // Two answers of a server speaking the other protocol, ambiguous on their own: a plain
  // etcd resets a TLS client hello; a TLS etcd answers a plaintext HTTP/2 preface with an
  // HTTP/1 400 and closes, which grpc-js reports only as "Failed to connect".
  const connecting = /No connection established/.test((e as Error)?.message ?? '');
  if (connecting && target.tls && /ECONNRESET/.test(why)) why += ' during the TLS handshake (does it serve http:// rather than https://?)';
  if (connecting && !target.tls && why === 'Failed to connect') why += ' (the server closed the connection: if it serves TLS, use https://)';
  return new NsnetError('ETCD_UNREACHABLE', `etcd at ${where} is unreachable: ${why}`, { object: where, cause: e });
}

/** Runs `fn`; any non-nsnet error (gRPC unavailable, deadline, TLS, user refused) becomes ETCD_UNREACHABLE, ETCD_TLS or ETCD_AUTH. */
export async function withEtcd<T>(target: EtcdTarget, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof NsnetError) throw e;
    throw unreachable(target, e);
  }
}

/** Whether the agent waits and retries on this error (etcd away or not ready, TLS or user refused). */
export function isTransient(e: NsnetError): boolean {
  return e.code === 'ETCD_UNREACHABLE' || e.code === 'ETCD_TLS' || e.code === 'ETCD_AUTH' || e.code === 'CLUSTER_NOT_INITIALISED';
}
