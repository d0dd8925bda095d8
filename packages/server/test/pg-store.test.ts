import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import type { AuditRecord } from '@killpath/protocol';
import { verifyChain } from '../src/audit/chain.ts';
import { openPool, type Sql } from '../src/store/pg/connect.ts';
import { PgStore } from '../src/store/pg/pg-store.ts';
import {
  MIGRATIONS,
  PG_SCHEMA_VERSION,
  checkSchema,
  migrate,
  schemaVersion,
} from '../src/store/pg/schema.ts';
import { REV_CHANNEL, appendAudit, bumpRev, readRev } from '../src/store/pg/tx.ts';
import { dropLeftovers, freshDatabase, freshPgStore, requirePostgres, type TestDatabase } from './pg.ts';
import { effectsContract } from './effects-contract.ts';
import {
  auditContract,
  directiveContract,
  directiveInput,
  drillContract,
  fleetContract,
  policyContract,
  tokenContract,
} from './store-contract.ts';

const available = await requirePostgres();
after(dropLeftovers);

/** Reads the whole chain back as records, oldest first. */
async function chain(sql: Sql): Promise<AuditRecord[]> {
  const rows = await sql<
    {
      seq: string;
      ts: string;
      type: string;
      actor: string;
      tenant: string | null;
      data: string;
      prev_hash: string;
      hash: string;
    }[]
  >`SELECT * FROM audit ORDER BY seq`;
  return rows.map((r) => ({
    seq: Number(r.seq),
    ts: r.ts,
    type: r.type,
    actor: r.actor,
    tenant: r.tenant,
    data: JSON.parse(r.data) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  }));
}

/** A migrated database and `n` pools on it (as `n` replicas would hold), ended and dropped by `done`. */
async function replicas(
  name: string,
  n: number,
): Promise<{ db: TestDatabase; pools: Sql[]; done: () => Promise<void> }> {
  const db = await freshDatabase(name);
  const pools = Array.from({ length: n }, () => openPool(db.url, { max: 4 }));
  await migrate(pools[0]!);
  return {
    db,
    pools,
    done: async () => {
      await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
      await db.drop();
    },
  };
}

describe('PostgreSQL schema', { skip: !available }, () => {
  test('serve refuses an empty database and an older or newer schema, saying what to run; migrate is idempotent and safe to race', async () => {
    const db = await freshDatabase('schema');
    const sql = openPool(db.url, { max: 2 });
    try {
      await assert.rejects(
        checkSchema(sql),
        /no killpath schema yet: run killpath migrate --store <url> first/,
      );
      await assert.rejects(PgStore.open(db.url), /run killpath migrate --store <url> first/);
      // Three replicas' migrations at once: one applies, the others find nothing to do.
      const other = openPool(db.url, { max: 2 });
      const third = openPool(db.url, { max: 2 });
      const runs = await Promise.all([migrate(sql), migrate(other), migrate(third)]);
      await Promise.all([other.end(), third.end()]);
      assert.deepEqual(runs.map((r) => r.applied.length).sort(), [0, 0, MIGRATIONS.length]);
      assert.equal(await schemaVersion(sql), PG_SCHEMA_VERSION);
      await checkSchema(sql);
      const store = await PgStore.open(db.url);
      await store.close();
      const older = PG_SCHEMA_VERSION - 1;
      await sql`UPDATE meta SET value = ${String(older)} WHERE key = 'schema'`;
      await assert.rejects(
        checkSchema(sql),
        older === 0
          ? /no killpath schema yet: run killpath migrate --store <url> first/
          : new RegExp(
              `schema version ${older}, older than this killpath's ${PG_SCHEMA_VERSION}: run killpath migrate`,
            ),
      );
      await sql`UPDATE meta SET value = ${String(PG_SCHEMA_VERSION + 1)} WHERE key = 'schema'`;
      await assert.rejects(checkSchema(sql), /newer than this killpath's .*: run a newer killpath on it/);
      await assert.rejects(migrate(sql), /newer than this killpath's/);
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
    }
  });

  test("the store URL's query sets the pool size and server settings over the defaults", async () => {
    const db = await freshDatabase('url_query');
    const plain = openPool(db.url, { max: 1 });
    const tuned = openPool(`${db.url}?max=3&statement_timeout=1234&lock_timeout=250`);
    try {
      assert.equal(plain.options.max, 1);
      assert.equal(tuned.options.max, 3);
      const [a] = await plain<{ statement_timeout: string }[]>`SHOW statement_timeout`;
      assert.equal(a!.statement_timeout, '10s');
      const [b] = await tuned<{ statement_timeout: string }[]>`SHOW statement_timeout`;
      assert.equal(b!.statement_timeout, '1234ms');
      const [c] = await tuned<{ lock_timeout: string }[]>`SHOW lock_timeout`;
      assert.equal(c!.lock_timeout, '250ms');
      assert.throws(() => openPool(`${db.url}?max=lots`), /max=lots must be a positive whole number/);
    } finally {
      await Promise.all([plain.end(), tuned.end()]);
      await db.drop();
    }
  });

  test('a URL that is not PostgreSQL is refused in one line; an unreachable server is unavailable', async () => {
    await assert.rejects(PgStore.open('mysql://x@h/db'), /is not a PostgreSQL URL/);
    await assert.rejects(PgStore.open('postgres://postgres@127.0.0.1:5432'), /names no database/);
    await assert.rejects(PgStore.open('not a url'), /is not a URL/);
    await assert.rejects(
      PgStore.open('postgres://postgres:secret@127.0.0.1:1/db', { connectTimeoutSeconds: 2 }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'unavailable');
        assert.match(
          err.message,
          /cannot reach PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/db/,
        );
        assert.doesNotMatch(err.message, /secret/);
        return true;
      },
    );
  });
});

describe('PostgreSQL transactional helpers', { skip: !available }, () => {
  test('bumpRev is gapless and in commit order under concurrent transactions from three pools; rollbacks take no rev', async () => {
    const { pools, db, done } = await replicas('bumprev', 3);
    const heard: number[] = [];
    const listener = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await listener.listen(REV_CHANNEL, (rev) => heard.push(Number(rev)));
      const n = 90;
      const results = await Promise.allSettled(
        Array.from({ length: n }, (_, i) =>
          pools[i % 3]!.begin(async (tx) => {
            const rev = await bumpRev(tx);
            // Every fifth transaction rolls back after its bump: its number is not used.
            if (i % 5 === 4) throw new Error('rolled back');
            await tx`SELECT pg_sleep(${(i % 3) / 1000})`;
            return rev;
          }),
        ),
      );
      const committed = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      assert.equal(committed.length, n - n / 5);
      assert.deepEqual(
        [...committed].sort((a, b) => a - b),
        Array.from({ length: committed.length }, (_, i) => i + 1),
        'committed revs are 1..N with no gap and no repeat',
      );
      assert.equal(await readRev(pools[1]!), committed.length);
      // Notifications arrive in commit order: commit order is rev order.
      for (let i = 0; i < 200 && heard.length < committed.length; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(
        heard,
        Array.from({ length: committed.length }, (_, i) => i + 1),
      );
    } finally {
      await listener.end({ timeout: 1 });
      await done();
    }
  });

  test('appendAudit keeps one chain across two pools appending at once; a rolled-back append leaves nothing', async () => {
    const { pools, done } = await replicas('audit', 2);
    try {
      const n = 60;
      const results = await Promise.allSettled(
        Array.from({ length: n }, (_, i) =>
          pools[i % 2]!.begin(async (tx) => {
            // Some transactions also move the rev first (a directive's commit): the lock order holds.
            if (i % 4 === 0) await bumpRev(tx);
            const events = Array.from({ length: 1 + (i % 3) }, (_, k) => ({
              type: 'test.event',
              actor: `pool-${i % 2}`,
              tenant: i % 2 === 0 ? 'acme' : null,
              data: { i, k, text: 'ünïcödé "q"' },
            }));
            const records = await appendAudit(tx, events);
            if (i % 7 === 6) throw new Error('rolled back');
            return records;
          }),
        ),
      );
      const appended = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      const expected = Array.from({ length: n }, (_, i) => i)
        .filter((i) => i % 7 !== 6)
        .reduce((sum, i) => sum + 1 + (i % 3), 0);
      assert.equal(appended.length, expected);
      const stored = await chain(pools[1]!);
      assert.deepEqual(
        stored,
        [...appended].sort((a, b) => a.seq - b.seq),
        'what each caller got is what is stored',
      );
      const verdict = verifyChain(stored);
      assert.equal(verdict.ok, true, JSON.stringify(verdict));
      assert.equal(verdict.records, expected);
      assert.equal(stored.filter((r) => (r.data as { i: number }).i % 7 === 6).length, 0);
      const [head] = await pools[0]!<{ seq: string; hash: string }[]>`SELECT seq, hash FROM audit_head`;
      assert.equal(Number(head!.seq), expected);
      assert.equal(head!.hash, stored.at(-1)!.hash);
      assert.deepEqual(await pools[0]!.begin((tx) => appendAudit(tx, [])), []);
    } finally {
      await done();
    }
  });
});

// The same concept suites as SQLite (store-contract.ts), every case, each on a fresh database.
describe('Store contract: PgStore', { skip: !available }, () => {
  const make = () => freshPgStore('contract');
  directiveContract(make);
  auditContract(make);
  tokenContract(make);
  policyContract(make);
  drillContract(make);
  fleetContract(make);
});

// The permits concept's suite (effects-contract.ts), every case, as SQLite runs it.
describe('Permits contract: PgStore', { skip: !available }, () => {
  effectsContract('PgStore', () => freshPgStore('effects'));
});

describe('PostgreSQL directives across replicas', { skip: !available }, () => {
  const audit = (r: { directive: { id: string }; created: boolean }) => [
    {
      type: r.created ? 'directive.issued' : 'directive.converged',
      actor: 'alice',
      tenant: 'acme',
      data: { id: r.directive.id },
    },
  ];

  test('retries with one idempotency key and identical issues on three replicas converge to one directive each; concurrent clears: one wins; revs gapless and notified in order', async () => {
    const db = await freshDatabase('replica_directives');
    const sql = openPool(db.url, { max: 1 });
    await migrate(sql);
    const replicas = await Promise.all([0, 1, 2].map(() => PgStore.open(db.url, { max: 3 })));
    const heard: number[] = [];
    const listener = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await listener.listen(REV_CHANNEL, (rev) => heard.push(Number(rev)));
      const on = (i: number) => replicas[i % 3]!;
      // A retry landing on any replica: 12 calls with one key, content varying (the key wins).
      const keyed = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          on(i).issueDirective(
            directiveInput({ scope: 'agent:acme/bot', idempotencyKey: 'tok1:k1', graceMs: 1000 + i }),
            audit,
          ),
        ),
      );
      assert.equal(keyed.filter((r) => r.created).length, 1);
      assert.equal(new Set(keyed.map((r) => r.directive.id)).size, 1);
      assert.ok(keyed.filter((r) => !r.created).every((r) => r.converged === 'idempotency_key'));
      // The same content without a key: one directive, the others converge on it.
      const same = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          on(i).issueDirective(directiveInput({ scope: 'tenant:globex' }), audit),
        ),
      );
      assert.equal(same.filter((r) => r.created).length, 1);
      assert.equal(new Set(same.map((r) => r.directive.id)).size, 1);
      // Different directives from every replica: each its own rev.
      const many = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          on(i).issueDirective(directiveInput({ scope: `run:r${i}`, tenant: 'acme' }), audit),
        ),
      );
      assert.ok(many.every((r) => r.created));
      // Three replicas clearing one directive: exactly one clears it.
      const target = many[0]!.directive.id;
      const clears = await Promise.all(
        replicas.map((s) => s.clearDirective(target, (d) => audit({ directive: d, created: true }))),
      );
      assert.equal(clears.filter((c) => c !== null).length, 1);
      const revs = [keyed, same, many].flatMap((rs) =>
        rs.filter((r) => r.created).map((r) => r.directive.rev),
      );
      revs.push(clears.find((c) => c !== null)!.clearedRev!);
      assert.deepEqual(
        revs.sort((a, b) => a - b),
        Array.from({ length: 18 }, (_, i) => i + 1),
        'one rev per change, 1..18, none lost to a converging call',
      );
      for (const s of replicas) assert.equal(await s.rev(), 18);
      const changes = await replicas[2]!.changesSince(0, 100);
      assert.deepEqual(
        changes.map((c) => c.rev),
        Array.from({ length: 18 }, (_, i) => i + 1),
      );
      const [key] = await sql<
        { n: string }[]
      >`SELECT COUNT(*) AS n FROM directives WHERE idempotency_key = 'tok1:k1'`;
      assert.equal(Number(key!.n), 1);
      for (let i = 0; i < 200 && heard.length < 18; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(
        heard,
        Array.from({ length: 18 }, (_, i) => i + 1),
        'notified once per rev, in commit order',
      );
      const records = await replicas[1]!.listAudit({ limit: 1000 });
      assert.equal(records.length, 12 + 12 + 15 + 1, 'every call audited once, converging ones too');
      assert.equal((await replicas[0]!.verifyAudit()).ok, true);
    } finally {
      await listener.end({ timeout: 1 });
      await Promise.all(replicas.map((s) => s.close()));
      await sql.end({ timeout: 1 });
      await db.drop();
    }
  });
});

describe('PostgreSQL store errors', { skip: !available }, () => {
  test('a database that is unreachable or does not answer in time is unavailable, never a bare driver error', async () => {
    const gone = new PgStore(
      openPool('postgres://postgres@127.0.0.1:1/none', { connectTimeoutSeconds: 2 }),
      'x',
    );
    try {
      await assert.rejects(gone.rev(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'unavailable');
        assert.match(err.message, /^the PostgreSQL store is unreachable: /);
        return true;
      });
    } finally {
      await gone.close();
    }
    const db = await freshDatabase('errors');
    const sql = openPool(db.url, { max: 1 });
    await migrate(sql);
    const store = await PgStore.open(db.url, { max: 2, lockTimeoutMs: 200 });
    let release = (): void => {};
    const held = new Promise<void>((r) => (release = r));
    let locked = (): void => {};
    const isLocked = new Promise<void>((r) => (locked = r));
    // Another session holds the rev row (a wedged directive transaction).
    const holder = sql.begin(async (tx) => {
      await tx`SELECT rev FROM rev WHERE id = 1 FOR UPDATE`;
      locked();
      await held;
    });
    try {
      await isLocked;
      await assert.rejects(
        store.issueDirective(directiveInput(), () => []),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'unavailable');
          assert.match(err.message, /could not answer now \(55P03\)/);
          return true;
        },
      );
      // A request the database refuses for what it is (a duplicate secret) is not turned into 'unavailable'.
      await store.createToken(
        { id: 't_1', name: 'a', role: 'admin', tenant: '*', agent: null },
        'h'.repeat(64),
        [],
      );
      await assert.rejects(
        store.createToken(
          { id: 't_2', name: 'b', role: 'admin', tenant: '*', agent: null },
          'h'.repeat(64),
          [],
        ),
        (err: Error & { code?: string }) => err.code === '23505',
      );
    } finally {
      release();
      await holder;
      await store.close();
      await sql.end({ timeout: 1 });
      await db.drop();
    }
  });
});
