/**
 * containerd 1.6 (Debian) with `ctr run --cni`, in the sandbox. The test starts its own
 * containerd (private root, state and socket; CRI disabled) and stops it afterwards. ctr's CNI
 * library (go-cni) reads the first config in /etc/cni/net.d and plugins from /opt/cni/bin: /etc
 * is the sandbox's overlay, and a tmpfs over /opt (in the sandbox's mount namespace only) holds
 * the installed plugin. The namespace is the task's /proc/PID/ns/net; `ctr run` without -d
 * issues DEL with an empty CNI_NETNS when the task ends.
 */
import '../harness/sandbox.js';
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { OUTSIDE_V4, makeOutside, must, nsnet, nsnetOk, removeOutside, run, sleep } from '../harness/world.js';
import { busyboxOciArchive } from './oci.js';

const DIR = '/run/containerd-nsnet';
const SOCK = path.join(DIR, 'containerd.sock');
const IMAGE = 'docker.io/library/nsnet-busybox:latest';
const NETWORK = 'nsnetctr';

function missing(): string | undefined {
  if (run('containerd', ['--version']).status !== 0) return 'containerd is not installed (Debian package containerd)';
  if (run('runc', ['--version']).status !== 0) return 'runc is not installed (Debian package runc)';
  if (!fs.existsSync('/bin/busybox')) return '/bin/busybox is missing (Debian package busybox-static)';
  if (!fs.existsSync('/opt')) return '/opt does not exist (ctr looks for CNI plugins in /opt/cni/bin)';
  return undefined;
}
const skip = missing();

let containerd: ChildProcess | undefined;
const ctr = (...args: string[]): ReturnType<typeof run> => run('ctr', ['-a', SOCK, '-n', 'nsnet', ...args], { timeout: 120_000 });
function ctrOk(...args: string[]): string {
  const r = ctr(...args);
  if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function endpoints(): Array<{ addresses: string[]; declared: { netns?: string } }> {
  return JSON.parse(nsnetOk('status', '--json')).endpoints;
}

before(async () => {
  if (skip) return;
  makeOutside();
  fs.mkdirSync(DIR, { recursive: true });
  must('mount -t tmpfs nsnet-opt /opt');
  nsnetOk('cni', 'install', '--dir', '/opt/cni/bin');
  fs.mkdirSync('/etc/cni/net.d', { recursive: true });
  // Sorted first, so go-cni picks it over any other config there (podman's 87-podman-bridge).
  fs.writeFileSync('/etc/cni/net.d/00-nsnet.conflist', JSON.stringify({
    cniVersion: '1.0.0', name: NETWORK, plugins: [{ type: 'nsnet', bridge: 'nsnetctr0', subnets: ['10.88.60.0/24'] }],
  }));
  fs.writeFileSync(path.join(DIR, 'config.toml'), `version = 2
root = "${DIR}/root"
state = "${DIR}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "${SOCK}"
[ttrpc]
  address = "${SOCK}.ttrpc"
`);
  const log = fs.openSync(path.join(DIR, 'containerd.log'), 'a');
  containerd = spawn('containerd', ['--config', path.join(DIR, 'config.toml')], { stdio: ['ignore', log, log] });
  for (let i = 0; i < 100 && !fs.existsSync(SOCK); i++) await sleep(100);
  assert.ok(fs.existsSync(SOCK), `containerd did not start: ${fs.readFileSync(path.join(DIR, 'containerd.log'), 'utf8').slice(-2000)}`);
  busyboxOciArchive(path.join(DIR, 'busybox.tar'), IMAGE);
  ctrOk('images', 'import', path.join(DIR, 'busybox.tar'));
});

after(async () => {
  if (skip) return;
  for (const id of ['srv', 'cli']) { ctr('task', 'kill', '-s', 'KILL', id); ctr('task', 'rm', '-f', id); ctr('container', 'rm', id); }
  if (containerd && containerd.exitCode === null) {
    containerd.kill('SIGTERM');
    await new Promise((resolve) => containerd!.once('exit', resolve));
  }
  run('umount', ['/opt']);
  nsnet('reset', '--yes');
  removeOutside();
});

describe('containerd 1.6: ctr run --cni with a conflist of type nsnet', { skip }, () => {
  test('two containers: addresses from nsnet, container to container, NAT to the outside; DEL when each ends', async () => {
    // The server in the foreground (as a child): when its task is killed, ctr calls CNI DEL.
    const srv = spawn('ctr', ['-a', SOCK, '-n', 'nsnet', 'run', '--rm', '--cni', IMAGE, 'srv', '/bin/httpd', '-f', '-p', '80', '-h', '/www'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && endpoints().length === 0; i++) await sleep(100);
      const eps = endpoints();
      assert.equal(eps.length, 1, 'ctr ran ADD');
      assert.match(eps[0]!.declared.netns ?? '', /^\/proc\/\d+\/ns\/net$/, 'attached by the task\'s /proc/PID/ns/net');
      const srvIp = eps[0]!.addresses[0]!.split('/')[0]!;
      assert.match(srvIp, /^10\.88\.60\.\d+$/);

      const cli = ctr('run', '--rm', '--cni', IMAGE, 'cli', '/bin/sh', '-c',
        `ping -c1 -W2 10.88.60.1 && wget -qO- http://${srvIp}/ && ping -c1 -W2 ${OUTSIDE_V4} && cat /proc/net/dev`);
      assert.equal(cli.status, 0, `client: ${cli.stdout}${cli.stderr}`);
      assert.match(cli.stdout, /hello from nsnet/, 'client → server over nsnet\'s bridge');
      assert.match(cli.stdout, new RegExp(`PING ${OUTSIDE_V4.replace(/\./g, '\\.')}.*\\n64 bytes`), 'NAT to the outside');
      assert.match(cli.stdout, /eth0:/, 'the interface is eth0 (go-cni\'s prefix)');
      assert.equal(endpoints().length, 1, 'the client\'s DEL released its attachment; the server\'s remains');

      ctrOk('task', 'kill', '-s', 'KILL', 'srv');
      await new Promise((resolve) => (srv.exitCode !== null ? resolve(null) : srv.once('exit', resolve)));
      assert.equal(endpoints().length, 0, 'the server\'s DEL (empty CNI_NETNS, namespace gone) released it');
      assert.equal(must('ip -o link show').split('\n').filter((l) => / nsv[0-9a-f]{9}[@:]/.test(l)).length, 0, 'no host veth left');
    } finally {
      if (srv.exitCode === null) srv.kill('SIGKILL');
    }
  });
});
