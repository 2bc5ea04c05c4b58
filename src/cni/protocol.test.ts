/**
 * The CNI protocol code without a kernel: environment and CNI_ARGS validation (skel.go's rules),
 * config parsing and its error codes, result conversion between versions, prevResult merging.
 * Expected shapes are written out by hand from SPEC.md §"Result" and pkg/types/{040,100}.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CNI_ERR, CniError, compareVersions, parseCniArgs, parseInvocation } from './spec.js';
import { parseConf, portSpec } from './config.js';
import { mergeResults, readResult, renderResult, type CniResult } from './result.js';
import { prepare } from './run.js';

function throwsCni(fn: () => unknown, code: number, msg?: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof CniError && e.code === code && (msg === undefined || msg.test(e.message)));
}

const ADD_ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

describe('CNI environment', () => {
  it('requires the variables each verb needs, naming them', () => {
    throwsCni(() => parseInvocation({ CNI_COMMAND: 'ADD' }), CNI_ERR.INVALID_ENV, /\[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH\]/);
    assert.equal(parseInvocation({ ...ADD_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns, '', 'DEL without a namespace');
    assert.equal(parseInvocation({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }).verb, 'GC');
    throwsCni(() => parseInvocation({ CNI_COMMAND: 'STATUS' }), CNI_ERR.INVALID_ENV, /CNI_PATH/);
    throwsCni(() => parseInvocation({}), CNI_ERR.INVALID_ENV, /CNI_COMMAND/);
    throwsCni(() => parseInvocation({ ...ADD_ENV, CNI_COMMAND: 'add' }), CNI_ERR.INVALID_ENV, /unknown/);
  });
  it('validates the container id and interface name like skel', () => {
    throwsCni(() => parseInvocation({ ...ADD_ENV, CNI_CONTAINERID: '_x' }), CNI_ERR.INVALID_ENV);
    assert.equal(parseInvocation({ ...ADD_ENV, CNI_CONTAINERID: 'a.b-c_d' }).containerId, 'a.b-c_d');
    for (const bad of ['', '.', '..', 'a/b', 'a:b', 'a b', '0123456789abcdef']) {
      throwsCni(() => parseInvocation({ ...ADD_ENV, CNI_IFNAME: bad }), CNI_ERR.INVALID_ENV);
    }
    assert.equal(parseInvocation({ ...ADD_ENV, CNI_IFNAME: '0123456789abcde' }).ifname, '0123456789abcde');
  });
  it('parses CNI_ARGS and refuses unknown keys unless IgnoreUnknown', () => {
    assert.deepEqual([...parseCniArgs('IP=10.0.0.2;MAC=02:00:00:00:00:01')], [['IP', '10.0.0.2'], ['MAC', '02:00:00:00:00:01']]);
    throwsCni(() => parseCniArgs('FOO=1'), CNI_ERR.UNSUPPORTED_FIELD, /FOO/);
    assert.equal(parseCniArgs('IgnoreUnknown=1;FOO=1').get('FOO'), '1');
    assert.equal(parseCniArgs('IgnoreUnknown=true;FOO=a=b').get('FOO'), 'a=b', 'the value keeps later =');
    throwsCni(() => parseCniArgs('novalue'), CNI_ERR.INVALID_ENV);
  });
  it('orders versions numerically', () => {
    assert.ok(compareVersions('0.10.0', '0.4.0') > 0);
    assert.equal(compareVersions('1.0.0', '1.0.0'), 0);
  });
});

describe('CNI config', () => {
  const base = { cniVersion: '1.1.0', name: 'net1', type: 'nsnet' };
  it('reads subnets, ranges, options and runtimeConfig', () => {
    const c = parseConf({
      ...base, subnets: ['10.1.0.0/24', { subnet: 'fd00::/64', gateway: 'fd00::1' }], ipMasq: false, mtu: 1400, internal: true,
      runtimeConfig: {
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: '0.0.0.0' }, { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '::1' }],
        ips: ['10.1.0.9/24'], mac: '02:00:00:00:00:09', aliases: { net1: ['web'], other: ['x'] },
      },
      args: { cni: { ips: ['fd00::9'] } },
    }, 'ADD');
    assert.deepEqual(c.subnets, [{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64', gateway: 'fd00::1' }]);
    assert.equal(c.ipMasq, false);
    assert.equal(c.mtu, 1400);
    assert.deepEqual(c.runtime.ips, ['10.1.0.9/24', 'fd00::9']);
    assert.deepEqual(c.runtime.aliases, ['web'], 'podman\'s map: this network\'s names only');
    assert.deepEqual(c.runtime.portMappings.map(portSpec), ['8080:80/tcp', '[::1]:53:53/udp']);
    const r = parseConf({ ...base, ranges: [[{ subnet: '10.2.0.0/24', gateway: '10.2.0.254' }]] }, 'ADD');
    assert.deepEqual(r.subnets, [{ subnet: '10.2.0.0/24', gateway: '10.2.0.254' }]);
  });
  it('refuses with the spec\'s codes', () => {
    throwsCni(() => parseConf({ ...base, cniVersion: '0.2.0' }, 'ADD'), CNI_ERR.INCOMPATIBLE_VERSION);
    throwsCni(() => parseConf({ ...base, cniVersion: '0.3.1' }, 'CHECK'), CNI_ERR.INCOMPATIBLE_VERSION);
    throwsCni(() => parseConf({ ...base, cniVersion: '1.0.0' }, 'GC'), CNI_ERR.INCOMPATIBLE_VERSION);
    throwsCni(() => parseConf({ ...base, name: 'a b' }, 'ADD'), CNI_ERR.INVALID_CONFIG);
    throwsCni(() => parseConf({ ...base, extra: true }, 'ADD'), CNI_ERR.UNSUPPORTED_FIELD, /"extra" = true/);
    throwsCni(() => parseConf({ ...base, ipam: { type: 'host-local' } }, 'ADD'), CNI_ERR.UNSUPPORTED_FIELD);
    throwsCni(() => parseConf({ ...base, runtimeConfig: { bandwidth: { egressRate: 1000 } } }, 'ADD'), CNI_ERR.NOT_IMPLEMENTED);
    assert.doesNotThrow(() => parseConf({ ...base, runtimeConfig: { bandwidth: {} } }, 'ADD'), 'an empty bandwidth asks for nothing');
    throwsCni(() => parseConf({ ...base, runtimeConfig: { mac: '03:00:00:00:00:01' } }, 'ADD'), CNI_ERR.INVALID_CONFIG, /unicast/);
    throwsCni(() => parseConf({ ...base, runtimeConfig: { ips: ['nope'] } }, 'ADD'), CNI_ERR.INVALID_CONFIG);
    throwsCni(() => parseConf({ ...base, runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 1 }] } }, 'ADD'), CNI_ERR.INVALID_CONFIG);
    throwsCni(() => parseConf({ ...base, 'cni.dev/valid-attachments': [{ containerID: 'x' }] }, 'GC'), CNI_ERR.INVALID_CONFIG);
  });
  it('reads both GC attachment keys', () => {
    const c = parseConf({ ...base, 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }], 'cni.dev/attachments': [{ containerID: 'b', ifname: 'eth1' }] }, 'GC');
    assert.deepEqual(c.validAttachments, [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b', ifname: 'eth1' }]);
  });
  it('prepare answers VERSION and errors without an engine', () => {
    const v = prepare({ env: { CNI_COMMAND: 'VERSION' }, stdin: 'garbage' });
    assert.ok('exit' in v && v.exit === 0 && JSON.parse(v.stdout).supportedVersions.includes('1.1.0'));
    const e = prepare({ env: ADD_ENV, stdin: '{' });
    assert.ok('exit' in e && e.exit === 1 && JSON.parse(e.stdout).code === CNI_ERR.DECODING_FAILURE);
    const ok = prepare({ env: ADD_ENV, stdin: JSON.stringify(base) });
    assert.ok(!('exit' in ok) && ok.inv.verb === 'ADD' && ok.conf.name === 'net1');
  });
});

describe('CNI results', () => {
  const mine: CniResult = {
    interfaces: [{ name: 'br0', mac: '02:00:00:00:00:01', mtu: 1400 }, { name: 'nsv1', mac: '02:00:00:00:00:02', mtu: 1400 }, { name: 'eth0', mac: '02:00:00:00:00:03', mtu: 1400, sandbox: '/proc/1/ns/net' }],
    ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 2 }, { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
    dns: { nameservers: ['10.1.0.1'] },
  };
  it('renders 1.x as is and 0.3/0.4 with ips[].version and no mtu', () => {
    assert.deepEqual(renderResult(mine, '1.1.0'), { cniVersion: '1.1.0', ...mine });
    const old = renderResult(mine, '0.4.0') as { ips: Array<{ version: string }>; interfaces: Array<{ mtu?: number }> };
    assert.deepEqual(old.ips.map((i) => i.version), ['4', '6']);
    assert.ok(old.interfaces.every((i) => i.mtu === undefined));
  });
  it('reads a 0.4.0 prevResult back (drops version) and merges with moved interface indexes', () => {
    const prev = readResult({
      cniVersion: '0.4.0', interfaces: [{ name: 'lo', sandbox: '/proc/1/ns/net' }], ips: [{ version: '4', address: '127.0.0.1/8', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '192.0.2.1' }], dns: { nameservers: ['192.0.2.53'] },
    });
    assert.deepEqual(prev.ips, [{ address: '127.0.0.1/8', interface: 0 }]);
    const m = mergeResults(prev, mine);
    assert.deepEqual(m.interfaces.map((i) => i.name), ['lo', 'br0', 'nsv1', 'eth0']);
    assert.deepEqual(m.ips.map((i) => i.interface), [0, 3, 3]);
    assert.deepEqual(m.routes, [{ dst: '0.0.0.0/0', gw: '192.0.2.1' }], 'the earlier default route wins');
    assert.deepEqual(m.dns, { nameservers: ['192.0.2.53'] });
  });
});
