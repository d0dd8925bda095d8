import { systemClock, type Clock } from '@killpath/protocol';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { AuditStore, PermitStore } from '../store/store.ts';
import type { AuditEvent } from './chain.ts';

/** One run a worker reported halted, as {@link PermitStore.recordHalted} stores it. */
type HaltedRow = Parameters<PermitStore['recordHalted']>[0][number];

/** A batch of reports' audit records is written once no report came for this long (ms)… */
const AUDIT_QUIET_MS = 25;
/** …and at the latest this long after its first record (ms). */
const AUDIT_MAX_WAIT_MS = 1000;
/** Most audit records written in one transaction of a flush; the loop runs other work between two. */
const AUDIT_SLICE = 200;

/**
 * Workers' reports' audit records, batched. The batch is written once reports stop arriving for
 * {@link AUDIT_QUIET_MS}, and at the latest {@link AUDIT_MAX_WAIT_MS} after its first record:
 * during a fleet's wave of halted reports, hashing and committing their records would compete
 * with taking the rest of the wave (and with the workers still applying the flip). Readers of
 * the audit log flush first, so they never miss a queued record.
 */
export class AuditQueue {
  readonly #store: Pick<AuditStore, 'appendAudit'> & Pick<PermitStore, 'recordHalted'>;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  #pending: AuditEvent[] = [];
  /**
   * Halted rows whose reports' audit records are already appended but which are not stored yet
   * (their write failed): the next flush writes them without appending those records again.
   */
  #pendingHalted: HaltedRow[] = [];
  readonly #clock: Clock;
  /** The pending flush (a handle of the clock), null when none is set. */
  #flushTimer: unknown = null;
  /** The last flush of queued audit events (they run one after the other). */
  #flushing: Promise<void> = Promise.resolve();
  /** When the oldest queued audit record was queued (monotonic ms), null when none is. */
  #pendingSince: number | null = null;

  constructor(deps: {
    store: Pick<AuditStore, 'appendAudit'> & Pick<PermitStore, 'recordHalted'>;
    metrics: Metrics;
    log: Logger;
    /** Times the batches (monotonic `now` and timers); default the system clock. */
    clock?: Clock;
  }) {
    this.#clock = deps.clock ?? systemClock;
    this.#store = deps.store;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
  }

  /** Queues an audit record; it is written with its batch (see {@link AuditQueue}). */
  queue(e: AuditEvent): void {
    this.#pending.push(e);
    const now = this.#clock.now();
    this.#pendingSince ??= now;
    this.#lastQueued = now;
    // One timer per batch, not one per record (a wave of reports queues thousands): when it
    // fires it waits on if a record came meanwhile.
    if (this.#flushTimer === null) this.#arm(now);
  }

  /** When the last record was queued (monotonic ms). */
  #lastQueued = 0;

  /** Sets the flush timer for the batch's due time: quiet for {@link AUDIT_QUIET_MS}, or its oldest record {@link AUDIT_MAX_WAIT_MS} old. */
  #arm(now: number): void {
    const due = Math.min(this.#lastQueued + AUDIT_QUIET_MS, this.#pendingSince! + AUDIT_MAX_WAIT_MS);
    this.#flushTimer = this.#clock.setTimeout(
      () => {
        this.#flushTimer = null;
        if (this.#pendingSince === null) return;
        const at = this.#clock.now();
        const left = Math.min(this.#lastQueued + AUDIT_QUIET_MS, this.#pendingSince + AUDIT_MAX_WAIT_MS) - at;
        if (left > 0) this.#arm(at);
        else void this.flush();
      },
      Math.max(0, due - now),
    );
  }

  /**
   * Writes queued audit events now (also called on shutdown, and by readers of the audit log
   * before they read). Resolves once every event queued before the call is written: flushes run
   * one after the other, in queue order.
   */
  flush(): Promise<void> {
    if (this.#flushTimer !== null) this.#clock.clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    this.#pendingSince = null;
    const all = this.#pending;
    this.#pending = [];
    this.#flushing = this.#flushing.then(() => this.#write(all));
    return this.#flushing;
  }

  /** Resolves once every flush started so far has ended (starts none: queued records wait for their batch). */
  flushed(): Promise<void> {
    return this.#flushing;
  }

  /**
   * Writes `all` in slices: hashing a wave's records in one go would hold the loop the kill path
   * runs on. Each slice is two steps, appending its audit records then storing its halted rows;
   * a failed step is retried by the next flush from that step on, so a record already appended
   * is never appended again (storing halted rows is idempotent, appending is not).
   */
  async #write(all: AuditEvent[]): Promise<void> {
    if (!(await this.#writeHalted(all.length))) {
      this.#pending.unshift(...all);
      return;
    }
    for (let i = 0; i < all.length; i += AUDIT_SLICE) {
      const batch = all.slice(i, i + AUDIT_SLICE);
      try {
        await this.#store.appendAudit(batch);
      } catch (err) {
        this.#log.error('audit batch failed', { err: String(err), events: all.length - i });
        this.#pending.unshift(...all.slice(i));
        return;
      }
      this.#metrics.auditRecords.inc(batch.length);
      const at = new Date().toISOString();
      for (const e of batch) {
        if (e.type !== 'session.halted') continue;
        for (const runId of e.data.runs as string[]) {
          this.#pendingHalted.push({
            tenant: String(e.tenant),
            runId,
            directiveId: String(e.data.directiveId),
            at,
          });
        }
      }
      if (!(await this.#writeHalted(all.length - i - batch.length))) {
        this.#pending.unshift(...all.slice(i + batch.length));
        return;
      }
    }
  }

  /**
   * Stores the halted rows waiting in {@link AuditQueue.#pendingHalted}; false (they stay queued)
   * when the store fails. `queued` is how many audit records still wait behind them (for the log).
   */
  async #writeHalted(queued: number): Promise<boolean> {
    if (this.#pendingHalted.length === 0) return true;
    const rows = this.#pendingHalted;
    try {
      await this.#store.recordHalted(rows);
    } catch (err) {
      this.#log.error('halted rows failed', { err: String(err), runs: rows.length, events: queued });
      return false;
    }
    this.#pendingHalted = this.#pendingHalted.slice(rows.length);
    return true;
  }
}
