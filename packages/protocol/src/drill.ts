/**
 * Drills: rehearsals of the kill path on real processes (`killpath drill`), and the rehearsal
 * records the control plane keeps of them (`POST /v1/drills`, audited as `drill.recorded`).
 * "The rehearsal record, not the design document, is the evidence a regulator or incident
 * commander will ask for" (seed 002): each record says, per scenario, what was expected, what
 * was measured, which side effects were observed, and what to fix when it failed.
 */

import type { z } from 'zod';
import type { LatencySummarySchema, RehearsalInputSchema, ScenarioResultSchema } from './schemas/drill.ts';

/** How a scenario came out. */
export type ScenarioStatus = ScenarioResult['status'];

/**
 * What a check guards. An `invariant` (no write after the flip, no lost journal entry, every
 * covered worker halted, no timer fired) fails CI; a `target` (a latency against the spec) fails
 * the rehearsal but never the compact CI drill; an `expectation` is the scenario's own "what is
 * checked" from seed 002 (e.g. "cost_cap fired", "operator notified").
 */
export type CheckKind = DrillCheck['kind'];

/** One judged check of a scenario. */
export type DrillCheck = ScenarioResult['checks'][number];

/** p50 / p99 / max over samples, in ms, with the samples themselves (for the report's charts). */
export type LatencySummary = z.infer<typeof LatencySummarySchema>;

/** Effects counted by class. */
export type EffectCounts = NonNullable<ScenarioResult['effectsAfterFlip']>;

/** The state of one path in a failure-of-the-switch scenario (S7, S8). */
export type PathState = ScenarioResult['paths'][number];

/** One effect event around a flip, for the report's "effects over time" chart. */
export type TimelinePoint = NonNullable<ScenarioResult['timeline']>[number];

/** Side-effect ledger of the covered runs after recovery (intended versus landed). */
export type JournalCheck = NonNullable<ScenarioResult['journal']>;

/** One scenario's outcome in a drill. */
export type ScenarioResult = z.infer<typeof ScenarioResultSchema>;

/** The agents a rehearsal covered, as its spec describes them. */
export type DrilledAgent = RehearsalInput['spec']['agents'][number];

/** Body of `POST /v1/drills`: one rehearsal. */
export type RehearsalInput = z.infer<typeof RehearsalInputSchema>;

/** A stored rehearsal record. */
export interface RehearsalRecord extends RehearsalInput {
  id: string;
  recordedAt: string;
  /** Principal name of who recorded it. */
  recordedBy: string;
  /** Seq of its `drill.recorded` audit record. */
  auditSeq: number;
}

/** Why an agent is due for a drill. Change events take precedence over cadence (seed 002). */
export type DueReason =
  | { kind: 'never'; detail: string }
  | { kind: 'failed'; detail: string; drillId: string }
  | { kind: 'surface_changed'; detail: string; added: string[] }
  | { kind: 'spec_changed'; detail: string }
  | { kind: 'cadence'; detail: string; dueSince: string };

/** One agent's rehearsal status (`GET /v1/drills/due`). */
export interface DrillDue {
  tenant: string;
  agent: string;
  due: boolean;
  /** Most pressing first: change events, then a failed last drill, then cadence. */
  reasons: DueReason[];
  lastDrill: { id: string; at: string; result: 'pass' | 'fail' } | null;
  cadenceDays: number;
  /** When the cadence makes it due next (null: never drilled). */
  nextDueAt: string | null;
  /** Capabilities the control plane has seen this agent's workers declare or use. */
  surface: string[];
}
