import type {
  DrillCheck,
  JournalCheck,
  LatencySummary,
  PathState,
  ScenarioResult,
  TimelinePoint,
  EffectCounts,
} from '@killpath/protocol';
import type { FleetHarness } from '../fleet/harness.ts';
import type { KillSwitchSpec } from '../killswitch-spec/types.ts';
import type { DrillAgent, DrillEnv } from './env.ts';

/** What every scenario gets. */
export interface DrillContext {
  env: DrillEnv;
  spec: KillSwitchSpec;
  /** The compact CI battery: short windows, one process per agent, fast deadman. */
  compact: boolean;
  /** How long to watch after a flip (queue state after the window), ms. */
  windowMs: number;
  /** Remote drills flip global only when asked to. */
  allowGlobal: boolean;
  /** The policy text the local control plane runs (S7 starts a second one with it). */
  policy: string;
  /** The agent whose deadman the drill tightened in compact mode (S5, S8), and its threshold. */
  deadman: { agent: DrillAgent; thresholdMs: number };
  /** Lease of the drill's scenario agents, ms. */
  leaseMs: number;
  /** The demo fleet every flip scenario shares, started on first use. */
  mainFleet(): Promise<FleetHarness>;
  /** A progress line (the terminal display). */
  progress(text: string): void;
}

/** What a scenario measured; the runner fills in status, timing and targets it did not set. */
export interface Measured {
  signalToHalt?: LatencySummary | null;
  haltToRecoveryMs?: number | null;
  effectsAfterFlip?: EffectCounts | null;
  effectsAfterObserve?: number | null;
  queue?: ScenarioResult['queue'];
  journal?: JournalCheck | null;
  checks: DrillCheck[];
  paths?: PathState[];
  timeline?: TimelinePoint[];
  notes?: string[];
  /** The signal-to-halt target that applies (strictest covered agent), ms. */
  targetMs?: number | null;
  /** Set when the scenario could not run here. */
  skipped?: string;
}

/** One scenario of the battery. */
export interface Scenario {
  id: string;
  title: string;
  /** The expected path (seed 002's column). */
  path: string;
  run(ctx: DrillContext): Promise<Measured>;
}

/** The reason and justification of a directive a drill issues: both name the drill. */
export const why = (ctx: DrillContext, what: string) => ({
  reason: `drill: ${what}`,
  justification: `killpath drill ${ctx.env.prefix}: ${what}`,
});
