import { z } from 'zod';
import { EFFECT_CLASSES } from '../levels.ts';
import { ReleaseSchema, capability, count, directiveRef, id, json } from './parts.ts';

/** Most items in one `POST /v1/permits/batch` or `POST /v1/permits/outcomes`. */
export const MAX_BATCH = 256;

/** A class of effect that needs a permit: `write` or `irreversible` (reads never ask). */
export const PermittedClassSchema = z.enum(['write', 'irreversible']);

/**
 * Body of `POST /v1/permits`: a worker asks the control plane, in its own transaction with the
 * switchboard, whether a write or irreversible effect may run.
 */
export const PermitRequestSchema = z.strictObject({
  workerId: id,
  runId: id,
  lineage: z.array(id).max(256),
  features: z.array(id).max(256),
  release: ReleaseSchema.optional(),
  capability,
  class: PermittedClassSchema,
  /** Replays of the same key answer the same permit (at most once). */
  idempotencyKey: z.string().min(1).max(256).nullable(),
  /** SHA-256 (hex) of the effect's canonical arguments. */
  argsDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex digest')
    .nullable(),
  /** What would undo the effect, recorded for the compensations list. */
  compensate: json.nullable(),
  /**
   * The switchboard rev the worker had applied when it asked. A request asked before the worker
   * observed a stop (and only delivered after its halted report) is no sign that it ignores the
   * stop; one asked after is. Omitted by old workers: then every request after a report counts.
   */
  seenRev: count.optional(),
});

/** Body of `POST /v1/permits/{id}/outcome`: how the permitted effect ended. */
export const PermitOutcomeSchema = z.strictObject({
  status: z.enum(['landed', 'failed', 'aborted']),
  result: z.unknown().optional(),
  error: z.string().max(4000).optional(),
  /** The effect completed although its abort was requested (it could not be stopped). */
  afterAbort: z.boolean().optional(),
});

/**
 * Body of `POST /v1/permits/batch`: several permit requests sent together (an SDK coalesces the
 * requests its runs make in one event-loop turn). Each is decided exactly as `POST /v1/permits`
 * would decide it; they share one durable commit at the control plane.
 */
export const PermitBatchSchema = z.strictObject({
  requests: z.array(PermitRequestSchema).min(1).max(MAX_BATCH),
});

/** One outcome of `POST /v1/permits/outcomes`. */
export const OutcomeReportSchema = PermitOutcomeSchema.extend({ permitId: id });

/** Body of `POST /v1/permits/outcomes`: outcomes reported together. */
export const OutcomeBatchSchema = z.strictObject({
  outcomes: z.array(OutcomeReportSchema).min(1).max(MAX_BATCH),
});

const effectClass = z.enum(EFFECT_CLASSES);

/** One event of a worker's journal: what a halt did to timers, queues, memory and in-flight effects. */
export const JournalEventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('timer.cancelled'),
    runId: id,
    timer: z.enum(['timeout', 'interval', 'retry']),
    label: z.string().max(200).nullable(),
    dueAt: z.string().max(40),
    directiveId: directiveRef.nullable(),
  }),
  z.strictObject({
    type: z.literal('queue.discarded'),
    runId: id.nullable(),
    queue: z.string().max(200),
    taskId: z.string().max(200),
    payload: z.unknown(),
    directiveId: directiveRef.nullable(),
  }),
  z.strictObject({
    type: z.literal('queue.drained'),
    runId: id.nullable(),
    queue: z.string().max(200),
    taskId: z.string().max(200),
    outcome: z.enum(['completed', 'failed']),
    directiveId: directiveRef.nullable(),
  }),
  z.strictObject({
    type: z.literal('memory.reverted'),
    runId: id,
    keys: z.array(z.string().max(500)).max(10_000),
    directiveId: directiveRef.nullable(),
  }),
  z.strictObject({
    type: z.literal('memory.committed'),
    runId: id,
    keys: z.array(z.string().max(500)).max(10_000),
    directiveId: directiveRef.nullable(),
  }),
  z.strictObject({
    type: z.literal('effect.denied'),
    runId: id,
    capability,
    class: effectClass,
    reason: z.enum(['revoked', 'read_only', 'isolated']),
    directiveId: directiveRef.nullable(),
  }),
  z.strictObject({
    type: z.literal('in_flight_tool_calls.status'),
    runId: id,
    effectId: z.string().max(200),
    permitId: z.string().max(200).nullable(),
    capability,
    class: effectClass,
    status: z.enum(['completed', 'aborted', 'failed']),
    directiveId: directiveRef.nullable(),
  }),
]);

/** Body of `POST /v1/journal`: a worker's journal events, audited in order. */
export const JournalBatchSchema = z.strictObject({
  workerId: id,
  events: z.array(JournalEventSchema).max(5000),
});

/** Final or current state of a permitted effect. */
export const EffectStatusSchema = z.enum([
  'granted',
  'cooling_off',
  'landed',
  'failed',
  'aborted',
  'cancelled',
  'in_doubt',
]);

/** A granted (or cooling-off) permit, as the control plane answers it. */
export const PermitSchema = z.object({
  id: z.string(),
  /** Switchboard rev the grant was checked against. */
  rev: count,
  runId: z.string(),
  capability: z.string(),
  class: PermittedClassSchema,
  idempotencyKey: z.string().nullable(),
  status: EffectStatusSchema,
  /** For irreversible effects: confirm no earlier than this (ISO 8601), then `POST /v1/permits/{id}/confirm`. */
  confirmAfter: z.string().nullable(),
  /** How long an irreversible effect waits before its confirm, in ms (0: none). */
  coolOffMs: z.number().min(0),
});

/**
 * Answer of `POST /v1/permits` (201 for a new permit, 200 for a replay of an idempotency key),
 * and of `POST /v1/permits/{id}/confirm`.
 */
export const PermitResponseSchema = z.object({
  permit: PermitSchema,
  replay: z.boolean(),
  result: z.unknown().optional(),
});

/** One effect in a run's ledger (`GET /v1/runs/{id}/journal`). */
export const LedgerEntrySchema = z.object({
  permitId: z.string(),
  runId: z.string(),
  capability: z.string(),
  class: PermittedClassSchema,
  idempotencyKey: z.string().nullable(),
  argsDigest: z.string().nullable(),
  status: EffectStatusSchema,
  compensate: json.nullable(),
  intendedAt: z.string(),
  settledAt: z.string().nullable(),
  afterAbort: z.boolean(),
  error: z.string().nullable(),
});
