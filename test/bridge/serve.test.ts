/**
 * `nsnet serve`: with a resident server, the hot commands run there and give exactly what
 * the CLI gives on its own (output, one-line errors, exit status); without one, or for other
 * commands, the CLI runs them itself.
 */
import '../harness/sandbox.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, kill, nsnet, nsnetOk, ping } from '../harness/world.js';

let server: ChildProcess | undefined;
let log = '';

/** The server's log arrives on a pipe: give the event loop a chance to read it. */
async function logged(re: RegExp): Promise<void> {
  for (let i = 0; i < 100 && !re.test(log); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(log, re);
}

before(async () => {
  nsnetOk('reset', '--yes');
  nsnetOk('network', 'create', 'sv', '--subnet', '10.88.0.0/24');
  nsnetOk('ns', 'add', 's1');
  server = spawn(process.execPath, [CLI, 'serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  server.stdout!.setEncoding('utf8');
  server.stdout!.on('data', (d: string) => { log += d; });
  await new Promise<void>((resolve, reject) => {
    server!.stdout!.once('data', () => resolve());
    server!.once('exit', (c) => reject(new Error(`nsnet serve exited ${c}`)));
  });
});
after(() => {
  kill(server);
  nsnet('reset', '--yes');
});

describe('nsnet serve', () => {
  test('connect and disconnect run in the server, with the CLI\'s output', async () => {
    const out = nsnetOk('connect', 'sv', 's1');
    assert.match(out, /^s1 connected to sv: eth0 10\.88\.0\.2\/24/);
    await logged(/served: connect sv s1 → 0/);
    assert.ok(ping('s1', '10.88.0.1'));
    assert.match(nsnetOk('status'), /s1\s+sv\s+eth0\s+10\.88\.0\.2\/24/);
    await logged(/served: status → 0/);
    // An explicit --state-dir naming the server's own state dir is forwarded too.
    assert.match(nsnetOk('--state-dir', process.env.NSNET_STATE_DIR!, 'ports'), /NAMESPACE/);
    await logged(/served: --state-dir \S+ ports → 0/);
  });
  test('errors keep their one line and exit status', async () => {
    const r = nsnet('connect', 'sv', 's1');
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'nsnet: namespace s1 is already connected to network sv\n');
    await logged(/served: connect sv s1 → 1/);
  });
  test('other commands and --help run in the CLI itself', async () => {
    const before = log;
    nsnetOk('network', 'ls');
    assert.equal(nsnet('connect', '--help').status, 0);
    nsnetOk('disconnect', 'sv', 's1');
    await logged(/served: disconnect sv s1 → 0/);
    assert.equal(log.slice(before.length), 'served: disconnect sv s1 → 0\n', 'only the disconnect was forwarded');
  });
  test('with the server gone, the CLI works on its own', async () => {
    kill(server);
    await new Promise((r) => server!.once('exit', r));
    assert.match(nsnetOk('connect', 'sv', 's1'), /s1 connected to sv/);
    assert.ok(ping('s1', '10.88.0.1'));
  });
});
