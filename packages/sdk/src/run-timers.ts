import { KillpathError } from '@killpath/protocol';
import { wallNow } from './clock.ts';
import { errorCode, errorMessage } from './journal.ts';
import type { TimerKind } from './journal.ts';
import { runStop } from './gate.ts';
import type { RunCore as RunState, RunPartsHost as RunHost } from './run-host.ts';
import { haltedError } from './verdict.ts';
import type { DenyVerdict } from './verdict.ts';

/** Options for `run.retry`. */
export interface RetryOptions {
  /** Attempts in all, the first included; an integer ≥ 1. */
  attempts: number;
  /** Wait before attempt n+1: `initialMs × factor^(n-1)`, at most `maxMs`. `factor` default 2, `maxMs` default 30 000. */
  backoff: { initialMs: number; factor?: number; maxMs?: number };
  /** For the journal (`timer.cancelled`, `timer.fired`). */
  label?: string;
  /**
   * Whether to try again after `err` (attempt `attempt` failed). `halted` never is, whatever this
   * says. Default: everything but `halted`, `conflict`, `invalid_request`, `unauthenticated`
   * and `forbidden`.
   */
  retryOn?: (err: unknown, attempt: number) => boolean;
}

/** A timer bound to a run (`run.setTimeout`, `run.setInterval`). */
export interface RunTimer {
  /** `timeout` or `interval` (`retry` is the journal's name for a retry's wait, never handed out). */
  readonly kind: TimerKind;
  readonly label: string | null;
  /** False once it fired (timeout) or was cancelled. */
  readonly active: boolean;
  /** Cancels it; not journaled (the caller chose to). Idempotent. */
  cancel(): void;
}

/** Codes a retry stops on by default: trying again cannot help, or must not happen (at most once). */
const FINAL = new Set(['halted', 'conflict', 'invalid_request', 'unauthenticated', 'forbidden']);

class Entry implements RunTimer {
  readonly kind: TimerKind;
  readonly label: string | null;
  active = true;
  due = 0;
  handle: unknown = null;
  private readonly owner: RunTimers;
  /** Runs when it falls due (after the gate allowed it). */
  readonly fire: () => void;
  /** Runs when the kill path cancels it: `verdict` null means the run ended. */
  readonly onCancel: ((verdict: DenyVerdict | null) => void) | null;
  readonly everyMs: number | null;

  constructor(
    owner: RunTimers,
    kind: TimerKind,
    label: string | null,
    fire: () => void,
    everyMs: number | null,
    onCancel: ((verdict: DenyVerdict | null) => void) | null,
  ) {
    this.owner = owner;
    this.kind = kind;
    this.label = label;
    this.fire = fire;
    this.everyMs = everyMs;
    this.onCancel = onCancel;
  }

  cancel(): void {
    this.owner.drop(this);
  }
}

/**
 * A run's timers and retry waits, on the client's clock. The client cancels them all,
 * synchronously, when it observes a halt or kill covering the run, when the lease expires and
 * when the run ends; each cancellation is journaled (`timer.cancelled` with when it would have
 * fired). A timer that still falls due while the run is stopped (a race) is cancelled instead of
 * run, so nothing set before a flip fires after it. Internal.
 */
export class RunTimers {
  private readonly host: RunHost;
  private readonly state: RunState;
  private readonly live = new Set<Entry>();

  constructor(host: RunHost, state: RunState) {
    this.host = host;
    this.state = state;
  }

  /** How many timers and retry waits are pending. */
  get size(): number {
    return this.live.size;
  }

  add(kind: 'timeout' | 'interval', fn: () => unknown, ms: number, label: string | null): RunTimer {
    if (typeof fn !== 'function')
      throw new KillpathError('invalid_request', 'timer callback must be a function');
    if (!Number.isFinite(ms) || ms < 0 || (kind === 'interval' && ms <= 0)) {
      throw new KillpathError(
        'invalid_request',
        `${kind} needs a ${kind === 'interval' ? 'positive' : 'non-negative'} number of ms`,
      );
    }
    this.refuseIfStopped(label ?? kind);
    const fire = (): void => {
      this.host.record({
        type: 'timer.fired',
        runId: this.state.coverage.runId,
        timer: kind,
        label,
        at: this.host.clock.now(),
      });
      this.invoke(fn, kind, label);
    };
    const entry = new Entry(this, kind, label, fire, kind === 'interval' ? ms : null, null);
    this.arm(entry, ms);
    return entry;
  }

  retry<T>(fn: (attempt: number) => T | PromiseLike<T>, options: RetryOptions): Promise<T> {
    let plan: { attempts: number; initialMs: number; factor: number; maxMs: number };
    try {
      plan = retryPlan(options);
      if (typeof fn !== 'function') throw new KillpathError('invalid_request', 'retry needs a function');
    } catch (err) {
      return Promise.reject(err);
    }
    const label = options.label ?? null;
    const retryOn = options.retryOn ?? ((err: unknown) => !FINAL.has(errorCode(err) ?? ''));
    return new Promise<T>((resolve, reject) => {
      const attempt = (n: number): void => {
        const stopped = this.stoppedError(label ?? 'retry');
        if (stopped !== null) {
          reject(stopped);
          return;
        }
        let out: T | PromiseLike<T>;
        try {
          out = fn(n);
        } catch (err) {
          out = Promise.reject(err);
        }
        Promise.resolve(out).then(resolve, (err: unknown) => {
          if (n >= plan.attempts || errorCode(err) === 'halted' || !safeRetryOn(retryOn, err, n)) {
            reject(err);
            return;
          }
          const stoppedNow = this.stoppedError(label ?? 'retry');
          if (stoppedNow !== null) {
            reject(stoppedNow);
            return;
          }
          const delay = Math.min(plan.maxMs, plan.initialMs * plan.factor ** (n - 1));
          const entry = new Entry(
            this,
            'retry',
            label,
            () => {
              this.host.record({
                type: 'timer.fired',
                runId: this.state.coverage.runId,
                timer: 'retry',
                label,
                at: this.host.clock.now(),
              });
              attempt(n + 1);
            },
            null,
            (verdict) => reject(this.cancelError(verdict, label ?? 'retry')),
          );
          this.arm(entry, delay);
        });
      };
      attempt(1);
    });
  }

  /**
   * Cancels every pending timer and retry wait, journaling each. `verdict`: the stop that
   * cancels them (`null` when the run ended). Returns how many were cancelled.
   */
  cancelAll(verdict: DenyVerdict | null): number {
    const entries = [...this.live];
    for (const entry of entries) this.cancel(entry, verdict);
    return entries.length;
  }

  /** A caller's own cancel: not journaled. */
  drop(entry: Entry): void {
    if (!entry.active) return;
    entry.active = false;
    this.live.delete(entry);
    this.host.clock.clearTimeout(entry.handle);
  }

  private arm(entry: Entry, ms: number): void {
    entry.due = this.host.clock.now() + ms;
    entry.handle = this.host.clock.setTimeout(() => this.due(entry), ms);
    this.live.add(entry);
  }

  private due(entry: Entry): void {
    if (!entry.active) return;
    // The race guard: a stop observed since it was armed wins, even if cancellation missed it.
    const stop = this.state.ended ? null : runStop(this.state.table, this.host);
    if (this.state.ended || stop !== null) {
      this.cancel(entry, stop);
      return;
    }
    if (entry.everyMs !== null) this.arm(entry, entry.everyMs);
    else {
      entry.active = false;
      this.live.delete(entry);
    }
    entry.fire();
  }

  private cancel(entry: Entry, verdict: DenyVerdict | null): void {
    if (!entry.active) return;
    this.drop(entry);
    const now = this.host.clock.now();
    // Wall time only labels the record; it is approximate (the clock's wall time now plus what was left).
    const dueAt = new Date(wallNow(this.host.clock) + Math.max(0, entry.due - now)).toISOString();
    const runId = this.state.coverage.runId;
    const directiveId = verdict?.directive?.id ?? null;
    this.host.journal({
      type: 'timer.cancelled',
      runId,
      timer: entry.kind,
      label: entry.label,
      dueAt,
      directiveId,
    });
    this.host.record({
      type: 'timer.cancelled',
      runId,
      timer: entry.kind,
      label: entry.label,
      dueAt,
      directiveId,
      at: now,
    });
    entry.onCancel?.(verdict);
  }

  private invoke(fn: () => unknown, kind: TimerKind, label: string | null): void {
    const failed = (err: unknown): void => {
      this.host.record({
        type: 'timer.failed',
        runId: this.state.coverage.runId,
        timer: kind,
        label,
        message: errorMessage(err),
        at: this.host.clock.now(),
      });
    };
    try {
      const out = fn();
      if (isThenable(out)) Promise.resolve(out).catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  private refuseIfStopped(what: string): void {
    if (this.state.ended)
      throw new KillpathError('invalid_request', `run ${this.state.coverage.runId} has ended`);
    // Only a directive refuses here: before the first snapshot the timer waits, and is cancelled if it falls due stale.
    const stop = this.state.table.all;
    if (stop !== null) throw haltedError(stop, this.state.coverage.runId, what, 'denied');
  }

  private stoppedError(what: string): KillpathError | null {
    if (this.state.ended) return this.cancelError(null, what);
    const stop = runStop(this.state.table, this.host);
    return stop === null ? null : this.cancelError(stop, what);
  }

  private cancelError(verdict: DenyVerdict | null, what: string): KillpathError {
    if (verdict === null)
      return new KillpathError('invalid_request', `run ${this.state.coverage.runId} has ended`);
    return haltedError(verdict, this.state.coverage.runId, what, 'aborted');
  }
}

function retryPlan(options: RetryOptions): {
  attempts: number;
  initialMs: number;
  factor: number;
  maxMs: number;
} {
  const bad = (why: string): never => {
    throw new KillpathError('invalid_request', `invalid retry options: ${why}`);
  };
  if (typeof options !== 'object' || options === null) return bad('options required');
  const { attempts, backoff } = options;
  if (!Number.isInteger(attempts) || attempts < 1) bad('attempts must be an integer >= 1');
  if (typeof backoff !== 'object' || backoff === null) return bad('backoff required');
  const initialMs = backoff.initialMs;
  const factor = backoff.factor ?? 2;
  const maxMs = backoff.maxMs ?? 30_000;
  if (!Number.isFinite(initialMs) || initialMs < 0) bad('backoff.initialMs must be >= 0');
  if (!Number.isFinite(factor) || factor < 1) bad('backoff.factor must be >= 1');
  if (!Number.isFinite(maxMs) || maxMs < 0) bad('backoff.maxMs must be >= 0');
  return { attempts, initialMs, factor, maxMs };
}

function safeRetryOn(
  retryOn: (err: unknown, attempt: number) => boolean,
  err: unknown,
  attempt: number,
): boolean {
  try {
    return retryOn(err, attempt);
  } catch {
    return false;
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}
