/**
 * A permit's coverage comes from what the control plane stored (issue 11 item 5): the run as it
 * was registered (its parent lineage and features) and the worker's release and features as its
 * stream declared them. An agent that omits or lies about them in the permit request is still
 * refused under a `release:`, `feature:` or parent `run:` directive that covers it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { newPermitId } from '../src/store/permit-decision.ts';
import { expectWireError, harness, type Harness } from './harness.ts';

async function world(): Promise<{ h: Harness; agent: string; op: string }> {
  const h = await harness();
  const agent = await h.token('agent', 'acme', 'bot');
  const op = await h.token('operator', 'acme');
  // What the SDK's stream declares on connect: its features and release.
  h.cp.fleet.connected('w1', 'acme', 'bot', ['billing'], { code: 'c1', model: 'm1' });
  for (const [runId, lineage] of [
    ['parent', []],
    ['child', ['parent']],
  ] as const) {
    const r = await h.req('POST', '/v1/runs', {
      token: agent,
      body: { runId, parentRunId: lineage.at(-1) ?? null, lineage, features: ['billing'], workerId: 'w1' },
    });
    assert.equal(r.status, 201, await r.text());
  }
  return { h, agent, op };
}

/** A permit request that says nothing true: no lineage, no features, another release. */
const lying = (release: Record<string, string> | undefined) => ({
  workerId: 'w1',
  runId: 'child',
  lineage: [],
  features: [],
  capability: 'crm.update',
  class: 'write',
  idempotencyKey: null,
  argsDigest: null,
  compensate: null,
  ...(release ? { release } : {}),
});

describe('permit coverage from stored state', () => {
  for (const scope of ['release:code=c1', 'release:model=m1', 'feature:billing', 'run:parent']) {
    for (const release of [undefined, { code: 'not-c1', model: 'not-m1' }]) {
      test(`${scope} refuses a request that ${release ? 'lies about' : 'omits'} its release, features and parent`, async () => {
        const { h, agent, op } = await world();
        try {
          const before = await h.req('POST', '/v1/permits', { token: agent, body: lying(release) });
          assert.equal(before.status, 201, 'granted while nothing covers it');
          const d = await h.req('POST', '/v1/directives', {
            token: op,
            body: { level: 'halt', scope, reason: 'stop', justification: 'INC-5' },
          });
          assert.equal(d.status, 201, await d.text());
          await expectWireError(
            await h.req('POST', '/v1/permits', { token: agent, body: lying(release) }),
            409,
            'halted',
            scope,
          );
          const batch = await h.req('POST', '/v1/permits/batch', {
            token: agent,
            body: { requests: [lying(release)] },
          });
          assert.equal(batch.status, 200);
          const answers = ((await batch.json()) as { answers: { status: number }[] }).answers;
          assert.deepEqual(
            answers.map((a) => a.status),
            [409],
            'the batch route too',
          );
        } finally {
          await h.close();
        }
      });
    }
  }
});

describe('the resume check from stored state', () => {
  for (const scope of ['release:code=c1', 'feature:billing', 'run:parent']) {
    test(`${scope} refuses a durable run's resume that omits its release, features and parent`, async () => {
      const { h, agent, op } = await world();
      try {
        const resume = () =>
          h.req('POST', '/v1/runs/child/resume', {
            token: agent,
            body: { workerId: 'w1', lineage: [], features: [], release: { code: 'not-c1' } },
          });
        const free = await resume();
        assert.equal(free.status, 200, await free.text());
        const d = await h.req('POST', '/v1/directives', {
          token: op,
          body: { level: 'halt', scope, reason: 'stop', justification: 'INC-5' },
        });
        assert.equal(d.status, 201, await d.text());
        await expectWireError(await resume(), 409, 'halted', scope);
      } finally {
        await h.close();
      }
    });
  }
});

describe('a run registered under a parent', () => {
  test('takes the lineage the control plane holds for its parent, whatever lineage it claims', async () => {
    const { h, agent, op } = await world();
    try {
      // 'grandchild' names its parent 'child' but claims no lineage at all.
      const r = await h.req('POST', '/v1/runs', {
        token: agent,
        body: { runId: 'grandchild', parentRunId: 'child', lineage: [], features: [], workerId: 'w1' },
      });
      assert.equal(r.status, 201);
      assert.deepEqual(((await r.json()) as { lineage: string[] }).lineage, ['parent', 'child']);
      const d = await h.req('POST', '/v1/directives', {
        token: op,
        body: { level: 'halt', scope: 'run:parent', reason: 'stop', justification: 'INC-5' },
      });
      assert.equal(d.status, 201);
      await expectWireError(
        await h.req('POST', '/v1/permits', {
          token: agent,
          body: { ...lying(undefined), runId: 'grandchild' },
        }),
        409,
        'halted',
        'the grandchild of a halted run',
      );
    } finally {
      await h.close();
    }
  });
});

test('permit ids are UUIDs of version 7 that only grow in one process, within one ms too', () => {
  const ids = Array.from({ length: 20_000 }, () => newPermitId());
  for (const id of ids)
    assert.match(id, /^p_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
  // 20,000 ids take a few ms: many share one, so the order within a ms was checked above.
  const msOf = (id: string) => id.slice(2, 15);
  assert.ok(new Set(ids.map(msOf)).size < ids.length / 2);
});
