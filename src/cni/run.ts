/**
 * One plugin invocation, from (environment, stdin) to (exit status, stdout, stderr), the way
 * skel.PluginMainFuncs does it: VERSION and every validation error are answered here without
 * loading the engine; the verbs that change or read state run either in a resident `nsnet serve`
 * for the same state directory (when one runs in this network namespace: it has the engine loaded
 * already, saving ~100 ms per call) or in this process.
 *
 * Errors go to stdout as CNI error JSON with a non-zero exit (libcni's RawExec reads stdout);
 * stderr carries only logs.
 */
import { CNI_ERR, CniError, LATEST_VERSION, parseCniArgs, parseInvocation, versionResult, type Invocation } from './spec.js';
import { parseConf, parseJson, type PluginConf } from './config.js';
import type { Nsnet } from '../engine/engine.js';

export interface CniReply { exit: number; stdout: string; stderr: string }

/** What a plugin process sends a resident server: its CNI environment and stdin, verbatim. */
export interface CniRequest { env: Record<string, string>; stdin: string }

const CNI_ENV = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS'];

export function cniEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of CNI_ENV) if (env[k] !== undefined) out[k] = env[k]!;
  return out;
}

function errorReply(e: CniError, version: string): CniReply {
  return { exit: 1, stdout: `${JSON.stringify(e.toJSON(version))}\n`, stderr: '' };
}

export interface Prepared { inv: Invocation; conf: PluginConf; args: Map<string, string> }

/** Parses and validates everything; a reply means "answer this and stop" (VERSION or an error). */
export function prepare(req: CniRequest): Prepared | CniReply {
  let version: string = LATEST_VERSION;
  try {
    if (req.env.CNI_COMMAND === 'VERSION') {
      // skel answers VERSION whatever stdin holds.
      return { exit: 0, stdout: `${JSON.stringify(versionResult())}\n`, stderr: '' };
    }
    const raw = parseJson(req.stdin);
    if (typeof raw.cniVersion === 'string') version = raw.cniVersion;
    const inv = parseInvocation(req.env);
    const conf = parseConf(raw, inv.verb);
    const args = parseCniArgs(inv.args);
    return { inv, conf, args };
  } catch (e) {
    if (e instanceof CniError) return errorReply(e, version);
    throw e;
  }
}

/** Runs a prepared invocation against an engine (in this process or in a server). */
export async function runPrepared(p: Prepared, nsnet: Nsnet): Promise<CniReply> {
  const { execute, toCniError } = await import('./plugin.js');
  try {
    const out = execute(nsnet, p.inv, p.conf, p.args);
    return { exit: 0, stdout: out === undefined ? '' : `${out}\n`, stderr: '' };
  } catch (e) {
    const err = toCniError(e);
    return { ...errorReply(err, p.conf.cniVersion), stderr: err.code === CNI_ERR.INTERNAL ? `nsnet: ${err.details}\n` : '' };
  }
}

/** The whole invocation in this process. */
export async function runLocal(req: CniRequest, stateDir: string | undefined): Promise<CniReply> {
  const p = prepare(req);
  if ('exit' in p) return p;
  const { Nsnet } = await import('../engine/engine.js');
  let nsnet: Nsnet;
  try {
    nsnet = new Nsnet({ ...(p.conf.stateDir ?? stateDir ? { stateDir: p.conf.stateDir ?? stateDir } : {}) });
  } catch (e) {
    const { toCniError } = await import('./plugin.js');
    return errorReply(toCniError(e), p.conf.cniVersion);
  }
  try {
    return await runPrepared(p, nsnet);
  } finally {
    nsnet.close();
  }
}
