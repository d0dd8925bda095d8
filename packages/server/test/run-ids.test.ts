import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive } from '@killpath/protocol';
import { expectWireError, harness, type Harness } from './harness.ts';

const RUN = 'ticket-1234';
const registration = (workerId: string) => ({
  runId: RUN,
  parentRunId: null,
  lineage: [],
  features: [],
  workerId,
});
const permit = (workerId: string, over: Record<string, unknown> = {}) => ({
  workerId,
  runId: RUN,
  lineage: [],
  features: [],
  capability: 'crm.update',
  class: 'write',
  idempotencyKey: null,
  argsDigest: null,
  compensate: null,
  ...over,
});

describe('run ids live inside their tenant', () => {
  let h: Harness;
  let t: Record<'acme' | 'acmeOther' | 'beta' | 'acmeOp' | 'betaOp' | 'admin', string>;
  beforeEach(async () => {
    h = await harness();
    t = {
      acme: await h.token('agent', 'acme', 'bot'),
      acmeOther: await h.token('agent', 'acme', 'other'),
      beta: await h.token('agent', 'beta', 'bot'),
      acmeOp: await h.token('operator', 'acme'),
      betaOp: await h.token('operator', 'beta'),
      admin: await h.token('admin', '*'),
    };
    // Beta squats the id first.
    const squat = await h.req('POST', '/v1/runs', { token: t.beta, body: registration('wb') });
    assert.equal(squat.status, 201);
  });
  afterEach(async () => {
    await h.close();
  });

  test('acme registers, gets permits for, and stops its own ticket-1234 whatever beta did', async () => {
    const reg = await h.req('POST', '/v1/runs', { token: t.acme, body: registration('wa') });
    assert.equal(reg.status, 201, await reg.clone().text());
    const granted = await h.req('POST', '/v1/permits', { token: t.acme, body: permit('wa') });
    assert.equal(granted.status, 201);
    const kill = await h.req('POST', '/v1/directives', {
      token: t.acmeOp,
      body: { level: 'kill', scope: `run:${RUN}`, reason: 'stop it', justification: 'INC-A' },
    });
    assert.equal(kill.status, 201, await kill.clone().text());
    const d = ((await kill.json()) as { directive: Directive }).directive;
    assert.equal(d.tenant, 'acme');
    // It covers acme's run and not beta's.
    await expectWireError(
      await h.req('POST', '/v1/permits', { token: t.acme, body: permit('wa') }),
      409,
      'halted',
      'acme after its kill',
    );
    const beta = await h.req('POST', '/v1/permits', { token: t.beta, body: permit('wb') });
    assert.equal(beta.status, 201, 'beta is not stopped by acme');
    // Each operator reads its own run.
    const mine = await h.req('GET', `/v1/runs/${RUN}`, { token: t.acmeOp });
    assert.equal(((await mine.json()) as { run: { tenant: string } }).run.tenant, 'acme');
    const theirs = await h.req('GET', `/v1/runs/${RUN}/journal`, { token: t.betaOp });
    const ledger = (await theirs.json()) as { run: { tenant: string }; effects: unknown[] };
    assert.equal(ledger.run.tenant, 'beta');
    assert.equal(ledger.effects.length, 1, "beta's ledger holds beta's permit only");
  });

  test('registering a run id answers alike whether another tenant holds it or not', async () => {
    const known = await h.req('POST', '/v1/runs', { token: t.acme, body: registration('wa') });
    const unknown = await h.req('POST', '/v1/runs', {
      token: t.acme,
      body: { ...registration('wa'), runId: 'never-seen' },
    });
    assert.equal(known.status, 201);
    assert.equal(unknown.status, 201);
  });

  test("another agent of the same tenant cannot take a run's id, nor get permits for it", async () => {
    assert.equal((await h.req('POST', '/v1/runs', { token: t.acme, body: registration('wa') })).status, 201);
    await expectWireError(
      await h.req('POST', '/v1/runs', { token: t.acmeOther, body: registration('wo') }),
      409,
      'conflict',
      'squatting inside the tenant',
    );
    await expectWireError(
      await h.req('POST', '/v1/permits', { token: t.acmeOther, body: permit('wo') }),
      409,
      'conflict',
      'a permit for a run of another agent',
    );
    await expectWireError(
      await h.req('POST', '/v1/journal', {
        token: t.acmeOther,
        body: {
          workerId: 'wo',
          events: [
            {
              type: 'timer.cancelled',
              runId: RUN,
              timer: 'timeout',
              label: 'forged',
              dueAt: '2026-01-01T00:00:00Z',
              directiveId: null,
            },
          ],
        },
      }),
      404,
      'not_found',
      "journaling another agent's run",
    );
    const ledger = await h.req('GET', `/v1/runs/${RUN}/journal`, { token: t.acmeOp });
    const l = (await ledger.json()) as { effects: unknown[]; events: unknown[] };
    assert.deepEqual(l.effects, []);
    assert.deepEqual(l.events, []);
  });

  test('a permit for a run not registered yet registers it to the asking agent', async () => {
    const p = await h.req('POST', '/v1/permits', {
      token: t.acme,
      body: permit('wa', { runId: 'fresh', lineage: [] }),
    });
    assert.equal(p.status, 201);
    await expectWireError(
      await h.req('POST', '/v1/permits', {
        token: t.acmeOther,
        body: permit('wo', { runId: 'fresh' }),
      }),
      409,
      'conflict',
      'the run is the first asker’s',
    );
  });

  test("an admin's run scope names the tenant when the id is in several", async () => {
    assert.equal((await h.req('POST', '/v1/runs', { token: t.acme, body: registration('wa') })).status, 201);
    const body = { level: 'kill', scope: `run:${RUN}`, reason: 'stop it', justification: 'INC-A' };
    const ambiguous = await h.req('POST', '/v1/directives', { token: t.admin, body });
    const message = await expectWireError(ambiguous, 400, 'invalid_request', 'ambiguous');
    assert.match(message, /acme/);
    assert.match(message, /beta/);
    const named = await h.req('POST', '/v1/directives', {
      token: t.admin,
      body: { ...body, tenant: 'acme' },
    });
    assert.equal(named.status, 201);
    assert.equal(((await named.json()) as { directive: Directive }).directive.tenant, 'acme');
    await expectWireError(
      await h.req('GET', `/v1/runs/${RUN}`, { token: t.admin }),
      400,
      'invalid_request',
      'admin read, ambiguous',
    );
    const read = await h.req('GET', `/v1/runs/${RUN}?tenant=beta`, { token: t.admin });
    assert.equal(((await read.json()) as { run: { tenant: string } }).run.tenant, 'beta');
  });
});
