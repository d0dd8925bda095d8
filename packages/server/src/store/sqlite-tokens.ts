/**
 * API tokens on SQLite, run by `SqliteStore` on its connection, inside its group-commit
 * transactions and its audit chain. Schema version 7 gave tokens a lifecycle: an expiry, and
 * who revoked them and why (`revoked_at` existed from version 1, never set until then). A
 * nullable `launcher` column (added the same way, on open) binds an agent token an operator had
 * minted for one launcher to that launcher's id; older rows are bound to none. A nullable
 * `minted_by` column (added the same way) names the token that minted it, revoked with it.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { AuditEvent } from '../audit/chain.ts';
import { newTokenRecord, toToken, type TokenRow } from './rows.ts';
import type { NewToken, TokenQuery, TokenRecord } from './store.ts';

/** What the token functions need from the store: its connection, transactions and audit chain. */
export interface TokensContext {
  db: DatabaseSync;
  tx<T>(fn: () => T): Promise<T>;
  audit(events: AuditEvent[]): void;
}

/** Adds the version-7 columns and `launcher` to a tokens table that lacks them; old rows never expire, are not revoked and are bound to no launcher. */
export function migrateTokens(db: DatabaseSync): void {
  const cols = new Set(
    (db.prepare('PRAGMA table_info(tokens)').all() as { name: string }[]).map((c) => c.name),
  );
  if (!cols.has('expires_at')) db.exec('ALTER TABLE tokens ADD COLUMN expires_at TEXT');
  if (!cols.has('revoked_by')) db.exec('ALTER TABLE tokens ADD COLUMN revoked_by TEXT');
  if (!cols.has('revoke_reason')) db.exec('ALTER TABLE tokens ADD COLUMN revoke_reason TEXT');
  if (!cols.has('launcher')) db.exec('ALTER TABLE tokens ADD COLUMN launcher TEXT');
  if (!cols.has('minted_by')) db.exec('ALTER TABLE tokens ADD COLUMN minted_by TEXT');
}

const COLUMNS =
  'id, name, role, tenant, agent, created_at, revoked_at, expires_at, revoked_by, revoke_reason, launcher, minted_by';

function revokeRow(db: DatabaseSync, id: string, by: string, reason: string, at: string): TokenRecord | null {
  const row = db
    .prepare(
      `UPDATE tokens SET revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL RETURNING ${COLUMNS}`,
    )
    .get(at, by, reason, id) as TokenRow | undefined;
  return row ? toToken(row) : null;
}

/** Stores a token (and, for a rotation, revokes the one it replaces) with its audit records, in one transaction. */
export function createToken(
  ctx: TokensContext,
  t: NewToken,
  secretHash: string,
  audit: AuditEvent[],
  revoke?: { id: string; by: string; reason: string },
): Promise<TokenRecord> {
  return ctx.tx(() => {
    const createdAt = new Date().toISOString();
    ctx.db
      .prepare(
        'INSERT INTO tokens (id, secret_hash, name, role, tenant, agent, created_at, expires_at, launcher, minted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        t.id,
        secretHash,
        t.name,
        t.role,
        t.tenant,
        t.agent,
        createdAt,
        t.expiresAt ?? null,
        t.launcher ?? null,
        t.mintedBy ?? null,
      );
    if (revoke !== undefined) revokeRow(ctx.db, revoke.id, revoke.by, revoke.reason, createdAt);
    ctx.audit(audit);
    return newTokenRecord(t, createdAt);
  });
}

/** The token whose secret hashes to `secretHash`, revoked and expired ones included; null when none. */
export function findToken(ctx: TokensContext, secretHash: string): TokenRecord | null {
  const r = ctx.db.prepare(`SELECT ${COLUMNS} FROM tokens WHERE secret_hash = ?`).get(secretHash) as
    TokenRow | undefined;
  return r ? toToken(r) : null;
}

/** One token by id; null when unknown. */
export function getToken(ctx: TokensContext, id: string): TokenRecord | null {
  const r = ctx.db.prepare(`SELECT ${COLUMNS} FROM tokens WHERE id = ?`).get(id) as TokenRow | undefined;
  return r ? toToken(r) : null;
}

/** Tokens, oldest first; of one tenant when `q.tenant` is set. */
export function listTokens(ctx: TokensContext, q: TokenQuery): TokenRecord[] {
  const rows = (q.tenant === undefined
    ? ctx.db.prepare(`SELECT ${COLUMNS} FROM tokens ORDER BY created_at, id`).all()
    : ctx.db
        .prepare(`SELECT ${COLUMNS} FROM tokens WHERE tenant = ? ORDER BY created_at, id`)
        .all(q.tenant)) as unknown as TokenRow[];
  return rows.map(toToken);
}

/** Revokes an unrevoked token with its audit records; null (nothing written) when unknown or already revoked. */
export function revokeToken(
  ctx: TokensContext,
  id: string,
  by: string,
  reason: string,
  audit: (t: TokenRecord) => AuditEvent[],
): Promise<TokenRecord | null> {
  return ctx.tx(() => {
    const t = revokeRow(ctx.db, id, by, reason, new Date().toISOString());
    if (t !== null) ctx.audit(audit(t));
    return t;
  });
}
