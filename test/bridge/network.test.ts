/**
 * Single-host bridge networks, end to end through the CLI, proven with real traffic inside
 * the sandbox: NAT to an "outside" namespace, full mesh on one bridge, isolation between
 * networks, internal networks, dual stack, and clean removal.
 */
import '../harness/sandbox.js';
import { before, after, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  OUTSIDE_V4, OUTSIDE_V6, UPLINK_V4, UPLINK_V6, ipJson, kill, makeOutside, must, nsnet, nsnetOk, ping, removeOutside, inNs,
  tcpProbe, tcpServer,
} from '../harness/world.js';
import type { ChildProcess } from 'node:child_process';

let outsideServer: ChildProcess | undefined;

before(async () => {
  makeOutside();
  outsideServer = await tcpServer('outside', 8080);
});
after(() => {
  kill(outsideServer);
  nsnet('reset', '--yes');
  removeOutside();
});
beforeEach(() => {
  nsnetOk('reset', '--yes');
});

function addrOf(ns: string, network: string): string {
  const st = JSON.parse(nsnetOk('status', '--json')) as { endpoints: Array<{ namespace: string; network: string; addresses: string[] }> };
  const e = st.endpoints.find((x) => x.namespace === ns && x.network === network);
  assert.ok(e, `endpoint ${ns}@${network}`);
  return e.addresses[0]!.split('/')[0]!;
}

describe('bridge networks', () => {
  test('one namespace: gateway reachable, NAT to the outside, disconnect removes everything', () => {
    nsnetOk('ns', 'add', 'app');
    nsnetOk('network', 'create', 'front', '--subnet', '10.50.0.0/24');
    const out = nsnetOk('connect', 'front', 'app');
    assert.match(out, /app connected to front: eth0 10\.50\.0\.2\/24/);

    assert.ok(ping('app', '10.50.0.1'), 'gateway answers');
    // The outside server reports the source it saw: the host's uplink address (masquerade).
    assert.equal(tcpProbe('app', OUTSIDE_V4, 8080), UPLINK_V4);
    assert.equal(must('cat /proc/sys/net/ipv4/ip_forward').trim(), '1');

    // Oracles: the veth is a port of the bridge; inside, eth0 has the address and a default route.
    const br = ipJson('link show nsbr-front')[0];
    assert.equal(br.operstate, 'UP');
    const ports = ipJson('link show master nsbr-front');
    assert.equal(ports.length, 1);
    const inside = JSON.parse(must('ip -n app -j addr show eth0'))[0];
    assert.deepEqual(inside.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), ['10.50.0.2/24']);
    const routes = JSON.parse(must('ip -n app -j route show default'));
    assert.equal(routes[0].gateway, '10.50.0.1');
    assert.ok(must('cat /etc/netns/app/resolv.conf').includes('nameserver'), 'per-namespace resolv.conf written');

    nsnetOk('disconnect', 'front', 'app');
    assert.equal(ipJson('link show master nsbr-front').length, 0, 'host veth gone');
    assert.equal(JSON.parse(must('ip -n app -j link')).length, 1, 'only lo left in the namespace');
    const st = JSON.parse(nsnetOk('status', '--json'));
    assert.equal(st.endpoints.length, 0);
    // The address is free again: the next connect may reuse it once the cursor wraps; here it is simply not held.
    nsnetOk('connect', 'front', 'app');
    assert.equal(addrOf('app', 'front'), '10.50.0.3');
  });

  test('three namespaces on one bridge: full mesh ICMP and TCP', async () => {
    nsnetOk('network', 'create', 'mesh', '--subnet', '10.51.0.0/24');
    const names = ['n1', 'n2', 'n3'];
    for (const n of names) { nsnetOk('ns', 'add', n); nsnetOk('connect', 'mesh', n); }
    const servers = await Promise.all(names.map((n) => tcpServer(n, 7000)));
    try {
      for (const a of names) for (const b of names) {
        if (a === b) continue;
        const ip = addrOf(b, 'mesh');
        assert.ok(ping(a, ip), `${a} → ${b} ping`);
        assert.equal(tcpProbe(a, ip, 7000), addrOf(a, 'mesh'), `${a} → ${b} tcp, no NAT inside the network`);
      }
    } finally {
      servers.forEach(kill);
    }
  });

  test('two networks are isolated from each other; each reaches the outside', async () => {
    nsnetOk('network', 'create', 'red', '--subnet', '10.52.1.0/24');
    nsnetOk('network', 'create', 'blue', '--subnet', '10.52.2.0/24');
    nsnetOk('ns', 'add', 'r1');
    nsnetOk('ns', 'add', 'b1');
    nsnetOk('connect', 'red', 'r1');
    nsnetOk('connect', 'blue', 'b1');
    const srv = await tcpServer('b1', 7001);
    try {
      assert.equal(ping('r1', addrOf('b1', 'blue')), false, 'red cannot ping blue');
      assert.equal(tcpProbe('r1', addrOf('b1', 'blue'), 7001), null, 'red cannot reach blue over TCP');
      assert.equal(ping('b1', addrOf('r1', 'red')), false, 'blue cannot ping red');
      assert.equal(tcpProbe('r1', OUTSIDE_V4, 8080), UPLINK_V4);
      assert.equal(tcpProbe('b1', OUTSIDE_V4, 8080), UPLINK_V4);
      // The outside cannot open connections into a network (no published ports).
      must(`ip -n outside route add 10.52.2.0/24 via ${UPLINK_V4}`);
      assert.equal(tcpProbe('outside', addrOf('b1', 'blue'), 7001), null, 'no unsolicited ingress');
      must('ip -n outside route del 10.52.2.0/24');
    } finally {
      kill(srv);
    }
  });

  test('internal network: members talk, nothing gets out even with a hand-made route', () => {
    nsnetOk('network', 'create', 'db', '--subnet', '10.53.0.0/24', '--internal');
    nsnetOk('ns', 'add', 'd1');
    nsnetOk('ns', 'add', 'd2');
    nsnetOk('connect', 'db', 'd1');
    nsnetOk('connect', 'db', 'd2');
    assert.ok(ping('d1', addrOf('d2', 'db')), 'members reach each other');
    assert.equal(JSON.parse(must('ip -n d1 -j route show default')).length, 0, 'no default route');
    assert.equal(ping('d1', OUTSIDE_V4), false);
    // A route added by hand inside the namespace must not open a path: the firewall drops it.
    must('ip -n d1 route add default via 10.53.0.1');
    assert.equal(ping('d1', OUTSIDE_V4), false, 'firewall blocks egress from internal networks');
    assert.equal(tcpProbe('d1', OUTSIDE_V4, 8080), null);
  });

  test('dual stack: IPv6 ICMP and TCP between namespaces, to the gateway and out', async () => {
    nsnetOk('network', 'create', 'ds', '--subnet', '10.54.0.0/24', '--subnet', 'fd00:54::/64');
    nsnetOk('ns', 'add', 'v1');
    nsnetOk('ns', 'add', 'v2');
    const e1 = JSON.parse(nsnetOk('connect', 'ds', 'v1', '--json'));
    const e2 = JSON.parse(nsnetOk('connect', 'ds', 'v2', '--json', '--ip', 'fd00:54::99'));
    assert.deepEqual(e1.addresses, ['10.54.0.2/24', 'fd00:54::2/64']);
    assert.deepEqual(e2.addresses, ['10.54.0.3/24', 'fd00:54::99/64']);
    assert.ok(ping('v1', 'fd00:54::1'), 'IPv6 gateway');
    assert.ok(ping('v1', 'fd00:54::99'), 'IPv6 peer');
    const srv = await tcpServer('v2', 7002);
    try {
      assert.equal(tcpProbe('v1', 'fd00:54::99', 7002), 'fd00:54::2');
    } finally {
      kill(srv);
    }
    assert.equal(tcpProbe('v1', OUTSIDE_V6, 8080), UPLINK_V6, 'IPv6 masqueraded to the uplink address');
    assert.equal(must('cat /proc/sys/net/ipv6/conf/all/forwarding').trim(), '1');
  });

  test('ns exec sees the namespace and its resolv.conf', () => {
    nsnetOk('network', 'create', 'ex', '--subnet', '10.55.0.0/24');
    nsnetOk('ns', 'add', 'e1');
    nsnetOk('connect', 'ex', 'e1');
    const r = nsnet('ns', 'exec', 'e1', '--', 'sh', '-c', 'cat /etc/resolv.conf; ip -o -4 addr show eth0');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /# written by nsnet/);
    assert.match(r.stdout, /10\.55\.0\.2\/24/);
    assert.equal(nsnet('ns', 'exec', 'e1', '--', 'false').status, 1, 'exit status passes through');
  });

  test('reset removes everything nsnet made and nothing else (foreign nft table, iptables rule)', () => {
    must(`nft add table inet foreign
nft add chain inet foreign input '{ type filter hook input priority 0; policy accept; }'
nft add rule inet foreign input tcp dport 9999 accept
iptables -A INPUT -p tcp --dport 9998 -j ACCEPT`);
    const foreign = must('nft list table inet foreign');
    const ipt = must('iptables -S INPUT');
    nsnetOk('network', 'create', 'tmp', '--subnet', '10.56.0.0/24');
    nsnetOk('ns', 'add', 't1');
    nsnetOk('connect', 'tmp', 't1');
    inNs('t1', ['true']);
    assert.equal(must('nft list table inet foreign'), foreign, 'foreign table untouched by create/connect');
    nsnetOk('reset', '--yes');
    assert.equal(must('nft list table inet foreign'), foreign, 'foreign table survives reset');
    assert.equal(must('iptables -S INPUT'), ipt, 'iptables rule survives reset');
    assert.equal(sh_ok('nft list table inet nsnet'), false, 'nsnet table gone');
    assert.equal(must('ip netns list').includes('t1'), false);
    assert.equal(ipJson('link show type bridge').length, 0);
    must('nft delete table inet foreign; iptables -D INPUT -p tcp --dport 9998 -j ACCEPT');
  });
});

function sh_ok(cmd: string): boolean {
  try { must(cmd); return true; } catch { return false; }
}
