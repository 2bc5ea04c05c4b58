/**
 * podman 4.3 (Debian) with its CNI backend and a conflist of type "nsnet", in the sandbox:
 * private containers.conf / storage.conf / registries.conf (CONTAINERS_CONF,
 * CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF), storage and run state under the
 * sandbox's /run, a local image made from Debian's static busybox with `podman import`.
 *   - `podman run` gets an address from nsnet; two containers reach each other by IP and by name
 *     (nsnet's DNS: the runtime writes the result's nameserver into resolv.conf);
 *   - `-p 8080:80` works from the host (127.0.0.1 and its address) and from an outside namespace;
 *   - `podman rm -f` leaves no endpoint, address, port mapping, veth or firewall element.
 */
import '../harness/sandbox.js';
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { OUTSIDE_V4, UPLINK_V4, makeOutside, must, nsnet, nsnetOk, removeOutside, run, type Run } from '../harness/world.js';
import { BIN_DIR, installPlugin } from './cni.js';

const DIR = '/run/podman-nsnet';
const NETWORK = 'nsnetpod';
const SUBNET = '10.88.50.0/24';
const BUSYBOX = '/bin/busybox';
const IMAGE = 'localhost/nsnet-busybox:latest';

const ENV: NodeJS.ProcessEnv = {
  ...process.env,
  CONTAINERS_CONF: path.join(DIR, 'containers.conf'),
  CONTAINERS_STORAGE_CONF: path.join(DIR, 'storage.conf'),
  CONTAINERS_REGISTRIES_CONF: path.join(DIR, 'registries.conf'),
};

function podman(...args: string[]): Run {
  return run('podman', args, { env: ENV, timeout: 120_000 });
}
function podmanOk(...args: string[]): string {
  const r = podman(...args);
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

/** Why podman cannot run here, or undefined when it can. */
function missing(): string | undefined {
  if (run('podman', ['--version']).status !== 0) return 'podman is not installed (Debian package podman)';
  if (!fs.existsSync(BUSYBOX)) return `${BUSYBOX} is missing (Debian package busybox-static)`;
  if (run('runc', ['--version']).status !== 0) return 'runc is not installed (Debian package runc)';
  return undefined;
}
const skip = missing();

/** An HTTP GET sent from `ns` (or the sandbox's host when null); the body, or null. */
function httpGet(ns: string | null, host: string, port: number): string | null {
  const js = `const s=require('net').connect(${port},${JSON.stringify(host)});let b='';s.setTimeout(3000,()=>process.exit(2));
s.on('connect',()=>s.write('GET / HTTP/1.0\\r\\n\\r\\n'));s.on('data',d=>b+=d);s.on('end',()=>{process.stdout.write(b);process.exit(0)});s.on('error',()=>process.exit(3));`;
  const r = ns ? run('ip', ['netns', 'exec', ns, process.execPath, '-e', js]) : run(process.execPath, ['-e', js]);
  return r.status === 0 ? r.stdout.split('\r\n\r\n')[1] ?? '' : null;
}

before(() => {
  if (skip) return;
  makeOutside();
  installPlugin();
  fs.mkdirSync(path.join(DIR, 'net.d'), { recursive: true });
  fs.mkdirSync(path.join(DIR, 'tmp'), { recursive: true });
  fs.writeFileSync(ENV.CONTAINERS_CONF!, `[containers]
default_ulimits = ["nofile=4096:4096","nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["${BIN_DIR}", "/usr/lib/cni"]
network_config_dir = "${DIR}/net.d"
default_network = "${NETWORK}"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${DIR}/events.log"
tmp_dir = "${DIR}/tmp"
volume_path = "${DIR}/volumes"
static_dir = "${DIR}/static"
`);
  // vfs: no overlay mounts stacked on the sandbox's own overlays.
  fs.writeFileSync(ENV.CONTAINERS_STORAGE_CONF!, `[storage]\ndriver = "vfs"\nrunroot = "${DIR}/runroot"\ngraphroot = "${DIR}/graphroot"\n`);
  fs.writeFileSync(ENV.CONTAINERS_REGISTRIES_CONF!, 'unqualified-search-registries = []\n');
  fs.writeFileSync(path.join(DIR, 'net.d', `${NETWORK}.conflist`), JSON.stringify({
    cniVersion: '1.0.0', name: NETWORK,
    plugins: [{ type: 'nsnet', bridge: 'nsnetpod0', subnets: [SUBNET], capabilities: { portMappings: true, ips: true, mac: true, aliases: true } }],
  }, null, 2));
  // The image: Debian's static busybox and a page for its httpd.
  const root = path.join(DIR, 'rootfs');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(root, 'www'), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const app of ['sh', 'ping', 'sleep', 'httpd', 'nslookup', 'wget', 'cat']) fs.symlinkSync('busybox', path.join(root, 'bin', app));
  fs.writeFileSync(path.join(root, 'www/index.html'), 'hello from nsnet\n');
  must(`tar -C ${root} -cf ${DIR}/busybox.tar .`);
  podmanOk('import', `${DIR}/busybox.tar`, IMAGE);
});

after(() => {
  if (skip) return;
  podman('rm', '-af', '-t', '0');
  nsnet('reset', '--yes');
  removeOutside();
});

describe('podman 4.3 with network_backend = "cni" and a conflist of type nsnet', { skip }, () => {
  test('podman sees the network; two containers get addresses and reach each other by IP and by name', () => {
    assert.match(podmanOk('network', 'ls', '--format', '{{.Name}} {{.Driver}}'), new RegExp(`${NETWORK} nsnet`));
    podmanOk('run', '-d', '--name', 'alpha', IMAGE, '/bin/sleep', '600');
    podmanOk('run', '-d', '--name', 'beta', IMAGE, '/bin/sleep', '600');
    const ip = (c: string): string => podmanOk('inspect', '-f', `{{.NetworkSettings.Networks.${NETWORK}.IPAddress}}`, c);
    const a = ip('alpha');
    const b = ip('beta');
    assert.match(a, /^10\.88\.50\.\d+$/);
    assert.match(b, /^10\.88\.50\.\d+$/);
    assert.notEqual(a, b);
    // nsnet's view agrees with podman's.
    const eps = JSON.parse(nsnetOk('status', '--json')).endpoints as Array<{ addresses: string[]; aliases: string[] }>;
    assert.deepEqual(eps.map((e) => e.addresses[0]!.split('/')[0]).sort(), [a, b].sort());
    // podman passes the container name and short id as aliases, and the name as K8S_POD_NAME.
    const names = eps.flatMap((e) => e.aliases);
    assert.ok(names.includes('alpha') && names.includes('beta'), `container names are DNS names: ${names.join(', ')}`);
    assert.equal(podman('exec', 'alpha', 'ping', '-c1', '-W2', b).status, 0, 'alpha → beta by IP');
    assert.equal(podman('exec', 'beta', 'ping', '-c1', '-W2', a).status, 0, 'beta → alpha by IP');
    assert.match(podmanOk('exec', 'alpha', 'cat', '/etc/resolv.conf'), /nameserver 10\.88\.50\.1/, 'resolv.conf names nsnet\'s DNS');
    const byName = podman('exec', 'alpha', 'ping', '-c1', '-W2', 'beta');
    assert.equal(byName.status, 0, `alpha → beta by name: ${byName.stdout}${byName.stderr}`);
    assert.match(byName.stdout, new RegExp(`PING beta \\(${b.replace(/\./g, '\\.')}\\)`));
    assert.equal(podman('exec', 'beta', 'ping', '-c1', '-W2', 'alpha').status, 0, 'beta → alpha by name');
    podmanOk('rm', '-f', '-t', '0', 'alpha', 'beta');
  });

  test('-p 8080:80 works from the host and from outside; podman rm -f leaves nothing behind', () => {
    const before = { links: must('ip -o link show').split('\n').length };
    podmanOk('run', '-d', '--name', 'web', '-p', '8080:80', IMAGE, '/bin/httpd', '-f', '-p', '80', '-h', '/www');
    podmanOk('run', '-d', '--name', 'client', IMAGE, '/bin/sleep', '600');
    const web = podmanOk('inspect', '-f', `{{.NetworkSettings.Networks.${NETWORK}.IPAddress}}`, 'web');
    let body: string | null = null;
    for (let i = 0; i < 20 && body === null; i++) body = httpGet(null, '127.0.0.1', 8080); // httpd starting
    assert.equal(body, 'hello from nsnet\n', 'host → 127.0.0.1:8080');
    assert.equal(httpGet(null, UPLINK_V4, 8080), 'hello from nsnet\n', 'host → its own address:8080');
    assert.equal(httpGet('outside', UPLINK_V4, 8080), 'hello from nsnet\n', 'outside → host:8080');
    assert.match(podmanOk('exec', 'client', 'wget', '-qO-', `http://${web}/`), /hello from nsnet/, 'container → container:80');
    assert.match(podmanOk('exec', 'client', 'wget', '-qO-', 'http://web/'), /hello from nsnet/, 'container → web by name');
    assert.equal(JSON.parse(nsnetOk('ports', '--json')).length, 1);

    podmanOk('rm', '-f', '-t', '0', 'web', 'client');
    assert.equal(podmanOk('ps', '-aq'), '');
    const st = JSON.parse(nsnetOk('status', '--json'));
    assert.equal(st.endpoints.length, 0, 'no endpoint left');
    assert.equal(JSON.parse(nsnetOk('ports', '--json')).length, 0, 'no port mapping left');
    assert.equal(must('ip -o link show').split('\n').filter((l) => / nsv[0-9a-f]{9}[@:]/.test(l)).length, 0, 'no host veth left');
    assert.equal(must('ip -o link show').split('\n').length, before.links, 'the same links as before the containers');
    assert.equal(must('ip netns list').split('\n').filter((l) => l.startsWith('cni-')).length, 0, 'podman removed its namespaces');
    const own4 = must('nft -j list set bridge nsnet own4');
    assert.doesNotMatch(own4, /"elem"/, 'no anti-spoofing elements left');
    assert.equal(httpGet('outside', UPLINK_V4, 8080), null, 'port 8080 closed');
  });
});
