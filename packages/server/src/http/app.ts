import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import {
  KillpathError,
  isIdentifier,
  toWire,
  type AuditVerdict,
  type AuditVerdictBrief,
  type Directive,
  type Principal,
} from '@killpath/protocol';
import { canSee, requireHuman, tenantFilter } from '../auth/policy.ts';
import type { Authenticator } from '../auth/tokens.ts';
import { TokenDesk } from '../auth/token-desk.ts';
import type { ControlPlane } from '../control-plane.ts';
import type { Logger } from '../log.ts';
import {
  AckBody,
  AgentKillBody,
  HaltedBody,
  HeartbeatBody,
  IssueDirectiveBody,
  LauncherEventBody,
  InspectBody,
  ResumeBody,
  RunBody,
  StepBody,
} from './schemas.ts';
import { tokenRoutes } from './token-routes.ts';
import { approvalRoutes } from './approval-routes.ts';
import { openLauncherStream } from './launcher-route.ts';
import { inspectRun } from '../inspect.ts';
import { openStream } from './stream-route.ts';
import { effectsRoutes } from './effects-routes.ts';
import { consoleRoutes } from './console-route.ts';
import { triggerRoutes } from './trigger-routes.ts';
import { DRILL_BODY_LIMIT, drillRoutes } from './drill-routes.ts';
import type { Triggers } from '../triggers.ts';
import type { Checkpointer } from '../audit/checkpointer.ts';
import { auditRoutes } from './audit-routes.ts';
import { fleetRoutes } from './fleet-route.ts';
import { VerifyRuns } from '../audit/verify-runs.ts';
import type { Admission } from './admission.ts';
import { body, readRun, refuseSecrets, requireWorker, wireError, type Env } from './common.ts';

/** Alerts without a tenant that only an admin sees: policy approvals and the audit log's own. */
const ADMIN_ONLY_ALERTS = /^(approval\.|audit\.)/;
/** Counting a tenant's share of the audit chain looks at this many newest records (a scan): past it, the total is "at least". */
const AUDIT_COUNT_CAP = 100_000;

/** Largest request body accepted, in bytes. */
export const BODY_LIMIT = 64 * 1024;

/** A request that takes longer than this, in ms, is logged as slow. */
const SLOW_REQUEST_MS = 1000;

/** Options of {@link createApp}. */
export interface AppOptions {
  /** Admission control under overload; absent: every request is admitted (unit tests). */
  admission?: Admission | null;
  /** `<dataDir>/admin.token`, which `POST /v1/tokens/rotate-admin` replaces; absent: no rotation. */
  adminTokenFile?: string | null;
  /** The audit checkpoint signer; with it, the signed-checkpoint routes exist. */
  checkpoints?: Checkpointer;
}

/**
 * The HTTP API. Every route but `/healthz` is authenticated; roles and tenants are enforced
 * per route; errors use the one wire shape; unknown fields are rejected. With `triggers`, the
 * telemetry, policy and watchdog routes exist and heartbeats are answered with the worker's
 * settings (200); without, heartbeats answer 204. With `opts.checkpoints`, the signed-checkpoint
 * routes exist (`/v1/audit/key`, `/v1/audit/checkpoint`, `POST /v1/audit/verify`).
 */
export function createApp(
  cp: ControlPlane,
  auth: Authenticator,
  log: Logger,
  triggers?: Triggers,
  opts: AppOptions = {},
): Hono<Env> {
  const app = new Hono<Env>();
  const verifyRuns = new VerifyRuns({
    verifyLog: (kept) => cp.store.verifyLog(kept),
    auditHead: async () => (await cp.store.listAudit({ desc: true, limit: 1 }))[0]?.seq ?? 0,
  });

  app.onError((err, c) => {
    if (err instanceof KillpathError) return wireError(c, err);
    log.error('unhandled error', { err: err instanceof Error ? err.stack : String(err), path: c.req.path });
    return c.json(toWire(err), 500);
  });
  app.notFound((c) =>
    wireError(c, new KillpathError('not_found', `no route for ${c.req.method} ${c.req.path}`)),
  );

  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    cp.metrics.requests.inc({ method: c.req.method, status: String(c.res.status) });
    const ms = performance.now() - started;
    if (ms > SLOW_REQUEST_MS)
      log.warn('slow request', {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(ms),
      });
  });
  // Shed low-priority work before it is authenticated or parsed: under overload the kill path wins.
  if (opts.admission) app.use(opts.admission.middleware());
  const tooLarge = (c: Context) =>
    wireError(c, new KillpathError('payload_too_large', `request body exceeds ${BODY_LIMIT} bytes`));
  const limit = bodyLimit({ maxSize: BODY_LIMIT, onError: tooLarge });
  const drillLimit = bodyLimit({
    maxSize: DRILL_BODY_LIMIT,
    onError: (c) =>
      wireError(
        c,
        new KillpathError(
          'payload_too_large',
          `a rehearsal record exceeds ${DRILL_BODY_LIMIT} bytes (send fewer latency samples or timeline points)`,
        ),
      ),
  });
  app.use((c, next) => {
    // Worker reports (a fleet's worth per flip) and permits (every write an agent makes) declare
    // their length: check it on the Node request, without building the WHATWG Request that hono's
    // bodyLimit reads, which is most of a small request's cost.
    const headers = c.env?.incoming?.headers;
    if (
      headers?.['content-length'] !== undefined &&
      headers['transfer-encoding'] === undefined &&
      (c.req.path.startsWith('/v1/workers/') || c.req.path.startsWith('/v1/permits'))
    ) {
      return Number(headers['content-length']) > BODY_LIMIT ? Promise.resolve(tooLarge(c)) : next();
    }
    // Rehearsal records carry latency samples of a whole fleet: they get a larger limit of their own.
    if (c.req.path === '/v1/drills') return drillLimit(c, next);
    return limit(c, next);
  });

  // A secret in a URL would reach error messages and logs: refuse it before anything reads the path.
  app.use(async (c, next) => {
    let url = c.req.url;
    try {
      url = decodeURIComponent(url);
    } catch {
      // Malformed escapes: check the raw text.
    }
    refuseSecrets(url);
    await next();
  });

  app.get('/healthz', (c) => c.json({ ok: true, rev: cp.hub.rev, streams: cp.hub.size }));
  consoleRoutes(app);

  app.use('/v1/*', async (c, next) => {
    c.set('principal', await auth.authenticate(c.req.header('authorization')));
    await next();
  });
  app.use('/metrics', async (c, next) => {
    requireHuman(await auth.authenticate(c.req.header('authorization')));
    await next();
  });

  app.get('/metrics', async (c) => {
    c.header('content-type', cp.metrics.registry.contentType);
    return c.body(await cp.metrics.registry.metrics());
  });

  app.get('/v1/whoami', (c) => c.json(c.get('principal')));

  app.post('/v1/directives', async (c) => {
    const b = await body(c, IssueDirectiveBody);
    const r = await cp.issue(c.get('principal'), b, {
      idempotencyKey: c.req.header('idempotency-key'),
      via: 'api',
    });
    return c.json(
      { directive: r.directive, created: r.created, converged: r.converged },
      r.created ? 201 : 200,
    );
  });

  app.post('/v1/agents/:tenant/:agent/kill', async (c) => {
    const b = await body(c, AgentKillBody);
    const scope = `agent:${c.req.param('tenant')}/${c.req.param('agent')}`;
    const r = await cp.issue(
      c.get('principal'),
      {
        level: 'kill',
        scope,
        reason: b.reason ?? 'operator kill',
        justification: b.justification,
        graceMs: b.graceMs,
      },
      { idempotencyKey: c.req.header('idempotency-key'), via: 'api.agent-kill' },
    );
    return c.json(
      { directive: r.directive, created: r.created, converged: r.converged },
      r.created ? 201 : 200,
    );
  });

  app.get('/v1/directives', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const q = c.req.query('active') ?? 'true';
    if (!['true', 'false', 'all'].includes(q))
      throw new KillpathError('invalid_request', 'active must be true, false or all');
    const limit = Number(c.req.query('limit') ?? 500);
    if (!Number.isInteger(limit) || limit < 1 || limit > 5000)
      throw new KillpathError('invalid_request', 'limit must be an integer from 1 to 5000');
    const filter = { active: q === 'all' ? undefined : q === 'true', tenant: tenantFilter(p) };
    const [directives, total] = await Promise.all([
      cp.store.listDirectives({ ...filter, limit }),
      cp.store.countDirectives(filter),
    ]);
    // Newest first; `total` counts what the caller may see under the same filter.
    return c.json({ rev: cp.hub.rev, total, directives: directives.map((d) => releasesFor(p, d)) });
  });

  app.get('/v1/directives/:id', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const d = await cp.store.getDirective(c.req.param('id'));
    if (!d || !canSee(p, d.tenant))
      throw new KillpathError('not_found', `directive ${c.req.param('id')} not found`);
    return c.json({ directive: releasesFor(p, d) });
  });

  app.post('/v1/directives/:id/resume', async (c) => {
    const b = await body(c, ResumeBody);
    if (triggers === undefined) {
      const r = await cp.resume(c.get('principal'), c.req.param('id'), b);
      return c.json({ directive: r.directive, releaseCheck: r.releaseCheck });
    }
    // An approval rule of the policy may make it a pending request (202) instead of a resume.
    const r = await triggers.approvals.resume(c.get('principal'), c.req.param('id'), b);
    return 'directive' in r
      ? c.json({ directive: r.directive, releaseCheck: r.releaseCheck })
      : c.json(r, 202);
  });

  app.post('/v1/directives/:id/step', async (c) => {
    const b = await body(c, StepBody);
    const p = c.get('principal');
    // Stepping down loosens a stop one level at a time, down to a throttle that refuses nothing:
    // where the policy makes resuming the directive a second person's decision, so is this.
    if (b.direction === 'down' && triggers !== undefined) {
      const d = await cp.store.getDirective(c.req.param('id'));
      const rule = d && canSee(p, d.tenant) ? triggers.approvals.ruleFor('resume', d) : null;
      if (d && rule)
        throw new KillpathError(
          'forbidden',
          `stepping ${d.id} down loosens a stop whose resume needs approval (rule ${rule.name}): resume it instead (killpath resume ${d.id}), which files an approval request`,
        );
    }
    const r = await cp.step(p, c.req.param('id'), b);
    return c.json({ directive: r.directive, replaced: r.replaced.map((d) => d.id) }, 201);
  });

  app.get('/v1/launchers/stream', async (c) => openLauncherStream(c, cp, log));

  app.post('/v1/runs/:id/inspect', async (c) => {
    const b = await body(c, InspectBody);
    const runId = c.req.param('id');
    if (!isIdentifier(runId)) throw new KillpathError('invalid_request', 'run id must be an identifier');
    const deps = {
      store: cp.store,
      launchers: cp.launchers,
      rev: () => cp.hub.rev,
      active: () => cp.active(),
    };
    return c.json(await inspectRun(deps, c.get('principal'), runId, b), 202);
  });

  app.post('/v1/launchers/:id/events', async (c) => {
    const b = await body(c, LauncherEventBody);
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'launcher id must be an identifier');
    const tenant = c.req.query('tenant');
    if (tenant !== undefined && !isIdentifier(tenant))
      throw new KillpathError('invalid_request', 'query parameter tenant must be an identifier');
    await cp.launcherEvents(c.get('principal'), id, b, tenant);
    return c.body(null, 204);
  });

  app.get('/v1/alerts', (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const tenant = tenantFilter(p);
    // The recent alerts are held in memory, all of them returned: `total` is their number.
    if (tenant === undefined) {
      const alerts = cp.recentAlerts();
      return c.json({ total: alerts.length, alerts });
    }
    // A tenant's people see their tenant's alerts and those about everyone (a global directive),
    // never the deployment's own business: policy approvals, the audit log's checkpoints (which
    // tell its size), nor the checkpoint every alert carries.
    const alerts = cp
      .recentAlerts()
      .filter((a) => a.tenant === tenant || (a.tenant === null && !ADMIN_ONLY_ALERTS.test(a.kind)))
      .map(({ checkpoint: _checkpoint, ...a }) => a);
    return c.json({ total: alerts.length, alerts });
  });

  fleetRoutes(app, cp);

  app.get('/v1/runs/:id', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const run = await readRun(cp, p, c.req.param('id'), c.req.query('tenant'));
    return c.json({ run });
  });

  app.post('/v1/runs', async (c) => {
    const p = c.get('principal');
    const b = await body(c, RunBody);
    const who = requireWorker(cp, p, b.workerId);
    // A child's lineage is its parent's as the control plane holds it, then the parent: what the
    // request claims can only add to it, so a child cannot leave its parent's stop by omission.
    const parent = b.parentRunId === null ? null : await cp.store.getRun(who.tenant, b.parentRunId);
    const lineage = [
      ...new Set([
        ...(parent === null ? [] : parent.lineage),
        ...(b.parentRunId === null ? [] : [b.parentRunId]),
        ...b.lineage,
      ]),
    ];
    const run = await cp.store.registerRun({
      ...b,
      lineage,
      tenant: who.tenant,
      agent: who.agent,
      startedAt: new Date().toISOString(),
    });
    // Inside the tenant the first registration wins; another tenant's run of the same id is another run.
    if (run.agent !== who.agent)
      throw new KillpathError(
        'conflict',
        `run id ${b.runId} belongs to another agent of tenant ${who.tenant}; give this run another id`,
      );
    cp.fleet.addRun(who.key, { runId: run.runId, parentRunId: b.parentRunId, lineage: run.lineage });
    cp.workerSeen(who.key);
    return c.json({ runId: run.runId, lineage: run.lineage }, 201);
  });

  app.get('/v1/stream', (c) => openStream(c, cp, log));

  app.post('/v1/workers/:id/heartbeat', async (c) => {
    const b = await body(c, HeartbeatBody);
    const id = c.req.param('id');
    const p = c.get('principal');
    const who = requireWorker(cp, p, id);
    // A token minted for one launcher reports its workers under that launcher only.
    if (p.launcher !== undefined && b.launcher !== undefined && b.launcher !== p.launcher)
      throw new KillpathError(
        'forbidden',
        `this token was minted for launcher ${p.launcher}; its workers may not report under launcher ${b.launcher}`,
      );
    if (b.launcher !== undefined) await cp.claimLauncher(who, b.launcher);
    // A heartbeat names only its agent's own runs: a run another agent of the tenant registered
    // is left out (and counted), not refused, since a heartbeat is the worker's liveness. So a
    // worker cannot appear to host, acknowledge for, or draw launcher orders for another's run.
    const runs: typeof b.runs = [];
    for (const r of b.runs) {
      const registered = await cp.store.getRun(who.tenant, r.runId);
      if (registered === null || registered.agent === who.agent) runs.push(r);
    }
    if (runs.length < b.runs.length)
      cp.metrics.foreignRuns.inc({ route: 'heartbeat' }, b.runs.length - runs.length);
    // A worker acknowledges only revs that exist: a later one would pass for an ack in advance.
    cp.fleet.heartbeat(id, who.tenant, who.agent, { ...b, runs, rev: Math.min(b.rev, cp.hub.rev) });
    cp.workerSeen(who.key);
    await cp.surfaceSeen(id, who, b.capabilities);
    return triggers ? c.json(triggers.heartbeat(id, who)) : c.body(null, 204);
  });

  app.post('/v1/workers/:id/ack', async (c) => {
    const b = await body(c, AckBody);
    const id = c.req.param('id');
    const who = requireWorker(cp, c.get('principal'), id);
    cp.fleet.ack(who.key, Math.min(b.rev, cp.hub.rev));
    return c.body(null, 204);
  });

  app.post('/v1/workers/:id/halted', async (c) => {
    const b = await body(c, HaltedBody);
    const id = c.req.param('id');
    const who = requireWorker(cp, c.get('principal'), id);
    await cp.haltedReport(id, who, b);
    return c.body(null, 204);
  });

  app.get('/v1/audit', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const after = Number(c.req.query('after') ?? 0);
    const beforeText = c.req.query('before');
    const before = beforeText === undefined ? undefined : Number(beforeText);
    const limit = Number(c.req.query('limit') ?? 200);
    if (!Number.isInteger(after) || after < 0)
      throw new KillpathError('invalid_request', 'after must be a non-negative integer');
    if (before !== undefined && (!Number.isInteger(before) || before < 1))
      throw new KillpathError('invalid_request', 'before must be a positive integer');
    if (!Number.isInteger(limit) || limit < 1 || limit > 5000)
      throw new KillpathError('invalid_request', 'limit must be an integer from 1 to 5000');
    const order = c.req.query('order') ?? 'asc';
    if (order !== 'asc' && order !== 'desc')
      throw new KillpathError('invalid_request', 'order must be asc or desc');
    const desc = order === 'desc';
    const typeText = c.req.query('type');
    const types = typeText === undefined ? undefined : typeText.split(',');
    if (types !== undefined && !types.every((t) => /^[a-z_.]{1,64}$/.test(t)))
      throw new KillpathError('invalid_request', 'type must be a comma-separated list of event names');
    await cp.flushAudit();
    const tenant = tenantFilter(p);
    const [records, counted] = await Promise.all([
      cp.store.listAudit({
        afterSeq: after,
        ...(before !== undefined ? { beforeSeq: before } : {}),
        limit,
        tenant,
        desc,
        ...(types ? { types } : {}),
      }),
      cp.store.countAudit({ tenant, ...(types ? { types } : {}) }, AUDIT_COUNT_CAP),
    ]);
    // `total`: the records the caller may see under the same type filter (after/before ignored);
    // counting a tenant's share of a long chain is a scan, so it counts the newest 100,000 records
    // only and on a longer chain it is a lower bound
    // (`totalExact: false`, "at least"). Page with after= (ascending) or before= (order=desc).
    // A lower bound is never below what this page shows.
    const total = counted.exact ? counted.count : Math.max(counted.count, records.length);
    return c.json({ total, totalExact: counted.exact, records });
  });

  // Who learns what (docs/security.md, "Verifying the audit log"): the log is one chain over
  // every tenant's records, so its size, head hash and first bad record are the deployment's:
  // an admin's. A tenant's operator or viewer learns only whether the whole chain verifies.
  app.get('/v1/audit/verify', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    await cp.flushAudit();
    // Hashing the whole chain is long work: the store does it in a worker thread (on a file
    // database), never on the event loop the kill path runs on; concurrent calls share a run.
    const found = await verifyRuns.verify(null);
    if (p.role !== 'admin') return c.json({ ok: found.chain.ok, brief: true } satisfies AuditVerdictBrief);
    if (!found.chain.ok)
      return c.json({
        ok: false,
        records: found.records,
        firstBad: found.chain.firstBad ?? 0,
        reason: found.chain.reason ?? 'broken chain',
      } satisfies AuditVerdict);
    const last =
      found.records === 0 ? [] : await cp.store.listAudit({ afterSeq: found.records - 1, limit: 1 });
    return c.json({
      ok: true,
      records: found.records,
      head: last[0]?.hash ?? '0'.repeat(64),
    } satisfies AuditVerdict);
  });

  if (opts.checkpoints) auditRoutes(app, cp, opts.checkpoints, verifyRuns);
  effectsRoutes(app, cp, log);
  drillRoutes(app, cp);
  if (triggers) {
    triggerRoutes(app, cp, triggers);
    approvalRoutes(app, triggers.approvals);
  }

  tokenRoutes(
    app,
    new TokenDesk({
      store: cp.store,
      auth,
      log,
      closeStreams: (tokenId) => cp.hub.closeToken(tokenId) + cp.launchers.closeToken(tokenId),
      adminTokenFile: opts.adminTokenFile ?? null,
      claimLauncher: (who, launcherId) => cp.claimLauncher(who, launcherId),
    }),
  );

  return app;
}

/**
 * A directive spanning every tenant recorded the releases of every tenant's runs: only a
 * principal of every tenant (an admin) sees them; others see none (the list says nothing of
 * what another tenant runs).
 */
function releasesFor(p: Principal, d: Directive): Directive {
  return d.tenant === null && p.tenant !== '*' ? { ...d, releases: [] } : d;
}
