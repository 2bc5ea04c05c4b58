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
// The server's socket name, the build id and the request itself: the same CommonJS module
// the `nsnet` executable uses (src/cli/client.cts), so the two can never disagree.
import client = require('../cli/client.cjs');

const SERVED = new Set(['ADD', 'DEL', 'CHECK', 'STATUS', 'GC']);
const CNI_ENV = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS'];

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
    const reply = await client.ask(stateDir, { cni: { env, stdin }, build: client.buildId() });
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
