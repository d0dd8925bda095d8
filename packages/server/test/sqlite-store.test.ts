import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, fsync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { hashSecret, mintToken } from '../src/auth/tokens.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { directiveInput, storeContract } from './store-contract.ts';
import { effectsContract, grant } from './effects-contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'killpath-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `store-${++files}.db`);

storeContract('SqliteStore(:memory:)', async () => new SqliteStore(':memory:'));
storeContract('SqliteStore(file)', async () => new SqliteStore(freshPath()));
effectsContract('SqliteStore(:memory:)', async () => new SqliteStore(':memory:'));
effectsContract('SqliteStore(file)', async () => new SqliteStore(freshPath()));

const audit = (type: string) => () => [{ type, actor: 'alice', tenant: 'acme', data: { n: 1 } }];

describe('SqliteStore group commit', () => {
  test('writes queued in one turn commit together, in order: a halt queued first refuses the permit queued after it', async () => {
    const s = new SqliteStore(freshPath());
    const [issued, decisions] = await Promise.all([
      s.issueDirective(directiveInput({ scope: 'tenant:acme' }), audit('directive.issued')),
      s.grantPermits([grant({ tenant: 'acme' })]),
    ]);
    assert.equal(decisions[0]!.kind, 'halted');
    const [permit] = await s.grantPermits([grant({ tenant: 'globex', runId: 'g1' })]);
    assert.equal(permit!.kind, 'granted');
    assert.equal((await s.switchboard()).directives[0]!.id, issued.directive.id);
    const verdict = await s.verifyAudit();
    assert.equal(verdict.ok, true);
    assert.equal(verdict.records, 2);
    await s.close();
  });

  test('one failing write in a batch rolls back alone; the others commit and the chain verifies', async () => {
    const s = new SqliteStore(freshPath());
    const boom = () => {
      throw new Error('audit builder failed');
    };
    const results = await Promise.allSettled([
      s.issueDirective(directiveInput({ scope: 'tenant:acme' }), audit('directive.issued')),
      s.issueDirective(directiveInput({ scope: 'tenant:globex' }), boom),
      s.issueDirective(directiveInput({ scope: 'tenant:initech' }), audit('directive.issued')),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    const board = await s.switchboard();
    assert.deepEqual(
      board.directives.map((d) => d.scopeText),
      ['tenant:acme', 'tenant:initech'],
    );
    assert.equal(board.rev, 2, 'the failed write took no rev');
    const verdict = await s.verifyAudit();
    assert.equal(verdict.ok, true);
    assert.equal(verdict.records, 2);
    await s.close();
  });

  test('close commits writes still queued for the next group commit', async () => {
    const path = freshPath();
    const s = new SqliteStore(path);
    const pending = s.appendAudit([{ type: 'note', actor: 'alice', tenant: null, data: {} }]);
    await s.close();
    assert.equal((await pending).length, 1);
    const reopened = new SqliteStore(path);
    assert.equal((await reopened.listAudit({})).length, 1);
    await reopened.close();
  });
});

describe('SqliteStore on disk', () => {
  test('a reopened store keeps rev, directives, tokens and a verifying audit chain', async () => {
    const path = freshPath();
    const s1 = new SqliteStore(path);
    const a = await s1.issueDirective(directiveInput({ scope: 'tenant:acme' }), audit('directive.issued'));
    const b = await s1.issueDirective(
      directiveInput({ scope: 'global', tenant: null, level: 'kill' }),
      audit('directive.issued'),
    );
    await s1.issueDirective(
      directiveInput({ scope: 'agent:acme/bot', idempotencyKey: 'tok:k1' }),
      audit('directive.issued'),
    );
    await s1.clearDirective(a.directive.id, audit('directive.cleared'));
    const { secret } = await mintToken(s1, { role: 'operator', tenant: 'acme' }, 'test');
    await s1.registerRun({
      runId: 'r1',
      tenant: 'acme',
      agent: 'bot',
      parentRunId: null,
      lineage: [],
      features: [],
      workerId: 'w1',
      startedAt: '2025-06-01T00:00:00.000Z',
    });
    const before = {
      rev: await s1.rev(),
      board: await s1.switchboard(),
      all: await s1.listDirectives({}),
      audit: await s1.listAudit({ limit: 1000 }),
      verdict: await s1.verifyAudit(),
    };
    assert.equal(before.rev, 4);
    assert.equal(before.verdict.ok, true);
    await s1.close();

    const s2 = new SqliteStore(path);
    try {
      assert.equal(await s2.rev(), before.rev);
      assert.deepEqual(await s2.switchboard(), before.board);
      assert.deepEqual(await s2.listDirectives({}), before.all);
      assert.deepEqual(await s2.listAudit({ limit: 1000 }), before.audit);
      assert.deepEqual(await s2.verifyAudit(), before.verdict);
      assert.equal((await s2.findToken(hashSecret(secret)))?.tenant, 'acme');
      assert.equal((await s2.getRun('acme', 'r1'))?.agent, 'bot');
      // The idempotency key survives too, and the next commit continues both sequences.
      const retry = await s2.issueDirective(
        directiveInput({ scope: 'agent:acme/bot', idempotencyKey: 'tok:k1' }),
        audit('operator_action'),
      );
      assert.equal(retry.created, false);
      const next = await s2.issueDirective(
        directiveInput({ scope: 'tenant:globex' }),
        audit('directive.issued'),
      );
      assert.equal(next.directive.rev, before.rev + 1);
      assert.ok((await s2.getDirective(b.directive.id))?.clearedRev === null);
      const v = await s2.verifyAudit();
      assert.equal(v.ok, true);
      assert.equal(v.records, before.audit.length + 2);
    } finally {
      await s2.close();
    }
  });

  test('committed directives and audit survive a SIGKILL of the writing process', async () => {
    const path = freshPath();
    const child = `
      import { writeSync } from 'node:fs';
      const { SqliteStore } = await import(process.env.KP_STORE_URL);
      const store = new SqliteStore(process.env.KP_DB);
      const input = (scope, over = {}) => ({ level: 'halt', scope, tenant: 'acme', capabilities: null, rate: null, escalation: [], escalatedFrom: null, graceMs: 0,
        drain: 'discard', memory: 'revert', reason: 'r', justification: 'j', actor: 'alice', idempotencyKey: null, releases: [], ...over });
      const ev = (type) => () => [{ type, actor: 'alice', tenant: 'acme', data: { type } }];
      const a = await store.issueDirective(input({ kind: 'tenant', tenant: 'acme' }), ev('directive.issued'));
      await store.issueDirective(input({ kind: 'agent', tenant: 'acme', agent: 'bot' }, { level: 'kill' }), ev('directive.issued'));
      await store.issueDirective(input({ kind: 'global' }, { tenant: null }), ev('directive.issued'));
      await store.clearDirective(a.directive.id, ev('directive.cleared'));
      await store.createToken({ id: 't_1', name: 'ops', role: 'operator', tenant: 'acme', agent: null }, 'f'.repeat(64), []);
      const board = await store.switchboard();
      const verdict = await store.verifyAudit();
      writeSync(1, JSON.stringify({ rev: await store.rev(), ids: board.directives.map((d) => d.id).sort(), verdict }));
      process.kill(process.pid, 'SIGKILL');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], {
      env: {
        ...process.env,
        KP_DB: path,
        KP_STORE_URL: pathToFileURL(join(import.meta.dirname, '../src/store/sqlite-store.ts')).href,
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.signal, 'SIGKILL', `child did not die by SIGKILL: status ${r.status}, stderr ${r.stderr}`);
    const seen = JSON.parse(r.stdout) as {
      rev: number;
      ids: string[];
      verdict: { ok: boolean; records: number; head: string };
    };
    assert.equal(seen.rev, 4);
    assert.equal(seen.ids.length, 2);
    // The process never closed the database: the commits are in the WAL, not yet checkpointed.
    assert.ok(existsSync(`${path}-wal`), 'the write-ahead log is left behind');

    const store = new SqliteStore(path);
    try {
      assert.equal(await store.rev(), seen.rev);
      const board = await store.switchboard();
      assert.equal(board.rev, seen.rev);
      assert.deepEqual(board.directives.map((d) => d.id).sort(), seen.ids);
      assert.deepEqual(await store.verifyAudit(), seen.verdict);
      assert.equal(seen.verdict.records, 4);
      assert.equal((await store.findToken('f'.repeat(64)))?.id, 't_1');
    } finally {
      await store.close();
    }
  });

  test('group commit with the fsync off the loop: nobody is answered before an fsync that started after their commit ends; past three fsyncs, commits share the next one', async () => {
    const path = freshPath();
    // Held fsyncs: the test decides when each one ends.
    const pending: (() => void)[] = [];
    const store = new SqliteStore(path, { fsync: (fd, cb) => void pending.push(() => fsync(fd, cb)) });
    const tick = () => new Promise((ok) => setImmediate(ok));
    const waiting = () => pending.length;
    const answered: string[] = [];
    const append = (name: string) =>
      store
        .appendAudit([{ type: 'note', actor: 'a', tenant: null, data: { name } }])
        .then(() => answered.push(name));
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await tick();
    };
    try {
      const first = append('first');
      while (waiting() === 0) await tick();
      // Committed to the WAL (another connection reads it) but not yet answered.
      const raw = new DatabaseSync(path, { readOnly: true });
      assert.equal((raw.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n, 1);
      raw.close();
      // Two writes of one turn: one commit, one fsync of their own, started at once.
      const second = Promise.all([append('second'), append('second too')]);
      while (waiting() < 2) await tick();
      await turns(5);
      assert.equal(answered.length, 0, 'nothing is answered while the fsync after it has not ended');
      assert.equal(waiting(), 2, 'one fsync per group commit');
      // The second fsync ends first: its commit is on disk, but it is answered only after the first
      // (answers, and so hub deltas, go out in commit order).
      pending.splice(1, 1)[0]!();
      await turns(5);
      assert.equal(answered.length, 0, 'not answered before the commit before it');
      // Three fsyncs run (the first write's, the third's, the fourth's); the fifth commit waits.
      const third = append('third');
      while (waiting() < 2) await tick();
      const fourth = append('fourth');
      while (waiting() < 3) await tick();
      const fifth = append('fifth');
      await turns(5);
      assert.equal(waiting(), 3, 'three fsyncs at most: the fifth commit waits for one to end');
      pending.shift()!(); // the first write's
      await Promise.all([first, second]);
      assert.deepEqual(answered, ['first', 'second', 'second too'], 'answered in commit order');
      while (waiting() < 3) await tick();
      await turns(5);
      assert.ok(!answered.includes('fifth'), 'its fsync, started after its commit, has not ended');
      while (waiting() > 0) pending.shift()!();
      await Promise.all([third, fourth, fifth]);
      assert.deepEqual(answered, ['first', 'second', 'second too', 'third', 'fourth', 'fifth']);
    } finally {
      const closing = store.close();
      while (
        pending.length > 0 ||
        !(await Promise.race([closing.then(() => true), tick().then(() => false)]))
      )
        pending.shift()?.();
      await closing;
    }
  });

  test("the store's connection runs synchronous=NORMAL, not OFF: the WAL header is synced when the WAL restarts after a checkpoint", async () => {
    const db = new DatabaseSync(freshPath());
    const store = new SqliteStore(db);
    try {
      assert.equal((db.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous, 1);
    } finally {
      await store.close();
    }
  });

  test('a failed WAL fsync fails the store for good: the waiting caller, a commit whose fsync ends fine after it, and every later caller are refused (unavailable)', async () => {
    const path = freshPath();
    const pending: ((err: NodeJS.ErrnoException | null) => void)[] = [];
    const failures: string[] = [];
    const store = new SqliteStore(path, {
      fsync: (fd, cb) => void pending.push((err) => (err ? cb(err) : fsync(fd, cb))),
      onDiskFailure: (err) => failures.push(err.code),
    });
    const tick = () => new Promise((ok) => setImmediate(ok));
    const note = (n: number) => store.appendAudit([{ type: 'note', actor: 'a', tenant: null, data: { n } }]);
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => 'answered',
        (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
      );
    try {
      const first = outcome(note(1));
      while (pending.length < 1) await tick();
      const second = outcome(note(2));
      while (pending.length < 2) await tick();
      pending.shift()!(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      pending.shift()!(null); // the second commit's fsync ends fine, after the failed one
      for (const o of [await first, await second, await outcome(note(3)), await outcome(store.rev())]) {
        if (o === 'answered') continue; // a read needs no fsync
        assert.match(o, /^unavailable: the store's disk failed .*EIO.*must restart/);
      }
      assert.notEqual(await first, 'answered');
      assert.notEqual(await second, 'answered', 'an fsync that ends after a failed one is not trusted');
      assert.notEqual(await outcome(note(4)), 'answered');
      assert.equal(pending.length, 0, 'no fsync is even tried once the store has failed');
      assert.deepEqual(failures, ['unavailable'], 'told once');
    } finally {
      while (pending.length > 0) pending.shift()!(null);
      await store.close();
    }
  });

  test('the database is in WAL mode', async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const raw = new DatabaseSync(path, { readOnly: true });
    try {
      assert.deepEqual({ ...(raw.prepare('PRAGMA journal_mode').get() as object) }, { journal_mode: 'wal' });
    } finally {
      raw.close();
      await store.close();
    }
  });

  test('a token secret is never written to disk, only its SHA-256', async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const { secret, record } = await mintToken(
      store,
      { role: 'agent', tenant: 'acme', agent: 'bot' },
      'test',
    );
    await store.close();
    const raw = new DatabaseSync(path, { readOnly: true });
    try {
      const row = raw.prepare('SELECT * FROM tokens WHERE id = ?').get(record.id) as Record<string, unknown>;
      assert.equal(row.secret_hash, hashSecret(secret));
      for (const [col, v] of Object.entries(row))
        assert.ok(!String(v).includes(secret.slice(3)), `column ${col} holds the secret`);
    } finally {
      raw.close();
    }
    assert.equal(
      readFileSync(path).includes(secret.slice(3)),
      false,
      'the secret appears in the database file',
    );
  });
});
