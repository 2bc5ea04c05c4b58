/**
 * An etcd with authentication enabled (etcd's RBAC: a user whose role may read and write
 * /nsnet/): the cluster commands and agents with `--etcd-user` and a password file or
 * NSNET_ETCD_PASSWORD; one-line refusals for a missing user, a wrong password and a user
 * without permission, with nothing written; an agent that keeps working after its token
 * expires (etcd's --auth-token-ttl, 2 s here); an agent started with a wrong password that
 * retries, configures nothing, and takes the corrected password file without a restart.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CIDR, ETCD_URL, World, type Host, ETCD_MISSING, refused, snapshot } from './harness.js';
import { CLI, sleep } from '../harness/world.js';

const ENV = { NSNET_CLUSTER_LEASE_TTL: '6', NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
const TOKEN_TTL = 2;
let w: World;
let h1: Host, h2: Host, h3: Host;
let good: string, wrong: string;

const root = (...args: string[]) => {
  const r = w.etcdctl('--user', 'root:rootpw', ...args);
  assert.equal(r.status, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const creds = (file: string, user = 'agent'): string[] => ['--etcd-user', user, '--etcd-password-file', file];

describe('cluster: etcd with authentication', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'a' }], env: ENV });
    [h1, h2, h3] = w.hosts as [Host, Host, Host];
    await w.startEtcd({ extraArgs: ['--auth-token', 'simple', '--auth-token-ttl', String(TOKEN_TTL)] });
    // etcd's documented set-up: a root user with the root role, then a role per client.
    for (const args of [['user', 'add', 'root:rootpw', '--interactive=false'], ['user', 'grant-role', 'root', 'root'],
      ['role', 'add', 'nsnet'], ['role', 'grant-permission', 'nsnet', '--prefix=true', 'readwrite', '/nsnet/'],
      ['user', 'add', 'agent:agentpw', '--interactive=false'], ['user', 'grant-role', 'agent', 'nsnet'],
      ['user', 'add', 'nobody:nobodypw', '--interactive=false'], ['auth', 'enable']]) {
      const r = w.etcdctl(...args);
      assert.equal(r.status, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    }
    // Under the etcd directory, which the simulated hosts see too.
    good = path.join(w.etcdDir, 'agent.pw');
    wrong = path.join(w.etcdDir, 'wrong.pw');
    fs.writeFileSync(good, 'agentpw\n', { mode: 0o600 });
    fs.writeFileSync(wrong, 'not-the-password\n', { mode: 0o600 });
  });
  after(async () => { await w?.close(); });

  test('refusals name the user and what to fix, exit 1, and write nothing', () => {
    const init = ['cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR];
    refused(h1, init, /^nsnet: etcd at http:\/\/10\.99\.0\.2:2379 requires a user \(authentication is enabled\): pass --etcd-user NAME and --etcd-password-file FILE/);
    refused(h1, [...init, ...creds(wrong)],
      new RegExp(`^nsnet: etcd at http://10\\.99\\.0\\.2:2379 refused user agent: unknown user or wrong password \\(the password from --etcd-password-file ${wrong.replaceAll('.', '\\.')}\\)$`));
    refused(h1, [...init, '--etcd-user', 'nobody'], /^nsnet: etcd at http:\/\/10\.99\.0\.2:2379: user nobody may not use the keys under \/nsnet\/: grant one of its roles readwrite on them/, 1, { NSNET_ETCD_PASSWORD: 'nobodypw' });
    // Usage errors, before etcd is asked.
    refused(h1, [...init, '--etcd-user', 'agent'], /^nsnet: --etcd-user agent needs a password: --etcd-password-file FILE, or NSNET_ETCD_PASSWORD$/, 2);
    refused(h1, [...init, '--etcd-user', 'agent:agentpw'], /^nsnet: --etcd-user "agent:…" holds a password: put it in --etcd-password-file FILE or NSNET_ETCD_PASSWORD, not on the command line/, 2);
    refused(h1, [...init, ...creds('/nonexistent.pw')], /^nsnet: cannot read --etcd-password-file \/nonexistent\.pw: no such file$/, 2);
    assert.equal(root('get', '/nsnet/', '--prefix', '--keys-only').trim(), '', 'nothing was written');
    // With the right user: from the password file, and from the environment.
    h1.nsnetOk('cluster', 'init', '--etcd', ETCD_URL, '--cidr', CIDR, ...creds(good));
    const r = h1.run(['env', 'NSNET_ETCD_USER=agent', 'NSNET_ETCD_PASSWORD=agentpw', process.execPath, CLI, 'cluster', 'status', '--etcd', ETCD_URL, '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { config: { network: string } }).config.network, CIDR);
  });

  test('agents with a user converge, and keep working after their tokens expire', async () => {
    await Promise.all([h1, h2].map((h) => h.startAgent(creds(good))));
    await w.converged([h1, h2]);
    const ip2 = h2.container('c2');
    h1.container('c1');
    assert.equal(h1.ping('c1', ip2).status, 0);
    // Past the token's TTL: the agents' next calls (a name published for a new container,
    // status writes) get "invalid auth token" and must authenticate again by themselves.
    await sleep((TOKEN_TTL + 2) * 1000);
    const ip3 = h2.container('c2b');
    const resolve = (): string => h1.run(['ip', 'netns', 'exec', 'c1', 'getent', 'hosts', 'c2b']).stdout;
    for (let i = 0; i < 50 && !resolve().startsWith(`${ip3} `); i++) await sleep(100);
    assert.ok(resolve().startsWith(`${ip3} `), `h1 resolves the container h2 attached after the token expired: ${resolve()}`);
    assert.equal(h1.ping('c1', ip3).status, 0);
    for (const h of [h1, h2]) {
      assert.deepEqual(h.events.filter((e) => e.event === 'retry' || e.event === 'lease-lost'), [], `no failed etcd call on ${h.name}`);
    }
    const status = JSON.parse(h1.nsnetOk('cluster', 'status', '--etcd', ETCD_URL, '--json', ...creds(good))) as { nodes: Array<{ name: string; alive: boolean }> };
    assert.deepEqual(status.nodes.map((n) => [n.name, n.alive]), [['h1', true], ['h2', true]]);
  });

  test('an agent with a wrong password retries and configures nothing; the corrected file is taken without a restart', async () => {
    const file = path.join(w.etcdDir, 'h3.pw');
    fs.copyFileSync(wrong, file);
    const before = snapshot(h3);
    await h3.startAgent(creds(file), { wait: false });
    await h3.waitEvent('retry', 15_000, (e) => Number(e.retryInMs) >= 500);
    const retries = h3.events.filter((e) => e.event === 'retry');
    for (const e of retries) assert.match(String(e.error), /^etcd at http:\/\/10\.99\.0\.2:2379 refused user agent: unknown user or wrong password/);
    assert.equal(h3.agent!.exitCode, null, 'the agent keeps running');
    assert.equal(snapshot(h3), before, 'nothing configured while etcd refuses the user');
    fs.writeFileSync(file, 'agentpw\n');
    await h3.waitEvent('credentials-reloaded', 15_000);
    await h3.waitEvent('running', 15_000);
    await w.converged();
    const ip3 = h3.container('c3');
    assert.equal(h1.ping('c1', ip3).status, 0);
  });
});
