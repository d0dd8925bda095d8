import type { StreamMessage } from '@killpath/protocol';
import type { Transport } from './transport.ts';

interface Item {
  msg: StreamMessage | null;
  error: unknown;
  delivered: () => void;
}

/**
 * One stream opened on a {@link FakeTransport}. The test pushes messages; the client reads
 * them. {@link FakeStream.push} resolves once the client has handled the message (it asked for
 * the next one) or dropped the stream, so tests need no sleeps.
 */
export class FakeStream implements AsyncIterable<StreamMessage> {
  /** The URL the client opened. */
  readonly url: string;
  /** The headers the client sent. */
  readonly headers: Record<string, string>;
  /** The client's signal for this stream. */
  readonly signal: AbortSignal;
  private readonly queue: Item[] = [];
  private inHand: Item | null = null;
  private waiter: ((result: IteratorResult<StreamMessage>) => void) | null = null;
  private failWaiter: ((err: unknown) => void) | null = null;
  private ended = false;
  private dropped = false;

  /** @internal Created by {@link FakeTransport.openStream}. */
  constructor(url: string, headers: Record<string, string>, signal: AbortSignal) {
    this.url = url;
    this.headers = headers;
    this.signal = signal;
    signal.addEventListener('abort', () => this.drop(), { once: true });
  }

  /** True once the client dropped this stream (aborted it or stopped reading). */
  get closed(): boolean {
    return this.dropped;
  }

  /**
   * Delivers one message; resolves as soon as the client has handled it (asked for the next
   * one), or, when the client dropped the stream instead, one macrotask turn later, once its
   * reconnect is scheduled.
   */
  push(msg: StreamMessage): Promise<void> {
    return this.enqueue(msg, null);
  }

  /** Makes the client's next read throw `error` (a transport failure or a refusal); resolves one macrotask turn after it is read. */
  fail(error: unknown): Promise<void> {
    return this.enqueue(null, error);
  }

  /** Ends the stream as a server closing it would. */
  end(): void {
    this.ended = true;
    this.flush();
  }

  /** The async iterator the client reads. */
  [Symbol.asyncIterator](): AsyncIterator<StreamMessage> {
    return {
      next: () => {
        this.release();
        const item = this.queue.shift();
        if (item !== undefined) return this.hand(item);
        if (this.dropped || this.ended) return Promise.resolve({ done: true, value: undefined });
        return new Promise<IteratorResult<StreamMessage>>((resolve, reject) => {
          this.waiter = resolve;
          this.failWaiter = reject;
        });
      },
      return: () => {
        this.drop();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private enqueue(msg: StreamMessage | null, error: unknown): Promise<void> {
    if (this.dropped) return Promise.resolve();
    return new Promise<void>((delivered) => {
      this.queue.push({ msg, error, delivered });
      this.flush();
    });
  }

  private hand(item: Item): Promise<IteratorResult<StreamMessage>> {
    if (item.msg === null) {
      // The client handles a failure over several promise turns (drop, backoff): settle after them.
      setImmediate(item.delivered);
      return Promise.reject(item.error);
    }
    this.inHand = item;
    return Promise.resolve({ done: false, value: item.msg });
  }

  /** The client asked for more: the message in hand has been handled. */
  private release(): void {
    this.inHand?.delivered();
    this.inHand = null;
  }

  private flush(): void {
    const waiter = this.waiter;
    const failWaiter = this.failWaiter;
    if (waiter === null || failWaiter === null) return;
    const item = this.queue.shift();
    if (item === undefined && !this.dropped && !this.ended) return;
    this.waiter = null;
    this.failWaiter = null;
    if (item === undefined) {
      waiter({ done: true, value: undefined });
      return;
    }
    this.hand(item).then(waiter, failWaiter);
  }

  private drop(): void {
    if (this.dropped) return;
    this.dropped = true;
    // Dropping runs on over a few promise turns (the loop's cleanup, the backoff timer): settle after them.
    const pending = [...(this.inHand === null ? [] : [this.inHand]), ...this.queue.splice(0)];
    this.inHand = null;
    setImmediate(() => {
      for (const item of pending) item.delivered();
    });
    this.flush();
  }
}

/** One POST seen by a {@link FakeTransport}. */
export interface FakePost {
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/**
 * An in-memory {@link Transport}: records every stream opened and every POST. Streams are
 * driven by the test through {@link FakeStream}; each POST is answered by
 * {@link FakeTransport.onPost}: what it returns (or resolves to) is the answer's body, and a
 * throw or rejection fails the POST (throw a `KillpathError` to play a wire error). See
 * `FakeControlPlane` for a scripted control plane on top of it.
 */
export class FakeTransport implements Transport {
  /** Every stream opened, in order. */
  readonly streams: FakeStream[] = [];
  /** Every POST, in order (failed ones too). */
  readonly posts: FakePost[] = [];
  /**
   * Decides each POST's outcome: the returned value is the body; throw or reject to fail it.
   * Default {@link FakeTransport.accept}: every POST succeeds.
   */
  onPost: (post: FakePost) => unknown = FakeTransport.accept;

  /**
   * Answers `post` as a control plane that takes it: a batch of worker reports
   * (`POST /v1/workers/reports`) with a 204 for each report, anything else with no body.
   */
  static accept(this: void, post: FakePost): unknown {
    if (!post.url.endsWith('/v1/workers/reports')) return undefined;
    return { answers: (post.body as { reports: unknown[] }).reports.map(() => ({ status: 204 })) };
  }
  private taken = 0;
  private waiting: (() => void)[] = [];

  /** Records and returns a new {@link FakeStream}; wakes a pending {@link FakeTransport.nextStream}. */
  openStream(
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): AsyncIterable<StreamMessage> {
    const stream = new FakeStream(url, headers, signal);
    this.streams.push(stream);
    for (const wake of this.waiting.splice(0)) wake();
    return stream;
  }

  /**
   * Records the POST (body deep-copied), then lets {@link FakeTransport.onPost} decide its
   * outcome. A plain value answers one microtask later, like an already-settled request.
   */
  post(url: string, headers: Record<string, string>, body: unknown): Promise<unknown> {
    const post = { url, headers, body: structuredClone(body) };
    this.posts.push(post);
    try {
      return Promise.resolve(this.onPost(post));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The next stream not yet returned by this method, waiting for the client to open it. */
  async nextStream(): Promise<FakeStream> {
    while (this.streams.length <= this.taken) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    const stream = this.streams[this.taken];
    this.taken += 1;
    if (stream === undefined) throw new Error('unreachable');
    return stream;
  }

  /** The POSTs whose URL ends with `suffix` (e.g. `/ack`, `/halted`, `/v1/runs`). */
  postsTo(suffix: string): FakePost[] {
    return this.posts.filter((p) => p.url.endsWith(suffix));
  }

  /**
   * The `kind` reports sent (each `{ workerId, ...body }`), in order, whether a report went on
   * its own route (`POST /v1/workers/{id}/ack` or `/halted`) or in a batch with others
   * (`POST /v1/workers/reports`, whose items also carry `kind`, dropped here).
   */
  reportsOf(kind: 'ack' | 'halted'): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const p of this.posts) {
      const path = new URL(p.url).pathname;
      const alone = /^\/v1\/workers\/([^/]+)\/(ack|halted)$/.exec(path);
      if (alone !== null && alone[2] === kind)
        out.push({ workerId: decodeURIComponent(alone[1] ?? ''), ...(p.body as object) });
      if (path === '/v1/workers/reports')
        for (const { kind: k, ...item } of (p.body as { reports: { kind: string }[] }).reports)
          if (k === kind) out.push(item);
    }
    return out;
  }
}

/**
 * Resolves after pending promise callbacks and three macrotask turns: coalesced acks and
 * deferred halted reports (sent one turn after settling, and settling may itself take a turn)
 * have gone out by then.
 */
export async function drain(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}
