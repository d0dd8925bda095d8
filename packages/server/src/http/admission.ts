import type { EventEmitter } from 'node:events';
import type { Authenticator } from '../auth/tokens.ts';
import type { Context, MiddlewareHandler } from 'hono';
import { HTTP_STATUS, systemClock, type Clock, type WireError } from '@killpath/protocol';

/**
 * How much a request matters when the control plane is overloaded:
 * - `critical`: the kill path itself (directives issued, stepped, resumed; the worker and
 *   launcher streams; acks, halted reports and heartbeats, which feed the deadman; launcher
 *   events; the watchdog; token changes). Never shed.
 * - `normal`: the agents' own work (permits, journal, run registration) and the operator's view
 *   of what is in force. Never shed either: shedding a permit only moves the wait into the agent.
 * - `low`: telemetry, read queries (fleet, audit, journal, compensations, alerts, policy,
 *   drills), metrics and the console's files. They take turns (see {@link Admission}) and are shed
 *   first, with 429 and `Retry-After`.
 */
export type Priority = 'critical' | 'normal' | 'low';

/** The status a request whose client left before its turn is answered with (nobody reads it; nginx's "client closed request"). */
const CLIENT_LEFT = 499;

const CRITICAL: [string, RegExp][] = [
  ['POST', /^\/v1\/directives$/],
  ['POST', /^\/v1\/directives\/[^/]+\/(resume|step)$/],
  ['POST', /^\/v1\/agents\/[^/]+\/[^/]+\/kill$/],
  ['GET', /^\/v1\/(stream|launchers\/stream)$/],
  ['POST', /^\/v1\/workers\/[^/]+\/(ack|halted|heartbeat)$/],
  ['POST', /^\/v1\/workers\/reports$/],
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

/** See {@link AdmissionOptions.callers}. */
export interface Callers {
  known(authorization: string | undefined): string | null;
  learn(authorization: string | undefined): void;
}

/** Most tokens {@link tokenCallers} checks at once for `learn`: a flood of invented ones costs at most that many store reads at a time. */
const LEARNING = 8;

/**
 * Callers by token ({@link AdmissionOptions.callers}): a token the authenticator knows is a caller
 * of its own; an unknown caller whose request was shed for the unknown callers' share has its
 * token checked (at most {@link LEARNING} at once), so a real one is known to its retry.
 */
export function tokenCallers(auth: Pick<Authenticator, 'knownCaller' | 'authenticate'>): Callers {
  let learning = 0;
  return {
    known: (h) => auth.knownCaller(h),
    learn: (h) => {
      if (learning >= LEARNING || h === undefined) return;
      learning += 1;
      void auth
        .authenticate(h)
        .catch(() => {})
        .finally(() => (learning -= 1));
    },
  };
}

/** Every header value a caller of its own (the default of {@link AdmissionOptions.callers}). */
const EACH_HEADER: Callers = { known: (h) => h ?? '', learn: () => {} };

/** The caller every request from an unknown caller counts against (see {@link AdmissionOptions.callers}). */
const UNKNOWN_CALLER = '\u0000unknown';

/** Options of {@link Admission}. */
export interface AdmissionOptions {
  lag: LagSource;
  /** Shed low-priority requests while the event loop runs this late, ms. Default 100. */
  shedLagMs?: number;
  /**
   * Shed low-priority requests beyond this many in flight at once, running or waiting their turn
   * (a bound on the memory a flood may hold; time is bounded by `maxWaitMs`). Default 256.
   */
  maxLowInFlight?: number;
  /**
   * Shed one caller's low-priority requests beyond this many in flight at once (a caller: see
   * `callers`), so that one client's flood cannot hold every place of `maxLowInFlight` and get
   * another tenant's reads shed while the loop is on time. Default a quarter of `maxLowInFlight`.
   */
  maxLowPerCaller?: number;
  /**
   * Who a low-priority request counts against, from its Authorization header, before it is
   * authenticated. `known` names a caller this control plane has authenticated (a token it
   * knows), or null; every request it does not know (no token, a made-up one, one not seen yet)
   * counts against one caller together, so a flood of invented tokens gets no more places than
   * one token. `learn` is told of an unknown caller's request shed for that share: checking its
   * token makes it known to its next request. Default: each header value a caller of its own.
   */
  callers?: Callers;
  /**
   * Low-priority work one turn of the event loop may do, in ms of the loop's time since the first
   * of it started: past it, the next one waits for the loop to turn (timers, streams and
   * high-priority requests run in between). Default 2.
   */
  turnBudgetMs?: number;
  /** A low-priority request that waited its turn this long is shed instead of processed, ms. Default 2000. */
  maxWaitMs?: number;
  /**
   * A late loop sheds only a flood: low-priority requests arriving at this rate or more (per
   * second, over the last second). A trickle of reads costs nothing worth shedding. Default 50.
   */
  floodPerS?: number;
  /** Monotonic time in ms (a seam for tests). Default `performance.now`. */
  now?: () => number;
  /** Calls `fn` once the event loop has turned (a seam for tests). Default `setImmediate`. */
  nextTurn?: (fn: () => void) => void;
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
 *
 * Admitted low-priority requests take turns: one at a time, one after another while the current
 * turn of the event loop has spent less than `turnBudgetMs` on them; the rest wait in arrival
 * order while the loop serves timers, streams and high-priority requests, and are shed if they
 * waited `maxWaitMs`; one whose client leaves while it waits leaves the queue at once, and is
 * never processed. (One that awaits I/O, such as an audit verification in its worker thread,
 * lets the next start at the next turn.) Without turns, a flood that arrives in one read of its
 * sockets is processed in one synchronous stretch (64 reads of a few ms each: a loop 200 ms
 * late), and shedding by lag acts only once the loop is already late. Waiting, instead of a 429
 * at once, also keeps a client that retries at once from turning each shed request into another.
 */
export class Admission {
  readonly #lag: LagSource;
  readonly #shedLagMs: number;
  readonly #maxLowInFlight: number;
  readonly #maxLowPerCaller: number;
  readonly #callers: Callers;
  /** Low-priority requests in flight per caller (see {@link AdmissionOptions.maxLowPerCaller}); only callers with some. */
  readonly #perCaller = new Map<string, number>();
  readonly #turnBudgetMs: number;
  readonly #maxWaitMs: number;
  readonly #retryAfterS: number;
  readonly #onShed: (priority: Priority, path: string) => void;
  readonly #floodPerS: number;
  readonly #now: () => number;
  readonly #nextTurn: (fn: () => void) => void;
  /** Arrival times of the low-priority requests of the last second, oldest first. */
  readonly #arrivals: number[] = [];
  /** Low-priority requests waiting their turn, oldest first: each is started with its turn's number. */
  readonly #waiting: ((turn: number) => void)[] = [];
  #lowInFlight = 0;
  /** The current turn of the loop (counted while low-priority work is done), and whether one is open. */
  #turn = 0;
  #turnOpen = false;
  /** When the current turn's low-priority work started, ms. */
  #turnStart = 0;
  /** Low-priority requests started in the current turn and not finished yet. */
  #unfinished = 0;

  constructor(opts: AdmissionOptions) {
    this.#lag = opts.lag;
    this.#shedLagMs = opts.shedLagMs ?? 100;
    this.#maxLowInFlight = opts.maxLowInFlight ?? 256;
    this.#maxLowPerCaller = opts.maxLowPerCaller ?? Math.max(1, Math.floor(this.#maxLowInFlight / 4));
    this.#callers = opts.callers ?? EACH_HEADER;
    this.#turnBudgetMs = opts.turnBudgetMs ?? 2;
    this.#maxWaitMs = opts.maxWaitMs ?? 2000;
    this.#retryAfterS = opts.retryAfterS ?? 1;
    this.#onShed = opts.onShed ?? (() => {});
    this.#floodPerS = opts.floodPerS ?? 50;
    this.#now = opts.now ?? (() => performance.now());
    this.#nextTurn = opts.nextTurn ?? ((fn) => void setImmediate(fn));
  }

  /** Low-priority requests that arrived in the last second (this one included, once noted). */
  #recentLow(note: boolean): number {
    const now = this.#now();
    if (note) this.#arrivals.push(now);
    while (this.#arrivals.length > 0 && this.#arrivals[0]! <= now - 1000) this.#arrivals.shift();
    return this.#arrivals.length;
  }

  /** Low-priority requests admitted and not answered yet (running or waiting their turn). */
  get lowInFlight(): number {
    return this.#lowInFlight;
  }

  /** Low-priority requests waiting their turn. */
  get lowWaiting(): number {
    return this.#waiting.length;
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

  /**
   * True when a low-priority request may start now: none started in this turn is unfinished, and
   * the turn spent less than its budget (a turn opens with its first request).
   */
  #mayStart(): boolean {
    if (this.#unfinished > 0) return false;
    const now = this.#now();
    if (!this.#turnOpen) {
      this.#turnOpen = true;
      this.#turn += 1;
      this.#turnStart = now;
      this.#nextTurn(() => {
        this.#turnOpen = false;
        this.#unfinished = 0;
        this.#startWaiting();
      });
      return true;
    }
    return now - this.#turnStart < this.#turnBudgetMs;
  }

  /** Notes a low-priority request started; returns its turn. */
  #begin(): number {
    this.#unfinished += 1;
    return this.#turn;
  }

  /** Notes a request of `turn` finished (or left the loop for good), and starts the next if it may. */
  #end(turn: number): void {
    if (turn === this.#turn && this.#turnOpen) this.#unfinished -= 1;
    this.#startWaiting();
  }

  #startWaiting(): void {
    if (this.#waiting.length > 0 && this.#mayStart()) this.#waiting.shift()!(this.#begin());
  }

  /**
   * Waits for a turn: resolves with it, or with null as soon as the client's connection closes
   * (the response's `close` before it was sent), which frees the request's place in the queue.
   */
  #wait(c: Context): Promise<number | null> {
    const outgoing = (c.env as { outgoing?: Pick<EventEmitter, 'once' | 'off'> } | undefined)?.outgoing;
    return new Promise<number | null>((ok) => {
      const left = () => {
        const i = this.#waiting.indexOf(start);
        if (i < 0) return;
        this.#waiting.splice(i, 1);
        ok(null);
      };
      const start = (turn: number) => {
        outgoing?.off('close', left);
        ok(turn);
      };
      this.#waiting.push(start);
      outgoing?.once('close', left);
    });
  }

  /** A 429 `overloaded` answer (built directly: a shed request should cost as little as possible). */
  #shed(c: Context, priority: Priority, reason: string): Response {
    this.#onShed(priority, c.req.path);
    const body: WireError = {
      error: {
        code: 'overloaded',
        message: `${reason}: retry after ${this.#retryAfterS} s`,
        details: { retryAfterMs: this.#retryAfterS * 1000, priority },
      },
    };
    const res = c.json(body, HTTP_STATUS.overloaded as 429);
    res.headers.set('retry-after', String(this.#retryAfterS));
    return res;
  }

  /** The Hono middleware: sheds, admits, or lets a low-priority request wait its turn. */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      const priority = priorityOf(c.req.method, c.req.path);
      if (priority !== 'low') return next();
      const reason = this.shedReason(priority, true);
      if (reason !== null) return this.#shed(c, priority, reason);
      const authorization = c.req.header('authorization');
      const caller = this.#callers.known(authorization) ?? UNKNOWN_CALLER;
      const mine = this.#perCaller.get(caller) ?? 0;
      if (mine >= this.#maxLowPerCaller) {
        if (caller === UNKNOWN_CALLER) this.#callers.learn(authorization);
        return this.#shed(
          c,
          priority,
          `too many read queries of this caller in flight (${mine}; the control plane takes ${this.#maxLowPerCaller} of one caller at once)`,
        );
      }
      this.#perCaller.set(caller, mine + 1);
      this.#lowInFlight += 1;
      try {
        const arrived = this.#now();
        const turn = this.#waiting.length === 0 && this.#mayStart() ? this.#begin() : await this.#wait(c);
        // The client left while it waited: nobody reads the answer, and its place is already free.
        if (turn === null) return new Response(null, { status: CLIENT_LEFT });
        const waited = this.#now() - arrived;
        if (waited >= this.#maxWaitMs) {
          this.#end(turn);
          return this.#shed(
            c,
            priority,
            `the control plane is overloaded (this request waited ${Math.round(waited)} ms for its turn)`,
          );
        }
        try {
          await next();
        } finally {
          this.#end(turn);
        }
      } finally {
        this.#lowInFlight -= 1;
        const left = this.#perCaller.get(caller)! - 1;
        if (left === 0) this.#perCaller.delete(caller);
        else this.#perCaller.set(caller, left);
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
