import { z } from 'zod';
import { id } from './parts.ts';

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Which local rule halted a run inside the SDK (see {@link RunLimitsSchema}). */
export const LocalRuleSchema = z.enum(['loop_length', 'cost_cap']);

/** A run halted by the SDK itself, because it crossed a local limit. */
export const LocalHaltSchema = z.strictObject({
  rule: LocalRuleSchema,
  /** The value that crossed the limit (steps, or cost in USD). */
  value: z.number(),
  limit: z.number(),
});

/**
 * One run's counters on one worker, cumulative since the run started on that worker. Sending
 * totals rather than increments makes a batch idempotent: a retried or lost batch neither
 * double-counts nor loses anything, the next one carries the totals again.
 */
export const RunTelemetrySchema = z.strictObject({
  runId: id,
  /** `run.step()` calls. */
  steps: count,
  /** Tokens reported with `run.recordCost`. */
  tokens: z.number().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Spend reported with `run.recordCost`, in USD. */
  costUsd: z.number().min(0).max(1e12),
  /** Effects whose function ran and settled (landed or failed), aborted ones excluded. */
  toolCalls: count,
  /** Effects whose function failed (threw or rejected) without having been aborted: tool errors. */
  toolErrors: count,
  /** Effects refused because their capability is not granted to the run, revoked, read-only or isolated. */
  authDenials: count,
  /**
   * The part of `authDenials` a directive in force explains (a degrade that revoked the tool or
   * made the run read-only, an isolate): the operator's own choice, not the agent overreaching.
   * Optional on the wire (older workers), 0 when absent.
   */
  revokedDenials: count.optional(),
  /** Memory writes refused because they violate the memory schema. */
  schemaViolations: count,
  /** `run.flagAnomaly` calls. */
  anomalies: count,
  /** Highest anomaly score flagged so far (0 when none). */
  anomalyScore: z.number().min(-1e9).max(1e9),
  /** Detail of the last anomaly flagged, or `null`. */
  anomalyDetail: z.string().max(1000).nullable(),
  /** Set once the SDK halted the run on a local limit. */
  localHalt: LocalHaltSchema.nullable(),
});

/** Body of `POST /v1/telemetry`: the runs whose counters changed since the last batch. Unknown fields are rejected. */
export const TelemetryBatchSchema = z.strictObject({
  workerId: id,
  runs: z.array(RunTelemetrySchema).max(1000),
});

/**
 * Limits the SDK enforces on each run by itself, without a round trip: more steps than
 * `maxSteps`, or more spend than `maxCostUsd`, halts the run locally. `null`: no local limit.
 */
export const RunLimitsSchema = z.object({
  maxSteps: z.number().min(0).nullable(),
  maxCostUsd: z.number().min(0).nullable(),
});

/**
 * The answer to a heartbeat (`POST /v1/workers/{id}/heartbeat`, 200): how often the control
 * plane's deadman expects this worker's heartbeats, and the run limits for its agent.
 */
export const WorkerSettingsSchema = z.object({
  heartbeatMs: z.number().positive(),
  limits: RunLimitsSchema,
});
