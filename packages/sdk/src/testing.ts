import type { Clock } from './clock.ts';
import type { JournalSink, SdkEvent } from './journal.ts';

/**
 * A clock that only moves when told. Timers fire inside {@link ManualClock.advance}, in due
 * order, with `now()` set to each timer's due time.
 */
export class ManualClock implements Clock {
  private t: number;
  private readonly start: number;
  private readonly wallStart: number;
  private seq = 0;
  private holds = 0;
  private readonly timers = new Map<number, { due: number; fn: () => void }>();

  /**
   * @param start the initial `now()`, in ms
   * @param wallStart the wall time at `start`, in ms since the epoch; default 2026-01-01T00:00:00Z
   */
  constructor(start = 0, wallStart = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.start = start;
    this.wallStart = wallStart;
  }

  /** The current manual time, in ms. */
  now(): number {
    return this.t;
  }

  /** Wall time that moves with the manual clock: `wallStart + (now() - start)`. */
  wallNow(): number {
    return this.wallStart + (this.t - this.start);
  }

  /** Schedules `fn` at `now() + ms` (negative delays count as 0). Returns a numeric handle. */
  setTimeout(fn: () => void, ms: number): unknown {
    this.seq += 1;
    this.timers.set(this.seq, { due: this.t + Math.max(0, ms), fn });
    return this.seq;
  }

  /** Cancels a pending timer. */
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** How many {@link ManualClock.hold}s are not released (a real clock would keep the process alive meanwhile). */
  get held(): number {
    return this.holds;
  }

  /** Counts a hold on the process; the returned release (idempotent) gives it back. */
  hold(): () => void {
    this.holds += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds -= 1;
    };
  }

  /**
   * Moves time forward by `ms` without firing the timers that fall due: they are overdue and
   * run at the next {@link ManualClock.advance} (a process that was frozen: its queued I/O is
   * handled before its overdue timers).
   */
  jump(ms: number): void {
    this.t += ms;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way (including ones they set). */
  advance(ms: number): void {
    const target = this.t + ms;
    while (true) {
      let nextId = -1;
      let nextDue = Number.POSITIVE_INFINITY;
      for (const [id, timer] of this.timers) {
        if (timer.due <= target && timer.due < nextDue) {
          nextId = id;
          nextDue = timer.due;
        }
      }
      const timer = this.timers.get(nextId);
      if (timer === undefined) break;
      this.timers.delete(nextId);
      this.t = Math.max(this.t, timer.due);
      timer.fn();
    }
    this.t = target;
  }

  /** How many timers are pending. */
  pendingTimers(): number {
    return this.timers.size;
  }
}

/** A sink that keeps every event in memory. */
export class MemorySink implements JournalSink {
  /** Every event recorded, in order. */
  readonly events: SdkEvent[] = [];

  /** Keeps `event`. */
  record(event: SdkEvent): void {
    this.events.push(event);
  }

  /** The recorded events of one type. */
  ofType<K extends SdkEvent['type']>(type: K): Extract<SdkEvent, { type: K }>[] {
    return this.events.filter((e): e is Extract<SdkEvent, { type: K }> => e.type === type);
  }
}

export { FakeStream, FakeTransport, drain } from './fake-transport.ts';
export type { FakePost } from './fake-transport.ts';
export { FakeControlPlane } from './fake-control-plane.ts';
export type { FakePermit } from './fake-control-plane.ts';
