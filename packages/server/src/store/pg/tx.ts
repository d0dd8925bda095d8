/**
 * The transactional helpers every PostgreSQL concept module shares: the one switchboard revision
 * and the one audit chain, both kept by a single row each so that every replica on the database
 * orders its commits on the same two locks.
 *
 * Lock order (never take them the other way round, so transactions never deadlock):
 *
 * 1. the rev (`lockRev` / `bumpRev`: the row FOR UPDATE, and `bumpRev`'s UPDATE takes the table
 *    ROW EXCLUSIVE; `shareRev`: the table in SHARE mode, for permits), as the transaction's first
 *    statement when it needs it at all;
 * 2. the concept's own rows (an approval, a token, …);
 * 3. the audit head (`appendAudit`), always last, just before COMMIT, so it is held for the
 *    shortest time (every audited transaction of every replica queues on it).
 */
import type { AuditRecord } from '@killpath/protocol';
import { GENESIS_HASH, chainRecord, type AuditEvent } from '../../audit/chain.ts';
import type { Sql, Tx } from './connect.ts';

/** The channel a directive commit notifies with its rev (payload: the rev as decimal text). */
export const REV_CHANNEL = 'killpath_rev';

/** DDL of the two single-row tables the helpers lock (part of schema migration 1). */
export const TX_DDL: readonly string[] = [
  `CREATE TABLE rev (
    id smallint PRIMARY KEY CHECK (id = 1),
    rev bigint NOT NULL
  )`,
  `INSERT INTO rev (id, rev) VALUES (1, 0)`,
  `CREATE TABLE audit_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL
  )`,
  `INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}')`,
];

/** The current rev, without locking (a reader's view: what has committed). */
export async function readRev(sql: Sql | Tx): Promise<number> {
  const [r] = await sql<{ rev: string }[]>`SELECT rev FROM rev WHERE id = 1`;
  return Number(r!.rev);
}

/**
 * Locks the rev row FOR UPDATE without moving it, and returns the rev: every later statement of
 * the transaction sees every directive committed before it (read committed takes a snapshot per
 * statement), and no other directive commits until this transaction ends. Call it first; a
 * directive transaction that decides whether anything changes (convergence) takes it before
 * reading, then calls {@link bumpRev} only when something does.
 */
export async function lockRev(tx: Tx): Promise<number> {
  const [r] = await tx<{ rev: string }[]>`SELECT rev FROM rev WHERE id = 1 FOR UPDATE`;
  return Number(r!.rev);
}

/**
 * Locks the rev table in SHARE mode and returns the rev: the permit side of guarantee 1. It waits
 * for a directive commit in progress (whose `bumpRev` UPDATE holds the table ROW EXCLUSIVE, which
 * conflicts with SHARE) and holds directive commits off until this transaction ends, so the
 * switchboard a permit is checked against is the committed one, on every replica. SHARE locks do
 * not conflict with each other, so permits of every replica run side by side. Call it first in
 * the transaction; the rev is read in a second statement, after the lock is granted.
 *
 * A table lock, not the row FOR SHARE: row locks let a stream of share lockers overtake a waiting
 * FOR UPDATE forever (a halt under permit load timed out waiting for the row in
 * `pg-effects.test.ts`), while table locks queue in order: a SHARE request waits behind a
 * directive commit already waiting, so a halt commits within one permit transaction's length.
 */
export async function shareRev(tx: Tx): Promise<number> {
  const [, [r]] = await Promise.all([
    tx`LOCK TABLE rev IN SHARE MODE`,
    tx<{ rev: string }[]>`SELECT rev FROM rev WHERE id = 1`,
  ]);
  return Number(r!.rev);
}

/**
 * Moves the switchboard to its next rev inside the caller's transaction and returns it: one
 * counter row, `rev + 1`, so revs are gapless and in commit order across every replica (a
 * sequence is neither: it skips on rollback and hands out numbers in call order, not commit
 * order). Also queues `NOTIFY killpath_rev, '<rev>'`, which PostgreSQL delivers to listeners on
 * commit only (a rolled-back bump notifies nobody). Call it only when the switchboard changes.
 */
export async function bumpRev(tx: Tx): Promise<number> {
  const [r] = await tx<{ rev: string }[]>`
    UPDATE rev SET rev = rev + 1 WHERE id = 1
    RETURNING rev, pg_notify(${REV_CHANNEL}, rev::text)::text AS notified`;
  return Number(r!.rev);
}

/**
 * Appends events to the one audit chain inside the caller's transaction and returns the records:
 * locks the chain head FOR UPDATE (appends of every replica serialise there), hashes each record
 * onto the previous one with `audit/chain.ts` (the same records and hashes as SQLite, so the same
 * verification code reads both), inserts them and moves the head in one statement. Record times
 * come from the database's clock, read when the head is locked, so the chain's `ts` follow its
 * order whichever replica appends. Appends nothing (and locks nothing) for no events. Call it last
 * in the transaction (see the lock order above).
 */
export async function appendAudit(tx: Tx, events: readonly AuditEvent[]): Promise<AuditRecord[]> {
  if (events.length === 0) return [];
  const [head] = await tx<{ seq: string; hash: string; ts: string }[]>`
    SELECT seq, hash, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts
    FROM audit_head WHERE id = 1 FOR UPDATE`;
  let prev: { seq: number; hash: string } | null =
    Number(head!.seq) === 0 ? null : { seq: Number(head!.seq), hash: head!.hash };
  const out: AuditRecord[] = [];
  for (const e of events) {
    const rec = chainRecord(prev, e, head!.ts);
    out.push(rec);
    prev = rec;
  }
  const rows = out.map((r) => ({
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    actor: r.actor,
    tenant: r.tenant,
    data: JSON.stringify(r.data),
    prev_hash: r.prevHash,
    hash: r.hash,
  }));
  const last = out.at(-1)!;
  await tx`
    WITH appended AS (
      INSERT INTO audit ${tx(rows, 'seq', 'ts', 'type', 'actor', 'tenant', 'data', 'prev_hash', 'hash')}
    )
    UPDATE audit_head SET seq = ${last.seq}, hash = ${last.hash} WHERE id = 1`;
  return out;
}
