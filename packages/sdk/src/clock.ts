import { systemClock, wallNow, type Clock } from '@killpath/protocol';

/** The SDK's only source of time (the interface is protocol's, shared with the server). */
export type { Clock };

/** The clock's wall time, or `Date.now()` when it has none (defined once, in protocol). */
export { wallNow };

/** The default clock: `performance.now()` and Node timers, unref'd (defined once, in protocol). */
export { systemClock };
