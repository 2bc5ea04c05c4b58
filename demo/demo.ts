/**
 * The main demo, run inside a private sandbox so the host is never touched: two
 * "containers" (network namespaces) joined by a veth pair, addressed in IPv4 and IPv6,
 * a ping across each way, and a clean-up that leaves nothing behind.
 */
import { enterSandbox } from '../src/sandbox/sandbox.js';
enterSandbox();

const { createNetns, deleteNetns, listNetns } = await import('../src/kernel/netns/netns.js');
const { createVeth, listLinks } = await import('../src/kernel/netlink/route/link.js');
const { addAddress } = await import('../src/kernel/netlink/route/addr.js');
const { spawnSyncInNetns } = await import('../src/kernel/netns/exec.js');

const say = (s: string): void => console.log(s);
const step = (what: string, fn: () => void): void => {
  const t = performance.now();
  fn();
  say(`  ✓ ${what}  (${(performance.now() - t).toFixed(2)} ms)`);
};
function ping(from: string, to: string): void {
  const r = spawnSyncInNetns(from, ['ping', '-c', '2', '-i', '0.2', '-W', '1', to], { encoding: 'utf8' });
  const summary = String(r.stdout).split('\n').find((l) => l.includes('packets transmitted')) ?? String(r.stderr).trim();
  say(`  ${r.status === 0 ? '✓' : '✗'} ping ${from} → ${to}: ${summary}`);
  if (r.status !== 0) process.exitCode = 1;
}

say('nsnet demo — inside a private sandbox (unshare --net --mount; tmpfs /run)\n');
const red = createNetns('red');
const blue = createNetns('blue');
say('  ✓ ip netns add red; ip netns add blue (loopback up in each)');
step('veth pair: red/eth0 ↔ blue/eth0 (peer created directly in blue)', () =>
  createVeth(red, 'eth0', { name: 'eth0', ns: blue, up: true }, { up: true }));
step('addresses: red 10.10.0.1/24 fd10::1/64, blue 10.10.0.2/24 fd10::2/64', () => {
  addAddress(red, 'eth0', '10.10.0.1/24');
  addAddress(red, 'eth0', 'fd10::1/64');
  addAddress(blue, 'eth0', '10.10.0.2/24');
  addAddress(blue, 'eth0', 'fd10::2/64');
});
for (const ns of [red, blue]) {
  say(`  ${ns.name}: ${listLinks(ns).map((l) => `${l.name}${l.up ? '(up)' : ''} ${l.mac}`).join(', ')}`);
}
ping('red', '10.10.0.2');
ping('blue', '10.10.0.1');
ping('red', 'fd10::2');
red.close();
blue.close();
step('clean-up: ip netns del red; ip netns del blue (the veth pair goes with them)', () => {
  deleteNetns('red');
  deleteNetns('blue');
});
say(`  namespaces left: ${listNetns().length === 0 ? 'none' : listNetns().join(' ')}`);
