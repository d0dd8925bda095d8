import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord, Directive } from '@killpath/protocol';
import { expectWireError, harness, hostWorker, type Harness } from './harness.ts';

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function issue(h: Harness, token: string, body: Record<string, unknown>): Promise<Directive> {
  const res = await h.req('POST', '/v1/directives', {
    token,
    body: { reason: 'test', justification: 'INC-7', ...body },
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { directive: Directive }).directive;
}

async function audit(h: Harness, type: string): Promise<AuditRecord[]> {
  await h.cp.flushAudit();
  return h.store.listAudit({ types: [type], limit: 1000 });
}

function worker(h: Harness, id: string, tenant: string, runs: string[], launcher?: string): void {
  hostWorker(h.cp.fleet, id, { tenant, runs, launcher });
}

const halted = (d: Directive, runs: string[]) => ({
  rev: d.rev,
  directiveId: d.id,
  runs,
  aborted: 0,
  completed: 0,
  observeToSettleMs: 1,
});

test("a report naming another tenant's directive or runs is refused and changes nothing", async () => {
  const h = await harness();
  try {
    const acmeOp = await h.token('operator', 'acme');
    const acmeAgent = await h.token('agent', 'acme', 'bot');
    const beta = await h.token('agent', 'beta', 'bot');
    worker(h, 'wa', 'acme', ['ra']);
    worker(h, 'wb', 'beta', ['rb']);
    await h.store.registerRun({
      runId: 'ra',
      tenant: 'acme',
      agent: 'bot',
      parentRunId: null,
      lineage: [],
      features: [],
      workerId: 'wa',
      startedAt: new Date().toISOString(),
    });
    const p = await h.req('POST', '/v1/permits', {
      token: acmeAgent,
      body: {
        workerId: 'wa',
        runId: 'ra',
        lineage: [],
        features: [],
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: null,
        argsDigest: null,
        compensate: { undo: 'x' },
      },
    });
    const permitId = ((await p.json()) as { permit: { id: string } }).permit.id;
    await h.req('POST', `/v1/permits/${permitId}/outcome`, { token: acmeAgent, body: { status: 'landed' } });
    const d = await issue(h, acmeOp, { level: 'halt', scope: 'run:ra' });
    // Beta forges acme's halted report: its directive, acme's run, a made-up directive.
    await expectWireError(
      await h.req('POST', '/v1/workers/wb/halted', { token: beta, body: halted(d, ['ra']) }),
      404,
      'not_found',
      "beta naming acme's directive",
    );
    await expectWireError(
      await h.req('POST', '/v1/workers/wb/halted', {
        token: beta,
        body: { ...halted(d, ['ra']), directiveId: 'd_forged_by_beta' },
      }),
      404,
      'not_found',
      'a made-up directive',
    );
    await h.cp.flushAudit();
    assert.deepEqual(
      (await h.store.compensationsPage({ limit: 5000, cursor: null })).items,
      [],
      'nothing entered the compensation list',
    );
    assert.equal((await audit(h, 'session.halted')).length, 0);
    // Acme's own report of a run it does not host records only what it hosts.
    worker(h, 'wa2', 'acme', ['ra2']);
    const r = await h.req('POST', '/v1/workers/wa2/halted', { token: acmeAgent, body: halted(d, ['ra']) });
    assert.equal(r.status, 204);
    const rec = await audit(h, 'session.halted');
    assert.deepEqual(rec[0]?.data.runs, [], 'a run the worker does not host is not recorded');
    assert.deepEqual((await h.store.compensationsPage({ limit: 5000, cursor: null })).items, []);
    // The real host's report counts.
    assert.equal(
      (await h.req('POST', '/v1/workers/wa/halted', { token: acmeAgent, body: halted(d, ['ra']) })).status,
      204,
    );
    await h.cp.flushAudit();
    assert.deepEqual(
      (await h.store.compensationsPage({ limit: 5000, cursor: null })).items.map((c) => [
        c.tenant,
        c.runId,
        c.haltedBy,
      ]),
      [['acme', 'ra', d.id]],
    );
  } finally {
    await h.close();
  }
});

/** A write permit request of worker w1 for run r1 (no seenRev: as an old worker sends it). */
const writeOnR1 = {
  workerId: 'w1',
  runId: 'r1',
  lineage: [],
  features: [],
  capability: 'crm.update',
  class: 'write',
  idempotencyKey: null,
  argsDigest: null,
  compensate: null,
};

test('a permit request asked before the worker observed the halt, delivered after its report, is no contradiction', async () => {
  const h = await harness({ escalationSlackMs: 20 });
  try {
    const op = await h.token('operator', 'acme');
    const agent = await h.token('agent', 'acme', 'bot');
    worker(h, 'w1', 'acme', ['r1']);
    const d = await issue(h, op, { level: 'halt', scope: 'run:r1', graceMs: 60 });
    const ack = await h.req('POST', '/v1/workers/w1/halted', { token: agent, body: halted(d, ['r1']) });
    assert.equal(ack.status, 204);
    // Sent while the worker was still at the rev before the halt; the network delivered it late.
    const late = await h.req('POST', '/v1/permits', {
      token: agent,
      body: { ...writeOnR1, seenRev: d.rev - 1 },
    });
    await expectWireError(late, 409, 'halted', 'refused all the same (guarantee 1)');
    await sleep(400); // past grace 60 + slack 20: an escalation would have fired by now
    assert.deepEqual(await audit(h, 'ack.contradicted'), []);
    assert.deepEqual(await audit(h, 'directive.escalated'), [], 'the acknowledgement stands: no kill');
  } finally {
    await h.close();
  }
});

test('a halted report followed by an effect attempt on the covered run does not stop the kill step', async () => {
  const h = await harness({ escalationSlackMs: 20 });
  try {
    const op = await h.token('operator', 'acme');
    const agent = await h.token('agent', 'acme', 'bot');
    worker(h, 'w1', 'acme', ['r1']);
    const d = await issue(h, op, { level: 'halt', scope: 'run:r1', graceMs: 60 });
    const ack = await h.req('POST', '/v1/workers/w1/halted', { token: agent, body: halted(d, ['r1']) });
    assert.equal(ack.status, 204);
    // The agent says it stopped, then tries a write on the covered run: it has not stopped.
    const attempt = await h.req('POST', '/v1/permits', {
      token: agent,
      body: writeOnR1,
    });
    await expectWireError(attempt, 409, 'halted', 'refused');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await audit(h, 'directive.escalated')).length === 0) await sleep(10);
    const escalated = await audit(h, 'directive.escalated');
    assert.equal(escalated.length, 1, 'the kill step fired');
    assert.deepEqual(escalated[0]!.data.laggards, ['w1']);
    const contradicted = await audit(h, 'ack.contradicted');
    assert.equal(contradicted.length, 1);
    assert.equal(contradicted[0]!.data.directiveId, d.id);
  } finally {
    await h.close();
  }
});

test("egress through the launcher's proxy after the ack means not stopped: the kill step proceeds", async () => {
  const h = await harness({ escalationSlackMs: 20 });
  try {
    const op = await h.token('operator', 'acme');
    const agent = await h.token('agent', 'acme', 'bot');
    await h.cp.claimLauncher({ tenant: 'acme', agent: 'bot' }, 'L');
    worker(h, 'w1', 'acme', ['r1'], 'L');
    const d = await issue(h, op, { level: 'halt', scope: 'run:r1', graceMs: 60 });
    assert.equal(
      (await h.req('POST', '/v1/workers/w1/halted', { token: agent, body: halted(d, ['r1']) })).status,
      204,
    );
    const ev = await h.req('POST', '/v1/launchers/L/events', {
      token: agent,
      body: { events: [{ type: 'egress.allowed', directiveId: d.id, destination: 'api.example.com:443' }] },
    });
    assert.equal(ev.status, 204, await ev.clone().text());
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await audit(h, 'directive.escalated')).length === 0) await sleep(10);
    assert.equal((await audit(h, 'directive.escalated')).length, 1, 'the kill step fired');
  } finally {
    await h.close();
  }
});

test('a report naming a run whose registration lands after it counts once the run is known; a run it does not host never', async () => {
  const h = await harness({ escalationSlackMs: 20 });
  try {
    const op = await h.token('operator', 'acme');
    const agent = await h.token('agent', 'acme', 'bot');
    // Both workers started a run just before the flip: the control plane does not know it yet.
    worker(h, 'w1', 'acme', []);
    worker(h, 'w2', 'acme', []);
    const d = await issue(h, op, { level: 'halt', scope: 'agent:acme/bot', graceMs: 300 });
    for (const [w, run] of [
      ['w1', 'r1'],
      ['w2', 'r-not-mine'],
    ] as const) {
      const r = await h.req('POST', `/v1/workers/${w}/halted`, { token: agent, body: halted(d, [run]) });
      assert.equal(r.status, 204);
    }
    // The registrations land after the reports: w1's names the run it reported, w2's another.
    for (const [w, run] of [
      ['w1', 'r1'],
      ['w2', 'r2'],
    ] as const) {
      const r = await h.req('POST', '/v1/runs', {
        token: agent,
        body: { runId: run, parentRunId: null, lineage: [], features: [], workerId: w },
      });
      assert.ok(r.status < 300, await r.text());
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await audit(h, 'directive.escalated')).length === 0) await sleep(10);
    const escalated = await audit(h, 'directive.escalated');
    assert.equal(escalated.length, 1, 'the kill step fired');
    assert.deepEqual(escalated[0]!.data.laggards, ['w2'], 'w1 acknowledged r1 once it was known to host it');
    await h.cp.flushAcks();
    assert.deepEqual(
      (await h.store.acksOf(d.id)).map((a) => [a.workerId, a.runs]),
      [['w1', ['r1']]],
    );
  } finally {
    await h.close();
  }
});
