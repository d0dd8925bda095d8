import { createHash } from 'node:crypto';
import type { Hono } from 'hono';
import { KillpathError, type Principal } from '@killpath/protocol';
import {
  PolicyApplyBodySchema,
  PolicyRollbackBodySchema,
  TelemetryBatchSchema,
  WatchdogAlertBodySchema,
  WatchdogBeatBodySchema,
  WatchdogTripBodySchema,
} from '@killpath/protocol/schemas';
import { requireHuman } from '../auth/policy.ts';
import type { Fleet } from '../fleet.ts';
import type { FleetStore } from '../store/store.ts';
import { parsePolicy } from '../policy/policy.ts';
import type { Triggers } from '../triggers.ts';
import { body, requireWorker, type Env } from './common.ts';

/** Body of `POST /v1/telemetry` (defined with the protocol's other bodies). */
export const TelemetryBody = TelemetryBatchSchema;

// Bodies defined with the protocol's other bodies (@killpath/protocol/schemas), by the routes' names.
export const PolicyApplyBody = PolicyApplyBodySchema;
export const PolicyRollbackBody = PolicyRollbackBodySchema;
export const WatchdogBeatBody = WatchdogBeatBodySchema;
export const WatchdogTripBody = WatchdogTripBodySchema;
export const WatchdogAlertBody = WatchdogAlertBodySchema;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function describeChanges(c: { added: string[]; removed: string[]; changed: string[] }): string {
  const parts = [
    c.added.length ? `adds ${c.added.join(', ')}` : '',
    c.removed.length ? `removes ${c.removed.join(', ')}` : '',
    c.changed.length ? `changes ${c.changed.join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'rules unchanged; limits, deadman, params or approvals differ';
}

function requireAdmin(p: Principal, what: string): void {
  if (p.role !== 'admin') throw new KillpathError('forbidden', `only admins ${what}`);
}

/**
 * Routes of the automatic triggers: telemetry in, the policy (show, history, apply, rollback),
 * the supervisor's status, and the external watchdog's endpoints (beat, watched workers, trip,
 * absence alerts). The policy spans every tenant, so it is an admin's; so is the watchdog.
 */
export function triggerRoutes(
  app: Hono<Env>,
  deps: { fleet: Fleet; store: Pick<FleetStore, 'getRun'> },
  t: Triggers,
): void {
  app.post('/v1/telemetry', async (c) => {
    const b = await body(c, TelemetryBody);
    const who = requireWorker(deps.fleet, c.get('principal'), b.workerId);
    // A worker reports only its own agent's runs: one another agent of the tenant registered is
    // refused, in the words of an unknown run, so it feeds no rule and no record of that run.
    // (Another tenant's run of the same id is another run: a report about it is the reporter's.)
    for (const runId of new Set(b.runs.map((r) => r.runId))) {
      const run = await deps.store.getRun(who.tenant, runId);
      if (run !== null && run.agent !== who.agent)
        throw new KillpathError('not_found', `run ${runId} not found`);
    }
    t.telemetry({ workerId: b.workerId, tenant: who.tenant, agent: who.agent }, b);
    return c.body(null, 204);
  });

  app.get('/v1/policy', async (c) => {
    requireAdmin(c.get('principal'), 'read the policy');
    const q = c.req.query('version');
    if (q !== undefined && !/^\d{1,9}$/.test(q))
      throw new KillpathError('invalid_request', 'version must be a positive integer');
    const v = q === undefined ? t.policy.current : await t.policy.get(Number(q));
    if (v === null) throw new KillpathError('not_found', `policy version ${q} not found`);
    const isActive = v.version === t.policy.current.version;
    const parsed = isActive ? { ok: true as const, policy: t.policy.active.policy } : parsePolicy(v.source);
    return c.json({
      ...v,
      active: isActive,
      rules: (parsed.ok ? parsed.policy.rules : []).map((r) => ({
        name: r.name,
        description: r.description,
        when: r.when,
        action: r.action,
        mode: r.mode,
        notify: r.notify,
        critical: r.critical,
      })),
    });
  });

  app.get('/v1/policy/history', async (c) => {
    requireAdmin(c.get('principal'), 'read the policy');
    const limit = Number(c.req.query('limit') ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new KillpathError('invalid_request', 'limit must be an integer from 1 to 1000');
    const [versions, total] = await Promise.all([t.policy.history(limit), t.policy.count()]);
    return c.json({ active: t.policy.current.version, total, versions });
  });

  app.post('/v1/policy', async (c) => {
    const p = c.get('principal');
    requireAdmin(p, 'change the policy');
    const b = await body(c, PolicyApplyBody);
    // The gate and the version asked over are the store's latest (another replica may have applied one).
    await t.policy.follow();
    const rule = b.dryRun ? null : t.approvals.ruleFor('policy.apply');
    if (rule !== null) {
      // Validated and diffed now, so a request is only ever made for a text that applies.
      const dry = await t.policy.apply(p, b.source, { comment: b.comment ?? null, dryRun: true });
      if (dry.unchanged) return c.json(dry, 200);
      const r = await t.approvals.request(p, {
        action: 'policy.apply',
        rule,
        tenant: null,
        target: sha256(b.source),
        targetRev: t.policy.current.version,
        summary: `apply a new policy over v${t.policy.current.version} (${describeChanges(dry.changes)})`,
        reason: b.comment ?? 'policy change',
        payload: { source: b.source, comment: b.comment ?? null },
      });
      return c.json({ ...dry, approval: r.approval }, 202);
    }
    const r = await t.policy.apply(p, b.source, { comment: b.comment ?? null, dryRun: b.dryRun ?? false });
    return c.json(r, r.created ? 201 : 200);
  });

  app.post('/v1/policy/rollback', async (c) => {
    const p = c.get('principal');
    requireAdmin(p, 'change the policy');
    const b = await body(c, PolicyRollbackBody);
    // The gate and the version asked over are the store's latest (another replica may have applied one).
    await t.policy.follow();
    const rule = t.approvals.ruleFor('policy.apply');
    if (rule !== null) {
      const old = await t.policy.get(b.version);
      if (old === null) throw new KillpathError('not_found', `policy version ${b.version} not found`);
      const r = await t.approvals.request(p, {
        action: 'policy.apply',
        rule,
        tenant: null,
        target: old.digest,
        targetRev: t.policy.current.version,
        summary: `roll the policy back from v${t.policy.current.version} to the text of v${b.version}`,
        reason: b.comment,
        payload: { rollbackOf: b.version, comment: b.comment },
      });
      return c.json({ approval: r.approval }, 202);
    }
    return c.json(await t.policy.rollback(p, b.version, b.comment), 201);
  });

  app.get('/v1/supervisor', (c) => {
    requireHuman(c.get('principal'));
    return c.json(t.status());
  });

  app.post('/v1/watchdog/beat', async (c) => {
    requireAdmin(c.get('principal'), 'run a watchdog');
    const b = await body(c, WatchdogBeatBody);
    return c.json(t.watchdogBeat(b.watchdog));
  });

  app.get('/v1/watchdog/workers', (c) => {
    requireAdmin(c.get('principal'), 'run a watchdog');
    const workers = t.deadman.watched();
    return c.json({ total: workers.length, workers });
  });

  app.post('/v1/watchdog/trip', async (c) => {
    requireAdmin(c.get('principal'), 'run a watchdog');
    const b = await body(c, WatchdogTripBody);
    if ((b.tenant === undefined) !== (b.agent === undefined))
      throw new KillpathError(
        'invalid_request',
        'name both the tenant and the agent of the worker, or neither',
      );
    const who =
      b.tenant !== undefined && b.agent !== undefined ? { tenant: b.tenant, agent: b.agent } : undefined;
    return c.json(await t.deadman.trip(b.workerId, b.watchdog, who));
  });

  app.post('/v1/watchdog/alerts', async (c) => {
    requireAdmin(c.get('principal'), 'run a watchdog');
    const b = await body(c, WatchdogAlertBody);
    await t.absence(b.kind, b.ageMs, `watchdog:${b.watchdog}`);
    return c.body(null, 204);
  });
}
