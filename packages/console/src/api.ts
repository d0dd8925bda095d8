import { errorFromWireText } from '@killpath/protocol';

/**
 * The console's client of the control plane's API: same origin, the operator's token as a
 * Bearer header, every failure as an {@link ApiError} with the wire error's code.
 */

/** A failed API call: the wire error's code and message, or `unreachable` (status 0) when no answer came. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details: unknown = null) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The part of `fetch` the client needs (a seam for tests). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{
  ok: boolean;
  status: number;
  text(): Promise<string>;
}>;

/** How long one API call may take before it counts as unreachable, in ms. */
export const REQUEST_TIMEOUT_MS = 5000;

/** Calls the API with one token. */
export class Api {
  readonly #token: string;
  readonly #fetch: FetchLike;
  readonly #base: string;

  constructor(token: string, fetchImpl: FetchLike, base = '') {
    this.#token = token;
    this.#fetch = fetchImpl;
    this.#base = base;
  }

  /** Sends a request and returns the parsed JSON (undefined for an empty answer). */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await this.#fetch(`${this.#base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new ApiError(
        0,
        'unreachable',
        `cannot reach the control plane (${err instanceof Error ? err.message : String(err)})`,
      );
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      // The protocol's one mapping of a refusal; an ApiError keeps the status beside it.
      const err = errorFromWireText(res.status, text, 'the control plane');
      throw new ApiError(res.status, err.code, err.message, err.details ?? null);
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'bad_answer', `unexpected answer (HTTP ${res.status}, not JSON)`);
    }
    return json as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
}

/** True when the error means the token is no good (revoked, expired, mistyped). */
export function isUnauthorized(err: unknown): boolean {
  return err instanceof ApiError && err.status === 401;
}
