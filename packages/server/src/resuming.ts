import type { AuditEventOf } from '@killpath/protocol';
import {
  KillpathError,
  formatRelease,
  type Approval,
  type Directive,
  type Principal,
  type ReleaseCheck,
} from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { clearedEvent } from './audit-events.ts';
import { canSee, requireAct } from './auth/policy.ts';
import type { LiveWorker } from './fleet.ts';
import type { Metrics } from './metrics.ts';
import { checkReleases, describeCheck } from './release-check.ts';
import type { AuditStore, DirectiveStore } from './store/store.ts';

/** What a resume request says: why, the break-glass attestation, the same-release override. */
export interface ResumeRequest {
  justification: string;
  breakGlass?: string | undefined;
  sameRelease?: string | undefined;
}

/** A resume that an approval rule gated, with the approvals it gathered. */
export interface ApprovedResume {
  requestId: string;
  approvals: readonly Approval[];
}

/**
 * Checks that `p` may resume directive `id` now (role, tenant, still active, break-glass for a
 * directive spanning every tenant) and against the releases the directive recorded: while a
 * worker it would release still runs one of them, it is refused (`same_release`, audited
 * `resume.refused`) unless the operator says why it is safe (`sameRelease`).
 * @throws KillpathError `same_release` with the {@link ReleaseCheck} as details.
 */
export async function checkResumable(
  p: Principal,
  id: string,
  body: ResumeRequest,
  deps: {
    store: Pick<DirectiveStore, 'getDirective'> & Pick<AuditStore, 'appendAudit'>;
    live: () => LiveWorker[];
    metrics: Metrics;
  },
): Promise<{ directive: Directive; releaseCheck: ReleaseCheck }> {
  if (p.role === 'agent' || p.role === 'viewer')
    throw new KillpathError('forbidden', `role ${p.role} may not resume directives`);
  const existing = await deps.store.getDirective(id);
  if (!existing || !canSee(p, existing.tenant))
    throw new KillpathError('not_found', `directive ${id} not found`);
  requireAct(p, existing.tenant, `directive ${id}`);
  if (existing.clearedRev !== null)
    throw new KillpathError('conflict', `directive ${id} was already cleared at rev ${existing.clearedRev}`);
  if (existing.tenant === null && !body.breakGlass) {
    throw new KillpathError(
      'break_glass_required',
      'resuming a directive spanning every tenant needs a breakGlass attestation',
    );
  }
  const releaseCheck = checkReleases(existing, deps.live(), body.sameRelease ?? null);
  if (releaseCheck.running.length > 0 && body.sameRelease === undefined) {
    await deps.store.appendAudit([
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
      } satisfies AuditEventOf<'resume.refused'>,
    ]);
    deps.metrics.auditRecords.inc();
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
 * The audit records of `p`'s resume of a directive, built from the cleared directive: the
 * operator's action (with the release check, and the same-release override only when it let the
 * resume through) and `directive.cleared` (with the approvals, when a rule gated it).
 */
export function resumeAudit(
  p: Principal,
  body: ResumeRequest,
  releaseCheck: ReleaseCheck,
  approved?: ApprovedResume,
): (d: Directive) => AuditEvent[] {
  return (d) => [
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
  ];
}
