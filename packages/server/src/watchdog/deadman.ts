import type { AuditEventOf } from '@killpath/protocol';
import { Counter } from 'prom-client';
import { KillpathError, type Principal, type WorkerSettings } from '@killpath/protocol';
import type { ControlPlane } from '../control-plane.ts';
import type { AuditStore } from '../store/store.ts';
import type { Logger } from '../log.ts';
import type { CompiledPolicy } from '../policy/policy.ts';
import { workerKey, type WorkerKey } from '../fleet.ts';

/** What the deadman needs of the control plane: the fleet and switchboard, issuing, alerts, metrics and the audit log. */
export type DeadmanHost = Pick<ControlPlane, 'fleet' | 'active' | 'issue' | 'metrics' | 'alerts'> & {
  readonly store: Pick<AuditStore, 'appendAudit'>;
};

/** A worker the deadman watches, with how long it has been silent. */
export interface WatchedWorker {
  workerId: string;
  tenant: string;
  agent: string;
  pid: number | null;
  launcher: string | null;
  runs: string[];
  /** Ms since its last heartbeat. */
  heartbeatAgoMs: number;
  intervalMs: number;
  missed: number;
  /** `missed × interval`: silence beyond this trips the deadman. */
  thresholdMs: number;
  /** Already tripped in this outage (re-armed by its next heartbeat). */
  tripped: boolean;
}

/** What one trip did. */
export interface TripResult {
  workerId: string;
  /** The halts issued, one per run the worker hosted (their kill step follows). */
  directives: string[];
  /** The worker had already tripped in this outage: nothing new was issued. */
  already: boolean;
}

interface Beat {
  at: number;
  /** The interval this worker was last told to beat at. */
  advertisedMs: number;
  tripped: boolean;
}

/**
 * The control plane's half of the deadman: it takes heartbeats (answering each with the
 * interval the deadman expects and the agent's run limits), lists the workers to watch with
 * their silence, and trips a worker on a watchdog's word after checking the silence itself.
 *
 * Watched: workers that heartbeated, hold their stream open and host at least one run. A hung
 * process (event loop blocked) keeps its TCP stream open but stops beating, and so does a
 * worker cut off by a partition the server has not noticed; a worker that exited closed its
 * stream and is not watched, nor is one a freeze covers (its launcher stopped it). A trip halts each of the worker's runs with a kill step after
 * `killAfterMs` (the launcher's own connection carries the kill to the process), audits
 * `deadman.triggered` and alerts. A worker trips once per outage; its next heartbeat re-arms it.
 */
export class DeadmanDesk {
  readonly #cp: DeadmanHost;
  readonly #log: Logger;
  readonly #policy: () => CompiledPolicy;
  readonly #now: () => number;
  /** By worker key: a worker id is its agent's own, the same id of another identity is another worker. */
  readonly #beats = new Map<WorkerKey, Beat>();
  readonly #trips: Counter;

  constructor(
    cp: DeadmanHost,
    log: Logger,
    policy: () => CompiledPolicy,
    now: () => number = () => performance.now(),
  ) {
    this.#cp = cp;
    this.#log = log;
    this.#policy = policy;
    this.#now = now;
    const name = 'killpath_deadman_trips_total';
    this.#trips =
      (cp.metrics.registry.getSingleMetric(name) as Counter | undefined) ??
      new Counter({ name, help: 'Workers the deadman tripped', registers: [cp.metrics.registry] });
  }

  /** A heartbeat from `workerId` of `tenant`/`agent` arrived: recorded; the answer is its settings. */
  heartbeat(workerId: string, who: { tenant: string; agent: string }): WorkerSettings {
    const p = this.#policy();
    const d = p.deadmanFor(who.tenant, who.agent);
    const key = workerKey(who.tenant, who.agent, workerId);
    const b = this.#beats.get(key);
    if (b === undefined)
      this.#beats.set(key, { at: this.#now(), advertisedMs: d.intervalMs, tripped: false });
    else {
      b.at = this.#now();
      b.advertisedMs = d.intervalMs;
      b.tripped = false;
    }
    return { heartbeatMs: d.intervalMs, limits: p.limitsFor(who.tenant, who.agent) };
  }

  /** The workers watched now (see the class comment). */
  watched(): WatchedWorker[] {
    const now = this.#now();
    const p = this.#policy();
    const out: WatchedWorker[] = [];
    for (const [key, b] of this.#beats) {
      const info = this.#cp.fleet.watchInfo(key);
      if (info === null) {
        this.#beats.delete(key);
        continue;
      }
      const d = p.deadmanFor(info.tenant, info.agent);
      // Another replica holds its stream (a mirrored worker): that replica's deadman watches it.
      if (!d.enabled || !info.connected || !info.local || info.runs.length === 0) continue;
      // A frozen worker cannot beat, by order: that silence is not a hang. Once thawed it gets a
      // whole threshold to beat again (its first beat needs a fresh snapshot first).
      if (this.#cp.fleet.frozen(key, this.#cp.active())) {
        b.at = now;
        continue;
      }
      // Until the worker has heard of a changed interval, it beats at the one it was told.
      const intervalMs = Math.max(d.intervalMs, b.advertisedMs);
      out.push({
        workerId: info.workerId,
        tenant: info.tenant,
        agent: info.agent,
        pid: info.pid,
        launcher: info.launcher,
        runs: info.runs,
        heartbeatAgoMs: now - b.at,
        intervalMs,
        missed: d.missed,
        thresholdMs: intervalMs * d.missed,
        tripped: b.tripped,
      });
    }
    return out;
  }

  /**
   * Trips a silent worker: halts its runs (each halt escalates to kill after `killAfterMs` unless
   * the worker reports it halted), audits `deadman.triggered` and alerts.
   * @throws KillpathError `not_found` for a worker not watched, `conflict` when it heartbeated within its threshold
   */
  async trip(workerId: string, by: string, who?: { tenant: string; agent: string }): Promise<TripResult> {
    // Worker ids are each agent's own: a watchdog names the identity too (one that does not is
    // understood only while a single agent uses the id).
    const found = this.watched().filter(
      (x) =>
        x.workerId === workerId && (who === undefined || (x.tenant === who.tenant && x.agent === who.agent)),
    );
    if (found.length > 1)
      throw new KillpathError(
        'conflict',
        `worker id ${workerId} is used by ${found.length} agents: name its tenant and agent`,
      );
    const w = found[0];
    if (w === undefined)
      throw new KillpathError(
        'not_found',
        `worker ${workerId} is not watched by the deadman (unknown, disconnected, without runs, or disabled)`,
      );
    if (w.heartbeatAgoMs <= w.thresholdMs)
      throw new KillpathError(
        'conflict',
        `worker ${workerId} heartbeated ${Math.round(w.heartbeatAgoMs)} ms ago, within its threshold of ${w.thresholdMs} ms`,
      );
    const beat = this.#beats.get(workerKey(w.tenant, w.agent, workerId))!;
    if (beat.tripped) return { workerId, directives: [], already: true };
    beat.tripped = true;
    this.#trips.inc();
    const d = this.#policy().deadmanFor(w.tenant, w.agent);
    const silentMs = Math.round(w.heartbeatAgoMs);
    const principal: Principal = {
      tokenId: 'deadman',
      name: `deadman:${workerId}`,
      role: 'admin',
      tenant: '*',
      agent: null,
    };
    const details = {
      workerId,
      pid: w.pid,
      launcher: w.launcher,
      heartbeatAgoMs: silentMs,
      intervalMs: w.intervalMs,
      missed: w.missed,
      thresholdMs: w.thresholdMs,
      by,
    };
    const results = await Promise.allSettled(
      w.runs.map((runId) =>
        this.#cp.issue(
          principal,
          {
            level: 'halt',
            scope: `run:${runId}`,
            tenant: w.tenant,
            reason: `deadman: worker ${workerId} missed ${w.missed} heartbeats`,
            justification: `automatic: no heartbeat from worker ${workerId} (${w.tenant}/${w.agent}, pid ${w.pid ?? '?'}) for ${silentMs} ms, threshold ${w.thresholdMs} ms (${w.missed} × ${w.intervalMs} ms)`,
            graceMs: 0,
            escalation: [{ level: 'kill', afterMs: d.killAfterMs }],
          },
          { via: 'deadman', trigger: { kind: 'deadman', details } },
        ),
      ),
    );
    const directives: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') directives.push(r.value.directive.id);
      else
        this.#log.error('deadman could not halt a run', { workerId, run: w.runs[i], err: String(r.reason) });
    });
    await this.#cp.store.appendAudit([
      {
        type: 'deadman.triggered',
        actor: `watchdog:${by}`,
        tenant: w.tenant,
        data: { ...details, agent: w.agent, runs: w.runs, directives, killAfterMs: d.killAfterMs },
      } satisfies AuditEventOf<'deadman.triggered'>,
    ]);
    this.#cp.metrics.auditRecords.inc();
    const kill =
      w.launcher === null
        ? 'no launcher started it, so its process is not killed (the halts stand at the control plane)'
        : `its launcher ${w.launcher} is ordered to kill the process${d.killAfterMs > 0 ? ` unless it reports halted within ${d.killAfterMs} ms` : ''}`;
    this.#cp.alerts.notify({
      kind: 'deadman.triggered',
      summary: `deadman: worker ${workerId} (${w.tenant}/${w.agent}, pid ${w.pid ?? '?'}) sent no heartbeat for ${silentMs} ms (threshold ${w.thresholdMs} ms): halted ${w.runs.map((r) => `run:${r}`).join(', ')}; ${kill}`,
      tenant: w.tenant,
      directiveId: directives[0] ?? null,
      details: { ...details, agent: w.agent, runs: w.runs, directives },
    });
    this.#log.warn('deadman triggered', { ...details, directives });
    return { workerId, directives, already: false };
  }
}
