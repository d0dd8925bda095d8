import type { EffectStatus, LedgerEntry, Release } from '@killpath/protocol';
import type { LedgerRow } from '../audit/ledger.ts';
import type { CompensationEntry, JournalRow, LedgerSummary, PermittedEffect, RunRecord } from './store.ts';

/**
 * The rows of the `permits`, `runs` and `journal` tables and how each becomes the store's record:
 * written once here for both backends' effect writes (`sqlite-effects.ts`, `pg/pg-effects.ts`),
 * operator's lists (`sqlite-ledger.ts`, `pg/pg-ledger.ts`) and the store's run reads.
 */

/**
 * A row of `permits` (one write or irreversible effect's intent and outcome): the columns the
 * ledger's digest is taken over ({@link LedgerRow}), with the class and status narrowed.
 */
export interface PermitRow extends LedgerRow {
  class: 'write' | 'irreversible';
  status: EffectStatus;
}

/** A permit row as a ledger entry (the columns a ledger entry shows). */
export function toLedger(r: PermitRow): LedgerEntry {
  return {
    permitId: r.id,
    runId: r.run_id,
    capability: r.capability,
    class: r.class,
    idempotencyKey: r.idempotency_key,
    argsDigest: r.args_digest,
    status: r.status,
    compensate: r.compensate === null ? null : (JSON.parse(r.compensate) as Record<string, unknown>),
    intendedAt: r.intended_at,
    settledAt: r.settled_at,
    afterAbort: r.after_abort === 1,
    error: r.error,
  };
}

/** A permit row, with the halt that covers its run, as an entry of the compensations list. */
export function toCompensation(r: PermitRow & { halted_by: string; halted_at: string }): CompensationEntry {
  return {
    ...toLedger(r),
    tenant: r.tenant,
    agent: r.agent,
    haltedBy: r.halted_by,
    haltedAt: r.halted_at,
  };
}

/** A permit row as a permitted effect (the record the guarantee-1 check reads). */
export function toPermitted(r: PermitRow): PermittedEffect {
  return {
    ...toLedger(r),
    rev: r.rev,
    tenant: r.tenant,
    agent: r.agent,
    lineage: JSON.parse(r.lineage) as string[],
    features: JSON.parse(r.features) as string[],
    release: r.release === null ? null : (JSON.parse(r.release) as Release),
  };
}

/** The ledger summary from permit counts by status (a count as either driver returns it). */
export function ledgerSummary(
  counts: readonly { status: string; n: number | string | bigint }[],
): LedgerSummary {
  const summary: LedgerSummary = {
    intended: 0,
    landed: 0,
    failed: 0,
    aborted: 0,
    cancelled: 0,
    inDoubt: 0,
    open: 0,
  };
  for (const { status, n: count } of counts) {
    const n = Number(count);
    summary.intended += n;
    if (status === 'landed') summary.landed += n;
    else if (status === 'failed') summary.failed += n;
    else if (status === 'aborted') summary.aborted += n;
    else if (status === 'cancelled') summary.cancelled += n;
    else if (status === 'in_doubt') summary.inDoubt += n;
    else summary.open += n;
  }
  return summary;
}

/** JSON text parsed; text that no longer parses (altered on disk) stays distinct as `{ unparseable }`. */
function parsed(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { unparseable: text };
  }
}

/** A row of `runs`. */
export interface RunRow {
  run_id: string;
  tenant: string;
  agent: string;
  parent_run_id: string | null;
  lineage: string;
  features: string;
  worker_id: string;
  started_at: string;
}

/** A run row as the store's run record (lineage and features are stored as JSON arrays). */
export function toRun(r: RunRow): RunRecord {
  return {
    runId: r.run_id,
    tenant: r.tenant,
    agent: r.agent,
    parentRunId: r.parent_run_id,
    lineage: parsed(r.lineage) as string[],
    features: parsed(r.features) as string[],
    workerId: r.worker_id,
    startedAt: r.started_at,
  };
}

/** A row of `journal` (an event an agent reported about one of its runs). */
export interface JournalDbRow {
  seq: number;
  run_id: string | null;
  worker_id: string;
  type: string;
  at: string;
  data: string;
}

/** A journal row as the store's journal record (`data` is stored as JSON). */
export function toJournal(r: JournalDbRow): JournalRow {
  return {
    seq: r.seq,
    runId: r.run_id,
    workerId: r.worker_id,
    type: r.type,
    at: r.at,
    data: JSON.parse(r.data) as Record<string, unknown>,
  };
}
