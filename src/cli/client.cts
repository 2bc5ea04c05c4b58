/**
 * The thin client side of `nsnet serve`, and what it shares with the server: where the
 * server listens, which state directory a command line means, which build it must run, and
 * which commands it takes. CommonJS with Node built-ins only, on purpose: the `nsnet`
 * executable (nsnet.cts) loads just this file before handing a command to a running server,
 * and Node starts a CommonJS entry without its ESM loader — ~25–35 ms less per command than
 * an ESM entry (measured for the CNI plugin, which uses the same path: bench section cni).
 *
 * Any trouble reaching the server (none running, a different build, a broken connection
 * before an answer) means "run the command here instead".
 */
import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');

export const DEFAULT_STATE_DIR = '/var/lib/nsnet';

/** Commands a server may run: no stdin, no files relative to the caller, no terminal. */
export const FORWARDED = new Set(['connect', 'disconnect', 'status', 'ports']);

/**
 * Where a resident `nsnet serve` listens: an abstract unix socket named after the state
 * directory. Abstract sockets belong to a network namespace (net/unix/af_unix.c), so a
 * client only ever finds a server running in its own namespace — the one its commands are
 * meant for — and the kernel removes the name when the server dies (never stale).
 *
 * The name hashes the resolved state dir with 64-bit FNV-1a, not SHA-256: node:crypto
 * initialises OpenSSL on load (~10 ms of CPU, measured), which every CLI run would pay. The
 * name needs no collision resistance against an adversary: only root can bind it, and a
 * server answers only requests from the same build.
 */
export function serverSocket(stateDir: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(path.resolve(stateDir))) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return `\0nsnet-engine-${h.toString(16).padStart(16, '0')}`;
}

/** The state dir a command line means: --state-dir, then $NSNET_STATE_DIR, then the default. */
export function stateDirOf(argv: readonly string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state-dir' && argv[i + 1] !== undefined) return argv[i + 1]!;
    if (a.startsWith('--state-dir=')) return a.slice('--state-dir='.length);
  }
  return process.env.NSNET_STATE_DIR ?? DEFAULT_STATE_DIR;
}

/**
 * Identifies the code a process runs, so a client never hands a command to a server that
 * still runs an older build: the modification time of the compiled CLI program module.
 */
export function buildId(): string {
  try {
    return String(fs.statSync(path.join(__dirname, 'program.js')).mtimeMs);
  } catch {
    return 'unknown';
  }
}

function forwardable(argv: readonly string[]): boolean {
  if (process.env.NSNET_NO_SERVER === '1' || process.env.NSNET_DEBUG === '1' || process.env.NSNET_CRASH_AT) return false;
  if (argv.some((a) => a === '--debug' || a === '-h' || a === '--help')) return false;
  // Skip the global --state-dir (the server was started for one state dir; the socket name
  // already encodes it); the next word must be a forwarded command.
  let i = 0;
  while (argv[i] === '--state-dir' || argv[i]?.startsWith('--state-dir=')) i += argv[i] === '--state-dir' ? 2 : 1;
  return FORWARDED.has(argv[i] ?? '');
}

export interface Reply { code: number; stdout: string; stderr: string }

/** One request to the server for `stateDir`; undefined when none answers. */
export function ask(stateDir: string, body: unknown): Promise<Reply | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect(serverSocket(stateDir));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.end(`${JSON.stringify(body)}\n`));
    sock.on('data', (d: string) => { buf += d; });
    sock.on('end', () => {
      try { resolve(JSON.parse(buf) as Reply); } catch { resolve(undefined); }
    });
    sock.on('error', () => resolve(undefined));
  });
}

/** Runs the command line on the server if one runs it; its exit code, or undefined. */
export async function forward(argv: readonly string[]): Promise<number | undefined> {
  if (!forwardable(argv)) return undefined;
  const reply = await ask(stateDirOf(argv), { argv, build: buildId() });
  if (!reply || reply.code === -1) return undefined; // -1: the server is another build
  if (reply.stdout) process.stdout.write(reply.stdout);
  if (reply.stderr) process.stderr.write(reply.stderr);
  return reply.code;
}
