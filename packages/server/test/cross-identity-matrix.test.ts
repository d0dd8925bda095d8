import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directive } from '@killpath/protocol';
import { harness, heartbeatBody, type Harness } from './harness.ts';

/**
 * Every route that names a launcher, worker, run, permit or directive id, called with the ids
 * of acme/bot's objects by an agent of another tenant (beta/bot), another agent of the same
 * tenant (acme/other) and, for people's routes, another tenant's operator: refused (403, 404 or
 * 409), never acted on (no rev, no audit record, acme's permit untouched), never leaked (no word
 * of acme's directive in the answer).
 */
interface World {
  h: Harness;
  tokens: Record<'owner' | 'betaAgent' | 'acmeOther' | 'betaOp', string>;
  d: Directive;
  permitId: string;
  /** Id of acme/bot's agent token. */
  ownerTokenId: string;
}

const SECRET = 'ACME-SECRET-REASON';

async function world(): Promise<World> {
  const h = await harness();
  const tokens = {
    owner: await h.token('agent', 'acme', 'bot'),
    betaAgent: await h.token('agent', 'beta', 'bot'),
    acmeOther: await h.token('agent', 'acme', 'other'),
    betaOp: await h.token('operator', 'beta'),
  };
  const acmeOp = await h.token('operator', 'acme');
  h.cp.fleet.connected('wa', 'acme', 'bot', []);
  await h.cp.claimLauncher({ tenant: 'acme', agent: 'bot' }, 'L');
  const hb = await h.req('POST', '/v1/workers/wa/heartbeat', {
    token: tokens.owner,
    body: { ...heartbeatBody(), launcher: 'L' },
  });
  assert.equal(hb.status, 204);
  const run = await h.req('POST', '/v1/runs', {
    token: tokens.owner,
    body: { runId: 'ra', parentRunId: null, lineage: [], features: [], workerId: 'wa' },
  });
  assert.equal(run.status, 201);
  const p = await h.req('POST', '/v1/permits', { token: tokens.owner, body: permitBody() });
  assert.equal(p.status, 201);
  const permitId = ((await p.json()) as { permit: { id: string } }).permit.id;
  const issued = await h.req('POST', '/v1/directives', {
    token: acmeOp,
    body: { level: 'halt', scope: 'agent:acme/other', reason: SECRET, justification: SECRET },
  });
  assert.equal(issued.status, 201);
  const d = ((await issued.json()) as { directive: Directive }).directive;
  const ownerTokenId = (await h.store.listTokens({})).find(
    (t) => t.role === 'agent' && t.agent === 'bot' && t.tenant === 'acme',
  )!.id;
  return { h, tokens, d, permitId, ownerTokenId };
}

function permitBody() {
  return {
    workerId: 'wa',
    runId: 'ra',
    lineage: [],
    features: [],
    capability: 'crm.update',
    class: 'write',
    idempotencyKey: null,
    argsDigest: null,
    compensate: { undo: 'x' },
  };
}

interface Route {
  name: string;
  method: 'GET' | 'POST';
  path: (w: World) => string;
  body?: (w: World) => unknown;
  /** Who calls it: agents for the agents' routes, the other tenant's operator for people's. */
  callers: ('betaAgent' | 'acmeOther' | 'betaOp')[];
  /**
   * It names a worker id: a worker id is its agent's own name, so another identity naming `wa`
   * names a worker of its own (answered as any new id, maybe 2xx), never acme/bot's.
   */
  namesWorker?: true;
}

const AGENTS: Route['callers'] = ['betaAgent', 'acmeOther'];
const ROUTES: Route[] = [
  {
    name: 'heartbeat of wa',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/workers/wa/heartbeat',
    body: () => heartbeatBody(),
    callers: AGENTS,
  },
  {
    name: 'ack of wa',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/workers/wa/ack',
    body: () => ({ rev: 99 }),
    callers: AGENTS,
  },
  {
    name: 'halted of wa',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/workers/wa/halted',
    body: (w) => ({
      rev: w.d.rev,
      directiveId: w.d.id,
      runs: ['ra'],
      aborted: 0,
      completed: 0,
      observeToSettleMs: 1,
    }),
    callers: AGENTS,
  },
  {
    name: 'run on wa',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/runs',
    body: () => ({ runId: 'ra', parentRunId: null, lineage: [], features: [], workerId: 'wa' }),
    callers: AGENTS,
  },
  {
    name: 'permit on wa/ra',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/permits',
    body: () => permitBody(),
    callers: AGENTS,
  },
  {
    name: 'confirm permit',
    method: 'POST',
    path: (w) => `/v1/permits/${w.permitId}/confirm`,
    callers: AGENTS,
  },
  {
    name: 'settle permit',
    method: 'POST',
    path: (w) => `/v1/permits/${w.permitId}/outcome`,
    body: () => ({ status: 'failed', error: 'forged' }),
    callers: AGENTS,
  },
  {
    name: 'journal of wa',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/journal',
    body: () => ({
      workerId: 'wa',
      events: [
        {
          type: 'timer.cancelled',
          runId: 'ra',
          timer: 'timeout',
          label: null,
          dueAt: 'x',
          directiveId: null,
        },
      ],
    }),
    callers: AGENTS,
  },
  {
    name: 'resume run ra on wa',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/runs/ra/resume',
    body: () => ({ workerId: 'wa', lineage: [], features: [] }),
    callers: AGENTS,
  },
  {
    name: 'launcher L events',
    method: 'POST',
    path: () => '/v1/launchers/L/events',
    body: () => ({ events: [{ type: 'process.exited', pid: 1, code: 1 }] }),
    callers: AGENTS,
  },
  {
    name: 'launcher L stream',
    method: 'GET',
    path: () => '/v1/launchers/stream?launcher=L&tenant=acme&agent=bot',
    callers: AGENTS,
  },
  {
    name: 'worker wa stream',
    method: 'GET',
    path: () => '/v1/stream?worker=wa&tenant=acme&agent=bot',
    callers: AGENTS,
  },
  {
    name: 'read directive',
    method: 'GET',
    path: (w) => `/v1/directives/${w.d.id}`,
    callers: ['betaOp', 'acmeOther'],
  },
  {
    name: 'resume directive',
    method: 'POST',
    path: (w) => `/v1/directives/${w.d.id}/resume`,
    body: () => ({ justification: 'x' }),
    callers: ['betaOp', 'acmeOther'],
  },
  {
    name: 'step directive',
    method: 'POST',
    path: (w) => `/v1/directives/${w.d.id}/step`,
    body: () => ({ direction: 'up', justification: 'x' }),
    callers: ['betaOp', 'acmeOther'],
  },
  { name: 'read run', method: 'GET', path: () => '/v1/runs/ra', callers: ['betaOp', 'acmeOther'] },
  {
    name: 'inspect run ra',
    method: 'POST',
    path: () => '/v1/runs/ra/inspect',
    body: () => ({ justification: 'look', cores: false }),
    callers: ['betaOp', 'acmeOther', 'betaAgent'],
  },
  {
    name: 'effects permitted after the directive',
    method: 'GET',
    path: (w) => `/v1/directives/${w.d.id}/permitted-after`,
    callers: ['betaOp', 'acmeOther'],
  },
  {
    name: 'mint a token for launcher L of acme',
    method: 'POST',
    path: () => '/v1/launchers/L/token',
    body: () => ({ tenant: 'acme', agent: 'bot' }),
    callers: ['betaOp', 'acmeOther', 'betaAgent'],
  },
  {
    name: "revoke acme/bot's token",
    method: 'POST',
    path: (w) => `/v1/tokens/${w.ownerTokenId}/revoke`,
    body: () => ({ reason: 'x' }),
    callers: ['betaOp', 'acmeOther', 'betaAgent'],
  },
  {
    name: 'permit batch on wa/ra',
    namesWorker: true,
    method: 'POST',
    path: () => '/v1/permits/batch',
    body: () => ({ requests: [permitBody()] }),
    callers: AGENTS,
  },
  {
    name: 'outcome batch on acme’s permit',
    method: 'POST',
    path: () => '/v1/permits/outcomes',
    body: (w) => ({ outcomes: [{ permitId: w.permitId, status: 'failed', error: 'forged' }] }),
    callers: AGENTS,
  },
  { name: 'run journal', method: 'GET', path: () => '/v1/runs/ra/journal', callers: ['betaOp', 'acmeOther'] },
];

describe('cross-identity matrix: ids of acme/bot, callers of another tenant or agent', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });
  afterEach(async () => {
    await w.h.close();
  });

  for (const route of ROUTES) {
    for (const who of route.callers) {
      test(`${route.name} by ${who} is refused, acts on nothing, leaks nothing`, async () => {
        const rev = await w.h.store.rev();
        await w.h.cp.flushAudit();
        const audit = (await w.h.store.listAudit({ limit: 100_000 })).length;
        const res = await w.h.req(route.method, route.path(w), {
          token: w.tokens[who],
          ...(route.body ? { body: route.body(w) } : {}),
        });
        const text = await res.text();
        // A batch answers 200 with one refusal per item.
        const refused = (status: number) => [403, 404, 409].includes(status);
        const items = /\/batch$|\/outcomes$/.test(route.path(w))
          ? ((JSON.parse(text) as { answers?: { status: number }[] }).answers ?? [])
          : [{ status: res.status }];
        if (!route.namesWorker)
          assert.ok(
            items.every((i) => refused(i.status)),
            `${res.status} ${text}`,
          );
        assert.ok(!text.includes(SECRET), 'no word of the directive');
        assert.equal(await w.h.store.rev(), rev, 'no rev');
        await w.h.cp.flushAudit();
        const added = (await w.h.store.listAudit({ limit: 100_000 })).slice(audit);
        if (route.namesWorker)
          assert.deepEqual(
            added.filter((r) => r.tenant === 'acme' && (r.data.agent === 'bot' || r.data.runId === 'ra')),
            [],
            'no record about acme/bot or its run',
          );
        else assert.deepEqual(added, [], 'no record');
        const ledger = await w.h.store.ledger('acme', 'ra');
        assert.deepEqual(
          ledger.effects.map((e) => e.status),
          ['granted'],
          "acme's permit untouched",
        );
        assert.deepEqual(ledger.events, [], 'no journal event on acme’s run');
        const wa = w.h.cp.fleet.list('acme', rev).find((x) => x.workerId === 'wa');
        assert.equal(wa?.launcher, 'L');
        assert.equal(wa?.tenant, 'acme');
        assert.equal(wa?.ackedRev, 0, 'no ack recorded for wa');
      });
    }
  }

  test('the compensation list and run-scoped kill of another tenant never reach acme', async () => {
    // A run named in another tenant is not found, in the very words of a run that exists nowhere.
    const list = await w.h.req('GET', '/v1/compensations?run=ra', { token: w.tokens.betaOp });
    const nowhere = await w.h.req('GET', '/v1/compensations?run=nowhere', { token: w.tokens.betaOp });
    assert.equal(list.status, 404);
    assert.equal(
      ((await list.json()) as { error: { message: string } }).error.message.replace('ra', 'nowhere'),
      ((await nowhere.json()) as { error: { message: string } }).error.message,
    );
    const kill = await w.h.req('POST', '/v1/directives', {
      token: w.tokens.betaOp,
      body: { level: 'kill', scope: 'run:ra', reason: 'beta', justification: 'beta' },
    });
    assert.equal(kill.status, 201);
    assert.equal(((await kill.json()) as { directive: Directive }).directive.tenant, 'beta');
    const again = await w.h.req('POST', '/v1/permits', {
      token: w.tokens.owner,
      body: { ...permitBody(), idempotencyKey: 'k2' },
    });
    assert.equal(again.status, 201, "beta's run-scoped kill does not cover acme's ra");
  });
});
