import { errorFromWireText } from '@killpath/protocol';
import type { WatchedWorker } from './deadman.ts';
import type { WatchdogPort } from './watchdog.ts';

/**
 * The watchdog's port over the control plane's HTTP API (`killpath watchdog`): it beats
 * (`POST /v1/watchdog/beat`), lists the watched workers (`GET /v1/watchdog/workers`), trips
 * (`POST /v1/watchdog/trip`) and raises the supervisor's absence (`POST /v1/watchdog/alerts`),
 * with an admin token of its own. Each request times out after `timeoutMs` (default 3000).
 */
export function httpWatchdogPort(opts: {
  url: string;
  token: string;
  id: string;
  timeoutMs?: number;
}): WatchdogPort {
  const base = opts.url.replace(/\/+$/, '');
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${opts.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 3000),
    });
    if (res.status === 204) return undefined as T;
    if (!res.ok) throw errorFromWireText(res.status, await res.text().catch(() => ''), `${base}${path}`);
    return (await res.json().catch(() => undefined)) as T;
  };
  return {
    async workers() {
      return (await call<{ workers: WatchedWorker[] }>('GET', '/v1/watchdog/workers')).workers;
    },
    async trip(w) {
      await call('POST', '/v1/watchdog/trip', {
        watchdog: opts.id,
        workerId: w.workerId,
        tenant: w.tenant,
        agent: w.agent,
      });
    },
    async beat() {
      const r = await call<{ supervisorAgoMs: number | null }>('POST', '/v1/watchdog/beat', {
        watchdog: opts.id,
      });
      return { supervisorAgoMs: r.supervisorAgoMs };
    },
    async absence(kind, ageMs) {
      await call('POST', '/v1/watchdog/alerts', { watchdog: opts.id, kind, ageMs });
    },
  };
}
