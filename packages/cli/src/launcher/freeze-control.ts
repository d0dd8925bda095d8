import { join } from 'node:path';
import type { InspectOrder, StreamDirective } from '@killpath/protocol';
import type { AgentEgress } from './agent-egress.ts';
import { writeEvidence } from './evidence.ts';
import type { AgentHandle, Isolation } from './process-backend.ts';
import type { LauncherVoice } from './voice.ts';

/** Options of {@link FreezeControl}. */
export interface FreezeControlOptions {
  launcherId: string;
  isolation: Isolation;
  /** Where evidence is written (`<dir>/<launcher id>/<request id>/`). */
  evidenceDir: string;
  /** The agent's egress (null before it started). */
  egress: () => AgentEgress | null;
  /** True once the launcher started killing the agent: a freeze or thaw then does nothing. */
  killing: () => boolean;
  /** True while an isolate is in force: a thaw leaves the egress cut. */
  isolated: () => boolean;
  voice: LauncherVoice;
}

/**
 * Freeze, thaw and `killpath inspect` of the launched agent, one after the other (an inspection
 * asked for while a freeze is being confirmed waits for it):
 * - **freeze**: every process of the agent stopped at once (not one more instruction runs), then
 *   its egress cut as an isolate does; audited `process.frozen` with the processes and the time
 *   to the kernel's confirmation;
 * - **thaw**: the freeze was cleared: the agent runs again and its egress is restored unless an
 *   isolate is in force; audited `process.thawed`;
 * - **inspect**: the evidence of the frozen agent written while it stays frozen; refused when it
 *   is not frozen; audited `process.inspected`.
 */
export class FreezeControl {
  readonly #o: FreezeControlOptions;
  #queue: Promise<void> = Promise.resolve();

  constructor(opts: FreezeControlOptions) {
    this.#o = opts;
  }

  /** Queues the freeze of `child` ordered by `d`. */
  freeze(child: AgentHandle, d: StreamDirective): void {
    this.#queue = this.#queue.then(() => this.#freeze(child, d));
  }

  /** Queues the thaw of `child` (the freeze `d` was cleared). */
  thaw(child: AgentHandle, d: StreamDirective): void {
    this.#queue = this.#queue.then(() => this.#thaw(child, d));
  }

  /** Queues an inspection of the agent running when its turn comes (`child()`); a failure is logged. */
  inspect(child: () => AgentHandle | null, order: InspectOrder): void {
    this.#queue = this.#queue
      .then(() => this.#inspect(child(), order))
      .catch((err: unknown) =>
        this.#o.voice.say('error', 'inspection failed', { requestId: order.requestId, err: String(err) }),
      );
  }

  /** Resolves once everything queued is done (failures included). */
  settled(): Promise<void> {
    return this.#queue.catch(() => {});
  }

  async #freeze(child: AgentHandle, d: StreamDirective): Promise<void> {
    if (this.#o.killing() || !child.alive()) return;
    const r = await child.freeze();
    const cut = (await this.#o.egress()?.cut()) ?? 0;
    this.#o.voice.say('warn', `agent frozen: ${d.scopeText} (${d.id})`, {
      pid: child.pid,
      pids: r.pids,
      ms: r.ms,
      confirmed: r.confirmed,
      cut,
      isolation: this.#o.isolation,
    });
    this.#o.voice.report([
      {
        type: 'process.frozen',
        directiveId: d.id,
        pid: child.pid,
        pids: r.pids.slice(0, 1000),
        ms: r.ms,
        cut,
        isolation: this.#o.isolation,
        ...(r.confirmed ? {} : { detail: 'the kernel did not confirm the freeze in time' }),
      },
    ]);
  }

  async #thaw(child: AgentHandle, d: StreamDirective): Promise<void> {
    if (this.#o.killing() || !child.alive() || !child.frozen()) return;
    const r = await child.thaw();
    if (!this.#o.isolated()) await this.#o.egress()?.restore();
    this.#o.voice.say('info', `agent thawed (${d.id} cleared)`, { pid: child.pid, pids: r.pids, ms: r.ms });
    this.#o.voice.report([
      {
        type: 'process.thawed',
        directiveId: d.id,
        pid: child.pid,
        pids: r.pids.slice(0, 1000),
        ms: r.ms,
        isolation: this.#o.isolation,
      },
    ]);
  }

  async #inspect(child: AgentHandle | null, order: InspectOrder): Promise<void> {
    const { voice, isolation, launcherId } = this.#o;
    if (child === null || !child.alive() || !child.frozen()) {
      voice.say('warn', 'inspection refused: the agent is not frozen', { requestId: order.requestId });
      voice.report([
        {
          type: 'process.inspected',
          requestId: order.requestId,
          pid: child?.pid ?? 0,
          detail: 'refused: the agent is not frozen',
        },
      ]);
      return;
    }
    const dir = join(this.#o.evidenceDir, launcherId, order.requestId);
    const pids = child.processes();
    const started = performance.now();
    const { path, evidence } = await writeEvidence({
      dir,
      requestId: order.requestId,
      runId: order.runId,
      actor: order.actor,
      launcherId,
      isolation,
      pids,
      frozen: child.frozen(),
      cores: order.cores,
      hold: (fn) => child.holdForTrace(fn),
    });
    const cores = evidence.processes.filter((p) => p.core !== null).length;
    const detail = `${evidence.processes.length} processes, ${cores} core files${evidence.coreNote ? ` (${evidence.coreNote})` : ''}`;
    voice.say('warn', 'evidence written (the agent stays frozen)', {
      requestId: order.requestId,
      path,
      detail,
      ms: Math.round(performance.now() - started),
    });
    voice.report([
      {
        type: 'process.inspected',
        requestId: order.requestId,
        pid: child.pid,
        pids: pids.slice(0, 1000),
        path,
        ms: performance.now() - started,
        isolation,
        detail,
      },
    ]);
  }
}
