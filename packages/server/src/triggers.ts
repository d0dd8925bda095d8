import type { AuditEventOf } from '@killpath/protocol';
import { createWriteStream, type WriteStream } from 'node:fs';
import {
  KillpathError,
  wallNow,
  type Clock,
  type TelemetryBatch,
  type WorkerSettings,
} from '@killpath/protocol';
import type { ControlPlane } from './control-plane.ts';
import type { AuditStore, PolicyStore } from './store/store.ts';
import type { ApprovalsHost } from './approvals.ts';
import type { DeadmanHost } from './watchdog/deadman.ts';
import type { SupervisorHost } from './supervisor/supervisor.ts';
import type { TelemetryStore } from './store/store.ts';
import type { Logger } from './log.ts';
import { PolicyDesk } from './policy/policy-desk.ts';
import { ApprovalDesk } from './approvals.ts';
import { TelemetryRelay } from './supervisor/telemetry-relay.ts';
import { Supervisor, type Fire } from './supervisor/supervisor.ts';
import { DeadmanDesk } from './watchdog/deadman.ts';
import { AbsenceWatch, Liveness, type Component } from './watchdog/liveness.ts';
import { Watchdog } from './watchdog/watchdog.ts';

/** What the triggers need of the control plane: what their desks need, its clock, and the policy and audit stores. */
export type TriggersHost = ApprovalsHost &
  SupervisorHost &
  DeadmanHost &
  Pick<ControlPlane, 'clock' | 'replicaId' | 'whileLeading'> & {
    readonly store: PolicyStore & Pick<AuditStore, 'appendAudit'> & TelemetryStore;
  };

/** Options of {@link Triggers}. */
export interface TriggerOptions {
  /** Run the policy supervisor in this process (default true). */
  supervisor?: boolean;
  /** Run the deadman's watchdog in this process (default true); false expects `killpath watchdog` elsewhere. */
  watchdog?: boolean;
  /** A policy file to make active at start (`killpath serve --policy`). */
  policyFile?: { path: string; source: string };
  /** Supervisor or watchdog silent for longer than this is absent, in ms (default 5000). */
  absentAfterMs?: number;
  /** The in-process watchdog's tick, in ms (default: a tenth of the shortest deadman interval, 20 to 250). */
  watchdogTickMs?: number;
  /** Append every run update received to this file as JSON lines (for `killpath policy test --events`). */
  recordTelemetry?: string;
  /** Called for every fire and shadow fire (benchmarks, tests). */
  onFire?: (f: Fire) => void;
  /** Wall clock in ms for approval windows (default the clock's wall time). */
  now?: () => number;
  /**
   * How often the active policy is checked against the store's latest version, in ms (default
   * {@link POLICY_FOLLOW_MS}): a version applied, rolled back or approved on another replica is
   * active here within about this long. 0 turns it off (a process alone on its store).
   */
  policyFollowMs?: number;
  /**
   * Time for the supervisor's windows and beat, the deadman, the liveness watch, the in-process
   * watchdog's ticks and approval windows (default the control plane's clock).
   */
  clock?: Clock;
}

/** How often the in-process supervisor beats, in ms. */
const SUPERVISOR_BEAT_MS = 500;

/** How often a control plane reads the store's latest policy version, in ms (one small query). */
export const POLICY_FOLLOW_MS = 1000;

/**
 * The automatic triggers of a control plane, wired together: the policy (versions), the
 * supervisor (telemetry → rules → directives), the deadman (heartbeats → trips) with its
 * in-process watchdog, and the mutual watch: the watchdog raises `supervisor.absent`, the
 * supervisor raises `watchdog.absent` (the external watchdog beats through the API). With the
 * supervisor off, telemetry is accepted and dropped (local halts are still audited) and
 * everything synchronous works as before.
 */
export class Triggers {
  readonly policy: PolicyDesk;
  /** Approval requests for the acts the active policy's approval rules gate. */
  readonly approvals: ApprovalDesk;
  readonly supervisor: Supervisor | null;
  /** Telemetry to and from the store, so that only the holder of the leader lease evaluates rules, over every replica's share. */
  readonly relay: TelemetryRelay | null;
  readonly deadman: DeadmanDesk;
  readonly liveness: Liveness;
  readonly watchdog: Watchdog | null;
  readonly absentAfterMs: number;
  readonly #cp: TriggersHost;
  readonly #log: Logger;
  readonly #watchdogWatch: AbsenceWatch;
  #beatTimer: unknown = null;
  #followTimer: unknown = null;
  #following: Promise<void> | null = null;
  /** The store did not answer the last policy follow (logged once per streak). */
  #followFailing = false;
  readonly #clock: Clock;
  readonly #record: WriteStream | null;
  readonly #localHalts = new Set<string>();
  /** Absences being raised and local halts being audited (see {@link Triggers.idle}). */
  readonly #raising = new Set<Promise<void>>();

  private constructor(cp: TriggersHost, log: Logger, policy: PolicyDesk, opts: TriggerOptions) {
    this.#cp = cp;
    this.#log = log;
    this.policy = policy;
    const clock = opts.clock ?? cp.clock;
    this.#clock = clock;
    this.liveness = new Liveness(() => clock.now());
    this.approvals = new ApprovalDesk({
      cp,
      log,
      rules: () => this.policy.active.policy.approvals,
      now: opts.now ?? (() => wallNow(clock)),
    });
    this.approvals.complete('policy.apply', async (requester, r) => {
      // Approved over the version the approver saw, or not at all: a change applied meanwhile (on
      // any replica) is never silently replaced.
      await this.policy.follow();
      if (this.policy.current.version !== r.targetRev)
        throw new KillpathError(
          'conflict',
          `the policy is at v${this.policy.current.version} now, not v${r.targetRev} as when this change was asked for: ask again over the current version`,
        );
      const comment = typeof r.payload?.comment === 'string' ? r.payload.comment : null;
      const applied =
        typeof r.payload?.rollbackOf === 'number'
          ? await this.policy.rollback(requester, r.payload.rollbackOf, comment ?? 'rollback')
          : await this.policy.apply(requester, String(r.payload?.source ?? ''), { comment });
      return {
        outcome: applied.created
          ? `policy v${applied.version} applied`
          : `policy unchanged (v${applied.version})`,
        result: applied,
      };
    });
    this.absentAfterMs = opts.absentAfterMs ?? 5000;
    this.deadman = new DeadmanDesk(
      cp,
      log,
      () => this.policy.active.policy,
      () => clock.now(),
    );
    this.supervisor =
      opts.supervisor === false
        ? null
        : new Supervisor({
            cp,
            log,
            policy: () => this.policy.active,
            now: () => clock.now(),
            ...(opts.onFire ? { onFire: opts.onFire } : {}),
          });
    this.#watchdogWatch = new AbsenceWatch(
      this.absentAfterMs,
      (age) => void this.absence('watchdog.absent', age, 'supervisor'),
      (age) => void this.absence('watchdog.recovered', age, 'supervisor'),
    );
    this.relay =
      this.supervisor === null
        ? null
        : new TelemetryRelay(
            { store: cp.store, clock, log, replicaId: cp.replicaId, whileLeading: (w) => cp.whileLeading(w) },
            this.supervisor,
            () => this.policy.active.policy.retentionMs,
          );
    this.relay?.start();
    if (this.supervisor !== null) {
      this.liveness.beat('supervisor', 'serve');
      const beat = () => {
        this.liveness.beat('supervisor', 'serve');
        this.#watchdogWatch.check(this.liveness.age('watchdog').ms);
        this.#beatTimer = clock.setTimeout(beat, SUPERVISOR_BEAT_MS);
      };
      this.#beatTimer = clock.setTimeout(beat, SUPERVISOR_BEAT_MS);
    } else {
      log.warn(
        'supervisor disabled: policy rules are not evaluated (operators, the API and the deadman still work)',
      );
    }
    this.watchdog =
      opts.watchdog === false
        ? null
        : new Watchdog({
            port: this.#inProcessPort(),
            log,
            absentAfterMs: this.absentAfterMs,
            tickMs: opts.watchdogTickMs ?? this.#tickFor(),
            clock,
          });
    if (this.watchdog === null)
      log.info('in-process watchdog disabled: expecting `killpath watchdog` to beat through the API');
    this.#record = opts.recordTelemetry ? createWriteStream(opts.recordTelemetry, { flags: 'a' }) : null;
    const followMs = opts.policyFollowMs ?? POLICY_FOLLOW_MS;
    if (followMs > 0) {
      const follow = () => {
        this.#following = this.#followPolicy().finally(() => {
          this.#following = null;
          if (this.#followTimer !== null) this.#followTimer = clock.setTimeout(follow, followMs);
        });
      };
      this.#followTimer = clock.setTimeout(follow, followMs);
    }
  }

  /** One follow of the store's policy (see {@link PolicyDesk.follow}); a store that does not answer is logged once until it does. */
  async #followPolicy(): Promise<void> {
    try {
      await this.policy.follow();
      if (this.#followFailing) this.#log.info('policy follow: the store answers again');
      this.#followFailing = false;
    } catch (err) {
      if (!this.#followFailing)
        this.#log.warn('policy follow: could not read the latest policy version; keeping the current one', {
          version: this.policy.current.version,
          err: String(err),
        });
      this.#followFailing = true;
    }
  }

  /** Opens the policy and starts the supervisor and the in-process watchdog. */
  static async start(cp: TriggersHost, log: Logger, opts: TriggerOptions = {}): Promise<Triggers> {
    const policy = await PolicyDesk.open(cp.store, cp.alerts, log, opts.policyFile);
    const t = new Triggers(cp, log, policy, opts);
    t.watchdog?.start();
    return t;
  }

  /** Stops the loops and waits for directives and records in flight. */
  async close(): Promise<void> {
    if (this.#beatTimer !== null) this.#clock.clearTimeout(this.#beatTimer);
    this.#beatTimer = null;
    if (this.#followTimer !== null) this.#clock.clearTimeout(this.#followTimer);
    this.#followTimer = null;
    this.relay?.stop();
    await this.#following;
    await this.watchdog?.stop();
    await this.supervisor?.drain();
    await new Promise<void>((ok) => (this.#record ? this.#record.end(ok) : ok()));
  }

  /** A telemetry batch from a worker of `tenant`/`agent`. */
  telemetry(who: { workerId: string; tenant: string; agent: string }, batch: TelemetryBatch): void {
    if (this.#record !== null) {
      const at = new Date().toISOString();
      for (const r of batch.runs)
        this.#record.write(
          `${JSON.stringify({ at, tenant: who.tenant, agent: who.agent, workerId: who.workerId, ...r })}\n`,
        );
    }
    for (const r of batch.runs) if (r.localHalt !== null) this.#localHalt(who, r.runId, r.localHalt);
    this.relay?.take(who, batch.runs);
  }

  /** A heartbeat: recorded for the deadman; answered with the worker's settings. */
  heartbeat(workerId: string, who: { tenant: string; agent: string }): WorkerSettings {
    return this.deadman.heartbeat(workerId, who);
  }

  /** The external watchdog beat: it is alive; it learns the supervisor's silence. */
  watchdogBeat(id: string): { supervisorAgoMs: number | null; absentAfterMs: number } {
    this.liveness.beat('watchdog', id);
    this.#watchdogWatch.check(0);
    return { supervisorAgoMs: this.liveness.age('supervisor').ms, absentAfterMs: this.absentAfterMs };
  }

  /** Raises an absence (or a return) of the supervisor or the watchdog: audited and alerted. */
  async absence(
    kind: 'supervisor.absent' | 'supervisor.recovered' | 'watchdog.absent' | 'watchdog.recovered',
    ageMs: number,
    by: string,
  ): Promise<void> {
    const raising = this.#raise(kind, ageMs, by);
    this.#raising.add(raising);
    try {
      await raising;
    } finally {
      this.#raising.delete(raising);
    }
  }

  /** Resolves once every absence (or return) being raised is alerted and audited, and every local halt reported is audited. */
  async idle(): Promise<void> {
    while (this.#raising.size > 0) await Promise.allSettled([...this.#raising]);
  }

  async #raise(
    kind: 'supervisor.absent' | 'supervisor.recovered' | 'watchdog.absent' | 'watchdog.recovered',
    ageMs: number,
    by: string,
  ): Promise<void> {
    const component: Component = kind.startsWith('supervisor') ? 'supervisor' : 'watchdog';
    const age = this.liveness.age(component);
    const absent = kind.endsWith('absent');
    const summary = absent
      ? component === 'supervisor'
        ? `supervisor absent: no beat for ${Math.round(ageMs)} ms${age.seen ? '' : ' (never started)'}; policy rules are not evaluated. Operators' kills (CLI, API, console) and the deadman still work.`
        : `watchdog absent: no beat for ${Math.round(ageMs)} ms${age.seen ? '' : ' (never started)'}; hung agents are not detected by the deadman. Start one: killpath watchdog --url … --token …`
      : `${component} back after ${Math.round(ageMs)} ms`;
    this.#cp.alerts.notify({
      kind,
      summary,
      tenant: null,
      directiveId: null,
      details: { component, lastBeatAgoMs: Math.round(ageMs), absentAfterMs: this.absentAfterMs, by },
    });
    try {
      await this.#cp.store.appendAudit([
        {
          type: kind,
          actor: `${by}`,
          tenant: null,
          data: {
            component,
            lastBeatAgoMs: Math.round(ageMs),
            absentAfterMs: this.absentAfterMs,
            lastId: age.id,
            by,
          },
        },
      ]);
      this.#cp.metrics.auditRecords.inc();
    } catch (err) {
      this.#log.error('could not audit an absence', { kind, err: String(err) });
    }
  }

  /** Status for `GET /v1/supervisor`. */
  status(): Record<string, unknown> {
    const sup = this.liveness.age('supervisor');
    const dog = this.liveness.age('watchdog');
    return {
      policy: {
        version: this.policy.current.version,
        digest: this.policy.current.digest,
        appliedBy: this.policy.current.actor,
        appliedAt: this.policy.current.createdAt,
      },
      supervisor: {
        running: this.supervisor !== null,
        lastBeatAgoMs: sup.seen ? Math.round(sup.ms) : null,
        ...(this.supervisor?.status() ?? {}),
      },
      watchdog: {
        inProcess: this.watchdog !== null,
        lastBeatAgoMs: dog.seen ? Math.round(dog.ms) : null,
        lastId: dog.id,
        absent: this.#watchdogWatch.absent,
      },
      absentAfterMs: this.absentAfterMs,
    };
  }

  #localHalt(
    who: { workerId: string; tenant: string; agent: string },
    runId: string,
    h: NonNullable<TelemetryBatch['runs'][number]['localHalt']>,
  ): void {
    const key = `${who.tenant}\u0000${runId}\u0000${who.workerId}`;
    if (this.#localHalts.has(key)) return;
    if (this.#localHalts.size > 100_000) this.#localHalts.clear();
    this.#localHalts.add(key);
    const auditing = this.#cp.store
      .appendAudit([
        {
          type: 'local_rule.fired',
          actor: `worker:${who.workerId}`,
          tenant: who.tenant,
          data: { runId, agent: who.agent, workerId: who.workerId, ...h },
        } satisfies AuditEventOf<'local_rule.fired'>,
      ])
      .then(() => this.#cp.metrics.auditRecords.inc())
      .catch((err: unknown) => this.#log.error('could not audit a local halt', { err: String(err) }))
      .finally(() => this.#raising.delete(auditing));
    this.#raising.add(auditing);
  }

  #tickFor(): () => number {
    return () => Math.min(250, Math.max(20, Math.round(this.policy.active.policy.minIntervalMs / 10)));
  }

  #inProcessPort() {
    return {
      workers: async () => this.deadman.watched(),
      trip: async (w: { workerId: string; tenant: string; agent: string }) => {
        await this.deadman.trip(w.workerId, 'serve', w);
      },
      beat: async () => {
        this.liveness.beat('watchdog', 'serve');
        return { supervisorAgoMs: this.liveness.age('supervisor').ms };
      },
      absence: (kind: 'supervisor.absent' | 'supervisor.recovered', ageMs: number) =>
        this.absence(kind, ageMs, 'watchdog:serve'),
    };
  }
}
