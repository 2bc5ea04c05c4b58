#!/usr/bin/env node
/**
 * The detached DNS service process, started by src/dns/control.ts as
 *
 *   node dist/src/dns/daemon.js --state-dir DIR
 *
 * in its own session (setsid), stdio on DIR/dns/dns.log, cwd /. It exits 0 at once if
 * another service holds the lock for DIR. SIGHUP reloads; SIGTERM and SIGINT stop it.
 * Settings come from the environment it was started with (see README.md):
 * NSNET_DNS_RATE_LIMIT, NSNET_DNS_PORT, NSNET_DNS_NICE (see raisePriority); NSNET_DNS_ANCHOR ("PID STARTTIME", set by
 * control.ts inside the test sandbox) makes it exit when that process is gone.
 */
import fs from 'node:fs';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { procStart } from './paths.js';
import { DnsService, DnsServiceError } from './service.js';

/**
 * The service answers every container's lookups from one thread, so its latency tail is
 * its share of a CPU when the machine is busy. Started in its own session (setsid), it is
 * its own scheduling group when the kernel groups by session (CONFIG_SCHED_AUTOGROUP,
 * kernel.sched_autogroup_enabled=1), and a group's weight, not a task's, decides its share
 * against other sessions (Documentation/scheduler/sched-design-CFS.rst; sched(7),
 * "The autogroup feature"). Measured here at 5,000 q/s with the load generators on the same
 * two CPUs: dnsperf p99 2.0 ms at the default weight, 1.7 ms at nice -5, 1.0 ms at -10
 * (src/dns/README.md). So the service gives its own group — and itself, for kernels
 * without autogroup — a moderately higher weight, like an infrastructure daemon's
 * `Nice=` in systemd; the per-source rate limit bounds what that weight can take.
 * NSNET_DNS_NICE=0 keeps the default weight. Only this process and its group change;
 * both end with it.
 */
const DEFAULT_NICE = -5;
function raisePriority(nice: number): void {
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) {
    process.stderr.write(`nsnet dns: ignoring NSNET_DNS_NICE=${process.env.NSNET_DNS_NICE} (want an integer -20..19)\n`);
    return;
  }
  if (nice === 0) return;
  try { os.setPriority(0, nice); } catch (e) { process.stderr.write(`nsnet dns: cannot set nice ${nice}: ${(e as Error).message}\n`); }
  try { fs.writeFileSync('/proc/self/autogroup', String(nice)); } catch { /* no autogroup in this kernel */ }
}

/**
 * Runs the service until SIGTERM or SIGINT (SIGHUP reloads). Throws DnsServiceError
 * (code DNS_RUNNING) if another service holds the lock for `stateDir`.
 */
export async function runService(stateDir: string): Promise<void> {
  raisePriority(process.env.NSNET_DNS_NICE === undefined ? DEFAULT_NICE : Number(process.env.NSNET_DNS_NICE));
  const rate = process.env.NSNET_DNS_RATE_LIMIT === undefined ? undefined : Number(process.env.NSNET_DNS_RATE_LIMIT);
  const port = process.env.NSNET_DNS_PORT === undefined ? undefined : Number(process.env.NSNET_DNS_PORT);
  const svc = new DnsService({
    stateDir,
    ...(port !== undefined && Number.isInteger(port) ? { port } : {}),
    ...(rate !== undefined && Number.isFinite(rate) ? { rateLimit: { rate, burst: Math.max(1, rate * 2) } } : {}),
  });
  // The handlers go in before start(): start() writes the pidfile, and from then on an
  // engine may signal the service (SIGHUP after a change) while it is still binding its
  // listeners. Without a handler, SIGHUP's default action ends the process (signal(7)).
  // A reload asked for during start-up runs once start() is done; a stop, after it too.
  let started = false;
  let reloadAsked = false;
  let stopAsked = false;
  let stopping: Promise<void> | undefined;
  let stopped: () => void = () => undefined;
  const done = new Promise<void>((resolve) => { stopped = resolve; });
  const stop = (): void => {
    if (!started) { stopAsked = true; return; }
    stopping ??= svc.stop().then(stopped);
  };
  process.on('SIGHUP', () => { if (started) void svc.reload(); else reloadAsked = true; });
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await svc.start();
  started = true;
  if (stopAsked) stop();
  else if (reloadAsked) void svc.reload();
  // Started inside the test sandbox: leave with it (see sandboxAnchor in control.ts).
  const anchor = process.env.NSNET_DNS_ANCHOR?.split(' ');
  if (anchor) {
    const t = setInterval(() => {
      const st = procStart(Number(anchor[0]));
      if (!st || st.zombie || st.start !== anchor[1]) {
        clearInterval(t);
        process.stdout.write(`${new Date().toISOString()} nsnet dns: the sandbox that started it is gone; stopping\n`);
        stop();
      }
    }, 1000);
    t.unref();
  }
  await done;
}

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = argValue('--state-dir');
  if (!dir) {
    process.stderr.write('usage: daemon.js --state-dir DIR\n');
    process.exit(2);
  }
  process.title = 'nsnet-dns';
  // A bug met while answering one query must not take DNS away from every namespace:
  // log it (with the stack, for a report) and keep serving.
  process.on('uncaughtException', (e) => {
    process.stderr.write(`${new Date().toISOString()} nsnet dns: internal error — this is a bug in nsnet: ${e.stack ?? String(e)}\n`);
  });
  try {
    await runService(dir);
    process.exit(0);
  } catch (e) {
    process.stderr.write(`${new Date().toISOString()} nsnet dns: ${(e as Error).message}\n`);
    // Another service holds the lock: it serves, which is what was wanted.
    process.exit(e instanceof DnsServiceError && e.code === 'DNS_RUNNING' ? 0 : 1);
  }
}
