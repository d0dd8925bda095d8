import type { LocalHalt, RunLimits, RunTelemetry, TelemetryBatch, WorkerSettings } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import { errorCode, errorMessage } from './journal.ts';
import { retryAfterMs } from './wire-answers.ts';
import type { JournalSink } from './journal.ts';
import type { Transport } from './transport.ts';

/** A run's telemetry counters, cumulative on this worker. Internal: read them with `run.counters`. */
export class RunCounters {
  steps = 0;
  tokens = 0;
  costUsd = 0;
  toolCalls = 0;
  toolErrors = 0;
  authDenials = 0;
  revokedDenials = 0;
  schemaViolations = 0;
  anomalies = 0;
  anomalyScore = 0;
  anomalyDetail: string | null = null;
  localHalt: LocalHalt | null = null;
  /** Changed since the last batch that included it. */
  dirty = false;
}

/** A snapshot of a run's counters (`run.counters`). */
export type RunCountersSnapshot = Omit<RunTelemetry, 'runId'>;

/** Runs per `POST /v1/telemetry` at most. */
const BATCH = 1000;
/** Longest wait between two attempts while the control plane is unreachable, in ms. */
const MAX_BACKOFF_MS = 5000;

/** Something whose counters are sent: a run's id and counters. */
export interface Counted {
  readonly coverage: { readonly runId: string };
  readonly counters: RunCounters;
}

/**
 * Sends run counters to the control plane in batches (`POST /v1/telemetry`): a run whose
 * counters change is marked (one flag test on the hot path), and every `periodMs` the marked
 * runs' totals go out in one request. Totals, not increments: a failed batch loses nothing, the
 * runs are marked again and the next attempt (with backoff, up to 5 s apart) carries the new
 * totals. One request in flight at a time. Failures are journaled `report.failed`, never thrown.
 */
export class Telemetry {
  private readonly transport: Transport;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly workerId: string;
  private readonly clock: Clock;
  private readonly sink: JournalSink;
  private readonly periodMs: number;
  private marked: Counted[] = [];
  private timer: unknown = null;
  private inFlight = false;
  private failures = 0;
  private closed = false;

  /** @param base the control plane URL without a trailing slash */
  constructor(
    transport: Transport,
    base: string,
    headers: Record<string, string>,
    workerId: string,
    clock: Clock,
    sink: JournalSink,
    periodMs: number,
  ) {
    this.transport = transport;
    this.url = `${base}/v1/telemetry`;
    this.headers = headers;
    this.workerId = workerId;
    this.clock = clock;
    this.sink = sink;
    this.periodMs = periodMs;
  }

  /** The run's counters changed: send them with the next batch. */
  mark(run: Counted): void {
    if (run.counters.dirty || this.closed) return;
    run.counters.dirty = true;
    this.marked.push(run);
    if (this.timer === null && !this.inFlight) this.timer = this.clock.setTimeout(this.flush, this.periodMs);
  }

  /** Sends the marked runs now (the next period's timer is cancelled). */
  readonly flush = (): void => {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight || this.closed || this.marked.length === 0) return;
    const sent = this.marked.splice(0, BATCH);
    const runs: RunTelemetry[] = sent.map((r) => {
      r.counters.dirty = false;
      return snapshot(r.coverage.runId, r.counters);
    });
    const body: TelemetryBatch = { workerId: this.workerId, runs };
    this.inFlight = true;
    let p: Promise<unknown>;
    try {
      p = this.transport.post(this.url, this.headers, body);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => {
        this.inFlight = false;
        this.failures = 0;
        this.rearm(this.periodMs);
      },
      (err: unknown) => {
        this.inFlight = false;
        this.failures += 1;
        try {
          this.sink.record({
            type: 'report.failed',
            report: 'telemetry',
            message: errorMessage(err),
            code: errorCode(err),
            at: this.clock.now(),
          });
        } catch {
          // A throwing sink must not break telemetry.
        }
        const code = errorCode(err);
        // A refused batch (bad request, forbidden) will not get better; anything else is retried,
        // a shed one (overloaded) no sooner than the control plane asked.
        if (code !== null && !['unavailable', 'internal', 'stale', 'overloaded'].includes(code)) return;
        for (const r of sent) this.mark(r);
        if (this.timer !== null) this.clock.clearTimeout(this.timer);
        this.timer = null;
        const backoff = Math.min(MAX_BACKOFF_MS, this.periodMs * 2 ** this.failures);
        this.rearm(Math.max(backoff, retryAfterMs(err) ?? 0));
      },
    );
  };

  /** Stops sending; marked runs are dropped. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.marked = [];
  }

  private rearm(ms: number): void {
    if (this.closed || this.timer !== null || this.marked.length === 0) return;
    this.timer = this.clock.setTimeout(this.flush, ms);
  }
}

/** The wire form of a run's counters. */
export function snapshot(runId: string, c: RunCounters): RunTelemetry {
  return {
    runId,
    steps: c.steps,
    tokens: c.tokens,
    costUsd: c.costUsd,
    toolCalls: c.toolCalls,
    toolErrors: c.toolErrors,
    authDenials: c.authDenials,
    revokedDenials: c.revokedDenials,
    schemaViolations: c.schemaViolations,
    anomalies: c.anomalies,
    anomalyScore: c.anomalyScore,
    anomalyDetail: c.anomalyDetail,
    localHalt: c.localHalt,
  };
}

/** The answer to a heartbeat when it has the {@link WorkerSettings} shape, else `null`. */
export function asWorkerSettings(body: unknown): WorkerSettings | null {
  if (typeof body !== 'object' || body === null) return null;
  const b = body as { heartbeatMs?: unknown; limits?: unknown };
  if (
    typeof b.heartbeatMs !== 'number' ||
    !(b.heartbeatMs > 0) ||
    typeof b.limits !== 'object' ||
    b.limits === null
  )
    return null;
  const l = b.limits as { maxSteps?: unknown; maxCostUsd?: unknown };
  const limit = (v: unknown): number | null =>
    typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
  return {
    heartbeatMs: b.heartbeatMs,
    limits: { maxSteps: limit(l.maxSteps), maxCostUsd: limit(l.maxCostUsd) },
  };
}

/** The stricter of two limits (`null`: none). */
export function stricter(a: RunLimits, b: RunLimits): RunLimits {
  const min = (x: number | null, y: number | null) => (x === null ? y : y === null ? x : Math.min(x, y));
  return { maxSteps: min(a.maxSteps, b.maxSteps), maxCostUsd: min(a.maxCostUsd, b.maxCostUsd) };
}
