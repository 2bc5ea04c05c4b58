/**
 * The main demo, inside a private sandbox so the host is never touched: the tutorials'
 * three-tier application (examples/three-tier.yaml) applied with nsnet, an "outside world"
 * namespace (203.0.113.2, a documentation address) behind the sandbox's uplink, and a
 * reachability matrix proven with real pings, the web server reached from outside through its
 * published port. Then `down`, and a check that nothing is left.
 *
 * Then the same job across hosts: three simulated hosts (each a network + mount namespace:
 * h1 and h2 on one L2 segment, h3 behind a router), etcd, one `nsnet agent` per host, a
 * container on each; the cross-host reachability matrix by name (the embedded DNS across
 * hosts) and the path each pair takes (host-gw on the shared segment, VXLAN across the
 * router). Everything is removed again.
 */
import { enterSandbox } from '../src/sandbox/sandbox.js';
enterSandbox();

const path = await import('node:path');
const fs = await import('node:fs');
const { Nsnet, loadTopology, createNetns, deleteNetns, listNetns, spawnSyncInNetns } = await import('../src/index.js');
const { createVeth, deleteLink, listLinks } = await import('../src/kernel/netlink/route/link.js');
const { addAddress } = await import('../src/kernel/netlink/route/addr.js');
const { addRoute } = await import('../src/kernel/netlink/route/route.js');

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const file = path.join(root, 'examples/three-tier.yaml');
const say = (s = ''): void => console.log(s);
const ms = (t: number): string => `${(performance.now() - t).toFixed(1)} ms`;

say('nsnet demo — the three-tier application, inside a private sandbox (unshare --net --mount)\n');

// The outside world: a namespace holding 203.0.113.2, reached through an uplink veth.
const outside = createNetns('outside');
const host = (await import('../src/kernel/netns/netns.js')).Netns.host();
createVeth(host, 'uplink0', { name: 'eth0', ns: outside, up: true }, { up: true });
addAddress(host, 'uplink0', '203.0.113.1/24');
addAddress(outside, 'eth0', '203.0.113.2/24');
addRoute(host, { dst: 'default', gateway: '203.0.113.2' });
say('  outside world: namespace "outside" at 203.0.113.2, host uplink 203.0.113.1\n');

const net = new Nsnet({ stateDir: '/var/lib/nsnet' });
const topology = loadTopology(file);
let t = performance.now();
const plan = net.plan(topology);
say(`$ nsnet plan -f examples/three-tier.yaml\n${plan.descriptions.map((d) => `  ${d}`).join('\n')}\n`);
t = performance.now();
net.apply(topology);
say(`$ nsnet apply -f examples/three-tier.yaml     (${plan.changes.length} changes in ${ms(t)})`);
for (const n of net.listNetworks()) {
  say(`  network ${n.name.padEnd(9)} ${n.bridge.padEnd(14)} ${n.subnets.map((s) => s.cidr).join(', ').padEnd(18)} ${n.internal ? 'internal' : 'nat'}`);
}
for (const e of net.status().endpoints) say(`  ${e.namespace.padEnd(4)} ${e.ifname} on ${e.network.padEnd(9)} ${e.addresses.join(' ')}`);
t = performance.now();
const again = net.apply(topology);
say(`$ nsnet apply -f examples/three-tier.yaml     (${again.changes.length === 0 ? 'no changes' : `${again.changes.length} changes`}, ${ms(t)})\n`);

// Reachability, proven with real pings: from each tier to each other tier and to the outside.
const eps = net.status().endpoints;
const tiers = ['web', 'api', 'db'];
const addressOf = (ns: string): string => eps.find((e) => e.namespace === ns)!.addresses[0]!.split('/')[0]!;
function ping(from: string, ip: string): boolean {
  return spawnSyncInNetns(from, ['ping', '-c', '1', '-W', '1', ip], { stdio: 'ignore' }).status === 0;
}
const cols = [...tiers, 'outside'];
say(`reachability (ping):   ${cols.map((c) => c.padEnd(8)).join('')}`);
for (const from of tiers) {
  const cells = cols.map((to) => (to === from ? '-' : ping(from, to === 'outside' ? '203.0.113.2' : addressOf(to)) ? 'yes' : 'no'));
  say(`  from ${from.padEnd(16)} ${cells.map((c) => c.padEnd(8)).join('')}`);
}

// The published port: a web server in `web`, reached from the outside namespace via the
// host's uplink address, port 80.
const { spawnInNetns } = await import('../src/kernel/netns/exec.js');
const server = spawnInNetns('web', [process.execPath, '-e',
  "require('net').createServer((s) => s.end('hello from web, you are ' + s.remoteAddress + '\\n')).listen(80, () => console.log('up'))"],
  { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((resolve) => server.stdout!.once('data', resolve));
const client = spawnSyncInNetns('outside', [process.execPath, '-e',
  "const s = require('net').connect(80, '203.0.113.1'); s.on('data', (d) => process.stdout.write(d)); s.on('error', (e) => { console.log(e.message); process.exit(1); })"],
  { encoding: 'utf8', timeout: 5000 });
say(`\noutside → 203.0.113.1:80 (published → web:80): ${String(client.stdout).trim() || 'no answer'}`);
if (client.status !== 0) process.exitCode = 1;
server.kill();
// Names: the embedded DNS service answers namespaces that share a network with the name.
for (const [from, name] of [['web', 'www'], ['api', 'api.dns.nsnet'], ['web', 'db']] as const) {
  const r = spawnSyncInNetns(from, ['getent', 'hosts', name], { encoding: 'utf8', timeout: 5000 });
  say(`dns: ${from} looks up ${name.padEnd(14)} → ${r.status === 0 ? String(r.stdout).trim().split(/\s+/)[0] : 'not found (no shared network)'}`);
}
say(`policies: ${net.listPolicies().map((p) => `${p.name} (${p.action})`).join(', ')}\n`);

t = performance.now();
net.down(topology);
say(`$ nsnet down -f examples/three-tier.yaml      (${ms(t)})`);
net.close();
outside.close();
deleteNetns('outside');
deleteLink(host, 'uplink0');
const left = { namespaces: listNetns(), links: listLinks(host).map((l) => l.name).filter((n) => n !== 'lo'), etc: fs.readdirSync('/etc/netns') };
say(`  left behind: namespaces [${left.namespaces.join(' ')}], links [${left.links.join(' ')}], /etc/netns [${left.etc.join(' ')}]`);
if (left.namespaces.length + left.links.length + left.etc.length > 0) process.exitCode = 1;

// ---- across hosts -------------------------------------------------------------------------
const { CIDR, ETCD_URL, World } = await import('../test/cluster/harness.js');
say('\nacross hosts: three simulated hosts (h1, h2 on one segment; h3 behind a router), etcd 3.4, one agent each');
const world = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'b' }] });
try {
  await world.startEtcd();
  say(`$ nsnet cluster init --etcd ${ETCD_URL} --cidr ${CIDR}`);
  world.hosts[0]!.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR);
  t = performance.now();
  await Promise.all(world.hosts.map((h) => h.startAgent()));
  await world.converged();
  say(`$ nsnet agent --etcd ${ETCD_URL} --node hN --iface eth0      (on each host; all routes programmed in ${ms(t)})`);
  for (const h of world.hosts) {
    const ip = h.container(`app-${h.name}`);
    say(`  ${h.name} (${h.ip}): subnet ${h.subnet()}, container app-${h.name} = ${ip}`);
  }
  // Names travel through etcd to every host's DNS service: wait until the last one answers.
  const resolves = (a: typeof world.hosts[0], b: typeof world.hosts[0]): boolean =>
    a.run(['ip', 'netns', 'exec', `app-${a.name}`, 'getent', 'hosts', `app-${b.name}`]).status === 0;
  t = performance.now();
  let named = false;
  for (const end = Date.now() + 20_000; !named && Date.now() < end;) {
    named = world.hosts.every((a) => world.hosts.every((b) => a === b || resolves(a, b)));
    if (!named) await new Promise((r) => setTimeout(r, 100));
  }
  say(named ? `  every container resolves every other one's name (${ms(t)} after the last attach)` : '  names did not reach every host within 20 s');
  if (!named) {
    process.exitCode = 1;
    for (const h of world.hosts) say(`  ${h.name}: ${h.sh('tail -n 4 /var/lib/nsnet/dns/dns.log; ss -lun').stdout.trim().replace(/\n/g, '\n    ')}`);
  }
  say(`\nping by name across hosts (route taken)    ${world.hosts.map((h) => `app-${h.name}`.padEnd(22)).join('')}`);
  for (const a of world.hosts) {
    const routes = a.routes();
    const cells = world.hosts.map((b) => {
      if (a === b) return '-';
      // Up to three echo requests: the first packet towards a new neighbour may wait for ARP.
      const ok = a.run(['ip', 'netns', 'exec', `app-${a.name}`, 'ping', '-c', '1', '-w', '3', `app-${b.name}`]).status === 0;
      const via = routes.find((r) => r.dst === b.subnet())?.dev === 'eth0' ? 'host-gw' : 'VXLAN';
      if (!ok) process.exitCode = 1;
      return `${ok ? 'yes' : 'no'} (${via})`;
    });
    say(`  from app-${a.name.padEnd(33)} ${cells.map((c) => c.padEnd(22)).join('')}`);
  }
  const status = JSON.parse(world.hosts[0]!.nsnetOk('cluster', 'status', '--etcd', ETCD_URL, '--json')) as { nodes: Array<{ name: string; alive: boolean }> };
  say(`$ nsnet cluster status: ${status.nodes.map((n) => `${n.name} ${n.alive ? 'up' : 'DOWN'}`).join(', ')}`);
} finally {
  await world.close();
}
// A namespace's devices go when the kernel has torn the namespace down, a moment after its
// last process exits: wait for that before looking.
const linksNow = (): string[] => listLinks(host).map((l) => l.name).filter((n) => n !== 'lo');
for (const end = Date.now() + 5000; linksNow().length > 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
const leftHosts = { namespaces: listNetns(), links: linksNow() };
say(`  left behind: namespaces [${leftHosts.namespaces.join(' ')}], links [${leftHosts.links.join(' ')}]`);
if (leftHosts.namespaces.length + leftHosts.links.length > 0) process.exitCode = 1;
