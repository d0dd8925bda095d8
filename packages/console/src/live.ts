/**
 * The live picture of the fleet the console polls: `GET /v1/fleet` and the active directives,
 * fetched together, with effect rates computed between successive reports.
 */
import type { Directive } from '@killpath/protocol';
import type { Api } from './api.ts';
import type { FleetWorkerView } from './model.ts';
import { RateMeter } from './rate.ts';

/** How often the fleet and the active directives are polled, in ms. */
export const LIVE_INTERVAL_MS = 500;

/** One poll's answer. */
export interface LiveData {
  rev: number;
  workers: FleetWorkerView[];
  directives: Directive[];
  /** Effects per second by {@link runKey} and by worker id (sum of its runs); null when unknown. */
  rates: Map<string, number | null>;
  fetchedAt: number;
}

/** Key of a run's rate. */
export function runKey(workerId: string, runId: string): string {
  return `${workerId}/${runId}`;
}

/** Returns a loader for a {@link Poller} that keeps effect rates across polls. */
export function liveLoader(api: Api, now: () => number = () => Date.now()): () => Promise<LiveData> {
  const meter = new RateMeter();
  return async () => {
    const [fleet, active] = await Promise.all([
      api.get<{ rev: number; workers: FleetWorkerView[] }>('/v1/fleet'),
      api.get<{ rev: number; directives: Directive[] }>('/v1/directives?active=true'),
    ]);
    const fetchedAt = now();
    const rates = new Map<string, number | null>();
    const keep = new Set<string>();
    for (const w of fleet.workers) {
      const reportAt = fetchedAt - (w.lastHeartbeatAgoMs ?? 0);
      let sum: number | null = null;
      for (const r of w.runs) {
        const key = runKey(w.workerId, r.runId);
        keep.add(key);
        meter.observe(key, r.effects, reportAt);
        const rate = meter.rate(key, fetchedAt);
        rates.set(key, rate);
        if (rate !== null) sum = (sum ?? 0) + rate;
      }
      rates.set(w.workerId, sum);
    }
    meter.retain(keep);
    return {
      rev: Math.max(fleet.rev, active.rev),
      workers: fleet.workers,
      directives: active.directives,
      rates,
      fetchedAt,
    };
  };
}
