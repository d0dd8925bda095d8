import type { Logger } from './log.ts';
import type { FleetStore } from './store/store.ts';

/** Workers whose last reported surface size is remembered; the oldest are forgotten past this. */
const MAX_WORKERS = 50_000;

/**
 * Learns each agent's capability surface from its workers' heartbeats. A worker reports every
 * capability its runs declared or attempted since it started (a set that only grows), so the
 * store is written only when a worker's set grew since its last heartbeat: a steady fleet costs
 * nothing but a size comparison per heartbeat. New capabilities are audited as
 * `agent.surface_changed` in the same transaction; they make the agent due for a drill.
 */
export class SurfaceDesk {
  readonly #store: FleetStore;
  readonly #log: Logger;
  readonly #now: () => Date;
  /** Size of each worker's capability set at its last heartbeat that was stored. */
  readonly #sent = new Map<string, number>();

  constructor(store: FleetStore, log: Logger, now: () => Date = () => new Date()) {
    this.#store = store;
    this.#log = log;
    this.#now = now;
  }

  /**
   * Takes the capabilities of one heartbeat. Returns the capabilities new to the agent (empty
   * when the worker's set did not grow). A store failure is logged, never thrown, and retried
   * with the worker's next heartbeat.
   */
  async heartbeat(
    workerId: string,
    who: { tenant: string; agent: string },
    capabilities: readonly string[] | undefined,
  ): Promise<string[]> {
    // Worker ids are each agent's own: the same id of another identity is another worker.
    const key = `${who.tenant}\u0000${who.agent}\u0000${workerId}`;
    if (capabilities === undefined || capabilities.length <= (this.#sent.get(key) ?? 0)) return [];
    // Set before the write, so a heartbeat arriving meanwhile does not write the same set again.
    this.#sent.delete(key);
    this.#sent.set(key, capabilities.length);
    if (this.#sent.size > MAX_WORKERS) this.#sent.delete(this.#sent.keys().next().value!);
    try {
      return await this.#store.noteCapabilities(who.tenant, who.agent, capabilities, this.#now(), (added) => [
        {
          type: 'agent.surface_changed',
          actor: `worker:${workerId}`,
          tenant: who.tenant,
          data: { tenant: who.tenant, agent: who.agent, added, workerId },
        },
      ]);
    } catch (err) {
      this.#sent.delete(key);
      this.#log.error('could not store a capability surface', {
        workerId,
        tenant: who.tenant,
        agent: who.agent,
        err: String(err),
      });
      return [];
    }
  }
}
