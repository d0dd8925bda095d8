/**
 * `startServer` on a PostgreSQL store: replicas starting at once on one empty database create the
 * admin token exactly once (only that replica gets it and writes it to its data dir), and a
 * database whose schema is not current is refused before anything is created.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/server.ts';
import { openPool } from '../src/store/pg/connect.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { PgStore } from '../src/store/pg/pg-store.ts';
import { hashSecret } from '../src/auth/tokens.ts';
import { dropLeftovers, freshDatabase, requirePostgres } from './pg.ts';

const available = await requirePostgres();
after(dropLeftovers);
const dir = mkdtempSync(join(tmpdir(), 'killpath-pg-serve-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const quiet = {
  logLevel: 'error' as const,
  port: 0,
  admission: false as const,
  supervisor: false,
  watchdog: false,
};

describe('killpath serve on PostgreSQL', { skip: !available }, () => {
  test('three replicas starting at once on an empty database create the admin token once', async () => {
    const db = await freshDatabase('serve_bootstrap');
    const sql = openPool(db.url, { max: 1 });
    await migrate(sql);
    await sql.end();
    const dirs = [0, 1, 2].map((i) => join(dir, `replica-${i}`));
    const started = await Promise.allSettled(
      dirs.map((dataDir) => startServer({ ...quiet, dataDir, storeUrl: db.url })),
    );
    const servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    try {
      assert.deepEqual(
        started.map((s) => s.status),
        ['fulfilled', 'fulfilled', 'fulfilled'],
        JSON.stringify(started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'ok'))),
      );
      const creators = servers.filter((s) => s.createdAdminToken !== null);
      assert.equal(creators.length, 1, 'exactly one replica created the admin token');
      const secret = creators[0]!.createdAdminToken!;
      dirs.forEach((d, i) =>
        assert.equal(existsSync(join(d, 'admin.token')), servers[i]!.createdAdminToken !== null),
      );
      assert.equal(readFileSync(join(creators[0]!.dataDir, 'admin.token'), 'utf8').trim(), secret);
      const store = await PgStore.open(db.url, { max: 1 });
      try {
        assert.equal(await store.countTokens(), 1);
        const token = await store.findToken(hashSecret(secret));
        assert.equal(token?.role, 'admin');
        const created = await store.listAudit({ types: ['operator_action'], limit: 100 });
        assert.equal(created.filter((r) => r.data['action'] === 'token.create').length, 1);
        // The default policy is installed once too: version 1, one policy.changed.
        assert.equal(await store.countPolicies(), 1);
        assert.equal((await store.listAudit({ types: ['policy.changed'], limit: 100 })).length, 1);
        // The token works on every replica, whichever created it.
        for (const s of servers) {
          const res = await fetch(`${s.url}/v1/directives`, {
            headers: { authorization: `Bearer ${secret}` },
          });
          assert.equal(res.status, 200, s.url);
        }
        assert.equal((await store.verifyAudit()).ok, true);
      } finally {
        await store.close();
      }
    } finally {
      await Promise.all(servers.map((s) => s.close()));
      await db.drop();
    }
  });

  test('a database that was not migrated is refused before anything is created', async () => {
    const db = await freshDatabase('serve_unmigrated');
    try {
      await assert.rejects(
        startServer({ ...quiet, dataDir: join(dir, 'unmigrated'), storeUrl: db.url }),
        /no killpath schema yet: run killpath migrate --store <url> first/,
      );
      assert.equal(existsSync(join(dir, 'unmigrated', 'admin.token')), false);
    } finally {
      await db.drop();
    }
  });
});
