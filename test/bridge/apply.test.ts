/**
 * Declarative topologies: `apply` of the three-tier example, a second `apply` that changes
 * nothing, an edited file that changes only the difference, `plan` without changes, and
 * `down` that leaves nothing behind — checked with traffic and with kernel oracles.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, OUTSIDE_V4, UPLINK_V4, ipJson, kill, makeOutside, must, nsnetOk, ping, removeOutside, tcpProbe, tcpServer } from '../harness/world.js';
import type { ChildProcess } from 'node:child_process';

const EXAMPLE = path.resolve(path.dirname(CLI), '../../../examples/three-tier.yaml');
const FILE = '/run/three-tier.yaml';
let outside: ChildProcess | undefined;

before(async () => {
  nsnetOk('reset', '--yes');
  makeOutside();
  outside = await tcpServer('outside', 8080);
  fs.copyFileSync(EXAMPLE, FILE);
});
after(() => {
  kill(outside);
  nsnetOk('reset', '--yes');
  removeOutside();
});

const status = (): { networks: any[]; namespaces: any[]; endpoints: any[] } => JSON.parse(nsnetOk('status', '--json'));

describe('apply / plan / down', () => {
  test('apply builds the three-tier topology: policies, published port, reachability', async () => {
    const out = nsnetOk('apply', '-f', FILE);
    assert.match(out, /applied \d+ change\(s\)/);
    const st = status();
    assert.deepEqual(st.networks.map((n) => n.name).sort(), ['backend', 'database', 'frontend']);
    assert.deepEqual(st.namespaces.map((n) => n.name).sort(), ['api', 'db', 'web']);
    assert.equal(st.endpoints.length, 3);
    const srv = await Promise.all([tcpServer('web', 80), tcpServer('api', 8000), tcpServer('db', 5432)]);
    try {
      // frontend ↔ backend and backend ↔ database allowed (routed between the bridges).
      assert.equal(tcpProbe('web', '192.168.20.20', 8000), '192.168.10.10', 'web → api');
      assert.equal(tcpProbe('api', '192.168.10.10', 80), '192.168.20.20', 'api → web');
      assert.equal(tcpProbe('api', '192.168.30.30', 5432), '192.168.20.20', 'api → db');
      assert.equal(tcpProbe('db', '192.168.20.20', 8000), '192.168.30.30', 'db → api');
      // frontend → database denied.
      assert.equal(tcpProbe('web', '192.168.30.30', 5432), null, 'web → db denied');
      assert.equal(ping('web', '192.168.30.30'), false);
      // Only the frontend reaches the outside.
      assert.equal(tcpProbe('web', OUTSIDE_V4, 8080), UPLINK_V4, 'web → outside (NAT)');
      assert.equal(tcpProbe('api', OUTSIDE_V4, 8080), null, 'api → outside denied');
      assert.equal(tcpProbe('db', OUTSIDE_V4, 8080), null, 'db → outside denied');
      // The web server is published on host port 80.
      assert.equal(tcpProbe('outside', UPLINK_V4, 80), OUTSIDE_V4, 'outside → host:80 → web');
    } finally {
      srv.forEach(kill);
    }
  });

  test('a second apply changes nothing and says so', () => {
    const before = JSON.stringify(ipJson('link'));
    assert.equal(nsnetOk('plan', '-f', FILE).trim(), 'no changes');
    assert.equal(nsnetOk('apply', '-f', FILE).trim(), 'no changes');
    assert.equal(JSON.stringify(ipJson('link')), before, 'no link touched');
  });

  test('an edited file changes only the difference', async () => {
    const webVeth = status().endpoints.find((e) => e.namespace === 'web').hostIfname;
    const webIndex = ipJson(`link show ${webVeth}`)[0].ifindex;
    const edited = fs.readFileSync(FILE, 'utf8')
      .replace('database: { ip: 192.168.30.30, aliases: [db] }', 'database: { ip: 192.168.30.31, aliases: [db] }')
      + '  cache:\n    networks: [backend]\n';
    fs.writeFileSync(FILE, edited);
    const plan = JSON.parse(nsnetOk('plan', '-f', FILE, '--json')) as { changes: Array<{ kind: string }> };
    const kinds = plan.changes.map((c) => c.kind).sort();
    assert.deepEqual(kinds, ['connect', 'connect', 'create-namespace', 'disconnect'], `plan: ${nsnetOk('plan', '-f', FILE)}`);
    nsnetOk('apply', '-f', FILE);
    assert.equal(ipJson(`link show ${webVeth}`)[0].ifindex, webIndex, 'web untouched');
    assert.ok(ping('api', '192.168.30.31'), 'db at its new address');
    assert.equal(ping('api', '192.168.30.30'), false, 'old address gone');
    const cache = status().endpoints.find((e) => e.namespace === 'cache');
    assert.ok(cache, 'cache created');
    assert.ok(ping('cache', '192.168.20.20'));
    // Removing a namespace from the file removes it from the host.
    fs.writeFileSync(FILE, fs.readFileSync(FILE, 'utf8').replace('  cache:\n    networks: [backend]\n', ''));
    nsnetOk('apply', '-f', FILE);
    assert.equal(must('ip netns list').includes('cache'), false);
    assert.equal(nsnetOk('apply', '-f', FILE).trim(), 'no changes');
  });

  test('down removes everything the file made: links, addresses, namespaces, nft objects, state', () => {
    nsnetOk('down', '-f', FILE);
    const st = status();
    assert.deepEqual([st.networks.length, st.namespaces.length, st.endpoints.length], [0, 0, 0]);
    assert.equal(must('ip netns list').split('\n').filter((l) => l && !l.startsWith('outside')).length, 0);
    assert.deepEqual(ipJson('link show type bridge'), []);
    assert.deepEqual(ipJson('link show type veth').map((l: any) => l.ifname), ['uplink0']);
    const set = JSON.parse(must('nft -j list set inet nsnet bridges')).nftables.find((x: any) => x.set).set;
    assert.equal(set.elem, undefined, 'no bridge left in nsnet\'s sets');
    assert.deepEqual(fs.readdirSync('/etc/netns'), []);
  });
});
