import { KillpathError, isWireError } from '@killpath/protocol';
import type { ErrorCode, StreamMessage } from '@killpath/protocol';

/**
 * What every transport does with what the control plane sends: stream events become
 * `StreamMessage`s, refusals become `KillpathError`s. Internal; shared by the transports so
 * they agree to the letter.
 */

const TYPES = new Set(['snapshot', 'delta', 'keepalive']);

/**
 * One SSE event as a stream message. `data` is the JSON of one `StreamMessage`; `event` is used
 * as its `type` when the JSON has none. Returns null for an event of an unknown type (newer
 * servers may add some).
 * @throws KillpathError `invalid_request` for data that is not a JSON object with an integer rev
 */
export function toStreamMessage(event: string | undefined, data: string): StreamMessage | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new KillpathError('invalid_request', `stream event "${event ?? ''}" is not JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new KillpathError('invalid_request', 'stream event data is not an object');
  }
  const record = parsed as { type?: unknown; rev?: unknown };
  const type = typeof record.type === 'string' ? record.type : event;
  if (type === undefined || !TYPES.has(type)) return null;
  if (typeof record.rev !== 'number' || !Number.isSafeInteger(record.rev)) {
    throw new KillpathError('invalid_request', `stream ${type} has no integer rev`);
  }
  if (record.type === type) return parsed as StreamMessage;
  return { ...parsed, type } as StreamMessage;
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'invalid_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  422: 'unsupported_level',
  429: 'overloaded',
};

/**
 * A KillpathError for a non-2xx answer: the wire error's code when the body (already parsed, or
 * `null` when it was not JSON) has one, else one from the status.
 */
export function refusal(status: number, body: unknown, url: string): KillpathError {
  if (isWireError(body)) {
    return new KillpathError(body.error.code, body.error.message, {
      details: { status, ...(body.error.details === undefined ? {} : { details: body.error.details }) },
    });
  }
  const code = STATUS_CODES[status] ?? (status >= 500 ? 'unavailable' : 'internal');
  return new KillpathError(code, `HTTP ${status} from ${url || 'control plane'}`, { details: { status } });
}

/**
 * How long the control plane asked a shed request to wait before retrying (its `overloaded`
 * answer's `retryAfterMs`), in ms; null when the error says nothing of the kind.
 */
export function retryAfterMs(err: unknown): number | null {
  if (!(err instanceof KillpathError) || err.code !== 'overloaded') return null;
  const outer = err.details as { details?: { retryAfterMs?: unknown } } | undefined;
  const ms = outer?.details?.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : 1000;
}
