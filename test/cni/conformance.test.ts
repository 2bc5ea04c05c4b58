/**
 * The nsnet CNI plugin, black-box, in the manner of cnitool: the installed executable run with
 * CNI_* and a config on stdin, one process per call. ADD → CHECK → DEL → DEL, ports, static IPs
 * and MACs, GC with a partial list, STATUS on an exhausted pool, every error path with its code,
 * results in each cniVersion, 20 parallel ADDs — proven with real traffic in the sandbox.
 */
import '../harness/sandbox.js';
import { before, after, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  CLI, OUTSIDE_V4, UPLINK_V4, inNs, ipJson, kill, makeOutside, must, nsnet, nsnetOk, ping, removeOutside, run, tcpProbe, tcpServer,
} from '../harness/world.js';
import { BIN_DIR, PLUGIN, addNetns, cni, cniErr, cniOk, conf, delNetns, installPlugin, snapshot } from './cni.js';

const NET = { subnets: ['10.60.0.0/24'] };
const net = (extra: Record<string, unknown> = {}, version?: string): Record<string, unknown> => conf('cninet', { ...NET, ...extra }, version);
const att = (id: string, netns: string, ifname = 'eth0'): { containerId: string; netns: string; ifname: string } => ({ containerId: id, netns, ifname });

let created: string[] = [];
function container(name: string): string {
  created.push(name);
  return addNetns(name);
}

before(() => {
  makeOutside();
  installPlugin();
});
after(() => {
  nsnet('reset', '--yes');
  removeOutside();
});
beforeEach(() => {
  created.forEach(delNetns);
  created = [];
  nsnetOk('reset', '--yes');
});

function endpoints(): Array<{ network: string; namespace: string; addresses: string[]; ifname: string; mac: string; hostIfname: string }> {
  return JSON.parse(nsnetOk('status', '--json')).endpoints;
}

describe('CNI plugin: lifecycle', () => {
  test('ADD → CHECK → DEL → DEL: interface, address, routes, traffic; everything released', () => {
    const ns = container('c1');
    const peer = container('c2');
    const r = cniOk({ command: 'ADD', ...att('ctr1', ns) }, net());
    assert.equal(r.cniVersion, '1.1.0');
    assert.equal(r.interfaces.length, 3);
    assert.deepEqual(r.interfaces.map((i: any) => i.name).filter((n: string) => n === 'eth0'), ['eth0']);
    assert.equal(r.interfaces[2].sandbox, ns);
    assert.deepEqual(r.ips, [{ address: '10.60.0.2/24', gateway: '10.60.0.1', interface: 2 }]);
    assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '10.60.0.1' }]);
    assert.deepEqual(r.dns.nameservers, ['10.60.0.1']);
    assert.equal(r.ips[0].version, undefined, '1.x results carry no ips[].version');

    // Oracles: ip inside the namespace and on the host.
    const inside = JSON.parse(must('ip -n c1 -j addr show eth0'))[0];
    assert.equal(inside.address, r.interfaces[2].mac);
    assert.ok(inside.addr_info.some((a: any) => `${a.local}/${a.prefixlen}` === '10.60.0.2/24'));
    assert.equal(JSON.parse(must('ip -n c1 -j route show default'))[0].gateway, '10.60.0.1');
    assert.equal(ipJson(`link show ${r.interfaces[1].name}`)[0].master, r.interfaces[0].name);

    const r2 = cniOk({ command: 'ADD', ...att('ctr2', `/run/netns/c2`) }, net());
    void peer;
    assert.equal(r2.ips[0].address, '10.60.0.3/24');
    assert.ok(ping('c1', '10.60.0.1'), 'gateway answers');
    assert.ok(ping('c1', '10.60.0.3'), 'peer on the same network answers');

    assert.equal(cni({ command: 'CHECK', ...att('ctr1', ns) }, net({ prevResult: r })).status, 0);
    cniOk({ command: 'DEL', ...att('ctr1', ns) }, net({ prevResult: r }));
    assert.equal(run('ip', ['-n', 'c1', 'link', 'show', 'eth0']).status, 1, 'eth0 gone from the container');
    assert.equal(run('ip', ['link', 'show', r.interfaces[1].name]).status, 1, 'host veth gone');
    assert.deepEqual(endpoints().map((e) => e.addresses[0]), ['10.60.0.3/24'], 'address released, the other attachment kept');
    cniOk({ command: 'DEL', ...att('ctr1', ns) }, net({ prevResult: r }));
    // CHECK after DEL: the attachment is gone.
    cniErr({ command: 'CHECK', ...att('ctr1', ns) }, net({ prevResult: r }), 106, /no attachment/);
  });

  test('DEL succeeds with the namespace gone, an empty CNI_NETNS, no prevResult — and releases the address', () => {
    const ns = container('d1');
    const r = cniOk({ command: 'ADD', ...att('gone', ns) }, net());
    const hostVeth = r.interfaces[1].name;
    delNetns('d1'); // the runtime removed the container first
    cniOk({ command: 'DEL', containerId: 'gone', ifname: 'eth0', netns: '' }, net());
    assert.equal(endpoints().length, 0, 'address released');
    assert.equal(run('ip', ['link', 'show', hostVeth]).status, 1, 'no host veth left');
    cniOk({ command: 'DEL', containerId: 'gone', ifname: 'eth0', env: { CNI_NETNS: undefined } }, net());
    // DEL for a network nsnet has never seen, and for an attachment never made.
    cniOk({ command: 'DEL', containerId: 'never', ifname: 'eth0', netns: '/run/netns/nothing' }, conf('unknown-net'));
    cniOk({ command: 'DEL', containerId: 'never', ifname: 'eth0', netns: '/run/netns/nothing' }, net());
    // The released address is handed out again once the pool wraps: here a static request proves it is free.
    const ns2 = container('d2');
    assert.equal(cniOk({ command: 'ADD', ...att('again', ns2) }, net({ runtimeConfig: { ips: ['10.60.0.2/24'] } })).ips[0].address, '10.60.0.2/24');
  });

  test('port mappings: from outside and from the host, removed by DEL', async () => {
    const ns = container('web');
    const mapping = { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' };
    const r = cniOk({ command: 'ADD', ...att('web1', ns) }, net({ runtimeConfig: { portMappings: [mapping] } }));
    const srv = await tcpServer('web', 80);
    try {
      assert.equal(tcpProbe('outside', UPLINK_V4, 8080), OUTSIDE_V4, 'outside → host:8080 → container:80, client address kept');
      const fromHost = run(process.execPath, ['-e', `require('net').connect(8080,'127.0.0.1').on('data',d=>{process.stdout.write(d);process.exit(0)}).on('error',()=>process.exit(3))`], { timeout: 5000 });
      assert.equal(fromHost.status, 0, 'host → 127.0.0.1:8080');
      assert.equal(JSON.parse(nsnetOk('ports', '--json')).length, 1);
      cniOk({ command: 'CHECK', ...att('web1', ns) }, net({ runtimeConfig: { portMappings: [mapping] }, prevResult: r }));
      cniOk({ command: 'DEL', ...att('web1', ns) }, net({ runtimeConfig: { portMappings: [mapping] }, prevResult: r }));
      assert.equal(JSON.parse(nsnetOk('ports', '--json')).length, 0, 'mapping removed');
      assert.equal(tcpProbe('outside', UPLINK_V4, 8080), null, 'port closed after DEL');
    } finally {
      kill(srv);
    }
  });

  test('static IPs and MAC: runtimeConfig.ips/mac, args.cni, CNI_ARGS IP=/MAC=', () => {
    const a = container('s1');
    const b = container('s2');
    const c = container('s3');
    const r1 = cniOk({ command: 'ADD', ...att('s1', a) }, net({ runtimeConfig: { ips: ['10.60.0.50/24'], mac: '02:00:00:00:00:50' } }));
    assert.equal(r1.ips[0].address, '10.60.0.50/24');
    assert.equal(r1.interfaces[2].mac, '02:00:00:00:00:50');
    assert.equal(JSON.parse(must('ip -n s1 -j link show eth0'))[0].address, '02:00:00:00:00:50');
    const r2 = cniOk({ command: 'ADD', ...att('s2', b), args: 'IgnoreUnknown=1;IP=10.60.0.51;MAC=02:00:00:00:00:51;K8S_POD_NAME=web' }, net());
    assert.equal(r2.ips[0].address, '10.60.0.51/24');
    assert.equal(r2.interfaces[2].mac, '02:00:00:00:00:51');
    const r3 = cniOk({ command: 'ADD', ...att('s3', c) }, net({ args: { cni: { ips: ['10.60.0.52'], mac: '02:00:00:00:00:52' } } }));
    assert.equal(r3.ips[0].address, '10.60.0.52/24');
    assert.equal(r3.interfaces[2].mac, '02:00:00:00:00:52');
    assert.ok(ping('s1', '10.60.0.51') && ping('s2', '10.60.0.52'));
    const ep = endpoints().find((e) => e.addresses[0] === '10.60.0.51/24');
    assert.deepEqual((ep as any).aliases, ['web'], 'K8S_POD_NAME becomes a DNS name');
  });

  test('GC removes exactly the attachments not listed (both key spellings)', () => {
    const ids = ['g1', 'g2', 'g3', 'g4'];
    const res = ids.map((id) => cniOk({ command: 'ADD', ...att(id, container(id)) }, net()));
    cniOk({ command: 'GC' }, net({
      'cni.dev/valid-attachments': [{ containerID: 'g1', ifname: 'eth0' }],
      'cni.dev/attachments': [{ containerID: 'g3', ifname: 'eth0' }, { containerID: 'g4', ifname: 'eth9' }],
    }));
    assert.deepEqual(endpoints().map((e) => e.addresses[0]).sort(), [res[0].ips[0].address, res[2].ips[0].address].sort());
    assert.equal(run('ip', ['-n', 'g2', 'link', 'show', 'eth0']).status, 1, 'g2 detached');
    assert.equal(run('ip', ['-n', 'g4', 'link', 'show', 'eth0']).status, 1, 'g4 detached (listed with another ifname)');
    assert.ok(ping('g1', res[2].ips[0].address.split('/')[0]), 'kept attachments still talk');
    cniOk({ command: 'GC' }, net({ 'cni.dev/valid-attachments': [] }));
    assert.equal(endpoints().length, 0);
  });

  test('STATUS: ready, then 51 when the pool is exhausted; ADD then fails with 101', () => {
    const small = conf('tiny', { subnets: ['10.61.0.0/30'] });
    cniOk({ command: 'STATUS' }, small); // the network does not exist yet: ADD would create it
    cniOk({ command: 'ADD', ...att('t1', container('t1')) }, small);
    const r = cni({ command: 'STATUS' }, small);
    assert.notEqual(r.status, 0);
    assert.equal(r.json.code, 51, r.stdout);
    assert.match(r.json.msg, /exhausted/);
    cniErr({ command: 'ADD', ...att('t2', container('t2')) }, small, 101, /no free address/);
    cniOk({ command: 'DEL', ...att('t1', '/run/netns/t1') }, small);
    cniOk({ command: 'STATUS' }, small);
  });

  test('results in each cniVersion; prevResult of each version is read back', () => {
    for (const [i, v] of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'].entries()) {
      const ns = container(`v${i}`);
      const r = cniOk({ command: 'ADD', ...att(`v${i}`, ns) }, net({ mtu: 1400 }, v));
      assert.equal(r.cniVersion, v);
      const legacy = v < '1.0.0';
      assert.equal(r.ips[0].version, legacy ? '4' : undefined, `${v}: ips[].version`);
      assert.equal(r.interfaces[2].mtu, legacy ? undefined : 1400, `${v}: interface mtu`);
      assert.equal(r.ips[0].interface, 2);
      if (v !== '0.3.0' && v !== '0.3.1') cniOk({ command: 'CHECK', ...att(`v${i}`, ns) }, net({ mtu: 1400, prevResult: r }, v));
      cniOk({ command: 'DEL', ...att(`v${i}`, ns) }, net({ mtu: 1400, prevResult: r }, v));
    }
  });

  test('VERSION, and no CNI_COMMAND', () => {
    for (const stdin of ['{"cniVersion":"1.0.0"}', '']) {
      const r = cniOk({ command: 'VERSION' }, stdin);
      assert.deepEqual(r.supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
      assert.equal(r.cniVersion, '1.1.0');
    }
    const about = run(PLUGIN, [], { input: '', env: { PATH: '/usr/bin:/bin' } });
    assert.equal(about.status, 0);
    assert.equal(about.stdout, '');
    assert.match(about.stderr, /CNI protocol versions supported: 0\.3\.0/);
  });

  test('CHECK finds what went missing: address, route, veth, firewall state', () => {
    const ns = container('k1');
    const r = cniOk({ command: 'ADD', ...att('k1', ns) }, net());
    const c = { command: 'CHECK', ...att('k1', ns) };
    must('ip -n k1 route del default');
    cniErr(c, net({ prevResult: r }), 106, /default route/);
    must('ip -n k1 route add default via 10.60.0.1');
    must(`nft delete element bridge nsnet own4 '{ "${r.interfaces[1].name}" . 10.60.0.2 }'`);
    cniErr(c, net({ prevResult: r }), 106, /firewall/);
    must(`nft add element bridge nsnet own4 '{ "${r.interfaces[1].name}" . 10.60.0.2 }'`);
    cniOk(c, net({ prevResult: r }));
    cniErr(c, net({ prevResult: { ...r, ips: [] } }), 106, /prevResult lacks/);
    must('ip -n k1 addr flush dev eth0');
    cniErr(c, net({ prevResult: r }), 106, /address 10\.60\.0\.2\/24 is missing/);
  });
});

describe('CNI plugin: error paths', () => {
  test('environment: missing variables (4), bad container id (4), bad ifname (4), unknown command (4)', () => {
    const ns = container('e1');
    cniErr({ command: 'ADD', netns: ns, ifname: 'eth0' }, net(), 4, /CNI_CONTAINERID/);
    cniErr({ command: 'ADD', containerId: 'x', ifname: 'eth0' }, net(), 4, /CNI_NETNS/);
    cniErr({ command: 'CHECK', containerId: 'x', netns: ns }, net(), 4, /CNI_IFNAME/);
    cniErr({ command: 'DEL', containerId: 'x', ifname: 'eth0', env: { CNI_PATH: undefined } }, net(), 4, /CNI_PATH/);
    cniErr({ command: 'GC', env: { CNI_PATH: undefined } }, net(), 4, /CNI_PATH/);
    cniErr({ command: 'ADD', ...att('-bad id', ns) }, net(), 4, /CNI_CONTAINERID/);
    cniErr({ command: 'ADD', ...att('ok', ns, 'waytoolonginterface0') }, net(), 4, /CNI_IFNAME/);
    cniErr({ command: 'ADD', ...att('ok', ns, 'et:h0') }, net(), 4, /CNI_IFNAME/);
    cniErr({ command: 'ADD', ...att('ok', ns, '..') }, net(), 4, /CNI_IFNAME/);
    cniErr({ command: 'FROB', ...att('ok', ns) }, net(), 4, /unknown CNI_COMMAND/);
  });

  test('config: JSON (6), versions (1), names (7), unknown fields (2), ipam (2), bandwidth (107), bad values (7)', () => {
    const ns = container('e2');
    const a = { command: 'ADD', ...att('e2', ns) };
    cniErr(a, '{"cniVersion":', 6);
    cniErr(a, '[1,2]', 6);
    cniErr(a, net({}, '0.2.0'), 1, /incompatible CNI versions/);
    cniErr(a, net({}, '9.9.9'), 1);
    cniErr({ command: 'CHECK', ...att('e2', ns) }, net({ prevResult: {} }, '0.3.1'), 1, /CHECK/);
    cniErr({ command: 'GC' }, net({}, '1.0.0'), 1, /GC/);
    cniErr({ command: 'STATUS' }, net({}, '1.0.0'), 1, /STATUS/);
    cniErr(a, conf('bad name!', NET), 7, /network name/);
    cniErr(a, net({ frobnicate: 1 }), 2, /"frobnicate" = 1/);
    cniErr(a, net({ ipam: { type: 'host-local' } }), 2, /ipam/);
    cniErr(a, conf('cninet', { ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.60.0.10' }]] }), 2, /rangeStart/);
    cniErr(a, net({ isolation: 'container' }), 2, /isolation/);
    cniErr(a, net({ runtimeConfig: { bandwidth: { ingressRate: 1000000, ingressBurst: 10000 } } }), 107, /bandwidth/);
    cniErr(a, net({ mtu: 20 }), 7, /mtu/);
    cniErr(a, net({ runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }), 7, /hostPort/);
    cniErr(a, net({ runtimeConfig: { mac: 'zz:zz' } }), 7);
    cniErr(a, net({ runtimeConfig: { mac: '01:00:5e:00:00:01' } }), 7, /unicast/);
    cniErr(a, net({ runtimeConfig: { aliases: ['not a name'] } }), 7, /alias/);
    cniErr({ ...a, args: 'FOO=bar' }, net(), 2, /FOO/);
    cniErr({ ...a, args: 'garbage' }, net(), 4, /CNI_ARGS/);
    cniErr(a, conf('cninet', { subnets: ['10.60.0.0/33'] }), 7);
  });

  test('kernel and state: netns missing (8), interface exists (104), twice (104), address taken/outside (102), port in use (103), network conflict (105)', () => {
    const ns = container('e3');
    cniErr({ command: 'ADD', ...att('e3', '/run/netns/nonexistent') }, net(), 8, /not found/);
    const r = cniOk({ command: 'ADD', ...att('e3', ns) }, net({ runtimeConfig: { portMappings: [{ hostPort: 9090, containerPort: 90, protocol: 'tcp' }] } }));
    const ns5 = container('e5');
    must('ip -n e5 link add eth0 type veth peer name eth0peer');
    cniErr({ command: 'ADD', ...att('e5', ns5) }, net(), 104);
    cniErr({ command: 'ADD', ...att('e3', ns) }, net(), 104, /already has interface eth0/);
    const ns4 = container('e4');
    cniErr({ command: 'ADD', ...att('e4', ns4) }, net({ runtimeConfig: { ips: [r.ips[0].address] } }), 102, /already used|in use/);
    cniErr({ command: 'ADD', ...att('e4', ns4) }, net({ runtimeConfig: { ips: ['10.99.0.5'] } }), 102, /outside/);
    cniErr({ command: 'ADD', ...att('e4', ns4) }, net({ runtimeConfig: { ips: ['10.60.0.1'] } }), 102, /gateway/);
    cniErr({ command: 'ADD', ...att('e4', ns4) }, net({ runtimeConfig: { portMappings: [{ hostPort: 9090, containerPort: 91, protocol: 'tcp' }] } }), 103, /9090/);
    cniErr({ command: 'ADD', ...att('e4', ns4) }, conf('cninet', { subnets: ['10.62.0.0/24'] }), 105, /other settings/);
    cniErr({ command: 'ADD', ...att('e4', ns4) }, conf('cninet', { ...NET, bridge: 'otherbr' }), 105, /bridge/);
    cniErr({ command: 'ADD', ...att('e4', ns4) }, conf('overlap', { subnets: ['10.60.0.0/16'] }), 105, /overlaps/);
    // Nothing left half-made after all that: the one good attachment only.
    assert.deepEqual(endpoints().map((e) => e.addresses[0]), [r.ips[0].address]);
  });
});

describe('CNI plugin: concurrency and the resident server', () => {
  test('20 plugin processes ADD at once: distinct addresses, all reachable, firewall state for each; then 20 DELs', async () => {
    const n = 20;
    const names = Array.from({ length: n }, (_, i) => `p${i}`);
    names.forEach(container);
    const spawnCall = (command: string, i: number, prev?: unknown): Promise<{ code: number | null; out: string }> => new Promise((resolve) => {
      const child = spawn(PLUGIN, [], {
        env: { PATH: '/usr/bin:/bin', NSNET_STATE_DIR: process.env.NSNET_STATE_DIR, CNI_COMMAND: command, CNI_CONTAINERID: `par${i}`, CNI_NETNS: `/run/netns/p${i}`, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('exit', (code) => resolve({ code, out }));
      child.stdin.end(JSON.stringify(net({ runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' }] }, ...(prev ? { prevResult: prev } : {}) })));
    });
    const adds = await Promise.all(names.map((_, i) => spawnCall('ADD', i)));
    adds.forEach((a, i) => assert.equal(a.code, 0, `ADD ${i}: ${a.out}`));
    const results = adds.map((a) => JSON.parse(a.out));
    const addrs = results.map((r) => r.ips[0].address);
    assert.equal(new Set(addrs).size, n, 'no two containers share an address');
    assert.equal(JSON.parse(nsnetOk('ports', '--json')).length, n, 'every port mapping recorded');
    for (let i = 0; i < n; i++) cniOk({ command: 'CHECK', ...att(`par${i}`, `/run/netns/p${i}`) }, net({ prevResult: results[i] }));
    assert.ok(ping('p0', addrs[n - 1].split('/')[0]) && ping(`p${n - 1}`, addrs[0].split('/')[0]), 'first and last talk');
    const dels = await Promise.all(names.map((_, i) => spawnCall('DEL', i, results[i])));
    dels.forEach((d, i) => assert.equal(d.code, 0, `DEL ${i}: ${d.out}`));
    assert.equal(endpoints().length, 0);
    assert.equal(JSON.parse(nsnetOk('ports', '--json')).length, 0);
    assert.equal(ipJson('link show master nsbr-cninet').length, 0, 'no veth left on the bridge');
  });

  test('with `nsnet serve` running, calls are served by it, with the same results and errors', async () => {
    const server = spawn(process.execPath, [CLI, 'serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let log = '';
      await new Promise<void>((resolve, reject) => {
        server.stdout!.on('data', (d) => { log += d; if (log.includes('ready')) resolve(); });
        server.once('exit', (c) => reject(new Error(`serve exited ${c}`)));
      });
      const ns = container('sv1');
      const r = cniOk({ command: 'ADD', ...att('sv1', ns) }, net({ runtimeConfig: { portMappings: [{ hostPort: 8181, containerPort: 80, protocol: 'tcp' }] } }));
      assert.equal(r.ips[0].address, '10.60.0.2/24');
      assert.ok(ping('sv1', '10.60.0.1'));
      cniOk({ command: 'CHECK', ...att('sv1', ns) }, net({ prevResult: r }));
      cniErr({ command: 'ADD', ...att('sv1', ns) }, net(), 104);
      cniOk({ command: 'DEL', ...att('sv1', ns) }, net({ prevResult: r }));
      cniOk({ command: 'DEL', ...att('sv1', ns) }, net({ prevResult: r }));
      await new Promise((res) => setTimeout(res, 100));
      assert.match(log, /served: CNI ADD cninet sv1 eth0 → 0/);
      assert.match(log, /served: CNI DEL cninet sv1 eth0 → 0/);
      assert.equal(endpoints().length, 0);
    } finally {
      kill(server);
    }
  });
});

void inNs;
void snapshot;
