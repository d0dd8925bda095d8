import { createHash } from 'node:crypto';
import {
  KillpathError,
  LEVEL_RULES,
  formatScope,
  isStopLevel,
  parseScope,
  stepLevel,
  type BreakGlass,
  type Directive,
  type Principal,
  type Release,
} from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { clearedEvent, firedEvent, issuedEvent } from './audit-events.ts';
import { confine } from './auth/confinement.ts';
import { canSee, requireAct } from './auth/policy.ts';
import type { IssueDirectiveBody, StepBody } from './http/schemas.ts';
import { checkLevel, isAbove, sameTarget } from './ladder.ts';
import type { Alert } from './notify.ts';
import type { DirectiveInput, DirectiveStore, FleetStore, IssueResult } from './store/store.ts';

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

/**
 * A directive ready to be committed: what the store gets (its releases are added at the commit,
 * from the fleet then), the audit records of the outcome, what set it off (`operator`, a trigger
 * kind, `escalation`) and the releases its predecessor recorded.
 */
export interface DirectivePlan {
  readonly base: Omit<DirectiveInput, 'releases'>;
  readonly audit: (r: IssueResult) => AuditEvent[];
  readonly trigger: string;
  readonly inherited: readonly Release[];
}

/** An issue's plan; after the commit, {@link IssuePlan.checkKey} says whether its idempotency key held. */
export interface IssuePlan extends DirectivePlan {
  /**
   * Throws `idempotency_mismatch` when the commit found the idempotency key used before for
   * another request (nothing converged, nothing was recorded).
   */
  checkKey(): void;
}

/**
 * Plans an issue: validates scope and rights (tenant confinement, break-glass), the level's
 * parameters and escalation, and builds the audit records of each outcome (created, converged,
 * automatic). Retries with the same idempotency key converge; the same key with another body
 * does not (see {@link IssuePlan.checkKey}).
 * @param slackMs extra time after a halt's grace before its kill step
 */
export async function planIssue(
  p: Principal,
  body: IssueDirectiveBody,
  opts: { idempotencyKey?: string | undefined; via: string; trigger?: AutomaticTrigger },
  deps: { store: Pick<FleetStore, 'findRuns'>; slackMs: number },
): Promise<IssuePlan> {
  if (p.role === 'agent' || p.role === 'viewer')
    throw new KillpathError('forbidden', `role ${p.role} may not issue directives`);
  const scope = parseScope(body.scope);
  const graceMs = body.graceMs ?? (body.level === 'kill' ? 0 : DEFAULT_GRACE_MS);
  const escalation = checkLevel(body, graceMs, deps.slackMs);
  const tenant = await confine(p, scope, body, deps.store);
  const digest = opts.idempotencyKey ? requestDigest(body) : null;
  let mismatch: Directive | null = null;
  return {
    base: {
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
    audit: (r) => {
      // The key was sent before with another request: nothing converges, nothing is recorded.
      if (r.converged === 'idempotency_key' && r.keyDigest != null && r.keyDigest !== digest) {
        mismatch = r.directive;
        return [];
      }
      return issueAudit(p, r, body, opts.via, opts.trigger);
    },
    trigger: opts.trigger?.kind ?? 'operator',
    inherited: [],
    checkKey() {
      const held: Directive | null = mismatch;
      if (held === null) return;
      throw new KillpathError(
        'idempotency_mismatch',
        `Idempotency-Key ${opts.idempotencyKey} was used for another request, which issued directive ${held.id} (${held.level} ${held.scopeText}); use a new key for a new request`,
        { details: { directiveId: held.id } },
      );
    },
  };
}

/**
 * Plans a step of directive `id` one level up or down the ladder: a new directive at the same
 * scope and capabilities that replaces it at one rev. Stepping down to throttle needs a rate; a
 * capability-narrowed directive steps over isolate (which is agent-wide): degrade ⇄ halt.
 * @param slackMs extra time after a halt's grace before its kill step
 */
export async function planStep(
  p: Principal,
  id: string,
  body: StepBody,
  deps: { store: Pick<DirectiveStore, 'getDirective'>; slackMs: number },
): Promise<DirectivePlan> {
  if (p.role === 'agent' || p.role === 'viewer')
    throw new KillpathError('forbidden', `role ${p.role} may not step directives`);
  const from = await deps.store.getDirective(id);
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
    deps.slackMs,
  );
  const justification = body.justification;
  return {
    base: {
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
    audit: (r) => {
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
    trigger: 'operator',
    inherited: from.releases,
  };
}

/** The audit records of an issue's outcome `r`: an operator's action, or an automatic trigger's (nothing on a convergence). */
function issueAudit(
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
      events.push(clearedEvent(p.name, old, d.rev, { replacedBy: d.id, justification: body.justification }));
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
 * The alerts a newly committed directive raises: a degrade (what an agent may do changed below
 * a halt), an isolate, and an operator's break-glass over every tenant. `trigger` is what set
 * it off (`operator`, `escalation`, a trigger kind).
 */
export function commitAlerts(d: Directive, trigger: string): Omit<Alert, 'at' | 'checkpoint'>[] {
  const alerts: Omit<Alert, 'at' | 'checkpoint'>[] = [];
  if (d.level === 'degrade') {
    const what =
      d.capabilities === null
        ? 'read-only (every write and irreversible effect refused)'
        : `capabilities ${d.capabilities.join(', ')} revoked`;
    alerts.push({
      kind: 'degraded',
      summary: `${d.scopeText} degraded: ${what}; reason: ${d.reason}`,
      tenant: d.tenant,
      directiveId: d.id,
      details: { scope: d.scopeText, capabilities: d.capabilities, actor: d.actor, trigger },
    });
  }
  if (d.breakGlass && trigger === 'operator') {
    alerts.push({
      kind: 'break_glass',
      summary: `break-glass: ${d.breakGlass.by} issued ${d.level} at ${d.scopeText} (every tenant) at ${d.breakGlass.at}: ${d.breakGlass.why}`,
      tenant: null,
      directiveId: d.id,
      details: { ...d.breakGlass, level: d.level, scope: d.scopeText },
    });
  }
  if (d.level === 'isolate') {
    alerts.push({
      kind: 'isolated',
      summary: `${d.scopeText} isolated: nothing leaves its launchers; reason: ${d.reason}`,
      tenant: d.tenant,
      directiveId: d.id,
      details: { scope: d.scopeText, actor: d.actor, trigger },
    });
  }
  return alerts;
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
