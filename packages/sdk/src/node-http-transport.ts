import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { KillpathError } from '@killpath/protocol';
import type { StreamMessage } from '@killpath/protocol';
import { SseParser } from './sse-parser.ts';
import type { Transport } from './transport.ts';
import { loadStreamSchema, refusal, toStreamMessage } from './wire-answers.ts';

/** Options for {@link nodeHttpTransport}. */
export interface NodeHttpTransportOptions {
  /** Time limit for one report POST, in ms. Default 10 000. */
  postTimeoutMs?: number;
  /**
   * A stream (or a stream being opened) that receives nothing for this long is dropped, so the
   * client reconnects. Keep-alives arrive every second by default. Default 30 000 ms.
   */
  streamIdleTimeoutMs?: number;
  /** CA certificates (PEM) trusted for `https://` beside the system's (a private CA). Default: the system's. */
  ca?: string | Buffer | readonly (string | Buffer)[];
}

/** Most of an error answer's body that is read (to find the wire error in it). */
const MAX_ERROR_BODY = 64 * 1024;

/** Parsed messages queued beyond this pause the socket until the reader catches up. */
const HIGH_WATER = 256;

/**
 * A transport on `node:http` / `node:https`: one dedicated connection per push stream (never
 * pooled, Nagle off), parsed incrementally as server-sent events; reports go over a keep-alive
 * agent owned by this transport. Same contract as {@link fetchTransport}: each SSE event's
 * `data` is the JSON of one `StreamMessage` (the `event` name is its `type` when the JSON has
 * none), events of unknown types are skipped, malformed JSON ends the stream with
 * `invalid_request`, a refusal becomes a `KillpathError` with the wire code, and a network
 * failure an `unavailable` one.
 *
 * It costs a fraction of `fetch` per stream message and per report (no WHATWG streams, no
 * undici pool scan), which is what a host of many workers, or a busy machine, spends its time on.
 */
export function nodeHttpTransport(options: NodeHttpTransportOptions = {}): Transport {
  const postTimeoutMs = options.postTimeoutMs ?? 10_000;
  const idleMs = options.streamIdleTimeoutMs ?? 30_000;
  // Free sockets are unref'd by the agent: an idle transport never keeps the process alive.
  const ca = caList(options.ca);
  const agents: Agents = {
    http: new HttpAgent({ keepAlive: true }),
    https: new HttpsAgent({ keepAlive: true, ...(ca ? { ca } : {}) }),
    ca,
  };
  return {
    openStream: (url, headers, signal) => readStream(url, headers, signal, idleMs, agents),
    post: (url, headers, body) => post(url, headers, body, postTimeoutMs, agents),
  };
}

/** The default transports of this process, by the CAs they trust beside the system's ('' for none). */
const shared = new Map<string, Transport>();

/**
 * The {@link nodeHttpTransport} with default settings and `ca`, one per process for each set of
 * CAs: every client connected without a transport of its own shares it, so the workers of a host
 * share its keep-alive pool and their acks and halted reports go out together
 * (`ReportChannel`: a batch is per transport). Streams keep their own connection each.
 */
export function sharedNodeHttpTransport(ca: readonly (string | Buffer)[] | null): Transport {
  const key = ca === null ? '' : ca.map((c) => (typeof c === 'string' ? c : c.toString('latin1'))).join('\0');
  let t = shared.get(key);
  if (t === undefined) {
    t = nodeHttpTransport(ca === null ? {} : { ca });
    shared.set(key, t);
  }
  return t;
}

/** The system's CAs plus `extra`, or undefined for the system's alone. */
function caList(extra: NodeHttpTransportOptions['ca']): (string | Buffer)[] | undefined {
  if (extra === undefined) return undefined;
  const list = (Array.isArray(extra) ? [...extra] : [extra]) as (string | Buffer)[];
  // Node replaces the default store when `ca` is given: keep the system's roots beside the private CA.
  return [...rootCertificates, ...list];
}

interface Agents {
  http: HttpAgent;
  https: HttpsAgent;
  /** CAs for dedicated (stream) connections, which use no agent. */
  ca: (string | Buffer)[] | undefined;
}

interface Target {
  secure: boolean;
  hostname: string;
  port: number;
  path: string;
}

/** Parsed report URLs: a worker posts to a handful of them, again and again. */
const TARGETS = new Map<string, Target>();
const MAX_TARGETS = 1024;

function target(url: string): Target {
  let t = TARGETS.get(url);
  if (t === undefined) {
    const u = new URL(url);
    const secure = u.protocol === 'https:';
    t = {
      secure,
      // An IPv6 literal comes bracketed in a URL, bare in a request's options.
      hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port === '' ? (secure ? 443 : 80) : Number(u.port),
      path: `${u.pathname}${u.search}`,
    };
    if (TARGETS.size >= MAX_TARGETS) TARGETS.clear();
    TARGETS.set(url, t);
  }
  return t;
}

/** Starts a request; `dedicated` means a connection of its own (no agent, no pooling). */
function send(
  url: string,
  method: string,
  headers: OutgoingHttpHeaders,
  agents: Agents,
  dedicated = false,
): ClientRequest {
  const { secure, hostname, port, path } = target(url);
  if (secure)
    return httpsRequest({
      hostname,
      port,
      path,
      method,
      headers,
      agent: dedicated ? false : agents.https,
      ...(dedicated && agents.ca ? { ca: agents.ca } : {}),
    });
  return httpRequest({ hostname, port, path, method, headers, agent: dedicated ? false : agents.http });
}

/** A network failure as a KillpathError the client can branch on (retryable). */
function unreachable(what: string, err: unknown): KillpathError {
  if (err instanceof KillpathError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KillpathError('unavailable', `${what}: ${message}`, { cause: err });
}

/** Reads (a bounded prefix of) an error answer and turns it into a KillpathError. */
function refusalFrom(res: IncomingMessage, url: string): Promise<KillpathError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      let body: unknown = null;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        // Not JSON (or cut short): fall back to the status.
      }
      resolve(refusal(res.statusCode ?? 0, body, url));
    };
    res.on('data', (chunk: Buffer) => {
      if (size >= MAX_ERROR_BODY) return;
      chunks.push(chunk);
      size += chunk.length;
    });
    res.once('end', done);
    res.once('error', done);
  });
}

function post(
  url: string,
  headers: Record<string, string>,
  body: unknown,
  timeoutMs: number,
  agents: Agents,
): Promise<unknown> {
  return new Promise<unknown>((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body), 'utf8');
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(unreachable(`POST ${url}`, err));
    };
    const req = send(
      url,
      'POST',
      { ...headers, 'content-type': 'application/json', 'content-length': payload.length },
      agents,
    );
    const timer = setTimeout(() => {
      req.destroy(new KillpathError('unavailable', `POST ${url} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', fail);
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        void refusalFrom(res, url).then(fail);
        return;
      }
      // Reading the body also drains it, so the connection goes back to the agent.
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.on('close', () => fail(new Error('connection closed before the answer ended')));
      res.on('end', () => {
        if (settled) return;
        let answer: unknown;
        try {
          const text = chunks.length === 0 ? '' : Buffer.concat(chunks).toString('utf8');
          answer = text === '' ? undefined : (JSON.parse(text) as unknown);
        } catch (err) {
          fail(err);
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve(answer);
      });
    });
    req.end(payload);
  });
}

async function* readStream(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  idleMs: number,
  agents: Agents,
): AsyncGenerator<StreamMessage> {
  await loadStreamSchema();
  signal.throwIfAborted();
  const req = send(url, 'GET', { ...headers, accept: 'text/event-stream' }, agents, true);
  const onAbort = (): void => {
    req.destroy(signal.reason instanceof Error ? signal.reason : new Error('stream aborted'));
  };
  signal.addEventListener('abort', onAbort, { once: true });
  req.setTimeout(idleMs, () => {
    req.destroy(new KillpathError('unavailable', `stream silent for ${idleMs} ms`));
  });
  req.on('socket', (socket) => socket.setNoDelay(true));
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (err) => reject(signal.aborted ? err : unreachable('stream', err)));
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw await refusalFrom(res, url);

    const queue: StreamMessage[] = [];
    let head = 0;
    let failure: unknown = null;
    let ended = false;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    const fail = (err: unknown): void => {
      if (failure === null && !ended) failure = signal.aborted ? signal.reason : unreachable('stream', err);
      notify();
    };
    const parser = new SseParser((event, data) => {
      if (failure !== null) return;
      try {
        const msg = toStreamMessage(event, data);
        if (msg !== null) queue.push(msg);
      } catch (err) {
        failure = err;
      }
    });
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      parser.feed(chunk);
      if (queue.length - head > HIGH_WATER) res.pause();
      notify();
    });
    res.on('end', () => {
      ended = true;
      notify();
    });
    res.on('error', fail);
    req.on('error', fail);
    res.on('close', () => {
      if (!ended) fail(new Error('connection closed'));
    });

    while (true) {
      // Yield what arrived before reporting a failure after it, in order.
      while (head < queue.length) {
        const msg = queue[head]!;
        head += 1;
        yield msg;
      }
      queue.length = 0;
      head = 0;
      if (failure !== null) throw failure;
      if (ended) return;
      if (res.isPaused()) res.resume();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    req.destroy();
  }
}
