import type { AuditEventOf } from '@killpath/protocol';
import {
  KillpathError,
  isStopLevel,
  wallNow,
  type Clock,
  type Directive,
  type EscalationStep,
  type Release,
} from '@killpath/protocol';
import type { AuditEvent } from './audit/chain.ts';
import { clearedEvent, firedEvent, issuedEvent } from './audit-events.ts';
import type { Fleet, WorkerKey } from './fleet.ts';
import { isAbove, issuedByHuman, type AutomationPolicy } from './ladder.ts';
import type { LauncherHub } from './launchers.ts';
import type { Logger } from './log.ts';
import type { AlertSink } from './notify.ts';
import type { DirectiveInput, IssueResult, LeaseFence, Store } from './store/store.ts';

/** What the escalation needs of the control plane: its collaborators and three views of its state. */
/** How long after a step's commit met the store unavailable it is tried again. */
export const ESCALATION_RETRY_MS = 500;

export interface EscalationHost {
  readonly store: Store;
  readonly fleet: Fleet;
  readonly launchers: LauncherHub;
  readonly alerts: AlertSink;
  readonly automation: AutomationPolicy;
  readonly clock: Clock;
  readonly log: Logger;
  /**
   * The leader lease this replica holds, if it does: steps are armed and fall due only on the
   * holder, and each step's commit carries the fence (a deposed holder's commit is refused).
   */
  fence(): LeaseFence | null;
  /** The workers that reported `halted` for the directive, to whichever replica (the shared store). */
  haltReports(id: string): Promise<ReadonlySet<WorkerKey>>;
  /** When the flip of `d` committed, on the fleet's monotonic clock. */
  flipTime(d: Directive): number | undefined;
  /** Commits a directive and makes it take effect (push, orders, alerts, its own escalation). */
  commit(
    base: Omit<DirectiveInput, 'releases'>,
    audit: (r: IssueResult) => AuditEvent[],
    trigger: string,
    inherited: readonly Release[],
  ): Promise<IssueResult>;
}

/**
 * The escalation ladder in time (guarantee 8): each active directive's steps are armed from its
 * commit; a step that falls due while some covered worker (or launcher) has not acknowledged
 * the directive issues the step's level at the same scope, replacing it, unless the automation
 * policy holds it for a person.
 *
 * Across replicas a step commits exactly once: the holder of the leader lease decides it (it
 * re-arms from the store's switchboard when it takes the lease, so steps that fell due while
 * nobody held it fire at once, and catches up at every renewal), over every replica's workers
 * (shared presence and acknowledgements), and its commit is fenced by the lease's epoch. Every
 * other replica arms the steps too, but only to check what the holder cannot see, the launchers
 * connected to it, for a halt's kill. Every step's commit carries the idempotency key
 * `escalation:<directive>:<level>`, so a second commit converges on the first.
 */
export class Escalation {
  readonly #host: EscalationHost;
  readonly #slackMs: number;
  /** Pending escalation steps per directive (handles of the host's clock). */
  readonly #timers = new Map<string, unknown[]>();
  /** Escalation steps that fell due and have not finished (see {@link Escalation.settled}). */
  readonly #escalating = new Set<Promise<void>>();

  /** @param slackMs extra time after a halt's grace before its kill step */
  constructor(host: EscalationHost, slackMs: number) {
    this.#host = host;
    this.#slackMs = slackMs;
  }

  /** Cancels the pending steps of directive `id` (cleared or replaced). */
  disarm(id: string): void {
    for (const t of this.#timers.get(id) ?? []) this.#host.clock.clearTimeout(t);
    this.#timers.delete(id);
  }

  /** Cancels every pending step. */
  stop(): void {
    for (const timers of this.#timers.values()) for (const t of timers) this.#host.clock.clearTimeout(t);
    this.#timers.clear();
  }

  /**
   * Arms the escalation steps of an active directive, measured from its commit (wall clock, so
   * they survive restarts and takeovers), once per directive.
   */
  arm(d: Directive): void {
    if (this.#timers.has(d.id)) return;
    const wide = d.level === 'halt' && d.capabilities === null;
    const steps =
      wide && !d.escalation.some((s) => s.level === 'kill')
        ? [...d.escalation, { level: 'kill' as const, afterMs: d.graceMs + this.#slackMs }]
        : d.escalation;
    if (steps.length === 0) return;
    const timers: unknown[] = [];
    const fire = (step: EscalationStep): void => {
      const run = this.#escalate(d, step)
        .catch((err: unknown) => {
          // The store could not answer (a blip, a primary's failover): the step is still due, so it
          // is tried again while the directive is armed here (otherwise it would never fire: it is
          // armed once per directive); a try that is no longer this replica's (deposed) returns
          // quietly. Another refusal (the fence: the lease moved) is the new holder's to act on.
          const retry = err instanceof KillpathError && err.code === 'unavailable';
          this.#host.log.error('escalation failed', {
            directiveId: d.id,
            err: String(err),
            ...(retry ? { retryInMs: ESCALATION_RETRY_MS } : {}),
          });
          if (retry && this.#timers.get(d.id) === timers)
            timers.push(this.#host.clock.setTimeout(() => fire(step), ESCALATION_RETRY_MS));
        })
        .finally(() => this.#escalating.delete(run));
      this.#escalating.add(run);
    };
    for (const step of steps) {
      const due = Date.parse(d.issuedAt) + step.afterMs - wallNow(this.#host.clock);
      timers.push(this.#host.clock.setTimeout(() => fire(step), Math.max(0, due)));
    }
    this.#timers.set(d.id, timers);
  }

  /**
   * Arms every active directive of the store's switchboard not armed yet and disarms those no
   * longer active (on taking the lease, and at each renewal: what other replicas committed).
   * Reads the switchboard only when the store's rev moved since the last look.
   */
  async catchUp(): Promise<void> {
    if (this.#host.fence() === null) return;
    const rev = await this.#host.store.rev();
    if (rev === this.#seenRev) return;
    const board = await this.#host.store.switchboard();
    if (this.#host.fence() === null) return;
    const ids = new Set(board.directives.map((d) => d.id));
    for (const id of [...this.#timers.keys()]) if (!ids.has(id)) this.disarm(id);
    for (const d of board.directives) this.arm(d);
    this.#seenRev = board.rev;
  }

  /**
   * The lease was taken: re-arm every step from the store, whatever this process saw before. A
   * step that fell due here before (and found, not holding the lease, only its own launchers to
   * check) falls due again at once, now decided over every replica's workers.
   */
  async takeOver(): Promise<void> {
    this.stop();
    this.#seenRev = -1;
    await this.catchUp();
  }

  /** The rev of the switchboard {@link Escalation.catchUp} last armed from (-1: none). */
  #seenRev = -1;

  /** Resolves once every escalation step that has fallen due so far has run (and those they set off). */
  async settled(): Promise<void> {
    while (this.#escalating.size > 0) await Promise.all([...this.#escalating]);
  }

  /**
   * One escalation step falls due: if the directive is still active and some covered worker has
   * not acknowledged it (reported halted for a stop, acked the rev otherwise), issue the step's
   * level at the same scope, replacing it (`directive.escalated`). A step of an automatic
   * directive that the automation policy reserves for people is held and alerted instead.
   */
  async #escalate(d: Directive, step: EscalationStep): Promise<void> {
    const fence = this.#host.fence();
    const guaranteed = d.level === 'halt' && step.level === 'kill';
    // Not the lease holder: the holder decides, except for what only this replica can see, its own
    // launchers, and only for a halt's kill (guarantee 8). Such a commit is not fenced: its
    // idempotency key makes it converge with the holder's, so the kill still commits once.
    if (fence === null && !(guaranteed && d.capabilities === null)) return;
    // Active in the store, whichever replica cleared or replaced it.
    if ((await this.#host.store.getDirective(d.id))?.clearedRev !== null) return;
    const reported = await this.#host.haltReports(d.id);
    const laggards =
      fence === null
        ? []
        : this.#host.fleet
            .coveredBy(d, this.#host.flipTime(d))
            .filter((w) => (isStopLevel(d.level) ? !reported.has(w.key) : w.ackedRev < d.rev))
            .map((w) => w.workerId);
    // A launcher the stop reaches whose agent reported halted from no worker is a laggard too:
    // an agent that never registered (no SDK, hung before connecting) or lost its stream.
    if (isStopLevel(d.level) && d.capabilities === null)
      for (const l of this.#host.launchers.reachedBy(d))
        if (!this.#host.fleet.workersOfLauncher(l).some((w) => reported.has(w)))
          laggards.push(`launcher:${l.launcherId}`);
    if (laggards.length === 0) {
      if (fence === null) return;
      this.#host.log.info('escalation not needed: every covered worker acknowledged', {
        directiveId: d.id,
        level: step.level,
      });
      return;
    }
    if (!guaranteed && !(await this.#humanOrigin(d)) && this.#host.automation[step.level] === 'human') {
      await this.#host.store.appendAudit([
        {
          type: 'escalation.held',
          actor: `escalation:${d.id}`,
          tenant: d.tenant,
          data: {
            directiveId: d.id,
            level: step.level,
            laggards,
            reason: `automatic ${step.level} needs a human (automation policy)`,
          },
        },
      ]);
      this.#host.alerts.notify({
        kind: 'escalation.held',
        summary: `${d.scopeText}: ${step.level} needed after ${step.afterMs} ms (${laggards.length} worker(s) did not acknowledge ${d.level}) but it needs a human`,
        tenant: d.tenant,
        directiveId: d.id,
        details: { level: step.level, laggards },
      });
      return;
    }
    const actor = `escalation:${d.id}`;
    const why = `${laggards.length} worker(s) did not acknowledge ${d.level} ${d.id} within ${step.afterMs} ms`;
    const result = await this.#host.commit(
      {
        level: step.level,
        scope: d.scope,
        tenant: d.tenant,
        capabilities: step.level === 'isolate' || d.capabilities === null ? null : [...d.capabilities],
        rate: null,
        escalation: d.escalation.filter((s) => isAbove(s, step.level)),
        escalatedFrom: d.id,
        graceMs: step.level === 'kill' ? 0 : d.graceMs,
        drain: d.drain,
        memory: d.memory,
        reason: d.reason,
        justification: `automatic escalation: ${why}`,
        actor,
        // Still the order the break-glass attestation was given for: it stays on the record and the banner.
        breakGlass: d.breakGlass ?? null,
        idempotencyKey: `escalation:${d.id}:${step.level}`,
        fence: fence ?? null,
        replaces: () => [d.id],
      },
      (r) => {
        const e = r.directive;
        const events: AuditEvent[] = [
          {
            type: 'directive.escalated',
            actor,
            tenant: e.tenant,
            data: {
              from: d.id,
              fromLevel: d.level,
              directiveId: e.id,
              level: e.level,
              afterMs: step.afterMs,
              laggards,
              scope: e.scopeText,
            },
          } satisfies AuditEventOf<'directive.escalated'>,
          issuedEvent(actor, e),
          clearedEvent(actor, d, e.rev, { replacedBy: e.id }),
        ];
        if (isStopLevel(e.level)) events.push(firedEvent(e, actor, 'escalation'));
        return events;
      },
      'escalation',
      d.releases,
    );
    if (result.created) {
      this.#host.alerts.notify({
        kind: 'escalated',
        summary: `${d.scopeText}: ${d.level} escalated to ${step.level}: ${why}`,
        tenant: d.tenant,
        directiveId: result.directive.id,
        details: { from: d.id, laggards },
      });
    }
  }

  /** True when the chain of escalations `d` ends in (started from) a directive a person issued, who thereby approved its steps. */
  async #humanOrigin(d: Directive): Promise<boolean> {
    let at: Directive | null = d;
    for (let hops = 0; at !== null && hops < 16; hops++) {
      if (issuedByHuman(at)) return true;
      at = at.escalatedFrom === null ? null : await this.#host.store.getDirective(at.escalatedFrom);
    }
    return false;
  }
}
