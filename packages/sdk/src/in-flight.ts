import type { EffectClass, Permit } from '@killpath/protocol';
import type { DenyVerdict } from './verdict.ts';

/**
 * Where an effect is in its life. Under a throttle any effect may first be `throttled` (waiting
 * for its slot). Reads start `running`. Writes and irreversible effects start at `permit` (the
 * permit request is in flight), may pass through `cooling` (an irreversible effect's cool-off
 * timer) and `confirming`, and are `running` only once their function is called. `done` once it
 * left its run.
 */
export type EffectPhase = 'throttled' | 'permit' | 'cooling' | 'confirming' | 'running' | 'done';

/**
 * One effect between its start (the gate allowed it) and its end. Each has its own
 * `AbortController`, never chained to a long-lived parent signal, so nothing accumulates
 * listeners over a worker's lifetime. The record leaves its run only when the function's
 * promise settles (or, before the function was called, when the effect is refused or aborted),
 * even if the caller was released earlier by an abort.
 */
export class InFlightEffect {
  readonly id: number;
  readonly runId: string;
  readonly capability: string;
  readonly cls: EffectClass;
  readonly startedAt: number;
  readonly controller = new AbortController();
  phase: EffectPhase;
  /** The verdict that aborted it, or `null` while no directive (or lease expiry) did. */
  abortedBy: DenyVerdict | null = null;
  /** Rejects the caller's promise; set when the effect starts. */
  rejectCaller: ((err: unknown) => void) | null = null;
  /** Called once when the effect leaves its run (halt trackers waiting on it). */
  onSettle: (() => void)[] | null = null;
  /** The permit, once the control plane granted one. */
  permit: Permit | null = null;
  /** The cool-off (or confirm retry) timer while `cooling`, or the throttle slot timer while `throttled`. */
  coolTimer: unknown = null;
  /**
   * The stop directive that found this effect in flight (`null`: lease expiry), so that its final
   * status is journaled as `in_flight_tool_calls.status`; `undefined` while nothing stopped it.
   */
  coveredBy: string | null | undefined = undefined;

  constructor(id: number, runId: string, capability: string, cls: EffectClass, startedAt: number) {
    this.id = id;
    this.runId = runId;
    this.capability = capability;
    this.cls = cls;
    this.startedAt = startedAt;
    this.phase = cls === 'read' ? 'running' : 'permit';
  }

  /** True once aborted, by a verdict or by the caller's own signal (`EffectOptions.signal`). */
  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  /** Aborts the signal with `error` and releases the caller at once. False when already aborted. */
  abort(verdict: DenyVerdict, error: Error): boolean {
    if (this.aborted) return false;
    this.abortedBy = verdict;
    this.controller.abort(error);
    this.rejectCaller?.(error);
    return true;
  }

  /**
   * Aborts the signal with the caller's own `reason` (its `EffectOptions.signal` fired) and
   * releases the caller at once, rejecting with that reason. False when already aborted.
   */
  cancel(reason: unknown): boolean {
    if (this.aborted) return false;
    this.controller.abort(reason);
    this.rejectCaller?.(reason);
    return true;
  }

  /** Registers `fn` to run when the effect leaves its run. */
  whenSettled(fn: () => void): void {
    (this.onSettle ??= []).push(fn);
  }
}
