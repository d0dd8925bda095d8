/**
 * Telemetry forwarded to the holder of the leader lease, on PostgreSQL (see
 * {@link TelemetryStore}). Ids are taken from one counter row in the insert's own transaction:
 * the row lock is held until commit, so ids are in commit order (a sequence is not) and a reader
 * that resumes after id N misses no batch committed later.
 */
import type { RunTelemetry } from '@killpath/protocol';
import type { ForwardedTelemetry, TelemetryStore } from '../store.ts';
import type { Sql } from './connect.ts';

/** DDL of forwarded telemetry (schema migration 3). */
export const TELEMETRY_DDL: readonly string[] = [
  `CREATE TABLE telemetry_seq (
    id smallint PRIMARY KEY CHECK (id = 1),
    last bigint NOT NULL
  )`,
  `INSERT INTO telemetry_seq (id, last) VALUES (1, 0)`,
  `CREATE TABLE telemetry (
    id bigint PRIMARY KEY,
    replica text NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    worker_id text COLLATE "C" NOT NULL,
    runs text NOT NULL,
    at bigint NOT NULL
  )`,
  `CREATE INDEX telemetry_at ON telemetry (at)`,
];

interface TelemetryDbRow {
  id: string;
  replica: string;
  tenant: string;
  agent: string;
  worker_id: string;
  runs: string;
  at: string;
}

/** Forwarded telemetry on PostgreSQL. */
export class PgTelemetry implements TelemetryStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async forwardTelemetry(batches: Omit<ForwardedTelemetry, 'id'>[]): Promise<void> {
    if (batches.length === 0) return;
    await this.#sql.begin(async (tx) => {
      const [s] = await tx<{ last: string }[]>`
        UPDATE telemetry_seq SET last = last + ${batches.length} WHERE id = 1 RETURNING last`;
      const first = Number(s!.last) - batches.length + 1;
      const values = batches.map((b, i) => ({
        id: first + i,
        replica: b.replica,
        tenant: b.tenant,
        agent: b.agent,
        worker_id: b.workerId,
        runs: JSON.stringify(b.runs),
        at: b.at,
      }));
      await tx`INSERT INTO telemetry ${tx(values, 'id', 'replica', 'tenant', 'agent', 'worker_id', 'runs', 'at')}`;
    });
  }

  async telemetryAfter(afterId: number, since: number, limit: number): Promise<ForwardedTelemetry[]> {
    const rows = await this.#sql<TelemetryDbRow[]>`
      SELECT * FROM telemetry WHERE id > ${afterId} AND at >= ${since} ORDER BY id LIMIT ${limit}`;
    return rows.map((r) => ({
      id: Number(r.id),
      replica: r.replica,
      tenant: r.tenant,
      agent: r.agent,
      workerId: r.worker_id,
      runs: JSON.parse(r.runs) as RunTelemetry[],
      at: Number(r.at),
    }));
  }

  async pruneTelemetry(before: number): Promise<number> {
    const r = await this.#sql`DELETE FROM telemetry WHERE at < ${before}`;
    return r.count;
  }
}
