import { createHash } from 'node:crypto';
import { KillpathError, canonicalJson } from '@killpath/protocol';
import type {
  BatchAnswers,
  ErrorCode,
  Permit,
  PermitBatch,
  PermitRequest,
  PermitResponse,
  ResumeRequest,
} from '@killpath/protocol';
import { errorCode, errorMessage } from './journal.ts';
import type { Transport } from './transport.ts';
import { refusal as wireRefusal } from './wire-answers.ts';

/** Most permit requests sent in one `POST /v1/permits/batch` (the control plane takes up to 256). */
const PERMIT_BATCH = 128;

/**
 * Most UTF-8 bytes of serialised items in one batch request (permits or outcomes): the control
 * plane takes 64 KiB a body, so this leaves room for the envelope. An item bigger than this on
 * its own goes alone, on the single-item route, so it never fails a batch of neighbours.
 */
export const BATCH_BYTES = 48 * 1024;

/** UTF-8 length of a string: `Buffer.byteLength` where Buffer exists, else a `TextEncoder`. */
export function utf8Bytes(text: string): number {
  return typeof Buffer === 'function' ? Buffer.byteLength(text) : new TextEncoder().encode(text).length;
}

/**
 * Splits `items` into runs of at most `maxItems` whose serialised items sum to at most
 * {@link BATCH_BYTES} UTF-8 bytes, in order; an item over {@link BATCH_BYTES} on its own is put
 * in `alone` instead, for the single-item route.
 */
export function splitBatches<T>(
  items: readonly T[],
  maxItems: number,
  json: (item: T) => unknown,
): { batches: T[][]; alone: T[] } {
  const batches: T[][] = [];
  const alone: T[] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const item of items) {
    // Each item after the first adds its comma too.
    const size = utf8Bytes(JSON.stringify(json(item)) ?? 'null') + 1;
    if (size > BATCH_BYTES) {
      alone.push(item);
      continue;
    }
    if (batch.length > 0 && (batch.length >= maxItems || bytes + size > BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(item);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return { batches, alone };
}

interface QueuedPermit {
  request: PermitRequest;
  resolve(answer: unknown): void;
  reject(err: unknown): void;
}

/**
 * The control-plane requests whose answer the SDK waits for: permits, their confirmation, and
 * resume. Each call is made once; a failure is never retried here (the caller's retry policy
 * decides), and {@link refusal} turns it into a `KillpathError` the caller can branch on.
 *
 * A permit asked on an idle wire goes at once as `POST /v1/permits`. Permits asked while others
 * are on the wire go out together at the end of the turn: several as one `POST /v1/permits/batch`
 * (decided in one durable commit at the control plane), each answered exactly as the single
 * request would be. A control plane without the batch route (404) gets them one by one from then on.
 */
export class ControlCalls {
  private readonly transport: Transport;
  private readonly base: string;
  private readonly headers: Record<string, string>;

  /** @param base the control plane URL without a trailing slash */
  constructor(transport: Transport, base: string, headers: Record<string, string>) {
    this.transport = transport;
    this.base = base;
    this.headers = headers;
  }

  /** `POST /v1/permits`: the intent record of one effect, answered by a permit or a refusal. */
  requestPermit(request: PermitRequest): Promise<unknown> {
    if (this.inFlight === 0 && this.queued === null) return this.single(request);
    return new Promise((resolve, reject) => {
      if (this.queued === null) {
        this.queued = [];
        setImmediate(this.sendQueued);
      }
      this.queued.push({ request, resolve, reject });
    });
  }

  private queued: QueuedPermit[] | null = null;
  /** Permit requests on the wire, counted until the turn their answer arrived in ends. */
  private inFlight = 0;
  /** False once the control plane answered 404 to a batch: it predates the route. */
  private batches = true;

  private readonly sendQueued = (): void => {
    const queued = this.queued ?? [];
    this.queued = null;
    if (!this.batches || queued.length === 1) {
      for (const q of queued) this.single(q.request).then(q.resolve, q.reject);
      return;
    }
    // Capped by count and by UTF-8 size (the control plane refuses a body over 64 KiB whole);
    // a request too big to share a batch goes alone. A batch of one goes alone too.
    const { batches, alone } = splitBatches(queued, PERMIT_BATCH, (q) => q.request);
    for (const q of alone) this.single(q.request).then(q.resolve, q.reject);
    for (const batch of batches) {
      if (batch.length === 1) for (const q of batch) this.single(q.request).then(q.resolve, q.reject);
      else this.sendBatch(batch);
    }
  };

  /**
   * POSTs `body`, counted in flight: a permit asked while another is on the wire (or was answered
   * in this turn, as a busy run's next one is) waits for the end of the turn to join a batch; one
   * asked on an idle wire goes at once.
   */
  private tracked(url: string, body: unknown): Promise<unknown> {
    this.inFlight += 1;
    const p = this.post(url, body);
    // Settled once the turn its answer arrived in has ended: by then each caller has taken its
    // answer (a permit granted after close is reported `aborted` in that turn).
    const settled = new Promise<void>((ok) => {
      const done = (): void => {
        setImmediate(() => {
          this.inFlight -= 1;
          this.onWire.delete(settled);
          ok();
        });
      };
      p.then(done, done);
    });
    this.onWire.add(settled);
    return p;
  }

  /** Permit requests on the wire, each settled once its answer has been handed out. */
  private readonly onWire = new Set<Promise<void>>();

  /**
   * Resolves once every permit request asked so far (queued or on the wire) has been answered
   * and its answer handed to the caller. The client's `close` waits for it (bounded) so that the
   * outcome of a permit granted while it was closing is still sent: the control plane would
   * otherwise keep that permit open.
   */
  async drained(): Promise<void> {
    while (this.queued !== null || this.onWire.size > 0) {
      if (this.queued !== null) await new Promise<void>((ok) => setImmediate(ok));
      else await Promise.all(this.onWire);
    }
  }

  private single(request: PermitRequest): Promise<unknown> {
    return this.tracked(`${this.base}/v1/permits`, request);
  }

  private sendBatch(items: QueuedPermit[]): void {
    const url = `${this.base}/v1/permits/batch`;
    const body: PermitBatch = { requests: items.map((q) => q.request) };
    this.tracked(url, body).then(
      (answer) => {
        const answers = (answer as Partial<BatchAnswers> | undefined)?.answers;
        items.forEach((q, i) => {
          const a = Array.isArray(answers) ? answers[i] : undefined;
          if (a === undefined || typeof a.status !== 'number')
            q.reject(new KillpathError('internal', `malformed batch answer from ${url}`));
          else if (a.status >= 200 && a.status < 300) q.resolve(a.body);
          else q.reject(wireRefusal(a.status, a.body ?? null, url));
        });
      },
      (err: unknown) => {
        if (errorCode(err) === 'not_found' && this.batches) {
          this.batches = false;
          for (const q of items) this.single(q.request).then(q.resolve, q.reject);
          return;
        }
        for (const q of items) q.reject(err);
      },
    );
  }

  /** `POST /v1/permits/{id}/confirm`: ends an irreversible effect's cool-off. */
  confirmPermit(permitId: string): Promise<unknown> {
    return this.post(`${this.base}/v1/permits/${encodeURIComponent(permitId)}/confirm`, {});
  }

  /** `POST /v1/runs/{id}/resume`: may this run come back? */
  resume(runId: string, request: ResumeRequest): Promise<unknown> {
    return this.post(`${this.base}/v1/runs/${encodeURIComponent(runId)}/resume`, request);
  }

  private post(url: string, body: unknown): Promise<unknown> {
    try {
      return this.transport.post(url, this.headers, body);
    } catch (err) {
      // A transport that throws synchronously is treated like one that rejects.
      return Promise.reject(err);
    }
  }
}

/** Codes meaning "the control plane could not answer", as opposed to "it said no". */
const UNREACHABLE = new Set<ErrorCode | null>(['unavailable', 'internal', 'stale', null]);

/**
 * The `KillpathError` for a failed control-plane call. A `halted` refusal keeps the covering
 * directive in `details: { reason, directiveId, rev }`; an unreachable or failing control plane
 * (network error, timeout, 5xx) becomes `unavailable`; any other wire code is kept.
 * @param what what was asked, for the message (e.g. `permit for "crm.update" of run r1`)
 */
export function refusal(err: unknown, what: string): KillpathError {
  const code = errorCode(err);
  if (code === 'halted') {
    const d = wireDetails(err);
    return new KillpathError('halted', `${what} refused: halted by directive ${d.directiveId ?? '?'}`, {
      cause: err,
      details: { reason: d.reason ?? 'halted', directiveId: d.directiveId, rev: d.rev },
    });
  }
  if (UNREACHABLE.has(code)) {
    return new KillpathError('unavailable', `${what}: control plane unavailable (${errorMessage(err)})`, {
      cause: err,
    });
  }
  return new KillpathError(code ?? 'internal', `${what} refused: ${errorMessage(err)}`, {
    cause: err,
    details: err instanceof KillpathError ? err.details : undefined,
  });
}

/**
 * The refusal's details, from either a `KillpathError` made from the wire error's details
 * directly or the default transport's `{ status, details }` wrapping.
 */
function wireDetails(err: unknown): {
  directiveId: string | null;
  rev: number | null;
  reason: string | null;
} {
  let d: unknown = err instanceof KillpathError ? err.details : null;
  if (isRecord(d) && isRecord(d.details)) d = d.details;
  if (!isRecord(d)) return { directiveId: null, rev: null, reason: null };
  return {
    directiveId: typeof d.directiveId === 'string' ? d.directiveId : null,
    rev: typeof d.rev === 'number' ? d.rev : null,
    reason: d.reason === 'halted' || d.reason === 'killed' ? d.reason : null,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The answer of a permit or confirm request when it has the wire shape, else `null`. */
export function asPermitResponse(body: unknown): PermitResponse | null {
  if (!isRecord(body) || !isRecord(body.permit)) return null;
  const p = body.permit;
  if (typeof p.id !== 'string' || typeof p.status !== 'string' || typeof p.rev !== 'number') return null;
  return {
    permit: {
      ...(p as unknown as Permit),
      coolOffMs:
        typeof p.coolOffMs === 'number' && Number.isFinite(p.coolOffMs) ? Math.max(0, p.coolOffMs) : 0,
    },
    replay: body.replay === true,
    ...('result' in body ? { result: body.result } : {}),
  };
}

/** The answer of `POST /v1/runs/{id}/resume` when it has the wire shape, else `null`. */
export function asResumeAnswer(body: unknown): { runId: string; lineage: string[] } | null {
  if (!isRecord(body) || typeof body.runId !== 'string' || !Array.isArray(body.lineage)) return null;
  const lineage = body.lineage as unknown[];
  if (!lineage.every((id): id is string => typeof id === 'string')) return null;
  return { runId: body.runId, lineage };
}

/**
 * SHA-256 (hex) of the canonical JSON of `args` (RFC 8785: every object's keys sorted), so that
 * two calls with the same arguments in a different key order get the same digest. Arrays keep
 * their order; values JSON drops (`undefined`, functions) are dropped.
 * @throws KillpathError `invalid_request` when `args` cannot be serialised (a cycle, a BigInt)
 */
export function argsDigest(args: unknown): string {
  let json: string;
  try {
    json = args === undefined ? 'null' : canonicalJson(args);
  } catch (err) {
    throw new KillpathError('invalid_request', `effect args are not serialisable: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return createHash('sha256').update(json).digest('hex');
}

/** 64 KiB: the largest effect result or task payload the SDK puts on the wire. */
export const MAX_JSON_BYTES = 64 * 1024;

/**
 * A JSON copy of `value` when it serialises to at most `maxBytes` (UTF-8), else `undefined`:
 * what goes on the wire is then known to stringify, whatever `toJSON` or getters do later.
 */
export function jsonCopy(value: unknown, maxBytes = MAX_JSON_BYTES): unknown {
  try {
    const json = JSON.stringify(value);
    if (json === undefined || utf8Bytes(json) > maxBytes) return undefined;
    return JSON.parse(json) as unknown;
  } catch {
    return undefined;
  }
}
