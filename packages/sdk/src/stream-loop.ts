import type { StreamMessage } from '@killpath/protocol';
import { KillpathError } from '@killpath/protocol';
import { Backoff } from './backoff.ts';
import type { Clock } from './clock.ts';
import { errorCode } from './journal.ts';
import type { Transport } from './transport.ts';

/** What the loop does with what it reads (`M`: the stream's messages, the switchboard's by default). */
export interface StreamLoopHooks<M = StreamMessage> {
  /**
   * Handles one message synchronously. `fresh` is true until this stream delivered a healthy
   * message (a snapshot, for the switchboard's stream). Returning `resync` drops the stream and
   * reconnects.
   */
  onMessage(msg: M, fresh: boolean): 'ok' | 'resync';
  /** The current stream is gone (ended, failed, dropped, or closed). */
  onDrop(): void;
  /** The stream failed or ended; the loop retries in `retryInMs`. */
  onError(err: unknown, retryInMs: number): void;
  /** The stream was refused for good (401/403); the loop has stopped. */
  onFatal(err: unknown): void;
}

/** Stream refusals that retrying cannot fix: the token is wrong or lacks the right. */
const FATAL = new Set(['unauthenticated', 'forbidden']);

/** Options of a {@link ReconnectLoop}. */
export interface ReconnectLoopOptions<M> {
  /** Opens one connection and yields its messages; aborting `signal` must end the iteration promptly. */
  open(signal: AbortSignal): AsyncIterable<M>;
  /** Times the backoff and the idle limit. */
  clock: Clock;
  hooks: StreamLoopHooks<M>;
  /** Drop a connection on which nothing arrived for this long, in ms. Default: never. */
  idleMs?: number;
  /** A message that proves the connection healthy: it resets the backoff. Default: none does. */
  healthy?(msg: M): boolean;
  /**
   * A failure retrying cannot fix: the loop stops and calls `onFatal`. Default: a refusal coded
   * `unauthenticated` or `forbidden`.
   */
  fatal?(err: unknown): boolean;
}

/**
 * Keeps one stream open: reads it, and on an error, an end or a resync request reconnects
 * after an exponential backoff (100 ms doubling to 5 s, ±20 %), reset by each healthy message.
 * One `AbortController` per connection, aborted when the connection is dropped, and when nothing
 * (not even a keep-alive) arrived for `idleMs`: a connection that hangs (a request answered by
 * nobody, a half-open socket after the control plane went away) is dropped and retried rather
 * than waited on forever. The SDK's switchboard stream ({@link StreamLoop}) and the launcher's
 * orders link both run on it.
 */
export class ReconnectLoop<M> {
  private readonly open: (signal: AbortSignal) => AsyncIterable<M>;
  private readonly clock: Clock;
  private readonly hooks: StreamLoopHooks<M>;
  private readonly backoff = new Backoff();
  private readonly healthy: (msg: M) => boolean;
  private readonly fatal: (err: unknown) => boolean;
  private closed = false;
  private current: AbortController | null = null;
  private sleeping: { handle: unknown; wake: () => void } | null = null;
  private done: Promise<void> = Promise.resolve();
  private readonly idleMs: number;

  constructor(options: ReconnectLoopOptions<M>) {
    this.open = options.open;
    this.clock = options.clock;
    this.hooks = options.hooks;
    this.idleMs = options.idleMs ?? Number.POSITIVE_INFINITY;
    this.healthy = options.healthy ?? (() => false);
    this.fatal = options.fatal ?? ((err) => FATAL.has(errorCode(err) ?? ''));
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
        for await (const msg of this.open(controller.signal)) {
          arm();
          if (this.closed) break;
          if (this.hooks.onMessage(msg, fresh) === 'resync') {
            resync = true;
            break;
          }
          if (this.healthy(msg)) {
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
      if (failure !== null && this.fatal(failure)) {
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

/**
 * The SDK's switchboard stream: a {@link ReconnectLoop} over `transport.openStream(url)`, whose
 * snapshots are the healthy messages (each resets the backoff and ends `fresh`).
 */
export class StreamLoop extends ReconnectLoop<StreamMessage> {
  constructor(
    transport: Transport,
    url: string,
    headers: Record<string, string>,
    clock: Clock,
    hooks: StreamLoopHooks,
    idleMs = Number.POSITIVE_INFINITY,
  ) {
    super({
      open: (signal) => transport.openStream(url, headers, signal),
      clock,
      hooks,
      idleMs,
      healthy: (msg) => msg.type === 'snapshot',
    });
  }
}
