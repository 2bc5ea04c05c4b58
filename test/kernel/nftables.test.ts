/**
 * Tests for the in-process nftables module.
 *
 * The kernel tests change the firewall of the network namespace they run in, so they run
 * only inside the private sandbox (test/harness/sandbox.ts) and, as a second guard, only when this process's network namespace is not init's.
 * `nft` (the CLI) is the independent oracle: it reads the kernel state in its own process.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isNsnetError } from '../../src/errors.js';
import { CLONE_NEWNET, EEXIST, ENOENT, setnsRaw } from '../../src/kernel/sys/libc.js';
import { Nft, nftAvailable, nftError, type NftCommand } from '../../src/kernel/nftables/nft.js';

function sandboxReason(): string | false {
  const how = 'run inside a private network namespace: unshare --net --mount --propagation private env NSNET_SANDBOX=1 node --test dist/src/kernel/nftables/';
  if (process.env['NSNET_SANDBOX'] !== '1') return `kernel test, skipped outside the sandbox (${how})`;
  const own = fs.readlinkSync('/proc/self/ns/net');
  // include/linux/proc_ns.h: PROC_NET_INIT_INO = 0xEFFFFFF9, the initial network namespace.
  if (own === `net:[${0xeffffff9}]`) return `NSNET_SANDBOX=1 but this is the initial network namespace: refusing to touch the host firewall (${how})`;
  // A sandbox is a namespace entered below some ancestor (the shell that ran unshare).
  for (let pid = process.ppid; pid > 1; ) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/ns/net`) !== own) return false;
      pid = Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      break;
    }
  }
  return `NSNET_SANDBOX=1 but no ancestor process is in another network namespace: refusing to touch the host firewall (${how})`;
}
const skip = sandboxReason();

/** `nft -j ARGS` in a child process (optionally inside another namespace): the oracle. */
function oracle(args: string[], netnsPid?: number): Array<Record<string, any>> {
  const argv = ['-j', ...args];
  const r = netnsPid === undefined
    ? spawnSync('nft', argv, { encoding: 'utf8' })
    : spawnSync('nsenter', [`--net=/proc/${netnsPid}/ns/net`, 'nft', ...argv], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nft ${argv.join(' ')}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { nftables: Array<Record<string, any>> }).nftables.filter((o) => !('metainfo' in o));
}

function nftCli(script: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function tableNames(objs: Array<Record<string, any>>): string[] {
  return objs.filter((o) => 'table' in o).map((o) => `${o['table'].family} ${o['table'].name}`).sort();
}

/** Set and map elements come back in hash order: compare them as sets. */
function sorted(elems: unknown): unknown[] {
  return [...((elems as unknown[] | undefined) ?? [])].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

function find(objs: Array<Record<string, any>>, kind: string, name: string): Record<string, any> | undefined {
  return objs.find((o) => kind in o && o[kind].name === name)?.[kind];
}

describe('nftError (no kernel)', () => {
  // Error buffers as libnftables 1.0.6 printed them.
  test('JSON input: location prefix dropped, records joined on one line', () => {
    const e = nftError(
      "internal:0:0-0: Error: Unknown policy 'bogus'.\n\ninternal:0:0-0: Error: Parsing command array at index 1 failed.\n\n",
      (i) => `object ${i}`,
    );
    assert.equal(e.code, 'NFT_ERROR');
    assert.equal(e.message, "Unknown policy 'bogus'.; Parsing command array at index 1 failed.");
    assert.equal(e.object, 'object 1');
    assert.equal(e.errno, undefined);
  });

  test('kernel errors carry errno', () => {
    assert.equal(nftError('internal:0:0-0: Error: Could not process rule: No such file or directory\n\n').errno, ENOENT);
    assert.equal(nftError('internal:0:0-0: Error: No such file or directory\n\n').errno, ENOENT);
    assert.equal(nftError('netlink: Error: Could not process rule: File exists\n').errno, EEXIST);
  });

  test('text input: the source and caret lines are dropped', () => {
    const e = nftError('Error: Interface does not exist\nadd rule inet t c iif "nosuch" accept\n                      ^^^^^^^^\n');
    assert.equal(e.message, 'Interface does not exist');
  });

  test('no Error: record: the first line, or a fixed message', () => {
    assert.equal(nftError('\n something odd \n').message, 'something odd');
    assert.equal(nftError('').message, 'libnftables failed without a message');
  });
});

describe('Nft (kernel, sandboxed)', { skip }, () => {
  let nft: Nft;
  const T = { family: 'inet' as const, table: 'nsnet_t' };

  before(() => {
    assert.equal(nftAvailable(), true);
    // A table that is not ours, made by the CLI: nothing below may change it.
    nftCli('table ip foreign {\n chain c {\n  type filter hook input priority 0; policy accept;\n  tcp dport 22 counter accept\n }\n set s { type ipv4_addr; elements = { 192.0.2.1 } }\n}\n');
    nft = new Nft();
  });

  after(() => {
    // The foreign table is exactly as the CLI made it, and still there.
    const foreign = oracle(['list', 'table', 'ip', 'foreign']);
    assert.deepEqual(find(foreign, 'set', 's')?.['elem'], ['192.0.2.1']);
    assert.equal(foreign.filter((o) => 'rule' in o).length, 1);
    assert.deepEqual(nft.listTables().filter((t) => t.name === 'foreign'), [{ family: 'ip', name: 'foreign' }]);
    nft.close();
    nftCli('delete table ip foreign\n');
  });

  test('creates a table with chains, sets and maps in one transaction', () => {
    nft.run([
      { add: { table: { family: 'inet', name: T.table } } },
      { add: { chain: { ...T, name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } } },
      { add: { chain: { ...T, name: 'svc' } } },
      { add: { set: { ...T, name: 'members', type: 'ipv4_addr' } } },
      { add: { set: { ...T, name: 'nets', type: ['ipv4_addr', 'inet_service'], flags: ['interval'] } } },
      { add: { map: { ...T, name: 'ports', type: ['inet_proto', 'inet_service'], map: 'ipv4_addr' } } },
      { add: { map: { ...T, name: 'vm', type: 'inet_service', map: 'verdict' } } },
      {
        add: {
          rule: {
            ...T, chain: 'fwd', comment: 'nsnet:test',
            expr: [
              { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@members' } },
              { counter: null },
              { accept: null },
            ],
          },
        },
      },
    ]);
    const got = oracle(['list', 'table', 'inet', T.table]);
    assert.deepEqual(tableNames(got), [`inet ${T.table}`]);
    const fwd = find(got, 'chain', 'fwd');
    assert.equal(fwd?.['hook'], 'forward');
    assert.equal(fwd?.['prio'], 0);
    assert.equal(fwd?.['policy'], 'drop');
    assert.deepEqual(find(got, 'set', 'nets')?.['type'], ['ipv4_addr', 'inet_service']);
    assert.deepEqual(find(got, 'set', 'nets')?.['flags'], ['interval']);
    assert.equal(find(got, 'map', 'ports')?.['map'], 'ipv4_addr');
    assert.equal(find(got, 'map', 'vm')?.['map'], 'verdict');
    const rule = got.find((o) => 'rule' in o)?.['rule'];
    assert.equal(rule?.comment, 'nsnet:test');

    // Our listing agrees with the oracle, and carries handles.
    const ours = nft.listTable('inet', T.table);
    assert.ok(ours);
    assert.ok('table' in ours[0]! && ours[0].table.name === T.table && typeof ours[0].table.handle === 'number');
    assert.equal(ours.length, got.length);
  });

  test('adds and deletes set and map elements, interval and concatenated ones included', () => {
    nft.run([
      { add: { element: { ...T, name: 'members', elem: ['10.1.0.2', '10.1.0.3'] } } },
      { add: { element: { ...T, name: 'nets', elem: [{ concat: [{ prefix: { addr: '10.2.0.0', len: 16 } }, { range: [8000, 8099] }] }] } } },
      { add: { element: { ...T, name: 'ports', elem: [[{ concat: ['tcp', 8080] }, '10.1.0.2'], [{ concat: ['udp', 53] }, '10.1.0.3']] } } },
      { add: { element: { ...T, name: 'vm', elem: [[80, { jump: { target: 'svc' } }], [443, { accept: null }]] } } },
    ]);
    let got = oracle(['list', 'table', 'inet', T.table]);
    assert.deepEqual(sorted(find(got, 'set', 'members')?.['elem']), ['10.1.0.2', '10.1.0.3']);
    assert.deepEqual(find(got, 'set', 'nets')?.['elem'], [{ concat: [{ prefix: { addr: '10.2.0.0', len: 16 } }, { range: [8000, 8099] }] }]);
    assert.deepEqual(sorted(find(got, 'map', 'ports')?.['elem']), [[{ concat: ['tcp', 8080] }, '10.1.0.2'], [{ concat: ['udp', 53] }, '10.1.0.3']]);
    assert.deepEqual(sorted(find(got, 'map', 'vm')?.['elem']), [[443, { accept: null }], [80, { jump: { target: 'svc' } }]]);

    nft.run([
      { delete: { element: { ...T, name: 'members', elem: ['10.1.0.2'] } } },
      { delete: { element: { ...T, name: 'ports', elem: [{ concat: ['tcp', 8080] }] } } },
      { delete: { element: { ...T, name: 'vm', elem: [80] } } },
    ]);
    got = oracle(['list', 'table', 'inet', T.table]);
    assert.deepEqual(find(got, 'set', 'members')?.['elem'], ['10.1.0.3']);
    assert.deepEqual(find(got, 'map', 'ports')?.['elem'], [[{ concat: ['udp', 53] }, '10.1.0.3']]);
    assert.deepEqual(find(got, 'map', 'vm')?.['elem'], [[443, { accept: null }]]);
  });

  test('a map with concatenated data is declared with runText, its elements through JSON', () => {
    nft.runText(`add map inet ${T.table} pub { type inet_proto . inet_service : ipv4_addr . inet_service; }`);
    nft.run([{ add: { element: { ...T, name: 'pub', elem: [[{ concat: ['tcp', 8080] }, { concat: ['10.1.0.2', 80] }]] } } }]);
    const m = find(oracle(['list', 'map', 'inet', T.table, 'pub']), 'map', 'pub');
    assert.equal(m?.['map'], 'ipv4_addr . inet_service');
    assert.deepEqual(m?.['elem'], [[{ concat: ['tcp', 8080] }, { concat: ['10.1.0.2', 80] }]]);
    // JSON cannot declare it in 1.0.6 (it would silently make a set): refused before libnftables sees it.
    assert.throws(
      () => nft.run([{ add: { map: { ...T, name: 'bad', type: 'inet_service', map: ['ipv4_addr', 'inet_service'] as unknown as string } } }]),
      (e: unknown) => isNsnetError(e, 'NFT_ERROR') && /runText/.test(e.message),
    );
    assert.equal(find(oracle(['list', 'table', 'inet', T.table]), 'set', 'bad'), undefined);
  });

  test('a batch with one bad command changes nothing (the error found by libnftables)', () => {
    const before = oracle(['list', 'ruleset']);
    assert.throws(
      () => nft.run([
        { add: { table: { family: 'inet', name: 'nsnet_atomic' } } },
        { add: { chain: { family: 'inet', table: 'nsnet_atomic', name: 'c' } } },
        { add: { element: { ...T, name: 'members', elem: ['10.9.9.9'] } } },
        { add: { element: { ...T, name: 'no_such_set', elem: ['10.9.9.9'] } } },
      ]),
      (e: unknown) => isNsnetError(e, 'NFT_ERROR') && e.errno === ENOENT,
    );
    assert.deepEqual(oracle(['list', 'ruleset']), before);
  });

  test('a batch the kernel rejects half-way changes nothing (the error found by the kernel)', () => {
    const before = oracle(['list', 'ruleset']);
    // `create element` of an element that exists passes libnftables and fails in the kernel
    // (EEXIST), after the earlier messages of the same batch were already processed.
    assert.throws(
      () => nft.run([
        { add: { table: { family: 'inet', name: 'nsnet_atomic' } } },
        { add: { element: { ...T, name: 'members', elem: ['10.9.9.9'] } } },
        { create: { element: { ...T, name: 'members', elem: ['10.1.0.3'] } } },
      ]),
      (e: unknown) => isNsnetError(e, 'NFT_ERROR') && e.errno === EEXIST && e.message === 'Could not process rule: File exists',
    );
    assert.deepEqual(oracle(['list', 'ruleset']), before);
  });

  test("the error message is libnftables' own, on one line, with the object", () => {
    const cmds: NftCommand[] = [{ delete: { table: { family: 'inet', name: 'nsnet_missing' } } }];
    const err = (() => {
      try {
        nft.run(cmds);
      } catch (e) {
        return e;
      }
      assert.fail('expected NFT_ERROR');
    })();
    assert.ok(isNsnetError(err, 'NFT_ERROR'));
    assert.equal(err.message, 'Could not process rule: No such file or directory');
    assert.equal(err.errno, ENOENT);
    assert.equal(err.object, 'inet nsnet_missing');
    // The CLI, fed the same JSON, prints the same message.
    const cli = spawnSync('nft', ['-j', JSON.stringify({ nftables: cmds })], { encoding: 'utf8' });
    assert.notEqual(cli.status, 0);
    assert.ok(cli.stderr.includes(err.message), cli.stderr);

    // Text syntax: the message without the source and caret lines.
    assert.throws(() => nft.runText('add table inet'), (e: unknown) => isNsnetError(e, 'NFT_ERROR') && !e.message.includes('\n') && /syntax error/.test(e.message));
    // Evaluation errors name the command they are about.
    assert.throws(
      () => nft.run([{ add: { table: { family: 'inet', name: 'x' } } }, { add: { chain: { ...T, name: 'p', type: 'filter', hook: 'input', prio: 0, policy: 'bogus' as 'drop' } } }]),
      (e: unknown) => isNsnetError(e, 'NFT_ERROR') && e.message.startsWith("Unknown policy 'bogus'.") && e.object === `inet ${T.table} p`,
    );
  });

  test('listTable on a missing table returns null; listTables lists every table', () => {
    assert.equal(nft.listTable('inet', 'nsnet_missing'), null);
    assert.equal(nft.listTable('ip', T.table), null);
    const names = nft.listTables().map((t) => `${t.family} ${t.name}`).sort();
    assert.deepEqual(names, tableNames(oracle(['list', 'tables'])));
    assert.ok(names.includes('ip foreign') && names.includes(`inet ${T.table}`));
  });

  test('echo returns what was added, with the handles the kernel gave', () => {
    const out = nft.run([{ add: { rule: { ...T, chain: 'svc', comment: 'nsnet:echo', expr: [{ accept: null }] } } }], { echo: true });
    const added = out?.nftables.find((o) => 'add' in (o as object)) as { add: { rule: { handle: number } } } | undefined;
    assert.equal(typeof added?.add.rule.handle, 'number');
    const rule = oracle(['list', 'chain', 'inet', T.table, 'svc']).find((o) => 'rule' in o)?.['rule'];
    assert.equal(rule?.handle, added?.add.rule.handle);
    nft.run([{ delete: { rule: { ...T, chain: 'svc', handle: added!.add.rule.handle } } }]);
    assert.equal(oracle(['list', 'chain', 'inet', T.table, 'svc']).filter((o) => 'rule' in o).length, 0);
  });

  test('runText returns text output; run() lists one object per call', () => {
    assert.match(nft.runText(`list set inet ${T.table} members`), /10\.1\.0\.3/);
    const out = nft.run([{ list: { map: { ...T, name: 'vm' } } }]);
    assert.deepEqual(out?.nftables.map((o) => Object.keys(o)[0]), ['metainfo', 'map']);
    // 1.0.6 fails the second of two lists in one call: refused with a clear message instead.
    assert.throws(
      () => nft.run([{ list: { set: { ...T, name: 'members' } } }, { list: { map: { ...T, name: 'vm' } } }]),
      (e: unknown) => isNsnetError(e, 'NFT_ERROR') && /alone/.test(e.message),
    );
  });

  test('flush and delete our table; the foreign one stays', () => {
    nft.run([{ flush: { table: { family: 'inet', name: T.table } } }]);
    assert.equal(oracle(['list', 'table', 'inet', T.table]).filter((o) => 'rule' in o).length, 0);
    nft.run([{ delete: { table: { family: 'inet', name: T.table } } }]);
    assert.deepEqual(tableNames(oracle(['list', 'tables'])), ['ip foreign']);
  });

  describe('network namespaces', () => {
    let child: ChildProcess;
    let pid: number;
    let targetFd: number;
    let backFd: number;
    const enter = <R>(fn: () => R): R => {
      if (setnsRaw(targetFd, CLONE_NEWNET) !== 0) throw new Error('setns into the target failed');
      try {
        return fn();
      } finally {
        if (setnsRaw(backFd, CLONE_NEWNET) !== 0) process.abort(); // DESIGN 2: never ignored
      }
    };

    before(async () => {
      child = spawn('unshare', ['--net', 'sleep', '120'], { stdio: 'ignore' });
      pid = child.pid!;
      const own = fs.readlinkSync('/proc/self/ns/net');
      for (let i = 0; fs.readlinkSync(`/proc/${pid}/ns/net`) === own; i++) {
        assert.ok(i < 200, 'unshare child did not enter its namespace');
        await sleep(10);
      }
      targetFd = fs.openSync(`/proc/${pid}/ns/net`, 'r');
      backFd = fs.openSync('/proc/thread-self/ns/net', 'r');
      const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'link', 'add', 'nsnetd0', 'type', 'veth', 'peer', 'name', 'nsnetd1']);
      assert.equal(r.status, 0, String(r.stderr));
    });

    after(() => {
      fs.closeSync(targetFd);
      fs.closeSync(backFd);
      child.kill();
    });

    test('a context built inside a namespace writes there, wherever run() is called from', () => {
      const inner = enter(() => new Nft());
      try {
        inner.run([{ add: { table: { family: 'inet', name: 'nsnet_pinned' } } }]); // called from our namespace
        assert.deepEqual(tableNames(oracle(['list', 'tables'], pid)), ['inet nsnet_pinned']);
        assert.ok(!tableNames(oracle(['list', 'tables'])).includes('inet nsnet_pinned'));
        assert.deepEqual(inner.listTables(), [{ family: 'inet', name: 'nsnet_pinned' }]);
      } finally {
        inner.close();
      }
    });

    test('interface names in iif/oif resolve where run() is called: use `enter`', () => {
      const setup = 'add chain inet nsnet_pinned c; ';
      const rule = 'add rule inet nsnet_pinned c iif "nsnetd0" accept';
      const inner = enter(() => new Nft());
      try {
        // Context inside, call outside: nsnetd0 does not exist here.
        assert.throws(() => inner.runText(setup + rule), (e: unknown) => isNsnetError(e, 'NFT_ERROR') && e.message === 'Interface does not exist');
      } finally {
        inner.close();
      }
      const entered = new Nft({ enter });
      try {
        entered.runText(setup + rule);
        const rules = oracle(['list', 'chain', 'inet', 'nsnet_pinned', 'c'], pid).filter((o) => 'rule' in o);
        assert.equal(rules.length, 1);
        entered.run([{ delete: { table: { family: 'inet', name: 'nsnet_pinned' } } }]);
        assert.deepEqual(oracle(['list', 'tables'], pid), []);
      } finally {
        entered.close();
      }
    });
  });

  test('close() is idempotent; use after close is a bug, not an NsnetError', () => {
    const n = new Nft();
    n.close();
    n.close();
    assert.throws(() => n.listTables(), (e: unknown) => e instanceof Error && !isNsnetError(e));
  });
});
