import { wallNow, type Clock, type RunTelemetry } from '@killpath/protocol';
import type { LeaderWork } from '../control-plane.ts';
import type { Logger } from '../log.ts';
import type { ForwardedTelemetry, TelemetryStore } from '../store/store.ts';
import type { Supervisor } from './supervisor.ts';

/** How often a replica writes the telemetry it received (one insert for all of it), in ms. */
export const TELEMETRY_FLUSH_MS = 500;
/** How often the holder of the leader lease reads the rows other replicas forwarded, in ms. */
export const TELEMETRY_POLL_MS = 500;
/** Rows read per query. */
const READ_LIMIT = 1000;
/** Batches kept unwritten while the store refuses them; older ones are dropped beyond this (logged). */
const MAX_PENDING = 100_000;
/** How often the holder prunes rows older than the policy's longest window, in ms. */
const PRUNE_EVERY_MS = 10_000;

/** What the relay needs of the control plane. */
export interface TelemetryRelayHost {
  readonly store: TelemetryStore;
  readonly clock: Clock;
  readonly log: Logger;
  /** This replica's id (its rows carry it). */
  readonly replicaId: string;
  /** Runs `work` while this replica holds the leader lease (see `ControlPlane.whileLeading`). */
  whileLeading(work: LeaderWork): () => void;
}

interface Pending extends Omit<ForwardedTelemetry, 'id'> {
  /** Fed to this replica's supervisor already (it held the lease when the batch arrived). */
  ingested: boolean;
}

/**
 * Makes the supervisor's rules evaluated once, over every replica's telemetry (issue 14). Every
 * replica writes the batches its workers POSTed into the store, coalesced into one insert every
 * {@link TELEMETRY_FLUSH_MS}. Only the holder of the leader lease feeds its supervisor (so only
 * it evaluates rules): its own batches at once, the other replicas' as it reads their rows in id
 * order every {@link TELEMETRY_POLL_MS}. On taking the lease it starts a fresh book from the rows
 * of the policy's longest window. Each batch enters the book at the time its replica received
 * it; a batch older than one already taken from the same worker is skipped (a worker that failed
 * over: its totals only go up). Added delay for telemetry a non-holder received: up to one flush
 * plus one poll (≤ 1 s) plus a write and a read; none for the holder's own.
 */
export class TelemetryRelay {
  readonly #host: TelemetryRelayHost;
  readonly #supervisor: Supervisor;
  readonly #windowMs: () => number;
  #pending: Pending[] = [];
  #writing: Promise<void> = Promise.resolve();
  #leading = false;
  /** Rows read up to this id (the holder's position in the store's telemetry). */
  #lastId = 0;
  /** Per worker (`tenant/agent/worker`), the receipt time of the latest batch fed to the book. */
  readonly #lastAt = new Map<string, number>();
  #reading: Promise<void> = Promise.resolve();
  #flushTimer: unknown = null;
  #pollTimer: unknown = null;
  #pruneAt = 0;
  #unsubscribe: (() => void) | null = null;
  #failing = false;

  constructor(host: TelemetryRelayHost, supervisor: Supervisor, windowMs: () => number) {
    this.#host = host;
    this.#supervisor = supervisor;
    this.#windowMs = windowMs;
  }

  /** Starts the flush timer and follows the leader lease. */
  start(): void {
    const flush = () => {
      void this.flush().finally(() => {
        if (this.#flushTimer !== null)
          this.#flushTimer = this.#host.clock.setTimeout(flush, TELEMETRY_FLUSH_MS);
      });
    };
    this.#flushTimer = this.#host.clock.setTimeout(flush, TELEMETRY_FLUSH_MS);
    this.#unsubscribe = this.#host.whileLeading({
      elected: () => {
        this.#leading = true;
        this.#reading = this.#reading.then(() => this.#takeOver());
        const poll = () => {
          void this.read().finally(() => {
            if (this.#pollTimer !== null && this.#leading)
              this.#pollTimer = this.#host.clock.setTimeout(poll, TELEMETRY_POLL_MS);
          });
        };
        if (this.#pollTimer !== null) this.#host.clock.clearTimeout(this.#pollTimer);
        this.#pollTimer = this.#host.clock.setTimeout(poll, TELEMETRY_POLL_MS);
      },
      deposed: () => {
        this.#leading = false;
        if (this.#pollTimer !== null) this.#host.clock.clearTimeout(this.#pollTimer);
        this.#pollTimer = null;
      },
    });
  }

  /** Stops the timers (batches not written yet are dropped: their workers report totals again). */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#leading = false;
    for (const t of [this.#flushTimer, this.#pollTimer]) if (t !== null) this.#host.clock.clearTimeout(t);
    this.#flushTimer = null;
    this.#pollTimer = null;
  }

  /** True while this replica feeds its supervisor (it holds the leader lease). */
  get leading(): boolean {
    return this.#leading;
  }

  /** Takes one telemetry batch a worker POSTed to this replica. */
  take(who: { workerId: string; tenant: string; agent: string }, runs: readonly RunTelemetry[]): void {
    const at = wallNow(this.#host.clock);
    const ingested = this.#leading;
    if (ingested) this.#feed(who, [...runs], at);
    this.#pending.push({ replica: this.#host.replicaId, ...who, runs: [...runs], at, ingested });
    if (this.#pending.length > MAX_PENDING) {
      const dropped = this.#pending.splice(0, this.#pending.length - MAX_PENDING);
      this.#host.log.error('telemetry not forwarded: the store refused it for too long', {
        dropped: dropped.length,
      });
    }
  }

  /** Writes the batches taken so far (one insert); resolves once written or refused (kept for the next flush). */
  flush(): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      const batch = this.#pending;
      if (batch.length === 0) return;
      this.#pending = [];
      try {
        await this.#host.store.forwardTelemetry(batch.map(({ ingested: _, ...b }) => b));
        if (this.#failing) this.#host.log.info('telemetry forwarding: the store answers again');
        this.#failing = false;
      } catch (err) {
        this.#pending = [...batch, ...this.#pending];
        if (!this.#failing)
          this.#host.log.error('telemetry forwarding: the store refused a write (kept, tried again)', {
            batches: batch.length,
            err: String(err),
          });
        this.#failing = true;
      }
    });
    return this.#writing;
  }

  /** One read of the rows forwarded since the last (the holder's poll; tests call it). */
  read(): Promise<void> {
    if (!this.#leading) return this.#reading;
    this.#reading = this.#reading.then(() => this.#readNew(false));
    return this.#reading;
  }

  async #takeOver(): Promise<void> {
    // What this replica forwarded before it took the lease is in the store or still pending.
    await this.#writing;
    this.#supervisor.book.clear();
    this.#lastAt.clear();
    this.#lastId = 0;
    await this.#readNew(true);
    for (const p of this.#pending)
      if (!p.ingested) {
        p.ingested = true;
        this.#feed(p, p.runs, p.at);
      }
  }

  async #readNew(takeover: boolean): Promise<void> {
    try {
      const wall = wallNow(this.#host.clock);
      const since = wall - this.#windowMs();
      for (;;) {
        const rows = await this.#host.store.telemetryAfter(this.#lastId, since, READ_LIMIT);
        for (const r of rows) {
          this.#lastId = r.id;
          // Its own batches the holder fed at once (after a takeover: those of its term).
          if (r.replica === this.#host.replicaId && !takeover) continue;
          this.#feed(r, r.runs, r.at);
        }
        if (rows.length < READ_LIMIT) break;
      }
      if (wall >= this.#pruneAt) {
        this.#pruneAt = wall + PRUNE_EVERY_MS;
        await this.#host.store.pruneTelemetry(since - PRUNE_EVERY_MS);
        for (const [k, at] of this.#lastAt) if (at < since) this.#lastAt.delete(k);
      }
    } catch (err) {
      this.#host.log.warn('telemetry relay: could not read forwarded telemetry (tried again)', {
        err: String(err),
      });
    }
  }

  /** Feeds the supervisor one batch received at wall time `at` (skipped if older than the worker's last). */
  #feed(who: { workerId: string; tenant: string; agent: string }, runs: RunTelemetry[], at: number): void {
    const key = `${who.tenant}/${who.agent}/${who.workerId}`;
    const last = this.#lastAt.get(key);
    if (last !== undefined && at < last) return;
    this.#lastAt.set(key, at);
    const clock = this.#host.clock;
    const received = clock.now() - Math.max(0, wallNow(clock) - at);
    this.#supervisor.ingest({ workerId: who.workerId, tenant: who.tenant, agent: who.agent }, runs, received);
  }
}
