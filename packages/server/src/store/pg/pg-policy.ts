/**
 * The supervisor's policy versions and approval requests on PostgreSQL. Versions number 1, 2, 3…
 * across replicas (appends take turns on a table lock); an approval's decision reads and writes its
 * row under a row lock, so concurrent approvals on any replicas serialise (the second sees the first's).
 */
import type { AuditEvent } from '../../audit/chain.ts';
import type { ApprovalQuery, ApprovalRecord, ApprovalUpdate, PolicyStore, PolicyVersion } from '../store.ts';
import { toApproval, toPolicy, toPolicyListing, type ApprovalRow, type PolicyRow } from '../rows.ts';
import type { Sql, Tx } from './connect.ts';
import { appendAudit } from './tx.ts';

function approvalRow(a: ApprovalRecord) {
  return {
    id: a.id,
    action: a.action,
    rule: a.rule,
    tenant: a.tenant,
    target: a.target,
    target_rev: a.targetRev,
    summary: a.summary,
    requested_by: a.requestedBy,
    requested_token: a.requestedToken,
    reason: a.reason,
    created_at: a.createdAt,
    expires_at: a.expiresAt,
    needed: a.needed,
    approver_role: a.approverRole,
    contact: a.contact,
    approvals: JSON.stringify(a.approvals),
    state: a.state,
    completed_at: a.completedAt,
    outcome: a.outcome,
    payload: a.payload === null ? null : JSON.stringify(a.payload),
  };
}

const APPROVAL_COLUMNS = [
  'id',
  'action',
  'rule',
  'tenant',
  'target',
  'target_rev',
  'summary',
  'requested_by',
  'requested_token',
  'reason',
  'created_at',
  'expires_at',
  'needed',
  'approver_role',
  'contact',
  'approvals',
  'state',
  'completed_at',
  'outcome',
  'payload',
] as const;

/** {@link PolicyStore} on PostgreSQL. */
export class PgPolicy implements PolicyStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  putPolicy(
    p: Omit<PolicyVersion, 'version' | 'createdAt'>,
    audit: (v: PolicyVersion) => AuditEvent[],
  ): Promise<PolicyVersion> {
    return this.#sql.begin(async (tx) => {
      // Versions are gapless and unique across replicas: appends take turns (readers are not held).
      await tx`LOCK TABLE policies IN EXCLUSIVE MODE`;
      const createdAt = new Date().toISOString();
      const [r] = await tx<{ version: string }[]>`
        INSERT INTO policies (version, source, digest, actor, comment, rollback_of, created_at)
        VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM policies), ${p.source}, ${p.digest}, ${p.actor},
          ${p.comment}, ${p.rollbackOf}, ${createdAt})
        RETURNING version`;
      const v: PolicyVersion = { ...p, version: Number(r!.version), createdAt };
      await appendAudit(tx, audit(v));
      return v;
    });
  }

  async getPolicy(version?: number): Promise<PolicyVersion | null> {
    const sql = this.#sql;
    const [r] =
      version === undefined
        ? await sql<PolicyRow[]>`SELECT * FROM policies ORDER BY version DESC LIMIT 1`
        : await sql<PolicyRow[]>`SELECT * FROM policies WHERE version = ${version}`;
    return r ? toPolicy(r) : null;
  }

  async listPolicies(limit: number): Promise<Omit<PolicyVersion, 'source'>[]> {
    const rows = await this.#sql<Omit<PolicyRow, 'source'>[]>`
      SELECT version, digest, actor, comment, rollback_of, created_at FROM policies ORDER BY version DESC LIMIT ${limit}`;
    return rows.map(toPolicyListing);
  }

  async countPolicies(): Promise<number> {
    const [r] = await this.#sql<{ n: string }[]>`SELECT COUNT(*) AS n FROM policies`;
    return Number(r!.n);
  }

  createApproval(a: ApprovalRecord, audit: (a: ApprovalRecord) => AuditEvent[]): Promise<ApprovalRecord> {
    return this.#sql.begin(async (tx) => {
      await tx`INSERT INTO approvals ${tx(approvalRow(a), ...APPROVAL_COLUMNS)}`;
      await appendAudit(tx, audit(a));
      return a;
    });
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    const [r] = await this.#sql<ApprovalRow[]>`SELECT * FROM approvals WHERE id = ${id}`;
    return r ? toApproval(r) : null;
  }

  async listApprovals(q: ApprovalQuery): Promise<ApprovalRecord[]> {
    const rows = await this.#sql<ApprovalRow[]>`
      SELECT * FROM approvals WHERE ${this.#filter(q)} ORDER BY created_at DESC, id DESC LIMIT ${q.limit}`;
    return rows.map(toApproval);
  }

  async countApprovals(q: Omit<ApprovalQuery, 'limit'>): Promise<number> {
    const [r] = await this.#sql<
      { n: string }[]
    >`SELECT COUNT(*) AS n FROM approvals WHERE ${this.#filter(q)}`;
    return Number(r!.n);
  }

  #filter(q: Omit<ApprovalQuery, 'limit'>) {
    const sql = this.#sql;
    const parts = [sql`TRUE`];
    if (q.tenant !== undefined) parts.push(sql`(tenant IS NULL OR tenant = ${q.tenant})`);
    if (q.state !== undefined) parts.push(sql`state = ${q.state}`);
    if (q.target !== undefined) parts.push(sql`target = ${q.target}`);
    if (q.action !== undefined) parts.push(sql`action = ${q.action}`);
    if (q.expired !== undefined)
      parts.push(
        q.expired.is
          ? sql`(state = 'expired' OR (state = 'pending' AND expires_at <= ${q.expired.now}))`
          : sql`(state = 'pending' AND expires_at > ${q.expired.now})`,
      );
    return parts.reduce((a, b) => sql`${a} AND ${b}`);
  }

  updateApproval<T>(id: string, fn: (a: ApprovalRecord | null) => ApprovalUpdate<T>): Promise<T> {
    return this.#sql.begin(async (tx: Tx) => {
      const [r] = await tx<ApprovalRow[]>`SELECT * FROM approvals WHERE id = ${id} FOR UPDATE`;
      const u = fn(r ? toApproval(r) : null);
      if (u.next !== null) {
        const { id: nextId, ...row } = approvalRow(u.next);
        await tx`UPDATE approvals SET ${tx(row, ...APPROVAL_COLUMNS.filter((c) => c !== 'id'))} WHERE id = ${nextId}`;
      }
      await appendAudit(tx, u.audit);
      return u.result;
    }) as Promise<T>;
  }
}
