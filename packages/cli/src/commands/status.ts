import {
  KillpathError,
  flagWords,
  formatRelease,
  isIdentifier,
  workerWarning,
  type Directive,
  type FleetPage,
  type FleetWorker,
} from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import type { ApiClient } from '../api.ts';
import { scopeLabel, table } from '../output.ts';

export const STATUS_HELP = `killpath status [--wait SECONDS [--run R]] [--json]

Shows the fleet (workers, the release each runs, their runs, last heartbeat, observed rev, state)
and the active directives (with the releases each recorded at its commit).

  --wait SECONDS   first wait, up to SECONDS, until the control plane answers (a serve just
                   started in the background); exit 1 if it does not
  --run R          with --wait: also wait until a worker holds run R`;

/** Every worker of the fleet view, page after page (`GET /v1/fleet` answers one page at a time). */
export async function fetchFleet(api: ApiClient): Promise<{ rev: number; workers: FleetWorker[] }> {
  const workers: FleetWorker[] = [];
  let rev = 0;
  let cursor: string | null = null;
  do {
    const page: FleetPage = await api.get<FleetPage>(
      `/v1/fleet?limit=500${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
    );
    workers.push(...page.workers);
    rev = Math.max(rev, page.rev);
    cursor = page.nextCursor ?? null;
  } while (cursor !== null);
  return { rev, workers };
}

/** Fleet and directives, fetched together. */
async function fetchStatus(api: ApiClient) {
  const [fleet, dirs] = await Promise.all([
    fetchFleet(api),
    api.get<{ rev: number; directives: Directive[] }>('/v1/directives?active=true'),
  ]);
  return { api, fleet, dirs };
}

/**
 * Polls every 250 ms until the control plane answers (and, with `run`, a worker holds it), for
 * at most `seconds`. Not answering yet is a missing server.json, a refused connection or no
 * answer; anything else (a bad token) ends the wait at once.
 */
async function waitForStatus(
  values: Parameters<typeof clientFor>[0],
  seconds: number,
  run: string | undefined,
): Promise<Awaited<ReturnType<typeof fetchStatus>> | string> {
  const deadline = Date.now() + seconds * 1000;
  let last: string;
  for (;;) {
    try {
      const got = await fetchStatus(clientFor(values));
      if (run === undefined || got.fleet.workers.some((w) => w.runs.some((r) => r.runId === run))) return got;
      last = `the control plane answers, no worker holds run ${run} yet`;
    } catch (err) {
      const waiting =
        err instanceof KillpathError &&
        (err.code === 'unavailable' || (err.code === 'invalid_request' && /server\.json/.test(err.message)));
      if (!waiting) throw err;
      last = err.message;
    }
    if (Date.now() >= deadline) return last;
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/** `killpath status`. */
export async function status(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    json: { type: 'boolean' },
    wait: { type: 'string' },
    run: { type: 'string' },
  });
  if (values.help) {
    console.log(STATUS_HELP);
    return 0;
  }
  if (values.run !== undefined && values.wait === undefined)
    throw new KillpathError(
      'invalid_request',
      '--run goes with --wait SECONDS (wait until a worker holds the run)',
    );
  if (values.run !== undefined && !isIdentifier(values.run))
    throw new KillpathError('invalid_request', '--run must be 1-128 letters, digits or ._:@-');
  let got: Awaited<ReturnType<typeof fetchStatus>>;
  if (values.wait !== undefined) {
    const seconds = intFlag('wait', values.wait, 0);
    const r = await waitForStatus(values, seconds, values.run);
    if (typeof r === 'string') {
      console.error(`killpath status: gave up after --wait ${seconds} s: ${r}`);
      return 1;
    }
    got = r;
  } else got = await fetchStatus(clientFor(values));
  const { api, fleet, dirs } = got;
  if (values.json) {
    console.log(
      JSON.stringify({ rev: fleet.rev, workers: fleet.workers, directives: dirs.directives }, null, 2),
    );
    return 0;
  }
  console.log(`control plane ${api.url}  rev ${fleet.rev}\n`);
  console.log(`fleet: ${fleet.workers.length} worker(s)`);
  if (fleet.workers.length > 0) {
    console.log(
      table(
        ['tenant', 'agent', 'worker', 'release', 'pid', 'state', 'flags', 'rev', 'heartbeat', 'runs'],
        fleet.workers.map((w) => [
          w.tenant,
          w.agent,
          w.workerId.slice(0, 12),
          // Older control planes send no release.
          w.release === undefined || Object.keys(w.release).length === 0 ? null : formatRelease(w.release),
          w.pid,
          w.connected
            ? `${w.state}${workerWarning(w) === null ? '' : ` (${workerWarning(w)})`}`
            : `${w.state} (disconnected)`,
          flagWords(w.flags).join(', ') || null,
          w.observedRev,
          w.lastHeartbeatAgoMs === null
            ? 'no heartbeat yet'
            : `${(w.lastHeartbeatAgoMs / 1000).toFixed(1)}s ago`,
          w.runs.map((r) => `${r.runId}${r.state === 'running' ? '' : `[${r.state}]`}`).join(' ') || null,
        ]),
      ),
    );
  }
  console.log(`\nactive directives: ${dirs.directives.length}`);
  if (dirs.directives.length > 0) {
    console.log(
      table(
        ['id', 'rev', 'level', 'scope', 'tools', 'releases', 'actor', 'reason'],
        dirs.directives.map((d) => [
          d.id,
          d.rev,
          d.level,
          scopeLabel(d),
          d.capabilities?.join(',') ?? null,
          (d.releases ?? []).map(formatRelease).join('; ') || null,
          d.actor,
          d.reason,
        ]),
      ),
    );
  }
  return 0;
}
