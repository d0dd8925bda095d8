/**
 * Worker ids are each agent's own names (issue 11, item 2): a worker is keyed by its tenant, its
 * agent and its id, so an agent of another tenant (or another agent of the same tenant) that
 * reports, streams, acks or halts under acme's worker id gets a worker of its own, answered as
 * any new id would be; acme's worker keeps its stream, its runs and its acknowledgements.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive, FleetWorker } from '@killpath/protocol';
import { expectWireError, harness, heartbeatBody } from './harness.ts';
import { liveServer, type LiveServer } from './live-server.ts';

const W = 'w-shared';
const stream = (worker: string, tenant: string, agent = 'bot') =>
  `/v1/stream?worker=${worker}&tenant=${tenant}&agent=${agent}`;
const run = (runId: string, workerId: string) => ({
  runId,
  parentRunId: null,
  lineage: [],
  features: [],
  workerId,
});

describe('worker ids live inside their agent', () => {
  let s: LiveServer;
  let t: Record<'acme' | 'acmeOther' | 'beta' | 'acmeOp' | 'betaOp' | 'admin', string>;
  beforeEach(async () => {
    s = await liveServer();
    t = {
      acme: await s.token('agent', 'acme', 'bot'),
      acmeOther: await s.token('agent', 'acme', 'other'),
      beta: await s.token('agent', 'beta', 'bot'),
      acmeOp: await s.token('operator', 'acme'),
      betaOp: await s.token('operator', 'beta'),
      admin: s.server.createdAdminToken!,
    };
  });
  afterEach(async () => {
    await s.close();
  });

  async function fleet(token: string): Promise<FleetWorker[]> {
    const r = await s.call('GET', '/v1/fleet', token);
    assert.equal(r.status, 200);
    return (r.body as { workers: FleetWorker[] }).workers;
  }

  for (const squatter of ['beta', 'acmeOther'] as const) {
    test(`${squatter} using acme's worker id, before and after acme, changes nothing of acme's worker`, async () => {
      const [sqTenant, sqAgent] = squatter === 'beta' ? ['beta', 'bot'] : ['acme', 'other'];
      // The squatter takes the id first: acme's stream must still open (it answered 409).
      const early = await s.stream(stream(W, sqTenant, sqAgent), t[squatter]);
      assert.equal(early.status, 200);
      const mine = await s.stream(stream(W, 'acme'), t.acme);
      assert.equal(mine.status, 200, 'acme opens its worker whatever id another identity used');
      assert.equal((await s.call('POST', '/v1/runs', t.acme, run('ra', W))).status, 201);
      const hb = await s.call('POST', `/v1/workers/${W}/heartbeat`, t.acme, {
        ...heartbeatBody(),
        runs: [
          {
            runId: 'ra',
            parentRunId: null,
            lineage: [],
            state: 'running',
            effects: 0,
            denied: 0,
            inFlight: 0,
          },
        ],
      });
      assert.equal(hb.status, 200, JSON.stringify(hb.body));

      // The squatter reports under the same id, as it would under an id nobody uses.
      const answers: unknown[] = [];
      for (const id of [W, 'w-nobody-uses']) {
        const beat = await s.call('POST', `/v1/workers/${id}/heartbeat`, t[squatter], heartbeatBody());
        assert.equal(beat.status, 200, `${squatter} heartbeat ${id}: ${JSON.stringify(beat.body)}`);
        const ack = await s.call('POST', `/v1/workers/${id}/ack`, t[squatter], { rev: 99 });
        assert.equal(ack.status, 204, `${squatter} ack ${id}`);
        answers.push(beat.body);
      }
      assert.deepEqual(answers[0], answers[1], 'answered as an id nobody uses');
      const late = await s.stream(stream(W, sqTenant, sqAgent), t[squatter]);
      assert.equal(late.status, 200);

      // acme's worker: its own runs, no ack of rev 99, acme's identity; the squatter's is another.
      const acmeView = (await fleet(t.acmeOp)).filter((w) => w.workerId === W);
      const ofAcme = acmeView.filter((w) => w.agent === 'bot');
      assert.equal(ofAcme.length, 1);
      assert.deepEqual(
        ofAcme[0]!.runs.map((r) => r.runId),
        ['ra'],
      );
      assert.equal(ofAcme[0]!.ackedRev, 0, "the squatter's ack is not acme's");
      assert.equal(ofAcme[0]!.connected, true);
      if (squatter === 'beta') {
        assert.equal(acmeView.length, 1, 'beta’s worker is not in acme’s view');
        const betaView = (await fleet(t.betaOp)).filter((w) => w.workerId === W);
        assert.deepEqual(
          betaView.map((w) => [w.tenant, w.agent, w.runs.length, w.ackedRev]),
          [['beta', 'bot', 0, 0]],
          'beta sees its own worker only, nothing of acme’s',
        );
      }

      // A halt of acme's run reaches acme's worker, and acme's halted report counts for it.
      const issued = await s.call('POST', '/v1/directives', t.acmeOp, {
        level: 'halt',
        scope: 'run:ra',
        reason: 'stop',
        justification: 'INC-1',
      });
      assert.equal(issued.status, 201, JSON.stringify(issued.body));
      const d = (issued.body as { directive: Directive }).directive;
      await mine.until((e) => e.event === 'delta' && JSON.stringify(e.data).includes(d.id));
      // The squatter's halted report on that id is not acme's: the directive is not its own.
      const forged = await s.call('POST', `/v1/workers/${W}/halted`, t[squatter], {
        rev: d.rev,
        directiveId: d.id,
        runs: ['ra'],
        aborted: 0,
        completed: 0,
        observeToSettleMs: 1,
      });
      if (squatter === 'beta') assert.equal(forged.status, 404);
      else assert.equal(forged.status, 204);
      await s.server.controlPlane.flushAudit();
      const before = await s.server.controlPlane.store.listAudit({ types: ['session.halted'], limit: 100 });
      assert.ok(
        before.every((r) => (r.data.runs as string[]).length === 0),
        `no halted report counts acme's run for the squatter: ${JSON.stringify(before.map((r) => r.data))}`,
      );
      const halted = await s.call('POST', `/v1/workers/${W}/halted`, t.acme, {
        rev: d.rev,
        directiveId: d.id,
        runs: ['ra'],
        aborted: 0,
        completed: 0,
        observeToSettleMs: 1,
      });
      assert.equal(halted.status, 204);
      const acmeAfter = (await fleet(t.acmeOp)).find((w) => w.workerId === W && w.agent === 'bot')!;
      assert.equal(acmeAfter.runs[0]!.state, 'halt');
      assert.equal(acmeAfter.ackedRev, d.rev);
      mine.close();
      early.close();
      late.close();
    });
  }
});

describe('a heartbeat names only its own runs', () => {
  test("a run another agent of the tenant registered is left out of a worker's report and counted", async () => {
    const h = await harness();
    try {
      const bot = await h.token('agent', 'acme', 'bot');
      const other = await h.token('agent', 'acme', 'other');
      const admin = await h.token('admin', '*');
      h.cp.fleet.connected('wa', 'acme', 'bot', []);
      const reg = await h.req('POST', '/v1/runs', { token: bot, body: run('ra', 'wa') });
      assert.equal(reg.status, 201);
      const report = (runId: string) => ({
        runId,
        parentRunId: null,
        lineage: [],
        state: 'running',
        effects: 0,
        denied: 0,
        inFlight: 0,
      });
      const hb = await h.req('POST', '/v1/workers/wo/heartbeat', {
        token: other,
        body: { ...heartbeatBody(), runs: [report('ra'), report('ro')] },
      });
      assert.equal(hb.status, 204);
      const view = (await (await h.req('GET', '/v1/fleet', { token: admin })).json()) as {
        workers: FleetWorker[];
      };
      assert.deepEqual(
        view.workers.map((w) => [w.agent, w.workerId, w.runs.map((r) => r.runId)]),
        [
          ['bot', 'wa', ['ra']],
          ['other', 'wo', ['ro']],
        ],
      );
      const metrics = await (await h.req('GET', '/metrics', { token: admin })).text();
      assert.match(metrics, /killpath_foreign_runs_dropped_total\{route="heartbeat"\} 1/);
    } finally {
      await h.close();
    }
  });
});

describe("a launcher's process events reach only its own agent's workers", () => {
  test("acme/bot's process ending puts in doubt its own permits, not those of acme/other's worker of the same id", async () => {
    const h = await harness();
    try {
      const bot = await h.token('agent', 'acme', 'bot');
      const other = await h.token('agent', 'acme', 'other');
      const permit = (runId: string) => ({
        workerId: 'w1',
        runId,
        lineage: [],
        features: [],
        capability: 'crm.update',
        class: 'write',
        idempotencyKey: null,
        argsDigest: null,
        compensate: null,
      });
      for (const [token, runId, launcher] of [
        [bot, 'rb', 'L'],
        [other, 'ro', undefined],
      ] as const) {
        const hb = await h.req('POST', '/v1/workers/w1/heartbeat', {
          token,
          body: { ...heartbeatBody(), ...(launcher ? { launcher } : {}) },
        });
        assert.equal(hb.status, 204);
        const p = await h.req('POST', '/v1/permits', { token, body: permit(runId) });
        assert.equal(p.status, 201, await p.text());
      }
      const ended = await h.req('POST', '/v1/launchers/L/events', {
        token: bot,
        body: { events: [{ type: 'process.exited', pid: 1234, code: 1 }] },
      });
      assert.equal(ended.status, 204, await ended.text());
      assert.deepEqual(
        (await h.store.ledger('acme', 'rb')).effects.map((e) => e.status),
        ['in_doubt'],
      );
      assert.deepEqual(
        (await h.store.ledger('acme', 'ro')).effects.map((e) => e.status),
        ['granted'],
        "acme/other's effect is not in doubt: its process did not end",
      );
    } finally {
      await h.close();
    }
  });
});

describe('a worker acknowledges only revs it was sent', () => {
  test('an ack, heartbeat or halted report of a rev not yet committed counts as the current rev', async () => {
    const h = await harness();
    try {
      const bot = await h.token('agent', 'acme', 'bot');
      const op = await h.token('operator', 'acme');
      const admin = await h.token('admin', '*');
      h.cp.fleet.connected('w1', 'acme', 'bot', []);
      const acked = async () =>
        ((await (await h.req('GET', '/v1/fleet', { token: admin })).json()) as { workers: FleetWorker[] })
          .workers[0]!.ackedRev;
      assert.equal(
        (await h.req('POST', '/v1/workers/w1/ack', { token: bot, body: { rev: 99 } })).status,
        204,
      );
      assert.equal(await acked(), 0, 'rev 99 does not exist yet');
      const hb = await h.req('POST', '/v1/workers/w1/heartbeat', {
        token: bot,
        body: { ...heartbeatBody(), rev: 50 },
      });
      assert.equal(hb.status, 204);
      assert.equal(await acked(), 0);
      // So a directive committed later is not taken as acknowledged in advance.
      const d = await h.req('POST', '/v1/directives', {
        token: op,
        body: { level: 'halt', scope: 'agent:acme/bot', reason: 'stop', justification: 'INC-9' },
      });
      assert.equal(d.status, 201, await d.text());
      assert.equal(await acked(), 0, 'not acknowledged by an ack sent before it existed');
      assert.equal((await h.req('POST', '/v1/workers/w1/ack', { token: bot, body: { rev: 1 } })).status, 204);
      assert.equal(await acked(), 1);
    } finally {
      await h.close();
    }
  });
});

describe('a token not bound to one agent names a worker only when one agent uses the id', () => {
  test('a tenant-wide agent token acts on the one holder of an id, 409 when several agents use it, 404 across tenants', async () => {
    const h = await harness();
    try {
      const tenantWide = await h.token('agent', 'acme');
      const admin = await h.token('admin', '*');
      h.cp.fleet.connected('w1', 'acme', 'bot', []);
      h.cp.fleet.connected('w2', 'beta', 'bot', []);
      const beat = (token: string, id: string) =>
        h.req('POST', `/v1/workers/${id}/heartbeat`, { token, body: { ...heartbeatBody(), pid: 77 } });
      assert.equal((await beat(tenantWide, 'w1')).status, 204);
      await expectWireError(await beat(tenantWide, 'w2'), 404, 'not_found', "beta's worker");
      h.cp.fleet.connected('w1', 'acme', 'other', []);
      await expectWireError(await beat(tenantWide, 'w1'), 409, 'conflict', 'two agents use w1');
      await expectWireError(await beat(admin, 'w1'), 409, 'conflict', 'an admin neither guesses');
      const pids = h.cp
        .fleetView(undefined)
        .filter((w) => w.workerId === 'w1')
        .map((w) => [w.agent, w.pid]);
      assert.deepEqual(pids, [
        ['bot', 77],
        ['other', null],
      ]);
    } finally {
      await h.close();
    }
  });
});
