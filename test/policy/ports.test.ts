/**
 * Published ports, with real TCP/UDP traffic in the sandbox: from outside (a client in the
 * "outside" namespace reaching the host's uplink address), from the host itself (its
 * addresses and 127.0.0.1), from other containers and from the owner (hairpin); host-IP
 * restriction (the moby#45610 class of hole), --from, conflicts, UDP conntrack clearing,
 * and reversibility.
 */
import '../harness/sandbox.js';
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  OUTSIDE_V4, UPLINK_V4, UPLINK_V6, kill, makeOutside, must, nsnet, nsnetOk, removeOutside, run, sh, tcpProbe, tcpServer,
  expectRefused,
} from '../harness/world.js';

const servers: ChildProcess[] = [];

before(() => { makeOutside(); });
after(() => {
  servers.forEach(kill);
  nsnet('reset', '--yes');
  removeOutside();
});

const CLIENT = `
const net = require('net');
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 1500 });
let buf = '';
s.on('data', (d) => { buf += d; });
s.on('end', () => { process.stdout.write(buf); process.exit(0); });
s.on('timeout', () => process.exit(2));
s.on('error', () => process.exit(3));`;

/** A TCP connect from the sandbox's own ("host") namespace. */
function hostProbe(ip: string, port: number): string | null {
  const r = run(process.execPath, ['-e', CLIENT, ip, String(port)], { timeout: 10_000 });
  if (r.status !== 0) return null;
  try { return JSON.parse(r.stdout).from as string; } catch { return null; }
}


describe('published ports', () => {
  before(async () => {
    nsnetOk('reset', '--yes');
    nsnetOk('network', 'create', 'web', '--subnet', '10.70.0.0/24', '--subnet', 'fd00:70::/64');
    for (const n of ['app1', 'app2', 'app3']) { nsnetOk('ns', 'add', n); nsnetOk('connect', 'web', n); }
    nsnetOk('network', 'create', 'other', '--subnet', '10.71.0.0/24');
    nsnetOk('ns', 'add', 'far');
    nsnetOk('connect', 'other', 'far');
    servers.push(await tcpServer('app1', 80), await tcpServer('app2', 81), await tcpServer('app3', 3000), await tcpServer('app2', 82));
    nsnetOk('publish', 'app1', '8080:80');
    nsnetOk('publish', 'app2', '8081:81', '8082:82');
    nsnetOk('publish', 'app3', '3000:3000/tcp');
  });

  test('reachable from outside via the uplink address (IPv4 and IPv6)', () => {
    // The server sees the real client address: no masquerade on the way in.
    assert.equal(tcpProbe('outside', UPLINK_V4, 8080), OUTSIDE_V4);
    assert.equal(tcpProbe('outside', UPLINK_V4, 8081), OUTSIDE_V4);
    assert.equal(tcpProbe('outside', UPLINK_V4, 8082), OUTSIDE_V4);
    assert.equal(tcpProbe('outside', UPLINK_V4, 3000), OUTSIDE_V4);
    assert.equal(tcpProbe('outside', UPLINK_V6, 8080), '2001:db8:ff::2');
  });
  test('reachable from the host via its own address and 127.0.0.1', () => {
    assert.notEqual(hostProbe(UPLINK_V4, 8080), null);
    assert.notEqual(hostProbe('127.0.0.1', 8080), null);
    assert.notEqual(hostProbe('127.0.0.1', 3000), null);
  });
  test('reachable from containers via the host address, including the owner (hairpin)', () => {
    assert.notEqual(tcpProbe('app2', UPLINK_V4, 8080), null, 'app2 → host:8080 → app1');
    assert.notEqual(tcpProbe('app1', UPLINK_V4, 8080), null, 'app1 → host:8080 → app1 itself');
    assert.notEqual(tcpProbe('far', UPLINK_V4, 8080), null, 'a container on another network');
  });
  test('ports not published and container addresses are not reachable from outside', () => {
    must(`ip -n outside route add 10.70.0.0/24 via ${UPLINK_V4}`);
    try {
      assert.equal(tcpProbe('outside', UPLINK_V4, 8099), null);
      assert.equal(tcpProbe('outside', '10.70.0.2', 80), null, 'direct to the container address');
    } finally {
      must('ip -n outside route del 10.70.0.0/24');
    }
  });
  test('a port published on 127.0.0.1 is reachable only there', async () => {
    servers.push(await tcpServer('app3', 443));
    nsnetOk('publish', 'app3', '127.0.0.1:8443:443');
    assert.notEqual(hostProbe('127.0.0.1', 8443), null, 'from the host on 127.0.0.1');
    assert.equal(hostProbe(UPLINK_V4, 8443), null, 'not on the uplink address');
    assert.equal(tcpProbe('outside', UPLINK_V4, 8443), null, 'not from outside');
    // A neighbour on the uplink routing 127.0.0.1 at us must not get in.
    must(`ip -n outside route add 127.0.0.0/8 via ${UPLINK_V4} dev eth0 2>/dev/null || ip -n outside route replace 127.0.0.0/8 via ${UPLINK_V4} dev eth0`);
    try {
      const r = run('ip', ['netns', 'exec', 'outside', process.execPath, '-e', CLIENT, '127.0.0.1', '8443'], { timeout: 10_000 });
      assert.notEqual(r.status, 0, 'a neighbour sending to 127.0.0.1:8443 is dropped');
    } finally {
      sh('ip -n outside route del 127.0.0.0/8');
    }
    nsnetOk('unpublish', 'app3', '127.0.0.1:8443:443');
  });
  test('--from restricts the sources', () => {
    nsnetOk('publish', 'app3', '3001:3000', '--from', '198.51.100.0/24');
    assert.equal(tcpProbe('outside', UPLINK_V4, 3001), null, '203.0.113.2 is not in 198.51.100.0/24');
    nsnetOk('unpublish', 'app3', '3001:3000');
    nsnetOk('publish', 'app3', '3001:3000', '--from', '203.0.113.0/24');
    assert.equal(tcpProbe('outside', UPLINK_V4, 3001), OUTSIDE_V4);
    nsnetOk('unpublish', 'app3', '3001:3000');
  });
  test('--from on one port at two host addresses: each keeps its own sources, also after the other goes', () => {
    sh('ip addr add 203.0.113.3/24 dev uplink0');
    try {
      nsnetOk('publish', 'app3', `${UPLINK_V4}:3002:3000`, '--from', '198.51.100.0/24');
      nsnetOk('publish', 'app2', '203.0.113.3:3002:81', '--from', '203.0.113.0/24');
      assert.equal(tcpProbe('outside', '203.0.113.3', 3002), OUTSIDE_V4, 'outside is in the second mapping’s list');
      assert.equal(tcpProbe('outside', UPLINK_V4, 3002), null, 'the second mapping’s list does not open the first');
      nsnetOk('unpublish', 'app2', '203.0.113.3:3002:81');
      assert.equal(tcpProbe('outside', UPLINK_V4, 3002), null, 'the first mapping stays restricted when the second goes');
      nsnetOk('unpublish', 'app3', `${UPLINK_V4}:3002:3000`);
    } finally {
      sh('ip addr del 203.0.113.3/24 dev uplink0');
    }
  });
  test('ports lists the mappings, as text and JSON', () => {
    const rows = JSON.parse(nsnetOk('ports', '--json')) as Array<{ namespace: string; hostPort: number; spec: string }>;
    assert.deepEqual(rows.map((r) => `${r.namespace}:${r.hostPort}`).sort(), ['app1:8080', 'app2:8081', 'app2:8082', 'app3:3000']);
    assert.match(nsnetOk('ports', 'app1'), /\*:8080\s+tcp\s+10\.70\.0\.2:80/);
  });
  test('conflicts are refused with the holder named', async () => {
    expectRefused(['publish', 'app2', '8080:81'], /8080\/tcp is already published by nsnet for app1/);
    const holder = spawn(process.execPath, ['-e', "require('net').createServer().listen(9090, () => console.log('up'))"], { stdio: ['ignore', 'pipe', 'ignore'] });
    servers.push(holder);
    await new Promise((r) => holder.stdout!.once('data', r));
    expectRefused(['publish', 'app2', '9090:81'], new RegExp(`9090/tcp is already in use on the host by node \\(pid ${holder.pid}\\)`));
    kill(holder);
  });
  test('bad port specs and addresses change nothing', () => {
    expectRefused(['publish', 'app1', '0:80'], /port 0 is outside 1–65535/);
    expectRefused(['publish', 'app1', '70000:80'], /outside 1–65535/);
    expectRefused(['publish', 'app1', '9000-9002:80-81'], /host range has 3 ports but the container range has 2/);
    expectRefused(['publish', 'app1', '9000:80/icmp'], /unknown protocol "icmp"/);
    expectRefused(['publish', 'app1', '9000'], /invalid port spec/);
    expectRefused(['publish', 'app1', '192.0.2.77:9000:80'], /host has no address 192\.0\.2\.77/);
    expectRefused(['publish', 'app1', '[::1]:9000:80'], /cannot DNAT IPv6 loopback/);
    expectRefused(['publish', 'ghost', '9000:80'], /namespace ghost not found/);
    expectRefused(['unpublish', 'app1', '9999:80'], /no published port 9999:80\/tcp/);
  });
  test('unpublish clears stale UDP conntrack entries', async () => {
    const udpServer = spawn('ip', ['netns', 'exec', 'app2', process.execPath, '-e',
      "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('ok',r.port,r.address));s.bind(5353,()=>console.log('up'))"], { stdio: ['ignore', 'pipe', 'ignore'] });
    servers.push(udpServer);
    await new Promise((r) => udpServer.stdout!.once('data', r));
    nsnetOk('publish', 'app2', '5353:5353/udp');
    // A client in "outside" that sends from a fixed source port, like a long-lived UDP flow.
    const r = run('ip', ['netns', 'exec', 'outside', process.execPath, '-e',
      `const s=require('dgram').createSocket('udp4');s.bind(40000,()=>{s.send('hi',5353,'${UPLINK_V4}');});s.on('message',()=>{console.log('reply');process.exit(0)});setTimeout(()=>process.exit(2),2000)`]);
    assert.equal(r.stdout.trim(), 'reply', 'UDP through the published port');
    const entries = (): string => sh('conntrack -L -p udp --orig-port-dst 5353 2>/dev/null').stdout;
    assert.match(entries(), /dport=5353/, 'a conntrack entry exists');
    nsnetOk('unpublish', 'app2', '5353:5353/udp');
    assert.doesNotMatch(entries(), /sport=5353.*dport=40000/, 'the DNATed entry is gone');
    kill(udpServer);
  });
  test('unpublish and reset leave no trace in nsnet\'s maps; foreign tables untouched', () => {
    must("nft add table ip foreign; nft add chain ip foreign c '{ type nat hook prerouting priority -50; }'; nft add rule ip foreign c tcp dport 7777 counter");
    const foreign = must('nft list table ip foreign');
    for (const [ns, spec] of [['app1', '8080:80'], ['app2', '8081:81'], ['app2', '8082:82'], ['app3', '3000:3000']] as const) nsnetOk('unpublish', ns, spec);
    const maps = JSON.parse(must('nft -j list table inet nsnet')).nftables.filter((x: any) => x.map).map((x: any) => x.map);
    for (const m of maps) assert.equal(m.elem, undefined, `map ${m.name} is empty`);
    assert.equal(tcpProbe('outside', UPLINK_V4, 8080), null, 'unpublished port closed');
    nsnetOk('reset', '--yes');
    assert.equal(sh('nft list table inet nsnet').status === 0, false);
    assert.equal(sh('nft list table bridge nsnet').status === 0, false);
    assert.equal(must('nft list table ip foreign'), foreign);
    must('nft delete table ip foreign');
  });
});

describe('connect -p', () => {
  beforeEach(() => { nsnetOk('reset', '--yes'); });
  test('publishes with the endpoint; disconnect removes the mapping', async () => {
    nsnetOk('network', 'create', 'n', '--subnet', '10.72.0.0/24');
    nsnetOk('ns', 'add', 's1');
    const srv = await tcpServer('s1', 80);
    servers.push(srv);
    nsnetOk('connect', 'n', 's1', '-p', '8088:80');
    assert.equal(tcpProbe('outside', UPLINK_V4, 8088), OUTSIDE_V4);
    nsnetOk('disconnect', 'n', 's1');
    assert.deepEqual(JSON.parse(nsnetOk('ports', '--json')), []);
    kill(srv);
  });
});
