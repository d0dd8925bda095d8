import type { Hono } from 'hono';
import { z } from 'zod';
import { EFFECT_CLASSES, KillpathError, isIdentifier } from '@killpath/protocol';
import { requireAct, requireHuman, tenantFilter } from '../auth/policy.ts';
import type { Metrics } from '../metrics.ts';
import type { DrillStore, FleetStore } from '../store/store.ts';
import { drillRecordedEvents, drillsDue, scopedRecord } from '../drills.ts';
import { body, type Env } from './common.ts';

/**
 * Largest rehearsal record accepted by `POST /v1/drills`, in bytes (every other route takes
 * 64 KiB): latency samples and timelines of a large fleet are big. Timelines are not stored.
 */
export const DRILL_BODY_LIMIT = 4 * 1024 * 1024;

const id = z.string().refine(isIdentifier, 'must be 1-128 characters of letters, digits and ._:@-');
const DIGEST = /^[A-Za-z0-9:._+/=-]{1,200}$/;
const digest = z.string().regex(DIGEST, 'must be 1-200 characters of letters, digits and :._+/=-');
const iso = z.iso.datetime({ offset: true });
const ms = z.number().min(0).max(1e10);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const words = (max: number) => z.string().max(max);
const name = (max: number) => z.string().min(1).max(max);

const latency = z.strictObject({ n: count, p50: ms, p99: ms, max: ms, samples: z.array(ms).max(100_000) });

const scenario = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9:._@-]{1,64}$/, 'must be 1-64 characters of letters, digits and :._@-'),
  title: name(300),
  path: words(200),
  status: z.enum(['pass', 'fail', 'degraded', 'skipped']),
  startedAt: iso,
  durationMs: ms,
  target: z.strictObject({ signalToHaltMs: ms.nullable(), haltToRecoveryMs: ms.nullable() }),
  signalToHalt: latency.nullable(),
  haltToRecoveryMs: ms.nullable(),
  effectsAfterFlip: z.strictObject({ read: count, write: count, irreversible: count }).nullable(),
  effectsAfterObserve: count.nullable(),
  queue: z.strictObject({ atFlip: count, afterWindow: count, discarded: count }).nullable(),
  journal: z
    .strictObject({
      intents: count,
      landed: count,
      failed: count,
      aborted: count,
      inDoubt: count,
      open: count,
      lost: count,
      compensations: count,
    })
    .nullable(),
  checks: z
    .array(
      z.strictObject({
        name: name(200),
        ok: z.boolean(),
        kind: z.enum(['invariant', 'target', 'expectation']),
        detail: words(4000),
      }),
    )
    .max(500),
  paths: z
    .array(
      z.strictObject({
        path: name(200),
        state: z.enum(['worked', 'degraded', 'unreachable', 'not exercised']),
        detail: words(4000),
      }),
    )
    .max(50),
  timeline: z
    .array(
      z.strictObject({
        t: z.number().min(-1e10).max(1e10),
        class: z.enum(EFFECT_CLASSES),
        outcome: z.enum(['started', 'refused', 'aborted']),
      }),
    )
    .max(100_000)
    .optional(),
  notes: z.array(words(4000)).max(100),
  remediation: words(16_000).nullable(),
});

/** Body of `POST /v1/drills`: one rehearsal (`RehearsalInput`). Unknown fields are rejected. */
export const RehearsalBody = z
  .strictObject({
    spec: z.strictObject({
      name: name(200),
      digest,
      agents: z
        .array(
          z.strictObject({
            tenant: id,
            agent: id,
            level: z.number().int().min(1).max(5),
            cadenceDays: z.number().positive().max(3660),
          }),
        )
        .min(1)
        .max(1000),
    }),
    mode: z.enum(['local', 'remote']),
    compact: z.boolean(),
    startedAt: iso,
    finishedAt: iso,
    result: z.enum(['pass', 'fail']),
    scenarios: z.array(scenario).max(200),
  })
  .superRefine((b, ctx) => {
    if (Date.parse(b.finishedAt) < Date.parse(b.startedAt))
      ctx.addIssue({ code: 'custom', path: ['finishedAt'], message: 'must not be before startedAt' });
    const seen = new Set<string>();
    b.spec.agents.forEach((a, i) => {
      const key = `${a.tenant}/${a.agent}`;
      if (seen.has(key))
        ctx.addIssue({
          code: 'custom',
          path: ['spec', 'agents', i],
          message: `agent ${key} is listed twice`,
        });
      seen.add(key);
    });
  });

function limitParam(text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text === '' || !Number.isInteger(n) || n < 1 || n > max)
    throw new KillpathError('invalid_request', `limit must be an integer from 1 to ${max}`);
  return n;
}

function agentParam(text: string | undefined): { tenant: string; agent: string } | undefined {
  if (text === undefined) return undefined;
  const parts = text.split('/');
  if (parts.length !== 2 || !parts.every(isIdentifier))
    throw new KillpathError(
      'invalid_request',
      'agent must be TENANT/AGENT, each 1-128 characters of letters, digits and ._:@-',
    );
  return { tenant: parts[0]!, agent: parts[1]! };
}

/**
 * Rehearsal records and the due list. Recording needs an admin, or an operator of the one
 * tenant every agent of the spec belongs to; reading needs a human (viewer and up), and a
 * tenant-scoped principal sees only records covering its tenant, with only its own agents in
 * the spec. `now` is the clock of the due list (ms since the epoch).
 */
/** What the drill routes need: the drill records, agents' surfaces, and the audit counter. */
export interface DrillRoutesDeps {
  readonly store: DrillStore & Pick<FleetStore, 'agentSurfaces'>;
  readonly metrics: Metrics;
}

export function drillRoutes(app: Hono<Env>, deps: DrillRoutesDeps, now: () => number = Date.now): void {
  const { store, metrics } = deps;
  app.post('/v1/drills', async (c) => {
    const p = c.get('principal');
    if (p.role !== 'admin' && p.role !== 'operator')
      throw new KillpathError('forbidden', `role ${p.role} may not record drills`);
    const b = await body(c, RehearsalBody);
    for (const tenant of new Set(b.spec.agents.map((a) => a.tenant)))
      requireAct(p, tenant, `tenant ${tenant}`);
    const drill = await store.recordDrill(b, p.name, (r) => drillRecordedEvents(r, p.name));
    metrics.auditRecords.inc(new Set(b.spec.agents.map((a) => a.tenant)).size);
    return c.json({ drill }, 201);
  });

  app.get('/v1/drills', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const limit = limitParam(c.req.query('limit'), 50, 500);
    const agent = agentParam(c.req.query('agent'));
    const before = c.req.query('before');
    if (before !== undefined && !isIdentifier(before))
      throw new KillpathError('invalid_request', 'before must be a drill id');
    const tenant = tenantFilter(p);
    if (agent !== undefined && tenant !== undefined && agent.tenant !== tenant)
      return c.json({ total: 0, drills: [] });
    const filter = { ...(tenant === undefined ? {} : { tenant }), ...(agent ? { agent } : {}) };
    const [drills, total] = await Promise.all([
      store.listDrills({ limit, ...filter, ...(before === undefined ? {} : { before }) }),
      store.countDrills(filter),
    ]);
    // `total` counts every record the caller may see under the filter; page with before=<last id>.
    return c.json({ total, drills: drills.map((r) => scopedRecord(r, tenant)) });
  });

  app.get('/v1/drills/due', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const specDigest = c.req.query('specDigest');
    if (specDigest !== undefined && !DIGEST.test(specDigest))
      throw new KillpathError(
        'invalid_request',
        'specDigest must be 1-200 characters of letters, digits and :._+/=-',
      );
    const tenant = tenantFilter(p);
    const [surfaces, last] = await Promise.all([store.agentSurfaces(tenant), store.lastDrills(tenant)]);
    return c.json({ agents: drillsDue({ surfaces, last, specDigest, now: now() }) });
  });

  app.get('/v1/drills/:id', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const tenant = tenantFilter(p);
    const r = await store.getDrill(c.req.param('id'));
    if (!r || (tenant !== undefined && !r.spec.agents.some((a) => a.tenant === tenant)))
      throw new KillpathError('not_found', `drill ${c.req.param('id')} not found`);
    return c.json({ drill: scopedRecord(r, tenant) });
  });
}
