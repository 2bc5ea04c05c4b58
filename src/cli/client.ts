/**
 * The thin client side of `nsnet serve`: send the command line, print what the server
 * printed, exit with its status. Any trouble reaching the server (none running, a different
 * build, a broken connection before an answer) means "run the command here instead".
 */
import net from 'node:net';
import { serverSocket, stateDirOf } from './endpoint.js';
import { buildId } from './build-id.js';

/** Commands a server may run: no stdin, no files relative to the caller, no terminal. */
export const FORWARDED = new Set(['connect', 'disconnect', 'status', 'ports']);

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

/**
 * Sends one request (`{argv}` or `{cni}`) to the server for `stateDir`; undefined when none
 * answers, or when it is another build (code -1).
 */
export async function ask(stateDir: string, body: Record<string, unknown>): Promise<Reply | undefined> {
  const reply = await new Promise<Reply | undefined>((resolve) => {
    const sock = net.connect(serverSocket(stateDir));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.end(`${JSON.stringify({ ...body, build: buildId() })}\n`));
    sock.on('data', (d) => { buf += d; });
    sock.on('end', () => {
      try { resolve(JSON.parse(buf) as Reply); } catch { resolve(undefined); }
    });
    sock.on('error', () => resolve(undefined));
  });
  return !reply || reply.code === -1 ? undefined : reply;
}

export async function forward(argv: readonly string[]): Promise<number | undefined> {
  if (!forwardable(argv)) return undefined;
  const reply = await ask(stateDirOf(argv), { argv });
  if (!reply) return undefined;
  if (reply.stdout) process.stdout.write(reply.stdout);
  if (reply.stderr) process.stderr.write(reply.stderr);
  return reply.code;
}
