import { EFFECT_CLASSES, KillpathError } from '@killpath/protocol';
import type {
  StreamDirective,
  EffectClass,
  LocalRule,
  PermitRequest,
  RunIdentity,
  RunLimits,
} from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { RunCore, RunPartsHost } from './run-host.ts';
import { argsDigest } from './control-calls.ts';
import { abortEffect, startEffect } from './effect-runner.ts';
import type { EffectContext, EffectFn } from './effect-runner.ts';
import { OPEN_TABLE } from './gate.ts';
import type { RunTable } from './gate.ts';
import { InFlightEffect } from './in-flight.ts';
import type { Lease } from './lease.ts';
import { RunTimers } from './run-timers.ts';
import type { RetryOptions, RunTimer } from './run-timers.ts';
import { StagedMemory } from './staged-memory.ts';
import type { MemoryCommitter } from './staged-memory.ts';
import type { MemorySchema } from './memory-schema.ts';
import { RunCounters, snapshot } from './telemetry.ts';
import type { RunCountersSnapshot } from './telemetry.ts';
import { ALLOW, NOT_GRANTED, STALE, haltedError } from './verdict.ts';
import type { DenyVerdict, Verdict } from './verdict.ts';

export type { EffectFn } from './effect-runner.ts';

/**
 * What another process needs to start a child of this run: the run id and its ancestors, root
 * first. JSON-safe; pass it as `parent` to `client.startRun` there.
 */
export interface RunHandle {
  readonly runId: string;
  readonly lineage: readonly string[];
}

/** Options for `client.startRun`. */
export interface StartRunOptions {
  /** The run id; default `crypto.randomUUID()`. Must be an identifier (`[A-Za-z0-9._:@-]{1,128}`). */
  runId?: string;
  /** The parent run, possibly from another process; its lineage plus its id become this run's lineage. */
  parent?: RunHandle;
  /** Where this run's staged memory writes are committed; default the client's `memory` option. */
  memory?: MemoryCommitter;
  /**
   * The capabilities this run is granted. An effect of any other is refused before it starts
   * (reason `revoked`, no directive) and counted as an authorisation denial. Default: every
   * capability (only directives restrict).
   */
  capabilities?: readonly string[];
  /** The schema this run's memory writes must follow; default the client's `memorySchema` option. */
  memorySchema?: MemorySchema;
}

/** One effect, described. */
export interface EffectOptions {
  /** The capability (tool, `llm`, `memory.write`, …) a directive may narrow to. */
  capability: string;
  /**
   * `read` effects use the local gate only and complete in flight on a halt. `write` (the
   * default, the safe one) and `irreversible` effects also need a permit from the control plane
   * and are aborted in flight; an irreversible one waits out the permit's cool-off first.
   */
  class?: EffectClass;
  /**
   * Same key, same run: the same permit, and the effect never runs twice, across worker
   * restarts too. Without one, every call is a new effect.
   */
  idempotencyKey?: string;
  /** The effect's arguments; only their SHA-256 (sorted-key JSON) is sent, as `argsDigest`. */
  args?: unknown;
  /** How to undo the effect if it lands and the run is later halted: free-form JSON for the operator. */
  compensate?: Record<string, unknown>;
  /**
   * An outside signal that also aborts this one effect (a framework's per-call signal). When it
   * is already aborted the effect is refused and `fn` never runs; when it fires later the
   * effect's own signal aborts with the same reason and the returned promise rejects with it.
   * Its listener is removed when the effect settles, so a long-lived signal collects none.
   */
  signal?: AbortSignal;
}

/**
 * The capability of model calls. A model call is an effect of class `read` (it changes nothing
 * outside), yet a halt, kill or isolate covering its run aborts it in flight like a write: a
 * model stream of a stopped run is not worth finishing, and its next tool call would be refused.
 */
export const MODEL_CAPABILITY = 'llm';

/** An effect's capability name (class `write`), or its {@link EffectOptions}. */
export type EffectSpec = string | EffectOptions;

/** Most capability names a worker keeps for its heartbeats (a bound against names made up per call). */
export const MAX_SURFACE = 1024;

/** What a run needs from its client (its parts need the {@link RunPartsHost} of it). Internal. */
export interface RunHost extends RunPartsHost {
  /**
   * Capability names this worker's runs declared or checked since it started, sent with each
   * heartbeat (the agent's capability surface). At most {@link MAX_SURFACE}.
   */
  readonly capabilities: Set<string>;
  /** The switchboard rev the worker has applied. */
  readonly rev: number;
  nextEffectId(): number;
  startRun(options: StartRunOptions): Run;
  endRun(state: RunState): void;
  runDrained(state: RunState): void;
  /**
   * Reserves the next slot under a throttle for an effect of this run: how long the effect must
   * wait, in ms (0 to go now). Internal.
   */
  throttleSlot(state: RunState, throttle: StreamDirective): number;
  /** The run's counters changed: send them with the next telemetry batch. */
  counted(state: RunState): void;
  /** The run limits in force now (the stricter of the connect option and the control plane's). */
  localLimits(): RunLimits;
  /** Halts the run (and its descendants on this worker) by itself: a local limit was crossed. */
  haltLocally(state: RunState, rule: LocalRule, value: number, limit: number): void;
}

/** The client's bookkeeping for one run. Internal. */
export class RunState implements RunCore {
  readonly coverage: RunIdentity;
  readonly parentRunId: string | null;
  /** Recompiled by the client on every mirror change. */
  table: RunTable = OPEN_TABLE;
  readonly inFlight = new Set<InFlightEffect>();
  effects = 0;
  denied = 0;
  ended = false;
  /** `capability|directiveId` of degrade/isolate denials already journaled. */
  readonly deniedReported = new Set<string>();
  readonly timers: RunTimers;
  readonly memory: StagedMemory;
  /** The run's public handle, set right after it is created. */
  run: Run | null = null;
  /** Telemetry counters (steps, cost, tool errors, denials, schema violations, anomalies). */
  readonly counters = new RunCounters();
  /** Capabilities granted to the run, or `null` for all. */
  granted: ReadonlySet<string> | null = null;
  /** The schema memory writes must follow, or `null`. */
  memorySchema: MemorySchema | null = null;
  /** Why the run was stopped (what `run.signal` aborts with), or `null` while it was not. */
  stopped: KillpathError | null = null;
  /** Behind `run.signal`; created on first use. */
  signalController: AbortController | null = null;
  /** `run.whenAllowed` calls waiting; each re-checks its verdict when woken (mirror change, contact back, run end). */
  readonly waiters = new Set<() => void>();

  constructor(
    coverage: RunIdentity,
    parentRunId: string | null,
    host: RunHost,
    committer: MemoryCommitter | null,
  ) {
    this.coverage = coverage;
    this.parentRunId = parentRunId;
    this.timers = new RunTimers(host, this);
    this.memory = new StagedMemory(host, this, committer);
  }
}

/** The table of a run that left its worker: every check denies `stale`. */
const CLOSED_TABLE: RunTable = Object.freeze({
  all: STALE,
  block: STALE,
  readOnly: null,
  caps: null,
  throttle: null,
  level: null,
});

/**
 * One run (session) hosted by this worker. `check` is the gate; `effect` wraps anything that
 * leaves the process; timers, retries and staged memory are bound to the run, so a halt stops
 * them too. Runs come from `client.startRun`, `client.resumeRun` or `run.startChild`.
 */
export class Run {
  /** This run's id. */
  readonly runId: string;
  /** The parent run's id, or `null` for a root run. */
  readonly parentRunId: string | null;
  /** What to pass as `parent` to start a child of this run in another process. */
  readonly identity: RunHandle;
  private readonly state: RunState;
  private readonly host: RunHost;
  private readonly clock: Clock;
  private readonly lease: Lease;
  private readonly ctx: EffectContext;
  private readonly surface: Set<string>;

  /** @internal Use `client.startRun`. */
  constructor(host: RunHost, state: RunState) {
    this.host = host;
    this.state = state;
    this.clock = host.clock;
    this.lease = host.lease;
    this.surface = host.capabilities;
    this.runId = state.coverage.runId;
    this.parentRunId = state.parentRunId;
    this.identity = Object.freeze({ runId: this.runId, lineage: state.coverage.lineage });
    this.ctx = { host, state, check: (capability, cls) => this.check(capability, cls) };
    state.run = this;
  }

  /** True once {@link Run.end} was called. */
  get ended(): boolean {
    return this.state.ended;
  }

  /**
   * One `AbortSignal` for the whole run, to hand to a framework (`streamText({ abortSignal })`,
   * `run(agent, input, { signal })`, `agent.invoke(input, { signal })`). It aborts, once and for
   * good, on the first halt, kill or isolate covering the whole run (directives narrowed to
   * capabilities do not count) or when the worker's lease expires, with a `KillpathError` of
   * code `halted` (details `{ reason, directiveId }`) as its reason. It never un-aborts: after a
   * resume, start a new run (or `client.resumeRun`). Already aborted when read under such a stop.
   */
  get signal(): AbortSignal {
    const state = this.state;
    if (state.signalController === null) {
      state.signalController = new AbortController();
      if (state.stopped === null && state.table.block !== null) stopRun(state, this.host, state.table.block);
      else if (state.stopped !== null) state.signalController.abort(state.stopped);
    }
    return state.signalController.signal;
  }

  /**
   * The gate: may this run take an effect of `capability` and class `cls` (default `write`, the
   * safe assumption) now? Synchronous, reads only memory. Denies `stale` before the first
   * snapshot, when the lease ran out, after a detected rev gap (until the resync) and after the
   * client closed; otherwise the highest covering directive decides: `killed`, `halted`,
   * `isolated` (every effect), `revoked` (a degrade naming the capability, reads too),
   * `read_only` (a degrade of the whole scope: writes and irreversible effects only), else
   * allows. A throttle never denies: `effect` waits for the slot. The returned verdicts are
   * shared and frozen. The capability joins the worker's capability surface (heartbeats).
   */
  check(capability: string, cls: EffectClass = 'write'): Verdict {
    // Checked or attempted, allowed or not: part of what this agent can reach for.
    if (this.surface.size < MAX_SURFACE) this.surface.add(capability);
    if (this.clock.now() >= this.lease.deadline) return this.lease.denial;
    const table = this.state.table;
    if (table.caps !== null) {
      const narrowed = table.caps.get(capability);
      if (narrowed !== undefined) return narrowed;
    }
    if (table.block !== null) return table.block;
    if (this.state.granted !== null && !this.state.granted.has(capability)) return NOT_GRANTED;
    return cls !== 'read' && table.readOnly !== null ? table.readOnly : ALLOW;
  }

  /**
   * The back-off for an agent denied by a stop: resolves `true` as soon as
   * `check(capability, cls)` allows (the covering directive was cleared, contact with the
   * control plane came back), `false` after `timeoutMs` (default 60 000) or when the run ends.
   * Never rejects. Await it after a refused effect instead of retrying in a loop: a halted run
   * then does nothing (and journals nothing) until it is resumed. The process is kept alive while
   * it waits.
   */
  whenAllowed(
    capability: string,
    cls: EffectClass = 'write',
    options: { timeoutMs?: number } = {},
  ): Promise<boolean> {
    const state = this.state;
    if (this.check(capability, cls).kind === 'allow') return Promise.resolve(true);
    if (state.ended) return Promise.resolve(false);
    const clock = this.clock;
    return new Promise<boolean>((resolve) => {
      // An agent waiting for its resume is waiting, not finished: the SDK's own timers are
      // unref'd, so without this hold Node would end the process (exit 13) while it waits.
      const release = clock.hold?.() ?? (() => {});
      const done = (allowed: boolean): void => {
        state.waiters.delete(wake);
        clock.clearTimeout(timer);
        release();
        resolve(allowed);
      };
      const wake = (): void => {
        if (state.ended) done(false);
        else if (this.check(capability, cls).kind === 'allow') done(true);
      };
      state.waiters.add(wake);
      const timer = clock.setTimeout(() => done(false), options.timeoutMs ?? 60_000);
    });
  }

  /**
   * Counts one step of the run's loop (a planner turn, a model call) and returns the count. When
   * the count exceeds the run's `maxSteps` limit, the SDK halts the run by itself, at once and
   * without the control plane (`run.halted_locally`, rule `loop_length`): its next effect is
   * refused. The count also goes to the control plane's supervisor with the next telemetry batch.
   * Cheap: a counter and a flag.
   */
  step(): number {
    const state = this.state;
    const n = ++state.counters.steps;
    this.host.counted(state);
    const max = this.host.localLimits().maxSteps;
    if (max !== null && n > max) this.host.haltLocally(state, 'loop_length', n, max);
    return n;
  }

  /**
   * Adds to the run's spend: `tokens` and `usd` (both default 0). When the total exceeds the run's
   * `maxCostUsd` limit, the SDK halts the run by itself (rule `cost_cap`), as {@link Run.step} does.
   * @throws KillpathError `invalid_request` for a negative or non-finite amount
   */
  recordCost(cost: { tokens?: number; usd?: number }): void {
    const tokens = cost.tokens ?? 0;
    const usd = cost.usd ?? 0;
    if (!(Number.isFinite(tokens) && tokens >= 0 && Number.isFinite(usd) && usd >= 0)) {
      throw new KillpathError('invalid_request', 'recordCost takes non-negative finite tokens and usd');
    }
    const c = this.state.counters;
    c.tokens += tokens;
    c.costUsd += usd;
    this.host.counted(this.state);
    const max = this.host.localLimits().maxCostUsd;
    if (max !== null && c.costUsd > max) this.host.haltLocally(this.state, 'cost_cap', c.costUsd, max);
  }

  /**
   * Flags an anomaly found by your own detector (a distribution shift in planner text, an odd
   * tool sequence): `score` (conventionally 0 to 1) and a short `detail`. The control plane's
   * policy decides what a score means (`run.anomaly_score`, `run.anomalies`).
   * @throws KillpathError `invalid_request` for a non-finite score
   */
  flagAnomaly(score: number, detail?: string): void {
    if (typeof score !== 'number' || !Number.isFinite(score))
      throw new KillpathError('invalid_request', 'flagAnomaly takes a finite score');
    const c = this.state.counters;
    c.anomalies += 1;
    if (score > c.anomalyScore) c.anomalyScore = score;
    c.anomalyDetail = typeof detail === 'string' ? detail.slice(0, 1000) : null;
    this.host.counted(this.state);
  }

  /** The run's telemetry counters so far on this worker (a copy). */
  get counters(): RunCountersSnapshot {
    const { runId: _runId, ...rest } = snapshot(this.runId, this.state.counters);
    return rest;
  }

  /**
   * Runs one effect. The gate decides first, synchronously: a deny rejects with a
   * `KillpathError` of code `halted` (details `{ reason, directiveId }`) and `fn` is never called.
   *
   * A `read` then calls `fn` at once. A `write` or `irreversible` effect first asks the control
   * plane for a permit (the permit request is the journal's intent record) and calls `fn` only
   * once it is granted, its cool-off (irreversible) waited out and confirmed, and the gate is
   * still open. Refusals reject without calling `fn`: `halted` (a covering halt or kill at the
   * control plane, details `{ reason, directiveId, rev }`), `conflict` (an idempotency key whose
   * earlier effect has no outcome: at most once), `unavailable` (the control plane could not be
   * reached: not retried here, the caller's retry policy decides). A replay of an idempotency
   * key whose effect already landed resolves with that effect's result (`undefined` when it was
   * not JSON or over 64 KiB) without calling `fn`. The outcome (`landed` with the JSON result,
   * `failed`, `aborted`) is reported to the control plane when `fn` settles.
   *
   * `fn` gets the effect's own `AbortSignal`, which exists from the start: when a covering halt
   * or kill is observed, or the lease expires, a `write` or `irreversible` effect is aborted (in
   * its permit round trip, its cool-off or its function): the signal fires with a `halted`
   * error and the returned promise rejects with it at once, even if `fn` ignores the signal.
   * `read` effects are left to complete. The effect counts as in flight until `fn` settles.
   * @throws nothing synchronously; every failure is a rejection (`invalid_request` after `end()`
   * or for a malformed spec)
   */
  effect<T>(spec: EffectSpec, fn: EffectFn<T>): Promise<T> {
    let options: EffectOptions & { class: EffectClass };
    try {
      options = resolveSpec(spec);
    } catch (err) {
      return Promise.reject(err);
    }
    const { capability, class: cls, signal: outside } = options;
    const state = this.state;
    if (state.ended) {
      return Promise.reject(new KillpathError('invalid_request', `run ${this.runId} has ended`));
    }
    if (outside?.aborted === true) return Promise.reject(outside.reason);
    const verdict = this.check(capability, cls);
    if (verdict.kind === 'deny') {
      state.denied += 1;
      const r = verdict.reason;
      if (r === 'revoked' || r === 'read_only' || r === 'isolated') {
        state.counters.authDenials += 1;
        if (verdict.directive !== null) state.counters.revokedDenials += 1;
        this.host.counted(state);
      }
      this.reportDenied(capability, cls, verdict);
      this.host.record({
        type: 'effect.denied',
        runId: this.runId,
        capability,
        class: cls,
        reason: verdict.reason,
        directiveId: verdict.directive?.id ?? null,
        at: this.clock.now(),
      });
      return Promise.reject(haltedError(verdict, this.runId, capability, 'denied'));
    }
    let request: PermitRequest | null = null;
    if (cls !== 'read') {
      try {
        request = this.permitRequest(options, cls);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const effect = new InFlightEffect(
      this.host.nextEffectId(),
      this.runId,
      capability,
      cls,
      this.clock.now(),
    );
    state.inFlight.add(effect);
    state.effects += 1;
    const waitMs = state.table.throttle === null ? 0 : this.host.throttleSlot(state, state.table.throttle);
    if (outside !== undefined) {
      const host = this.host;
      const onOutside = (): void => {
        if (!effect.cancel(outside.reason)) return;
        host.record({
          type: 'effect.cancelled',
          effectId: effect.id,
          runId: effect.runId,
          capability,
          class: cls,
          at: host.clock.now(),
        });
      };
      outside.addEventListener('abort', onOutside, { once: true });
      effect.whenSettled(() => outside.removeEventListener('abort', onOutside));
    }
    return startEffect(this.ctx, effect, fn, request, waitMs);
  }

  /** A degrade or isolate refused an effect: journaled once per capability and directive (an authorisation denial). */
  private reportDenied(capability: string, cls: EffectClass, verdict: DenyVerdict): void {
    const reason = verdict.reason;
    if (reason !== 'revoked' && reason !== 'read_only' && reason !== 'isolated') return;
    const key = `${capability}|${verdict.directive?.id ?? ''}`;
    if (this.state.deniedReported.has(key)) return;
    this.state.deniedReported.add(key);
    this.host.journal({
      type: 'effect.denied',
      runId: this.runId,
      capability,
      class: cls,
      reason,
      directiveId: verdict.directive?.id ?? null,
    });
  }

  /**
   * Calls `fn` once, `ms` from now (on the client's clock), unless the run is stopped first: a
   * covering halt or kill, lease expiry or the end of the run cancels it (journaled as
   * `timer.cancelled`), and a timer that falls due while the run is stopped is cancelled instead
   * of run. A rejection or throw of `fn` is journaled as `timer.failed`, never unhandled.
   * @throws KillpathError `halted` when a halt or kill covers the run now, `invalid_request`
   * after `end()` or for a negative `ms`
   */
  setTimeout(fn: () => unknown, ms: number, label?: string): RunTimer {
    return this.state.timers.add('timeout', fn, ms, label ?? null);
  }

  /** Like {@link Run.setTimeout}, every `ms` until cancelled. */
  setInterval(fn: () => unknown, ms: number, label?: string): RunTimer {
    return this.state.timers.add('interval', fn, ms, label ?? null);
  }

  /**
   * Calls `fn(attempt)` (attempt 1, 2, …) until it resolves or `attempts` are spent, waiting
   * `initialMs × factor^(n-1)` (at most `maxMs`) on a run-bound timer between attempts. Stops
   * at once, rejecting with the last error, on `halted` (and by default on `conflict`,
   * `invalid_request`, `unauthenticated`, `forbidden`). A halt, lease expiry or the end of the
   * run during a wait cancels it: journaled as `timer.cancelled` and rejected with `halted`
   * (or `invalid_request` after `end()`).
   */
  retry<T>(fn: (attempt: number) => T | PromiseLike<T>, options: RetryOptions): Promise<T> {
    return this.state.timers.retry(fn, options);
  }

  /**
   * Stages a memory write for the current step; {@link Run.commitStep} commits the step's
   * staged entries as one `memory.write` effect. A halt reverts what is staged (journaled as
   * `memory.reverted`), unless its directive says `memory: 'commit'`. Later stages of a key win.
   * With a memory schema (`memorySchema` on connect or startRun), a write that violates it is
   * not staged: it is counted as a schema violation (the supervisor's `memory_schema` rule) and
   * journaled `memory.rejected`.
   * @throws KillpathError `invalid_request` without a memory committer, after `end()` or for a
   * schema violation (details `{ key, reason }`), `halted` when a halt or kill covers the run now
   */
  stage(key: string, value: unknown): void {
    this.state.memory.stage(key, value);
  }

  /** The entries staged in the current step, in staging order (a copy). */
  get staged(): ReadonlyMap<string, unknown> {
    return this.state.memory.snapshot();
  }

  /**
   * Commits the staged entries as one `write` effect of capability `memory.write` (with a
   * permit), through the memory committer. Resolves at once when nothing is staged. When the
   * commit is refused or the committer fails, the entries stay staged for another try (later
   * stages of a key win); when a halt aborts it, the halt's memory mode decides.
   */
  commitStep(): Promise<void> {
    return this.state.memory.commit(this);
  }

  /** Starts a child run on this worker, with this run as its parent. */
  startChild(options: { runId?: string; memory?: MemoryCommitter } = {}): Run {
    return this.host.startRun({ ...options, parent: this.identity });
  }

  /**
   * Removes the run from the worker. New effects are refused (`invalid_request`); timers are
   * cancelled, staged memory reverted, queued tasks discarded (each journaled); in-flight
   * effects stay covered by halts until they settle, then the run leaves and every check denies
   * `stale`.
   */
  end(): void {
    if (this.state.ended) return;
    this.state.ended = true;
    this.state.timers.cancelAll(null);
    this.state.memory.revert(null);
    this.host.endRun(this.state);
    for (const wake of [...this.state.waiters]) wake();
  }

  private permitRequest(options: EffectOptions, cls: Exclude<EffectClass, 'read'>): PermitRequest {
    const c = this.state.coverage;
    return {
      workerId: this.host.workerId,
      runId: this.runId,
      lineage: [...c.lineage],
      features: [...c.features],
      ...(c.release ? { release: { ...c.release } } : {}),
      capability: options.capability,
      class: cls,
      idempotencyKey: options.idempotencyKey ?? null,
      argsDigest: options.args === undefined ? null : argsDigest(options.args),
      seenRev: this.host.rev,
      compensate: options.compensate ?? null,
    };
  }
}

function resolveSpec(spec: EffectSpec): EffectOptions & { class: EffectClass } {
  if (typeof spec === 'string') return { capability: spec, class: 'write' };
  const bad = (why: string): never => {
    throw new KillpathError('invalid_request', `invalid effect: ${why}`);
  };
  if (typeof spec !== 'object' || spec === null || typeof spec.capability !== 'string')
    return bad('capability must be a string');
  const cls = spec.class ?? 'write';
  if (!EFFECT_CLASSES.includes(cls)) bad(`unknown class "${String(cls)}"`);
  const key = spec.idempotencyKey;
  if (key !== undefined && (typeof key !== 'string' || key === ''))
    bad('idempotencyKey must be a non-empty string');
  const comp = spec.compensate;
  if (comp !== undefined && (typeof comp !== 'object' || comp === null || Array.isArray(comp)))
    bad('compensate must be an object');
  if (spec.signal !== undefined && !(spec.signal instanceof AbortSignal))
    bad('signal must be an AbortSignal');
  return { ...spec, class: cls };
}

/** Closes a drained run's gate for good. Internal. */
export function closeRunTable(state: RunState): void {
  state.table = CLOSED_TABLE;
}

/**
 * Whether a stop aborts this effect in flight: writes, irreversible effects and model calls
 * ({@link MODEL_CAPABILITY}); other reads are left to complete. Internal.
 */
export function stopsInFlight(effect: { readonly cls: EffectClass; readonly capability: string }): boolean {
  return effect.cls !== 'read' || effect.capability === MODEL_CAPABILITY;
}

/**
 * Stops the run as a whole: `run.signal` aborts (if anyone asked for it) with a `halted` error
 * for `verdict`; journaled `run.stopped`. Once per run. Internal.
 */
export function stopRun(
  state: RunState,
  host: Pick<RunHost, 'record' | 'clock'>,
  verdict: DenyVerdict,
): void {
  if (state.stopped !== null) return;
  const runId = state.coverage.runId;
  const directiveId = verdict.directive?.id ?? null;
  const why =
    verdict.note !== undefined
      ? verdict.note
      : verdict.reason === 'stale'
        ? 'no fresh switchboard (lease expired)'
        : `${verdict.reason} by directive ${directiveId ?? '?'}`;
  state.stopped = new KillpathError('halted', `run ${runId} stopped: ${why}`, {
    details: { reason: verdict.reason, directiveId },
  });
  host.record({ type: 'run.stopped', runId, reason: verdict.reason, directiveId, at: host.clock.now() });
  state.signalController?.abort(state.stopped);
}

/**
 * Aborts the run's in-flight effects that a stop aborts ({@link stopsInFlight}) for which
 * `verdictOf` returns a verdict, wherever they are (throttle wait, permit round trip, cool-off,
 * function); other reads are left to complete unless still waiting for a throttle slot. Returns
 * how many were aborted now. Internal.
 */
export function abortWrites(
  state: RunState,
  host: Pick<RunHost, 'record' | 'clock'>,
  verdictOf: (effect: InFlightEffect) => DenyVerdict | null,
): number {
  let aborted = 0;
  // Copy first: abort listeners run synchronously in user code.
  for (const effect of [...state.inFlight]) {
    // A read waiting for its throttle slot has not started: it is refused like a new one.
    if ((!stopsInFlight(effect) && effect.phase !== 'throttled') || effect.aborted) continue;
    const verdict = verdictOf(effect);
    if (verdict !== null && abortEffect(host, effect, verdict)) aborted += 1;
  }
  return aborted;
}
