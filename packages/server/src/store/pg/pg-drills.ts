/** Rehearsal records on PostgreSQL (the agents a spec covers are kept as jsonb, to filter on). */
import type { DrilledAgent, RehearsalInput, RehearsalRecord } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import { newDrill, toDrill, toLastDrills, type DrillRow } from '../rows.ts';
import type { DrillQuery, DrillStore, LastDrill } from '../store.ts';
import type { JSONValue } from 'postgres';
import type { Sql } from './connect.ts';
import { appendAudit } from './tx.ts';

/** {@link DrillStore} on PostgreSQL. */
export class PgDrills implements DrillStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  recordDrill(
    input: RehearsalInput,
    recordedBy: string,
    audit: (r: Omit<RehearsalRecord, 'auditSeq'>) => AuditEvent[],
  ): Promise<RehearsalRecord> {
    return this.#sql.begin(async (tx) => {
      const base = newDrill(input, recordedBy);

      // The insert comes before the audit append: the audit head is the last lock taken.
      const events = audit(base);
      await tx`
        INSERT INTO drills (id, recorded_at, recorded_by, spec_name, spec_digest, mode, compact, result,
          started_at, finished_at, agents, scenarios, audit_seq)
        VALUES (${base.id}, ${base.recordedAt}, ${recordedBy}, ${base.spec.name}, ${base.spec.digest}, ${base.mode},
          ${base.compact}, ${base.result}, ${base.startedAt}, ${base.finishedAt},
          ${tx.json(base.spec.agents as unknown as JSONValue)}, ${JSON.stringify(base.scenarios)}, 0)`;
      const appended = await appendAudit(tx, events);
      const auditSeq = (appended.find((r) => r.type === 'drill.recorded') ?? appended[0])?.seq ?? 0;
      if (auditSeq !== 0) await tx`UPDATE drills SET audit_seq = ${auditSeq} WHERE id = ${base.id}`;
      return { ...base, auditSeq };
    });
  }

  #covers(q: Omit<DrillQuery, 'limit' | 'before'>) {
    const sql = this.#sql;
    const parts = [sql`TRUE`];
    if (q.tenant !== undefined) parts.push(sql`agents @> ${sql.json([{ tenant: q.tenant }])}`);
    if (q.agent !== undefined)
      parts.push(sql`agents @> ${sql.json([{ tenant: q.agent.tenant, agent: q.agent.agent }])}`);
    return parts.reduce((a, b) => sql`${a} AND ${b}`);
  }

  async countDrills(q: Omit<DrillQuery, 'limit' | 'before'>): Promise<number> {
    const [r] = await this.#sql<{ n: string }[]>`SELECT COUNT(*) AS n FROM drills WHERE ${this.#covers(q)}`;
    return Number(r!.n);
  }

  async listDrills(q: DrillQuery): Promise<RehearsalRecord[]> {
    const sql = this.#sql;
    // An unknown `before` compares with NULL: nothing matches.
    const rows = await sql<DrillRow[]>`
      SELECT * FROM drills WHERE ${this.#covers(q)}
        AND ${q.before === undefined ? sql`TRUE` : sql`seq < (SELECT seq FROM drills WHERE id = ${q.before})`}
      ORDER BY seq DESC LIMIT ${q.limit}`;
    return rows.map(toDrill);
  }

  async getDrill(id: string): Promise<RehearsalRecord | null> {
    const [r] = await this.#sql<DrillRow[]>`SELECT * FROM drills WHERE id = ${id}`;
    return r ? toDrill(r) : null;
  }

  async lastDrills(tenant?: string): Promise<LastDrill[]> {
    const sql = this.#sql;
    const rows = await sql<
      { id: string; finished_at: string; result: string; spec_digest: string; agent: DrilledAgent }[]
    >`
      SELECT d.id, d.finished_at, d.result, d.spec_digest, a.value AS agent
      FROM drills d, jsonb_array_elements(d.agents) a
      ${tenant === undefined ? sql`` : sql`WHERE a.value->>'tenant' = ${tenant}`}
      ORDER BY d.finished_at DESC, d.seq DESC`;
    return toLastDrills(rows);
  }
}
