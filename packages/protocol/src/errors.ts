/** Every error code that crosses the wire, defined once. Callers branch on these, not on classes. */
export const ERROR_CODES = [
  'invalid_request',
  'unauthenticated',
  'forbidden',
  'not_found',
  'conflict',
  'payload_too_large',
  'unsupported_media_type',
  'unsupported_level',
  'idempotency_mismatch',
  'break_glass_required',
  'halted',
  'same_release',
  'stale',
  'unavailable',
  'overloaded',
  'internal',
] as const;

/** A stable, machine-readable error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The one error shape on the wire: `{ "error": { "code", "message", "details" } }`. */
export interface WireError {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/** HTTP status for each wire error code. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unsupported_level: 422,
  idempotency_mismatch: 422,
  break_glass_required: 403,
  halted: 409,
  same_release: 409,
  stale: 503,
  unavailable: 503,
  overloaded: 429,
  internal: 500,
};

/**
 * Base error for killpath. `name` follows the subclass, `code` is stable, `cause` is standard.
 * Local errors never cross the wire as objects: {@link toWire} turns one into data.
 */
export class KillpathError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options?.details;
  }
}

/** Turns an error into the wire shape; anything not a KillpathError becomes `internal`. */
export function toWire(err: unknown): WireError {
  if (err instanceof KillpathError) {
    return {
      error: {
        code: err.code,
        message: err.message,
        ...(err.details === undefined ? {} : { details: err.details }),
      },
    };
  }
  return { error: { code: 'internal', message: 'internal error' } };
}

/** True when `body` has the wire error shape. */
export function isWireError(body: unknown): body is WireError {
  if (typeof body !== 'object' || body === null || !('error' in body)) return false;
  const e = (body as { error: unknown }).error;
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string';
}

/** The code an HTTP status stands for when the answer's body names none (or one this version does not know). */
const STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  400: 'invalid_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'unsupported_level',
  429: 'overloaded',
};

/** The error code an HTTP status stands for: 5xx is `unavailable`, a status not listed is `internal`. */
export function codeForStatus(status: number): ErrorCode {
  return STATUS_CODES[status] ?? (status >= 500 ? 'unavailable' : 'internal');
}

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * The one mapping from a refused HTTP answer to a local error, used by every client of the
 * control plane (SDK, CLI, console, launcher, watchdog). Pure.
 *
 * - a wire error with a known code: that code, its message and its `details` (a 429's
 *   `details.retryAfterMs` included; read it with {@link retryAfterMs});
 * - a wire error with a code this version does not know (a newer server): the code its status
 *   stands for, the server's message with the unknown code named, and
 *   `details: { code, details }`;
 * - anything else (empty, not an object, not the wire shape): the code its status stands for and
 *   `HTTP <status> from <source>`.
 *
 * @param status the HTTP status of the answer (0 when there was none)
 * @param body the answer's parsed JSON body, `undefined` when it was empty or not JSON
 * @param source who answered, for the message; default `the control plane`
 */
export function errorFromWire(status: number, body: unknown, source = 'the control plane'): KillpathError {
  if (isWireError(body)) {
    const { code, message, details } = body.error as { code: string; message?: unknown; details?: unknown };
    const text = typeof message === 'string' && message !== '' ? message : code;
    if (KNOWN_CODES.has(code)) {
      return new KillpathError(code as ErrorCode, text, details === undefined ? undefined : { details });
    }
    return new KillpathError(
      codeForStatus(status),
      `${text} (unknown error code "${code}", HTTP ${status})`,
      {
        details: { code, ...(details === undefined ? {} : { details }) },
      },
    );
  }
  return new KillpathError(codeForStatus(status), `HTTP ${status} from ${source}`);
}

/**
 * {@link errorFromWire} for a body still as text: an empty or non-JSON body falls back to the
 * status, and the message says the answer was not JSON. Pure.
 */
export function errorFromWireText(status: number, text: string, source = 'the control plane'): KillpathError {
  if (text.trim() === '') return errorFromWire(status, undefined, source);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return new KillpathError(
      codeForStatus(status),
      `unexpected answer from ${source} (HTTP ${status}, not JSON)`,
    );
  }
  return errorFromWire(status, body, source);
}

/**
 * How long a shed request was asked to wait before it is sent again, ms: the `retryAfterMs` of an
 * `overloaded` error's details, or `fallbackMs` when it names none; null for any other error.
 * Takes any `{ code, details }` (a KillpathError or a part of one).
 */
export function retryAfterMs(err: unknown, fallbackMs = 1000): number | null {
  if (typeof err !== 'object' || err === null) return null;
  const { code, details } = err as { code?: unknown; details?: unknown };
  if (code !== 'overloaded') return null;
  const ms = (details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : fallbackMs;
}
