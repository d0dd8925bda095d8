/**
 * Rehearsal records and "drill due": which agents must be drilled again, and why. Seed 002's
 * cadence (monthly for level 4–5 agents, quarterly for level 3, and ad hoc on any material
 * change to the agent's tools) comes in through each record's spec (`cadenceDays` per agent) and
 * the capability surface the control plane learns from heartbeats. Pure functions: the clock is
 * an argument.
 */
import type { AuditEventOf } from '@killpath/protocol';
import type { DrillDue, DueReason, RehearsalRecord } from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import type { AgentSurface, LastDrill } from './store/store.ts';

/** Cadence of an agent no rehearsal record covers yet, in days. */
export const DEFAULT_CADENCE_DAYS = 30;

const DAY_MS = 86_400_000;

/** What the due list is computed from. */
export interface DueInput {
  /** Agents known from registered runs or capabilities, with their surfaces (`Store.agentSurfaces`). */
  surfaces: readonly AgentSurface[];
  /** The latest rehearsal covering each agent (`Store.lastDrills`). */
  last: readonly LastDrill[];
  /** The digest of the spec the caller would drill with now; a different one is a change. */
  specDigest?: string | undefined;
  /** Now, in ms since the epoch. */
  now: number;
}

const short = (digest: string) => (digest.length > 16 ? `${digest.slice(0, 16)}…` : digest);

/**
 * One entry per agent known from runs, capabilities or rehearsal records, sorted by tenant then
 * agent. Reasons, most pressing first: `surface_changed` (capabilities first seen after the
 * last rehearsal finished), `spec_changed` (`specDigest` given and not the last rehearsal's),
 * `failed` (the last rehearsal failed), `cadence` (its `finishedAt` plus the agent's
 * `cadenceDays` has passed), `never` (no rehearsal covers it). An agent is due when it has any.
 */
export function drillsDue(input: DueInput): DrillDue[] {
  const agents = new Map<
    string,
    { tenant: string; agent: string; surface: AgentSurface | null; last: LastDrill | null }
  >();
  const entry = (tenant: string, agent: string) => {
    const key = `${tenant}/${agent}`;
    let e = agents.get(key);
    if (e === undefined) agents.set(key, (e = { tenant, agent, surface: null, last: null }));
    return e;
  };
  for (const s of input.surfaces) entry(s.tenant, s.agent).surface = s;
  for (const l of input.last) entry(l.tenant, l.agent).last = l;

  const out: DrillDue[] = [];
  for (const { tenant, agent, surface, last } of agents.values()) {
    const caps = surface?.capabilities ?? [];
    const reasons: DueReason[] = [];
    let nextDueAt: string | null = null;
    const cadenceDays = last?.cadenceDays ?? DEFAULT_CADENCE_DAYS;
    if (last === null) {
      reasons.push({ kind: 'never', detail: `never drilled (default cadence ${DEFAULT_CADENCE_DAYS} days)` });
    } else {
      const finished = Date.parse(last.finishedAt);
      const added = caps.filter((c) => Date.parse(c.firstSeenAt) > finished).map((c) => c.capability);
      if (added.length > 0)
        reasons.push({
          kind: 'surface_changed',
          detail: `new capabilities since the last drill: ${added.join(', ')}`,
          added,
        });
      if (input.specDigest !== undefined && input.specDigest !== last.specDigest) {
        reasons.push({
          kind: 'spec_changed',
          detail: `the spec changed: last drilled with ${short(last.specDigest)}, now ${short(input.specDigest)}`,
        });
      }
      if (last.result === 'fail')
        reasons.push({
          kind: 'failed',
          detail: `the last drill (${last.drillId}, ${last.finishedAt}) failed`,
          drillId: last.drillId,
        });
      const due = finished + cadenceDays * DAY_MS;
      nextDueAt = new Date(due).toISOString();
      if (input.now > due) {
        const days = Math.floor((input.now - finished) / DAY_MS);
        reasons.push({
          kind: 'cadence',
          detail: `last drilled ${days} days ago; the cadence is ${cadenceDays} days`,
          dueSince: nextDueAt,
        });
      }
    }
    out.push({
      tenant,
      agent,
      due: reasons.length > 0,
      reasons,
      lastDrill: last === null ? null : { id: last.drillId, at: last.finishedAt, result: last.result },
      cadenceDays,
      nextDueAt,
      surface: caps.map((c) => c.capability),
    });
  }
  return out.sort((a, b) =>
    a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0,
  );
}

/**
 * The `drill.recorded` audit records of a stored rehearsal: one per tenant its spec covers,
 * each naming only that tenant's agents, so a tenant's audit log never shows another's.
 */
export function drillRecordedEvents(r: Omit<RehearsalRecord, 'auditSeq'>, actor: string): AuditEvent[] {
  const tenants = [...new Set(r.spec.agents.map((a) => a.tenant))].sort();
  return tenants.map(
    (tenant) =>
      ({
        type: 'drill.recorded',
        actor,
        tenant,
        data: {
          drillId: r.id,
          spec: r.spec.name,
          digest: r.spec.digest,
          result: r.result,
          mode: r.mode,
          compact: r.compact,
          scenarios: r.scenarios.map((s) => ({ id: s.id, status: s.status })),
          agents: r.spec.agents
            .filter((a) => a.tenant === tenant)
            .map((a) => ({ tenant: a.tenant, agent: a.agent, level: a.level, cadenceDays: a.cadenceDays })),
        },
      }) satisfies AuditEventOf<'drill.recorded'>,
  );
}

/** A record as a tenant-scoped principal sees it: the spec lists only its own tenant's agents. */
export function scopedRecord(r: RehearsalRecord, tenant: string | undefined): RehearsalRecord {
  if (tenant === undefined) return r;
  return { ...r, spec: { ...r.spec, agents: r.spec.agents.filter((a) => a.tenant === tenant) } };
}
