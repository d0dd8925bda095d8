/**
 * Test-only access to a store's raw SQLite connection, to tamper with records the way an
 * attacker with the database file would. It lives here, not on the production store class.
 */
import { DatabaseSync } from 'node:sqlite';
import { SqliteStore } from '../src/store/sqlite-store.ts';

const connections = new WeakMap<SqliteStore, DatabaseSync>();

/** A SQLite store (`:memory:` unless a path is given) whose connection {@link rawExec} can reach. */
export function tamperableStore(path = ':memory:'): SqliteStore {
  const db = new DatabaseSync(path);
  const store = new SqliteStore(db);
  connections.set(store, db);
  return store;
}

/** Runs raw SQL on the connection of a store made by {@link tamperableStore}. */
export function rawExec(store: SqliteStore, sql: string): void {
  const db = connections.get(store);
  if (!db) throw new Error('rawExec needs a store made by tamperableStore()');
  db.exec(sql);
}
