import type { AuditEventOf } from '@killpath/protocol';
import type { Directive } from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';

/**
 * The audit events of the switchboard, each built in one place: what a reader of the log finds
 * under `directive.issued`, `directive.cleared` and `kill_switch.fired` does not depend on which
 * path (issue, step, escalation, resume) wrote it.
 */

/** `directive.issued`: `d` committed by `actor`. */
export function issuedEvent(actor: string, d: Directive): AuditEvent {
  return {
    type: 'directive.issued',
    actor,
    tenant: d.tenant,
    data: { directive: d },
  } satisfies AuditEventOf<'directive.issued'>;
}

/**
 * `directive.cleared`: `cleared` left the switchboard at `rev`, replaced by another directive
 * (`replacedBy`: a step, an escalation, a replacing issue) or resumed (then the resume's
 * approval, when it needed one).
 */
export function clearedEvent(
  actor: string,
  cleared: Directive,
  rev: number | null,
  how: {
    replacedBy?: string;
    justification?: string | undefined;
    approval?: { requestId: string; approvedBy: string[] } | null;
  } = {},
): AuditEvent {
  return {
    type: 'directive.cleared',
    actor,
    tenant: cleared.tenant,
    data: {
      directiveId: cleared.id,
      rev,
      scope: cleared.scopeText,
      level: cleared.level,
      ...(how.replacedBy !== undefined ? { replacedBy: how.replacedBy } : {}),
      ...(how.justification !== undefined ? { justification: how.justification } : {}),
      ...(how.approval
        ? { approvalRequest: how.approval.requestId, approvedBy: how.approval.approvedBy }
        : {}),
    },
  } satisfies AuditEventOf<'directive.cleared'>;
}

/** `kill_switch.fired`: `d` was issued through `trigger` (operator, escalation, a rule's kind), with `extra` details. */
export function firedEvent(
  d: Directive,
  actor: string,
  trigger: string,
  extra: Record<string, unknown> = {},
): AuditEvent {
  return {
    type: 'kill_switch.fired',
    actor,
    tenant: d.tenant,
    data: {
      ...extra,
      directiveId: d.id,
      rev: d.rev,
      level: d.level,
      scope: d.scopeText,
      capabilities: d.capabilities,
      trigger,
      reason: d.reason,
    },
  } satisfies AuditEventOf<'kill_switch.fired'>;
}
