import type { AuditEventOf, Directive, PermitOutcome } from '@killpath/protocol';
import type { AuditEvent } from '../audit/chain.ts';
import type { PermitRow } from './sqlite-rows.ts';
import type { RunRecord } from './store.ts';

/**
 * The audit events of the effect journal, built once for every backend (`sqlite-effects.ts`,
 * `pg/pg-effects.ts`): a backend decides where and when it appends them, never what they say.
 */

/** The permit columns an effect's audit event names. */
type PermitFacts = Pick<PermitRow, 'id' | 'worker_id' | 'tenant' | 'run_id' | 'capability' | 'class'>;

/** Who an effect's event is by: the worker the permit was granted to, in its tenant. */
function byWorker(row: PermitFacts): { actor: string; tenant: string } {
  return { actor: `worker:${row.worker_id}`, tenant: row.tenant };
}

/** The permit an effect's event is about. */
function permitData(
  row: PermitFacts,
): Pick<AuditEventOf<'effect.aborted'>['data'], 'permitId' | 'runId' | 'capability' | 'class'> {
  return { permitId: row.id, runId: row.run_id, capability: row.capability, class: row.class };
}

/** `effect.aborted` for a cooling-off permit cancelled because directive `stop` now covers it. */
export function haltedInCoolOffEvent(row: PermitFacts, stop: Directive): AuditEventOf<'effect.aborted'> {
  return {
    type: 'effect.aborted',
    ...byWorker(row),
    data: {
      ...permitData(row),
      reason: 'halted during cool-off',
      directiveId: stop.id,
    },
  };
}

/**
 * `effect.aborted` for a permit whose effect the agent settled as aborted (a stop reached it in
 * flight). Its payload (no `reason`) is not the cool-off one's, so it is an untyped event.
 */
export function settledAbortedEvent(
  row: PermitFacts & Pick<PermitRow, 'idempotency_key'>,
  outcome: PermitOutcome,
): AuditEvent {
  return {
    type: 'effect.aborted',
    ...byWorker(row),
    data: {
      ...permitData(row),
      idempotencyKey: row.idempotency_key,
      afterAbort: outcome.afterAbort ?? false,
      ...(outcome.error ? { error: outcome.error } : {}),
    },
  };
}

/**
 * `effect.in_doubt` (the permit was granted: its effect may have run, nobody knows) or
 * `effect.cancelled` (it was cooling off: never confirmed, so it never ran) for a permit of a
 * worker that ended, for `reason`.
 */
export function endedWorkerEvent(
  row: PermitFacts & Pick<PermitRow, 'idempotency_key'>,
  inDoubt: boolean,
  reason: string,
): AuditEvent {
  return {
    type: inDoubt ? 'effect.in_doubt' : 'effect.cancelled',
    ...byWorker(row),
    data: {
      ...permitData(row),
      idempotencyKey: row.idempotency_key,
      reason,
    },
  };
}

/** `resume.refused`: `actor` asked to resume `run`, which directive `stop` still halts. */
export function resumeRefusedEvent(
  run: RunRecord,
  actor: string,
  stop: Directive,
): AuditEventOf<'resume.refused'> {
  return {
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
  };
}
