import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RUNS_PER_HEARTBEAT, type FleetPage, type RunReport } from '@killpath/protocol';
import { Fleet } from '../src/fleet.ts';
import { FLEET_PAGE_DEFAULT, FLEET_PAGE_MAX } from '../src/http/fleet-route.ts';
import { expectWireError, harness, heartbeatBody, type Harness } from './harness.ts';

const runs = (worker: string, n: number): RunReport[] =>
  Array.from({ length: n }, (_, i) => ({
    runId: `${worker}-r${i}`,
    parentRunId: null,
    lineage: [],
    state: 'running',
    effects: 0,
    denied: 0,
    inFlight: 0,
  }));

async function beat(h: Harness, token: string, worker: string, n: number, state?: RunReport['state']) {
  const rs = runs(worker, n);
  if (state !== undefined && rs[0]) rs[0].state = state;
  const res = await h.req('POST', `/v1/workers/${worker}/heartbeat`, {
    token,
    body: { ...heartbeatBody(), runs: rs },
  });
  assert.ok(
    res.status === 200 || res.status === 204,
    `heartbeat of ${worker}: ${res.status} ${await res.text()}`,
  );
}

async function page(h: Harness, token: string, query: string): Promise<{ body: FleetPage; bytes: number }> {
  const res = await h.req('GET', `/v1/fleet${query}`, { token });
  const text = await res.text();
  assert.equal(res.status, 200, text.slice(0, 300));
  return { body: JSON.parse(text) as FleetPage, bytes: Buffer.byteLength(text) };
}

// Issue 11 item 7: 1,500 heartbeats with 320 runs each made GET /v1/fleet one 88.5 MB answer.
test('1,500 workers with 320 runs each: small pages, every worker reached exactly once while others come and go', async () => {
  let now = 0;
  const h = await harness({ fleetNow: () => now });
  try {
    const agents = ['bot-a', 'bot-b', 'bot-c'];
    const tokens = new Map<string, string>();
    for (const a of agents) tokens.set(a, await h.token('agent', 'acme', a));
    const admin = await h.token('admin', '*');
    const id = (i: number, suffix = '') => `w-${String(i).padStart(4, '0')}${suffix}`;
    const agentOf = (i: number) => agents[i % agents.length]!;

    // Workers that leave while the reader pages (heard from long before the others): between stayers in key order.
    const goers: string[] = [];
    for (let i = 0; i < 1500; i += 10) {
      goers.push(id(i, '-go'));
      await beat(h, tokens.get(agentOf(i))!, id(i, '-go'), 1);
    }
    now = 60_000;
    const stayers: string[] = [];
    for (let i = 0; i < 1500; i++) {
      stayers.push(id(i));
      await beat(h, tokens.get(agentOf(i))!, id(i), 320);
    }

    const first = await page(h, admin, '?limit=0');
    assert.equal(first.body.total, 1500 + goers.length);
    assert.deepEqual(first.body.workers, []);
    assert.deepEqual(
      first.body.groups.map((g) => [g.tenant, g.agent, g.workers]),
      agents.map((a) => ['acme', a, 500 + goers.length / 3]),
      'counted by tenant and agent without fetching a worker',
    );
    assert.equal(
      first.body.groups.reduce((n, g) => n + g.runs, 0),
      1500 * 320 + goers.length,
    );
    assert.deepEqual(
      first.body.states,
      { running: 1500, stale: goers.length },
      'the goers, silent for 60 s, are stale',
    );

    const seen = new Map<string, number>();
    let cursor: string | null = null;
    let pages = 0;
    let largest = 0;
    let comer = 0;
    do {
      const got: { body: FleetPage; bytes: number } = await page(
        h,
        admin,
        cursor === null ? '' : `?cursor=${encodeURIComponent(cursor)}`,
      );
      pages++;
      largest = Math.max(largest, got.bytes);
      assert.ok(got.body.workers.length >= 1 && got.body.workers.length <= FLEET_PAGE_DEFAULT);
      const pageRuns = got.body.workers.reduce((n, w) => n + w.runs.length, 0);
      assert.ok(
        pageRuns <= Fleet.MAX_PAGE_RUNS,
        `a page carries at most ${Fleet.MAX_PAGE_RUNS} runs, not ${pageRuns}`,
      );
      assert.ok(got.bytes < 512 * 1024, `a page is ${got.bytes} bytes`);
      for (const w of got.body.workers) seen.set(w.workerId, (seen.get(w.workerId) ?? 0) + 1);
      cursor = got.body.nextCursor;
      // Meanwhile: ten goers leave, and two new workers come (one sorting before the cursor, one after).
      if (pages === 3) h.cp.fleet.prune(30_000);
      for (const i of [comer * 37, 1499 - comer * 37]) {
        if (i < 0 || i > 1499) continue;
        await beat(h, tokens.get(agentOf(i))!, id(i, '-new'), 2);
      }
      comer++;
    } while (cursor !== null);

    const twice = [...seen].filter(([, n]) => n > 1).map(([w]) => w);
    assert.deepEqual(twice, [], 'no worker twice');
    const missed = stayers.filter((w) => !seen.has(w));
    assert.deepEqual(missed, [], 'no stayer missed');
    assert.ok(pages >= 1500 / FLEET_PAGE_DEFAULT, `${pages} pages`);
    assert.ok(
      goers.every((g) => h.cp.fleet.holders(g).length === 0),
      'the goers did leave mid-way',
    );
    console.log(`# ${pages} pages, largest ${largest} bytes`);

    // run=: the one worker hosting it; agent= and state= filters; the counts stay those of the whole view.
    const byRun = await page(h, admin, `?run=${id(777)}-r300`);
    assert.deepEqual(
      byRun.body.workers.map((w) => w.workerId),
      [id(777)],
    );
    assert.equal(byRun.body.total, 1);
    assert.equal(byRun.body.groups.length, 3, 'groups count the whole view, not the filter');
    const none = await page(h, admin, '?run=nobody-runs-this');
    assert.equal(none.body.total, 0);
    assert.deepEqual(none.body.workers, []);
    const b = await page(h, admin, '?agent=bot-b&limit=500');
    assert.ok(b.body.workers.every((w) => w.agent === 'bot-b'));
    assert.ok(b.body.total >= 500);
    assert.ok(b.body.workers.length < 500, 'the run budget ends the page before 500 workers of 320 runs');
  } finally {
    await h.close();
  }
});

test('the fleet view of a tenant: its own workers and runs only, with filters and states', async () => {
  const h = await harness();
  try {
    const acme = await h.token('agent', 'acme', 'bot');
    const beta = await h.token('agent', 'beta', 'bot');
    await beat(h, acme, 'a1', 3);
    await beat(h, acme, 'a2', 3, 'halt');
    await beat(h, beta, 'b1', 3);
    // Beta's worker hosts a run id acme also uses: acme's reader does not learn of it.
    await h.req('POST', '/v1/workers/b1/heartbeat', {
      token: beta,
      body: { ...heartbeatBody(), runs: runs('a1', 1) },
    });
    const viewer = await h.token('viewer', 'acme');
    const all = await page(h, viewer, '');
    assert.deepEqual(
      all.body.workers.map((w) => w.workerId),
      ['a1', 'a2'],
    );
    assert.deepEqual(all.body.groups, [
      { tenant: 'acme', agent: 'bot', workers: 2, runs: 6, states: { running: 1, halt: 1 } },
    ]);
    assert.deepEqual(
      (await page(h, viewer, '?run=a1-r0')).body.workers.map((w) => w.workerId),
      ['a1'],
      "run= finds acme's worker, not beta's of the same run id",
    );
    assert.deepEqual(
      (await page(h, viewer, '?state=halt')).body.workers.map((w) => w.workerId),
      ['a2'],
    );
    const two = await page(h, viewer, '?limit=1');
    assert.deepEqual(
      two.body.workers.map((w) => w.workerId),
      ['a1'],
    );
    const rest = await page(h, viewer, `?limit=1&cursor=${two.body.nextCursor}`);
    assert.deepEqual(
      rest.body.workers.map((w) => w.workerId),
      ['a2'],
    );
    assert.equal(rest.body.nextCursor, null, 'the last page says so');
    await expectWireError(
      await h.req('GET', '/v1/fleet?tenant=beta', { token: viewer }),
      403,
      'forbidden',
      'another tenant',
    );
    const admin = await h.token('admin', '*');
    assert.deepEqual(
      (await page(h, admin, '?tenant=beta')).body.workers.map((w) => w.workerId),
      ['b1'],
    );
  } finally {
    await h.close();
  }
});

test('bad fleet queries and oversized heartbeats answer 400 naming the limit', async () => {
  const h = await harness();
  try {
    const viewer = await h.token('viewer', 'acme');
    for (const q of [`limit=${FLEET_PAGE_MAX + 1}`, 'limit=-1', 'limit=ten', 'state=asleep', 'run=a%20b'])
      await expectWireError(
        await h.req('GET', `/v1/fleet?${q}`, { token: viewer }),
        400,
        'invalid_request',
        q,
      );
    const msg = await expectWireError(
      await h.req('GET', '/v1/fleet?cursor=bm90LWEta2V5', { token: viewer }),
      400,
      'invalid_request',
      'cursor',
    );
    assert.match(msg, /cursor/);
    const agent = await h.token('agent', 'acme', 'bot');
    const over = await h.req('POST', '/v1/workers/w1/heartbeat', {
      token: agent,
      body: {
        ...heartbeatBody(),
        runs: runs('w', MAX_RUNS_PER_HEARTBEAT + 1).map((r, i) => ({ ...r, runId: `r${i}` })),
      },
    });
    assert.match(
      await expectWireError(over, 400, 'invalid_request', 'runs'),
      new RegExp(`at most ${MAX_RUNS_PER_HEARTBEAT} runs`),
    );
    const big = await h.req('POST', '/v1/workers/w1/heartbeat', {
      token: agent,
      body: { ...heartbeatBody(), runs: runs('w'.repeat(120), 450) },
    });
    assert.equal(big.status, 413, 'a heartbeat body is bounded in bytes too');
  } finally {
    await h.close();
  }
});

// Issue 18: every list says "N of M"; `total` counts what the caller may see, never another tenant's.
test('directives, alerts, audit and tokens carry the total the caller may see (another tenant not counted)', async () => {
  const h = await harness();
  try {
    const admin = await h.token('admin', '*');
    const opA = await h.token('operator', 'acme');
    const opB = await h.token('operator', 'globex');
    await h.token('agent', 'acme', 'bot');
    await h.token('agent', 'globex', 'billing');
    const issue = async (token: string, scope: string) => {
      const res = await h.req('POST', '/v1/directives', {
        token,
        body: { level: 'halt', scope, reason: 'runaway', justification: 'totals test' },
      });
      assert.equal(res.status, 201, await res.text());
    };
    for (let i = 0; i < 3; i++) await issue(opA, `run:acme-run-${i}`);
    await issue(opB, 'agent:globex/billing');
    const get = async <T>(token: string, path: string): Promise<T> => {
      const res = await h.req('GET', path, { token });
      const text = await res.text();
      assert.equal(res.status, 200, text.slice(0, 300));
      return JSON.parse(text) as T;
    };

    type Directives = { total: number; directives: { tenant: string | null }[] };
    const dA = await get<Directives>(opA, '/v1/directives?limit=2');
    assert.equal(dA.directives.length, 2);
    assert.equal(dA.total, 3, 'acme sees its 3 directives, not globex one');
    assert.equal((await get<Directives>(opB, '/v1/directives')).total, 1);
    assert.equal((await get<Directives>(admin, '/v1/directives?active=all')).total, 4);
    assert.equal((await get<Directives>(admin, '/v1/directives?active=false')).total, 0);

    type Audit = { total: number; totalExact: boolean; records: { tenant: string | null }[] };
    const allA = await get<Audit>(opA, '/v1/audit?limit=5000');
    const pageA = await get<Audit>(opA, '/v1/audit?limit=1&order=desc');
    assert.equal(pageA.records.length, 1);
    assert.equal(pageA.total, allA.records.length, 'the total is every record acme may see');
    assert.equal(pageA.totalExact, true);
    const allAdmin = await get<Audit>(admin, '/v1/audit?limit=5000');
    assert.ok(allAdmin.records.some((r) => r.tenant === 'globex'));
    assert.equal((await get<Audit>(admin, '/v1/audit?limit=1')).total, allAdmin.records.length);
    assert.ok(allA.records.length < allAdmin.records.length, 'globex records are not counted for acme');
    const typed = await get<Audit>(opA, '/v1/audit?limit=1&type=directive.issued');
    assert.equal(typed.total, 3);
    // A tenant's share is counted among the newest records only (a bounded scan): then "at least".
    const chain = allAdmin.records.length;
    const newest = allAdmin.records.slice(-4).filter((r) => r.tenant === 'acme' || r.tenant === null).length;
    assert.deepEqual(await h.store.countAudit({ tenant: 'acme' }, 4), { count: newest, exact: false });
    assert.deepEqual(await h.store.countAudit({ tenant: 'acme' }, chain), {
      count: allA.records.length,
      exact: true,
    });

    type Alerts = { total: number; alerts: { tenant: string | null }[] };
    const alA = await get<Alerts>(opA, '/v1/alerts');
    assert.equal(alA.total, alA.alerts.length);
    assert.ok(alA.alerts.every((a) => a.tenant === 'acme' || a.tenant === null));
    const alAdmin = await get<Alerts>(admin, '/v1/alerts');
    assert.equal(alAdmin.total, alAdmin.alerts.length);

    type Tokens = { total: number; tokens: { tenant: string }[] };
    const tA = await get<Tokens>(opA, '/v1/tokens');
    assert.equal(tA.total, tA.tokens.length);
    assert.ok(tA.tokens.every((t) => t.tenant === 'acme'));
    assert.ok((await get<Tokens>(admin, '/v1/tokens')).total > tA.total);
  } finally {
    await h.close();
  }
});
