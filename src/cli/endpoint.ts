/**
 * Where a resident `nsnet serve` listens: an abstract unix socket named after the state
 * directory. Abstract sockets belong to a network namespace (net/unix/af_unix.c), so a
 * client only ever finds a server running in its own namespace — the one its commands are
 * meant for — and the kernel removes the name when the server dies (never stale).
 *
 * Kept free of heavy imports: the CLI entry point loads it on every run.
 */
import path from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/nsnet';

/**
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
