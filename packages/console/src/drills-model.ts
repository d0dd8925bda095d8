/**
 * What the Drills view shows, as plain functions of `GET /v1/drills/due` and `GET /v1/drills`:
 * the due list in words, scenario counts, the worst signal-to-halt against its target. No DOM
 * here, so all of it is unit-tested under Node.
 */
import type {
  DrillDue,
  DueReason,
  RehearsalRecord,
  ScenarioResult,
  ScenarioStatus,
} from '@killpath/protocol';

/** The due list as shown: agents due first, then by tenant and agent. */
export function dueOrder(agents: readonly DrillDue[]): DrillDue[] {
  return [...agents].sort(
    (a, b) =>
      Number(b.due) - Number(a.due) || a.tenant.localeCompare(b.tenant) || a.agent.localeCompare(b.agent),
  );
}

/** "2 of 5 agents are due for a drill." */
export function dueSummary(agents: readonly DrillDue[]): string {
  const due = agents.filter((a) => a.due).length;
  if (agents.length === 0)
    return 'No agents known yet: none registered a run, reported its capabilities or was drilled.';
  if (due === 0)
    return `None of ${agents.length} agent${agents.length === 1 ? ' is' : 's are'} due for a drill.`;
  return `${due} of ${agents.length} agent${agents.length === 1 ? ' is' : 's are'} due for a drill.`;
}

/** A time as "2025-06-01 10:05 UTC" (the same for every reader, whatever their time zone). */
export function whenText(iso: string | null): string {
  if (iso === null) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Why an agent is due, in words. */
export function reasonLabel(r: DueReason): string {
  switch (r.kind) {
    case 'surface_changed':
      return `New capabilit${r.added.length === 1 ? 'y' : 'ies'} since the last drill: ${r.added.join(', ')}`;
    case 'spec_changed':
      return 'The spec changed since the last drill';
    case 'failed':
      return 'The last drill failed';
    case 'cadence':
      return `Overdue since ${whenText(r.dueSince)}`;
    case 'never':
      return 'Never drilled';
  }
}

/** Scenarios counted by status. */
export function scenarioCounts(
  scenarios: readonly Pick<ScenarioResult, 'status'>[],
): Record<ScenarioStatus, number> {
  const out: Record<ScenarioStatus, number> = { pass: 0, fail: 0, degraded: 0, skipped: 0 };
  for (const s of scenarios) out[s.status] += 1;
  return out;
}

/** Words for a scenario status. */
export const STATUS_LABEL: Record<ScenarioStatus, string> = {
  pass: 'passed',
  fail: 'failed',
  degraded: 'degraded as designed',
  skipped: 'skipped',
};

/** Milliseconds for display: "0.42 ms", "41 ms", "2.1 s"; "—" when unknown. */
export function msText(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (v < 10) return `${v.toFixed(2)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(v < 10_000 ? 2 : 1)} s`;
}

/** The worst signal-to-halt p99 of a record, the scenario it came from and that scenario's target. */
export interface WorstLatency {
  scenario: string;
  p99: number;
  target: number | null;
  /** True when a target exists and the p99 is above it. */
  over: boolean;
}

/** The scenario with the highest signal-to-halt p99; null when no scenario measured one. */
export function worstSignalToHalt(scenarios: readonly ScenarioResult[]): WorstLatency | null {
  let worst: WorstLatency | null = null;
  for (const s of scenarios) {
    const m = s.signalToHalt;
    if (m === null || m.n === 0) continue;
    if (worst === null || m.p99 > worst.p99) {
      const target = s.target.signalToHaltMs;
      worst = { scenario: s.id, p99: m.p99, target, over: target !== null && m.p99 > target };
    }
  }
  return worst;
}

/** "41 ms (S1), target 1.00 s"; "—" when nothing was measured. */
export function worstText(w: WorstLatency | null): string {
  if (w === null) return '—';
  return `${msText(w.p99)} (${w.scenario})${w.target === null ? '' : `, target ${msText(w.target)}`}`;
}

/** Effects that started after the flip, by class, and after the worker observed it. */
export function effectsText(s: ScenarioResult): string {
  const e = s.effectsAfterFlip;
  if (e === null) return '—';
  const after = s.effectsAfterObserve === null ? '' : `; ${s.effectsAfterObserve} after observe`;
  return `${e.write} write, ${e.irreversible} irreversible, ${e.read} read${after}`;
}

/** The side-effect ledger of a scenario in one line. */
export function journalText(s: ScenarioResult): string {
  const j = s.journal;
  if (j === null) return '—';
  const trouble = [j.open > 0 ? `${j.open} open` : '', j.lost > 0 ? `${j.lost} lost` : '']
    .filter(Boolean)
    .join(', ');
  return `${j.intents} intents: ${j.landed} landed, ${j.aborted} aborted, ${j.failed} failed${j.inDoubt > 0 ? `, ${j.inDoubt} in doubt` : ''}${trouble ? `; ${trouble}` : ''}${j.compensations > 0 ? `; ${j.compensations} to compensate` : ''}`;
}

/** A record's checks, failed ones first, each with its scenario. */
export function checkRows(
  r: RehearsalRecord,
): { scenario: string; name: string; kind: string; ok: boolean; detail: string }[] {
  const rows = r.scenarios.flatMap((s) =>
    s.checks.map((c) => ({ scenario: s.id, name: c.name, kind: c.kind, ok: c.ok, detail: c.detail })),
  );
  return rows.sort((a, b) => Number(a.ok) - Number(b.ok));
}
