/**
 * `nsnet cni …`: installing the CNI plugin executable (src/cni/main.ts) where runtimes look
 * for plugins (CNI_PATH: /opt/cni/bin, Debian's /usr/lib/cni, containerd's bin_dir).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { NsnetError } from '../errors.js';

/** The plugin's entry point, beside this file in dist/. */
const PLUGIN_MAIN = fileURLToPath(new URL('../cni/main.cjs', import.meta.url));

/**
 * The executable: a two-line shell wrapper with absolute paths, because a runtime runs plugins
 * with its own environment (PATH may not find node) and working directory.
 */
export function pluginScript(stateDir: string | undefined): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh
# nsnet CNI plugin, written by \`nsnet cni install\`. CNI type: "nsnet".
# NODE_EXTRA_CA_CERTS is dropped: the plugin makes no TLS connections, and loading a CA bundle
# costs ~40 ms per call.
unset NODE_EXTRA_CA_CERTS
${stateDir ? `NSNET_STATE_DIR=${q(path.resolve(stateDir))}; export NSNET_STATE_DIR\n` : ''}exec ${q(process.execPath)} ${q(PLUGIN_MAIN)} "$@"
`;
}

/** Writes DIR/nsnet atomically (a runtime may be executing the old one: no "text file busy"). */
export function installPlugin(dir: string, stateDir?: string): string {
  const target = path.join(path.resolve(dir), 'nsnet');
  try {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, pluginScript(stateDir), { mode: 0o755 });
    fs.renameSync(tmp, target);
  } catch (e) {
    throw new NsnetError('USAGE', `cannot install the CNI plugin into ${dir}: ${(e as Error).message}`, { object: dir, cause: e });
  }
  return target;
}

export function registerCniCommands(program: Command): void {
  const cni = program.command('cni').description('the nsnet CNI plugin (for podman, containerd, Kubernetes)');
  cni.command('install').description('install the plugin executable "nsnet" into a CNI plugin directory')
    .requiredOption('--dir <dir>', 'the runtime\'s CNI plugin directory (e.g. /opt/cni/bin or /usr/lib/cni)')
    .option('--json', 'print what was installed as JSON')
    .addHelpText('after', `
The plugin uses the state directory in its config ("stateDir"), else the global --state-dir
given here, else $NSNET_STATE_DIR, else /var/lib/nsnet. With \`nsnet serve\` running for that
state directory, each call is handed to it (~70 ms instead of ~170 ms per call).
Examples:
  nsnet cni install --dir /opt/cni/bin
  nsnet cni install --dir /usr/lib/cni`)
    .action((o: { dir: string; json?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ stateDir?: string }>();
      const file = installPlugin(o.dir, g.stateDir);
      if (o.json) process.stdout.write(`${JSON.stringify({ plugin: file, type: 'nsnet', main: PLUGIN_MAIN }, null, 2)}\n`);
      else process.stdout.write(`installed ${file} (CNI type "nsnet")\n`);
    });
}
