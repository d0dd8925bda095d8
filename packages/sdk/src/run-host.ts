import type { EffectClass, JournalEvent, PermitOutcome, RunIdentity } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { ControlCalls } from './control-calls.ts';
import type { RunTable } from './gate.ts';
import type { InFlightEffect } from './in-flight.ts';
import type { SdkEvent } from './journal.ts';
import type { Lease } from './lease.ts';
import type { MemorySchema } from './memory-schema.ts';
import type { RunCounters } from './telemetry.ts';
import type { Verdict } from './verdict.ts';

/*
 * The seam between a run (run.ts) and its parts (effect-runner.ts, run-timers.ts,
 * staged-memory.ts): the parts depend on these interfaces, never on run.ts, so the modules form
 * no cycle (test/unit/borders.test.ts checks).
 */

/** The bookkeeping of one run that its parts read and update. Internal; `RunState` is the whole of it. */
export interface RunCore {
  readonly coverage: RunIdentity;
  /** The run's gate table, recompiled by the client on every mirror change. */
  table: RunTable;
  readonly inFlight: Set<InFlightEffect>;
  effects: number;
  denied: number;
  ended: boolean;
  /** Telemetry counters (steps, cost, tool errors, denials, schema violations, anomalies). */
  readonly counters: RunCounters;
  /** The schema memory writes must follow, or `null`. */
  memorySchema: MemorySchema | null;
}

/** What a run's parts need from the client. Internal; `RunHost` is the whole of it. */
export interface RunPartsHost {
  readonly clock: Clock;
  readonly lease: Lease;
  readonly workerId: string;
  readonly calls: ControlCalls;
  record(event: SdkEvent): void;
  /** Journals to the control plane (`POST /v1/journal`, batched, never thrown). */
  journal(event: JournalEvent): void;
  /** Reports a permitted effect's outcome (fire-and-forget, retried). */
  outcome(permitId: string, outcome: PermitOutcome): void;
  runDrained(state: RunCore): void;
  /** The run's counters changed: send them with the next telemetry batch. */
  counted(state: RunCore): void;
}

/** The run a step commit of staged memory goes through: its gate and its effects. Internal. */
export interface CommittingRun {
  readonly runId: string;
  check(capability: string, cls?: EffectClass): Verdict;
  effect<T>(
    spec: { capability: string; class: EffectClass; args: unknown },
    fn: (signal: AbortSignal) => T | PromiseLike<T>,
  ): Promise<T>;
}
