/**
 * A source of time: a monotonic clock and one-shot timers, defined once for the SDK and the
 * server. The SDK never reads wall time for a lease, so a wall-clock jump can neither extend nor
 * cut one; the server's deadlines that must survive a restart (escalation steps) are measured in
 * {@link Clock.wallNow}. Tests inject a manual clock (see `ManualClock` in `@killpath/sdk/testing`).
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin. */
  now(): number;
  /** Calls `fn` once, `ms` milliseconds from now. Returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer set by {@link Clock.setTimeout}; unknown or spent handles are ignored. */
  clearTimeout(handle: unknown): void;
  /**
   * Wall-clock milliseconds since the epoch, used only to label journal records for humans
   * (e.g. when a cancelled timer would have fired); never for a lease or a deadline. Default
   * `Date.now()`.
   */
  wallNow?(): number;
  /**
   * Keeps the process alive until the returned release is called (idempotent). The client holds
   * it while it waits for its first snapshot, so an agent whose top-level `await client.ready`
   * is still retrying is not ended by Node for lack of work. Optional: a clock without it never
   * holds the process (timers stay unref'd).
   */
  hold?(): () => void;
}

/** The clock's wall time, or `Date.now()` when it has none. */
export function wallNow(clock: Clock): number {
  return clock.wallNow?.() ?? Date.now();
}

/**
 * The default clock of the SDK and the server: `performance.now()`, wall time from `Date.now()`
 * and Node timers. Timers are `unref()`'d so that a connected client (or a pending deadline of a
 * stopping server) never keeps the process alive on its own; {@link Clock.hold} is a ref'd
 * interval (it fires every ~12 days and does nothing), cleared on release.
 */
export const systemClock: Clock = Object.freeze({
  now: (): number => performance.now(),
  setTimeout: (fn: () => void, ms: number): unknown => {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return handle;
  },
  clearTimeout: (handle: unknown): void => {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
  wallNow: (): number => Date.now(),
  hold: (): (() => void) => {
    const handle = setInterval(() => {}, 2 ** 30);
    return () => clearInterval(handle);
  },
});
