import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError, isUnauthorized, type FetchLike } from '../src/api.ts';
import { Poller, type PollState, type Timers } from '../src/poll.ts';
import { RateMeter, sumRates } from '../src/rate.ts';
import { TOKEN_KEY, clearToken, loadToken, saveToken } from '../src/session.ts';
import { VIEWS, viewFromHash, viewsFor } from '../src/views.ts';
import { FLEET_PAGE_SIZE, liveLoader, runKey, type FleetQuery } from '../src/live.ts';

test('effect rate is taken between successive reports over a short window, and reads 0 once the count stops', () => {
  const m = new RateMeter(2000, 15_000);
  m.observe('r', 100, 0);
  assert.equal(m.rate('r', 500), null, 'one report: not known yet');
  m.observe('r', 100, 20);
  assert.equal(m.rate('r', 500), null, 'the same report seen by a second poll');
  m.observe('r', 150, 5_000);
  assert.equal(m.rate('r', 5_200), 10, 'slow heartbeats: between the last two reports');
  m.observe('r', 160, 5_500);
  m.observe('r', 170, 6_000);
  m.observe('r', 180, 6_500);
  m.observe('r', 190, 7_000);
  m.observe('r', 200, 7_500);
  assert.equal(m.rate('r', 7_600), 20, 'fast heartbeats: over the window');
  m.observe('r', 200, 8_000);
  m.observe('r', 200, 8_500);
  m.observe('r', 200, 9_000);
  m.observe('r', 200, 9_500);
  assert.equal(m.rate('r', 9_600), 0, 'halted: 0 once the window holds only still reports');
  assert.equal(m.rate('r', 30_000), null, 'no report for long: unknown');
  m.observe('r', 3, 31_000);
  assert.equal(m.rate('r', 31_100), null, 'a counter that went back starts over');
  m.retain(new Set());
  assert.equal(m.rate('r', 31_100), null);
  assert.equal(sumRates([null, 2, 3]), 5);
  assert.equal(sumRates([null]), null);
});

test('the poller never overlaps loads, reports failures with the time they began, and recovers', async () => {
  let now = 1000;
  const pending: (() => void)[] = [];
  const timers: Timers = { set: (fn) => pending.push(fn), clear: () => {} };
  let fail = false;
  let loads = 0;
  const states: PollState<number>[] = [];
  const p = new Poller(
    async () => {
      loads++;
      if (fail) throw new ApiError(0, 'unreachable', 'down');
      return loads;
    },
    { intervalMs: 500, now: () => now, timers, onUpdate: (s) => states.push(s) },
  );
  p.start();
  await flush();
  assert.equal(states.at(-1)?.data, 1);
  assert.equal(pending.length, 1);
  fail = true;
  now = 2000;
  pending.shift()!();
  await flush();
  now = 2500;
  pending.shift()!();
  await flush();
  const down = states.at(-1)!;
  assert.equal(down.ok, false);
  assert.equal(down.failingSince, 2000, 'since the first failure');
  assert.equal(down.data, 1, 'the last good data is kept');
  assert.equal(down.error?.code, 'unreachable');
  fail = false;
  now = 3000;
  pending.shift()!();
  await flush();
  assert.deepEqual(
    { ok: states.at(-1)!.ok, failingSince: states.at(-1)!.failingSince, lastOkAt: states.at(-1)!.lastOkAt },
    { ok: true, failingSince: null, lastOkAt: 3000 },
  );
  p.stop();
  const before = loads;
  void p.refresh();
  await flush();
  assert.equal(loads, before, 'stopped: no more loads');
});

test('a refresh during a load runs once more right after it', async () => {
  let release!: () => void;
  let loads = 0;
  const p = new Poller(
    () => {
      loads++;
      return loads === 1 ? new Promise<number>((ok) => (release = () => ok(1))) : Promise.resolve(loads);
    },
    { intervalMs: 500, timers: { set: () => 0, clear: () => {} }, onUpdate: () => {} },
  );
  p.start();
  void p.refresh();
  void p.refresh();
  assert.equal(loads, 1);
  release();
  await flush();
  assert.equal(loads, 2);
  p.stop();
});

test('the API client sends the token as Bearer and turns wire errors and network failures into ApiError', async () => {
  const seen: { url: string; auth: string | undefined; body: string | undefined }[] = [];
  const answers: (() => Promise<{ ok: boolean; status: number; text(): Promise<string> }>)[] = [
    async () => ({ ok: true, status: 200, text: async () => '{"role":"viewer"}' }),
    async () => ({
      ok: false,
      status: 422,
      text: async () => '{"error":{"code":"unsupported_level","message":"not yet","details":null}}',
    }),
    async () => ({
      ok: false,
      status: 401,
      text: async () => '{"error":{"code":"unauthorized","message":"bad token","details":null}}',
    }),
    async () => {
      throw new TypeError('fetch failed');
    },
  ];
  const f: FetchLike = (url, init) => {
    seen.push({ url, auth: init.headers.authorization, body: init.body });
    return answers.shift()!();
  };
  const api = new Api('sekret', f, 'http://cp');
  assert.deepEqual(await api.get('/v1/whoami'), { role: 'viewer' });
  assert.equal(seen[0]!.auth, 'Bearer sekret');
  assert.equal(seen[0]!.url, 'http://cp/v1/whoami');
  await assert.rejects(
    api.post('/v1/directives', { level: 'throttle' }),
    (e: ApiError) => e.code === 'unsupported_level' && e.status === 422,
  );
  assert.equal(seen[1]!.body, '{"level":"throttle"}');
  await assert.rejects(api.get('/v1/fleet'), (e: unknown) => isUnauthorized(e));
  await assert.rejects(api.get('/v1/fleet'), (e: ApiError) => e.code === 'unreachable' && e.status === 0);
});

test('the live loader fetches fleet and active directives and computes rates per run and worker', async () => {
  let effects = 10;
  let now = 0;
  const urls: string[] = [];
  const f: FetchLike = async (url) => {
    urls.push(url);
    const body = url.startsWith('/v1/fleet')
      ? {
          rev: 3,
          workers: [
            {
              workerId: 'w1',
              tenant: 'acme',
              agent: 'a',
              features: [],
              connected: true,
              pid: 1,
              observedRev: 3,
              lastHeartbeatAgoMs: 0,
              state: 'running',
              runs: [
                {
                  runId: 'r',
                  parentRunId: null,
                  lineage: [],
                  state: 'running',
                  effects,
                  denied: 0,
                  inFlight: 0,
                },
              ],
            },
          ],
        }
      : { rev: 4, total: 612, directives: [] };
    return { ok: true, status: 200, text: async () => JSON.stringify(body) };
  };
  let query: FleetQuery = {};
  const load = liveLoader(
    new Api('t', f),
    () => query,
    () => now,
  );
  const first = await load();
  assert.equal(urls[0], `/v1/fleet?limit=${FLEET_PAGE_SIZE}`, 'one page, never the whole fleet');
  assert.equal(first.total, 1, 'an answer without a total (an older server) counts its workers');
  assert.equal(first.rev, 4);
  assert.equal(first.directivesTotal, 612, "the active directives' total, for 'N of M'");
  assert.equal(first.rates.get(runKey('w1', 'r')), null);
  effects = 30;
  now = 2000;
  const second = await load();
  assert.equal(second.rates.get(runKey('w1', 'r')), 10);
  assert.equal(second.rates.get('w1'), 10);
  query = { tenant: 'acme', agent: 'a', cursor: 'abc' };
  assert.deepEqual((await load()).query, query);
  assert.equal(
    urls.at(-2),
    `/v1/fleet?limit=${FLEET_PAGE_SIZE}&tenant=acme&agent=a&cursor=abc`,
    'the query is read at each poll',
  );
});

test('the token lives under one sessionStorage key and sign-out removes it', () => {
  const m = new Map<string, string>();
  const store = {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
  assert.equal(loadToken(store), null);
  assert.equal(saveToken(store, ' abc\n'), 'abc');
  assert.equal(m.get(TOKEN_KEY), 'abc');
  assert.equal(loadToken(store), 'abc');
  clearToken(store);
  assert.equal(loadToken(store), null);
});

test('views: every human role sees them all but the policy (admins only), an unknown fragment falls back to the fleet', () => {
  const p = { tokenId: 't', name: 'n', role: 'viewer' as const, tenant: 'acme', agent: null };
  assert.deepEqual(
    viewsFor(p).map((v) => v.id),
    VIEWS.map((v) => v.id).filter((v) => v !== 'policy'),
  );
  assert.deepEqual(
    viewsFor({ ...p, role: 'admin', tenant: '*' }).map((v) => v.id),
    VIEWS.map((v) => v.id),
  );
  assert.equal(viewFromHash('#policy', p), 'fleet', 'a viewer asking for the policy gets the fleet');
  assert.equal(viewFromHash('#audit', p), 'audit');
  assert.equal(viewFromHash('#nope', p), 'fleet');
  assert.equal(viewFromHash('', p), 'fleet');
});

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((ok) => setImmediate(ok));
}
