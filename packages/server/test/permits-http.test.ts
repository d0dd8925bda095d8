import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LedgerEntry, PermitRequest } from '@killpath/protocol';
import { grant } from './effects-contract.ts';
import { directiveInput } from './store-contract.ts';
import { expectWireError, harness } from './harness.ts';

/** A permit request as a worker sends it: the contract's grant without the fields the server adds. */
function permit(over: Partial<PermitRequest> = {}): PermitRequest {
  const { tenant: _t, agent: _a, coolOffMs: _c, ...req } = grant(over);
  return req;
}

test('guarantee 1 under concurrency: no write permit is granted for a covered run after the halt commits', async () => {
  const h = await harness();
  try {
    const admin = await h.token('admin', '*');
    const agent = await h.token('agent', 'acme', 'bot');
    h.cp.fleet.connected('w1', 'acme', 'bot', []);
    const send = (runId: string) => h.req('POST', '/v1/permits', { token: agent, body: permit({ runId }) });
    // Waves of permit requests for two runs, with a halt of r1 issued in the middle of them.
    const pending: Promise<Response>[] = [];
    let haltRev = 0;
    for (let wave = 0; wave < 20; wave++) {
      for (let i = 0; i < 10; i++) pending.push(send('r1'), send('r2'));
      if (wave === 10) {
        const res = await h.req('POST', '/v1/directives', {
          token: admin,
          body: {
            level: 'halt',
            scope: 'run:r1',
            tenant: 'acme',
            reason: 'test',
            justification: 'guarantee 1',
          },
        });
        assert.equal(res.status, 201);
        haltRev = ((await res.json()) as { directive: { rev: number } }).directive.rev;
      }
      await new Promise((ok) => setImmediate(ok));
    }
    const answers = await Promise.all(pending);
    assert.ok(
      answers.every((r) => r.status === 201 || r.status === 409),
      'every answer is a grant or a refusal',
    );
    // From the store's own records: every granted permit of r1 was checked against a rev before the halt.
    const r1 = (await h.store.ledger('acme', 'r1')).effects as LedgerEntry[];
    const r2 = (await h.store.ledger('acme', 'r2')).effects as LedgerEntry[];
    assert.ok(r1.length > 0, 'some r1 permits were granted before the halt');
    assert.ok(r1.length < 200, 'r1 permits after the halt were refused');
    // The rev each was checked at, from the ledger (whose rows the audit commits by digest).
    const atOrAfter = await h.store.permittedFrom({ fromRev: haltRev, toRev: null, runIds: ['r1'] });
    assert.deepEqual(atOrAfter, [], `no r1 grant at or after rev ${haltRev}`);
    const all = await h.store.permittedFrom({ fromRev: 0, toRev: null, runIds: ['r1'] });
    assert.equal(all.length, r1.length, 'every r1 row has its rev');
    assert.equal((await h.store.verifyLog(null)).ok, true, 'and the audit commits every row');
    assert.equal(r2.length, 200, 'the uncovered run got every permit');
  } finally {
    await h.close();
  }
});

test('a refusal names the covering directive; outcome, journal and ledger round-trip over HTTP', async () => {
  const h = await harness();
  try {
    const admin = await h.token('admin', '*');
    const agent = await h.token('agent', 'acme', 'bot');
    const operatorB = await h.token('operator', 'globex');
    h.cp.fleet.connected('w1', 'acme', 'bot', []);
    await h.cp.store.registerRun({
      runId: 'r1',
      tenant: 'acme',
      agent: 'bot',
      parentRunId: null,
      lineage: [],
      features: [],
      workerId: 'w1',
      startedAt: new Date().toISOString(),
    });
    const g = await h.req('POST', '/v1/permits', {
      token: agent,
      body: permit({ idempotencyKey: 'k1', compensate: { action: 'crm.revert' } }),
    });
    assert.equal(g.status, 201);
    const { permit: p } = (await g.json()) as { permit: { id: string } };
    assert.equal(
      (
        await h.req('POST', `/v1/permits/${p.id}/outcome`, {
          token: agent,
          body: { status: 'landed', result: { ok: true } },
        })
      ).status,
      204,
    );
    const replay = await h.req('POST', '/v1/permits', {
      token: agent,
      body: permit({ idempotencyKey: 'k1' }),
    });
    assert.equal(replay.status, 200);
    assert.deepEqual(((await replay.json()) as { result: unknown }).result, { ok: true });
    const j = await h.req('POST', '/v1/journal', {
      token: agent,
      body: {
        workerId: 'w1',
        events: [
          {
            type: 'timer.cancelled',
            runId: 'r1',
            timer: 'timeout',
            label: 'poll',
            dueAt: new Date().toISOString(),
            directiveId: null,
          },
        ],
      },
    });
    assert.equal(j.status, 204);
    const res = await h.req('POST', '/v1/directives', {
      token: admin,
      body: { level: 'kill', scope: 'run:r1', reason: 'x', justification: 'y' },
    });
    const directiveId = ((await res.json()) as { directive: { id: string } }).directive.id;
    const refused = await h.req('POST', '/v1/permits', { token: agent, body: permit() });
    const body = (await refused.clone().json()) as { error: { details: { directiveId: string } } };
    await expectWireError(refused, 409, 'halted');
    assert.equal(body.error.details.directiveId, directiveId);
    const resume = await h.req('POST', '/v1/runs/r1/resume', {
      token: agent,
      body: { workerId: 'w1', lineage: [], features: [] },
    });
    await expectWireError(resume, 409, 'halted');
    const ledger = await h.req('GET', '/v1/runs/r1/journal', { token: admin });
    const l = (await ledger.json()) as {
      summary: { intended: number; landed: number };
      events: { type: string }[];
    };
    assert.equal(l.summary.intended, 1);
    assert.equal(l.summary.landed, 1);
    assert.deepEqual(
      l.events.map((e) => e.type),
      ['timer.cancelled'],
    );
    await expectWireError(await h.req('GET', '/v1/runs/r1/journal', { token: operatorB }), 404, 'not_found');
    await expectWireError(await h.req('GET', '/v1/runs/r1/journal', { token: agent }), 403, 'forbidden');
    await expectWireError(
      await h.req('GET', '/v1/compensations?tenant=acme', { token: operatorB }),
      404,
      'not_found',
    );
    // w9 of another agent is another worker: acme/bot's own w9 asks for its killed run r1.
    h.cp.fleet.connected('w9', 'acme', 'other-bot', []);
    await expectWireError(
      await h.req('POST', '/v1/permits', { token: agent, body: permit({ workerId: 'w9' }) }),
      409,
      'halted',
    );
    await expectWireError(
      await h.req('POST', '/v1/permits', { token: agent, body: { ...permit(), class: 'read' } }),
      400,
      'invalid_request',
    );
    await expectWireError(
      await h.req('POST', `/v1/permits/${p.id}/outcome`, { token: operatorB, body: { status: 'landed' } }),
      403,
      'forbidden',
    );
    await expectWireError(
      await h.req('POST', '/v1/permits/p_nope/outcome', { token: agent, body: { status: 'landed' } }),
      404,
      'not_found',
    );
  } finally {
    await h.close();
  }
});

test('an MCP tool is a capability (mcp:<server>/<tool>): a directive narrowed to it refuses that tool only', async () => {
  const h = await harness();
  try {
    const admin = await h.token('admin', '*');
    const agent = await h.token('agent', 'acme', 'bot');
    h.cp.fleet.connected('w1', 'acme', 'bot', []);
    const issue = (capabilities: string[]) =>
      h.req('POST', '/v1/directives', {
        token: admin,
        body: {
          level: 'halt',
          scope: 'agent:acme/bot',
          capabilities,
          reason: 'gh',
          justification: 'one tool',
        },
      });
    await expectWireError(await issue(['mcp:github/a/b']), 400, 'invalid_request');
    assert.equal((await issue(['mcp:github/create_issue'])).status, 201);
    const send = (capability: string) =>
      h.req('POST', '/v1/permits', { token: agent, body: permit({ runId: 'r1', capability }) });
    assert.equal((await send('mcp:github/create_issue')).status, 409);
    assert.equal((await send('mcp:github/add_comment')).status, 201);
    await expectWireError(await send('mcp:github//x'), 400, 'invalid_request');
  } finally {
    await h.close();
  }
});

test('POST /v1/permits/batch answers each request as /v1/permits would; POST /v1/permits/outcomes settles each, another agent’s permit is not found', async () => {
  const h = await harness();
  try {
    const admin = await h.token('admin', '*');
    const agent = await h.token('agent', 'acme', 'bot');
    const other = await h.token('agent', 'acme', 'other');
    h.cp.fleet.connected('w1', 'acme', 'bot', []);
    const halt = await h.req('POST', '/v1/directives', {
      token: admin,
      body: { level: 'halt', scope: 'run:r9', tenant: 'acme', reason: 'test', justification: 'batch' },
    });
    assert.equal(halt.status, 201);
    const res = await h.req('POST', '/v1/permits/batch', {
      token: agent,
      body: {
        requests: [
          permit({ runId: 'r1' }),
          permit({ runId: 'r9' }),
          permit({ runId: 'r2', idempotencyKey: 'k1' }),
          permit({ runId: 'r2', idempotencyKey: 'k1' }),
        ],
      },
    });
    assert.equal(res.status, 200);
    const { answers } = (await res.json()) as {
      answers: {
        status: number;
        body: { permit: { id: string; status: string }; error: { code: string } };
      }[];
    };
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 409, 201, 409],
    );
    assert.equal(answers[0]!.body.permit.status, 'granted');
    assert.equal(answers[1]!.body.error.code, 'halted', 'the covered run is refused with the wire error');
    assert.equal(answers[3]!.body.error.code, 'conflict', 'a second use of a key in flight is in doubt');
    const ids = [answers[0]!.body.permit.id, answers[2]!.body.permit.id];

    const stolen = await h.req('POST', '/v1/permits/outcomes', {
      token: other,
      body: { outcomes: [{ permitId: ids[0], status: 'failed' }] },
    });
    assert.equal(stolen.status, 200);
    assert.deepEqual(((await stolen.json()) as { answers: { status: number }[] }).answers[0]!.status, 404);

    const settled = await h.req('POST', '/v1/permits/outcomes', {
      token: agent,
      body: {
        outcomes: [
          { permitId: ids[0], status: 'landed', result: { n: 1 } },
          { permitId: ids[1], status: 'failed', error: 'boom' },
          { permitId: 'p_missing', status: 'landed' },
        ],
      },
    });
    assert.equal(settled.status, 200);
    assert.deepEqual(
      ((await settled.json()) as { answers: { status: number }[] }).answers.map((a) => a.status),
      [204, 204, 404],
    );
    const r1 = (await h.store.ledger('acme', 'r1')).effects;
    const r2 = (await h.store.ledger('acme', 'r2')).effects;
    assert.deepEqual(
      [...r1, ...r2].map((e) => e.status),
      ['landed', 'failed'],
      'each outcome closed its own permit (one in doubt is still settled by its outcome)',
    );
    const bad = await h.req('POST', '/v1/permits/batch', { token: agent, body: { requests: [] } });
    await expectWireError(bad, 400, 'invalid_request');
  } finally {
    await h.close();
  }
});

test('GET /v1/permits lists the write permits granted from a rev, from the ledger; a tenant sees its own', async () => {
  const h = await harness();
  try {
    const admin = await h.token('admin', '*');
    const viewer = await h.token('viewer', 'globex');
    const early = await h.store.grantPermits([grant({ runId: 'r0' })]);
    // A rev moves on between the two batches.
    const { directive } = await h.store.issueDirective(
      directiveInput({ scope: 'agent:acme/other' }),
      () => [],
    );
    const later = await h.store.grantPermits([
      grant({ runId: 'r1' }),
      grant({ runId: 'r2', class: 'irreversible', capability: 'wire_transfer' }),
      grant({ runId: 'g1', tenant: 'globex' }),
    ]);
    assert.ok([...early, ...later].every((d) => d.kind === 'granted'));
    type Listed = {
      permits: { permitId: string; rev: number; runId: string; tenant: string; class: string }[];
      total: number;
      cursor: string | null;
    };
    const all = (await (
      await h.req('GET', `/v1/permits?fromRev=${directive.rev}`, { token: admin })
    ).json()) as Listed;
    assert.deepEqual(all.permits.map((p) => [p.runId, p.tenant, p.class, p.rev]).sort(), [
      ['g1', 'globex', 'write', directive.rev],
      ['r1', 'acme', 'write', directive.rev],
      ['r2', 'acme', 'irreversible', directive.rev],
    ]);
    assert.equal(all.total, 3);
    const paged = (await (
      await h.req('GET', `/v1/permits?fromRev=0&limit=2`, { token: admin })
    ).json()) as Listed;
    assert.deepEqual([paged.permits.length, paged.total, paged.cursor], [2, 4, paged.permits[1]!.permitId]);
    const rest = (await (
      await h.req('GET', `/v1/permits?fromRev=0&limit=2&cursor=${paged.cursor}`, { token: admin })
    ).json()) as Listed;
    assert.deepEqual([rest.permits.length, rest.cursor], [2, null]);
    const before = (await (
      await h.req('GET', `/v1/permits?fromRev=0&toRev=${directive.rev}`, { token: admin })
    ).json()) as Listed;
    assert.deepEqual(
      before.permits.map((p) => p.runId),
      ['r0'],
    );
    const theirs = (await (
      await h.req('GET', '/v1/permits?fromRev=0&tenant=acme', { token: viewer })
    ).json()) as Listed;
    assert.deepEqual(
      theirs.permits.map((p) => p.runId),
      ['g1'],
      "a tenant's viewer sees its own tenant's only",
    );
    assert.match(
      await expectWireError(await h.req('GET', '/v1/permits', { token: admin }), 400, 'invalid_request'),
      /fromRev is required/,
    );
    assert.match(
      await expectWireError(
        await h.req('GET', '/v1/permits?fromRev=-1', { token: admin }),
        400,
        'invalid_request',
      ),
      /fromRev must be a rev/,
    );
    const agent = await h.token('agent', 'acme', 'bot');
    assert.equal((await h.req('GET', '/v1/permits?fromRev=0', { token: agent })).status, 403);
  } finally {
    await h.close();
  }
});
