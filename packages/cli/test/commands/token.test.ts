/**
 * `killpath token create --ttl | list | revoke | rotate-admin` against a real control plane in
 * this process: the secret is printed once and never listed, a revoked token is refused with
 * "token revoked", rotate-admin rewrites admin.token and the CLI keeps working from it.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KillpathError } from '@killpath/protocol';
import type { RunningServer } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { token, ttlFlag } from '../../src/commands/token.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

let dir: string;
let server: RunningServer;
let fixture: CliServer | undefined;

before(async () => {
  fixture = await startCliServer('token-cli');
  ({ dir, server } = fixture);
});

after(async () => {
  await fixture?.close();
});

/** Runs `killpath token …` with the data dir's server.json and admin.token (as a local operator would). */
async function cli(t: TestContext, args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  t.mock.method(console, 'log', (...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    const code = await token([...args, '--data-dir', dir]);
    return { code, out: lines.join('\n') };
  } finally {
    t.mock.restoreAll();
  }
}

test('--ttl takes s, m, h, d and refuses anything else in one line', () => {
  assert.equal(ttlFlag('8h'), 8 * 3_600_000);
  assert.equal(ttlFlag('90s'), 90_000);
  assert.equal(ttlFlag('1.5d'), 1.5 * 86_400_000);
  for (const bad of ['8', 'h', '0s', '-1h', '8 hours', '0.5s'])
    assert.throws(
      () => ttlFlag(bad),
      (e: unknown) => e instanceof KillpathError && e.code === 'invalid_request',
      bad,
    );
});

test('create --ttl, list without secrets, revoke, then the token is refused', async (t) => {
  const created = await cli(t, [
    'create',
    '--role',
    'operator',
    '--tenant',
    'acme',
    '--name',
    'night-ops',
    '--ttl',
    '8h',
    '--json',
  ]);
  assert.equal(created.code, 0);
  const c = JSON.parse(created.out) as { token: string; id: string; expiresAt: string };
  assert.ok(c.token.startsWith('kp_'));
  const left = Date.parse(c.expiresAt) - Date.now();
  assert.ok(left > 7.9 * 3_600_000 && left <= 8 * 3_600_000, `expires in 8 h, not ${left} ms`);
  const listed = await cli(t, ['list']);
  assert.equal(listed.code, 0);
  assert.match(listed.out, /night-ops\s+operator\s+acme/);
  assert.match(listed.out, new RegExp(`active until ${c.expiresAt.replace(/\./g, '\\.')}`));
  assert.ok(!listed.out.includes(c.token), 'the secret is never listed');
  // Issue 18: the list says how many (all of them: it is not paged), its --json carries the total.
  const json = JSON.parse((await cli(t, ['list', '--json'])).out) as { total: number; tokens: unknown[] };
  assert.equal(json.total, json.tokens.length);
  assert.ok(json.total >= 2);
  assert.match(listed.out, new RegExp(`^all ${json.total} token\\(s\\) you may manage, oldest first$`, 'm'));
  await assert.rejects(cli(t, ['revoke', c.id]), /--reason is required/);
  const revoked = await cli(t, ['revoke', c.id, '--reason', 'shift over']);
  assert.equal(revoked.code, 0);
  assert.match(revoked.out, /^revoked operator token "night-ops" \(t_[^)]+\); 0 open streams closed$/);
  await assert.rejects(
    new ApiClient(server.url, c.token).get('/v1/whoami'),
    (e: unknown) =>
      e instanceof KillpathError && e.code === 'unauthenticated' && e.message === 'token revoked',
  );
  assert.match((await cli(t, ['list'])).out, /revoked \S+ by bootstrap-admin: shift over/);
});

test('rotate-admin: admin.token is replaced (0600), the CLI reads the new one, the old one is revoked', async (t) => {
  const file = join(dir, 'admin.token');
  const before = readFileSync(file, 'utf8').trim();
  const r = await cli(t, ['rotate-admin', '--reason', 'drill']);
  assert.equal(r.code, 0);
  const after = readFileSync(file, 'utf8').trim();
  assert.notEqual(after, before);
  assert.equal(r.out.split('\n')[0], after, 'the new secret, printed once');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal((await cli(t, ['list'])).code, 0, 'the CLI works with the rotated token');
  await assert.rejects(new ApiClient(server.url, before).get('/v1/whoami'), /token revoked/);
});
