import {
  KillpathError,
  PROTOCOL_VERSION,
  errorFromWire,
  protocolMajor,
  retryAfterMs as wireRetryAfterMs,
} from '@killpath/protocol';
import type { StreamMessage } from '@killpath/protocol';
import type { StreamMessageSchema } from '@killpath/protocol/schemas';

/**
 * What every transport does with what the control plane sends: stream events become
 * `StreamMessage`s, refusals become `KillpathError`s. Internal; shared by the transports so
 * they agree to the letter.
 */

let streamSchema: typeof StreamMessageSchema | null = null;

/**
 * Loads the schema of stream frames (`@killpath/protocol/schemas`, which loads zod) once, when
 * the first stream opens: importing the SDK loads no zod (it is most of a cold import's time),
 * and a process that never connects never pays for it. Every transport awaits it before it
 * reads a frame.
 */
export async function loadStreamSchema(): Promise<void> {
  streamSchema ??= (await import('@killpath/protocol/schemas')).StreamMessageSchema;
}

/**
 * One SSE event as a stream message, checked against the protocol's schema of that frame
 * (`StreamMessageSchema`: the same definition the control plane's types derive from). `data` is
 * the JSON of one `StreamMessage`; `event` is used as its `type` when the JSON has none. Returns
 * null for an event of an unknown type (newer servers may add some); fields a newer server adds
 * are dropped. A snapshot of a newer major protocol is returned unchecked (its shape may have
 * changed): the stream handler refuses it by its version and says so. Needs {@link loadStreamSchema}.
 * @throws KillpathError `invalid_request` for data that is not JSON, or not the frame its type names
 */
export function toStreamMessage(event: string | undefined, data: string): StreamMessage | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new KillpathError('invalid_request', `stream event "${event ?? ''}" is not JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new KillpathError('invalid_request', 'stream event data is not an object');
  }
  const record = parsed as { type?: unknown; v?: unknown };
  const type = typeof record.type === 'string' ? record.type : event;
  if (type === undefined || !STREAM_TYPES.has(type)) return null;
  const frame = record.type === type ? parsed : { ...parsed, type };
  if (type === 'snapshot') {
    const major = protocolMajor(record.v);
    if (major !== null && major > PROTOCOL_VERSION) return frame as StreamMessage;
  }
  if (streamSchema === null)
    throw new KillpathError('internal', 'stream frames read before loadStreamSchema() resolved');
  const checked = streamSchema.safeParse(frame);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`;
    throw new KillpathError(
      'invalid_request',
      `stream ${type} is malformed${where}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return checked.data;
}

const STREAM_TYPES = new Set(['snapshot', 'delta', 'keepalive']);

/**
 * A KillpathError for a non-2xx answer, by the protocol's one mapping ({@link errorFromWire}):
 * the wire error's code when the body (already parsed, or `null` when it was not JSON) has one,
 * else one from the status. The SDK's transports wrap the details with the status:
 * `details: { status, details? }` (callers read the directive of a `halted` refusal there).
 */
export function refusal(status: number, body: unknown, url: string): KillpathError {
  const err = errorFromWire(status, body ?? undefined, url || 'control plane');
  return new KillpathError(err.code, err.message, {
    details: { status, ...(err.details === undefined ? {} : { details: err.details }) },
  });
}

/**
 * How long the control plane asked a shed request to wait before retrying (its `overloaded`
 * answer's `retryAfterMs`), in ms; null when the error says nothing of the kind.
 */
export function retryAfterMs(err: unknown): number | null {
  if (!(err instanceof KillpathError)) return null;
  const inner = (err.details as { details?: unknown } | undefined)?.details;
  return wireRetryAfterMs({ code: err.code, details: inner });
}
