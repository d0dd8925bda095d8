import { KillpathError, MAX_RUNS_PER_HEARTBEAT, coversRun } from '@killpath/protocol';
import type { RunIdentity } from '@killpath/protocol';
import { OPEN_TABLE, compileTable, tableVerdict } from './gate.ts';
import type { RunTable } from './gate.ts';
import type { HaltTracker } from './halt-tracker.ts';
import type { Mirror, MirrorEntry } from './mirror.ts';
import { abortWrites, closeRunTable, stopRun } from './run.ts';
import type { Run, RunHost, RunState } from './run.ts';
import { fanOutExpiry, fanOutStops } from './stop-fanout.ts';
import type { QueueControl } from './stop-fanout.ts';
import type { DenyVerdict } from './verdict.ts';

/**
 * The runs a worker hosts and their gate tables: compiled from the mirror plus the halts the SDK
 * put on runs by itself (local limits), and enforced on one path, whoever stopped the run.
 * Internal: the client owns one.
 */
export class RunRegistry {
  private readonly runs = new Map<string, RunState>();
  /** Halts the SDK put on runs by itself (local limits), compiled into gate tables next to the mirror's. */
  private localStops: readonly MirrorEntry[] = [];
  private tableCache: { mirror: readonly MirrorEntry[]; all: readonly MirrorEntry[] } | null = null;
  /** The gate table of tasks without a run (the worker's own identity). */
  workerTable: RunTable = OPEN_TABLE;
  private readonly mirror: Mirror;
  private readonly workerIdentity: RunIdentity;
  private readonly host: RunHost;
  private readonly queues: ReadonlyMap<string, QueueControl>;
  private readonly halts: HaltTracker;

  constructor(
    mirror: Mirror,
    workerIdentity: RunIdentity,
    host: RunHost,
    queues: ReadonlyMap<string, QueueControl>,
    halts: HaltTracker,
  ) {
    this.mirror = mirror;
    this.workerIdentity = workerIdentity;
    this.host = host;
    this.queues = queues;
    this.halts = halts;
  }

  has(runId: string): boolean {
    return this.runs.has(runId);
  }

  values(): IterableIterator<RunState> {
    return this.runs.values();
  }

  /**
   * Checks that one more run fits in this worker's heartbeat: the control plane refuses a
   * heartbeat of more than {@link MAX_RUNS_PER_HEARTBEAT} runs (400), and a worker whose
   * heartbeats are refused loses its lease, so the run that would exceed it is refused here,
   * before anything is registered. Ended runs still draining count: the heartbeat reports them.
   * @throws KillpathError `invalid_request` (details: reason `worker_full`, limit, runs) when this worker hosts that many
   */
  assertRoom(runId: string): void {
    if (this.runs.size < MAX_RUNS_PER_HEARTBEAT) return;
    throw new KillpathError(
      'invalid_request',
      `run ${runId} refused: this worker already hosts ${this.runs.size} runs, the most one worker may report (${MAX_RUNS_PER_HEARTBEAT}); end a run here or start another worker (connect() in another process) for more`,
      { details: { reason: 'worker_full', limit: MAX_RUNS_PER_HEARTBEAT, runs: this.runs.size } },
    );
  }

  /** Adds a run; its gate follows the mirror (and the local halts) from its first check. */
  add(state: RunState): void {
    state.table = compileTable(this.tableEntries(), state.coverage);
    this.runs.set(state.coverage.runId, state);
  }

  /**
   * The state behind a run of this worker (a `Run` or its id).
   * @throws KillpathError `invalid_request` when it is not on this worker
   */
  ownerOf(ref: Run | string): RunState {
    const runId = typeof ref === 'string' ? ref : ref.runId;
    const state = this.runs.get(runId);
    if (state === undefined || (typeof ref !== 'string' && state.run !== ref)) {
      throw new KillpathError('invalid_request', `run ${runId} is not on this worker`);
    }
    return state;
  }

  /** The run has nothing left in flight after its end: it leaves the worker, and the local halts that covered only it go. */
  drained(state: RunState): void {
    if (this.runs.get(state.coverage.runId) === state) this.runs.delete(state.coverage.runId);
    closeRunTable(state);
    if (this.localStops.length > 0) {
      // A local halt is kept while a run it covers (the run or a descendant) is on this worker.
      const kept = this.localStops.filter((e) =>
        [...this.runs.values()].some((s) => coversRun(e.directive, s.coverage)),
      );
      if (kept.length !== this.localStops.length) {
        this.localStops = kept;
        this.tableCache = null;
      }
    }
  }

  /** Recompiles every run's gate table and the worker's, after a mirror change. */
  recompileAll(): void {
    const entries = this.tableEntries();
    for (const state of this.runs.values()) state.table = compileTable(entries, state.coverage);
    this.workerTable = compileTable(this.mirror.entries, this.workerIdentity);
  }

  /**
   * Adds a local halt and recompiles the tables of the runs it covers; returns them (to
   * {@link RunRegistry.enforce}).
   */
  addLocalStop(entry: MirrorEntry): RunState[] {
    this.localStops = [...this.localStops, entry];
    this.tableCache = null;
    const covered = [...this.runs.values()].filter((s) => coversRun(entry.directive, s.coverage));
    const entries = this.tableEntries();
    for (const s of covered) s.table = compileTable(entries, s.coverage);
    return covered;
  }

  /**
   * Enforces the recompiled tables of `states`: in-flight writes they now refuse are aborted, the
   * runs they block are stopped, and what the `issued` stops stop (timers, staged memory, queues,
   * halt tracking) is fanned out. The one path of a stop, from the control plane or local.
   */
  enforce(states: Iterable<RunState>, issued: readonly MirrorEntry[], rev: number, at: number): void {
    const list = [...states];
    for (const s of list)
      abortWrites(s, this.host, (effect) => tableVerdict(s.table, effect.capability, effect.cls));
    for (const s of list) if (s.table.block !== null) stopRun(s, this.host, s.table.block);
    fanOutStops(issued, rev, at, this.runs.values(), this.queues.values(), this.halts);
  }

  /** No switchboard to go by: every run is stopped with `verdict`, its in-flight writes aborted, its queues and timers too. */
  stopAll(verdict: DenyVerdict): void {
    for (const state of this.runs.values()) abortWrites(state, this.host, () => verdict);
    for (const state of this.runs.values()) stopRun(state, this.host, verdict);
    fanOutExpiry(verdict, this.runs.values(), this.queues.values());
  }

  /** The gate may have opened: queued tasks may start, and `run.whenAllowed` callers re-check. */
  wake(): void {
    for (const state of this.runs.values()) for (const wake of [...state.waiters]) wake();
    for (const queue of this.queues.values()) queue.wake();
  }

  /** The directives gate tables are compiled from: the mirror's, plus the local halts. */
  private tableEntries(): readonly MirrorEntry[] {
    if (this.localStops.length === 0) return this.mirror.entries;
    const c = this.tableCache;
    if (c !== null && c.mirror === this.mirror.entries) return c.all;
    const all = Object.freeze([...this.mirror.entries, ...this.localStops]);
    this.tableCache = { mirror: this.mirror.entries, all };
    return all;
  }
}
