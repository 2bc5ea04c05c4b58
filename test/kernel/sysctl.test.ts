/**
 * sysctl inside a namespace (src/kernel/netns/sysctl.ts): reads and writes land in that
 * namespace only. Oracles: `ip netns exec NS sysctl -n KEY`, and the sandbox's own
 * /proc/sys read by a separate `sysctl` process.
 */
import '../harness/sandbox.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import { createVeth } from '../../src/kernel/netlink/route/link.js';
import { readSysctl, writeSysctl } from '../../src/kernel/netns/sysctl.js';
import { inNs } from './oracle.js';
import { throwsCode } from './expect.js';

const host = Netns.host();
const sysctl = (key: string, ns?: string): string => {
  const r = inNs(ns, ['sysctl', '-n', key]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
};

describe('sysctl in a namespace', () => {
  let ns: Netns, other: Netns;
  before(() => {
    ns = createNetns('sc-a');
    other = createNetns('sc-b');
    createVeth(ns, 'eth0', { name: 'eth0', ns: other });
  });
  after(() => { ns.close(); other.close(); deleteNetns('sc-a'); deleteNetns('sc-b'); });

  it('reads the namespace’s value', () => {
    assert.equal(readSysctl(ns, 'net.ipv4.ip_forward'), sysctl('net.ipv4.ip_forward', 'sc-a'));
    assert.equal(readSysctl(ns, 'net.ipv4.ip_forward'), '0');
    assert.equal(readSysctl(ns, 'net/ipv4/ip_forward'), '0', 'slashed form');
  });

  it('writes the namespace’s value only: the sandbox and other namespaces keep theirs', () => {
    const sandboxBefore = sysctl('net.ipv4.ip_forward');
    writeSysctl(ns, 'net.ipv4.ip_forward', '1');
    assert.equal(sysctl('net.ipv4.ip_forward', 'sc-a'), '1');
    assert.equal(readSysctl(ns, 'net.ipv4.ip_forward'), '1');
    assert.equal(sysctl('net.ipv4.ip_forward'), sandboxBefore);
    assert.equal(readSysctl(host, 'net.ipv4.ip_forward'), sandboxBefore);
    assert.equal(sysctl('net.ipv4.ip_forward', 'sc-b'), '0');
    writeSysctl(ns, 'net.ipv4.ip_forward', '1'); // already so: a no-op
    writeSysctl(ns, 'net.ipv4.ip_forward', '0');
    assert.equal(sysctl('net.ipv4.ip_forward', 'sc-a'), '0');
  });

  it('per-device and IPv6 keys, slashed or dotted', () => {
    writeSysctl(ns, 'net.ipv6.conf.eth0.disable_ipv6', '1');
    assert.equal(sysctl('net.ipv6.conf.eth0.disable_ipv6', 'sc-a'), '1');
    assert.equal(sysctl('net.ipv6.conf.eth0.disable_ipv6', 'sc-b'), '0', 'the peer is another device');
    writeSysctl(ns, 'net/ipv6/conf/all/forwarding', '1');
    assert.equal(sysctl('net.ipv6.conf.all.forwarding', 'sc-a'), '1');
    assert.equal(sysctl('net.ipv6.conf.all.forwarding'), '0');
    assert.equal(readSysctl(ns, 'net.ipv4.conf.eth0.rp_filter'), sysctl('net.ipv4.conf.eth0.rp_filter', 'sc-a'));
  });

  it('the sandbox’s own namespace through the host handle', () => {
    writeSysctl(host, 'net.ipv4.conf.all.arp_ignore', '1');
    assert.equal(sysctl('net.ipv4.conf.all.arp_ignore'), '1');
    assert.equal(sysctl('net.ipv4.conf.all.arp_ignore', 'sc-a'), '0');
    writeSysctl(host, 'net.ipv4.conf.all.arp_ignore', '0');
    assert.equal(readSysctl(host, 'net.ipv4.conf.all.arp_ignore'), '0');
  });

  it('bad keys and values are SYSCTL_FAILED naming the key, and change nothing', () => {
    for (const bad of ['net..ipv4', '../../etc/passwd', 'net.ipv4 ip_forward', 'net.ipv4.ip_forward;x', '']) {
      throwsCode(() => readSysctl(ns, bad), 'SYSCTL_FAILED', { object: bad });
      throwsCode(() => writeSysctl(ns, bad, '1'), 'SYSCTL_FAILED', { object: bad });
    }
    throwsCode(() => readSysctl(ns, 'net.ipv4.no_such_key'), 'SYSCTL_FAILED', { object: 'net.ipv4.no_such_key', message: /ENOENT/ });
    throwsCode(() => writeSysctl(ns, 'net.ipv4.no_such_key', '1'), 'SYSCTL_FAILED', { object: 'net.ipv4.no_such_key' });
    throwsCode(() => writeSysctl(ns, 'net.ipv4.conf.nodev0.forwarding', '1'), 'SYSCTL_FAILED');
    throwsCode(() => writeSysctl(ns, 'net.ipv4.ip_forward', 'banana'), 'SYSCTL_FAILED', { message: /EINVAL/ });
    assert.equal(sysctl('net.ipv4.ip_forward', 'sc-a'), '0');
  });
});
