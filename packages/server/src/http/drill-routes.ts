import type { Hono } from 'hono';
import { KillpathError, isIdentifier } from '@killpath/protocol';
import { RehearsalInputSchema, SPEC_DIGEST } from '@killpath/protocol/schemas';
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

/** Body of `POST /v1/drills`: one rehearsal (`RehearsalInput`), defined with the protocol's other bodies. */
export const RehearsalBody = RehearsalInputSchema;

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
    if (specDigest !== undefined && !SPEC_DIGEST.test(specDigest))
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
