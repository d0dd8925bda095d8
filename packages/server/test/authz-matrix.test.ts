import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KillpathError,
  type AuditRecord,
  type Directive,
  type ErrorCode,
  type FleetWorker,
  type Principal,
  type RehearsalRecord,
  type Role,
} from '@killpath/protocol';
import { canAct, canSee, requireAct, requireHuman, tenantFilter } from '../src/auth/policy.ts';
import { expectWireError, harness, heartbeatBody, type Harness } from './harness.ts';
import { rehearsalInput } from './store-contract.ts';

const PRINCIPALS = ['admin', 'opA', 'opB', 'viewerA', 'agentA', 'none', 'garbage'] as const;
type Who = (typeof PRINCIPALS)[number];

/** A control plane with two tenants, A and B, in it. */
interface World {
  h: Harness;
  tokens: Record<Who, string | null> & { agentB: string };
  /** Active halts of tenant A and tenant B, issued by the admin. */
  dA: Directive;
  dB: Directive;
  /** An active global halt, issued by the admin with a break-glass attestation. */
  dGlobal: Directive;
  /** A rehearsal record of A/bot, recorded by the admin. */
  drillA: RehearsalRecord;
}

async function world(): Promise<World> {
  const h = await harness();
  const admin = await h.token('admin', '*');
  const tokens = {
    admin,
    opA: await h.token('operator', 'A'),
    opB: await h.token('operator', 'B'),
    viewerA: await h.token('viewer', 'A'),
    agentA: await h.token('agent', 'A', 'bot'),
    agentB: await h.token('agent', 'B', 'bot'),
    none: null,
    garbage: 'kp_not-a-real-token',
  };
  const issue = async (scope: string, extra: Record<string, unknown> = {}) => {
    const res = await h.req('POST', '/v1/directives', {
      token: admin,
      body: { level: 'halt', scope, reason: 'r', justification: 'j', ...extra },
    });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { directive: Directive }).directive;
  };
  const dA = await issue('tenant:A');
  const dB = await issue('tenant:B');
  const dGlobal = await issue('global', { breakGlass: 'SEV1', capabilities: ['wire_transfer'] });
  h.cp.fleet.connected('wA', 'A', 'bot', []);
  h.cp.fleet.connected('wB', 'B', 'bot', []);
  const recorded = await h.req('POST', '/v1/drills', { token: admin, body: drillBody('A') });
  assert.equal(recorded.status, 201, await recorded.clone().text());
  const drillA = ((await recorded.json()) as { drill: RehearsalRecord }).drill;
  return { h, tokens, dA, dB, dGlobal, drillA };
}

/** A rehearsal of `bot` in each of `tenants`. */
function drillBody(...tenants: string[]) {
  return rehearsalInput({
    spec: {
      name: 'spec',
      digest: 'd1',
      agents: tenants.map((tenant) => ({ tenant, agent: 'bot', level: 4, cadenceDays: 30 })),
    },
  });
}

interface Route {
  name: string;
  method: 'GET' | 'POST';
  path: (w: World) => string;
  body?: unknown;
}

type Cell = number | [number, ErrorCode];
/** Expected outcome for the five authenticated principals; no or a garbage token is 401 on every route but /healthz. */
type Row = [Route, Record<Exclude<Who, 'none' | 'garbage'>, Cell>];

const issueBody = (scope: string, extra: Record<string, unknown> = {}) => ({
  level: 'halt',
  scope,
  reason: 'r',
  justification: 'INC-7',
  ...extra,
});
const NF: Cell = [404, 'not_found'];
const FB: Cell = [403, 'forbidden'];
const BG: Cell = [403, 'break_glass_required'];

const MATRIX: Row[] = [
  [
    { name: 'GET /v1/directives', method: 'GET', path: () => '/v1/directives' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    { name: "GET /v1/directives/:id (A's)", method: 'GET', path: (w) => `/v1/directives/${w.dA.id}` },
    { admin: 200, opA: 200, opB: NF, viewerA: 200, agentA: FB },
  ],
  [
    { name: "GET /v1/directives/:id (B's)", method: 'GET', path: (w) => `/v1/directives/${w.dB.id}` },
    { admin: 200, opA: NF, opB: 200, viewerA: NF, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives tenant:A',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('tenant:A', { level: 'kill' }),
    },
    { admin: 201, opA: 201, opB: NF, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives tenant:B',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('tenant:B', { level: 'kill' }),
    },
    { admin: 201, opA: NF, opB: 201, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives agent:A/bot',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('agent:A/bot'),
    },
    { admin: 201, opA: 201, opB: NF, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives global with breakGlass',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('global', { breakGlass: 'SEV1: fleet-wide spend' }),
    },
    { admin: 201, opA: FB, opB: FB, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives global without breakGlass',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('global'),
    },
    { admin: BG, opA: FB, opB: FB, viewerA: FB, agentA: FB },
  ],
  [
    // Without a tenant, a feature scope is confined to the issuer's tenant; an admin's spans every tenant.
    {
      name: 'POST /v1/directives feature:F without tenant',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('feature:F'),
    },
    { admin: BG, opA: 201, opB: 201, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives feature:F for tenant B',
      method: 'POST',
      path: () => '/v1/directives',
      body: issueBody('feature:F', { tenant: 'B' }),
    },
    { admin: 201, opA: NF, opB: 201, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: "POST /v1/directives/:id/resume (A's)",
      method: 'POST',
      path: (w) => `/v1/directives/${w.dA.id}/resume`,
      body: { justification: 'fixed' },
    },
    { admin: 200, opA: 200, opB: NF, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: "POST /v1/directives/:id/resume (B's)",
      method: 'POST',
      path: (w) => `/v1/directives/${w.dB.id}/resume`,
      body: { justification: 'fixed' },
    },
    { admin: 200, opA: NF, opB: 200, viewerA: FB, agentA: FB },
  ],
  [
    // Clearing a directive that spans every tenant is as much a break-glass act as issuing one.
    {
      name: 'POST /v1/directives/:id/resume (global) without breakGlass',
      method: 'POST',
      path: (w) => `/v1/directives/${w.dGlobal.id}/resume`,
      body: { justification: 'fixed' },
    },
    { admin: BG, opA: FB, opB: FB, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/directives/:id/resume (global) with breakGlass',
      method: 'POST',
      path: (w) => `/v1/directives/${w.dGlobal.id}/resume`,
      body: { justification: 'fixed', breakGlass: 'SEV1 over' },
    },
    { admin: 200, opA: FB, opB: FB, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/agents/A/bot/kill',
      method: 'POST',
      path: () => '/v1/agents/A/bot/kill',
      body: { justification: 'INC-7' },
    },
    { admin: 201, opA: 201, opB: NF, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/agents/B/bot/kill',
      method: 'POST',
      path: () => '/v1/agents/B/bot/kill',
      body: { justification: 'INC-7' },
    },
    { admin: 201, opA: NF, opB: 201, viewerA: FB, agentA: FB },
  ],
  [
    { name: 'GET /v1/fleet', method: 'GET', path: () => '/v1/fleet' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    { name: 'GET /v1/audit', method: 'GET', path: () => '/v1/audit' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    { name: 'GET /v1/audit/verify', method: 'GET', path: () => '/v1/audit/verify' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/tokens',
      method: 'POST',
      path: () => '/v1/tokens',
      body: { role: 'viewer', tenant: 'A' },
    },
    { admin: 201, opA: FB, opB: FB, viewerA: FB, agentA: FB },
  ],
  [
    { name: 'GET /v1/tokens', method: 'GET', path: () => '/v1/tokens' },
    { admin: 200, opA: 200, opB: 200, viewerA: FB, agentA: FB },
  ],
  [
    { name: 'POST /v1/tokens/rotate-admin', method: 'POST', path: () => '/v1/tokens/rotate-admin', body: {} },
    // The harness keeps no admin.token file: an admin is told so; nobody else may ask.
    { admin: [409, 'conflict'], opA: FB, opB: FB, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/tokens/t_unknown/revoke',
      method: 'POST',
      path: () => '/v1/tokens/t_unknown/revoke',
      body: { reason: 'r' },
    },
    { admin: NF, opA: NF, opB: NF, viewerA: NF, agentA: FB },
  ],
  [
    { name: 'GET /metrics', method: 'GET', path: () => '/metrics' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    { name: 'POST /v1/drills (A/bot)', method: 'POST', path: () => '/v1/drills', body: drillBody('A') },
    { admin: 201, opA: 201, opB: NF, viewerA: FB, agentA: FB },
  ],
  [
    {
      name: 'POST /v1/drills (A/bot and B/bot)',
      method: 'POST',
      path: () => '/v1/drills',
      body: drillBody('A', 'B'),
    },
    { admin: 201, opA: NF, opB: NF, viewerA: FB, agentA: FB },
  ],
  [
    { name: 'GET /v1/drills', method: 'GET', path: () => '/v1/drills?limit=10' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    { name: "GET /v1/drills/:id (A's)", method: 'GET', path: (w) => `/v1/drills/${w.drillA.id}` },
    { admin: 200, opA: 200, opB: NF, viewerA: 200, agentA: FB },
  ],
  [
    { name: 'GET /v1/drills/due', method: 'GET', path: () => '/v1/drills/due' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: FB },
  ],
  [
    { name: 'GET /v1/whoami', method: 'GET', path: () => '/v1/whoami' },
    { admin: 200, opA: 200, opB: 200, viewerA: 200, agentA: 200 },
  ],
  [
    {
      name: 'POST /v1/workers/:id/heartbeat (worker of A/bot)',
      method: 'POST',
      path: () => '/v1/workers/wA/heartbeat',
      body: heartbeatBody(),
    },
    { admin: 204, opA: NF, opB: NF, viewerA: NF, agentA: 204 },
  ],
  [
    {
      name: 'POST /v1/workers/:id/heartbeat (worker of B/bot)',
      method: 'POST',
      path: () => '/v1/workers/wB/heartbeat',
      body: heartbeatBody(),
    },
    // A worker id is its agent's own name: agentA's wB is a worker of A/bot, not B's.
    { admin: 204, opA: NF, opB: NF, viewerA: NF, agentA: 204 },
  ],
  [
    {
      name: 'POST /v1/workers/:id/ack (worker of B/bot)',
      method: 'POST',
      path: () => '/v1/workers/wB/ack',
      body: { rev: 1 },
    },
    { admin: 204, opA: NF, opB: NF, viewerA: NF, agentA: 204 },
  ],
  [
    {
      name: 'POST /v1/runs (on a worker of B/bot)',
      method: 'POST',
      path: () => '/v1/runs',
      body: { runId: 'r1', parentRunId: null, lineage: [], features: [], workerId: 'wB' },
    },
    { admin: 201, opA: NF, opB: NF, viewerA: NF, agentA: 201 },
  ],
];

const HEALTHZ: Route = { name: 'GET /healthz', method: 'GET', path: () => '/healthz' };

function expected(row: Row, who: Who): Cell {
  if (who === 'none' || who === 'garbage') return [401, 'unauthenticated'];
  return row[1][who];
}

describe('authorization matrix: role × tenant × route', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });
  afterEach(async () => {
    await w.h.close();
  });

  for (const row of MATRIX) {
    describe(row[0].name, () => {
      for (const who of PRINCIPALS) {
        const cell = expected(row, who);
        const [status, code] = typeof cell === 'number' ? [cell, null] : cell;
        test(`${who} → ${status}${code ? ` ${code}` : ''}`, async () => {
          const route = row[0];
          const rev = await w.h.store.rev();
          const res = await w.h.req(route.method, route.path(w), {
            token: w.tokens[who],
            ...(route.body === undefined ? {} : { body: route.body }),
          });
          if (code === null) {
            assert.equal(res.status, status, await res.text());
          } else {
            await expectWireError(res, status, code, `${who} ${route.name}`);
            // A refused request changes nothing.
            assert.equal(await w.h.store.rev(), rev, 'no rev bump on a refusal');
          }
        });
      }
    });
  }

  describe(HEALTHZ.name, () => {
    for (const who of PRINCIPALS) {
      test(`${who} → 200`, async () => {
        const res = await w.h.req('GET', '/healthz', { token: w.tokens[who] });
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { ok: boolean }).ok, true);
      });
    }
  });

  test('a malformed Authorization header is 401', async () => {
    for (const authorization of [
      '',
      'Bearer',
      'Bearer ',
      'Basic YWRtaW46YWRtaW4=',
      `Bearer ${w.tokens.admin} extra`,
      w.tokens.admin!,
    ]) {
      const res = await w.h.req('GET', '/v1/directives', { headers: { authorization } });
      await expectWireError(res, 401, 'unauthenticated', JSON.stringify(authorization));
    }
  });
});

describe('what each principal is acting as', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });
  afterEach(async () => {
    await w.h.close();
  });

  const post = async (who: Who, path: string, body: unknown) => {
    const res = await w.h.req('POST', path, { token: w.tokens[who], body });
    assert.ok(res.status === 200 || res.status === 201, `${res.status} ${await res.clone().text()}`);
    return ((await res.json()) as { directive: Directive }).directive;
  };

  test("an operator's tenant-less feature directive is confined to its tenant", async () => {
    const a = await post('opA', '/v1/directives', issueBody('feature:F'));
    assert.equal(a.tenant, 'A');
    const b = await post('opB', '/v1/directives', issueBody('feature:F'));
    assert.equal(b.tenant, 'B');
    assert.notEqual(a.id, b.id);
  });

  test('an admin global directive spans every tenant and records the break-glass attestation', async () => {
    const d = await post('admin', '/v1/directives', issueBody('global', { breakGlass: 'SEV1' }));
    assert.equal(d.tenant, null);
    const res = await w.h.req('GET', '/v1/audit?order=desc&limit=10', { token: w.tokens.admin });
    const records = ((await res.json()) as { records: AuditRecord[] }).records;
    const action = records.find((r) => r.type === 'operator_action' && r.data.directiveId === d.id);
    assert.ok(action, 'operator_action recorded');
    assert.equal(action.data.breakGlass, 'SEV1');
    assert.equal(action.tenant, null);
  });

  test('a break-glass attestation on a resume is on the record', async () => {
    const res = await w.h.req('POST', `/v1/directives/${w.dGlobal.id}/resume`, {
      token: w.tokens.admin,
      body: { justification: 'over', breakGlass: 'SEV1 over' },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const records = (
      (await (await w.h.req('GET', '/v1/audit?order=desc&limit=10', { token: w.tokens.admin })).json()) as {
        records: AuditRecord[];
      }
    ).records;
    const action = records.find(
      (r) =>
        r.type === 'operator_action' &&
        r.data.action === 'directive.resume' &&
        r.data.directiveId === w.dGlobal.id,
    );
    assert.ok(action, 'operator_action recorded');
    assert.equal(action.data.justification, 'over');
    assert.equal(action.data.breakGlass, 'SEV1 over');
  });

  test('the actor on a directive and its audit records is the token, not the request', async () => {
    const d = await post('opA', '/v1/agents/A/bot/kill', { justification: 'INC-7' });
    assert.equal(d.level, 'kill');
    assert.equal(d.tenant, 'A');
    const who = (await (await w.h.req('GET', '/v1/whoami', { token: w.tokens.opA })).json()) as {
      name: string;
      role: string;
      tenant: string;
    };
    assert.equal(who.role, 'operator');
    assert.equal(who.tenant, 'A');
    assert.equal(d.actor, who.name);
  });

  test('only an admin mints tokens, and the minted token works with the requested rights', async () => {
    const res = await w.h.req('POST', '/v1/tokens', {
      token: w.tokens.admin,
      body: { role: 'viewer', tenant: 'B' },
    });
    assert.equal(res.status, 201);
    const minted = (await res.json()) as { token: string; role: string; tenant: string };
    assert.equal(minted.role, 'viewer');
    assert.equal(minted.tenant, 'B');
    const seen = await w.h.req('GET', `/v1/directives/${w.dB.id}`, { token: minted.token });
    assert.equal(seen.status, 200);
    await expectWireError(
      await w.h.req('GET', `/v1/directives/${w.dA.id}`, { token: minted.token }),
      404,
      'not_found',
    );
  });

  test("an agent's reports to its own worker land in the fleet view", async () => {
    const res = await w.h.req('POST', '/v1/workers/wA/heartbeat', {
      token: w.tokens.agentA,
      body: { ...heartbeatBody(), pid: 4242 },
    });
    assert.equal(res.status, 204);
    const fleet = (await (await w.h.req('GET', '/v1/fleet', { token: w.tokens.admin })).json()) as {
      workers: FleetWorker[];
    };
    assert.equal(fleet.workers.find((x) => x.workerId === 'wA')?.pid, 4242);
    assert.equal(fleet.workers.find((x) => x.workerId === 'wB')?.pid, null);
  });

  test("a report from another agent under the same worker id does not touch that worker's state", async () => {
    // A worker id is its agent's own name: A/bot's report on wB is about A/bot's own wB.
    const res = await w.h.req('POST', '/v1/workers/wB/heartbeat', {
      token: w.tokens.agentA,
      body: { ...heartbeatBody(), pid: 666 },
    });
    assert.equal(res.status, 204);
    const fleet = (await (await w.h.req('GET', '/v1/fleet', { token: w.tokens.admin })).json()) as {
      workers: FleetWorker[];
    };
    const ofB = fleet.workers.filter((x) => x.workerId === 'wB' && x.tenant === 'B');
    assert.equal(ofB.length, 1);
    assert.equal(ofB[0]!.pid, null);
    const ofA = fleet.workers.filter((x) => x.workerId === 'wB' && x.tenant === 'A');
    assert.deepEqual(
      ofA.map((x) => x.pid),
      [666],
    );
  });
});

describe('listings never show another tenant', () => {
  let w: World;
  let global: Directive;
  let clearedB: Directive;
  beforeEach(async () => {
    w = await world();
    const admin = w.tokens.admin!;
    const g = await w.h.req('POST', '/v1/directives', {
      token: admin,
      body: issueBody('global', { breakGlass: 'SEV1', level: 'kill' }),
    });
    global = ((await g.json()) as { directive: Directive }).directive;
    // More of tenant B on the record: an operator's kill, a resume, a token, a settle report.
    const k = await w.h.req('POST', '/v1/agents/B/bot/kill', {
      token: w.tokens.opB,
      body: { justification: 'B only' },
    });
    clearedB = ((await k.json()) as { directive: Directive }).directive;
    assert.equal(
      (
        await w.h.req('POST', `/v1/directives/${clearedB.id}/resume`, {
          token: w.tokens.opB,
          body: { justification: 'B only' },
        })
      ).status,
      200,
    );
    assert.equal(
      (await w.h.req('POST', '/v1/tokens', { token: admin, body: { role: 'viewer', tenant: 'B' } })).status,
      201,
    );
    const halted = {
      rev: w.dB.rev,
      directiveId: w.dB.id,
      runs: [],
      aborted: 1,
      completed: 0,
      observeToSettleMs: 2,
    };
    assert.equal(
      (await w.h.req('POST', '/v1/workers/wB/halted', { token: w.tokens.agentB, body: halted })).status,
      204,
    );
    // And of tenant A.
    assert.equal(
      (
        await w.h.req('POST', '/v1/agents/A/bot/kill', {
          token: w.tokens.opA,
          body: { justification: 'A only' },
        })
      ).status,
      201,
    );
    assert.equal(
      (await w.h.req('POST', '/v1/workers/wA/heartbeat', { token: w.tokens.agentA, body: heartbeatBody() }))
        .status,
      204,
    );
  });
  afterEach(async () => {
    await w.h.close();
  });

  const get = async (who: Who, path: string) => {
    const res = await w.h.req('GET', path, { token: w.tokens[who] });
    assert.equal(res.status, 200);
    const text = await res.text();
    return { text, body: JSON.parse(text) as unknown };
  };

  for (const [who, mine, theirs] of [
    ['opA', 'A', 'B'],
    ['viewerA', 'A', 'B'],
    ['opB', 'B', 'A'],
  ] as const) {
    test(`${who}: GET /v1/directives shows ${mine} and tenant-less directives only`, async () => {
      for (const active of ['true', 'false', 'all']) {
        const { text, body } = await get(who, `/v1/directives?active=${active}`);
        const ds = (body as { directives: Directive[] }).directives;
        assert.ok(
          ds.every((d) => d.tenant === mine || d.tenant === null),
          `${active}: ${ds.map((d) => d.tenant).join()}`,
        );
        const foreign = theirs === 'A' ? w.dA : w.dB;
        assert.ok(!text.includes(foreign.id), `${active}: mentions ${theirs}'s directive`);
        if (active !== 'false') {
          assert.ok(
            ds.some((d) => d.id === (mine === 'A' ? w.dA : w.dB).id),
            `${active}: own directive listed`,
          );
          assert.ok(
            ds.some((d) => d.id === global.id),
            `${active}: global directive listed`,
          );
        }
      }
    });

    test(`${who}: GET /v1/audit shows ${mine} and tenant-less records only`, async () => {
      const { text, body } = await get(who, '/v1/audit?limit=5000');
      const records = (body as { records: AuditRecord[] }).records;
      assert.ok(records.length > 0);
      assert.ok(
        records.every((r) => r.tenant === mine || r.tenant === null),
        records.map((r) => `${r.seq}:${r.tenant}`).join(),
      );
      assert.ok(
        records.some((r) => r.tenant === mine),
        'own records listed',
      );
      const foreign = theirs === 'A' ? [w.dA.id] : [w.dB.id, clearedB.id, 'wB'];
      for (const s of foreign) assert.ok(!text.includes(s), `mentions ${s}`);
      // Paging from the newest end does not reach around the filter either.
      const desc = (await get(who, '/v1/audit?order=desc&limit=3')).body as { records: AuditRecord[] };
      assert.ok(desc.records.every((r) => r.tenant === mine || r.tenant === null));
    });

    test(`${who}: GET /v1/fleet shows ${mine}'s workers only`, async () => {
      const { body } = await get(who, '/v1/fleet');
      const workers = (body as { workers: FleetWorker[] }).workers;
      assert.deepEqual(
        workers.map((x) => `${x.tenant}/${x.workerId}`),
        [`${mine}/w${mine}`],
      );
    });
  }

  test('the admin sees every tenant', async () => {
    const ds = ((await get('admin', '/v1/directives?active=all')).body as { directives: Directive[] })
      .directives;
    assert.deepEqual(new Set(ds.map((d) => d.tenant)), new Set(['A', 'B', null]));
    const records = ((await get('admin', '/v1/audit?limit=5000')).body as { records: AuditRecord[] }).records;
    assert.deepEqual(new Set(records.map((r) => r.tenant)), new Set(['A', 'B', null]));
    assert.ok(records.some((r) => r.type === 'session.halted' && r.tenant === 'B'));
    const workers = ((await get('admin', '/v1/fleet')).body as { workers: FleetWorker[] }).workers;
    assert.deepEqual(
      workers.map((x) => x.workerId),
      ['wA', 'wB'],
    );
  });
});

describe('policy functions', () => {
  const p = (role: Role, tenant: string): Principal => ({
    tokenId: 't',
    name: 'n',
    role,
    tenant,
    agent: role === 'agent' ? 'bot' : null,
  });
  const admin = p('admin', '*');
  const opA = p('operator', 'A');
  const viewerA = p('viewer', 'A');
  const agentA = p('agent', 'A');

  test('canSee: admins everything, humans their tenant and tenant-less objects, agents nothing', () => {
    const rows: [Principal, string | null, boolean][] = [
      [admin, 'A', true],
      [admin, null, true],
      [opA, 'A', true],
      [opA, null, true],
      [opA, 'B', false],
      [viewerA, 'A', true],
      [viewerA, 'B', false],
      [agentA, 'A', false],
      [agentA, null, false],
    ];
    for (const [who, tenant, want] of rows)
      assert.equal(canSee(who, tenant), want, `${who.role}:${who.tenant} sees ${tenant}`);
  });

  test('canAct: admins everywhere, operators in their own tenant only, never tenant-less', () => {
    const rows: [Principal, string | null, boolean][] = [
      [admin, 'A', true],
      [admin, null, true],
      [opA, 'A', true],
      [opA, 'B', false],
      [opA, null, false],
      [viewerA, 'A', false],
      [agentA, 'A', false],
    ];
    for (const [who, tenant, want] of rows)
      assert.equal(canAct(who, tenant), want, `${who.role}:${who.tenant} acts on ${tenant}`);
  });

  test('requireAct: 404 for what the principal cannot see, 403 for what it sees but may not touch', () => {
    const code = (fn: () => void): string | null => {
      try {
        fn();
        return null;
      } catch (err) {
        assert.ok(err instanceof KillpathError);
        return err.code;
      }
    };
    assert.equal(
      code(() => requireAct(opA, 'A', 'x')),
      null,
    );
    assert.equal(
      code(() => requireAct(opA, 'B', 'x')),
      'not_found',
    );
    assert.equal(
      code(() => requireAct(opA, null, 'x')),
      'forbidden',
    );
    assert.equal(
      code(() => requireAct(viewerA, 'A', 'x')),
      'forbidden',
    );
    assert.equal(
      code(() => requireAct(viewerA, 'B', 'x')),
      'not_found',
    );
    assert.equal(
      code(() => requireAct(agentA, 'A', 'x')),
      'not_found',
    );
    assert.equal(
      code(() => requireAct(admin, null, 'x')),
      null,
    );
    assert.equal(
      code(() => requireHuman(agentA)),
      'forbidden',
    );
    assert.equal(
      code(() => requireHuman(viewerA)),
      null,
    );
  });

  test('tenantFilter: none for admins, the own tenant for everyone else', () => {
    assert.equal(tenantFilter(admin), undefined);
    assert.equal(tenantFilter(opA), 'A');
    assert.equal(tenantFilter(viewerA), 'A');
  });
});
