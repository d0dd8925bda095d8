import { KillpathError } from '@killpath/protocol';
import type { EffectClass, EffectStatus, ErrorCode, JournalEvent, PermitRequest } from '@killpath/protocol';
import { asPermitResponse, jsonCopy, refusal } from './control-calls.ts';
import type { InFlightEffect } from './in-flight.ts';
import { errorMessage } from './journal.ts';
import type { RunCore as RunState, RunPartsHost as RunHost } from './run-host.ts';
import { haltedError } from './verdict.ts';
import type { DenyVerdict, Verdict } from './verdict.ts';

/** The effect itself. It receives the effect's own signal, aborted when a covering halt or kill is observed. */
export type EffectFn<T> = (signal: AbortSignal) => T | PromiseLike<T>;

/** What an effect needs from its run. Internal. */
export interface EffectContext {
  readonly host: RunHost;
  readonly state: RunState;
  /** The run's gate. */
  check(capability: string, cls: EffectClass): Verdict;
}

/** How often a confirmation answered `conflict` (too early: the control plane's clock is ahead) is tried in all. */
const CONFIRM_ATTEMPTS = 3;
/** Wait before trying a too-early confirmation again, in ms. */
const CONFIRM_RETRY_MS = 250;

/**
 * Runs one effect the gate has allowed and that is already in its run's in-flight set. Under a
 * throttle it first waits `waitMs` for its slot (in flight, abortable; the gate is asked again
 * when the slot comes). Reads then call `fn`. Writes and irreversible effects first ask for a
 * permit (`request`), wait out an irreversible effect's cool-off and confirm it, and call `fn`
 * only with a `granted` permit and an open gate; the outcome goes back to the control plane.
 * Internal.
 */
export function startEffect<T>(
  ctx: EffectContext,
  effect: InFlightEffect,
  fn: EffectFn<T>,
  request: PermitRequest | null,
  waitMs = 0,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    effect.rejectCaller = reject;
    const go = (): void => {
      if (request === null) callFn(ctx, effect, fn, resolve, reject);
      else new PermittedEffect(ctx, effect, fn, request, resolve, reject).start();
    };
    if (waitMs <= 0) {
      go();
      return;
    }
    effect.phase = 'throttled';
    const onAbort = (): void => {
      if (effect.coolTimer !== null) ctx.host.clock.clearTimeout(effect.coolTimer);
      effect.coolTimer = null;
      // One microtask later, so that halt tracking, which runs right after the aborts, still counts it.
      queueMicrotask(() => leave(ctx, effect, 'aborted'));
    };
    effect.controller.signal.addEventListener('abort', onAbort, { once: true });
    effect.coolTimer = ctx.host.clock.setTimeout(() => {
      effect.coolTimer = null;
      effect.controller.signal.removeEventListener('abort', onAbort);
      const verdict = ctx.check(effect.capability, effect.cls);
      if (verdict.kind === 'deny') {
        abortEffect(ctx.host, effect, verdict);
        leave(ctx, effect, 'aborted');
        return;
      }
      effect.phase = effect.cls === 'read' ? 'running' : 'permit';
      go();
    }, waitMs);
  });
}

/**
 * Aborts one in-flight effect with `verdict` and journals `effect.aborted`. False when it was
 * already aborted. Internal.
 */
export function abortEffect(
  host: Pick<RunHost, 'record' | 'clock'>,
  effect: InFlightEffect,
  verdict: DenyVerdict,
): boolean {
  if (!effect.abort(verdict, haltedError(verdict, effect.runId, effect.capability, 'aborted'))) return false;
  host.record({
    type: 'effect.aborted',
    effectId: effect.id,
    runId: effect.runId,
    capability: effect.capability,
    class: effect.cls,
    reason: verdict.reason,
    directiveId: verdict.directive?.id ?? null,
    at: host.clock.now(),
  });
  return true;
}

/** `effect.started` right before `fn`, then `fn` with the effect's signal; its settling ends the effect. */
function callFn<T>(
  ctx: EffectContext,
  effect: InFlightEffect,
  fn: EffectFn<T>,
  resolve: (v: T) => void,
  reject: (e: unknown) => void,
): void {
  effect.phase = 'running';
  ctx.host.record({
    type: 'effect.started',
    effectId: effect.id,
    runId: effect.runId,
    capability: effect.capability,
    class: effect.cls,
    at: ctx.host.clock.now(),
  });
  let out: T | PromiseLike<T>;
  try {
    out = fn(effect.controller.signal);
  } catch (err) {
    fnSettled(ctx, effect, err, true);
    reject(err);
    return;
  }
  Promise.resolve(out).then(
    (value) => {
      fnSettled(ctx, effect, value, false);
      resolve(value);
    },
    (err: unknown) => {
      fnSettled(ctx, effect, err, true);
      reject(err);
    },
  );
}

/** `fn` settled: journal it, report the permit's outcome, leave the run. */
function fnSettled(ctx: EffectContext, effect: InFlightEffect, valueOrError: unknown, failed: boolean): void {
  const { host } = ctx;
  const at = host.clock.now();
  const base = {
    effectId: effect.id,
    runId: effect.runId,
    capability: effect.capability,
    class: effect.cls,
    at,
  };
  const durationMs = at - effect.startedAt;
  const afterAbort = effect.aborted;
  if (!afterAbort) {
    // A tool call that ran; one that failed on its own (not aborted by a halt) is a tool error.
    ctx.state.counters.toolCalls += 1;
    if (failed) ctx.state.counters.toolErrors += 1;
    host.counted(ctx.state);
  }
  if (failed)
    host.record({
      ...base,
      type: 'effect.failed',
      durationMs,
      afterAbort,
      message: errorMessage(valueOrError),
    });
  else host.record({ ...base, type: 'effect.landed', durationMs, afterAbort });
  if (effect.permit !== null) {
    if (!failed) {
      // A result that is not JSON or larger than 64 KiB is left out; a replay then returns undefined.
      const result = jsonCopy(valueOrError);
      host.outcome(effect.permit.id, {
        status: 'landed',
        afterAbort,
        ...(result === undefined ? {} : { result }),
      });
    } else {
      host.outcome(effect.permit.id, {
        status: afterAbort ? 'aborted' : 'failed',
        error: errorMessage(valueOrError),
        afterAbort,
      });
    }
  }
  leave(ctx, effect, failed ? (afterAbort ? 'aborted' : 'failed') : 'completed');
}

/**
 * The effect leaves its run: halt trackers waiting on it are told, and when a stop directive (or
 * lease expiry) found it in flight its final status is journaled. Idempotent.
 */
function leave(ctx: EffectContext, effect: InFlightEffect, status: 'completed' | 'aborted' | 'failed'): void {
  if (effect.phase === 'done') return;
  effect.phase = 'done';
  const { host, state } = ctx;
  state.inFlight.delete(effect);
  if (effect.coveredBy !== undefined) {
    const event: JournalEvent = {
      type: 'in_flight_tool_calls.status',
      runId: effect.runId,
      effectId: `${host.workerId}:${effect.id}`,
      permitId: effect.permit?.id ?? null,
      capability: effect.capability,
      class: effect.cls,
      status,
      directiveId: effect.coveredBy,
    };
    host.journal(event);
  }
  if (effect.onSettle !== null) for (const fn of effect.onSettle) fn();
  if (state.ended && state.inFlight.size === 0) host.runDrained(state);
}

/** The permit path of one write or irreversible effect. */
class PermittedEffect<T> {
  private readonly ctx: EffectContext;
  private readonly effect: InFlightEffect;
  private readonly fn: EffectFn<T>;
  private readonly request: PermitRequest;
  private readonly resolve: (v: T) => void;
  private readonly reject: (e: unknown) => void;

  constructor(
    ctx: EffectContext,
    effect: InFlightEffect,
    fn: EffectFn<T>,
    request: PermitRequest,
    resolve: (v: T) => void,
    reject: (e: unknown) => void,
  ) {
    this.ctx = ctx;
    this.effect = effect;
    this.fn = fn;
    this.request = request;
    this.resolve = resolve;
    this.reject = reject;
  }

  start(): void {
    // The signal exists from the start: a halt observed while the permit is being asked for aborts it.
    this.effect.controller.signal.addEventListener('abort', this.onAbort, { once: true });
    this.ctx.host.calls.requestPermit(this.request).then(this.onPermit, this.onPermitError);
  }

  private get what(): string {
    return `permit for "${this.effect.capability}" of run ${this.effect.runId}`;
  }

  /** Aborted before `fn` was called: nothing of the effect can run any more, so it ends now. */
  private readonly onAbort = (): void => {
    const effect = this.effect;
    if (effect.phase === 'running' || effect.phase === 'done') return;
    if (effect.coolTimer !== null) {
      this.ctx.host.clock.clearTimeout(effect.coolTimer);
      effect.coolTimer = null;
    }
    if (effect.permit !== null)
      this.ctx.host.outcome(effect.permit.id, { status: 'aborted', afterAbort: false });
    // One microtask later, so that halt tracking, which runs right after the aborts, still counts it.
    queueMicrotask(() => leave(this.ctx, effect, 'aborted'));
  };

  private readonly onPermit = (body: unknown): void => {
    const effect = this.effect;
    const answer = asPermitResponse(body);
    if (answer !== null)
      this.recordGranted(answer.permit.id, answer.permit.rev, answer.permit.status, answer.replay);
    if (effect.aborted) {
      // Granted, but a flip was observed meanwhile: never start it, and close the permit.
      const status = answer?.permit.status;
      if (answer !== null && (status === 'granted' || status === 'cooling_off')) {
        this.ctx.host.outcome(answer.permit.id, { status: 'aborted', afterAbort: false });
      }
      return;
    }
    if (answer === null) {
      this.refuse(
        'permit',
        new KillpathError('internal', `${this.what}: malformed answer from the control plane`),
      );
      return;
    }
    effect.permit = answer.permit;
    switch (answer.permit.status) {
      case 'landed':
        // A replay of an idempotency key whose effect already landed: its result, never a second run.
        leave(this.ctx, effect, 'completed');
        this.resolve(answer.result as T);
        return;
      case 'granted':
        this.run();
        return;
      case 'cooling_off':
        this.coolOff(answer.permit.coolOffMs, 1);
        return;
      default:
        this.refuse(
          'permit',
          new KillpathError(
            'conflict',
            `${this.what}: permit ${answer.permit.id} is ${answer.permit.status}; the effect does not run again`,
            {
              details: { permitId: answer.permit.id, status: answer.permit.status },
            },
          ),
        );
    }
  };

  private readonly onPermitError = (err: unknown): void => {
    if (this.effect.aborted) return;
    this.refuse('permit', refusal(err, this.what));
  };

  /** Last gate check, synchronously, then `fn`: a flip observed during the round trip stops it here. */
  private run(): void {
    const verdict = this.ctx.check(this.effect.capability, this.effect.cls);
    if (verdict.kind === 'deny') {
      abortEffect(this.ctx.host, this.effect, verdict);
      return;
    }
    callFn(this.ctx, this.effect, this.fn, this.resolve, this.reject);
  }

  /** Waits out the cool-off on the run's clock (cancelled by an abort), then confirms. */
  private coolOff(ms: number, attempt: number): void {
    const effect = this.effect;
    effect.phase = 'cooling';
    if (ms <= 0) {
      this.confirm(attempt);
      return;
    }
    effect.coolTimer = this.ctx.host.clock.setTimeout(() => {
      effect.coolTimer = null;
      this.confirm(attempt);
    }, ms);
  }

  private confirm(attempt: number): void {
    const effect = this.effect;
    const permit = effect.permit;
    if (effect.aborted || permit === null) return;
    const verdict = this.ctx.check(effect.capability, effect.cls);
    if (verdict.kind === 'deny') {
      abortEffect(this.ctx.host, effect, verdict);
      return;
    }
    effect.phase = 'confirming';
    this.ctx.host.calls.confirmPermit(permit.id).then(
      (body) => {
        if (effect.aborted) return;
        const answer = asPermitResponse(body);
        if (answer === null || answer.permit.status !== 'granted') {
          this.ctx.host.outcome(permit.id, { status: 'aborted', afterAbort: false });
          this.refuse(
            'confirm',
            new KillpathError(
              'conflict',
              `${this.what}: confirmation not granted (${answer?.permit.status ?? 'malformed answer'})`,
            ),
          );
          return;
        }
        this.record('permit.confirmed', permit.id);
        this.run();
      },
      (err: unknown) => {
        if (effect.aborted) return;
        const refused = refusal(err, `confirmation of ${this.what}`);
        if (refused.code === 'conflict' && attempt < CONFIRM_ATTEMPTS) {
          this.coolOff(CONFIRM_RETRY_MS, attempt + 1);
          return;
        }
        // On `halted` the control plane cancelled the permit itself; otherwise close it.
        if (refused.code !== 'halted')
          this.ctx.host.outcome(permit.id, { status: 'aborted', afterAbort: false });
        this.refuse('confirm', refused);
      },
    );
  }

  /** The control plane said no (or could not answer): `fn` never runs. */
  private refuse(stage: 'permit' | 'confirm', err: KillpathError): void {
    const { host, state } = this.ctx;
    const effect = this.effect;
    if (err.code === 'halted') state.denied += 1;
    const details = err.details as { directiveId?: unknown } | undefined;
    host.record({
      type: 'permit.refused',
      effectId: effect.id,
      runId: effect.runId,
      capability: effect.capability,
      class: effect.cls,
      stage,
      code: err.code as ErrorCode,
      directiveId: typeof details?.directiveId === 'string' ? details.directiveId : null,
      message: err.message,
      at: host.clock.now(),
    });
    leave(this.ctx, effect, 'aborted');
    this.reject(err);
  }

  private recordGranted(permitId: string, rev: number, status: EffectStatus, replay: boolean): void {
    const e = this.effect;
    this.ctx.host.record({
      type: 'permit.granted',
      effectId: e.id,
      runId: e.runId,
      capability: e.capability,
      class: e.cls,
      permitId,
      rev,
      status,
      replay,
      at: this.ctx.host.clock.now(),
    });
  }

  private record(type: 'permit.confirmed', permitId: string): void {
    const e = this.effect;
    this.ctx.host.record({
      type,
      effectId: e.id,
      runId: e.runId,
      capability: e.capability,
      class: e.cls,
      permitId,
      at: this.ctx.host.clock.now(),
    });
  }
}
