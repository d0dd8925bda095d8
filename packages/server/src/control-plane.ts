import { createHash } from 'node:crypto';
import {
  KillpathError,
  LEVEL_RULES,
  distinctReleases,
  formatRelease,
  formatScope,
  isStopLevel,
  parseScope,
  stepLevel,
  type Approval,
  type BreakGlass,
  type Directive,
  type FleetWorker,
  type HaltedReport,
  type Principal,
  type Release,
  type ReleaseCheck,
} from '@killpath/protocol';
import { systemClock, type Clock } from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { clearedEvent, firedEvent, issuedEvent } from './audit-events.ts';
import { Escalation } from './escalation.ts';
import { HaltReports, type HaltedEvent, type HaltedListener } from './halt-reports.ts';

export type { HaltedEvent, HaltedListener } from './halt-reports.ts';
import { confine } from './auth/confinement.ts';
import { canSee, requireAct } from './auth/policy.ts';
import { workerIdOf, type Fleet, type WorkerKey } from './fleet.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { StreamHub } from './stream/hub.ts';
import type { IssueResult, Store } from './store/store.ts';
import type { IssueDirectiveBody, LauncherEventBody, StepBody } from './http/schemas.ts';
import {
  DEFAULT_AUTOMATION,
  DEFAULT_ESCALATION_SLACK_MS,
  checkLevel,
  isAbove,
  sameTarget,
  type AutomationPolicy,
} from './ladder.ts';
import { LauncherHub } from './launchers.ts';
import type { Alert, AlertSink } from './notify.ts';
import type { DirectiveInput } from './store/store.ts';
import { DEFAULT_COOL_OFF_MS, PermitDesk, type CoolOffPolicy } from './permits.ts';
import { SurfaceDesk } from './surface.ts';
import { checkReleases, describeCheck, releasesCovered } from './release-check.ts';

/** Default grace for a halt, in ms. */
export const DEFAULT_GRACE_MS = 5_000;

/**
 * An automatic trigger behind a directive (a supervisor rule, the deadman): it replaces the
 * `operator_action` record, and `kill_switch.fired` names it (`trigger`, `rule`, details).
 */
export interface AutomaticTrigger {
  kind: 'supervisor' | 'deadman';
  /** The policy rule that fired (supervisor). */
  rule?: string;
  /** What crossed the line, for the record (values, policy version, worker). */
  details?: Record<string, unknown>;
}

/** A batch of reports' audit records is written once no report came for this long (ms)… */
const AUDIT_QUIET_MS = 25;
/** …and at the latest this long after its first record (ms). */
const AUDIT_MAX_WAIT_MS = 1000;
/** Most audit records written in one transaction of a flush; the loop runs other work between two. */
const AUDIT_SLICE = 200;

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
  #pendingAudit: AuditEvent[] = [];
  #flushTimer: NodeJS.Timeout | null = null;
  /** The last flush of queued audit events (they run one after the other). */
  #flushing: Promise<void> = Promise.resolve();
  /** When the oldest queued audit record was queued (monotonic ms), null when none is. */
  #pendingSince: number | null = null;
  /** Launchers' own streams: kill and isolate orders for the processes they started. */
  readonly launchers: LauncherHub;
  /** Where alerts go (log, webhooks). */
  readonly alerts: AlertSink;
  readonly automation: AutomationPolicy;
  readonly #slackMs: number;
  /** The switchboard in memory, kept in step with every commit of this process. */
  readonly #active = new Map<string, Directive>();
  /** The escalation steps of active directives, in time. */
  readonly #escalation: Escalation;
  /** The clock of escalation deadlines (wall time, so that they survive a restart) and their timers. */
  readonly clock: Clock;
  /** Workers that reported `halted` per directive id (for escalation). */
  /** Workers' settle reports: acknowledgements and time-to-stop. */
  readonly #reports: HaltReports;
  /** Owners of launcher ids (`tenant\0id` → agent), as bound in the store; bindings never change. */
  readonly #launcherOwners = new Map<string, string>();

  constructor(deps: {
    store: Store;
    hub: StreamHub;
    fleet: Fleet;
    metrics: Metrics;
    log: Logger;
    coolOff?: CoolOffPolicy;
    alerts?: AlertSink;
    automation?: AutomationPolicy;
    /** Extra time after a halt's grace before its kill step (default {@link DEFAULT_ESCALATION_SLACK_MS}). */
    escalationSlackMs?: number;
    keepaliveMs?: number;
    /** Time for escalation deadlines; default the system clock (tests pass a manual one). */
    clock?: Clock;
  }) {
    this.store = deps.store;
    this.clock = deps.clock ?? systemClock;
    this.permits = new PermitDesk(
      deps.store,
      deps.log,
      deps.coolOff ?? { defaultMs: DEFAULT_COOL_OFF_MS, byCapability: {} },
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

    this.#reports = new HaltReports({
      fleet: this.fleet,
      metrics: this.metrics,
      log: this.#log,
      rev: () => this.hub.rev,
      active: (id) => this.#active.get(id),
      queueAudit: (e) => this.#queueAudit(e),
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
        isActive: (id) => this.#active.has(id),
        haltReports: (id) => this.#reports.acknowledged(id),
        flipTime: (rev) => this.#reports.flipTime(rev),
        commit: (base, audit, trigger, inherited) => this.#commit(base, audit, trigger, inherited),
      },
      this.#slackMs,
    );
  }

  /** Loads the switchboard into memory and re-arms the escalation steps of active directives (after a restart). */
  async start(): Promise<void> {
    const board = await this.store.switchboard();
    await this.#reports.load(this.store, new Set(board.directives.map((d) => d.id)));
    for (const d of board.directives) {
      this.#active.set(d.id, d);
      this.#escalation.arm(d);
    }
  }

  /** Cancels escalation timers and closes launcher streams. */
  stop(): void {
    this.#escalation.stop();
    this.launchers.close();
  }

  /** Alerts raised recently (when the sink keeps them), newest last. */
  recentAlerts(): Alert[] {
    return [...(this.alerts.recent ?? [])];
  }

  /** Active directives, in rev order (from memory). */
  active(): Directive[] {
    return [...this.#active.values()].sort((a, b) => a.rev - b.rev);
  }

  /** The fleet view for `tenant` (all when undefined), with the flags the switchboard puts on each worker. */
  fleetView(tenant: string | undefined): FleetWorker[] {
    return this.fleet.list(tenant, this.hub.rev, this.active());
  }

  /**
   * Binds launcher id `launcherId` of `who.tenant` to `who.agent` at its first use, and checks it
   * on every later one: a launcher id belongs to one agent of one tenant (ids of different
   * tenants never meet). Bindings never change, so they are cached.
   * @throws KillpathError `conflict` when another agent of the tenant owns the id.
   */
  async claimLauncher(who: { tenant: string; agent: string }, launcherId: string): Promise<void> {
    const key = `${who.tenant}\u0000${launcherId}`;
    let owner = this.#launcherOwners.get(key);
    if (owner === undefined) {
      owner = await this.store.bindLauncher(who.tenant, launcherId, who.agent, new Date());
      this.#launcherOwners.set(key, owner);
    }
    if (owner !== who.agent)
      throw new KillpathError(
        'conflict',
        `launcher id ${launcherId} belongs to another agent of tenant ${who.tenant}; start the launcher with another --launcher-id`,
      );
  }

  /** The agent owning launcher `launcherId` of `tenant`, or null when it was never used. */
  async launcherOwner(tenant: string, launcherId: string): Promise<string | null> {
    const key = `${tenant}\u0000${launcherId}`;
    const cached = this.#launcherOwners.get(key);
    if (cached !== undefined) return cached;
    const owner = await this.store.launcherOwner(tenant, launcherId);
    if (owner !== null) this.#launcherOwners.set(key, owner);
    return owner;
  }

  /** A worker heartbeat arrived: if a launcher started it, its orders may change with its runs. */
  workerSeen(key: WorkerKey): void {
    const launcher = this.fleet.launcherOf(key);
    if (launcher !== null) this.launchers.reconcile(this.hub.rev, this.active(), launcher);
  }

  /**
   * A worker heartbeat carried its capability set: when it grew, the agent's new capabilities
   * are stored and audited (`agent.surface_changed`). Returns the new ones; never throws.
   */
  async surfaceSeen(
    workerId: string,
    who: { tenant: string; agent: string },
    capabilities: readonly string[] | undefined,
  ): Promise<string[]> {
    const added = await this.surface.heartbeat(workerId, who, capabilities);
    if (added.length > 0) {
      this.metrics.auditRecords.inc();
      this.#log.info('agent capability surface changed', {
        tenant: who.tenant,
        agent: who.agent,
        added,
        workerId,
      });
    }
    return added;
  }

  /** Monotonic commit time of `rev`, if remembered. */
  flipTime(rev: number): number | undefined {
    return this.#reports.flipTime(rev);
  }

  /** Subscribes to settle reports; returns the unsubscribe function. */
  onHalted(fn: HaltedListener): () => void {
    return this.#reports.onHalted(fn);
  }

  #rememberFlip(rev: number): void {
    this.#reports.flipped(rev, performance.now());
    this.metrics.rev.set(rev);
  }

  /**
   * Issues a directive: validates scope and rights, commits it (with its audit records) at a
   * new rev, then pushes the delta to every stream. Retries with the same idempotency key and
   * identical re-issues converge to the existing directive without a new rev. With `trigger`
   * (an automatic trigger acting through a synthetic principal) the audit names the trigger
   * instead of recording an operator action, and a convergence is not recorded at all.
   */
  async issue(
    p: Principal,
    body: IssueDirectiveBody,
    opts: { idempotencyKey?: string | undefined; via: string; trigger?: AutomaticTrigger },
  ): Promise<IssueResult> {
    if (p.role === 'agent' || p.role === 'viewer')
      throw new KillpathError('forbidden', `role ${p.role} may not issue directives`);
    const scope = parseScope(body.scope);
    const graceMs = body.graceMs ?? (body.level === 'kill' ? 0 : DEFAULT_GRACE_MS);
    const escalation = checkLevel(body, graceMs, this.#slackMs);
    const tenant = await confine(p, scope, body, this.store);
    const digest = opts.idempotencyKey ? requestDigest(body) : null;
    const seen: { mismatch: Directive | null } = { mismatch: null };
    const result = await this.#commit(
      {
        level: body.level,
        scope,
        tenant,
        capabilities: body.capabilities ?? null,
        rate: body.rate ?? null,
        escalation,
        escalatedFrom: null,
        graceMs,
        drain: body.drain ?? 'discard',
        memory: body.memory ?? 'revert',
        reason: body.reason,
        justification: body.justification,
        actor: p.name,
        breakGlass: tenant === null ? attestation(p, body.breakGlass) : null,
        idempotencyKey: opts.idempotencyKey ? `${p.tokenId}:${opts.idempotencyKey}` : null,
        idempotencyDigest: digest,
        // Issuing a throttle at a scope that already has one re-dials it.
        replaces:
          body.level === 'throttle'
            ? (active) =>
                active
                  .filter(
                    (d) =>
                      d.level === 'throttle' &&
                      sameTarget(d, {
                        scopeText: formatScope(scope),
                        capabilities: body.capabilities ?? null,
                      }),
                  )
                  .map((d) => d.id)
            : undefined,
      },
      (r) => {
        // The key was sent before with another request: nothing converges, nothing is recorded.
        if (r.converged === 'idempotency_key' && r.keyDigest != null && r.keyDigest !== digest) {
          seen.mismatch = r.directive;
          return [];
        }
        return this.#issueAudit(p, r, body, opts.via, opts.trigger);
      },
      opts.trigger?.kind ?? 'operator',
    );
    const held = seen.mismatch;
    if (held !== null) {
      throw new KillpathError(
        'idempotency_mismatch',
        `Idempotency-Key ${opts.idempotencyKey} was used for another request, which issued directive ${held.id} (${held.level} ${held.scopeText}); use a new key for a new request`,
        { details: { directiveId: held.id } },
      );
    }
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
      // Belt and braces: a directive the store holds active but memory does not (its commit was
      // never answered, e.g. its fsync failed) is enforced now, not answered as if it were.
      if (d.clearedRev === null && !this.#active.has(d.id)) {
        this.#rememberFlip(d.rev);
        this.#active.set(d.id, d);
        this.hub.publish(d.rev, { issued: d, replaced: [] });
        this.launchers.reconcile(d.rev, this.active());
        this.#escalation.arm(d);
        this.#log.warn('directive in the store but not enforced: applied now', { id: d.id, rev: d.rev });
      }
      return result;
    }
    const d = result.directive;
    this.#rememberFlip(d.rev);
    for (const old of result.replaced) this.#forget(old.id);
    this.#active.set(d.id, d);
    this.hub.publish(d.rev, { issued: d, replaced: result.replaced });
    this.launchers.reconcile(d.rev, this.active());
    this.#escalation.arm(d);
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
    if (d.level === 'degrade') {
      const what =
        d.capabilities === null
          ? 'read-only (every write and irreversible effect refused)'
          : `capabilities ${d.capabilities.join(', ')} revoked`;
      this.alerts.notify({
        kind: 'degraded',
        summary: `${d.scopeText} degraded: ${what}; reason: ${d.reason}`,
        tenant: d.tenant,
        directiveId: d.id,
        details: { scope: d.scopeText, capabilities: d.capabilities, actor: d.actor, trigger },
      });
    }
    if (d.breakGlass && trigger === 'operator') {
      this.alerts.notify({
        kind: 'break_glass',
        summary: `break-glass: ${d.breakGlass.by} issued ${d.level} at ${d.scopeText} (every tenant) at ${d.breakGlass.at}: ${d.breakGlass.why}`,
        tenant: null,
        directiveId: d.id,
        details: { ...d.breakGlass, level: d.level, scope: d.scopeText },
      });
    }
    if (d.level === 'isolate') {
      this.alerts.notify({
        kind: 'isolated',
        summary: `${d.scopeText} isolated: nothing leaves its launchers; reason: ${d.reason}`,
        tenant: d.tenant,
        directiveId: d.id,
        details: { scope: d.scopeText, actor: d.actor, trigger },
      });
    }
    return result;
  }

  /** Drops a directive that is no longer active from memory and cancels its escalation. */
  #forget(id: string): void {
    this.#active.delete(id);
    this.#escalation.disarm(id);
    this.#reports.forget(id);
  }

  /**
   * Steps a directive one level up or down the ladder: a new directive at the same scope and
   * capabilities replaces it at one rev. Stepping down to throttle needs a rate; a
   * capability-narrowed directive steps over isolate (which is agent-wide): degrade ⇄ halt.
   */
  async step(p: Principal, id: string, body: StepBody): Promise<IssueResult> {
    if (p.role === 'agent' || p.role === 'viewer')
      throw new KillpathError('forbidden', `role ${p.role} may not step directives`);
    const from = await this.store.getDirective(id);
    if (!from || !canSee(p, from.tenant)) throw new KillpathError('not_found', `directive ${id} not found`);
    requireAct(p, from.tenant, `directive ${id}`);
    if (from.clearedRev !== null)
      throw new KillpathError('conflict', `directive ${id} was cleared at rev ${from.clearedRev}`);
    if (from.tenant === null && !body.breakGlass) {
      throw new KillpathError(
        'break_glass_required',
        'stepping a directive spanning every tenant needs a breakGlass attestation',
      );
    }
    let level = stepLevel(from.level, body.direction);
    // A directive narrowed to capabilities steps over the levels that cannot be narrowed
    // (isolate and freeze are agent-wide: degrade ⇄ halt ⇄ kill of those tools).
    while (level !== null && from.capabilities !== null && LEVEL_RULES[level].notNarrowable !== null)
      level = stepLevel(level, body.direction);
    if (level === null) {
      throw new KillpathError(
        'conflict',
        body.direction === 'up'
          ? `${id} is a kill already: the top of the ladder`
          : `${id} is a throttle: the bottom of the ladder; resume it to clear it`,
      );
    }
    const rate = level === 'throttle' ? (body.rate ?? from.rate ?? undefined) : undefined;
    const graceMs = level === 'kill' ? 0 : from.graceMs;
    const escalation = checkLevel(
      {
        level,
        rate,
        capabilities: from.capabilities === null ? undefined : [...from.capabilities],
        escalation: from.escalation.filter((s) => isAbove(s, level)),
      },
      graceMs,
      this.#slackMs,
    );
    const justification = body.justification;
    return this.#commit(
      {
        level,
        scope: from.scope,
        tenant: from.tenant,
        capabilities: from.capabilities === null ? null : [...from.capabilities],
        rate: rate ?? null,
        escalation,
        escalatedFrom: from.id,
        graceMs,
        drain: from.drain,
        memory: from.memory,
        // The step's own words: why it moved (the directive it replaces keeps why it began).
        reason: justification,
        justification,
        actor: p.name,
        breakGlass: from.tenant === null ? attestation(p, body.breakGlass) : null,
        idempotencyKey: null,
        replaces: () => [from.id],
      },
      (r) => {
        const d = r.directive;
        const events: AuditEvent[] = [
          {
            type: 'operator_action',
            actor: p.name,
            tenant: d.tenant,
            data: {
              action: `directive.step_${body.direction}`,
              role: p.role,
              tokenId: p.tokenId,
              from: from.id,
              fromLevel: from.level,
              directiveId: d.id,
              level,
              justification,
              ...(body.breakGlass ? { breakGlass: body.breakGlass } : {}),
            },
          },
          issuedEvent(p.name, d),
          clearedEvent(p.name, from, d.rev, { replacedBy: d.id, justification }),
        ];
        if (isStopLevel(level)) events.push(firedEvent(d, p.name, 'operator'));
        return events;
      },
      'operator',
      from.releases,
    );
  }

  /** Resolves once every escalation step that has fallen due so far has run (and those they set off). */
  escalationsSettled(): Promise<void> {
    return this.#escalation.settled();
  }

  /**
   * Audits what a launcher did to its agent process (kill, isolate, exit, refused restart). Only
   * the launcher's owner reports for it: an agent token of its tenant and agent (or of its whole
   * tenant), or an admin naming the tenant. Anything else is 404, acted on nowhere.
   */
  async launcherEvents(
    p: Principal,
    launcherId: string,
    body: LauncherEventBody,
    tenantParam?: string,
  ): Promise<void> {
    if (p.role !== 'agent' && p.role !== 'admin')
      throw new KillpathError('forbidden', 'only agent tokens report launcher events');
    const tenant = p.role === 'admin' ? tenantParam : p.tenant;
    if (tenant === undefined)
      throw new KillpathError('invalid_request', 'an admin reporting launcher events must name ?tenant=');
    const agent = await this.launcherOwner(tenant, launcherId);
    if (
      agent === null ||
      (p.role === 'agent' && p.agent !== null && p.agent !== agent) ||
      (p.launcher !== undefined && p.launcher !== launcherId)
    )
      throw new KillpathError('not_found', `launcher ${launcherId} not found`);
    const key = { tenant, agent, launcherId };
    await this.store.appendAudit(
      body.events.map((e) => ({
        type: e.type,
        actor: `launcher:${launcherId}`,
        tenant,
        data: { launcherId, agent, ...e },
      })),
    );
    this.metrics.auditRecords.inc(body.events.length);
    for (const e of body.events) {
      if (e.type === 'egress.allowed') {
        // The launcher's proxy saw the agent reach out: whatever the agent said, it has not stopped.
        for (const w of this.fleet.workersOfLauncher(key))
          this.contradictAck(w, null, `egress to ${e.destination ?? '?'} through launcher ${launcherId}`);
      }
      if (e.type === 'process.killed') {
        this.alerts.notify({
          kind: 'process.killed',
          summary: `launcher ${launcherId} of ${tenant}/${agent} ended its agent process ${e.pid ?? '?'} with ${e.signal ?? '?'} in ${Math.round(e.ms ?? 0)} ms`,
          tenant,
          directiveId: e.directiveId ?? null,
          details: { launcherId, agent, ...e },
        });
      }
      if (e.type === 'process.killed' || e.type === 'process.exited') {
        // No hanging state: what the dead process had in flight gets an outcome now (in doubt).
        const workers = this.fleet.workersOfLauncher(key);
        this.fleet.processGone(key, typeof e.pid === 'number' ? e.pid : null);
        // Worker ids are each agent's own: only the launcher's agent's workers are meant.
        const changed = await this.store.markInDoubt(
          { tenant, agent },
          workers.map(workerIdOf),
          `agent process ${e.pid ?? '?'} ended (${e.type === 'process.killed' ? `killed by ${e.signal ?? '?'}` : 'exited'}) with the effect in flight`,
        );
        this.metrics.auditRecords.inc(changed.length);
      }
    }
  }

  #issueAudit(
    p: Principal,
    r: IssueResult,
    body: IssueDirectiveBody,
    via: string,
    trigger?: AutomaticTrigger,
  ): AuditEvent[] {
    const d = r.directive;
    if (trigger !== undefined) {
      if (!r.created) return [];
      const events: AuditEvent[] = [issuedEvent(p.name, d)];
      for (const old of r.replaced)
        events.push(
          clearedEvent(p.name, old, d.rev, { replacedBy: d.id, justification: body.justification }),
        );
      // Every level: an automatic trip is the asynchronous path firing, whatever rung it took.
      events.push(
        firedEvent(d, p.name, trigger.kind, {
          ...(trigger.rule !== undefined ? { rule: trigger.rule } : {}),
          ...trigger.details,
        }),
      );
      return events;
    }
    const action: AuditEvent = {
      type: 'operator_action',
      actor: p.name,
      tenant: d.tenant,
      data: {
        action: 'directive.issue',
        via,
        role: p.role,
        tokenId: p.tokenId,
        directiveId: d.id,
        level: body.level,
        scope: body.scope,
        capabilities: body.capabilities ?? null,
        reason: body.reason,
        justification: body.justification,
        ...(body.breakGlass ? { breakGlass: body.breakGlass } : {}),
        ...(r.converged ? { converged: r.converged } : {}),
      },
    };
    if (!r.created) return [action];
    const events: AuditEvent[] = [action, issuedEvent(p.name, d)];
    for (const old of r.replaced)
      events.push(clearedEvent(p.name, old, d.rev, { replacedBy: d.id, justification: body.justification }));
    if (isStopLevel(d.level)) events.push(firedEvent(d, p.name, 'operator'));
    return events;
  }

  /**
   * Checks that `p` may resume directive `id` now (role, tenant, still active, break-glass for a
   * directive spanning every tenant) and against the releases the directive recorded: while a
   * worker it would release still runs one of them, it is refused (`same_release`, audited
   * `resume.refused`) unless the operator says why it is safe (`sameRelease`). Approval requests
   * are made only for what their requester could do alone were no approval needed, and the
   * check runs again when the last approval comes in.
   * @throws KillpathError `same_release` with the {@link ReleaseCheck} as details.
   */
  async resumable(
    p: Principal,
    id: string,
    body: { justification: string; breakGlass?: string | undefined; sameRelease?: string | undefined },
  ): Promise<{ directive: Directive; releaseCheck: ReleaseCheck }> {
    if (p.role === 'agent' || p.role === 'viewer')
      throw new KillpathError('forbidden', `role ${p.role} may not resume directives`);
    const existing = await this.store.getDirective(id);
    if (!existing || !canSee(p, existing.tenant))
      throw new KillpathError('not_found', `directive ${id} not found`);
    requireAct(p, existing.tenant, `directive ${id}`);
    if (existing.clearedRev !== null)
      throw new KillpathError(
        'conflict',
        `directive ${id} was already cleared at rev ${existing.clearedRev}`,
      );
    if (existing.tenant === null && !body.breakGlass) {
      throw new KillpathError(
        'break_glass_required',
        'resuming a directive spanning every tenant needs a breakGlass attestation',
      );
    }
    const releaseCheck = checkReleases(existing, this.fleet.live(), body.sameRelease ?? null);
    if (releaseCheck.running.length > 0 && body.sameRelease === undefined) {
      await this.store.appendAudit([
        {
          type: 'resume.refused',
          actor: p.name,
          tenant: existing.tenant,
          data: {
            directiveId: id,
            reason: 'same_release',
            scope: existing.scopeText,
            level: existing.level,
            releases: releaseCheck.checked,
            running: releaseCheck.running,
            justification: body.justification,
          },
        },
      ]);
      this.metrics.auditRecords.inc();
      const workers = releaseCheck.running.length;
      throw new KillpathError(
        'same_release',
        `resume of ${id} refused: ${workers} worker${workers === 1 ? '' : 's'} it would release still run${workers === 1 ? 's' : ''} ${[
          ...new Set(releaseCheck.running.map((r) => formatRelease(r.release))),
        ].join(
          '; ',
        )} (${describeCheck(releaseCheck)}); roll the release back or forward first, or say why resuming onto it is safe (sameRelease)`,
        { details: releaseCheck },
      );
    }
    return { directive: existing, releaseCheck };
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
    body: { justification: string; breakGlass?: string | undefined; sameRelease?: string | undefined },
    approved?: { requestId: string; approvals: readonly Approval[] },
  ): Promise<{ directive: Directive; releaseCheck: ReleaseCheck }> {
    const { releaseCheck } = await this.resumable(p, id, body);
    const cleared = await this.store.clearDirective(id, (d) => [
      {
        type: 'operator_action',
        actor: p.name,
        tenant: d.tenant,
        data: {
          action: 'directive.resume',
          role: p.role,
          tokenId: p.tokenId,
          directiveId: d.id,
          justification: body.justification,
          ...(body.breakGlass ? { breakGlass: body.breakGlass } : {}),
          releaseCheck,
          // The override, on the record as such, only when it let a same-release resume through.
          ...(body.sameRelease !== undefined && releaseCheck.running.length > 0
            ? { sameRelease: body.sameRelease }
            : {}),
        },
      },
      clearedEvent(p.name, d, d.clearedRev, {
        justification: body.justification,
        approval: approved
          ? { requestId: approved.requestId, approvedBy: approved.approvals.map((a) => a.by) }
          : null,
      }),
    ]);
    if (!cleared) throw new KillpathError('conflict', `directive ${id} was cleared concurrently`);
    this.#rememberFlip(cleared.clearedRev!);
    this.#forget(cleared.id);
    this.hub.publish(cleared.clearedRev!, { cleared });
    this.launchers.reconcile(cleared.clearedRev!, this.active());
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
    const d = this.#active.get(report.directiveId) ?? (await this.store.getDirective(report.directiveId));
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
    who: { tenant: string; agent: string },
    claimed: HaltedReport,
    directive?: Directive,
  ): HaltedEvent {
    return this.#reports.report(workerId, who, claimed, directive);
  }

  /**
   * Queues a report's audit record. The batch is written once reports stop arriving for
   * {@link AUDIT_QUIET_MS}, and at the latest {@link AUDIT_MAX_WAIT_MS} after its first record:
   * during a fleet's wave of halted reports, hashing and committing their records would compete
   * with taking the rest of the wave (and with the workers still applying the flip). Readers of
   * the audit log flush first, so they never miss a queued record.
   */
  #queueAudit(e: AuditEvent): void {
    this.#pendingAudit.push(e);
    const now = performance.now();
    this.#pendingSince ??= now;
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    const wait = Math.max(0, Math.min(AUDIT_QUIET_MS, this.#pendingSince + AUDIT_MAX_WAIT_MS - now));
    this.#flushTimer = setTimeout(() => void this.flushAudit(), wait);
  }

  /**
   * Writes queued audit events now (also called on shutdown, and by readers of the audit log
   * before they read). Resolves once every event queued before the call is written: flushes run
   * one after the other, in queue order.
   */
  flushAudit(): Promise<void> {
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    this.#pendingSince = null;
    const all = this.#pendingAudit;
    this.#pendingAudit = [];
    this.#flushing = this.#flushing.then(() => this.#write(all));
    return this.#flushing;
  }

  /** Writes `all` in slices: hashing a wave's records in one go would hold the loop the kill path runs on. */
  async #write(all: AuditEvent[]): Promise<void> {
    for (let i = 0; i < all.length; i += AUDIT_SLICE) {
      const batch = all.slice(i, i + AUDIT_SLICE);
      try {
        await this.store.appendAudit(batch);
        this.metrics.auditRecords.inc(batch.length);
        const halted = batch.filter((e) => e.type === 'session.halted');
        await this.store.recordHalted(
          halted.flatMap((e) =>
            (e.data.runs as string[]).map((runId) => ({
              tenant: String(e.tenant),
              runId,
              directiveId: String(e.data.directiveId),
              at: new Date().toISOString(),
            })),
          ),
        );
      } catch (err) {
        this.#log.error('audit batch failed', { err: String(err), events: all.length - i });
        this.#pendingAudit.unshift(...all.slice(i));
        return;
      }
    }
  }
}

/** SHA-256 of a request body in canonical form (keys sorted at every depth), hex. */
export function requestDigest(body: unknown): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : typeof v === 'object' && v !== null
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([, x]) => x !== undefined)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, x]) => [k, canon(x)]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(body)))
    .digest('hex');
}

/** The break-glass record of `p`'s attestation, now; null without one. */
function attestation(p: Principal, why: string | undefined): BreakGlass | null {
  if (!why) return null;
  return { by: p.name, tokenId: p.tokenId, at: new Date().toISOString(), why };
}
