/**
 * Approvals: the second person of "one person stops, two people resume". A policy's approval
 * rules say which acts need approving, by whom and how fast; a gated act becomes a pending
 * request that distinct, eligible principals approve.
 */

/** Acts an approval rule can gate: resuming a directive, applying a policy, minting an admin token. */
export const APPROVAL_ACTIONS = ['resume', 'policy.apply', 'token.create_admin'] as const;
export type ApprovalAction = (typeof APPROVAL_ACTIONS)[number];

/** Who may approve: admins only, or also operators of the request's tenant. */
export type ApproverRole = 'admin' | 'operator';

/** One approval given to a request. */
export interface Approval {
  /** The approving token's name. */
  by: string;
  tokenId: string;
  /** ISO 8601. */
  at: string;
  reason: string;
}

/**
 * A pending (or settled) request for an act that an approval rule gates. A resume request is
 * bound to one directive's id and rev: it cannot be replayed onto another directive, nor a later
 * one at the same scope.
 */
export interface ApprovalRequest {
  id: string;
  action: ApprovalAction;
  /** The policy's approval rule that asked for it. */
  rule: string;
  /** Tenant of the gated object; null for one spanning every tenant (a global directive, the policy). */
  tenant: string | null;
  /** What it is bound to: the directive's id (resume), the policy text's SHA-256 (policy.apply), the token's name (token.create_admin). */
  target: string;
  /** The directive's rev (resume); null otherwise. */
  targetRev: number | null;
  /** One line for humans: what approving it does. */
  summary: string;
  requestedBy: string;
  requestedToken: string;
  /** The requester's justification. */
  reason: string;
  /** ISO 8601. */
  createdAt: string;
  /** After this (ISO 8601) the request can no longer be approved. */
  expiresAt: string;
  /** Approvals needed from principals other than the requester. */
  needed: number;
  approverRole: ApproverRole;
  /** Whom to call for an approval (from the rule). */
  contact: string | null;
  approvals: Approval[];
  /** `approved`: the act was done; `failed`: approved, but the act could no longer be done (see `outcome`). */
  state: 'pending' | 'approved' | 'expired' | 'failed';
  completedAt: string | null;
  /** What approving it did, or why it could not (a directive cleared meanwhile). */
  outcome: string | null;
}
