/**
 * The live picture of the fleet the console polls: one page of `GET /v1/fleet` (with the counts
 * of the whole view) and the active directives, fetched together, with effect rates computed
 * between successive reports. A fleet of a thousand workers is never fetched whole.
 */
import type { Directive, FleetGroup, FleetPage, FleetState } from '@killpath/protocol';
import type { Api } from './api.ts';
import type { FleetWorkerView } from './model.ts';
import { RateMeter } from './rate.ts';

/** How often the fleet and the active directives are polled, in ms. */
export const LIVE_INTERVAL_MS = 500;

/** Workers the fleet view asks for per page (the server also ends a page at its run budget). */
export const FLEET_PAGE_SIZE = 50;

/** Which page of the fleet view to poll: filters, and the cursor of the page (none: the first). */
export interface FleetQuery {
  tenant?: string;
  agent?: string;
  run?: string;
  cursor?: string;
}

/** The `GET /v1/fleet` path of a query. */
export function fleetPath(q: FleetQuery, limit = FLEET_PAGE_SIZE): string {
  const params = new URLSearchParams({ limit: String(limit) });
  for (const k of ['tenant', 'agent', 'run', 'cursor'] as const) {
    const v = q[k];
    if (v !== undefined && v !== '') params.set(k, v);
  }
  return `/v1/fleet?${params.toString()}`;
}

/** True when two queries ask for the same page. */
export function sameQuery(a: FleetQuery, b: FleetQuery): boolean {
  return a.tenant === b.tenant && a.agent === b.agent && a.run === b.run && a.cursor === b.cursor;
}

/** One poll's answer. */
export interface LiveData {
  rev: number;
  /** The workers of the page asked for. */
  workers: FleetWorkerView[];
  /** Workers the query's filters match (on every page). */
  total: number;
  nextCursor: string | null;
  /** Counts by tenant and agent of the whole view, whatever page is shown. */
  groups: FleetGroup[];
  states: Partial<Record<FleetState, number>>;
  /** The query this answer is for. */
  query: FleetQuery;
  directives: Directive[];
  /** Active directives the caller may see (the route returns the newest 500 of them). */
  directivesTotal: number;
  /** Effects per second by {@link runKey} and by worker id (sum of its runs); null when unknown. */
  rates: Map<string, number | null>;
  fetchedAt: number;
}

/** Key of a run's rate. */
export function runKey(workerId: string, runId: string): string {
  return `${workerId}/${runId}`;
}

/**
 * Returns a loader for a {@link Poller} that keeps effect rates across polls. `query` is read at
 * each poll, so paging or searching needs no new poller.
 */
export function liveLoader(
  api: Api,
  query: () => FleetQuery = () => ({}),
  now: () => number = () => Date.now(),
): () => Promise<LiveData> {
  const meter = new RateMeter();
  return async () => {
    const q = query();
    const [fleet, active] = await Promise.all([
      api.get<FleetPage>(fleetPath(q)),
      api.get<{ rev: number; total?: number; directives: Directive[] }>('/v1/directives?active=true'),
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
      total: fleet.total ?? fleet.workers.length,
      nextCursor: fleet.nextCursor ?? null,
      groups: fleet.groups ?? [],
      states: fleet.states ?? {},
      query: q,
      directives: active.directives,
      directivesTotal: active.total ?? active.directives.length,
      rates,
      fetchedAt,
    };
  };
}
