import {
  KillpathError,
  distinctReleases,
  type Directive,
  type FleetWorker,
  type HaltedReport,
  type Principal,
  type Release,
  type ReleaseCheck,
} from '@killpath/protocol';
import { systemClock, wallNow, type Clock } from '@killpath/protocol';
import { randomUUID } from 'node:crypto';
import { Leadership } from './leadership.ts';
import { PresenceSync } from './presence-sync.ts';
import type { AuditEvent } from './audit/chain.ts';
import { AuditQueue } from './audit/audit-queue.ts';
import { Escalation } from './escalation.ts';
import { HaltReports, ackMaxWait, type HaltedEvent, type HaltedListener } from './halt-reports.ts';

export type { HaltedEvent, HaltedListener } from './halt-reports.ts';
import type { Fleet, WorkerKey } from './fleet.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { StreamHub } from './stream/hub.ts';
import type { IssueResult, Store, SwitchboardChange } from './store/store.ts';
import { SwitchboardView } from './switchboard-view.ts';
import type { IssueDirectiveBody, StepBody } from './http/schemas.ts';
import { DEFAULT_AUTOMATION, DEFAULT_ESCALATION_SLACK_MS, type AutomationPolicy } from './ladder.ts';
import { LauncherHub } from './launchers.ts';
import { LauncherDesk } from './launcher-desk.ts';
import { WorkerDesk } from './worker-desk.ts';
import type { Alert, AlertSink } from './notify.ts';
import type { DirectiveInput } from './store/store.ts';
import { DEFAULT_COOL_OFF_MS, PermitDesk } from './permits.ts';
import { SurfaceDesk } from './surface.ts';
import { releasesCovered } from './release-check.ts';
import { commitAlerts, planIssue, planStep, type AutomaticTrigger } from './issuing.ts';
import { checkResumable, resumeAudit, type ApprovedResume, type ResumeRequest } from './resuming.ts';

import type { ControlPlaneOptions } from './control-plane-options.ts';

export type { ControlPlaneOptions } from './control-plane-options.ts';
export { DEFAULT_GRACE_MS, requestDigest, type AutomaticTrigger } from './issuing.ts';

/** Work that runs only on the leader lease's holder ({@link ControlPlane.whileLeading}). */
export interface LeaderWork {
  /** This replica took the lease: start the work. */
  elected(): void;
  /** This replica lost the lease (or hands it back): stop the work. */
  deposed(): void;
  /** The lease was renewed (a chance to retry a start that failed). */
  renewed?(): void;
}

/**
 * The control plane's operations, independent of transport: issuing and clearing
 * directives (store commit, then push), taking workers' reports, and turning settle reports
 * into time-to-stop and `session.halted`. HTTP routes call it; so will the supervisor and
 * the watchdog.
 */
export class ControlPlane {
  readonly store: Store;
  readonly hub: StreamHub;
  readonly fleet: Fleet;
  readonly metrics: Metrics;
  /** Permits, outcomes, journal events and resume checks of effects. */
  readonly permits: PermitDesk;
  /** Agents' capability surfaces, learnt from heartbeats (what makes an agent due for a drill). */
  readonly surface: SurfaceDesk;
  readonly #log: Logger;
  /** Workers' reports' audit records, batched. */
  readonly #auditQueue: AuditQueue;
  /** Launchers' own streams: kill and isolate orders for the processes they started. */
  readonly launchers: LauncherHub;
  /** Where alerts go (log, webhooks). */
  readonly alerts: AlertSink;
  readonly automation: AutomationPolicy;
  readonly #slackMs: number;
  /**
   * The switchboard in memory: built from the store and moved only by the store's changes in rev
   * order, this process's commits and other processes' alike (see {@link SwitchboardView}).
   */
  readonly view: SwitchboardView;
  /** The escalation steps of active directives, in time. */
  readonly #escalation: Escalation;
  /** The clock of escalation deadlines (wall time, so that they survive a restart) and their timers. */
  readonly clock: Clock;
  /** Workers that reported `halted` per directive id (for escalation). */
  /** Workers' settle reports: acknowledgements and time-to-stop. */
  readonly #reports: HaltReports;
  /** Launcher ids' owners and what launchers did to their agent processes. */
  readonly launcherDesk: LauncherDesk;
  /** Workers' runs, heartbeats and acknowledgements. */
  readonly workers: WorkerDesk;
  /** This replica's id (in the leader lease, acknowledgements and presence it writes). */
  readonly replicaId: string;
  /** The leader lease: escalation steps (and the deadman, the supervisor's rules) run only on its holder. */
  readonly leadership: Leadership;
  /** Publishes this replica's workers to the store and mirrors the other replicas' into the fleet. */
  readonly presence: PresenceSync;
  /** Other work of the leader's (the audit checkpointer): told of each election, renewal and deposition. */
  readonly #leaderWork = new Set<LeaderWork>();

  constructor(deps: ControlPlaneOptions) {
    this.store = deps.store;
    this.clock = deps.clock ?? systemClock;
    this.permits = new PermitDesk(
      deps.store,
      deps.log,
      deps.coolOff ?? { defaultMs: DEFAULT_COOL_OFF_MS, byCapability: {} },
      this.clock,
    );
    this.surface = new SurfaceDesk(deps.store, deps.log);
    this.hub = deps.hub;
    this.fleet = deps.fleet;
    this.metrics = deps.metrics;
    this.#log = deps.log;
    this.alerts = deps.alerts ?? {
      notify: (a) => deps.log.warn(`alert: ${a.summary}`, { alert: a.kind, directiveId: a.directiveId }),
    };
    this.automation = deps.automation ?? DEFAULT_AUTOMATION;
    this.#slackMs = deps.escalationSlackMs ?? DEFAULT_ESCALATION_SLACK_MS;
    this.launchers = new LauncherHub(deps.keepaliveMs ?? 1000, (id) => this.fleet.runsOfLauncher(id));
    this.#auditQueue = new AuditQueue({
      store: this.store,
      metrics: this.metrics,
      log: this.#log,
      clock: this.clock,
    });
    this.launcherDesk = new LauncherDesk({
      store: this.store,
      fleet: this.fleet,
      metrics: this.metrics,
      alerts: this.alerts,
      contradictAck: (key, runId, evidence) => this.contradictAck(key, runId, evidence),
    });
    this.workers = new WorkerDesk({
      store: this.store,
      fleet: this.fleet,
      metrics: this.metrics,
      log: this.#log,
      launchers: this.launcherDesk,
      surface: this.surface,
      rev: () => this.hub.rev,
      workerSeen: (key) => this.workerSeen(key),
    });

    const doorbell = deps.doorbell ?? deps.store.doorbell?.();
    this.view = new SwitchboardView(deps.store, {
      ...(doorbell ? { doorbell } : {}),
      clock: this.clock,
      vouchMs: (deps.leaseMs ?? 3000) / 2,
      ...(deps.viewPollMs !== undefined ? { pollMs: deps.viewPollMs } : {}),
      log: deps.log,
    });
    this.view.onChange((c) => this.#took(c));
    this.view.onVouch((vouching) => {
      // A switchboard it cannot vouch for is not served: no keep-alive or delta renews a lease,
      // open streams are closed (their workers go to another replica or go stale and fail closed).
      this.hub.vouch(vouching);
      if (!vouching) this.launchers.dropAll();
    });
    this.hub.checkVouching(() => void this.view.recheck());

    this.replicaId = deps.replicaId ?? `replica-${randomUUID()}`;
    this.#reports = new HaltReports({
      ackMaxWaitMs: ackMaxWait(this.#slackMs),
      fleet: this.fleet,
      metrics: this.metrics,
      log: this.#log,
      rev: () => this.hub.rev,
      active: (id) => this.view.get(id),
      activeIds: () => this.view.active().map((d) => d.id),
      queueAudit: (e) => this.#auditQueue.queue(e),
      store: this.store,
      replica: this.replicaId,
      wallNow: () => wallNow(this.clock),
      clock: this.clock,
    });
    this.#escalation = new Escalation(
      {
        store: this.store,
        fleet: this.fleet,
        launchers: this.launchers,
        alerts: this.alerts,
        automation: this.automation,
        clock: this.clock,
        log: this.#log,
        fence: () => this.leadership.fence(),
        haltReports: (id) => this.#reports.acknowledgedAnywhere(id),
        // Committed here: this process's monotonic reading; elsewhere: the store's commit time.
        flipTime: (d) =>
          this.#reports.flipTime(d.rev) ??
          this.fleet.clockNow() - (wallNow(this.clock) - Date.parse(d.issuedAt)),
        commit: (base, audit, trigger, inherited) => this.#commit(base, audit, trigger, inherited),
      },
      this.#slackMs,
    );
    this.presence = new PresenceSync({
      store: this.store,
      fleet: this.fleet,
      clock: this.clock,
      log: this.#log,
      replica: this.replicaId,
      ...(deps.presenceSyncMs !== undefined ? { everyMs: deps.presenceSyncMs } : {}),
    });
    this.leadership = new Leadership({
      store: this.store,
      clock: this.clock,
      log: this.#log,
      holder: this.replicaId,
      ...deps.lease,
      onElected: async () => {
        await this.#escalation.takeOver();
        for (const w of this.#leaderWork) w.elected();
      },
      // Its timers stay: a step falling due on a replica that does not hold the lease only checks
      // this replica's own launchers (see Escalation).
      onDeposed: () => {
        for (const w of this.#leaderWork) w.deposed();
      },
      onRenewed: async () => {
        await this.#escalation.catchUp();
        for (const w of this.#leaderWork) w.renewed?.();
      },
    });
  }

  /**
   * Runs `work` only while this replica holds the leader lease: `elected` on each election (at
   * once when it holds it already), `deposed` when it loses it (or hands it back at stop),
   * `renewed` on each renewal. The calls do not wait for the work. Returns the unsubscribe.
   */
  whileLeading(work: LeaderWork): () => void {
    this.#leaderWork.add(work);
    if (this.leadership.leading) work.elected();
    return () => this.#leaderWork.delete(work);
  }

  /**
   * Builds the switchboard view from the store (it then follows the store by rev) and re-arms
   * the escalation steps of active directives (after a restart).
   */
  async start(): Promise<void> {
    await this.view.start();
    this.hub.startAt(this.view.rev);
    const active = this.view.active();
    await this.#reports.load(this.store, new Set(active.map((d) => d.id)));
    // The other replicas' workers first: a takeover's escalation counts them.
    await this.presence.start();
    // Elected at once when the lease is free or this replica's (then it re-arms from the store).
    await this.leadership.start();
    for (const d of active) this.#escalation.arm(d);
  }

  /**
   * Cancels escalation timers, hands the leader lease back, stops following the store and closes
   * launcher streams. Resolves when the pending acknowledgements' write, the last presence write,
   * the lease's release and the view's listener are done: close the store only after that (their
   * last writes need it).
   */
  async stop(): Promise<void> {
    this.#escalation.stop();
    const acks = this.#reports.stop();
    this.launchers.close();
    await Promise.all([acks, this.leadership.close(), this.presence.close(), this.view.stop()]);
  }

  /**
   * One change of the switchboard as the view applies it, in rev order, whoever committed it:
   * push it to every stream, recompute launcher orders, arm or disarm escalation.
   */
  #took(c: SwitchboardChange): void {
    this.#rememberFlip(c);
    for (const old of c.replaced ?? []) this.#forget(old.id);
    if (c.cleared !== undefined) this.#forget(c.cleared.id);
    this.hub.publish(c.rev, c);
    this.launchers.reconcile(c.rev, this.active());
    if (c.issued !== undefined && this.view.has(c.issued.id)) this.#escalation.arm(c.issued);
  }

  /** Applies this process's commit at `rev` to the view: at once when it is the next rev, else by reading the store up to it. */
  async #applied(change: SwitchboardChange): Promise<void> {
    this.#own.add(change.rev);
    try {
      if (!this.view.committed(change)) await this.view.reach(change.rev);
    } finally {
      // Applied already (the doorbell was quicker): it was measured from its stamped commit time.
      this.#own.delete(change.rev);
    }
  }

  /** Alerts raised recently (when the sink keeps them), newest last. */
  recentAlerts(): Alert[] {
    return [...(this.alerts.recent ?? [])];
  }

  /** Active directives, in rev order (from the switchboard view; shared, do not modify). */
  active(): readonly Directive[] {
    return this.view.active();
  }

  /** The fleet view for `tenant` (all when undefined), with the flags the switchboard puts on each worker. */
  fleetView(tenant: string | undefined): FleetWorker[] {
    return this.fleet.list(tenant, this.hub.rev, this.active());
  }

  /** See {@link LauncherDesk.claim}. */
  claimLauncher(who: { tenant: string; agent: string }, launcherId: string): Promise<void> {
    return this.launcherDesk.claim(who, launcherId);
  }

  /**
   * A worker heartbeat or run registration arrived: a settle report it sent before the fleet knew
   * its runs may count now, and if a launcher started it, its orders may change with its runs.
   */
  workerSeen(key: WorkerKey): void {
    this.#reports.runsLearned(key);
    const launcher = this.fleet.launcherOf(key);
    if (launcher !== null) this.launchers.reconcile(this.hub.rev, this.active(), launcher);
  }

  /** Monotonic commit time of `rev`, if remembered. */
  flipTime(rev: number): number | undefined {
    return this.#reports.flipTime(rev);
  }

  /** Subscribes to settle reports; returns the unsubscribe function. */
  onHalted(fn: HaltedListener): () => void {
    return this.#reports.onHalted(fn);
  }

  /** Revs this process committed and its view has not applied yet. */
  readonly #own = new Set<number>();

  /**
   * Notes when the flip of `c` committed, on this process's monotonic clock (time-to-stop is
   * measured from it): now for a commit of this process (it is being applied right after it);
   * for another replica's, the commit time its transaction stamped in the store, carried back.
   */
  #rememberFlip(c: SwitchboardChange): void {
    const now = performance.now();
    let at = now;
    if (!this.#own.delete(c.rev)) {
      const stamped = c.issued?.issuedAt ?? c.cleared?.clearedAt ?? null;
      if (stamped !== null) at = Math.min(now, now - (wallNow(this.clock) - Date.parse(stamped)));
    }
    this.#reports.flipped(c.rev, at);
    this.metrics.rev.set(c.rev);
  }

  /**
   * Issues a directive as {@link planIssue} plans it (rights, confinement, convergence, audit),
   * committed at a new rev and pushed to every stream.
   */
  async issue(
    p: Principal,
    body: IssueDirectiveBody,
    opts: { idempotencyKey?: string | undefined; via: string; trigger?: AutomaticTrigger },
  ): Promise<IssueResult> {
    const plan = await planIssue(p, body, opts, { store: this.store, slackMs: this.#slackMs });
    // A supervisor rule fires on the leader lease's holder only, and its commit carries the
    // lease's fence: a holder deposed without knowing it yet (its renewal hung) is refused in the
    // directive's own transaction, so a rule fires once across replicas.
    const fence = opts.trigger?.kind === 'supervisor' ? this.leadership.fence() : null;
    const base = fence === null ? plan.base : { ...plan.base, fence };
    const result = await this.#commit(base, plan.audit, plan.trigger, plan.inherited);
    plan.checkKey();
    return result;
  }

  /**
   * Commits a directive and makes it take effect: push to workers, launcher orders, escalation
   * timers, alerts for levels below halt that change what an agent may do.
   */
  async #commit(
    base: Omit<DirectiveInput, 'releases'>,
    audit: (r: IssueResult) => AuditEvent[],
    trigger: string,
    inherited: readonly Release[] = [],
  ): Promise<IssueResult> {
    let appended = 0;
    // What it covers now (and what its predecessor covered): a resume is checked against these.
    const input: DirectiveInput = {
      ...base,
      releases: distinctReleases([...inherited, ...releasesCovered(base, this.fleet.live())]),
    };
    const result = await this.store.issueDirective(input, (r) => {
      const events = audit(r);
      appended = events.length;
      return events;
    });
    if (!result.created) {
      const d = result.directive;
      // Belt and braces: a directive the store holds active but the view not yet (its commit was
      // never answered, e.g. its fsync failed, or another replica made it) is enforced before
      // the answer, not answered as if it were: the view reads the store up to it.
      if (d.clearedRev === null && d.rev > this.view.rev) {
        await this.view.reach(d.rev);
        this.#log.warn('directive in the store but not enforced: applied now', { id: d.id, rev: d.rev });
      }
      return result;
    }
    const d = result.directive;
    await this.#applied({ rev: d.rev, issued: d, replaced: result.replaced });
    this.metrics.directives.inc({ level: d.level });
    this.metrics.auditRecords.inc(appended);
    this.#log.info('directive issued', {
      id: d.id,
      rev: d.rev,
      directiveLevel: d.level,
      scope: d.scopeText,
      capabilities: d.capabilities,
      actor: d.actor,
      replaced: result.replaced.map((r) => r.id),
    });
    for (const alert of commitAlerts(d, trigger)) this.alerts.notify(alert);
    return result;
  }

  /** Cancels the escalation and forgets the acknowledgements of a directive no longer active. */
  #forget(id: string): void {
    this.#escalation.disarm(id);
    this.#reports.forget(id);
  }

  /** Steps a directive one level up or down the ladder as {@link planStep} plans it, replacing it at one rev. */
  async step(p: Principal, id: string, body: StepBody): Promise<IssueResult> {
    const plan = await planStep(p, id, body, { store: this.store, slackMs: this.#slackMs });
    return this.#commit(plan.base, plan.audit, plan.trigger, plan.inherited);
  }

  /** Resolves once every escalation step that has fallen due so far has run (and those they set off). */
  escalationsSettled(): Promise<void> {
    return this.#escalation.settled();
  }

  /**
   * Checks that `p` may resume directive `id` now ({@link checkResumable}). Approval requests are
   * made only for what their requester could do alone, and the check runs again when the last
   * approval comes in.
   * @throws KillpathError `same_release` with the {@link ReleaseCheck} as details.
   */
  async resumable(
    p: Principal,
    id: string,
    body: ResumeRequest,
  ): Promise<{ directive: Directive; releaseCheck: ReleaseCheck }> {
    return checkResumable(p, id, body, {
      store: this.store,
      live: () => this.fleet.live(),
      metrics: this.metrics,
    });
  }

  /**
   * Clears a directive at a new rev (resume): an explicit, justified, audited act, checked as
   * {@link ControlPlane.resumable} says. With `approved` (a resume an approval rule gated), the
   * approvals go on the `directive.cleared` record beside the requester's justification.
   * @throws KillpathError `same_release` with the {@link ReleaseCheck} as details.
   */
  async resume(
    p: Principal,
    id: string,
    body: ResumeRequest,
    approved?: ApprovedResume,
  ): Promise<{ directive: Directive; releaseCheck: ReleaseCheck }> {
    const { releaseCheck } = await this.resumable(p, id, body);
    const cleared = await this.store.clearDirective(id, resumeAudit(p, body, releaseCheck, approved));
    if (!cleared) throw new KillpathError('conflict', `directive ${id} was cleared concurrently`);
    await this.#applied({ rev: cleared.clearedRev!, cleared });
    this.metrics.cleared.inc();
    this.metrics.auditRecords.inc(2);
    this.#log.info('directive cleared', {
      id,
      rev: cleared.clearedRev,
      actor: p.name,
      ...(body.sameRelease !== undefined ? { sameRelease: body.sameRelease } : {}),
    });
    return { directive: cleared, releaseCheck };
  }

  /**
   * A worker's settle report as it arrives over HTTP: the directive must exist and belong to the
   * worker's tenant (or span every tenant), else 404 and nothing is recorded (see {@link HaltReports.report}).
   */
  async haltedReport(
    workerId: string,
    who: { tenant: string; agent: string; key: WorkerKey },
    report: HaltedReport,
  ): Promise<HaltedEvent> {
    const d = this.view.get(report.directiveId) ?? (await this.store.getDirective(report.directiveId));
    if (d === null || (d.tenant !== null && d.tenant !== who.tenant))
      throw new KillpathError('not_found', `directive ${report.directiveId} not found`);
    return this.halted(workerId, who, report, d);
  }

  /** See {@link HaltReports.contradict}. */
  contradictAck(key: WorkerKey, runId: string | null, evidence: string, seenRev: number | null = null): void {
    this.#reports.contradict(key, runId, evidence, seenRev);
  }

  /** See {@link HaltReports.report}. */
  halted(
    workerId: string,
    who: { tenant: string; agent: string; key?: WorkerKey },
    claimed: HaltedReport,
    directive?: Directive,
  ): HaltedEvent {
    return this.#reports.report(workerId, who, claimed, directive);
  }

  /** Resolves once the acknowledgements and withdrawals queued so far are in the store (see {@link HaltReports.flushAcks}). */
  flushAcks(): Promise<void> {
    return this.#reports.flushAcks();
  }

  /** See {@link AuditQueue.flush}. */
  flushAudit(): Promise<void> {
    return this.#auditQueue.flush();
  }
}
