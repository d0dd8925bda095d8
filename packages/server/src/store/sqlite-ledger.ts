import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { KillpathError, type LedgerEntry } from '@killpath/protocol';
import type {
  CompensationEntry,
  JournalRow,
  LedgerSummary,
  Page,
  PermittedEffect,
  RunRecord,
} from './store.ts';
import {
  ledgerSummary,
  toCompensation,
  toJournal,
  toLedger,
  toPermitted,
  toRun,
  type JournalDbRow,
  type PermitRow,
  type RunRow,
} from './sqlite-rows.ts';

/**
 * Read queries of the effect ledger for the operator's lists: a run and its descendants, and
 * every list paged newest first with its total and an opaque cursor (keyset, so a page stays
 * right while new rows land). Nothing here writes; the rules of what a directive covers live in
 * `protocol`, these queries only narrow the rows a caller then checks.
 */

/** Encodes a keyset position as an opaque cursor. */
export function encodeCursor(key: (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/**
 * Decodes a cursor this server gave; `shape` is the type of each key part.
 * @throws KillpathError `invalid_request` for anything else
 */
export function decodeCursor(cursor: string, shape: ('string' | 'number')[]): (string | number)[] {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = null;
  }
  if (
    !Array.isArray(key) ||
    key.length !== shape.length ||
    !key.every((k, i) => typeof k === shape[i] && (typeof k !== 'string' || k.length <= 256))
  )
    throw new KillpathError('invalid_request', 'cursor is not one this list gave (start again without it)');
  return key as (string | number)[];
}

/** `?, ?, ?` for `n` parameters. */
const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/** See {@link Store.runFamily}. */
export function runFamily(db: DatabaseSync, tenant: string, runId: string): RunRecord[] {
  const rows = db
    .prepare(
      `SELECT * FROM runs WHERE tenant = ? AND (run_id = ? OR EXISTS (SELECT 1 FROM json_each(runs.lineage) WHERE value = ?))
       ORDER BY run_id = ? DESC, started_at, run_id`,
    )
    .all(tenant, runId, runId, runId) as unknown as RunRow[];
  return rows.map(toRun);
}

/** See {@link Store.effectsPage}. */
export function effectsPage(
  db: DatabaseSync,
  q: { tenant: string; runIds: string[]; limit: number; cursor: string | null },
): Page<LedgerEntry> & { summary: LedgerSummary } {
  const base = `tenant = ? AND run_id IN (${marks(q.runIds.length)})`;
  const params: SQLInputValue[] = [q.tenant, ...q.runIds];
  const counts = db
    .prepare(`SELECT status, COUNT(*) AS n FROM permits WHERE ${base} GROUP BY status`)
    .all(...params) as { status: string; n: number }[];
  const summary = ledgerSummary(counts);
  const after = q.cursor === null ? null : decodeCursor(q.cursor, ['string', 'string']);
  // The sort keeps only the keys (not whole rows, with their results) and the page is read after.
  const rows = db
    .prepare(
      `SELECT p.* FROM (SELECT id FROM permits WHERE ${base}${after ? ' AND (intended_at, id) < (?, ?)' : ''}
         ORDER BY intended_at DESC, id DESC LIMIT ?) k
       JOIN permits p ON p.id = k.id ORDER BY p.intended_at DESC, p.id DESC`,
    )
    .all(...params, ...(after ?? []), q.limit + 1) as unknown as PermitRow[];
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  const last = page.at(-1);
  return {
    items: page.map(toLedger),
    total: summary.intended,
    cursor: more && last ? encodeCursor([last.intended_at, last.id]) : null,
    summary,
  };
}

/** See {@link Store.eventsPage}. */
export function eventsPage(
  db: DatabaseSync,
  q: { tenant: string; runIds: string[]; limit: number; cursor: string | null },
): Page<JournalRow> {
  const base = `tenant = ? AND run_id IN (${marks(q.runIds.length)})`;
  const params: SQLInputValue[] = [q.tenant, ...q.runIds];
  const total = (
    db.prepare(`SELECT COUNT(*) AS n FROM journal WHERE ${base}`).get(...params) as { n: number }
  ).n;
  const before = q.cursor === null ? null : decodeCursor(q.cursor, ['number']);
  const rows = db
    .prepare(`SELECT * FROM journal WHERE ${base}${before ? ' AND seq < ?' : ''} ORDER BY seq DESC LIMIT ?`)
    .all(...params, ...(before ?? []), q.limit + 1) as unknown as JournalDbRow[];
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  return {
    items: page.map(toJournal),
    total,
    cursor: more && page.length > 0 ? encodeCursor([page.at(-1)!.seq]) : null,
  };
}

/** See {@link Store.compensationsPage}. */
export function compensationsPage(
  db: DatabaseSync,
  q: { tenant?: string; runIds?: string[]; limit: number; cursor: string | null },
): Page<CompensationEntry> {
  // In doubt: the process ended mid-write, so the write may have landed; it is listed to check.
  const where = [`p.status IN ('landed', 'in_doubt')`, 'p.compensate IS NOT NULL'];
  const params: SQLInputValue[] = [];
  if (q.tenant !== undefined) {
    where.push('p.tenant = ?');
    params.push(q.tenant);
  }
  if (q.runIds !== undefined) {
    where.push(`p.run_id IN (${marks(q.runIds.length)})`);
    params.push(...q.runIds);
  }
  const from = `FROM permits p
       JOIN (SELECT tenant, run_id, MIN(at) AS at, MIN(directive_id) AS directive_id FROM halted_runs GROUP BY tenant, run_id) h
         ON h.tenant = p.tenant AND h.run_id = p.run_id
       WHERE ${where.join(' AND ')}`;
  const total = (db.prepare(`SELECT COUNT(*) AS n ${from}`).get(...params) as { n: number }).n;
  const after = q.cursor === null ? null : decodeCursor(q.cursor, ['string', 'string']);
  const rows = db
    .prepare(
      `SELECT p.*, k.halted_by, k.halted_at FROM (SELECT p.id AS id, h.directive_id AS halted_by, h.at AS halted_at ${from}
         ${after ? 'AND (p.intended_at, p.id) < (?, ?)' : ''} ORDER BY p.intended_at DESC, p.id DESC LIMIT ?) k
       JOIN permits p ON p.id = k.id ORDER BY p.intended_at DESC, p.id DESC`,
    )
    .all(...params, ...(after ?? []), q.limit + 1) as unknown as (PermitRow & {
    halted_by: string;
    halted_at: string;
  })[];
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  const last = page.at(-1);
  return {
    items: page.map(toCompensation),
    total,
    cursor: more && last ? encodeCursor([last.intended_at, last.id]) : null,
  };
}

/** See {@link Store.permittedFrom}. */
export function permittedFrom(
  db: DatabaseSync,
  q: {
    fromRev: number;
    toRev: number | null;
    tenant?: string;
    agent?: string;
    runIds?: string[];
    capabilities?: readonly string[];
  },
): PermittedEffect[] {
  // Every write granted (or, after its cool-off, confirmed) at or after fromRev: its rev is the
  // switchboard's at the grant, inside the grant's transaction.
  const where = ['rev >= ?'];
  const params: SQLInputValue[] = [q.fromRev];
  if (q.toRev !== null) {
    where.push('rev < ?');
    params.push(q.toRev);
  }
  if (q.tenant !== undefined) {
    where.push('tenant = ?');
    params.push(q.tenant);
  }
  if (q.agent !== undefined) {
    where.push('agent = ?');
    params.push(q.agent);
  }
  if (q.runIds !== undefined) {
    where.push(`run_id IN (${marks(q.runIds.length)})`);
    params.push(...q.runIds);
  }
  if (q.capabilities !== undefined) {
    where.push(`capability IN (${marks(q.capabilities.length)})`);
    params.push(...q.capabilities);
  }
  const rows = db
    .prepare(`SELECT * FROM permits WHERE ${where.join(' AND ')} ORDER BY rev, intended_at, id`)
    .all(...params) as unknown as PermitRow[];
  return rows.map(toPermitted);
}
