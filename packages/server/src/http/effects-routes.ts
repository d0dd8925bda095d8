import type { Hono } from 'hono';
import { KillpathError, type Principal } from '@killpath/protocol';
import { requireHuman, tenantFilter } from '../auth/policy.ts';
import type { ControlPlane } from '../control-plane.ts';
import type { WorkerIdentity } from '../permits.ts';
import { JournalBody, OutcomeBody, PermitBody, ResumeRunBody } from './schemas.ts';
import { body, readRun, requireWorker, type Env } from './common.ts';

/**
 * Routes of the effect journal: permits (intent before a write runs), confirmation after an
 * irreversible effect's cool-off, outcomes, run journal events, the resume check, and the
 * operator's views (a run's ledger, the compensation list).
 */
export function effectsRoutes(app: Hono<Env>, cp: ControlPlane): void {
  const worker = (p: Principal, workerId: string): WorkerIdentity => requireWorker(cp, p, workerId);
  /** Permit ids are not tied to a worker id in the URL: the agent token's tenant scopes them. */
  const agentOnly = (p: Principal): WorkerIdentity => {
    if (p.role !== 'agent' || p.agent === null)
      throw new KillpathError('forbidden', 'only agent tokens bound to an agent act on permits');
    return { tenant: p.tenant, agent: p.agent };
  };

  app.post('/v1/permits', async (c) => {
    const b = await body(c, PermitBody);
    const who = worker(c.get('principal'), b.workerId);
    // Asking to write on a run means the worker has not stopped it, whatever it reported.
    cp.contradictAck(
      b.workerId,
      b.runId,
      `permit asked for ${b.capability} on run ${b.runId} after the ack`,
      b.seenRev ?? null,
    );
    const r = await cp.permits.request(who, b);
    return c.json(r.response, r.created ? 201 : 200);
  });

  app.post('/v1/permits/:id/confirm', async (c) => {
    const r = await cp.permits.confirm(agentOnly(c.get('principal')), c.req.param('id'));
    return c.json(r);
  });

  app.post('/v1/permits/:id/outcome', async (c) => {
    const b = await body(c, OutcomeBody);
    if (b.result !== undefined && JSON.stringify(b.result).length > 64 * 1024) {
      throw new KillpathError('payload_too_large', 'result must serialise to at most 64 KiB');
    }
    await cp.permits.settle(agentOnly(c.get('principal')), c.req.param('id'), b);
    return c.body(null, 204);
  });

  app.post('/v1/journal', async (c) => {
    const b = await body(c, JournalBody);
    await cp.permits.journal(worker(c.get('principal'), b.workerId), b);
    return c.body(null, 204);
  });

  app.post('/v1/runs/:id/resume', async (c) => {
    const b = await body(c, ResumeRunBody);
    const p = c.get('principal');
    const run = await cp.permits.resume(p, worker(p, b.workerId), c.req.param('id'), b);
    return c.json({ runId: run.runId, lineage: run.lineage });
  });

  app.get('/v1/runs/:id/journal', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const run = await readRun(cp, p, c.req.param('id'), c.req.query('tenant'));
    const l = await cp.store.ledger(run.tenant, run.runId);
    const summary = {
      intended: l.effects.length,
      landed: 0,
      failed: 0,
      aborted: 0,
      cancelled: 0,
      inDoubt: 0,
      open: 0,
    };
    for (const e of l.effects) {
      if (e.status === 'landed') summary.landed++;
      else if (e.status === 'failed') summary.failed++;
      else if (e.status === 'aborted') summary.aborted++;
      else if (e.status === 'cancelled') summary.cancelled++;
      else if (e.status === 'in_doubt') summary.inDoubt++;
      else summary.open++;
    }
    return c.json({ run, summary, effects: l.effects, events: l.events });
  });

  app.get('/v1/compensations', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const own = tenantFilter(p);
    const tenant = c.req.query('tenant');
    if (tenant !== undefined && own !== undefined && tenant !== own)
      throw new KillpathError('not_found', `tenant ${tenant} not found`);
    const run = c.req.query('run');
    const entries = await cp.store.compensations({ tenant: tenant ?? own, ...(run ? { runId: run } : {}) });
    return c.json({ compensations: entries });
  });
}
