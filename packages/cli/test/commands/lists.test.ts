/**
 * Lists an on-call reads after a halt are complete: `killpath compensations` and `killpath
 * journal RUN` on a run with more than 1,000 landed writes and a child run reach every row
 * (page by page with the printed next-page command, or `--all`), say "N of M", put the newest
 * first, carry `total` and `cursor` in `--json`, and list the child run's writes with the run's
 * (saying so; `--no-children` leaves them out). `journal --permitted-after D` lists the writes
 * permitted after a real halt was committed: none, exit 0; a forged one is found, exit 1.
 * A real control plane in this process answers.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { Directive, LedgerEntry } from '@killpath/protocol';
import type { Store } from '@killpath/server';

type PermitGrant = Parameters<Store['grantPermits']>[0][number];
import { cli } from '../cli-capture.ts';
import { startCliServer, type CliServer } from '../cli-server.ts';

const PARENT = 1_205;
const CHILD = 40;

const grant = (runId: string, lineage: string[], i: number): PermitGrant => ({
  workerId: 'w-7',
  runId,
  lineage,
  features: [],
  capability: 'crm.update',
  class: 'write',
  idempotencyKey: `${runId}-k${i}`,
  argsDigest: null,
  compensate: { action: 'crm.revert', n: i },
  tenant: 'acme',
  agent: 'support-bot',
  coolOffMs: 0,
});

/** Grants and lands `n` writes of a run, returning their permit ids in the order they were asked. */
async function landWrites(store: Store, runId: string, lineage: string[], n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 500) {
    const ds = await store.grantPermits(
      Array.from({ length: Math.min(500, n - i) }, (_, j) => grant(runId, lineage, i + j)),
    );
    for (const d of ds) {
      assert.equal(d.kind, 'granted');
      if (d.kind === 'granted') ids.push(d.response.permit.id);
    }
  }
  await Promise.all(
    ids.map((id) => store.settlePermit(id, { tenant: 'acme', agent: 'support-bot' }, { status: 'landed' })),
  );
  return ids;
}

/** The CLI's output split into lines (a table is printed as one string). */
async function lines(argv: string[]) {
  const r = await cli(argv);
  return { ...r, out: r.out.join('\n').split('\n') };
}

const run = (runId: string, parentRunId: string | null, lineage: string[]) => ({
  runId,
  tenant: 'acme',
  agent: 'support-bot',
  parentRunId,
  lineage,
  features: [],
  workerId: 'w-7',
  startedAt: new Date().toISOString(),
});

describe('complete lists: compensations, journal with children, writes permitted after a halt', () => {
  let s: CliServer;
  let halt: Directive;
  const landed = new Set<string>();
  before(async () => {
    s = await startCliServer('lists');
    const store = s.server.controlPlane.store;
    await store.registerRun(run('run-7', null, []));
    await store.registerRun(run('run-7.1', 'run-7', ['run-7']));
    await store.registerRun(run('run-8', null, []));
    for (const id of await landWrites(store, 'run-7', [], PARENT)) landed.add(id);
    for (const id of await landWrites(store, 'run-7.1', ['run-7'], CHILD)) landed.add(id);
    await landWrites(store, 'run-8', [], 3);
    // A real halt of run-7 (and so of its child), then the workers' halted reports.
    const k = await cli([
      'kill',
      '--run',
      'run-7',
      '--tenant',
      'acme',
      '--reason',
      'bad writes',
      '--json',
      ...s.conn,
    ]);
    assert.equal(k.code, 0, k.err.join('\n'));
    halt = (JSON.parse(k.out.join('\n')) as { directive: Directive }).directive;
    await store.recordHalted(
      ['run-7', 'run-7.1'].map((runId) => ({
        tenant: 'acme',
        runId,
        directiveId: halt.id,
        at: new Date().toISOString(),
      })),
    );
    // The sibling keeps writing after the halt: not covered, not listed as permitted after it.
    await landWrites(store, 'run-8', [], 2);
  });
  after(async () => {
    await s?.close();
  });

  it('compensations: one page says "N of M" and prints the command for the next; following it reaches every row once', async () => {
    const seen = new Set<string>();
    let argv = ['compensations', '--run', 'run-7', '--limit', '500'];
    let pagesRead = 0;
    let previousNewest = '';
    for (;;) {
      const r = await lines([...argv, ...s.conn]);
      assert.equal(r.code, 0, r.err.join('\n'));
      pagesRead++;
      const head = r.out.find((l) => / of \d+ writes to compensate/.test(l));
      assert.ok(head, r.out.join('\n'));
      const [, shown, total] = /^(\d+) of (\d+) writes to compensate, newest first$/.exec(head)!;
      assert.equal(Number(total), PARENT + CHILD);
      if (pagesRead === 1) assert.ok(r.out.includes('run run-7 and its 1 child run(s)'));
      for (const line of r.out) {
        const key = /\b(run-7(?:\.1)?-k\d+)\b/.exec(line)?.[1];
        if (key) {
          assert.ok(!seen.has(key), `${key} on two pages`);
          seen.add(key);
        }
      }
      const next = r.out.find((l) => l.startsWith('next page: '));
      if (pagesRead === 1) previousNewest = r.out[3] ?? '';
      if (next === undefined) {
        assert.equal(Number(shown), PARENT + CHILD - 500 * (pagesRead - 1));
        break;
      }
      assert.equal(Number(shown), 500);
      const words = /^next page: (.*?)\s+\(--all: every page\)$/.exec(next)![1]!.split(' ');
      assert.deepEqual(words.slice(0, 6), ['killpath', 'compensations', '--run', 'run-7', '--limit', '500']);
      argv = words.slice(1);
    }
    assert.equal(pagesRead, 3);
    assert.equal(seen.size, PARENT + CHILD, 'every landed write of the run and its child, once');
    assert.match(
      previousNewest,
      /run-7\.1-k\d+/,
      'the newest writes (the child’s, landed last) head the first page',
    );
  });

  it('compensations --all --json: every row, with total and a null cursor; one page: total and a cursor', async () => {
    const all = await cli(['compensations', '--run', 'run-7', '--all', '--json', ...s.conn]);
    assert.equal(all.code, 0, all.err.join('\n'));
    const a = JSON.parse(all.out.join('\n')) as {
      compensations: (LedgerEntry & { haltedBy: string })[];
      total: number;
      cursor: string | null;
    };
    assert.equal(a.total, PARENT + CHILD);
    assert.equal(a.cursor, null);
    assert.deepEqual(new Set(a.compensations.map((c) => c.permitId)), landed);
    assert.ok(a.compensations.every((c) => c.haltedBy === halt.id));
    const sorted = [...a.compensations].sort((x, y) => y.intendedAt.localeCompare(x.intendedAt));
    assert.deepEqual(
      a.compensations.map((c) => c.intendedAt),
      sorted.map((c) => c.intendedAt),
      'newest first',
    );
    const one = JSON.parse(
      (await cli(['compensations', '--tenant', 'acme', '--json', ...s.conn])).out.join('\n'),
    ) as { compensations: unknown[]; total: number; cursor: string | null };
    assert.equal(one.compensations.length, 1000);
    assert.equal(one.total, PARENT + CHILD, 'the sibling run-8 was not halted: not on the list');
    assert.equal(typeof one.cursor, 'string');
    const alone = JSON.parse(
      (
        await cli(['compensations', '--run', 'run-7', '--no-children', '--all', '--json', ...s.conn])
      ).out.join('\n'),
    ) as { total: number };
    assert.equal(alone.total, PARENT);
  });

  it('journal RUN lists its child run with it by default and says so; --no-children leaves it out', async () => {
    const r = await lines(['journal', 'run-7', ...s.conn]);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.ok(
      r.out.includes(
        'with its 1 child run(s) (run-7.1): the default for a run with children; --no-children for the run alone',
      ),
      r.out.slice(0, 3).join('\n'),
    );
    assert.ok(
      r.out.includes(
        `intended ${PARENT + CHILD}, landed ${PARENT + CHILD}, failed 0, aborted 0, cancelled 0, inDoubt 0, open 0`,
      ),
    );
    assert.ok(r.out.includes(`effects: 1000 of ${PARENT + CHILD}, newest first`));
    assert.ok(r.out.some((l) => l.startsWith('next page: killpath journal run-7 --cursor ')));
    const alone = await cli(['journal', 'run-7', '--no-children', '--json', ...s.conn]);
    const j = JSON.parse(alone.out.join('\n')) as {
      withChildren: boolean;
      children: { runId: string }[];
      total: { effects: number };
    };
    assert.equal(j.withChildren, false);
    assert.deepEqual(
      j.children.map((c) => c.runId),
      ['run-7.1'],
      'the child is named even when left out',
    );
    assert.equal(j.total.effects, PARENT);
    const text = await lines(['journal', 'run-7', '--no-children', ...s.conn]);
    assert.ok(text.out.includes('the run alone (--no-children); it has 1 child run(s): run-7.1'));
  });

  it('journal RUN --all --json reaches every effect of the run and its child, with total and cursor', async () => {
    const r = await cli(['journal', 'run-7', '--all', '--limit', '700', '--json', ...s.conn]);
    assert.equal(r.code, 0, r.err.join('\n'));
    const j = JSON.parse(r.out.join('\n')) as {
      effects: LedgerEntry[];
      total: { effects: number; events: number };
      cursor: string | null;
    };
    assert.equal(j.total.effects, PARENT + CHILD);
    assert.equal(j.cursor, null);
    assert.deepEqual(new Set(j.effects.map((e) => e.permitId)), landed);
    assert.equal(j.effects.length, landed.size, 'no row twice');
  });

  it('a cursor this list did not give is one line and exit 2', async () => {
    const r = await cli(['compensations', '--cursor', 'not-a-cursor', ...s.conn]);
    assert.equal(r.code, 2);
    assert.deepEqual(r.err, [
      'killpath compensations: cursor is not one this list gave (start again without it)',
    ]);
    assert.deepEqual(r.out, []);
  });

  it('journal --permitted-after: none after a real halt (exit 0); a write permitted after it is listed (exit 1)', async () => {
    const none = await cli(['journal', '--permitted-after', halt.id, ...s.conn]);
    assert.equal(none.code, 0, none.err.join('\n'));
    assert.match(
      none.out[0]!,
      new RegExp(`^halt ${halt.id} on run:acme/run-7 was committed at rev ${halt.rev}, `),
    );
    assert.equal(none.out[1], 'writes permitted after the commit, of the runs it covers: none');
    const forRun = await cli(['journal', 'run-7', '--permitted-after', halt.id, '--json', ...s.conn]);
    assert.equal(forRun.code, 0);
    const j = JSON.parse(forRun.out.join('\n')) as { total: number; runs: string[]; cursor: null };
    assert.equal(j.total, 0);
    assert.deepEqual(j.runs, ['run-7', 'run-7.1']);
    // What a broken control plane would have done: grant the child a write after the commit.
    const db = new DatabaseSync(join(s.dir, 'killpath.db'));
    try {
      db.prepare(
        `INSERT INTO permits (id, rev, run_id, tenant, agent, worker_id, capability, class, status, lineage, features, intended_at)
         VALUES ('p_forged', ?, 'run-7.1', 'acme', 'support-bot', 'w-7', 'crm.update', 'write', 'landed', '["run-7"]', '[]', ?)`,
      ).run(halt.rev, new Date().toISOString());
    } finally {
      db.close();
    }
    const found = await lines(['journal', '--permitted-after', halt.id, ...s.conn]);
    assert.equal(found.code, 1);
    assert.equal(
      found.out[1],
      'writes permitted after the commit, of the runs it covers: 1 (there should be none)',
    );
    assert.match(found.out.join('\n'), /acme\/run-7\.1 +\d+ .* crm\.update +write +landed .* p_forged/);
    // Stepped up, the halt is replaced (cleared at the step's rev) and stays a stop: a write
    // permitted under its successor is still after the halt's commit.
    const step = await cli(['step', halt.id, 'up', '--reason', 'harder', '--json', ...s.conn]);
    assert.equal(step.code, 0, step.err.join('\n'));
    const up = (JSON.parse(step.out.join('\n')) as { directive: Directive }).directive;
    const db2 = new DatabaseSync(join(s.dir, 'killpath.db'));
    try {
      db2
        .prepare(
          `INSERT INTO permits (id, rev, run_id, tenant, agent, worker_id, capability, class, status, lineage, features, intended_at)
           VALUES ('p_forged_later', ?, 'run-7', 'acme', 'support-bot', 'w-7', 'crm.update', 'write', 'granted', '[]', '[]', ?)`,
        )
        .run(up.rev, new Date().toISOString());
    } finally {
      db2.close();
    }
    const later = await lines(['journal', '--permitted-after', halt.id, ...s.conn]);
    assert.equal(later.code, 1);
    assert.equal(later.out[1], `then in force as ${up.level} ${up.id} (rev ${up.rev})`);
    assert.equal(
      later.out[2],
      'writes permitted after the commit, of the runs it covers: 2 (there should be none)',
    );
    assert.match(later.out.join('\n'), /p_forged_later/);
    const bad = await cli(['journal', '--permitted-after', 'd_nope', ...s.conn]);
    assert.equal(bad.code, 2);
    assert.deepEqual(bad.err, ['killpath journal: directive d_nope not found (not_found)']);
  });
});
