/**
 * `nsnet dns …`: the embedded DNS service. The engine starts and stops it by itself
 * (src/dns/control.ts); these commands are for looking at it and for restarting it.
 *
 *   nsnet dns status [--json]   running?, listeners, upstreams, counters
 *   nsnet dns start | stop | restart
 *   nsnet dns serve             run it in the foreground (logs to stdout; Ctrl-C stops)
 *
 * A service that cannot start is reported like main.ts reports a refused request: one
 * line on stderr, exit status 1.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { NsnetError } from '../errors.js';
import { resolveStateDir } from '../store/store.js';

const print = (s: string): void => { process.stdout.write(`${s}\n`); };
const fail = (s: string): void => { process.stderr.write(`nsnet: ${s}\n`); process.exitCode = 1; };

function stateDirOf(cmd: Command): string {
  return resolveStateDir(cmd.optsWithGlobals<{ stateDir?: string }>().stateDir);
}

function parseRate(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v)) throw new NsnetError('USAGE', `invalid --rate-limit "${v}": queries per second per source, 0 for none`);
  return n;
}

async function start(dir: string): Promise<void> {
  const { startDnsService } = await import('../dns/control.js');
  const { dnsPaths } = await import('../dns/paths.js');
  fs.rmSync(dnsPaths(dir).held, { force: true });
  try {
    const r = startDnsService(dir);
    print(r.started ? `dns service started (pid ${r.pid})` : `dns service already running (pid ${r.pid})`);
  } catch (e) {
    fail((e as Error).message);
  }
}

async function stop(dir: string, hold: boolean): Promise<void> {
  const { stopDnsService } = await import('../dns/control.js');
  const { dnsPaths } = await import('../dns/paths.js');
  if (hold) {
    const p = dnsPaths(dir);
    fs.mkdirSync(p.dir, { recursive: true });
    fs.writeFileSync(p.held, `${new Date().toISOString()}\n`);
  }
  const r = stopDnsService(dir);
  print(r.stopped ? `dns service stopped (pid ${r.pid})` : 'dns service was not running');
}

export function registerDnsCommands(program: Command): void {
  const dns = program.command('dns').description('the embedded DNS service: names of namespaces on shared networks')
    .addHelpText('after', `
Namespaces attached to a network resolve each other's names and aliases (NAME or
NAME.dns.nsnet) through the gateway; other names are forwarded to the host's resolvers.
The service starts with the first endpoint and stops with the last one; \`nsnet dns stop\`
keeps it stopped (names then do not resolve) until \`nsnet dns start\`.

Examples:
  nsnet dns status
  nsnet ns exec web -- getent hosts api`);

  dns.command('status').description('is the service running, where does it listen, what has it answered')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { dnsServiceState } = await import('../dns/control.js');
      const s = await dnsServiceState(stateDirOf(cmd));
      if (o.json) { print(JSON.stringify(s, null, 2)); return; }
      if (!s.running) {
        print(s.heldSince
          ? `dns service: stopped by \`nsnet dns stop\` at ${s.heldSince}; \`nsnet dns start\` resumes it (log: ${s.log})`
          : `dns service: not running (log: ${s.log})`);
        return;
      }
      print(`dns service: running, pid ${s.pid}, since ${s.status?.startedAt ?? '?'}`);
      for (const l of s.status?.listeners ?? []) {
        print(`  listen ${l.address.includes(':') ? `[${l.address}]` : l.address}:${s.status!.port} (${l.network})${l.error ? `  FAILED: ${l.error}` : ''}`);
      }
      print(`  upstreams: ${s.status?.upstreams.join(', ') || 'none'}`);
      print(`  names: ${s.status?.names ?? 0} on ${s.status?.networks ?? 0} network(s), ${s.status?.endpoints ?? 0} endpoint(s)`);
      const live = s.live as { counters?: Record<string, number>; cache?: { entries: number } } | undefined;
      if (live?.counters) {
        const c = live.counters;
        print(`  queries: ${c.received} received, ${c.local} local, ${c.nxdomain} nxdomain, ${c.forwarded} forwarded, ${c.cacheHits} from cache (${live.cache?.entries ?? 0} cached), ${c.refused} refused, ${c.servfail} servfail`);
        print(`  dropped: ${c.foreign} not from an endpoint, ${c.limited} over the rate limit, ${c.malformed} malformed`);
      }
    });

  dns.command('start').description('start the service in the background (if it is not running)')
    .action(async (_o, cmd: Command) => { await start(stateDirOf(cmd)); });

  dns.command('stop').description('stop the service and keep it stopped (until `nsnet dns start`), even as endpoints come and go')
    .action(async (_o, cmd: Command) => { await stop(stateDirOf(cmd), true); });

  dns.command('restart').description('stop and start the service')
    .action(async (_o, cmd: Command) => {
      const dir = stateDirOf(cmd);
      await stop(dir, false);
      await start(dir);
    });

  dns.command('serve').description('run the service in the foreground (for debugging; Ctrl-C stops it)')
    .option('--rate-limit <qps>', 'queries per second per source (0: none)', parseRate)
    .option('--port <port>', 'port to listen on instead of 53')
    .action(async (o: { rateLimit?: number; port?: string }, cmd: Command) => {
      if (o.rateLimit !== undefined) process.env.NSNET_DNS_RATE_LIMIT = String(o.rateLimit);
      if (o.port !== undefined) process.env.NSNET_DNS_PORT = o.port;
      const { runService } = await import('../dns/daemon.js');
      const { DnsServiceError } = await import('../dns/service.js');
      try {
        await runService(stateDirOf(cmd));
      } catch (e) {
        if (!(e instanceof DnsServiceError)) throw e;
        fail(e.message);
      }
    });
}
