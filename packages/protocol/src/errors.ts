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
