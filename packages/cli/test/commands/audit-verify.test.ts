/**
 * `killpath audit verify` with an admin's token and with a tenant's (issue 11 item 8): the admin
 * is told the record count and head, or the first bad record; a tenant's operator only whether
 * the whole log verifies, and the exit code says the same. A real control plane in this process
 * answers (a file database: the log is hashed in a worker thread).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { cli } from '../cli-capture.ts';

describe('killpath audit verify', () => {
  let dir: string;
  let server: RunningServer;
  let admin: string[];
  let operator: string[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kp-audit-verify-'));
    server = await startServer({
      dataDir: dir,
      port: 0,
      logLevel: 'error',
      supervisor: false,
      watchdog: false,
    });
    const api = new ApiClient(server.url, server.createdAdminToken!);
    const { token } = await api.post<{ token: string }>('/v1/tokens', { role: 'operator', tenant: 'acme' });
    await new ApiClient(server.url, token).post('/v1/agents/acme/bot/kill', { justification: 'INC-1' });
    admin = ['--url', server.url, '--token', server.createdAdminToken!];
    operator = ['--url', server.url, '--token', token];
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an admin is told the count and head; a tenant operator only that the whole log verifies', async () => {
    const a = await cli(['audit', 'verify', ...admin]);
    assert.equal(a.code, 0, a.err.join('\n'));
    assert.match(a.out.join('\n'), /^audit chain ok: \d+ records, head [0-9a-f]{16}…$/);
    const o = await cli(['audit', 'verify', ...operator]);
    assert.equal(o.code, 0, o.err.join('\n'));
    assert.deepEqual(o.out, [
      'audit chain ok (the whole log verifies; its size, head and any bad record are shown to admins)',
    ]);
    const j = await cli(['audit', 'verify', '--json', ...operator]);
    assert.deepEqual(JSON.parse(j.out.join('\n')), { ok: true, brief: true });
  });

  it('a broken chain: the admin is told where, the operator that it is broken; both exit 1', async () => {
    // As someone holding the database file would: another connection edits a record.
    const db = new DatabaseSync(join(dir, 'killpath.db'));
    db.exec(`UPDATE audit SET actor = 'mallory' WHERE seq = 2`);
    db.close();
    const a = await cli(['audit', 'verify', ...admin]);
    assert.equal(a.code, 1);
    assert.match(a.out.join('\n'), /^audit chain BROKEN at record #2: hash does not match/);
    const o = await cli(['audit', 'verify', ...operator]);
    assert.equal(o.code, 1);
    assert.deepEqual(o.out, [
      'audit chain BROKEN: the log does not verify (an admin token names the first bad record: killpath audit verify)',
    ]);
  });
});
