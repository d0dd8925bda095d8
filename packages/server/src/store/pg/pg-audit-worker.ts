/**
 * Worker thread: opens its own connection to the database, reads the audit log (and the stored
 * checkpoints, and the effect ledger's rows) in one read-only snapshot and verifies it, posting the verdict back. Started by
 * `PgAudit.verifyAudit` / `verifyLog`, so hashing never runs on the control plane's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import postgres from 'postgres';
import type { AuditRecord } from '@killpath/protocol';
import { verifyChain } from '../../audit/chain.ts';
import type { LedgerRow } from '../../audit/ledger.ts';
import { verifyLog } from '../../audit/log-verify.ts';
import { permitRow, type PgPermitRow } from './pg-ledger.ts';
import { toAuditRecord, type VerifyJob } from './pg-audit.ts';

const { url, job } = workerData as { url: string; job: VerifyJob };
const sql = postgres(url, {
  max: 1,
  onnotice: () => {},
  connection: { application_name: 'killpath-verify' },
});
try {
  const value = await sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => {
    const records: AuditRecord[] = [];
    await tx`SELECT * FROM audit ORDER BY seq`.cursor(2000, (rows) => {
      for (const r of rows) records.push(toAuditRecord(r as unknown as Parameters<typeof toAuditRecord>[0]));
    });
    if (job.kind === 'chain') return verifyChain(records);
    const stored = (
      await tx<
        { size: string; root_hash: string; signed_at: string }[]
      >`SELECT size, root_hash, signed_at FROM checkpoints`
    ).map((r) => ({ size: Number(r.size), rootHash: r.root_hash, timestamp: r.signed_at }));
    // The effect ledger's rows, from the same snapshot, against their ledger.committed records.
    const rows: LedgerRow[] = [];
    await tx`SELECT * FROM permits`.cursor(2000, (batch) => {
      for (const r of batch) rows.push(permitRow(r as unknown as PgPermitRow));
    });
    return verifyLog(records, job.kept, stored, () => rows);
  });
  parentPort!.postMessage({ ok: true, value });
} catch (err) {
  parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
} finally {
  await sql.end({ timeout: 1 });
}
