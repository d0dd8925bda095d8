/**
 * The fleet on PostgreSQL ({@link FleetStore}): runs, launcher owners and agents' capability
 * surfaces, the same records and orders as SQLite (`sqlite-store.ts`, `sqlite-owners.ts`,
 * `sqlite-drills.ts`). First-writer-wins bindings (a run's agent and lineage, a launcher's agent)
 * are `INSERT … ON CONFLICT DO NOTHING` followed by a read in a later statement: under read
 * committed the insert waits for a concurrent inserter of the same key on another replica, and
 * the read sees whichever committed first, so every replica answers with the same owner.
 */
import type { AuditEvent } from '../../audit/chain.ts';
import { toRun, type RunRow } from '../sqlite-rows.ts';
import { toAgentSurfaces } from '../rows.ts';
import type { AgentSurface, FleetStore, RunRecord } from '../store.ts';
import type { Sql } from './connect.ts';
import { appendAudit } from './tx.ts';

/** DDL of the fleet's tables (runs, launcher owners, capability surfaces). */
export const FLEET_DDL: readonly string[] = [
  // Lineage and features are JSON arrays as text (as on SQLite), read back by `toRun`.
  `CREATE TABLE runs (
    run_id text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    parent_run_id text,
    lineage text NOT NULL,
    features text NOT NULL,
    worker_id text NOT NULL,
    started_at text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, run_id)
  )`,
  `CREATE INDEX runs_run_id ON runs (run_id)`,
  `CREATE INDEX runs_agent ON runs (tenant, agent)`,
  `CREATE TABLE launchers (
    tenant text COLLATE "C" NOT NULL,
    launcher_id text COLLATE "C" NOT NULL,
    agent text NOT NULL,
    bound_at text NOT NULL,
    PRIMARY KEY (tenant, launcher_id)
  )`,
  `CREATE TABLE agent_capabilities (
    tenant text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    capability text COLLATE "C" NOT NULL,
    first_seen_at text NOT NULL,
    PRIMARY KEY (tenant, agent, capability)
  )`,
];

/** The fleet concept over one pool (see the module's comment). */
export class PgFleet implements FleetStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async registerRun(r: RunRecord): Promise<RunRecord> {
    const sql = this.#sql;
    await sql`INSERT INTO runs (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at)
      VALUES (${r.runId}, ${r.tenant}, ${r.agent}, ${r.parentRunId}, ${JSON.stringify(r.lineage)},
        ${JSON.stringify(r.features)}, ${r.workerId}, ${r.startedAt})
      ON CONFLICT (tenant, run_id) DO NOTHING`;
    // A later statement: it sees the first registration, whichever replica committed it.
    return (await this.getRun(r.tenant, r.runId))!;
  }

  async getRun(tenant: string, runId: string): Promise<RunRecord | null> {
    const [r] = await this.#sql<RunRow[]>`SELECT * FROM runs WHERE tenant = ${tenant} AND run_id = ${runId}`;
    return r ? toRun(r) : null;
  }

  async findRuns(runId: string): Promise<RunRecord[]> {
    const rows = await this.#sql<RunRow[]>`SELECT * FROM runs WHERE run_id = ${runId} ORDER BY tenant`;
    return rows.map(toRun);
  }

  async runFamily(tenant: string, runId: string): Promise<RunRecord[]> {
    // `?` is jsonb's "has this string as an array element"; the tenant's primary-key range narrows the scan.
    const rows = await this.#sql<RunRow[]>`
      SELECT * FROM runs WHERE tenant = ${tenant} AND (run_id = ${runId} OR lineage::jsonb ? ${runId})
      ORDER BY run_id = ${runId} DESC, started_at, run_id`;
    return rows.map(toRun);
  }

  async bindLauncher(tenant: string, launcherId: string, agent: string, at: Date): Promise<string> {
    await this.#sql`INSERT INTO launchers (tenant, launcher_id, agent, bound_at)
      VALUES (${tenant}, ${launcherId}, ${agent}, ${at.toISOString()})
      ON CONFLICT (tenant, launcher_id) DO NOTHING`;
    return (await this.launcherOwner(tenant, launcherId))!;
  }

  async launcherOwner(tenant: string, launcherId: string): Promise<string | null> {
    const [r] = await this.#sql<{ agent: string }[]>`
      SELECT agent FROM launchers WHERE tenant = ${tenant} AND launcher_id = ${launcherId}`;
    return r?.agent ?? null;
  }

  async noteCapabilities(
    tenant: string,
    agent: string,
    caps: readonly string[],
    at: Date,
    audit?: (added: string[]) => AuditEvent[],
  ): Promise<string[]> {
    const wanted = [...new Set(caps)].sort();
    if (wanted.length === 0) return [];
    return this.#sql.begin(async (tx) => {
      // RETURNING names the rows this statement inserted: those already known keep their first time.
      const rows = await tx<{ capability: string }[]>`
        INSERT INTO agent_capabilities (tenant, agent, capability, first_seen_at)
        SELECT ${tenant}, ${agent}, c, ${at.toISOString()} FROM unnest(${wanted}::text[]) AS c
        ON CONFLICT (tenant, agent, capability) DO NOTHING
        RETURNING capability`;
      const added = rows.map((r) => r.capability).sort();
      if (added.length > 0 && audit) await appendAudit(tx, audit(added));
      return added;
    });
  }

  async agentSurfaces(tenant?: string): Promise<AgentSurface[]> {
    const sql = this.#sql;
    const filter = tenant === undefined ? sql`` : sql`WHERE tenant = ${tenant}`;
    const rows = await sql<
      { tenant: string; agent: string; capability: string | null; first_seen_at: string | null }[]
    >`
      SELECT tenant, agent, capability, first_seen_at FROM agent_capabilities ${filter}
      UNION ALL SELECT DISTINCT tenant, agent, NULL, NULL FROM runs ${filter}
      ORDER BY tenant, agent, capability NULLS FIRST`;
    return toAgentSurfaces(rows);
  }
}
