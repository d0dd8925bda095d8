import type { z } from 'zod';
import type {
  JournalBatchSchema,
  JournalEventSchema,
  OutcomeBatchSchema,
  OutcomeReportSchema,
  EffectStatusSchema,
  LedgerEntrySchema,
  PermitBatchSchema,
  PermitResponseSchema,
  PermitSchema,
  PermitOutcomeSchema,
  PermitRequestSchema,
} from './schemas/permits.ts';
import type { ResumeRequestSchema } from './schemas/reports.ts';

/**
 * Body of `POST /v1/permits`: the intent record of one write or irreversible effect, written
 * before the effect runs. The control plane grants it only if no halt or kill covering the run
 * and capability is on the switchboard, in the same serialised transaction as the grant.
 */
export type PermitRequest = z.infer<typeof PermitRequestSchema>;

/** Final or current state of a permitted effect. */
export type EffectStatus = z.infer<typeof EffectStatusSchema>;

/** A granted (or cooling-off) permit. */
export type Permit = z.infer<typeof PermitSchema>;

/**
 * Answer of `POST /v1/permits` (201 for a new permit, 200 for a replay of an idempotency key),
 * and of `POST /v1/permits/{id}/confirm` (empty body). Only a `granted` permit (or a
 * `cooling_off` one followed by a granted confirm) may run the effect.
 * On a replay whose effect already landed, `result` is what the effect returned then; the SDK
 * returns it without running the effect again. A replay whose effect has no outcome (the worker
 * died mid-effect) is refused with code `conflict`: at most once.
 */
export type PermitResponse = z.infer<typeof PermitResponseSchema>;

/**
 * Body of `POST /v1/permits/{id}/outcome`. A permit the worker never used (aborted before the
 * effect started, or a cooling-off permit cancelled by a halt it observed) is reported
 * `aborted` with `afterAbort: false`. The first outcome wins.
 */
export type PermitOutcome = z.infer<typeof PermitOutcomeSchema>;

/**
 * Body of `POST /v1/permits/batch`: several permit requests sent together (an SDK coalesces the
 * requests its runs make in one event-loop turn). Each is decided exactly as `POST /v1/permits`
 * would decide it; they share one durable commit at the control plane.
 */
export type PermitBatch = z.infer<typeof PermitBatchSchema>;

/**
 * One answer of a batch, in request order: the HTTP status and body the single-request route
 * would have answered (a `PermitResponse` on 200/201, the wire error shape otherwise).
 */
export interface BatchAnswer {
  status: number;
  body?: unknown;
}

/** Answer of `POST /v1/permits/batch` and `POST /v1/permits/outcomes`: one per item, in order. */
export interface BatchAnswers {
  answers: BatchAnswer[];
}

/** One outcome of `POST /v1/permits/outcomes`: the permit it closes and how its effect ended. */
export type OutcomeReport = z.infer<typeof OutcomeReportSchema>;

/** Body of `POST /v1/permits/outcomes`: outcomes reported together (coalesced by the SDK). */
export type OutcomeBatch = z.infer<typeof OutcomeBatchSchema>;

/** A run-scoped event the SDK journals to the control plane (`POST /v1/journal`). */
export type JournalEvent = z.infer<typeof JournalEventSchema>;

/** Body of `POST /v1/journal`. */
export type JournalBatch = z.infer<typeof JournalBatchSchema>;

/** Body of `POST /v1/runs/{id}/resume`: a durable agent asking whether it may resume a run. */
export type ResumeRequest = z.infer<typeof ResumeRequestSchema>;

/** One effect in a run's ledger (`GET /v1/runs/{id}/journal`). */
export type LedgerEntry = z.infer<typeof LedgerEntrySchema>;
