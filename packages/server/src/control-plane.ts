import {
  KillpathError,
  isStopLevel,
  parseScope,
  type Directive,
  type HaltedReport,
  type Principal,
  type Scope,
} from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { canSee, requireAct } from './auth/policy.ts';
import type { Fleet } from './fleet.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { StreamHub } from './stream/hub.ts';
import type { IssueResult, Store } from './store/store.ts';
import type { IssueDirectiveBody } from './http/schemas.ts';
import { DEFAULT_COOL_OFF_MS, PermitDesk, type CoolOffPolicy } from './permits.ts';

/** Levels the control plane enforces today; the rest of the ladder is accepted by the schema only. */
export const ENFORCED_LEVELS = new Set(['halt', 'kill']);

/** Default grace for a halt, in ms. */
export const DEFAULT_GRACE_MS = 5_000;

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
  readonly #log: Logger;
  readonly #flips = new Map<number, number>();
  readonly #halted = new Set<HaltedListener>();
  #pendingAudit: AuditEvent[] = [];
  #flushTimer: NodeJS.Timeout | null = null;

  constructor(deps: { store: Store; hub: StreamHub; fleet: Fleet; metrics: Metrics; log: Logger; coolOff?: CoolOffPolicy }) {
    this.store = deps.store;
    this.permits = new PermitDesk(deps.store, deps.log, deps.coolOff ?? { defaultMs: DEFAULT_COOL_OFF_MS, byCapability: {} });
    this.hub = deps.hub;
    this.fleet = deps.fleet;
    this.metrics = deps.metrics;
    this.#log = deps.log;
  }

  /** Monotonic commit time of `rev`, if remembered. */
  flipTime(rev: number): number | undefined {
    return this.#flips.get(rev);
  }

  /** Subscribes to settle reports; returns the unsubscribe function. */
  onHalted(fn: HaltedListener): () => void {
    this.#halted.add(fn);
    return () => this.#halted.delete(fn);
  }

  #rememberFlip(rev: number): void {
    this.#flips.set(rev, performance.now());
    if (this.#flips.size > FLIP_MEMORY) this.#flips.delete(this.#flips.keys().next().value!);
    this.metrics.rev.set(rev);
  }

  /**
   * Decides which tenant a new directive is confined to and checks the principal may issue
   * it there. Directives spanning every tenant need an admin and a break-glass attestation.
   */
  async #confine(p: Principal, scope: Scope, body: { tenant?: string | undefined; breakGlass?: string | undefined }): Promise<string | null> {
    let tenant: string | null;
    switch (scope.kind) {
      case 'global':
        tenant = null;
        break;
      case 'tenant':
      case 'agent':
        tenant = scope.tenant;
        break;
      case 'run': {
        const run = await this.store.getRun(scope.run);
        if (run) {
          if (!canSee(p, run.tenant)) throw new KillpathError('not_found', `run ${scope.run} not found`);
          tenant = run.tenant;
        } else {
          // A run not seen yet can be stopped ahead of time, confined to the issuer's tenant.
          tenant = body.tenant ?? (p.tenant === '*' ? null : p.tenant);
        }
        break;
      }
      case 'feature':
        tenant = body.tenant ?? (p.tenant === '*' ? null : p.tenant);
        break;
    }
    if (body.tenant !== undefined && tenant !== body.tenant) {
      throw new KillpathError('invalid_request', `scope ${scope.kind} belongs to tenant ${tenant ?? '(all)'}, not ${body.tenant}`);
    }
    requireAct(p, tenant, tenant === null ? 'every tenant' : `tenant ${tenant}`);
    if (tenant === null && !body.breakGlass) {
      throw new KillpathError('break_glass_required', 'a directive spanning every tenant needs an admin token and a breakGlass attestation');
    }
    return tenant;
  }

  /**
   * Issues a directive: validates scope and rights, commits it (with its audit records) at a
   * new rev, then pushes the delta to every stream. Retries with the same idempotency key and
   * identical re-issues converge to the existing directive without a new rev.
   */
  async issue(p: Principal, body: IssueDirectiveBody, opts: { idempotencyKey?: string | undefined; via: string }): Promise<IssueResult> {
    if (p.role === 'agent' || p.role === 'viewer') throw new KillpathError('forbidden', `role ${p.role} may not issue directives`);
    const scope = parseScope(body.scope);
    if (!ENFORCED_LEVELS.has(body.level)) {
      throw new KillpathError('unsupported_level', `level "${body.level}" is on the ladder but not enforced by this version; use halt or kill`);
    }
    const tenant = await this.#confine(p, scope, body);
    const result = await this.store.issueDirective(
      {
        level: body.level,
        scope,
        tenant,
        capabilities: body.capabilities ?? null,
        rate: body.rate ?? null,
        graceMs: body.graceMs ?? (body.level === 'kill' ? 0 : DEFAULT_GRACE_MS),
        drain: body.drain ?? 'discard',
        memory: body.memory ?? 'revert',
        reason: body.reason,
        justification: body.justification,
        actor: p.name,
        idempotencyKey: opts.idempotencyKey ? `${p.tokenId}:${opts.idempotencyKey}` : null,
      },
      (r) => this.#issueAudit(p, r, body, opts.via),
    );
    if (result.created) {
      const d = result.directive;
      this.#rememberFlip(d.rev);
      this.hub.publish(d.rev, { issued: d });
      this.metrics.directives.inc({ level: d.level });
      this.metrics.auditRecords.inc(isStopLevel(d.level) ? 3 : 2);
      this.#log.info('directive issued', { id: d.id, rev: d.rev, directiveLevel: d.level, scope: d.scopeText, capabilities: d.capabilities, actor: d.actor });
    }
    return result;
  }

  #issueAudit(p: Principal, r: IssueResult, body: IssueDirectiveBody, via: string): AuditEvent[] {
    const d = r.directive;
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
    const events: AuditEvent[] = [action, { type: 'directive.issued', actor: p.name, tenant: d.tenant, data: { directive: d } }];
    if (isStopLevel(d.level)) {
      events.push({
        type: 'kill_switch.fired',
        actor: p.name,
        tenant: d.tenant,
        data: { directiveId: d.id, rev: d.rev, level: d.level, scope: d.scopeText, capabilities: d.capabilities, trigger: 'operator', reason: d.reason },
      });
    }
    return events;
  }

  /** Clears a directive at a new rev (resume): an explicit, justified, audited act. */
  async resume(p: Principal, id: string, body: { justification: string; breakGlass?: string | undefined }): Promise<Directive> {
    if (p.role === 'agent' || p.role === 'viewer') throw new KillpathError('forbidden', `role ${p.role} may not resume directives`);
    const existing = await this.store.getDirective(id);
    if (!existing || !canSee(p, existing.tenant)) throw new KillpathError('not_found', `directive ${id} not found`);
    requireAct(p, existing.tenant, `directive ${id}`);
    if (existing.clearedRev !== null) throw new KillpathError('conflict', `directive ${id} was already cleared at rev ${existing.clearedRev}`);
    if (existing.tenant === null && !body.breakGlass) {
      throw new KillpathError('break_glass_required', 'resuming a directive spanning every tenant needs a breakGlass attestation');
    }
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
        },
      },
      { type: 'directive.cleared', actor: p.name, tenant: d.tenant, data: { directiveId: d.id, rev: d.clearedRev, scope: d.scopeText, level: d.level, justification: body.justification } },
    ]);
    if (!cleared) throw new KillpathError('conflict', `directive ${id} was cleared concurrently`);
    this.#rememberFlip(cleared.clearedRev!);
    this.hub.publish(cleared.clearedRev!, { cleared });
    this.metrics.cleared.inc();
    this.metrics.auditRecords.inc(2);
    this.#log.info('directive cleared', { id, rev: cleared.clearedRev, actor: p.name });
    return cleared;
  }

  /**
   * Takes a worker's settle report: measures flip-to-report on this process's monotonic clock,
   * notifies listeners, and queues `session.halted` for the audit log (batched, so a fleet of
   * reports costs one durable commit per batch rather than one each).
   */
  halted(workerId: string, who: { tenant: string; agent: string }, report: HaltedReport): HaltedEvent {
    this.fleet.ack(workerId, report.rev);
    const flip = this.#flips.get(report.rev);
    const timeToStopMs = flip === undefined ? null : performance.now() - flip;
    if (timeToStopMs !== null) this.metrics.signalToHalt.observe(timeToStopMs / 1000);
    const event: HaltedEvent = { ...report, workerId, tenant: who.tenant, agent: who.agent, timeToStopMs };
    for (const fn of this.#halted) {
      try {
        fn(event);
      } catch (err) {
        this.#log.error('halted listener failed', { err: String(err) });
      }
    }
    this.#queueAudit({
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
    });
    return event;
  }

  #queueAudit(e: AuditEvent): void {
    this.#pendingAudit.push(e);
    if (this.#flushTimer === null) {
      this.#flushTimer = setTimeout(() => void this.flushAudit(), 25);
    }
  }

  /** Writes queued audit events now (also called on shutdown). */
  async flushAudit(): Promise<void> {
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const batch = this.#pendingAudit;
    this.#pendingAudit = [];
    if (batch.length === 0) return;
    try {
      await this.store.appendAudit(batch);
      this.metrics.auditRecords.inc(batch.length);
      const halted = batch.filter((e) => e.type === 'session.halted');
      await this.store.recordHalted(
        halted.flatMap((e) => (e.data.runs as string[]).map((runId) => ({ runId, directiveId: String(e.data.directiveId), at: new Date().toISOString() }))),
      );
    } catch (err) {
      this.#log.error('audit batch failed', { err: String(err), events: batch.length });
      this.#pendingAudit.unshift(...batch);
    }
  }
}
