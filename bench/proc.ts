/**
 * Running the baselines' programs from a bench section. Every child gets the same
 * environment: NODE_EXTRA_CA_CERTS removed (this machine sets it globally and it adds ~40 ms
 * to each Node start) and the C locale (stable tool output).
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import path from 'node:path';

export const CHILD_ENV: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
delete CHILD_ENV.NODE_EXTRA_CA_CERTS;

export interface Proc { status: number | null; stdout: string; stderr: string }

export function exec(file: string, args: string[], opts: SpawnSyncOptions = {}): Proc {
  const r = spawnSync(file, args, { encoding: 'utf8', env: CHILD_ENV, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/** Like exec, but a non-zero exit throws with the program, its arguments and its stderr. */
export function must(file: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = exec(file, args, opts);
  if (r.status !== 0) {
    throw new Error(`${path.basename(file)} ${args.join(' ').slice(0, 160)} exited ${r.status}: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  }
  return r.stdout;
}
