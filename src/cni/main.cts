#!/usr/bin/env node
/**
 * The `nsnet` CNI plugin executable (`nsnet cni install --dir DIR` writes DIR/nsnet, a wrapper
 * that runs this file). A runtime runs it once per verb: CNI_* in the environment, the config
 * on stdin, the result or error JSON on stdout.
 *
 * Why CommonJS, and why this file imports only Node built-ins: it is the part of every call
 * that a resident `nsnet serve` cannot save. Node starts a CommonJS entry without its ESM
 * loader, and this file reads stdin, finds the server for the config's state directory and
 * hands it the call as it is (the server validates, exactly as entry.ts would) — ~25–35 ms less
 * per call than loading the ESM protocol modules first (measured here: bench section cni).
 * With no server (or for VERSION, or without CNI_COMMAND) it loads entry.ts and does
 * everything in this process.
 */
import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');
import crypto = require('node:crypto');

const SERVED = new Set(['ADD', 'DEL', 'CHECK', 'STATUS', 'GC']);
const CNI_ENV = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS'];

/** The server's socket: the same name src/cli/endpoint.ts gives it (keep the two in step). */
function serverSocket(stateDir: string): string {
  return `\0nsnet-engine-${crypto.createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 16)}`;
}

/** The build the server must run: src/cli/build-id.ts's mtime of the compiled CLI program. */
function buildId(): string {
  try { return String(fs.statSync(path.join(__dirname, '..', 'cli', 'program.js')).mtimeMs); } catch { return 'unknown'; }
}

interface Reply { code: number; stdout: string; stderr: string }

function ask(stateDir: string, body: unknown): Promise<Reply | undefined> {
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

async function main(): Promise<number> {
  const command = process.env.CNI_COMMAND ?? '';
  let stdin: string | undefined;
  if (SERVED.has(command) && process.env.NSNET_NO_SERVER !== '1') {
    try { stdin = fs.readFileSync(0, 'utf8'); } catch { return (await import('./entry.js')).pluginMain(); /* re-read: code 5 */ }
    let stateDir = process.env.NSNET_STATE_DIR ?? '/var/lib/nsnet';
    try {
      const conf = JSON.parse(stdin) as { stateDir?: unknown };
      if (typeof conf.stateDir === 'string') stateDir = conf.stateDir;
    } catch { /* not JSON: entry.ts reports it (code 6) */ }
    const env: Record<string, string> = {};
    for (const k of CNI_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    const reply = await ask(stateDir, { cni: { env, stdin }, build: buildId() });
    if (reply && reply.code !== -1) {
      if (reply.stdout) process.stdout.write(reply.stdout);
      if (reply.stderr) process.stderr.write(reply.stderr);
      return reply.code;
    }
  }
  const { pluginMain } = await import('./entry.js');
  return pluginMain(stdin, stdin !== undefined);
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  // A bug before any answer: still an error JSON on stdout, as the runtime expects.
  process.stdout.write(`${JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: `internal error in nsnet: ${(e as Error)?.message ?? String(e)}` })}\n`);
  process.exitCode = 1;
});
