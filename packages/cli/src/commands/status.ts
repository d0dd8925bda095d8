import {
  KillpathError,
  flagWords,
  formatRelease,
  isIdentifier,
  workerWarning,
  type Directive,
  type AuditRecord,
  type FleetGroup,
  type FleetPage,
  type FleetState,
} from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import type { ApiClient } from '../api.ts';
import { scopeLabel, table } from '../output.ts';
import { PAGE_OPTIONS, nextPageCommand } from '../paging.ts';

export const STATUS_HELP = `killpath status [--run R] [--tenant T] [--limit N | --all] [--cursor C] [--since MINUTES] [--json]
killpath status --wait SECONDS [--run R]

Shows the fleet (workers, the release each runs, their runs, last heartbeat, observed rev, state)
one page at a time ("N of M"), the workers that lost their lease or aborted effects recently
(so that "other runs unharmed" is checkable), and the active directives (with the releases each
recorded at its commit).

  --run R          the workers that hold run R (a run is listed from its worker's first
                   heartbeat, 5 s by default after the run starts); exit 1 when none does yet
  --tenant T       one tenant's workers (admin tokens; others see their own tenant)
  --limit N        workers per page (default 100, at most 500); the output prints the command
                   for the next page (--cursor C); --all: every page
  --since MINUTES  how far back "recently" goes (default 10): workers whose lease lapsed (stale)
                   or that aborted effects since then are flagged, with the runs concerned
  --wait SECONDS   first wait, up to SECONDS, until the control plane answers (a serve just
                   started in the background), with --run until a worker holds the run; exit 1
                   if it does not
  --json           the answer as JSON: workers, total, cursor, groups, flagged, directives`;

/** Active directives read at most (the API's largest page); more are said to exist, never cut silently. */
const MAX_DIRECTIVES = 5000;

/** Audit records read back at most when looking for recent aborted effects. */
const MAX_AUDIT_SCAN = 20_000;

/** A worker flagged in `killpath status`: its lease lapsed, or it aborted effects recently. */
export interface FlaggedWorker {
  workerId: string;
  tenant: string | null;
  agent: string | null;
  /** The fleet shows it stale: no contact for longer than the control plane's stale limit. */
  leaseLost: boolean;
  /** Effects it aborted since `since` (one per permit or effect id). */
  aborted: number;
  /** The runs those effects were of. */
  runs: string[];
  /** The directives they were aborted for; `null` in the list: aborted with no directive (a lapsed lease, a lost stream). */
  directives: (string | null)[];
}

/**
 * Workers that lost their lease (stale in the fleet view) or aborted effects since `sinceIso`
 * (from the audit log: `effect.aborted`, `in_flight_tool_calls.status` aborted), newest
 * records first; `scanned` says whether the whole window was read.
 */
export async function flaggedWorkers(
  api: ApiClient,
  sinceIso: string,
  tenant: string | undefined,
): Promise<{ flagged: FlaggedWorker[]; complete: boolean }> {
  const byId = new Map<string, FlaggedWorker & { seen: Set<string> }>();
  const entry = (workerId: string) => {
    let f = byId.get(workerId);
    if (f === undefined) {
      f = {
        workerId,
        tenant: null,
        agent: null,
        leaseLost: false,
        aborted: 0,
        runs: [],
        directives: [],
        seen: new Set(),
      };
      byId.set(workerId, f);
    }
    return f;
  };
  const t = tenant === undefined ? '' : `&tenant=${encodeURIComponent(tenant)}`;
  let cursor: string | null = null;
  do {
    const page: FleetPage = await api.get<FleetPage>(
      `/v1/fleet?state=stale&limit=500${t}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
    );
    for (const w of page.workers) {
      const f = entry(w.workerId);
      f.tenant = w.tenant;
      f.agent = w.agent;
      f.leaseLost = true;
      for (const r of w.runs) if (!f.runs.includes(r.runId)) f.runs.push(r.runId);
    }
    cursor = page.nextCursor;
  } while (cursor !== null);
  let before: number | null = null;
  let scanned = 0;
  let complete = false;
  while (scanned < MAX_AUDIT_SCAN) {
    const { records }: { records: AuditRecord[] } = await api.get<{ records: AuditRecord[] }>(
      `/v1/audit?order=desc&limit=5000&type=effect.aborted,in_flight_tool_calls.status${before === null ? '' : `&before=${before}`}`,
    );
    scanned += records.length;
    for (const r of records) {
      if (r.ts < sinceIso) {
        complete = true;
        break;
      }
      if (!r.actor.startsWith('worker:') || (tenant !== undefined && r.tenant !== tenant)) continue;
      const d = r.data;
      if (r.type === 'in_flight_tool_calls.status' && d.status !== 'aborted') continue;
      const f = entry(r.actor.slice('worker:'.length));
      f.tenant ??= r.tenant;
      // One aborted write is reported twice (its permit's outcome, its in-flight status): count it once.
      const key = typeof d.permitId === 'string' ? d.permitId : String(d.effectId ?? r.seq);
      const directive = typeof d.directiveId === 'string' ? d.directiveId : null;
      if (r.type === 'in_flight_tool_calls.status' && !f.directives.includes(directive))
        f.directives.push(directive);
      if (f.seen.has(key)) continue;
      f.seen.add(key);
      f.aborted += 1;
      if (typeof d.runId === 'string' && !f.runs.includes(d.runId)) f.runs.push(d.runId);
    }
    if (complete || records.length < 5000) {
      complete = true;
      break;
    }
    before = records.at(-1)!.seq;
  }
  const flagged = [...byId.values()].map(({ seen: _seen, ...f }) => f);
  flagged.sort((a, b) => `${a.tenant}/${a.workerId}`.localeCompare(`${b.tenant}/${b.workerId}`));
  return { flagged, complete };
}

/** What a flagged worker lost, in words. */
function flagWordsOf(f: FlaggedWorker): string {
  const bits: string[] = [];
  if (f.leaseLost) bits.push('lease lost (stale: no contact)');
  if (f.aborted > 0) {
    const why = f.directives.map((d) =>
      d === null ? 'no directive (its lease lapsed or its stream was lost)' : d,
    );
    bits.push(`aborted ${f.aborted} effect(s)${why.length ? ` for ${why.join(', ')}` : ''}`);
  }
  return bits.join('; ');
}

interface StatusOptions {
  run?: string | undefined;
  tenant?: string | undefined;
  limit: number;
  all: boolean;
  cursor?: string | undefined;
}

/** One page (or every page) of the fleet view and the active directives, fetched together. */
async function fetchStatus(api: ApiClient, o: StatusOptions) {
  const q = new URLSearchParams({ limit: String(o.all ? 500 : o.limit) });
  if (o.run !== undefined) q.set('run', o.run);
  if (o.tenant !== undefined) q.set('tenant', o.tenant);
  const fleetPage = async (cursor: string | null) => {
    if (cursor === null) q.delete('cursor');
    else q.set('cursor', cursor);
    return api.get<FleetPage>(`/v1/fleet?${q}`);
  };
  const [fleet, dirs] = await Promise.all([
    (async () => {
      const first = await fleetPage(o.cursor ?? null);
      while (o.all && first.nextCursor !== null) {
        const next = await fleetPage(first.nextCursor);
        first.workers.push(...next.workers);
        first.nextCursor = next.nextCursor;
        first.rev = Math.max(first.rev, next.rev);
      }
      return first;
    })(),
    api.get<{ rev: number; total?: number; directives: Directive[] }>(
      `/v1/directives?active=true&limit=${MAX_DIRECTIVES}`,
    ),
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
  o: StatusOptions,
): Promise<Awaited<ReturnType<typeof fetchStatus>> | string> {
  const deadline = Date.now() + seconds * 1000;
  let last: string;
  for (;;) {
    try {
      const got = await fetchStatus(clientFor(values), o);
      if (o.run === undefined || got.fleet.total > 0) return got;
      last = `the control plane answers, no worker holds run ${o.run} yet`;
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

const stateCounts = (states: Partial<Record<FleetState, number>>) =>
  Object.entries(states)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

const groupLine = (g: FleetGroup) =>
  `${g.tenant}/${g.agent}: ${g.workers} worker(s), ${g.runs} run(s) (${stateCounts(g.states)})`;

/** `killpath status`. */
export async function status(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    ...PAGE_OPTIONS,
    json: { type: 'boolean' },
    wait: { type: 'string' },
    run: { type: 'string' },
    tenant: { type: 'string' },
    since: { type: 'string' },
  });
  if (values.help) {
    console.log(STATUS_HELP);
    return 0;
  }
  if (values.run !== undefined && !isIdentifier(values.run))
    throw new KillpathError('invalid_request', '--run must be 1-128 letters, digits or ._:@-');
  if (values.tenant !== undefined && !isIdentifier(values.tenant))
    throw new KillpathError('invalid_request', '--tenant must be 1-128 letters, digits or ._:@-');
  const limit = intFlag('limit', values.limit, 100);
  if (limit < 1 || limit > 500) throw new KillpathError('invalid_request', '--limit must be from 1 to 500');
  const sinceMin = intFlag('since', values.since, 10);
  const o: StatusOptions = {
    run: values.run,
    tenant: values.tenant,
    limit,
    all: values.all === true,
    cursor: values.cursor,
  };
  let got: Awaited<ReturnType<typeof fetchStatus>>;
  if (values.wait !== undefined) {
    const seconds = intFlag('wait', values.wait, 0);
    const r = await waitForStatus(values, seconds, o);
    if (typeof r === 'string') {
      console.error(`killpath status: gave up after --wait ${seconds} s: ${r}`);
      return 1;
    }
    got = r;
  } else got = await fetchStatus(clientFor(values), o);
  const { api, fleet, dirs } = got;
  const since = new Date(Date.now() - sinceMin * 60_000).toISOString();
  const { flagged, complete } = await flaggedWorkers(api, since, values.tenant);
  const viewTotal = Object.values(fleet.states).reduce((a, b) => a + (b ?? 0), 0);
  if (values.json) {
    console.log(
      JSON.stringify(
        {
          rev: fleet.rev,
          workers: fleet.workers,
          total: fleet.total,
          cursor: fleet.nextCursor,
          groups: fleet.groups,
          states: fleet.states,
          since,
          flagged,
          flaggedComplete: complete,
          directives: dirs.directives,
        },
        null,
        2,
      ),
    );
    return values.run !== undefined && fleet.total === 0 ? 1 : 0;
  }
  if (values.run !== undefined && fleet.total === 0) {
    console.error(
      `killpath status: no worker holds run ${values.run} (yet): a run is listed from its worker's first heartbeat (every 5 s by default); killpath status --wait 30 --run ${values.run} waits for it`,
    );
    return 1;
  }
  console.log(`control plane ${api.url}  rev ${fleet.rev}\n`);
  const filtered = values.run !== undefined ? ` holding run ${values.run}` : '';
  console.log(
    `fleet: ${fleet.workers.length} of ${fleet.total} worker(s)${filtered}${fleet.total > 0 ? ` (${stateCounts(fleet.states)}${values.run !== undefined ? ' in the whole view' : ''})` : ''}`,
  );
  if (fleet.groups.length > 1 && values.run === undefined)
    for (const g of fleet.groups) console.log(`  ${groupLine(g)}`);
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
  if (fleet.nextCursor !== null)
    console.log(
      `next page: ${nextPageCommand(
        [
          'killpath',
          'status',
          values.run && '--run',
          values.run,
          values.tenant && '--tenant',
          values.tenant,
          values.limit && '--limit',
          values.limit,
        ],
        fleet.nextCursor,
      )}   (--all: every page)`,
    );
  console.log(
    `\nlost a lease or aborted effects in the last ${sinceMin} min: ${flagged.length} worker(s)${flagged.length === 0 ? '' : ' (below)'}; every other worker of the ${viewTotal} in view did neither${complete ? '' : ` (only the newest ${MAX_AUDIT_SCAN} aborted-effect records were read: give --since fewer minutes)`}`,
  );
  if (flagged.length > 0)
    console.log(
      table(
        ['tenant', 'agent', 'worker', 'runs', 'what'],
        flagged.map((f) => [
          f.tenant,
          f.agent,
          f.workerId.slice(0, 12),
          f.runs.join(' ') || null,
          flagWordsOf(f),
        ]),
      ),
    );
  console.log(
    `\nactive directives: ${
      dirs.total !== undefined && dirs.total > dirs.directives.length
        ? `${dirs.directives.length} of ${dirs.total}, the newest`
        : dirs.total === undefined && dirs.directives.length === MAX_DIRECTIVES
          ? `at least ${MAX_DIRECTIVES} (the newest ${MAX_DIRECTIVES} shown)`
          : dirs.directives.length
    }`,
  );
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
