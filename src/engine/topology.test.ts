import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isNsnetError } from '../errors.js';
import { defaultPolicyName, formatPath, loadTopology, parseTopology } from './topology.js';
import type { Topology } from './types.js';

/** Joins lines with newlines, so that line numbers in a test can be counted on the page. */
const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`;

const parse = (text: string): Topology => parseTopology(text, 'topology.yaml');

/** The error must be TOPOLOGY_INVALID with exactly `message`, one line. */
function bad(text: string, message: string): void {
  assert.throws(
    () => parse(text),
    (e: unknown) => {
      assert.ok(isNsnetError(e, 'TOPOLOGY_INVALID'), `expected TOPOLOGY_INVALID, got ${String(e)}`);
      assert.equal(e.message, message);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    },
  );
}

const FRONT = 'networks:\n  frontend:\n    subnet: 192.168.10.0/24\n';

describe('parseTopology: valid files', () => {
  it('parses the format of the issue', () => {
    const text = yaml(
      'networks:',
      '  frontend:',
      '    subnets: [192.168.10.0/24, "fd00:10::/64"]',
      '    gateway: 192.168.10.1',
      '    internal: false',
      '    masquerade: true',
      '    mtu: 1500',
      '    ipv6: true',
      '    bridge: br-front',
      '  backend: {}',
      'namespaces:',
      '  web:',
      '    networks:',
      '      frontend: { ip: 192.168.10.10, ifname: eth0, aliases: [www] }',
      '  api:',
      '    networks: [backend]',
      '  lonely: {}',
    );
    assert.deepEqual(parse(text), {
      source: 'topology.yaml',
      networks: [
        {
          name: 'frontend',
          subnets: ['192.168.10.0/24', 'fd00:10::/64'],
          gateways: ['192.168.10.1'],
          internal: false,
          masquerade: true,
          ipv6: true,
          mtu: 1500,
          bridge: 'br-front',
        },
        { name: 'backend' },
      ],
      namespaces: [{ name: 'web' }, { name: 'api' }, { name: 'lonely' }],
      endpoints: [
        { network: 'frontend', namespace: 'web', ifname: 'eth0', ips: ['192.168.10.10'], aliases: ['www'] },
        { network: 'backend', namespace: 'api', ifname: 'eth0' },
      ],
      publish: [],
      policies: [],
    });
  });

  it('takes an empty file, a comment, {} and empty sections as an empty topology', () => {
    const empty = { source: 'topology.yaml', networks: [], namespaces: [], endpoints: [], publish: [], policies: [] };
    for (const text of ['', '\n', '# nothing yet\n', '{}\n', 'networks:\nnamespaces:\n', 'networks: {}\nnamespaces: {}\n', '---\n']) {
      assert.deepEqual(parse(text), empty, JSON.stringify(text));
    }
  });

  it('accepts null for a network, a namespace, its networks and an attachment', () => {
    const t = parse(yaml('networks:', '  a:', '  b:', 'namespaces:', '  x:', '  y:', '    networks:', '  z:', '    networks:', '      a:', '      b: {}'));
    assert.deepEqual(t.networks, [{ name: 'a' }, { name: 'b' }]);
    assert.deepEqual(t.namespaces, [{ name: 'x' }, { name: 'y' }, { name: 'z' }]);
    assert.deepEqual(t.endpoints, [
      { network: 'a', namespace: 'z', ifname: 'eth0' },
      { network: 'b', namespace: 'z', ifname: 'eth1' },
    ]);
  });

  it('writes addresses, CIDRs and MACs in canonical form and folds the singular keys into lists', () => {
    const t = parse(yaml(
      'networks:',
      '  n:',
      '    subnet: "FD00:0010:0:0::/64"',
      '    gateway: "fd00:10:0::1"',
      'namespaces:',
      '  x:',
      '    networks:',
      '      n: { ip: "FD00:10::00AB", mac: "02:AA:BB:CC:DD:EE" }',
    ));
    assert.deepEqual(t.networks, [{ name: 'n', subnets: ['fd00:10::/64'], gateways: ['fd00:10::1'] }]);
    assert.deepEqual(t.endpoints, [{ network: 'n', namespace: 'x', ifname: 'eth0', ips: ['fd00:10::ab'], mac: '02:aa:bb:cc:dd:ee' }]);
  });

  it('names interfaces eth0, eth1 … in declaration order, skipping names taken explicitly', () => {
    const t = parse(yaml(
      'networks: { a: {}, b: {}, c: {}, d: {} }',
      'namespaces:',
      '  x:',
      '    networks:',
      '      a: {}',
      '      b: { ifname: eth0 }',
      '      c: {}',
      '      d: { ifname: eth2 }',
      '  y:',
      '    networks: [d, c]',
    ));
    assert.deepEqual(t.endpoints.map((e) => `${e.namespace}@${e.network}=${e.ifname}`), [
      'x@a=eth1', 'x@b=eth0', 'x@c=eth3', 'x@d=eth2', 'y@d=eth0', 'y@c=eth1',
    ]);
  });

  it('accepts a static address per subnet, and aliases and MACs', () => {
    const t = parse(yaml(
      'networks:',
      '  n: { subnets: [10.1.0.0/24, "fd00:1::/64"], gateways: [10.1.0.254] }',
      'namespaces:',
      '  x:',
      '    networks:',
      '      n: { ips: [10.1.0.1, "fd00:1::2"], aliases: [db, db.internal], mac: "02:00:00:00:00:01" }',
    ));
    // 10.1.0.1 is free: the gateway is .254, not the default .1.
    assert.deepEqual(t.endpoints, [{
      network: 'n', namespace: 'x', ifname: 'eth0', ips: ['10.1.0.1', 'fd00:1::2'], mac: '02:00:00:00:00:01', aliases: ['db', 'db.internal'],
    }]);
  });

  it('reads `publish:` as the issue writes it: spec strings and mappings, normalised', () => {
    const t = parse(yaml(
      'networks:',
      '  store: { internal: true }',
      '  frontend: {}',
      '  extra: { subnets: ["fd00:1::/64"] }',
      'namespaces:',
      '  web:',
      '    networks: [store, frontend, extra]',
      '    publish:',
      '      - "80:80/tcp"',
      '      - "127.0.0.1:8443:443"',
      '      - { spec: "8080:80", network: frontend, from: [203.0.113.0/24, 198.51.100.7] }',
      '      - "0.0.0.0:5000-5002:6000-6002/UDP"',
      '      - { spec: "[2001:db8::1]:9000:90", network: extra }',
      '  api:',
      '    networks: [frontend]',
      '    publish: []',
    ));
    // Plain strings are one group; the network left out is the first non-internal one.
    assert.deepEqual(t.publish, [
      { namespace: 'web', specs: ['80:80/tcp', '127.0.0.1:8443:443/tcp', '5000-5002:6000-6002/udp'], network: 'frontend' },
      { namespace: 'web', specs: ['8080:80/tcp'], network: 'frontend', from: ['203.0.113.0/24', '198.51.100.7/32'] },
      { namespace: 'web', specs: ['[2001:db8::1]:9000:90/tcp'], network: 'extra' },
    ]);
  });

  it('reads `policies:` with canonical selectors, ports and default names', () => {
    const t = parse(yaml(
      'networks: { frontend: {}, backend: {}, database: {} }',
      'namespaces:',
      '  app1: { networks: [backend] }',
      'policies:',
      '  - { action: allow, from: frontend, to: backend }',
      '  - { action: allow, from: app1, to: database, ports: ["3306/tcp"], priority: 10 }',
      '  - { action: deny,  from: frontend, to: database, name: no-fe-db }',
      '  - { action: deny, from: "10.9.0.5", to: "ns:app1", ports: [53, "8000-8100/UDP"], priority: 0 }',
      '  - { action: allow, from: outside, to: "network:frontend", ports: ["80"] }',
      '  - { action: deny, from: backend, to: "cidr:2001:db8::/32" }',
    ));
    assert.deepEqual(t.policies, [
      { name: 'topology-0', action: 'allow', from: 'network:frontend', to: 'network:backend' },
      { name: 'topology-1', action: 'allow', from: 'ns:app1', to: 'network:database', ports: ['3306/tcp'], priority: 10 },
      { name: 'no-fe-db', action: 'deny', from: 'network:frontend', to: 'network:database' },
      { name: 'topology-3', action: 'deny', from: '10.9.0.5/32', to: 'ns:app1', ports: ['53', '8000-8100/udp'], priority: 0 },
      { name: 'topology-4', action: 'allow', from: 'outside', to: 'network:frontend', ports: ['80'] },
      { name: 'topology-5', action: 'deny', from: 'network:backend', to: '2001:db8::/32' },
    ]);
    // The same file gives the same names (what makes a second apply plan nothing).
    assert.deepEqual(parseTopology(yaml('networks: { a: {} }', 'policies:', '  - { action: deny, from: a, to: outside }'), '/etc/nsnet/My App!.v2.yaml').policies, [
      { name: 'My-App-.v2-0', action: 'deny', from: 'network:a', to: 'outside' },
    ]);
  });

  it('derives default policy names that fit the name pattern', () => {
    assert.equal(defaultPolicyName('/srv/three-tier.yaml', 0), 'three-tier-0');
    assert.equal(defaultPolicyName('three-tier.yml', 12), 'three-tier-12');
    assert.equal(defaultPolicyName('/srv/.hidden.yaml', 1), 'hidden-1');
    assert.equal(defaultPolicyName('/srv/--x y.yaml', 1), 'x-y-1');
    assert.equal(defaultPolicyName('/srv/#!.yaml', 2), 'policy-2');
    assert.equal(defaultPolicyName('', 0), 'policy-0');
    const long = defaultPolicyName(`/srv/${'a'.repeat(100)}.yaml`, 123);
    assert.equal(long, `${'a'.repeat(60)}-123`);
    for (const n of ['three-tier-0', 'hidden-1', 'x-y-1', long]) assert.match(n, /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
  });

  it('resolves anchors and aliases', () => {
    const t = parse(yaml('networks:', '  a: &common { internal: true, mtu: 9000 }', '  b: *common'));
    assert.deepEqual(t.networks, [{ name: 'a', internal: true, mtu: 9000 }, { name: 'b', internal: true, mtu: 9000 }]);
  });

  it('accepts names at the edges of the pattern', () => {
    const long = `a${'b'.repeat(63)}`;
    const t = parse(yaml('networks:', `  ${long}: {}`, '  0.a_b-c: {}', 'namespaces:', `  ${long}: {}`));
    assert.deepEqual(t.networks.map((n) => n.name), [long, '0.a_b-c']);
    assert.deepEqual(t.namespaces, [{ name: long }]);
  });
});

describe('parseTopology: errors name file, line, column and key', () => {
  it('reports YAML syntax errors with their position', () => {
    bad(yaml('networks:', '  a: {}', '  a: {}'), 'topology.yaml:3:3: Map keys must be unique');
    bad(yaml('networks:', '  a: b: c'), 'topology.yaml:2:6: Nested mappings are not allowed in compact mappings');
    bad(yaml('networks:', '\ta: {}'), 'topology.yaml:2:1: Tabs are not allowed as indentation');
    bad(yaml('networks: {}', '---', 'namespaces: {}'), "topology.yaml:2:1: a topology file holds one YAML document (found a second '---')");
    bad(yaml('networks:', '  a: !fancy {}'), 'topology.yaml:2:6: Unresolved tag: !fancy');
    bad(yaml('networks:', '  a: *common'), 'topology.yaml:2:6: alias *common has no anchor before it');
    bad(yaml('networks:', '  ? [a, b]', '  : {}'), 'topology.yaml:2:5: a key must be a plain name, not a list or a mapping');
  });

  it('checks per-network DNS settings', () => {
    assert.deepEqual(parse(yaml('networks:', '  a: { dns: false }', '  b: { dnsServers: [10.0.0.53, "fd00::53#5353"] }')).networks.map((n) => [n.dns, n.dnsServers]),
      [[false, undefined], [undefined, ['10.0.0.53', 'fd00::53#5353']]]);
    bad(yaml('networks:', '  a:', '    dnsServers: [10.0.0.53, resolver.example]'), 'topology.yaml:3:29: networks.a.dnsServers[1]: invalid DNS server "resolver.example": use an IP address, optionally #PORT');
    bad(yaml('networks:', '  a:', '    dns: false', '    dnsServers: [10.0.0.53]'), 'topology.yaml:4:5: networks.a.dnsServers: dnsServers given, but dns: false turns DNS off for this network');
  });

  it('refuses unknown keys, pointing at the key and listing the allowed ones', () => {
    bad(yaml('version: 1'), 'topology.yaml:1:1: version: unknown key (expected one of: networks, namespaces, policies)');
    bad(
      yaml('networks:', '  frontend:', '    subnets: [192.168.10.0/24]', '    gatway: 192.168.10.1'),
      'topology.yaml:4:5: networks.frontend.gatway: unknown key ' +
        '(expected one of: driver, subnet, subnets, gateway, gateways, internal, masquerade, mtu, dns, dnsServers, ipv6, bridge, parent, mode, ipRange, ipRanges, auxAddresses, shim)',
    );
    bad(
      yaml('networks: { n: {} }', 'namespaces:', '  x:', '    networks:', '      n: { ip4: 10.0.0.1 }'),
      'topology.yaml:5:12: namespaces.x.networks.n.ip4: unknown key (expected one of: ip, ips, ifname, mac, aliases)',
    );
    bad(yaml('namespaces:', '  x:', '    network: [n]'), 'topology.yaml:3:5: namespaces.x.network: unknown key (expected one of: networks, publish)');
  });

  it('refuses values of the wrong type', () => {
    bad(yaml('- web'), 'topology.yaml:1:1: expected a mapping with networks: and namespaces:, got a list');
    bad(yaml('just text'), 'topology.yaml:1:1: expected a mapping with networks: and namespaces:, got "just text"');
    bad(yaml('networks: [a, b]'), 'topology.yaml:1:11: networks: expected a mapping, got a list');
    bad(yaml('networks:', '  a: { internal: "yes" }'), 'topology.yaml:2:18: networks.a.internal: expected true or false, got "yes"');
    bad(yaml('networks:', '  a:', '    mtu: big'), 'topology.yaml:3:10: networks.a.mtu: expected a number, got "big"');
    bad(yaml('networks:', '  a:', '    mtu: 1500.5'), 'topology.yaml:3:10: networks.a.mtu: expected an integer, got 1500.5');
    bad(yaml('networks:', '  a:', '    subnets: 10.0.0.0/24'), 'topology.yaml:3:14: networks.a.subnets: expected a list, got "10.0.0.0/24"');
    bad(yaml('networks:', '  a: { driver: overlay }'), 'topology.yaml:2:16: networks.a.driver: unknown driver "overlay" (expected: bridge, macvlan, ipvlan)');
    bad(yaml('namespaces:', '  x:', '    networks: 5'), 'topology.yaml:3:15: namespaces.x.networks: expected a list or a mapping, got 5');
    bad(yaml('namespaces:', '  x:', '    networks: [a, 7]'), 'topology.yaml:3:19: namespaces.x.networks[1]: expected a string, got 7');
    bad(
      yaml('networks: { n: { subnet: 10.0.0.0/24 } }', 'namespaces:', '  x:', '    networks:', '      n: { ip: 10 }'),
      'topology.yaml:5:16: namespaces.x.networks.n.ip: expected a string, got 10',
    );
    bad(yaml('namespaces:', '  x: [a]'), 'topology.yaml:2:6: namespaces.x: expected a mapping, got a list');
  });

  it('refuses invalid network and namespace names, pointing at the name', () => {
    const rule = "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit";
    bad(yaml('networks:', '  front end: {}'), `topology.yaml:2:3: networks["front end"]: invalid name "front end": ${rule}`);
    bad(yaml('networks:', '  -front: {}'), `topology.yaml:2:3: networks["-front"]: invalid name "-front": ${rule}`);
    const long = 'n'.repeat(65);
    bad(yaml('namespaces:', `  ${long}: {}`), `topology.yaml:2:3: namespaces.${long}: invalid name "${long}": ${rule}`);
    bad(yaml('namespaces:', '  x:', '    networks: ["a/b"]'), `topology.yaml:3:16: namespaces.x.networks[0]: invalid name "a/b": ${rule}`);
  });

  it('reports the problem that comes first in the file', () => {
    // The unknown key (line 4) and the wrong type (line 3) are both found; line 3 wins.
    bad(yaml('networks:', '  b: {}', '  a: { mtu: x }', '  c: { colour: red }'), 'topology.yaml:3:13: networks.a.mtu: expected a number, got "x"');
    // Two meaning errors: the subnet on line 3 comes before the mtu on line 4.
    bad(
      yaml('networks:', '  a:', '    subnet: 10.0.0.1/24', '    mtu: 10'),
      'topology.yaml:3:13: networks.a.subnet: "10.0.0.1/24" has host bits set; the network is 10.0.0.0/24',
    );
  });

  it('refuses invalid and overlapping subnets', () => {
    bad(
      yaml('networks:', '  frontend:', '    subnets:', '      - 192.168.10.0/24', '      - "fd00:10::/129"'),
      'topology.yaml:5:9: networks.frontend.subnets[1]: "fd00:10::/129" is not a CIDR: prefix length must be 0-128',
    );
    bad(yaml('networks:', '  a: { subnet: 10.0.0 }'), 'topology.yaml:2:16: networks.a.subnet: "10.0.0" is not a CIDR (expected address/prefix-length, e.g. 10.89.0.0/24)');
    bad(
      yaml('networks:', '  a: { subnet: 127.0.0.0/24 }'),
      'topology.yaml:2:16: networks.a.subnet: subnet 127.0.0.0/24 overlaps 127.0.0.0/8, loopback (RFC 1122 §3.2.1.3)',
    );
    bad(
      yaml('networks:', '  a: { subnets: [10.0.0.0/16, 10.0.5.0/24] }'),
      'topology.yaml:2:31: networks.a.subnets[1]: subnet 10.0.5.0/24 overlaps 10.0.0.0/16',
    );
    bad(
      yaml('networks:', '  a: { subnet: 10.0.0.0/16 }', '  b: { subnet: 10.0.5.0/24 }'),
      'topology.yaml:3:16: networks.b.subnet: subnet 10.0.5.0/24 overlaps 10.0.0.0/16 of network a',
    );
    bad(
      yaml('networks:', '  a:', '    subnet: 10.0.0.0/24', '    subnets: [10.0.1.0/24]'),
      'topology.yaml:4:5: networks.a.subnets: give either `subnet` or `subnets`, not both',
    );
    bad(yaml('networks:', '  a: { subnets: [] }'), 'topology.yaml:2:17: networks.a.subnets: an empty list: omit `subnets` to pick one from the pool');
  });

  it('refuses gateways outside the subnets, on reserved addresses, twice per subnet, or without subnets', () => {
    bad(
      yaml('networks:', '  frontend:', '    subnets: [192.168.10.0/24, "fd00:10::/64"]', '    gateway: 192.168.11.1'),
      'topology.yaml:4:14: networks.frontend.gateway: gateway 192.168.11.1 is not in any subnet of network frontend (192.168.10.0/24, fd00:10::/64)',
    );
    bad(
      yaml('networks:', '  n: { subnet: 192.168.10.0/24, gateway: 192.168.10.255 }'),
      'topology.yaml:2:42: networks.n.gateway: gateway 192.168.10.255 is the broadcast address of 192.168.10.0/24',
    );
    bad(
      yaml('networks:', '  n: { subnet: 192.168.10.0/24, gateway: 192.168.10.256 }'),
      'topology.yaml:2:42: networks.n.gateway: "192.168.10.256" is not a valid IP address: IPv4 octet 256 is greater than 255',
    );
    bad(
      yaml('networks:', '  n:', '    subnet: 10.0.0.0/24', '    gateways: [10.0.0.1, 10.0.0.2]'),
      'topology.yaml:4:26: networks.n.gateways[1]: subnet 10.0.0.0/24 already has gateway 10.0.0.1',
    );
    bad(
      yaml('networks:', '  n: { gateway: 10.0.0.1 }'),
      'topology.yaml:2:17: networks.n.gateway: a gateway needs declared subnets (a pool-picked subnet comes with its gateway)',
    );
    bad(
      yaml('networks:', '  n:', '    subnet: 10.0.0.0/24', '    gateway: 10.0.0.1', '    gateways: [10.0.0.1]'),
      'topology.yaml:5:5: networks.n.gateways: give either `gateway` or `gateways`, not both',
    );
  });

  it('refuses MTUs outside 68-65535, and below 1280 with IPv6', () => {
    bad(yaml('networks:', '  n: { mtu: 67 }'), 'topology.yaml:2:13: networks.n.mtu: mtu 67 is out of range (68-65535)');
    bad(yaml('networks:', '  n: { mtu: 65536 }'), 'topology.yaml:2:13: networks.n.mtu: mtu 65536 is out of range (68-65535)');
    bad(
      yaml('networks:', '  n: { mtu: 1000, ipv6: true }'),
      'topology.yaml:2:13: networks.n.mtu: mtu 1000 is below 1280, the IPv6 minimum (RFC 8200 §5), on a network with IPv6',
    );
    assert.deepEqual(parse(yaml('networks:', '  a: { mtu: 68 }', '  b: { mtu: 65535 }')).networks.map((n) => n.mtu), [68, 65535]);
  });

  it('refuses bad bridge names, a bridge used twice, and masquerade on an internal network', () => {
    bad(
      yaml('networks:', '  n: { bridge: a-very-long-bridge-name }'),
      'topology.yaml:2:16: networks.n.bridge: invalid interface name "a-very-long-bridge-name": it is 23 bytes long (the kernel allows 15)',
    );
    bad(yaml('networks:', '  a: { bridge: br0 }', '  b: { bridge: br0 }'), 'topology.yaml:3:16: networks.b.bridge: bridge br0 is already the bridge of network a');
    bad(
      yaml('networks:', '  n: { internal: true, masquerade: true }'),
      'topology.yaml:2:36: networks.n.masquerade: masquerade: true contradicts internal: true (an internal network has no path to the outside)',
    );
  });

  it('refuses attachments to undeclared networks, and the same network twice', () => {
    bad(
      yaml('networks:', '  frontend: {}', 'namespaces:', '  api:', '    networks: [frontend, backend]'),
      'topology.yaml:5:26: namespaces.api.networks[1]: network backend is not declared (declared networks: frontend)',
    );
    bad(
      yaml('namespaces:', '  api:', '    networks:', '      backend: {}'),
      'topology.yaml:4:7: namespaces.api.networks.backend: network backend is not declared (no networks are declared)',
    );
    bad(
      yaml('networks: { a: {} }', 'namespaces:', '  x:', '    networks: [a, a]'),
      'topology.yaml:4:19: namespaces.x.networks[1]: network a is listed twice',
    );
  });

  it('refuses static addresses that do not fit the network', () => {
    const attach = (value: string): string => `${FRONT}namespaces:\n  web:\n    networks:\n      frontend: ${value}\n`;
    // Line 7 is the attachment; `      frontend: { ip: ` puts the address at column 23.
    bad(
      attach('{ ip: 192.168.11.10 }'),
      'topology.yaml:7:23: namespaces.web.networks.frontend.ip: 192.168.11.10 is not in any subnet of network frontend (192.168.10.0/24)',
    );
    bad(attach('{ ip: 192.168.10.1 }'), 'topology.yaml:7:23: namespaces.web.networks.frontend.ip: 192.168.10.1 is the gateway of 192.168.10.0/24');
    bad(
      attach('{ ip: 192.168.10.0 }'),
      'topology.yaml:7:23: namespaces.web.networks.frontend.ip: 192.168.10.0 is the network or broadcast address of 192.168.10.0/24',
    );
    bad(attach('{ ip: 192.168.10.x }'), 'topology.yaml:7:23: namespaces.web.networks.frontend.ip: "192.168.10.x" is not a valid IP address: IPv4 octets are decimal numbers without leading zeros');
    bad(
      attach('{ ips: [192.168.10.5, 192.168.10.6] }'),
      'topology.yaml:7:39: namespaces.web.networks.frontend.ips[1]: a second address in 192.168.10.0/24: an endpoint has at most one per subnet',
    );
    bad(
      attach('{ ip: 192.168.10.5, ips: [192.168.10.5] }'),
      'topology.yaml:7:37: namespaces.web.networks.frontend.ips: give either `ip` or `ips`, not both',
    );
    bad(
      yaml('networks:', '  n: {}', 'namespaces:', '  x:', '    networks:', '      n: { ip: 10.0.0.5 }'),
      'topology.yaml:6:16: namespaces.x.networks.n.ip: a static ip needs declared subnets on network n (its subnet is picked from the pool)',
    );
    bad(
      yaml(FRONT.trimEnd(), 'namespaces:', '  a:', '    networks:', '      frontend: { ip: 192.168.10.9 }', '  b:', '    networks:', '      frontend: { ip: 192.168.10.9 }'),
      'topology.yaml:10:23: namespaces.b.networks.frontend.ip: 192.168.10.9 is already the address of namespace a on network frontend',
    );
  });

  it('refuses bad and duplicate interface names', () => {
    bad(
      yaml('networks: { a: {}, b: {} }', 'namespaces:', '  x:', '    networks:', '      a: { ifname: eth0 }', '      b: { ifname: eth0 }'),
      'topology.yaml:6:20: namespaces.x.networks.b.ifname: ifname eth0 is already used for network a in namespace x',
    );
    bad(
      yaml('networks: { a: {} }', 'namespaces:', '  x:', '    networks:', '      a: { ifname: "eth 0" }'),
      'topology.yaml:5:20: namespaces.x.networks.a.ifname: invalid interface name "eth 0": it contains \'/\', \':\' or whitespace',
    );
    bad(
      yaml('networks: { a: {} }', 'namespaces:', '  x:', '    networks:', '      a: { ifname: lo }'),
      'topology.yaml:5:20: namespaces.x.networks.a.ifname: ifname lo is the loopback interface',
    );
  });

  it('refuses bad MACs and aliases', () => {
    const attach = (value: string): string => yaml('networks: { a: {} }', 'namespaces:', '  x:', '    networks:', `      a: ${value}`);
    bad(attach('{ mac: "00:11:22:33:44" }'), 'topology.yaml:5:17: namespaces.x.networks.a.mac: "00:11:22:33:44" is not a MAC address (expected aa:bb:cc:dd:ee:ff)');
    bad(attach('{ mac: "01:00:5e:00:00:01" }'), 'topology.yaml:5:17: namespaces.x.networks.a.mac: 01:00:5e:00:00:01 is not a unicast MAC address (the group bit is set)');
    bad(attach('{ mac: "00:00:00:00:00:00" }'), 'topology.yaml:5:17: namespaces.x.networks.a.mac: 00:00:00:00:00:00 is not a unicast MAC address (all zeros)');
    bad(attach('{ aliases: [www, web_server] }'), 'topology.yaml:5:27: namespaces.x.networks.a.aliases[1]: alias "web_server" is not a DNS name (RFC 1123 §2.1)');
    bad(attach('{ aliases: [www, WWW] }'), 'topology.yaml:5:27: namespaces.x.networks.a.aliases[1]: alias WWW is listed twice');
  });

  it('refuses bad published ports, pointing at the spec', () => {
    const web = (...publish: string[]): string => yaml(
      'networks:',
      '  store: { subnet: 10.3.0.0/24, internal: true }',
      '  front: { subnet: 10.1.0.0/24 }',
      '  back: {}',
      'namespaces:',
      '  web:',
      '    networks: [store, front]',
      ...publish,
    );
    bad(web('    publish: ["0:80"]'), 'topology.yaml:8:15: namespaces.web.publish[0]: invalid port spec "0:80": host port 0 is outside 1–65535');
    bad(web('    publish: ["80:65536"]'), 'topology.yaml:8:15: namespaces.web.publish[0]: invalid port spec "80:65536": container port 65536 is outside 1–65535');
    bad(web('    publish: ["80:80/icmp"]'), 'topology.yaml:8:15: namespaces.web.publish[0]: invalid port spec "80:80/icmp": unknown protocol "icmp" (use tcp, udp or sctp)');
    bad(
      web('    publish: ["80-81:80"]'),
      'topology.yaml:8:15: namespaces.web.publish[0]: invalid port spec "80-81:80": the host range has 2 ports but the container range has 1',
    );
    bad(web('    publish: ["http"]'), 'topology.yaml:8:15: namespaces.web.publish[0]: invalid port spec "http": expected [HOSTIP:]HOSTPORT:PORT[/PROTO]');
    bad(
      web('    publish: ["[::1]:80:80"]'),
      'topology.yaml:8:15: namespaces.web.publish[0]: [::1]:80:80/tcp: the kernel cannot DNAT IPv6 loopback (::1) traffic to another host; ' +
        'use 127.0.0.1 or a host address',
    );
    bad(
      web('    publish: ["[2001:db8::1]:80:80"]'),
      'topology.yaml:8:15: namespaces.web.publish[0]: [2001:db8::1]:80:80/tcp: namespace web has no IPv6 address on network front to forward it to',
    );
    bad(
      web('    publish: ["80:80", "8080:80", "0.0.0.0:80:81"]'),
      'topology.yaml:8:35: namespaces.web.publish[2]: 80:81/tcp: host port 80/tcp is already published for namespace web (80:80/tcp)',
    );
    bad(
      web('    publish: ["127.0.0.1:7000-7010:7000-7010"]', '  other:', '    networks: [front]', '    publish: ["7005:80"]'),
      'topology.yaml:11:15: namespaces.other.publish[0]: 7005:80/tcp: host port 7005/tcp is already published for namespace web ' +
        '(127.0.0.1:7000-7010:7000-7010/tcp)',
    );
    // Different host addresses or protocols do not clash.
    assert.equal(parse(web('    publish: ["127.0.0.1:80:80", "127.0.0.2:80:80", "80:80/udp"]')).publish[0]!.specs.length, 3);
    bad(
      web('    publish: [{ spec: "80:80", network: back }]'),
      'topology.yaml:8:41: namespaces.web.publish[0].network: namespace web is not connected to network back (its networks: store, front)',
    );
    bad(web('    publish: [{ spec: "80:80", network: store }]'), 'topology.yaml:8:41: namespaces.web.publish[0].network: network store is internal (no path in from outside)');
    bad(
      web('  db:', '    networks: [store]', '    publish: ["80:80"]'),
      'topology.yaml:10:15: namespaces.db.publish[0]: namespace db has no non-internal network to publish ports on (its networks: store)',
    );
    bad(web('  lonely:', '    publish: ["80:80"]'), 'topology.yaml:9:15: namespaces.lonely.publish[0]: namespace lonely has no network to publish ports on');
    bad(
      web('    publish: [{ spec: "80:80", from: [10.0.0.1/8] }]'),
      'topology.yaml:8:39: namespaces.web.publish[0].from[0]: "10.0.0.1/8" has host bits set; the network is 10.0.0.0/8',
    );
    bad(web('    publish: [{ spec: "80:80", from: [] }]'), 'topology.yaml:8:38: namespaces.web.publish[0].from: an empty list: omit `from` to accept every source');
    bad(web('    publish: [80]'), 'topology.yaml:8:15: namespaces.web.publish[0]: expected a string or a mapping, got 80');
    bad(web('    publish: "80:80"'), 'topology.yaml:8:14: namespaces.web.publish: expected a list, got "80:80"');
    bad(web('    publish: [{ spec: "80:80", port: 3 }]'), 'topology.yaml:8:32: namespaces.web.publish[0].port: unknown key (expected one of: spec, network, from)');
    bad(web('    publish: [{ network: front }]'), 'topology.yaml:8:15: namespaces.web.publish[0].spec: missing (expected a string)');
  });

  it('refuses bad policies: unknown actions, selectors naming nothing, bad ports and priorities, duplicate names', () => {
    const policy = (...lines: string[]): string => yaml(
      'networks: { front: {}, back: {} }',
      'namespaces:',
      '  web: { networks: [front] }',
      'policies:',
      ...lines,
    );
    bad(policy('  - { action: permit, from: front, to: back }'), 'topology.yaml:5:15: policies[0].action: unknown action "permit" (expected: allow, deny)');
    bad(policy('  - { from: front, to: back }'), 'topology.yaml:5:5: policies[0].action: missing (expected allow or deny)');
    bad(policy('  - { action: allow, to: back }'), 'topology.yaml:5:5: policies[0].from: missing (expected a string)');
    // An unknown key is the better clue than the keys it leaves missing.
    bad(
      policy('  - allow: { from: front, to: back }'),
      'topology.yaml:5:5: policies[0].allow: unknown key (expected one of: name, action, from, to, ports, priority)',
    );
    bad(
      policy('  - { action: allow, from: front, to: backend }'),
      'topology.yaml:5:39: policies[0].to: selector "backend" names nothing this file declares: use a network or a namespace declared here, ' +
        'a CIDR, or outside (networks: front, back; namespaces: web)',
    );
    bad(policy('  - { action: allow, from: ns:front, to: back }'), 'topology.yaml:5:28: policies[0].from: namespace front is not declared in this file (declared namespaces: web)');
    bad(policy('  - { action: allow, from: network:web, to: back }'), 'topology.yaml:5:28: policies[0].from: network web is not declared in this file (declared networks: front, back)');
    bad(
      policy('  - { action: allow, from: 10.0.0.1/8, to: back }'),
      'topology.yaml:5:28: policies[0].from: invalid selector "10.0.0.1/8": "10.0.0.1/8" has host bits set; the network is 10.0.0.0/8',
    );
    bad(policy('  - { action: allow, from: outside, to: outside }'), 'topology.yaml:5:41: policies[0].to: a policy from outside to outside names nothing nsnet forwards');
    bad(policy('  - { action: allow, from: front, to: back, ports: ["70000"] }'), 'topology.yaml:5:53: policies[0].ports[0]: invalid port "70000": port 70000 is outside 1–65535');
    bad(
      policy('  - { action: allow, from: front, to: back, ports: ["80/icmp"] }'),
      'topology.yaml:5:53: policies[0].ports[0]: invalid port "80/icmp": unknown protocol "icmp" (use tcp, udp or sctp)',
    );
    bad(policy('  - { action: allow, from: front, to: back, ports: [] }'), 'topology.yaml:5:52: policies[0].ports: an empty list: omit `ports` to match every protocol and port');
    bad(policy('  - { action: allow, from: front, to: back, priority: -1 }'), 'topology.yaml:5:55: policies[0].priority: priority -1 is out of range (0-100000; lower runs first)');
    bad(policy('  - { action: allow, from: front, to: back, priority: 1.5 }'), 'topology.yaml:5:55: policies[0].priority: expected an integer, got 1.5');
    bad(
      policy('  - { action: allow, from: front, to: back, name: topology-1 }', '  - { action: allow, from: back, to: front }'),
      "topology.yaml:6:5: policies[1]: this policy's default name topology-1 is already used by policies[0]: give it a name",
    );
    bad(
      policy('  - { action: allow, from: front, to: back }', '  - { action: allow, from: back, to: front, name: topology-0 }'),
      'topology.yaml:6:51: policies[1].name: policy name topology-0 is already the default name of policies[0]',
    );
    bad(
      policy('  - { action: allow, from: front, to: back, name: "a b" }'),
      "topology.yaml:5:51: policies[0].name: invalid name \"a b\": use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    );
    bad(policy('  a: 1'), 'topology.yaml:5:3: policies: expected a list, got a mapping');
    bad(
      yaml('networks: { x: {} }', 'namespaces:', '  x: { networks: [x] }', 'policies:', '  - { action: allow, from: x, to: outside }'),
      'topology.yaml:5:28: policies[0].from: "x" is both a network and a namespace in this file: write network:x or ns:x',
    );
    assert.deepEqual(
      parse(yaml('networks: { x: {} }', 'namespaces:', '  x: { networks: [x] }', 'policies:', '  - { action: allow, from: "ns:x", to: "network:x" }')).policies,
      [{ name: 'topology-0', action: 'allow', from: 'ns:x', to: 'network:x' }],
    );
  });

  it('quotes keys that are not plain identifiers in the key path', () => {
    assert.equal(formatPath(['networks', 'my.net', 'subnets', 1]), 'networks["my.net"].subnets[1]');
    assert.equal(formatPath(['namespaces', 'web-1', 'networks', 'a_b']), 'namespaces.web-1.networks.a_b');
    assert.equal(formatPath([]), '');
  });
});

describe('loadTopology', () => {
  it('reads a file and makes its source absolute; messages keep the name as given', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsnet-topology-'));
    try {
      const file = join(dir, 'app.yaml');
      writeFileSync(file, FRONT);
      const t = loadTopology(file);
      assert.equal(t.source, file);
      assert.deepEqual(t.networks, [{ name: 'frontend', subnets: ['192.168.10.0/24'] }]);

      writeFileSync(file, 'networks:\n  a: { mtu: 1 }\n');
      assert.throws(() => loadTopology(file), { code: 'TOPOLOGY_INVALID', message: `${file}:2:13: networks.a.mtu: mtu 1 is out of range (68-65535)` });
      assert.throws(() => loadTopology(join(dir, 'missing.yaml')), {
        code: 'TOPOLOGY_INVALID',
        message: `cannot read topology file ${join(dir, 'missing.yaml')}: no such file`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads every example under examples/', () => {
    // dist/src/engine/ → the package root.
    const examples = fileURLToPath(new URL('../../../examples/', import.meta.url));
    const files = readdirSync(examples).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));
    assert.ok(files.length >= 4, `examples found: ${files.join(', ')}`);
    for (const f of files) {
      const t = loadTopology(join(examples, f));
      assert.ok(t.networks.length > 0 && t.namespaces.length > 0, f);
    }
  });

  it('reads the three-tier example as the tutorial draws it', () => {
    const t = loadTopology(fileURLToPath(new URL('../../../examples/three-tier.yaml', import.meta.url)));
    assert.deepEqual(t.networks, [
      { name: 'frontend', subnets: ['192.168.10.0/24'] },
      { name: 'backend', subnets: ['192.168.20.0/24'] },
      { name: 'database', subnets: ['192.168.30.0/24'] },
    ]);
    assert.deepEqual(t.endpoints.map((e) => `${e.namespace}@${e.network}`), ['web@frontend', 'api@backend', 'db@database']);
    assert.deepEqual(t.publish, [{ namespace: 'web', specs: ['80:80/tcp'], network: 'frontend' }]);
    // frontend ↔ backend and backend ↔ database allowed, frontend → database denied first,
    // only the frontend out.
    assert.deepEqual(t.policies.map((p) => `${p.name}: ${p.action} ${p.from} → ${p.to}${p.priority === undefined ? '' : ` @${p.priority}`}`), [
      'fe-to-be: allow network:frontend → network:backend',
      'be-to-fe: allow network:backend → network:frontend',
      'be-to-db: allow network:backend → network:database',
      'db-to-be: allow network:database → network:backend',
      'no-fe-db: deny network:frontend → network:database @10',
      'no-be-out: deny network:backend → outside',
      'no-db-out: deny network:database → outside',
    ]);
  });
});
