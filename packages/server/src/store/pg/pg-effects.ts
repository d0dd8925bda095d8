/**
 * Permits and the effect journal on PostgreSQL ({@link PermitStore}'s writes): the same records,
 * decisions and audit as SQLite (`sqlite-effects.ts`), decided by the backends' shared rule
 * (`permit-decision.ts`, which calls `protocol`'s coverage rule), stored here under the locks
 * that make it hold across replicas.
 *
 * Guarantee 1 across replicas rests on the permit transaction's locks: see `pg-grants.ts`.
 */
import type { Directive, JournalEvent, LedgerEntry, PermitOutcome } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import { compileRun, refusingDirective } from '@killpath/protocol';
import {
  endedWorkerEvent,
  haltedInCoolOffEvent,
  resumeRefusedEvent,
  settledAbortedEvent,
} from '../effect-events.ts';
import { permitResponse, rowIdentity, runIdentity } from '../permit-decision.ts';
import { toJournal, toLedger, type JournalDbRow, type PermitRow } from '../sqlite-rows.ts';
import type { JournalRow, PermitDecision, PermitGrant, PermitStore, RunRecord } from '../store.ts';
import type { Sql, Tx } from './connect.ts';
import { appendAudit, shareRev } from './tx.ts';
import * as ledgers from './pg-ledger.ts';
import { committed, grantPermits, isRequestError } from './pg-grants.ts';
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

  /** See {@link PermitStore.grantPermits} and `pg-grants.ts`. */
  grantPermits(requests: PermitGrant[]): Promise<PermitDecision[]> {
    return grantPermits(this.#sql, this.#active, requests);
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
          haltedInCoolOffEvent(row, stop),
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
      if (outcome.status === 'aborted') events.push(settledAbortedEvent(row, outcome));
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
        ...changed.map((r) => endedWorkerEvent(r, r.status === 'in_doubt', reason)),
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
      if (stop) await appendAudit(tx, [resumeRefusedEvent(run, actor, stop)]);
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
