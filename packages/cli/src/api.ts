import type { IncomingMessage, RequestOptions } from 'node:http';
import { KillpathError, errorFromWireText, retryAfterMs } from '@killpath/protocol';

/** How often a request shed under overload is sent again before its 429 is reported. */
export const SHED_RETRIES = 10;
/** The longest wait between two tries of a shed request, ms (whatever Retry-After says). */
const MAX_SHED_WAIT_MS = 10_000;

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** How long one try waits for the whole answer, ms. Default 15 000. */
  timeoutMs?: number;
  /**
   * How many more times an idempotent request (a GET, or a POST carrying an `idempotency-key`
   * header) is sent when the control plane did not answer in time or could not be reached.
   * Default 0: the CLI reports at once; the demo, on a machine it loads itself, retries.
   */
  retries?: number;
  /** Wait before the first retry, ms, doubling after each. Default 1 000. */
  retryWaitMs?: number;
}

/** 503 `unavailable` answers: the replica refused the request without processing it. */
const refusedByReplica = new WeakSet<Error>();

/**
 * A small client for the control plane's HTTP API, used by the CLI, demo and drills. Given
 * several URLs (replicas of one control plane), each try goes to the one that answered last
 * (the first at start) and moves to the next when that one is unreachable (connection refused,
 * no route, no answer in time: a request that may have been processed moves only when it is
 * idempotent, a GET or a POST with an `idempotency-key`) or refuses with 503 `unavailable` (a
 * replica that cannot vouch for its state). A 4xx answer is the answer: never sent elsewhere.
 */
export class ApiClient {
  /** Every control plane URL, without trailing slashes, in the order given. */
  readonly urls: readonly string[];
  #at = 0;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryWaitMs: number;

  constructor(url: string | readonly string[], token: string, options: ApiClientOptions = {}) {
    const list = (typeof url === 'string' ? [url] : [...url]).map((u) => u.replace(/\/+$/, ''));
    if (list.length === 0) throw new KillpathError('invalid_request', 'no control plane URL');
    this.urls = Object.freeze(list);
    this.#token = token;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#retries = options.retries ?? 0;
    this.#retryWaitMs = options.retryWaitMs ?? 1000;
  }

  /** The control plane URL requests go to now: the one that answered last (the first at start). */
  get url(): string {
    return this.urls[this.#at]!;
  }

  /**
   * Sends a request and returns the parsed JSON body (undefined for 204). A request the control
   * plane shed under overload (429 `overloaded`: it was not processed at all) is sent again after
   * the wait it asked for, up to {@link SHED_RETRIES} times. An idempotent request with no answer
   * is sent again up to `retries` times (see {@link ApiClientOptions.retries}).
   * @throws KillpathError with the wire error's code, or `unavailable`: `details.reason` is
   * `timeout` when the control plane did not answer within the timeout (it may be overloaded),
   * `unreachable` when the connection failed (nothing listens, or the network is down)
   */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const idempotent =
      method === 'GET' || Object.keys(headers).some((h) => h.toLowerCase() === 'idempotency-key');
    let unanswered = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#anyReplica<T>(method, path, body, headers, idempotent);
      } catch (err) {
        if (err instanceof KillpathError && err.code === 'unavailable') {
          unanswered += 1;
          if (!idempotent || unanswered > this.#retries) {
            if (unanswered === 1) throw err;
            throw new KillpathError('unavailable', `${err.message} (${unanswered} tries)`, {
              cause: err.cause,
              details: err.details,
            });
          }
          await new Promise((ok) => setTimeout(ok, this.#retryWaitMs * 2 ** (unanswered - 1)));
          continue;
        }
        if (!(err instanceof KillpathError) || err.code !== 'overloaded' || attempt > SHED_RETRIES) throw err;
        const wait = Math.min(retryAfterMs(err) ?? 1000, MAX_SHED_WAIT_MS);
        await new Promise((ok) => setTimeout(ok, wait));
      }
    }
  }

  /**
   * One try on each replica in turn, from the one that answered last, until one answers or
   * fails for a reason another replica would not fix.
   */
  async #anyReplica<T>(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    idempotent: boolean,
  ): Promise<T> {
    const tried: string[] = [];
    for (let i = 0; ; i++) {
      try {
        return await this.#once<T>(method, path, body, headers);
      } catch (err) {
        if (this.urls.length === 1 || !(err instanceof KillpathError)) throw err;
        const reason = (err.details as { reason?: unknown } | undefined)?.reason;
        const elsewhere =
          reason === 'unreachable' || (reason === 'timeout' && idempotent) || refusedByReplica.has(err);
        if (!elsewhere) throw err;
        tried.push(err.message);
        if (i + 1 >= this.urls.length)
          throw new KillpathError('unavailable', `no control plane answered: ${tried.join('; ')}`, {
            cause: err,
            details: err.details,
          });
        this.#at = (this.#at + 1) % this.urls.length;
      }
    }
  }

  async #once<T>(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<T> {
    let status: number;
    let text: string;
    try {
      // node:http(s), not fetch: fetch loads undici, which is most of a short command's start-up.
      ({ status, text } = await send(
        new URL(`${this.url}${path}`),
        method,
        {
          authorization: `Bearer ${this.#token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8'),
        this.#timeoutMs,
      ));
    } catch (err) {
      throw this.#noAnswer(method, path, err);
    }
    if (status === 204) return undefined as T;
    if (status < 200 || status >= 300) {
      const err = errorFromWireText(status, text, `${this.url}${path}`);
      if (status === 503 && err.code === 'unavailable') refusedByReplica.add(err);
      throw err;
    }
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new KillpathError(
        'internal',
        `unexpected answer from ${this.url}${path} (HTTP ${status}, not JSON)`,
      );
    }
  }

  /** A failed try as a person reads it: slow (timeout) is not the same as gone (connection failed). */
  #noAnswer(method: string, path: string, err: unknown): KillpathError {
    if (err instanceof Error && err.name === 'TimeoutError')
      return new KillpathError(
        'unavailable',
        `the control plane at ${this.url} did not answer ${method} ${path.split('?')[0]} within ${this.#timeoutMs / 1000} s; the machine may be overloaded`,
        { cause: err, details: { reason: 'timeout', timeoutMs: this.#timeoutMs } },
      );
    const cause =
      err instanceof Error && err.cause instanceof Error ? err.cause.message : (err as Error).message;
    return new KillpathError('unavailable', `cannot reach the control plane at ${this.url} (${cause})`, {
      cause: err,
      details: { reason: 'unreachable' },
    });
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown, headers?: Record<string, string>): Promise<T> {
    return this.request<T>('POST', path, body, headers);
  }
}

/**
 * One HTTP request; resolves with the status and the whole body as text. The timeout covers the
 * answer's body too (a control plane that sent headers and stalled is slow, not gone): it fails
 * with an error named `TimeoutError`. `node:https` (and TLS) is loaded only for an https URL. A
 * request reset on a reused keep-alive connection before any answer is sent once more on a new
 * connection (the server had closed the idle connection: it never read the request).
 */
function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  payload: Buffer | undefined,
  timeoutMs: number,
  fresh = false,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions = {
      ...(fresh ? { agent: false } : {}),
      method,
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: payload === undefined ? headers : { ...headers, 'content-length': String(payload.length) },
    };
    // getBuiltinModule, not an import: node:http's ESM facade reads every export, and one of
    // them loads undici and node:tls.
    const req =
      url.protocol === 'https:'
        ? process.getBuiltinModule('node:https').request(options)
        : process.getBuiltinModule('node:http').request(options);
    const timer = setTimeout(() => {
      const err = new Error(`no answer within ${timeoutMs} ms`);
      err.name = 'TimeoutError';
      req.destroy(err);
    }, timeoutMs);
    let answered = false;
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      // A kept-alive connection the control plane closed while idle just as this request went
      // out on it: the request was never read. It goes once more, on a connection of its own.
      const code = (err as NodeJS.ErrnoException).code;
      if (!fresh && !answered && req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')) {
        resolve(send(url, method, headers, payload, timeoutMs, true));
        return;
      }
      reject(err);
    };
    req.on('error', fail);
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.end(payload);
  });
}
