/**
 * Calling the nsnet CNI plugin the way a runtime does (libcni's RawExec, as `cnitool` would):
 * the installed executable, CNI_* in a clean environment, the config with cniVersion, name,
 * runtimeConfig and prevResult injected on stdin; result or error JSON on stdout.
 */
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { must, nsnetOk, run } from '../harness/world.js';

export const BIN_DIR = '/run/cni-bin';
export const PLUGIN = path.join(BIN_DIR, 'nsnet');
export const REF_DIR = '/usr/lib/cni';

/** Installs the plugin with the CLI, as a user would. */
export function installPlugin(): void {
  nsnetOk('cni', 'install', '--dir', BIN_DIR);
  assert.ok(fs.statSync(PLUGIN).mode & 0o111, 'plugin is executable');
}

export interface Call {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Environment overrides (undefined deletes). */
  env?: Record<string, string | undefined>;
}

export interface Reply { status: number | null; stdout: string; stderr: string; json: any }

/** The environment a runtime gives a plugin: nothing of ours but PATH and the CNI variables. */
function pluginEnv(c: Call): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NSNET_STATE_DIR: process.env.NSNET_STATE_DIR };
  env.CNI_COMMAND = c.command;
  if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifname !== undefined) env.CNI_IFNAME = c.ifname;
  env.CNI_PATH = c.path ?? `${BIN_DIR}:${REF_DIR}`;
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  for (const [k, v] of Object.entries(c.env ?? {})) {
    if (v === undefined) delete env[k]; else env[k] = v;
  }
  return env;
}

/** Runs `plugin` (a path) with the call's environment and `conf` (object or raw text) on stdin. */
export function invoke(plugin: string, c: Call, conf: unknown): Reply {
  const r = run(plugin, [], { input: typeof conf === 'string' ? conf : JSON.stringify(conf), env: pluginEnv(c), timeout: 60_000 });
  let json: any;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { json = undefined; }
  return { ...r, json };
}

export function cni(c: Call, conf: unknown): Reply {
  return invoke(PLUGIN, c, conf);
}

/** A call that must succeed. */
export function cniOk(c: Call, conf: unknown): any {
  const r = cni(c, conf);
  assert.equal(r.status, 0, `CNI ${c.command} failed (${r.status}): ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** A call that must fail with `code`: error JSON on stdout, non-zero exit, nothing changed. */
export function cniErr(c: Call, conf: unknown, code: number, msg?: RegExp): any {
  const before = snapshot();
  const r = cni(c, conf);
  assert.notEqual(r.status, 0, `CNI ${c.command} should fail with code ${code}; stdout ${r.stdout}`);
  assert.ok(r.json, `error JSON on stdout, got: ${r.stdout} / stderr: ${r.stderr}`);
  assert.equal(r.json.code, code, `code ${code} expected: ${r.stdout}`);
  assert.equal(typeof r.json.msg, 'string');
  assert.ok(r.json.cniVersion, 'error carries cniVersion');
  if (msg) assert.match(r.json.msg, msg);
  assert.equal(snapshot(), before, `CNI ${c.command} (error ${code}) changed kernel or store`);
  return r.json;
}

/** Links, addresses, nsnet's endpoints and firewall: what a refused call must leave alone. */
export function snapshot(): string {
  const links = must('ip -o link show').split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0]).filter(Boolean).sort().join(' ');
  const st = JSON.parse(nsnetOk('status', '--json')) as { endpoints: Array<{ namespace: string; addresses: string[]; state: string }> };
  const nft = run('nft', ['list', 'table', 'inet', 'nsnet']).stdout + run('nft', ['list', 'table', 'bridge', 'nsnet']).stdout;
  return JSON.stringify({ links, endpoints: st.endpoints.map((e) => `${e.namespace} ${e.addresses.join(',')} ${e.state}`), nft });
}

/** The plugin config as a runtime sends it for one call. */
export function conf(name: string, extra: Record<string, unknown> = {}, version = '1.1.0'): Record<string, unknown> {
  return { cniVersion: version, name, type: 'nsnet', ...extra };
}

export function addNetns(name: string): string {
  must(`ip netns add ${name}`);
  return `/run/netns/${name}`;
}

export function delNetns(name: string): void {
  run('ip', ['netns', 'del', name]);
}
