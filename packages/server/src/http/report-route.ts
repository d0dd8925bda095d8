import type { IncomingMessage } from 'node:http';
import type { HttpBindings } from '@hono/node-server';
import type { z } from 'zod';
import {
  HTTP_STATUS,
  KillpathError,
  toWire,
  type BatchAnswer,
  type BatchAnswers,
  type HaltedReport,
  type Principal,
} from '@killpath/protocol';
import type { Authenticator } from '../auth/tokens.ts';
import type { Fleet } from '../fleet.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { KnownWorker, WorkerDesk } from '../worker-desk.ts';
import {
  BODY_LIMIT,
  SLOW_REQUEST_MS,
  batchFailure,
  parseBody,
  refuseSecrets,
  requireWorker,
} from './common.ts';
import { AckBody, HaltedBody, WorkerReportBatchBody } from './schemas.ts';

/** The two reports every worker sends after a flip: its ack of the rev, its settled stop. */
export type WorkerReport = 'ack' | 'halted';

/** What taking a worker's ack or halted report needs. */
export interface WorkerReportDeps {
  readonly fleet: Fleet;
  readonly workers: Pick<WorkerDesk, 'ack'>;
  /** Takes a settle report (`ControlPlane.haltedReport`): 404 when the directive is unknown to the worker's tenant. */
  haltedReport(workerId: string, who: KnownWorker, report: HaltedReport): Promise<unknown>;
  /** Where an item of a batch that failed with an unexpected error is logged. */
  readonly log: Logger;
}

/**
 * Takes worker `workerId`'s `kind` report for principal `p`: `body` parses and validates the
 * request body against the schema it is given (a 415 or 400 before anything else is looked at),
 * then the worker is resolved for the caller ({@link requireWorker}) and the report taken.
 * The one implementation of both routes, whichever way the request came in.
 */
export async function takeWorkerReport(
  deps: WorkerReportDeps,
  kind: WorkerReport,
  workerId: string,
  p: Principal,
  body: <S extends z.ZodType>(schema: S) => Promise<z.infer<S>>,
): Promise<void> {
  if (kind === 'ack') {
    const b = await body(AckBody);
    deps.workers.ack(requireWorker(deps.fleet, p, workerId), b.rev);
    return;
  }
  const b = await body(HaltedBody);
  await deps.haltedReport(workerId, requireWorker(deps.fleet, p, workerId), b);
}

/**
 * Takes a batch of acks and halted reports (`POST /v1/workers/reports`) for principal `p`: the
 * body is parsed and validated as a whole (a 415 or 400 for the request), then each report is
 * taken as {@link takeWorkerReport} takes it, in order, and answered on its own: one failing
 * report (a worker the caller does not own, a directive unknown to its tenant) fails only its
 * answer. The batch is one token's, so its reports are of one principal.
 */
export async function takeWorkerReports(
  deps: WorkerReportDeps,
  p: Principal,
  body: <S extends z.ZodType>(schema: S) => Promise<z.infer<S>>,
): Promise<BatchAnswers> {
  const b = await body(WorkerReportBatchBody);
  const answers: BatchAnswer[] = [];
  for (const r of b.reports) {
    try {
      const who = requireWorker(deps.fleet, p, r.workerId);
      if (r.kind === 'ack') deps.workers.ack(who, r.rev);
      else {
        const { rev, directiveId, runs, aborted, completed, observeToSettleMs } = r;
        await deps.haltedReport(r.workerId, who, {
          rev,
          directiveId,
          runs,
          aborted,
          completed,
          observeToSettleMs,
        });
      }
      answers.push({ status: 204 });
    } catch (err) {
      answers.push(batchFailure(deps.log, err));
    }
  }
  return { answers };
}

/** What {@link workerReportRoute} needs beyond the reports themselves. */
export interface WorkerReportRouteDeps extends WorkerReportDeps {
  readonly auth: Pick<Authenticator, 'authenticate'>;
  readonly metrics: Metrics;
}

/**
 * The paths the light route takes: a worker id with nothing to decode, no query. Anything else
 * (an escaped id, a query string, a dot segment, which the app's URL resolves away: `/v1/workers/../ack`
 * is `/v1/ack` there) goes through the app's routes, which answer it the same way.
 */
const REPORT_PATH = /^\/v1\/workers\/(?!\.\.?\/)([^/?#%]+)\/(ack|halted)$/;

/** The path of a batch of several workers' reports ({@link takeWorkerReports}). */
const BATCH_PATH = '/v1/workers/reports';

/**
 * `POST /v1/workers/{id}/ack`, `/halted` and `POST /v1/workers/reports` (several workers'
 * acks and halted reports together) outside the general middleware: after a flip every
 * covered worker sends one, so a fleet's wave of them is most of what the control plane does
 * between the flip and the last report, and hono's router, its middleware chain and its
 * context were a fifth of each one's cost (`npm run bench`, `--cpu-prof`). Returns null for a
 * request it does not take; the app's routes answer those. It does what that chain does for
 * these two routes, in the same order: the declared length is checked against
 * {@link BODY_LIMIT} (413), the URL for a token secret, the bearer token authenticated (401),
 * then {@link takeWorkerReport}; errors in the one wire shape; the request counted and, when
 * slow, logged. Admission is skipped: acks and halted reports are `critical`, which it never
 * sheds. A Node request without a declared length (chunked) is left to the app, whose body limit
 * reads it.
 */
export function workerReportRoute(
  deps: WorkerReportRouteDeps,
): (req: Request, env: Partial<HttpBindings> | undefined) => Promise<Response> | null {
  return (req, env) => {
    if (req.method !== 'POST') return null;
    const incoming = env?.incoming;
    const path = incoming !== undefined ? (incoming.url ?? '') : pathOf(req.url);
    const batch = path === BATCH_PATH;
    const m = batch ? null : REPORT_PATH.exec(path);
    if (!batch && m === null) return null;
    // Node keeps the first of a repeated Authorization or Content-Type; the app's request (and so
    // its routes) sees every value, joined: read them the app's way, or a second token or type
    // the app refuses would pass here.
    const header = (name: string): string | undefined =>
      incoming !== undefined ? distinct(incoming, name) : (req.headers.get(name) ?? undefined);
    const length = header('content-length');
    if (incoming !== undefined && (length === undefined || header('transfer-encoding') !== undefined))
      return null;
    if (incoming !== undefined && (incoming.readableDidRead || incoming.readableEnded)) return null;
    const started = performance.now();
    // A WHATWG request (in-process: `app.request`) declares no length: its body is read first and
    // measured, as the app's body limit does before anything else, so a body too large is a 413
    // whatever else is wrong with the request.
    let text: Promise<string> | null = null;
    const read = incoming !== undefined ? () => readIncoming(incoming) : () => (text ??= req.text());
    return answer(deps, started, path, async () => {
      if (length !== undefined && Number(length) > BODY_LIMIT) throw tooLarge();
      if (incoming === undefined && Buffer.byteLength(await read()) > BODY_LIMIT) throw tooLarge();
      refuseSecrets(`${header('host') ?? ''}${path}`);
      const p = await deps.auth.authenticate(header('authorization'));
      const parse = <S extends z.ZodType>(schema: S) => parseBody(header('content-type'), read, schema);
      if (m === null) return takeWorkerReports(deps, p, parse);
      await takeWorkerReport(deps, m[2] as WorkerReport, m[1]!, p, parse);
      return null;
    });
  };
}

/**
 * Runs `take` and answers 204, or 200 with the batch answers it returned, or the wire error it
 * threw; counts the request, logs it when slow.
 */
async function answer(
  deps: WorkerReportRouteDeps,
  started: number,
  path: string,
  take: () => Promise<BatchAnswers | null>,
): Promise<Response> {
  let res: Response;
  try {
    const answers = await take();
    res =
      answers === null
        ? new Response(null, { status: 204 })
        : new Response(JSON.stringify(answers), {
            status: 200,
            headers: { 'content-type': 'application/json' },
          });
  } catch (err) {
    if (!(err instanceof KillpathError))
      deps.log.error('unhandled error', { err: err instanceof Error ? err.stack : String(err), path });
    res = new Response(JSON.stringify(toWire(err)), {
      status: err instanceof KillpathError ? HTTP_STATUS[err.code] : 500,
      headers: { 'content-type': 'application/json' },
    });
  }
  deps.metrics.requests.inc({ method: 'POST', status: String(res.status) });
  const ms = performance.now() - started;
  if (ms > SLOW_REQUEST_MS)
    deps.log.warn('slow request', { method: 'POST', path, status: res.status, ms: Math.round(ms) });
  return res;
}

function tooLarge(): KillpathError {
  return new KillpathError('payload_too_large', `request body exceeds ${BODY_LIMIT} bytes`);
}

function pathOf(url: string): string {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

/** Every value of header `name`, joined as a WHATWG `Headers` joins them (an HTTP/2 request has no `headersDistinct`: its `headers`). */
function distinct(incoming: IncomingMessage, name: string): string | undefined {
  const all = (incoming.headersDistinct as IncomingMessage['headersDistinct'] | undefined)?.[name];
  if (all !== undefined) return all.join(', ');
  const v = incoming.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The request's body as text, read with plain stream events (cheaper than an async iterator). */
function readIncoming(incoming: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.once('end', () =>
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')),
    );
    incoming.once('error', reject);
  });
}
