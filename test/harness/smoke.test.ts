import './sandbox.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
test('sandbox has only lo', () => {
  const links = JSON.parse(execSync('ip -j link', { encoding: 'utf8' }));
  assert.deepEqual(links.map((l: { ifname: string }) => l.ifname), ['lo']);
});
