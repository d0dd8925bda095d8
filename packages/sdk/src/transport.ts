import type { StreamMessage } from '@killpath/protocol';

/**
 * How the SDK talks to the control plane: one long-lived stream in, small JSON reports out.
 * The default is {@link fetchTransport}; tests use `FakeTransport` from `@killpath/sdk/testing`.
 */
export interface Transport {
  /**
   * Opens the push stream and yields its messages in order. Iteration ends when the server
   * closes the stream and throws on a transport error; a refused request throws a
   * `KillpathError` carrying the wire error's code (`unauthenticated`, `forbidden`, …).
   * Aborting `signal` must end the iteration promptly.
   */
  openStream(url: string, headers: Record<string, string>, signal: AbortSignal): AsyncIterable<StreamMessage>;
  /**
   * POSTs `body` as JSON. Resolves on a 2xx answer with its parsed JSON body (`undefined` when
   * the answer has none, e.g. 204); otherwise rejects with a `KillpathError` carrying the wire
   * error's code. A network failure rejects with whatever the network layer threw.
   */
  post(url: string, headers: Record<string, string>, body: unknown): Promise<unknown>;
}
