/**
 * The effect ledger's rows are committed by one chained `ledger.committed` record per group
 * commit (audit/ledger.ts), not by a hashed record per effect. Verification must still catch a
 * changed, deleted or inserted ledger row, in every column, on a live store and on a database
 * written before the rule (per-effect `effect.intent` records: fixtures/schema-v12-effects.db).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import type { AuditVerdict } from '@killpath/protocol';
import { LEDGER_COMMITTED, LedgerCheck, ledgerRowDigest } from '../src/audit/ledger.ts';
import { verifyLog } from '../src/audit/log-verify.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { PermitRow } from '../src/store/sqlite-rows.ts';
import { grant } from './effects-contract.ts';
import { harness } from './harness.ts';
import { rawExec, tamperableStore } from './tamper.ts';

const OWNER = { tenant: 'acme', agent: 'bot' };

/** A store with landed, failed, in-doubt, cooling-off and open effects of two tenants. */
async function ledgerStore(): Promise<{ store: SqliteStore; ids: string[] }> {
  const store = tamperableStore();
  const ds = await store.grantPermits([
    grant({ runId: 'r1', idempotencyKey: 'k1', argsDigest: 'sha256:aa', compensate: { undo: 'refund' } }),
    grant({ runId: 'r1', capability: 'mail.send', lineage: [], features: ['beta'] }),
    grant({ runId: 'r2', class: 'irreversible', capability: 'wire_transfer', coolOffMs: 60_000 }),
    grant({ runId: 'g1', tenant: 'globex' }),
    grant({ runId: 'r3', workerId: 'w2' }),
  ]);
  const ids = ds.map((d) => {
    assert.equal(d.kind, 'granted');
    return d.kind === 'granted' ? d.response.permit.id : '';
  });
  await store.settlePermit(ids[0]!, OWNER, { status: 'landed', result: { id: 7, note: 'ünïcode "q"' } });
  await store.settlePermit(ids[1]!, OWNER, { status: 'failed', error: 'smtp 451' });
  await store.settlePermit(ids[3]!, { tenant: 'globex', agent: 'bot' }, { status: 'landed' });
  await store.markInDoubt(OWNER, ['w2'], 'worker gone');
  return { store, ids };
}

async function ledgerFindings(store: SqliteStore) {
  const found = await store.verifyLog(null);
  assert.ok(found.ledger, 'the ledger is checked');
  return found;
}

/** Columns of `permits` with a changed value that keeps the row valid SQL. */
const CHANGES: { column: keyof PermitRow; set: string }[] = [
  { column: 'rev', set: 'rev = rev + 1' },
  { column: 'run_id', set: `run_id = run_id || 'x'` },
  { column: 'tenant', set: `tenant = 'evil'` },
  { column: 'agent', set: `agent = 'other'` },
  { column: 'worker_id', set: `worker_id = 'w9'` },
  { column: 'capability', set: `capability = 'search'` },
  { column: 'class', set: `class = CASE class WHEN 'write' THEN 'irreversible' ELSE 'write' END` },
  { column: 'idempotency_key', set: `idempotency_key = 'k-forged'` },
  { column: 'args_digest', set: `args_digest = 'sha256:ff'` },
  { column: 'compensate', set: `compensate = '{"undo":"nothing"}'` },
  { column: 'status', set: `status = CASE status WHEN 'landed' THEN 'aborted' ELSE 'landed' END` },
  { column: 'cool_off_ms', set: 'cool_off_ms = cool_off_ms + 1' },
  { column: 'confirm_after', set: `confirm_after = '2030-01-01T00:00:00.000Z'` },
  { column: 'lineage', set: `lineage = '["r0"]'` },
  { column: 'features', set: `features = '["gamma"]'` },
  { column: 'release', set: `release = '{"version":"9"}'` },
  { column: 'result', set: `result = '{"id":8}'` },
  { column: 'error', set: `error = 'forged'` },
  { column: 'after_abort', set: 'after_abort = 1 - after_abort' },
  { column: 'intended_at', set: `intended_at = '2020-01-01T00:00:00.000Z'` },
  { column: 'settled_at', set: `settled_at = '2020-01-02T00:00:00.000Z'` },
];

describe('ledger rows against their ledger.committed records', () => {
  test('an untouched ledger verifies: one record per tenant per group commit, none per effect', async () => {
    const { store, ids } = await ledgerStore();
    try {
      const records = await store.listAudit({ limit: 1000 });
      assert.deepEqual(
        records.filter((r) => r.type === 'effect.intent' || r.type === 'effect.landed'),
        [],
      );
      // The grants (two tenants), three outcomes in three calls, the in-doubt mark (with its own
      // effect.in_doubt record, as before).
      assert.deepEqual(
        records
          .filter((r) => r.type === LEDGER_COMMITTED)
          .map((r) => [r.tenant, (r.data.rows as unknown[]).length]),
        [
          ['acme', 4],
          ['globex', 1],
          ['acme', 1],
          ['acme', 1],
          ['globex', 1],
          ['acme', 1],
        ],
      );
      assert.equal(records.filter((r) => r.type === 'effect.in_doubt').length, 1);
      const found = await ledgerFindings(store);
      assert.deepEqual([found.ok, found.ledger?.ok, found.ledger?.rows, found.problems], [true, true, 5, []]);
      assert.equal(ids.length, 5);
    } finally {
      await store.close();
    }
  });

  for (const { column, set } of CHANGES) {
    test(`a changed ${column} is named with the record that committed the row`, async () => {
      const { store } = await ledgerStore();
      try {
        // Every row, one at a time: the newest record naming it is the one named.
        const rows = (await store.listAudit({ limit: 1000 })).filter((r) => r.type === LEDGER_COMMITTED);
        const newest = new Map<string, number>();
        for (const r of rows) for (const [id] of r.data.rows as [string, string][]) newest.set(id, r.seq);
        for (const [id, seq] of newest) {
          rawExec(store, `CREATE TEMP TABLE kept AS SELECT * FROM permits WHERE id = '${id}'`);
          rawExec(store, `UPDATE permits SET ${set} WHERE id = '${id}'`);
          const found = await ledgerFindings(store);
          rawExec(
            store,
            `DELETE FROM permits WHERE id = '${id}'; INSERT INTO permits SELECT * FROM kept; DROP TABLE kept`,
          );
          assert.equal(found.ok, false, `${column} of ${id}`);
          assert.equal(found.chain.ok, true, 'the chain itself is intact');
          assert.equal(found.ledger?.firstBad, seq, `${column} of ${id}`);
          assert.match(found.problems.join('\n'), new RegExp(`${id}.*audit record #${seq}.*changed`));
        }
        assert.equal((await ledgerFindings(store)).ok, true, 'put back: verifies again');
      } finally {
        await store.close();
      }
    });
  }

  test('a deleted row is named (missing), an inserted row is named (in no record)', async () => {
    const { store, ids } = await ledgerStore();
    try {
      rawExec(store, `DELETE FROM permits WHERE id = '${ids[2]}'`);
      let found = await ledgerFindings(store);
      assert.equal(found.ok, false);
      assert.match(
        found.problems.join('\n'),
        new RegExp(`${ids[2]}, committed by audit record #\\d+, is missing`),
      );
      rawExec(
        store,
        `INSERT INTO permits SELECT 'p_forged', rev, run_id, tenant, agent, worker_id, capability, class, 'k-new',
         args_digest, compensate, status, cool_off_ms, confirm_after, lineage, features, release, result, error,
         after_abort, intended_at, settled_at FROM permits WHERE id = '${ids[0]}'`,
      );
      found = await ledgerFindings(store);
      assert.match(found.problems.join('\n'), /ledger row p_forged .* is in no audit record/);
      assert.equal(found.ledger?.problems.length, 2);
    } finally {
      await store.close();
    }
  });

  test('a landed row put back to its granted state is caught (the newest record holds the landed digest)', async () => {
    const { store, ids } = await ledgerStore();
    try {
      rawExec(
        store,
        `UPDATE permits SET status = 'granted', result = NULL, error = NULL, settled_at = NULL WHERE id = '${ids[0]}'`,
      );
      const found = await ledgerFindings(store);
      assert.equal(found.ok, false);
      assert.match(found.problems[0]!, new RegExp(`${ids[0]}.*changed`));
    } finally {
      await store.close();
    }
  });

  test('a forged digest in a record breaks the chain at that record', async () => {
    const { store } = await ledgerStore();
    try {
      const [rec] = (await store.listAudit({ limit: 1000 })).filter((r) => r.type === LEDGER_COMMITTED);
      const rows = rec!.data.rows as [string, string][];
      rows[0]![1] = 'A'.repeat(43);
      rawExec(store, `UPDATE audit SET data = '${JSON.stringify({ rows })}' WHERE seq = ${rec!.seq}`);
      const found = await ledgerFindings(store);
      assert.equal(found.chain.firstBad, rec!.seq);
    } finally {
      await store.close();
    }
  });

  test('a row JSON column that no longer parses is named, not thrown', async () => {
    const { store, ids } = await ledgerStore();
    try {
      rawExec(store, `UPDATE permits SET lineage = '[' WHERE id = '${ids[1]}'`);
      const found = await ledgerFindings(store);
      assert.match(found.problems.join('\n'), new RegExp(`${ids[1]}.*changed`));
    } finally {
      await store.close();
    }
  });

  test('the digest is of the stored bytes: JSON re-formatted on disk with the same meaning is named too', async () => {
    const { store, ids } = await ledgerStore();
    try {
      rawExec(
        store,
        `UPDATE permits SET result = '{ "note" : "ünïcode \\"q\\"", "id" : 7.0 }' WHERE id = '${ids[0]}'`,
      );
      assert.match((await ledgerFindings(store)).problems.join('\n'), new RegExp(`${ids[0]}.*changed`));
    } finally {
      await store.close();
    }
  });

  test('GET /v1/audit/verify names a changed ledger row; a tenant viewer learns only not ok', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      const [d] = await h.store.grantPermits([grant()]);
      assert.equal(d?.kind, 'granted');
      const ok = (await (await h.req('GET', '/v1/audit/verify', { token: admin })).json()) as AuditVerdict;
      assert.equal(ok.ok, true);
      rawExec(h.store, `UPDATE permits SET rev = rev + 5`);
      const res = await h.req('GET', '/v1/audit/verify', { token: admin });
      assert.equal(res.status, 200);
      const v = (await res.json()) as AuditVerdict;
      assert.equal(v.ok, false);
      if (v.ok) return;
      const committing = (await h.store.listAudit({ limit: 100 })).find((r) => r.type === LEDGER_COMMITTED)!;
      assert.equal(v.firstBad, committing.seq);
      assert.match(v.reason, /ledger row p_.* was changed/);
      const viewer = await h.token('viewer', 'acme');
      assert.deepEqual(await (await h.req('GET', '/v1/audit/verify', { token: viewer })).json(), {
        ok: false,
        brief: true,
      });
    } finally {
      await h.close();
    }
  });

  test('the pure check: the newest record naming a row wins; rows are taken in any order', () => {
    const row: PermitRow = {
      id: 'p_1',
      rev: 3,
      run_id: 'r1',
      tenant: 'acme',
      agent: 'bot',
      worker_id: 'w1',
      capability: 'crm.update',
      class: 'write',
      idempotency_key: null,
      args_digest: null,
      compensate: null,
      status: 'granted',
      cool_off_ms: 0,
      confirm_after: null,
      lineage: '[]',
      features: '[]',
      release: null,
      result: null,
      error: null,
      after_abort: 0,
      intended_at: '2026-12-06T00:00:00.000Z',
      settled_at: null,
    };
    const landed: PermitRow = { ...row, status: 'landed', settled_at: '2026-12-06T00:00:01.000Z' };
    const rec = (seq: number, digest: string) => ({
      seq,
      ts: '',
      type: LEDGER_COMMITTED,
      actor: 'control-plane',
      tenant: 'acme',
      data: { rows: [['p_1', digest]] },
      prevHash: '',
      hash: '',
    });
    const check = (rows: PermitRow[]) => {
      const c = new LedgerCheck();
      c.see(rec(1, ledgerRowDigest(row)));
      c.see(rec(2, ledgerRowDigest(landed)));
      return c.check(rows);
    };
    assert.equal(check([landed]).ok, true);
    assert.equal(check([row]).firstBad, 2, 'the granted state is no longer what the chain says');
    assert.equal(check([]).firstBad, 2);
    assert.notEqual(ledgerRowDigest(row), ledgerRowDigest({ ...row, lineage: '["r0"]' }));
    // verifyLog without rows checks no ledger (callers that hold no ledger).
    assert.equal(verifyLog([], null).ledger, null);
  });
});

describe('a database written before ledger.committed (per-effect records)', () => {
  const FIXTURE = fileURLToPath(new URL('./fixtures/schema-v12-effects.db', import.meta.url));

  async function opened(fn: (s: SqliteStore, path: string) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'killpath-v12e-'));
    const path = join(dir, 'killpath.db');
    copyFileSync(FIXTURE, path);
    const s = new SqliteStore(path);
    try {
      await fn(s, path);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const raw = (path: string, sql: string) => {
    const db = new DatabaseSync(path);
    try {
      db.exec(sql);
    } finally {
      db.close();
    }
  };

  test('opens and verifies; a later outcome commits its old row whole', async () => {
    await opened(async (s) => {
      const found = await s.verifyLog(null);
      assert.deepEqual([found.ok, found.records, found.ledger?.rows], [true, 5, 3]);
      const open = (await s.ledger('acme', 'r-legacy')).effects.find((e) => e.status === 'granted')!;
      assert.equal((await s.settlePermit(open.permitId, OWNER, { status: 'landed' }))?.status, 'landed');
      const [rec] = (await s.listAudit({ limit: 100 })).filter((r) => r.type === LEDGER_COMMITTED);
      assert.deepEqual(
        (rec!.data.rows as [string, string][]).map(([id]) => id),
        [open.permitId],
      );
      assert.equal((await s.verifyLog(null)).ok, true);
      assert.equal((await s.verifyAudit()).ok, true);
    });
  });

  test('an old row changed, deleted or inserted is still caught', async () => {
    await opened(async (s, path) => {
      const [first, second] = (await s.ledger('acme', 'r-legacy')).effects;
      await s.close();
      raw(path, `UPDATE permits SET capability = 'search' WHERE id = '${first!.permitId}'`);
      raw(path, `DELETE FROM permits WHERE id = '${second!.permitId}'`);
      raw(
        path,
        `INSERT INTO permits SELECT 'p_forged', rev, run_id, tenant, agent, worker_id, capability, class, 'k-new',
         args_digest, compensate, status, cool_off_ms, confirm_after, lineage, features, release, result, error,
         after_abort, intended_at, settled_at FROM permits LIMIT 1`,
      );
      const again = new SqliteStore(path);
      try {
        const found = await again.verifyLog(null);
        assert.equal(found.ok, false);
        const text = found.problems.join('\n');
        assert.match(text, new RegExp(`${first!.permitId}.*does not match its intent record #\\d+`));
        assert.match(text, new RegExp(`${second!.permitId}, granted in audit record #\\d+, is missing`));
        assert.match(text, /p_forged .* is in no audit record/);
      } finally {
        await again.close();
      }
    });
  });
});
