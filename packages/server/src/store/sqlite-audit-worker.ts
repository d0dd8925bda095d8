/**
 * Worker thread: opens the database read-only, verifies the audit log against a kept
 * checkpoint and the stored ones, and posts the findings back. Started by `verifyInWorker`.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import type { TreeClaim } from '../audit/log-verify.ts';
import { verifyStoredLog } from './sqlite-audit.ts';

const { path, kept } = workerData as { path: string; kept: TreeClaim | null };
let db: DatabaseSync | null = null;
try {
  db = new DatabaseSync(path, { readOnly: true });
  db.exec('PRAGMA busy_timeout = 5000');
  parentPort!.postMessage({ ok: true, findings: verifyStoredLog(db, kept) });
} catch (err) {
  parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
} finally {
  db?.close();
}
