/**
 * The README's first command is `npm install && npx killpath demo`. This runs its second half
 * exactly as a newcomer would (after the install the test command already did): `npx` must
 * find the workspace's `killpath` bin without the registry, and the demo must exit 0 with
 * every invariant held.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('npx killpath demo runs from the repo root and exits 0', { timeout: 180_000 }, () => {
  const r = spawnSync('npx', ['--no-install', 'killpath', 'demo'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 170_000,
  });
  assert.equal(r.status, 0, `npx killpath demo failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /audit chain verified/);
  assert.match(r.stdout, /every invariant held/);
});
