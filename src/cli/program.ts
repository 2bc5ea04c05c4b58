/**
 * `nsnet` — the command line: a thin layer over the library API (src/engine). It parses
 * arguments, calls the engine, renders text or `--json`, and maps errors: an NsnetError is
 * the user's problem (one line, exit 1; usage errors exit 2); anything else is a bug in
 * nsnet (stack trace, exit 70).
 *
 * The engine is imported lazily so `--help` and argument errors stay fast. src/cli/nsnet.cts
 * is the entry point: it hands hot commands to a resident `nsnet serve` when one runs
 * (src/cli/server.ts) and loads this module only otherwise.
 */
import { Command, Option, CommanderError } from 'commander';
import { NsnetError } from '../errors.js';
import type { Nsnet } from '../engine/engine.js';
import { renderTable } from './render.js';
import { registerDnsCommands } from './dns.js';
import { registerServeCommand } from './server.js';
import { registerClusterCommands } from './cluster.js';
import { registerCniCommands } from './cni.js';

const EXIT_USER = 1;
const EXIT_USAGE = 2;
const EXIT_BUG = 70; // sysexits.h EX_SOFTWARE

interface GlobalOpts { stateDir?: string; debug?: boolean }

let engine: Nsnet | undefined;
/** An engine the caller keeps open across command lines (`nsnet serve`); never closed here. */
let keptEngine: Nsnet | undefined;
async function nsnet(cmd: Command): Promise<Nsnet> {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  if (g.debug || process.env.NSNET_DEBUG === '1') {
    const { traceToStderr } = await import('../diagnostics.js');
    traceToStderr(['engine:namespace-added', 'engine:namespace-removed', 'engine:network-created', 'engine:network-removed',
      'engine:connected', 'engine:disconnected', 'engine:rolled-back', 'engine:reset', 'firewall:rebuild', 'firewall:drift', 'netlink:dump-interrupted', 'dns:control']);
  }
  if (keptEngine) return keptEngine;
  const { Nsnet } = await import('../engine/engine.js');
  engine = new Nsnet(g.stateDir ? { stateDir: g.stateDir } : {});
  return engine;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
/** What a network sits on, for listings: its bridge, or `macvlan:PARENT/MODE`. */
const device = (n: { driver: string; bridge: string; declared: { parent?: string; mode?: string } }): string =>
  n.driver === 'bridge' ? n.bridge : `${n.driver}:${n.declared.parent}/${n.declared.mode ?? (n.driver === 'macvlan' ? 'bridge' : 'l2')}`;
const print = (s: string): void => { process.stdout.write(`${s}\n`); };
const json = (v: unknown): void => print(JSON.stringify(v, null, 2));

function parseMtu(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw new NsnetError('USAGE', `invalid --mtu "${v}": must be an integer 68–65535`);
  return n;
}

/** A fresh program per run: commander keeps option values between parses. */
export function buildProgram(): Command {
  const program = new Command('nsnet')
    .description('Container networking for Linux: namespaces, bridge networks, IPAM, NAT, isolation.')
    .option('--state-dir <dir>', 'state directory (default: $NSNET_STATE_DIR or /var/lib/nsnet)')
    .option('--debug', 'print internal events to stderr')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText('after', `
  Examples:
    nsnet ns add web
    nsnet network create frontend --subnet 192.168.10.0/24 --subnet fd00:10::/64
    nsnet connect frontend web --ip 192.168.10.10 --alias www
    nsnet ns exec web -- ping -c1 192.168.10.1
    nsnet apply -f examples/three-tier.yaml
    nsnet status --json`);

  // ---- namespaces ---------------------------------------------------------------------------

  const ns = program.command('ns').description('network namespaces ("containers")');
  ns.command('add <name>').description('create a namespace with loopback up (like `ip netns add`)')
    .action(async (name: string, _o, cmd: Command) => {
      (await nsnet(cmd)).addNamespace(name);
      print(`namespace ${name} created`);
    });
  ns.command('rm <name>').alias('del').description('disconnect and delete a namespace')
    .action(async (name: string, _o, cmd: Command) => {
      (await nsnet(cmd)).removeNamespace(name);
      print(`namespace ${name} removed`);
    });
  ns.command('ls').alias('list').description('list namespaces').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const list = (await nsnet(cmd)).listNamespaces();
      if (o.json) return json(list);
      print(renderTable(['NAME', 'MANAGED', 'PRESENT', 'NETWORKS'], list.map((n) => [
        n.name, n.managed ? 'yes' : 'adopted', n.exists ? 'yes' : 'MISSING', n.endpoints.map((e) => `${e.network}(${e.addresses.join(' ')})`).join(', ') || '-',
      ])));
    });
  ns.command('exec <name> <command...>').description('run a command inside a namespace (like `ip netns exec`)')
    .addHelpText('after', '\nExample:\n  nsnet ns exec web -- ping -c1 192.168.10.1')
    .action(async (name: string, argv: string[]) => {
      const { spawnInNetns } = await import('../kernel/netns/exec.js');
      const child = spawnInNetns(name, argv, { stdio: 'inherit' });
      await new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => { process.exitCode = code ?? (signal ? 128 : 1); resolve(); });
        child.on('error', (e) => { process.stderr.write(`nsnet: ${e.message}\n`); process.exitCode = 127; resolve(); });
      });
    });

  // ---- networks -----------------------------------------------------------------------------

  const network = program.command('network').alias('net').description('bridge, macvlan and ipvlan networks');
  network.command('create <name>').description('create a network (a bridge; or macvlan/ipvlan on a host interface)')
    .addOption(new Option('-d, --driver <driver>', 'bridge (default), macvlan or ipvlan').choices(['bridge', 'macvlan', 'ipvlan']))
    .option('--subnet <cidr>', 'subnet (repeatable: IPv4 and/or IPv6); default: a free /24 from the pool (bridge only)', collect)
    .option('--gateway <ip>', 'gateway for a subnet (repeatable); default: its first address', collect)
    .option('--ip-range <cidr>', 'hand out dynamic addresses only from this CIDR (repeatable, one per subnet)', collect)
    .option('--aux-address <name=ip>', 'an address already used on the network, never handed out (repeatable)', collect)
    .option('--ipv6', 'also pick an IPv6 /64 from the pool')
    .option('--bridge <dev>', 'bridge device name (default nsbr-NAME)')
    .option('--parent <if>', 'macvlan/ipvlan: the host interface whose LAN the network joins')
    .option('--mode <mode>', 'macvlan: bridge (default), private, vepa, passthru; ipvlan: l2 (default), l3, l3s')
    .option('--shim <ip>', 'macvlan: give the host this address on the network (shim interface), so host and endpoints can talk (repeatable, one per subnet)', collect)
    .option('--internal', 'no path to the outside world (macvlan/ipvlan: no default route)')
    .option('--no-masquerade', 'do not masquerade traffic leaving the host')
    .option('--mtu <n>', 'MTU of the bridge and veths', parseMtu)
    .option('--no-dns', 'no nsnet DNS on this network (its namespaces get the host\'s resolvers)')
    .option('--dns-server <ip>', 'forward names that are not nsnet\'s to this resolver instead of the host\'s (repeatable; IP or IP#PORT)', collect)
    .option('--json', 'print the created network as JSON')
    .addHelpText('after', `
  macvlan/ipvlan: each endpoint gets its own interface on --parent, with an address of the LAN's
  --subnet (required) and the LAN's router as --gateway. No NAT, no published ports; policies
  cannot cover these endpoints (their traffic does not pass the host). The host cannot reach its
  macvlan endpoints through the parent (a kernel limit) unless the network has a --shim address;
  the DNS service serves a macvlan network only on its shim address. ipvlan needs CONFIG_IPVLAN.
Examples:
  nsnet network create backend
  nsnet network create db --subnet 192.168.30.0/24 --internal
  nsnet network create corp --dns-server 10.0.0.53 --dns-server 10.0.1.53
  nsnet network create lan --driver macvlan --parent eth0 --subnet 192.168.1.0/24 --gateway 192.168.1.1 \\
      --ip-range 192.168.1.192/27 --aux-address printer=192.168.1.200 --shim 192.168.1.223
  nsnet network create lan3 --driver ipvlan --parent eth0 --mode l3 --subnet 10.20.0.0/24`)
    .action(async (name: string, o: {
      driver?: 'bridge' | 'macvlan' | 'ipvlan'; subnet?: string[]; gateway?: string[]; ipRange?: string[]; auxAddress?: string[]; ipv6?: boolean; bridge?: string;
      parent?: string; mode?: string; shim?: string[]; internal?: boolean; masquerade: boolean; mtu?: number; json?: boolean;
      dns: boolean; dnsServer?: string[];
    }, cmd: Command) => {
      let auxAddresses: Record<string, string> | undefined;
      for (const a of o.auxAddress ?? []) {
        const m = /^([^=]+)=(.+)$/.exec(a);
        if (!m) throw new NsnetError('USAGE', `invalid --aux-address "${a}": use NAME=IP`);
        if (auxAddresses?.[m[1]!] !== undefined) throw new NsnetError('USAGE', `--aux-address ${m[1]} is given twice`);
        (auxAddresses ??= {})[m[1]!] = m[2]!;
      }
      const vlan = o.driver === 'macvlan' || o.driver === 'ipvlan';
      const rec = (await nsnet(cmd)).createNetwork({
        name, driver: o.driver, subnets: o.subnet, gateways: o.gateway, ipv6: o.ipv6, bridge: o.bridge, internal: o.internal,
        // --no-masquerade is commander's default-true flag: only an explicit choice is passed on.
        masquerade: vlan && o.masquerade ? undefined : o.masquerade, mtu: o.mtu,
        parent: o.parent, mode: o.mode, ipRanges: o.ipRange, auxAddresses, shim: o.shim,
        // --no-dns, like --no-masquerade: only an explicit choice is recorded.
        ...(o.dns ? {} : { dns: false }), ...(o.dnsServer ? { dnsServers: o.dnsServer } : {}),
      });
      if (o.json) return json(rec);
      const via = vlan ? `${rec.driver} on ${o.parent} (mode ${o.mode ?? (rec.driver === 'macvlan' ? 'bridge' : 'l2')})${o.shim?.length ? `, shim ${rec.bridge} ${o.shim.join(' ')}` : ''}` : `bridge ${rec.bridge}`;
      print(`network ${name} created: ${via}, ${rec.subnets.map((s) => `${s.cidr} via ${s.gateway}`).join(', ')}${rec.internal ? ', internal' : ''}`);
    });
  network.command('rm <name>').alias('del').description('remove a network').option('-f, --force', 'disconnect its endpoints first')
    .action(async (name: string, o: { force?: boolean }, cmd: Command) => {
      (await nsnet(cmd)).removeNetwork(name, { force: o.force });
      print(`network ${name} removed`);
    });
  network.command('ls').alias('list').description('list networks').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const list = (await nsnet(cmd)).listNetworks();
      if (o.json) return json(list);
      print(renderTable(['NAME', 'DEVICE', 'SUBNETS', 'GATEWAYS', 'FLAGS', 'ENDPOINTS'], list.map((n) => [
        n.name, device(n), n.subnets.map((s) => s.cidr).join(','), n.subnets.map((s) => s.gateway).join(','),
        [n.internal ? 'internal' : '', !n.internal && n.masquerade ? 'nat' : '', n.mtu ? `mtu=${n.mtu}` : '', n.declared.dns === false ? 'no-dns' : '', n.declared.dnsServers?.length ? `dns=${n.declared.dnsServers.join('+')}` : ''].filter(Boolean).join(',') || '-',
        String(n.endpoints),
      ])));
    });
  network.command('inspect <name>').description('show a network and its endpoints').option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
      const n = (await nsnet(cmd)).inspectNetwork(name);
      if (o.json) return json(n);
      const where = n.driver === 'bridge' ? `bridge ${n.bridge}${n.bridgeIndex === undefined ? ' (MISSING)' : ''}`
        : `${device(n)}${n.declared.shim?.length ? `  shim ${n.bridge}${n.bridgeIndex === undefined ? ' (MISSING)' : ''} ${n.declared.shim.join(' ')}` : ''}`;
      print(`network ${n.name}  ${where}  ${n.internal ? 'internal' : n.masquerade ? 'nat' : 'routed'}${n.mtu ? `  mtu ${n.mtu}` : ''}`);
      for (const s of n.subnets) print(`  subnet ${s.cidr} gateway ${s.gateway}`);
      print(renderTable(['NAMESPACE', 'IFNAME', 'ADDRESSES', 'MAC', 'HOST VETH', 'ALIASES', 'STATE'], n.endpoints.map((e) => [
        e.namespace, e.ifname, e.addresses.join(' '), e.mac, n.driver === 'bridge' ? e.hostIfname : '-', e.aliases.join(',') || '-', e.state,
      ])));
    });

  // ---- endpoints ----------------------------------------------------------------------------

  program.command('connect <network> <namespace>').description('attach a namespace to a network')
    .option('--ip <ip>', 'static address (repeatable, one per subnet)', collect)
    .option('--ifname <if>', 'interface name inside the namespace (default eth0, eth1, …)')
    .option('--mac <mac>', 'MAC address of the interface')
    .option('--alias <name>', 'extra DNS name (repeatable)', collect)
    .option('-p, --publish <spec>', 'publish a port, [HOSTIP:]HOSTPORT:PORT[/PROTO] (repeatable)', collect)
    .option('--json', 'print the endpoint as JSON')
    .addHelpText('after', '\nExample:\n  nsnet connect frontend web --ip 192.168.10.10 --alias www -p 8080:80')
    .action(async (networkName: string, namespace: string, o: { ip?: string[]; ifname?: string; mac?: string; alias?: string[]; publish?: string[]; json?: boolean }, cmd: Command) => {
      const engine = await nsnet(cmd);
      if (o.publish?.length) engine.publishable(networkName);
      const e = engine.connect({ network: networkName, namespace, ips: o.ip, ifname: o.ifname, mac: o.mac, aliases: o.alias });
      if (o.publish?.length) {
        try {
          engine.publish(namespace, o.publish, { network: networkName });
        } catch (err) {
          engine.disconnect(networkName, namespace);
          throw err;
        }
      }
      if (o.json) return json(e);
      print(`${namespace} connected to ${networkName}: ${e.ifname} ${e.addresses.join(' ')} (${e.mac})${o.publish?.length ? `, published ${o.publish.join(' ')}` : ''}`);
    });
  program.command('disconnect <network> <namespace>').description('detach a namespace from a network')
    .action(async (networkName: string, namespace: string, _o, cmd: Command) => {
      (await nsnet(cmd)).disconnect(networkName, namespace);
      print(`${namespace} disconnected from ${networkName}`);
    });

  // ---- published ports ----------------------------------------------------------------------

  program.command('publish <namespace> <specs...>').description('publish host ports to a namespace (DNAT)')
    .option('--network <name>', 'the endpoint to forward to, when the namespace has several')
    .option('--from <cidr>', 'only these sources may use the ports (repeatable)', collect)
    .addHelpText('after', `
  Spec: [HOSTIP:]HOSTPORT[-END]:PORT[-END][/tcp|udp|sctp]   (default tcp, every host address)
  Reachable from outside via the host's addresses, from the host itself (its addresses and
  127.0.0.1) and from containers via the host's addresses (hairpin). IPv6 works except [::1],
  which the kernel cannot DNAT.
  Examples:
    nsnet publish web 8080:80
    nsnet publish web 127.0.0.1:8443:443 5000-5002:6000-6002/udp
    nsnet publish db 5432:5432 --from 203.0.113.0/24`)
    .action(async (namespace: string, specs: string[], o: { network?: string; from?: string[] }, cmd: Command) => {
      const rows = (await nsnet(cmd)).publish(namespace, specs, { network: o.network, from: o.from });
      print(`published ${[...new Set(rows.map((r) => r.spec))].join(', ')} → ${namespace} (${rows[0]?.network})`);
    });
  program.command('unpublish <namespace> <spec>').description('remove a published port (clears its UDP conntrack entries)')
    .action(async (namespace: string, spec: string, _o, cmd: Command) => {
      const rows = (await nsnet(cmd)).unpublish(namespace, spec);
      print(`unpublished ${rows[0]!.spec} from ${namespace}`);
    });
  program.command('ports [namespace]').description('list published ports').option('--json', 'machine-readable output')
    .action(async (namespace: string | undefined, o: { json?: boolean }, cmd: Command) => {
      const rows = (await nsnet(cmd)).listPorts(namespace);
      if (o.json) return json(rows);
      print(renderTable(['NAMESPACE', 'HOST', 'PROTO', 'TARGET', 'FROM', 'SPEC'], rows.map((r) => [
        r.namespace, `${r.hostIp === null ? '*' : r.hostIp}:${r.hostPort}`, r.proto,
        [r.target4, r.target6 && `[${r.target6}]`].filter(Boolean).map((t) => `${t}:${r.containerPort}`).join(' '),
        r.from.join(',') || '*', r.spec,
      ])));
    });

  // ---- policies -----------------------------------------------------------------------------

  const policy = program.command('policy').description('allow/deny traffic between networks, namespaces, CIDRs and the outside');
  const describeSel = (s: { kind: string; name?: string; cidr?: string }): string => s.kind === 'outside' ? 'outside' : s.kind === 'cidr' ? s.cidr! : `${s.kind === 'network' ? 'network' : 'ns'}:${s.name}`;
  policy.command('add').description('add a policy')
    .option('--name <name>', 'policy name (default p<N>)')
    .option('--allow', 'allow the traffic')
    .option('--deny', 'drop the traffic')
    .requiredOption('--from <selector>', 'network, namespace, CIDR or "outside"')
    .requiredOption('--to <selector>', 'network, namespace, CIDR or "outside"')
    .option('--port <p>', 'PORT[-END][/tcp|udp|sctp] (repeatable; default every port)', collect)
    .option('--priority <n>', 'lower is evaluated first (default 100)')
    .addHelpText('after', `
  Order: established replies first (policies are stateful), then policies by priority and
  creation order, then the defaults: same network allowed, different networks isolated,
  outside → network only through published ports, network → outside allowed unless internal.
  Examples:
    nsnet policy add --allow --from frontend --to backend
    nsnet policy add --allow --from app1 --to database --port 3306/tcp --priority 10
    nsnet policy add --deny --from app1 --to app2 --name no-1-2`)
    .action(async (o: { name?: string; allow?: boolean; deny?: boolean; from: string; to: string; port?: string[]; priority?: string }, cmd: Command) => {
      if (!!o.allow === !!o.deny) throw new NsnetError('USAGE', 'give exactly one of --allow or --deny');
      let priority: number | undefined;
      if (o.priority !== undefined) {
        if (!/^\d+$/.test(o.priority)) throw new NsnetError('USAGE', `invalid --priority "${o.priority}": use an integer`);
        priority = Number(o.priority);
      }
      const p = (await nsnet(cmd)).addPolicy({ name: o.name, action: o.allow ? 'allow' : 'deny', from: o.from, to: o.to, ports: o.port, priority });
      print(`policy ${p.name} added: ${p.action} ${describeSel(p.from)} → ${describeSel(p.to)}${p.ports.length ? ` ports ${(o.port ?? []).join(',')}` : ''} (priority ${p.priority})`);
    });
  policy.command('rm <name>').alias('del').description('remove a policy')
    .action(async (name: string, _o, cmd: Command) => {
      (await nsnet(cmd)).removePolicy(name);
      print(`policy ${name} removed`);
    });
  policy.command('ls').alias('list').description('list policies in evaluation order').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const list = (await nsnet(cmd)).listPolicies();
      if (o.json) return json(list);
      print(renderTable(['PRIORITY', 'NAME', 'ACTION', 'FROM', 'TO', 'PORTS'], list.map((p) => [
        String(p.priority), p.name, p.action, describeSel(p.from), describeSel(p.to),
        p.ports.map((f) => `${f.start === f.end ? f.start : `${f.start}-${f.end}`}/${f.protos.join('+')}`).join(',') || 'all',
      ])));
    });

  program.command('status').description('networks, namespaces and endpoints at a glance').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const s = (await nsnet(cmd)).status();
      if (o.json) return json(s);
      print(`networks (${s.networks.length})`);
      print(renderTable(['NAME', 'DEVICE', 'SUBNETS', 'FLAGS', 'ENDPOINTS'], s.networks.map((n) => [
        n.name, device(n), n.subnets.map((x) => x.cidr).join(','), n.internal ? 'internal' : n.masquerade ? 'nat' : '-', String(n.endpoints),
      ])));
      print(`\nnamespaces (${s.namespaces.length})`);
      print(renderTable(['NAME', 'NETWORK', 'IFNAME', 'ADDRESSES'], s.namespaces.flatMap((n) =>
        n.endpoints.length === 0 ? [[n.name, '-', '-', '-']] : n.endpoints.map((e) => [n.name, e.network, e.ifname, e.addresses.join(' ')]))));
    });

  // ---- declarative --------------------------------------------------------------------------

  const fileOpt = (): Option => new Option('-f, --file <file>', 'topology file (YAML)').makeOptionMandatory();

  program.command('plan').description('show what `apply` would change').addOption(fileOpt()).option('--json', 'machine-readable output')
    .action(async (o: { file: string; json?: boolean }, cmd: Command) => {
      const { loadTopology } = await import('../engine/topology.js');
      const r = (await nsnet(cmd)).plan(loadTopology(o.file));
      if (o.json) return json(r);
      print(r.descriptions.length ? r.descriptions.join('\n') : 'no changes');
    });
  program.command('apply').description('make the host match a topology file').addOption(fileOpt())
    .addHelpText('after', '\nExample:\n  nsnet apply -f examples/three-tier.yaml')
    .action(async (o: { file: string }, cmd: Command) => {
      const { loadTopology } = await import('../engine/topology.js');
      const tty = process.stderr.isTTY;
      const r = (await nsnet(cmd)).apply(loadTopology(o.file), tty ? (c, i, total) => {
        process.stderr.write(`\r[${i + 1}/${total}] ${c.kind}`.padEnd(60));
      } : undefined);
      if (tty && r.changes.length) process.stderr.write('\r'.padEnd(61) + '\r');
      print(r.descriptions.length ? `${r.descriptions.join('\n')}\napplied ${r.changes.length} change(s)` : 'no changes');
    });
  program.command('down').description('remove everything a topology file declares').addOption(fileOpt())
    .action(async (o: { file: string }, cmd: Command) => {
      const { loadTopology } = await import('../engine/topology.js');
      const r = (await nsnet(cmd)).down(loadTopology(o.file));
      print(r.descriptions.length ? `${r.descriptions.join('\n')}\nremoved (${r.changes.length} change(s))` : 'nothing to remove');
    });

  program.command('reset').description('remove everything nsnet created, and nothing else').option('--yes', 'confirm')
    .action(async (o: { yes?: boolean }, cmd: Command) => {
      if (!o.yes) throw new NsnetError('USAGE', 'reset removes every nsnet network, namespace and firewall rule: add --yes to confirm');
      const c = (await nsnet(cmd)).reset();
      print(`reset: removed ${c.endpoints} endpoint(s), ${c.networks} network(s), ${c.namespaces} namespace(s) and nsnet's firewall table`);
    });
  program.command('repair').description('reconcile the kernel with nsnet\'s state after a crash').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const r = (await nsnet(cmd)).repair();
      if (o.json) return json(r);
      print(`repair: rolled back ${r.rolledBack.length} half-made endpoint(s)${r.rolledBack.length ? ` (${r.rolledBack.join(', ')})` : ''}, removed ${r.leaked.length} leaked veth(s), checked ${r.networks.length} network(s)`);
    });

  registerDnsCommands(program);
  registerServeCommand(program);
  registerClusterCommands(program);
  registerCniCommands(program);
  return program;
}

/**
 * Runs one command line; returns the exit status. Output goes to process.stdout/stderr.
 * `o.engine`: use this open engine (for its state dir) instead of opening one per command.
 */
export async function runCli(argv: readonly string[], o: { engine?: Nsnet } = {}): Promise<number> {
  let code = 0;
  engine = undefined;
  keptEngine = o.engine;
  const outerExitCode = process.exitCode;
  process.exitCode = undefined; // `ns exec` reports its child's status here
  try {
    await buildProgram().parseAsync([...argv], { from: 'user' });
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed help or the usage error.
      code = e.exitCode === 0 ? 0 : EXIT_USAGE;
    } else if (e instanceof NsnetError) {
      process.stderr.write(`nsnet: ${e.message}\n`);
      code = e.code === 'USAGE' ? EXIT_USAGE : EXIT_USER;
    } else {
      process.stderr.write(`nsnet: internal error — this is a bug in nsnet, please report it:\n${(e as Error)?.stack ?? String(e)}\n`);
      code = EXIT_BUG;
    }
  } finally {
    (engine as Nsnet | undefined)?.close();
    engine = undefined;
    keptEngine = undefined;
    process.exitCode = outerExitCode;
  }
  return code;
}
