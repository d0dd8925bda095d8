/**
 * Effect rates from the fleet's cumulative `effects` counts. Workers report counts in their
 * heartbeats, so the rate is taken between successive reports, each timed by when it reached
 * the control plane (the poll's time less the worker's `lastHeartbeatAgoMs`), over a short
 * window: a halted run reads 0 one report after it stopped.
 */

interface Point {
  at: number;
  effects: number;
}

/** Two reports closer than this (ms) are the same report seen by two polls. */
const SAME_REPORT_MS = 100;

/** Per-key effect rates in effects per second. Times are milliseconds on one clock (the page's). */
export class RateMeter {
  readonly #points = new Map<string, Point[]>();
  readonly #windowMs: number;
  readonly #staleMs: number;

  /**
   * @param windowMs span of reports the rate is averaged over; at least the last two reports count (default 2 s)
   * @param staleMs with no report for this long the rate is unknown again (default 15 s)
   */
  constructor(windowMs = 2000, staleMs = 15_000) {
    this.#windowMs = windowMs;
    this.#staleMs = staleMs;
  }

  /** Records the count of `key` from a report that reached the control plane at `reportAt`. */
  observe(key: string, effects: number, reportAt: number): void {
    const pts = this.#points.get(key);
    const last = pts?.[pts.length - 1];
    if (!pts || !last || effects < last.effects) {
      // First sight, or the counter went back (a new worker with the same run id): start over.
      this.#points.set(key, [{ at: reportAt, effects }]);
      return;
    }
    if (reportAt - last.at < SAME_REPORT_MS) {
      last.effects = effects;
      return;
    }
    pts.push({ at: reportAt, effects });
    while (pts.length > 2 && pts[1]!.at <= reportAt - this.#windowMs) pts.shift();
  }

  /** Effects per second of `key` at `now`; null until two reports are in, or when reports stopped coming. */
  rate(key: string, now: number): number | null {
    const pts = this.#points.get(key);
    if (!pts || pts.length < 2) return null;
    const first = pts[0]!;
    const last = pts[pts.length - 1]!;
    if (now - last.at > this.#staleMs) return null;
    return ((last.effects - first.effects) * 1000) / (last.at - first.at);
  }

  /** Forgets every key not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const k of this.#points.keys()) if (!keep.has(k)) this.#points.delete(k);
  }
}

/** Sum of known rates; null when none is known. */
export function sumRates(rates: readonly (number | null)[]): number | null {
  let sum: number | null = null;
  for (const r of rates) if (r !== null) sum = (sum ?? 0) + r;
  return sum;
}
