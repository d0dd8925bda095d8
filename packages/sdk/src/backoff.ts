/** Options for {@link Backoff}. */
export interface BackoffOptions {
  /** First delay, in ms. Default 100. */
  initialMs?: number;
  /** Ceiling, in ms. Default 5 000. */
  maxMs?: number;
  /** Relative jitter, ± this fraction of the delay. Default 0.2. */
  jitter?: number;
  /** Uniform random source in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** Exponential reconnect delays: `initialMs` doubling up to `maxMs`, each ± `jitter`. */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? 5_000;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt, in ms; each call doubles the base. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.max(0, Math.round(base * (1 + this.jitter * (2 * this.random() - 1))));
  }

  /** Starts over at `initialMs` (after a healthy snapshot). */
  reset(): void {
    this.attempt = 0;
  }
}
