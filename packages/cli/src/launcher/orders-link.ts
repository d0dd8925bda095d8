import {
  KillpathError,
  formatRelease,
  systemClock,
  type Clock,
  type InspectOrder,
  type LauncherOrders,
  type Release,
} from '@killpath/protocol';
import { InspectOrderSchema, LauncherOrdersSchema } from '@killpath/protocol/schemas';
import { ReconnectLoop, sseEvents, type SseEvent } from '@killpath/sdk';
import type { z } from 'zod';

/** Options of {@link OrdersLink}. */
export interface OrdersLinkOptions {
  /** Control plane base URL, or several replicas of one control plane (the link moves to the next one after each failure). */
  url: string | readonly string[];
  /** The agent token of the launched agent's tenant and agent. */
  token: string;
  launcherId: string;
  tenant: string;
  agent: string;
  runId: string | null;
  features: readonly string[];
  /** The release the launched agent runs, or null. */
  release?: Release | null;
  /** Called with every `orders` message (on connect and on each change). */
  onOrders(orders: LauncherOrders): void;
  /** Called with every `inspect` message (an operator asked for a frozen agent's evidence). */
  onInspect?(order: InspectOrder): void;
  /** Connection changes, for the launcher's log. */
  onState?(state: 'connected' | 'disconnected', detail: string): void;
  /** Reconnect if nothing (orders or keep-alive) arrived for this long, in ms. Default 10 000. */
  silenceMs?: number;
  /** Times the reconnect backoff and the silence limit; default the system clock (tests pass a manual one). */
  clock?: Clock;
}

/**
 * The launcher's own stream to the control plane (`GET /v1/launchers/stream`), independent of
 * its agent's: it receives the kill, isolate and halt orders for the launched process whatever
 * the agent does. It runs on the SDK's stream loop (`ReconnectLoop`: reconnects with the SDK's
 * backoff, reset by each connection's first orders; a silent stream is torn down and reopened)
 * and the SDK's SSE reader. Every failure is retried, a refused token too: while disconnected,
 * the last orders stand (a control-plane outage does not kill agents; the agents' own leases
 * make them fail closed).
 */
export class OrdersLink {
  readonly #opts: OrdersLinkOptions;
  readonly #loop: ReconnectLoop<SseEvent>;
  #last: LauncherOrders | null = null;
  #waiters: ((o: LauncherOrders) => void)[] = [];

  /** Index of the replica the next connection goes to. */
  #at = 0;

  constructor(opts: OrdersLinkOptions) {
    this.#opts = opts;
    const streams = (typeof opts.url === 'string' ? [opts.url] : [...opts.url]).map((base) => {
      const u = new URL(`${base.replace(/\/+$/, '')}/v1/launchers/stream`);
      u.searchParams.set('launcher', opts.launcherId);
      u.searchParams.set('tenant', opts.tenant);
      u.searchParams.set('agent', opts.agent);
      if (opts.runId !== null) u.searchParams.set('run', opts.runId);
      if (opts.features.length > 0) u.searchParams.set('features', opts.features.join(','));
      if (opts.release) u.searchParams.set('release', formatRelease(opts.release));
      return u;
    });
    const headers = { authorization: `Bearer ${opts.token}` };
    const disconnected = (err: unknown) => opts.onState?.('disconnected', describe(err));
    let u = streams[0]!;
    this.#loop = new ReconnectLoop<SseEvent>({
      open: (signal) => {
        u = streams[this.#at]!;
        return sseEvents(u.href, headers, signal);
      },
      clock: opts.clock ?? systemClock,
      idleMs: opts.silenceMs ?? 10_000,
      healthy: (e) => e.event === 'orders',
      // A launcher never gives up on its control plane (a revoked token included): it keeps the
      // last orders and keeps asking.
      fatal: () => false,
      hooks: {
        onMessage: (e, fresh) => {
          this.#message(e, fresh, u.origin);
          return 'ok';
        },
        onDrop: () => {},
        onError: (err) => {
          // Lost or refused: the next replica is tried next (the backoff still spaces attempts).
          this.#at = (this.#at + 1) % streams.length;
          disconnected(err);
        },
        onFatal: disconnected,
      },
    });
  }

  /** The last orders received, or `null` before the first. */
  get last(): LauncherOrders | null {
    return this.#last;
  }

  /** Opens the stream (and keeps it open until {@link OrdersLink.close}). */
  start(): void {
    this.#loop.start();
  }

  /** Resolves with the first orders, or rejects after `timeoutMs`. */
  first(timeoutMs: number): Promise<LauncherOrders> {
    if (this.#last !== null) return Promise.resolve(this.#last);
    return new Promise((ok, fail) => {
      const timer = setTimeout(
        () => fail(new Error(`no orders from the control plane within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiters.push((o) => {
        clearTimeout(timer);
        ok(o);
      });
    });
  }

  close(): void {
    void this.#loop.close();
  }

  #message(e: SseEvent, fresh: boolean, origin: string): void {
    const o = this.#opts;
    if (e.event === 'inspect') {
      o.onInspect?.(frame(InspectOrderSchema, e.data));
      return;
    }
    if (e.event !== 'orders') return;
    const orders: LauncherOrders = frame(LauncherOrdersSchema, e.data);
    // The control plane sends the orders first on every connection.
    if (fresh) o.onState?.('connected', origin);
    this.#last = orders;
    for (const w of this.#waiters.splice(0)) w(orders);
    o.onOrders(orders);
  }
}

/**
 * One frame of the launcher stream checked against its schema in `@killpath/protocol/schemas`
 * (the definition the control plane's orders are typed by): a frame that is not the orders it
 * names ends the connection (the loop reconnects and gets the orders afresh), never reaches the
 * enforcement half-read. Fields a newer control plane adds are dropped.
 * @throws KillpathError `invalid_request` naming the first bad field
 */
function frame<T>(schema: { safeParse(x: unknown): z.ZodSafeParseResult<T> }, data: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new KillpathError('invalid_request', 'launcher stream frame is not JSON', { cause: err });
  }
  const checked = schema.safeParse(parsed);
  if (checked.success) return checked.data;
  const issue = checked.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`;
  throw new KillpathError(
    'invalid_request',
    `launcher stream frame is malformed${where}: ${issue?.message ?? 'invalid'}`,
  );
}

/** A stream failure in one line for the launcher's log (a refusal names its code and HTTP status). */
function describe(err: unknown): string {
  if (err instanceof KillpathError) {
    const status = (err.details as { status?: unknown } | undefined)?.status;
    return typeof status === 'number'
      ? `launcher stream refused: ${err.message} (${err.code}, HTTP ${status})`
      : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Sends what the launcher did (`process.*` events) to the control plane's audit log
 * (`POST /v1/launchers/{id}/events?tenant=T`), retrying a few times (each try on the next
 * replica when `url` lists several); never throws.
 */
export async function reportLauncherEvents(
  url: string | readonly string[],
  token: string,
  launcherId: string,
  events: Record<string, unknown>[],
  onError: (message: string) => void,
  tenant?: string,
): Promise<void> {
  // The id lives inside the tenant: an admin token must name it (an agent token's own is used).
  const query = tenant === undefined ? '' : `?tenant=${encodeURIComponent(tenant)}`;
  const bases = (typeof url === 'string' ? [url] : [...url]).map((u) => u.replace(/\/+$/, ''));
  let last = '';
  for (let attempt = 0; attempt < 4; attempt++) {
    // Each try on the next replica (one URL: the same one each time).
    const target = `${bases[attempt % bases.length]!}/v1/launchers/${encodeURIComponent(launcherId)}/events${query}`;
    try {
      const res = await fetch(target, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      if (res.ok) return;
      last = `HTTP ${res.status}`;
      if (res.status < 500) break;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((ok) => setTimeout(ok, 200 * 2 ** attempt));
  }
  onError(`could not report ${events.map((e) => String(e.type)).join(', ')} to the control plane: ${last}`);
}
