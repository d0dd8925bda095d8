import { KillpathError } from '@killpath/protocol';
import type { StreamDirective } from '@killpath/protocol';
import { errorCode } from './journal.ts';
import type { CommittingRun as Run, RunCore as RunState, RunPartsHost as RunHost } from './run-host.ts';
import { haltedError } from './verdict.ts';
import { memoryViolation } from './memory-schema.ts';

/** Why the committer is called: the run's own `commitStep`, or a halt whose directive ordered the commit. */
export type MemoryCommitContext =
  { reason: 'step'; directiveId: null } | { reason: 'directive'; directiveId: string };

/**
 * Where staged memory writes go (your vector store, KV, database). Pass it as `memory` to
 * `connect` (every run) or to `startRun` (one run). `commit` must be all-or-nothing: when it
 * rejects, the SDK takes it that nothing was written and keeps the entries staged.
 */
export interface MemoryCommitter {
  /**
   * Writes `entries` for `runId`. For a step commit (`context.reason === 'step'`) it runs as a
   * `memory.write` effect with a permit, and `signal` aborts on a covering halt. For
   * `context.reason === 'directive'` the run is already halted and its directive said
   * `memory: 'commit'`: this is the one write the SDK makes after a halt, without a permit (the
   * control plane would refuse one for a halted run; the directive itself is the authority),
   * once, and `signal` does not abort.
   */
  commit(
    runId: string,
    entries: ReadonlyMap<string, unknown>,
    signal: AbortSignal,
    context: MemoryCommitContext,
  ): void | PromiseLike<void>;
}

/** The capability a step commit runs as. */
const CAPABILITY = 'memory.write';
const STEP: MemoryCommitContext = Object.freeze({ reason: 'step', directiveId: null });

interface Commit {
  entries: Map<string, unknown>;
  /** The committer was called. */
  started: boolean;
  /** A halt took the entries before the committer ran; the halt's memory mode has decided. */
  taken: boolean;
}

/**
 * One run's staged memory writes: staged during a step, committed together by `commitStep`,
 * reverted or committed (as the directive says) when a halt stops the step. Internal.
 */
export class StagedMemory {
  private readonly host: RunHost;
  private readonly state: RunState;
  private readonly committer: MemoryCommitter | null;
  private staged = new Map<string, unknown>();
  private committing: Commit | null = null;

  constructor(host: RunHost, state: RunState, committer: MemoryCommitter | null) {
    this.host = host;
    this.state = state;
    this.committer = committer;
  }

  stage(key: string, value: unknown): void {
    if (this.committer === null)
      throw new KillpathError(
        'invalid_request',
        'no memory committer: pass `memory` to connect() or startRun()',
      );
    if (typeof key !== 'string' || key === '')
      throw new KillpathError('invalid_request', 'a staged key must be a non-empty string');
    if (this.state.ended)
      throw new KillpathError('invalid_request', `run ${this.state.coverage.runId} has ended`);
    const stop = this.state.table.all;
    if (stop !== null) throw haltedError(stop, this.state.coverage.runId, CAPABILITY, 'denied');
    const schema = this.state.memorySchema;
    if (schema !== null) {
      const why = memoryViolation(schema, key, value);
      if (why !== null) {
        const runId = this.state.coverage.runId;
        this.state.counters.schemaViolations += 1;
        this.host.counted(this.state);
        this.host.record({ type: 'memory.rejected', runId, key, reason: why, at: this.host.clock.now() });
        throw new KillpathError(
          'invalid_request',
          `memory write "${key}" of run ${runId} violates the memory schema: ${why}`,
          { details: { key, reason: why } },
        );
      }
    }
    // Re-staging a key moves it last, so staging order is the order of the latest writes.
    this.staged.delete(key);
    this.staged.set(key, value);
  }

  snapshot(): ReadonlyMap<string, unknown> {
    return new Map(this.staged);
  }

  commit(run: Run): Promise<void> {
    const committer = this.committer;
    if (committer === null)
      return Promise.reject(
        new KillpathError('invalid_request', 'no memory committer: pass `memory` to connect() or startRun()'),
      );
    if (this.committing !== null)
      return Promise.reject(
        new KillpathError('invalid_request', 'a commitStep of this run is already in flight'),
      );
    if (this.staged.size === 0) {
      // Nothing staged; a stopped run still says so (a halt may just have reverted the step).
      const verdict = run.check(CAPABILITY);
      return verdict.kind === 'deny'
        ? Promise.reject(haltedError(verdict, run.runId, CAPABILITY, 'denied'))
        : Promise.resolve();
    }
    const c: Commit = { entries: this.staged, started: false, taken: false };
    this.staged = new Map();
    this.committing = c;
    const runId = run.runId;
    return run
      .effect({ capability: CAPABILITY, class: 'write', args: { keys: [...c.entries.keys()] } }, (signal) => {
        c.started = true;
        return committer.commit(runId, c.entries, signal, STEP);
      })
      .then(
        () => {
          if (this.committing === c) this.committing = null;
        },
        (err: unknown) => {
          if (this.committing === c) this.committing = null;
          // The committer never ran, or ran and failed on its own: the entries are unwritten, stage
          // them again. Aborted mid-commit they are in doubt: the permit's outcome records that.
          if (!c.taken && (!c.started || errorCode(err) !== 'halted')) this.restore(c.entries);
          throw err;
        },
      );
  }

  /**
   * A halt or kill covering the whole run was observed: the step's unwritten entries are
   * reverted, or committed once when the directive says `memory: 'commit'`. `hold` keeps the
   * halted report back until that commit settled.
   */
  halt(directive: StreamDirective, hold: () => () => void): void {
    const entries = this.take();
    if (entries.size === 0) return;
    const committer = this.committer;
    if (directive.memory !== 'commit' || committer === null) {
      this.journal('memory.reverted', entries, directive.id);
      return;
    }
    const release = hold();
    const context: MemoryCommitContext = { reason: 'directive', directiveId: directive.id };
    const runId = this.state.coverage.runId;
    // Deferred: user code never runs inside the client's mirror update.
    Promise.resolve()
      .then(() => committer.commit(runId, entries, new AbortController().signal, context))
      .then(
        () => this.journal('memory.committed', entries, directive.id),
        // All-or-nothing: a failed ordered commit wrote nothing.
        () => this.journal('memory.reverted', entries, directive.id),
      )
      .finally(release);
  }

  /** Lease expiry or the end of the run: unwritten entries are reverted. */
  revert(directiveId: string | null): void {
    const entries = this.take();
    if (entries.size > 0) this.journal('memory.reverted', entries, directiveId);
  }

  /** The step's unwritten entries: staged ones, and those of a commit whose committer has not run. */
  private take(): Map<string, unknown> {
    const c = this.committing;
    const out = new Map<string, unknown>(c !== null && !c.started && !c.taken ? c.entries : []);
    if (c !== null && !c.started) c.taken = true;
    for (const [key, value] of this.staged) {
      out.delete(key);
      out.set(key, value);
    }
    this.staged = new Map();
    return out;
  }

  private restore(entries: Map<string, unknown>): void {
    if (this.state.ended) {
      this.journal('memory.reverted', entries, null);
      return;
    }
    const merged = new Map(entries);
    // Stages made while the commit was in flight are newer: they win.
    for (const [key, value] of this.staged) {
      merged.delete(key);
      merged.set(key, value);
    }
    this.staged = merged;
  }

  private journal(
    type: 'memory.reverted' | 'memory.committed',
    entries: Map<string, unknown>,
    directiveId: string | null,
  ): void {
    const runId = this.state.coverage.runId;
    const keys = [...entries.keys()];
    this.host.journal({ type, runId, keys, directiveId });
    this.host.record({ type, runId, keys: [...keys], directiveId, at: this.host.clock.now() });
  }
}
