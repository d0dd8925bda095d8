/**
 * Drills: rehearsals of the kill path on real processes (`killpath drill`), and the rehearsal
 * records the control plane keeps of them (`POST /v1/drills`, audited as `drill.recorded`).
 * "The rehearsal record, not the design document, is the evidence a regulator or incident
 * commander will ask for" (seed 002): each record says, per scenario, what was expected, what
 * was measured, which side effects were observed, and what to fix when it failed.
 */

/** How a scenario came out. */
export type ScenarioStatus =
  /** Every check held and every latency met its target. */
  | 'pass'
  /** An invariant broke, or a measured latency missed the spec's target. */
  | 'fail'
  /**
   * A failure-of-the-switch scenario (S7, S8) behaved as designed: some paths worked and some
   * degraded, as listed in `paths`. Never reported as a blanket pass.
   */
  | 'degraded'
  /** Not exercised here, with the reason in `notes` (e.g. S7 against a remote control plane). */
  | 'skipped';

/**
 * What a check guards. An `invariant` (no write after the flip, no lost journal entry, every
 * covered worker halted, no timer fired) fails CI; a `target` (a latency against the spec) fails
 * the rehearsal but never the compact CI drill; an `expectation` is the scenario's own "what is
 * checked" from seed 002 (e.g. "cost_cap fired", "operator notified").
 */
export type CheckKind = 'invariant' | 'target' | 'expectation';

/** One judged check of a scenario. */
export interface DrillCheck {
  name: string;
  ok: boolean;
  kind: CheckKind;
  /** What was measured, in words an incident commander can read. */
  detail: string;
}

/** p50 / p99 / max over samples, in ms, with the samples themselves (for the report's charts). */
export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  samples: number[];
}

/** Effects counted by class. */
export interface EffectCounts {
  read: number;
  write: number;
  irreversible: number;
}

/** The state of one path in a failure-of-the-switch scenario (S7, S8). */
export interface PathState {
  /** e.g. "synchronous path (CLI kill)", "local rules (loop length)", "deadman". */
  path: string;
  state: 'worked' | 'degraded' | 'unreachable' | 'not exercised';
  detail: string;
}

/** One effect event around a flip, for the report's "effects over time" chart. */
export interface TimelinePoint {
  /** ms relative to the flip (negative: before). */
  t: number;
  class: 'read' | 'write' | 'irreversible';
  /** started: the gate allowed it; refused: denied or permit refused; aborted: cancelled in flight. */
  outcome: 'started' | 'refused' | 'aborted';
}

/** Side-effect ledger of the covered runs after recovery (intended versus landed). */
export interface JournalCheck {
  /** Write and irreversible intents (permits) of the covered runs up to the recovery. */
  intents: number;
  landed: number;
  failed: number;
  aborted: number;
  /**
   * Intents whose process ended while they were in flight (killed mid-write): they may have
   * landed, so they are listed with the compensations to check. An explicit state, not a hang.
   */
  inDoubt: number;
  /** Intents with no outcome after the settle wait (hanging state). */
  open: number;
  /** Effects the agents saw land that the control plane's ledger does not have. */
  lost: number;
  /** Landed writes of halted runs with a compensation descriptor (the list to work through). */
  compensations: number;
}

/** One scenario's outcome in a drill. */
export interface ScenarioResult {
  /** `S1`…`S8`, `scope:<capability|run|agent|tenant|global>` or `level:<level>`. */
  id: string;
  title: string;
  /** The expected path, as seed 002 names it: synchronous, asynchronous, deadman, … */
  path: string;
  status: ScenarioStatus;
  startedAt: string;
  durationMs: number;
  /** The spec's targets for this scenario's agent (null: none applies). */
  target: { signalToHaltMs: number | null; haltToRecoveryMs: number | null };
  /** signal-to-halt per covered worker (flip → worker settled). */
  signalToHalt: LatencySummary | null;
  /** halt-to-recovery: resume commit → first permitted effect of the replacement run. */
  haltToRecoveryMs: number | null;
  /**
   * Covered effects after the flip's commit, by class: reads that started after it (bounded by
   * the worker's observe time), writes and irreversible effects *permitted* after it (guarantee 1:
   * must be 0; from the control plane's own audit where a flip is involved).
   */
  effectsAfterFlip: EffectCounts | null;
  /** Covered effects that started after the worker observed the flip (must be 0). */
  effectsAfterObserve: number | null;
  /** Queued tasks of covered runs: waiting at the flip, still waiting or run after the window, discarded. */
  queue: { atFlip: number; afterWindow: number; discarded: number } | null;
  journal: JournalCheck | null;
  checks: DrillCheck[];
  /** S7 and S8: which paths still worked and which degraded. */
  paths: PathState[];
  /** Effects around the flip (bounded); omitted from stored rehearsal records. */
  timeline?: TimelinePoint[];
  notes: string[];
  /** What to fix, when the scenario failed; null otherwise. */
  remediation: string | null;
}

/** The agents a rehearsal covered, as its spec describes them. */
export interface DrilledAgent {
  tenant: string;
  agent: string;
  /** Autonomy level (3, 4 or 5), which sets the latency targets and the cadence. */
  level: number;
  /** Rehearse at least every this many days (the spec's cadence for the agent's level). */
  cadenceDays: number;
}

/** Body of `POST /v1/drills`: one rehearsal. */
export interface RehearsalInput {
  spec: { name: string; digest: string; agents: DrilledAgent[] };
  /** local: the drill started its own control plane; remote: `--url` against a deployment. */
  mode: 'local' | 'remote';
  /** The compact CI battery (judged on invariants only). */
  compact: boolean;
  startedAt: string;
  finishedAt: string;
  /** pass: every scenario passed or degraded as designed; fail: any invariant or target failed. */
  result: 'pass' | 'fail';
  scenarios: ScenarioResult[];
}

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
