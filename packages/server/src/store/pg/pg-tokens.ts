/** API tokens on PostgreSQL, by the SHA-256 of their secret (the secret itself is never stored). */
import type { AuditEvent } from '../../audit/chain.ts';
import type { NewToken, TokenQuery, TokenRecord, TokenStore } from '../store.ts';
import type { Sql, Tx } from './connect.ts';
import { newTokenRecord, toToken, type TokenRow } from '../rows.ts';
import { appendAudit } from './tx.ts';

async function revokeRow(
  tx: Tx,
  id: string,
  by: string,
  reason: string,
  at: string,
): Promise<TokenRecord | null> {
  const [r] = await tx<TokenRow[]>`
    UPDATE tokens SET revoked_at = ${at}, revoked_by = ${by}, revoke_reason = ${reason}
    WHERE id = ${id} AND revoked_at IS NULL
    RETURNING id, name, role, tenant, agent, created_at, revoked_at, expires_at, revoked_by, revoke_reason, launcher, minted_by`;
  return r ? toToken(r) : null;
}

/** {@link TokenStore} on PostgreSQL. */
export class PgTokens implements TokenStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  createToken(
    t: NewToken,
    secretHash: string,
    audit: AuditEvent[],
    revoke?: { id: string; by: string; reason: string },
  ): Promise<TokenRecord> {
    return this.#sql.begin(async (tx) => {
      const createdAt = new Date().toISOString();
      await tx`
        INSERT INTO tokens (id, secret_hash, name, role, tenant, agent, created_at, expires_at, launcher, minted_by)
        VALUES (${t.id}, ${secretHash}, ${t.name}, ${t.role}, ${t.tenant}, ${t.agent}, ${createdAt},
          ${t.expiresAt ?? null}, ${t.launcher ?? null}, ${t.mintedBy ?? null})`;
      if (revoke !== undefined) await revokeRow(tx, revoke.id, revoke.by, revoke.reason, createdAt);
      await appendAudit(tx, audit);
      return newTokenRecord(t, createdAt);
    });
  }

  async findToken(secretHash: string): Promise<TokenRecord | null> {
    const [r] = await this.#sql<TokenRow[]>`SELECT * FROM tokens WHERE secret_hash = ${secretHash}`;
    return r ? toToken(r) : null;
  }

  async getToken(id: string): Promise<TokenRecord | null> {
    const [r] = await this.#sql<TokenRow[]>`SELECT * FROM tokens WHERE id = ${id}`;
    return r ? toToken(r) : null;
  }

  async listTokens(q: TokenQuery): Promise<TokenRecord[]> {
    const sql = this.#sql;
    const rows = await sql<TokenRow[]>`
      SELECT * FROM tokens ${q.tenant === undefined ? sql`` : sql`WHERE tenant = ${q.tenant}`}
      ORDER BY created_at, id`;
    return rows.map(toToken);
  }

  revokeToken(
    id: string,
    by: string,
    reason: string,
    audit: (t: TokenRecord) => AuditEvent[],
  ): Promise<TokenRecord | null> {
    return this.#sql.begin(async (tx) => {
      const t = await revokeRow(tx, id, by, reason, new Date().toISOString());
      if (t !== null) await appendAudit(tx, audit(t));
      return t;
    });
  }

  async countTokens(): Promise<number> {
    const [r] = await this.#sql<{ n: string }[]>`SELECT COUNT(*) AS n FROM tokens`;
    return Number(r!.n);
  }
}
