/**
 * Approval requests on SQLite (schema version 10), run by `SqliteStore` on its connection, inside
 * its group-commit transactions and its audit chain. The rules (who may approve, when a request
 * is complete) live above the store: `updateApproval` reads a request and writes what the
 * caller's function decides, with its audit records, in one transaction.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { AuditEvent } from '../audit/chain.ts';
import { toApproval, type ApprovalRow } from './rows.ts';
import type { ApprovalQuery, ApprovalRecord, ApprovalUpdate } from './store.ts';

/** Schema version 10: approval requests. */
export const APPROVALS_SCHEMA = `
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  action TEXT NOT NULL,
  rule TEXT NOT NULL,
  tenant TEXT,
  target TEXT NOT NULL,
  target_rev INTEGER,
  summary TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  requested_token TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  needed INTEGER NOT NULL,
  approver_role TEXT NOT NULL,
  contact TEXT,
  approvals TEXT NOT NULL,
  state TEXT NOT NULL,
  completed_at TEXT,
  outcome TEXT,
  payload TEXT
);
CREATE INDEX IF NOT EXISTS approvals_created ON approvals (created_at);
`;

/** What the approval functions need from the store. */
export interface ApprovalsContext {
  db: DatabaseSync;
  tx<T>(fn: () => T): Promise<T>;
  audit(events: AuditEvent[]): void;
}

function write(db: DatabaseSync, a: ApprovalRecord, insert: boolean): void {
  const values = [
    a.action,
    a.rule,
    a.tenant,
    a.target,
    a.targetRev,
    a.summary,
    a.requestedBy,
    a.requestedToken,
    a.reason,
    a.createdAt,
    a.expiresAt,
    a.needed,
    a.approverRole,
    a.contact,
    JSON.stringify(a.approvals),
    a.state,
    a.completedAt,
    a.outcome,
    a.payload === null ? null : JSON.stringify(a.payload),
  ];
  if (insert)
    db.prepare(
      `INSERT INTO approvals (action, rule, tenant, target, target_rev, summary, requested_by, requested_token, reason,
        created_at, expires_at, needed, approver_role, contact, approvals, state, completed_at, outcome, payload, id)
        VALUES (${Array.from({ length: 20 }, () => '?').join(', ')})`,
    ).run(...values, a.id);
  else
    db.prepare(
      `UPDATE approvals SET action = ?, rule = ?, tenant = ?, target = ?, target_rev = ?, summary = ?, requested_by = ?,
        requested_token = ?, reason = ?, created_at = ?, expires_at = ?, needed = ?, approver_role = ?, contact = ?,
        approvals = ?, state = ?, completed_at = ?, outcome = ?, payload = ? WHERE id = ?`,
    ).run(...values, a.id);
}

/** Stores a new request with its audit records in one transaction. */
export function createApproval(
  ctx: ApprovalsContext,
  a: ApprovalRecord,
  audit: (a: ApprovalRecord) => AuditEvent[],
): Promise<ApprovalRecord> {
  return ctx.tx(() => {
    write(ctx.db, a, true);
    ctx.audit(audit(a));
    return a;
  });
}

/** One request; null when unknown. */
export function getApproval(ctx: ApprovalsContext, id: string): ApprovalRecord | null {
  const r = ctx.db.prepare('SELECT * FROM approvals WHERE id = ?').get(id) as ApprovalRow | undefined;
  return r ? toApproval(r) : null;
}

/** Requests, newest first. */
export function listApprovals(ctx: ApprovalsContext, q: ApprovalQuery): ApprovalRecord[] {
  const { where, params } = approvalFilter(q);
  const sql = `SELECT * FROM approvals ${where} ORDER BY created_at DESC, id DESC LIMIT ?`;
  return (ctx.db.prepare(sql).all(...params, q.limit) as unknown as ApprovalRow[]).map(toApproval);
}

/** How many requests match the filters of a list (its limit ignored). */
export function countApprovals(ctx: ApprovalsContext, q: Omit<ApprovalQuery, 'limit'>): number {
  const { where, params } = approvalFilter(q);
  return Number(
    (ctx.db.prepare(`SELECT COUNT(*) AS n FROM approvals ${where}`).get(...params) as { n: number }).n,
  );
}

/** The WHERE clause (with its parameters) of an approvals list or count. */
function approvalFilter(q: Omit<ApprovalQuery, 'limit'>): { where: string; params: string[] } {
  const where: string[] = [];
  const params: string[] = [];
  if (q.tenant !== undefined) {
    where.push('(tenant IS NULL OR tenant = ?)');
    params.push(q.tenant);
  }
  if (q.state !== undefined) {
    where.push('state = ?');
    params.push(q.state);
  }
  if (q.target !== undefined) {
    where.push('target = ?');
    params.push(q.target);
  }
  if (q.action !== undefined) {
    where.push('action = ?');
    params.push(q.action);
  }
  if (q.expired !== undefined) {
    where.push(
      q.expired.is
        ? "(state = 'expired' OR (state = 'pending' AND expires_at <= ?))"
        : "state = 'pending' AND expires_at > ?",
    );
    params.push(q.expired.now);
  }
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', params };
}

/** Reads a request and writes what `fn` decides (the new record, audit records) in one transaction. */
export function updateApproval<T>(
  ctx: ApprovalsContext,
  id: string,
  fn: (a: ApprovalRecord | null) => ApprovalUpdate<T>,
): Promise<T> {
  return ctx.tx(() => {
    const u = fn(getApproval(ctx, id));
    if (u.next !== null) write(ctx.db, u.next, false);
    ctx.audit(u.audit);
    return u.result;
  });
}
