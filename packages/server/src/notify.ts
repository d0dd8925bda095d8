import type { SignedCheckpoint } from '@killpath/protocol';
import type { Logger } from './log.ts';

/** What an alert is about. */
export type AlertKind =
  | 'break_glass'
  | 'resume.requested'
  | 'resume.approved'
  | 'approval.requested'
  | 'approval.refused'
  | 'degraded'
  | 'isolated'
  | 'escalated'
  | 'escalation.held'
  | 'process.killed'
  | 'kill_switch.fired'
  | 'deadman.triggered'
  | 'watchdog.absent'
  | 'watchdog.recovered'
  | 'supervisor.absent'
  | 'supervisor.recovered'
  | 'control_plane.unreachable'
  | 'policy.changed'
  | 'audit.checkpoint'
  | 'audit.inconsistent';

/** One alert, as posted to a webhook (JSON body) and written to the log. */
export interface Alert {
  kind: AlertKind;
  /** One line for a human: what happened and what it means. */
  summary: string;
  tenant: string | null;
  directiveId: string | null;
  /** ISO 8601 time the alert was raised. */
  at: string;
  details: Record<string, unknown>;
  /**
   * The audit log's latest signed checkpoint when the alert was raised (null before the first),
   * so every receiver keeps a copy off the control plane's disk.
   */
  checkpoint?: SignedCheckpoint | null;
}

/** Where alerts go. */
export interface AlertSink {
  notify(alert: Omit<Alert, 'at' | 'checkpoint'>): void;
  /** Alerts raised recently, newest last, when the sink keeps them. */
  readonly recent?: readonly Alert[];
  /** The latest signed checkpoint, attached to every alert from now on (set by the checkpointer). */
  checkpoint?: SignedCheckpoint | null;
}

/** Options of {@link Notifier}. */
export interface NotifierOptions {
  /** Webhook URLs; each alert is POSTed to every one of them. */
  webhooks: string[];
  /** Attempts per webhook and alert, the first included. Default 5. */
  attempts?: number;
  /** First retry delay in ms, doubled each attempt. Default 250. */
  backoffMs?: number;
  /** Per-attempt timeout in ms. Default 5000. */
  timeoutMs?: number;
  log: Logger;
}

/**
 * The notification sink: every alert goes to the log at `warn` and, when webhooks are
 * configured, is POSTed to each as JSON, retried with exponential backoff on a network error,
 * a timeout or a 5xx/429 answer. Delivery runs in the background and never throws at the
 * caller; a delivery that gives up is logged at `error`. `drain()` waits for pending deliveries.
 */
export class Notifier implements AlertSink {
  readonly #webhooks: string[];
  readonly #attempts: number;
  readonly #backoffMs: number;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #pending = new Set<Promise<void>>();
  /** Alerts raised so far, newest last (the last 200), for the fleet view and tests. */
  readonly recent: Alert[] = [];
  /** The latest signed checkpoint of the audit log, attached to every alert. */
  checkpoint: SignedCheckpoint | null = null;

  constructor(opts: NotifierOptions) {
    for (const url of opts.webhooks) {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:')
        throw new TypeError(`webhook ${url} is not http(s)`);
    }
    this.#webhooks = opts.webhooks;
    this.#attempts = opts.attempts ?? 5;
    this.#backoffMs = opts.backoffMs ?? 250;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#log = opts.log;
  }

  notify(a: Omit<Alert, 'at' | 'checkpoint'>): void {
    const alert: Alert = { ...a, at: new Date().toISOString(), checkpoint: this.checkpoint };
    this.recent.push(alert);
    if (this.recent.length > 200) this.recent.shift();
    // A new checkpoint is routine: it goes to the webhooks, and to the log at info only.
    const level = alert.kind === 'audit.checkpoint' ? 'info' : 'warn';
    this.#log[level](`alert: ${alert.summary}`, {
      alert: alert.kind,
      tenant: alert.tenant,
      directiveId: alert.directiveId,
      ...alert.details,
    });
    for (const url of this.#webhooks) {
      const p = this.#deliver(url, alert).finally(() => this.#pending.delete(p));
      this.#pending.add(p);
    }
  }

  /** Resolves once every delivery started so far has succeeded or given up. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async #deliver(url: string, alert: Alert): Promise<void> {
    const body = JSON.stringify(alert);
    let last = '';
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-killpath-alert': alert.kind,
            'x-killpath-attempt': String(attempt),
          },
          body,
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
        await res.body?.cancel();
        if (res.ok) return;
        last = `HTTP ${res.status}`;
        // A 4xx other than 429 will not get better by asking again.
        if (res.status < 500 && res.status !== 429) break;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (attempt < this.#attempts)
        await new Promise((ok) => setTimeout(ok, this.#backoffMs * 2 ** (attempt - 1)));
    }
    this.#log.error('alert delivery failed', {
      webhook: url,
      alert: alert.kind,
      directiveId: alert.directiveId,
      last,
    });
  }
}
