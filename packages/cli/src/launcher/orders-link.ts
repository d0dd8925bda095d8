import { createParser } from 'eventsource-parser';
import {
  KillpathError,
  errorFromWireText,
  formatRelease,
  type InspectOrder,
  type LauncherOrders,
  type Release,
} from '@killpath/protocol';

/** Options of {@link OrdersLink}. */
export interface OrdersLinkOptions {
  /** Control plane base URL. */
  url: string;
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
}

const BACKOFF_MS = [100, 250, 500, 1000, 2000, 5000];

/**
 * The launcher's own stream to the control plane (`GET /v1/launchers/stream`), independent of
 * its agent's: it receives the kill, isolate and halt orders for the launched process whatever
 * the agent does. Reconnects with backoff; a silent stream is torn down and reopened. While
 * disconnected, the last orders stand (a control-plane outage does not kill agents; the agents'
 * own leases make them fail closed).
 */
export class OrdersLink {
  readonly #opts: OrdersLinkOptions;
  #abort: AbortController | null = null;
  #closed = false;
  #last: LauncherOrders | null = null;
  #waiters: ((o: LauncherOrders) => void)[] = [];
  #attempt = 0;

  constructor(opts: OrdersLinkOptions) {
    this.#opts = opts;
  }

  /** The last orders received, or `null` before the first. */
  get last(): LauncherOrders | null {
    return this.#last;
  }

  /** Opens the stream (and keeps it open until {@link OrdersLink.close}). */
  start(): void {
    void this.#loop();
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
    this.#closed = true;
    this.#abort?.abort();
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      try {
        await this.#once();
      } catch (err) {
        if (this.#closed) return;
        this.#opts.onState?.('disconnected', err instanceof Error ? err.message : String(err));
      }
      if (this.#closed) return;
      const wait = BACKOFF_MS[Math.min(this.#attempt++, BACKOFF_MS.length - 1)]!;
      await new Promise((ok) => setTimeout(ok, wait));
    }
  }

  async #once(): Promise<void> {
    const o = this.#opts;
    const u = new URL(`${o.url.replace(/\/+$/, '')}/v1/launchers/stream`);
    u.searchParams.set('launcher', o.launcherId);
    u.searchParams.set('tenant', o.tenant);
    u.searchParams.set('agent', o.agent);
    if (o.runId !== null) u.searchParams.set('run', o.runId);
    if (o.features.length > 0) u.searchParams.set('features', o.features.join(','));
    if (o.release) u.searchParams.set('release', formatRelease(o.release));
    const abort = new AbortController();
    this.#abort = abort;
    const res = await fetch(u, {
      headers: { authorization: `Bearer ${o.token}`, accept: 'text/event-stream' },
      signal: abort.signal,
    });
    if (!res.ok || res.body === null) {
      const err = errorFromWireText(res.status, await res.text().catch(() => ''), u.origin);
      throw new KillpathError(
        err.code,
        `launcher stream refused: ${err.message} (${err.code}, HTTP ${res.status})`,
        { details: err.details },
      );
    }
    this.#attempt = 0;
    o.onState?.('connected', u.origin);
    const silenceMs = o.silenceMs ?? 10_000;
    let silence = setTimeout(() => abort.abort(), silenceMs);
    const parser = createParser({
      onEvent: (event) => {
        clearTimeout(silence);
        silence = setTimeout(() => abort.abort(), silenceMs);
        if (event.event === 'inspect') {
          o.onInspect?.(JSON.parse(event.data) as InspectOrder);
          return;
        }
        if (event.event !== 'orders') return;
        const orders = JSON.parse(event.data) as LauncherOrders;
        this.#last = orders;
        for (const w of this.#waiters.splice(0)) w(orders);
        o.onOrders(orders);
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
      throw new Error('launcher stream ended');
    } finally {
      clearTimeout(silence);
    }
  }
}

/**
 * Sends what the launcher did (`process.*` events) to the control plane's audit log
 * (`POST /v1/launchers/{id}/events?tenant=T`), retrying a few times; never throws.
 */
export async function reportLauncherEvents(
  url: string,
  token: string,
  launcherId: string,
  events: Record<string, unknown>[],
  onError: (message: string) => void,
  tenant?: string,
): Promise<void> {
  // The id lives inside the tenant: an admin token must name it (an agent token's own is used).
  const query = tenant === undefined ? '' : `?tenant=${encodeURIComponent(tenant)}`;
  const target = `${url.replace(/\/+$/, '')}/v1/launchers/${encodeURIComponent(launcherId)}/events${query}`;
  let last = '';
  for (let attempt = 0; attempt < 4; attempt++) {
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
