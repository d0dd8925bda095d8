import { KillpathError, type Principal } from '@killpath/protocol';
import type { Fleet, WorkerKey } from './fleet.ts';
import type { z } from 'zod';
import type { HeartbeatBody, RunBody } from './http/schemas.ts';
import type { LauncherDesk } from './launcher-desk.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { FleetStore, RunRecord } from './store/store.ts';
import type { SurfaceDesk } from './surface.ts';

/** Body of `POST /v1/runs`. */
type RunRequest = z.infer<typeof RunBody>;
/** Body of `POST /v1/workers/{id}/heartbeat`. */
type HeartbeatRequest = z.infer<typeof HeartbeatBody>;

/** A worker as its request identified it: its tenant, agent and fleet key. */
export interface KnownWorker {
  tenant: string;
  agent: string;
  key: WorkerKey;
}

/** What the worker desk needs: the run registry, the fleet view, launcher ownership and surfaces. */
export interface WorkerDeskDeps {
  readonly store: Pick<FleetStore, 'getRun' | 'registerRun'>;
  readonly fleet: Fleet;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly launchers: Pick<LauncherDesk, 'claim'>;
  readonly surface: Pick<SurfaceDesk, 'heartbeat'>;
  /** The rev the control plane has reached (a worker acknowledges none later). */
  rev(): number;
  /** A worker was heard from: the orders of the launcher that started it may change with its runs. */
  workerSeen(key: WorkerKey): void;
}

/**
 * What workers tell the control plane about themselves, independent of transport: the runs they
 * start (registered in the store, with their lineage) and their heartbeats (runs, launcher,
 * release, capabilities) and acknowledgements, which keep the fleet view.
 */
export class WorkerDesk {
  readonly #deps: WorkerDeskDeps;

  constructor(deps: WorkerDeskDeps) {
    this.#deps = deps;
  }

  /**
   * Registers run `b.runId` of worker `who`. A child's lineage is its parent's as the control
   * plane holds it, then the parent: what the request claims can only add to it, so a child
   * cannot leave its parent's stop by omission. Inside the tenant the first registration wins.
   * @throws KillpathError `conflict` when another agent of the tenant registered the id.
   */
  async registerRun(who: KnownWorker, b: RunRequest): Promise<RunRecord> {
    const { store, fleet } = this.#deps;
    const parent = b.parentRunId === null ? null : await store.getRun(who.tenant, b.parentRunId);
    const lineage = [
      ...new Set([
        ...(parent === null ? [] : parent.lineage),
        ...(b.parentRunId === null ? [] : [b.parentRunId]),
        ...b.lineage,
      ]),
    ];
    const run = await store.registerRun({
      ...b,
      lineage,
      tenant: who.tenant,
      agent: who.agent,
      startedAt: new Date().toISOString(),
    });
    // Another tenant's run of the same id is another run.
    if (run.agent !== who.agent)
      throw new KillpathError(
        'conflict',
        `run id ${b.runId} belongs to another agent of tenant ${who.tenant}; give this run another id`,
      );
    fleet.addRun(who.key, { runId: run.runId, parentRunId: b.parentRunId, lineage: run.lineage });
    this.#deps.workerSeen(who.key);
    return run;
  }

  /**
   * Takes worker `workerId`'s heartbeat: checks and binds its launcher, keeps the fleet view
   * (only its agent's own runs, and no rev beyond the current one), and learns its capabilities.
   * @throws KillpathError `forbidden` when a launcher-bound token names another launcher,
   *   `conflict` when another agent owns the launcher id.
   */
  async heartbeat(p: Principal, who: KnownWorker, workerId: string, b: HeartbeatRequest): Promise<void> {
    const { store, fleet, metrics } = this.#deps;
    // A token minted for one launcher reports its workers under that launcher only.
    if (p.launcher !== undefined && b.launcher !== undefined && b.launcher !== p.launcher)
      throw new KillpathError(
        'forbidden',
        `this token was minted for launcher ${p.launcher}; its workers may not report under launcher ${b.launcher}`,
      );
    if (b.launcher !== undefined) await this.#deps.launchers.claim(who, b.launcher);
    // A heartbeat names only its agent's own runs: a run another agent of the tenant registered
    // is left out (and counted), not refused, since a heartbeat is the worker's liveness. So a
    // worker cannot appear to host, acknowledge for, or draw launcher orders for another's run.
    const runs: typeof b.runs = [];
    for (const r of b.runs) {
      const registered = await store.getRun(who.tenant, r.runId);
      if (registered === null || registered.agent === who.agent) runs.push(r);
    }
    if (runs.length < b.runs.length)
      metrics.foreignRuns.inc({ route: 'heartbeat' }, b.runs.length - runs.length);
    // A worker acknowledges only revs that exist: a later one would pass for an ack in advance.
    fleet.heartbeat(workerId, who.tenant, who.agent, { ...b, runs, rev: Math.min(b.rev, this.#deps.rev()) });
    this.#deps.workerSeen(who.key);
    await this.surfaceSeen(workerId, who, b.capabilities);
  }

  /** Worker `who` applied `rev` (no later than the current rev: an ack in advance counts as the current one). */
  ack(who: KnownWorker, rev: number): void {
    this.#deps.fleet.ack(who.key, Math.min(rev, this.#deps.rev()));
  }

  /**
   * A worker heartbeat carried its capability set: when it grew, the agent's new capabilities
   * are stored and audited (`agent.surface_changed`). Returns the new ones; never throws.
   */
  async surfaceSeen(
    workerId: string,
    who: { tenant: string; agent: string },
    capabilities: readonly string[] | undefined,
  ): Promise<string[]> {
    const added = await this.#deps.surface.heartbeat(workerId, who, capabilities);
    if (added.length > 0) {
      this.#deps.metrics.auditRecords.inc();
      this.#deps.log.info('agent capability surface changed', {
        tenant: who.tenant,
        agent: who.agent,
        added,
        workerId,
      });
    }
    return added;
  }
}
