/**
 * Bad input to the cluster commands and the agent: clear one-line errors, exit status 1 (or
 * 2 for usage), and nothing half-configured on the host (links, routes, firewall, nsnet state).
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR, ETCD_URL, World, type Host, ETCD_MISSING, refused, snapshot } from './harness.js';
import { CLI, sleep } from '../harness/world.js';

const ENV = { NSNET_CLUSTER_LEASE_TTL: '6', NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
const DEAD = 'http://10.99.0.99:2379';
let w: World;
let h1: Host, h2: Host;


describe('cluster: bad input', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }], env: ENV });
    [h1, h2] = w.hosts as [Host, Host];
    await w.startEtcd();
  });
  after(async () => { await w?.close(); });

  test('status before init, and an unreachable etcd, name the URL', () => {
    refused(h1, ['cluster', 'status', '--etcd', ETCD_URL], /no cluster config in etcd at http:\/\/10\.99\.0\.2:2379: run `nsnet cluster init` first/);
    const t0 = Date.now();
    refused(h1, ['cluster', 'status', '--etcd', DEAD], /^nsnet: etcd at http:\/\/10\.99\.0\.99:2379 is unreachable: /);
    assert.ok(Date.now() - t0 < 20_000, 'an unreachable etcd fails within the call deadline');
    refused(h1, ['cluster', 'status'], /no etcd endpoint: pass --etcd URL/, 2);
    refused(h1, ['cluster', 'status', '--etcd', 'etcd:2379'], /invalid etcd endpoint "etcd:2379"/, 2);
  });

  test('init refuses overlapping, too small and roomless CIDRs', () => {
    const init = (...a: string[]): string[] => ['cluster', 'init', '--etcd', ETCD_URL, ...a];
    refused(h1, init('--cidr', '10.99.0.0/16'), /cluster CIDR 10\.99\.0\.0\/16 overlaps 10\.99\.0\.11\/24, which this host already uses/);
    refused(h1, init('--cidr', '10.244.0.0/29'), /cluster CIDR 10\.244\.0\.0\/29 is too small: use a prefix between \/8 and \/28/);
    refused(h1, init('--cidr', '10.244.0.0/16', '--subnet-len', '16'), /subnet length \/16 leaves no room in 10\.244\.0\.0\/16/);
    refused(h1, init('--cidr', '10.244.0.0/16', '--subnet-len', '31'), /subnet length \/31 leaves no room/);
    refused(h1, init('--cidr', '10.244.0.1/16'), /invalid cluster CIDR "10\.244\.0\.1\/16": .*host bits set/);
    refused(h1, init('--cidr', 'fd00::/48'), /is IPv6: only IPv4 clusters are supported/);
    const bad = h1.nsnet(...init('--cidr', CIDR, '--backend', 'ipip'));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /argument 'ipip' is invalid\. Allowed choices are auto, vxlan, host-gw/);
    // Nothing was written.
    assert.equal(w.etcdctl('get', '/nsnet/', '--prefix', '--keys-only').stdout.trim(), '');
    h1.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR);
  });

  test('an agent with a missing underlay interface refuses at once and configures nothing', () => {
    const before = snapshot(h1);
    const r = h1.run([process.execPath, ...agentArgs(h1, '--iface', 'eth9')]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim(), 'nsnet: underlay interface eth9 not found on this host (--iface)');
    assert.equal(snapshot(h1), before);
  });

  test('an unreachable etcd: the agent retries with backoff, names the URL, configures nothing, stops cleanly', async () => {
    const before = snapshot(h2);
    // The harness passes --etcd ETCD_URL; a second --etcd overrides it (commander keeps the last).
    const child = h2;
    await child.startAgent(['--etcd', DEAD], { wait: false });
    await child.waitEvent('retry', 15_000, (e) => Number(e.retryInMs) >= 1000);
    const retries = child.events.filter((e) => e.event === 'retry');
    assert.ok(retries.length >= 3, `retries: ${retries.length}`);
    for (const e of retries) assert.match(String(e.error), /^etcd at http:\/\/10\.99\.0\.99:2379 is unreachable: /);
    // Backoff: the waits grow, capped by --max-backoff (1 s here).
    const waits = retries.map((e) => Number(e.retryInMs));
    assert.deepEqual(waits.slice(0, 3), [250, 500, 1000]);
    assert.ok(waits.every((x) => x <= 1000));
    assert.equal(child.agent!.exitCode, null, 'no crash: the agent keeps running');
    assert.equal(snapshot(h2), before, 'nothing configured before etcd answers');
    await child.stopAgent('SIGTERM');
    assert.equal(child.agent!.exitCode, 0);
    assert.ok(child.events.some((e) => e.event === 'stopped'));
  });

  test('a node name held by a live agent is refused; the holder is unaffected', async () => {
    await h1.startAgent();
    const before = snapshot(h2);
    const r = h2.run([process.execPath, ...agentArgs(h2, '--node', 'h1')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr.trim(), /^nsnet: node name h1 is held by a live agent \(node id [0-9a-f-]+, 10\.99\.0\.11, pid \d+\): choose another --node$/);
    assert.equal(snapshot(h2), before);
    const s = JSON.parse(h1.nsnetOk('cluster', 'status', '--etcd', ETCD_URL, '--json')) as { nodes: Array<{ name: string; publicIp: string; alive: boolean }> };
    assert.deepEqual(s.nodes.map((n) => [n.name, n.publicIp, n.alive]), [['h1', '10.99.0.11', true]]);
    assert.equal(h1.agent!.exitCode, null);
  });

  test('node rm: refused for a live agent and an unknown node; retires a dead one, and peers withdraw it', async () => {
    await h2.startAgent();
    await w.converged();
    refused(h1, ['cluster', 'node', 'rm', 'h2', '--etcd', ETCD_URL], /node h2 has a running agent \(heartbeat in etcd\): stop it first, or use --force/);
    refused(h1, ['cluster', 'node', 'rm', 'h9', '--etcd', ETCD_URL], /node h9 not found in the cluster at http:\/\/10\.99\.0\.2:2379/);
    const subnet = h2.subnet();
    await h2.stopAgent('SIGKILL');
    // The heartbeat lease (3 s) runs out long before the subnet lease (6 s)…
    for (let i = 0; i < 100 && w.etcdctl('get', '/nsnet/v1/nodes/h2', '--keys-only').stdout.trim() !== ''; i++) await sleep(100);
    const out = h1.nsnetOk('cluster', 'node', 'rm', 'h2', '--etcd', ETCD_URL);
    assert.equal(out.trim(), `node h2 removed (released ${subnet})`);
    // …and h1 withdraws h2 at once, not when the lease would have expired.
    for (let i = 0; i < 30 && h1.routes().some((r) => r.dst === subnet); i++) await sleep(50);
    assert.ok(!h1.routes().some((r) => r.dst === subnet), 'h1 withdrew h2');
  });
});

function agentArgs(h: Host, ...extra: string[]): string[] {
  return [CLI, 'agent', '--etcd', ETCD_URL, '--node', h.name, '--iface', 'eth0', ...extra];
}
