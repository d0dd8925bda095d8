import { Hono, type Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
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
  AgentKillBody,
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
import { countAuditInSteps, listAuditInSteps } from './audit-listing.ts';
import { fleetRoutes } from './fleet-route.ts';
import { VerifyRuns } from '../audit/verify-runs.ts';
import type { Admission } from './admission.ts';
import {
  takeWorkerReport,
  takeWorkerReports,
  workerReportRoute,
  type WorkerReportDeps,
} from './report-route.ts';
import {
  BODY_LIMIT,
  SLOW_REQUEST_MS,
  body,
  readRun,
  refuseSecrets,
  requireWorker,
  wireError,
  type Env,
} from './common.ts';

/** Alerts without a tenant that only an admin sees: policy approvals and the audit log's own. */
const ADMIN_ONLY_ALERTS = /^(approval\.|audit\.)/;
/** Counting a tenant's share of the audit chain looks at this many newest records (a scan): past it, the total is "at least". */
const AUDIT_COUNT_CAP = 100_000;

export { BODY_LIMIT } from './common.ts';

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
  // The control plane's collaborators, handed to each route by name (routes never reach through it).
  const { store, hub, fleet, metrics, workers, launcherDesk, launchers } = cp;
  const board = { rev: () => hub.rev, active: () => cp.active() };
  const flushAudit = () => cp.flushAudit();
  const verifyRuns = new VerifyRuns({
    verifyLog: (kept) => store.verifyLog(kept),
    auditHead: async () => (await store.listAudit({ desc: true, limit: 1 }))[0]?.seq ?? 0,
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
    metrics.requests.inc({ method: c.req.method, status: String(c.res.status) });
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

  app.get('/healthz', (c) => c.json({ ok: true, rev: hub.rev, streams: hub.size }));
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
    c.header('content-type', metrics.registry.contentType);
    return c.body(await metrics.registry.metrics());
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
      store.listDirectives({ ...filter, limit }),
      store.countDirectives(filter),
    ]);
    // Newest first; `total` counts what the caller may see under the same filter.
    return c.json({ rev: hub.rev, total, directives: directives.map((d) => releasesFor(p, d)) });
  });

  app.get('/v1/directives/:id', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const d = await store.getDirective(c.req.param('id'));
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
      const d = await store.getDirective(c.req.param('id'));
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

  app.get('/v1/launchers/stream', async (c) =>
    openLauncherStream(
      c,
      {
        launchers,
        claimLauncher: (who, id) => launcherDesk.claim(who, id),
        vouching: () => cp.view.vouching,
        ...board,
      },
      log,
    ),
  );

  app.post('/v1/runs/:id/inspect', async (c) => {
    const b = await body(c, InspectBody);
    const runId = c.req.param('id');
    if (!isIdentifier(runId)) throw new KillpathError('invalid_request', 'run id must be an identifier');
    return c.json(await inspectRun({ store, launchers, ...board }, c.get('principal'), runId, b), 202);
  });

  app.post('/v1/launchers/:id/events', async (c) => {
    const b = await body(c, LauncherEventBody);
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'launcher id must be an identifier');
    const tenant = c.req.query('tenant');
    if (tenant !== undefined && !isIdentifier(tenant))
      throw new KillpathError('invalid_request', 'query parameter tenant must be an identifier');
    await launcherDesk.events(c.get('principal'), id, b, tenant);
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

  fleetRoutes(app, { fleet, ...board });

  app.get('/v1/runs/:id', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const run = await readRun(store, p, c.req.param('id'), c.req.query('tenant'));
    return c.json({ run });
  });

  app.post('/v1/runs', async (c) => {
    const b = await body(c, RunBody);
    const run = await workers.registerRun(requireWorker(fleet, c.get('principal'), b.workerId), b);
    return c.json({ runId: run.runId, lineage: run.lineage }, 201);
  });

  app.get('/v1/stream', (c) => openStream(c, { view: cp.view, hub, fleet, metrics }, log));

  app.post('/v1/workers/:id/heartbeat', async (c) => {
    const b = await body(c, HeartbeatBody);
    const id = c.req.param('id');
    const p = c.get('principal');
    const who = requireWorker(fleet, p, id);
    await workers.heartbeat(p, who, id, b);
    return triggers ? c.json(triggers.heartbeat(id, who)) : c.body(null, 204);
  });

  // Acks and halted reports usually take the light route (workerReportRoute, below), which runs
  // the same takeWorkerReport; these answer what it leaves (an escaped id, a query, a chunked body).
  const reportDeps: WorkerReportDeps = {
    fleet,
    workers,
    haltedReport: (id, who, b) => cp.haltedReport(id, who, b),
    log,
  };
  app.post('/v1/workers/reports', async (c) =>
    c.json(await takeWorkerReports(reportDeps, c.get('principal'), (schema) => body(c, schema))),
  );
  for (const kind of ['ack', 'halted'] as const)
    app.post(`/v1/workers/:id/${kind}`, async (c) => {
      await takeWorkerReport(reportDeps, kind, c.req.param('id'), c.get('principal'), (schema) =>
        body(c, schema),
      );
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
    await flushAudit();
    const tenant = tenantFilter(p);
    const head = (await store.listAudit({ desc: true, limit: 1 }))[0]?.seq ?? 0;
    const filter = { tenant, ...(types ? { types } : {}) };
    const counted =
      tenant === undefined && types === undefined
        ? await store.countAudit(filter, AUDIT_COUNT_CAP, head)
        : await countAuditInSteps(store, filter, head, AUDIT_COUNT_CAP);
    // Counted, read and encoded in steps with the loop free between them (a filtered page of a
    // long log is otherwise one long scan on the event loop the kill path runs on).
    const records = await listAuditInSteps(
      store,
      {
        afterSeq: after,
        ...(before !== undefined ? { beforeSeq: before } : {}),
        limit,
        tenant,
        desc,
        ...(types ? { types } : {}),
      },
      head,
    );
    // `total`: the records the caller may see under the same type filter (after/before ignored),
    // up to `head`, as the page is (a record appended meanwhile is in neither);
    // counting a tenant's share of a long chain is a scan, so it counts the newest 100,000 records
    // only and on a longer chain it is a lower bound
    // (`totalExact: false`, "at least"). Page with after= (ascending) or before= (order=desc).
    // A lower bound is never below what this page shows.
    const total = counted.exact ? counted.count : Math.max(counted.count, records.count);
    return c.body(`{"total":${total},"totalExact":${counted.exact},"records":[${records.json}]}`, 200, {
      'content-type': 'application/json',
    });
  });

  // Who learns what (docs/security.md, "Verifying the audit log"): the log is one chain over
  // every tenant's records, so its size, head hash and first bad record are the deployment's:
  // an admin's. A tenant's operator or viewer learns only whether the whole chain verifies.
  app.get('/v1/audit/verify', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    await flushAudit();
    // Hashing the whole chain is long work: the store does it in a worker thread (on a file
    // database), never on the event loop the kill path runs on; concurrent calls share a run.
    const found = await verifyRuns.verify(null);
    // The effect ledger's rows are checked against the records that committed them, too.
    const ledgerOk = found.ledger?.ok ?? true;
    if (p.role !== 'admin')
      return c.json({ ok: found.chain.ok && ledgerOk, brief: true } satisfies AuditVerdictBrief);
    if (!found.chain.ok)
      return c.json({
        ok: false,
        records: found.records,
        firstBad: found.chain.firstBad ?? 0,
        reason: found.chain.reason ?? 'broken chain',
      } satisfies AuditVerdict);
    if (!ledgerOk)
      return c.json({
        ok: false,
        records: found.records,
        firstBad: found.ledger!.firstBad ?? 0,
        reason: found.ledger!.problems.join('; '),
      } satisfies AuditVerdict);
    const last = found.records === 0 ? [] : await store.listAudit({ afterSeq: found.records - 1, limit: 1 });
    return c.json({
      ok: true,
      records: found.records,
      head: last[0]?.hash ?? '0'.repeat(64),
    } satisfies AuditVerdict);
  });

  if (opts.checkpoints) auditRoutes(app, { store, flushAudit }, opts.checkpoints, verifyRuns);
  effectsRoutes(
    app,
    {
      store,
      fleet,
      permits: cp.permits,
      contradictAck: (key, runId, evidence, seenRev) => cp.contradictAck(key, runId, evidence, seenRev),
    },
    log,
  );
  drillRoutes(app, { store, metrics });
  if (triggers) {
    triggerRoutes(app, { fleet, store }, triggers);
    approvalRoutes(app, triggers.approvals);
  }

  tokenRoutes(
    app,
    new TokenDesk({
      store,
      auth,
      log,
      closeStreams: (tokenId) => hub.closeToken(tokenId) + launchers.closeToken(tokenId),
      adminTokenFile: opts.adminTokenFile ?? null,
      claimLauncher: (who, launcherId) => launcherDesk.claim(who, launcherId),
    }),
  );

  const reports = workerReportRoute({ ...reportDeps, auth, metrics });
  const dispatch = app.fetch;
  app.fetch = (req, env, ctx) =>
    reports(req, env as Partial<HttpBindings> | undefined) ?? dispatch(req, env, ctx);
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
