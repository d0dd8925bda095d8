import type {
  DrillCheck,
  EffectCounts,
  JournalCheck,
  LatencySummary,
  LedgerEntry,
  ScenarioResult,
  TimelinePoint,
} from '@killpath/protocol';
import type { ApiClient } from '../api.ts';
import { permitsWhere } from '../fleet/flip.ts';
import type { AgentEvent } from '../fleet/harness.ts';
import { percentile } from '../output.ts';

/** Largest number of timeline points kept per scenario (evenly thinned beyond it). */
const MAX_TIMELINE = 4000;

/**
 * p50 / p99 / max over samples (null when there are none). A sample below 0 can only come from
 * two clocks (a remote control plane's commit time against this machine's): it counts as 0.
 */
export function summarize(samples: number[]): LatencySummary | null {
  const s = samples.filter((v) => Number.isFinite(v)).map((v) => Math.max(0, Math.round(v * 10) / 10));
  if (s.length === 0) return null;
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: Math.max(...s), samples: s };
}

/** An event line of an agent: SDK events (`k: 'ev'`) and the drill agent's own lines. */
export type EventLine = Record<string, unknown> & { wall?: number; k?: string; type?: string };

/**
 * Effect events of the runs `covered` accepts, from `fromMs` before the flip to `toMs` after
 * it, as timeline points relative to the flip.
 */
export function timeline(
  events: EventLine[],
  covered: Covers,
  flipWall: number,
  fromMs: number,
  toMs: number,
): TimelinePoint[] {
  const points: TimelinePoint[] = [];
  for (const e of events) {
    if (
      e.k !== 'ev' ||
      typeof e.runId !== 'string' ||
      !covered(e.runId, String(e.capability)) ||
      typeof e.wall !== 'number'
    )
      continue;
    const outcome =
      e.type === 'effect.started'
        ? 'started'
        : e.type === 'effect.denied' || e.type === 'permit.refused'
          ? 'refused'
          : e.type === 'effect.aborted'
            ? 'aborted'
            : null;
    if (outcome === null) continue;
    const t = e.wall - flipWall;
    if (t < fromMs || t > toMs) continue;
    const cls = e.class === 'write' || e.class === 'irreversible' ? e.class : 'read';
    points.push({ t: Math.round(t * 10) / 10, class: cls, outcome });
  }
  if (points.length <= MAX_TIMELINE) return points;
  const step = points.length / MAX_TIMELINE;
  return Array.from({ length: MAX_TIMELINE }, (_, i) => points[Math.floor(i * step)]!);
}

/** Which effects a flip covers: by run and capability. */
export type Covers = (runId: string, capability: string) => boolean;

/** Effects of covered runs that started after `wall`, by class. */
export function startedAfter(events: EventLine[], covered: Covers, wall: number): EffectCounts {
  const c: EffectCounts = { read: 0, write: 0, irreversible: 0 };
  for (const e of events) {
    if (e.type !== 'effect.started' || typeof e.wall !== 'number' || e.wall <= wall) continue;
    if (!covered(String(e.runId), String(e.capability))) continue;
    const cls = e.class === 'write' || e.class === 'irreversible' ? e.class : 'read';
    c[cls] += 1;
  }
  return c;
}

/**
 * halt-to-recovery: resume commit → the first permitted effect (an `effect.started`) of a
 * covered run after it; null when none started within the events seen.
 */
export function recoveryMs(events: EventLine[], covered: Covers, resumeWall: number): number | null {
  const first = events.find(
    (e) =>
      e.type === 'effect.started' &&
      typeof e.wall === 'number' &&
      e.wall > resumeWall &&
      covered(String(e.runId), String(e.capability)),
  );
  return first === undefined ? null : Math.round(((first.wall as number) - resumeWall) * 10) / 10;
}

/**
 * Queue state of the covered runs around a flip: tasks waiting or running at the flip (those
 * the flip discarded plus those in flight then), tasks that started after the worker observed
 * it outside a drain or were still running at the window's end, and the discarded ones.
 */
export function queueState(
  events: EventLine[],
  covered: (runId: string) => boolean,
  directiveId: string,
  flipWall: number,
  observeWall: number,
  windowEnd: number,
): ScenarioResult['queue'] {
  const started = new Map<string, number>();
  const settledAt = new Map<string, number>();
  let discarded = 0;
  let lateStarts = 0;
  for (const e of events) {
    if (typeof e.runId !== 'string' || !covered(e.runId) || typeof e.wall !== 'number') continue;
    const id = String(e.taskId);
    if (e.type === 'task.started') {
      started.set(id, e.wall);
      if (e.wall > observeWall && e.wall <= windowEnd && e.draining !== true) lateStarts += 1;
    } else if (e.type === 'task.settled' || e.type === 'queue.drained') settledAt.set(id, e.wall);
    else if (e.type === 'queue.discarded' && e.directiveId === directiveId) discarded += 1;
  }
  let runningAtFlip = 0;
  let runningAtEnd = 0;
  for (const [id, t] of started) {
    const s = settledAt.get(id) ?? Number.POSITIVE_INFINITY;
    if (t <= flipWall && s > flipWall) runningAtFlip += 1;
    if (t <= windowEnd && t > observeWall && s > windowEnd) runningAtEnd += 1;
  }
  return { atFlip: discarded + runningAtFlip, afterWindow: lateStarts + runningAtEnd, discarded };
}

interface RunJournal {
  effects: LedgerEntry[];
}

/**
 * Reads the ledger of the covered runs after recovery and compares it with what their agents
 * saw: intents up to `untilWall` with no outcome are `open` (hanging state); effects the agents
 * saw land whose permit is not `landed` in the ledger are `lost`. Only effects `covers` accepts
 * count (a frozen tool's flip leaves the run's other calls running), intended from `sinceWall` on.
 */
export async function journalCheck(
  api: ApiClient,
  runIds: string[],
  events: EventLine[],
  untilWall: number,
  covers: Covers = () => true,
  sinceWall = 0,
): Promise<JournalCheck> {
  const j: JournalCheck = {
    intents: 0,
    landed: 0,
    failed: 0,
    aborted: 0,
    inDoubt: 0,
    open: 0,
    lost: 0,
    compensations: 0,
  };
  const status = new Map<string, string>();
  for (const runId of runIds) {
    // Each run alone (its children are in runIds themselves), every page.
    const effects: RunJournal['effects'] = [];
    let cursor: string | null = null;
    try {
      do {
        const r: RunJournal & { cursor?: string | null } = await api.get<
          RunJournal & { cursor?: string | null }
        >(
          `/v1/runs/${encodeURIComponent(runId)}/journal?children=false&limit=5000${cursor === null ? '' : `&cursor=${cursor}`}`,
        );
        effects.push(...r.effects);
        cursor = r.cursor ?? null;
      } while (cursor !== null);
    } catch {
      continue; // a run that never asked for a permit has no ledger
    }
    for (const e of effects) {
      status.set(e.permitId, e.status);
      const t = Date.parse(e.intendedAt);
      if (t > untilWall || t < sinceWall || !covers(e.runId, e.capability)) continue;
      j.intents += 1;
      if (e.status === 'landed') j.landed += 1;
      else if (e.status === 'failed') j.failed += 1;
      else if (e.status === 'aborted' || e.status === 'cancelled') j.aborted += 1;
      else if (e.status === 'in_doubt')
        j.inDoubt += 1; // its process ended mid-effect: listed to check
      else j.open += 1; // granted, cooling_off: nothing says what became of it
    }
  }
  // What the agents saw land, by their own permit ids.
  const permitOf = new Map<string, string>();
  for (const e of events)
    if (e.type === 'permit.granted')
      permitOf.set(`${String(e.pid ?? '')}:${String(e.effectId)}`, String(e.permitId));
  for (const e of events) {
    if (
      e.type !== 'effect.landed' ||
      e.class === 'read' ||
      typeof e.wall !== 'number' ||
      e.wall > untilWall ||
      e.wall < sinceWall
    )
      continue;
    const permit = permitOf.get(`${String(e.pid ?? '')}:${String(e.effectId)}`);
    if (
      permit !== undefined &&
      status.get(permit) !== 'landed' &&
      runIds.includes(String(e.runId)) &&
      covers(String(e.runId), String(e.capability))
    )
      j.lost += 1;
  }
  const q = new URLSearchParams({ children: 'false', limit: '1' });
  for (const runId of runIds) {
    q.set('run', runId);
    try {
      j.compensations += (await api.get<{ total: number }>(`/v1/compensations?${q}`)).total;
    } catch {
      // no compensations for this run
    }
  }
  return j;
}

/**
 * Write and irreversible permits for these runs (null: any) and capability (null: any) granted at or after `rev` and before `untilRev`
 * (the resume, when there was one), from the control plane's ledger (guarantee 1: must be 0
 * while a covering stop is in force).
 */
export function permitsAfter(
  api: ApiClient,
  runIds: string[] | null,
  rev: number,
  untilRev: number | null = null,
  capability: string | null = null,
): Promise<{ write: number; irreversible: number }> {
  return permitsWhere(
    api,
    rev,
    (p) =>
      (untilRev === null || p.rev < untilRev) &&
      (runIds === null || runIds.includes(p.runId)) &&
      (capability === null || p.capability === capability),
  );
}

/** Events of several agents merged, each tagged with its process id (effect ids are per worker). */
export function tagged(agents: { pid: number; events: AgentEvent[] | EventLine[] }[]): EventLine[] {
  return agents.flatMap((a) => (a.events as EventLine[]).map((e) => ({ ...e, pid: a.pid })));
}

/** A check. */
export function check(name: string, kind: DrillCheck['kind'], ok: boolean, detail: string): DrillCheck {
  return { name, kind, ok, detail };
}

/** The journal's invariants: nothing hanging, nothing lost. */
export function journalChecks(j: JournalCheck | null): DrillCheck[] {
  if (j === null) return [];
  return [
    check(
      'no hanging intent',
      'invariant',
      j.open === 0,
      `${j.intents} intents up to recovery: ${j.landed} landed, ${j.aborted} aborted or cancelled, ${j.failed} failed, ${j.inDoubt} in doubt (their process ended mid-write: listed with the compensations), ${j.open} without an outcome`,
    ),
    check(
      'no lost journal entry',
      'invariant',
      j.lost === 0,
      j.lost === 0
        ? 'every write the agents saw land is landed in the ledger'
        : `${j.lost} write(s) the agents saw land are not landed in the ledger`,
    ),
  ];
}

/** signal-to-halt and halt-to-recovery against the spec's targets. */
export function targetChecks(
  sth: LatencySummary | null,
  targetMs: number | null,
  recovery: number | null,
  recoveryTarget: number | null,
): DrillCheck[] {
  const out: DrillCheck[] = [];
  if (sth !== null && targetMs !== null) {
    out.push(
      check(
        'signal-to-halt within target',
        'target',
        sth.max <= targetMs,
        `max ${sth.max} ms over ${sth.n} worker(s) (p50 ${sth.p50}, p99 ${sth.p99}); target ${targetMs} ms`,
      ),
    );
  }
  if (recovery !== null && recoveryTarget !== null) {
    out.push(
      check(
        'halt-to-recovery within target',
        'target',
        recovery <= recoveryTarget,
        `${recovery} ms; target ${recoveryTarget} ms`,
      ),
    );
  }
  return out;
}

export const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Polls `probe` every 25 ms until it returns something truthy, or null after `ms`. */
export async function until<T>(
  ms: number,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
): Promise<T | null> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) return null;
    await sleep(25);
  }
}
