#!/usr/bin/env node
// The whole test suite: unit tests beside the code and kernel tests under test/, each
// kernel test file in its own sandbox (test/harness/sandbox.ts). Around the run it
// snapshots what a test could leak onto the real host — named namespaces, links, the
// nftables ruleset, forwarding sysctls, /etc/netns and the default state dir — and fails
// the suite if anything changed.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
process.chdir(root);

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(); }
  catch (e) { return `<${cmd} ${args.join(' ')} failed: ${String(e.stderr || e.message).trim()}>`; }
}
function read(file) {
  try { return fs.readFileSync(file, 'utf8').trim(); } catch { return '<absent>'; }
}
function ls(dir) {
  try { return fs.readdirSync(dir).sort().join(' '); } catch { return '<absent>'; }
}

function hostSnapshot() {
  return {
    'ip netns': sh('ip', ['netns', 'list']),
    '/run/netns': ls('/run/netns'),
    'ip link': sh('ip', ['-o', 'link', 'show']).split('\n').map((l) => l.split(':')[1]?.trim()).join(' '),
    'ip addr': sh('ip', ['-o', 'addr', 'show']).split('\n').map((l) => l.split(/\s+/).slice(1, 4).join(' ')).join('; '),
    'ip route': sh('ip', ['route', 'show', 'table', 'all']),
    'nft ruleset': sh('nft', ['list', 'ruleset']),
    'iptables-save': sh('iptables-save', []).split('\n').filter((l) => !l.startsWith('#')).join('\n'),
    'net.ipv4.ip_forward': read('/proc/sys/net/ipv4/ip_forward'),
    'net.ipv6.conf.all.forwarding': read('/proc/sys/net/ipv6/conf/all/forwarding'),
    '/etc/netns': ls('/etc/netns'),
    '/var/lib/nsnet': ls('/var/lib/nsnet'),
  };
}

function findTests(dir, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) findTests(p, out);
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const filter = process.argv.slice(2);
let files = [...findTests('dist/src'), ...findTests('dist/test')];
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}

const before = hostSnapshot();
const env = { ...process.env };
// A Node started by a test (the CLI) should not pay for the machine's global CA bundle.
delete env.NODE_EXTRA_CA_CERTS;
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=600000', ...files], { stdio: 'inherit', env });
const after = hostSnapshot();

let leaked = false;
for (const [k, v] of Object.entries(before)) {
  if (after[k] !== v) {
    leaked = true;
    console.error(`\nHOST CHANGED by the test suite: ${k}\n--- before\n${v}\n--- after\n${after[k]}`);
  }
}
if (!leaked) console.log(`\nhost check: unchanged (${Object.keys(before).join(', ')})`);
process.exit(r.status !== 0 ? (r.status ?? 1) : leaked ? 3 : 0);
