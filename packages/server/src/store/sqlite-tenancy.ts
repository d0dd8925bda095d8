import type { DatabaseSync } from 'node:sqlite';

/**
 * Brings run identity inside the tenant (schema version 12). Before, a run id was global: the
 * first tenant to register `ticket-1234` owned it for everyone, another tenant's registration
 * answered 409 and its run could not be stopped at run scope. Now `runs` is keyed by
 * `(tenant, run_id)`, a permit's idempotency key is unique per `(tenant, run_id)`, and the
 * halted-runs list records the tenant. Tables are rebuilt in place, keeping every row (old run
 * ids were unique, so each keeps its one tenant); a fresh database is created in the new shape
 * and left alone. Idempotent.
 */
export function migrateRunTenancy(db: DatabaseSync): void {
  const pk = (table: string) =>
    (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string; pk: number }[])
      .filter((c) => c.pk > 0)
      .map((c) => c.name);
  const sqlOf = (table: string) =>
    (
      db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table) as
        { sql: string } | undefined
    )?.sql ?? null;
  const runsOld = !pk('runs').includes('tenant');
  const permitsSql = sqlOf('permits');
  const permitsOld =
    permitsSql !== null && /UNIQUE\s*\(\s*run_id\s*,\s*idempotency_key\s*\)/.test(permitsSql);
  const haltedOld = !pk('halted_runs').includes('tenant');
  if (!runsOld && !permitsOld && !haltedOld) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    if (runsOld) {
      db.exec(`
        CREATE TABLE runs_v12 (
          run_id TEXT NOT NULL,
          tenant TEXT NOT NULL,
          agent TEXT NOT NULL,
          parent_run_id TEXT,
          lineage TEXT NOT NULL,
          features TEXT NOT NULL,
          worker_id TEXT NOT NULL,
          started_at TEXT NOT NULL,
          PRIMARY KEY (tenant, run_id)
        );
        INSERT INTO runs_v12 (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at)
          SELECT run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_v12 RENAME TO runs;
      `);
    }
    if (permitsOld) {
      // Same columns in the same order (whatever later versions added), only the key changes.
      const create = permitsSql
        .replace(/CREATE TABLE\s+(IF NOT EXISTS\s+)?"?permits"?/, 'CREATE TABLE permits_v12')
        .replace(
          /UNIQUE\s*\(\s*run_id\s*,\s*idempotency_key\s*\)/,
          'UNIQUE (tenant, run_id, idempotency_key)',
        );
      db.exec(`
        ${create};
        INSERT INTO permits_v12 SELECT * FROM permits;
        DROP TABLE permits;
        ALTER TABLE permits_v12 RENAME TO permits;
      `);
    }
    if (haltedOld) {
      db.exec(`
        CREATE TABLE halted_runs_v12 (
          tenant TEXT NOT NULL,
          run_id TEXT NOT NULL,
          directive_id TEXT NOT NULL,
          at TEXT NOT NULL,
          PRIMARY KEY (tenant, run_id, directive_id)
        );
        INSERT INTO halted_runs_v12 (tenant, run_id, directive_id, at)
          SELECT COALESCE(
              (SELECT r.tenant FROM runs r WHERE r.run_id = h.run_id LIMIT 1),
              (SELECT d.tenant FROM directives d WHERE d.id = h.directive_id),
              ''),
            h.run_id, h.directive_id, h.at
          FROM halted_runs h;
        DROP TABLE halted_runs;
        ALTER TABLE halted_runs_v12 RENAME TO halted_runs;
      `);
    }
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
