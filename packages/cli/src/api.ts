import { KillpathError, isWireError, type ErrorCode } from '@killpath/protocol';

/** How often a request shed under overload is sent again before its 429 is reported. */
export const SHED_RETRIES = 5;
/** The longest wait between two tries of a shed request, ms (whatever Retry-After says). */
const MAX_SHED_WAIT_MS = 10_000;

/** A small client for the control plane's HTTP API, used by the CLI, demo and drills. */
export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.url = url.replace(/\/+$/, '');
    this.#token = token;
  }

  /**
   * Sends a request and returns the parsed JSON body (undefined for 204). A request the control
   * plane shed under overload (429 `overloaded`: it was not processed at all) is sent again after
   * the wait it asked for, up to {@link SHED_RETRIES} times.
   * @throws KillpathError with the wire error's code, or `unavailable` when the server cannot be reached.
   */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once<T>(method, path, body, headers);
      } catch (err) {
        if (!(err instanceof KillpathError) || err.code !== 'overloaded' || attempt > SHED_RETRIES) throw err;
        const asked = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
        const wait = typeof asked === 'number' && asked >= 0 ? Math.min(asked, MAX_SHED_WAIT_MS) : 1000;
        await new Promise((ok) => setTimeout(ok, wait));
      }
    }
  }

  async #once<T>(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new KillpathError(
        'unavailable',
        `cannot reach the control plane at ${this.url} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message})`,
        { cause: err },
      );
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new KillpathError(
        'internal',
        `unexpected answer from ${this.url}${path} (HTTP ${res.status}, not JSON)`,
      );
    }
    if (!res.ok) {
      if (isWireError(json))
        throw new KillpathError(json.error.code as ErrorCode, json.error.message, {
          details: json.error.details,
        });
      throw new KillpathError('internal', `HTTP ${res.status} from ${path}`);
    }
    return json as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown, headers?: Record<string, string>): Promise<T> {
    return this.request<T>('POST', path, body, headers);
  }
}
