/**
 * Real traffic between namespaces built with nsnet's kernel layer: ICMP across a veth pair
 * and across a bridge (with bridge-port isolation cutting it), and a TCP connection between
 * two Node processes started in their namespaces. Only addresses of namespaces this file
 * created are contacted.
 */
import '../harness/sandbox.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import { createVeth, ensureBridge, setBridgePort, deleteLink } from '../../src/kernel/netlink/route/link.js';
import { addAddress } from '../../src/kernel/netlink/route/addr.js';
import { spawnInNetns, spawnSyncInNetns } from '../../src/kernel/netns/exec.js';
import { assertPings, bridge, ping } from './oracle.js';

const host = Netns.host();

describe('ICMP across a veth pair', () => {
  let a: Netns, b: Netns;
  before(() => {
    a = createNetns('tr-a');
    b = createNetns('tr-b');
    createVeth(a, 'eth0', { name: 'eth0', ns: b, up: true }, { up: true });
    addAddress(a, 'eth0', '10.100.0.1/30');
    addAddress(b, 'eth0', '10.100.0.2/30');
    addAddress(a, 'eth0', 'fd64::1/64');
    addAddress(b, 'eth0', 'fd64::2/64');
  });
  after(() => { a.close(); b.close(); deleteNetns('tr-a'); deleteNetns('tr-b'); });

  it('IPv4 both ways', () => {
    assertPings('tr-a', '10.100.0.2');
    assertPings('tr-b', '10.100.0.1');
  });
  it('IPv6 both ways', () => {
    assertPings('tr-a', 'fd64::2');
    assertPings('tr-b', 'fd64::1');
  });
});

describe('across a bridge between two namespaces', () => {
  const names = ['tr-c1', 'tr-c2'] as const;
  const made: Netns[] = [];
  before(() => {
    ensureBridge(host, 'trbr0', { up: true });
    names.forEach((n, i) => {
      const ns = createNetns(n);
      made.push(ns);
      // the tutorials' container: eth0 inside, its peer a port of the bridge outside
      createVeth(host, `trv${i}`, { name: 'eth0', ns, up: true }, { up: true, master: bridgeIndex() });
      addAddress(ns, 'eth0', `10.101.0.${i + 2}/24`);
      addAddress(ns, 'eth0', `fd65::${i + 2}/64`);
    });
  });
  after(() => {
    for (const ns of made) ns.close();
    for (const n of names) deleteNetns(n);
    deleteLink(host, 'trbr0');
  });
  const bridgeIndex = (): number => ensureBridge(host, 'trbr0').index;

  it('both ports are on the bridge (bridge link)', () => {
    const ports = (bridge(['link', 'show']) as Array<{ ifname: string; master: string }>).filter((p) => p.master === 'trbr0').map((p) => p.ifname).sort();
    assert.deepStrictEqual(ports, ['trv0', 'trv1']);
  });

  it('ICMP and ICMPv6 between the two namespaces', () => {
    assertPings('tr-c1', '10.101.0.3');
    assertPings('tr-c2', '10.101.0.2');
    assertPings('tr-c1', 'fd65::3');
  });

  it('isolated ports cannot talk to each other; un-isolated they can again', () => {
    setBridgePort(host, 'trv0', { isolated: true });
    setBridgePort(host, 'trv1', { isolated: true });
    assert.equal(ping('tr-c1', '10.101.0.3', { waitS: 1 }), false);
    setBridgePort(host, 'trv0', { isolated: false });
    assertPings('tr-c1', '10.101.0.3');
    setBridgePort(host, 'trv1', { isolated: false });
  });
});

describe('TCP between two namespaces', () => {
  let a: Netns, b: Netns;
  before(() => {
    a = createNetns('tr-tcp-a');
    b = createNetns('tr-tcp-b');
    createVeth(a, 'eth0', { name: 'eth0', ns: b, up: true }, { up: true });
    addAddress(a, 'eth0', '10.102.0.1/24');
    addAddress(b, 'eth0', '10.102.0.2/24');
    addAddress(a, 'eth0', 'fd66::1/64');
    addAddress(b, 'eth0', 'fd66::2/64');
  });
  after(() => { a.close(); b.close(); deleteNetns('tr-tcp-a'); deleteNetns('tr-tcp-b'); });

  // Answers one line per connection with "pong <line> from <its own address>".
  const SERVER = `
    const net = require('node:net');
    const s = net.createServer((c) => c.once('data', (d) => c.end('pong ' + String(d).trim() + ' from ' + c.localAddress + '\\n')));
    s.listen(Number(process.argv[1]), process.argv[2], () => console.log('listening'));`;
  const CLIENT = `
    const net = require('node:net');
    const c = net.connect(Number(process.argv[1]), process.argv[2], () => c.write('ping\\n'));
    let got = ''; c.on('data', (d) => { got += d; }); c.on('end', () => { process.stdout.write(got); });
    c.on('error', (e) => { console.error(e.message); process.exit(1); });
    setTimeout(() => { console.error('timeout'); process.exit(2); }, 5000).unref();`;

  for (const [family, server] of [['IPv4', '10.102.0.2'], ['IPv6', 'fd66::2']] as const) {
    it(`${family}: a client in one namespace reaches a server in the other`, async () => {
      const srv = spawnInNetns('tr-tcp-b', [process.execPath, '-e', SERVER, '7000', server], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const [first] = (await once(srv.stdout!, 'data')) as [Buffer];
        assert.equal(String(first).trim(), 'listening');
        const r = spawnSyncInNetns('tr-tcp-a', [process.execPath, '-e', CLIENT, '7000', server], { encoding: 'utf8', timeout: 10_000 });
        assert.equal(r.status, 0, String(r.stderr));
        assert.equal(String(r.stdout), `pong ping from ${server}\n`);
        // and the server is not reachable from a namespace without a path to it
        const lone = createNetns('tr-tcp-lone');
        try {
          const x = spawnSyncInNetns('tr-tcp-lone', [process.execPath, '-e', CLIENT, '7000', server], { encoding: 'utf8', timeout: 10_000 });
          assert.notEqual(x.status, 0);
        } finally {
          lone.close();
          deleteNetns('tr-tcp-lone');
        }
      } finally {
        srv.kill();
        await once(srv, 'exit');
      }
    });
  }
});
