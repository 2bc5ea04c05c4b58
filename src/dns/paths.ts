/**
 * Where the DNS service keeps its files — under the state directory, so each state
 * directory (and each test sandbox) has its own service — and how a pidfile is checked.
 *
 *   <state>/dns/dns.pid       "PID STARTTIME": the start time (field 22 of /proc/PID/stat)
 *                             tells a live service from a reused PID
 *   <state>/dns/status.json   written by the service after each reload: listeners, …
 *   <state>/dns/dns.log       the detached service's stdout and stderr
 *
 * The lock is an abstract unix socket (unix(7)): only one process can listen on a name,
 * and the kernel releases it when that process dies, so a crash never leaves it stale.
 * Its name is derived from the state directory; abstract names are per network namespace,
 * which is also where the service's listeners live.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface DnsPaths {
  dir: string;
  pid: string;
  status: string;
  log: string;
  /** Abstract unix socket name (leading NUL): the lock and the control channel. */
  control: string;
  /** Present while the user has stopped the service (`nsnet dns stop`): the engine leaves it stopped. */
  held: string;
}

const pathsByDir = new Map<string, DnsPaths>();

export function dnsPaths(stateDir: string): DnsPaths {
  let p = pathsByDir.get(stateDir);
  if (!p) pathsByDir.set(stateDir, (p = computeDnsPaths(stateDir)));
  return p;
}

function computeDnsPaths(stateDir: string): DnsPaths {
  const state = path.resolve(stateDir);
  const dir = path.join(state, 'dns');
  const h = crypto.createHash('sha256').update(state).digest('hex').slice(0, 16);
  return {
    dir, pid: path.join(dir, 'dns.pid'), status: path.join(dir, 'status.json'), log: path.join(dir, 'dns.log'),
    control: `\0nsnet-dns-${h}`, held: path.join(dir, 'stopped-by-user'),
  };
}

/** Field 22 (starttime) of /proc/PID/stat and whether it is a zombie; undefined if gone. */
export function procStart(pid: number): { start: string; zombie: boolean } | undefined {
  let stat: string;
  try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return undefined; }
  // "PID (COMM) STATE …": COMM may hold spaces and parentheses, so split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { start: rest[19]!, zombie: rest[0] === 'Z' || rest[0] === 'X' };
}

export function pidfileLine(pid: number): string {
  return `${pid} ${procStart(pid)?.start ?? '?'}\n`;
}

/** The PID in the pidfile if that very process is alive (not a zombie, not a reused PID). */
export function livePid(file: string): number | undefined {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return undefined; }
  const [p, start] = text.trim().split(/\s+/);
  const pid = Number(p);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const st = procStart(pid);
  if (!st || st.zombie || st.start !== start) return undefined;
  return pid;
}

/** Writes a file atomically (rename), so readers never see half of it. */
export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
