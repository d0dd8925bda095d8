import { KillpathError } from '@killpath/protocol';
import type { StreamMessage } from '@killpath/protocol';
import { SseParser } from './sse-parser.ts';
import type { Transport } from './transport.ts';
import { loadStreamSchema, refusal, toStreamMessage } from './wire-answers.ts';

/** Options for {@link fetchTransport}. */
export interface FetchTransportOptions {
  /** Time limit for one report POST, in ms. Default 10 000. */
  postTimeoutMs?: number;
}

/**
 * A transport on `fetch` for reports and for the server-sent-events stream (for a runtime without
 * `node:http`; the default is `nodeHttpTransport`, a fraction of the cost per message), parsed with
 * the SDK's {@link SseParser} (as `nodeHttpTransport` is). Each SSE event's `data` is the JSON of one `StreamMessage`; its `event`
 * name is used as `type` when the JSON has none. Events of unknown types are skipped (newer
 * servers may add some); malformed JSON ends the stream with an `invalid_request` error so the
 * client reconnects.
 */
export function fetchTransport(options: FetchTransportOptions = {}): Transport {
  const postTimeoutMs = options.postTimeoutMs ?? 10_000;
  return {
    openStream: (url, headers, signal) => readStream(url, headers, signal),
    post: async (url, headers, body) => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(postTimeoutMs),
      });
      if (!res.ok) throw await errorFrom(res);
      // Reading the body also drains it, so the connection can be reused.
      const text = await res.text();
      return text === '' ? undefined : (JSON.parse(text) as unknown);
    },
  };
}

async function* readStream(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): AsyncGenerator<StreamMessage> {
  await loadStreamSchema();
  for await (const e of sseEvents(url, headers, signal)) {
    const msg = toStreamMessage(e.event, e.data);
    if (msg !== null) yield msg;
  }
}

/** One server-sent event: its `event` name (undefined when it has none) and its `data`. */
export interface SseEvent {
  event: string | undefined;
  data: string;
}

/**
 * Opens a server-sent-events stream with `fetch` and yields its events in order, parsed with the
 * SDK's own parser. A non-2xx answer throws a `KillpathError` carrying the wire error's code
 * (and the HTTP status in `details.status`); the iteration ends when the server closes the
 * stream; aborting `signal` ends it promptly. The switchboard stream of {@link fetchTransport}
 * and the launcher's orders link read their streams with it.
 */
export async function* sseEvents(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): AsyncGenerator<SseEvent> {
  const res = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' }, signal });
  if (!res.ok) throw await errorFrom(res);
  if (res.body === null) throw new KillpathError('unavailable', 'stream answer has no body');
  const queue: SseEvent[] = [];
  const parser = new SseParser((event, data) => queue.push({ event, data }));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
      let next = queue.shift();
      while (next !== undefined) {
        yield next;
        next = queue.shift();
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** A KillpathError from a non-2xx answer: the wire error's code when the body has one, else by status. */
async function errorFrom(res: Response): Promise<KillpathError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: fall back to the status.
  }
  return refusal(res.status, body, res.url);
}
