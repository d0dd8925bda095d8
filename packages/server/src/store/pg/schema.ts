/**
 * The PostgreSQL schema: ordered migrations, a `meta` table holding the version applied, `migrate`
 * (what `killpath migrate --store …` runs) and `checkSchema` (what `serve` runs: it never changes
 * the schema itself, so replicas of two killpath versions never fight over it).
 *
 * Adding tables: put the concept's DDL in its own module (as `ddl.ts` does for pg-core's
 * concepts) and append ONE migration with the next version below. A migration that shipped is
 * never edited: a later change is a new migration.
 */
import { KillpathError } from '@killpath/protocol';
import type { Sql, Tx } from './connect.ts';
import { TX_DDL } from './tx.ts';
import { TELEMETRY_DDL } from './pg-telemetry.ts';
import { HALT_ACK_WITHDRAWALS_DDL, PRESENCE_DDL } from './pg-presence.ts';
import { AUDIT_DDL, DIRECTIVES_DDL, DRILLS_DDL, POLICY_DDL, TOKENS_DDL } from './ddl.ts';
import { EFFECTS_DDL } from './pg-effects.ts';
import { FLEET_DDL } from './pg-fleet.ts';

/** One step of the schema: statements run in order, in one transaction, with the version bump. */
export interface Migration {
  version: number;
  /** What it adds, for `killpath migrate`'s output. */
  name: string;
  statements: readonly string[];
}

const META_DDL = `CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)`;

/** Every migration, oldest first; versions are 1, 2, 3, … with no gap. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'switchboard rev, audit chain and checkpoints, directives, tokens, policy, approvals, drills, runs, launchers, capability surfaces, permits, journal, halted runs',
    statements: [
      ...TX_DDL,
      ...AUDIT_DDL,
      ...DIRECTIVES_DDL,
      ...TOKENS_DDL,
      ...POLICY_DDL,
      ...DRILLS_DDL,
      ...FLEET_DDL,
      ...EFFECTS_DDL,
    ],
  },
  {
    version: 2,
    name: "workers' presence, acknowledgements of stops, leases with a fencing epoch",
    statements: PRESENCE_DDL,
  },
  {
    version: 3,
    name: 'telemetry forwarded to the holder of the leader lease',
    statements: TELEMETRY_DDL,
  },
  {
    version: 4,
    name: 'a withdrawn acknowledgement stays as its withdrawal',
    statements: HALT_ACK_WITHDRAWALS_DDL,
  },
];

/** The schema version this code reads and writes (the last migration's). */
export const PG_SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** Serialises `migrate` across processes (any 64-bit constant: "killpath" in ASCII). */
const MIGRATE_LOCK = 0x6b696c6c70617468n;

async function storedVersion(sql: Sql | Tx): Promise<number> {
  const [t] = await sql<{ exists: boolean }[]>`SELECT to_regclass('meta') IS NOT NULL AS exists`;
  if (!t!.exists) return 0;
  const [r] = await sql<{ value: string }[]>`SELECT value FROM meta WHERE key = 'schema'`;
  return r === undefined ? 0 : Number(r.value);
}

/** The schema version recorded in the database; 0 for a database killpath never migrated. */
export async function schemaVersion(sql: Sql): Promise<number> {
  return storedVersion(sql);
}

/**
 * Brings the database up to {@link PG_SCHEMA_VERSION}: every migration after the stored version,
 * in order, in ONE transaction (PostgreSQL's DDL is transactional: a failure leaves the schema as
 * it was). Several processes may run it at once: an advisory lock makes them take turns, and the
 * later ones find nothing to do.
 * @returns the version before and after
 * @throws KillpathError `invalid_request` when the database is newer than this killpath
 */
export async function migrate(sql: Sql): Promise<{ from: number; to: number; applied: Migration[] }> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK.toString()}::bigint)`;
    const from = await storedVersion(tx);
    if (from > PG_SCHEMA_VERSION) throw newerError(from);
    await tx.unsafe(META_DDL);
    const applied = MIGRATIONS.filter((m) => m.version > from);
    for (const m of applied) for (const s of m.statements) await tx.unsafe(s);
    await tx`INSERT INTO meta (key, value) VALUES ('schema', ${String(PG_SCHEMA_VERSION)})
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
    return { from, to: PG_SCHEMA_VERSION, applied };
  });
}

function newerError(stored: number): KillpathError {
  return new KillpathError(
    'invalid_request',
    `the database has schema version ${stored}, newer than this killpath's ${PG_SCHEMA_VERSION}: run a newer killpath on it`,
  );
}

/**
 * Refuses a database whose schema is not exactly this killpath's: an older one (or an empty
 * database) must be migrated first (`killpath migrate --store <url>`), a newer one needs a newer
 * killpath. `serve` calls it at start and never migrates by itself.
 * @throws KillpathError `invalid_request` saying which and what to run
 */
export async function checkSchema(sql: Sql): Promise<void> {
  const stored = await storedVersion(sql);
  if (stored > PG_SCHEMA_VERSION) throw newerError(stored);
  if (stored < PG_SCHEMA_VERSION)
    throw new KillpathError(
      'invalid_request',
      stored === 0
        ? `the database has no killpath schema yet: run killpath migrate --store <url> first`
        : `the database has schema version ${stored}, older than this killpath's ${PG_SCHEMA_VERSION}: run killpath migrate --store <url> first`,
    );
}
