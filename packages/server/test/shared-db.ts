/**
 * Two stores on one database, as two replicas open it: SQLite (two connections to one file) or
 * PostgreSQL (two pools on one fresh, migrated database). Shared by the replica tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import { PgStore } from '../src/store/pg/pg-store.ts';
import { openPool } from '../src/store/pg/connect.ts';
import { migrate } from '../src/store/pg/schema.ts';
import { freshDatabase } from './pg.ts';

/** Two stores on one database (what two replicas open) and how to drop it. */
export interface SharedDatabase {
  stores: [Store, Store];
  done(): Promise<void>;
}

/** Two SQLite stores on one file in a fresh temporary directory. */
export async function sqliteShared(): Promise<SharedDatabase> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-replicas-'));
  const path = join(dir, 'killpath.db');
  const a = new SqliteStore(path);
  const b = new SqliteStore(path);
  return {
    stores: [a, b],
    async done() {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Two PgStores (pools of 4) on one fresh database named after `name`, migrated once. */
export async function pgShared(name = 'replicas'): Promise<SharedDatabase> {
  const db = await freshDatabase(name);
  const sql = openPool(db.url, { max: 1 });
  await migrate(sql);
  await sql.end({ timeout: 1 });
  const a = await PgStore.open(db.url, { max: 4 });
  const b = await PgStore.open(db.url, { max: 4 });
  return {
    stores: [a, b],
    async done() {
      await a.close();
      await b.close();
      await db.drop();
    },
  };
}
