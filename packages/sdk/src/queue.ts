import { randomUUID } from 'node:crypto';
import { KillpathError, coversRun } from '@killpath/protocol';
import type { JournalEvent, RunIdentity } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import { jsonCopy } from './control-calls.ts';
import { runStop } from './gate.ts';
import type { RunTable } from './gate.ts';
import type { HaltTracking } from './halt-tracker.ts';
import type { SdkEvent } from './journal.ts';
import { errorMessage } from './journal.ts';
import type { Lease } from './lease.ts';
import type { Run, RunState } from './run.ts';
import { haltedError } from './verdict.ts';
import type { DenyVerdict } from './verdict.ts';

/** What a task handler gets besides the task. */
export interface TaskContext {
  /** Aborted when a halt stops the task (discard mode, or a drain's grace ran out) or the lease expires. */
  readonly signal: AbortSignal;
  /** The run the task belongs to, or `null` for a task of the worker. */
  readonly run: Run | null;
  readonly taskId: string;
  /**
   * True when the task runs only because a `drain` halt lets queued work finish inside its
   * grace. The run is halted: every effect it tries is still refused (no write after the flip),
   * so use the time to hand the task back (checkpoint it, nack it upstream), not to act on it.
   */
  readonly draining: boolean;
}

/** Processes one task; a rejection marks the task failed (journaled, never unhandled). */
export type TaskHandler<T> = (task: T, ctx: TaskContext) => void | PromiseLike<void>;

/** Options for `client.queue`. */
export interface QueueOptions<T> {
  /** Tasks run at once, at most. Default 1. */
  concurrency?: number;
  /** The run of a task pushed without `run`/`runId`; return `null` for a task of the worker. */
  runOf?: (task: T) => Run | string | null | undefined;
}

/** Options for `queue.push`. */
export interface PushOptions {
  /** The run the task belongs to (a halt covering it covers the task). */
  run?: Run;
  /** The same, by id, for a run on this worker. */
  runId?: string;
  /** The task's id, for the journal and for resuming it; default `crypto.randomUUID()`. Unique in the queue. */
  id?: string;
}

/** What a queue needs from its client. Internal. */
export interface QueueHost {
  readonly clock: Clock;
  readonly lease: Lease;
  record(event: SdkEvent): void;
  journal(event: JournalEvent): void;
  /** The state of a run on this worker. @throws KillpathError `invalid_request` for an unknown run */
  ownerOf(run: Run | string): RunState;
  /** Who a task without a run is: the worker's tenant, agent and features, a run id no `run:` scope can name. */
  readonly workerIdentity: RunIdentity;
  /** The gate table of {@link QueueHost.workerIdentity}, recompiled with the runs'. */
  workerTable(): RunTable;
}

interface DrainMark {
  readonly directiveId: string;
  readonly verdict: DenyVerdict;
  outstanding: number;
  release: (() => void) | null;
  timer: unknown;
}

interface Task<T> {
  readonly id: string;
  readonly payload: T;
  readonly owner: RunState | null;
  drain: DrainMark | null;
  controller: AbortController | null;
}

/**
 * A worker-local task queue bound to the kill path. A task belongs to a run (or to the worker)
 * and starts only while its run's gate is open. When a halt or kill covering its run is
 * observed, the directive's `drain` mode decides, synchronously: `discard` (the default, and
 * always for `kill`) drops every queued task of the covered runs at once and aborts the signals
 * of running ones; `drain` lets queued tasks run inside the directive's `graceMs`, then discards
 * what is left. Each dropped task is journaled as `queue.discarded` with its id and payload
 * (JSON, at most 64 KiB, else `null`), each drained one as `queue.drained`. A capability-narrowed
 * directive does not stop queues. Create it with `client.queue`.
 */
export class Queue<T> {
  /** The queue's name, in the journal. */
  readonly name: string;
  private readonly host: QueueHost;
  private readonly handler: TaskHandler<T>;
  private readonly concurrency: number;
  private readonly runOf: QueueOptions<T>['runOf'];
  private pending: Task<T>[] = [];
  private readonly active = new Set<Task<T>>();
  private readonly ids = new Set<string>();
  private pumpScheduled = false;
  private closed = false;

  /** @internal Use `client.queue`. */
  constructor(host: QueueHost, name: string, handler: TaskHandler<T>, options: QueueOptions<T>) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new KillpathError('invalid_request', 'queue concurrency must be an integer >= 1');
    if (typeof handler !== 'function')
      throw new KillpathError('invalid_request', 'queue handler must be a function');
    this.host = host;
    this.name = name;
    this.handler = handler;
    this.concurrency = concurrency;
    this.runOf = options.runOf;
  }

  /** Tasks queued and not started. */
  get size(): number {
    return this.pending.length;
  }

  /** Tasks whose handler has not settled. */
  get running(): number {
    return this.active.size;
  }

  /**
   * Queues a task; it starts (asynchronously) once a slot is free and its run's gate is open.
   * Returns its id.
   * @throws KillpathError `halted` when a halt or kill covers the task's run now (nothing is
   * queued), `invalid_request` for an unknown or ended run or a closed queue, `conflict` for an id
   * already in the queue
   */
  push(task: T, options: PushOptions = {}): string {
    if (this.closed) throw new KillpathError('invalid_request', `queue ${this.name} is closed`);
    const ref = options.run ?? options.runId ?? this.runOf?.(task) ?? null;
    const owner = ref === null ? null : this.host.ownerOf(ref);
    if (owner?.ended === true)
      throw new KillpathError('invalid_request', `run ${owner.coverage.runId} has ended`);
    const stop = (owner?.table ?? this.host.workerTable()).all;
    if (stop !== null) throw haltedError(stop, this.runIdOf(owner), `queue ${this.name}`, 'denied');
    const id = options.id ?? randomUUID();
    if (typeof id !== 'string' || id === '')
      throw new KillpathError('invalid_request', 'a task id must be a non-empty string');
    if (this.ids.has(id)) throw new KillpathError('conflict', `task ${id} is already in queue ${this.name}`);
    this.ids.add(id);
    this.pending.push({ id, payload: task, owner, drain: null, controller: null });
    this.schedulePump();
    return id;
  }

  /**
   * A stop directive covering the whole run was observed (`tracking`). Internal.
   * @internal
   */
  halt(tracking: HaltTracking): void {
    const d = tracking.directive;
    const covered = (t: Task<T>): boolean => coversRun(d, t.owner?.coverage ?? this.host.workerIdentity);
    const queued = this.pending.filter(covered);
    const running = [...this.active].filter(covered);
    if (queued.length === 0 && running.length === 0) return;
    tracking.touch();
    if (d.level === 'kill' || d.drain !== 'drain' || d.graceMs <= 0) {
      this.pending = this.pending.filter((t) => !covered(t));
      for (const t of queued) this.discarded(t, d.id);
      for (const t of running) this.abortTask(t, tracking.verdict);
      return;
    }
    const mark: DrainMark = {
      directiveId: d.id,
      verdict: tracking.verdict,
      outstanding: 0,
      release: null,
      timer: null,
    };
    for (const t of [...queued, ...running]) {
      if (t.drain !== null) continue;
      t.drain = mark;
      mark.outstanding += 1;
    }
    if (mark.outstanding === 0) return;
    mark.release = tracking.hold();
    mark.timer = this.host.clock.setTimeout(() => this.graceOver(mark), d.graceMs);
    this.schedulePump();
  }

  /**
   * The lease expired: every queued task is discarded and running ones are aborted. Internal.
   * @internal
   */
  expire(verdict: DenyVerdict): void {
    const queued = this.pending;
    this.pending = [];
    for (const t of queued) this.discarded(t, null);
    for (const t of this.active) this.abortTask(t, verdict);
  }

  /**
   * A run ended: its queued tasks are discarded; running ones finish. Internal.
   * @internal
   */
  runEnded(owner: RunState): void {
    const queued = this.pending.filter((t) => t.owner === owner);
    if (queued.length === 0) return;
    this.pending = this.pending.filter((t) => t.owner !== owner);
    for (const t of queued) this.discarded(t, null);
  }

  /**
   * The client closed: nothing starts any more; queued tasks are discarded. Internal.
   * @internal
   */
  close(): void {
    this.closed = true;
    const queued = this.pending;
    this.pending = [];
    for (const t of queued) this.discarded(t, null);
  }

  /**
   * Looks for tasks that may start, one microtask later (after every mirror change). Internal.
   * @internal
   */
  wake(): void {
    this.schedulePump();
  }

  private pump(): void {
    let i = 0;
    while (i < this.pending.length && this.active.size < this.concurrency && !this.closed) {
      const t = this.pending[i];
      if (t === undefined) break;
      // The gate, synchronously, right before the start: a drained task is the only one that starts under a halt.
      if (t.drain === null && this.stopOf(t) !== null) {
        i += 1;
        continue;
      }
      this.pending.splice(i, 1);
      this.start(t);
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private stopOf(t: Task<T>): DenyVerdict | null {
    return runStop(t.owner?.table ?? this.host.workerTable(), this.host);
  }

  private start(t: Task<T>): void {
    const controller = new AbortController();
    t.controller = controller;
    this.active.add(t);
    const draining = t.drain !== null;
    this.host.record({
      type: 'task.started',
      runId: this.runIdOrNull(t),
      queue: this.name,
      taskId: t.id,
      draining,
      at: this.host.clock.now(),
    });
    let out: void | PromiseLike<void>;
    try {
      out = this.handler(t.payload, {
        signal: controller.signal,
        run: t.owner?.run ?? null,
        taskId: t.id,
        draining,
      });
    } catch (err) {
      out = Promise.reject(err);
    }
    Promise.resolve(out).then(
      () => this.settled(t, 'completed', null),
      (err: unknown) => this.settled(t, 'failed', errorMessage(err)),
    );
  }

  private settled(t: Task<T>, outcome: 'completed' | 'failed', message: string | null): void {
    this.active.delete(t);
    this.ids.delete(t.id);
    const runId = this.runIdOrNull(t);
    const at = this.host.clock.now();
    this.host.record({ type: 'task.settled', runId, queue: this.name, taskId: t.id, outcome, message, at });
    const mark = t.drain;
    if (mark !== null) {
      this.host.journal({
        type: 'queue.drained',
        runId,
        queue: this.name,
        taskId: t.id,
        outcome,
        directiveId: mark.directiveId,
      });
      this.host.record({
        type: 'queue.drained',
        runId,
        queue: this.name,
        taskId: t.id,
        outcome,
        directiveId: mark.directiveId,
        at,
      });
      this.markLeft(mark);
    }
    this.schedulePump();
  }

  /** A drain's grace ran out: what is still queued and still stopped is discarded, running tasks are aborted. */
  private graceOver(mark: DrainMark): void {
    mark.timer = null;
    const left = this.pending.filter((t) => t.drain === mark);
    for (const t of left) {
      t.drain = null;
      // A run resumed during the grace keeps its tasks.
      if (this.stopOf(t) === null) continue;
      this.pending.splice(this.pending.indexOf(t), 1);
      this.discarded(t, mark.directiveId);
    }
    for (const t of this.active) if (t.drain === mark) this.abortTask(t, mark.verdict);
    this.finishMark(mark);
  }

  private markLeft(mark: DrainMark): void {
    mark.outstanding -= 1;
    if (mark.outstanding <= 0) this.finishMark(mark);
  }

  private finishMark(mark: DrainMark): void {
    if (mark.timer !== null) this.host.clock.clearTimeout(mark.timer);
    mark.timer = null;
    const release = mark.release;
    mark.release = null;
    release?.();
  }

  private discarded(t: Task<T>, directiveId: string | null): void {
    this.ids.delete(t.id);
    const runId = this.runIdOrNull(t);
    this.host.journal({
      type: 'queue.discarded',
      runId,
      queue: this.name,
      taskId: t.id,
      payload: jsonCopy(t.payload) ?? null,
      directiveId,
    });
    this.host.record({
      type: 'queue.discarded',
      runId,
      queue: this.name,
      taskId: t.id,
      directiveId,
      at: this.host.clock.now(),
    });
    const mark = t.drain;
    t.drain = null;
    if (mark !== null) this.markLeft(mark);
  }

  private abortTask(t: Task<T>, verdict: DenyVerdict): void {
    const controller = t.controller;
    if (controller === null || controller.signal.aborted) return;
    controller.abort(haltedError(verdict, this.runIdOf(t.owner), `queue ${this.name}`, 'aborted'));
  }

  private runIdOrNull(t: Task<T>): string | null {
    return t.owner?.coverage.runId ?? null;
  }

  private runIdOf(owner: RunState | null): string {
    return owner?.coverage.runId ?? this.host.workerIdentity.runId;
  }
}
