import type { DatabaseSync, StatementSync } from 'node:sqlite';
import {
  compileRun,
  refusingDirective,
  type Directive,
  type JournalEvent,
  type LedgerEntry,
  type PermitOutcome,
} from '@killpath/protocol';
import type { AuditEvent } from '../audit/chain.ts';
import {
  endedWorkerEvent,
  haltedInCoolOffEvent,
  resumeRefusedEvent,
  settledAbortedEvent,
} from './effect-events.ts';
import { decidePermit, permitResponse, rowIdentity, runIdentity } from './permit-decision.ts';
import { toJournal, toLedger, type JournalDbRow, type PermitRow } from './sqlite-rows.ts';
import type { JournalRow, PermitDecision, PermitGrant, RunRecord } from './store.ts';

/** Tables of the effect journal (schema version 2). */
export const EFFECTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS permits (
  id TEXT PRIMARY KEY,
  rev INTEGER NOT NULL,
  run_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  capability TEXT NOT NULL,
  class TEXT NOT NULL,
  idempotency_key TEXT,
  args_digest TEXT,
  compensate TEXT,
  status TEXT NOT NULL,
  cool_off_ms INTEGER NOT NULL DEFAULT 0,
  confirm_after TEXT,
  lineage TEXT NOT NULL,
  features TEXT NOT NULL,
  release TEXT,
  result TEXT,
  error TEXT,
  after_abort INTEGER NOT NULL DEFAULT 0,
  intended_at TEXT NOT NULL,
  settled_at TEXT,
  UNIQUE (tenant, run_id, idempotency_key)
);
-- A run's permits are found by the UNIQUE index's (tenant, run_id) prefix. A second index on
-- just those columns, as before, cost every grant another B-tree insert and a page per run in
-- each group commit for no query it served better.
DROP INDEX IF EXISTS permits_run;
CREATE TABLE IF NOT EXISTS journal (
  seq INTEGER PRIMARY KEY,
  run_id TEXT,
  tenant TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  type TEXT NOT NULL,
  at TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_run ON journal (run_id);
CREATE TABLE IF NOT EXISTS halted_runs (
  tenant TEXT NOT NULL,
  run_id TEXT NOT NULL,
  directive_id TEXT NOT NULL,
  at TEXT NOT NULL,
  PRIMARY KEY (tenant, run_id, directive_id)
);
`;

/** What the effect functions need from the store: its connection, transactions, audit and switchboard. */
export interface EffectsContext {
  db: DatabaseSync;
  /** The statement for `sql`, prepared once per connection (a permit's hot path prepares nothing). */
  stmt(sql: string): StatementSync;
  tx<T>(fn: () => T): Promise<T>;
  audit(events: AuditEvent[]): void;
  /**
   * Notes permit rows this transaction wrote, as they stand after the write: the group commit
   * appends one `ledger.committed` record for them (`audit/ledger.ts`). Every write to `permits`
   * must call it, or verification finds the row changed.
   */
  ledger(rows: PermitRow[]): void;
  rev(): number;
  activeDirectives(): Directive[];
}

/** See {@link Store.grantPermits}. */
export function grantPermits(ctx: EffectsContext, requests: PermitGrant[]): Promise<PermitDecision[]> {
  return ctx.tx(() => {
    const rev = ctx.rev();
    const active = ctx.activeDirectives();
    const byKey = ctx.stmt('SELECT * FROM permits WHERE tenant = ? AND run_id = ? AND idempotency_key = ?');
    const insert =
      ctx.stmt(`INSERT INTO permits (id, rev, run_id, tenant, agent, worker_id, capability, class, idempotency_key,
      args_digest, compensate, status, cool_off_ms, confirm_after, lineage, features, release, intended_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const runOwner = ctx.stmt('SELECT agent, lineage, features FROM runs WHERE tenant = ? AND run_id = ?');
    const register = ctx.stmt(`INSERT OR IGNORE INTO runs
      (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);

    const decide = (q: PermitGrant, rows: PermitRow[]): PermitDecision => {
      const owner = runOwner.get(q.tenant, q.runId) as
        { agent: string; lineage: string; features: string } | undefined;
      const prior =
        q.idempotencyKey === null
          ? undefined
          : (byKey.get(q.tenant, q.runId, q.idempotencyKey) as PermitRow | undefined);
      // The rule is the backends' shared one; this backend reads its facts and writes what it says.
      const step = decidePermit(
        q,
        {
          owner: owner?.agent ?? null,
          ...(owner ? { stored: { lineage: owner.lineage, features: owner.features } } : {}),
          prior: prior ?? null,
        },
        rev,
        active,
        q.grantedAt ?? new Date(),
      );
      // The run is the asker's: registered to it, or registered to it now (first use).
      if (step.register)
        register.run(
          q.runId,
          q.tenant,
          q.agent,
          q.lineage.at(-1) ?? null,
          JSON.stringify(q.lineage),
          JSON.stringify(q.features),
          q.workerId,
          new Date().toISOString(),
        );
      if (step.doubt !== null) {
        ctx
          .stmt(`UPDATE permits SET status = 'in_doubt' WHERE id = ? AND status = 'granted'`)
          .run(step.doubt);
        rows.push({ ...prior!, status: 'in_doubt' });
      }
      const row = step.row;
      if (row !== null) {
        insert.run(
          row.id,
          row.rev,
          row.run_id,
          row.tenant,
          row.agent,
          row.worker_id,
          row.capability,
          row.class,
          row.idempotency_key,
          row.args_digest,
          row.compensate,
          row.status,
          row.cool_off_ms,
          row.confirm_after,
          row.lineage,
          row.features,
          row.release,
          row.intended_at,
        );
      }
      // Its intent (and a prior moved to in doubt) is in the audit through the group commit's
      // `ledger.committed` record.
      if (row !== null) rows.push(row);
      return step.decision;
    };

    const out: PermitDecision[] = [];
    const written: PermitRow[] = [];
    const savepoint = ctx.stmt('SAVEPOINT permit');
    const release = ctx.stmt('RELEASE permit');
    for (const q of requests) {
      // One request's failure rolls back that request alone: the batch shares a transaction, not a fate.
      savepoint.run();
      const mine: PermitRow[] = [];
      try {
        out.push(decide(q, mine));
        release.run();
        written.push(...mine);
      } catch (err) {
        ctx.db.exec('ROLLBACK TO permit; RELEASE permit');
        out.push({ kind: 'failed', message: err instanceof Error ? err.message : String(err) });
      }
    }
    ctx.ledger(written);
    return out;
  });
}

/** Who may act on a permit: the agent it was granted to, of its tenant. */
export interface PermitOwner {
  tenant: string;
  agent: string;
}

/** The permit `id` when it was granted to `owner`; another tenant's or agent's is not found. */
function ownPermit(ctx: EffectsContext, id: string, owner: PermitOwner): PermitRow | undefined {
  return ctx
    .stmt('SELECT * FROM permits WHERE id = ? AND tenant = ? AND agent = ?')
    .get(id, owner.tenant, owner.agent) as PermitRow | undefined;
}

/** See {@link Store.confirmPermit}. */
export function confirmPermit(
  ctx: EffectsContext,
  id: string,
  owner: PermitOwner,
  now: Date,
): Promise<PermitDecision> {
  return ctx.tx(() => {
    const row = ownPermit(ctx, id, owner);
    if (!row) return { kind: 'not_found' };
    if (row.status !== 'cooling_off')
      return { kind: 'conflict', message: `permit ${id} is ${row.status}, not cooling off` };
    if (row.confirm_after !== null && now.getTime() < Date.parse(row.confirm_after)) {
      return { kind: 'conflict', message: `permit ${id} is cooling off until ${row.confirm_after}` };
    }
    const run = rowIdentity(row);
    const stop = refusingDirective(compileRun(ctx.activeDirectives(), run), row.capability, row.class);
    if (stop) {
      const error = `halted during cool-off by ${stop.id}`;
      ctx.db
        .prepare(`UPDATE permits SET status = 'cancelled', settled_at = ?, error = ? WHERE id = ?`)
        .run(now.toISOString(), error, id);
      ctx.ledger([{ ...row, status: 'cancelled', settled_at: now.toISOString(), error }]);
      ctx.audit([haltedInCoolOffEvent(row, stop)]);
      return { kind: 'halted', directive: stop, rev: ctx.rev() };
    }
    const confirmed: PermitRow = { ...row, status: 'granted', rev: ctx.rev() };
    ctx.db.prepare(`UPDATE permits SET status = 'granted', rev = ? WHERE id = ?`).run(confirmed.rev, id);
    ctx.ledger([confirmed]);
    return { kind: 'granted', response: permitResponse(confirmed, false) };
  });
}

/** See {@link Store.settlePermit}. */
export function settlePermit(
  ctx: EffectsContext,
  id: string,
  owner: PermitOwner,
  outcome: PermitOutcome,
): Promise<LedgerEntry | null> {
  return ctx.tx(() => {
    const row = ownPermit(ctx, id, owner);
    if (!row) return null;
    const open =
      row.status === 'granted' ||
      row.status === 'in_doubt' ||
      (row.status === 'cooling_off' && outcome.status === 'aborted');
    if (!open) return toLedger(row); // already settled: the first outcome wins
    const now = new Date().toISOString();
    const result =
      outcome.status === 'landed' && outcome.result !== undefined ? JSON.stringify(outcome.result) : null;
    const error = outcome.error ?? null;
    const afterAbort = outcome.afterAbort ? 1 : 0;
    ctx
      .stmt(
        'UPDATE permits SET status = ?, result = ?, error = ?, after_abort = ?, settled_at = ? WHERE id = ?',
      )
      .run(outcome.status, result, error, afterAbort, now, id);
    const settled: PermitRow = {
      ...row,
      status: outcome.status,
      result,
      error,
      after_abort: afterAbort,
      settled_at: now,
    };
    // The outcome is in the audit through the group commit's `ledger.committed` record; an
    // abort (a stop reached an effect in flight) also keeps a record of its own, which the
    // operator's status lists.
    ctx.ledger([settled]);
    if (outcome.status !== 'aborted') return toLedger(settled);
    ctx.audit([settledAbortedEvent(row, outcome)]);
    return toLedger(settled);
  });
}

/** See {@link Store.markInDoubt}. */
export function markInDoubt(
  ctx: EffectsContext,
  owner: { tenant: string; agent: string },
  workerIds: string[],
  reason: string,
): Promise<LedgerEntry[]> {
  if (workerIds.length === 0) return Promise.resolve([]);
  return ctx.tx(() => {
    const marks = workerIds.map(() => '?').join(', ');
    const rows = ctx.db
      .prepare(
        // In the order they were granted, as the PostgreSQL store answers.
        `SELECT * FROM permits WHERE tenant = ? AND agent = ? AND worker_id IN (${marks}) AND status IN ('granted', 'cooling_off') ORDER BY rowid`,
      )
      .all(owner.tenant, owner.agent, ...workerIds) as unknown as PermitRow[];
    if (rows.length === 0) return [];
    const now = new Date().toISOString();
    // A granted effect may have run: nobody knows. A cooling-off one was never confirmed, so it never ran.
    const inDoubt = ctx.db.prepare(
      `UPDATE permits SET status = 'in_doubt', error = ?, settled_at = ? WHERE id = ? AND status = 'granted'`,
    );
    const cancelled = ctx.db.prepare(
      `UPDATE permits SET status = 'cancelled', error = ?, settled_at = ? WHERE id = ? AND status = 'cooling_off'`,
    );
    for (const r of rows) (r.status === 'granted' ? inDoubt : cancelled).run(reason, now, r.id);
    ctx.audit(rows.map((r) => endedWorkerEvent(r, r.status === 'granted', reason)));
    const after = rows.map(
      (r) => ctx.db.prepare('SELECT * FROM permits WHERE id = ?').get(r.id) as unknown as PermitRow,
    );
    ctx.ledger(after);
    return after.map(toLedger);
  });
}

/** See {@link Store.appendJournal}. */
export function appendJournal(
  ctx: EffectsContext,
  tenant: string,
  workerId: string,
  events: JournalEvent[],
): Promise<void> {
  if (events.length === 0) return Promise.resolve();
  return ctx.tx(() => {
    const insert = ctx.db.prepare(
      'INSERT INTO journal (run_id, tenant, worker_id, type, at, data) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const at = new Date().toISOString();
    for (const e of events) insert.run(e.runId ?? null, tenant, workerId, e.type, at, JSON.stringify(e));
    ctx.audit(events.map((e) => ({ type: e.type, actor: `worker:${workerId}`, tenant, data: { ...e } })));
  });
}

/** See {@link Store.checkResume}. */
export function checkResume(ctx: EffectsContext, run: RunRecord, actor: string): Promise<Directive | null> {
  return ctx.tx(() => {
    const stop = compileRun(ctx.activeDirectives(), runIdentity(run)).stop;
    if (stop) ctx.audit([resumeRefusedEvent(run, actor, stop)]);
    return stop;
  });
}

/** See {@link Store.recordHalted}. */
export function recordHalted(
  ctx: EffectsContext,
  entries: { tenant: string; runId: string; directiveId: string; at: string }[],
): Promise<void> {
  if (entries.length === 0) return Promise.resolve();
  return ctx.tx(() => {
    const insert = ctx.db.prepare(
      'INSERT OR IGNORE INTO halted_runs (tenant, run_id, directive_id, at) VALUES (?, ?, ?, ?)',
    );
    for (const e of entries) insert.run(e.tenant, e.runId, e.directiveId, e.at);
  });
}

/** See {@link Store.ledger}. */
export function ledger(
  ctx: EffectsContext,
  tenant: string,
  runId: string,
): { effects: LedgerEntry[]; events: JournalRow[] } {
  const effects = (
    ctx.db
      .prepare('SELECT * FROM permits WHERE tenant = ? AND run_id = ? ORDER BY intended_at, id')
      .all(tenant, runId) as unknown as PermitRow[]
  ).map(toLedger);
  const events = (
    ctx.db
      .prepare('SELECT * FROM journal WHERE tenant = ? AND run_id = ? ORDER BY seq')
      .all(tenant, runId) as unknown as JournalDbRow[]
  ).map(toJournal);
  return { effects, events };
}
