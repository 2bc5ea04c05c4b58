#!/usr/bin/env node
/**
 * The `nsnet` executable. Node's start-up (~60 ms here) is unavoidable; loading the engine
 * (koffi, better-sqlite3, libnftables, commander, ~50 modules: ~100 ms) is not, and neither
 * is Node's ESM loader for an ESM entry. So this entry is CommonJS and loads only
 * client.cts: when a resident `nsnet serve` runs for this state directory in this network
 * namespace, the hot commands (connect, disconnect and the read-only ones) are handed to it
 * and nothing else is loaded; otherwise, and for everything else, the program runs here.
 */
import client = require('./client.cjs');

async function main(argv: string[]): Promise<number> {
  const code = await client.forward(argv);
  if (code !== undefined) return code;
  const { runCli } = await import('./program.js');
  return runCli(argv);
}

// `nsnet … | head`: a reader that goes away is not an error of ours (as with SIGPIPE in C tools).
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`nsnet: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exitCode = 1;
});
