import { wallNow, type Clock } from '@killpath/protocol';
import type { Logger } from './log.ts';
import type { LeaseFence, LeaseStore } from './store/store.ts';

/** The lease the work that must happen once is held under (escalation steps, the deadman, the supervisor's rules). */
export const LEADER_LEASE = 'leader';

/** Default lease time: a holder that stops renewing is replaced this long after its last renewal at the latest (plus one poll). */
export const DEFAULT_LEASE_TTL_MS = 3000;
/** Default interval between a holder's renewals and a follower's attempts. */
export const DEFAULT_LEASE_POLL_MS = 500;

/** Options of {@link Leadership}. */
export interface LeadershipOptions {
  store: LeaseStore;
  clock: Clock;
  log: Logger;
  /** This replica's name in the lease (unique per process). */
  holder: string;
  /** Lease time in ms (default {@link DEFAULT_LEASE_TTL_MS}). */
  ttlMs?: number;
  /** Renewal and polling interval in ms (default {@link DEFAULT_LEASE_POLL_MS}); keep it well under `ttlMs`. */
  pollMs?: number;
  /** This replica took the lease (at `epoch`): arm the work it owns. */
  onElected(epoch: number): void | Promise<void>;
  /** This replica lost the lease (another took it, or it could not renew for a whole ttl): stop that work. */
  onDeposed(): void;
  /** Each successful renewal while held (the leader's poll: catch up with what other replicas committed). */
  onRenewed?(): void | Promise<void>;
}

/**
 * Holds the leader lease for the work that must happen once across replicas. Every replica runs
 * one: the holder renews it every `pollMs`, the others try to take it as often. When the holder
 * dies (stops renewing), its lease expires at most `ttlMs` after its last renewal and another
 * replica takes it at its next attempt: the takeover bound is `ttlMs + pollMs` after the
 * holder's last renewal. A holder's every commit of that work carries {@link Leadership.fence},
 * which the store checks in the commit's own transaction: a deposed holder that has not noticed
 * yet cannot write. Timers run on the injected clock; lease times are its wall time.
 */
export class Leadership {
  readonly holder: string;
  readonly ttlMs: number;
  readonly pollMs: number;
  readonly #o: LeadershipOptions;
  #epoch: number | null = null;
  #timer: unknown = null;
  #lastRenewed: number | null = null;
  #closed = false;
  /** The tick in progress (start, close and tests wait for it). */
  #ticking: Promise<void> = Promise.resolve();

  constructor(o: LeadershipOptions) {
    this.#o = o;
    this.holder = o.holder;
    this.ttlMs = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.pollMs = o.pollMs ?? DEFAULT_LEASE_POLL_MS;
  }

  /** True while this replica holds the lease (as of its last renewal). */
  get leading(): boolean {
    return this.#epoch !== null;
  }

  /** What a commit of the leader's work carries while this replica holds the lease; null otherwise. */
  fence(): LeaseFence | null {
    return this.#epoch === null ? null : { lease: LEADER_LEASE, holder: this.holder, epoch: this.#epoch };
  }

  /** Resolves once the attempt or renewal in progress (and what it set off on election) has finished. */
  idle(): Promise<void> {
    return this.#ticking;
  }

  /** Tries once (elected at once when the lease is free or already this holder's), then keeps trying or renewing. */
  async start(): Promise<void> {
    await this.tick();
  }

  /** One attempt or renewal now (the timer calls it; tests may too). */
  tick(): Promise<void> {
    this.#ticking = this.#ticking.then(() => this.#tick());
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
    try {
      const lease = await this.#o.store.acquireLease(
        LEADER_LEASE,
        this.holder,
        this.ttlMs,
        wallNow(this.#o.clock),
      );
      if (this.#closed) return;
      if (lease.holder === this.holder) {
        this.#lastRenewed = this.#o.clock.now();
        if (this.#epoch !== lease.epoch) {
          if (this.#epoch !== null) this.#depose('the lease passed through another holder');
          this.#epoch = lease.epoch;
          this.#o.log.info('leader lease taken: escalation, deadman and supervisor run here', {
            holder: this.holder,
            epoch: lease.epoch,
          });
          await this.#o.onElected(lease.epoch);
        } else await this.#o.onRenewed?.();
      } else if (this.#epoch !== null) this.#depose(`${lease.holder} holds it at epoch ${lease.epoch}`);
    } catch (err) {
      // Cannot reach the store: keep the lease only as long as the last renewal vouches for it.
      if (
        this.#epoch !== null &&
        (this.#lastRenewed === null || this.#o.clock.now() - this.#lastRenewed >= this.ttlMs)
      )
        this.#depose(`no renewal for ${this.ttlMs} ms: ${String(err)}`);
      else this.#o.log.warn('leader lease: store unreachable', { holder: this.holder, err: String(err) });
    } finally {
      if (!this.#closed) this.#timer = this.#o.clock.setTimeout(() => void this.tick(), this.pollMs);
    }
  }

  #depose(why: string): void {
    this.#epoch = null;
    this.#o.log.warn('leader lease lost: its work stops here', { holder: this.holder, why });
    this.#o.onDeposed();
  }

  /**
   * Stops trying and renewing. With `release` (a clean shutdown) the lease is handed back at once,
   * so another replica takes it at its next attempt; without (as a crash would), it expires.
   */
  async close(opts: { release?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
    await this.#ticking;
    const held = this.#epoch !== null;
    if (held) {
      this.#epoch = null;
      this.#o.onDeposed();
    }
    if (held && opts.release !== false) {
      try {
        await this.#o.store.releaseLease(LEADER_LEASE, this.holder);
      } catch (err) {
        this.#o.log.warn('leader lease: release failed (it expires instead)', { err: String(err) });
      }
    }
  }
}
