/**
 * The audit log's rows and its signed checkpoints on SQLite (schema version 8), shared by
 * `SqliteStore` and the verification worker, which reads the same file on its own connection.
 */
import { randomUUID } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { AuditKeyInfo, AuditRecord, SignedCheckpoint } from '@killpath/protocol';
import { verifyLog, type LogFindings, type TreeClaim } from '../audit/log-verify.ts';
import type { PermitRow } from './sqlite-rows.ts';
import type { StoredCheckpoint } from './store.ts';
import { toStoredCheckpoint, type CheckpointRow } from './rows.ts';
import { workerAnswer } from './worker-answer.ts';

/**
 * Schema version 8: signed checkpoints (with the Merkle frontier each was computed from, so the
 * signer resumes without re-hashing the log) and every public key that signed one.
 */
export const CHECKPOINT_SCHEMA = `
CREATE TABLE IF NOT EXISTS checkpoints (
  id INTEGER PRIMARY KEY,
  size INTEGER NOT NULL,
  root_hash TEXT NOT NULL,
  origin TEXT NOT NULL,
  signed_at TEXT NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL,
  frontier TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_size ON checkpoints (size);
CREATE TABLE IF NOT EXISTS audit_keys (
  key_id TEXT PRIMARY KEY,
  public_key TEXT NOT NULL,
  created_at TEXT NOT NULL,
  retired_at TEXT
);
`;

/** Gives a database its log id (the checkpoint origin) once; old files get one on migration. */
export function ensureLogId(db: DatabaseSync): void {
  db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?)`).run(randomUUID());
}

/** The checkpoint origin of this database: `killpath/<log id>`. */
export function logOrigin(db: DatabaseSync): string {
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'log_id'`).get() as { value: string };
  return `killpath/${row.value}`;
}

/** One row of the `audit` table. */
export interface AuditRow {
  seq: number;
  ts: string;
  type: string;
  actor: string;
  tenant: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

/**
 * Parses a record's stored data. Text that no longer parses (altered on disk) is kept as
 * `{ unparseable }`, so the record still lists and fails verification by hash instead of throwing.
 */
function parseData(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : { unparseable: text };
  } catch {
    return { unparseable: text };
  }
}

/** A stored row as a record. */
export function toAudit(r: AuditRow): AuditRecord {
  return {
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    actor: r.actor,
    tenant: r.tenant,
    data: parseData(r.data),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** Stores a signed checkpoint (inside the caller's transaction). */
export function insertCheckpoint(db: DatabaseSync, c: StoredCheckpoint): void {
  const k: SignedCheckpoint = c.checkpoint;
  db.prepare(
    `INSERT INTO checkpoints (size, root_hash, origin, signed_at, key_id, signature, frontier) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  ).run(k.size, k.rootHash, k.origin, k.timestamp, k.keyId, k.signature, JSON.stringify(c.frontier));
}

/** The newest stored checkpoint (largest size, then latest signed), or null. */
export function latestCheckpoint(db: DatabaseSync): StoredCheckpoint | null {
  const r = db.prepare(`SELECT * FROM checkpoints ORDER BY size DESC, id DESC LIMIT 1`).get() as
    CheckpointRow | undefined;
  return r ? toStoredCheckpoint(r) : null;
}

/** Every public key that signed or signs checkpoints, newest first. */
export function auditKeys(db: DatabaseSync): AuditKeyInfo[] {
  const rows = db
    .prepare(`SELECT * FROM audit_keys ORDER BY created_at DESC, rowid DESC`)
    .all() as unknown as {
    key_id: string;
    public_key: string;
    created_at: string;
    retired_at: string | null;
  }[];
  return rows.map((r) => ({
    keyId: r.key_id,
    algorithm: 'Ed25519',
    publicKey: r.public_key,
    createdAt: r.created_at,
    retiredAt: r.retired_at,
  }));
}

/** Makes `key` the current signing key (inside the caller's transaction): every other is retired now. */
export function putAuditKey(db: DatabaseSync, key: AuditKeyInfo, at: string): boolean {
  const known = db.prepare(`SELECT retired_at FROM audit_keys WHERE key_id = ?`).get(key.keyId) as
    { retired_at: string | null } | undefined;
  if (known !== undefined && known.retired_at === null) return false;
  db.prepare(`UPDATE audit_keys SET retired_at = ? WHERE retired_at IS NULL AND key_id <> ?`).run(
    at,
    key.keyId,
  );
  db.prepare(
    `INSERT INTO audit_keys (key_id, public_key, created_at, retired_at) VALUES (?, ?, ?, NULL)
     ON CONFLICT (key_id) DO UPDATE SET retired_at = NULL`,
  ).run(key.keyId, key.publicKey, key.createdAt);
  return true;
}

/** Lists `key` retired (`at`) unless it is listed already (inside the caller's transaction). */
export function listAuditKey(db: DatabaseSync, key: AuditKeyInfo, at: string): boolean {
  const r = db
    .prepare(
      `INSERT INTO audit_keys (key_id, public_key, created_at, retired_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (key_id) DO NOTHING`,
    )
    .run(key.keyId, key.publicKey, key.createdAt, at);
  return Number(r.changes) > 0;
}

/**
 * Reads the whole log, the stored checkpoints and the effect ledger's rows in one read
 * transaction and verifies them ({@link verifyLog}). Synchronous: the store calls it in a worker thread for a file database.
 */
export function verifyStoredLog(db: DatabaseSync, kept: TreeClaim | null): LogFindings {
  db.exec('BEGIN');
  try {
    const stored = (
      db.prepare(`SELECT size, root_hash, signed_at FROM checkpoints`).all() as unknown as {
        size: number;
        root_hash: string;
        signed_at: string;
      }[]
    ).map((r) => ({ size: Number(r.size), rootHash: r.root_hash, timestamp: r.signed_at }));
    const rows = db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as Iterable<AuditRow>;
    function* records(): Iterable<AuditRecord> {
      for (const r of rows) yield toAudit(r);
    }
    const ledgerRows = () => db.prepare('SELECT * FROM permits').iterate() as Iterable<PermitRow>;
    return verifyLog(records(), kept, stored, ledgerRows);
  } finally {
    db.exec('COMMIT');
  }
}

/** The worker's module, beside this one (`.ts` when running from source, `.js` when built). */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './sqlite-audit-worker.ts' : './sqlite-audit-worker.js',
  import.meta.url,
);

/**
 * Runs {@link verifyStoredLog} in a worker thread on its own read-only connection to `path`, so
 * hashing a large log never blocks the control plane's event loop.
 */
export function verifyInWorker(path: string, kept: TreeClaim | null): Promise<LogFindings> {
  return workerAnswer<LogFindings>(() => new Worker(WORKER_URL, { workerData: { path, kept } }), 'findings');
}
