import { systemClock, type Clock } from '@killpath/protocol';
import type { Logger } from '../log.ts';
import type { WatchedWorker } from './deadman.ts';
import { AbsenceWatch } from './liveness.ts';

/** What the watchdog asks of the control plane: in process (`killpath serve`) or over HTTP (`killpath watchdog`). */
export interface WatchdogPort {
  /** The workers the deadman watches, with their silence. */
  workers(): Promise<WatchedWorker[]>;
  /** Trips a silent worker (the control plane checks the silence again). */
  /** Trips worker `workerId` of `tenant`/`agent` (a worker id is its agent's own). */
  trip(w: { workerId: string; tenant: string; agent: string }): Promise<void>;
  /** Beats (the watchdog is alive) and learns how long the supervisor has been silent (`null`: no supervisor expected). */
  beat(): Promise<{ supervisorAgoMs: number | null }>;
  /** Raises the supervisor's absence (or its return) to the notification sink and the audit log. */
  absence(kind: 'supervisor.absent' | 'supervisor.recovered', ageMs: number): Promise<void>;
}

/** Options of {@link Watchdog}. */
export interface WatchdogOptions {
  port: WatchdogPort;
  log: Logger;
  /** How often it looks, in ms (default 250), or a function asked before each tick. Detection comes at most this late after the threshold. */
  tickMs?: number | (() => number);
  /** The supervisor counts as absent after this long without a beat, in ms (default 5000). */
  absentAfterMs?: number;
  /** Called when the control plane cannot be reached (external watchdog), once per outage; and when it is back. */
  onUnreachable?: (err: unknown) => void;
  onReachable?: () => void;
  /** The clock of its ticks (default the system clock; tests pass a manual one). */
  clock?: Clock;
}

/**
 * The deadman's watchdog: every tick it beats, checks the supervisor is alive (raising
 * `supervisor.absent` once per outage), and trips every watched worker whose silence passed
 * its threshold (`missed × interval`). The same loop runs inside `killpath serve` and as its
 * own process (`killpath watchdog`), with its own credentials.
 */
export class Watchdog {
  readonly #o: Required<Omit<WatchdogOptions, 'onUnreachable' | 'onReachable' | 'clock'>> &
    Pick<WatchdogOptions, 'onUnreachable' | 'onReachable'>;
  readonly #clock: Clock;
  readonly #supervisor: AbsenceWatch;
  readonly #tripping = new Set<string>();
  #timer: unknown = null;
  #running: Promise<void> | null = null;
  #unreachable = false;
  #stopped = false;

  constructor(opts: WatchdogOptions) {
    this.#o = { tickMs: 250, absentAfterMs: 5000, ...opts };
    this.#clock = opts.clock ?? systemClock;
    const port = opts.port;
    this.#supervisor = new AbsenceWatch(
      this.#o.absentAfterMs,
      (age) =>
        void port
          .absence('supervisor.absent', age)
          .catch((err: unknown) =>
            this.#o.log.error('could not raise supervisor.absent', { err: String(err) }),
          ),
      (age) =>
        void port
          .absence('supervisor.recovered', age)
          .catch((err: unknown) =>
            this.#o.log.error('could not raise supervisor.recovered', { err: String(err) }),
          ),
    );
  }

  /** Starts ticking. */
  start(): void {
    this.#stopped = false;
    const loop = () => {
      if (this.#stopped) return;
      this.#running = this.tick().finally(() => {
        this.#running = null;
        if (this.#stopped) return;
        const t = this.#o.tickMs;
        this.#timer = this.#clock.setTimeout(loop, typeof t === 'number' ? t : t());
      });
    };
    loop();
  }

  /** Stops ticking; resolves when a tick in progress is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** Resolves when the tick in progress (if any) is done. */
  async idle(): Promise<void> {
    await this.#running;
  }

  /** One look: beat, watch the supervisor, trip silent workers. Never throws. */
  async tick(): Promise<void> {
    const port = this.#o.port;
    try {
      const { supervisorAgoMs } = await port.beat();
      if (supervisorAgoMs !== null) this.#supervisor.check(supervisorAgoMs);
      const workers = await port.workers();
      if (this.#unreachable) {
        this.#unreachable = false;
        this.#o.onReachable?.();
      }
      const due = workers.filter(
        (w) => !w.tripped && w.heartbeatAgoMs > w.thresholdMs && !this.#tripping.has(tripKey(w)),
      );
      await Promise.all(due.map((w) => this.#trip(w)));
    } catch (err) {
      if (!this.#unreachable) {
        this.#unreachable = true;
        this.#o.log.error('watchdog: control plane unreachable', {
          err: err instanceof Error ? err.message : String(err),
        });
        this.#o.onUnreachable?.(err);
      }
    }
  }

  async #trip(w: WatchedWorker): Promise<void> {
    this.#tripping.add(tripKey(w));
    try {
      await this.#o.port.trip(w);
    } catch (err) {
      // A heartbeat may have landed in between (conflict): it is alive after all.
      this.#o.log.warn('watchdog: trip refused', {
        workerId: w.workerId,
        err: err instanceof Error ? err.message : String(err),
      });
    } finally {
      this.#tripping.delete(tripKey(w));
    }
  }
}

function tripKey(w: WatchedWorker): string {
  return `${w.tenant}\u0000${w.agent}\u0000${w.workerId}`;
}
