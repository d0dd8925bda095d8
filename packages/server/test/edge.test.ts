import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive, SnapshotMessage } from '@killpath/protocol';
import type { StreamSink } from '../src/stream/hub.ts';
import { expectWireError, harness, type Harness } from './harness.ts';

const KILL = { level: 'kill', scope: 'agent:acme/bot', reason: 'runaway spend', justification: 'INC-1' };
const THROTTLE = {
  level: 'throttle',
  scope: 'agent:acme/bot',
  rate: { perSecond: 1, per: 'agent' },
  reason: 'slow it down',
  justification: 'INC-1',
};

describe('the edge: content type, scheme, idempotency', () => {
  let h: Harness;
  let op: string;
  beforeEach(async () => {
    h = await harness();
    op = await h.token('operator', 'acme');
  });
  afterEach(async () => {
    await h.close();
  });

  test('a text/plain body is refused with 415, even when it is valid JSON', async () => {
    const rev = await h.store.rev();
    const res = await h.req('POST', '/v1/directives', {
      token: op,
      body: JSON.stringify(KILL),
      headers: { 'content-type': 'text/plain' },
    });
    const message = await expectWireError(res, 415, 'unsupported_media_type', 'text/plain');
    assert.match(message, /application\/json/);
    assert.equal(await h.store.rev(), rev, 'nothing issued');
  });

  test('a body without a content type is refused; application/json with a charset is taken', async () => {
    const none = await h.app.request('/v1/directives', {
      method: 'POST',
      headers: { authorization: `Bearer ${op}` },
      body: JSON.stringify(KILL),
    });
    await expectWireError(none, 415, 'unsupported_media_type', 'no content type');
    const ok = await h.req('POST', '/v1/directives', {
      token: op,
      body: KILL,
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
    });
    assert.equal(ok.status, 201, await ok.text());
  });

  test('the Bearer scheme name is case-insensitive', async () => {
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      const res = await h.app.request('/v1/whoami', { headers: { authorization: `${scheme} ${op}` } });
      assert.equal(res.status, 200, `${scheme}: ${await res.text()}`);
    }
    const basic = await h.app.request('/v1/whoami', { headers: { authorization: `Basic ${op}` } });
    await expectWireError(basic, 401, 'unauthenticated', 'Basic');
  });

  test('an Idempotency-Key reused with a different body is 422 idempotency_mismatch naming the holder', async () => {
    const first = await h.req('POST', '/v1/directives', {
      token: op,
      body: THROTTLE,
      headers: { 'idempotency-key': 'k-1' },
    });
    assert.equal(first.status, 201);
    const held = ((await first.json()) as { directive: Directive }).directive;
    const rev = await h.store.rev();
    const audit = (await h.store.listAudit({ limit: 5000 })).length;
    const again = await h.req('POST', '/v1/directives', {
      token: op,
      body: KILL,
      headers: { 'idempotency-key': 'k-1' },
    });
    const text = await again.clone().text();
    const message = await expectWireError(again, 422, 'idempotency_mismatch', 'reused key');
    assert.ok(message.includes(held.id), message);
    assert.equal(
      (JSON.parse(text) as { error: { details: { directiveId: string } } }).error.details.directiveId,
      held.id,
    );
    assert.equal(await h.store.rev(), rev, 'no directive issued');
    assert.equal((await h.store.listAudit({ limit: 5000 })).length, audit, 'nothing on the record');
    // The same body with the same key still converges (a retry).
    const retry = await h.req('POST', '/v1/directives', {
      token: op,
      body: THROTTLE,
      headers: { 'idempotency-key': 'k-1' },
    });
    assert.equal(retry.status, 200);
    assert.equal(((await retry.json()) as { directive: Directive }).directive.id, held.id);
  });

  test('a reused key on the agent-kill route for another agent is a mismatch too', async () => {
    const a = await h.req('POST', '/v1/agents/acme/bot/kill', {
      token: op,
      body: { justification: 'INC-2' },
      headers: { 'idempotency-key': 'k-2' },
    });
    assert.equal(a.status, 201);
    const b = await h.req('POST', '/v1/agents/acme/other/kill', {
      token: op,
      body: { justification: 'INC-2' },
      headers: { 'idempotency-key': 'k-2' },
    });
    await expectWireError(b, 422, 'idempotency_mismatch', 'other agent');
  });
});

describe("an agent's stream snapshot carries what its gate needs, not the operators' words", () => {
  test('no reason, justification or actor in the snapshot or deltas of an agent stream', async () => {
    const h = await harness();
    try {
      const op = await h.token('operator', 'acme');
      const issued = await h.req('POST', '/v1/directives', {
        token: op,
        body: { ...KILL, level: 'halt', reason: 'SECRET-REASON', justification: 'SECRET-JUSTIFICATION' },
      });
      assert.equal(issued.status, 201);
      const frames: string[] = [];
      const sink: StreamSink = {
        workerId: 'w1',
        tenant: 'acme',
        write: (t) => (frames.push(t), true),
        close: () => {},
      };
      await h.cp.hub.attach(sink, () => h.cp.store.switchboard());
      const more = await h.req('POST', '/v1/directives', {
        token: op,
        body: { ...THROTTLE, reason: 'SECRET-REASON-2', justification: 'SECRET-JUSTIFICATION-2' },
      });
      assert.equal(more.status, 201);
      const snap = JSON.parse(frames[0]!.split('data: ')[1]!) as SnapshotMessage;
      assert.equal(snap.directives.length, 1);
      const d = snap.directives[0]! as unknown as Record<string, unknown>;
      assert.equal(d.level, 'halt');
      assert.equal(d.scopeText, 'agent:acme/bot');
      for (const k of ['reason', 'justification', 'actor']) assert.ok(!(k in d), `snapshot carries ${k}`);
      const all = frames.join('');
      assert.ok(!all.includes('SECRET'), all);
      assert.ok(all.includes('"perSecond":1'), 'the delta carries the rate the gate needs');
      h.cp.hub.detach(sink);
    } finally {
      await h.close();
    }
  });
});

describe('one request never fails another: bounded bodies, per-request rollback', () => {
  const nested = (depth: number): unknown => {
    let v: unknown = {};
    for (let i = 0; i < depth; i++) v = { a: v };
    return v;
  };

  test('a body nested deeper than the limit is 400 naming the limit, on permits and journal alike', async () => {
    const h = await harness();
    try {
      const agent = await h.token('agent', 'acme', 'bot');
      const permit = {
        workerId: 'w1',
        runId: 'r1',
        lineage: [],
        features: [],
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: null,
        argsDigest: null,
        compensate: nested(1),
      };
      // Built as text: the test's own JSON.stringify would overflow on it, as the server's once did.
      const deepText = `${'{"a":'.repeat(10_000)}{}${'}'.repeat(10_000)}`;
      const asText = (v: unknown) => JSON.stringify(v).replace('"DEEP"', deepText);
      const p = await h.req('POST', '/v1/permits', {
        token: agent,
        body: asText({ ...permit, compensate: 'DEEP' }),
      });
      assert.match(await expectWireError(p, 400, 'invalid_request', 'deep compensate'), /nest.*64/);
      const j = await h.req('POST', '/v1/journal', {
        token: agent,
        body: asText({
          workerId: 'w1',
          events: [
            {
              type: 'queue.discarded',
              runId: 'r1',
              queue: 'q',
              taskId: 't',
              payload: 'DEEP',
              directiveId: null,
            },
          ],
        }),
      });
      assert.match(await expectWireError(j, 400, 'invalid_request', 'deep payload'), /nest.*64/);
      const ok = await h.req('POST', '/v1/permits', {
        token: agent,
        body: { ...permit, compensate: nested(20) },
      });
      assert.equal(ok.status, 201, 'a reasonable nesting is taken');
    } finally {
      await h.close();
    }
  });

  test("a request that fails inside a grouped permit batch fails alone: another tenant's requests are granted", async () => {
    const h = await harness();
    try {
      const bad: Record<string, unknown> = {};
      Object.defineProperty(bad, 'boom', {
        enumerable: true,
        get() {
          throw new RangeError('Maximum call stack size exceeded');
        },
      });
      const base = {
        workerId: 'w1',
        lineage: [],
        features: [],
        capability: 'crm.update',
        class: 'write' as const,
        idempotencyKey: null,
        argsDigest: null,
        coolOffMs: 0,
      };
      const batch = [
        ...Array.from({ length: 20 }, (_, i) => ({
          ...base,
          tenant: 'globex',
          agent: 'bot',
          runId: `g${i}`,
          compensate: null,
        })),
        { ...base, tenant: 'acme', agent: 'bot', runId: 'evil', compensate: bad },
        ...Array.from({ length: 20 }, (_, i) => ({
          ...base,
          tenant: 'globex',
          agent: 'bot',
          runId: `h${i}`,
          compensate: null,
        })),
      ];
      const decisions = await h.store.grantPermits(batch);
      assert.equal(decisions.filter((d) => d.kind === 'granted').length, 40, 'every globex request granted');
      assert.equal(decisions[20]?.kind, 'failed');
      assert.equal((await h.store.ledger('acme', 'evil')).effects.length, 0, 'the failed one left nothing');
      assert.equal(await h.store.getRun('acme', 'evil'), null, 'not even its run registration');
      assert.ok((await h.store.verifyAudit()).ok);
    } finally {
      await h.close();
    }
  });
});

test('one agent token cannot add workers past its cap to the fleet view', async () => {
  const h = await harness();
  try {
    const { Fleet } = await import('../src/fleet.ts');
    const agent = await h.token('agent', 'acme', 'bot');
    for (let i = 0; i < Fleet.MAX_WORKERS_PER_AGENT; i++) h.cp.fleet.connected(`w${i}`, 'acme', 'bot', []);
    const res = await h.req('POST', '/v1/workers/one-too-many/heartbeat', {
      token: agent,
      body: { rev: 0, features: [], runs: [], pid: 1, sinceContactMs: 1 },
    });
    assert.match(await expectWireError(res, 409, 'conflict', 'over the cap'), /1000 workers/);
    assert.equal(h.cp.fleet.countOf('acme', 'bot'), Fleet.MAX_WORKERS_PER_AGENT);
    // A known worker still reports.
    const known = await h.req('POST', '/v1/workers/w1/heartbeat', {
      token: agent,
      body: { rev: 0, features: [], runs: [], pid: 1, sinceContactMs: 1 },
    });
    assert.equal(known.status, 204);
  } finally {
    await h.close();
  }
});
