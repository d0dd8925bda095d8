import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord, DrillDue, RehearsalRecord } from '@killpath/protocol';
import { DEFAULT_CADENCE_DAYS, drillRecordedEvents, drillsDue, scopedRecord } from '../src/drills.ts';
import { createLogger } from '../src/log.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { AgentSurface, LastDrill, Store } from '../src/store/store.ts';
import { SurfaceDesk } from '../src/surface.ts';
import { expectWireError, harness, heartbeatBody, type Harness } from './harness.ts';
import { rehearsalInput } from './store-contract.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2025-06-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

function last(over: Partial<LastDrill> = {}): LastDrill {
  return {
    tenant: 'acme',
    agent: 'bot',
    level: 4,
    cadenceDays: 30,
    drillId: 'dr_1',
    finishedAt: iso(T0),
    result: 'pass',
    specDigest: 'sha256:aaaa',
    ...over,
  };
}

function surface(caps: [string, number][], over: Partial<AgentSurface> = {}): AgentSurface {
  return {
    tenant: 'acme',
    agent: 'bot',
    capabilities: caps.map(([capability, at]) => ({ capability, firstSeenAt: iso(at) })),
    ...over,
  };
}

const kinds = (d: DrillDue) => d.reasons.map((r) => r.kind);

describe('drillsDue (pure)', () => {
  test('an agent drilled recently, passed, same spec and surface: not due; next due after its cadence', () => {
    const [d] = drillsDue({
      surfaces: [surface([['llm', T0 - DAY]])],
      last: [last()],
      specDigest: 'sha256:aaaa',
      now: T0 + 29 * DAY,
    });
    assert.deepEqual(d, {
      tenant: 'acme',
      agent: 'bot',
      due: false,
      reasons: [],
      lastDrill: { id: 'dr_1', at: iso(T0), result: 'pass' },
      cadenceDays: 30,
      nextDueAt: iso(T0 + 30 * DAY),
      surface: ['llm'],
    });
  });

  test('an agent with runs but no rehearsal is due: never, at the default cadence', () => {
    const [d] = drillsDue({ surfaces: [surface([])], last: [], now: T0 });
    assert.equal(d!.due, true);
    assert.deepEqual(kinds(d!), ['never']);
    assert.equal(d!.cadenceDays, DEFAULT_CADENCE_DAYS);
    assert.equal(d!.nextDueAt, null);
    assert.equal(d!.lastDrill, null);
  });

  test('the cadence comes from the last rehearsal: a level-3 agent drilled 60 days ago at 90 days is not due', () => {
    const [d] = drillsDue({ surfaces: [], last: [last({ cadenceDays: 90, level: 3 })], now: T0 + 60 * DAY });
    assert.equal(d!.due, false);
    assert.equal(d!.nextDueAt, iso(T0 + 90 * DAY));
  });

  test('cadence: due once finishedAt + cadenceDays has passed, naming since when', () => {
    const at = (now: number) => drillsDue({ surfaces: [], last: [last()], now })[0]!;
    assert.equal(at(T0 + 30 * DAY).due, false, 'exactly at the due time is not late yet');
    const d = at(T0 + 30 * DAY + 1);
    assert.deepEqual(d.reasons, [
      {
        kind: 'cadence',
        detail: 'last drilled 30 days ago; the cadence is 30 days',
        dueSince: iso(T0 + 30 * DAY),
      },
    ]);
  });

  test('a capability first seen after the last drill finished is a surface change, listed in added', () => {
    const [d] = drillsDue({
      surfaces: [
        surface([
          ['llm', T0 - DAY],
          ['wire_transfer', T0 + 1000],
          ['crm.update', T0 + 2000],
        ]),
      ],
      last: [last()],
      now: T0 + DAY,
    });
    assert.deepEqual(kinds(d!), ['surface_changed']);
    assert.deepEqual(d!.reasons[0], {
      kind: 'surface_changed',
      detail: 'new capabilities since the last drill: wire_transfer, crm.update',
      added: ['wire_transfer', 'crm.update'],
    });
    assert.deepEqual(d!.surface, ['llm', 'wire_transfer', 'crm.update']);
  });

  test('a different spec digest is a change only when one is given', () => {
    assert.deepEqual(
      kinds(drillsDue({ surfaces: [], last: [last()], specDigest: 'sha256:bbbb', now: T0 })[0]!),
      ['spec_changed'],
    );
    assert.deepEqual(kinds(drillsDue({ surfaces: [], last: [last()], now: T0 })[0]!), []);
  });

  test('a failed last drill is due, naming it', () => {
    const [d] = drillsDue({ surfaces: [], last: [last({ result: 'fail', drillId: 'dr_bad' })], now: T0 });
    assert.deepEqual(d!.reasons, [
      { kind: 'failed', detail: `the last drill (dr_bad, ${iso(T0)}) failed`, drillId: 'dr_bad' },
    ]);
    assert.deepEqual(d!.lastDrill, { id: 'dr_bad', at: iso(T0), result: 'fail' });
  });

  test('reasons come most pressing first: change events, then a failure, then cadence', () => {
    const [d] = drillsDue({
      surfaces: [surface([['http', T0 + 5]])],
      last: [last({ result: 'fail' })],
      specDigest: 'other',
      now: T0 + 365 * DAY,
    });
    assert.deepEqual(kinds(d!), ['surface_changed', 'spec_changed', 'failed', 'cadence']);
  });

  test('agents come from runs, surfaces and records alike, once each, sorted by tenant then agent', () => {
    const due = drillsDue({
      surfaces: [
        surface([], { tenant: 'globex', agent: 'billing' }),
        surface([['llm', T0]], { agent: 'zed' }),
        surface([]),
      ],
      last: [last(), last({ tenant: 'acme', agent: 'archivist' })],
      now: T0,
    });
    assert.deepEqual(
      due.map((d) => `${d.tenant}/${d.agent}:${kinds(d).join('+') || 'ok'}`),
      ['acme/archivist:ok', 'acme/bot:ok', 'acme/zed:never', 'globex/billing:never'],
    );
  });
});

describe('drill.recorded events', () => {
  test('one per tenant the spec covers, each naming only its own agents', async () => {
    const input = rehearsalInput({
      spec: {
        name: 's',
        digest: 'd',
        agents: [
          { tenant: 'globex', agent: 'billing', level: 3, cadenceDays: 90 },
          { tenant: 'acme', agent: 'bot', level: 4, cadenceDays: 30 },
        ],
      },
    });
    const r: Omit<RehearsalRecord, 'auditSeq'> = {
      ...input,
      id: 'dr_1',
      recordedAt: iso(T0),
      recordedBy: 'root',
    };
    const events = drillRecordedEvents(r, 'root');
    assert.deepEqual(
      events.map((e) => [e.type, e.tenant, (e.data.agents as { agent: string }[]).map((a) => a.agent)]),
      [
        ['drill.recorded', 'acme', ['bot']],
        ['drill.recorded', 'globex', ['billing']],
      ],
    );
    assert.deepEqual(events[0]!.data, {
      drillId: 'dr_1',
      spec: 's',
      digest: 'd',
      result: 'pass',
      mode: 'local',
      compact: false,
      scenarios: [
        { id: 'S1', status: 'pass' },
        { id: 'S7', status: 'degraded' },
      ],
      agents: [{ tenant: 'acme', agent: 'bot', level: 4, cadenceDays: 30 }],
    });
    const scoped = scopedRecord({ ...r, auditSeq: 1 }, 'globex');
    assert.deepEqual(
      scoped.spec.agents.map((a) => a.agent),
      ['billing'],
    );
  });
});

describe('SurfaceDesk: the store is written only when a worker reports a larger set', () => {
  test('grown sets are noted, repeated or smaller ones are not; a failed write is retried next time', async () => {
    const store = new SqliteStore(':memory:');
    const calls: string[][] = [];
    let fail = false;
    const spy = {
      noteCapabilities: (...args: Parameters<Store['noteCapabilities']>) => {
        calls.push([...args[2]]);
        if (fail) return Promise.reject(new Error('disk full'));
        return store.noteCapabilities(...args);
      },
    } as unknown as Store;
    const desk = new SurfaceDesk(spy, createLogger('silent'), () => new Date(T0));
    const who = { tenant: 'acme', agent: 'bot' };
    assert.deepEqual(await desk.heartbeat('w1', who, undefined), []);
    assert.deepEqual(await desk.heartbeat('w1', who, ['llm']), ['llm']);
    assert.deepEqual(await desk.heartbeat('w1', who, ['llm']), []);
    assert.deepEqual(
      await desk.heartbeat('w2', who, ['llm']),
      [],
      'another worker: written, nothing new to the agent',
    );
    fail = true;
    assert.deepEqual(await desk.heartbeat('w1', who, ['crm.update', 'llm']), []);
    fail = false;
    assert.deepEqual(
      await desk.heartbeat('w1', who, ['crm.update', 'llm']),
      ['crm.update'],
      'retried after the failure',
    );
    assert.deepEqual(await desk.heartbeat('w1', who, ['crm.update', 'llm']), []);
    assert.deepEqual(calls, [['llm'], ['llm'], ['crm.update', 'llm'], ['crm.update', 'llm']]);
    const audit = await store.listAudit({ types: ['agent.surface_changed'] });
    assert.deepEqual(
      audit.map((r) => [r.tenant, r.actor, r.data.added]),
      [
        ['acme', 'worker:w1', ['llm']],
        ['acme', 'worker:w1', ['crm.update']],
      ],
    );
    await store.close();
  });
});

describe('drill routes', () => {
  let h: Harness;
  let admin: string;
  let opA: string;
  let viewerB: string;
  let agent: string;
  beforeEach(async () => {
    h = await harness();
    admin = await h.token('admin', '*', undefined, 'root');
    opA = await h.token('operator', 'acme', undefined, 'ops-acme');
    viewerB = await h.token('viewer', 'globex');
    agent = await h.token('agent', 'acme', 'bot');
    h.cp.fleet.connected('w1', 'acme', 'bot', []);
  });
  afterEach(async () => {
    await h.close();
  });

  const post = async (token: string, body: unknown) => {
    const res = await h.req('POST', '/v1/drills', { token, body });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { drill: RehearsalRecord }).drill;
  };
  const get = async <T>(token: string, path: string): Promise<T> => {
    const res = await h.req('GET', path, { token });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as T;
  };

  test('an operator records a rehearsal of its tenant: 201 with the record, timelines dropped, audited with auditSeq', async () => {
    const drill = await post(opA, rehearsalInput());
    assert.equal(drill.recordedBy, 'ops-acme');
    assert.ok(drill.scenarios.every((s) => s.timeline === undefined));
    const records = (await get<{ records: AuditRecord[] }>(admin, '/v1/audit?type=drill.recorded')).records;
    assert.equal(records.length, 1);
    assert.equal(records[0]!.seq, drill.auditSeq);
    assert.equal(records[0]!.actor, 'ops-acme');
    assert.equal(records[0]!.tenant, 'acme');
    assert.deepEqual((await get<{ drill: RehearsalRecord }>(admin, `/v1/drills/${drill.id}`)).drill, drill);
    assert.deepEqual(
      (await get<{ drills: RehearsalRecord[] }>(opA, '/v1/drills?agent=acme/bot&limit=5')).drills,
      [drill],
    );
  });

  test('a tenant-scoped reader sees records covering its tenant, with only its own agents', async () => {
    const shared = await post(
      admin,
      rehearsalInput({
        spec: {
          name: 'fleet',
          digest: 'd',
          agents: [
            { tenant: 'acme', agent: 'bot', level: 4, cadenceDays: 30 },
            { tenant: 'globex', agent: 'billing', level: 3, cadenceDays: 90 },
          ],
        },
      }),
    );
    const acmeOnly = await post(opA, rehearsalInput());
    const seenByB = (await get<{ drills: RehearsalRecord[] }>(viewerB, '/v1/drills')).drills;
    assert.deepEqual(
      seenByB.map((d) => d.id),
      [shared.id],
    );
    assert.deepEqual(
      seenByB[0]!.spec.agents.map((a) => a.agent),
      ['billing'],
    );
    await expectWireError(
      await h.req('GET', `/v1/drills/${acmeOnly.id}`, { token: viewerB }),
      404,
      'not_found',
    );
    assert.deepEqual(
      (await get<{ drills: RehearsalRecord[] }>(viewerB, '/v1/drills?agent=acme/bot')).drills,
      [],
    );
    const text = await (await h.req('GET', '/v1/audit?limit=1000', { token: viewerB })).text();
    assert.ok(
      !text.includes('"bot"') && !text.includes(acmeOnly.id),
      'the audit log of globex names no acme agent nor record',
    );
    assert.equal((await get<{ drills: RehearsalRecord[] }>(admin, '/v1/drills')).drills.length, 2);
    // Issue 18: the total counts what the reader may see, beyond the page.
    assert.equal((await get<{ total: number }>(viewerB, '/v1/drills?limit=1')).total, 1);
    assert.equal((await get<{ total: number }>(opA, '/v1/drills?limit=1')).total, 2);
    assert.equal((await get<{ total: number }>(viewerB, '/v1/drills?agent=acme/bot')).total, 0);
    assert.equal((await get<{ total: number }>(admin, `/v1/drills?limit=1&before=${acmeOnly.id}`)).total, 2);
  });

  test('due: an agent seen in heartbeats is due (never); after a passing drill it is not; a new capability makes it due again', async () => {
    const beat = async (capabilities: string[]) => {
      const res = await h.req('POST', '/v1/workers/w1/heartbeat', {
        token: agent,
        body: { ...heartbeatBody(), capabilities },
      });
      assert.equal(res.status, 204, await res.clone().text());
    };
    const due = async (q = '') => (await get<{ agents: DrillDue[] }>(opA, `/v1/drills/due${q}`)).agents;
    await beat(['crm.update', 'llm']);
    assert.deepEqual(
      (await due()).map((d) => [d.agent, kinds(d), d.surface]),
      [['bot', ['never'], ['crm.update', 'llm']]],
    );
    // The drill finished when the surface was first seen: nothing is newer than the drill.
    const seenAt = (await h.store.agentSurfaces('acme'))[0]!.capabilities[0]!.firstSeenAt;
    const drill = await post(opA, rehearsalInput({ startedAt: seenAt, finishedAt: seenAt }));
    const [d] = await due('?specDigest=sha256:aaaa');
    assert.equal(d!.due, false, JSON.stringify(d));
    assert.deepEqual(d!.lastDrill, { id: drill.id, at: drill.finishedAt, result: 'pass' });
    assert.deepEqual(kinds((await due('?specDigest=sha256:bbbb'))[0]!), ['spec_changed']);
    // A capability first seen after that instant (the wall clock has moved past it) is a change.
    while (Date.now() <= Date.parse(seenAt)) {
      /* under a millisecond */
    }
    await beat(['crm.update', 'llm', 'wire_transfer']);
    const [after] = await due();
    assert.deepEqual(
      after!.reasons.map((r) => r.kind),
      ['surface_changed'],
    );
    assert.deepEqual((after!.reasons[0] as { added: string[] }).added, ['wire_transfer']);
    const changes = (await get<{ records: AuditRecord[] }>(admin, '/v1/audit?type=agent.surface_changed'))
      .records;
    assert.deepEqual(
      changes.map((r) => r.data.added),
      [['crm.update', 'llm'], ['wire_transfer']],
    );
    // Another tenant's principal does not see acme's agents at all.
    assert.deepEqual((await get<{ agents: DrillDue[] }>(viewerB, '/v1/drills/due')).agents, []);
  });
});
