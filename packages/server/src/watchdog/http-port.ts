import { KillpathError, errorFromWireText } from '@killpath/protocol';
import type { WatchedWorker } from './deadman.ts';
import type { WatchdogPort } from './watchdog.ts';

/**
 * The watchdog's port over the control plane's HTTP API (`killpath watchdog`): it beats
 * (`POST /v1/watchdog/beat`), lists the watched workers (`GET /v1/watchdog/workers`), trips
 * (`POST /v1/watchdog/trip`) and raises the supervisor's absence (`POST /v1/watchdog/alerts`),
 * with an admin token of its own. Each request times out after `timeoutMs` (default 3000).
 *
 * `url` may list several replicas of one control plane: each request goes to the one that
 * answered last and moves to the next when that one cannot be reached, does not answer in time
 * or answers 503 `unavailable` (a replica that cannot vouch for its state); every request here
 * is safe to send twice (a beat, a read, an alert; a trip converges on one deadman directive).
 * A refusal (4xx, another 5xx) is the answer.
 */
export function httpWatchdogPort(opts: {
  url: string | readonly string[];
  token: string;
  id: string;
  timeoutMs?: number;
}): WatchdogPort {
  const bases = (typeof opts.url === 'string' ? [opts.url] : [...opts.url]).map((u) => u.replace(/\/+$/, ''));
  let at = 0;
  const once = async <T>(base: string, method: string, path: string, body?: unknown): Promise<T> => {
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
    if (!res.ok) {
      const err = errorFromWireText(res.status, await res.text().catch(() => ''), `${base}${path}`);
      if (res.status === 503 && err.code === 'unavailable') throw new ReplicaDown(err);
      throw err;
    }
    return (await res.json().catch(() => undefined)) as T;
  };
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    for (let tried = 1; ; tried++) {
      try {
        return await once<T>(bases[at]!, method, path, body);
      } catch (err) {
        // An answer other than a replica's 503 is the answer; a network failure or a 503 moves on.
        const down = err instanceof ReplicaDown;
        const answered = !down && err instanceof KillpathError;
        if (answered || tried >= bases.length) throw down ? err.cause : err;
        at = (at + 1) % bases.length;
      }
    }
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

/** A replica's 503 `unavailable`: it refused the request without processing it. */
class ReplicaDown extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
}
