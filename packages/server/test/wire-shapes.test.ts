/**
 * What the control plane answers is what the protocol's schemas define, field for field: each
 * answer parsed with its schema in `@killpath/protocol/schemas` comes back equal (a read schema
 * drops fields it does not name, so a field the server writes and the schema lacks, or a type
 * that differs, fails here). The types clients use are derived from the same schemas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DirectiveSchema,
  FleetPageSchema,
  PermitResponseSchema,
  PrincipalSchema,
} from '@killpath/protocol/schemas';
import { harness } from './harness.ts';

test('directives, fleet pages, the caller and permits as answered are exactly their schemas', async () => {
  const h = await harness();
  try {
    const op = await h.token('operator', 'acme', undefined, 'alice');
    const agent = await h.token('agent', 'acme', 'bot');
    const json = async (res: Response, status: number) => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      return JSON.parse(text) as Record<string, unknown>;
    };
    const same = (schema: { parse(x: unknown): unknown }, value: unknown, what: string) =>
      assert.deepEqual(schema.parse(value), value, `${what} is its schema, field for field`);

    h.cp.fleet.connected('w1', 'acme', 'bot', []);
    h.cp.fleet.heartbeat('w1', 'acme', 'bot', {
      rev: 0,
      features: ['f1'],
      pid: 1,
      sinceContactMs: 0,
      runs: [
        { runId: 'r1', parentRunId: null, lineage: [], state: 'running', effects: 0, denied: 0, inFlight: 0 },
      ],
      release: { code: 'abc' },
    });
    await json(
      await h.req('POST', '/v1/runs', {
        token: agent,
        body: { runId: 'r1', parentRunId: null, lineage: [], features: ['f1'], workerId: 'w1' },
      }),
      201,
    );
    const permit = await h.req('POST', '/v1/permits', {
      token: agent,
      body: {
        workerId: 'w1',
        runId: 'r1',
        lineage: [],
        features: ['f1'],
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: 'k1',
        argsDigest: null,
        compensate: { undo: 'crm.revert' },
      },
    });
    same(PermitResponseSchema, await json(permit, 201), 'a permit answer');
    for (const body of [
      { level: 'throttle', scope: 'agent:acme/bot', rate: { perSecond: 2, per: 'run' } },
      { level: 'degrade', scope: 'feature:f1', capabilities: ['crm.update'] },
      { level: 'halt', scope: 'run:r1', escalation: [{ level: 'kill', afterMs: 60_000 }] },
      { level: 'kill', scope: 'release:code=abc' },
    ])
      same(
        DirectiveSchema,
        (
          await json(
            await h.req('POST', '/v1/directives', {
              token: op,
              body: { reason: 'r', justification: 'j', ...body },
            }),
            201,
          )
        ).directive,
        `a ${body.level} directive`,
      );
    const listed = (await json(await h.req('GET', '/v1/directives', { token: op }), 200))
      .directives as unknown[];
    assert.equal(listed.length, 4);
    for (const d of listed) same(DirectiveSchema, d, 'a listed directive');
    same(FleetPageSchema, await json(await h.req('GET', '/v1/fleet', { token: op }), 200), 'a fleet page');
    same(PrincipalSchema, await json(await h.req('GET', '/v1/whoami', { token: op }), 200), 'the caller');
  } finally {
    await h.close();
  }
});
