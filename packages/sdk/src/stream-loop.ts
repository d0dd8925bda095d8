import type { StreamMessage } from '@killpath/protocol';
import { KillpathError } from '@killpath/protocol';
import { Backoff } from './backoff.ts';
import type { Clock } from './clock.ts';
import { errorCode } from './journal.ts';
import type { Transport } from './transport.ts';

/** What the loop does with what it reads. */
export interface StreamLoopHooks {
  /**
   * Handles one message synchronously. `fresh` is true until this stream delivered a snapshot.
   * Returning `resync` drops the stream and reconnects.
   */
  onMessage(msg: StreamMessage, fresh: boolean): 'ok' | 'resync';
  /** The current stream is gone (ended, failed, dropped, or closed). */
  onDrop(): void;
  /** The stream failed or ended; the loop retries in `retryInMs`. */
  onError(err: unknown, retryInMs: number): void;
  /** The stream was refused for good (401/403); the loop has stopped. */
  onFatal(err: unknown): void;
}

/** Stream refusals that retrying cannot fix: the token is wrong or lacks the right. */
const FATAL = new Set(['unauthenticated', 'forbidden']);

/**
 * Keeps one push stream open: reads it, and on an error, an end or a resync request reconnects
 * after an exponential backoff (100 ms doubling to 5 s, ±20 %), reset by each snapshot. One
 * `AbortController` per connection, aborted when the connection is dropped, and when nothing
 * (not even a keep-alive) arrived for `idleMs`: a connection that hangs (a request answered by
 * nobody, a half-open socket after the control plane went away) is dropped and retried rather
 * than waited on forever.
 */
export class StreamLoop {
  private readonly transport: Transport;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly clock: Clock;
  private readonly hooks: StreamLoopHooks;
  private readonly backoff = new Backoff();
  private closed = false;
  private current: AbortController | null = null;
  private sleeping: { handle: unknown; wake: () => void } | null = null;
  private done: Promise<void> = Promise.resolve();
  private readonly idleMs: number;

  constructor(
    transport: Transport,
    url: string,
    headers: Record<string, string>,
    clock: Clock,
    hooks: StreamLoopHooks,
    idleMs = Number.POSITIVE_INFINITY,
  ) {
    this.idleMs = idleMs;
    this.transport = transport;
    this.url = url;
    this.headers = headers;
    this.clock = clock;
    this.hooks = hooks;
  }

  /** Starts the loop (once). */
  start(): void {
    this.done = this.run().catch((err: unknown) => {
      // Only a throwing hook gets here; the loop is gone, so report it as fatal.
      this.closed = true;
      try {
        this.hooks.onFatal(err);
      } catch {
        // Nothing left to tell.
      }
    });
  }

  /** Stops the loop and drops the stream; resolves when the loop has exited. */
  async close(): Promise<void> {
    this.closed = true;
    this.current?.abort();
    const sleeping = this.sleeping;
    if (sleeping !== null) {
      this.clock.clearTimeout(sleeping.handle);
      sleeping.wake();
    }
    await this.done;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const controller = new AbortController();
      this.current = controller;
      let failure: unknown = null;
      let idle: unknown = null;
      const arm = (): void => {
        if (!Number.isFinite(this.idleMs)) return;
        if (idle !== null) this.clock.clearTimeout(idle);
        idle = this.clock.setTimeout(
          () => controller.abort(new KillpathError('unavailable', `stream silent for ${this.idleMs} ms`)),
          this.idleMs,
        );
      };
      arm();
      try {
        let fresh = true;
        let resync = false;
        for await (const msg of this.transport.openStream(this.url, this.headers, controller.signal)) {
          arm();
          if (this.closed) break;
          if (this.hooks.onMessage(msg, fresh) === 'resync') {
            resync = true;
            break;
          }
          if (msg.type === 'snapshot') {
            fresh = false;
            this.backoff.reset();
          }
        }
        if (!resync) failure = new Error('stream ended by the control plane');
      } catch (err) {
        failure = err;
      } finally {
        if (idle !== null) this.clock.clearTimeout(idle);
        // A silent stream's abort reason is the failure to report (fetch may throw a bare AbortError).
        if (
          controller.signal.aborted &&
          failure !== null &&
          !this.closed &&
          controller.signal.reason instanceof KillpathError
        )
          failure = controller.signal.reason;
        controller.abort();
        this.current = null;
        this.hooks.onDrop();
      }
      if (this.closed) return;
      if (failure !== null && FATAL.has(errorCode(failure) ?? '')) {
        this.closed = true;
        this.hooks.onFatal(failure);
        return;
      }
      const delay = this.backoff.next();
      if (failure !== null) this.hooks.onError(failure, delay);
      await this.sleep(delay);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleeping = null;
        resolve();
      };
      this.sleeping = { handle: this.clock.setTimeout(wake, ms), wake };
    });
  }
}
