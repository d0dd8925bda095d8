import type { AuditEventOf, Clock } from '@killpath/protocol';
import { coversRun, type Directive, type HaltedReport } from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { workerIdOf, workerKey, type Fleet, type WorkerKey } from './fleet.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { AuditStore, HaltAck, PresenceStore } from './store/store.ts';

/** A worker's settle report, with the time-to-stop the control plane measured. */
export interface HaltedEvent extends HaltedReport {
  workerId: string;
  tenant: string;
  agent: string;
  /**
   * Flip (commit) to receipt of this report: on this process's monotonic clock when it committed
   * the flip itself, else from the commit time the directive's transaction stamped in the store
   * (wall time; another replica committed it); null when neither is known.
   */
  timeToStopMs: number | null;
}

/** Listener for settle reports (demo, drills and benchmarks use it in process). */
export type HaltedListener = (e: HaltedEvent) => void;

/** A settle report waiting for the fleet to learn runs it named (see `HaltReports.runsLearned`). */
interface AwaitingClaim {
  workerId: string;
  tenant: string;
  agent: string;
  rev: number;
  /** The runs it named that its worker was not known to host. */
  runs: string[];
}

/** How many recent flips' commit times are kept for time-to-stop. */
const FLIP_MEMORY = 4096;

/** What the halt reports need of the control plane. */
export interface HaltReportsHost {
  /** The longest an acknowledgement waits for its batch's write, in ms ({@link ackMaxWait}). */
  readonly ackMaxWaitMs: number;
  readonly fleet: Fleet;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** The rev the stream hub has reached. */
  rev(): number;
  /** The active directive `id`, if it is on the switchboard. */
  active(id: string): Directive | undefined;
  /** The ids of the active directives (this process's switchboard). */
  activeIds(): Iterable<string>;
  /** Queues an audit record (batched). */
  queueAudit(e: AuditEvent): void;
  /** Where acknowledgements are shared with the other replicas. */
  readonly store: PresenceStore;
  /** This replica's id (recorded with the acknowledgements it takes). */
  readonly replica: string;
  /** Wall time, ms since the epoch (the control plane's clock). */
  wallNow(): number;
  /** Timers of the retries of shared writes the store refused. */
  readonly clock: Clock;
}

/** Acknowledgements are written to the store once none came for this long (ms)… */
const ACK_QUIET_MS = 25;
/**
 * …and at the latest this long after the first of the batch (ms), or a quarter of the escalation's
 * slack after the grace if that is less ({@link ackMaxWait}): an acknowledgement taken by another
 * replica must reach the store within that slack for the leader's kill step to count it.
 */
const ACK_MAX_WAIT_MS = 250;

/** The longest an acknowledgement waits for its batch's write, for an escalation slack of `slackMs`. */
export function ackMaxWait(slackMs: number): number {
  return Math.min(ACK_MAX_WAIT_MS, Math.max(0, Math.floor(slackMs / 4)));
}

/** First wait before a refused shared write is tried again; it doubles up to {@link RETRY_MAX_MS}. */
const RETRY_FIRST_MS = 100;
/** Longest wait between two tries of a refused shared write. */
const RETRY_MAX_MS = 2000;

/**
 * Workers' settle reports (`halted`): which worker acknowledged which stop (what the escalation
 * counts, and what evidence can contradict), and time-to-stop. Acknowledgements are written to
 * the store, so the escalation on whichever replica holds the lease counts them; this process
 * keeps its own as well (answered without a read). They are written in batches, once none came
 * for {@link ACK_QUIET_MS} and at the latest {@link ackMaxWait} after the first: after a
 * flip a whole fleet reports at once, and writing its rows meanwhile took CPU the rest of the
 * wave was waiting for. A withdrawal on another replica (a contradiction, see
 * {@link HaltReports.contradict}) that lands before the batch still wins: the store keeps it, and
 * an acknowledgement taken before it does not count (`PresenceStore.retractAck`). Stopping writes
 * what is pending. Time-to-stop is measured from the flip's commit: on
 * this process's monotonic clock when it committed it, else from the commit time stamped in the
 * directive's transaction.
 */
export class HaltReports {
  readonly #host: HaltReportsHost;
  /** Workers that reported `halted` per directive id (for escalation). */
  readonly #acks = new Map<string, Set<WorkerKey>>();
  /**
   * Settle reports that named runs this process did not know their worker hosted yet (a run
   * started just before the flip, its registration still on its way), per worker and directive:
   * the worker's word waits for the fleet to learn those runs ({@link HaltReports.runsLearned}).
   */
  readonly #awaiting = new Map<WorkerKey, Map<string, AwaitingClaim>>();
  /** Commit time (monotonic ms) of recent revs. */
  readonly #flips = new Map<number, number>();
  readonly #listeners = new Set<HaltedListener>();
  /** Acknowledgements not written to the store yet (see {@link HaltReports}). */
  #pendingAcks: HaltAck[] = [];
  /** When the first and the last of {@link HaltReports.#pendingAcks} were queued (the clock's ms). */
  #acksSince = 0;
  #lastAckQueued = 0;
  /** The timer of the pending batch's write (a handle of the clock), null when none is set. */
  #ackTimer: unknown = null;
  /**
   * The last shared write (a batch of acknowledgements or a withdrawal) queued: each starts after
   * the one before it has succeeded, so a withdrawal never lands before the ack it withdraws.
   */
  #ackWrite: Promise<void> = Promise.resolve();
  /** Set by {@link HaltReports.stop}: refused writes are no longer tried again. */
  #stopped = false;
  /** The pending retry's timer and how to end its wait early (on stop). */
  #retry: { timer: unknown; wake: () => void } | null = null;

  constructor(host: HaltReportsHost) {
    this.#host = host;
  }

  /** The last instant {@link HaltReports.#isoNow} wrote out: a wave of reports acknowledges thousands in one ms. */
  #iso = { ms: Number.NaN, text: '' };

  /** The wall clock now as an ISO 8601 string (to the ms, as `Date` keeps it). */
  #isoNow(): string {
    const ms = Math.trunc(this.#host.wallNow());
    if (ms !== this.#iso.ms) this.#iso = { ms, text: new Date(ms).toISOString() };
    return this.#iso.text;
  }

  #queueAck(a: HaltAck): void {
    this.#pendingAcks.push(a);
    const now = this.#host.clock.now();
    this.#lastAckQueued = now;
    if (this.#pendingAcks.length > 1) return;
    this.#acksSince = now;
    this.#armAckWrite(Math.min(ACK_QUIET_MS, this.#host.ackMaxWaitMs));
  }

  /** Sets the pending batch's timer: when it fires, the batch is written if it is due, else it waits on. */
  #armAckWrite(ms: number): void {
    this.#ackTimer = this.#host.clock.setTimeout(() => {
      this.#ackTimer = null;
      if (this.#pendingAcks.length === 0) return;
      const due = Math.min(this.#lastAckQueued + ACK_QUIET_MS, this.#acksSince + this.#host.ackMaxWaitMs);
      const left = due - this.#host.clock.now();
      if (left > 0) this.#armAckWrite(left);
      else void this.flushAcks();
    }, ms);
  }

  /**
   * Writes the acknowledgements queued so far, after every shared write queued before them;
   * resolves once they are in the store. A write the store refuses (database briefly unavailable)
   * is tried again, with backoff, until it succeeds or the control plane stops: an ack lost here
   * would let the escalation on another replica count its worker as a laggard and kill it.
   */
  flushAcks(): Promise<void> {
    if (this.#ackTimer !== null) this.#host.clock.clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    const batch = this.#pendingAcks;
    this.#pendingAcks = [];
    if (batch.length === 0) return this.#ackWrite;
    return this.#serial('share acknowledgements', { acks: batch.length }, () =>
      this.#host.store.recordAcks(batch),
    ).then(() => undefined);
  }

  /**
   * Writes the pending acknowledgements, and stops trying refused shared writes again (the control
   * plane stops): each write queued by then is tried once more at most. Resolves once they are
   * done, written or not (close the store after).
   */
  stop(): Promise<void> {
    const last = this.flushAcks();
    this.#stopped = true;
    if (this.#retry !== null) {
      this.#host.clock.clearTimeout(this.#retry.timer);
      this.#retry.wake();
    }
    return last;
  }

  /** Runs `write` once every shared write queued before it has succeeded, until it succeeds itself. */
  #serial<T>(what: string, fields: Record<string, unknown>, write: () => Promise<T>): Promise<T | undefined> {
    const done = this.#ackWrite.then(() => this.#untilWritten(what, fields, write));
    this.#ackWrite = done.then(() => undefined);
    return done;
  }

  async #untilWritten<T>(
    what: string,
    fields: Record<string, unknown>,
    write: () => Promise<T>,
  ): Promise<T | undefined> {
    // Tried once even when stopped: what was queued before the stop is written if it can be.
    for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      try {
        return await write();
      } catch (err) {
        if (this.#stopped) break;
        this.#host.log.error(
          `could not ${what} (until it succeeds, the escalation on another replica may count these workers as laggards): trying again in ${wait} ms`,
          { ...fields, err: String(err) },
        );
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            this.#retry = null;
            resolve();
          };
          this.#retry = { timer: this.#host.clock.setTimeout(wake, wait), wake };
        });
      }
    }
    return undefined;
  }

  /**
   * The workers that reported halted for directive `id`, to this replica or any other: this
   * process's own and the store's.
   */
  async acknowledgedAnywhere(id: string): Promise<ReadonlySet<WorkerKey>> {
    const out = new Set(this.acknowledged(id));
    for (const a of await this.#host.store.acksOf(id)) out.add(workerKey(a.tenant, a.agent, a.workerId));
    return out;
  }

  /**
   * Rebuilds the acknowledgements of the active directives `activeIds` from the audit log:
   * workers that reported halted to an earlier run of the control plane have acknowledged, and
   * an escalation re-armed after a restart must not take them for laggards.
   */
  async load(store: AuditStore & PresenceStore, activeIds: ReadonlySet<string>): Promise<void> {
    if (activeIds.size === 0) return;
    for (const id of activeIds)
      for (const a of await store.acksOf(id)) {
        let set = this.#acks.get(id);
        if (set === undefined) this.#acks.set(id, (set = new Set()));
        set.add(workerKey(a.tenant, a.agent, a.workerId));
      }
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
    for (const [key, waiting] of this.#awaiting) {
      waiting.delete(id);
      if (waiting.size === 0) this.#awaiting.delete(key);
    }
  }

  /**
   * The fleet learned worker `key`'s runs (a registration, a heartbeat). A settle report it sent
   * earlier for a stop that is still active, naming a run it now hosts that the stop covers,
   * counts now: the worker reported halted before the control plane knew the run was its own
   * (the run started just before the flip). Runs it names that it does not host still count
   * for nothing.
   */
  runsLearned(key: WorkerKey): void {
    const waiting = this.#awaiting.get(key);
    if (waiting === undefined) return;
    for (const [id, claim] of waiting) {
      const d = this.#host.active(id);
      if (d === undefined) {
        waiting.delete(id);
        continue;
      }
      const runs = this.#host.fleet
        .identitiesOf(key)
        .filter((r) => claim.runs.includes(r.runId) && coversRun(d, r))
        .map((r) => r.runId);
      if (runs.length === 0) continue;
      waiting.delete(id);
      this.#host.fleet.markRuns(key, runs, d.capabilities === null ? d.level : 'degrade');
      this.#acknowledge(key, claim, id, runs);
    }
    if (waiting.size === 0) this.#awaiting.delete(key);
  }

  /** Worker `key` acknowledged stop `directiveId` for `runs`: counted here and written to the store. */
  #acknowledge(
    key: WorkerKey,
    who: { workerId: string; tenant: string; agent: string; rev: number },
    directiveId: string,
    runs: string[],
  ): void {
    let set = this.#acks.get(directiveId);
    if (set === undefined) this.#acks.set(directiveId, (set = new Set()));
    set.add(key);
    this.#queueAck({
      directiveId,
      tenant: who.tenant,
      agent: who.agent,
      workerId: who.workerId,
      rev: who.rev,
      runs,
      at: this.#isoNow(),
      replica: this.#host.replica,
    });
  }

  /** Subscribes to settle reports; returns the unsubscribe function. */
  onHalted(fn: HaltedListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Evidence (the launcher's proxy saw the agent reach out, a permit asked for after the report)
   * contradicts the worker's acknowledgements of the stops covering it: they are withdrawn here
   * and in the store (whichever replica took them), audited (`ack.contradicted`), and the kill
   * step proceeds.
   */
  contradict(key: WorkerKey, runId: string | null, evidence: string, seenRev: number | null = null): void {
    const identities = this.#host.fleet.identitiesOf(key);
    const workerId = workerIdOf(key);
    const who = this.#host.fleet.watchInfo(key);
    const ids = new Set([...this.#acks.keys(), ...this.#host.activeIds()]);
    for (const directiveId of ids) {
      const d = this.#host.active(directiveId);
      if (d === undefined) continue;
      // Asked before the worker had even observed the stop: late in transit, not a lie.
      if (seenRev !== null && seenRev < d.rev) continue;
      const covered = identities.some((r) => (runId === null || r.runId === runId) && coversRun(d, r));
      if (!covered) continue;
      const local = this.#acks.get(directiveId)?.delete(key) ?? false;
      const withdrawnAt = this.#isoNow();
      const tenant = who?.tenant ?? d.tenant;
      const audit = (): void => {
        this.#host.log.warn('a halted report was contradicted: the kill step will proceed', {
          directiveId,
          workerId,
          evidence,
        });
        this.#host.queueAudit({
          type: 'ack.contradicted',
          actor: `control-plane`,
          tenant,
          data: { directiveId, workerId, agent: who?.agent ?? null, runId, evidence },
        });
      };
      if (local) audit();
      if (who === null) continue;
      // Queued acknowledgements first, so a retraction never lands before the ack it withdraws;
      // retried like them until it is in the store.
      void this.flushAcks();
      void this.#serial('withdraw a shared acknowledgement', { directiveId, workerId }, () =>
        this.#host.store.retractAck(
          directiveId,
          { tenant: who.tenant, agent: who.agent, workerId },
          withdrawnAt,
        ),
      ).then((shared) => {
        if (shared === true && !local) audit();
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
    who: { tenant: string; agent: string; key?: WorkerKey },
    claimed: HaltedReport,
    directive?: Directive,
  ): HaltedEvent {
    // The key the route resolved, when it did: one string for every lookup of the report.
    const key = who.key ?? workerKey(who.tenant, who.agent, workerId);
    // The worker's word counts only for runs it hosts that the directive covers.
    const d = directive ?? this.#host.active(claimed.directiveId);
    const runsHere = this.#host.fleet.identitiesOf(key);
    const hosted = d === undefined ? [] : runsHere.filter((r) => coversRun(d, r));
    const ids = new Set(hosted.map((r) => r.runId));
    const report: HaltedReport = { ...claimed, runs: claimed.runs.filter((r) => ids.has(r)) };
    this.#host.fleet.ack(key, Math.min(report.rev, this.#host.rev()));
    // Active: on this process's switchboard, or as the store gave it (another replica committed it).
    const stop =
      this.#host.active(report.directiveId) ??
      (d !== undefined && d.id === report.directiveId && d.clearedRev === null ? d : undefined);
    // A frozen tool leaves the run running: it counts as degraded, as the worker itself reports it.
    if (stop !== undefined)
      this.#host.fleet.markRuns(key, report.runs, stop.capabilities === null ? stop.level : 'degrade');
    const flip = this.#flips.get(report.rev);
    const timeToStopMs =
      flip !== undefined
        ? performance.now() - flip
        : d !== undefined && d.rev === report.rev
          ? Math.max(0, this.#host.wallNow() - Date.parse(d.issuedAt))
          : null;
    if (timeToStopMs !== null) this.#host.metrics.signalToHalt.observe(timeToStopMs / 1000);
    const event: HaltedEvent = { ...report, workerId, tenant: who.tenant, agent: who.agent, timeToStopMs };
    if (stop !== undefined && hosted.length > 0)
      this.#acknowledge(
        key,
        { workerId, tenant: who.tenant, agent: who.agent, rev: report.rev },
        stop.id,
        report.runs,
      );
    else if (stop !== undefined) {
      // Runs the worker named that the fleet does not know it hosts: counted once it does.
      const known = new Set(runsHere.map((r) => r.runId));
      const unknown = claimed.runs.filter((r) => !known.has(r));
      if (unknown.length > 0) {
        let waiting = this.#awaiting.get(key);
        if (waiting === undefined) this.#awaiting.set(key, (waiting = new Map()));
        waiting.set(stop.id, {
          workerId,
          tenant: who.tenant,
          agent: who.agent,
          rev: report.rev,
          runs: unknown,
        });
      }
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
