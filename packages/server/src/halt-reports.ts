import type { AuditEventOf } from '@killpath/protocol';
import { coversRun, type Directive, type HaltedReport } from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { workerIdOf, workerKey, type Fleet, type WorkerKey } from './fleet.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { AuditStore } from './store/store.ts';

/** A worker's settle report, with the time-to-stop the control plane measured. */
export interface HaltedEvent extends HaltedReport {
  workerId: string;
  tenant: string;
  agent: string;
  /** Flip (commit) to receipt of this report, on the control plane's monotonic clock; null if the flip is too old to be remembered. */
  timeToStopMs: number | null;
}

/** Listener for settle reports (demo, drills and benchmarks use it in process). */
export type HaltedListener = (e: HaltedEvent) => void;

/** How many recent flips' commit times are kept for time-to-stop. */
const FLIP_MEMORY = 4096;

/** What the halt reports need of the control plane. */
export interface HaltReportsHost {
  readonly fleet: Fleet;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** The rev the stream hub has reached. */
  rev(): number;
  /** The active directive `id`, if it is on the switchboard. */
  active(id: string): Directive | undefined;
  /** Queues an audit record (batched). */
  queueAudit(e: AuditEvent): void;
}

/**
 * Workers' settle reports (`halted`): which worker acknowledged which stop (what the escalation
 * counts, and what evidence can contradict), and time-to-stop, measured from this process's
 * commit of the flip on its monotonic clock. Per process: the acknowledgements are rebuilt from
 * the audit log at start (`session.halted`); the flip times are only this process's.
 */
export class HaltReports {
  readonly #host: HaltReportsHost;
  /** Workers that reported `halted` per directive id (for escalation). */
  readonly #acks = new Map<string, Set<WorkerKey>>();
  /** Commit time (monotonic ms) of recent revs. */
  readonly #flips = new Map<number, number>();
  readonly #listeners = new Set<HaltedListener>();

  constructor(host: HaltReportsHost) {
    this.#host = host;
  }

  /**
   * Rebuilds the acknowledgements of the active directives `activeIds` from the audit log:
   * workers that reported halted to an earlier run of the control plane have acknowledged, and
   * an escalation re-armed after a restart must not take them for laggards.
   */
  async load(store: AuditStore, activeIds: ReadonlySet<string>): Promise<void> {
    if (activeIds.size === 0) return;
    const reports = await store.listAudit({ types: ['session.halted'], desc: true, limit: 10_000 });
    for (const r of reports) {
      const id = String(r.data.directiveId);
      if (!activeIds.has(id)) continue;
      let set = this.#acks.get(id);
      if (set === undefined) this.#acks.set(id, (set = new Set()));
      set.add(workerKey(String(r.tenant), String(r.data.agent), String(r.data.workerId)));
    }
  }

  /** Notes that `rev` was committed now (`now`: monotonic ms). */
  flipped(rev: number, now: number): void {
    this.#flips.set(rev, now);
    if (this.#flips.size > FLIP_MEMORY) this.#flips.delete(this.#flips.keys().next().value!);
  }

  /** Monotonic commit time of `rev`, if remembered. */
  flipTime(rev: number): number | undefined {
    return this.#flips.get(rev);
  }

  /** The workers that reported halted for directive `id`. */
  acknowledged(id: string): ReadonlySet<WorkerKey> {
    return this.#acks.get(id) ?? new Set<WorkerKey>();
  }

  /** Forgets directive `id` (cleared or replaced). */
  forget(id: string): void {
    this.#acks.delete(id);
  }

  /** Subscribes to settle reports; returns the unsubscribe function. */
  onHalted(fn: HaltedListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  contradict(key: WorkerKey, runId: string | null, evidence: string, seenRev: number | null = null): void {
    const identities = this.#host.fleet.identitiesOf(key);
    const workerId = workerIdOf(key);
    for (const [directiveId, set] of this.#acks) {
      if (!set.has(key)) continue;
      const d = this.#host.active(directiveId);
      if (d === undefined) continue;
      // Asked before the worker had even observed the stop: late in transit, not a lie.
      if (seenRev !== null && seenRev < d.rev) continue;
      const covered = identities.some((r) => (runId === null || r.runId === runId) && coversRun(d, r));
      if (!covered) continue;
      set.delete(key);
      const who = this.#host.fleet.watchInfo(key);
      this.#host.log.warn('a halted report was contradicted: the kill step will proceed', {
        directiveId,
        workerId,
        evidence,
      });
      this.#host.queueAudit({
        type: 'ack.contradicted',
        actor: `control-plane`,
        tenant: who?.tenant ?? d.tenant,
        data: { directiveId, workerId, agent: who?.agent ?? null, runId, evidence },
      });
    }
  }

  /**
   * Takes a worker's settle report: measures flip-to-report on this process's monotonic clock,
   * notifies listeners, and queues `session.halted` for the audit log (batched, so a fleet of
   * reports costs one durable commit per batch rather than one each). The worker's word counts
   * only for runs it hosts that the directive covers.
   */
  report(
    workerId: string,
    who: { tenant: string; agent: string },
    claimed: HaltedReport,
    directive?: Directive,
  ): HaltedEvent {
    const key = workerKey(who.tenant, who.agent, workerId);
    // The worker's word counts only for runs it hosts that the directive covers.
    const d = directive ?? this.#host.active(claimed.directiveId);
    const hosted = d === undefined ? [] : this.#host.fleet.identitiesOf(key).filter((r) => coversRun(d, r));
    const ids = new Set(hosted.map((r) => r.runId));
    const report: HaltedReport = { ...claimed, runs: claimed.runs.filter((r) => ids.has(r)) };
    this.#host.fleet.ack(key, Math.min(report.rev, this.#host.rev()));
    const stop = this.#host.active(report.directiveId);
    // A frozen tool leaves the run running: it counts as degraded, as the worker itself reports it.
    if (stop !== undefined)
      this.#host.fleet.markRuns(key, report.runs, stop.capabilities === null ? stop.level : 'degrade');
    const flip = this.#flips.get(report.rev);
    const timeToStopMs = flip === undefined ? null : performance.now() - flip;
    if (timeToStopMs !== null) this.#host.metrics.signalToHalt.observe(timeToStopMs / 1000);
    const event: HaltedEvent = { ...report, workerId, tenant: who.tenant, agent: who.agent, timeToStopMs };
    if (this.#host.active(report.directiveId) !== undefined && hosted.length > 0) {
      let set = this.#acks.get(report.directiveId);
      if (set === undefined) this.#acks.set(report.directiveId, (set = new Set()));
      set.add(key);
    }
    for (const fn of this.#listeners) {
      try {
        fn(event);
      } catch (err) {
        this.#host.log.error('halted listener failed', { err: String(err) });
      }
    }
    this.#host.queueAudit({
      type: 'session.halted',
      actor: `worker:${workerId}`,
      tenant: who.tenant,
      data: {
        workerId,
        agent: who.agent,
        directiveId: report.directiveId,
        rev: report.rev,
        runs: report.runs,
        aborted: report.aborted,
        completed: report.completed,
        timeToStopMs: timeToStopMs === null ? null : Math.round(timeToStopMs * 1000) / 1000,
        observeToSettleMs: report.observeToSettleMs,
      },
    } satisfies AuditEventOf<'session.halted'>);
    return event;
  }
}
