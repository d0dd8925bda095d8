import type { InspectOrder, LauncherOrders, StreamDirective } from '@killpath/protocol';
import type { AgentEgress } from './agent-egress.ts';
import { FreezeControl } from './freeze-control.ts';
import type { AgentHandle, Isolation } from './process-backend.ts';
import type { LauncherVoice } from './voice.ts';

/** Options of {@link OrdersEnforcer}. */
export interface OrdersEnforcerOptions {
  launcherId: string;
  isolation: Isolation;
  /** SIGTERM → SIGKILL grace of a kill, ms. */
  killGraceMs: number;
  /** Where `killpath inspect` evidence is written. */
  evidenceDir: string;
  /** The agent's egress; null until it started (an isolate is then applied once it has). */
  egress: () => AgentEgress | null;
  /** Called when an isolate is lifted (the launcher logs egress refusals afresh). */
  onReleased?: () => void;
  voice: LauncherVoice;
}

/**
 * What the switchboard orders, enforced on the running agent whatever it does:
 * - **kill** (once): the agent's processes end (SIGTERM, SIGKILL after the grace); audited
 *   `process.killed` with the time it took and the processes ended;
 * - **freeze** and its clearing: see {@link FreezeControl};
 * - **isolate**: the egress is cut (`process.isolated`) and restored when the isolate is
 *   cleared (`process.released`), unless a freeze still holds it.
 * Halts are only noted by the launcher (it never restarts a halted or killed agent).
 */
export class OrdersEnforcer {
  /** The agent running now (the last one started); its orders apply to it. */
  child: AgentHandle | null = null;
  readonly #o: OrdersEnforcerOptions;
  readonly #freeze: FreezeControl;
  #killing: Promise<void> | null = null;
  #killedBy: StreamDirective | null = null;
  #isolatedBy: StreamDirective | null = null;
  #isolating: Promise<void> = Promise.resolve();
  #frozenBy: StreamDirective | null = null;

  constructor(opts: OrdersEnforcerOptions) {
    this.#o = opts;
    this.#freeze = new FreezeControl({
      launcherId: opts.launcherId,
      isolation: opts.isolation,
      evidenceDir: opts.evidenceDir,
      egress: opts.egress,
      killing: () => this.#killing !== null,
      isolated: () => this.#isolatedBy !== null,
      voice: opts.voice,
    });
  }

  /** The kill in progress or done (null before one was ordered). */
  get killing(): Promise<void> | null {
    return this.#killing;
  }

  /** The directive that killed the agent, once one did. */
  get killedBy(): StreamDirective | null {
    return this.#killedBy;
  }

  /** The isolate in force, if any. */
  get isolatedBy(): StreamDirective | null {
    return this.#isolatedBy;
  }

  /** Resolves once an isolation or release in progress is done (the first one gates the agent's start). */
  get isolating(): Promise<void> {
    return this.#isolating;
  }

  /** Applies new orders: kill once; freeze and thaw, isolate and release as they come. */
  apply(orders: LauncherOrders): void {
    const o = this.#o;
    if (orders.kill !== null && this.#killing === null && this.child?.alive()) {
      const d = orders.kill;
      const child = this.child;
      this.#killedBy = d;
      o.voice.say('warn', `killing the agent: ${d.level} ${d.scopeText} (${d.id})`, {
        pid: child.pid,
        graceMs: o.killGraceMs,
      });
      this.#killing = child.terminate(o.killGraceMs).then((r) => {
        o.voice.say('warn', `agent ended (${o.isolation})`, {
          pid: child.pid,
          signal: r.signal,
          ms: Math.round(r.ms),
          ended: r.ended,
          survivors: r.survivors,
        });
        o.voice.report([
          {
            type: 'process.killed',
            directiveId: d.id,
            pid: child.pid,
            signal: r.signal,
            ms: r.ms,
            isolation: o.isolation,
            pids: r.ended.slice(0, 1000),
            ...(r.survivors.length > 0 ? { detail: `survivors: ${r.survivors.join(',')}` } : {}),
          },
        ]);
      });
    }
    const fz = orders.freeze ?? null;
    if (fz !== null && this.#frozenBy === null && this.#killing === null && this.child?.alive()) {
      this.#frozenBy = fz;
      this.#freeze.freeze(this.child, fz);
    } else if (fz === null && this.#frozenBy !== null) {
      const was = this.#frozenBy;
      this.#frozenBy = null;
      if (this.child) this.#freeze.thaw(this.child, was);
    }
    const iso = orders.isolate;
    if (o.egress() === null) return; // not started yet: applied right after the egress starts
    if (iso !== null && this.#isolatedBy === null) {
      this.#isolatedBy = iso;
      this.#isolating = this.#isolating.then(() => this.#isolate(iso));
    } else if (iso === null && this.#isolatedBy !== null) {
      const was = this.#isolatedBy;
      this.#isolatedBy = null;
      this.#isolating = this.#isolating.then(() => this.#release(was));
    }
  }

  /** `killpath inspect`: queued behind any freeze or thaw in progress. */
  inspect(order: InspectOrder): void {
    this.#freeze.inspect(() => this.child, order);
  }

  /** Resolves once every isolation, release, freeze, thaw and inspection started is done. */
  async settled(): Promise<void> {
    await this.#isolating.catch(() => {});
    await this.#freeze.settled();
  }

  async #isolate(d: StreamDirective): Promise<void> {
    const started = performance.now();
    const egress = this.#o.egress();
    const cut = (await egress?.cut()) ?? 0;
    const ms = performance.now() - started;
    this.#o.voice.say('warn', `agent isolated: ${d.scopeText} (${d.id})`, {
      cut,
      ms: Math.round(ms * 1000) / 1000,
      netns: egress?.ns?.name ?? null,
    });
    this.#o.voice.report([
      { type: 'process.isolated', directiveId: d.id, pid: this.child?.pid ?? 0, cut, ms },
    ]);
  }

  async #release(d: StreamDirective): Promise<void> {
    // A freeze keeps egress cut until it is thawed.
    if (this.#frozenBy === null) await this.#o.egress()?.restore();
    this.#o.onReleased?.();
    this.#o.voice.say('info', `isolation lifted (${d.id} cleared)`, {});
    this.#o.voice.report([{ type: 'process.released', directiveId: d.id, pid: this.child?.pid ?? 0 }]);
  }
}
