/**
 * `killpath migrate` and `killpath serve --store` (KILLPATH_STORE) against the real PostgreSQL
 * (test/pg.ts of the server): each error is one line and exit 2; migrate says what it applied
 * and is idempotent; serve refuses a database that was not migrated.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PG_SCHEMA_VERSION } from '@killpath/server';
import { dropLeftovers, freshDatabase, requirePostgres } from '../../packages/server/test/pg.ts';
import { cli } from '../../packages/cli/test/cli-capture.ts';

const available = await requirePostgres();
after(dropLeftovers);
const dir = mkdtempSync(join(tmpdir(), 'killpath-store-flag-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function oneLine(r: { code: number; out: string[]; err: string[] }, command: string, re: RegExp): void {
  assert.equal(r.code, 2, `exit 2: ${r.err.join('\n')}`);
  assert.deepEqual(r.out, []);
  assert.equal(r.err.length, 1, r.err.join('\n'));
  assert.match(r.err[0]!, new RegExp(`^killpath ${command}: `));
  assert.match(r.err[0]!, re);
  assert.doesNotMatch(r.err[0]!, /\n\s+at /);
}

describe('killpath migrate and serve --store', { skip: !available }, () => {
  it('a missing, malformed or unreachable store is one line and exit 2', async () => {
    oneLine(
      await cli(['migrate']),
      'migrate',
      /needs --store postgres:\/\/user@host:port\/db \(or KILLPATH_STORE\)/,
    );
    oneLine(await cli(['migrate', '--store', 'mysql://u@h/db']), 'migrate', /is not a PostgreSQL URL/);
    oneLine(
      await cli(['migrate', '--store', 'postgres://postgres:hunter2@127.0.0.1:1/db']),
      'migrate',
      /cannot migrate PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/db/,
    );
    oneLine(
      await cli([
        'serve',
        '--store',
        'postgres://postgres@127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        join(dir, 's0'),
      ]),
      'serve',
      /names no database/,
    );
    oneLine(
      await cli([
        'serve',
        '--store',
        'postgres://postgres@127.0.0.1:1/db',
        '--port',
        '0',
        '--data-dir',
        join(dir, 's2'),
      ]),
      'serve',
      /cannot reach PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/db/,
    );
    process.env['KILLPATH_STORE'] = 'redis://127.0.0.1/0';
    try {
      oneLine(
        await cli(['migrate']),
        'migrate',
        /store URL redis:\/\/127\.0\.0\.1\/0 is not a PostgreSQL URL/,
      );
    } finally {
      delete process.env['KILLPATH_STORE'];
    }
  });

  it('serve refuses a database that was not migrated; migrate applies the schema once, then has nothing to do', async () => {
    const db = await freshDatabase('cli_migrate');
    try {
      oneLine(
        await cli(['serve', '--store', db.url, '--port', '0', '--data-dir', join(dir, 's1')]),
        'serve',
        /the database has no killpath schema yet: run killpath migrate --store <url> first/,
      );
      const first = await cli(['migrate', '--store', db.url]);
      assert.equal(first.code, 0, first.err.join('\n'));
      assert.match(first.out[0]!, new RegExp(`schema version 0 → ${PG_SCHEMA_VERSION}`));
      assert.equal(first.out.length, 1 + PG_SCHEMA_VERSION, 'one line per migration applied');
      process.env['KILLPATH_STORE'] = db.url;
      try {
        const again = await cli(['migrate']);
        assert.equal(again.code, 0, again.err.join('\n'));
        assert.deepEqual(again.out, [
          `${db.url}: schema version ${PG_SCHEMA_VERSION} is current, nothing to do`,
        ]);
      } finally {
        delete process.env['KILLPATH_STORE'];
      }
    } finally {
      await db.drop();
    }
  });
});
