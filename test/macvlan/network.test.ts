/**
 * macvlan (and ipvlan) networks end to end through the CLI, on a simulated LAN inside the
 * sandbox, proven with real traffic:
 *
 *   namespace "lan": bridge seg  ─ the physical segment (a switch)
 *        ├── lanp0 ── veth ── lanpar0   in the sandbox's root namespace (the host): the parent,
 *        │                              192.0.2.10/24, 2001:db8:1::10/64
 *        ├── lanp1 ── veth ── lanpar1   a second parent, no address (passthru tests)
 *        └── lanpe ── veth ── eth0      in namespace "peer": the other machine and the LAN's
 *                                       router, 192.0.2.1/24 + 192.0.2.50/24, 2001:db8:1::1/64;
 *                                       198.51.100.7/32 on its loopback stands for "the internet"
 */
import '../harness/sandbox.js';
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { CLI, expectRefused, inNs, run, ipJson, kernelAndStore, kill, must, nsnet, nsnetOk, ping, sh, tcpProbe, tcpServer } from '../harness/world.js';

const PEER = '192.0.2.50';
const ROUTER = '192.0.2.1';
const HOST = '192.0.2.10';
const INTERNET = '198.51.100.7';
const PEER6 = '2001:db8:1::1';

let peerServer: ChildProcess | undefined;

function makeLan(): void {
  must(`ip netns add lan
ip netns add peer
ip -n lan link add seg type bridge
ip -n lan link set seg up
ip link add lanpar0 type veth peer name lanp0 netns lan
ip link add lanpar1 type veth peer name lanp1 netns lan
ip -n lan link add lanpe type veth peer name eth0 netns peer
for p in lanp0 lanp1 lanpe; do ip -n lan link set $p master seg up; done
ip link set lanpar0 up
ip link set lanpar1 up
ip addr add ${HOST}/24 dev lanpar0
ip addr add 2001:db8:1::10/64 dev lanpar0 nodad
ip -n peer addr add ${ROUTER}/24 dev eth0
ip -n peer addr add ${PEER}/24 dev eth0
ip -n peer addr add ${PEER6}/64 dev eth0 nodad
ip -n peer addr add ${INTERNET}/32 dev lo
ip -n peer link set eth0 up
ip -n peer link set lo up`);
}

before(async () => {
  nsnet('reset', '--yes');
  makeLan();
  peerServer = await tcpServer('peer', 8080);
});
after(() => {
  kill(peerServer);
  nsnet('reset', '--yes');
  sh('ip netns del peer; ip netns del lan; ip link del lanpar0; ip link del lanpar1; true');
});

interface Ep { namespace: string; network: string; addresses: string[]; mac: string; ifname: string }
function endpoint(ns: string, network: string): Ep {
  const st = JSON.parse(nsnetOk('status', '--json')) as { endpoints: Ep[] };
  const e = st.endpoints.find((x) => x.namespace === ns && x.network === network);
  assert.ok(e, `endpoint ${ns}@${network}`);
  return e;
}
const addr = (ns: string, network: string, family: 4 | 6 = 4): string =>
  endpoint(ns, network).addresses.find((a) => a.includes(':') === (family === 6))!.split('/')[0]!;

/**
 * The sandbox's links, addresses and routes: what a network's life must leave as it found it
 * (IPv6 link-local addresses left out: the kernel adds them to the LAN's veths in its own time).
 */
function hostNet(): string {
  const noLinkLocal = (lines: string[]): string[] => lines.filter((l) => !l.includes('fe80:'));
  return [must('ip -o link show').split('\n').map((l) => l.split(':')[1]?.trim()).sort().join(' '),
    noLinkLocal(must('ip -o addr show').split('\n').map((l) => l.split(/\s+/).slice(1, 4).join(' '))).sort().join('; '),
    noLinkLocal(must('ip route show table all').split('\n')).join('\n')].join('\n');
}
const onlyLo = (ns: string): boolean => JSON.parse(must(`ip -n ${ns} -j link`)).map((l: any) => l.ifname).join(' ') === 'lo';

function lan(...extra: string[]): void {
  nsnetOk('network', 'create', 'lan', '--driver', 'macvlan', '--parent', 'lanpar0', '--subnet', '192.0.2.0/24', '--gateway', ROUTER, ...extra);
}

describe('macvlan networks on a simulated LAN', () => {
  afterEach(() => { nsnetOk('reset', '--yes'); });
  test('bridge mode: endpoints are on the LAN — the other machine, the internet via the LAN router, each other; no NAT', async () => {
    const before = hostNet();
    lan('--subnet', '2001:db8:1::/64', '--gateway', PEER6);
    for (const n of ['a', 'b']) nsnetOk('ns', 'add', n);
    assert.match(nsnetOk('connect', 'lan', 'a', '--ip', '192.0.2.20', '--mac', '02:00:00:00:00:20'), /a connected to lan: eth0 192\.0\.2\.20\/24 2001:db8:1::2\/64 \(02:00:00:00:00:20\)/);
    nsnetOk('connect', 'lan', 'b');

    // Oracle: a macvlan in bridge mode on lanpar0, addressed, default routes via the LAN's router.
    const l = JSON.parse(must('ip -n a -d -j link show eth0'))[0];
    assert.equal(l.linkinfo.info_kind, 'macvlan');
    assert.equal(l.linkinfo.info_data.mode, 'bridge');
    assert.equal(l.address, '02:00:00:00:00:20');
    assert.equal(l.link_netnsid, 0, 'its parent is in another namespace (the host)');
    assert.equal(JSON.parse(must('ip -n a -j route show default'))[0].gateway, ROUTER);
    assert.equal(JSON.parse(must('ip -n a -6 -j route show default'))[0].gateway, PEER6);
    assert.equal(ipJson('link show').filter((x: any) => x.ifname.startsWith('nsm') || x.ifname.startsWith('nsv')).length, 0, 'nothing nsnet-made on the host');

    assert.ok(ping('a', PEER), 'a → the other machine');
    assert.ok(ping('a', INTERNET), 'a → beyond the router (default route via the LAN gateway)');
    assert.ok(ping('a', PEER6), 'a → the other machine over IPv6');
    assert.ok(ping('a', addr('b', 'lan')), 'a → b');
    assert.ok(ping('b', addr('a', 'lan', 6)), 'b → a over IPv6');
    assert.equal(tcpProbe('a', PEER, 8080), '192.0.2.20', 'the other machine sees a\'s own address: no NAT');
    // The other machine reaches the endpoints directly too.
    const srv = await tcpServer('b', 7000);
    try {
      assert.equal(tcpProbe('peer', addr('b', 'lan'), 7000), ROUTER, 'b sees the other machine\'s own (primary) address');
    } finally { kill(srv); }

    // The known limit: the host and its macvlan endpoints cannot talk through the parent.
    assert.ok(!ping('a', HOST), 'a cannot reach the host through the parent');
    assert.equal(sh(`ping -c1 -W1 ${addr('a', 'lan')}`).status === 0, false, 'the host cannot reach a');

    nsnetOk('disconnect', 'lan', 'a');
    assert.ok(onlyLo('a'), 'the macvlan left the namespace');
    assert.ok(ping('b', PEER), 'b unaffected');
    nsnetOk('network', 'rm', 'lan', '--force');
    assert.ok(onlyLo('b'));
    assert.equal(hostNet(), before, 'the host as before');
  });

  test('private mode: endpoints reach the LAN but not each other', () => {
    lan('--mode', 'private');
    for (const n of ['a', 'b']) { nsnetOk('ns', 'add', n); nsnetOk('connect', 'lan', n); }
    assert.equal(JSON.parse(must('ip -n a -d -j link show eth0'))[0].linkinfo.info_data.mode, 'private');
    assert.ok(ping('a', PEER) && ping('b', PEER), 'both reach the other machine');
    assert.ok(!ping('a', addr('b', 'lan')), 'a cannot reach b');
    assert.ok(!ping('b', addr('a', 'lan')), 'b cannot reach a');
  });

  test('vepa mode: endpoint-to-endpoint traffic goes through the LAN switch (works only with a hairpin port there)', () => {
    lan('--mode', 'vepa');
    for (const n of ['a', 'b']) { nsnetOk('ns', 'add', n); nsnetOk('connect', 'lan', n); }
    assert.equal(JSON.parse(must('ip -n a -d -j link show eth0'))[0].linkinfo.info_data.mode, 'vepa');
    assert.ok(ping('a', PEER), 'a → the other machine');
    try {
      assert.ok(!ping('a', addr('b', 'lan')), 'a → b fails: the switch does not send frames back out of their port');
      must('ip -n lan link set lanp0 type bridge_slave hairpin on');
      assert.ok(ping('a', addr('b', 'lan')), 'a → b through the switch once its port hairpins (802.1Qbg reflective relay)');
    } finally { must('ip -n lan link set lanp0 type bridge_slave hairpin off'); }
  });

  test('shim: the host and its endpoints talk; DNS names on the shim address; disconnect removes the host route', async () => {
    const before = hostNet();
    lan('--shim', '192.0.2.250');
    const shim = ipJson('-d link show nsm-lan')[0];
    assert.equal(shim.linkinfo.info_kind, 'macvlan');
    assert.equal(shim.linkinfo.info_data.mode, 'bridge');
    for (const n of ['a', 'b']) nsnetOk('ns', 'add', n);
    nsnetOk('connect', 'lan', 'a', '--alias', 'web');
    nsnetOk('connect', 'lan', 'b');
    const a = addr('a', 'lan');
    assert.equal(must(`ip route show ${a}/32`).trim(), `${a} dev nsm-lan proto 110 scope link src 192.0.2.250`);

    assert.ok(sh(`ping -c1 -W1 ${a}`).status === 0, 'host → a through the shim');
    assert.ok(ping('a', '192.0.2.250'), 'a → the host\'s shim address');
    const srv = await tcpServer('a', 7001);
    try {
      const r = sh(`${process.execPath} -e "require('net').connect(7001, '${a}').on('data', (d) => { process.stdout.write(d); process.exit(0); }).on('error', () => process.exit(3))"`);
      assert.equal(JSON.parse(r.stdout).from, '192.0.2.250', 'the host connects from its shim address');
    } finally { kill(srv); }
    assert.ok(ping('a', PEER) && ping('a', addr('b', 'lan')), 'the LAN and b still reachable');

    // DNS: the service listens on the shim address; names resolve as on a bridge network.
    assert.match(fs.readFileSync('/etc/netns/b/resolv.conf', 'utf8'), /nameserver 192\.0\.2\.250/);
    assert.match(inNs('b', ['getent', 'hosts', 'web']).stdout, new RegExp(`^${a.replace(/\./g, '\\.')}\\s+web`));
    assert.match(inNs('a', ['getent', 'hosts', 'b']).stdout, new RegExp(`^${addr('b', 'lan').replace(/\./g, '\\.')}\\s`));

    nsnetOk('disconnect', 'lan', 'a');
    assert.equal(must(`ip route show ${a}/32`).trim(), '', 'host route gone');
    nsnetOk('network', 'rm', 'lan', '--force');
    assert.equal(hostNet(), before, 'shim, its address and routes gone');
  });

  test('without a shim a macvlan network has no DNS service: resolv.conf names the host\'s upstreams', () => {
    lan();
    nsnetOk('ns', 'add', 'a');
    nsnetOk('connect', 'lan', 'a');
    assert.doesNotMatch(fs.readFileSync('/etc/netns/a/resolv.conf', 'utf8'), /192\.0\.2\.|dns\.nsnet/);
  });

  test('IPAM: --ip-range bounds dynamic addresses, --aux-address and the gateway are never handed out', () => {
    lan('--ip-range', '192.0.2.128/30', '--aux-address', 'printer=192.0.2.129', '--aux-address', 'nas=192.0.2.131');
    for (const n of ['a', 'b', 'c', 'd']) nsnetOk('ns', 'add', n);
    nsnetOk('connect', 'lan', 'a');
    nsnetOk('connect', 'lan', 'b');
    assert.deepEqual([addr('a', 'lan'), addr('b', 'lan')], ['192.0.2.128', '192.0.2.130']);
    expectRefused(['connect', 'lan', 'c'], /no free address left in 192\.0\.2\.128\/30 \(the ip range of 192\.0\.2\.0\/24\)/);
    expectRefused(['connect', 'lan', 'c', '--ip', '192.0.2.129'], /192\.0\.2\.129 on network lan is reserved \(aux address printer\)/);
    expectRefused(['connect', 'lan', 'c', '--ip', ROUTER], /gateway/);
    nsnetOk('connect', 'lan', 'c', '--ip', '192.0.2.60');
    assert.ok(ping('c', PEER));
  });

  test('passthru: the endpoint takes the parent (and its MAC); a second one is refused', () => {
    const parentMac = ipJson('link show lanpar1')[0].address;
    nsnetOk('network', 'create', 'pt', '--driver', 'macvlan', '--parent', 'lanpar1', '--mode', 'passthru', '--subnet', '192.0.2.0/24', '--gateway', ROUTER,
      '--ip-range', '192.0.2.160/28');
    for (const n of ['a', 'b']) nsnetOk('ns', 'add', n);
    nsnetOk('connect', 'pt', 'a');
    assert.equal(endpoint('a', 'pt').mac, parentMac);
    assert.equal(JSON.parse(must('ip -n a -d -j link show eth0'))[0].linkinfo.info_data.mode, 'passthru');
    assert.ok(ping('a', PEER), 'a reaches the LAN through the passthru parent');
    expectRefused(['connect', 'pt', 'b'], /network pt is in passthru mode and its parent lanpar1 already serves namespace a: passthru takes one endpoint/);
    nsnetOk('disconnect', 'pt', 'a');
    assert.equal(ipJson('link show lanpar1')[0].address, parentMac, 'the parent keeps its MAC');
  });

  test('reset removes everything: interfaces in adopted namespaces, the shim, its routes', () => {
    const before = hostNet();
    must('ip netns add adopted');
    try {
      lan('--shim', '192.0.2.250');
      nsnetOk('ns', 'add', 'a');
      nsnetOk('connect', 'lan', 'a');
      nsnetOk('connect', 'lan', 'adopted');
      assert.ok(!onlyLo('adopted'));
      nsnetOk('reset', '--yes');
      assert.ok(onlyLo('adopted'), 'the adopted namespace kept, its macvlan removed');
      assert.equal(must('ip netns list').includes('a '), false);
      assert.equal(hostNet(), before);
      assert.deepEqual(JSON.parse(nsnetOk('status', '--json')).networks, []);
    } finally { sh('ip netns del adopted'); }
  });

  test('repair: a vanished interface drops its endpoint; a deleted shim comes back with its routes', () => {
    lan('--shim', '192.0.2.250');
    for (const n of ['a', 'b']) { nsnetOk('ns', 'add', n); nsnetOk('connect', 'lan', n); }
    must('ip -n a link del eth0; ip link del nsm-lan');
    const r = JSON.parse(nsnetOk('repair', '--json'));
    assert.deepEqual(r.rolledBack, ['a@lan']);
    assert.ok(sh(`ping -c1 -W1 ${addr('b', 'lan')}`).status === 0, 'host → b through the rebuilt shim');
  });

  test('crash after the interface exists, before it is recorded ready: repair removes it; connect works again', () => {
    lan('--shim', '192.0.2.250');
    nsnetOk('ns', 'add', 'a');
    const r = run(process.execPath, [CLI, 'connect', 'lan', 'a'], { env: { ...process.env, NSNET_CRASH_AT: 'connect:attached' } });
    assert.equal(r.status, null, 'killed by SIGKILL at the crash point');
    assert.ok(!onlyLo('a'), 'the interface was made before the crash');
    assert.deepEqual(JSON.parse(nsnetOk('repair', '--json')).rolledBack, ['a@lan']);
    assert.ok(onlyLo('a'), 'repair removed it');
    assert.equal(must('ip route show dev nsm-lan').trim(), '', 'and the host route through the shim');
    nsnetOk('connect', 'lan', 'a');
    assert.ok(ping('a', PEER));
    nsnetOk('ns', 'rm', 'a');
    assert.equal(must('ip route show dev nsm-lan').trim(), '', 'ns rm disconnects first');
  });

  test('topology file: apply, a changed mode is a replace, down leaves nothing', () => {
    const before = hostNet();
    const file = '/tmp/macvlan-topology.yaml';
    const write = (mode: string): void => fs.writeFileSync(file, [
      'networks:', '  lan:', '    driver: macvlan', '    parent: lanpar0', `    mode: ${mode}`, '    subnet: 192.0.2.0/24', `    gateway: ${ROUTER}`,
      '    ipRange: 192.0.2.64/26',
      'namespaces:', '  a: { networks: [lan] }', '  b: { networks: { lan: { ip: 192.0.2.30 } } }', '',
    ].join('\n'));
    write('bridge');
    nsnetOk('apply', '-f', file);
    assert.ok(ping('a', '192.0.2.30') && ping('a', PEER));
    assert.equal(addr('a', 'lan'), '192.0.2.64', 'the first address of the range (not the subnet\'s network address: usable)');
    assert.equal(nsnetOk('plan', '-f', file).trim(), 'no changes');
    write('private');
    assert.match(nsnetOk('plan', '-f', file), /~ network lan \(mode bridge → private\)/);
    nsnetOk('apply', '-f', file);
    assert.ok(!ping('a', '192.0.2.30'), 'private now');
    nsnetOk('down', '-f', file);
    assert.equal(hostNet(), before);
  });
});

describe('macvlan: bad input is refused clearly and changes nothing', () => {
  before(() => {
    nsnetOk('reset', '--yes');
  });
  test('network create', () => {
    lan();
    nsnetOk('ns', 'add', 'a');
    nsnetOk('connect', 'lan', 'a');
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'nope0', '--subnet', '10.99.0.0/24'], /parent interface nope0 of macvlan network x not found on the host/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lo', '--subnet', '10.99.0.0/24'], /parent lo is the loopback interface/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--subnet', '10.99.0.0/24'], /a macvlan network needs --parent/, 2);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1'], /a macvlan network needs --subnet/, 2);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar0', '--subnet', '10.99.0.0/24'],
      /subnet 10\.99\.0\.0\/24 of network x does not match the LAN on parent lanpar0 \(lanpar0 has 192\.0\.2\.10\/24\)/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar0', '--mode', 'passthru', '--subnet', '192.0.2.0/24'], /overlaps 192\.0\.2\.0\/24 of network lan/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar0', '--mode', 'passthru', '--subnet', '2001:db8:1::/64'],
      /parent lanpar0 is already used by macvlan network lan \(mode bridge\): passthru mode needs the parent to itself/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1', '--mode', 'tunnel', '--subnet', '10.99.0.0/24'], /invalid macvlan mode "tunnel".*bridge, private, vepa, passthru/, 2);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1', '--mode', 'private', '--subnet', '10.99.0.0/24', '--shim', '10.99.0.9'], /--shim needs mode bridge/, 2);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1', '--subnet', '10.99.0.0/24', '--ip-range', '10.98.0.0/28'], /ip range 10\.98\.0\.0\/28 of network x is not inside/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1', '--subnet', '10.99.0.0/24', '--aux-address', 'gw=10.99.0.1'], /aux address gw 10\.99\.0\.1 is the gateway/);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1', '--subnet', '10.99.0.0/24', '--aux-address', 'oops'], /invalid --aux-address "oops": use NAME=IP/, 2);
    expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar0', '--subnet', '2001:db8:1::/64', '--shim', '2001:db8:1::10'],
      /shim address 2001:db8:1::10 of network x is already an address of this host/);
    expectRefused(['network', 'create', 'x', '--parent', 'lanpar1'], /--parent, --mode and --shim apply to macvlan\/ipvlan networks/, 2);
  });

  test('a parent a foreign passthru macvlan holds', () => {
    must('ip link add fpt link lanpar1 type macvlan mode passthru');
    try {
      expectRefused(['network', 'create', 'x', '--driver', 'macvlan', '--parent', 'lanpar1', '--subnet', '10.99.0.0/24'],
        /parent lanpar1 already carries macvlan interface fpt \(mode passthru\): passthru mode needs the parent to itself/);
    } finally { must('ip link del fpt'); }
  });

  test('no published ports, no unenforceable policies', () => {
    nsnetOk('ns', 'add', 'b');
    expectRefused(['connect', 'lan', 'b', '-p', '8080:80'], /cannot publish ports on macvlan network lan: it has no NAT/, 2);
    expectRefused(['publish', 'a', '8080:80'], /cannot publish ports on macvlan network lan/, 2);
    expectRefused(['publish', 'a', '8080:80', '--network', 'lan'], /cannot publish ports on macvlan network lan/, 2);
    expectRefused(['policy', 'add', '--deny', '--from', 'lan', '--to', 'outside'], /cannot be enforced for macvlan network lan: .*never passes the host's firewall/, 2);
    expectRefused(['policy', 'add', '--deny', '--from', 'outside', '--to', 'a'], /cannot be enforced for namespace a on macvlan network lan/, 2);
    // A policy that names b first, then b joins the macvlan network: refused too.
    nsnetOk('network', 'create', 'br', '--subnet', '10.77.0.0/24');
    nsnetOk('connect', 'br', 'b');
    nsnetOk('policy', 'add', '--name', 'pb', '--deny', '--from', 'b', '--to', '10.0.0.0/8');
    expectRefused(['connect', 'lan', 'b'], /policy pb cannot be enforced for namespace b on macvlan network lan/, 2);
  });

  test('a macvlan interface name already in the namespace', () => {
    nsnetOk('ns', 'add', 'c');
    must('ip -n c link add eth5 type veth peer name eth6');
    expectRefused(['connect', 'lan', 'c', '--ifname', 'eth5'], /link eth5 already exists in c/);
  });
  after(() => { nsnetOk('reset', '--yes'); });
});

/** ipvlan needs CONFIG_IPVLAN; probe the kernel as an independent oracle (`ip link`). */
const ipvlanProbe = sh('ip link add ivprobe link lo type ipvlan mode l2 2>&1; ip link del ivprobe 2>/dev/null; true').stdout;
const NO_IPVLAN = /unknown device type/i.test(ipvlanProbe) ? 'this kernel has no ipvlan support (CONFIG_IPVLAN): ip link add … type ipvlan says "Unknown device type"' : undefined;

describe('ipvlan networks', () => {
  afterEach(() => { nsnetOk('reset', '--yes'); });
  test('where the kernel lacks ipvlan: create names the missing support and changes nothing', { skip: NO_IPVLAN ? false : 'this kernel has ipvlan' }, () => {
    expectRefused(['network', 'create', 'l2', '--driver', 'ipvlan', '--parent', 'lanpar0', '--subnet', '192.0.2.0/24'],
      /this kernel has no ipvlan support \(CONFIG_IPVLAN, module ipvlan\): cannot create ipvlan network l2/);
  });

  test('l2 mode: endpoints share the parent\'s MAC, reach the other machine and each other', { skip: NO_IPVLAN ?? false }, () => {
    nsnetOk('network', 'create', 'l2', '--driver', 'ipvlan', '--parent', 'lanpar0', '--subnet', '192.0.2.0/24', '--gateway', ROUTER, '--ip-range', '192.0.2.200/29');
    for (const n of ['a', 'b']) { nsnetOk('ns', 'add', n); nsnetOk('connect', 'l2', n); }
    const parentMac = ipJson('link show lanpar0')[0].address;
    assert.equal(JSON.parse(must('ip -n a -j link show eth0'))[0].address, parentMac);
    assert.equal(JSON.parse(must('ip -n a -d -j link show eth0'))[0].linkinfo.info_kind, 'ipvlan');
    assert.ok(ping('a', PEER) && ping('a', addr('b', 'l2')));
    expectRefused(['network', 'create', 'mv', '--driver', 'macvlan', '--parent', 'lanpar0', '--subnet', '2001:db8:1::/64'],
      /parent lanpar0 is already used by ipvlan network l2.*not both/);
    nsnetOk('reset', '--yes');
    assert.ok(onlyLo('a') || !must('ip netns list').includes('a'));
  });

  test('kernel and store untouched by the probe', { skip: NO_IPVLAN ? false : 'this kernel has ipvlan' }, () => {
    const before = kernelAndStore();
    nsnet('network', 'create', 'l2', '--driver', 'ipvlan', '--parent', 'lanpar0', '--subnet', '192.0.2.0/24');
    assert.equal(kernelAndStore(), before);
  });
});
