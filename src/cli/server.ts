/**
 * `nsnet serve`: a resident nsnet process for one state directory. Each request is one
 * command line, run exactly as the CLI would run it (same parser, same engine, same error
 * mapping), one at a time, with its output captured and sent back. What it saves a caller is
 * loading the engine — koffi, better-sqlite3, libnftables and ~50 modules, ~100 ms — on
 * every invocation; the kernel work is the same.
 *
 * Protocol (one request per connection): the client sends `{"argv":[…],"build":"…"}\n` and
 * half-closes; the server answers `{"code":N,"stdout":"…","stderr":"…"}` and closes. A
 * different build answers code -1 and the client runs the command itself.
 */
import net from 'node:net';
import path from 'node:path';
import type { Command } from 'commander';
import { NsnetError } from '../errors.js';
import { DEFAULT_STATE_DIR, FORWARDED, buildId, serverSocket } from './client.cjs';
import type { CniRequest } from '../cni/run.js';

interface Reply { code: number; stdout: string; stderr: string }

export function registerServeCommand(program: Command): void {
  program.command('serve')
    .description('stay resident so connect, disconnect, status and ports answer without loading nsnet each time')
    .addHelpText('after', `
Runs in the foreground until SIGTERM or SIGINT (run it under systemd, or with &). Clients in the
same network namespace using the same state directory find it by themselves; with none running,
every command works as before. NSNET_NO_SERVER=1 makes a client ignore it.`)
    .action(async (_o, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ stateDir?: string }>();
      await serve(path.resolve(g.stateDir ?? process.env.NSNET_STATE_DIR ?? DEFAULT_STATE_DIR));
    });
}

async function serve(stateDir: string): Promise<void> {
  const { runCli } = await import('./program.js');
  const build = buildId();
  let queue: Promise<unknown> = Promise.resolve();

  // One engine kept open for the server's life, for CLI commands and CNI plugin calls
  // (src/cni/run.ts) alike, so a request costs the kernel and store work only — not opening
  // the database, preparing its statements and the libnftables context each time.
  let kept: import('../engine/engine.js').Nsnet | undefined;
  async function engine(): Promise<import('../engine/engine.js').Nsnet> {
    if (!kept) {
      const { Nsnet } = await import('../engine/engine.js');
      kept = new Nsnet({ stateDir });
    }
    return kept;
  }
  async function runCniRequest(r: CniRequest): Promise<Reply> {
    const { prepare, runPrepared } = await import('../cni/run.js');
    const p = prepare({ env: r.env ?? {}, stdin: String(r.stdin ?? '') });
    if ('exit' in p) return { code: p.exit, stdout: p.stdout, stderr: p.stderr };
    if (p.conf.stateDir !== undefined && path.resolve(p.conf.stateDir) !== stateDir) {
      return { code: -1, stdout: '', stderr: '' }; // another state dir: the plugin runs it itself
    }
    const t0 = performance.now();
    const reply = await runPrepared(p, await engine());
    process.stdout.write(`served: CNI ${p.inv.verb} ${p.conf.name} ${p.inv.containerId} ${p.inv.ifname} → ${reply.exit} (${(performance.now() - t0).toFixed(1)} ms)\n`);
    return { code: reply.exit, stdout: reply.stdout, stderr: reply.stderr };
  }

  async function run(argv: string[]): Promise<Reply> {
    const out: string[] = [];
    const err: string[] = [];
    const { write: outWrite } = process.stdout;
    const { write: errWrite } = process.stderr;
    // Requests run one at a time (the queue), so swapping the writers is safe.
    process.stdout.write = ((chunk: string | Uint8Array) => { out.push(String(chunk)); return true; }) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array) => { err.push(String(chunk)); return true; }) as typeof process.stderr.write;
    try {
      const code = await runCli(['--state-dir', stateDir, ...argv], { engine: await engine() });
      return { code, stdout: out.join(''), stderr: err.join('') };
    } finally {
      process.stdout.write = outWrite;
      process.stderr.write = errWrite;
    }
  }

  // allowHalfOpen: the client half-closes after its request; the answer still has to go back.
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => { buf += d; });
    sock.on('error', () => sock.destroy());
    sock.on('end', () => {
      let req: { argv?: unknown; build?: unknown; cni?: unknown };
      try { req = JSON.parse(buf) as typeof req; } catch { sock.destroy(); return; }
      if (req.cni !== undefined && req.build === build) {
        queue = queue.then(() => runCniRequest(req.cni as CniRequest)).then((reply) => {
          sock.end(`${JSON.stringify(reply)}\n`);
        }, () => sock.destroy());
        return;
      }
      const argv = Array.isArray(req.argv) && req.argv.every((a) => typeof a === 'string') ? (req.argv as string[]) : undefined;
      const command = argv?.find((a, i) => !a.startsWith('-') && argv[i - 1] !== '--state-dir');
      if (!argv || req.build !== build || !FORWARDED.has(command ?? '')) {
        sock.end(`${JSON.stringify({ code: -1, stdout: '', stderr: '' })}\n`);
        return;
      }
      queue = queue.then(() => run(argv)).then((reply) => {
        process.stdout.write(`served: ${argv.join(' ')} → ${reply.code}\n`);
        sock.end(`${JSON.stringify(reply)}\n`);
      }, () => sock.destroy());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE'
      ? new NsnetError('USAGE', `an nsnet server already runs for ${stateDir} in this network namespace`, { object: stateDir })
      : e));
    server.listen(serverSocket(stateDir), () => resolve());
  });
  process.stdout.write(`nsnet serve: ready (state ${stateDir}, pid ${process.pid})\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => { server.close(() => { kept?.close(); resolve(); }); };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
