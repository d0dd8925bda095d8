import { randomUUID } from 'node:crypto';
import {
  KillpathError,
  type Approval,
  type ApprovalAction,
  type ApprovalRequest,
  type Directive,
  type Principal,
  type ReleaseCheck,
} from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { canSee } from './auth/policy.ts';
import type { ControlPlane } from './control-plane.ts';
import type { PolicyStore, TokenStore } from './store/store.ts';
import type { Logger } from './log.ts';
import type { ApprovalRule } from './policy/policy.ts';
import type { ApprovalQuery, ApprovalRecord } from './store/store.ts';

/** What the approval desk needs of the control plane: resumes, alerts, the audit counter, and the approval and token stores. */
export type ApprovalsHost = Pick<ControlPlane, 'resume' | 'resumable' | 'metrics' | 'alerts'> & {
  readonly store: PolicyStore & Pick<TokenStore, 'getToken'>;
};

/** What a gated act asks for: the rule, what it is bound to, and the act's input to replay on approval. */
export interface GatedAct {
  action: ApprovalAction;
  rule: ApprovalRule;
  tenant: string | null;
  target: string;
  targetRev: number | null;
  summary: string;
  reason: string;
  payload: Record<string, unknown>;
}

/**
 * Does a gated act once its request is approved, as its requester (`requester`, rebuilt from the
 * request), and says what it did. Throwing means the act could no longer be done.
 */
export type Completion = (
  requester: Principal,
  r: ApprovalRecord,
) => Promise<{ outcome: string; result: unknown }>;

/** The answer to an approval: the request as it now stands, and what completing it returned. */
export interface ApproveResult {
  approval: ApprovalRequest;
  /** The gated act's answer (the cleared directive, the applied policy) once the last approval came in. */
  result?: unknown;
}

/** How an approver may pin what they approve (what the CLI showed them). */
export interface ApproveBody {
  justification: string;
  /** The directive id (resume) or policy digest the approver was shown; refused when it differs. */
  target?: string | undefined;
  /** The directive rev the approver was shown; refused when it differs. */
  targetRev?: number | undefined;
}

/** A request as the API shows it: without the gated act's input. */
export function shownApproval(a: ApprovalRecord, now: number): ApprovalRequest {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { payload, ...rest } = a;
  return rest.state === 'pending' && now >= Date.parse(rest.expiresAt) ? { ...rest, state: 'expired' } : rest;
}

/**
 * The second person of "one person stops, two people resume". Acts the active policy's approval
 * rules cover become pending requests (`resume.requested` / `approval.requested`, alerted); a
 * distinct, eligible principal approves within the rule's time (`resume.approved` /
 * `approval.approved`) and the act is done then, as its requester, with the approvals on the
 * record. Self-approval, a second approval by the same principal, an ineligible role, an expired
 * request and an approval pinned to another target are refused and audited (`approval.refused`).
 * Stopping is never gated.
 */
export class ApprovalDesk {
  readonly #cp: ApprovalsHost;
  readonly #rules: () => readonly ApprovalRule[];
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #completions = new Map<ApprovalAction, Completion>();

  constructor(deps: {
    cp: ApprovalsHost;
    /** The active policy's approval rules. */
    rules: () => readonly ApprovalRule[];
    log: Logger;
    /** Wall clock in ms (default `Date.now`): a request's window is judged on it. */
    now?: () => number;
  }) {
    this.#cp = deps.cp;
    this.#rules = deps.rules;
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
    this.#completions.set('resume', async (requester, r) => {
      const { requester: _who, ...body } = (r.payload ?? {}) as {
        justification: string;
        breakGlass?: string;
        sameRelease?: string;
        requester?: unknown;
      };
      const { directive: d, releaseCheck } = await this.#cp.resume(requester, r.target, body, {
        requestId: r.id,
        approvals: r.approvals,
      });
      return {
        outcome: `directive ${d.id} cleared at rev ${d.clearedRev}`,
        result: { directive: d, releaseCheck },
      };
    });
  }

  /** Registers how an approved act of `action` is done (policy apply, admin token mint). */
  complete(action: ApprovalAction, fn: Completion): void {
    this.#completions.set(action, fn);
  }

  /** The first rule gating `action` (for a resume: of directive `d`), or null when the act is one person's. */
  ruleFor(action: ApprovalAction, d?: Directive): ApprovalRule | null {
    for (const r of this.#rules()) {
      if (r.action !== action) continue;
      if (action !== 'resume') return r;
      if (d === undefined) continue;
      if ((r.scopes as string[]).includes(d.scope.kind) || (r.breakGlass && d.breakGlass)) return r;
    }
    return null;
  }

  /**
   * A resume: done at once when no rule gates it, else a pending request bound to the
   * directive's id and rev (an identical pending request of the same requester is returned as is).
   */
  async resume(
    p: Principal,
    id: string,
    body: { justification: string; breakGlass?: string | undefined; sameRelease?: string | undefined },
  ): Promise<
    { directive: Directive; releaseCheck: ReleaseCheck } | { approval: ApprovalRequest; created: boolean }
  > {
    const { directive: d } = await this.#cp.resumable(p, id, body);
    const rule = this.ruleFor('resume', d);
    if (rule === null) return this.#cp.resume(p, id, body);
    return this.request(p, {
      action: 'resume',
      rule,
      tenant: d.tenant,
      target: d.id,
      targetRev: d.rev,
      summary: `resume ${d.level} ${d.scopeText} (${d.id}, rev ${d.rev})${d.breakGlass ? ', issued with break-glass' : ''}`,
      reason: body.justification,
      payload: { ...body },
    });
  }

  /** Files a request for a gated act (audited, alerted); a pending one of the same requester and target is returned instead. */
  async request(p: Principal, act: GatedAct): Promise<{ approval: ApprovalRequest; created: boolean }> {
    const now = this.#now();
    const open = (
      await this.#cp.store.listApprovals({ target: act.target, state: 'pending', limit: 50 })
    ).find(
      (a) =>
        a.action === act.action &&
        a.requestedToken === p.tokenId &&
        a.targetRev === act.targetRev &&
        now < Date.parse(a.expiresAt),
    );
    if (open !== undefined) return { approval: shownApproval(open, now), created: false };
    const rec: ApprovalRecord = {
      id: `ap_${randomUUID()}`,
      action: act.action,
      rule: act.rule.name,
      tenant: act.tenant,
      target: act.target,
      targetRev: act.targetRev,
      summary: act.summary,
      requestedBy: p.name,
      requestedToken: p.tokenId,
      reason: act.reason,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + act.rule.withinMs).toISOString(),
      needed: act.rule.approvals,
      approverRole: act.rule.approvers,
      contact: act.rule.contact,
      approvals: [],
      state: 'pending',
      completedAt: null,
      outcome: null,
      payload: { ...act.payload, requester: { role: p.role, tenant: p.tenant, agent: p.agent } },
    };
    const type = act.action === 'resume' ? 'resume.requested' : 'approval.requested';
    await this.#cp.store.createApproval(rec, (a) => [
      {
        type,
        actor: p.name,
        tenant: a.tenant,
        data: {
          requestId: a.id,
          action: a.action,
          rule: a.rule,
          target: a.target,
          targetRev: a.targetRev,
          summary: a.summary,
          reason: a.reason,
          tokenId: p.tokenId,
          needed: a.needed,
          approvers: a.approverRole,
          expiresAt: a.expiresAt,
        },
      },
    ]);
    this.#cp.metrics.auditRecords.inc();
    const who = `${rec.needed} approval${rec.needed === 1 ? '' : 's'} by ${rec.approverRole === 'admin' ? 'an admin' : 'an operator or admin'} other than ${p.name}`;
    this.#cp.alerts.notify({
      kind: act.action === 'resume' ? 'resume.requested' : 'approval.requested',
      summary: `${p.name} asks to ${act.summary}; needs ${who} by ${rec.expiresAt}${rec.contact ? ` (call ${rec.contact})` : ''}: killpath approve ${rec.id} --reason "…"`,
      tenant: rec.tenant,
      directiveId: act.action === 'resume' ? act.target : null,
      details: { requestId: rec.id, rule: rec.rule, requestedBy: p.name, expiresAt: rec.expiresAt },
    });
    return { approval: shownApproval(rec, now), created: true };
  }

  /** Requests the principal may see (its tenant's and those spanning every tenant), newest first. */
  async list(
    p: Principal,
    q: { state?: ApprovalRequest['state']; limit: number },
  ): Promise<{ approvals: ApprovalRequest[]; total: number }> {
    if (p.role === 'agent') throw new KillpathError('forbidden', 'agent tokens see no approval requests');
    const now = this.#now();
    // A pending request past its time shows as expired (stored so once someone tried it).
    const filter: Omit<ApprovalQuery, 'limit'> = {
      ...(p.tenant === '*' ? {} : { tenant: p.tenant, action: 'resume' }),
      ...(q.state === 'pending' || q.state === 'expired'
        ? { expired: { now: new Date(now).toISOString(), is: q.state === 'expired' } }
        : q.state === undefined
          ? {}
          : { state: q.state }),
    };
    // `total`: what this principal may see under the same filter (a tenant's people: resume requests).
    const [rows, total] = await Promise.all([
      this.#cp.store.listApprovals({ ...filter, limit: q.limit }),
      this.#cp.store.countApprovals(filter),
    ]);
    const approvals = rows.map((a) => shownApproval(a, now));
    return { approvals, total };
  }

  /** One request, if the principal may see it. */
  async get(p: Principal, id: string): Promise<ApprovalRequest> {
    const a = await this.#visible(p, id);
    return shownApproval(a, this.#now());
  }

  async #visible(p: Principal, id: string): Promise<ApprovalRecord> {
    if (p.role === 'agent') throw new KillpathError('forbidden', 'agent tokens approve nothing');
    const a = await this.#cp.store.getApproval(id);
    // A policy change spans every tenant: its requests are an admin's business only.
    if (a === null || !canSee(p, a.tenant) || (a.action !== 'resume' && p.tenant !== '*'))
      throw new KillpathError('not_found', `approval request ${id} not found`);
    return a;
  }

  /**
   * One approval of request `id` by `p`. When it is the last one needed, the act is done at once,
   * as its requester. Refusals (self, duplicate, ineligible, expired, settled, pinned to another
   * target) are audited `approval.refused` and answered 403 or 409.
   */
  async approve(p: Principal, id: string, body: ApproveBody): Promise<ApproveResult> {
    const seen = await this.#visible(p, id);
    const now = this.#now();
    const at = new Date(now).toISOString();
    type Verdict = { ok: true; rec: ApprovalRecord } | { ok: false; err: KillpathError };
    const verdict = await this.#cp.store.updateApproval<Verdict>(id, (a) => {
      if (a === null)
        return {
          next: null,
          audit: [],
          result: { ok: false, err: new KillpathError('not_found', `approval request ${id} not found`) },
        };
      const refuse = (
        code: 'forbidden' | 'conflict',
        why: string,
        message: string,
        next: ApprovalRecord | null = null,
      ) => ({
        next,
        audit: [refusedEvent(p, a, why, message)],
        result: { ok: false as const, err: new KillpathError(code, message) },
      });
      if (a.state !== 'pending')
        return refuse(
          'conflict',
          'settled',
          `request ${id} is ${a.state}${a.outcome ? ` (${a.outcome})` : ''}: nothing left to approve`,
        );
      if (now >= Date.parse(a.expiresAt))
        return refuse(
          'conflict',
          'expired',
          `request ${id} expired at ${a.expiresAt}; the requester must ask again`,
          { ...a, state: 'expired', completedAt: at, outcome: 'expired before enough approvals' },
        );
      if (body.target !== undefined && body.target !== a.target)
        return refuse(
          'conflict',
          'different_request',
          `request ${id} is for ${a.target}, not ${body.target}: an approval is for one request`,
        );
      if (body.targetRev !== undefined && body.targetRev !== a.targetRev)
        return refuse(
          'conflict',
          'different_request',
          `request ${id} is for rev ${a.targetRev ?? '-'}, not ${body.targetRev}: an approval is for one request`,
        );
      if (p.tokenId === a.requestedToken || p.name === a.requestedBy)
        return refuse('forbidden', 'self', `${p.name} requested ${id}: a second person must approve it`);
      if (a.approvals.some((x) => x.tokenId === p.tokenId || x.by === p.name))
        return refuse(
          'conflict',
          'duplicate',
          `${p.name} already approved ${id}: it needs ${a.needed} distinct approvers`,
        );
      const eligible =
        p.role === 'admin' ||
        (a.approverRole === 'operator' &&
          p.role === 'operator' &&
          a.tenant !== null &&
          p.tenant === a.tenant);
      if (!eligible)
        return refuse(
          'forbidden',
          'ineligible',
          `request ${id} needs an approval by ${a.approverRole === 'admin' ? 'an admin' : `an operator of ${a.tenant ?? 'every tenant'} or an admin`}; ${p.name} is ${p.role} of ${p.tenant}`,
        );
      const approval: Approval = { by: p.name, tokenId: p.tokenId, at, reason: body.justification };
      const approvals = [...a.approvals, approval];
      const done = approvals.length >= a.needed;
      const next: ApprovalRecord = {
        ...a,
        approvals,
        ...(done ? { state: 'approved' as const, completedAt: at } : {}),
      };
      const data = {
        requestId: a.id,
        action: a.action,
        target: a.target,
        targetRev: a.targetRev,
        reason: body.justification,
        tokenId: p.tokenId,
        approvals: approvals.length,
        needed: a.needed,
        complete: done,
      };
      return {
        next,
        audit: [
          {
            type: a.action === 'resume' ? 'resume.approved' : 'approval.approved',
            actor: p.name,
            tenant: a.tenant,
            data,
          },
        ],
        result: { ok: true, rec: next },
      };
    });
    this.#cp.metrics.auditRecords.inc();
    if (!verdict.ok) {
      this.#cp.alerts.notify({
        kind: 'approval.refused',
        summary: `approval of ${id} by ${p.name} refused: ${verdict.err.message}`,
        tenant: seen.tenant,
        directiveId: null,
        details: { requestId: id, by: p.name },
      });
      throw verdict.err;
    }
    const rec = verdict.rec;
    if (rec.state !== 'approved') return { approval: shownApproval(rec, now) };
    return this.#finish(rec, p);
  }

  /** Does the approved act as its requester and records the outcome (failed when it can no longer be done). */
  async #finish(rec: ApprovalRecord, approver: Principal): Promise<ApproveResult> {
    const requester = this.#requester(rec);
    const done = this.#completions.get(rec.action);
    let outcome: string;
    let result: unknown;
    let failed: KillpathError | null = null;
    try {
      const token = await this.#cp.store.getToken(rec.requestedToken);
      if (token?.revokedAt)
        throw new KillpathError('conflict', `the requester's token was revoked at ${token.revokedAt}`);
      if (done === undefined)
        throw new KillpathError(
          'conflict',
          `no way to complete a ${rec.action} request on this control plane`,
        );
      ({ outcome, result } = await done(requester, rec));
    } catch (err) {
      failed =
        err instanceof KillpathError
          ? err
          : new KillpathError('internal', 'the approved act failed', { cause: err });
      outcome = `approved, but not done: ${failed.message}`;
      this.#log.warn('approved act could not be done', { requestId: rec.id, err: String(err) });
    }
    const settled: ApprovalRecord = { ...rec, state: failed ? 'failed' : 'approved', outcome };
    await this.#cp.store.updateApproval(rec.id, () => ({ next: settled, audit: [], result: null }));
    if (!failed)
      this.#cp.alerts.notify({
        kind: 'resume.approved',
        summary: `${approver.name} approved ${rec.id} (${rec.summary}) asked by ${rec.requestedBy}: ${outcome}`,
        tenant: rec.tenant,
        directiveId: rec.action === 'resume' ? rec.target : null,
        details: { requestId: rec.id, approvedBy: rec.approvals.map((a) => a.by) },
      });
    if (failed) throw failed;
    return { approval: shownApproval(settled, this.#now()), result };
  }

  #requester(rec: ApprovalRecord): Principal {
    const who = (rec.payload?.requester ?? {}) as Partial<Principal>;
    return {
      tokenId: rec.requestedToken,
      name: rec.requestedBy,
      role: who.role ?? 'operator',
      tenant: who.tenant ?? rec.tenant ?? '*',
      agent: null,
    };
  }
}

function refusedEvent(p: Principal, a: ApprovalRecord, why: string, message: string): AuditEvent {
  return {
    type: 'approval.refused',
    actor: p.name,
    tenant: a.tenant,
    data: {
      requestId: a.id,
      action: a.action,
      target: a.target,
      why,
      message,
      tokenId: p.tokenId,
      role: p.role,
    },
  };
}
