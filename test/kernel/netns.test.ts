/**
 * Namespaces as handles against the real kernel (src/kernel/netns/netns.ts): create exactly
 * as `ip netns add` does (bind mount under /run/netns, loopback up), delete (idempotent),
 * list, open by name / path / pid, NS_EXISTS / NS_NOT_FOUND, each handle's own netlink
 * socket, and running code inside a namespace. Oracles: `ip netns`, `ip -n NS`, /proc.
 */
import '../harness/sandbox.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { once } from 'node:events';
import {
  NETNS_RUN_DIR, Netns, createNetns, deleteNetns, listNetns, netnsExists, validateNetnsName,
} from '../../src/kernel/netns/netns.js';
import { createVeth, listLinks } from '../../src/kernel/netlink/route/link.js';
import { eventually, inNs, link, linkNames, netnsNames } from './oracle.js';
import { throwsCode } from './expect.js';

const host = Netns.host();
/** A namespace's identity from any file naming it (a /proc link or a /run/netns bind mount). */
const nsInode = (file: string): string => { const st = fs.statSync(file); return `${st.dev}:${st.ino}`; };

describe('create, list, delete', () => {
  it('creates a named namespace like `ip netns add`, with loopback up', () => {
    const ns = createNetns('nx-one');
    try {
      assert.ok(netnsNames().includes('nx-one'));
      assert.ok(fs.existsSync(`${NETNS_RUN_DIR}/nx-one`));
      // a bind mount of a network namespace, not a plain file
      assert.match(fs.readFileSync('/proc/self/mountinfo', 'utf8'), / \/run\/netns\/nx-one /);
      const lo = link('lo', 'nx-one');
      assert.ok(lo.flags.includes('UP'));
      assert.deepStrictEqual(linkNames('nx-one'), ['lo']);
      assert.equal(inNs('nx-one', ['ping', '-c1', '-W1', '127.0.0.1']).status, 0);
      assert.equal(ns.name, 'nx-one');
      assert.equal(ns.label, 'nx-one');
      assert.equal(ns.isHost, false);
      assert.equal(ns.path, `${NETNS_RUN_DIR}/nx-one`);
      assert.notEqual(ns.id(), host.id());
    } finally {
      ns.close();
      deleteNetns('nx-one');
    }
    assert.ok(!netnsNames().includes('nx-one'));
    assert.ok(!fs.existsSync(`${NETNS_RUN_DIR}/nx-one`));
  });

  it('a name already taken is NS_EXISTS, and the existing namespace is untouched', () => {
    const ns = createNetns('nx-dup');
    createVeth(ns, 'keep0', { name: 'keep1' });
    throwsCode(() => createNetns('nx-dup'), 'NS_EXISTS', { object: 'nx-dup' });
    assert.deepStrictEqual(linkNames('nx-dup'), ['lo', 'keep1', 'keep0']);
    ns.close();
    deleteNetns('nx-dup');
  });

  it('delete is idempotent', () => {
    createNetns('nx-del').close();
    deleteNetns('nx-del');
    deleteNetns('nx-del');
    deleteNetns('never-was');
    assert.ok(!netnsNames().includes('nx-del'));
  });

  it('a namespace’s links go when the last reference does', async () => {
    const ns = createNetns('nx-links');
    createVeth(ns, 'in0', { name: 'out0', ns: host });
    assert.ok(link('out0'));
    ns.close();
    deleteNetns('nx-links');
    await eventually(() => link('out0') === undefined, 5000, 'the peer to go with its namespace');
  });

  it('list gives what `ip netns list` gives', () => {
    const made = ['nx-l1', 'nx-l2', 'nx-l3'].map((n) => createNetns(n));
    try {
      assert.deepStrictEqual(listNetns(), netnsNames());
      for (const n of ['nx-l1', 'nx-l2', 'nx-l3']) {
        assert.ok(listNetns().includes(n));
        assert.ok(netnsExists(n));
      }
    } finally {
      for (const ns of made) { ns.close(); deleteNetns(ns.name!); }
    }
    assert.ok(!listNetns().some((n) => n.startsWith('nx-l')));
    assert.equal(netnsExists('nx-l1'), false);
  });

  it('a namespace made by `ip netns add` is listed and opened like ours', () => {
    inNs(undefined, ['ip', 'netns', 'add', 'nx-ip']);
    try {
      assert.ok(listNetns().includes('nx-ip'));
      const ns = Netns.open('nx-ip');
      assert.deepStrictEqual(listLinks(ns).map((l) => l.name), ['lo']);
      ns.close();
    } finally {
      deleteNetns('nx-ip');
    }
    assert.ok(!netnsNames().includes('nx-ip'));
  });

  it('invalid names are NS_NAME_INVALID and create nothing', () => {
    const before = listNetns();
    for (const bad of ['', 'a/b', '..', '.hidden', 'sp ace', 'x'.repeat(201), '-dash', 'semi;colon']) {
      throwsCode(() => createNetns(bad), 'NS_NAME_INVALID', { object: bad });
      throwsCode(() => Netns.open(bad), 'NS_NAME_INVALID');
      throwsCode(() => deleteNetns(bad), 'NS_NAME_INVALID');
    }
    validateNetnsName('ok_name-1.2');
    assert.deepStrictEqual(listNetns(), before);
  });
});

describe('open', () => {
  it('by name and by path give the same namespace; NS_NOT_FOUND when missing', () => {
    const ns = createNetns('nx-open');
    const byName = Netns.open('nx-open');
    const byPath = Netns.openPath(`${NETNS_RUN_DIR}/nx-open`);
    try {
      assert.equal(byName.id(), ns.id());
      assert.equal(byPath.id(), ns.id());
      assert.equal(byPath.label, `${NETNS_RUN_DIR}/nx-open`);
      assert.deepStrictEqual(listLinks(byPath).map((l) => l.name), ['lo']);
    } finally {
      for (const h of [ns, byName, byPath]) h.close();
      deleteNetns('nx-open');
    }
    throwsCode(() => Netns.open('nx-open'), 'NS_NOT_FOUND', { object: 'nx-open' });
    throwsCode(() => Netns.openPath('/run/netns/nx-nothing'), 'NS_NOT_FOUND', { object: '/run/netns/nx-nothing' });
  });

  it('a file that is not a network namespace is NS_NOT_FOUND', () => {
    fs.writeFileSync('/run/not-a-netns', '');
    try {
      throwsCode(() => Netns.openPath('/run/not-a-netns'), 'NS_NOT_FOUND', { message: /not a network namespace/ });
      throwsCode(() => Netns.openPath('/proc/self/ns/uts'), 'NS_NOT_FOUND');
    } finally {
      fs.rmSync('/run/not-a-netns');
    }
    // the failed probe switched back: we are still in the sandbox's namespace
    assert.equal(nsInode('/proc/thread-self/ns/net'), nsInode('/proc/self/ns/net'));
  });

  it('by pid: the namespace a process lives in', async () => {
    createNetns('nx-pid').close();
    const child = spawn('ip', ['netns', 'exec', 'nx-pid', 'sleep', '30'], { stdio: 'ignore' });
    try {
      // `ip netns exec` execs sleep in place: same pid, once it has switched
      const want = nsInode(`${NETNS_RUN_DIR}/nx-pid`);
      await eventually(() => { try { return nsInode(`/proc/${child.pid}/ns/net`) === want; } catch { return false; } }, 3000, 'the child to enter nx-pid');
      const byPid = Netns.openPid(child.pid!);
      const byName = Netns.open('nx-pid');
      assert.equal(byPid.id(), byName.id());
      assert.equal(byPid.label, `pid ${child.pid}`);
      assert.equal(byPid.path, `/proc/${child.pid}/ns/net`);
      assert.deepStrictEqual(listLinks(byPid).map((l) => l.name), ['lo']);
      byPid.close();
      byName.close();
      assert.equal(Netns.openPid(process.pid).id(), host.id());
    } finally {
      child.kill();
      await once(child, 'exit');
      deleteNetns('nx-pid');
    }
    throwsCode(() => Netns.openPid(child.pid!), 'NS_NOT_FOUND', { object: `pid ${child.pid}` });
  });

  it('the host handle is the sandbox’s own namespace, one per process, never closed', () => {
    assert.equal(Netns.host(), host);
    assert.equal(host.isHost, true);
    assert.equal(host.label, 'host');
    const self = fs.statSync('/proc/self/ns/net');
    assert.equal(host.id(), `${self.dev}:${self.ino}`);
    host.close();
    assert.ok(listLinks(host).some((l) => l.name === 'lo'));
  });
});

describe('handles', () => {
  it('each handle caches its own netlink socket, bound to its namespace', () => {
    const a = createNetns('nx-sa');
    const b = createNetns('nx-sb');
    try {
      assert.equal(a.netlink(), a.netlink(), 'cached');
      assert.notEqual(a.netlink(), b.netlink());
      const a2 = Netns.open('nx-sa');
      assert.notEqual(a2.netlink(), a.netlink(), 'a second handle opens its own');
      createVeth(a, 'only-a0', { name: 'only-a1' });
      assert.deepStrictEqual(listLinks(a).map((l) => l.name), ['lo', 'only-a1', 'only-a0']);
      assert.deepStrictEqual(listLinks(a2).map((l) => l.name), ['lo', 'only-a1', 'only-a0']);
      assert.deepStrictEqual(listLinks(b).map((l) => l.name), ['lo']);
      // the socket belongs to its namespace, whatever namespace the thread is in right now
      assert.deepStrictEqual(b.run(() => listLinks(a).map((l) => l.name)), ['lo', 'only-a1', 'only-a0']);
      assert.deepStrictEqual(a.run(() => listLinks(host).map((l) => l.name)), linkNames());
      a2.close();
    } finally {
      a.close(); b.close();
      deleteNetns('nx-sa'); deleteNetns('nx-sb');
    }
  });

  it('run enters the namespace for the call and always comes back, also on throw and nested', () => {
    const a = createNetns('nx-run');
    const b = createNetns('nx-run2');
    const here = nsInode('/proc/thread-self/ns/net');
    try {
      const inside = a.run(() => nsInode('/proc/thread-self/ns/net'));
      assert.equal(inside, nsInode(`${NETNS_RUN_DIR}/nx-run`));
      assert.equal(nsInode('/proc/thread-self/ns/net'), here);
      assert.throws(() => a.run(() => { throw new Error('boom'); }), /boom/);
      assert.equal(nsInode('/proc/thread-self/ns/net'), here);
      const nested = a.run(() => [nsInode('/proc/thread-self/ns/net'), b.run(() => nsInode('/proc/thread-self/ns/net')), nsInode('/proc/thread-self/ns/net')]);
      assert.deepStrictEqual(nested, [nsInode(`${NETNS_RUN_DIR}/nx-run`), nsInode(`${NETNS_RUN_DIR}/nx-run2`), nsInode(`${NETNS_RUN_DIR}/nx-run`)]);
      assert.equal(nsInode('/proc/thread-self/ns/net'), here);
      assert.throws(() => a.run(() => Promise.resolve(1)), /must be synchronous/);
      assert.equal(nsInode('/proc/thread-self/ns/net'), here);
      // a child started inside run is born in the namespace
      assert.deepStrictEqual(a.run(() => JSON.parse(inNs(undefined, ['ip', '-j', 'link']).stdout).map((l: { ifname: string }) => l.ifname)), ['lo']);
    } finally {
      a.close(); b.close();
      deleteNetns('nx-run'); deleteNetns('nx-run2');
    }
  });

  it('a closed handle refuses to be used (its fd number may already be someone else’s)', () => {
    const ns = createNetns('nx-closed');
    ns.close();
    ns.close(); // twice is fine
    assert.throws(() => ns.run(() => 1), /used after close/);
    assert.throws(() => ns.nsFd, /used after close/);
    const before = linkNames();
    assert.throws(() => createVeth(host, 'cl0', { name: 'cl1', ns }), /used after close/);
    assert.deepStrictEqual(linkNames(), before);
    assert.deepStrictEqual(linkNames('nx-closed'), ['lo']);
    deleteNetns('nx-closed');
  });

  it('a handle keeps a deleted namespace alive until it is closed', async () => {
    const ns = createNetns('nx-ghost');
    deleteNetns('nx-ghost');
    assert.ok(!netnsNames().includes('nx-ghost'));
    createVeth(host, 'gh0', { name: 'gh1', ns });
    assert.deepStrictEqual(listLinks(ns).map((l) => l.name), ['lo', 'gh1']);
    ns.close();
    // the namespace dies with its last reference, and both ends of the pair with it
    await eventually(() => link('gh0') === undefined, 5000, 'gh0 to go with the namespace');
  });
});
