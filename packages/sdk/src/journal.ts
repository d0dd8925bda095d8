import type { EffectClass, EffectStatus, ErrorCode, LocalRule, RunLimits } from '@killpath/protocol';
import type { DenyReason } from './verdict.ts';

/** Fields shared by every event about one effect. `effectId` is unique per client; `at` is `clock.now()`. */
interface EffectEventFields {
  effectId: number;
  runId: string;
  capability: string;
  class: EffectClass;
  at: number;
}

/** Which report a failed POST carried. */
export type ReportKind = 'ack' | 'halted' | 'heartbeat' | 'run' | 'journal' | 'outcome' | 'telemetry';

/** Which kind of run-bound timer an event is about (`retry`: the wait between two attempts). */
export type TimerKind = 'timeout' | 'interval' | 'retry';

/**
 * Everything the SDK journals, as a tagged union on `type`. Every `at` is the client clock's
 * monotonic `now()` in ms. `rev.applied` is recorded synchronously when the mirror changes and
 * `effect.started` synchronously right before the effect function is called, so that a reader
 * can count effects that started after the worker observed a flip.
 *
 * - `rev.applied`: a snapshot or delta was applied; `issued`/`cleared` are directive ids.
 * - `stream.connected`: a stream delivered its first snapshot; `url` is the control plane (replica) it is on.
 * - `stream.behind`: that snapshot's rev is below `seenRev`, the highest this worker applied (a replica
 *   not caught up yet): the gate stays closed until the stream reaches `seenRev` (`stream.caught_up`).
 * - `stream.error`: the stream failed or ended; `fatal` means no retry (401/403), else `retryInMs`.
 * - `stream.resync`: a rev gap or mismatch; the stream is dropped and the gate denies `stale` until the next snapshot.
 * - `lease.expired`: no contact for `leaseMs`; every run is treated as halted, `aborted` in-flight writes.
 * - `run.started` / `run.ended`: a run joined or left this worker.
 * - `effect.started`: the gate allowed the effect and its function is about to be called.
 * - `effect.landed` / `effect.failed`: the effect function settled; `afterAbort` when it had been aborted first
 *   (an aborted write that still landed is one to compensate).
 * - `effect.aborted`: an in-flight write (or model call, capability `llm`) was aborted by a covering
 *   directive or by lease expiry.
 * - `effect.cancelled`: the caller's own signal (`EffectOptions.signal`) aborted an in-flight effect.
 * - `run.stopped`: `run.signal` was aborted: a halt, kill or isolate covers the whole run, or the lease
 *   expired (`reason` `stale`, `directiveId` null).
 * - `effect.denied`: the gate refused the effect before it started.
 * - `halt.settled`: every in-flight effect covered by a new stop directive has settled; the `HaltedReport` was sent.
 * - `report.failed`: a POST to the control plane failed (never thrown).
 * - `permit.granted`: the control plane answered a permit request for a write/irreversible effect;
 *   `status` is `granted`, `cooling_off` (irreversible: confirm after the cool-off) or `landed`
 *   (a replay of an idempotency key whose effect already landed: its result is returned, the
 *   function is not called).
 * - `permit.confirmed`: an irreversible effect's permit was confirmed after its cool-off.
 * - `permit.refused`: the control plane refused the permit or its confirmation (`halted`,
 *   `conflict`), or could not be reached (`unavailable`); the function is never called.
 * - `timer.fired`: a run-bound timer's callback (or a retry's next attempt) is about to run.
 * - `timer.cancelled`: a run-bound timer was cancelled by a covering halt or kill (`directiveId`),
 *   by lease expiry or the end of the run (`directiveId: null`); `dueAt` is when it would have
 *   fired (wall time, approximate).
 * - `timer.failed`: a timer callback threw or rejected (swallowed; never an unhandled rejection).
 * - `task.started` / `task.settled`: a queued task's handler is about to be called / has settled.
 * - `queue.discarded`: a queued task was dropped without starting (halt, lease expiry, run end).
 * - `queue.drained`: a task drained under a `drain` halt settled.
 * - `memory.committed` / `memory.reverted`: staged memory writes were committed because a halt's
 *   directive ordered it (`memory: 'commit'`), or dropped (halt, lease expiry, run end).
 * - `run.resumed` / `resume.refused`: the control plane allowed `client.resumeRun`, or refused it (`halted`) or
 *   could not be reached (`unavailable`).
 * - `run.halted_locally`: the run crossed a local limit (`loop_length`: steps, `cost_cap`: USD) and the SDK
 *   halted it by itself, without the control plane (a local directive `directiveId`, `local:<rule>:<run>`).
 * - `memory.rejected`: `run.stage` refused a write that violates the memory schema (a schema violation).
 * - `settings.applied`: the control plane's heartbeat answer changed the heartbeat interval or the run limits in force.
 */
export type SdkEvent =
  | {
      type: 'rev.applied';
      rev: number;
      source: 'snapshot' | 'delta';
      issued: string[];
      cleared: string[];
      at: number;
    }
  | { type: 'stream.connected'; rev: number; url: string; at: number }
  | { type: 'stream.behind'; rev: number; seenRev: number; at: number }
  | { type: 'stream.caught_up'; rev: number; at: number }
  | {
      type: 'stream.error';
      message: string;
      code: ErrorCode | null;
      fatal: boolean;
      retryInMs: number | null;
      at: number;
    }
  | { type: 'stream.resync'; reason: string; at: number }
  | { type: 'lease.expired'; sinceContactMs: number; aborted: number; at: number }
  | { type: 'run.started'; runId: string; parentRunId: string | null; lineage: readonly string[]; at: number }
  | { type: 'run.ended'; runId: string; at: number }
  | (EffectEventFields & { type: 'effect.started' })
  | (EffectEventFields & { type: 'effect.landed'; durationMs: number; afterAbort: boolean })
  | (EffectEventFields & { type: 'effect.failed'; durationMs: number; afterAbort: boolean; message: string })
  | (EffectEventFields & { type: 'effect.aborted'; reason: DenyReason; directiveId: string | null })
  | (EffectEventFields & { type: 'effect.cancelled' })
  | { type: 'run.stopped'; runId: string; reason: DenyReason; directiveId: string | null; at: number }
  | {
      type: 'effect.denied';
      runId: string;
      capability: string;
      class: EffectClass;
      reason: DenyReason;
      directiveId: string | null;
      at: number;
    }
  | {
      type: 'halt.settled';
      directiveId: string;
      rev: number;
      runs: string[];
      aborted: number;
      completed: number;
      observeToSettleMs: number;
      at: number;
    }
  | { type: 'report.failed'; report: ReportKind; message: string; code: ErrorCode | null; at: number }
  | (EffectEventFields & {
      type: 'permit.granted';
      permitId: string;
      rev: number;
      status: EffectStatus;
      replay: boolean;
    })
  | (EffectEventFields & { type: 'permit.confirmed'; permitId: string })
  | (EffectEventFields & {
      type: 'permit.refused';
      stage: 'permit' | 'confirm';
      code: ErrorCode;
      directiveId: string | null;
      message: string;
    })
  | { type: 'timer.fired'; runId: string; timer: TimerKind; label: string | null; at: number }
  | {
      type: 'timer.cancelled';
      runId: string;
      timer: TimerKind;
      label: string | null;
      dueAt: string;
      directiveId: string | null;
      at: number;
    }
  | {
      type: 'timer.failed';
      runId: string;
      timer: TimerKind;
      label: string | null;
      message: string;
      at: number;
    }
  | {
      type: 'task.started';
      runId: string | null;
      queue: string;
      taskId: string;
      draining: boolean;
      at: number;
    }
  | {
      type: 'task.settled';
      runId: string | null;
      queue: string;
      taskId: string;
      outcome: 'completed' | 'failed';
      message: string | null;
      at: number;
    }
  | {
      type: 'queue.discarded';
      runId: string | null;
      queue: string;
      taskId: string;
      directiveId: string | null;
      at: number;
    }
  | {
      type: 'queue.drained';
      runId: string | null;
      queue: string;
      taskId: string;
      outcome: 'completed' | 'failed';
      directiveId: string | null;
      at: number;
    }
  | { type: 'memory.committed'; runId: string; keys: string[]; directiveId: string | null; at: number }
  | { type: 'memory.reverted'; runId: string; keys: string[]; directiveId: string | null; at: number }
  | { type: 'run.resumed'; runId: string; lineage: readonly string[]; at: number }
  | { type: 'resume.refused'; runId: string; code: ErrorCode; message: string; at: number }
  | {
      type: 'run.halted_locally';
      runId: string;
      rule: LocalRule;
      value: number;
      limit: number;
      directiveId: string;
      at: number;
    }
  | { type: 'memory.rejected'; runId: string; key: string; reason: string; at: number }
  | { type: 'settings.applied'; heartbeatMs: number; limits: RunLimits; at: number };

/**
 * Where the SDK journals its events. `record` is called synchronously on the hot path (right
 * before an effect starts): keep it cheap and never block. An exception it throws is swallowed.
 */
export interface JournalSink {
  record(event: SdkEvent): void;
}

/** The default sink: drops every event. */
export const nullSink: JournalSink = Object.freeze({ record: (): void => {} });

/** The `code` of a KillpathError-like value, or `null`. Branches on `code`, not on the class. */
export function errorCode(err: unknown): ErrorCode | null {
  if (typeof err !== 'object' || err === null || !('code' in err)) return null;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' ? (code as ErrorCode) : null;
}

/** A one-line message for any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
