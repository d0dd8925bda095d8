import {
  ordersFor,
  streamDirective,
  type Directive,
  type InspectOrder,
  type LauncherOrders,
  type Release,
  type RunIdentity,
} from '@killpath/protocol';
import type { LauncherKey } from './fleet.ts';

/** One connected launcher (`killpath run`), as the hub sees it. */
export interface LauncherSink {
  readonly launcherId: string;
  readonly tenant: string;
  readonly agent: string;
  /** The run it was started for (`--run`), or `null`. */
  readonly runId: string | null;
  readonly features: readonly string[];
  /** The token the stream was opened with: a revocation closes it. */
  readonly tokenId?: string;
  /** When that token expires, in ms since the epoch (null: never): the stream is closed then. */
  readonly expiresAt?: number | null;
  /** The release it passes to its agent (`--release`), or `null`. */
  readonly release?: Release | null;
  /** Writes raw SSE text; returns false when the connection is backlogged. */
  write(text: string): boolean;
  close(): void;
}

function frame(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Tells each launcher what to enforce on the agent process it started. A launcher is covered by
 * a run-wide (not capability-narrowed) directive when the directive covers the launcher's own
 * identity (tenant, agent, `--run`, features, `--release`) or any run its agent's workers report (so
 * `run:R` reaches the launcher whose agent hosts R or one of R's ancestors' descendants). Orders
 * are recomputed on every switchboard change and on every heartbeat of a launched worker, and
 * sent only when they change; a launcher gets its current orders when it connects.
 */
export class LauncherHub {
  readonly #sinks = new Map<LauncherSink, string>();
  readonly #timer: NodeJS.Timeout;
  readonly #runsOf: (l: LauncherKey) => RunIdentity[];
  readonly #now: () => number;
  #rev = 0;

  /**
   * @param runsOf runs reported by the workers this launcher started (from the fleet)
   * @param now wall clock in ms (default `Date.now`): streams whose token expired are closed on the next keep-alive
   */
  constructor(keepaliveMs: number, runsOf: (l: LauncherKey) => RunIdentity[], now: () => number = Date.now) {
    this.#runsOf = runsOf;
    this.#now = now;
    this.#timer = setInterval(() => {
      this.closeExpired();
      const text = frame('keepalive', { type: 'keepalive', rev: this.#rev });
      for (const sink of this.#sinks.keys()) if (!sink.write(text)) this.detach(sink);
    }, keepaliveMs);
    this.#timer.unref();
  }

  /** Connected launchers. */
  get size(): number {
    return this.#sinks.size;
  }

  /** Ids of the connected launchers. */
  ids(): string[] {
    return [...this.#sinks.keys()].map((s) => s.launcherId);
  }

  /**
   * The connected launchers a run-wide stop `d` reaches (their own identity or a run their agent's
   * workers report): each must see its agent acknowledge `d`, registered with the SDK or not.
   */
  reachedBy(d: Directive): LauncherKey[] {
    const out: LauncherKey[] = [];
    for (const sink of this.#sinks.keys()) {
      const o = this.orders(sink, d.rev, [d]);
      if (o.halt ?? o.kill ?? o.freeze ?? null)
        out.push({ tenant: sink.tenant, agent: sink.agent, launcherId: sink.launcherId });
    }
    return out;
  }

  attach(sink: LauncherSink, rev: number, active: readonly Directive[]): void {
    this.#sinks.set(sink, '');
    this.#send(sink, rev, active, true);
  }

  detach(sink: LauncherSink): void {
    this.#sinks.delete(sink);
  }

  /** Closes every launcher stream opened with `tokenId` (a revoked token); returns how many. */
  closeToken(tokenId: string): number {
    return this.#closeWhere((s) => s.tokenId === tokenId);
  }

  /** Closes every launcher stream whose token has expired at `now` (ms); returns how many. */
  closeExpired(now: number = this.#now()): number {
    return this.#closeWhere((s) => s.expiresAt !== undefined && s.expiresAt !== null && now >= s.expiresAt);
  }

  #closeWhere(pred: (s: LauncherSink) => boolean): number {
    let n = 0;
    for (const sink of [...this.#sinks.keys()]) {
      if (!pred(sink)) continue;
      this.detach(sink);
      sink.close();
      n++;
    }
    return n;
  }

  /** Recomputes every launcher's orders (after a switchboard change), or only `only`'s. */
  reconcile(rev: number, active: readonly Directive[], only?: LauncherKey): void {
    this.#rev = Math.max(this.#rev, rev);
    for (const sink of this.#sinks.keys()) {
      if (
        only === undefined ||
        (sink.launcherId === only.launcherId && sink.tenant === only.tenant && sink.agent === only.agent)
      )
        this.#send(sink, rev, active, false);
    }
  }

  /** The orders `sink` should enforce now. */
  orders(
    sink: Pick<LauncherSink, 'launcherId' | 'tenant' | 'agent' | 'runId' | 'features' | 'release'>,
    rev: number,
    active: readonly Directive[],
  ): LauncherOrders {
    const own: RunIdentity = {
      tenant: sink.tenant,
      agent: sink.agent,
      // Without --run, the launcher's own identity must not match any run scope.
      runId: sink.runId ?? `launcher:${sink.launcherId}`,
      lineage: [],
      features: [...sink.features],
      release: sink.release ?? null,
    };
    const runs = [own, ...this.#runsOf(sink)];
    const o = ordersFor(active, runs);
    const order = (d: Directive | null) => (d === null ? null : streamDirective(d));
    return {
      type: 'orders',
      rev,
      kill: order(o.kill),
      isolate: order(o.isolate),
      halt: order(o.halt),
      freeze: order(o.freeze),
    };
  }

  /**
   * Sends `order` to every connected launcher of `tenant` whose agent hosts `runId` (its own
   * `--run` or a run its workers report) and which is ordered to freeze now; returns their ids.
   */
  inspect(
    tenant: string,
    runId: string,
    rev: number,
    active: readonly Directive[],
    order: InspectOrder,
  ): string[] {
    const reached: string[] = [];
    for (const sink of [...this.#sinks.keys()]) {
      if (sink.tenant !== tenant) continue;
      const hosts = sink.runId === runId || this.#runsOf(sink).some((r) => r.runId === runId);
      if (!hosts || !this.orders(sink, rev, active).freeze) continue;
      if (sink.write(frame('inspect', order))) reached.push(sink.launcherId);
      else this.detach(sink);
    }
    return reached;
  }

  /** Closes every launcher stream (they reconnect, here or to another replica); keep-alives go on for later ones. */
  dropAll(): void {
    const sinks = [...this.#sinks.keys()];
    this.#sinks.clear();
    for (const sink of sinks) sink.close();
  }

  close(): void {
    clearInterval(this.#timer);
    for (const sink of this.#sinks.keys()) sink.close();
    this.#sinks.clear();
  }

  #send(sink: LauncherSink, rev: number, active: readonly Directive[], always: boolean): void {
    const o = this.orders(sink, rev, active);
    const key = `${o.kill?.id ?? ''}|${o.isolate?.id ?? ''}|${o.halt?.id ?? ''}|${o.freeze?.id ?? ''}`;
    if (!always && this.#sinks.get(sink) === key) return;
    this.#sinks.set(sink, key);
    if (!sink.write(frame('orders', o))) this.detach(sink);
  }
}
