import type { Clock } from '@killpath/protocol';

/**
 * The server's default clock: `performance.now()`, wall time from `Date.now()`, Node timers
 * `unref()`'d (a pending deadline never keeps a stopping server alive). The control plane takes
 * a {@link Clock} so that tests drive its deadlines with a manual one instead of sleeping.
 */
export const systemClock: Clock = Object.freeze({
  now: (): number => performance.now(),
  wallNow: (): number => Date.now(),
  setTimeout: (fn: () => void, ms: number): unknown => {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return handle;
  },
  clearTimeout: (handle: unknown): void => {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
});
