/**
 * Permit grants on PostgreSQL ({@link PermitStore.grantPermits}): the same decisions as SQLite,
 * by the backends' shared rule (`permit-decision.ts`, which calls `protocol`'s coverage rule),
 * under the locks that make guarantee 1 hold across replicas.
 *
 * Guarantee 1 across replicas. A directive commit moves the rev with an UPDATE of the rev row
 * (`bumpRev`), which takes the `rev` table ROW EXCLUSIVE until its COMMIT. A permit transaction's
 * first statement takes the `rev` table in SHARE mode (`shareRev`), which conflicts with ROW
 * EXCLUSIVE; only then, in later statements, it reads the rev and the active directives and
 * decides. Under read committed each statement takes a fresh snapshot when it starts, so:
 * - if the halt has bumped the rev, the SHARE waits for its COMMIT; the reads that follow are
 *   snapshotted after it and see the new rev and the halt: refused;
 * - if the permit holds SHARE first, the halt's UPDATE waits until the permit commits: the permit
 *   is stamped and committed at a rev before the halt's;
 * - while a permit holds SHARE no rev moves, so the directives it reads are exactly those of the
 *   rev it stamps on the permit.
 * The lock and the reads must be separate statements: one statement reading the directives with
 * a lock taken inside it (a CTE, a join) would keep the snapshot from before its wait and miss
 * the halt it waited for. Sending them pipelined (one round trip) is fine: the server runs a
 * connection's statements one after the other and snapshots each when it starts it. Table locks
 * queue in order (a SHARE request waits behind a directive already waiting), so a halt commits
 * after the permits in flight, never starved by later ones. Nothing here depends on one process:
 * every replica takes the same lock in the same database.
 */
import type { Directive } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import { LedgerCommit } from '../../audit/ledger.ts';
import { decidePermit } from '../permit-decision.ts';
import type { PermitRow, RunRow } from '../sqlite-rows.ts';
import type { PermitDecision, PermitGrant } from '../store.ts';
import { isConnectionError, type Sql, type Tx } from './connect.ts';
import { permitRow, type PgPermitRow } from './pg-ledger.ts';
import { appendAudit, shareRev } from './tx.ts';

/** Reads the active directives inside the caller's transaction (the directives concept's rows). */
export type Active = (tx: Tx) => Promise<Directive[]>;

const PERMIT_COLUMNS = `id, rev, run_id, tenant, agent, worker_id, capability, class, idempotency_key, args_digest,
  compensate, status, cool_off_ms, confirm_after, lineage, features, release, result, error, after_abort,
  intended_at, settled_at`;
/** The permit columns as `json_to_recordset` reads them (same order as {@link PERMIT_COLUMNS}). */
const PERMIT_RECORD = `id text, rev bigint, run_id text, tenant text, agent text, worker_id text, capability text,
  class text, idempotency_key text, args_digest text, compensate text, status text, cool_off_ms bigint,
  confirm_after text, lineage text, features text, release text, result text, error text, after_abort integer,
  intended_at text, settled_at text`;

/** A run registered by its first permit (as `FleetStore.registerRun` stores one). */
type RunInsert = RunRow;

const runInsert = (q: PermitGrant): RunInsert => ({
  run_id: q.runId,
  tenant: q.tenant,
  agent: q.agent,
  parent_run_id: q.lineage.at(-1) ?? null,
  lineage: JSON.stringify(q.lineage),
  features: JSON.stringify(q.features),
  worker_id: q.workerId,
  started_at: new Date().toISOString(),
});

/** The batch's fast path met a write it cannot decide from what it read (another replica's at the same moment). */
class ReadAgain extends Error {}

/**
 * Whether PostgreSQL refused a statement for what it wrote (a value it cannot store, a key
 * another transaction took, a deadlock or serialisation victim): deciding the batch again one
 * request at a time can answer it. Not an unreachable database or a timeout: those fail the
 * batch as they would fail it again.
 */
export function isRequestError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|40|54)/.test(code) && code.length === 5;
}

/**
 * The `ledger.committed` records for the permit rows a transaction wrote, as they stand at its
 * end: the audit's rule for the ledger, the same as SQLite's (`audit/ledger.ts`); appended last.
 */
export function committed(rows: readonly PermitRow[]): AuditEvent[] {
  const commit = new LedgerCommit();
  commit.add(rows);
  return commit.events();
}

const runKey = (tenant: string, runId: string) => JSON.stringify([tenant, runId]);
const idemKey = (tenant: string, runId: string, key: string) => JSON.stringify([tenant, runId, key]);

/**
 * See {@link PermitStore.grantPermits}. One transaction for the batch, in a few round trips
 * whatever its size: lock and reads pipelined, the decisions made in memory in request order
 * (each seeing the ones before, as SQLite's sequential decisions do), the writes in one
 * statement, the audit last. When that statement fails (one request's bad value, or a run or
 * key another replica wrote at the same moment), the transaction is rolled back and the batch
 * decided again one request at a time, each in its own savepoint: a failing request is
 * `failed` alone. Nothing is answered before COMMIT.
 */
export async function grantPermits(
  sql: Sql,
  readActive: Active,
  requests: PermitGrant[],
): Promise<PermitDecision[]> {
  if (requests.length === 0) return [];
  try {
    return await sql.begin((tx) => grantBatch(tx, readActive, requests));
  } catch (err) {
    if (!(err instanceof ReadAgain) && !isRequestError(err)) throw err;
    return sql.begin((tx) => grantEach(tx, readActive, requests));
  }
}

async function grantBatch(tx: Tx, readActive: Active, requests: PermitGrant[]): Promise<PermitDecision[]> {
  const runs = new Map<string, { tenant: string; runId: string }>();
  const keyed = new Map<string, { tenant: string; runId: string; key: string }>();
  for (const q of requests) {
    runs.set(runKey(q.tenant, q.runId), { tenant: q.tenant, runId: q.runId });
    if (q.idempotencyKey !== null)
      keyed.set(idemKey(q.tenant, q.runId, q.idempotencyKey), {
        tenant: q.tenant,
        runId: q.runId,
        key: q.idempotencyKey,
      });
  }
  const runList = [...runs.values()];
  const keyList = [...keyed.values()];
  // Pipelined, in this order: the rev lock first, then reads that each snapshot after it.
  const [rev, active, ownerRows, priorRows] = await Promise.all([
    shareRev(tx),
    readActive(tx),
    tx<{ tenant: string; run_id: string; agent: string; lineage: string; features: string }[]>`
      SELECT r.tenant, r.run_id, r.agent, r.lineage, r.features FROM runs r
      JOIN unnest(${runList.map((r) => r.tenant)}::text[], ${runList.map((r) => r.runId)}::text[]) AS k(tenant, run_id)
        ON r.tenant = k.tenant AND r.run_id = k.run_id`,
    keyList.length === 0
      ? Promise.resolve([] as PgPermitRow[])
      : // Locked: a settle committing now on another replica is waited for, not decided over.
        tx<PgPermitRow[]>`
      SELECT p.* FROM permits p
      JOIN unnest(${keyList.map((k) => k.tenant)}::text[], ${keyList.map((k) => k.runId)}::text[],
        ${keyList.map((k) => k.key)}::text[]) AS k(tenant, run_id, key)
        ON p.tenant = k.tenant AND p.run_id = k.run_id AND p.idempotency_key = k.key
      ORDER BY p.id FOR UPDATE OF p`,
  ]);
  const owners = new Map(ownerRows.map((r) => [runKey(r.tenant, r.run_id), r.agent]));
  const stored = new Map(
    ownerRows.map((r) => [runKey(r.tenant, r.run_id), { lineage: r.lineage, features: r.features }]),
  );
  const priors = new Map(
    priorRows.map((r) => [idemKey(r.tenant, r.run_id, r.idempotency_key ?? ''), permitRow(r)]),
  );
  const registered: RunInsert[] = [];
  const inserted: PermitRow[] = [];
  const fresh = new Set<PermitRow>();
  const doubted: string[] = [];
  /** Every row inserted or moved to in doubt (a row object in its final state), for the ledger record. */
  const written: PermitRow[] = [];
  const out: PermitDecision[] = [];
  for (const q of requests) {
    const rk = runKey(q.tenant, q.runId);
    const ik = q.idempotencyKey === null ? null : idemKey(q.tenant, q.runId, q.idempotencyKey);
    const run = stored.get(rk);
    const step = decidePermit(
      q,
      {
        owner: owners.get(rk) ?? null,
        ...(run ? { stored: run } : {}),
        prior: ik === null ? null : (priors.get(ik) ?? null),
      },
      rev,
      active,
      q.grantedAt ?? new Date(),
    );
    if (step.register) {
      const r = runInsert(q);
      owners.set(rk, q.agent);
      stored.set(rk, { lineage: r.lineage, features: r.features });
      registered.push(r);
    }
    if (step.doubt !== null) {
      const prior = priors.get(ik!)!;
      // The next request of the batch sees it in doubt; a permit of this batch is inserted so.
      if (!fresh.has(prior)) doubted.push(step.doubt);
      prior.status = 'in_doubt';
      written.push(prior);
    }
    if (step.row !== null) {
      inserted.push(step.row);
      fresh.add(step.row);
      if (ik !== null) priors.set(ik, step.row);
      written.push(step.row);
    }
    out.push(step.decision);
  }
  if (registered.length + inserted.length + doubted.length > 0) {
    // Runs in key order, so two batches registering the same runs lock them in the same order.
    registered.sort((a, b) =>
      a.tenant === b.tenant ? (a.run_id < b.run_id ? -1 : 1) : a.tenant < b.tenant ? -1 : 1,
    );
    const [counted] = await tx<{ registered: string }[]>`
      WITH reg AS (
        INSERT INTO runs (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at)
        SELECT * FROM json_to_recordset(${JSON.stringify(registered)}::text::json) AS x(run_id text, tenant text,
          agent text, parent_run_id text, lineage text, features text, worker_id text, started_at text)
        ON CONFLICT (tenant, run_id) DO NOTHING
        RETURNING 1
      ), ins AS (
        INSERT INTO permits (${tx.unsafe(PERMIT_COLUMNS)})
        SELECT * FROM json_to_recordset(${JSON.stringify(inserted)}::text::json) AS x(${tx.unsafe(PERMIT_RECORD)})
      ), doubt AS (
        UPDATE permits SET status = 'in_doubt' WHERE id = ANY(${doubted}::text[]) AND status = 'granted'
      )
      SELECT count(*) AS registered FROM reg`;
    // Another replica registered one of these runs since it was read: its owner decides, read again.
    if (Number(counted!.registered) !== registered.length) throw new ReadAgain();
  }
  await appendAudit(tx, committed(written));
  return out;
}

async function grantEach(tx: Tx, readActive: Active, requests: PermitGrant[]): Promise<PermitDecision[]> {
  const [rev, active] = await Promise.all([shareRev(tx), readActive(tx)]);
  const out: PermitDecision[] = [];
  const written: PermitRow[] = [];
  for (const q of requests) {
    try {
      const { step, doubted } = await tx.savepoint(async (sp) => {
        // Registered first (a no-op when it is), then read in a later statement: whichever
        // replica registered it first is the owner every replica sees.
        const r = runInsert(q);
        await sp`INSERT INTO runs (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at)
          VALUES (${r.run_id}, ${r.tenant}, ${r.agent}, ${r.parent_run_id}, ${r.lineage}, ${r.features},
            ${r.worker_id}, ${r.started_at})
          ON CONFLICT (tenant, run_id) DO NOTHING`;
        const [[owner], [prior]] = await Promise.all([
          sp<{ agent: string; lineage: string; features: string }[]>`
            SELECT agent, lineage, features FROM runs WHERE tenant = ${q.tenant} AND run_id = ${q.runId}`,
          q.idempotencyKey === null
            ? Promise.resolve([] as PgPermitRow[])
            : sp<PgPermitRow[]>`SELECT * FROM permits
                WHERE tenant = ${q.tenant} AND run_id = ${q.runId} AND idempotency_key = ${q.idempotencyKey}
                FOR UPDATE`,
        ]);
        const step = decidePermit(
          q,
          {
            owner: owner?.agent ?? null,
            ...(owner ? { stored: { lineage: owner.lineage, features: owner.features } } : {}),
            prior: prior ? permitRow(prior) : null,
          },
          rev,
          active,
          q.grantedAt ?? new Date(),
        );
        let doubted: PermitRow | null = null;
        if (step.doubt !== null) {
          await sp`UPDATE permits SET status = 'in_doubt' WHERE id = ${step.doubt} AND status = 'granted'`;
          doubted = { ...permitRow(prior!), status: 'in_doubt' };
        }
        if (step.row !== null)
          await sp`INSERT INTO permits (${sp.unsafe(PERMIT_COLUMNS)})
            SELECT * FROM json_to_recordset(${JSON.stringify([step.row])}::text::json) AS x(${sp.unsafe(PERMIT_RECORD)})`;
        return { step, doubted };
      });
      if (doubted !== null) written.push(doubted);
      if (step.row !== null) written.push(step.row);
      out.push(step.decision);
    } catch (err) {
      if (isConnectionError(err)) throw err;
      // This request alone failed (rolled back to its savepoint); the others are decided as if it were not there.
      out.push({ kind: 'failed', message: err instanceof Error ? err.message : String(err) });
    }
  }
  await appendAudit(tx, committed(written));
  return out;
}
