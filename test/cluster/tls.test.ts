/**
 * Containers across hosts with etcd over TLS, as production runs it: etcd on
 * https://10.99.0.2:2379 with --client-cert-auth and a throwaway PKI (harness.ts makePki).
 * Bad option combinations are refused before anything reaches etcd or the kernel; clients
 * the server refuses (no certificate, another CA's certificate) or cannot trust (wrong CA,
 * a server certificate for another address) get one line naming the URL and what to fix;
 * the agent retries such failures with backoff instead of exiting, and takes certificates
 * rotated on disk at its next attempt; three hosts over https converge and carry container
 * traffic.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CIDR, ETCD_MISSING, ETCD_URL, World, refused, snapshot, type AgentEvent, type Host, type Pki } from './harness.js';
import { CLI, sleep } from '../harness/world.js';

const ENV = { NSNET_CLUSTER_LEASE_TTL: '6', NSNET_CLUSTER_HEARTBEAT_TTL: '3', NSNET_CLUSTER_RESYNC: '1', NSNET_CLUSTER_MAX_BACKOFF: '1' };
const URL_RE = 'https:\\/\\/10\\.99\\.0\\.2:2379';
let w: World;
let pki: Pki;
let h1: Host, h2: Host, h3: Host;

/** Nothing under /nsnet/ in etcd. */
function etcdEmpty(): void {
  const r = w.etcdctl('get', '/nsnet/', '--prefix', '--keys-only');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '');
}

/** Replaces `to` with a copy of `from` in one step (a rename), as a certificate manager does. */
function install(from: string, to: string): void {
  fs.copyFileSync(from, `${to}.new`);
  fs.renameSync(`${to}.new`, to);
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('cluster: etcd over TLS with client certificates', { skip: ETCD_MISSING }, () => {
  before(async () => {
    w = new World({ hosts: [{ name: 'h1', segment: 'a' }, { name: 'h2', segment: 'a' }, { name: 'h3', segment: 'b' }], env: ENV, tls: true });
    [h1, h2, h3] = w.hosts as [Host, Host, Host];
    pki = w.pki!;
    await w.startEtcd();
  });
  after(async () => { await w?.close(); });

  test('bad option combinations: one line naming the option and the file, exit 2, nothing in etcd or the kernel', () => {
    const U = w.etcdUrl;
    const garbage = path.join(pki.dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    const init = (...a: string[]): string[] => ['cluster', 'init', '--cidr', CIDR, '--etcd', U, ...a];
    refused(h1, init('--etcd-ca', pki.ca, '--etcd-cert', pki.client.cert),
      new RegExp(`^nsnet: --etcd-cert ${esc(pki.client.cert)} is given without --etcd-key \\(or NSNET_ETCD_KEY\\): pass the client certificate and its key together$`), 2);
    refused(h1, init('--etcd-ca', pki.ca),
      new RegExp(`^nsnet: NSNET_ETCD_KEY ${esc(pki.client.key)} is given without --etcd-cert`), 2, { NSNET_ETCD_KEY: pki.client.key });
    refused(h1, init('--etcd-ca', '/run/nowhere/ca.pem', '--etcd-cert', pki.client.cert, '--etcd-key', pki.client.key),
      /^nsnet: cannot read --etcd-ca \/run\/nowhere\/ca\.pem: no such file$/, 2);
    refused(h1, init('--etcd-ca', garbage, '--etcd-cert', pki.client.cert, '--etcd-key', pki.client.key),
      new RegExp(`^nsnet: --etcd-ca ${esc(garbage)} is not a PEM certificate`), 2);
    refused(h1, init('--etcd-ca', pki.ca, '--etcd-cert', pki.client.key, '--etcd-key', pki.client.cert),
      new RegExp(`^nsnet: --etcd-cert ${esc(pki.client.key)} is not a PEM certificate`), 2);
    refused(h1, init('--etcd-ca', pki.ca, '--etcd-cert', pki.client.cert, '--etcd-key', pki.otherClient.key),
      new RegExp(`^nsnet: --etcd-key ${esc(pki.otherClient.key)} is not the key of --etcd-cert ${esc(pki.client.cert)}$`), 2);
    refused(h1, ['cluster', 'init', '--cidr', CIDR, '--etcd', `${U},${ETCD_URL.replace('.2:', '.3:')}`],
      /^nsnet: etcd endpoints mix http:\/\/ and https:\/\/ .*: use one scheme for all of them$/, 2);
    refused(h1, ['cluster', 'init', '--cidr', CIDR, '--etcd', ETCD_URL, '--etcd-ca', pki.ca],
      new RegExp(`^nsnet: --etcd-ca ${esc(pki.ca)} is for TLS, but the etcd endpoints are http://: use https:// endpoints$`), 2);
    refused(h1, ['cluster', 'status', '--etcd', U, '--etcd-key', pki.client.key], /^nsnet: --etcd-key .* is given without --etcd-cert/, 2);
    refused(h1, ['cluster', 'node', 'rm', 'h9', '--etcd', U, '--etcd-ca', garbage], /^nsnet: --etcd-ca .*garbage\.pem is not a PEM certificate/, 2);
    // The agent refuses at once too, before touching anything.
    const before = snapshot(h2);
    const r = h2.run([process.execPath, CLI, 'agent', '--etcd', U, '--etcd-ca', pki.ca, '--etcd-cert', pki.client.cert, '--node', 'h2', '--iface', 'eth0']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^nsnet: --etcd-cert ${esc(pki.client.cert)} is given without --etcd-key .*\n$`));
    assert.equal(snapshot(h2), before);
    etcdEmpty();
  });

  test('clients the server refuses or cannot trust get a clear error naming the URL', () => {
    const status = (...a: string[]): string[] => ['cluster', 'status', '--etcd', w.etcdUrl, ...a];
    refused(h1, status('--etcd-ca', pki.ca),
      new RegExp(`^nsnet: etcd at ${URL_RE}: the server requires a client certificate \\(TLS alert "[a-z ]+"\\): pass --etcd-cert and --etcd-key$`));
    refused(h1, status('--etcd-ca', pki.ca, '--etcd-cert', pki.otherClient.cert, '--etcd-key', pki.otherClient.key),
      new RegExp(`^nsnet: etcd at ${URL_RE}: the server rejected the client certificate --etcd-cert ${esc(pki.otherClient.cert)} \\(TLS alert "[a-z ]+"\\)$`));
    refused(h1, status('--etcd-ca', pki.otherCa, '--etcd-cert', pki.client.cert, '--etcd-key', pki.client.key),
      new RegExp(`^nsnet: etcd at ${URL_RE}: the server's certificate is not trusted by --etcd-ca ${esc(pki.otherCa)} \\(unable to verify the first certificate\\)$`));
    // Without --etcd-ca: the system roots, which do not hold the test CA…
    refused(h1, status('--etcd-cert', pki.client.cert, '--etcd-key', pki.client.key),
      new RegExp(`^nsnet: etcd at ${URL_RE}: the server's certificate is not trusted by the system roots.*: pass the CA that signed it with --etcd-ca$`));
    // …unless SSL_CERT_FILE names it (as for Go programs): the call then reaches etcd.
    refused(h1, status('--etcd-cert', pki.client.cert, '--etcd-key', pki.client.key),
      new RegExp(`^nsnet: no cluster config in etcd at ${URL_RE}: run \`nsnet cluster init\` first$`), 1, { SSL_CERT_FILE: pki.ca });
    // Plain http:// to the TLS server.
    refused(h1, ['cluster', 'status', '--etcd', ETCD_URL], /^nsnet: etcd at http:\/\/10\.99\.0\.2:2379 is unreachable: .*if it serves TLS, use https:\/\//);
    etcdEmpty();
  });

  test('init over TLS, configured through the environment', () => {
    const env = { NSNET_ETCD: w.etcdUrl, NSNET_ETCD_CA: pki.ca, NSNET_ETCD_CERT: pki.client.cert, NSNET_ETCD_KEY: pki.client.key };
    const r = h1.run(['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, CLI, 'cluster', 'init', '--cidr', CIDR]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'nothing on stderr (no TLS warning)');
    assert.match(r.stdout, /cluster initialised: 10\.244\.0\.0\/16/);
    const cfg = JSON.parse(w.etcdctl('get', '/nsnet/v1/config', '--print-value-only').stdout) as { network: string };
    assert.equal(cfg.network, CIDR);
  });

  test('an agent whose certificate etcd refuses retries with backoff, names the URL and configures nothing', async () => {
    const before = snapshot(h3);
    const refusedBy = async (etcdArgs: string[], error: RegExp): Promise<AgentEvent[]> => {
      await h3.startAgent([], { wait: false, etcdArgs });
      await h3.waitEvent('retry', 15_000, (e) => Number(e.retryInMs) >= 1000);
      const retries = h3.events.filter((e) => e.event === 'retry');
      for (const e of retries) assert.match(String(e.error), error);
      assert.equal(h3.agent!.exitCode, null, 'no crash: the agent keeps running');
      await h3.stopAgent('SIGTERM');
      assert.equal(h3.agent!.exitCode, 0);
      assert.equal(h3.stderr, '');
      return retries;
    };
    const retries = await refusedBy(['--etcd', w.etcdUrl, '--etcd-ca', pki.ca, '--etcd-cert', pki.otherClient.cert, '--etcd-key', pki.otherClient.key],
      new RegExp(`^etcd at ${URL_RE}: the server rejected the client certificate --etcd-cert ${esc(pki.otherClient.cert)} `));
    assert.deepEqual(retries.slice(0, 3).map((e) => Number(e.retryInMs)), [250, 500, 1000]);
    assert.ok(retries.every((e) => Number(e.retryInMs) <= 1000));
    await refusedBy(['--etcd', w.etcdUrl, '--etcd-ca', pki.ca], new RegExp(`^etcd at ${URL_RE}: the server requires a client certificate `));
    await refusedBy(['--etcd', w.etcdUrl, '--etcd-ca', pki.otherCa, '--etcd-cert', pki.client.cert, '--etcd-key', pki.client.key],
      new RegExp(`^etcd at ${URL_RE}: the server's certificate is not trusted by --etcd-ca `));
    assert.equal(snapshot(h3), before, 'nothing configured');
    assert.equal(w.etcdctl('get', '/nsnet/v1/', '--prefix', '--keys-only').stdout.split('\n').filter(Boolean).join(' '), '/nsnet/v1/config');
  });

  test('a refused agent takes a client certificate replaced on disk at its next attempt, without a restart', async () => {
    const cert = path.join(pki.dir, 'h3-client.crt');
    const key = path.join(pki.dir, 'h3-client.key');
    fs.copyFileSync(pki.otherClient.cert, cert);
    fs.copyFileSync(pki.otherClient.key, key);
    await h3.startAgent([], { wait: false, etcdArgs: ['--etcd', w.etcdUrl, '--etcd-ca', pki.ca, '--etcd-cert', cert, '--etcd-key', key] });
    await h3.waitEvent('retry', 15_000, (e) => /rejected the client certificate/.test(String(e.error)));
    install(pki.client.key, key);
    install(pki.client.cert, cert);
    await h3.waitEvent('running', 20_000);
    const reloaded = h3.events.find((e) => e.event === 'tls-reloaded');
    assert.deepEqual(reloaded && [reloaded.ca, reloaded.cert, reloaded.key], [pki.ca, cert, key]);
    await h3.stopAgent('SIGTERM');
    assert.equal(h3.agent!.exitCode, 0);
    assert.equal(h3.stderr, '');
  });

  const ips: Record<string, string> = {};

  test('agents over https with client certificates converge; containers on different hosts reach each other', async () => {
    await Promise.all(w.hosts.map((h) => h.startAgent()));
    await w.converged();
    // h1 ↔ h2 host-gw on segment A, h3 over VXLAN behind the router.
    assert.equal(h1.routes().find((r) => r.dst === h2.subnet())?.gateway, h2.ip);
    assert.equal(h1.routes().find((r) => r.dst === h3.subnet())?.dev, 'nsnet.1');
    for (const h of w.hosts) ips[h.name] = h.container(`c-${h.name}`);
    for (const [a, b] of [[h1, h2], [h1, h3], [h3, h2]] as const) {
      const r = a.ping(`c-${a.name}`, ips[b.name]!);
      assert.equal(r.status, 0, `${a.name} → ${b.name}: ${r.stdout}${r.stderr}`);
    }
    for (const h of w.hosts) assert.equal(h.stderr, '', `agent ${h.name} wrote to stderr`);
  });

  test('cluster status over TLS', () => {
    const s = JSON.parse(h2.nsnetOk('cluster', 'status', ...w.etcdArgs, '--json')) as { etcd: string[]; nodes: Array<{ name: string; alive: boolean; subnet: string }> };
    assert.deepEqual(s.etcd, [w.etcdUrl]);
    assert.deepEqual(s.nodes.map((n) => [n.name, n.alive, n.subnet]), w.hosts.map((h) => [h.name, true, h.subnet()]));
    const text = h2.nsnet('cluster', 'status', ...w.etcdArgs);
    assert.equal(text.status, 0, text.stderr);
    assert.equal(text.stderr, '');
    assert.match(text.stdout.split('\n')[0]!, new RegExp(`^cluster 10\\.244\\.0\\.0/16 .* at ${URL_RE}, revision \\d+$`));
  });

  test('etcd serving a certificate for another address: a clear error; agents retry, keep the data plane, and recover when it is fixed', async () => {
    const marks = w.hosts.map((h) => h.events.length);
    const kernel = w.hosts.map((h) => h.kernelState());
    await w.stopEtcd();
    await w.startEtcd({ serverCert: pki.wrongName });
    refused(h1, ['cluster', 'status', ...w.etcdArgs],
      new RegExp(`^nsnet: etcd at ${URL_RE}: the server's certificate is not valid for this address \\(IP: 10\\.99\\.0\\.2 is not in the cert's list: 10\\.99\\.0\\.3\\)$`));
    // Each agent notices (its heartbeat lease, 3 s, cannot be renewed) and retries, naming the cause.
    const notValid = new RegExp(`^etcd at ${URL_RE}: the server's certificate is not valid for this address`);
    await Promise.all(w.hosts.map((h, i) => h.waitEvent('retry', 15_000, (e) => notValid.test(String(e.error)), marks[i])));
    w.hosts.forEach((h, i) => {
      assert.equal(h.agent!.exitCode, null, `agent ${h.name} keeps running`);
      assert.equal(h.kernelState(), kernel[i], `${h.name}: the data plane stays while etcd is refused`);
    });
    assert.equal(h1.ping('c-h1', ips.h3!).status, 0);
    // Fixed: the agents come back by themselves.
    await w.stopEtcd();
    await w.startEtcd();
    await w.converged();
    for (let i = 0; ; i++) {
      const s = JSON.parse(h2.nsnetOk('cluster', 'status', ...w.etcdArgs, '--json')) as { nodes: Array<{ name: string; alive: boolean }> };
      if (s.nodes.length === 3 && s.nodes.every((n) => n.alive)) break;
      assert.ok(i < 100, `agents not back: ${JSON.stringify(s.nodes)}`);
      await sleep(100);
    }
    // If the subnet leases ran out while etcd refused the agents, peers withdraw and re-add
    // each other as the watches catch up: allow for that moment.
    await w.converged();
    for (const [a, b] of [[h1, h3], [h3, h2]] as const) {
      for (let i = 0; a.ping(`c-${a.name}`, ips[b.name]!).status !== 0; i++) assert.ok(i < 10, `${a.name} → ${b.name} after the fix`);
    }
    for (const h of w.hosts) assert.equal(h.stderr, '', `agent ${h.name} wrote to stderr`);
  });

  test('etcd moved to a certificate of another CA: running agents retry, then take the new CA file without a restart', async () => {
    const marks = w.hosts.map((h) => h.events.length);
    const kernel = w.hosts.map((h) => h.kernelState());
    const pids = w.hosts.map((h) => h.agent!.pid);
    await w.stopEtcd();
    await w.startEtcd({ serverCert: pki.otherServer });
    const untrusted = new RegExp(`^etcd at ${URL_RE}: the server's certificate is not trusted by --etcd-ca ${esc(pki.ca)} \\(`);
    await Promise.all(w.hosts.map((h, i) => h.waitEvent('retry', 15_000, (e) => untrusted.test(String(e.error)), marks[i])));
    w.hosts.forEach((h, i) => assert.equal(h.kernelState(), kernel[i], `${h.name}: the data plane stays while etcd is not trusted`));
    // The operator installs the new CA next to the old one (etcd keeps trusting clients of the old).
    fs.writeFileSync(`${pki.ca}.new`, fs.readFileSync(pki.ca, 'utf8') + fs.readFileSync(pki.otherCa, 'utf8'));
    fs.renameSync(`${pki.ca}.new`, pki.ca);
    await Promise.all(w.hosts.map((h, i) => h.waitEvent('tls-reloaded', 15_000, () => true, marks[i])));
    for (let i = 0; ; i++) {
      const r = h2.nsnet('cluster', 'status', ...w.etcdArgs, '--json');
      const s = r.status === 0 ? JSON.parse(r.stdout) as { nodes: Array<{ name: string; alive: boolean }> } : { nodes: [] };
      if (s.nodes.length === 3 && s.nodes.every((n) => n.alive)) break;
      assert.ok(i < 150, `agents not back: ${r.stderr}${JSON.stringify(s.nodes)}`);
      await sleep(100);
    }
    await w.converged();
    w.hosts.forEach((h, i) => {
      assert.equal(h.agent!.pid, pids[i], `${h.name}: the same agent process`);
      assert.equal(h.agent!.exitCode, null);
      assert.equal(h.stderr, '', `agent ${h.name} wrote to stderr`);
    });
    // Each kept its subnet and took its keys back under new leases.
    const keys = w.etcdctl('get', '/nsnet/v1/subnets/', '--prefix', '--keys-only').stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(keys, w.hosts.map((h) => `/nsnet/v1/subnets/${h.subnet().replace('/', '-')}`).sort());
    for (const [a, b] of [[h1, h3], [h3, h2]] as const) {
      for (let i = 0; a.ping(`c-${a.name}`, ips[b.name]!).status !== 0; i++) assert.ok(i < 10, `${a.name} → ${b.name} after the rotation`);
    }
  });
});
