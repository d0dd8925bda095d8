/**
 * Rehearsal records and agents' capability surfaces on SQLite (schema version 5), run by
 * `SqliteStore` on its connection, inside its group-commit transactions and its audit chain.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { AuditRecord, RehearsalInput, RehearsalRecord } from '@killpath/protocol';
import type { AuditEvent } from '../audit/chain.ts';
import type { AgentSurface, DrillQuery, LastDrill } from './store.ts';
import { newDrill, toAgentSurfaces, toDrill, toLastDrills, type DrillRow } from './rows.ts';

/** Schema version 5: rehearsal records and the capabilities first seen per agent. */
export const DRILLS_SCHEMA = `
CREATE TABLE IF NOT EXISTS drills (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  recorded_at TEXT NOT NULL,
  recorded_by TEXT NOT NULL,
  spec_name TEXT NOT NULL,
  spec_digest TEXT NOT NULL,
  mode TEXT NOT NULL,
  compact INTEGER NOT NULL,
  result TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  agents TEXT NOT NULL,
  scenarios TEXT NOT NULL,
  audit_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_capabilities (
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  capability TEXT NOT NULL,
  first_seen_at TEXT NOT NULL,
  PRIMARY KEY (tenant, agent, capability)
);
CREATE INDEX IF NOT EXISTS runs_agent ON runs (tenant, agent);
`;

/** What the drill functions need of the store: its connection, its transactions and its audit chain. */
export interface DrillsContext {
  db: DatabaseSync;
  tx<T>(fn: () => T): Promise<T>;
  /** Appends to the audit chain inside the current transaction. */
  audit(events: AuditEvent[]): AuditRecord[];
}

export function recordDrill(
  ctx: DrillsContext,
  input: RehearsalInput,
  recordedBy: string,
  audit: (r: Omit<RehearsalRecord, 'auditSeq'>) => AuditEvent[],
): Promise<RehearsalRecord> {
  return ctx.tx(() => {
    const base = newDrill(input, recordedBy);

    const appended = ctx.audit(audit(base));
    const auditSeq = (appended.find((r) => r.type === 'drill.recorded') ?? appended[0])?.seq ?? 0;
    ctx.db
      .prepare(
        `INSERT INTO drills (id, recorded_at, recorded_by, spec_name, spec_digest, mode, compact, result, started_at, finished_at, agents, scenarios, audit_seq)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        base.id,
        base.recordedAt,
        recordedBy,
        base.spec.name,
        base.spec.digest,
        base.mode,
        base.compact ? 1 : 0,
        base.result,
        base.startedAt,
        base.finishedAt,
        JSON.stringify(base.spec.agents),
        JSON.stringify(base.scenarios),
        auditSeq,
      );
    return { ...base, auditSeq };
  });
}

/** The SQL condition "the record's spec covers an agent of this tenant (and name)". */
const COVERS_TENANT = `EXISTS (SELECT 1 FROM json_each(drills.agents) a WHERE json_extract(a.value, '$.tenant') = ?)`;
const COVERS_AGENT = `EXISTS (SELECT 1 FROM json_each(drills.agents) a WHERE json_extract(a.value, '$.tenant') = ? AND json_extract(a.value, '$.agent') = ?)`;

/** How many records match the tenant and agent filters of a list (its paging ignored). */
export function countDrills(ctx: DrillsContext, q: Omit<DrillQuery, 'limit' | 'before'>): number {
  const where: string[] = [];
  const params: string[] = [];
  if (q.tenant !== undefined) {
    where.push(COVERS_TENANT);
    params.push(q.tenant);
  }
  if (q.agent !== undefined) {
    where.push(COVERS_AGENT);
    params.push(q.agent.tenant, q.agent.agent);
  }
  const sql = `SELECT COUNT(*) AS n FROM drills ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`;
  return Number((ctx.db.prepare(sql).get(...params) as { n: number }).n);
}

export function listDrills(ctx: DrillsContext, q: DrillQuery): RehearsalRecord[] {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (q.tenant !== undefined) {
    where.push(COVERS_TENANT);
    params.push(q.tenant);
  }
  if (q.agent !== undefined) {
    where.push(COVERS_AGENT);
    params.push(q.agent.tenant, q.agent.agent);
  }
  if (q.before !== undefined) {
    // An unknown id compares with NULL: nothing matches.
    where.push('seq < (SELECT seq FROM drills WHERE id = ?)');
    params.push(q.before);
  }
  params.push(q.limit);
  const sql = `SELECT * FROM drills ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
  return (ctx.db.prepare(sql).all(...params) as unknown as DrillRow[]).map(toDrill);
}

export function getDrill(ctx: DrillsContext, id: string): RehearsalRecord | null {
  const r = ctx.db.prepare('SELECT * FROM drills WHERE id = ?').get(id) as DrillRow | undefined;
  return r ? toDrill(r) : null;
}

export function lastDrills(ctx: DrillsContext, tenant?: string): LastDrill[] {
  const rows = ctx.db
    .prepare(
      `SELECT d.id, d.finished_at, d.result, d.spec_digest, a.value AS agent
       FROM drills d, json_each(d.agents) a
       ${tenant === undefined ? '' : `WHERE json_extract(a.value, '$.tenant') = ?`}
       ORDER BY d.finished_at DESC, d.seq DESC`,
    )
    .all(...(tenant === undefined ? [] : [tenant])) as {
    id: string;
    finished_at: string;
    result: string;
    spec_digest: string;
    agent: string;
  }[];
  return toLastDrills(rows);
}

export function noteCapabilities(
  ctx: DrillsContext,
  tenant: string,
  agent: string,
  caps: readonly string[],
  at: Date,
  audit?: (added: string[]) => AuditEvent[],
): Promise<string[]> {
  return ctx.tx(() => {
    const insert = ctx.db.prepare(
      'INSERT OR IGNORE INTO agent_capabilities (tenant, agent, capability, first_seen_at) VALUES (?, ?, ?, ?)',
    );
    const seenAt = at.toISOString();
    const added: string[] = [];
    for (const cap of [...new Set(caps)].sort()) {
      if (Number(insert.run(tenant, agent, cap, seenAt).changes) === 1) added.push(cap);
    }
    if (added.length > 0 && audit) ctx.audit(audit(added));
    return added;
  });
}

export function agentSurfaces(ctx: DrillsContext, tenant?: string): AgentSurface[] {
  const filter = tenant === undefined ? '' : 'WHERE tenant = ?';
  const rows = ctx.db
    .prepare(
      `SELECT tenant, agent, capability, first_seen_at FROM agent_capabilities ${filter}
       UNION ALL SELECT DISTINCT tenant, agent, NULL, NULL FROM runs ${filter}
       ORDER BY tenant, agent, capability`,
    )
    .all(...(tenant === undefined ? [] : [tenant, tenant])) as {
    tenant: string;
    agent: string;
    capability: string | null;
    first_seen_at: string | null;
  }[];
  return toAgentSurfaces(rows);
}
