/**
 * The operator's ledger lists on PostgreSQL ({@link PermitStore}'s reads): a run's effects and
 * journal paged newest first, the compensation list, and the writes permitted from a rev. The
 * same rows, orders, totals and cursors as SQLite (`sqlite-ledger.ts`: keyset paging, so a page
 * stays right while new rows land; its cursor functions are shared). Nothing here writes; what a
 * directive covers is decided by the caller with `protocol`'s rule.
 */
import type { LedgerEntry } from '@killpath/protocol';
import { decodeCursor, encodeCursor } from '../sqlite-ledger.ts';
import {
  ledgerSummary,
  toCompensation,
  toJournal,
  toLedger,
  toPermitted,
  type JournalDbRow,
} from '../sqlite-rows.ts';
import type {
  CompensationEntry,
  JournalRow,
  LedgerSummary,
  Page,
  PermittedEffect,
  PermitStore,
} from '../store.ts';
import type { Sql } from './connect.ts';
import type { PermitRow } from '../sqlite-rows.ts';

type PermitPage = Parameters<PermitStore['effectsPage']>[0];
type CompensationQuery = Parameters<PermitStore['compensationsPage']>[0];
type PermittedQuery = Parameters<PermitStore['permittedFrom']>[0];
type Row = PgPermitRow;

/** A `permits` row as postgres.js returns it (bigint columns arrive as text). */
export type PgPermitRow = Omit<PermitRow, 'rev' | 'cool_off_ms'> & {
  rev: string | number;
  cool_off_ms: string | number;
};

/** A `permits` row in the shape both backends map (numbers as numbers). */
export function permitRow(r: PgPermitRow): PermitRow {
  return {
    id: r.id,
    rev: Number(r.rev),
    run_id: r.run_id,
    tenant: r.tenant,
    agent: r.agent,
    worker_id: r.worker_id,
    capability: r.capability,
    class: r.class,
    idempotency_key: r.idempotency_key,
    args_digest: r.args_digest,
    compensate: r.compensate,
    status: r.status,
    cool_off_ms: Number(r.cool_off_ms),
    confirm_after: r.confirm_after,
    lineage: r.lineage,
    features: r.features,
    release: r.release,
    result: r.result,
    error: r.error,
    after_abort: Number(r.after_abort),
    intended_at: r.intended_at,
    settled_at: r.settled_at,
  };
}

/** See {@link PermitStore.effectsPage}. */
export async function effectsPage(
  sql: Sql,
  q: PermitPage,
): Promise<Page<LedgerEntry> & { summary: LedgerSummary }> {
  const base = () => sql`tenant = ${q.tenant} AND run_id = ANY(${q.runIds}::text[])`;
  const after = q.cursor === null ? null : decodeCursor(q.cursor, ['string', 'string']);
  const [counts, rows] = await Promise.all([
    sql<
      { status: string; n: string }[]
    >`SELECT status, COUNT(*) AS n FROM permits WHERE ${base()} GROUP BY status`,
    // The sort keeps only the keys (not whole rows, with their results) and the page is read after.
    sql<Row[]>`
      SELECT p.* FROM (SELECT id FROM permits WHERE ${base()}
          ${after ? sql`AND (intended_at, id) < (${after[0] as string}, ${after[1] as string})` : sql``}
          ORDER BY intended_at DESC, id DESC LIMIT ${q.limit + 1}) k
        JOIN permits p ON p.id = k.id ORDER BY p.intended_at DESC, p.id DESC`,
  ]);
  const summary = ledgerSummary(counts);
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit).map(permitRow);
  const last = page.at(-1);
  return {
    items: page.map(toLedger),
    total: summary.intended,
    cursor: more && last ? encodeCursor([last.intended_at, last.id]) : null,
    summary,
  };
}

/** See {@link PermitStore.eventsPage}. */
export async function eventsPage(sql: Sql, q: PermitPage): Promise<Page<JournalRow>> {
  const base = () => sql`tenant = ${q.tenant} AND run_id = ANY(${q.runIds}::text[])`;
  const before = q.cursor === null ? null : decodeCursor(q.cursor, ['number']);
  const [[count], rows] = await Promise.all([
    sql<{ n: string }[]>`SELECT COUNT(*) AS n FROM journal WHERE ${base()}`,
    sql<(Omit<JournalDbRow, 'seq'> & { seq: string })[]>`
      SELECT * FROM journal WHERE ${base()} ${before ? sql`AND seq < ${before[0] as number}` : sql``}
      ORDER BY seq DESC LIMIT ${q.limit + 1}`,
  ]);
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit).map((r) => ({ ...r, seq: Number(r.seq) }));
  return {
    items: page.map(toJournal),
    total: Number(count!.n),
    cursor: more && page.length > 0 ? encodeCursor([page.at(-1)!.seq]) : null,
  };
}

/** See {@link PermitStore.compensationsPage}. */
export async function compensationsPage(sql: Sql, q: CompensationQuery): Promise<Page<CompensationEntry>> {
  // In doubt: the process ended mid-write, so the write may have landed; it is listed to check.
  const from = () => sql`FROM permits p
    JOIN (SELECT tenant, run_id, MIN(at) AS at, MIN(directive_id) AS directive_id FROM halted_runs
          GROUP BY tenant, run_id) h
      ON h.tenant = p.tenant AND h.run_id = p.run_id
    WHERE p.status IN ('landed', 'in_doubt') AND p.compensate IS NOT NULL
      ${q.tenant !== undefined ? sql`AND p.tenant = ${q.tenant}` : sql``}
      ${q.runIds !== undefined ? sql`AND p.run_id = ANY(${q.runIds}::text[])` : sql``}`;
  const after = q.cursor === null ? null : decodeCursor(q.cursor, ['string', 'string']);
  const [[count], rows] = await Promise.all([
    sql<{ n: string }[]>`SELECT COUNT(*) AS n ${from()}`,
    sql<(Row & { halted_by: string; halted_at: string })[]>`
      SELECT p.*, k.halted_by, k.halted_at FROM (
          SELECT p.id AS id, h.directive_id AS halted_by, h.at AS halted_at ${from()}
          ${after ? sql`AND (p.intended_at, p.id) < (${after[0] as string}, ${after[1] as string})` : sql``}
          ORDER BY p.intended_at DESC, p.id DESC LIMIT ${q.limit + 1}) k
        JOIN permits p ON p.id = k.id ORDER BY p.intended_at DESC, p.id DESC`,
  ]);
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  const last = page.at(-1);
  return {
    items: page.map((r) =>
      toCompensation({ ...permitRow(r), halted_by: r.halted_by, halted_at: r.halted_at }),
    ),
    total: Number(count!.n),
    cursor: more && last ? encodeCursor([last.intended_at, last.id]) : null,
  };
}

/** See {@link PermitStore.permittedFrom}. */
export async function permittedFrom(sql: Sql, q: PermittedQuery): Promise<PermittedEffect[]> {
  // Every write granted (or, after its cool-off, confirmed) at or after fromRev: its rev is the
  // switchboard's at the grant, read under the rev lock in the grant's transaction.
  const rows = await sql<Row[]>`
    SELECT * FROM permits WHERE rev >= ${q.fromRev}
      ${q.toRev !== null ? sql`AND rev < ${q.toRev}` : sql``}
      ${q.tenant !== undefined ? sql`AND tenant = ${q.tenant}` : sql``}
      ${q.agent !== undefined ? sql`AND agent = ${q.agent}` : sql``}
      ${q.runIds !== undefined ? sql`AND run_id = ANY(${q.runIds}::text[])` : sql``}
      ${q.capabilities !== undefined ? sql`AND capability = ANY(${[...q.capabilities]}::text[])` : sql``}
    ORDER BY rev, intended_at, id`;
  return rows.map(permitRow).map(toPermitted);
}
