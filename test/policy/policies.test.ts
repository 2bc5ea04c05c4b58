/**
 * Policies and anti-spoofing, with real traffic in the sandbox: the tutorials' security
 * zones and secure database network, statefulness (a deny one way does not break the other
 * way), priorities, selectors (network, namespace, CIDR, outside), forged source addresses,
 * bad input, and reversibility.
 */
import '../harness/sandbox.js';
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import {
  OUTSIDE_V4, UPLINK_V4, inNs, kill, makeOutside, must, nsnet, nsnetOk, ping, removeOutside, tcpProbe, tcpServer,
  expectRefused,
} from '../harness/world.js';

const servers: ChildProcess[] = [];
before(async () => {
  makeOutside();
  servers.push(await tcpServer('outside', 8080));
});
after(() => {
  servers.forEach(kill);
  nsnet('reset', '--yes');
  removeOutside();
});

function addr(ns: string, network: string): string {
  const e = (JSON.parse(nsnetOk('status', '--json')).endpoints as Array<{ namespace: string; network: string; addresses: string[] }>)
    .find((x) => x.namespace === ns && x.network === network);
  assert.ok(e, `${ns}@${network}`);
  return e.addresses[0]!.split('/')[0]!;
}


describe('security zones: app1, app2, app3 on one bridge', () => {
  before(async () => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'zone', '--subnet', '10.80.0.0/24');
    for (const n of ['app1', 'app2', 'app3']) {
      nsnetOk('ns', 'add', n);
      nsnetOk('connect', 'zone', n);
      servers.push(await tcpServer(n, 7000));
    }
  });

  test('all talk before any policy', () => {
    assert.ok(ping('app1', addr('app2', 'zone')));
    assert.ok(ping('app2', addr('app1', 'zone')));
  });
  test('app1 ↔ app2 denied both ways; app1 → app3 still works', () => {
    nsnetOk('policy', 'add', '--deny', '--from', 'app1', '--to', 'app2', '--name', 'no-1-2');
    nsnetOk('policy', 'add', '--deny', '--from', 'app2', '--to', 'app1', '--name', 'no-2-1');
    assert.equal(ping('app1', addr('app2', 'zone')), false);
    assert.equal(tcpProbe('app1', addr('app2', 'zone'), 7000), null);
    assert.equal(ping('app2', addr('app1', 'zone')), false);
    assert.equal(tcpProbe('app2', addr('app1', 'zone'), 7000), null);
    assert.ok(ping('app1', addr('app3', 'zone')));
    assert.equal(tcpProbe('app1', addr('app3', 'zone'), 7000), addr('app1', 'zone'));
    assert.ok(ping('app3', addr('app2', 'zone')));
  });
  test('stateful: a deny one way does not break the other way', () => {
    nsnetOk('policy', 'rm', 'no-2-1');
    assert.equal(tcpProbe('app1', addr('app2', 'zone'), 7000), null, 'app1 → app2 still denied');
    assert.equal(tcpProbe('app2', addr('app1', 'zone'), 7000), addr('app2', 'zone'), 'app2 → app1 works, replies pass');
  });
  test('priority: a lower number wins', () => {
    nsnetOk('policy', 'add', '--allow', '--from', 'app1', '--to', 'app2', '--port', '7000/tcp', '--priority', '10', '--name', 'web-ok');
    assert.equal(tcpProbe('app1', addr('app2', 'zone'), 7000), addr('app1', 'zone'), 'allowed on 7000/tcp');
    assert.equal(ping('app1', addr('app2', 'zone')), false, 'ICMP still denied');
    const ls = JSON.parse(nsnetOk('policy', 'ls', '--json')) as Array<{ name: string }>;
    assert.deepEqual(ls.map((p) => p.name), ['web-ok', 'no-1-2']);
    assert.match(nsnetOk('policy', 'ls'), /10\s+web-ok\s+allow\s+ns:app1\s+ns:app2\s+7000\/tcp/);
  });
  test('removing the policies restores the defaults and leaves no trace', () => {
    nsnetOk('policy', 'rm', 'web-ok');
    nsnetOk('policy', 'rm', 'no-1-2');
    assert.ok(ping('app1', addr('app2', 'zone')));
    const t = JSON.parse(must('nft -j list table inet nsnet')).nftables;
    assert.equal(t.filter((x: any) => x.set && /^p\d+_/.test(x.set.name)).length, 0, 'no policy sets left');
    // The policies chain is two fixed vmap lookups; the compiled policies are the maps' elements.
    assert.equal(t.filter((x: any) => x.rule && x.rule.chain === 'policies').length, 2, 'policies chain holds only the two lookups');
    for (const m of ['pol4', 'pol6']) assert.deepEqual(t.find((x: any) => x.map?.name === m).map.elem ?? [], [], `${m} empty`);
  });
});

describe('secure database network', () => {
  before(async () => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'apps', '--subnet', '10.81.0.0/24');
    nsnetOk('network', 'create', 'database', '--subnet', '10.82.0.0/24', '--internal');
    for (const n of ['app1', 'app2', 'db']) nsnetOk('ns', 'add', n);
    nsnetOk('connect', 'apps', 'app1');
    nsnetOk('connect', 'apps', 'app2');
    nsnetOk('connect', 'database', 'db');
    nsnetOk('connect', 'database', 'app1');
    nsnetOk('connect', 'database', 'app2');
    servers.push(await tcpServer('db', 3306), await tcpServer('db', 22));
    nsnetOk('policy', 'add', '--allow', '--from', 'app1', '--to', 'db', '--port', '3306/tcp', '--priority', '10', '--name', 'app1-db');
    nsnetOk('policy', 'add', '--deny', '--from', 'database', '--to', 'db', '--priority', '20', '--name', 'db-closed');
  });

  test('only app1 reaches the database, only on TCP 3306', () => {
    const db = addr('db', 'database');
    assert.equal(tcpProbe('app1', db, 3306), addr('app1', 'database'));
    assert.equal(tcpProbe('app1', db, 22), null, 'other ports dropped');
    assert.equal(ping('app1', db), false, 'ICMP dropped');
    assert.equal(tcpProbe('app2', db, 3306), null, 'app2 dropped');
  });
  test('the database has no path to the outside', () => {
    assert.equal(ping('db', OUTSIDE_V4), false);
    must(`ip -n db route add default via 10.82.0.1`);
    assert.equal(tcpProbe('db', OUTSIDE_V4, 8080), null);
  });
});

describe('selectors: networks, CIDRs and outside', () => {
  beforeEach(() => { nsnetOk('reset', '--yes'); });
  test('allow between two networks opens routing between them, both ways only if asked', async () => {
    nsnetOk('network', 'create', 'front', '--subnet', '10.83.1.0/24');
    nsnetOk('network', 'create', 'back', '--subnet', '10.83.2.0/24');
    nsnetOk('ns', 'add', 'f1');
    nsnetOk('ns', 'add', 'b1');
    nsnetOk('connect', 'front', 'f1');
    nsnetOk('connect', 'back', 'b1');
    const srvB = await tcpServer('b1', 7100);
    const srvF = await tcpServer('f1', 7100);
    servers.push(srvB, srvF);
    assert.equal(tcpProbe('f1', addr('b1', 'back'), 7100), null, 'isolated by default');
    nsnetOk('policy', 'add', '--allow', '--from', 'front', '--to', 'back');
    assert.equal(tcpProbe('f1', addr('b1', 'back'), 7100), addr('f1', 'front'), 'front → back allowed');
    assert.equal(tcpProbe('b1', addr('f1', 'front'), 7100), null, 'back → front still isolated');
  });
  test('deny to outside, and a CIDR selector', () => {
    nsnetOk('network', 'create', 'n', '--subnet', '10.84.0.0/24');
    nsnetOk('ns', 'add', 'x');
    nsnetOk('connect', 'n', 'x');
    assert.equal(tcpProbe('x', OUTSIDE_V4, 8080), UPLINK_V4);
    nsnetOk('policy', 'add', '--deny', '--from', 'n', '--to', '203.0.113.0/24', '--name', 'no-doc');
    assert.equal(tcpProbe('x', OUTSIDE_V4, 8080), null, 'CIDR deny');
    nsnetOk('policy', 'rm', 'no-doc');
    nsnetOk('policy', 'add', '--deny', '--from', 'x', '--to', 'outside', '--name', 'no-out');
    assert.equal(tcpProbe('x', OUTSIDE_V4, 8080), null, 'outside deny');
    assert.ok(ping('x', '10.84.0.1'), 'the gateway (the host itself) is not "outside"');
  });
  test('a namespace selector follows the namespace as it connects later', () => {
    nsnetOk('network', 'create', 'n', '--subnet', '10.85.0.0/24');
    nsnetOk('ns', 'add', 'late');
    nsnetOk('policy', 'add', '--deny', '--from', 'late', '--to', 'outside');
    nsnetOk('connect', 'n', 'late');
    assert.equal(tcpProbe('late', OUTSIDE_V4, 8080), null, 'policy applies to the new endpoint');
  });
});

describe('anti-spoofing', () => {
  before(() => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'sp', '--subnet', '10.86.0.0/24');
    nsnetOk('ns', 'add', 's1');
    nsnetOk('ns', 'add', 's2');
    nsnetOk('connect', 'sp', 's1');
    nsnetOk('connect', 'sp', 's2');
  });
  test('a namespace can only send with its own addresses', () => {
    const s2 = addr('s2', 'sp');
    assert.ok(ping('s1', s2), 'own address works');
    must('ip -n s1 addr add 10.86.0.99/24 dev eth0');
    const forged = inNs('s1', ['ping', '-c', '1', '-W', '1', '-I', '10.86.0.99', s2]);
    assert.notEqual(forged.status, 0, 'a second address added by hand is dropped at the bridge port');
    assert.equal(inNs('s1', ['ping', '-c', '1', '-W', '1', '-I', '10.86.0.99', OUTSIDE_V4]).status === 0, false);
    must('ip -n s1 addr del 10.86.0.99/24 dev eth0');
    assert.ok(ping('s1', s2));
  });
  test('a neighbour on the uplink cannot send with a network\'s addresses (raw prerouting)', () => {
    // Counted where the host's ICMP layer sees an echo request (/proc/net/snmp, this netns).
    const echoesIn = (): number => {
      const [head, values] = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Icmp:'));
      return Number(values!.split(/\s+/)[head!.split(/\s+/).indexOf('InEchos')]);
    };
    must(`ip -n outside route add 10.86.0.0/24 via ${UPLINK_V4}
ip -n outside addr add 10.86.0.77/32 dev eth0`);
    try {
      let before = echoesIn();
      assert.equal(inNs('outside', ['ping', '-c', '1', '-W', '1', '-I', OUTSIDE_V4, '10.86.0.1']).status, 0, 'from its own address: answered');
      assert.equal(echoesIn() - before, 1);
      before = echoesIn();
      assert.notEqual(inNs('outside', ['ping', '-c', '1', '-W', '1', '-I', '10.86.0.77', '10.86.0.1']).status, 0);
      assert.equal(echoesIn() - before, 0, 'a source inside 10.86.0.0/24 from the uplink never reaches the host');
    } finally {
      must(`ip -n outside addr del 10.86.0.77/32 dev eth0
ip -n outside route del 10.86.0.0/24`);
    }
  });
  test('a forged MAC address is dropped', () => {
    const s2 = addr('s2', 'sp');
    must('ip -n s1 link set eth0 address 02:00:00:00:00:99');
    assert.equal(ping('s1', s2), false);
  });
});

describe('bad policy input changes nothing', () => {
  before(() => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'n', '--subnet', '10.87.0.0/24');
    nsnetOk('ns', 'add', 'a');
    nsnetOk('policy', 'add', '--deny', '--from', 'a', '--to', 'outside', '--name', 'taken');
  });
  test('each refused with one line', () => {
    expectRefused(['policy', 'add', '--allow', '--from', 'nothing', '--to', 'n'], /selector "nothing" names nothing/);
    expectRefused(['policy', 'add', '--allow', '--from', 'n', '--to', 'ns:ghost'], /namespace ghost not found/);
    expectRefused(['policy', 'add', '--allow', '--from', 'outside', '--to', 'outside'], /outside to outside/);
    expectRefused(['policy', 'add', '--allow', '--deny', '--from', 'n', '--to', 'a'], /exactly one of --allow or --deny/);
    expectRefused(['policy', 'add', '--allow', '--from', 'n', '--to', 'a', '--port', '0/tcp'], /outside 1–65535/);
    expectRefused(['policy', 'add', '--allow', '--from', 'n', '--to', 'a', '--port', '80/icmp'], /unknown protocol "icmp"/);
    expectRefused(['policy', 'add', '--allow', '--from', 'n', '--to', 'a', '--priority', 'high'], /invalid --priority/);
    expectRefused(['policy', 'add', '--allow', '--from', '10.0.0.0/33', '--to', 'a'], /invalid selector/);
    expectRefused(['policy', 'add', '--deny', '--from', 'a', '--to', 'outside', '--name', 'taken'], /policy taken already exists/);
    expectRefused(['policy', 'rm', 'ghost'], /policy ghost not found/);
  });
});
