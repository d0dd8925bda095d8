import { randomUUID } from 'node:crypto';
import type { AuditRecord, Directive, Level, Rate } from '@killpath/protocol';
import { auditRecordsOf } from '../audit-records.ts';
import type { ApiClient } from '../api.ts';
import { percentile } from '../output.ts';
import type { AgentEvent, AgentProcess, FleetHarness } from './harness.ts';

/** One flip to perform: the directive body and which (agent, run, capability) it covers. */
export interface FlipSpec {
  label: string;
  body: {
    level: Level;
    scope: string;
    rate?: Rate;
    graceMs?: number;
    capabilities?: string[];
    reason: string;
    justification: string;
    breakGlass?: string;
    tenant?: string;
  };
  covers(agent: AgentProcess, runId: string, capability: string): boolean;
}

/** What one covered worker did around the flip. */
export interface WorkerOutcome {
  pid: number;
  tenant: string;
  agent: string;
  workerId: string | null;
  /**
   * signal-to-halt: flip (commit) to the worker settling (covered in-flight effects settled,
   * new ones refused), from the worker's `halt.settled` event; null when it never settled.
   */
  timeToStopMs: number | null;
  /** Flip to the control plane receiving the worker's halted report (adds the report's trip); null: no report. */
  timeToReportMs: number | null;
  /** Covered effects that started after this worker applied the flip's rev (must be 0). */
  startedAfterObserve: number;
  /** Covered effects that started after the flip's commit, by class (bounded by observe time). */
  startedAfterFlip: Record<string, number>;
  /** Whether the in-flight slow tool was aborted (null when the slow tool is not covered). */
  slowAborted: boolean | null;
  /** Run-bound timers (intervals, retries) of covered runs that fired after observe (must be 0). */
  timersAfterObserve: number;
  /** Queued tasks of covered runs started after observe outside a drain (must be 0). */
  tasksAfterObserve: number;
}

/** Everything measured about one flip. */
export interface FlipOutcome {
  label: string;
  directive: Directive;
  covered: WorkerOutcome[];
  /** Covered workers that sent no settle report within the wait. */
  missingReports: number;
  signalToHalt: { p50: number; p99: number; max: number };
  startedAfterObserve: number;
  startedAfterFlip: Record<string, number>;
  slowAborted: { aborted: number; of: number };
  /** Run-bound timers of covered runs that fired after their worker observed the flip (must be 0). */
  timersAfterObserve: number;
  /** Queued tasks of covered runs started after observe (must be 0 in discard mode). */
  tasksAfterObserve: number;
  /**
   * Write and irreversible permits granted for covered effects at or after the flip's rev,
   * counted from the control plane's own audit records (must be 0: guarantee 1).
   */
  permitsAfterFlip: number;
  /** The same, by class. */
  permitsAfterFlipByClass: { write: number; irreversible: number };
  /** Workers outside the scope, and how many of them landed effects after the flip. */
  uncovered: { workers: number; working: number };
  resumedRev: number | null;
}

const SLOW_TOOL = 'export_report';

/** The capabilities the demo agent uses. */
export const DEMO_CAPABILITIES = [
  'search',
  'crm.update',
  SLOW_TOOL,
  'sync',
  'outbox.send',
  'wire_transfer',
] as const;

function coveredWorker(a: AgentProcess, spec: FlipSpec, capability: string): boolean {
  return a.runs.some((r) => spec.covers(a, r.runId, capability));
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** The audit chain's last seq: a cursor to read what a flip caused. */
export async function auditHead(api: ApiClient): Promise<number> {
  const r = await api.get<{ records: AuditRecord[] }>('/v1/audit?order=desc&limit=1');
  return r.records[0]?.seq ?? 0;
}

/** A write permit as `GET /v1/permits` lists it (a row of the control plane's ledger). */
export interface PermitRow {
  permitId: string;
  rev: number;
  tenant: string;
  agent: string;
  runId: string;
  capability: string;
  class: 'write' | 'irreversible';
}

/**
 * Write and irreversible permits the control plane granted at or after `fromRev` (from its ledger,
 * `GET /v1/permits`) that `accept` takes, by class.
 */
export async function permitsWhere(
  api: ApiClient,
  fromRev: number,
  accept: (p: PermitRow) => boolean,
): Promise<{ write: number; irreversible: number }> {
  const out = { write: 0, irreversible: 0 };
  for (let cursor: string | null = null; ;) {
    const page: { permits: PermitRow[]; cursor: string | null } = await api.get(
      `/v1/permits?fromRev=${fromRev}&limit=5000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
    );
    for (const p of page.permits)
      if (accept(p)) out[p.class === 'irreversible' ? 'irreversible' : 'write'] += 1;
    if (page.cursor === null) return out;
    cursor = page.cursor;
  }
}

/** The fleet's agents a flip covers (any of their runs, any demo capability). */
export function coveredAgents(fleet: FleetHarness, spec: FlipSpec): AgentProcess[] {
  return fleet.agents.filter((a) => DEMO_CAPABILITIES.some((c) => coveredWorker(a, spec, c)));
}

/**
 * Waits until every covered worker of every flip has reported halted (`session.halted`, read
 * from the audit after `cursor`) and at least `windowMs` passed since `started`, or `waitMs`
 * passed. Returns each directive's reports: worker id → worker-measured time to stop.
 */
export async function awaitHaltReports(
  api: ApiClient,
  fleet: FleetHarness,
  flips: { spec: FlipSpec; directive: Directive }[],
  opts: { cursor: number; started: number; waitMs: number; windowMs: number },
): Promise<Map<string, Map<string, number | null>>> {
  const reports = new Map(flips.map((f) => [f.directive.id, new Map<string, number | null>()]));
  const wanted = flips.map((f) => ({
    id: f.directive.id,
    workers: coveredAgents(fleet, f.spec).map((a) => a.workerId),
  }));
  let after = opts.cursor;
  while (Date.now() - opts.started < opts.waitMs) {
    const recs = (
      await api.get<{ records: AuditRecord[] }>(`/v1/audit?after=${after}&limit=5000&type=session.halted`)
    ).records;
    for (const r of auditRecordsOf(recs, 'session.halted')) {
      after = r.seq;
      reports.get(r.data.directiveId)?.set(r.data.workerId, r.data.timeToStopMs);
    }
    const all = wanted.every((w) => w.workers.every((id) => id !== null && reports.get(w.id)!.has(id)));
    if (all && Date.now() - opts.started >= opts.windowMs) break;
    await sleep(50);
  }
  return reports;
}

/**
 * Measures what every covered worker did around one flip (from the agents' event lines and the
 * control plane's audit), without resuming it. `flipWall` is the commit's wall-clock time.
 */
export async function measureFlip(
  api: ApiClient,
  fleet: FleetHarness,
  spec: FlipSpec,
  directive: Directive,
  flipWall: number,
  cursor: number,
  reports: Map<string, number | null>,
): Promise<FlipOutcome> {
  const covAgents = coveredAgents(fleet, spec);
  const covered: WorkerOutcome[] = [];
  let uncoveredWorking = 0;
  for (const a of fleet.agents) {
    if (!covAgents.includes(a)) {
      if (a.events.some((e) => e.type === 'effect.landed' && e.wall > flipWall)) uncoveredWorking++;
      continue;
    }
    const observe = a.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= directive.rev);
    // Timers and queued tasks belong to the run as a whole: only a stop of the whole run (no
    // capability narrowing) must cancel them; a frozen tool leaves them running.
    const wholeRun = spec.body.capabilities === undefined;
    const runCovered = (runId: unknown) =>
      wholeRun && typeof runId === 'string' && DEMO_CAPABILITIES.some((c) => spec.covers(a, runId, c));
    const isCovered = (e: AgentEvent) =>
      e.runId !== undefined && e.capability !== undefined && spec.covers(a, e.runId, e.capability);
    const starts = a.events.filter((e) => e.type === 'effect.started' && isCovered(e));
    const startedAfterFlip: Record<string, number> = {};
    for (const e of starts)
      if (e.wall > flipWall) startedAfterFlip[e.class ?? '?'] = (startedAfterFlip[e.class ?? '?'] ?? 0) + 1;
    const slowCovered =
      coveredWorker(a, spec, SLOW_TOOL) &&
      a.events.some((e) => e.type === 'effect.started' && e.capability === SLOW_TOOL);
    const settled = a.events.find((e) => e.type === 'halt.settled' && e.directiveId === directive.id);
    covered.push({
      pid: a.pid,
      tenant: a.spec.tenant,
      agent: a.spec.agent,
      workerId: a.workerId,
      timeToStopMs: settled === undefined ? null : settled.wall - flipWall,
      timeToReportMs: a.workerId === null ? null : (reports.get(a.workerId) ?? null),
      // A worker that never applied the flip is charged with every covered start after the flip.
      startedAfterObserve: starts.filter((e) =>
        observe === undefined ? e.wall > flipWall : e.at > observe.at,
      ).length,
      startedAfterFlip,
      slowAborted: slowCovered
        ? a.events.some(
            (e) =>
              e.type === 'effect.aborted' && e.capability === SLOW_TOOL && e.directiveId === directive.id,
          )
        : null,
      timersAfterObserve: a.events.filter(
        (e) =>
          e.type === 'timer.fired' && runCovered(e.runId) && (observe === undefined || e.at > observe.at),
      ).length,
      tasksAfterObserve: a.events.filter(
        (e) =>
          e.type === 'task.started' &&
          !e.draining &&
          runCovered(e.runId) &&
          (observe === undefined || e.at > observe.at),
      ).length,
    });
  }
  const times = covered.map((w) => w.timeToStopMs).filter((t): t is number => t !== null);
  const sum: Record<string, number> = {};
  for (const w of covered)
    for (const [k, v] of Object.entries(w.startedAfterFlip)) sum[k] = (sum[k] ?? 0) + v;
  const slow = covered.filter((w) => w.slowAborted !== null);

  // Guarantee 1 from the store's own ledger: permits granted at or after the flip's rev, to a
  // run of one of the fleet's agents that the flip covers (by the drill's own rule).
  const hostOf = (p: PermitRow) =>
    fleet.agents.find(
      (a) =>
        a.spec.tenant === p.tenant && a.spec.agent === p.agent && a.runs.some((r) => r.runId === p.runId),
    );
  const permitsAfterFlipByClass = await permitsWhere(api, directive.rev, (p) => {
    const a = hostOf(p);
    return a !== undefined && spec.covers(a, p.runId, p.capability);
  });
  const permitsAfterFlip = permitsAfterFlipByClass.write + permitsAfterFlipByClass.irreversible;
  return {
    label: spec.label,
    directive,
    covered,
    missingReports: covered.filter((w) => w.timeToReportMs === null || w.timeToStopMs === null).length,
    signalToHalt: {
      p50: percentile(times, 50),
      p99: percentile(times, 99),
      max: times.length ? Math.max(...times) : Number.NaN,
    },
    startedAfterObserve: covered.reduce((n, w) => n + w.startedAfterObserve, 0),
    startedAfterFlip: sum,
    slowAborted: { aborted: slow.filter((w) => w.slowAborted).length, of: slow.length },
    timersAfterObserve: covered.reduce((n, w) => n + w.timersAfterObserve, 0),
    tasksAfterObserve: covered.reduce((n, w) => n + w.tasksAfterObserve, 0),
    permitsAfterFlip,
    permitsAfterFlipByClass,
    uncovered: { workers: fleet.agents.length - covAgents.length, working: uncoveredWorking },
    resumedRev: null,
  };
}

/** Clears a flip's directive and waits (up to `waitMs`) until every agent has applied the clearing rev. */
export async function resumeFlip(
  api: ApiClient,
  fleet: FleetHarness,
  spec: FlipSpec,
  directive: Directive,
  waitMs: number,
  why: string,
): Promise<number | null> {
  const r = await api.post<{ directive: Directive }>(`/v1/directives/${directive.id}/resume`, {
    justification: why,
    ...(spec.body.breakGlass ? { breakGlass: spec.body.breakGlass } : {}),
  });
  const resumedRev = r.directive.clearedRev;
  const until = Date.now() + waitMs;
  while (
    Date.now() < until &&
    !fleet.agents.every(
      (a) =>
        a.child.exitCode !== null ||
        a.events.some((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= resumedRev!),
    )
  ) {
    await sleep(25);
  }
  return resumedRev;
}

/**
 * Issues a directive, waits for every covered worker's settle report (up to `waitMs`) and for
 * `windowMs` after the flip, measures what each worker did around it, then resumes it and
 * waits until every worker has applied the resume.
 *
 * `flipWall` optionally maps the directive's rev to the wall-clock time of its commit (precise
 * when the control plane runs in this process); otherwise `issuedAt` (ms precision) is used.
 */
export async function flipAndMeasure(
  api: ApiClient,
  fleet: FleetHarness,
  spec: FlipSpec,
  opts: {
    windowMs?: number;
    waitMs?: number;
    flipWall?: (rev: number) => number | undefined;
    resume?: boolean;
  } = {},
): Promise<FlipOutcome> {
  const windowMs = opts.windowMs ?? 800;
  const waitMs = opts.waitMs ?? 10_000;
  const cursor = await auditHead(api);
  // Keyed, so that a client that retries a request left unanswered converges on one directive.
  const { directive } = await api.post<{ directive: Directive }>('/v1/directives', spec.body, {
    'idempotency-key': randomUUID(),
  });
  const flipWall = opts.flipWall?.(directive.rev) ?? Date.parse(directive.issuedAt);
  const reports = await awaitHaltReports(api, fleet, [{ spec, directive }], {
    cursor,
    started: Date.now(),
    waitMs,
    windowMs,
  });
  const outcome = await measureFlip(
    api,
    fleet,
    spec,
    directive,
    flipWall,
    cursor,
    reports.get(directive.id)!,
  );
  if (opts.resume !== false)
    outcome.resumedRev = await resumeFlip(
      api,
      fleet,
      spec,
      directive,
      waitMs,
      `demo: ${spec.label} measured, resuming`,
    );
  return outcome;
}
