import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { z } from 'zod';
import {
  HTTP_STATUS,
  KillpathError,
  isIdentifier,
  toWire,
  type BatchAnswer,
  type Principal,
} from '@killpath/protocol';
import { isAckReport, isHaltedReport, isWorkerReportBatch } from '@killpath/protocol/schemas';
import type { Logger } from '../log.ts';
import type { FleetStore, RunRecord } from '../store/store.ts';
import { Fleet, workerKey, type WorkerKey } from '../fleet.ts';
import { AckBody, HaltedBody, WorkerReportBatchBody } from './schemas.ts';

/** Hono environment of every route: Node bindings and the authenticated principal. */
export type Env = { Bindings: HttpBindings; Variables: { principal: Principal } };

/** Answers with the wire error shape and the code's HTTP status. */
export function wireError(c: Context, err: KillpathError): Response {
  return c.json(toWire(err), HTTP_STATUS[err.code] as 400);
}

/** Largest request body accepted, in bytes. */
export const BODY_LIMIT = 64 * 1024;

/** A request that takes longer than this, in ms, is logged as slow. */
export const SLOW_REQUEST_MS = 1000;

/** Deepest nesting of objects and arrays a request body may have. */
export const MAX_JSON_DEPTH = 64;

/**
 * True when `v` nests objects or arrays deeper than `limit` (walked with an explicit stack, so a
 * hostile body cannot overflow this check the way it would `JSON.stringify` later on).
 */
export function nestingOver(v: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d >= limit) return true;
    for (const child of Array.isArray(x) ? x : Object.values(x)) {
      if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
    }
  }
  return false;
}

/** True when a Content-Type header names JSON (`application/json`, any parameters, any case). */
export function isJsonType(header: string | undefined): boolean {
  return header !== undefined && header.split(';')[0]!.trim().toLowerCase() === 'application/json';
}

/**
 * The body read straight from Node's request when nothing has read it yet and it declared its
 * length (the routes whose length the app checks on the Node request: worker reports and
 * permits): building hono's WHATWG Request to read it was most of a small request's cost. Null
 * otherwise (the caller reads it through hono).
 */
async function nodeBody(c: Context): Promise<string | null> {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  if (incoming === undefined || incoming.readableDidRead || incoming.readableEnded) return null;
  const declared = incoming.headers['content-length'];
  if (declared === undefined || incoming.headers['transfer-encoding'] !== undefined) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Parses and validates a JSON body: a body not declared `application/json` is a 415, bad JSON
 * or a schema violation a 400 with details.
 */
export function body<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  return parseBody(
    c.req.header('content-type'),
    async () => (await nodeBody(c)) ?? (await c.req.text()),
    schema,
  );
}

/**
 * Bodies a check without zod takes as they are: the reports of a flip's wave (see
 * `isWorkerReportBatch`). Each check accepts only what its schema does; what it refuses goes to
 * the schema, for the schema's own error.
 */
const PRECHECKED = new Map<z.ZodType, (raw: unknown) => boolean>([
  [AckBody, isAckReport],
  [HaltedBody, isHaltedReport],
  [WorkerReportBatchBody, isWorkerReportBatch],
]);

/**
 * {@link body} for a caller that reads the body itself: `contentType` is checked before `read`
 * is called (a 415 reads nothing), then the text is parsed and validated against `schema`.
 */
export async function parseBody<S extends z.ZodType>(
  contentType: string | undefined,
  read: () => Promise<string>,
  schema: S,
): Promise<z.infer<S>> {
  if (!isJsonType(contentType))
    throw new KillpathError(
      'unsupported_media_type',
      'request body must be sent as content-type: application/json',
    );
  let raw: unknown;
  let text: string;
  try {
    text = await read();
    raw = JSON.parse(text);
  } catch (err) {
    // A reader's own refusal (a body past the limit) stands; anything else is not JSON.
    if (err instanceof KillpathError) throw err;
    throw new KillpathError('invalid_request', 'request body must be a JSON object');
  }
  refuseSecrets(text);
  const depth = nestingOver(raw, MAX_JSON_DEPTH);
  if (depth)
    throw new KillpathError(
      'invalid_request',
      `request body nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays`,
      { details: { limit: MAX_JSON_DEPTH } },
    );
  if (PRECHECKED.get(schema)?.(raw) === true) return raw as z.infer<S>;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    const first = details[0];
    throw new KillpathError(
      'invalid_request',
      `invalid request body${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`,
      { details },
    );
  }
  return parsed.data;
}

/** The shape of a token secret (`kp_` and 32 random bytes, base64url): it has no business in a request but its Authorization header. */
const SECRET_SHAPE = /kp_[A-Za-z0-9_-]{43}/;

/**
 * Refuses text that carries something shaped like a token secret (a token pasted into a reason,
 * a scope or a URL), without echoing it, so that it reaches no audit record, log or error.
 * @throws KillpathError `invalid_request`
 */
export function refuseSecrets(text: string): void {
  if (SECRET_SHAPE.test(text))
    throw new KillpathError(
      'invalid_request',
      'the request carries what looks like a killpath token secret (kp_…) outside its Authorization header; refused so that it is recorded nowhere. Send tokens only as Authorization: Bearer …',
    );
}

/**
 * Refuses a token minted for one launcher (`p.launcher`) acting for a worker another launcher of
 * its agent started: it may heartbeat, ack, report or stream only for the workers of its own
 * launcher (or ones no launcher claimed yet), so it cannot, say, report halted for another
 * launcher's worker and drop that launcher from an escalation's laggards.
 * @throws KillpathError `forbidden`
 */
export function refuseOtherLauncher(fleet: Fleet, p: Principal, key: WorkerKey, workerId: string): void {
  if (p.launcher === undefined) return;
  const started = fleet.launcherOf(key);
  if (started !== null && started.launcherId !== p.launcher)
    throw new KillpathError(
      'forbidden',
      `this token was minted for launcher ${p.launcher}; worker ${workerId} belongs to another launcher`,
    );
}

/**
 * The worker `workerId` of the caller: a worker id is its agent's own name for it, so an agent
 * token bound to an agent always names a worker of its own identity (a new one if unknown; the
 * same id used by another tenant or agent is another worker, whose existence this never tells).
 * A tenant-wide agent token or an admin names the one worker of that id it may act for (404 when
 * none, 409 when several agents use the id). A token minted for a launcher names only workers of
 * that launcher (403 for another launcher's, {@link refuseOtherLauncher}).
 */
export function requireWorker(
  fleet: Fleet,
  p: Principal,
  workerId: string,
): { tenant: string; agent: string; key: WorkerKey } {
  if (p.role === 'agent' && p.agent !== null) {
    const key = workerKey(p.tenant, p.agent, workerId);
    refuseOtherLauncher(fleet, p, key, workerId);
    // One agent token cannot bloat the fleet view with made-up worker ids.
    if (!fleet.has(key) && fleet.countOf(p.tenant, p.agent) >= Fleet.MAX_WORKERS_PER_AGENT)
      throw new KillpathError(
        'conflict',
        `agent ${p.tenant}/${p.agent} already has ${Fleet.MAX_WORKERS_PER_AGENT} workers; a new worker id is refused until old ones are gone`,
      );
    return { tenant: p.tenant, agent: p.agent, key };
  }
  if (p.role !== 'admin' && p.role !== 'agent')
    throw new KillpathError('not_found', `worker ${workerId} not found`);
  const held = fleet.holders(workerId, p.role === 'admin' ? undefined : p.tenant);
  if (held.length === 0)
    throw new KillpathError('not_found', `worker ${workerId} not found (open its stream first)`);
  if (held.length > 1)
    throw new KillpathError(
      'conflict',
      `worker id ${workerId} is used by ${held.length} agents; report with a token bound to its agent`,
    );
  refuseOtherLauncher(fleet, p, held[0]!.key, workerId);
  return held[0]!;
}

/**
 * The run `runId` as a person may read it: a run id lives inside its tenant, so a viewer's or
 * operator's is their own tenant's (another tenant's answers 404 exactly like an unknown id);
 * an admin's is the tenant named by `?tenant=`, or the one tenant holding the id (400 naming
 * the tenants when several do).
 */
export async function readRun(
  store: Pick<FleetStore, 'getRun' | 'findRuns'>,
  p: Principal,
  runId: string,
  tenantParam: string | undefined,
): Promise<RunRecord> {
  if (tenantParam !== undefined && !isIdentifier(tenantParam))
    throw new KillpathError('invalid_request', 'query parameter tenant must be an identifier');
  const notFound = () => new KillpathError('not_found', `run ${runId} not found`);
  if (p.tenant !== '*') {
    if (tenantParam !== undefined && tenantParam !== p.tenant) throw notFound();
    const run = await store.getRun(p.tenant, runId);
    if (run === null) throw notFound();
    return run;
  }
  if (tenantParam !== undefined) {
    const run = await store.getRun(tenantParam, runId);
    if (run === null) throw notFound();
    return run;
  }
  const runs = await store.findRuns(runId);
  if (runs.length > 1)
    throw new KillpathError(
      'invalid_request',
      `run ${runId} exists in tenants ${runs.map((r) => r.tenant).join(', ')}; add ?tenant=`,
      { details: { run: runId, tenants: runs.map((r) => r.tenant), need: 'tenant' } },
    );
  if (runs.length === 0) throw notFound();
  return runs[0]!;
}

/**
 * What the single-item route would have answered for one failed item of a batch (permits,
 * outcomes, worker reports): the wire error and its status. An error that is not a
 * `KillpathError` is logged and answered 500, as the app's error handler does.
 */
export function batchFailure(log: Logger, err: unknown): BatchAnswer {
  if (err instanceof KillpathError) return { status: HTTP_STATUS[err.code], body: toWire(err) };
  log.error('unhandled error in a batch item', { err: err instanceof Error ? err.stack : String(err) });
  return { status: 500, body: toWire(err) };
}
