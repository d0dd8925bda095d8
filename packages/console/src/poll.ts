/**
 * Polls one loader at a fixed interval, never two loads at once, and keeps what the page
 * needs to say about it: the last good answer, whether the control plane answers, since when
 * it does not.
 */
import { ApiError } from './api.ts';

/** What a {@link Poller} knows after each load. */
export interface PollState<T> {
  data: T | null;
  /** The last load succeeded. */
  ok: boolean;
  error: ApiError | null;
  /** Clock time of the last successful load. */
  lastOkAt: number | null;
  /** Clock time of the first failure of the current run of failures. */
  failingSince: number | null;
}

/** Timer functions (a seam for tests). */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Options of {@link Poller}. */
export interface PollerOptions<T> {
  intervalMs: number;
  onUpdate(state: PollState<T>): void;
  now?: () => number;
  timers?: Timers;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Runs `load` every `intervalMs` after the previous load settled, until stopped. */
export class Poller<T> {
  readonly #load: () => Promise<T>;
  readonly #opts: PollerOptions<T>;
  readonly #now: () => number;
  readonly #timers: Timers;
  #state: PollState<T> = { data: null, ok: false, error: null, lastOkAt: null, failingSince: null };
  #timer: unknown = null;
  #running = false;
  #again = false;
  #stopped = true;

  constructor(load: () => Promise<T>, opts: PollerOptions<T>) {
    this.#load = load;
    this.#opts = opts;
    this.#now = opts.now ?? (() => Date.now());
    this.#timers = opts.timers ?? realTimers;
  }

  get state(): PollState<T> {
    return this.#state;
  }

  /** Starts polling with a load right away. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.refresh();
  }

  /** Stops polling; a load in flight is ignored when it settles. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
  }

  /** Loads now (or right after the load in flight), then goes on at the interval. */
  async refresh(): Promise<void> {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
    this.#running = true;
    try {
      const data = await this.#load();
      if (this.#stopped) return;
      this.#state = { data, ok: true, error: null, lastOkAt: this.#now(), failingSince: null };
    } catch (err) {
      if (this.#stopped) return;
      const error =
        err instanceof ApiError
          ? err
          : new ApiError(0, 'internal', err instanceof Error ? err.message : String(err));
      this.#state = {
        ...this.#state,
        ok: false,
        error,
        failingSince: this.#state.failingSince ?? this.#now(),
      };
    } finally {
      this.#running = false;
    }
    this.#opts.onUpdate(this.#state);
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      void this.refresh();
      return;
    }
    this.#timer = this.#timers.set(() => {
      this.#timer = null;
      void this.refresh();
    }, this.#opts.intervalMs);
  }
}
