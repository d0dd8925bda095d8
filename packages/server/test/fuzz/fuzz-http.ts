/**
 * HTTP fuzzing of the control plane: generated methods, paths (every route, its parameters
 * replaced by generated text), query strings, headers (every role's token, broken ones, content
 * types, idempotency keys) and bodies (each route's valid body mutated, arbitrary JSON, binary
 * text, bodies above the limit) sent through `app.request` to the full app (triggers and
 * checkpoints included). Every answer must be below 500 and, when an error, carry the one wire
 * shape; a body above the limit must answer 413. Used by `fuzz.test.ts` (bounded) and
 * `npm run fuzz` (many more).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isWireError } from '@killpath/protocol';
import { Authenticator, mintToken } from '../../src/auth/tokens.ts';
import { Checkpointer } from '../../src/audit/checkpointer.ts';
import { loadOrCreateSigningKey } from '../../src/audit/checkpoint.ts';
import { ControlPlane } from '../../src/control-plane.ts';
import { Fleet } from '../../src/fleet.ts';
import { BODY_LIMIT, createApp } from '../../src/http/app.ts';
import { DRILL_BODY_LIMIT } from '../../src/http/drill-routes.ts';
import { createLogger } from '../../src/log.ts';
import { Metrics } from '../../src/metrics.ts';
import { Notifier } from '../../src/notify.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { StreamHub } from '../../src/stream/hub.ts';
import { Triggers } from '../../src/triggers.ts';

/** A request as generated. */
export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | null;
  /** Which role's token (or broken token) is in `authorization`. */
  role: string;
  /** The route template it came from. */
  route: string;
}

/** What a fuzz run saw. */
export interface FuzzCounts {
  requests: number;
  byStatus: Record<string, number>;
  /** Answers of 500 or above (must stay 0). */
  serverErrors: number;
  /** Error answers without the wire shape (must stay 0). */
  badShapes: number;
  /** Bodies above the limit, and how many were answered 413. */
  oversized: number;
  oversized413: number;
  routes: number;
  roles: number;
  /** Heap growth over the run, MB. */
  heapGrowthMb: number;
  /** The first failures, described. */
  failures: string[];
}

const IDS = [
  'acme',
  'globex',
  'bot',
  'r1',
  'w1',
  'd_1',
  'p_1',
  'launch-1',
  'x'.repeat(129),
  '..',
  '%2F',
  '*',
  '',
];

/** Valid bodies per route, the starting point of mutations. */
const TEMPLATES: Record<string, unknown> = {
  'POST /v1/directives': {
    level: 'halt',
    scope: 'run:r1',
    tenant: 'acme',
    reason: 'fuzz',
    justification: 'fuzz',
  },
  'POST /v1/tokens': { role: 'viewer', tenant: 'acme' },
  'POST /v1/runs': { runId: 'r1', workerId: 'w1', lineage: [], features: [] },
  'POST /v1/workers/:id/heartbeat': { rev: 0, features: [], runs: [], pid: 1, sinceContactMs: 5 },
  'POST /v1/workers/:id/ack': { rev: 1 },
  'POST /v1/workers/:id/halted': { directiveId: 'd_1', rev: 1, runs: ['r1'], settledMs: 3 },
  'POST /v1/permits': { workerId: 'w1', runId: 'r1', capability: 'crm.update', effectClass: 'write' },
  'POST /v1/telemetry': { workerId: 'w1', runs: [] },
  'POST /v1/audit/verify': { checkpoint: { format: 'killpath-checkpoint/1', size: 1 } },
  'POST /v1/audit/key/rotate': { reason: 'fuzz' },
  'POST /v1/policy': { source: 'version: 1\nrules: []\n' },
};

const QUERY_KEYS = [
  'after',
  'limit',
  'order',
  'type',
  'worker',
  'tenant',
  'agent',
  'features',
  'release',
  'active',
  'run',
  'scope',
];

/** The full app on a file database, every role's token, ready to be fuzzed. */
export async function fuzzTarget(): Promise<{
  request(r: FuzzRequest): Promise<Response>;
  routes: { method: string; path: string }[];
  tokens: Record<string, string | null>;
  close(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-fuzz-'));
  const store = new SqliteStore(join(dir, 'killpath.db'));
  const log = createLogger('silent');
  const alerts = new Notifier({ webhooks: [], log });
  const cp = new ControlPlane({
    store,
    hub: new StreamHub(60_000, await store.rev()),
    fleet: new Fleet(),
    metrics: new Metrics(),
    log,
    alerts,
    keepaliveMs: 60_000,
  });
  await cp.start();
  const triggers = await Triggers.start(cp, log, { watchdog: false });
  const keyPath = join(dir, 'audit-signing.key');
  const checkpoints = new Checkpointer({
    store,
    key: loadOrCreateSigningKey(keyPath).key,
    keyPath,
    alerts,
    log,
    tickMs: 3_600_000,
  });
  await checkpoints.start();
  const app = createApp(cp, new Authenticator(store), log, triggers, {
    checkpoints,
    adminTokenFile: join(dir, 'admin.token'),
  });
  const mint = async (role: 'admin' | 'operator' | 'viewer' | 'agent', tenant: string, agent?: string) =>
    (await mintToken(store, { role, tenant, ...(agent ? { agent } : {}) }, 'fuzz')).secret;
  const tokens: Record<string, string | null> = {
    admin: await mint('admin', '*'),
    operator: await mint('operator', 'acme'),
    viewer: await mint('viewer', 'acme'),
    agent: await mint('agent', 'acme', 'bot'),
    'other-operator': await mint('operator', 'globex'),
    none: null,
    garbage: 'kp_not-a-token',
  };
  const routes = app.routes
    .filter((r) => r.method !== 'ALL' && r.path !== '/*' && !r.path.endsWith('*'))
    // Streams hold the Node response (server-sent events): fuzzed over a real socket instead.
    .filter((r) => r.path !== '/v1/stream' && r.path !== '/v1/launchers/stream')
    .map((r) => ({ method: r.method, path: r.path }));
  return {
    routes,
    tokens,
    request: async (r) =>
      app.request(r.path, {
        method: r.method,
        headers: r.headers,
        ...(r.body === null ? {} : { body: r.body }),
      }),
    async close() {
      await checkpoints.stop(false);
      await triggers.close();
      cp.stop();
      await cp.flushAudit();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Text for a path segment or query value: identifiers, edge cases, arbitrary unicode. */
const segment = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...IDS) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9._:@-]{1,40}$/) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);

function mutate(template: unknown): fc.Arbitrary<unknown> {
  if (typeof template !== 'object' || template === null) return fc.jsonValue();
  const keys = Object.keys(template);
  if (keys.length === 0) return fc.oneof(fc.constant(template), fc.jsonValue({ maxDepth: 3 }));
  return fc.oneof(
    fc.constant(template),
    fc
      .tuple(fc.constantFrom(...keys, 'extra'), fc.jsonValue({ maxDepth: 3 }))
      .map(([k, v]) => ({ ...template, [k]: v })),
    fc.constantFrom(...keys).map((k) => {
      const copy: Record<string, unknown> = { ...(template as Record<string, unknown>) };
      delete copy[k];
      return copy;
    }),
    fc.tuple(fc.constantFrom(...keys), segment).map(([k, v]) => ({ ...template, [k]: v })),
  );
}

/** Generates one request against one of `routes`, as one of `tokens`' roles. */
export function requestArb(
  routes: { method: string; path: string }[],
  tokens: Record<string, string | null>,
): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      route: fc.constantFrom(...routes),
      role: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom('admin', 'operator', 'agent') },
        { weight: 2, arbitrary: fc.constantFrom(...Object.keys(tokens)) },
      ),
      otherMethod: fc.oneof(
        { weight: 6, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
      ),
      params: fc.array(segment, { minLength: 6, maxLength: 6 }),
      query: fc.array(fc.tuple(fc.constantFrom(...QUERY_KEYS), segment), { maxLength: 4 }),
      contentType: fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'text/plain',
        'multipart/form-data; boundary=x',
        null,
      ),
      authScheme: fc.oneof(
        { weight: 8, arbitrary: fc.constant('Bearer ') },
        { weight: 1, arbitrary: fc.constantFrom('bearer ', 'Basic ', '', 'Bearer  ', 'Bearer\t') },
      ),
      idempotencyKey: fc.option(
        segment.filter((s) => /^[\x20-\x7e]*$/.test(s)),
        { freq: 4 },
      ),
      extraHeaders: fc.dictionary(
        fc.stringMatching(/^x-[a-z0-9-]{1,12}$/),
        fc.stringMatching(/^[\x20-\x7e]{0,40}$/),
        { maxKeys: 3 },
      ),
      bodyKind: fc.constantFrom('template', 'template', 'template', 'json', 'text', 'empty', 'huge'),
      json: fc.jsonValue({ maxDepth: 4 }),
      text: fc.string({ unit: 'binary', maxLength: 200 }),
      seed: fc.nat(),
    })
    .chain((g) => {
      const key = `${g.route.method} ${g.route.path}`;
      return mutate(TEMPLATES[key] ?? {}).map((templated) => ({ g, templated, key }));
    })
    .map(({ g, templated, key }) => {
      let i = 0;
      const path =
        g.route.path.replace(/:[A-Za-z]+/g, () => encodeURIComponent(g.params[i++ % g.params.length]!)) +
        (g.query.length === 0
          ? ''
          : `?${g.query.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`);
      const method = g.otherMethod ?? g.route.method;
      const headers: Record<string, string> = { ...g.extraHeaders };
      const secret = tokens[g.role] ?? null;
      if (secret !== null) headers.authorization = `${g.authScheme}${secret}`;
      if (g.contentType !== null) headers['content-type'] = g.contentType;
      if (g.idempotencyKey !== null) headers['idempotency-key'] = g.idempotencyKey;
      let body: string | null = null;
      if (method !== 'GET' && method !== 'HEAD') {
        if (g.bodyKind === 'template') body = JSON.stringify(templated);
        else if (g.bodyKind === 'json') body = JSON.stringify(g.json);
        else if (g.bodyKind === 'text') body = g.text;
        else if (g.bodyKind === 'huge') {
          const limit = g.route.path === '/v1/drills' ? DRILL_BODY_LIMIT : BODY_LIMIT;
          body = JSON.stringify({ pad: 'x'.repeat(limit + 1 + (g.seed % 1000)) });
        } else body = '';
      }
      return { method, path, headers, body, role: g.role, route: key };
    });
}

/** Sends `runs` generated requests and checks every answer; returns the counts. */
export async function fuzzHttp(opts: { runs: number; seed?: number }): Promise<FuzzCounts> {
  const target = await fuzzTarget();
  const counts: FuzzCounts = {
    requests: 0,
    byStatus: {},
    serverErrors: 0,
    badShapes: 0,
    oversized: 0,
    oversized413: 0,
    routes: target.routes.length,
    roles: Object.keys(target.tokens).length,
    heapGrowthMb: 0,
    failures: [],
  };
  const heapBefore = process.memoryUsage().heapUsed;
  const fail = (r: FuzzRequest, why: string) => {
    if (counts.failures.length < 20)
      counts.failures.push(
        `${why}: ${r.method} ${r.path} as ${r.role} body ${JSON.stringify(r.body?.slice(0, 200))}`,
      );
  };
  try {
    await fc.assert(
      fc.asyncProperty(requestArb(target.routes, target.tokens), async (r) => {
        counts.requests++;
        let res: Response;
        try {
          res = await target.request(r);
        } catch (err) {
          fail(r, `threw ${(err as Error).message}`);
          counts.serverErrors++;
          return;
        }
        const bucket = `${res.status}`;
        counts.byStatus[bucket] = (counts.byStatus[bucket] ?? 0) + 1;
        const text = await res.text();
        if (res.status >= 500) {
          counts.serverErrors++;
          fail(r, `HTTP ${res.status} ${text.slice(0, 200)}`);
        } else if (res.status >= 400 && r.method !== 'HEAD') {
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            // counted below
          }
          if (!isWireError(json)) {
            counts.badShapes++;
            fail(r, `HTTP ${res.status} without the wire error shape: ${text.slice(0, 120)}`);
          }
        }
        const limit = r.path.split('?')[0] === '/v1/drills' ? DRILL_BODY_LIMIT : BODY_LIMIT;
        if (r.body !== null && Buffer.byteLength(r.body) > limit) {
          counts.oversized++;
          if (res.status === 413) counts.oversized413++;
          else fail(r, `a body of ${Buffer.byteLength(r.body)} bytes answered ${res.status}, not 413`);
        }
      }),
      { numRuns: opts.runs, ...(opts.seed === undefined ? {} : { seed: opts.seed }), endOnFailure: false },
    );
  } finally {
    counts.heapGrowthMb = Math.round((process.memoryUsage().heapUsed - heapBefore) / 1e5) / 10;
    await target.close();
  }
  return counts;
}

/** Asserts the invariants of a run's counts. */
export function assertClean(c: FuzzCounts): void {
  assert.deepEqual(c.failures, [], 'no failure');
  assert.equal(c.serverErrors, 0, 'no 5xx, no throw');
  assert.equal(c.badShapes, 0, 'every error answer has the wire shape');
  assert.equal(c.oversized413, c.oversized, 'every body above the limit answered 413');
}
