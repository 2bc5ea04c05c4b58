/**
 * nsnet's DNS service under abuse (issue 5): it survives a flood of malformed packets and
 * keeps answering, and a query sent from the uplink side — the "outside" namespace, to the
 * host's uplink address or to a gateway address routed through the host — gets no answer.
 *
 *   outside 203.0.113.2 ── uplink0 203.0.113.1 (the sandbox, "the host")
 *   net     10.90.0.0/24 + fd00:90::/64     m1 (the flooder), m2
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { OUTSIDE_V4, UPLINK_V4, UPLINK_V6, inNs, makeOutside, must, removeOutside } from '../harness/world.js';
import { STATE, answerData, connect, dig, dnsState, nsnet, nsnetOk, servicePid, setHostResolvers, stopService } from './world.js';
import { startDnsService, waitForDnsService } from '../../src/dns/control.js';

const GW = '10.90.0.1';
const GW6 = 'fd00:90::1';
const FLOOD = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'flood.js');

before(() => {
  nsnetOk('reset', '--yes');
  makeOutside();
  // The service must not forward anything here; an address nothing answers on.
  setHostResolvers([OUTSIDE_V4]);
  nsnetOk('network', 'create', 'net', '--subnet', '10.90.0.0/24', '--subnet', 'fd00:90::/64');
  nsnetOk('ns', 'add', 'm1');
  nsnetOk('ns', 'add', 'm2');
  connect('net', 'm1');
  connect('net', 'm2');
  assert.equal(dnsState().running, true);
});

after(() => {
  nsnet('reset', '--yes');
  stopService();
  removeOutside();
});

const counters = (): Record<string, number> => dnsState().live!.counters;

/** Counters once the service has worked through what is queued (two equal reads). */
async function drained(): Promise<Record<string, number>> {
  let last = counters();
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = counters();
    if (now.received === last.received) return now;
    last = now;
  }
  return last;
}

describe('dns: hardening', () => {
  test('survives a flood of malformed packets and keeps answering', async () => {
    const pid = servicePid();
    // Answered before (this also resolves the neighbours, so the flood is not lost to ARP/NDP).
    assert.equal(answerData(dig('m1', GW, 'm2', 'A'), 'A').length, 1);
    assert.equal(answerData(dig('m1', GW6, 'm2', 'AAAA'), 'AAAA').length, 1);
    const before = counters();
    // 1,800 malformed datagrams (under the 2,000 burst, so every one reaches the decoder)
    // over IPv4 and IPv6, then TCP abuse.
    for (const server of [GW, GW6]) {
      const r = inNs('m1', [process.execPath, FLOOD, server, '900'], 60_000);
      assert.equal(r.status, 0, r.stderr);
    }
    const after1 = await drained();
    assert.ok(after1.malformed - before.malformed >= 1000, `malformed counted: ${JSON.stringify({ before, after1 })}`);
    assert.equal(servicePid(), pid, 'same process: it did not crash');
    assert.equal(answerData(dig('m2', GW, 'm1', 'A'), 'A').length, 1, 'answers another namespace');
    assert.equal(answerData(dig('m2', GW6, 'm1', 'AAAA'), 'AAAA').length, 1, 'over IPv6');
    assert.equal(answerData(dig('m2', GW, 'm1', 'A', ['+tcp']), 'A').length, 1, 'and over TCP');

    // Past the burst the flooder is rate-limited (dropped unanswered) — others are not.
    const r = inNs('m1', [process.execPath, FLOOD, GW, '4000'], 60_000);
    assert.equal(r.status, 0, r.stderr);
    assert.ok((await drained()).limited > after1.limited, 'the flooder hit its rate limit');
    assert.equal(answerData(dig('m2', GW, 'm1', 'A'), 'A').length, 1, 'the neighbour is still answered');
    await new Promise((res) => setTimeout(res, 2500)); // the flooder's bucket refills
    assert.equal(answerData(dig('m1', GW, 'm2', 'A'), 'A').length, 1, 'and the flooder again, once it slowed down');
    assert.equal(servicePid(), pid);
  });

  test('a query from the uplink side gets no answer', () => {
    // Give the outside a route to the network through the host, as a neighbour on the uplink could.
    must(`ip -n outside route add 10.90.0.0/24 via ${UPLINK_V4}
ip -n outside -6 route add fd00:90::/64 via ${UPLINK_V6}`);
    const before = counters().foreign;
    for (const server of [UPLINK_V4, UPLINK_V6, GW, GW6]) {
      for (const opts of [[], ['+tcp']]) {
        const r = dig('outside', server, 'm1', 'A', opts, 1);
        assert.equal(r.answered, false, `${server} ${opts.join(' ')}: ${r.out}`);
      }
    }
    // The gateway addresses were reached (and refused silently); the uplink ones have no listener.
    assert.ok(counters().foreign - before >= 4, 'queries arrived at the gateways and were dropped');
    // Still serving the namespaces.
    assert.equal(answerData(dig('m2', GW, 'm1', 'A'), 'A').length, 1);
  });
});

describe('start-up', () => {
  test('a SIGHUP that arrives while the service is still starting neither ends it nor is lost', () => {
    // An engine signals the service named by the pidfile after a change (control.ts
    // reloadDnsService); the pidfile is written before the listeners are bound.
    const pidfile = path.join(STATE, 'dns', 'dns.pid');
    for (let i = 0; i < 5; i++) {
      stopService();
      const { pid } = startDnsService(STATE, { wait: false });
      // Spin until the pidfile names the new process, then signal at once.
      const end = Date.now() + 5000;
      while (!(fs.existsSync(pidfile) && fs.readFileSync(pidfile, 'utf8').startsWith(`${pid} `)) && Date.now() < end);
      process.kill(pid, 'SIGHUP');
      waitForDnsService(STATE, pid);
      assert.equal(servicePid(), pid, `attempt ${i + 1}: the service that got the SIGHUP still runs`);
      assert.equal(answerData(dig('m2', GW, 'm1', 'A'), 'A').length, 1);
    }
  });
});
