/**
 * The audit log on PostgreSQL: the one hash chain every replica appends to (`appendAudit` in
 * `tx.ts`), reading and counting it, signed checkpoints and their keys, and verification, which
 * runs in a worker thread on its own connection so hashing a long log never blocks the control
 * plane's event loop. Records, hashes and verification are the SQLite backend's (`audit/`).
 */
import { Worker } from 'node:worker_threads';
import type { AuditKeyInfo, AuditRecord, AuditVerdict } from '@killpath/protocol';
import type { AuditEvent } from '../../audit/chain.ts';
import type { LogFindings, TreeClaim } from '../../audit/log-verify.ts';
import { toAudit, type AuditRow } from '../sqlite-audit.ts';
import type { AuditQuery, AuditStore, LeaseFence, StoredCheckpoint } from '../store.ts';
import { checkFence } from './pg-presence.ts';
import { toStoredCheckpoint, type CheckpointRow } from '../rows.ts';
import { workerAnswer } from '../worker-answer.ts';
import type { Sql, Tx } from './connect.ts';
import { appendAudit } from './tx.ts';

/** A row of `audit` as postgres.js returns it (bigint as decimal text). */
type PgAuditRow = Omit<AuditRow, 'seq'> & { seq: string };

/** A stored row as a record (unparseable data is kept as `{ unparseable }`, as on SQLite). */
export function toAuditRecord(r: PgAuditRow): AuditRecord {
  return toAudit({ ...r, seq: Number(r.seq) });
}

/** What the verification worker does: `chain` (verifyChain) or `log` (verifyLog with `kept`). */
export type VerifyJob = { kind: 'chain' } | { kind: 'log'; kept: TreeClaim | null };

/** The worker's module, beside this one (`.ts` from source, `.js` when built). */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './pg-audit-worker.ts' : './pg-audit-worker.js',
  import.meta.url,
);

function inWorker<T>(url: string, job: VerifyJob): Promise<T> {
  return workerAnswer<T>(() => new Worker(WORKER_URL, { workerData: { url, job } }), 'value');
}

/** {@link AuditStore} on PostgreSQL. */
export class PgAudit implements AuditStore {
  readonly #sql: Sql;
  readonly #url: string;

  /** `url` is the database's, for the verification worker's own connection. */
  constructor(sql: Sql, url: string) {
    this.#sql = sql;
    this.#url = url;
  }

  async appendAudit(events: AuditEvent[]): Promise<AuditRecord[]> {
    if (events.length === 0) return [];
    return this.#sql.begin((tx) => appendAudit(tx, events));
  }

  async listAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const sql = this.#sql;
    const rows = await sql<PgAuditRow[]>`
      SELECT * FROM audit
      WHERE seq > ${q.afterSeq ?? 0}
        AND ${q.beforeSeq === undefined ? sql`TRUE` : sql`seq < ${q.beforeSeq}`}
        AND ${this.#filter(q)}
      ${q.desc ? sql`ORDER BY seq DESC` : sql`ORDER BY seq`}
      LIMIT ${q.limit ?? 200}`;
    return rows.map(toAuditRecord);
  }

  #filter(q: Pick<AuditQuery, 'tenant' | 'types'>) {
    const sql = this.#sql;
    const tenant = q.tenant === undefined ? sql`TRUE` : sql`(tenant IS NULL OR tenant = ${q.tenant})`;
    const types =
      q.types === undefined || q.types.length === 0 ? sql`TRUE` : sql`type = ANY(${q.types}::text[])`;
    return sql`${tenant} AND ${types}`;
  }

  async countAudit(
    q: Pick<AuditQuery, 'tenant' | 'types'>,
    cap: number,
    upTo?: number,
  ): Promise<{ count: number; exact: boolean }> {
    // seq runs 1, 2, 3… with no gap: the head's seq is the chain's length.
    const [head] = await this.#sql<{ seq: string }[]>`SELECT seq FROM audit_head WHERE id = 1`;
    const max = upTo === undefined ? Number(head!.seq) : Math.max(0, Math.min(Number(head!.seq), upTo));
    if ((q.tenant === undefined && (q.types === undefined || q.types.length === 0)) || max === 0)
      return { count: max, exact: true };
    // A tenant's or a type's share among the newest `cap` records only (a primary-key range).
    const from = Math.max(0, max - cap);
    const [r] = await this.#sql<{ n: string }[]>`
      SELECT COUNT(*) AS n FROM audit WHERE seq > ${from} AND seq <= ${max} AND ${this.#filter(q)}`;
    return { count: Number(r!.n), exact: from === 0 };
  }

  verifyAudit(): Promise<AuditVerdict> {
    return inWorker<AuditVerdict>(this.#url, { kind: 'chain' });
  }

  verifyLog(kept: TreeClaim | null): Promise<LogFindings> {
    return inWorker<LogFindings>(this.#url, { kind: 'log', kept });
  }

  async logOrigin(): Promise<string> {
    const [r] = await this.#sql<{ value: string }[]>`SELECT value FROM meta WHERE key = 'log_id'`;
    return `killpath/${r!.value}`;
  }

  async putCheckpoint(c: StoredCheckpoint, audit: AuditEvent[], fence?: LeaseFence | null): Promise<void> {
    const k = c.checkpoint;
    await this.#sql.begin(async (tx) => {
      if (fence) await checkFence(tx, fence);
      await tx`
        INSERT INTO checkpoints (size, root_hash, origin, signed_at, key_id, signature, frontier)
        VALUES (${k.size}, ${k.rootHash}, ${k.origin}, ${k.timestamp}, ${k.keyId}, ${k.signature}, ${JSON.stringify(c.frontier)})`;
      await appendAudit(tx, audit);
    });
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    const [r] = await this.#sql<
      CheckpointRow[]
    >`SELECT * FROM checkpoints ORDER BY size DESC, id DESC LIMIT 1`;
    return r ? toStoredCheckpoint(r) : null;
  }

  async auditKeys(): Promise<AuditKeyInfo[]> {
    const rows = await this.#sql<
      { key_id: string; public_key: string; created_at: string; retired_at: string | null }[]
    >`SELECT key_id, public_key, created_at, retired_at FROM audit_keys ORDER BY created_at DESC, ord DESC`;
    return rows.map((r) => ({
      keyId: r.key_id,
      algorithm: 'Ed25519',
      publicKey: r.public_key,
      createdAt: r.created_at,
      retiredAt: r.retired_at,
    }));
  }

  async putAuditKey(key: AuditKeyInfo, audit: AuditEvent[]): Promise<boolean> {
    return this.#sql.begin(async (tx: Tx) => {
      // Replicas rotating at once take turns: the second sees the first's key as current.
      await tx`LOCK TABLE audit_keys IN EXCLUSIVE MODE`;
      const [known] = await tx<{ retired_at: string | null }[]>`
        SELECT retired_at FROM audit_keys WHERE key_id = ${key.keyId}`;
      if (known !== undefined && known.retired_at === null) return false;
      const at = new Date().toISOString();
      await tx`UPDATE audit_keys SET retired_at = ${at} WHERE retired_at IS NULL AND key_id <> ${key.keyId}`;
      await tx`
        INSERT INTO audit_keys (key_id, public_key, created_at, retired_at)
        VALUES (${key.keyId}, ${key.publicKey}, ${key.createdAt}, NULL)
        ON CONFLICT (key_id) DO UPDATE SET retired_at = NULL`;
      await appendAudit(tx, audit);
      return true;
    });
  }

  async listAuditKey(key: AuditKeyInfo, audit: AuditEvent[]): Promise<boolean> {
    return this.#sql.begin(async (tx: Tx) => {
      await tx`LOCK TABLE audit_keys IN EXCLUSIVE MODE`;
      const added = await tx`
        INSERT INTO audit_keys (key_id, public_key, created_at, retired_at)
        VALUES (${key.keyId}, ${key.publicKey}, ${key.createdAt}, ${new Date().toISOString()})
        ON CONFLICT (key_id) DO NOTHING`;
      if (added.count === 0) return false;
      await appendAudit(tx, audit);
      return true;
    });
  }
}
