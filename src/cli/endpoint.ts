/**
 * Where a resident `nsnet serve` listens: an abstract unix socket named after the state
 * directory. Abstract sockets belong to a network namespace (net/unix/af_unix.c), so a
 * client only ever finds a server running in its own namespace — the one its commands are
 * meant for — and the kernel removes the name when the server dies (never stale).
 *
 * Kept free of heavy imports: the CLI entry point loads it on every run.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/nsnet';

export function serverSocket(stateDir: string): string {
  const hash = createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 16);
  return `\0nsnet-engine-${hash}`;
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
