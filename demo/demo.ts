/**
 * The main demo, inside a private sandbox so the host is never touched: the tutorials'
 * three-tier application (examples/three-tier.yaml) applied with nsnet, an "outside world"
 * namespace (203.0.113.2, a documentation address) behind the sandbox's uplink, and a
 * reachability matrix proven with real pings, the web server reached from outside through its
 * published port. Then `down`, and a check that nothing is left.
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
