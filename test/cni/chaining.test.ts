/**
 * nsnet in plugin chains, each plugin run as a runtime runs a conflist (libcni's
 * addNetworkList: every plugin gets the previous plugin's result as prevResult; DEL runs in
 * reverse order with the final result):
 *   - nsnet, then Debian's reference `tuning` plugin (MTU and a sysctl in the container);
 *   - the reference `bridge` + `host-local` for eth0, then nsnet adding eth1.
 * Debian's plugins 1.1.1 speak CNI up to 1.0.0, so the lists say 1.0.0.
 */
import '../harness/sandbox.js';
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeOutside, must, nsnet, ping, removeOutside, run, tcpProbe, OUTSIDE_V4, UPLINK_V4, kill, tcpServer } from '../harness/world.js';
import { REF_DIR, addNetns, cniOk, delNetns, installPlugin, invoke, PLUGIN } from './cni.js';

const VERSION = '1.0.0';

/** Runs one conflist verb the way libcni does; returns the final result (ADD). */
function runList(verb: 'ADD' | 'CHECK' | 'DEL', list: { name: string; plugins: Array<Record<string, unknown>> }, att: { containerId: string; netns: string; ifname: string }, prev?: unknown): any {
  const plugins = verb === 'DEL' ? [...list.plugins].reverse() : list.plugins;
  let result: unknown = verb === 'ADD' ? undefined : prev;
  for (const p of plugins) {
    const { capabilities, ...rest } = p as { capabilities?: Record<string, boolean> };
    void capabilities;
    const conf = { cniVersion: VERSION, name: list.name, ...rest, ...(result !== undefined ? { prevResult: result } : {}) };
    const file = p.type === 'nsnet' ? PLUGIN : path.join(REF_DIR, String(p.type));
    const r = invoke(file, { command: verb, ...att }, conf);
    assert.equal(r.status, 0, `${verb} ${p.type}: ${r.stdout} ${r.stderr}`);
    if (verb === 'ADD') result = r.json;
  }
  return result;
}

before(() => {
  makeOutside();
  installPlugin();
});
after(() => {
  nsnet('reset', '--yes');
  removeOutside();
});

describe('CNI chains', () => {
  test('nsnet → tuning: tuning gets nsnet\'s result, changes MTU and a sysctl; CHECK and DEL pass through both', async (t) => {
    if (!fs.existsSync(path.join(REF_DIR, 'tuning'))) { t.skip(`${REF_DIR}/tuning missing: install Debian's containernetworking-plugins`); return; }
    const ns = addNetns('tun1');
    const att = { containerId: 'tun1', netns: ns, ifname: 'eth0' };
    const list = {
      name: 'chained',
      plugins: [
        { type: 'nsnet', subnets: ['10.70.0.0/24'], runtimeConfig: { portMappings: [{ hostPort: 8088, containerPort: 80, protocol: 'tcp' }] } },
        { type: 'tuning', mtu: 1400, sysctl: { 'net.ipv4.conf.eth0.arp_announce': '2' } },
      ],
    };
    // nsnet's own result, for comparison with what tuning passes on.
    const final = runList('ADD', list, att);
    assert.equal(final.cniVersion, VERSION);
    assert.deepEqual(final.ips, [{ address: '10.70.0.2/24', gateway: '10.70.0.1', interface: 2 }], 'tuning passed nsnet\'s addresses on');
    assert.equal(final.interfaces[2].name, 'eth0');
    assert.equal(final.interfaces[2].sandbox, ns);
    assert.equal(JSON.parse(must('ip -n tun1 -j link show eth0'))[0].mtu, 1400, 'tuning set the MTU on nsnet\'s interface');
    assert.equal(must('ip netns exec tun1 cat /proc/sys/net/ipv4/conf/eth0/arp_announce').trim(), '2');
    assert.ok(ping('tun1', '10.70.0.1'));
    const srv = await tcpServer('tun1', 80);
    try {
      assert.equal(tcpProbe('outside', UPLINK_V4, 8088), OUTSIDE_V4, 'the published port works through the chain');
    } finally {
      kill(srv);
    }
    runList('CHECK', list, att, final);
    runList('DEL', list, att, final);
    runList('DEL', list, att, final);
    assert.equal(run('ip', ['-n', 'tun1', 'link', 'show', 'eth0']).status, 1, 'eth0 removed');
    assert.equal(JSON.parse(nsnet('status', '--json').stdout).endpoints.length, 0);
    delNetns('tun1');
  });

  test('bridge + host-local (eth0) → nsnet (eth1): nsnet appends to prevResult; both interfaces carry traffic', (t) => {
    if (!fs.existsSync(path.join(REF_DIR, 'bridge'))) { t.skip(`${REF_DIR}/bridge missing: install Debian's containernetworking-plugins`); return; }
    const ns = addNetns('two');
    const dataDir = '/run/cni-hostlocal';
    const list = {
      name: 'multi',
      plugins: [
        { type: 'bridge', bridge: 'refbr0', isGateway: true, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.71.0.0/24' }]] } },
        { type: 'nsnet', subnets: ['10.72.0.0/24'] },
      ],
    };
    // In a conflist every plugin sees the same CNI_IFNAME; a second interface comes from a second
    // list. Here: the reference list for eth0, then nsnet for eth1 with the first result as prevResult.
    const first = runList('ADD', { name: 'multi', plugins: [list.plugins[0]!] }, { containerId: 'two', netns: ns, ifname: 'eth0' });
    const conf = { cniVersion: VERSION, name: 'multi', type: 'nsnet', subnets: ['10.72.0.0/24'], prevResult: first };
    const merged = cniOk({ command: 'ADD', containerId: 'two', netns: ns, ifname: 'eth1' }, conf);
    assert.equal(merged.interfaces.length, first.interfaces.length + 3);
    assert.deepEqual(merged.interfaces.slice(0, first.interfaces.length), first.interfaces, 'the previous interfaces come first, unchanged');
    assert.deepEqual(merged.ips[0], first.ips[0], 'the previous address is kept');
    const mine = merged.ips[1];
    assert.equal(mine.address, '10.72.0.2/24');
    assert.equal(merged.interfaces[mine.interface].name, 'eth1', 'the new address points at eth1 (index moved by the previous interfaces)');
    assert.equal(merged.interfaces[mine.interface].sandbox, ns);
    assert.ok(ping('two', '10.71.0.1'), 'eth0 (reference bridge) works');
    assert.ok(ping('two', '10.72.0.1'), 'eth1 (nsnet) works');
    cniOk({ command: 'CHECK', containerId: 'two', netns: ns, ifname: 'eth1' }, { ...conf, prevResult: merged });
    cniOk({ command: 'DEL', containerId: 'two', netns: ns, ifname: 'eth1' }, { ...conf, prevResult: merged });
    runList('DEL', { name: 'multi', plugins: [list.plugins[0]!] }, { containerId: 'two', netns: ns, ifname: 'eth0' }, first);
    assert.equal(run('ip', ['-n', 'two', 'link', 'show', 'eth1']).status, 1);
    assert.equal(run('ip', ['-n', 'two', 'link', 'show', 'eth0']).status, 1);
    delNetns('two');
    run('ip', ['link', 'del', 'refbr0']);
  });
});
