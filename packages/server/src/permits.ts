import {
  KillpathError,
  refusalReason,
  systemClock,
  wallNow,
  type Clock,
  type JournalBatch,
  type LedgerEntry,
  type PermitOutcome,
  type PermitRequest,
  type PermitResponse,
  type Principal,
  type ResumeRequest,
} from '@killpath/protocol';
import type { Logger } from './log.ts';
import type { PermitDecision, PermitGrant, RunRecord, PermitStore, FleetStore } from './store/store.ts';

/** Cool-off of irreversible effects: a default and per-capability overrides, in ms. */
export interface CoolOffPolicy {
  defaultMs: number;
  byCapability: Record<string, number>;
}

/** Default cool-off of an irreversible effect, in ms. */
export const DEFAULT_COOL_OFF_MS = 2_000;

interface Pending {
  grant: PermitGrant;
  resolve(d: PermitDecision): void;
  reject(err: unknown): void;
}

/** Who a worker-side caller is: its tenant and agent, established from its token and stream. */
export interface WorkerIdentity {
  tenant: string;
  agent: string;
}

function refusal(d: PermitDecision): KillpathError {
  switch (d.kind) {
    case 'halted':
      return new KillpathError(
        'halted',
        `${d.directive.level} ${d.directive.scopeText} (${d.directive.id}) covers this effect`,
        {
          details: {
            directiveId: d.directive.id,
            level: d.directive.level,
            reason: refusalReason(d.directive.level, d.directive.capabilities !== null),
            rev: d.rev,
          },
        },
      );
    case 'conflict':
      return new KillpathError('conflict', d.message);
    case 'not_found':
      return new KillpathError('not_found', 'permit not found');
    case 'failed':
      return new KillpathError(
        'unavailable',
        'this permit request could not be decided; the effect must not run',
      );
    case 'granted':
      throw new TypeError('not a refusal');
  }
}

/**
 * The control plane's side of write and irreversible effects. Permit requests arriving in
 * the same event-loop turn are decided together in one store transaction (one durable commit
 * for the batch), which is serialised with directive commits: a permit decided after a halt
 * commits sees the halt (guarantee 1).
 */
export class PermitDesk {
  readonly #store: PermitStore & FleetStore;
  readonly #log: Logger;
  readonly #coolOff: CoolOffPolicy;
  readonly #clock: Clock;
  #queue: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> = Promise.resolve();

  /**
   * @param clock whose wall time stamps each request (a cool-off runs from it) and each
   *   confirmation; default the system clock (tests pass a manual one)
   */
  constructor(
    store: PermitStore & FleetStore,
    log: Logger,
    coolOff: CoolOffPolicy,
    clock: Clock = systemClock,
  ) {
    this.#store = store;
    this.#log = log;
    this.#coolOff = coolOff;
    this.#clock = clock;
  }

  /** Cool-off for a capability, in ms. */
  coolOffFor(capability: string): number {
    return this.#coolOff.byCapability[capability] ?? this.#coolOff.defaultMs;
  }

  /**
   * Decides one permit request.
   * @throws KillpathError `halted` (covered by a halt or kill), `conflict` (an idempotency key whose effect is in doubt or ended).
   */
  async request(
    who: WorkerIdentity,
    req: PermitRequest,
  ): Promise<{ response: PermitResponse; created: boolean }> {
    const grant: PermitGrant = {
      ...req,
      tenant: who.tenant,
      agent: who.agent,
      coolOffMs: req.class === 'irreversible' ? this.coolOffFor(req.capability) : 0,
      grantedAt: new Date(wallNow(this.#clock)),
    };
    const decision = await new Promise<PermitDecision>((resolve, reject) => {
      this.#queue.push({ grant, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        this.#flushing = new Promise<void>((done) => setImmediate(() => void this.#flush().finally(done)));
      }
    });
    if (decision.kind !== 'granted') throw refusal(decision);
    return { response: decision.response, created: !decision.response.replay };
  }

  async #flush(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    try {
      const decisions = await this.#store.grantPermits(batch.map((p) => p.grant));
      batch.forEach((p, i) => p.resolve(decisions[i]!));
    } catch (err) {
      this.#log.error('permit batch failed', { err: String(err), size: batch.length });
      for (const p of batch)
        p.reject(
          new KillpathError('unavailable', 'the permit store failed; the effect must not run', {
            cause: err,
          }),
        );
    }
  }

  /** Resolves once every permit request queued so far is decided (called on shutdown, before the store closes). */
  async drain(): Promise<void> {
    await this.#flushing;
  }

  /** Confirms an irreversible permit after its cool-off (checked against the switchboard again). */
  async confirm(who: WorkerIdentity, id: string): Promise<PermitResponse> {
    const d = await this.#store.confirmPermit(id, who, new Date(wallNow(this.#clock)));
    if (d.kind !== 'granted') throw refusal(d);
    return d.response;
  }

  /** Records an effect's outcome. */
  async settle(who: WorkerIdentity, id: string, outcome: PermitOutcome): Promise<LedgerEntry> {
    const entry = await this.#store.settlePermit(id, who, outcome);
    if (!entry) throw new KillpathError('not_found', `permit ${id} not found`);
    return entry;
  }

  /** Journals a worker's run events (timers, queues, memory, in-flight statuses). */
  async journal(who: WorkerIdentity, batch: JournalBatch): Promise<void> {
    // A worker journals only its own agent's runs: another agent's run is not found.
    const runIds = new Set(batch.events.map((e) => e.runId).filter((r): r is string => r !== null));
    for (const runId of runIds) {
      const run = await this.#store.getRun(who.tenant, runId);
      if (run !== null && run.agent !== who.agent)
        throw new KillpathError('not_found', `run ${runId} not found`);
    }
    await this.#store.appendJournal(who.tenant, batch.workerId, batch.events);
  }

  /**
   * The resume path of a durable agent: registers the run if new, and refuses it (audited
   * `resume.refused`) when it or a scope above it is halted.
   * @throws KillpathError `halted` naming the covering directive.
   */
  async resume(p: Principal, who: WorkerIdentity, runId: string, req: ResumeRequest): Promise<RunRecord> {
    const run = await this.#store.registerRun({
      runId,
      tenant: who.tenant,
      agent: who.agent,
      parentRunId: req.lineage.at(-1) ?? null,
      lineage: req.lineage,
      features: req.features,
      workerId: req.workerId,
      startedAt: new Date().toISOString(),
    });
    if (run.agent !== who.agent) throw new KillpathError('not_found', `run ${runId} not found`);
    // The run as stored (lineage, features), plus whatever more the request claims: an omission
    // or a lie never takes a run out of a stop. The caller passes the worker's declared release.
    const stop = await this.#store.checkResume(
      { ...run, features: [...new Set([...run.features, ...req.features])], release: req.release ?? null },
      p.name,
    );
    if (stop) {
      throw new KillpathError(
        'halted',
        `run ${runId} is under ${stop.level} ${stop.scopeText} (${stop.id}); resume it explicitly first`,
        {
          details: { directiveId: stop.id, level: stop.level },
        },
      );
    }
    return run;
  }
}
