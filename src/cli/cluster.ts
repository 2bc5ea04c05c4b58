/**
 * `nsnet cluster …` and `nsnet agent`: containers across hosts (src/cluster).
 *
 *   nsnet cluster init --etcd URL --cidr 10.244.0.0/16 [--subnet-len 24] [--cidr6 fd00:244::/48 [--subnet-len6 64]]
 *                      [--backend auto|vxlan|host-gw] [--vni N] [--port N] [--mtu N]
 *   nsnet cluster status --etcd URL [--json]
 *   nsnet cluster node rm NAME --etcd URL [--force]
 *   nsnet agent --etcd URL [--node NAME] [--iface IF]      long-running, one per host
 *
 * Each takes `--etcd-ca FILE`, `--etcd-cert FILE --etcd-key FILE` for https:// endpoints,
 * and `--etcd-user NAME --etcd-password-file FILE` for an etcd with authentication enabled.
 * `--etcd` may be replaced by NSNET_ETCD, the TLS files by NSNET_ETCD_CA, NSNET_ETCD_CERT,
 * NSNET_ETCD_KEY, the user by NSNET_ETCD_USER and the password by NSNET_ETCD_PASSWORD_FILE
 * or NSNET_ETCD_PASSWORD. The agent's timers take flags or environment variables, so tests can run
 * with seconds where production uses minutes.
 */
import os from 'node:os';
import { type Command, Option } from 'commander';
import { NsnetError } from '../errors.js';
import { resolveStateDir } from '../store/store.js';
import { renderTable } from './render.js';

const print = (s: string): void => { process.stdout.write(`${s}\n`); };

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new NsnetError('USAGE', `invalid ${name} "${v}": must be an integer ${min}–${max}`);
    return n;
  };
}

/** Seconds, possibly fractional ("0.5"), from a flag or an environment variable. */
function seconds(name: string, flag: string | undefined, env: string, dflt: number, min: number): number {
  const text = flag ?? process.env[env];
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n < min) throw new NsnetError('USAGE', `invalid ${name} "${text}" (${flag !== undefined ? 'flag' : env}): seconds, at least ${min}`);
  return n;
}

/** `--etcd` and the TLS files, on every command that talks to etcd (etcd.ts etcdTarget). */
function etcdOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--etcd <urls>', 'etcd endpoint(s), comma-separated, all http:// or all https:// (default: $NSNET_ETCD)'))
    .addOption(new Option('--etcd-ca <file>', 'https: CA certificate(s) (PEM) the server must chain to (default: $NSNET_ETCD_CA, else the system roots)'))
    .addOption(new Option('--etcd-cert <file>', 'https: client certificate (PEM), with --etcd-key (default: $NSNET_ETCD_CERT)'))
    .addOption(new Option('--etcd-key <file>', 'https: the client certificate\'s unencrypted private key (PEM) (default: $NSNET_ETCD_KEY)'))
    .addOption(new Option('--etcd-user <name>', 'etcd user, for an etcd with authentication enabled (default: $NSNET_ETCD_USER)'))
    .addOption(new Option('--etcd-password-file <file>', 'file holding that user\'s password (default: $NSNET_ETCD_PASSWORD_FILE, else the password in $NSNET_ETCD_PASSWORD)'));
}

interface EtcdFlags { etcd?: string; etcdCa?: string; etcdCert?: string; etcdKey?: string; etcdUser?: string; etcdPasswordFile?: string }

/** What etcdTarget takes, from the flags (etcd.ts). */
function targetOptions(o: EtcdFlags): Parameters<typeof import('../cluster/etcd.js').etcdTarget>[0] {
  return { etcd: o.etcd, ca: o.etcdCa, cert: o.etcdCert, key: o.etcdKey, user: o.etcdUser, passwordFile: o.etcdPasswordFile };
}

/** Endpoints, TLS files and credentials from flags or the environment, checked before anything else runs. */
async function target(o: EtcdFlags): Promise<import('../cluster/etcd.js').EtcdTarget> {
  const { etcdTarget } = await import('../cluster/etcd.js');
  return etcdTarget(targetOptions(o));
}

const TLS_HELP = `
TLS: https:// endpoints are verified against --etcd-ca, or without it against the system
roots ($SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt or the distribution's
bundle); an etcd run with --client-cert-auth also needs --etcd-cert and --etcd-key.
Users: an etcd with authentication enabled needs --etcd-user and the password in
--etcd-password-file (or $NSNET_ETCD_PASSWORD; never on the command line), for a user
whose role may read and write the prefix /nsnet/.`;

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('containers across hosts: subnets per host, routes and VXLAN, state in etcd')
    .addHelpText('after', `
Every host runs \`nsnet agent\`; it leases a subnet of the cluster CIDR and creates the local
network "cluster", so \`nsnet connect cluster c1\` works as on one host. Hosts on the same L2
segment reach each other with plain routes (host-gw); others through a VXLAN overlay.

${TLS_HELP}

Examples:
  nsnet cluster init --etcd http://10.0.0.2:2379 --cidr 10.244.0.0/16
  nsnet agent --etcd http://10.0.0.2:2379 --node h1 --iface eth0 &
  nsnet cluster status --etcd http://10.0.0.2:2379 --json
  nsnet cluster node rm h3 --etcd http://10.0.0.2:2379
  export NSNET_ETCD=https://10.0.0.2:2379 NSNET_ETCD_CA=/etc/nsnet/etcd-ca.pem \\
         NSNET_ETCD_CERT=/etc/nsnet/etcd-client.pem NSNET_ETCD_KEY=/etc/nsnet/etcd-client-key.pem
  nsnet cluster status`);

  etcdOptions(cluster.command('init').description('write the cluster config to etcd (once; the same config again is a no-op)'))
    .requiredOption('--cidr <cidr>', 'cluster CIDR (IPv4), split into one subnet per host')
    .option('--subnet-len <n>', 'prefix length of each host\'s subnet (default 24, or CIDR length + 2)', intArg('--subnet-len', 1, 32))
    .option('--cidr6 <cidr>', 'dual stack: the cluster\'s IPv6 prefix (ULA or global), one IPv6 subnet per host beside its IPv4 one')
    .option('--subnet-len6 <n>', 'prefix length of each host\'s IPv6 subnet (default 64)', intArg('--subnet-len6', 1, 128))
    .addOption(new Option('--backend <type>', 'how hosts reach each other').choices(['auto', 'vxlan', 'host-gw']).default('auto'))
    .option('--vni <n>', 'VXLAN network identifier (default 1)', intArg('--vni', 1, 0xffffff))
    .option('--port <n>', 'VXLAN UDP port (default 8472)', intArg('--port', 1, 65535))
    .option('--mtu <n>', 'tunnel MTU (default: smallest underlay MTU - 50)', intArg('--mtu', 576, 65535))
    .option('--json', 'print the config as JSON')
    .addHelpText('after', `${TLS_HELP}

Example:
  nsnet cluster init --etcd https://10.0.0.2:2379 --etcd-ca ca.pem --etcd-cert client.pem --etcd-key client-key.pem \\
      --cidr 10.244.0.0/16`)
    .action(async (o: EtcdFlags & { cidr: string; subnetLen?: number; cidr6?: string; subnetLen6?: number; backend: string; vni?: number; port?: number; mtu?: number; json?: boolean }) => {
      const etcd = await target(o);
      const { initCluster } = await import('../cluster/admin.js');
      const r = await initCluster(etcd, { cidr: o.cidr, subnetLen: o.subnetLen, cidr6: o.cidr6, subnetLen6: o.subnetLen6, backend: o.backend, vni: o.vni, port: o.port, mtu: o.mtu });
      if (o.json) return print(JSON.stringify({ ...r.config, created: r.created }, null, 2));
      const v6 = r.config.network6 ? ` + ${r.config.network6}, /${r.config.subnetLen6} per host` : '';
      print(`cluster ${r.created ? 'initialised' : 'already initialised'}: ${r.config.network}, /${r.config.subnetLen} per host${v6}, backend ${r.config.backend}, VNI ${r.config.vni}, port ${r.config.port}`);
    });

  etcdOptions(cluster.command('status').description('nodes, subnets, backend per peer, health'))
    .option('--json', 'machine-readable output')
    .addHelpText('after', `${TLS_HELP}

Example:
  nsnet cluster status --etcd https://10.0.0.2:2379 --etcd-ca ca.pem --etcd-cert client.pem --etcd-key client-key.pem`)
    .action(async (o: EtcdFlags & { json?: boolean }) => {
      const etcd = await target(o);
      const { clusterStatus } = await import('../cluster/admin.js');
      const s = await clusterStatus(etcd);
      if (o.json) return print(JSON.stringify(s, null, 2));
      const v6 = s.config.network6 ? ` + ${s.config.network6} (/${s.config.subnetLen6})` : '';
      print(`cluster ${s.config.network} (/${s.config.subnetLen} per host${v6}, backend ${s.config.backend}, VNI ${s.config.vni}, port ${s.config.port}) at ${s.etcd.join(',')}, revision ${s.revision}`);
      // The IPv6 column only in a dual-stack cluster; a peer whose IPv6 path differs from its
      // IPv4 one shows both (`h2:host-gw/vxlan`).
      const dual = s.config.network6 !== undefined;
      print(renderTable(['NODE', 'SUBNET', ...(dual ? ['SUBNET6'] : []), 'ADDRESS', 'AGENT', 'LEASE', 'PEERS', 'PROBLEMS'], s.nodes.map((n) => [
        n.name, n.subnet ?? '-', ...(dual ? [n.subnet6 ?? '-'] : []), n.publicIp ?? '-', n.alive ? 'up' : 'DOWN', n.leaseTtl === null ? '-' : `${n.leaseTtl}s`,
        Object.entries(n.peers).map(([p, v]) => `${p}:${v.backend}${v.backend6 && v.backend6 !== v.backend ? `/${v.backend6}` : ''}`).join(' ') || '-', n.errors.join('; ') || '-',
      ])));
    });

  const node = cluster.command('node').description('cluster nodes');
  etcdOptions(node.command('rm <name>').alias('del').description('retire a dead host\'s subnet lease now (peers withdraw its routes)'))
    .option('-f, --force', 'even if its agent still runs')
    .addHelpText('after', `${TLS_HELP}

Example:
  nsnet cluster node rm h3 --etcd https://10.0.0.2:2379 --etcd-ca ca.pem --etcd-cert client.pem --etcd-key client-key.pem`)
    .action(async (name: string, o: EtcdFlags & { force?: boolean }) => {
      const etcd = await target(o);
      const { removeNode } = await import('../cluster/admin.js');
      const r = await removeNode(etcd, name, { force: o.force });
      print(`node ${name} removed${r.subnets.length ? ` (released ${r.subnets.join(', ')})` : ''}`);
    });

  etcdOptions(program.command('agent').description('the multi-host agent (long-running, one per host)'))
    .option('--node <name>', 'this host\'s node name (default: the hostname)')
    .option('--iface <dev>', 'underlay interface (default: the one of the default route)')
    .option('--lease-ttl <s>', 'subnet lease TTL, seconds (env NSNET_CLUSTER_LEASE_TTL; default 3600)')
    .option('--heartbeat-ttl <s>', 'agent heartbeat TTL, seconds (env NSNET_CLUSTER_HEARTBEAT_TTL; default 15)')
    .option('--resync <s>', 'kernel resync period, seconds (env NSNET_CLUSTER_RESYNC; default 30)')
    .option('--relist <s>', 'full etcd re-list period, seconds (env NSNET_CLUSTER_RELIST; default 600)')
    .option('--max-backoff <s>', 'longest wait between etcd retries, seconds (env NSNET_CLUSTER_MAX_BACKOFF; default 10)')
    .addHelpText('after', `
Logs one JSON object per line on stdout. Stops on SIGTERM/SIGINT, leaving routes and the
subnet lease in place: restarted within the lease it takes both back without a lost packet.
An unreachable etcd or a refused TLS handshake is retried with backoff, never an exit.
${TLS_HELP}
After a failed TLS handshake the agent reads the TLS files again and reconnects with them
if they changed (a rotated certificate, a new CA): no restart needed.

Examples:
  nsnet agent --etcd http://10.0.0.2:2379 --node h1 --iface eth0
  nsnet agent --etcd https://10.0.0.2:2379 --etcd-ca /etc/nsnet/etcd-ca.pem \\
      --etcd-cert /etc/nsnet/etcd-client.pem --etcd-key /etc/nsnet/etcd-client-key.pem --node h1`)
    .action(async (o: EtcdFlags & { node?: string; iface?: string; leaseTtl?: string; heartbeatTtl?: string; resync?: string; relist?: string; maxBackoff?: string }, cmd: Command) => {
      const { etcdTarget } = await import('../cluster/etcd.js');
      // Read again by the agent after a failed TLS handshake or a refused user (rotated
      // certificates, a changed password).
      const readTarget = () => etcdTarget(targetOptions(o));
      const etcd = readTarget();
      const { validateNodeName } = await import('../cluster/keys.js');
      const { Agent } = await import('../cluster/agent.js');
      const nodeName = o.node ?? os.hostname();
      validateNodeName(nodeName);
      const log = (event: string, fields: Record<string, unknown> = {}): void => {
        print(JSON.stringify({ ts: new Date().toISOString(), node: nodeName, event, ...fields }));
      };
      const agent = new Agent({
        etcd,
        reloadEtcd: readTarget,
        node: nodeName,
        iface: o.iface,
        stateDir: resolveStateDir(cmd.optsWithGlobals<{ stateDir?: string }>().stateDir),
        leaseTtl: Math.ceil(seconds('--lease-ttl', o.leaseTtl, 'NSNET_CLUSTER_LEASE_TTL', 3600, 2)),
        heartbeatTtl: Math.ceil(seconds('--heartbeat-ttl', o.heartbeatTtl, 'NSNET_CLUSTER_HEARTBEAT_TTL', 15, 2)),
        resyncMs: seconds('--resync', o.resync, 'NSNET_CLUSTER_RESYNC', 30, 0.1) * 1000,
        relistMs: seconds('--relist', o.relist, 'NSNET_CLUSTER_RELIST', 600, 1) * 1000,
        maxBackoffMs: seconds('--max-backoff', o.maxBackoff, 'NSNET_CLUSTER_MAX_BACKOFF', 10, 0.1) * 1000,
        log,
      });
      let onSignal: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => { onSignal = resolve; });
      process.once('SIGTERM', () => onSignal());
      process.once('SIGINT', () => onSignal());
      // A signal during start-up (etcd still unreachable, say) stops the agent cleanly.
      const starting = agent.start();
      let first: 'started' | 'stopped';
      try {
        first = await Promise.race([starting.then(() => 'started' as const), stopped.then(() => 'stopped' as const)]);
      } catch (e) {
        await agent.stop();
        throw e;
      }
      if (first === 'stopped') {
        starting.catch(() => undefined);
        await agent.stop();
        log('stopped');
        return;
      }
      log('running');
      await stopped;
      await agent.stop();
      log('stopped');
    });
}
