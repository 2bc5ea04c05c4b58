/**
 * The CNI plugin's full path (main.cts hands over to it when no resident server took the call):
 * the protocol code (src/cni/{spec,config,run}.ts) validates; VERSION and bad input are answered
 * without the engine; everything else goes to a resident `nsnet serve` for the state directory
 * when one runs in this network namespace, else runs here (loading the engine: ~100 ms more).
 */
import fs from 'node:fs';
import { prepare, runLocal, cniEnv, type CniReply, type CniRequest } from './run.js';
import { CNI_ERR, CniError, LATEST_VERSION, SUPPORTED_VERSIONS } from './spec.js';
import { DEFAULT_STATE_DIR, ask, buildId } from '../cli/client.cjs';

/** The config on stdin; an I/O failure is the spec's code 5 (EOF on a closed stdin is just empty). */
function readStdin(): string | CniReply {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch (e) {
    const err = new CniError(CNI_ERR.IO_FAILURE, 'error reading the network configuration from stdin', (e as Error).message);
    return { exit: 1, stdout: `${JSON.stringify(err.toJSON(LATEST_VERSION))}\n`, stderr: '' };
  }
}

/** One plugin invocation; `stdin` when the caller has read it already. Returns the exit status. */
export async function pluginMain(stdin?: string, serverTried = false): Promise<number> {
  if (!process.env.CNI_COMMAND) {
    // skel.go: with no CNI_COMMAND, print what this is and exit 0.
    process.stderr.write(`CNI nsnet plugin: one bridge network per CNI network, IPAM, NAT, ports, DNS\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    return 0;
  }
  const input = stdin ?? (process.env.CNI_COMMAND === 'VERSION' ? '' : readStdin());
  if (typeof input !== 'string') return write(input);
  const req: CniRequest = { env: cniEnv(process.env), stdin: input };
  const p = prepare(req);
  let reply: CniReply | undefined;
  if ('exit' in p) {
    reply = p;
  } else {
    const stateDir = p.conf.stateDir ?? process.env.NSNET_STATE_DIR ?? DEFAULT_STATE_DIR;
    if (process.env.NSNET_NO_SERVER !== '1' && !serverTried) {
      const r = await ask(stateDir, { cni: req, build: buildId() });
      if (r && r.code !== -1) reply = { exit: r.code, stdout: r.stdout, stderr: r.stderr };
    }
    reply ??= await runLocal(req, stateDir);
  }
  return write(reply);
}

function write(reply: CniReply): number {
  if (reply.stdout) process.stdout.write(reply.stdout);
  if (reply.stderr) process.stderr.write(reply.stderr);
  return reply.exit;
}

