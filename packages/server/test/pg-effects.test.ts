import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditEvent } from '../src/audit/chain.ts';
import { openPool, type Sql } from '../src/store/pg/connect.ts';
import { PgStore } from '../src/store/pg/pg-store.ts';
import { migrate } from '../src/store/pg/schema.ts';
import type { PermitDecision, PermitGrant } from '../src/store/store.ts';
import { committed, grant } from './effects-contract.ts';
import { dropLeftovers, freshDatabase, requirePostgres, type TestDatabase } from './pg.ts';
import { directiveInput } from './store-contract.ts';

/**
 * PostgreSQL permits across replicas: several `PgStore`s, each on its own pool (what separate
 * `killpath serve` processes hold), on one database. What is asserted is read back from the
 * database, exactly; nothing is timed.
 */

const available = await requirePostgres();
after(dropLeftovers);

/** A migrated database and `n` stores on it, each with its own pool; `done` closes them and drops it. */
async function replicas(
  name: string,
  n: number,
): Promise<{ db: TestDatabase; stores: PgStore[]; done: () => Promise<void> }> {
  const db = await freshDatabase(name);
  const admin = openPool(db.url, { max: 1 });
  try {
    await migrate(admin);
  } finally {
    await admin.end({ timeout: 1 });
  }
  const stores = await Promise.all(Array.from({ length: n }, () => PgStore.open(db.url, { max: 4 })));
  return {
    db,
    stores,
    done: async () => {
      await Promise.all(stores.map((s) => s.close()));
      await db.drop();
    },
  };
}

const issued =
  (type: string) =>
  (r: { directive: { id: string; rev: number } }): AuditEvent[] => [
    { type, actor: 'alice', tenant: 'acme', data: { directiveId: r.directive.id, rev: r.directive.rev } },
  ];

/** Resolves once `n` statements of `sql`'s database wait on a lock (other sessions hold it): no sleeps, no timing. */
async function someoneWaitsOnALock(sql: Sql, n = 1): Promise<void> {
  for (;;) {
    const [r] = await sql<{ n: string }[]>`
      SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    if (Number(r!.n) >= n) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Holds the audit head in a transaction of its own until `release()`: every audited transaction
 * then stops at its last step, holding whatever it locked before (the rev, its rows).
 */
async function holdAuditHead(sql: Sql): Promise<{ release: () => Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let held!: () => void;
  const holding = new Promise<void>((r) => (held = r));
  const tx = sql.begin(async (t) => {
    await t`SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE`;
    held();
    await released;
  });
  await holding;
  return {
    release: async () => {
      release();
      await tx;
    },
  };
}

describe('PostgreSQL permits across replicas', { skip: !available }, () => {
  test('guarantee 1: writers on three replicas hammer permits while a halt commits on one; from the database, no covered permit after the halt\u2019s rev, uncovered runs keep theirs', async () => {
    const { stores, done } = await replicas('g1', 3);
    try {
      const covered = Array.from({ length: 6 }, (_, i) => `covered-${i}`);
      const uncovered = Array.from({ length: 6 }, (_, i) => `free-${i}`);
      // Covered: agent acme/bot (the halt's scope). Uncovered: acme/other, the same tenant.
      const batch = (w: number, n: number): PermitGrant[] => [
        grant({ runId: covered[(w + n) % covered.length]!, workerId: `w${w}` }),
        grant({ runId: uncovered[(w + n) % uncovered.length]!, agent: 'other', workerId: `v${w}` }),
        grant({
          runId: covered[(w + n + 1) % covered.length]!,
          workerId: `w${w}`,
          capability: 'wire_transfer',
          class: 'irreversible',
          coolOffMs: 1,
        }),
        grant({ runId: uncovered[(w + n + 1) % uncovered.length]!, agent: 'other', workerId: `v${w}` }),
      ];
      const writers = 9; // three per replica
      const afterHalt = 8; // batches each writer sends once the halt has answered
      let batches = 0;
      let warm!: () => void;
      const warmedUp = new Promise<void>((r) => (warm = r));
      let haltAnswered = false;
      const lateDecisions: PermitDecision[][] = [];
      const confirms: { rev: number; kind: string; sentAfterHalt: boolean }[] = [];
      const writer = async (w: number) => {
        const store = stores[w % stores.length]!;
        let after = 0;
        for (let n = 0; after < afterHalt; n++) {
          const sentAfterHalt = haltAnswered;
          const ds = await store.grantPermits(batch(w, n));
          if (sentAfterHalt) {
            lateDecisions.push(ds);
            after++;
          }
          if (++batches === writers * 3) warm();
          // Confirm the cooling-off permit at once (its cool-off is 1 ms: `now` is past it).
          const cooling = ds[2];
          if (cooling?.kind === 'granted') {
            const sent = haltAnswered;
            const c = await store.confirmPermit(
              cooling.response.permit.id,
              { tenant: 'acme', agent: 'bot' },
              new Date(Date.now() + 60_000),
            );
            confirms.push({
              rev: c.kind === 'granted' ? c.response.permit.rev : -1,
              kind: c.kind,
              sentAfterHalt: sent,
            });
          }
        }
      };
      const running = Array.from({ length: writers }, (_, w) => writer(w));
      await warmedUp;
      const { directive: halt } = await stores[1]!.issueDirective(
        directiveInput({ scope: 'agent:acme/bot' }),
        issued('directive.issued'),
      );
      haltAnswered = true;
      await Promise.all(running);
      const R = halt.rev;

      const sql = stores[0]!.sql;
      // From the database: every covered write permitted (granted, or confirmed after its cool-off) is at a rev before R.
      const [covAfter] = await sql<{ n: string }[]>`
        SELECT count(*) AS n FROM permits WHERE tenant = 'acme' AND agent = 'bot' AND rev >= ${R}`;
      assert.equal(Number(covAfter!.n), 0, 'no covered permit at or after the halt\u2019s rev');
      const [covBefore] = await sql<{ n: string }[]>`
        SELECT count(*) AS n FROM permits WHERE tenant = 'acme' AND agent = 'bot' AND rev < ${R}`;
      assert.ok(
        Number(covBefore!.n) > 0,
        'covered runs were granted before the halt (the writers were running)',
      );
      const [freeAfter] = await sql<{ n: string }[]>`
        SELECT count(*) AS n FROM permits WHERE tenant = 'acme' AND agent = 'other' AND rev >= ${R}`;
      assert.ok(
        Number(freeAfter!.n) >= writers * afterHalt * 2,
        `uncovered runs keep being granted after the halt (${freeAfter!.n})`,
      );
      // And in commit order: every covered permit was committed before the halt. The audit chain's
      // order is the commit order of the transactions appending to it, and a permit's first record
      // (its `effect.intent`, or the `ledger.committed` listing its row) commits with its grant.
      const [order] = await sql<{ n: string; last_covered: string | null; halt_seq: string }[]>`
        WITH named AS (
          SELECT seq, data::jsonb ->> 'permitId' AS id FROM audit WHERE type = 'effect.intent'
          UNION ALL
          SELECT a.seq, r ->> 0 FROM audit a, jsonb_array_elements(a.data::jsonb -> 'rows') r
            WHERE a.type = 'ledger.committed'
        ), firsts AS (SELECT id, min(seq) AS seq FROM named GROUP BY id)
        SELECT count(*) AS n, max(f.seq) AS last_covered,
          (SELECT seq FROM audit WHERE type = 'directive.issued' AND data::jsonb ->> 'directiveId' = ${halt.id}) AS halt_seq
        FROM permits p JOIN firsts f ON f.id = p.id WHERE p.tenant = 'acme' AND p.agent = 'bot'`;
      assert.equal(Number(order!.n), Number(covBefore!.n), 'every covered permit is on the audit chain');
      assert.ok(Number(order!.last_covered) < Number(order!.halt_seq), JSON.stringify(order));
      // What the writers were told once the halt had answered: every covered request halted, every uncovered one granted.
      assert.equal(lateDecisions.length, writers * afterHalt);
      for (const ds of lateDecisions) {
        assert.deepEqual(
          ds.map((d) => d.kind),
          ['halted', 'granted', 'halted', 'granted'],
        );
        assert.ok(ds[0]?.kind === 'halted' && ds[0].directive.id === halt.id && ds[0].rev >= R);
      }
      // Irreversible permits granted before the halt and confirmed after it: refused at confirmation.
      for (const c of confirms) {
        if (c.kind === 'granted') assert.ok(c.rev < R, `a confirmation at rev ${c.rev}`);
        if (c.sentAfterHalt) assert.equal(c.kind, 'halted');
      }
      // Every replica's chain is one chain, and it verifies.
      const verdict = await stores[2]!.verifyAudit();
      assert.equal(verdict.ok, true, JSON.stringify(verdict));
    } finally {
      await done();
    }
  });

  test('a permit waits for a halt whose commit is in progress and is refused; a halt waits for a permit in progress, which commits at a rev before it', async () => {
    const { stores, done } = await replicas('order', 3);
    try {
      const [a, b, c] = stores as [PgStore, PgStore, PgStore];
      await a.grantPermits([grant({ runId: 'r1' }), grant({ runId: 'r2' })]);

      // 1. Replica A's halt has moved the rev and stops at its audit append, uncommitted; B's
      //    permit for the covered run starts then. It waits for the halt's COMMIT and sees it.
      let head = await holdAuditHead(c.sql);
      const halting = a.issueDirective(directiveInput({ scope: 'run:r1' }), issued('directive.issued'));
      await someoneWaitsOnALock(c.sql, 1);
      const asked = b.grantPermits([grant({ runId: 'r1' }), grant({ runId: 'r2' })]);
      await someoneWaitsOnALock(c.sql, 2);
      await head.release();
      const { directive: halt } = await halting;
      const decided = await asked;
      assert.deepEqual(
        decided.map((d) => d.kind),
        ['halted', 'granted'],
      );
      assert.ok(
        decided[0]?.kind === 'halted' && decided[0].rev === halt.rev && decided[0].directive.id === halt.id,
      );
      assert.ok(decided[1]?.kind === 'granted' && decided[1].response.permit.rev === halt.rev);

      // 2. B's permit for r2 has read the switchboard and stops at its audit append, uncommitted;
      //    A's halt of r2 starts then. The halt waits for the permit's COMMIT: the permit is at a
      //    rev before the halt's, and committed before it.
      head = await holdAuditHead(c.sql);
      const granting = b.grantPermits([grant({ runId: 'r2', idempotencyKey: 'before' })]);
      await someoneWaitsOnALock(c.sql, 1);
      const halting2 = a.issueDirective(directiveInput({ scope: 'run:r2' }), issued('directive.issued'));
      await someoneWaitsOnALock(c.sql, 2);
      await head.release();
      const [granted] = await granting;
      const { directive: halt2 } = await halting2;
      assert.ok(granted?.kind === 'granted');
      assert.equal(granted.response.permit.rev, halt.rev, 'checked against the switchboard before the halt');
      assert.equal(halt2.rev, halt.rev + 1);
      const [after] = await c.grantPermits([grant({ runId: 'r2' })]);
      assert.equal(after?.kind, 'halted');
      const [rows] = await c.sql<{ n: string }[]>`
        SELECT count(*) AS n FROM permits WHERE run_id = 'r2' AND rev >= ${halt2.rev}`;
      assert.equal(Number(rows!.n), 0);
      assert.equal((await c.verifyAudit()).ok, true);
    } finally {
      await done();
    }
  });

  test('a request PostgreSQL refuses (a NUL byte) fails alone; the rest of its batch is decided as if it were not there', async () => {
    const { stores, done } = await replicas('nul', 1);
    try {
      const s = stores[0]!;
      const ds = await s.grantPermits([
        grant({ runId: 'r1', idempotencyKey: 'k1' }),
        grant({ runId: 'r1', capability: 'crm\u0000update' }),
        grant({ runId: 'bad\u0000run' }),
        grant({ runId: 'r1', idempotencyKey: 'k1' }),
        grant({ runId: 'r2' }),
      ]);
      assert.deepEqual(
        ds.map((d) => d.kind),
        ['granted', 'failed', 'failed', 'conflict', 'granted'],
      );
      assert.match(ds[1]?.kind === 'failed' ? ds[1].message : '', /0x00|Unicode escape/);
      const { effects } = await s.ledger('acme', 'r1');
      assert.deepEqual(
        effects.map((e) => [e.idempotencyKey, e.status]),
        [['k1', 'in_doubt']],
      );
      // One ledger record for the batch, naming the two permits written (the failed requests wrote none).
      const records = committed(await s.listAudit({ limit: 100 }));
      assert.equal(records.length, 1);
      assert.equal(records[0]!.ids.length, 2, 'the failed requests left no row and no record');
      assert.deepEqual(
        [...records[0]!.ids].sort(),
        [...(await s.ledger('acme', 'r1')).effects, ...(await s.ledger('acme', 'r2')).effects]
          .map((e) => e.permitId)
          .sort(),
      );
      assert.equal((await s.verifyAudit()).ok, true);
    } finally {
      await done();
    }
  });

  test('outcomes of one turn commit together; one PostgreSQL refuses (a NUL byte) fails alone', async () => {
    const { stores, done } = await replicas('settle', 1);
    try {
      const s = stores[0]!;
      const ds = await s.grantPermits([grant(), grant({ runId: 'r2' }), grant({ runId: 'r3' })]);
      const [a, b, c] = ds.map((d) => (d.kind === 'granted' ? d.response.permit.id : ''));
      const owner = { tenant: 'acme', agent: 'bot' };
      const settled = await Promise.allSettled([
        s.settlePermit(a!, owner, { status: 'landed' }),
        s.settlePermit(b!, owner, { status: 'failed', error: 'bad\u0000byte' }),
        s.settlePermit(c!, owner, { status: 'failed', error: 'timeout' }),
      ]);
      assert.deepEqual(
        settled.map((r) => (r.status === 'fulfilled' ? r.value?.status : 'rejected')),
        ['landed', 'rejected', 'failed'],
      );
      assert.equal(
        (await s.ledger('acme', 'r2')).effects[0]?.status,
        'granted',
        'the refused outcome wrote nothing',
      );
      // The grants' ledger record, then the outcomes' (settled again one per transaction after the
      // batch was refused): the refused one is in none of them.
      const [grants, ...outcomes] = committed(await s.listAudit({ limit: 100 }));
      assert.deepEqual([...grants!.ids].sort(), [a, b, c].sort());
      assert.deepEqual(outcomes.flatMap((r) => r.ids).sort(), [a, c].sort());
      assert.equal((await s.verifyAudit()).ok, true);
    } finally {
      await done();
    }
  });

  test('an outcome queued for its group commit when the store closes is committed before the pool ends', async () => {
    const { stores, done } = await replicas('close', 2);
    try {
      const [a, b] = stores as [PgStore, PgStore];
      const [d] = await a.grantPermits([grant()]);
      assert.ok(d?.kind === 'granted');
      const settled = a.settlePermit(
        d.response.permit.id,
        { tenant: 'acme', agent: 'bot' },
        { status: 'landed' },
      );
      await a.close();
      assert.equal((await settled)?.status, 'landed');
      assert.equal((await b.ledger('acme', 'r1')).effects[0]?.status, 'landed');
    } finally {
      await done();
    }
  });

  test('a run another replica registers while a batch is being decided: the batch is decided again, and the run\u2019s owner refuses the asker', async () => {
    const { stores, done } = await replicas('race', 2);
    try {
      const [a, b] = stores as [PgStore, PgStore];
      // Replica B's registration is written but not committed yet when A's batch reads the run.
      let commit!: () => void;
      const held = new Promise<void>((r) => (commit = r));
      let inserted!: () => void;
      const registered = new Promise<void>((r) => (inserted = r));
      const other = b.sql.begin(async (tx) => {
        await tx`INSERT INTO runs (run_id, tenant, agent, parent_run_id, lineage, features, worker_id, started_at)
          VALUES ('r9', 'acme', 'other', NULL, '[]', '[]', 'w7', ${new Date().toISOString()})`;
        inserted();
        await held;
      });
      await registered;
      const decided = a.grantPermits([grant({ runId: 'r9', idempotencyKey: 'k' }), grant({ runId: 'r2' })]);
      await someoneWaitsOnALock(a.sql);
      commit();
      await other;
      assert.deepEqual(
        (await decided).map((d) => d.kind),
        ['conflict', 'granted'],
      );
      assert.equal((await a.getRun('acme', 'r9'))?.agent, 'other');
      assert.deepEqual(
        (await a.ledger('acme', 'r9')).effects,
        [],
        'no permit for a run the asker does not own',
      );
    } finally {
      await done();
    }
  });

  test('an idempotency key another replica uses while a batch is being decided: never two permits, the first in doubt', async () => {
    const { stores, done } = await replicas('key', 2);
    try {
      const [a, b] = stores as [PgStore, PgStore];
      await a.grantPermits([grant({ runId: 'r1' })]); // r1 is bot's
      let commit!: () => void;
      const held = new Promise<void>((r) => (commit = r));
      let inserted!: () => void;
      const written = new Promise<void>((r) => (inserted = r));
      // B's grant of key k is written but not committed when A's batch looks the key up.
      const other = b.sql.begin(async (tx) => {
        await tx`INSERT INTO permits (id, rev, run_id, tenant, agent, worker_id, capability, class, idempotency_key,
            status, lineage, features, intended_at)
          VALUES ('p_other', 0, 'r1', 'acme', 'bot', 'w2', 'crm.update', 'write', 'k', 'granted', '[]', '[]',
            ${new Date().toISOString()})`;
        inserted();
        await held;
      });
      await written;
      const decided = a.grantPermits([grant({ runId: 'r1', idempotencyKey: 'k' }), grant({ runId: 'r2' })]);
      await someoneWaitsOnALock(a.sql);
      commit();
      await other;
      assert.deepEqual(
        (await decided).map((d) => d.kind),
        ['conflict', 'granted'],
      );
      const keyed = (await a.ledger('acme', 'r1')).effects.filter((e) => e.idempotencyKey === 'k');
      assert.deepEqual(
        keyed.map((e) => [e.permitId, e.status]),
        [['p_other', 'in_doubt']],
      );
    } finally {
      await done();
    }
  });
});
