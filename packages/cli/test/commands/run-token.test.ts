/**
 * `killpath run --tenant T --agent A -- cmd` with an operator token of T: the CLI has the
 * control plane mint a short-lived agent token bound to this launcher, and the agent runs with
 * it, transparently. A viewer's token and another tenant's operator token are refused in one
 * line, before anything is started.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecord, Principal } from '@killpath/protocol';
import { startServer, type RunningServer } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { cli } from '../cli-capture.ts';

let dir: string;
let server: RunningServer;
/** Mints a token with the admin token the control plane wrote to its data dir. */
const mint = async (role: 'operator' | 'viewer', tenant: string, name?: string) =>
  (
    await new ApiClient(server.url, readFileSync(join(dir, 'admin.token'), 'utf8').trim()).post<{
      token: string;
    }>('/v1/tokens', { role, tenant, ...(name === undefined ? {} : { name }) })
  ).token;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'killpath-run-token-'));
  server = await startServer({
    dataDir: dir,
    port: 0,
    logLevel: 'error',
    supervisor: false,
    watchdog: false,
  });
});

after(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `killpath run` of a command that writes the identity it was given to `out`, and exits 0. */
const runArgs = (token: string, out: string, extra: string[] = []) => [
  'run',
  '--tenant',
  'acme',
  '--agent',
  'bot',
  '--url',
  server.url,
  '--token',
  token,
  '--isolation',
  'process-group',
  '--data-dir',
  join(dir, 'nowhere'),
  ...extra,
  '--',
  process.execPath,
  '-e',
  `require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ token: process.env.KILLPATH_TOKEN, launcher: process.env.KILLPATH_LAUNCHER_ID }))`,
];

describe('killpath run with an operator token', () => {
  test("an operator of acme starts acme/bot's launcher: the agent gets an agent token of acme/bot bound to it, audited", async () => {
    const op = await mint('operator', 'acme', 'alice@acme');
    const out = join(dir, 'identity.json');
    const r = await cli(runArgs(op, out, ['--launcher-id', 'launch-op-1', '--token-ttl', '2h']));
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(
      r.err.join('\n'),
      /"launcher":"launch-op-1","msg":"your operator token minted an agent token of acme\/bot for this launcher","expiresAt":"20/,
    );
    const given = JSON.parse(readFileSync(out, 'utf8')) as { token: string; launcher: string };
    assert.equal(given.launcher, 'launch-op-1');
    assert.notEqual(given.token, op, 'the agent never holds the operator token');
    const audit = await new ApiClient(server.url, op).get<{ records: AuditRecord[] }>(
      '/v1/audit?type=operator_action,token.revoked&limit=100',
    );
    const rec = audit.records.find((x) => x.type === 'operator_action' && x.data.launcher === 'launch-op-1');
    assert.ok(rec, 'audited');
    assert.equal(rec.actor, 'alice@acme');
    assert.deepEqual([rec.data.role, rec.data.agent], ['agent', 'bot']);
    const left = Date.parse(String(rec.data.expiresAt)) - Date.now();
    assert.ok(left > 0 && left <= 2 * 3_600_000, `expires within the 2 h asked (${left} ms)`);
    // The agent exited, the launcher with it: the token it was given ended with the launcher.
    const ended = audit.records.find(
      (x) => x.type === 'token.revoked' && x.data.tokenId === rec.data.tokenId,
    );
    assert.ok(ended, 'the minted token was revoked when the launcher exited');
    assert.equal(ended.actor, 'launcher:launch-op-1');
    await assert.rejects(
      new ApiClient(server.url, given.token).get<Principal>('/v1/whoami'),
      /token revoked/,
    );
  });

  test('a viewer of acme and an operator of beta are refused in one line; nothing is started', async () => {
    for (const [token, pattern] of [
      [await mint('viewer', 'acme'), /not a viewer token/],
      [
        await mint('operator', 'beta'),
        /operator token is of tenant beta: it may not start a launcher for acme\/bot/,
      ],
    ] as const) {
      const out = join(dir, 'refused.json');
      const r = await cli(runArgs(token, out));
      assert.equal(r.code, 2);
      assert.equal(r.err.length, 1, r.err.join('\n'));
      assert.match(r.err[0]!, pattern);
      assert.ok(!existsSync(out), 'the agent was not started');
    }
  });
});
