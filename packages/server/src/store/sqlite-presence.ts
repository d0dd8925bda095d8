import type { DatabaseSync } from 'node:sqlite';
import { toHaltAck, toPresenceRow, type HaltAckRow, type PresenceDbRow } from './rows.ts';
import { KillpathError } from '@killpath/protocol';
import type { HaltAck, Lease, LeaseFence, PresenceRow } from './store.ts';

/**
 * Schema version 13: fleet state every replica sees (workers' presence, stamped with a presence
 * version so readers take changes in order; acknowledgements of stops) and named leases with a
 * fencing epoch. All three start empty on an older database: workers republish their presence at
 * their next heartbeat, acknowledgements of directives active at the upgrade are still read from
 * the audit log (`session.halted`), and the first replica to ask takes each lease at epoch 1.
 */
export const PRESENCE_SCHEMA = `
INSERT OR IGNORE INTO meta (key, value) VALUES ('presence_version', '0');
CREATE TABLE IF NOT EXISTS presence (
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  replica TEXT NOT NULL,
  version INTEGER NOT NULL,
  written_at INTEGER NOT NULL,
  removed INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  PRIMARY KEY (tenant, agent, worker_id)
);
CREATE INDEX IF NOT EXISTS presence_version ON presence (version);
CREATE TABLE IF NOT EXISTS halt_acks (
  directive_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  rev INTEGER NOT NULL,
  runs TEXT NOT NULL,
  at TEXT NOT NULL,
  replica TEXT NOT NULL,
  withdrawn_at TEXT,
  PRIMARY KEY (directive_id, tenant, agent, worker_id)
);
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
`;

/** What the presence functions need from the store: its connection and its write transactions. */
export interface PresenceContext {
  db: DatabaseSync;
  tx<T>(fn: () => T): Promise<T>;
}

/** See {@link PresenceStore.putPresence}. */
export function putPresence(ctx: PresenceContext, rows: PresenceRow[], now: number): Promise<number> {
  return ctx.tx(() => {
    const v = ctx.db
      .prepare(
        `UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'presence_version' RETURNING value`,
      )
      .get() as { value: string };
    const version = Number(v.value);
    const upsert = ctx.db.prepare(
      `INSERT INTO presence (tenant, agent, worker_id, replica, version, written_at, removed, state)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, agent, worker_id) DO UPDATE SET replica = excluded.replica,
         version = excluded.version, written_at = excluded.written_at, removed = excluded.removed,
         state = excluded.state`,
    );
    for (const r of rows) {
      const { tenant, agent, workerId, replica, removed, ...state } = r;
      upsert.run(tenant, agent, workerId, replica, version, now, removed ? 1 : 0, JSON.stringify(state));
    }
    return version;
  });
}

/** See {@link PresenceStore.presenceSince}. */
export function presenceSince(
  ctx: PresenceContext,
  version: number,
  limit: number,
  exceptReplica?: string,
): { rows: PresenceRow[]; version: number } {
  // The latest version first, then the rows up to it: every row of a version at or below it was
  // committed with it (a write takes its version and writes its rows in one transaction).
  const head =
    exceptReplica === undefined
      ? null
      : Number(
          (
            ctx.db.prepare(`SELECT value FROM meta WHERE key = 'presence_version'`).get() as
              { value: string } | undefined
          )?.value ?? 0,
        );
  const found = (head === null
    ? ctx.db
        .prepare(
          `SELECT * FROM presence WHERE version > ? ORDER BY version, tenant, agent, worker_id LIMIT ?`,
        )
        .all(version, limit)
    : ctx.db
        .prepare(
          `SELECT * FROM presence WHERE version > ? AND version <= ? AND replica <> ?
             ORDER BY version, tenant, agent, worker_id LIMIT ?`,
        )
        .all(version, head, exceptReplica!, limit)) as unknown as PresenceDbRow[];
  let last = version;
  const rows = found.map((r) => {
    last = Math.max(last, Number(r.version));
    return toPresenceRow(r);
  });
  // A page must not end inside a version: the next read starts after it.
  if (found.length === limit && found.length > 0) {
    const tail = ctx.db
      .prepare(`SELECT * FROM presence WHERE version = ? ORDER BY tenant, agent, worker_id`)
      .all(last) as unknown as PresenceDbRow[];
    const seen = new Set(rows.map((r) => `${r.tenant}\u0000${r.agent}\u0000${r.workerId}`));
    for (const r of tail)
      if (r.replica !== exceptReplica && !seen.has(`${r.tenant}\u0000${r.agent}\u0000${r.worker_id}`))
        rows.push(toPresenceRow(r));
  } else if (head !== null) last = Math.max(last, head);
  return { rows, version: last };
}

/** See {@link PresenceStore.purgePresence}. */
export function purgePresence(ctx: PresenceContext, before: number): Promise<number> {
  return ctx.tx(() => {
    const r = ctx.db.prepare(`DELETE FROM presence WHERE removed = 1 AND written_at < ?`).run(before);
    return Number(r.changes);
  });
}

/** See {@link PresenceStore.recordAcks}. */
export function recordAcks(ctx: PresenceContext, acks: HaltAck[]): Promise<void> {
  if (acks.length === 0) return Promise.resolve();
  return ctx.tx(() => {
    // A withdrawal stays: an acknowledgement taken before it does not count (see acksOf).
    const put = ctx.db.prepare(
      `INSERT INTO halt_acks (directive_id, tenant, agent, worker_id, rev, runs, at, replica)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (directive_id, tenant, agent, worker_id) DO UPDATE SET rev = excluded.rev,
         runs = excluded.runs, at = excluded.at, replica = excluded.replica`,
    );
    for (const a of acks)
      put.run(a.directiveId, a.tenant, a.agent, a.workerId, a.rev, JSON.stringify(a.runs), a.at, a.replica);
  });
}

/** See {@link PresenceStore.retractAck}. */
export function retractAck(
  ctx: PresenceContext,
  directiveId: string,
  w: { tenant: string; agent: string; workerId: string },
  at: string,
): Promise<boolean> {
  return ctx.tx(() => {
    const counted = ctx.db
      .prepare(
        `SELECT 1 FROM halt_acks WHERE directive_id = ? AND tenant = ? AND agent = ? AND worker_id = ?
           AND ${COUNTS}`,
      )
      .get(directiveId, w.tenant, w.agent, w.workerId);
    // The row stays as the withdrawal (an acknowledgement written later, taken before it, loses).
    ctx.db
      .prepare(
        `INSERT INTO halt_acks (directive_id, tenant, agent, worker_id, rev, runs, at, replica, withdrawn_at)
         VALUES (?, ?, ?, ?, 0, '[]', '', '', ?)
         ON CONFLICT (directive_id, tenant, agent, worker_id)
           DO UPDATE SET withdrawn_at = MAX(COALESCE(withdrawn_at, ''), excluded.withdrawn_at)`,
      )
      .run(directiveId, w.tenant, w.agent, w.workerId, at);
    return counted !== undefined;
  });
}

/** An acknowledgement counts unless withdrawn at or after it was taken (ISO 8601 instants compare as text). */
const COUNTS = '(withdrawn_at IS NULL OR at > withdrawn_at)';

/** See {@link PresenceStore.acksOf}. */
export function acksOf(ctx: PresenceContext, directiveId: string): HaltAck[] {
  const rows = ctx.db
    .prepare(`SELECT * FROM halt_acks WHERE directive_id = ? AND ${COUNTS} ORDER BY tenant, agent, worker_id`)
    .all(directiveId) as unknown as HaltAckRow[];
  return rows.map(toHaltAck);
}

/** See {@link PresenceStore.revCommittedAt}: an issue's `issued_at` or a clear's `cleared_at`, both stamped in the commit's transaction. */
export function revCommittedAt(ctx: PresenceContext, rev: number): string | null {
  const r = ctx.db
    .prepare(
      `SELECT issued_at AS at FROM directives WHERE rev = ?
       UNION ALL SELECT cleared_at AS at FROM directives WHERE cleared_rev = ? AND cleared_at IS NOT NULL LIMIT 1`,
    )
    .get(rev, rev) as { at: string } | undefined;
  return r?.at ?? null;
}

interface LeaseRow {
  name: string;
  holder: string;
  epoch: number;
  expires_at: number;
}

function toLease(r: LeaseRow): Lease {
  return { name: r.name, holder: r.holder, epoch: Number(r.epoch), expiresAt: Number(r.expires_at) };
}

/** See {@link LeaseStore.acquireLease}. */
export function acquireLease(
  ctx: PresenceContext,
  name: string,
  holder: string,
  ttlMs: number,
  now: number,
): Promise<Lease> {
  return ctx.tx(() => {
    const cur = ctx.db.prepare(`SELECT * FROM leases WHERE name = ?`).get(name) as LeaseRow | undefined;
    if (cur === undefined) {
      ctx.db
        .prepare(`INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?)`)
        .run(name, holder, now + ttlMs);
    } else if (cur.holder === holder) {
      ctx.db.prepare(`UPDATE leases SET expires_at = ? WHERE name = ?`).run(now + ttlMs, name);
    } else if (Number(cur.expires_at) <= now) {
      ctx.db
        .prepare(`UPDATE leases SET holder = ?, epoch = epoch + 1, expires_at = ? WHERE name = ?`)
        .run(holder, now + ttlMs, name);
    }
    return toLease(ctx.db.prepare(`SELECT * FROM leases WHERE name = ?`).get(name) as unknown as LeaseRow);
  });
}

/** See {@link LeaseStore.releaseLease}. */
export function releaseLease(ctx: PresenceContext, name: string, holder: string): Promise<boolean> {
  return ctx.tx(() => {
    const r = ctx.db
      .prepare(`UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND expires_at > 0`)
      .run(name, holder);
    return Number(r.changes) > 0;
  });
}

/** See {@link LeaseStore.getLease}. */
export function getLease(ctx: PresenceContext, name: string): Lease | null {
  const r = ctx.db.prepare(`SELECT * FROM leases WHERE name = ?`).get(name) as LeaseRow | undefined;
  return r ? toLease(r) : null;
}

/**
 * Inside the caller's transaction: refuses (`conflict`) a fenced write whose lease has passed to
 * another holder or epoch since the writer acquired it (see {@link DirectiveInput.fence}).
 */
export function checkFence(db: DatabaseSync, fence: LeaseFence): void {
  const r = db.prepare(`SELECT * FROM leases WHERE name = ?`).get(fence.lease) as LeaseRow | undefined;
  if (r === undefined || r.holder !== fence.holder || Number(r.epoch) !== fence.epoch)
    throw new KillpathError(
      'conflict',
      `lease ${fence.lease} is no longer held by ${fence.holder} at epoch ${fence.epoch} (now ${r ? `${r.holder} at epoch ${r.epoch}` : 'nobody'}): a deposed holder's write is refused`,
    );
}
