import { KillpathError } from '@killpath/protocol';
import type { StreamMessage } from '@killpath/protocol';
import type { Transport } from './transport.ts';

/**
 * Error codes of a network layer meaning the request never left this machine or was never
 * accepted by a server: sending it to another replica cannot make it happen twice.
 */
const NEVER_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * True when `err` proves the request was not processed by the replica it went to, so it may go
 * to another one as is: the connection was never made (refused, no route, no such host), or
 * the replica answered 503 `unavailable` (it cannot vouch for its switchboard and refused the
 * request). A reset or a timeout mid-request proves nothing and is not in this set.
 */
export function neverProcessed(err: unknown): boolean {
  if (err instanceof KillpathError) {
    const status = (err.details as { status?: unknown } | undefined)?.status;
    return err.code === 'unavailable' && status === 503;
  }
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NEVER_SENT.has(code)) return true;
    // Several addresses tried (happy eyeballs): every one refused.
    if (e instanceof AggregateError && e.errors.length > 0 && e.errors.every((x) => neverProcessed(x)))
      return true;
  }
  return false;
}

/** 32-bit FNV-1a of a string: where a worker starts in the list of replicas. */
export function spread(key: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % n;
}

/**
 * A {@link Transport} over several control-plane replicas that share one store. Requests are
 * addressed to the first URL (`bases[0]`, the deployment as one logical control plane); each is
 * sent to a replica chosen here, the URL's base swapped.
 *
 * The stream holds one replica at a time: it starts at `bases[start]` (the client hashes its
 * worker id, so a fleet spreads over the list), stays there while it works, and after a failure
 * (a connection that could not be made or was lost, a refusal such as 503 `unavailable`, an end)
 * moves to the next replica in the list that has not failed since its last success, or, when
 * every one has, to the one whose failure is oldest. A success (the stream's first message)
 * clears that replica's mark. The caller's reconnect backoff spaces the attempts, so a fleet
 * whose replicas are all down never spins.
 *
 * Reports and permit requests go to the replica the stream is on (the one that vouches for the
 * worker's mirror), else to the next in the same order; a request moves on to another replica
 * only when the one it went to provably never processed it ({@link neverProcessed}), so a
 * request without an idempotency key is never sent twice.
 */
export class Replicas implements Transport {
  /** The base URLs, without trailing slashes, in the order given. */
  readonly bases: readonly string[];
  private readonly inner: Transport;
  private currentIndex: number;
  /** Per replica: when it last failed (a counter, not a clock: only the order matters), or 0. */
  private readonly failedAt: number[];
  private failures = 0;

  /**
   * @param inner the transport that does the I/O
   * @param bases two or more base URLs without trailing slashes
   * @param start index of the replica to try first
   */
  constructor(inner: Transport, bases: readonly string[], start = 0) {
    if (bases.length === 0) throw new KillpathError('invalid_request', 'no control plane url');
    this.inner = inner;
    this.bases = Object.freeze([...bases]);
    this.currentIndex = ((start % bases.length) + bases.length) % bases.length;
    this.failedAt = bases.map(() => 0);
  }

  /** The replica the stream is on, or will try next. */
  get current(): string {
    return this.bases[this.currentIndex]!;
  }

  /** Replica indexes in the order to try: not failed first (the current one, then the list onwards), then failed, oldest failure first. */
  order(): number[] {
    const n = this.bases.length;
    const rotation = Array.from({ length: n }, (_, i) => (this.currentIndex + i) % n);
    const ok = rotation.filter((i) => this.failedAt[i] === 0);
    const failed = rotation
      .filter((i) => this.failedAt[i] !== 0)
      .sort((a, b) => this.failedAt[a]! - this.failedAt[b]!);
    return [...ok, ...failed];
  }

  /** Marks a replica failed (it is tried last until it answers again). */
  failed(base: string): void {
    const i = this.bases.indexOf(base);
    if (i >= 0) this.failedAt[i] = ++this.failures;
  }

  /** Clears a replica's failure mark. */
  succeeded(base: string): void {
    const i = this.bases.indexOf(base);
    if (i >= 0) this.failedAt[i] = 0;
  }

  openStream(
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): AsyncIterable<StreamMessage> {
    const index = this.order()[0]!;
    this.currentIndex = index;
    const base = this.bases[index]!;
    const messages = this.inner.openStream(this.on(url, base), headers, signal);
    return this.watched(messages, base, signal);
  }

  private async *watched(
    messages: AsyncIterable<StreamMessage>,
    base: string,
    signal: AbortSignal,
  ): AsyncGenerator<StreamMessage> {
    let first = true;
    try {
      for await (const msg of messages) {
        if (first) {
          first = false;
          this.succeeded(base);
        }
        yield msg;
      }
      // Ended by the replica (shutting down, restarting): another one is tried first.
      this.failed(base);
    } catch (err) {
      // Dropped by the client itself (a resync, a silent stream aborted by the caller's idle
      // timer): only a silence counts against the replica.
      if (!signal.aborted || signal.reason instanceof KillpathError) this.failed(base);
      throw err;
    }
  }

  async post(url: string, headers: Record<string, string>, body: unknown): Promise<unknown> {
    let last: unknown = null;
    for (const index of this.order()) {
      const base = this.bases[index]!;
      try {
        return await this.inner.post(this.on(url, base), headers, body);
      } catch (err) {
        if (!neverProcessed(err)) throw err;
        this.failed(base);
        last = err;
      }
    }
    throw last;
  }

  /** `url` (addressed to `bases[0]`) sent to `base` instead. */
  private on(url: string, base: string): string {
    const primary = this.bases[0]!;
    return url.startsWith(primary) ? base + url.slice(primary.length) : url;
  }
}
