import { KillpathError, isWireError, type ErrorCode } from '@killpath/protocol';

/** A small client for the control plane's HTTP API, used by the CLI, demo and drills. */
export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.url = url.replace(/\/+$/, '');
    this.#token = token;
  }

  /**
   * Sends a request and returns the parsed JSON body (undefined for 204).
   * @throws KillpathError with the wire error's code, or `unavailable` when the server cannot be reached.
   */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
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
