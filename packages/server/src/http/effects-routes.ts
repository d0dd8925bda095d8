import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import {
  KillpathError,
  coversEffect,
  scopeTenant,
  type BatchAnswer,
  type Directive,
  type Principal,
} from '@killpath/protocol';
import { canSee, requireHuman, tenantFilter } from '../auth/policy.ts';
import type { Fleet, WorkerKey } from '../fleet.ts';
import type { PermitDesk } from '../permits.ts';
import type { DirectiveStore, FleetStore, PermitStore } from '../store/store.ts';
import type { Logger } from '../log.ts';
import type { WorkerIdentity } from '../permits.ts';
import {
  JournalBody,
  OutcomeBatchBody,
  OutcomeBody,
  PermitBatchBody,
  PermitBody,
  ResumeRunBody,
} from './schemas.ts';
import { batchFailure, body, readRun, requireWorker, type Env } from './common.ts';

type PermitRequestBody = z.infer<typeof PermitBody>;

/**
 * Routes of the effect journal: permits (intent before a write runs), confirmation after an
 * irreversible effect's cool-off, outcomes, run journal events (permits and outcomes also in batches), the resume check, and the
 * operator's views (a run's ledger, the compensation list).
 */
/** What the effects routes need: permits, the fleet view, and the stores of runs, effects and directives. */
export interface EffectsRoutesDeps {
  readonly store: Pick<FleetStore, 'getRun' | 'findRuns' | 'runFamily'> &
    Pick<PermitStore, 'effectsPage' | 'eventsPage' | 'compensationsPage' | 'permittedFrom'> &
    Pick<DirectiveStore, 'getDirective' | 'directiveSuccessors'>;
  readonly fleet: Fleet;
  readonly permits: PermitDesk;
  /** Evidence that a worker has not stopped, whatever it acknowledged (see `HaltReports.contradict`). */
  contradictAck(key: WorkerKey, runId: string | null, evidence: string, seenRev?: number | null): void;
}

export function effectsRoutes(app: Hono<Env>, deps: EffectsRoutesDeps, log: Logger): void {
  const { store, fleet, permits } = deps;
  const worker = (p: Principal, workerId: string) => requireWorker(fleet, p, workerId);
  /** Permit ids are not tied to a worker id in the URL: the agent token's tenant scopes them. */
  const agentOnly = (p: Principal): WorkerIdentity => {
    if (p.role !== 'agent' || p.agent === null)
      throw new KillpathError('forbidden', 'only agent tokens bound to an agent act on permits');
    return { tenant: p.tenant, agent: p.agent };
  };

  /** One permit request, decided as `POST /v1/permits` decides it. */
  const permit = async (p: Principal, b: PermitRequestBody) => {
    const who = worker(p, b.workerId);
    // Asking to write on a run means the worker has not stopped it, whatever it reported.
    deps.contradictAck(
      who.key,
      b.runId,
      `permit asked for ${b.capability} on run ${b.runId} after the ack`,
      b.seenRev ?? null,
    );
    // Coverage comes from what the control plane stored, not from what the request says: the
    // registered run's lineage and features (read by the store in the permit's own transaction,
    // `permit-decision.ts`), and the release the worker declared when its stream opened. The
    // request's own claims can only add to them (a lie or an omission never takes a run out of
    // a stop); a run first named by this request is registered with them.
    const release = fleet.declaredRelease(who.key) ?? b.release;
    return permits.request(who, { ...b, ...(release ? { release } : {}) });
  };
  const failed = (err: unknown): BatchAnswer => batchFailure(log, err);

  app.post('/v1/permits', async (c) => {
    const r = await permit(c.get('principal'), await body(c, PermitBody));
    return c.json(r.response, r.created ? 201 : 200);
  });

  // Many permit requests in one HTTP request: each decided as above, all in one group commit.
  app.post('/v1/permits/batch', async (c) => {
    const b = await body(c, PermitBatchBody);
    const p = c.get('principal');
    const answers = await Promise.all(
      b.requests.map((q) =>
        permit(p, q).then((r): BatchAnswer => ({ status: r.created ? 201 : 200, body: r.response }), failed),
      ),
    );
    return c.json({ answers });
  });

  // Outcomes reported together (off the effect's critical path): each settled as the route below.
  app.post('/v1/permits/outcomes', async (c) => {
    const b = await body(c, OutcomeBatchBody);
    const who = agentOnly(c.get('principal'));
    const answers = await Promise.all(
      b.outcomes.map(({ permitId, ...o }) => {
        if (o.result !== undefined && JSON.stringify(o.result).length > 64 * 1024)
          return failed(new KillpathError('payload_too_large', 'result must serialise to at most 64 KiB'));
        return permits.settle(who, permitId, o).then((): BatchAnswer => ({ status: 204 }), failed);
      }),
    );
    return c.json({ answers });
  });

  app.post('/v1/permits/:id/confirm', async (c) => {
    const r = await permits.confirm(agentOnly(c.get('principal')), c.req.param('id'));
    return c.json(r);
  });

  app.post('/v1/permits/:id/outcome', async (c) => {
    const b = await body(c, OutcomeBody);
    if (b.result !== undefined && JSON.stringify(b.result).length > 64 * 1024) {
      throw new KillpathError('payload_too_large', 'result must serialise to at most 64 KiB');
    }
    await permits.settle(agentOnly(c.get('principal')), c.req.param('id'), b);
    return c.body(null, 204);
  });

  app.post('/v1/journal', async (c) => {
    const b = await body(c, JournalBody);
    await permits.journal(worker(c.get('principal'), b.workerId), b);
    return c.body(null, 204);
  });

  app.post('/v1/runs/:id/resume', async (c) => {
    const b = await body(c, ResumeRunBody);
    const p = c.get('principal');
    const who = worker(p, b.workerId);
    // The release the worker declared when its stream opened decides, not the request's word.
    const release = fleet.declaredRelease(who.key) ?? b.release;
    const run = await permits.resume(p, who, c.req.param('id'), { ...b, ...(release ? { release } : {}) });
    return c.json({ runId: run.runId, lineage: run.lineage });
  });

  app.get('/v1/runs/:id/journal', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const run = await readRun(store, p, c.req.param('id'), c.req.query('tenant'));
    const { limit, cursor } = pageQuery(c);
    const children = c.req.query('children') ?? 'true';
    if (children !== 'true' && children !== 'false')
      throw new KillpathError('invalid_request', 'children must be true or false');
    // Descendants are listed even when left out, so a reader learns they exist.
    const family = await store.runFamily(run.tenant, run.runId);
    const descendants = family.filter((r) => r.runId !== run.runId);
    const runIds = children === 'true' ? [run.runId, ...descendants.map((r) => r.runId)] : [run.runId];
    // One cursor for both lists; a list already read to its end reads nothing more.
    const at = cursor === null ? null : splitCursor(cursor);
    const done = (list: 'effects' | 'events') => at !== null && at[list] === null;
    const [effects, events] = await Promise.all([
      store.effectsPage({
        tenant: run.tenant,
        runIds,
        limit: done('effects') ? 0 : limit,
        cursor: at?.effects ?? null,
      }),
      store.eventsPage({
        tenant: run.tenant,
        runIds,
        limit: done('events') ? 0 : limit,
        cursor: at?.events ?? null,
      }),
    ]);
    const next =
      effects.cursor === null && events.cursor === null
        ? null
        : Buffer.from(JSON.stringify({ effects: effects.cursor, events: events.cursor })).toString(
            'base64url',
          );
    return c.json({
      run,
      withChildren: children === 'true',
      children: descendants.map((r) => ({ runId: r.runId, agent: r.agent, lineage: r.lineage })),
      summary: effects.summary,
      order: 'newest first',
      effects: effects.items,
      events: events.items,
      total: { effects: effects.total, events: events.total },
      cursor: next,
    });
  });

  app.get('/v1/compensations', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const own = tenantFilter(p);
    const tenant = c.req.query('tenant');
    if (tenant !== undefined && own !== undefined && tenant !== own)
      throw new KillpathError('not_found', `tenant ${tenant} not found`);
    const { limit, cursor } = pageQuery(c);
    const runId = c.req.query('run');
    const children = c.req.query('children') ?? 'true';
    if (children !== 'true' && children !== 'false')
      throw new KillpathError('invalid_request', 'children must be true or false');
    let runIds: string[] | undefined;
    let scope = tenant ?? own;
    if (runId !== undefined) {
      // A run is named inside its tenant; its descendants' writes are its own (a run scope covers them).
      const run = await readRun(store, p, runId, tenant);
      scope = run.tenant;
      runIds =
        children === 'true'
          ? (await store.runFamily(run.tenant, run.runId)).map((r) => r.runId)
          : [run.runId];
    }
    const page = await store.compensationsPage({
      ...(scope === undefined ? {} : { tenant: scope }),
      ...(runIds === undefined ? {} : { runIds }),
      limit,
      cursor,
    });
    return c.json({
      compensations: page.items,
      order: 'newest first',
      total: page.total,
      cursor: page.cursor,
      ...(runIds === undefined ? {} : { runs: runIds }),
    });
  });

  // Every write permit granted at or after a rev, from the ledger itself (what a drill counts
  // for guarantee 1 with its own coverage rule; the audit commits these rows by digest only).
  app.get('/v1/permits', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const fromRev = revQuery(c, 'fromRev', null);
    if (fromRev === null)
      throw new KillpathError('invalid_request', 'fromRev is required: the first rev whose permits to list');
    const toRev = revQuery(c, 'toRev', null);
    const tenant = tenantFilter(p) ?? c.req.query('tenant');
    const { limit, cursor } = pageQuery(c);
    const found = await store.permittedFrom({
      fromRev,
      toRev,
      ...(tenant === undefined ? {} : { tenant }),
    });
    const { page, next } = pageAfter(found, cursor, limit);
    return c.json({
      permits: page.map(({ release: _r, ...e }) => e),
      total: found.length,
      cursor: next,
    });
  });

  app.get('/v1/directives/:id/permitted-after', async (c) => {
    const p = c.get('principal');
    requireHuman(p);
    const d = await store.getDirective(c.req.param('id'));
    if (!d || !canSee(p, d.tenant))
      throw new KillpathError('not_found', `directive ${c.req.param('id')} not found`);
    if (d.level === 'throttle')
      throw new KillpathError(
        'invalid_request',
        `directive ${d.id} is a throttle, which permits writes; name the stop (halt, kill, isolate, freeze or degrade) to check`,
      );
    const { limit, cursor } = pageQuery(c);
    // The stop stays in force through the steps and escalations that replaced it (a halt that
    // escalated to a kill is cleared at the kill's rev): follow them, up to a throttle or a clear.
    const chain: Directive[] = [d];
    for (let at = d; at.clearedRev !== null;) {
      const next = (await store.directiveSuccessors(at.id)).find(
        (s) => s.rev === at.clearedRev && s.level !== 'throttle',
      );
      if (next === undefined) break;
      chain.push(next);
      at = next;
    }
    const toRev = chain.at(-1)!.clearedRev;
    const tenant = tenantFilter(p) ?? d.tenant ?? scopeTenant(d.scope) ?? undefined;
    // Narrow in the store; which rows the directives cover is decided below by the protocol's rule.
    let runIds: string[] | undefined;
    if (d.scope.kind === 'run' && d.tenant !== null)
      runIds = (await store.runFamily(d.tenant, d.scope.run)).map((r) => r.runId);
    const runId = c.req.query('run');
    let runs: string[] | undefined;
    if (runId !== undefined) {
      const run = await readRun(store, p, runId, c.req.query('tenant') ?? tenant);
      runs = (await store.runFamily(run.tenant, run.runId)).map((r) => r.runId);
      runIds = runIds === undefined ? runs : runIds.filter((r) => runs!.includes(r));
    }
    const capabilities = chain.some((e) => e.capabilities === null)
      ? undefined
      : [...new Set(chain.flatMap((e) => e.capabilities ?? []))];
    /** The directive of the chain in force at `rev`, if any. */
    const inForce = (rev: number) =>
      chain.findLast((e) => e.rev <= rev && (e.clearedRev === null || rev < e.clearedRev));
    const found =
      runIds !== undefined && runIds.length === 0
        ? []
        : (
            await store.permittedFrom({
              fromRev: d.rev,
              toRev,
              ...(tenant === undefined ? {} : { tenant }),
              ...(d.scope.kind === 'agent' ? { agent: d.scope.agent } : {}),
              ...(runIds === undefined ? {} : { runIds }),
              ...(capabilities === undefined ? {} : { capabilities }),
            })
          ).filter((e) => {
            const stop = inForce(e.rev);
            return stop !== undefined && coversEffect(stop, e, e.capability);
          });
    const { page, next } = pageAfter(found, cursor, limit);
    return c.json({
      directive: {
        id: d.id,
        rev: d.rev,
        level: d.level,
        scopeText: d.scopeText,
        tenant: d.tenant,
        capabilities: d.capabilities,
        issuedAt: d.issuedAt,
        clearedRev: d.clearedRev,
      },
      chain: chain.map((e) => ({ id: e.id, level: e.level, rev: e.rev, clearedRev: e.clearedRev })),
      ...(runs === undefined ? {} : { runs }),
      effects: page.map(({ lineage: _l, features: _f, release: _r, ...e }) => e),
      total: found.length,
      cursor: next,
    });
  });
}

/** A non-negative integer query parameter, or `fallback` when absent. */
function revQuery(c: Context<Env>, name: string, fallback: number | null): number | null {
  const text = c.req.query(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text === '' || !Number.isSafeInteger(n) || n < 0)
    throw new KillpathError('invalid_request', `${name} must be a rev (an integer from 0)`);
  return n;
}

/** The largest page any list route returns. */
const MAX_PAGE = 5000;

/**
 * `limit` (1 to 5,000, default 1,000) and `cursor` of a paged list.
 * @throws KillpathError `invalid_request` naming the bad parameter
 */
function pageQuery(c: Context<Env>): { limit: number; cursor: string | null } {
  const limitText = c.req.query('limit');
  const limit = limitText === undefined ? 1000 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new KillpathError('invalid_request', `limit must be an integer from 1 to ${MAX_PAGE}`);
  const cursor = c.req.query('cursor') ?? null;
  if (cursor !== null && (cursor.length === 0 || cursor.length > 1024))
    throw new KillpathError('invalid_request', 'cursor is not one this list gave (start again without it)');
  return { limit, cursor };
}

/**
 * The page of `limit` permits after the one `cursor` names (from the start when null), and the
 * cursor of the next page (null on the last).
 * @throws KillpathError `invalid_request` when no permit of the list has that id.
 */
function pageAfter<T extends { permitId: string }>(
  found: readonly T[],
  cursor: string | null,
  limit: number,
): { page: T[]; next: string | null } {
  let from = 0;
  if (cursor !== null) {
    from = found.findIndex((e) => e.permitId === cursor) + 1;
    if (from === 0)
      throw new KillpathError('invalid_request', 'cursor is not one this list gave (start again without it)');
  }
  const page = found.slice(from, from + limit);
  return { page, next: from + limit < found.length ? page.at(-1)!.permitId : null };
}

/** The journal's cursor: where each of its two lists goes on (null: that list was read to its end). */
function splitCursor(cursor: string): { effects: string | null; events: string | null } {
  let at: unknown;
  try {
    at = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    at = null;
  }
  const ok = (v: unknown) => v === null || typeof v === 'string';
  if (
    typeof at !== 'object' ||
    at === null ||
    !ok((at as { effects?: unknown }).effects) ||
    !ok((at as { events?: unknown }).events)
  )
    throw new KillpathError('invalid_request', 'cursor is not one this list gave (start again without it)');
  return at as { effects: string | null; events: string | null };
}
