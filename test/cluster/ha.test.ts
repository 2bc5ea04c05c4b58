/**
 * A highly available etcd (three members, every agent given all three endpoints): when the
 * member an agent talks to dies, its calls, its watch and its lease keepalives move to
 * another member. Nothing in the data plane changes and no packet is lost; changes made
 * afterwards (a new container, its name) still reach every host; the member's return
 * changes nothing either.
 *
 * Timers are shortened as in faults.test.ts: subnet lease 6 s, heartbeat 3 s, resync 1 s.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR, Pinger, World, type Host, ETCD_MISSING } from './harness.js';
import { sleep } from '../harness/world.js';

const LEASE_TTL = 6;
const ENV = { NSNET_CLUSTER_LEASE_TTL: String(LEASE_TTL), NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
let w: World;
let h1: Host, h2: Host, h3: Host;
let etcd: string[];
const ip: Record<string, string> = {};

describe('cluster: a three-member etcd', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'b' }], env: ENV });
    [h1, h2, h3] = w.hosts as [Host, Host, Host];
    const urls = await w.startEtcdCluster();
    etcd = ['--etcd', urls.join(',')];
    h1.nsnetOk('cluster', 'init', ...etcd, '--cidr', CIDR);
    await Promise.all(w.hosts.map((h) => h.startAgent([], { etcdArgs: etcd })));
    await w.converged();
    for (const h of w.hosts) ip[h.name] = h.container(`c${h.name.slice(1)}`);
  });
  after(async () => { await w?.close(); });

  for (const member of [0, 1]) {
    test(`member ${member} killed: no kernel change, no lost packet, leases kept; changes still reach every host`, async () => {
      const before = w.hosts.map((h) => h.kernelState());
      const marks = w.hosts.map((h) => h.events.length);
      const pings = [new Pinger(h1, 'c1', ip.h3!), new Pinger(h3, 'c3', ip.h2!)];
      await sleep(500);
      await w.stopMember(member, 'SIGKILL');
      try {
        await afterFailure(member, pings, before, marks);
      } finally {
        // Back to three members before the next round, whatever happened in this one.
        w.startMember(member);
        for (let i = 0; i < 100 && w.etcdctl('endpoint', 'health').status !== 0; i++) await sleep(200);
      }
      assert.equal(w.etcdctl('endpoint', 'health').status, 0, 'the member rejoined');
    });
  }
});

/** What must hold once `member` is dead: the checks of one round. */
async function afterFailure(member: number, pings: Pinger[], before: string[], marks: number[]): Promise<void> {
  // Past two subnet-lease TTLs: a keepalive stream left on the dead member would have let
  // the lease expire, and peers would have withdrawn the host.
  await sleep(2 * LEASE_TTL * 1000 + 1000);
  // A change after the failure: a container on h3, found by name from h1.
  const name = `n${member}`;
  const fresh = h3.container(name);
  const resolves = (): boolean => h1.run(['ip', 'netns', 'exec', 'c1', 'getent', 'hosts', name]).stdout.startsWith(`${fresh} `);
  for (let i = 0; i < 100 && !resolves(); i++) await sleep(100);
  assert.ok(resolves(), `h1 resolves ${name}, attached on h3 after member ${member} died`);
  assert.equal(h1.ping('c1', fresh).status, 0);
  for (const p of pings) {
    const r = await p.stop();
    assert.ok(r.sent >= 100, `pinged throughout (${r.sent})`);
    assert.equal(r.received, r.sent, `no packet lost (${r.received}/${r.sent})`);
  }
  assert.deepEqual(w.hosts.map((h) => h.kernelState()), before, 'no route, neighbour or FDB entry changed');
  for (const [i, h] of w.hosts.entries()) {
    const bad = h.events.slice(marks[i]).filter((e) => ['lease-lost', 'own-lease-deleted', 'subnet-changed', 're-leased'].includes(e.event));
    assert.deepEqual(bad, [], `${h.name} kept its leases`);
  }
  const status = JSON.parse(h1.nsnetOk('cluster', 'status', ...etcd, '--json')) as { nodes: Array<{ name: string; alive: boolean }> };
  assert.deepEqual(status.nodes.map((n) => [n.name, n.alive]), [['h1', true], ['h2', true], ['h3', true]]);
}
