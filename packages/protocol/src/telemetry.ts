/**
 * Telemetry a worker sends about its runs (`POST /v1/telemetry`), which the control plane's
 * supervisor evaluates its policy rules against, and the settings the control plane answers
 * heartbeats with (the deadman's heartbeat interval and the run limits the SDK enforces locally).
 */

import type { z } from 'zod';
import type {
  LocalHaltSchema,
  LocalRuleSchema,
  RunLimitsSchema,
  RunTelemetrySchema,
  TelemetryBatchSchema,
  WorkerSettingsSchema,
} from './schemas/telemetry.ts';

/** Which local rule halted a run inside the SDK (see {@link RunLimits}). */
export type LocalRule = z.infer<typeof LocalRuleSchema>;

/** A run halted by the SDK itself, because it crossed a local limit (see {@link LocalHaltSchema}). */
export type LocalHalt = z.infer<typeof LocalHaltSchema>;

/** One run's counters on one worker, cumulative since the run started on that worker (see {@link RunTelemetrySchema}). */
export type RunTelemetry = z.infer<typeof RunTelemetrySchema>;

/** Body of `POST /v1/telemetry`: the runs whose counters changed since the last batch. */
export type TelemetryBatch = z.infer<typeof TelemetryBatchSchema>;

/**
 * Limits the SDK enforces on each run by itself, without a round trip (and so also when the
 * control plane is unreachable): more steps than `maxSteps`, or more spend than `maxCostUsd`,
 * halts the run locally. `null`: no local limit.
 */
export type RunLimits = z.infer<typeof RunLimitsSchema>;

/**
 * The answer to a heartbeat (`POST /v1/workers/{id}/heartbeat`, 200): how often the control
 * plane's deadman expects this worker's heartbeats, and the run limits for its agent. A worker
 * beats at least this often (the smaller of this and its own setting).
 */
export type WorkerSettings = z.infer<typeof WorkerSettingsSchema>;
