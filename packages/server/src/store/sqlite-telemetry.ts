import type { DatabaseSync } from 'node:sqlite';
import type { RunTelemetry } from '@killpath/protocol';
import type { ForwardedTelemetry } from './store.ts';

/**
 * Schema version 14: telemetry forwarded to the holder of the leader lease (see
 * {@link TelemetryStore}). Starts empty on an older database. SQLite serialises writers on the
 * file, so the rowid order is the commit order.
 */
export const TELEMETRY_SCHEMA = `
CREATE TABLE IF NOT EXISTS telemetry (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  replica TEXT NOT NULL,
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  runs TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_at ON telemetry (at);
`;

/** What the telemetry functions need from the store: its connection and its write transactions. */
export interface TelemetryContext {
  db: DatabaseSync;
  tx<T>(fn: () => T): Promise<T>;
}

interface TelemetryRow {
  id: number;
  replica: string;
  tenant: string;
  agent: string;
  worker_id: string;
  runs: string;
  at: number;
}

/** See {@link TelemetryStore.forwardTelemetry}. */
export function forwardTelemetry(
  ctx: TelemetryContext,
  batches: Omit<ForwardedTelemetry, 'id'>[],
): Promise<void> {
  if (batches.length === 0) return Promise.resolve();
  return ctx.tx(() => {
    const insert = ctx.db.prepare(
      `INSERT INTO telemetry (replica, tenant, agent, worker_id, runs, at) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    for (const b of batches)
      insert.run(b.replica, b.tenant, b.agent, b.workerId, JSON.stringify(b.runs), b.at);
  });
}

/** See {@link TelemetryStore.telemetryAfter}. */
export function telemetryAfter(
  ctx: TelemetryContext,
  afterId: number,
  since: number,
  limit: number,
): ForwardedTelemetry[] {
  const rows = ctx.db
    .prepare(`SELECT * FROM telemetry WHERE id > ? AND at >= ? ORDER BY id LIMIT ?`)
    .all(afterId, since, limit) as unknown as TelemetryRow[];
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

/** See {@link TelemetryStore.pruneTelemetry}. */
export function pruneTelemetry(ctx: TelemetryContext, before: number): Promise<number> {
  return ctx.tx(() => Number(ctx.db.prepare(`DELETE FROM telemetry WHERE at < ?`).run(before).changes));
}
