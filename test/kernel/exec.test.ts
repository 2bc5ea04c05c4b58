/**
 * Running programs inside a namespace with `ip netns exec` semantics
 * (src/kernel/netns/exec.ts): the network namespace, /etc/netns/NAME/* bind-mounted over
 * /etc (a per-namespace resolv.conf), /sys showing the namespace's devices — and nothing
 * of it leaking into the sandbox. `ip netns exec` itself is the reference.
 */
import '../harness/sandbox.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { once } from 'node:events';
import { Netns, createNetns, deleteNetns } from '../../src/kernel/netns/netns.js';
import { createVeth } from '../../src/kernel/netlink/route/link.js';
import { spawnInNetns, spawnSyncInNetns } from '../../src/kernel/netns/exec.js';
import { inNs, linkNames } from './oracle.js';
import { throwsCode } from './expect.js';

const host = Netns.host();
const out = (name: string, argv: string[]): string => {
  const r = spawnSyncInNetns(name, argv, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${argv.join(' ')} in ${name}: ${String(r.stderr)}`);
  return String(r.stdout);
};
const mounts = (): string => fs.readFileSync('/proc/self/mountinfo', 'utf8');

describe('exec in a namespace', () => {
  let ns: Netns, plain: Netns;
  let sandboxResolv: string;
  before(() => {
    ns = createNetns('ex-a');
    plain = createNetns('ex-plain');
    createVeth(ns, 'eth0', { name: 'peer0', ns: host });
    sandboxResolv = fs.readFileSync('/etc/resolv.conf', 'utf8');
    // /etc is an overlay private to the sandbox: this never reaches the host's /etc
    fs.mkdirSync('/etc/netns/ex-a', { recursive: true });
    fs.writeFileSync('/etc/netns/ex-a/resolv.conf', 'nameserver 192.0.2.53\nsearch ex-a.test\n');
    fs.writeFileSync('/etc/netns/ex-a/hosts', '192.0.2.80 web.ex-a.test\n');
    fs.writeFileSync('/etc/netns/ex-a/not-in-etc.conf', 'skipped\n');
  });
  after(() => {
    fs.rmSync('/etc/netns/ex-a', { recursive: true, force: true });
    ns.close(); plain.close();
    deleteNetns('ex-a'); deleteNetns('ex-plain');
  });

  it('sees /etc/netns/NAME/resolv.conf as /etc/resolv.conf, like `ip netns exec`', () => {
    const inside = out('ex-a', ['cat', '/etc/resolv.conf']);
    assert.equal(inside, 'nameserver 192.0.2.53\nsearch ex-a.test\n');
    assert.equal(inNs('ex-a', ['cat', '/etc/resolv.conf']).stdout, inside, 'same as iproute2');
    assert.equal(out('ex-a', ['cat', '/etc/hosts']), '192.0.2.80 web.ex-a.test\n');
    assert.equal(out('ex-a', ['getent', 'hosts', 'web.ex-a.test']).trim().split(/\s+/)[0], '192.0.2.80');
  });

  it('leaves the sandbox’s /etc/resolv.conf and mount table alone', () => {
    const before = mounts();
    out('ex-a', ['cat', '/etc/resolv.conf']);
    assert.equal(fs.readFileSync('/etc/resolv.conf', 'utf8'), sandboxResolv);
    assert.equal(mounts(), before);
    assert.ok(!fs.existsSync('/etc/not-in-etc.conf'), 'files without a counterpart in /etc are not created');
  });

  it('a namespace without /etc/netns/NAME sees the ordinary /etc', () => {
    assert.equal(out('ex-plain', ['cat', '/etc/resolv.conf']), sandboxResolv);
  });

  it('`ip link` inside shows the namespace’s devices, and so does /sys/class/net', () => {
    const inside = (JSON.parse(out('ex-a', ['ip', '-j', 'link'])) as Array<{ ifname: string }>).map((l) => l.ifname);
    assert.deepStrictEqual(inside, linkNames('ex-a'));
    assert.deepStrictEqual(inside, ['lo', 'eth0']);
    assert.deepStrictEqual(out('ex-a', ['ls', '/sys/class/net']).split(/\s+/).filter(Boolean).sort(), ['eth0', 'lo']);
    assert.ok(!out('ex-plain', ['ip', '-o', 'link']).includes('eth0'));
  });

  it('runs in the namespace’s network namespace and nowhere else', () => {
    const want = fs.statSync('/run/netns/ex-a').ino;
    assert.equal(Number(out('ex-a', ['stat', '-L', '-c', '%i', '/proc/self/ns/net']).trim()), want);
    assert.equal(fs.statSync('/proc/thread-self/ns/net').ino, fs.statSync('/proc/self/ns/net').ino, 'the caller came back');
  });

  it('passes arguments, exit status, stdout and stderr through', () => {
    assert.equal(out('ex-a', ['sh', '-c', 'printf "%s|" "$@"', 'sh', 'a b', '', '$HOME', '*']), 'a b||$HOME|*|');
    const r = spawnSyncInNetns('ex-a', ['sh', '-c', 'echo oops >&2; exit 3'], { encoding: 'utf8' });
    assert.equal(r.status, 3);
    assert.equal(String(r.stderr), 'oops\n');
    const env = spawnSyncInNetns('ex-a', ['sh', '-c', 'echo "$NSNET_T"'], { encoding: 'utf8', env: { ...process.env, NSNET_T: 'kept' } });
    assert.equal(String(env.stdout), 'kept\n');
  });

  it('spawnInNetns: an asynchronous child in the namespace', async () => {
    const child = spawnInNetns('ex-a', ['sh', '-c', 'cat /etc/resolv.conf; ip -o link | wc -l'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    assert.equal(text, 'nameserver 192.0.2.53\nsearch ex-a.test\n2\n');
  });

  it('a namespace that does not exist: NS_NOT_FOUND, nothing started', () => {
    throwsCode(() => spawnSyncInNetns('ex-ghost', ['true']), 'NS_NOT_FOUND', { object: 'ex-ghost' });
    throwsCode(() => spawnInNetns('ex-ghost', ['true']), 'NS_NOT_FOUND', { object: 'ex-ghost' });
    throwsCode(() => spawnSyncInNetns('../etc', ['true']), 'NS_NAME_INVALID');
    assert.throws(() => spawnSyncInNetns('ex-a', []), /no command/);
  });
});
