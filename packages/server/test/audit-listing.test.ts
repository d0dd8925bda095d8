/**
 * The audit tail read in steps: the same records, in the same order and the same JSON, as one
 * `listAudit` call, for every shape of query; each step scans a bounded range of seqs and reads
 * a bounded number of records, with the event loop free between steps.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { countAuditInSteps, listAuditInSteps } from '../src/http/audit-listing.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { AuditQuery } from '../src/store/store.ts';
import { harness } from './harness.ts';

describe('listAuditInSteps', () => {
  test('answers what one listAudit call does, for every query shape, in bounded steps', async () => {
    const store = new SqliteStore(':memory:');
    try {
      const tenants = ['acme', 'globex', null];
      const types = ['a.x', 'b.y', 'c.z', 'a.x', 'a.x'];
      await store.appendAudit(
        Array.from({ length: 57 }, (_, i) => ({
          type: types[i % types.length]!,
          actor: 'test',
          tenant: tenants[i % tenants.length]!,
          data: { i, text: `record ${i}` },
        })) as never,
      );
      const head = (await store.listAudit({ desc: true, limit: 1 }))[0]!.seq;
      const calls: AuditQuery[] = [];
      let pauses = 0;
      const spy = {
        listAudit: (q: AuditQuery) => {
          calls.push(q);
          return store.listAudit(q);
        },
      };
      let shapes = 0;
      for (const desc of [false, true])
        for (const afterSeq of [undefined, 10])
          for (const beforeSeq of [undefined, 40])
            for (const tenant of [undefined, 'acme'])
              for (const only of [undefined, ['b.y'], ['a.x', 'c.z'], ['none']])
                for (const limit of [1, 5, 100]) {
                  const q = {
                    ...(afterSeq !== undefined ? { afterSeq } : {}),
                    ...(beforeSeq !== undefined ? { beforeSeq } : {}),
                    ...(tenant !== undefined ? { tenant } : {}),
                    ...(only !== undefined ? { types: only } : {}),
                    desc,
                    limit,
                  };
                  const want = await store.listAudit(q);
                  calls.length = 0;
                  pauses = 0;
                  const got = await listAuditInSteps(spy, q, head, {
                    seqs: 7,
                    records: 4,
                    pause: async () => {
                      pauses += 1;
                    },
                  });
                  const what = JSON.stringify(q);
                  assert.equal(got.json, JSON.stringify(want).slice(1, -1), what);
                  assert.equal(got.count, want.length, what);
                  for (const c of calls) {
                    assert.ok((c.limit ?? 200) <= 4, `${what}: a step reads at most 4 records`);
                    assert.ok(
                      c.beforeSeq! - (c.afterSeq ?? 0) - 1 <= 7,
                      `${what}: a step scans at most 7 seqs`,
                    );
                  }
                  assert.equal(pauses, calls.length - 1, `${what}: the loop is free between steps`);
                  shapes += 1;
                }
      assert.equal(shapes, 192);
      const none = await listAuditInSteps(store, { limit: 10, afterSeq: head }, head);
      assert.deepEqual(none, { count: 0, json: '' }, 'nothing after the head');

      // The filtered total, counted in steps: what one countAudit answers.
      for (const tenant of [undefined, 'acme'])
        for (const only of [undefined, ['b.y'], ['a.x', 'c.z'], ['none']])
          for (const cap of [1, 7, 20, 57, 100]) {
            if (tenant === undefined && only === undefined) continue;
            const q = {
              ...(tenant !== undefined ? { tenant } : {}),
              ...(only !== undefined ? { types: only } : {}),
            };
            const spans: number[] = [];
            let pauses = 0;
            const got = await countAuditInSteps(
              {
                countAudit: (qq, span, upTo) => {
                  spans.push(span);
                  return store.countAudit(qq, span, upTo);
                },
              },
              q,
              head,
              cap,
              {
                seqs: 7,
                pause: async () => {
                  pauses += 1;
                },
              },
            );
            const what = `${JSON.stringify(q)} cap ${cap}`;
            assert.deepEqual(got, await store.countAudit(q, cap), what);
            assert.ok(
              spans.every((n) => n <= 7),
              `${what}: a step counts at most 7 seqs`,
            );
            assert.equal(pauses, spans.length - 1, `${what}: the loop is free between steps`);
          }
    } finally {
      await store.close();
    }
  });
});

describe('GET /v1/audit', () => {
  test('total and records are of the same log: one appended while the page is read is in neither', async () => {
    const h = await harness();
    try {
      const admin = await h.token('admin', '*');
      for (const types of [undefined, 'token.minted'])
        for (const op of ['countAudit', 'listAudit'] as const) {
          const orig = h.store[op].bind(h.store) as (...a: unknown[]) => Promise<unknown>;
          let calls = 0;
          // The first read is the head; the append lands after it, as another request's would.
          (h.store as unknown as Record<string, unknown>)[op] = async (...a: unknown[]) => {
            if (op === 'countAudit' || ++calls === 2)
              await h.store.appendAudit([
                { type: 'token.minted', actor: 'test', tenant: 'acme', data: {} },
              ] as never);
            return orig(...a);
          };
          try {
            const res = await h.req('GET', `/v1/audit?limit=5000${types ? `&type=${types}` : ''}`, {
              token: admin,
            });
            const page = (await res.json()) as { total: number; totalExact: boolean; records: unknown[] };
            assert.equal(res.status, 200);
            assert.equal(page.total, page.records.length, `${op} ${types ?? 'all'}`);
          } finally {
            (h.store as unknown as Record<string, unknown>)[op] = orig;
          }
        }
    } finally {
      await h.close();
    }
  });
});
