import { KillpathError } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { Logger } from './connect-options.ts';

/** How often a lasting outage is logged again, in ms. */
export const OUTAGE_LOG_EVERY_MS = 60_000;

/**
 * The client's first contact and the outages after it, as a human sees them. Owns
 * {@link Client.ready}: while it is pending the process is held open (`clock.hold`), so an
 * agent awaiting it at top level keeps retrying instead of being ended by Node; it resolves on
 * the first snapshot, rejects on a refusal, on close, or after `timeoutMs`. Each outage (before
 * the first snapshot or after contact was lost) is logged once, then once a minute while it lasts.
 * Internal.
 */
export class Readiness {
  /** Resolves on the first snapshot; see {@link Client.ready}. */
  readonly promise: Promise<void>;
  private settle: ((err: Error | null) => void) | null;
  private release: (() => void) | null;
  private timer: unknown = null;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly url: string;
  /** When the current outage began (clock ms) and when it was last logged; null while in contact. */
  private outage: { since: number; loggedAt: number | null } | null = null;
  private lastError: unknown = null;

  constructor(clock: Clock, logger: Logger, url: string, timeoutMs: number | null) {
    this.clock = clock;
    this.logger = logger;
    this.url = url;
    let settle: (err: Error | null) => void = () => {};
    this.promise = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === null ? resolve() : reject(err));
    });
    // Mark handled: a caller that never awaits `ready` must not crash the process on a refusal.
    this.promise.catch(() => {});
    this.settle = settle;
    this.release = clock.hold?.() ?? null;
    if (timeoutMs !== null) {
      this.timer = clock.setTimeout(() => {
        this.timer = null;
        const last = this.lastError === null ? 'no answer yet' : describe(this.lastError);
        this.fail(
          new KillpathError(
            'unavailable',
            `control plane at ${url} not reached within readyTimeoutMs (${timeoutMs} ms): ${last}`,
            { cause: this.lastError ?? undefined },
          ),
        );
      }, timeoutMs);
    }
  }

  /** True until the first snapshot, a refusal, the timeout or close. */
  get pending(): boolean {
    return this.settle !== null;
  }

  /** A snapshot was applied: ready resolves (once), and any outage is over. */
  connected(): void {
    this.outage = null;
    this.lastError = null;
    this.done(null);
  }

  /** Ready rejects with `err` (once); the hold and the timer go. */
  fail(err: Error): void {
    this.done(err);
  }

  /** A connection attempt failed and will be retried: logged once per outage, then once a minute. */
  unreachable(err: unknown): void {
    this.lastError = err;
    const now = this.clock.now();
    if (this.outage === null) this.outage = { since: now, loggedAt: null };
    const o = this.outage;
    if (o.loggedAt !== null && now - o.loggedAt < OUTAGE_LOG_EVERY_MS) return;
    const line =
      o.loggedAt === null
        ? `control plane unreachable at ${this.url}, retrying (${describe(err)})`
        : `control plane still unreachable at ${this.url} after ${Math.round((now - o.since) / 1000)} s, retrying (${describe(err)})`;
    o.loggedAt = now;
    try {
      this.logger.warn(line);
    } catch {
      // A failing logger must never break the client.
    }
  }

  private done(err: Error | null): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.release?.();
    this.release = null;
    const settle = this.settle;
    this.settle = null;
    settle?.(err);
  }
}

/**
 * An error's message with the cause a transport hides behind it: undici's `fetch failed` says
 * nothing, its cause (`connect ECONNREFUSED 127.0.0.1:7070`) says what a human needs.
 */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (cause instanceof Error && cause.message !== '' && !err.message.includes(cause.message))
    return `${err.message}: ${cause.message}`;
  return err.message;
}
