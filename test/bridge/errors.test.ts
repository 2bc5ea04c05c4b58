/**
 * Bad input, crashes and concurrency. Every bad request must give a clear one-line error
 * and a non-zero exit, and leave kernel and store exactly as they were (checked by
 * snapshotting links, addresses, namespaces, the nft ruleset, nsnet's status and
 * /etc/netns around the call). A process killed between two steps must be repaired.
 */
import '../harness/sandbox.js';
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { CLI, must, nsnet, nsnetOk, ping, run, ipJson, expectRefused } from '../harness/world.js';


describe('bad input leaves kernel and store as they were', () => {
  before(() => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'base', '--subnet', '10.60.0.0/24');
    nsnetOk('network', 'create', 'tiny', '--subnet', '10.61.0.0/30');
    nsnetOk('ns', 'add', 'a');
    nsnetOk('ns', 'add', 'b');
    nsnetOk('connect', 'base', 'a', '--ip', '10.60.0.10');
  });
  after(() => { nsnetOk('reset', '--yes'); });

  test('invalid subnets', () => {
    expectRefused(['network', 'create', 'x', '--subnet', '10.0.0.0/33'], /10\.0\.0\.0\/33/);
    expectRefused(['network', 'create', 'x', '--subnet', '10.0.0.1/24'], /host bits.*10\.0\.0\.0\/24/);
    expectRefused(['network', 'create', 'x', '--subnet', 'banana'], /banana/);
  });
  test('overlapping subnets', () => {
    expectRefused(['network', 'create', 'x', '--subnet', '10.60.0.0/16'], /overlaps 10\.60\.0\.0\/24 of network base/);
    expectRefused(['network', 'create', 'x', '--subnet', '10.70.0.0/16', '--subnet', '10.70.1.0/24'], /overlap/);
  });
  test('gateway outside its subnet', () => {
    expectRefused(['network', 'create', 'x', '--subnet', '10.62.0.0/24', '--gateway', '10.63.0.1'], /gateway 10\.63\.0\.1.*not inside/);
  });
  test('static IP outside the subnet, or taken', () => {
    expectRefused(['connect', 'base', 'b', '--ip', '10.99.0.5'], /10\.99\.0\.5 is outside network base/);
    expectRefused(['connect', 'base', 'b', '--ip', '10.60.0.10'], /10\.60\.0\.10.*already used by a/);
    expectRefused(['connect', 'base', 'b', '--ip', '10.60.0.1'], /10\.60\.0\.1.*gateway/);
  });
  test('duplicate names', () => {
    expectRefused(['network', 'create', 'base'], /network base already exists/);
    expectRefused(['ns', 'add', 'a'], /namespace a already exists/);
  });
  test('names too long or invalid for the kernel', () => {
    expectRefused(['network', 'create', 'x', '--bridge', 'averyveryverylongname'], /invalid interface name "averyveryverylongname".*15/);
    expectRefused(['connect', 'base', 'b', '--ifname', 'eth0:1'], /invalid interface name "eth0:1"/);
    expectRefused(['connect', 'base', 'b', '--ifname', 'a b'], /invalid interface name/);
    expectRefused(['network', 'create', 'x'.repeat(65)], /invalid network name/);
    expectRefused(['ns', 'add', 'bad/name'], /invalid namespace name/);
    expectRefused(['connect', 'base', 'b', '--mac', '01:00:5e:00:00:01'], /not a unicast/);
    expectRefused(['connect', 'base', 'b', '--mac', 'zz:00:5e:00:00:01'], /MAC/);
  });
  test('connecting twice, removing a network in use', () => {
    expectRefused(['connect', 'base', 'a'], /a is already connected to network base/);
    expectRefused(['network', 'rm', 'base'], /network base has 1 endpoint\(s\) \(a\).*--force/);
  });
  test('unknown network or namespace', () => {
    expectRefused(['connect', 'nonet', 'a'], /network nonet not found/);
    expectRefused(['connect', 'base', 'ghost'], /namespace ghost not found/);
    expectRefused(['disconnect', 'base', 'b'], /b is not connected to network base/);
    expectRefused(['network', 'rm', 'nonet'], /network nonet not found/);
    expectRefused(['ns', 'rm', 'ghost'], /namespace ghost not found/);
    expectRefused(['network', 'inspect', 'nonet'], /network nonet not found/);
  });
  test('address pool exhausted', () => {
    nsnetOk('connect', 'tiny', 'b');
    const r = nsnet('ns', 'add', 'c');
    assert.equal(r.status, 0);
    expectRefused(['connect', 'tiny', 'c'], /10\.61\.0\.0\/30/);
    nsnetOk('disconnect', 'tiny', 'b');
    nsnetOk('ns', 'rm', 'c');
  });
  test('malformed topology file: file, line and key', () => {
    fs.writeFileSync('/tmp/bad-topology.yaml', 'networks:\n  front:\n    subnets: [10.80.0.0/24]\n    mtuu: 1500\n');
    expectRefused(['apply', '-f', '/tmp/bad-topology.yaml'], /bad-topology\.yaml:4:\d+: .*mtuu/);
    fs.writeFileSync('/tmp/bad-topology.yaml', 'networks:\n  front:\n    subnets: [10.80.0.0/24\n');
    expectRefused(['apply', '-f', '/tmp/bad-topology.yaml'], /bad-topology\.yaml:\d+/);
    expectRefused(['apply', '-f', '/tmp/does-not-exist.yaml'], /does-not-exist\.yaml/);
  });
  test('usage errors exit 2', () => {
    expectRefused(['reset'], /--yes/, 2);
    expectRefused(['network', 'create', 'x', '--mtu', '20'], /mtu/i, 2);
  });
});

describe('crash recovery (kill -9 between steps)', () => {
  before(() => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'c', '--subnet', '10.64.0.0/24');
    nsnetOk('ns', 'add', 'k1');
  });
  after(() => { nsnetOk('reset', '--yes'); });

  function crashAt(point: string, ...args: string[]): void {
    const r = run(process.execPath, [CLI, ...args], { env: { ...process.env, NSNET_CRASH_AT: point } });
    assert.equal(r.status, null, `process should have been killed at ${point}`);
  }
  const hostVeths = (): string[] => ipJson('link show type veth').map((l: { ifname: string }) => l.ifname).filter((n: string) => n.startsWith('nsv'));

  test('after reserving addresses, before the kernel: repair frees the address', () => {
    crashAt('connect:reserved', 'connect', 'c', 'k1');
    const st = JSON.parse(nsnetOk('status', '--json'));
    assert.equal(st.endpoints[0].state, 'creating');
    const r = JSON.parse(nsnetOk('repair', '--json'));
    assert.deepEqual(r.rolledBack, ['k1@c']);
    assert.equal(JSON.parse(nsnetOk('status', '--json')).endpoints.length, 0, 'no IP marked used without an endpoint');
    assert.deepEqual(hostVeths(), []);
  });

  test('after the veth exists, before it is recorded ready: the next connect repairs and succeeds', () => {
    crashAt('connect:attached', 'connect', 'c', 'k1');
    assert.equal(hostVeths().length, 1, 'the crash left a veth behind');
    nsnetOk('connect', 'c', 'k1');
    assert.equal(hostVeths().length, 1, 'exactly one veth after the repairing connect');
    assert.ok(ping('k1', '10.64.0.1'));
    nsnetOk('disconnect', 'c', 'k1');
  });

  test('during disconnect: repair finishes it', () => {
    nsnetOk('connect', 'c', 'k1');
    crashAt('disconnect:marked', 'disconnect', 'c', 'k1');
    nsnetOk('repair');
    assert.deepEqual(hostVeths(), []);
    assert.equal(JSON.parse(nsnetOk('status', '--json')).endpoints.length, 0);
  });

  test('after recording a network, before its bridge: repair builds it', () => {
    crashAt('network:recorded', 'network', 'create', 'half', '--subnet', '10.65.0.0/24');
    nsnetOk('repair');
    const br = ipJson('link show nsbr-half')[0];
    assert.ok(br.flags.includes('UP'), `bridge is up: ${br.flags}`); // no ports yet: no carrier, operstate DOWN
    const addrs = ipJson('addr show nsbr-half')[0].addr_info.map((a: { local: string }) => a.local);
    assert.ok(addrs.includes('10.65.0.1'), `gateway address on the bridge: ${addrs}`);
    nsnetOk('network', 'rm', 'half');
  });
});

describe('concurrency', () => {
  test('20 parallel connect processes never hand out the same address', async () => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'par', '--subnet', '10.66.0.0/24');
    const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
    for (const n of names) nsnetOk('ns', 'add', n);
    const results = await Promise.all(names.map((n) => new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'connect', 'par', n], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      child.on('exit', (code) => resolve({ code, err }));
    })));
    results.forEach((r, i) => assert.equal(r.code, 0, `connect ${names[i]}: ${r.err}`));
    const eps = JSON.parse(nsnetOk('status', '--json')).endpoints as Array<{ addresses: string[] }>;
    const addrs = eps.map((e) => e.addresses[0]);
    assert.equal(new Set(addrs).size, 20, `distinct addresses: ${addrs.join(' ')}`);
    // And the kernel agrees: every namespace holds exactly its recorded address and reaches the gateway.
    for (const n of ['p0', 'p7', 'p19']) assert.ok(ping(n, '10.66.0.1'));
    must('true');
    nsnetOk('reset', '--yes');
  });
});
