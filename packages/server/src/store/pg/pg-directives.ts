/**
 * Directives and the switchboard rev on PostgreSQL. Every directive transaction locks the rev row
 * first (`tx.ts`), so issues and clears of every replica serialise there: convergence (the same
 * idempotency key, an identical active directive) is decided on the switchboard as committed, and
 * a rev is used only when the switchboard changes. Convergence itself is `store/convergence.ts`.
 */
import { randomUUID } from 'node:crypto';
import { formatScope, type Directive } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import { changesOf } from '../changes.ts';
import { convergedIssue } from '../convergence.ts';
import type {
  DirectiveInput,
  DirectiveQuery,
  DirectiveStore,
  IssueResult,
  SwitchboardChange,
} from '../store.ts';
import { toDirective, type DirectiveRow as StoredDirectiveRow } from '../rows.ts';
import type { Sql, Tx } from './connect.ts';
import { checkFence } from './pg-presence.ts';
import { appendAudit, bumpRev, lockRev, readRev } from './tx.ts';

/** One row of `directives` as postgres.js returns it: every column present. */
type DirectiveRow = StoredDirectiveRow & {
  idempotency_key: string | null;
  idempotency_digest: string | null;
  break_glass: string | null;
};

/** The active directives, in commit order, inside a transaction (for permits and resume checks). */
export async function activeDirectives(tx: Sql | Tx): Promise<Directive[]> {
  const rows = await tx<DirectiveRow[]>`SELECT * FROM directives WHERE cleared_rev IS NULL ORDER BY rev`;
  return rows.map(toDirective);
}

function isKeyConflict(err: unknown): boolean {
  const e = err as { code?: string; constraint_name?: string } | null;
  return e?.code === '23505' && e.constraint_name === 'directives_idempotency_key';
}

/** {@link DirectiveStore} on PostgreSQL. */
export class PgDirectives implements DirectiveStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  rev(): Promise<number> {
    return readRev(this.#sql);
  }

  async switchboard(): Promise<{ rev: number; directives: Directive[] }> {
    // One statement, one snapshot: the rev and the directives active at it.
    const rows = await this.#sql<(Partial<DirectiveRow> & { board_rev: string })[]>`
      SELECT r.rev AS board_rev, d.* FROM rev r
      LEFT JOIN directives d ON d.cleared_rev IS NULL
      WHERE r.id = 1 ORDER BY d.rev`;
    return {
      rev: Number(rows[0]!.board_rev),
      directives: rows.filter((r) => r.id != null).map((r) => toDirective(r as DirectiveRow)),
    };
  }

  async changesSince(rev: number, limit: number): Promise<SwitchboardChange[]> {
    const from = Math.floor(rev);
    const upTo = from + Math.max(0, Math.floor(limit));
    // One statement, one snapshot: the store's rev (capped) and the directives issued or cleared after `from`.
    const rows = await this.#sql<(Partial<DirectiveRow> & { upto: string })[]>`
      WITH r AS (SELECT LEAST(rev, ${upTo}::bigint) AS upto FROM rev WHERE id = 1)
      SELECT r.upto, d.* FROM r
      LEFT JOIN directives d
        ON (d.rev > ${from}::bigint AND d.rev <= r.upto)
        OR (d.cleared_rev > ${from}::bigint AND d.cleared_rev <= r.upto)
      ORDER BY d.rev`;
    const to = Number(rows[0]!.upto);
    if (to <= from) return [];
    const found = rows.filter((r) => r.id != null).map((r) => toDirective(r as DirectiveRow));
    const issued = found.filter((d) => d.rev > from && d.rev <= to);
    const cleared = found.filter((d) => d.clearedRev !== null && d.clearedRev > from && d.clearedRev <= to);
    return changesOf(from, to, issued, cleared);
  }

  async issueDirective(input: DirectiveInput, audit: (r: IssueResult) => AuditEvent[]): Promise<IssueResult> {
    try {
      return await this.#sql.begin((tx) => this.#issue(tx, input, audit));
    } catch (err) {
      // Issues serialise on the rev row, so a second insert of one key cannot happen here; the
      // unique index is the guarantee all the same, and a retry then converges on the key.
      if (!isKeyConflict(err)) throw err;
      return this.#sql.begin((tx) => this.#issue(tx, input, audit));
    }
  }

  /**
   * Issue and clear times (`issued_at`, `cleared_at`) come from the database's clock, read right
   * after the rev row is taken: they follow rev order whichever replica commits, and time-to-stop
   * is measured from them (`revCommittedAt`).
   */
  async #issue(tx: Tx, input: DirectiveInput, audit: (r: IssueResult) => AuditEvent[]): Promise<IssueResult> {
    // Pipelined: the reads start after the rev row is locked, so they see every committed directive.
    const [, , prior, activeRows] = await Promise.all([
      lockRev(tx),
      // Fenced work (an escalation step) commits only while its replica still holds the lease.
      input.fence ? checkFence(tx, input.fence) : undefined,
      input.idempotencyKey === null
        ? Promise.resolve([])
        : tx<DirectiveRow[]>`SELECT * FROM directives WHERE idempotency_key = ${input.idempotencyKey}`,
      tx<DirectiveRow[]>`SELECT * FROM directives WHERE cleared_rev IS NULL ORDER BY rev`,
    ]);
    const active = activeRows.map(toDirective);
    const priorRow = prior[0];
    let result = convergedIssue(
      input,
      priorRow ? { directive: toDirective(priorRow), keyDigest: priorRow.idempotency_digest } : null,
      active,
    );
    if (result === null) {
      const replaces = [...new Set(input.replaces?.(active) ?? [])].filter((id) =>
        active.some((d) => d.id === id),
      );
      // Pipelined after the bump: both statements read the new rev from the row this transaction holds.
      const [, inserted, cleared] = await Promise.all([
        bumpRev(tx),
        tx<DirectiveRow[]>`
          INSERT INTO directives (id, rev, level, scope, tenant, capabilities, rate, grace_ms, drain, memory,
            reason, justification, actor, idempotency_key, idempotency_digest, issued_at, escalation,
            escalated_from, releases, break_glass)
          VALUES (${`d_${randomUUID()}`}, (SELECT rev FROM rev WHERE id = 1), ${input.level},
            ${formatScope(input.scope)}, ${input.tenant},
            ${input.capabilities === null ? null : JSON.stringify([...input.capabilities].sort())},
            ${input.rate === null ? null : JSON.stringify(input.rate)}, ${input.graceMs}, ${input.drain},
            ${input.memory}, ${input.reason}, ${input.justification}, ${input.actor}, ${input.idempotencyKey},
            ${input.idempotencyDigest ?? null}, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), ${JSON.stringify(input.escalation)},
            ${input.escalatedFrom}, ${JSON.stringify(input.releases)},
            ${input.breakGlass ? JSON.stringify(input.breakGlass) : null})
          RETURNING *`,
        replaces.length === 0
          ? Promise.resolve([] as DirectiveRow[])
          : tx<DirectiveRow[]>`
              UPDATE directives SET cleared_at = to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), cleared_rev = (SELECT rev FROM rev WHERE id = 1)
              WHERE id = ANY(${replaces}::text[]) AND cleared_rev IS NULL
              RETURNING *`,
      ]);
      const replaced = cleared.map(toDirective).sort((a, b) => a.rev - b.rev);
      result = { directive: toDirective(inserted[0]!), created: true, converged: null, replaced };
    }
    await appendAudit(tx, audit(result));
    return result;
  }

  async clearDirective(id: string, audit: (d: Directive) => AuditEvent[]): Promise<Directive | null> {
    return this.#sql.begin(async (tx) => {
      const [, rows] = await Promise.all([
        lockRev(tx),
        tx<{ cleared_rev: string | null }[]>`SELECT cleared_rev FROM directives WHERE id = ${id}`,
      ]);
      if (rows.length === 0 || rows[0]!.cleared_rev !== null) return null;
      const [, cleared] = await Promise.all([
        bumpRev(tx),
        tx<DirectiveRow[]>`
          UPDATE directives SET cleared_at = to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), cleared_rev = (SELECT rev FROM rev WHERE id = 1)
          WHERE id = ${id} RETURNING *`,
      ]);
      const d = toDirective(cleared[0]!);
      await appendAudit(tx, audit(d));
      return d;
    });
  }

  async getDirective(id: string): Promise<Directive | null> {
    const rows = await this.#sql<DirectiveRow[]>`SELECT * FROM directives WHERE id = ${id}`;
    return rows[0] ? toDirective(rows[0]) : null;
  }

  async listDirectives(q: DirectiveQuery): Promise<Directive[]> {
    const rows = await this.#sql<DirectiveRow[]>`
      SELECT * FROM directives ${this.#where(q)} ORDER BY rev DESC LIMIT ${q.limit ?? 500}`;
    return rows.map(toDirective);
  }

  async countDirectives(q: Omit<DirectiveQuery, 'limit'>): Promise<number> {
    const [r] = await this.#sql<{ n: string }[]>`SELECT COUNT(*) AS n FROM directives ${this.#where(q)}`;
    return Number(r!.n);
  }

  async directiveSuccessors(id: string): Promise<Directive[]> {
    const rows = await this.#sql<
      DirectiveRow[]
    >`SELECT * FROM directives WHERE escalated_from = ${id} ORDER BY rev`;
    return rows.map(toDirective);
  }

  #where(q: Omit<DirectiveQuery, 'limit'>) {
    const sql = this.#sql;
    const active =
      q.active === true
        ? sql`cleared_rev IS NULL`
        : q.active === false
          ? sql`cleared_rev IS NOT NULL`
          : sql`TRUE`;
    const tenant = q.tenant === undefined ? sql`TRUE` : sql`(tenant IS NULL OR tenant = ${q.tenant})`;
    return sql`WHERE ${active} AND ${tenant}`;
  }
}
