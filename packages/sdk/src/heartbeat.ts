import { isCapability } from '@killpath/protocol';
import type { HeartbeatReport, RunLimits } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { SdkEvent } from './journal.ts';
import type { Reporter } from './reporter.ts';
import { asWorkerSettings, stricter } from './telemetry.ts';

/** What the heartbeat needs from its client. */
export interface HeartbeatHost {
  readonly clock: Clock;
  readonly reporter: Reporter;
  record(event: SdkEvent): void;
  /** What this worker reports now (runs, rev, surface…). */
  report(): HeartbeatReport;
  /** True once the client is closing: nothing more is sent or applied. */
  closed(): boolean;
}

/**
 * The worker's heartbeat (`POST /v1/workers/{id}/heartbeat` every period, retrying failed
 * reports) and the settings the control plane answers it with: the period and the run limits in
 * force are the stricter of the connect options and the answer. Internal.
 */
export class Heartbeat {
  /** The heartbeat period in force, ms. */
  private periodMs: number;
  private readonly ownPeriodMs: number;
  /** The run limits in force (the stricter of the connect option and the control plane's). */
  private limitsNow: RunLimits;
  private readonly ownLimits: RunLimits;
  private timer: unknown = null;
  private sentFirst = false;
  private readonly host: HeartbeatHost;

  constructor(host: HeartbeatHost, periodMs: number, limits: RunLimits) {
    this.host = host;
    this.periodMs = periodMs;
    this.ownPeriodMs = periodMs;
    this.limitsNow = limits;
    this.ownLimits = limits;
  }

  /** The run limits in force now. */
  get limits(): RunLimits {
    return this.limitsNow;
  }

  /** Beats every period from now on. */
  start(): void {
    this.timer = this.host.clock.setTimeout(() => {
      this.timer = null;
      if (this.host.closed()) return;
      this.send();
      this.host.reporter.retryFailed();
      this.start();
    }, this.periodMs);
  }

  /** At once on first contact: the fleet view (and a launcher's orders) learn this worker's runs now, not a heartbeat later. */
  first(): void {
    if (this.sentFirst) return;
    this.sentFirst = true;
    this.send();
  }

  /** Stops beating. */
  stop(): void {
    if (this.timer !== null) this.host.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private send(): void {
    this.host.reporter.heartbeat(this.host.report(), this.onSettings);
  }

  /** The control plane answered a heartbeat with this worker's settings. */
  private readonly onSettings = (body: unknown): void => {
    const s = asWorkerSettings(body);
    if (s === null || this.host.closed()) return;
    const periodMs = Math.min(this.ownPeriodMs, s.heartbeatMs);
    const limits = stricter(this.ownLimits, s.limits);
    const changed =
      periodMs !== this.periodMs ||
      limits.maxSteps !== this.limitsNow.maxSteps ||
      limits.maxCostUsd !== this.limitsNow.maxCostUsd;
    if (!changed) return;
    const sooner = periodMs < this.periodMs;
    this.periodMs = periodMs;
    this.limitsNow = limits;
    this.host.record({ type: 'settings.applied', heartbeatMs: periodMs, limits, at: this.host.clock.now() });
    if (sooner && this.timer !== null) {
      // Beat at the new pace from now on, not after the old period.
      this.host.clock.clearTimeout(this.timer);
      this.start();
    }
  };
}

/**
 * The capability names this worker's runs declared or checked (the agent's capability surface,
 * at most `MAX_SURFACE`, see `RunHost.capabilities`), and their list for a heartbeat. Internal.
 */
export class CapabilitySurface {
  readonly names = new Set<string>();
  private cached: { size: number; list: string[] } = { size: 0, list: [] };

  /** The surface for a heartbeat: capability names only (the control plane takes no other), sorted. */
  list(): string[] {
    const set = this.names;
    if (this.cached.size !== set.size) {
      this.cached = {
        size: set.size,
        list: [...set].filter((c) => typeof c === 'string' && isCapability(c)).sort(),
      };
    }
    return [...this.cached.list];
  }
}
