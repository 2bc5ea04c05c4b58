/**
 * Forwarding by nsnet's DNS service (issue 5): names that are not nsnet's go to the
 * host's resolvers — here the test's own DNS server (test/dns/upstream-server.ts) in the
 * "outside" namespace — through a cache, with TC/TCP handled; an internal network gets
 * no forwarding; a dead upstream is failed over within the timeout.
 *
 *   outside   203.0.113.2 answers, 203.0.113.3 swallows every query (a dead server)
 *   pub       10.80.0.0/24 (NAT)     p1, p2
 *   priv      10.81.0.0/24 internal  i1, i2
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { kill, makeOutside, must, removeOutside } from '../harness/world.js';
import {
  answerData, connect, dig, dnsState, getent, nsnet, nsnetOk, setHostResolvers, startUpstream, stopService, upstreamLog, type Upstream,
} from './world.js';

const GOOD = '203.0.113.2';
const DEAD = '203.0.113.3';
const PUB_GW = '10.80.0.1';
const PRIV_GW = '10.81.0.1';
let upstream: Upstream;

/** How many queries for `name` the upstream has received (after the log catches up). */
async function seen(name: string, transport?: string): Promise<number> {
  const count = (): number => upstream.log.filter((q) => q.name?.toLowerCase() === name && (!transport || q.transport === transport)).length;
  await upstreamLog(upstream, () => count() > 0, 300);
  return count();
}

before(async () => {
  nsnetOk('reset', '--yes');
  makeOutside();
  must(`ip -n outside addr add ${DEAD}/24 dev eth0`);
  upstream = await startUpstream(['--answer', GOOD, '--blackhole', DEAD]);
  setHostResolvers([GOOD]);
  nsnetOk('network', 'create', 'pub', '--subnet', '10.80.0.0/24');
  nsnetOk('network', 'create', 'priv', '--subnet', '10.81.0.0/24', '--internal');
  for (const n of ['p1', 'p2', 'i1', 'i2']) nsnetOk('ns', 'add', n);
  connect('pub', 'p1');
  connect('pub', 'p2');
  connect('priv', 'i1');
  connect('priv', 'i2');
  assert.equal(dnsState().running, true);
});

after(() => {
  kill(upstream?.child);
  nsnet('reset', '--yes');
  stopService();
  removeOutside();
});

describe('dns: forwarding', () => {
  test('forwarding reaches the upstream server in the outside namespace; answers are cached; TC falls back to TCP', async () => {
    const r = dig('p1', PUB_GW, 'www.example.test', 'A');
    assert.equal(r.status, 'NOERROR', r.out);
    assert.deepEqual(answerData(r, 'A'), ['198.51.100.7']);
    assert.ok(r.flags.includes('ra'), 'recursion available');
    assert.equal(await seen('www.example.test'), 1, 'the upstream got the query');
    assert.equal((await upstreamLog(upstream)).find((q) => q.name === 'www.example.test')!.from, '203.0.113.1', 'sent from the host (the uplink address)');

    // Cached: the same question from another namespace, in another letter case, does not reach the upstream.
    const again = dig('p2', PUB_GW, 'WWW.Example.Test', 'A');
    assert.deepEqual(answerData(again, 'A'), ['198.51.100.7']);
    assert.match(again.out, /^;WWW\.Example\.Test\.\s+IN\s+A$/m, 'the question is echoed in the asker\'s letter case');
    assert.ok(again.answers[0]!.ttl <= 60);
    assert.equal(await seen('www.example.test'), 1, 'answered from the cache');

    assert.equal(dig('p1', PUB_GW, 'nx.example.test', 'A').status, 'NXDOMAIN', 'upstream NXDOMAIN relayed');
    assert.deepEqual(answerData(dig('p1', PUB_GW, 'v6.example.test', 'AAAA'), 'AAAA'), ['2001:db8:7::7']);

    // ~2.6 KB of TXT: over UDP the service relays TC, dig retries over TCP, the service forwards over TCP.
    const udpOnly = dig('p1', PUB_GW, 'big.example.test', 'TXT', ['+ignore']);
    assert.ok(udpOnly.flags.includes('tc'), `truncated over UDP: ${udpOnly.out}`);
    const big = dig('p1', PUB_GW, 'big.example.test', 'TXT');
    assert.equal(big.status, 'NOERROR', big.out);
    assert.equal(big.answers.length, 40, 'the whole answer, over TCP');
    assert.ok(await seen('big.example.test', 'tcp') >= 1, 'forwarded over TCP');
    const cached = dig('p2', PUB_GW, 'big.example.test', 'TXT', ['+ignore']);
    assert.ok(cached.flags.includes('tc'), 'a cached answer too large for UDP is sent truncated');

    const g = getent('p1', 'www.example.test');
    assert.equal(g.status, 0, g.stderr);
    assert.match(g.stdout, /198\.51\.100\.7|2001:db8:7::7/);
  });

  test('an internal network gets no forwarding', async () => {
    const r = dig('i1', PRIV_GW, 'internal-a.example.test', 'A');
    assert.equal(r.status, 'REFUSED', r.out);
    assert.ok(!r.flags.includes('ra'), 'no recursion available');
    assert.equal(dig('i1', PRIV_GW, 'internal-b.example.test', 'AAAA').status, 'REFUSED');
    assert.notEqual(getent('i1', 'internal-c.example.test').status, 0);
    await upstreamLog(upstream, () => false, 300);
    for (const n of ['internal-a', 'internal-b', 'internal-c']) assert.equal(await seen(`${n}.example.test`), 0, `${n}: nothing reached the upstream`);
    assert.equal(answerData(dig('i1', PRIV_GW, 'i2', 'A'), 'A').length, 1, 'local names still resolve');
  });

  test('per-network DNS servers replace the host\'s; --no-dns leaves a network to the host\'s resolvers', async () => {
    setHostResolvers([DEAD]);
    try {
      nsnetOk('network', 'create', 'own', '--subnet', '10.82.0.0/24', '--dns-server', GOOD);
      nsnetOk('network', 'create', 'nodns', '--subnet', '10.83.0.0/24', '--no-dns');
      nsnetOk('ns', 'add', 'o1');
      nsnetOk('ns', 'add', 'n1');
      connect('own', 'o1');
      connect('nodns', 'n1');
      // The host's only resolver is dead; own's names go to its own server and are answered.
      const r = dig('o1', '10.82.0.1', 'per-network.example.test', 'A', [], 5);
      assert.deepEqual(answerData(r, 'A'), ['198.51.100.7'], r.out);
      assert.ok(await seen('per-network.example.test') >= 1, 'the per-network server got the query');
      assert.ok(!upstream.log.some((q) => q.name === 'per-network.example.test' && q.server === DEAD), 'the host\'s resolver was not asked');
      // nodns: nothing listens on its gateway, and its namespace is pointed at the host's resolvers.
      assert.notEqual(dig('n1', '10.83.0.1', 'o1', 'A', [], 2).status, 'NOERROR');
      const conf = fs.readFileSync('/etc/netns/n1/resolv.conf', 'utf8');
      assert.match(conf, /^nameserver 203\.0\.113\.3$/m, conf);
      assert.doesNotMatch(conf, /10\.83\.0\.1/, conf);
      const ls = nsnetOk('network', 'ls');
      assert.match(ls, /^nodns\s.*no-dns/m, ls);
      assert.match(ls, /^own\s.*dns=203\.0\.113\.2/m, ls);
      // Bad input: a DNS server that is not an address, and servers on a network without DNS.
      assert.match(nsnet('network', 'create', 'bad1', '--dns-server', 'resolver.example').stderr, /invalid DNS server "resolver.example" for network bad1/);
      assert.match(nsnet('network', 'create', 'bad2', '--no-dns', '--dns-server', GOOD).stderr, /network bad2: DNS servers given, but DNS is off/);
      assert.doesNotMatch(nsnetOk('network', 'ls'), /bad[12]/);
    } finally {
      nsnet('disconnect', 'own', 'o1');
      nsnet('disconnect', 'nodns', 'n1');
      nsnet('network', 'rm', 'own');
      nsnet('network', 'rm', 'nodns');
      setHostResolvers([GOOD]);
    }
  });

  test('a dead upstream fails over within the timeout', async () => {
    setHostResolvers([DEAD, GOOD]);
    const first = dig('p1', PUB_GW, 'failover1.example.test', 'A', [], 5);
    assert.deepEqual(answerData(first, 'A'), ['198.51.100.7'], first.out);
    // The behaviour, not a speed: dig's own timeout (5 s) is longer than nsnet's failover
    // (0.7 s per dead server), so an answer at all means nsnet moved on before the client did.
    assert.equal(first.status, 'NOERROR', first.out);
    const tried = (q: Upstream['log'][number]): boolean => q.name === 'failover1.example.test' && q.server === DEAD;
    assert.ok((await upstreamLog(upstream, (l) => l.some(tried))).some(tried), 'the dead server was tried first');
    // It is now tried last: the next query does not wait for it.
    const second = dig('p1', PUB_GW, 'failover2.example.test', 'A', [], 5);
    assert.deepEqual(answerData(second, 'A'), ['198.51.100.7']);
    assert.ok(second.ms < first.ms, `second query ${second.ms.toFixed(0)} ms, first ${first.ms.toFixed(0)} ms`);
    // Over TCP too (the dead server accepts connections and never answers).
    const tcp = dig('p1', PUB_GW, 'failover3.example.test', 'A', ['+tcp'], 5);
    assert.deepEqual(answerData(tcp, 'A'), ['198.51.100.7'], tcp.out);
    // Only dead servers: SERVFAIL, still within the client's timeout.
    setHostResolvers([DEAD]);
    const none = dig('p1', PUB_GW, 'failover4.example.test', 'A', [], 5);
    assert.equal(none.status, 'SERVFAIL', none.out);
    // SERVFAIL came back (instead of dig timing out): nsnet answered within the client's timeout.
    setHostResolvers([GOOD]);
  });
});
