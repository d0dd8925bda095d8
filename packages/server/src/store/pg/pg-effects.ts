/**
 * Permits and the effect journal on PostgreSQL ({@link PermitStore}'s writes): the same records,
 * decisions and audit as SQLite (`sqlite-effects.ts`), decided by the backends' shared rule
 * (`permit-decision.ts`, which calls `protocol`'s coverage rule), stored here under the locks
 * that make it hold across replicas.
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
import type { AuditEventOf } from '@killpath/protocol';
import type { Directive, JournalEvent, LedgerEntry, PermitOutcome } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import { LedgerCommit } from '../../audit/ledger.ts';
import { compileRun, refusingDirective } from '@killpath/protocol';
import { decidePermit, permitResponse, rowIdentity, runIdentity } from '../permit-decision.ts';
import { toJournal, toLedger, type JournalDbRow, type PermitRow } from '../sqlite-rows.ts';
import type { JournalRow, PermitDecision, PermitGrant, PermitStore, RunRecord } from '../store.ts';
import { isConnectionError, type Sql, type Tx } from './connect.ts';
import { appendAudit, shareRev } from './tx.ts';
import * as ledgers from './pg-ledger.ts';
import { permitRow, type PgPermitRow } from './pg-ledger.ts';

/** DDL of the effect journal: permits (intent and outcome of each write), journal events, halted runs. */
export const EFFECTS_DDL: readonly string[] = [
  // JSON values (compensate, lineage, features, release, result) are stored as the text SQLite
  // stores, so both backends read them back with the same mapping (`sqlite-rows.ts`).
  `CREATE TABLE permits (
    id text COLLATE "C" PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    rev bigint NOT NULL,
    run_id text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    worker_id text COLLATE "C" NOT NULL,
    capability text COLLATE "C" NOT NULL,
    class text NOT NULL,
    idempotency_key text COLLATE "C",
    args_digest text,
    compensate text,
    status text NOT NULL,
    cool_off_ms bigint NOT NULL DEFAULT 0,
    confirm_after text,
    lineage text NOT NULL,
    features text NOT NULL,
    release text,
    result text,
    error text,
    after_abort integer NOT NULL DEFAULT 0,
    intended_at text COLLATE "C" NOT NULL,
    settled_at text,
    UNIQUE (tenant, run_id, idempotency_key)
  )`,
  `CREATE INDEX permits_run ON permits (tenant, run_id, intended_at, id)`,
  `CREATE INDEX permits_rev ON permits (rev)`,
  // markInDoubt looks for a worker's open effects only.
  `CREATE INDEX permits_open ON permits (tenant, agent, worker_id) WHERE status IN ('granted', 'cooling_off')`,
  `CREATE TABLE journal (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text COLLATE "C",
    tenant text COLLATE "C" NOT NULL,
    worker_id text NOT NULL,
    type text NOT NULL,
    at text NOT NULL,
    data text NOT NULL
  )`,
  `CREATE INDEX journal_run ON journal (tenant, run_id, seq)`,
  `CREATE TABLE halted_runs (
    tenant text COLLATE "C" NOT NULL,
    run_id text COLLATE "C" NOT NULL,
    directive_id text COLLATE "C" NOT NULL,
    at text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, run_id, directive_id)
  )`,
];

const PERMIT_COLUMNS = `id, rev, run_id, tenant, agent, worker_id, capability, class, idempotency_key, args_digest,
  compensate, status, cool_off_ms, confirm_after, lineage, features, release, result, error, after_abort,
  intended_at, settled_at`;
/** The permit columns as `json_to_recordset` reads them (same order as {@link PERMIT_COLUMNS}). */
const PERMIT_RECORD = `id text, rev bigint, run_id text, tenant text, agent text, worker_id text, capability text,
  class text, idempotency_key text, args_digest text, compensate text, status text, cool_off_ms bigint,
  confirm_after text, lineage text, features text, release text, result text, error text, after_abort integer,
  intended_at text, settled_at text`;

/** A run registered by its first permit (as `FleetStore.registerRun` stores one). */
interface RunInsert {
  run_id: string;
  tenant: string;
  agent: string;
  parent_run_id: string | null;
  lineage: string;
  features: string;
  worker_id: string;
  started_at: string;
}

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
function isRequestError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|40|54)/.test(code) && code.length === 5;
}

/**
 * The `ledger.committed` records for the permit rows a transaction wrote, as they stand at its
 * end: the audit's rule for the ledger, the same as SQLite's (`audit/ledger.ts`); appended last.
 */
function committed(rows: readonly PermitRow[]): AuditEvent[] {
  const commit = new LedgerCommit();
  commit.add(rows);
  return commit.events();
}

/** An outcome waiting for its group commit. */
interface PendingSettle {
  id: string;
  owner: PermitOwner;
  outcome: PermitOutcome;
  resolve: (entry: LedgerEntry | null) => void;
  reject: (err: unknown) => void;
}

/** Who may act on a permit: the agent it was granted to, of its tenant. */
export interface PermitOwner {
  tenant: string;
  agent: string;
}

const runKey = (tenant: string, runId: string) => JSON.stringify([tenant, runId]);
const idemKey = (tenant: string, runId: string, key: string) => JSON.stringify([tenant, runId, key]);

/**
 * The writes of the permits concept over one pool. `activeDirectives(tx)` reads the active
 * directives inside the caller's transaction (the directives concept's mapping of its rows).
 */
export class PgEffects implements PermitStore {
  readonly #sql: Sql;
  readonly #active: (tx: Tx) => Promise<Directive[]>;

  constructor(sql: Sql, activeDirectives: (tx: Tx) => Promise<Directive[]>) {
    this.#sql = sql;
    this.#active = activeDirectives;
  }

  /**
   * See {@link PermitStore.grantPermits}. One transaction for the batch, in a few round trips
   * whatever its size: lock and reads pipelined, the decisions made in memory in request order
   * (each seeing the ones before, as SQLite's sequential decisions do), the writes in one
   * statement, the audit last. When that statement fails (one request's bad value, or a run or
   * key another replica wrote at the same moment), the transaction is rolled back and the batch
   * decided again one request at a time, each in its own savepoint: a failing request is
   * `failed` alone. Nothing is answered before COMMIT.
   */
  async grantPermits(requests: PermitGrant[]): Promise<PermitDecision[]> {
    if (requests.length === 0) return [];
    try {
      return await this.#sql.begin((tx) => this.#grantBatch(tx, requests));
    } catch (err) {
      if (!(err instanceof ReadAgain) && !isRequestError(err)) throw err;
      return this.#sql.begin((tx) => this.#grantEach(tx, requests));
    }
  }

  async #grantBatch(tx: Tx, requests: PermitGrant[]): Promise<PermitDecision[]> {
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
      this.#active(tx),
      tx<{ tenant: string; run_id: string; agent: string }[]>`
        SELECT r.tenant, r.run_id, r.agent FROM runs r
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
      const step = decidePermit(
        q,
        { owner: owners.get(rk) ?? null, prior: ik === null ? null : (priors.get(ik) ?? null) },
        rev,
        active,
        q.grantedAt ?? new Date(),
      );
      if (step.register) {
        owners.set(rk, q.agent);
        registered.push(runInsert(q));
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

  async #grantEach(tx: Tx, requests: PermitGrant[]): Promise<PermitDecision[]> {
    const [rev, active] = await Promise.all([shareRev(tx), this.#active(tx)]);
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
            sp<
              { agent: string }[]
            >`SELECT agent FROM runs WHERE tenant = ${q.tenant} AND run_id = ${q.runId}`,
            q.idempotencyKey === null
              ? Promise.resolve([] as PgPermitRow[])
              : sp<PgPermitRow[]>`SELECT * FROM permits
                  WHERE tenant = ${q.tenant} AND run_id = ${q.runId} AND idempotency_key = ${q.idempotencyKey}
                  FOR UPDATE`,
          ]);
          const step = decidePermit(
            q,
            { owner: owner?.agent ?? null, prior: prior ? permitRow(prior) : null },
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

  /** See {@link PermitStore.confirmPermit}: the switchboard is checked again, under the same rev lock as a grant. */
  async confirmPermit(id: string, owner: PermitOwner, now: Date): Promise<PermitDecision> {
    return this.#sql.begin(async (tx) => {
      const [rev, active, [found]] = await Promise.all([
        shareRev(tx),
        this.#active(tx),
        tx<
          PgPermitRow[]
        >`SELECT * FROM permits WHERE id = ${id} AND tenant = ${owner.tenant} AND agent = ${owner.agent}
          FOR UPDATE`,
      ]);
      if (!found) return { kind: 'not_found' } as const;
      const row = permitRow(found);
      if (row.status !== 'cooling_off')
        return { kind: 'conflict', message: `permit ${id} is ${row.status}, not cooling off` } as const;
      if (row.confirm_after !== null && now.getTime() < Date.parse(row.confirm_after))
        return {
          kind: 'conflict',
          message: `permit ${id} is cooling off until ${row.confirm_after}`,
        } as const;
      const stop = refusingDirective(compileRun(active, rowIdentity(row)), row.capability, row.class);
      if (stop) {
        const error = `halted during cool-off by ${stop.id}`;
        await tx`UPDATE permits SET status = 'cancelled', settled_at = ${now.toISOString()},
          error = ${error} WHERE id = ${id}`;
        await appendAudit(tx, [
          ...committed([{ ...row, status: 'cancelled', settled_at: now.toISOString(), error }]),
          {
            type: 'effect.aborted',
            actor: `worker:${row.worker_id}`,
            tenant: row.tenant,
            data: {
              permitId: id,
              runId: row.run_id,
              capability: row.capability,
              class: row.class,
              reason: 'halted during cool-off',
              directiveId: stop.id,
            },
          } satisfies AuditEventOf<'effect.aborted'>,
        ]);
        return { kind: 'halted', directive: stop, rev } as const;
      }
      await tx`UPDATE permits SET status = 'granted', rev = ${rev} WHERE id = ${id}`;
      const confirmed: PermitRow = { ...row, status: 'granted', rev };
      await appendAudit(tx, committed([confirmed]));
      return { kind: 'granted', response: permitResponse(confirmed, false) } as const;
    });
  }

  /** Outcomes waiting for the next group commit (see {@link settlePermit}). */
  #settles: PendingSettle[] = [];

  /**
   * See {@link PermitStore.settlePermit}: the first outcome wins (the rows are locked while they
   * are read and written). Outcomes arriving in one event-loop turn commit together, in arrival
   * order, in one transaction with one audit append (one turn at the audit head instead of one per
   * outcome); each is answered after that COMMIT. When PostgreSQL refuses the batch's write (a
   * value it cannot store), each outcome is settled again in its own transaction, so one bad
   * outcome fails alone.
   */
  settlePermit(id: string, owner: PermitOwner, outcome: PermitOutcome): Promise<LedgerEntry | null> {
    return new Promise((resolve, reject) => {
      this.#settles.push({ id, owner, outcome, resolve, reject });
      if (this.#settles.length === 1) {
        const flushed = new Promise<void>((done) =>
          setImmediate(() => void this.#flushSettles().finally(done)),
        );
        this.#flushing = Promise.all([this.#flushing, flushed]).then(() => undefined);
      }
    });
  }

  #flushing: Promise<void> = Promise.resolve();

  /** Resolves once every outcome queued so far is committed (or refused): called before the pool closes. */
  async drain(): Promise<void> {
    await this.#flushing;
  }

  async #flushSettles(): Promise<void> {
    const batch = this.#settles;
    this.#settles = [];
    try {
      const entries = await this.#sql.begin((tx) => this.#settleBatch(tx, batch));
      batch.forEach((p, i) => p.resolve(entries[i]!));
    } catch (err) {
      if (!isRequestError(err) || batch.length === 1) {
        for (const p of batch) p.reject(err);
        return;
      }
      await Promise.all(
        batch.map((p) =>
          this.#sql.begin((tx) => this.#settleBatch(tx, [p])).then(([e]) => p.resolve(e!), p.reject),
        ),
      );
    }
  }

  async #settleBatch(tx: Tx, batch: readonly PendingSettle[]): Promise<(LedgerEntry | null)[]> {
    // Locked in id order, so two batches (or a grant's idempotency lookups) never deadlock.
    const ids = [...new Set(batch.map((p) => p.id))].sort();
    const found = await tx<PgPermitRow[]>`
      SELECT * FROM permits WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE`;
    const rows = new Map(found.map((r) => [r.id, permitRow(r)]));
    const written = new Map<string, PermitRow>();
    const events: AuditEvent[] = [];
    const now = new Date().toISOString();
    const entries = batch.map(({ id, owner, outcome }) => {
      const row = rows.get(id);
      // Only the agent it was granted to (of its tenant) settles it: another's is not found.
      if (row === undefined || row.tenant !== owner.tenant || row.agent !== owner.agent) return null;
      const open =
        row.status === 'granted' ||
        row.status === 'in_doubt' ||
        (row.status === 'cooling_off' && outcome.status === 'aborted');
      if (!open) return toLedger(row); // already settled: the first outcome wins
      const next: PermitRow = {
        ...row,
        status: outcome.status,
        result:
          outcome.status === 'landed' && outcome.result !== undefined ? JSON.stringify(outcome.result) : null,
        error: outcome.error ?? null,
        after_abort: outcome.afterAbort ? 1 : 0,
        settled_at: now,
      };
      rows.set(id, next);
      written.set(id, next);
      // The outcome reaches the audit in the ledger record; an abort keeps a record of its own too.
      if (outcome.status === 'aborted')
        events.push({
          type: 'effect.aborted',
          actor: `worker:${row.worker_id}`,
          tenant: row.tenant,
          data: {
            permitId: id,
            runId: row.run_id,
            capability: row.capability,
            class: row.class,
            idempotencyKey: row.idempotency_key,
            afterAbort: outcome.afterAbort ?? false,
            ...(outcome.error ? { error: outcome.error } : {}),
          },
        });
      return toLedger(next);
    });
    if (written.size > 0)
      await tx`UPDATE permits p SET status = x.status, result = x.result, error = x.error,
          after_abort = x.after_abort, settled_at = x.settled_at
        FROM json_to_recordset(${JSON.stringify([...written.values()])}::text::json)
          AS x(id text, status text, result text, error text, after_abort integer, settled_at text)
        WHERE p.id = x.id`;
    await appendAudit(tx, [...events, ...committed([...written.values()])]);
    return entries;
  }

  /**
   * See {@link PermitStore.markInDoubt}: one UPDATE moves the workers' granted effects to
   * `in_doubt` and cooling-off ones to `cancelled`. Under read committed it waits for a row a
   * settle holds and then re-checks the status, so an outcome committed first is kept.
   */
  async markInDoubt(owner: PermitOwner, workerIds: string[], reason: string): Promise<LedgerEntry[]> {
    if (workerIds.length === 0) return [];
    return this.#sql.begin(async (tx) => {
      const now = new Date().toISOString();
      const rows = await tx<(PgPermitRow & { seq: string })[]>`
        UPDATE permits SET
          status = CASE status WHEN 'granted' THEN 'in_doubt' ELSE 'cancelled' END,
          error = ${reason}, settled_at = ${now}
        WHERE tenant = ${owner.tenant} AND agent = ${owner.agent} AND worker_id = ANY(${workerIds}::text[])
          AND status IN ('granted', 'cooling_off')
        RETURNING *`;
      if (rows.length === 0) return [];
      // In the order they were granted (RETURNING keeps none).
      rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      const changed = rows.map(permitRow);
      await appendAudit(tx, [
        ...committed(changed),
        ...changed.map((r) => ({
          // A granted effect may have run: nobody knows. A cooling-off one was never confirmed, so it never ran.
          type: r.status === 'in_doubt' ? 'effect.in_doubt' : 'effect.cancelled',
          actor: `worker:${r.worker_id}`,
          tenant: r.tenant,
          data: {
            permitId: r.id,
            runId: r.run_id,
            capability: r.capability,
            class: r.class,
            idempotencyKey: r.idempotency_key,
            reason,
          },
        })),
      ]);
      return changed.map(toLedger);
    });
  }

  /** See {@link PermitStore.appendJournal}. */
  async appendJournal(tenant: string, workerId: string, events: JournalEvent[]): Promise<void> {
    if (events.length === 0) return;
    const at = new Date().toISOString();
    const rows = events.map((e) => ({
      run_id: e.runId ?? null,
      tenant,
      worker_id: workerId,
      type: e.type,
      at,
      data: JSON.stringify(e),
    }));
    await this.#sql.begin(async (tx) => {
      // One statement for the lot; identity values follow the array's order (WITH ORDINALITY).
      await tx`INSERT INTO journal (run_id, tenant, worker_id, type, at, data)
        SELECT x.run_id, x.tenant, x.worker_id, x.type, x.at, x.data
        FROM json_array_elements(${JSON.stringify(rows)}::text::json) WITH ORDINALITY AS e(v, n),
          json_to_record(e.v) AS x(run_id text, tenant text, worker_id text, type text, at text, data text)
        ORDER BY e.n`;
      await appendAudit(
        tx,
        events.map((e) => ({ type: e.type, actor: `worker:${workerId}`, tenant, data: { ...e } })),
      );
    });
  }

  /** See {@link PermitStore.checkResume}: read under the rev table's SHARE lock, like a permit. */
  async checkResume(run: RunRecord, actor: string): Promise<Directive | null> {
    return this.#sql.begin(async (tx) => {
      const [, active] = await Promise.all([shareRev(tx), this.#active(tx)]);
      const stop = compileRun(active, runIdentity(run)).stop;
      if (stop)
        await appendAudit(tx, [
          {
            type: 'resume.refused',
            actor,
            tenant: run.tenant,
            data: {
              runId: run.runId,
              agent: run.agent,
              directiveId: stop.id,
              level: stop.level,
              scope: stop.scopeText,
            },
          } satisfies AuditEventOf<'resume.refused'>,
        ]);
      return stop;
    });
  }

  /** See {@link PermitStore.recordHalted}. */
  async recordHalted(
    entries: { tenant: string; runId: string; directiveId: string; at: string }[],
  ): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map((e) => ({
      tenant: e.tenant,
      run_id: e.runId,
      directive_id: e.directiveId,
      at: e.at,
    }));
    await this.#sql`INSERT INTO halted_runs (tenant, run_id, directive_id, at)
      SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::text::json)
        AS x(tenant text, run_id text, directive_id text, at text)
      ON CONFLICT DO NOTHING`;
  }

  /** See {@link PermitStore.ledger}. */
  async ledger(tenant: string, runId: string): Promise<{ effects: LedgerEntry[]; events: JournalRow[] }> {
    const [effects, events] = await Promise.all([
      this.#sql<PgPermitRow[]>`SELECT * FROM permits WHERE tenant = ${tenant} AND run_id = ${runId}
        ORDER BY intended_at, id`,
      this.#sql<(JournalDbRow & { seq: string })[]>`SELECT * FROM journal
        WHERE tenant = ${tenant} AND run_id = ${runId} ORDER BY seq`,
    ]);
    return {
      effects: effects.map((r) => toLedger(permitRow(r))),
      events: events.map((r) => toJournal({ ...r, seq: Number(r.seq) })),
    };
  }

  effectsPage: PermitStore['effectsPage'] = (q) => ledgers.effectsPage(this.#sql, q);
  eventsPage: PermitStore['eventsPage'] = (q) => ledgers.eventsPage(this.#sql, q);
  compensationsPage: PermitStore['compensationsPage'] = (q) => ledgers.compensationsPage(this.#sql, q);
  permittedFrom: PermitStore['permittedFrom'] = (q) => ledgers.permittedFrom(this.#sql, q);
}
