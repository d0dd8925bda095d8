import { KillpathError, type Principal } from '@killpath/protocol';
import { workerIdOf, type Fleet, type WorkerKey } from './fleet.ts';
import type { LauncherEventBody } from './http/schemas.ts';
import type { Metrics } from './metrics.ts';
import type { AlertSink } from './notify.ts';
import type { AuditStore, FleetStore, PermitStore } from './store/store.ts';

/** What the launcher desk needs: the stores of launcher bindings, audit and in-flight effects, and the fleet. */
export interface LauncherDeskDeps {
  readonly store: Pick<FleetStore, 'bindLauncher' | 'launcherOwner'> &
    Pick<AuditStore, 'appendAudit'> &
    Pick<PermitStore, 'markInDoubt'>;
  readonly fleet: Fleet;
  readonly metrics: Metrics;
  readonly alerts: AlertSink;
  /** Evidence that a worker has not stopped, whatever it acknowledged (see `HaltReports.contradict`). */
  contradictAck(key: WorkerKey, runId: string | null, evidence: string): void;
}

/**
 * Launchers as the control plane knows them: which agent of which tenant owns each launcher id
 * (bound in the store at first use, never changed), and what launchers report they did to
 * their agent processes (kill, isolate, exit, refused restart), audited and acted on.
 */
export class LauncherDesk {
  readonly #deps: LauncherDeskDeps;
  /** Owners of launcher ids (`tenant\0id` → agent), as bound in the store; bindings never change. */
  readonly #owners = new Map<string, string>();

  constructor(deps: LauncherDeskDeps) {
    this.#deps = deps;
  }

  /**
   * Binds launcher id `launcherId` of `who.tenant` to `who.agent` at its first use, and checks it
   * on every later one: a launcher id belongs to one agent of one tenant (ids of different
   * tenants never meet). Bindings never change, so they are cached.
   * @throws KillpathError `conflict` when another agent of the tenant owns the id.
   */
  async claim(who: { tenant: string; agent: string }, launcherId: string): Promise<void> {
    const key = `${who.tenant}\u0000${launcherId}`;
    let owner = this.#owners.get(key);
    if (owner === undefined) {
      owner = await this.#deps.store.bindLauncher(who.tenant, launcherId, who.agent, new Date());
      this.#owners.set(key, owner);
    }
    if (owner !== who.agent)
      throw new KillpathError(
        'conflict',
        `launcher id ${launcherId} belongs to another agent of tenant ${who.tenant}; start the launcher with another --launcher-id`,
      );
  }

  /** The agent owning launcher `launcherId` of `tenant`, or null when it was never used. */
  async owner(tenant: string, launcherId: string): Promise<string | null> {
    const key = `${tenant}\u0000${launcherId}`;
    const cached = this.#owners.get(key);
    if (cached !== undefined) return cached;
    const owner = await this.#deps.store.launcherOwner(tenant, launcherId);
    if (owner !== null) this.#owners.set(key, owner);
    return owner;
  }

  /**
   * Audits what a launcher did to its agent process (kill, isolate, exit, refused restart). Only
   * the launcher's owner reports for it: an agent token of its tenant and agent (or of its whole
   * tenant), or an admin naming the tenant. Anything else is 404, acted on nowhere.
   */
  async events(
    p: Principal,
    launcherId: string,
    body: LauncherEventBody,
    tenantParam?: string,
  ): Promise<void> {
    const { store, fleet, metrics, alerts } = this.#deps;
    if (p.role !== 'agent' && p.role !== 'admin')
      throw new KillpathError('forbidden', 'only agent tokens report launcher events');
    const tenant = p.role === 'admin' ? tenantParam : p.tenant;
    if (tenant === undefined)
      throw new KillpathError('invalid_request', 'an admin reporting launcher events must name ?tenant=');
    const agent = await this.owner(tenant, launcherId);
    if (
      agent === null ||
      (p.role === 'agent' && p.agent !== null && p.agent !== agent) ||
      (p.launcher !== undefined && p.launcher !== launcherId)
    )
      throw new KillpathError('not_found', `launcher ${launcherId} not found`);
    const key = { tenant, agent, launcherId };
    await store.appendAudit(
      body.events.map((e) => ({
        type: e.type,
        actor: `launcher:${launcherId}`,
        tenant,
        data: { launcherId, agent, ...e },
      })),
    );
    metrics.auditRecords.inc(body.events.length);
    for (const e of body.events) {
      if (e.type === 'egress.allowed') {
        // The launcher's proxy saw the agent reach out: whatever the agent said, it has not stopped.
        for (const w of fleet.workersOfLauncher(key))
          this.#deps.contradictAck(
            w,
            null,
            `egress to ${e.destination ?? '?'} through launcher ${launcherId}`,
          );
      }
      if (e.type === 'process.killed') {
        alerts.notify({
          kind: 'process.killed',
          summary: `launcher ${launcherId} of ${tenant}/${agent} ended its agent process ${e.pid ?? '?'} with ${e.signal ?? '?'} in ${Math.round(e.ms ?? 0)} ms`,
          tenant,
          directiveId: e.directiveId ?? null,
          details: { launcherId, agent, ...e },
        });
      }
      if (e.type === 'process.killed' || e.type === 'process.exited') {
        // No hanging state: what the dead process had in flight gets an outcome now (in doubt).
        const workers = fleet.workersOfLauncher(key);
        fleet.processGone(key, typeof e.pid === 'number' ? e.pid : null);
        // Worker ids are each agent's own: only the launcher's agent's workers are meant.
        const changed = await store.markInDoubt(
          { tenant, agent },
          workers.map(workerIdOf),
          `agent process ${e.pid ?? '?'} ended (${e.type === 'process.killed' ? `killed by ${e.signal ?? '?'}` : 'exited'}) with the effect in flight`,
        );
        metrics.auditRecords.inc(changed.length);
      }
    }
  }
}
