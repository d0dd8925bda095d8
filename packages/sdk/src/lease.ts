import type { Clock } from './clock.ts';
import { STALE } from './verdict.ts';
import type { DenyVerdict } from './verdict.ts';

/**
 * The worker's lease on its mirror: contact with the control plane (any stream message) renews
 * it for `leaseMs` on the monotonic clock. The gate reads {@link Lease.deadline} directly.
 *
 * Two deadlines: `deadline` closes the gate (new effects denied `stale`) and may be pulled in
 * early by {@link Lease.suspend} when the mirror is known to be behind; the contact deadline
 * (last contact + `leaseMs`) is when the lease expires and in-flight writes are aborted.
 */
export class Lease {
  /** The gate is open while `clock.now() < deadline`; `-Infinity` until the first contact. */
  deadline = Number.NEGATIVE_INFINITY;
  /** What a closed gate answers: `stale`, or the verdict the gate was closed for good with ({@link Lease.refuse}). */
  denial: DenyVerdict = STALE;
  /** Clock time of the last contact, or `null` before any. */
  lastContact: number | null = null;
  private contactDeadline = Number.NEGATIVE_INFINITY;
  private timer: unknown = null;
  private live = false;
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly onExpire: () => void;

  /** @param onExpire called once each time a live lease runs out (not after {@link Lease.stop}) */
  constructor(clock: Clock, leaseMs: number, onExpire: () => void) {
    this.clock = clock;
    this.leaseMs = leaseMs;
    this.onExpire = onExpire;
  }

  /**
   * Records contact at `now` (default: the clock's now): both deadlines move to `now + leaseMs`.
   * A message's contact is stamped when it was checked, not later: a process frozen while it
   * handles the message must not count the thaw as contact.
   */
  renew(now: number = this.clock.now()): void {
    this.lastContact = now;
    this.contactDeadline = now + this.leaseMs;
    this.deadline = this.contactDeadline;
    this.live = true;
    // One pending timer at most: when it fires early (the lease was renewed), it re-arms.
    this.timer ??= this.clock.setTimeout(this.fire, this.leaseMs);
  }

  /** Closes the gate now without expiring the lease: in-flight effects keep running until the contact deadline. */
  suspend(): void {
    this.deadline = Number.NEGATIVE_INFINITY;
  }

  /**
   * Closes the gate for good, every check answering `verdict` from now on (a control plane this
   * worker cannot read); the timer is cancelled and `onExpire` is not called.
   */
  refuse(verdict: DenyVerdict): void {
    this.denial = verdict;
    this.stop();
  }

  /** Closes the gate for good and cancels the timer; `onExpire` is not called. */
  stop(): void {
    this.deadline = Number.NEGATIVE_INFINITY;
    this.live = false;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * True when the last contact is older than `leaseMs` now, even if the expiry timer has not run
   * yet (a process thawed after a freeze handles its queued I/O before its overdue timers).
   */
  overdue(now: number = this.clock.now()): boolean {
    return this.lastContact !== null && now >= this.contactDeadline;
  }

  /** Milliseconds until the gate closes, 0 when it is closed. */
  remainingMs(): number {
    return Math.max(0, this.deadline - this.clock.now());
  }

  /** Milliseconds since the last contact, or since `origin` when there was none. */
  sinceContactMs(origin: number): number {
    return this.clock.now() - (this.lastContact ?? origin);
  }

  private readonly fire = (): void => {
    this.timer = null;
    const now = this.clock.now();
    if (now < this.contactDeadline) {
      this.timer = this.clock.setTimeout(this.fire, this.contactDeadline - now);
      return;
    }
    this.deadline = Number.NEGATIVE_INFINITY;
    if (!this.live) return;
    this.live = false;
    this.onExpire();
  };
}
