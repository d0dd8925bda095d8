/**
 * Telemetry a worker sends about its runs (`POST /v1/telemetry`), which the control plane's
 * supervisor evaluates its policy rules against, and the settings the control plane answers
 * heartbeats with (the deadman's heartbeat interval and the run limits the SDK enforces locally).
 */

/** Which local rule halted a run inside the SDK (see {@link RunLimits}). */
export type LocalRule = 'loop_length' | 'cost_cap';

/** A run halted by the SDK itself, because it crossed a local limit. */
export interface LocalHalt {
  rule: LocalRule;
  /** The value that crossed the limit (steps, or cost in USD). */
  value: number;
  limit: number;
}

/**
 * One run's counters on one worker, cumulative since the run started on that worker. Sending
 * totals rather than increments makes a batch idempotent: a retried or lost batch neither
 * double-counts nor loses anything, the next one carries the totals again.
 */
export interface RunTelemetry {
  runId: string;
  /** `run.step()` calls. */
  steps: number;
  /** Tokens reported with `run.recordCost`. */
  tokens: number;
  /** Spend reported with `run.recordCost`, in USD. */
  costUsd: number;
  /** Effects whose function ran and settled (landed or failed), aborted ones excluded. */
  toolCalls: number;
  /** Effects whose function failed (threw or rejected) without having been aborted: tool errors. */
  toolErrors: number;
  /** Effects refused because their capability is not granted to the run, revoked, read-only or isolated. */
  authDenials: number;
  /**
   * The part of `authDenials` a directive in force explains (a degrade that revoked the tool or
   * made the run read-only, an isolate): the operator's own choice, not the agent overreaching.
   * Optional on the wire (older workers), 0 when absent.
   */
  revokedDenials?: number;
  /** Memory writes refused because they violate the memory schema. */
  schemaViolations: number;
  /** `run.flagAnomaly` calls. */
  anomalies: number;
  /** Highest anomaly score flagged so far (0 when none). */
  anomalyScore: number;
  /** Detail of the last anomaly flagged, or `null`. */
  anomalyDetail: string | null;
  /** Set once the SDK halted the run on a local limit. */
  localHalt: LocalHalt | null;
}

/** Body of `POST /v1/telemetry`: the runs whose counters changed since the last batch. */
export interface TelemetryBatch {
  workerId: string;
  runs: RunTelemetry[];
}

/**
 * Limits the SDK enforces on each run by itself, without a round trip (and so also when the
 * control plane is unreachable): more steps than `maxSteps`, or more spend than `maxCostUsd`,
 * halts the run locally. `null`: no local limit.
 */
export interface RunLimits {
  maxSteps: number | null;
  maxCostUsd: number | null;
}

/**
 * The answer to a heartbeat (`POST /v1/workers/{id}/heartbeat`, 200): how often the control
 * plane's deadman expects this worker's heartbeats, and the run limits for its agent. A worker
 * beats at least this often (the smaller of this and its own setting).
 */
export interface WorkerSettings {
  heartbeatMs: number;
  limits: RunLimits;
}
