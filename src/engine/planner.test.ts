import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { IpAddress } from '../ipam/address.js';
import { Cidr } from '../ipam/cidr.js';
import { describeChange, describePlan, downTopology, planTopology } from './planner.js';
import { expandPortSpec, parsePortFilter, parsePortSpec } from './ports.js';
import { loadTopology, parseTopology } from './topology.js';
import type {
  Change, CurrentState, EndpointRecord, NamespaceRecord, NetworkRecord, PolicyRecord, PublishRecord, Selector, Topology,
} from './types.js';

const SOURCE = '/srv/app.yaml';
const OTHER = '/srv/other.yaml';
const T0 = '2024-01-01T00:00:00.000Z';

const topology = (...lines: string[]): Topology => parseTopology(`${lines.join('\n')}\n`, SOURCE);
const empty = (): CurrentState => ({ networks: [], namespaces: [], endpoints: [], ports: [], policies: [] });

/**
 * A deliberately simple stand-in for the engine: applies a plan to a state, checking the
 * preconditions the real engine has (a network is removed only without endpoints, a
 * namespace only without endpoints, a connect needs its network and namespace, nothing is
 * created twice). Pool-picked subnets come from 10.89.N.0/24 and fd89:N::/64; IPAM hands out
 * .100, .101 … so that they never equal the static addresses the tests use.
 */
function simulate(state: CurrentState, changes: readonly Change[], source: string): CurrentState {
  const s: CurrentState = {
    networks: [...state.networks], namespaces: [...state.namespaces], endpoints: [...state.endpoints],
    ports: [...state.ports], policies: [...state.policies],
  };
  let pool = 0;
  let host = 100;
  let policyId = Math.max(0, ...s.policies.map((p) => p.id)) + 1;
  const ep = (network: string, namespace: string): number => s.endpoints.findIndex((e) => e.network === network && e.namespace === namespace);
  // Like the engine's parseSelector, for the qualified selectors topology files produce.
  const selector = (text: string): Selector => {
    if (text === 'outside') return { kind: 'outside' };
    const [kind, name] = text.split(':', 2) as [string, string];
    if (kind === 'network') {
      assert.ok(s.networks.some((n) => n.name === name), `policy names network ${name}, which does not exist`);
      return { kind: 'network', name };
    }
    if (kind === 'ns') {
      assert.ok(s.namespaces.some((n) => n.name === name), `policy names namespace ${name}, which does not exist`);
      return { kind: 'namespace', name };
    }
    return { kind: 'cidr', cidr: Cidr.parse(text).toString() };
  };
  const named = (kind: 'network' | 'namespace', name: string): PolicyRecord | undefined =>
    s.policies.find((p) => [p.from, p.to].some((sel) => sel.kind === kind && sel.name === name));
  for (const c of changes) {
    switch (c.kind) {
      case 'create-network': {
        assert.ok(!s.networks.some((n) => n.name === c.spec.name), `network ${c.spec.name} created twice`);
        const cidrs = c.spec.subnets ? [...c.spec.subnets] : [`10.89.${pool}.0/24`];
        if (c.spec.ipv6 && !cidrs.some((x) => x.includes(':'))) cidrs.push(`fd89:${pool}::/64`);
        pool++;
        const subnets = cidrs.map((cidr) => {
          const parsed = Cidr.parse(cidr);
          const gateway = c.spec.gateways?.find((g) => parsed.contains(IpAddress.parse(g))) ?? parsed.firstUsable.toString();
          return { cidr, gateway };
        });
        s.networks.push({
          name: c.spec.name, driver: 'bridge', bridge: c.spec.bridge ?? `nsbr-${c.spec.name}`, subnets,
          internal: c.spec.internal ?? false, masquerade: c.spec.masquerade ?? true, mtu: c.spec.mtu ?? null,
          source, declared: c.spec, createdAt: T0,
        });
        break;
      }
      case 'remove-network': {
        assert.ok(s.networks.some((n) => n.name === c.name), `network ${c.name} removed but absent`);
        assert.ok(!s.endpoints.some((e) => e.network === c.name), `network ${c.name} removed while in use`);
        // Only a network that comes back may keep the policies that name it (the engine re-associates them).
        const user = named('network', c.name);
        assert.ok(!user || changes.some((x) => x.kind === 'create-network' && x.spec.name === c.name), `network ${c.name} removed while policy ${user?.name} names it`);
        s.networks = s.networks.filter((n) => n.name !== c.name);
        break;
      }
      case 'create-namespace':
        assert.ok(!s.namespaces.some((n) => n.name === c.name), `namespace ${c.name} created twice`);
        s.namespaces.push({ name: c.name, managed: true, source, createdAt: T0 });
        break;
      case 'remove-namespace':
        assert.ok(s.namespaces.some((n) => n.name === c.name), `namespace ${c.name} removed but absent`);
        assert.ok(!s.endpoints.some((e) => e.namespace === c.name), `namespace ${c.name} removed while in use`);
        assert.equal(named('namespace', c.name)?.name, undefined, `namespace ${c.name} removed while a policy names it`);
        s.namespaces = s.namespaces.filter((n) => n.name !== c.name);
        break;
      case 'connect': {
        const { network, namespace } = c.spec;
        const net = s.networks.find((n) => n.name === network);
        assert.ok(net, `connect ${namespace}@${network}: no network`);
        assert.ok(s.namespaces.some((n) => n.name === namespace), `connect ${namespace}@${network}: no namespace`);
        assert.equal(ep(network, namespace), -1, `connect ${namespace}@${network}: already connected`);
        const addresses = net.subnets.map((sub) => {
          const parsed = Cidr.parse(sub.cidr);
          const pinned = c.spec.ips?.find((ip) => parsed.contains(IpAddress.parse(ip)));
          return `${pinned ?? parsed.network.add(host++).toString()}/${parsed.prefixLength}`;
        });
        s.endpoints.push({
          network, namespace, ifname: c.spec.ifname ?? 'eth9', hostIfname: `nsv-${namespace}-${network}`,
          mac: c.spec.mac ?? '02:6e:00:00:00:01', addresses, aliases: c.spec.aliases ?? [], state: 'ready',
          source, declared: c.spec, createdAt: T0,
        });
        break;
      }
      case 'disconnect': {
        const i = ep(c.network, c.namespace);
        assert.ok(i >= 0, `disconnect ${c.namespace}@${c.network}: not connected`);
        // Stricter than the engine (which drops them): the plan must unpublish first.
        assert.ok(!s.ports.some((p) => p.namespace === c.namespace && p.network === c.network), `disconnect ${c.namespace}@${c.network}: ports still published`);
        s.endpoints.splice(i, 1);
        break;
      }
      case 'publish': {
        const e = s.endpoints.find((x) => x.namespace === c.namespace && (c.network === undefined || x.network === c.network));
        assert.ok(e && e.state === 'ready', `publish on ${c.namespace}@${c.network}: no endpoint`);
        assert.ok(!s.networks.find((n) => n.name === e.network)?.internal, `publish on internal network ${e.network}`);
        for (const spec of c.specs) {
          for (const m of expandPortSpec(parsePortSpec(spec))) {
            assert.ok(
              !s.ports.some((p) => p.proto === m.proto && p.hostPort === m.hostPort && (p.hostIp === null || m.hostIp === null || p.hostIp === m.hostIp)),
              `publish ${spec}: host port ${m.hostPort}/${m.proto} in use`,
            );
            s.ports.push({
              ...m, namespace: c.namespace, network: e.network, target4: e.addresses[0]?.split('/')[0] ?? null, target6: null,
              from: c.from ?? [], source,
            });
          }
        }
        break;
      }
      case 'unpublish': {
        const spec = parsePortSpec(c.spec).spec;
        assert.ok(s.ports.some((p) => p.namespace === c.namespace && p.spec === spec), `unpublish ${c.namespace} ${spec}: not published`);
        s.ports = s.ports.filter((p) => !(p.namespace === c.namespace && p.spec === spec));
        break;
      }
      case 'add-policy': {
        const name = c.spec.name!;
        assert.ok(!s.policies.some((p) => p.name === name), `policy ${name} added twice`);
        s.policies.push({
          id: policyId++, name, action: c.spec.action, from: selector(c.spec.from), to: selector(c.spec.to),
          ports: (c.spec.ports ?? []).map(parsePortFilter), priority: c.spec.priority ?? 100, source, declared: c.spec, createdAt: T0,
        });
        break;
      }
      case 'remove-policy':
        assert.ok(s.policies.some((p) => p.name === c.name), `policy ${c.name} removed but absent`);
        s.policies = s.policies.filter((p) => p.name !== c.name);
        break;
    }
  }
  return s;
}

const sources = (s: CurrentState, keep: (source: string | null) => boolean): CurrentState => ({
  networks: s.networks.filter((n) => keep(n.source)),
  namespaces: s.namespaces.filter((n) => keep(n.source)),
  endpoints: s.endpoints.filter((e) => keep(e.source)),
  ports: s.ports.filter((p) => keep(p.source)),
  policies: s.policies.filter((p) => keep(p.source)),
});

const merge = (a: CurrentState, b: CurrentState): CurrentState => ({
  networks: [...a.networks, ...b.networks],
  namespaces: [...a.namespaces, ...b.namespaces],
  endpoints: [...a.endpoints, ...b.endpoints],
  ports: [...a.ports, ...b.ports],
  policies: [...a.policies, ...b.policies],
});

/** Plans, applies with the simulator, and checks that planning again finds nothing to do. */
function converge(t: Topology, state: CurrentState, others: CurrentState = empty()): { changes: Change[]; state: CurrentState } {
  const changes = planTopology(t, state, others);
  const after = simulate(merge(state, others), changes, t.source);
  const mine = sources(after, (s) => s === t.source);
  assert.deepEqual(planTopology(t, mine, others), [], 'a second plan must be empty');
  // The state is what the file declares, no more and no less.
  assert.deepEqual(mine.networks.map((n) => n.name).sort(), t.networks.map((n) => n.name).sort());
  assert.deepEqual(mine.namespaces.map((n) => n.name).sort(), t.namespaces.map((n) => n.name).sort());
  assert.deepEqual(
    mine.endpoints.map((e) => `${e.namespace}@${e.network}`).sort(),
    t.endpoints.map((e) => `${e.namespace}@${e.network}`).sort(),
  );
  assert.deepEqual(
    [...new Set(mine.ports.map((p) => `${p.namespace} ${p.spec}`))].sort(),
    t.publish.flatMap((p) => p.specs.map((spec) => `${p.namespace} ${spec}`)).sort(),
  );
  // Equal priorities run in creation order, which must be the file's order.
  const byPriority = <T>(list: T[], priority: (x: T) => number, seq: (x: T, i: number) => number): T[] =>
    list.map((x, i) => ({ x, i })).sort((a, b) => priority(a.x) - priority(b.x) || seq(a.x, a.i) - seq(b.x, b.i)).map((y) => y.x);
  assert.deepEqual(
    byPriority(mine.policies, (p) => p.priority, (p) => p.id).map((p) => p.name),
    byPriority(t.policies, (p) => p.priority ?? 100, (_, i) => i).map((p) => p.name),
  );
  return { changes, state: mine };
}

function network(name: string, fields: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    name, driver: 'bridge', bridge: `nsbr-${name}`, subnets: [], internal: false, masquerade: true, mtu: null,
    source: SOURCE, declared: { name }, createdAt: T0, ...fields,
  };
}

function namespace(name: string, fields: Partial<NamespaceRecord> = {}): NamespaceRecord {
  return { name, managed: true, source: SOURCE, createdAt: T0, ...fields };
}

function endpoint(ns: string, net: string, fields: Partial<EndpointRecord> = {}): EndpointRecord {
  return {
    network: net, namespace: ns, ifname: 'eth0', hostIfname: `nsv-${ns}`, mac: '02:6e:00:00:00:01', addresses: [],
    aliases: [], state: 'ready', source: SOURCE, declared: { network: net, namespace: ns, ifname: 'eth0' }, createdAt: T0, ...fields,
  };
}

const THREE_TIER = [
  'networks:',
  '  frontend: { subnet: 192.168.10.0/24 }',
  '  backend: { subnet: 192.168.20.0/24 }',
  '  database: { subnet: 192.168.30.0/24, internal: true }',
  'namespaces:',
  '  web:',
  '    networks:',
  '      frontend: { ip: 192.168.10.10, aliases: [www] }',
  '  api:',
  '    networks: [frontend, backend]',
  '  db:',
  '    networks: [backend, database]',
];

describe('planTopology', () => {
  it('creates everything on a fresh host: namespaces, networks, then connects', () => {
    const { changes } = converge(topology(...THREE_TIER), empty());
    assert.deepEqual(changes, [
      { kind: 'create-namespace', name: 'web' },
      { kind: 'create-namespace', name: 'api' },
      { kind: 'create-namespace', name: 'db' },
      { kind: 'create-network', spec: { name: 'frontend', subnets: ['192.168.10.0/24'] } },
      { kind: 'create-network', spec: { name: 'backend', subnets: ['192.168.20.0/24'] } },
      { kind: 'create-network', spec: { name: 'database', subnets: ['192.168.30.0/24'], internal: true } },
      { kind: 'connect', spec: { network: 'frontend', namespace: 'web', ifname: 'eth0', ips: ['192.168.10.10'], aliases: ['www'] } },
      { kind: 'connect', spec: { network: 'frontend', namespace: 'api', ifname: 'eth0' } },
      { kind: 'connect', spec: { network: 'backend', namespace: 'api', ifname: 'eth1' } },
      { kind: 'connect', spec: { network: 'backend', namespace: 'db', ifname: 'eth0' } },
      { kind: 'connect', spec: { network: 'database', namespace: 'db', ifname: 'eth1' } },
    ]);
  });

  it('plans nothing for an empty file on an empty host', () => {
    assert.deepEqual(planTopology(topology(''), empty()), []);
  });

  it('changes only what differs in an edited file', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const edited = THREE_TIER.map((l) => l.replace('192.168.10.10', '192.168.10.11'));
    const { changes } = converge(topology(...edited), state);
    assert.deepEqual(changes, [
      { kind: 'disconnect', network: 'frontend', namespace: 'web' },
      { kind: 'connect', spec: { network: 'frontend', namespace: 'web', ifname: 'eth0', ips: ['192.168.10.11'], aliases: ['www'] } },
    ]);
    assert.deepEqual(describePlan(changes, state), ['~ endpoint web@frontend (ip 192.168.10.10 → 192.168.10.11)']);
  });

  it('reconnects an endpoint whose ifname, MAC or aliases change', () => {
    const base = ['networks: { n: {} }', 'namespaces:', '  x:', '    networks:'];
    const { state } = converge(topology(...base, '      n: { aliases: [a] }'), empty());
    const { changes, state: s2 } = converge(topology(...base, '      n: { aliases: [a, b], ifname: lan0, mac: "02:00:00:00:00:02" }'), state);
    assert.deepEqual(describePlan(changes, state), ['~ endpoint x@n (ifname eth0 → lan0, mac auto → 02:00:00:00:00:02, aliases a → a, b)']);
    // Same aliases in another order: nothing to do.
    assert.deepEqual(planTopology(topology(...base, '      n: { aliases: [b, a], ifname: lan0, mac: "02:00:00:00:00:02" }'), s2), []);
  });

  it('recreates a network whose declared spec changes: disconnect, remove, create, reconnect', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const edited = THREE_TIER.map((l) => l.replace('backend: { subnet: 192.168.20.0/24 }', 'backend: { subnet: 192.168.21.0/24, mtu: 9000 }'));
    const { changes } = converge(topology(...edited), state);
    assert.deepEqual(changes, [
      { kind: 'disconnect', network: 'backend', namespace: 'api' },
      { kind: 'disconnect', network: 'backend', namespace: 'db' },
      { kind: 'remove-network', name: 'backend' },
      { kind: 'create-network', spec: { name: 'backend', subnets: ['192.168.21.0/24'], mtu: 9000 } },
      { kind: 'connect', spec: { network: 'backend', namespace: 'api', ifname: 'eth1' } },
      { kind: 'connect', spec: { network: 'backend', namespace: 'db', ifname: 'eth0' } },
    ]);
    assert.deepEqual(describePlan(changes, state), [
      '~ network backend (subnets 192.168.20.0/24 → 192.168.21.0/24, mtu default → 9000)',
      '~ endpoint api@backend (network backend recreated)',
      '~ endpoint db@backend (network backend recreated)',
    ]);
  });

  it('does not count pool-picked subnets or defaults as differences', () => {
    const net = network('n', {
      subnets: [{ cidr: '10.89.7.0/24', gateway: '10.89.7.1' }, { cidr: 'fd89:7::/64', gateway: 'fd89:7::1' }],
      declared: { name: 'n', ipv6: true },
    });
    const state: CurrentState = { ports: [], policies: [], networks: [net], namespaces: [], endpoints: [] };
    assert.deepEqual(planTopology(topology('networks:', '  n: { ipv6: true }'), state), []);
    // Defaults spelled out are no change either: masquerade true, internal false, driver bridge.
    assert.deepEqual(planTopology(topology('networks:', '  n: { ipv6: true, masquerade: true, internal: false, driver: bridge }'), state), []);
    // Leaving IPv6 out is a change: the network would lose its pool-picked /64.
    assert.deepEqual(planTopology(topology('networks:', '  n: {}'), state).map(describeChange), ['- network n', '+ network n (subnet from pool)']);
    // Pinning a subnet where the pool picked before is a change too: the pin is now the user's.
    assert.deepEqual(
      describePlan(planTopology(topology('networks:', '  n: { subnet: 10.89.7.0/24, ipv6: true }'), state), state),
      ['~ network n (subnets from pool → 10.89.7.0/24)'],
    );
  });

  it('compares canonical forms: a pinned IPv6 subnet makes `ipv6: true` a no-op, masquerade is moot when internal', () => {
    const state: CurrentState = { ports: [], policies: [],
      networks: [
        network('a', { declared: { name: 'a', subnets: ['fd00:10::/64'] } }),
        network('b', { declared: { name: 'b', internal: true, masquerade: false } }),
      ],
      namespaces: [],
      endpoints: [],
    };
    const t = topology('networks:', '  a: { subnets: ["FD00:10:0::/64"], ipv6: true }', '  b: { internal: true }');
    assert.deepEqual(planTopology(t, state), []);
  });

  it('removes what the file no longer declares: endpoints first, then networks, then namespaces', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const { changes } = converge(topology(
      'networks:',
      '  frontend: { subnet: 192.168.10.0/24 }',
      '  backend: { subnet: 192.168.20.0/24 }',
      'namespaces:',
      '  web:',
      '    networks:',
      '      frontend: { ip: 192.168.10.10, aliases: [www] }',
      '  api:',
      '    networks: [frontend, backend]',
      '  cache:',
      '    networks: [backend]',
    ), state);
    assert.deepEqual(changes.map(describeChange), [
      '- endpoint db@backend',
      '- endpoint db@database',
      '- network database',
      '- namespace db',
      '+ namespace cache',
      '+ endpoint cache@backend (eth0)',
    ]);
  });

  it('redoes an endpoint a crash left half-made', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const broken: CurrentState = {
      ...state,
      endpoints: state.endpoints.map((e) => (e.namespace === 'api' && e.network === 'backend' ? { ...e, state: 'creating' as const } : e)),
    };
    const changes = planTopology(topology(...THREE_TIER), broken);
    assert.deepEqual(changes, [
      { kind: 'disconnect', network: 'backend', namespace: 'api' },
      { kind: 'connect', spec: { network: 'backend', namespace: 'api', ifname: 'eth1' } },
    ]);
    assert.deepEqual(describePlan(changes, broken), ['~ endpoint api@backend (repair: was left creating)']);
  });

  it('walks through a series of edits, each converging', () => {
    let state = empty();
    const versions = [
      THREE_TIER,
      THREE_TIER.map((l) => l.replace('internal: true', 'internal: false')),
      ['networks:', '  frontend: { subnet: 192.168.10.0/24 }', 'namespaces:', '  web: { networks: [frontend] }', '  lonely: {}'],
      ['networks:', '  frontend: { ipv6: true }', 'namespaces:', '  web: { networks: { frontend: { ifname: e0 } } }', '  lonely: {}'],
      THREE_TIER,
      [''],
    ];
    for (const v of versions) state = converge(topology(...v), state).state;
    assert.deepEqual(state, empty());
  });

  it('refuses to take over a network or namespace someone else created, naming the owner', () => {
    const t = topology(...THREE_TIER);
    assert.throws(() => planTopology(t, empty(), { ports: [], policies: [], networks: [network('frontend', { source: null })], namespaces: [], endpoints: [] }), {
      code: 'TOPOLOGY_INVALID',
      message: 'network frontend exists and was not created by this file (created imperatively)',
    });
    assert.throws(() => planTopology(t, empty(), { ports: [], policies: [], networks: [], namespaces: [namespace('api', { source: OTHER })], endpoints: [] }), {
      code: 'TOPOLOGY_INVALID',
      message: 'namespace api exists and was not created by this file (created by /srv/other.yaml)',
    });
  });

  it('sorts records by source, so the whole store may be passed as current', () => {
    const whole: CurrentState = { ports: [], policies: [], networks: [network('frontend', { source: OTHER })], namespaces: [], endpoints: [] };
    assert.throws(() => planTopology(topology(...THREE_TIER), whole), {
      message: 'network frontend exists and was not created by this file (created by /srv/other.yaml)',
    });
    // Another file's records that this file does not name are left alone.
    const others: CurrentState = { ports: [], policies: [], networks: [network('theirs', { source: OTHER })], namespaces: [namespace('x', { source: null })], endpoints: [] };
    const { changes } = converge(topology('networks:', '  mine: {}'), empty(), others);
    assert.deepEqual(changes, [{ kind: 'create-network', spec: { name: 'mine' } }]);
  });

  it('refuses to remove a network or namespace that an endpoint it did not create uses', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const others: CurrentState = { ports: [], policies: [],
      networks: [], namespaces: [namespace('debug', { source: null })],
      endpoints: [endpoint('debug', 'database', { source: null })],
    };
    const withoutDatabase = THREE_TIER.filter((l) => !l.includes('database'));
    assert.throws(() => planTopology(topology(...withoutDatabase), state, others), {
      code: 'TOPOLOGY_INVALID',
      message: 'network database would be removed (no longer declared), but endpoint debug@database was not created by this file ' +
        '(created imperatively): disconnect it first',
    });
    const recreated = THREE_TIER.map((l) => l.replace('internal: true', 'mtu: 1400, internal: true'));
    assert.throws(() => planTopology(topology(...recreated), state, others), {
      message: 'network database would be removed (recreated: mtu default → 1400), but endpoint debug@database was not created by this ' +
        'file (created imperatively): disconnect it first',
    });
    const withoutWeb = topology(...THREE_TIER.slice(0, 5), ...THREE_TIER.slice(8));
    assert.deepEqual(withoutWeb.namespaces, [{ name: 'api' }, { name: 'db' }]);
    const foreignInWeb: CurrentState = { ports: [], policies: [], networks: [network('lab', { source: OTHER })], namespaces: [], endpoints: [endpoint('web', 'lab', { source: OTHER })] };
    assert.throws(() => planTopology(withoutWeb, state, foreignInWeb), {
      message: 'namespace web would be removed (no longer declared), but endpoint web@lab was not created by this file ' +
        '(created by /srv/other.yaml): disconnect it first',
    });
  });

  it('refuses an endpoint someone else created, a pinned subnet or bridge in use, and a static address in use', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    assert.throws(() => planTopology(topology(...THREE_TIER), state, { ports: [], policies: [], networks: [], namespaces: [], endpoints: [endpoint('web', 'frontend', { source: null })] }), {
      message: 'endpoint web@frontend exists and was not created by this file (created imperatively)',
    });
    const theirs: CurrentState = { ports: [], policies: [],
      networks: [network('lab', { source: OTHER, bridge: 'br-lab', subnets: [{ cidr: '10.0.0.0/16', gateway: '10.0.0.1' }] })],
      namespaces: [], endpoints: [],
    };
    assert.throws(() => planTopology(topology('networks:', '  n: { subnet: 10.0.3.0/24 }'), empty(), theirs), {
      message: 'subnet 10.0.3.0/24 of network n overlaps 10.0.0.0/16 of network lab (created by /srv/other.yaml)',
    });
    assert.throws(() => planTopology(topology('networks:', '  n: { bridge: br-lab }'), empty(), theirs), {
      message: 'bridge br-lab of network n is the bridge of network lab (created by /srv/other.yaml)',
    });
    // api@frontend got 192.168.10.100 from the simulator's IPAM; a new endpoint pinning it clashes.
    const pinned = [...THREE_TIER, '  cache:', '    networks:', '      frontend: { ip: 192.168.10.100 }'];
    assert.throws(() => planTopology(topology(...pinned), state), {
      message: '192.168.10.100 for cache@frontend is the address of endpoint api@frontend (created by /srv/app.yaml)',
    });
  });

  it('lets a new network take the subnet of one removed in the same plan', () => {
    const { state } = converge(topology('networks:', '  old: { subnet: 10.5.0.0/24 }'), empty());
    const { changes } = converge(topology('networks:', '  new: { subnet: 10.5.0.0/24 }'), state);
    assert.deepEqual(changes.map(describeChange), ['- network old', '+ network new (10.5.0.0/24)']);
  });
});

describe('downTopology', () => {
  it('removes everything the file created, including what an earlier version declared', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const stale: CurrentState = { ...state, namespaces: [...state.namespaces, namespace('gone')] };
    const changes = downTopology(topology(...THREE_TIER.slice(0, 4)), stale);
    assert.deepEqual(changes.map(describeChange), [
      '- endpoint web@frontend',
      '- endpoint api@frontend',
      '- endpoint api@backend',
      '- endpoint db@backend',
      '- endpoint db@database',
      '- network frontend',
      '- network backend',
      '- network database',
      '- namespace web',
      '- namespace api',
      '- namespace db',
      '- namespace gone',
    ]);
    assert.deepEqual(simulate(stale, changes, SOURCE), empty());
  });

  it('is empty when the file created nothing, and leaves other sources alone', () => {
    const others: CurrentState = { ports: [], policies: [], networks: [network('frontend', { source: null })], namespaces: [], endpoints: [] };
    assert.deepEqual(downTopology(topology(...THREE_TIER), empty(), others), []);
  });

  it('refuses while an endpoint someone else created uses what it would remove', () => {
    const { state } = converge(topology(...THREE_TIER), empty());
    const others: CurrentState = { ports: [], policies: [], networks: [], namespaces: [namespace('debug', { source: null })], endpoints: [endpoint('debug', 'backend', { source: null })] };
    assert.throws(() => downTopology(topology(...THREE_TIER), state, others), {
      code: 'TOPOLOGY_INVALID',
      message: 'network backend would be removed (the file is taken down), but endpoint debug@backend was not created by this file ' +
        '(created imperatively): disconnect it first',
    });
  });
});

describe('describeChange', () => {
  it('prints one terse line per change', () => {
    const lines = ([
      { kind: 'create-network', spec: { name: 'frontend', subnets: ['192.168.10.0/24', 'fd00:10::/64'] } },
      { kind: 'create-network', spec: { name: 'auto' } },
      { kind: 'create-network', spec: { name: 'auto6', ipv6: true, masquerade: false, mtu: 9000, bridge: 'br-a' } },
      { kind: 'create-network', spec: { name: 'db', subnets: ['10.0.0.0/24'], gateways: ['10.0.0.254'], internal: true, masquerade: false } },
      { kind: 'remove-network', name: 'frontend' },
      { kind: 'create-namespace', name: 'web' },
      { kind: 'remove-namespace', name: 'old' },
      { kind: 'connect', spec: { network: 'frontend', namespace: 'web', ifname: 'eth0', ips: ['192.168.10.10'], mac: '02:00:00:00:00:01', aliases: ['www', 'w'] } },
      { kind: 'connect', spec: { network: 'frontend', namespace: 'api' } },
      { kind: 'disconnect', network: 'frontend', namespace: 'web' },
    ] satisfies Change[]).map(describeChange);
    assert.deepEqual(lines, [
      '+ network frontend (192.168.10.0/24, fd00:10::/64)',
      '+ network auto (subnet from pool)',
      '+ network auto6 (subnet from pool, IPv6 subnet from pool, no masquerade, mtu 9000, bridge br-a)',
      '+ network db (10.0.0.0/24, gateway 10.0.0.254, internal)',
      '- network frontend',
      '+ namespace web',
      '- namespace old',
      '+ endpoint web@frontend (eth0, ip 192.168.10.10, mac 02:00:00:00:00:01, aliases www, w)',
      '+ endpoint api@frontend',
      '- endpoint web@frontend',
    ]);
  });

  it('describePlan leaves plain creations and removals as describeChange prints them', () => {
    const changes: Change[] = [{ kind: 'remove-namespace', name: 'old' }, { kind: 'create-namespace', name: 'new' }];
    assert.deepEqual(describePlan(changes, empty()), ['- namespace old', '+ namespace new']);
    assert.deepEqual(describePlan([], empty()), []);
  });
});

// ---------------------------------------------------------------------------------------------
// Published ports and policies

/** THREE_TIER with the scenario's ports and policies (names given where a test refers to them). */
const SECURED = [
  ...THREE_TIER,
  'policies:',
  '  - { action: allow, from: frontend, to: backend }',
  '  - { action: allow, from: backend, to: frontend }',
  '  - { action: deny, from: frontend, to: database, name: no-fe-db, priority: 10 }',
  '  - { action: deny, from: backend, to: outside, name: be-out }',
];
SECURED.splice(8, 0, '    publish: ["80:80/tcp", "127.0.0.1:8443:443"]');

function portRecord(namespace: string, spec: string, fields: Partial<PublishRecord> = {}): PublishRecord[] {
  return expandPortSpec(parsePortSpec(spec)).map((m) => ({
    ...m, namespace, network: 'frontend', target4: '192.168.10.10', target6: null, from: [], source: SOURCE, ...fields,
  }));
}

describe('planTopology: published ports and policies', () => {
  it('publishes after the connects and adds policies last, on a fresh host', () => {
    const { changes } = converge(topology(...SECURED), empty());
    assert.deepEqual(changes.slice(-6), [
      { kind: 'connect', spec: { network: 'database', namespace: 'db', ifname: 'eth1' } },
      { kind: 'publish', namespace: 'web', specs: ['80:80/tcp', '127.0.0.1:8443:443/tcp'], network: 'frontend' },
      { kind: 'add-policy', spec: { name: 'app-0', action: 'allow', from: 'network:frontend', to: 'network:backend' } },
      { kind: 'add-policy', spec: { name: 'app-1', action: 'allow', from: 'network:backend', to: 'network:frontend' } },
      { kind: 'add-policy', spec: { name: 'no-fe-db', action: 'deny', from: 'network:frontend', to: 'network:database', priority: 10 } },
      { kind: 'add-policy', spec: { name: 'be-out', action: 'deny', from: 'network:backend', to: 'outside' } },
    ]);
    assert.deepEqual(describePlan(changes, empty()).slice(-5), [
      '+ publish web@frontend 80:80/tcp, 127.0.0.1:8443:443/tcp',
      '+ policy app-0: allow frontend → backend',
      '+ policy app-1: allow backend → frontend',
      '+ policy no-fe-db: deny frontend → database (priority 10)',
      '+ policy be-out: deny backend → outside',
    ]);
  });

  it('plans nothing for the scenario file applied twice (examples/three-tier.yaml)', () => {
    const file = fileURLToPath(new URL('../../../examples/three-tier.yaml', import.meta.url));
    const t = loadTopology(file);
    const { changes, state } = converge(t, empty());
    assert.equal(changes.filter((c) => c.kind === 'add-policy').length, 7);
    assert.deepEqual(state.ports.map((p) => `${p.namespace}@${p.network} ${p.spec}`), ['web@frontend 80:80/tcp']);
    assert.deepEqual(planTopology(loadTopology(file), state), []);
  });

  it('compares ports by normalised spec, network and sources; a range is one spec', () => {
    const t = topology(
      'networks: { a: {}, b: {} }',
      'namespaces:',
      '  x:',
      '    networks: [a, b]',
      '    publish: ["5000-5002:6000-6002/udp", { spec: "8080:80", network: b, from: [10.0.0.0/8, 192.0.2.1] }]',
    );
    const { state } = converge(t, empty());
    assert.equal(state.ports.length, 4);
    // Spelled differently, same meaning: nothing to do.
    const same = topology(
      'networks: { a: {}, b: {} }',
      'namespaces:',
      '  x:',
      '    networks: [a, b]',
      '    publish: ["0.0.0.0:5000-5002:6000-6002/UDP", { spec: "8080:80/tcp", network: b, from: [192.0.2.1/32, 10.0.0.0/8] }]',
    );
    assert.deepEqual(planTopology(same, state), []);
    // Another network, other sources: unpublished first, published again last.
    const moved = topology(
      'networks: { a: {}, b: {} }',
      'namespaces:',
      '  x:',
      '    networks: [a, b]',
      '    publish: ["5000-5002:6000-6002/udp", { spec: "8080:80", network: a }]',
    );
    const { changes } = converge(moved, state);
    assert.deepEqual(changes, [
      { kind: 'unpublish', namespace: 'x', spec: '8080:80/tcp' },
      { kind: 'publish', namespace: 'x', specs: ['8080:80/tcp'], network: 'a' },
    ]);
    assert.deepEqual(describePlan(changes, state), ['~ publish x@a 8080:80/tcp (network b → a, from 10.0.0.0/8, 192.0.2.1/32 → anywhere)']);
    // A range that a crash left with only some of its rows is redone.
    const partial: CurrentState = { ...state, ports: state.ports.filter((p) => p.hostPort !== 5001) };
    const redo = planTopology(t, partial);
    assert.deepEqual(describePlan(redo, partial), ['~ publish x@a 5000-5002:6000-6002/udp (repair: incomplete)']);
  });

  it('republishes the ports of an endpoint that is reconnected, around the disconnect', () => {
    const { state } = converge(topology(...SECURED), empty());
    const edited = SECURED.map((l) => l.replace('192.168.10.10', '192.168.10.11'));
    const { changes } = converge(topology(...edited), state);
    assert.deepEqual(changes.map(describeChange), [
      '- publish web 80:80/tcp',
      '- publish web 127.0.0.1:8443:443/tcp',
      '- endpoint web@frontend',
      '+ endpoint web@frontend (eth0, ip 192.168.10.11, aliases www)',
      '+ publish web@frontend 80:80/tcp, 127.0.0.1:8443:443/tcp',
    ]);
    assert.deepEqual(describePlan(changes, state), [
      '~ endpoint web@frontend (ip 192.168.10.10 → 192.168.10.11)',
      '~ publish web@frontend 80:80/tcp, 127.0.0.1:8443:443/tcp (endpoint web@frontend reconnected)',
    ]);
  });

  it('removes a changed policy first and adds it again last', () => {
    const { state } = converge(topology(...SECURED), empty());
    // Recreating the database network: the policy that names it is changed too, so it goes
    // before the network and comes back after it.
    const edited = SECURED.map((l) => l.replace('to: database, name: no-fe-db, priority: 10', 'to: database, name: no-fe-db, priority: 10, ports: [5432/tcp, 3306]'))
      .map((l) => l.replace('192.168.30.0/24, internal: true', '192.168.31.0/24, internal: true'));
    const { changes } = converge(topology(...edited), state);
    assert.deepEqual(changes.map((c) => c.kind), [
      'remove-policy', 'disconnect', 'remove-network', 'create-network', 'connect', 'add-policy',
    ]);
    assert.deepEqual(describePlan(changes, state), [
      '~ network database (subnets 192.168.30.0/24 → 192.168.31.0/24)',
      '~ endpoint db@database (network database recreated)',
      '~ policy no-fe-db (ports any → 3306, 5432/tcp)',
    ]);
  });

  it('removes the policies that name a network before removing the network', () => {
    const { state } = converge(topology(...SECURED), empty());
    const withoutDatabase = SECURED.filter((l) => !l.includes('database'));
    const { changes } = converge(topology(...withoutDatabase), state);
    assert.deepEqual(changes.map(describeChange), [
      '- policy no-fe-db',
      '- endpoint db@backend',
      '- endpoint db@database',
      '- network database',
    ]);
  });

  it('keeps policies of equal priority in the file\'s order', () => {
    const policies = (...lines: string[]): Topology => topology('networks: { a: {}, b: {} }', 'policies:', ...lines);
    const p1 = '  - { name: p1, action: allow, from: a, to: b }';
    const p2 = '  - { name: p2, action: deny, from: a, to: b }';
    const p3 = '  - { name: p3, action: deny, from: b, to: a, priority: 5 }';
    const p4 = '  - { name: p4, action: allow, from: b, to: a }';
    let { state } = converge(policies(p1, p2, p3), empty());
    // Appended at the end of its priority: only added.
    let step = converge(policies(p1, p2, p3, p4), state);
    assert.deepEqual(step.changes.map(describeChange), ['+ policy p4: allow b → a']);
    state = step.state;
    // Inserted before p2: p2 and p4 come after it, so they are added again after it; p3 (another
    // priority) and p1 (before it) stay.
    step = converge(policies(p1, '  - { name: p0, action: deny, from: b, to: a }', p2, p3, p4), state);
    assert.deepEqual(describePlan(step.changes, state), [
      '+ policy p0: deny b → a',
      '~ policy p2 (re-added to keep the file\'s order at priority 100)',
      '~ policy p4 (re-added to keep the file\'s order at priority 100)',
    ]);
    // Reordered without other change: redone from the first policy out of place.
    step = converge(policies(p2, p1), step.state);
    assert.deepEqual(step.changes.map(describeChange), ['- policy p1', '- policy p3', '- policy p0', '- policy p4', '+ policy p1: allow a → b']);
  });

  it('names default policies after the file, so the same file plans nothing twice', () => {
    const t = topology('networks: { a: {} }', 'policies:', '  - { action: deny, from: a, to: outside }', '  - { action: allow, from: a, to: 10.0.0.0/8, ports: [443] }');
    const { state } = converge(t, empty());
    assert.deepEqual(state.policies.map((p) => p.name), ['app-0', 'app-1']);
    assert.deepEqual(planTopology(t, state), []);
  });

  it('refuses a policy name or host port someone else holds, and removing what their ports and policies use', () => {
    const t = topology(...SECURED);
    const theirPolicy: PolicyRecord = {
      id: 7, name: 'no-fe-db', action: 'deny', from: { kind: 'outside' }, to: { kind: 'network', name: 'frontend' }, ports: [],
      priority: 100, source: null, declared: { name: 'no-fe-db', action: 'deny', from: 'outside', to: 'frontend' }, createdAt: T0,
    };
    assert.throws(() => planTopology(t, empty(), { ...empty(), policies: [theirPolicy] }), {
      code: 'TOPOLOGY_INVALID',
      message: 'policy no-fe-db exists and was not created by this file (created imperatively)',
    });
    const theirPort = portRecord('other', '8443:443', { network: 'lab', source: OTHER });
    assert.throws(() => planTopology(t, empty(), { ...empty(), ports: theirPort }), {
      message: 'host port 8443/tcp of 127.0.0.1:8443:443/tcp for namespace web is published for namespace other (8443:443/tcp, created by /srv/other.yaml)',
    });
    // On another host address, no clash.
    converge(t, empty(), { ...empty(), ports: portRecord('other', '192.0.2.1:8443:443', { network: 'lab', source: OTHER }) });

    const { state } = converge(t, empty());
    const onWeb = { ...empty(), ports: portRecord('web', '9000:9000', { source: null }) };
    assert.throws(() => planTopology(topology(...SECURED.map((l) => l.replace('192.168.10.10', '192.168.10.11'))), state, onWeb), {
      message: 'endpoint web@frontend would be disconnected, but port 9000:9000/tcp published on it was not created by this file ' +
        '(created imperatively): unpublish it first',
    });
    const naming = { ...empty(), policies: [{ ...theirPolicy, name: 'theirs', to: { kind: 'network' as const, name: 'database' } }] };
    assert.throws(() => planTopology(topology(...SECURED.filter((l) => !l.includes('database'))), state, naming), {
      message: 'network database would be removed (no longer declared), but policy theirs names it and was not created by this file ' +
        '(created imperatively): remove the policy first',
    });
    // A network that is recreated keeps the policies that name it.
    converge(topology(...SECURED.map((l) => l.replace('internal: true', 'internal: true, mtu: 1400'))), state, naming);
    assert.throws(() => downTopology(t, state, naming), {
      message: 'network database would be removed (the file is taken down), but policy theirs names it and was not created by this file ' +
        '(created imperatively): remove the policy first',
    });
  });
});

describe('downTopology: published ports and policies', () => {
  it('removes policies first, then ports, then the rest', () => {
    const { state } = converge(topology(...SECURED), empty());
    const changes = downTopology(topology(''), state);
    assert.deepEqual(changes.slice(0, 7).map(describeChange), [
      '- policy app-0',
      '- policy app-1',
      '- policy no-fe-db',
      '- policy be-out',
      '- publish web 80:80/tcp',
      '- publish web 127.0.0.1:8443:443/tcp',
      '- endpoint web@frontend',
    ]);
    assert.deepEqual(simulate(state, changes, SOURCE), empty());
  });
});

describe('describeChange: published ports and policies', () => {
  it('prints one terse line per change', () => {
    const lines = ([
      { kind: 'publish', namespace: 'web', specs: ['8080:80/tcp'] },
      { kind: 'publish', namespace: 'web', specs: ['80:80/tcp', '443:443/tcp'], network: 'frontend', from: ['203.0.113.0/24'] },
      { kind: 'unpublish', namespace: 'web', spec: '8080:80/tcp' },
      { kind: 'add-policy', spec: { name: 'no-fe-db', action: 'deny', from: 'network:frontend', to: 'network:database' } },
      { kind: 'add-policy', spec: { name: 'db', action: 'allow', from: 'ns:app1', to: 'ns:db', ports: ['3306/tcp'], priority: 10 } },
      { kind: 'remove-policy', name: 'no-fe-db' },
    ] satisfies Change[]).map(describeChange);
    assert.deepEqual(lines, [
      '+ publish web 8080:80/tcp',
      '+ publish web@frontend 80:80/tcp, 443:443/tcp (from 203.0.113.0/24)',
      '- publish web 8080:80/tcp',
      '+ policy no-fe-db: deny frontend → database',
      '+ policy db: allow app1 → db (ports 3306/tcp, priority 10)',
      '- policy no-fe-db',
    ]);
  });
});
