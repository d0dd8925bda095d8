import { wallNow, type Clock } from '@killpath/protocol';

/** The SDK's only source of time (the interface is protocol's, shared with the server). */
export type { Clock };

/** The clock's wall time, or `Date.now()` when it has none (defined once, in protocol). */
export { wallNow };

/**
 * The default clock: `performance.now()` and Node timers. Timers are `unref()`'d so that a
 * connected client never keeps the process alive on its own; {@link Clock.hold} is a ref'd
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
