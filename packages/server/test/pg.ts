/**
 * PostgreSQL for tests: the real server on 127.0.0.1:5432 (user `postgres`, trust auth). Each
 * test or suite gets its own fresh database `kp_<name>_<random>`, dropped afterwards, so engineers
 * and parallel test files never meet. When PostgreSQL is not reachable, a test file registers one
 * test that fails under `CI=true` (CI must run the PostgreSQL cases) and is skipped elsewhere with
 * one plain line.
 */
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { PgStore } from '../src/store/pg/pg-store.ts';
import { migrate } from '../src/store/pg/schema.ts';

/** Where the tests' PostgreSQL is (overridable with `KILLPATH_TEST_PG`, an admin URL). */
export const PG_ADMIN_URL = process.env['KILLPATH_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** One line saying PostgreSQL is missing (a skip reason, or a CI failure). */
const MISSING = `PostgreSQL is not reachable at ${new URL(PG_ADMIN_URL).host} (user postgres)`;

let admin: postgres.Sql | null = null;
function adminPool(): postgres.Sql {
  admin ??= postgres(PG_ADMIN_URL, { max: 2, idle_timeout: 2, connect_timeout: 3, onnotice: () => {} });
  return admin;
}

let reachable: Promise<boolean> | null = null;

/**
 * Whether the tests' PostgreSQL answers. When it does not, registers one test in the calling file:
 * failing under `CI=true`, skipped (one plain line) elsewhere. Call it at the top of a test file
 * and register the PostgreSQL cases only when it is true.
 */
export async function requirePostgres(): Promise<boolean> {
  reachable ??= (async () => {
    const probe = postgres(PG_ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
    try {
      await probe`SELECT 1`;
      return true;
    } catch {
      return false;
    } finally {
      await probe.end({ timeout: 1 });
    }
  })();
  const ok = await reachable;
  if (!ok) {
    if (process.env['CI'] === 'true')
      test('PostgreSQL is reachable (CI=true needs it)', () => assert.fail(MISSING));
    else test('PostgreSQL store', { skip: MISSING }, () => {});
  }
  return ok;
}

/** A fresh, empty database of the tests' PostgreSQL. */
export interface TestDatabase {
  /** `kp_<name>_<random>`. */
  name: string;
  /** Its URL (user postgres on 127.0.0.1:5432). */
  url: string;
  /** Drops it, ending whatever connections are still open on it. */
  drop(): Promise<void>;
}

/** Creates a fresh database `kp_<name>_<random>` (`name`: lowercase letters, digits and `_`). */
export async function freshDatabase(name: string): Promise<TestDatabase> {
  const db = `kp_${name
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 30)}_${randomBytes(5).toString('hex')}`;
  const sql = adminPool();
  await sql.unsafe(`CREATE DATABASE ${db}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${db}`;
  let dropped: Promise<void> | null = null;
  const handle: TestDatabase = {
    name: db,
    url: url.toString(),
    drop: () =>
      (dropped ??= (async () => {
        await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db} AND pid <> pg_backend_pid()`;
        await sql.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
        created.delete(handle);
      })()),
  };
  created.add(handle);
  return handle;
}

/** Databases this process created and has not dropped yet. */
const created = new Set<TestDatabase>();

/**
 * Drops every database this process created that a failed test left behind, then ends the admin
 * pool: call it from an `after` hook of each file that uses these helpers.
 */
export async function dropLeftovers(): Promise<void> {
  for (const db of [...created]) await db.drop().catch(() => {});
  const a = admin;
  admin = null;
  await a?.end({ timeout: 1 });
}

/**
 * A fresh, migrated database and a {@link PgStore} on it; closing the store also drops the
 * database (what the contract suites' `make` returns: each test closes its own store).
 */
export async function freshPgStore(name: string): Promise<PgStore> {
  const db = await freshDatabase(name);
  try {
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 1 });
    }
    const store = await PgStore.open(db.url, { max: 4 });
    const close = store.close.bind(store);
    store.close = async () => {
      await close();
      await db.drop();
    };
    return store;
  } catch (err) {
    await db.drop();
    throw err;
  }
}
