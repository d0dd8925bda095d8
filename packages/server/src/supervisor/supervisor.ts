import { Counter, Histogram, type Registry } from 'prom-client';
import {
  KillpathError,
  LEVELS,
  formatScope,
  levelRank,
  type Level,
  type Principal,
  type RunTelemetry,
} from '@killpath/protocol';
import type { ControlPlane } from '../control-plane.ts';
import type { AuditStore, FleetStore } from '../store/store.ts';
import type { IssueDirectiveBody } from '../http/schemas.ts';
import { DEFAULT_AUTOMATION, type AutomationPolicy } from '../ladder.ts';
import type { Logger } from '../log.ts';
import { CelLimits, CelSubject, type RuleContext } from '../policy/cel-env.ts';
import type { CompiledPolicy, CompiledRule } from '../policy/policy.ts';
import { MetricsBook, type SubjectMetrics, type Touched } from './metrics-book.ts';

/** What the supervisor needs of the control plane: issuing, alerts, metrics, its automation policy, audit and runs. */
export type SupervisorHost = Pick<ControlPlane, 'issue' | 'metrics' | 'alerts' | 'automation'> & {
  readonly store: Pick<AuditStore, 'appendAudit'> & Pick<FleetStore, 'getRun'>;
};

/** The policy in force: its version and compiled form. */
export interface ActivePolicy {
  version: number;
  policy: CompiledPolicy;
}

/** One rule firing (or, in shadow mode, what it would have done), as the supervisor records it. */
export interface Fire {
  rule: string;
  mode: 'enforce' | 'shadow';
  policyVersion: number;
  /** The scope the directive targets (`run:R`, `agent:T/A`, `tenant:T`). */
  scope: string;
  tenant: string;
  /** The level the rule asks for, and the one issued (lower when the automation policy held the rest; null when nothing could be issued). */
  wanted: Level;
  level: Level | null;
  /** What the rule saw. */
  values: Record<string, number | string>;
  /** The book's clock (ms) when the telemetry that crossed the line arrived. */
  receivedAt: number;
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  /** Where fires go; without it (the offline replay) fires are only recorded. */
  cp?: SupervisorHost;
  /** Which levels may be taken automatically (default: the control plane's, else {@link DEFAULT_AUTOMATION}). */
  automation?: AutomationPolicy;
  log: Logger;
  policy: () => ActivePolicy;
  /** Monotonic ms (default `performance.now()`); windows and latencies are measured on it. */
  now?: () => number;
  /** Runs not heard from for this long are forgotten (default 10 minutes). */
  idleMs?: number;
  /** Called for every fire and shadow fire (tests, the offline replay). */
  onFire?: (f: Fire) => void;
}

const SUPERVISOR: Omit<Principal, 'name'> = Object.freeze({
  tokenId: 'supervisor',
  role: 'admin',
  tenant: '*',
  agent: null,
});

/**
 * The policy supervisor: the asynchronous path. It keeps the telemetry workers report (per
 * run, agent and tenant, with sliding windows), evaluates every rule of the active policy on
 * each run's update, and fires a rule on the edge: when its condition becomes true for a target
 * (the run, agent or tenant its action names). An enforced rule issues its directive through
 * {@link ControlPlane.issue} as `supervisor:<rule>` (so `kill_switch.fired` names the rule) and
 * notifies the operator after the fact; a shadow rule records `policy.shadow_fired` and nothing
 * else. A level the automation policy reserves for people is held (`escalation.held`, alerted)
 * unless the rule is critical, and the highest allowed level below it is issued instead.
 * A rule fires again for a target only after its condition was false in between.
 */
export class Supervisor {
  readonly book: MetricsBook;
  readonly #o: Required<Omit<SupervisorOptions, 'onFire' | 'cp' | 'automation'>> & {
    onFire: SupervisorOptions['onFire'];
  };
  readonly #cp: SupervisorHost | null;
  readonly #automation: AutomationPolicy;
  /** Per target scope: digests of rules whose condition is true there. */
  readonly #latched = new Map<string, Set<string>>();
  readonly #stats = new Map<
    string,
    {
      fired: number;
      shadow: number;
      held: number;
      errors: number;
      lastError: string | null;
      lastFiredAt: string | null;
    }
  >();
  readonly #pending = new Set<Promise<void>>();
  readonly #fires: Counter<'rule' | 'mode'>;
  readonly #latency: Histogram;
  readonly #runs: Counter;
  #updates = 0;
  #pruneAt = 0;

  constructor(opts: SupervisorOptions) {
    this.#o = {
      now: () => performance.now(),
      idleMs: 600_000,
      log: opts.log,
      policy: opts.policy,
      onFire: opts.onFire,
      ...(opts.now ? { now: opts.now } : {}),
      ...(opts.idleMs ? { idleMs: opts.idleMs } : {}),
    };
    this.#cp = opts.cp ?? null;
    this.#automation = opts.automation ?? opts.cp?.automation ?? DEFAULT_AUTOMATION;
    this.book = new MetricsBook(opts.policy().policy.retentionMs);
    const registry: Registry | null = opts.cp ? opts.cp.metrics.registry : null;
    const registers = registry ? [registry] : [];
    const existing = <M>(name: string): M | undefined =>
      (registry?.getSingleMetric(name) as M | undefined) ?? undefined;
    this.#fires =
      existing<Counter<'rule' | 'mode'>>('killpath_policy_fires_total') ??
      new Counter({
        name: 'killpath_policy_fires_total',
        help: 'Policy rules that fired (enforce) or would have (shadow)',
        labelNames: ['rule', 'mode'] as const,
        registers,
      });
    this.#latency =
      existing<Histogram>('killpath_trigger_latency_seconds') ??
      new Histogram({
        name: 'killpath_trigger_latency_seconds',
        help: 'Telemetry that crossed a rule arriving at the control plane to the directive commit',
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers,
      });
    this.#runs =
      existing<Counter>('killpath_telemetry_run_updates_total') ??
      new Counter({
        name: 'killpath_telemetry_run_updates_total',
        help: 'Run updates received in telemetry batches',
        registers,
      });
  }

  /** Run updates evaluated so far. */
  get updates(): number {
    return this.#updates;
  }

  /**
   * Takes one telemetry batch of a worker of `tenant`/`agent` and evaluates the rules on each run
   * it updates, synchronously; directives are issued in the background. `at`: when the batch
   * arrived, on the supervisor's clock (default now; a batch another replica received earlier
   * enters its windows at that time).
   */
  ingest(
    who: { workerId: string; tenant: string; agent: string },
    runs: readonly RunTelemetry[],
    at?: number,
  ): void {
    const active = this.#o.policy();
    const book = this.book;
    book.now = at ?? this.#o.now();
    if (book.retentionMs !== active.policy.retentionMs) book.retentionMs = active.policy.retentionMs;
    const limits = active.policy.limitsFor(who.tenant, who.agent);
    const celLimits = new CelLimits(limits.maxSteps, limits.maxCostUsd);
    for (const t of runs) {
      const touched = book.ingest(who.workerId, who.tenant, who.agent, t);
      this.#updates += 1;
      if (touched.changed) this.#evaluate(active, touched, celLimits);
    }
    this.#runs.inc(runs.length);
    if (book.now >= this.#pruneAt) {
      this.#pruneAt = book.now + 60_000;
      for (const key of book.prune(this.#o.idleMs))
        this.#latched.delete(`run:${key.slice(key.indexOf('\u0000') + 1)}`);
    }
  }

  #evaluate(active: ActivePolicy, t: Touched, limits: CelLimits): void {
    const ctx: RuleContext = {
      run: new CelSubject(t.run),
      agent: new CelSubject(t.agent),
      tenant: new CelSubject(t.tenant),
      limits,
    };
    for (const rule of active.policy.rules) {
      let hit: boolean;
      try {
        hit = rule.test(ctx);
      } catch (err) {
        const s = this.#stat(rule.name);
        s.errors += 1;
        const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
        if (s.lastError !== msg)
          this.#o.log.warn('policy rule failed to evaluate (counts as false)', {
            rule: rule.name,
            err: msg,
            run: t.run.id,
          });
        s.lastError = msg;
        hit = false;
      }
      const target = targetOf(rule, t);
      let set = this.#latched.get(target.scope);
      const was = set?.has(rule.digest) ?? false;
      if (!hit) {
        if (was) set!.delete(rule.digest);
        continue;
      }
      if (was) continue;
      if (set === undefined) this.#latched.set(target.scope, (set = new Set()));
      set.add(rule.digest);
      const fire: Fire = {
        rule: rule.name,
        mode: rule.mode,
        policyVersion: active.version,
        scope: target.scope,
        tenant: t.run.tenant,
        wanted: rule.action.level,
        level: rule.action.level,
        values: valuesOf(t),
        receivedAt: this.book.now,
      };
      if (rule.mode === 'shadow') this.#shadow(rule, fire, t);
      else this.#track(this.#fire(rule, fire, t));
    }
  }

  #shadow(rule: CompiledRule, fire: Fire, t: Touched): void {
    const s = this.#stat(rule.name);
    s.shadow += 1;
    s.lastFiredAt = new Date().toISOString();
    this.#fires.inc({ rule: rule.name, mode: 'shadow' });
    this.#o.onFire?.(fire);
    const cp = this.#cp;
    if (cp === null) return;
    const data = {
      rule: rule.name,
      policyVersion: fire.policyVersion,
      wouldIssue: { level: rule.action.level, scope: fire.scope },
      run: t.run.id,
      agent: t.run.agent,
      values: fire.values,
    };
    this.#track(
      cp.store
        .appendAudit([
          { type: 'policy.shadow_fired', actor: `supervisor:${rule.name}`, tenant: fire.tenant, data },
        ])
        .then(() => {
          cp.metrics.auditRecords.inc();
        }),
    );
  }

  async #fire(rule: CompiledRule, fire: Fire, t: Touched): Promise<void> {
    const s = this.#stat(rule.name);
    const decided = allowedLevel(rule, this.#automation);
    fire.level = decided.level;
    this.#fires.inc({ rule: rule.name, mode: 'enforce' });
    this.#o.onFire?.(fire);
    const cp = this.#cp;
    if (cp === null) {
      s.fired += 1;
      return;
    }
    if (rule.action.scope === 'run') {
      // A run id reported by another agent than the one that registered it is not that agent's to stop.
      const known = await cp.store.getRun(t.run.tenant, t.run.id);
      if (known !== null && (known.tenant !== t.run.tenant || known.agent !== t.run.agent)) {
        this.#o.log.warn('policy rule ignored: the run belongs to another agent', {
          rule: rule.name,
          run: t.run.id,
          reportedBy: `${t.run.tenant}/${t.run.agent}`,
        });
        return;
      }
    }
    const name = `supervisor:${rule.name}`;
    if (decided.held) {
      s.held += 1;
      const why = `automatic ${rule.action.level} needs a human (automation policy); ${decided.level === null ? 'nothing issued' : `${decided.level} issued instead`}`;
      await cp.store.appendAudit([
        {
          type: 'escalation.held',
          actor: name,
          tenant: fire.tenant,
          data: {
            rule: rule.name,
            policyVersion: fire.policyVersion,
            scope: fire.scope,
            level: rule.action.level,
            issued: decided.level,
            reason: why,
            values: fire.values,
          },
        },
      ]);
      cp.alerts.notify({
        kind: 'escalation.held',
        summary: `policy rule ${rule.name} on ${fire.scope}: ${why}`,
        tenant: fire.tenant,
        directiveId: null,
        details: { rule: rule.name, level: rule.action.level, issued: decided.level, scope: fire.scope },
      });
    }
    if (decided.level === null) return;
    const level = decided.level;
    const body: IssueDirectiveBody = {
      level,
      scope: fire.scope,
      tenant: fire.tenant,
      reason: clip(`policy rule ${rule.name}: ${rule.when.replace(/\s+/g, ' ')}`, 500),
      justification: clip(
        `automatic: policy v${fire.policyVersion} rule ${rule.name} fired on run ${t.run.id} of ${t.run.tenant}/${t.run.agent} (${describeValues(fire.values)})`,
        4000,
      ),
      ...(rule.action.graceMs !== undefined ? { graceMs: rule.action.graceMs } : {}),
      ...(rule.action.capabilities !== undefined && level !== 'isolate'
        ? { capabilities: rule.action.capabilities }
        : {}),
      ...(level === 'throttle' && rule.action.rate !== undefined ? { rate: rule.action.rate } : {}),
    };
    let result;
    try {
      result = await cp.issue({ ...SUPERVISOR, name }, body, {
        via: 'supervisor',
        trigger: {
          kind: 'supervisor',
          rule: rule.name,
          details: {
            policyVersion: fire.policyVersion,
            mode: 'enforce',
            run: t.run.id,
            agent: t.run.agent,
            values: fire.values,
            ...(decided.held ? { wanted: rule.action.level } : {}),
          },
        },
      });
    } catch (err) {
      this.#o.log.error('policy rule could not issue its directive', {
        rule: rule.name,
        scope: fire.scope,
        err: err instanceof KillpathError ? err.message : String(err),
      });
      return;
    }
    if (!result.created) return;
    const d = result.directive;
    s.fired += 1;
    s.lastFiredAt = d.issuedAt;
    const latencyMs = this.#o.now() - fire.receivedAt;
    this.#latency.observe(latencyMs / 1000);
    this.#o.log.info('policy rule fired', {
      rule: rule.name,
      directiveId: d.id,
      scope: d.scopeText,
      directiveLevel: d.level,
      rev: d.rev,
      triggerLatencyMs: Math.round(latencyMs * 1000) / 1000,
    });
    if (rule.notify) {
      cp.alerts.notify({
        kind: 'kill_switch.fired',
        summary: `policy rule ${rule.name} fired: ${d.level} ${d.scopeText} (${describeValues(fire.values)}); to undo: killpath resume ${d.id} --reason "…"`,
        tenant: d.tenant,
        directiveId: d.id,
        details: {
          rule: rule.name,
          policyVersion: fire.policyVersion,
          level: d.level,
          scope: d.scopeText,
          run: t.run.id,
          agent: t.run.agent,
          values: fire.values,
          triggerLatencyMs: latencyMs,
        },
      });
    }
  }

  /** Per rule: fires, shadow fires, held escalations and evaluation errors since start. */
  status(): {
    updates: number;
    runs: number;
    rules: Record<
      string,
      {
        fired: number;
        shadow: number;
        held: number;
        errors: number;
        lastError: string | null;
        lastFiredAt: string | null;
      }
    >;
  } {
    return { updates: this.#updates, runs: this.book.runs.size, rules: Object.fromEntries(this.#stats) };
  }

  /** Resolves once every directive and record started so far is committed. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #track(p: Promise<void>): void {
    const q = p
      .catch((err: unknown) => this.#o.log.error('supervisor action failed', { err: String(err) }))
      .finally(() => this.#pending.delete(q));
    this.#pending.add(q);
  }

  #stat(rule: string) {
    let s = this.#stats.get(rule);
    if (s === undefined)
      this.#stats.set(
        rule,
        (s = { fired: 0, shadow: 0, held: 0, errors: 0, lastError: null, lastFiredAt: null }),
      );
    return s;
  }
}

/** The directive's target for a rule evaluated on a run update. */
function targetOf(rule: CompiledRule, t: Touched): { scope: string } {
  const r: SubjectMetrics = t.run;
  switch (rule.action.scope) {
    case 'run':
      return { scope: formatScope({ kind: 'run', run: r.id }) };
    case 'agent':
      return { scope: formatScope({ kind: 'agent', tenant: r.tenant, agent: r.agent }) };
    case 'tenant':
      return { scope: formatScope({ kind: 'tenant', tenant: r.tenant }) };
  }
}

/**
 * The level a rule may issue on its own: its own when critical or automatic; else the highest
 * automatic level below it that can carry the rule's action (a throttle needs a rate; isolate
 * acts on processes, never on one run or a few tools); else none.
 */
export function allowedLevel(
  rule: Pick<CompiledRule, 'action' | 'critical'>,
  automation: Record<Level, 'auto' | 'human'>,
): { level: Level | null; held: boolean } {
  const want = rule.action.level;
  if (rule.critical || automation[want] === 'auto') return { level: want, held: false };
  for (let i = levelRank(want) - 2; i >= 0; i--) {
    const l = LEVELS[i]!;
    if (automation[l] !== 'auto') continue;
    if (l === 'throttle' && rule.action.rate === undefined) continue;
    if (l === 'isolate' && (rule.action.scope === 'run' || rule.action.capabilities !== undefined)) continue;
    return { level: l, held: true };
  }
  return { level: null, held: true };
}

function valuesOf(t: Touched): Record<string, number | string> {
  const r = t.run;
  const round = (v: number) => Math.round(v * 1e6) / 1e6;
  const calls = r.windowed(3, 60_000);
  const errors = r.windowed(4, 60_000);
  return {
    steps: r.totals[0]!,
    tokens: r.totals[1]!,
    cost_usd: round(r.totals[2]!),
    tool_calls: r.totals[3]!,
    tool_errors: r.totals[4]!,
    tool_error_rate_60s: round(calls === 0 ? 0 : errors / calls),
    auth_denials: r.totals[5]!,
    revoked_denials: r.totals[8]!,
    schema_violations: r.totals[6]!,
    anomalies: r.totals[7]!,
    anomaly_score: round(r.anomalyScore),
    ...(r.anomalyDetail !== null ? { anomaly_detail: r.anomalyDetail } : {}),
  };
}

function describeValues(v: Record<string, number | string>): string {
  const keys = [
    'steps',
    'cost_usd',
    'tool_calls',
    'tool_errors',
    'tool_error_rate_60s',
    'auth_denials',
    'schema_violations',
    'anomaly_score',
  ];
  return (
    keys
      .filter((k) => v[k] !== 0 && v[k] !== undefined)
      .map((k) => `${k}=${v[k]}`)
      .join(', ') || 'no counters'
  );
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
