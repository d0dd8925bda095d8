import type { MiddlewareHandler } from 'hono';
import { KillpathError, systemClock, type Clock } from '@killpath/protocol';
import { wireError } from './common.ts';

/**
 * How much a request matters when the control plane is overloaded:
 * - `critical`: the kill path itself (directives issued, stepped, resumed; the worker and
 *   launcher streams; acks, halted reports and heartbeats, which feed the deadman; launcher
 *   events; the watchdog; token changes). Never shed.
 * - `normal`: the agents' own work (permits, journal, run registration) and the operator's view
 *   of what is in force. Never shed either: shedding a permit only moves the wait into the agent.
 * - `low`: telemetry, read queries (fleet, audit, journal, compensations, alerts, policy,
 *   drills), metrics and the console's files. Shed first, with 429 and `Retry-After`.
 */
export type Priority = 'critical' | 'normal' | 'low';

const CRITICAL: [string, RegExp][] = [
  ['POST', /^\/v1\/directives$/],
  ['POST', /^\/v1\/directives\/[^/]+\/(resume|step)$/],
  ['POST', /^\/v1\/agents\/[^/]+\/[^/]+\/kill$/],
  ['GET', /^\/v1\/(stream|launchers\/stream)$/],
  ['POST', /^\/v1\/workers\/[^/]+\/(ack|halted|heartbeat)$/],
  ['POST', /^\/v1\/launchers\/[^/]+\/(events|token|token\/revoke)$/],
  ['POST', /^\/v1\/watchdog\//],
  ['ANY', /^\/v1\/tokens(\/|$)/],
  ['ANY', /^\/v1\/(approvals|resume-requests)(\/|$)/],
  ['GET', /^\/healthz$/],
];

const LOW: [string, RegExp][] = [
  ['POST', /^\/v1\/telemetry$/],
  ['GET', /^\/v1\/(fleet|audit|alerts|compensations|policy|drills|supervisor)(\/|$)/],
  ['GET', /^\/v1\/runs\/[^/]+\/journal$/],
  ['GET', /^\/v1\/directives\/[^/]+\/permitted-after$/],
  ['GET', /^\/v1\/permits$/],
  ['GET', /^\/metrics$/],
  ['GET', /^\/(console(\/.*)?)?$/],
];

const matches = (rules: [string, RegExp][], method: string, path: string) =>
  rules.some(([m, re]) => (m === 'ANY' || m === method) && re.test(path));

/** The priority of a request, by method and path (see {@link Priority}). */
export function priorityOf(method: string, path: string): Priority {
  if (matches(CRITICAL, method, path)) return 'critical';
  if (matches(LOW, method, path)) return 'low';
  return 'normal';
}

/** Where admission learns how late the event loop runs, in ms (see {@link loopLagProbe}). */
export interface LagSource {
  lagMs(): number;
}

/** Options of {@link Admission}. */
export interface AdmissionOptions {
  lag: LagSource;
  /** Shed low-priority requests while the event loop runs this late, ms. Default 100. */
  shedLagMs?: number;
  /** Shed low-priority requests beyond this many in flight at once. Default 32. */
  maxLowInFlight?: number;
  /**
   * A late loop sheds only a flood: low-priority requests arriving at this rate or more (per
   * second, over the last second). A trickle of reads costs nothing worth shedding. Default 50.
   */
  floodPerS?: number;
  /** Monotonic time in ms (a seam for tests). Default `performance.now`. */
  now?: () => number;
  /** What a shed request is told to wait before it retries, seconds. Default 1. */
  retryAfterS?: number;
  /** Called once per shed request (a metric). */
  onShed?: (priority: Priority, path: string) => void;
}

/**
 * Admission control with priorities: under overload, a flood of telemetry and read queries is shed
 * (429 `overloaded` with `Retry-After`) before they can delay a directive, a stream or a
 * halted report. A shed request was not processed at all, so its sender may always retry it.
 * The check runs before authentication and body parsing, so a shed request costs almost nothing.
 */
export class Admission {
  readonly #lag: LagSource;
  readonly #shedLagMs: number;
  readonly #maxLowInFlight: number;
  readonly #retryAfterS: number;
  readonly #onShed: (priority: Priority, path: string) => void;
  readonly #floodPerS: number;
  readonly #now: () => number;
  /** Arrival times of the low-priority requests of the last second, oldest first. */
  readonly #arrivals: number[] = [];
  #lowInFlight = 0;

  constructor(opts: AdmissionOptions) {
    this.#lag = opts.lag;
    this.#shedLagMs = opts.shedLagMs ?? 100;
    this.#maxLowInFlight = opts.maxLowInFlight ?? 32;
    this.#retryAfterS = opts.retryAfterS ?? 1;
    this.#onShed = opts.onShed ?? (() => {});
    this.#floodPerS = opts.floodPerS ?? 50;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Low-priority requests that arrived in the last second (this one included, once noted). */
  #recentLow(note: boolean): number {
    const now = this.#now();
    if (note) this.#arrivals.push(now);
    while (this.#arrivals.length > 0 && this.#arrivals[0]! <= now - 1000) this.#arrivals.shift();
    return this.#arrivals.length;
  }

  /** Low-priority requests being processed now. */
  get lowInFlight(): number {
    return this.#lowInFlight;
  }

  /**
   * The reason to shed a request of `priority` now, or null to admit it. `arriving` notes the
   * request as an arrival (the middleware does; a look from outside does not).
   */
  shedReason(priority: Priority, arriving = false): string | null {
    if (priority !== 'low') return null;
    const recent = this.#recentLow(arriving);
    const lag = this.#lag.lagMs();
    if (lag >= this.#shedLagMs && recent >= this.#floodPerS)
      return `the control plane is overloaded (event loop ${Math.round(lag)} ms late, ${recent} read queries and telemetry batches in the last second)`;
    if (this.#lowInFlight >= this.#maxLowInFlight)
      return `the control plane is overloaded (${this.#lowInFlight} read queries in flight)`;
    return null;
  }

  /** The Hono middleware: sheds or admits, and counts low-priority requests in flight. */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      const priority = priorityOf(c.req.method, c.req.path);
      const reason = this.shedReason(priority, true);
      if (reason !== null) {
        this.#onShed(priority, c.req.path);
        const res = wireError(
          c,
          new KillpathError('overloaded', `${reason}: retry after ${this.#retryAfterS} s`, {
            details: { retryAfterMs: this.#retryAfterS * 1000, priority },
          }),
        );
        res.headers.set('retry-after', String(this.#retryAfterS));
        return res;
      }
      if (priority !== 'low') return next();
      this.#lowInFlight += 1;
      try {
        await next();
      } finally {
        this.#lowInFlight -= 1;
      }
    };
  }
}

/**
 * Measures how late the event loop runs: a timer every `intervalMs` notes how much later than
 * asked it fired; `lagMs()` is the largest such delay of the last `windowMs`, and also counts a
 * delay still in progress (the time since the last tick beyond its interval), so a request that
 * arrives right after a long synchronous stretch sees it. `stop()` clears the timer. Time and
 * timers come from `clock` (default the system clock, whose timers never hold the process).
 */
export function loopLagProbe(
  intervalMs = 20,
  windowMs = 500,
  clock: Clock = systemClock,
): LagSource & { stop(): void } {
  const samples: { at: number; lag: number }[] = [];
  let last = clock.now();
  let timer: unknown = null;
  const tick = () => {
    const now = clock.now();
    samples.push({ at: now, lag: Math.max(0, now - last - intervalMs) });
    last = now;
    while (samples.length > 0 && samples[0]!.at < now - windowMs) samples.shift();
    timer = clock.setTimeout(tick, intervalMs);
  };
  timer = clock.setTimeout(tick, intervalMs);
  return {
    lagMs() {
      const now = clock.now();
      let max = Math.max(0, now - last - intervalMs);
      for (const s of samples) if (s.at >= now - windowMs && s.lag > max) max = s.lag;
      return max;
    },
    stop: () => clock.clearTimeout(timer),
  };
}
