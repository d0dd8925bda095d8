import type { Directive, EffectCounts } from '@killpath/protocol';
import type { AgentProcess, AgentSpec, FleetHarness } from '../fleet/harness.ts';
import { auditHead, awaitHaltReports, measureFlip, type FlipOutcome, type FlipSpec } from '../fleet/flip.ts';
import { why, type DrillContext, type Measured, type Scenario } from './context.ts';
import { DRILL_SCOPES, type DrillScope } from './scopes.ts';
import {
  check,
  journalCheck,
  journalChecks,
  permitsAfter,
  queueState,
  recoveryMs,
  sleep,
  startedAfter,
  summarize,
  tagged,
  targetChecks,
  timeline,
  until,
  type EventLine,
} from './measure.ts';

/**
 * The shared demo fleet: one process per agent of the spec (two in a full drill), each hosting
 * one run and a child run, doing reads, writes, a slow write in flight, a run-bound interval
 * and a queue (the demo agent).
 */
export function mainFleetSpecs(ctx: Pick<DrillContext, 'env' | 'compact'>): AgentSpec[] {
  const per = ctx.compact ? 1 : 2;
  let n = 0;
  return ctx.env.agents.flatMap((a) =>
    Array.from({ length: per }, (_, i) => ({
      tenant: a.tenant,
      agent: a.agent,
      runs: [`${ctx.env.prefix}-${a.agent}-${i + 1}`],
      features: a.features,
      // Two releases across the fleet, alternating, so a release scope covers some processes only.
      env: { KILLPATH_RELEASE_CODE: drillRelease(ctx, n++ % 2) },
    })),
  );
}

/** The code release the drill's main fleet process `i` (0 or 1, alternating) runs. */
function drillRelease(ctx: Pick<DrillContext, 'env'>, i: number): string {
  return `${ctx.env.prefix}-${i === 0 ? 'a' : 'b'}`;
}

/** The run and its descendants. */
const runAndChildren = (a: AgentProcess, run: string, root: string) =>
  a.runs.some((r) => r.runId === run && (r.runId === root || r.lineage.includes(root)));

/** The strictest signal-to-halt target among the agents a flip covers. */
function targetOf(ctx: DrillContext, agents: AgentProcess[]): number | null {
  const t = agents
    .map((a) => ctx.env.agents.find((d) => d.tenant === a.spec.tenant && d.agent === a.spec.agent)?.targetMs)
    .filter((v): v is number => v !== undefined);
  return t.length === 0 ? null : Math.min(...t);
}

/**
 * Flips several directives at once (an operator pressing several buttons, or one), waits for
 * the covered workers to settle and for the window, measures, resumes, waits for recovery and
 * reads the ledger of the covered runs. Everything the flip scenarios report.
 */
export async function flipBurst(
  ctx: DrillContext,
  fleet: FleetHarness,
  specs: FlipSpec[],
  opts: { audit?: string[] } = {},
): Promise<Measured & { outcomes: FlipOutcome[] }> {
  const { env } = ctx;
  const cursor = await auditHead(env.api);
  const directives = await Promise.all(specs.map((s) => env.issue(s.body)));
  const flips = specs.map((spec, i) => ({ spec, directive: directives[i]! }));
  const reports = await awaitHaltReports(env.api, fleet, flips, {
    cursor,
    started: Date.now(),
    waitMs: Math.max(10_000, ctx.windowMs + 5000),
    windowMs: ctx.windowMs,
  });
  const windowEnd = Date.now();
  const firstFlip = Math.min(...directives.map((d) => env.flipWall(d)));
  const outcomes = await Promise.all(
    flips.map((f) =>
      measureFlip(
        env.api,
        fleet,
        f.spec,
        f.directive,
        env.flipWall(f.directive),
        cursor,
        reports.get(f.directive.id)!,
      ),
    ),
  );

  const events = tagged(fleet.agents);
  const coversOf = (spec: FlipSpec) => {
    const byPid = new Map(fleet.agents.map((a) => [a.pid, a]));
    return (e: EventLine) => {
      const a = byPid.get(e.pid as number);
      return a !== undefined && spec.covers(a, String(e.runId), String(e.capability));
    };
  };
  const points = flips.flatMap((f) => {
    const cov = coversOf(f.spec);
    const mine = events.filter((e) => cov(e));
    return timeline(mine, () => true, env.flipWall(f.directive), -1500, ctx.windowMs + 500);
  });
  let queue: Measured['queue'] = null;
  for (const f of flips) {
    if (f.spec.body.capabilities !== undefined) continue;
    for (const a of fleet.agents) {
      const runs = new Set(a.runs.filter((r) => f.spec.covers(a, r.runId, 'search')).map((r) => r.runId));
      if (runs.size === 0) continue;
      const observe = a.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= f.directive.rev);
      const q = queueState(
        a.events as EventLine[],
        (run) => runs.has(run),
        f.directive.id,
        env.flipWall(f.directive),
        observe?.wall ?? env.flipWall(f.directive),
        windowEnd,
      )!;
      queue =
        queue === null
          ? q
          : {
              atFlip: queue.atFlip + q.atFlip,
              afterWindow: queue.afterWindow + q.afterWindow,
              discarded: queue.discarded + q.discarded,
            };
    }
  }
  let auditSeen: string[] = [];
  if (opts.audit) {
    const recs = (
      await env.api.get<{ records: { type: string; data: Record<string, unknown> }[] }>(
        `/v1/audit?after=${cursor}&limit=5000`,
      )
    ).records;
    auditSeen = [
      ...new Set(recs.filter((r) => directives.some((d) => r.data.directiveId === d.id)).map((r) => r.type)),
    ];
  }

  // Resume, then watch the covered runs come back.
  const cleared = await Promise.all(directives.map((d) => env.resume(d, 'drill: measured, resuming')));
  const resumeWalls = cleared.map((d) => env.clearWall(d));
  const recover = async () => {
    const now = tagged(fleet.agents);
    return flips.map((f, i) => recoveryMs(now.filter(coversOf(f.spec)), () => true, resumeWalls[i]!));
  };
  const recovered = await until(10_000, async () => {
    const r = await recover();
    return r.every((v) => v !== null) && r;
  });
  const recovery = recovered ?? (await recover());
  const recoveryWorst = recovery.some((v) => v === null) ? null : Math.max(...(recovery as number[]));
  await sleep(300); // outcomes of the effects in flight at the resume reach the ledger
  const coveredRuns = [
    ...new Set(
      fleet.agents.flatMap((a) =>
        a.runs
          .filter((r) =>
            specs.some((s) => s.covers(a, r.runId, 'crm.update') || s.covers(a, r.runId, 'export_report')),
          )
          .map((r) => r.runId),
      ),
    ),
  ];
  const anyCovers = (run: string, cap: string) =>
    fleet.agents.some(
      (a) => a.runs.some((r) => r.runId === run) && specs.some((sp) => sp.covers(a, run, cap)),
    );
  const journal = await journalCheck(
    env.api,
    coveredRuns,
    tagged(fleet.agents),
    Math.min(...resumeWalls),
    anyCovers,
    firstFlip - 2000,
  );

  const workers = outcomes.flatMap((o) => o.covered);
  const covAgents = fleet.agents.filter((a) => workers.some((w) => w.pid === a.pid));
  const sth = summarize(workers.map((w) => w.timeToStopMs).filter((t): t is number => t !== null));
  // Effects after the flip as DESIGN counts them: reads that started after the commit (bounded by
  // observe), writes and irreversible ones *permitted* after it (guarantee 1: must be 0). A write
  // permitted before the flip whose answer was still travelling may start after it; it is aborted
  // when its worker observes the flip, and is counted in the notes.
  const after: EffectCounts = { read: 0, write: 0, irreversible: 0 };
  let inFlightAcross = 0;
  for (const o of outcomes) {
    after.read += o.startedAfterFlip.read ?? 0;
    after.write += o.permitsAfterFlipByClass.write;
    after.irreversible += o.permitsAfterFlipByClass.irreversible;
    inFlightAcross += (o.startedAfterFlip.write ?? 0) + (o.startedAfterFlip.irreversible ?? 0);
  }
  const sum = (f: (o: FlipOutcome) => number) => outcomes.reduce((n, o) => n + f(o), 0);
  const targetMs = targetOf(ctx, covAgents);
  const slow = { aborted: sum((o) => o.slowAborted.aborted), of: sum((o) => o.slowAborted.of) };
  // Workers no flip of the burst covers must keep working.
  const outside = fleet.agents.filter((a) => !covAgents.includes(a));
  const uncovered = {
    workers: outside.length,
    working: outside.filter((a) => a.events.some((e) => e.type === 'effect.landed' && e.wall > firstFlip))
      .length,
  };
  const checks = [
    check(
      'no covered effect after observe',
      'invariant',
      sum((o) => o.startedAfterObserve) === 0,
      `${sum((o) => o.startedAfterObserve)} covered effect(s) started after their worker applied the flip`,
    ),
    check(
      'no write permit after the flip',
      'invariant',
      sum((o) => o.permitsAfterFlip) === 0,
      `${sum((o) => o.permitsAfterFlip)} write/irreversible permit(s) granted at or after the flip's rev (guarantee 1, from the control plane's audit)`,
    ),
    check(
      'every covered worker halted',
      'invariant',
      sum((o) => o.missingReports) === 0,
      `${workers.length - sum((o) => o.missingReports)}/${workers.length} covered worker(s) settled and reported halted`,
    ),
    check(
      'no timer fired after observe',
      'invariant',
      sum((o) => o.timersAfterObserve) === 0,
      `${sum((o) => o.timersAfterObserve)} run-bound timer(s) of covered runs fired after the flip was observed`,
    ),
    check(
      'no queued task started after observe',
      'invariant',
      sum((o) => o.tasksAfterObserve) === 0,
      `${sum((o) => o.tasksAfterObserve)} queued task(s) of covered runs started after the flip was observed`,
    ),
    ...(slow.of > 0
      ? [
          check(
            'in-flight writes rolled back',
            'expectation',
            slow.aborted === slow.of,
            `the slow write in flight was aborted on ${slow.aborted}/${slow.of} worker(s)`,
          ),
        ]
      : []),
    ...(uncovered.workers > 0
      ? [
          check(
            'workers outside the scope kept working',
            'expectation',
            uncovered.working === uncovered.workers,
            `${uncovered.working}/${uncovered.workers} uncovered worker(s) landed effects after the flip`,
          ),
        ]
      : []),
    ...journalChecks(journal),
    ...targetChecks(sth, targetMs, recoveryWorst, ctx.spec.latency.haltToRecoveryMs),
  ];
  if (opts.audit) {
    // `queue.discarded` is recorded only when a covered run had tasks waiting at the flip (the
    // spec's runbook says so): expected when the journal shows a discard, never otherwise.
    const discarded = queue?.discarded ?? 0;
    const expected = opts.audit.filter((t) => t !== 'queue.discarded' || discarded > 0);
    const missing = expected.filter((t) => !auditSeen.includes(t));
    checks.push(
      check(
        'audit events present',
        'expectation',
        missing.length === 0,
        missing.length === 0
          ? `on the record: ${expected.join(', ')}${expected.length < opts.audit.length ? ' (no task was waiting at the flip: nothing to discard)' : ''}`
          : `missing from the audit: ${missing.join(', ')} (seen: ${auditSeen.join(', ')})`,
      ),
    );
  }
  return {
    outcomes,
    signalToHalt: sth,
    haltToRecoveryMs: recoveryWorst,
    effectsAfterFlip: after,
    effectsAfterObserve: sum((o) => o.startedAfterObserve),
    queue,
    journal,
    checks,
    timeline: points,
    targetMs,
    notes: [
      `${inFlightAcross} covered write(s) permitted before the flip started while their permit's answer was travelling (after the commit, before their worker observed it); each is aborted on observe`,
      `${directives.length} directive(s): ${directives.map((d: Directive) => `${d.level} ${d.scopeText}${d.capabilities ? ` tools=${d.capabilities.join(',')}` : ''}`).join('; ')}`,
    ],
  };
}

/** The first agent of the spec and its processes in the fleet. */
function agentProcs(fleet: FleetHarness, i: number, ctx: DrillContext): AgentProcess[] {
  const a = ctx.env.agents[i % ctx.env.agents.length]!;
  return fleet.agents.filter((p) => p.spec.tenant === a.tenant && p.spec.agent === a.agent);
}

const S1: Scenario = {
  id: 'S1',
  title: 'operator presses the console button mid-run',
  path: 'synchronous',
  async run(ctx) {
    const fleet = await ctx.mainFleet();
    // One run of every agent halted at once, as operators pressing the console's button on each
    // (the console, the API and the CLI all issue the same directive).
    const specs: FlipSpec[] = fleet.agents
      .filter(
        (a, i, all) =>
          all.findIndex((b) => b.spec.agent === a.spec.agent && b.spec.tenant === a.spec.tenant) === i,
      )
      .map((a) => {
        const root = a.runs[0]!.runId;
        return {
          label: `run ${root}`,
          body: { level: 'halt', scope: `run:${root}`, ...why(ctx, `S1 halt run ${root} mid-run`) },
          covers: (p, run) => runAndChildren(p, run, root),
        } satisfies FlipSpec;
      });
    // The audit events the spec promises that an operator's halt of a run mid-call records (those naming the directive).
    const expected = [
      'operator_action',
      'kill_switch.fired',
      'session.halted',
      'in_flight_tool_calls.status',
      'timer.cancelled',
      'queue.discarded',
    ].filter((t) => t === 'operator_action' || ctx.spec.sideEffects.auditEvents.includes(t));
    const m = await flipBurst(ctx, fleet, specs, { audit: expected });
    return m;
  },
};

/** One flip at each scope, on the shared fleet. */
function scopeScenario(scope: DrillScope): Scenario {
  return {
    id: `scope:${scope}`,
    title: {
      capability: 'freeze one tool of one agent',
      run: 'halt one run and its child run',
      agent: 'halt one agent (all its processes)',
      tenant: 'halt one tenant',
      feature: 'halt every run that declares one feature (a bad feature flag)',
      release: 'halt every run on one release (a bad rollout)',
      global: 'kill everything (break-glass)',
    }[scope],
    path: 'synchronous',
    async run(ctx) {
      if (scope === 'global' && ctx.env.mode === 'remote' && !ctx.allowGlobal) {
        return {
          checks: [],
          skipped:
            'a global flip stops every tenant of the deployment, not only the staging tenant; pass --allow-global to rehearse it',
        };
      }
      const featured = ctx.env.agents.find((a) => a.features.length > 0);
      if (scope === 'feature' && featured === undefined) {
        return {
          checks: [],
          skipped: 'no agent of the spec declares a feature (features: [...]) for a feature scope to cover',
        };
      }
      const fleet = await ctx.mainFleet();
      const n = ctx.env.agents.length;
      let spec: FlipSpec;
      if (scope === 'capability') {
        const a = agentProcs(fleet, 1, ctx)[0]!.spec;
        spec = {
          label: 'tool',
          body: {
            level: 'halt',
            scope: `agent:${a.tenant}/${a.agent}`,
            capabilities: ['crm.update'],
            ...why(ctx, 'freeze crm.update'),
          },
          covers: (p, _r, cap) =>
            p.spec.tenant === a.tenant && p.spec.agent === a.agent && cap === 'crm.update',
        };
      } else if (scope === 'run') {
        const root = agentProcs(fleet, 0, ctx)[0]!.runs[0]!.runId;
        spec = {
          label: 'run',
          body: { level: 'halt', scope: `run:${root}`, ...why(ctx, `halt run ${root}`) },
          covers: (p, run) => runAndChildren(p, run, root),
        };
      } else if (scope === 'agent') {
        const a = agentProcs(fleet, 2 % n, ctx)[0]!.spec;
        spec = {
          label: 'agent',
          body: {
            level: 'halt',
            scope: `agent:${a.tenant}/${a.agent}`,
            ...why(ctx, `halt agent ${a.agent}`),
          },
          covers: (p) => p.spec.tenant === a.tenant && p.spec.agent === a.agent,
        };
      } else if (scope === 'tenant') {
        const t = ctx.env.agents[0]!.tenant;
        spec = {
          label: 'tenant',
          body: { level: 'halt', scope: `tenant:${t}`, ...why(ctx, `halt tenant ${t}`) },
          covers: (p) => p.spec.tenant === t,
        };
      } else if (scope === 'feature') {
        const { tenant: t, features } = featured!;
        const f = features[0]!;
        spec = {
          label: 'feature',
          body: { level: 'halt', scope: `feature:${f}`, tenant: t, ...why(ctx, `halt feature ${f}`) },
          covers: (p) => p.spec.tenant === t && (p.spec.features ?? []).includes(f),
        };
      } else if (scope === 'release') {
        const t = ctx.env.agents[0]!.tenant;
        const code = drillRelease(ctx, 0);
        spec = {
          label: 'release',
          body: {
            level: 'halt',
            scope: `release:code=${code}`,
            tenant: t,
            ...why(ctx, `halt release code=${code}`),
          },
          covers: (p) => p.spec.tenant === t && p.spec.env?.KILLPATH_RELEASE_CODE === code,
        };
      } else {
        spec = {
          label: 'global',
          body: {
            level: 'kill',
            scope: 'global',
            breakGlass: 'drill: rehearsing the stop-the-world button',
            ...why(ctx, 'stop the world'),
          },
          covers: () => true,
        };
      }
      return flipBurst(ctx, fleet, [spec]);
    },
  };
}

/** Effect starts per second of each covered run over `ms`. */
function ratePerRun(agents: AgentProcess[], from: number, ms: number): number {
  const runs = agents.reduce((n, a) => n + a.runs.length, 0);
  const started = agents.reduce(
    (n, a) =>
      n + a.events.filter((e) => e.type === 'effect.started' && e.wall >= from && e.wall < from + ms).length,
    0,
  );
  return started / (ms / 1000) / Math.max(1, runs);
}

const THROTTLE: Scenario = {
  id: 'level:throttle',
  title: 'throttle one agent to 5 effects per second per run',
  path: 'ladder',
  async run(ctx) {
    const fleet = await ctx.mainFleet();
    const procs = agentProcs(fleet, 3, ctx);
    const a = procs[0]!.spec;
    const before = ratePerRun(procs, Date.now() - 1000, 1000);
    const d = await ctx.env.issue({
      level: 'throttle',
      scope: `agent:${a.tenant}/${a.agent}`,
      rate: { perSecond: 5, per: 'run' },
      ...why(ctx, 'throttle'),
    });
    const flip = ctx.env.flipWall(d);
    await sleep(500);
    const from = Date.now();
    const ms = ctx.compact ? 2000 : 5000;
    await sleep(ms);
    const rate = ratePerRun(procs, from, ms);
    const observeAt = procs.map(
      (p) => p.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= d.rev)?.wall ?? Number.NaN,
    );
    const cleared = await ctx.env.resume(d, 'drill: throttle measured');
    const resumeWall = ctx.env.clearWall(cleared);
    await sleep(1000);
    const afterRate = ratePerRun(procs, resumeWall + 200, 800);
    const events = tagged(procs);
    return {
      signalToHalt: summarize(observeAt.map((t) => t - flip)),
      checks: [
        check(
          'rate at or under the dial',
          'invariant',
          rate <= 5 * 1.2,
          `${rate.toFixed(2)} effect starts/s per run over ${ms / 1000} s (dialled 5/s; before the throttle ${before.toFixed(1)}/s)`,
        ),
        check(
          'the agent kept working, slower',
          'expectation',
          rate > 1,
          `${rate.toFixed(2)}/s per run: throttled, not stopped`,
        ),
        check(
          'full speed after the resume',
          'expectation',
          afterRate > 5,
          `${afterRate.toFixed(1)}/s per run after the resume`,
        ),
      ],
      timeline: timeline(events, () => true, flip, -1500, ms + 500),
      notes: [
        'signal-to-halt here is flip → each worker applied the throttle (a throttle delays, it halts nothing)',
      ],
      targetMs: null,
    };
  },
};

const DEGRADE: Scenario = {
  id: 'level:degrade',
  title: 'revoke one tool (crm.update) of one agent; reads keep flowing',
  path: 'ladder',
  async run(ctx) {
    const fleet = await ctx.mainFleet();
    const procs = agentProcs(fleet, 4, ctx);
    const a = procs[0]!.spec;
    const d = await ctx.env.issue({
      level: 'degrade',
      scope: `agent:${a.tenant}/${a.agent}`,
      capabilities: ['crm.update'],
      ...why(ctx, 'revoke crm.update'),
    });
    const flip = ctx.env.flipWall(d);
    await sleep(Math.min(ctx.windowMs, 3000) + 500);
    let writesAfter = 0;
    let readsAfter = 0;
    const observed: number[] = [];
    for (const p of procs) {
      const observe = p.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= d.rev);
      if (observe === undefined) continue;
      observed.push(observe.wall - flip);
      writesAfter += p.events.filter(
        (e) => e.type === 'effect.started' && e.capability === 'crm.update' && e.at > observe.at,
      ).length;
      readsAfter += p.events.filter(
        (e) => e.type === 'effect.landed' && e.capability === 'search' && e.at > observe.at,
      ).length;
    }
    const alert = (await ctx.env.alerts()).find((x) => x.directiveId === d.id);
    const denied = (await ctx.env.audit('effect.denied')).filter((r) => r.data.directiveId === d.id);
    const cleared = await ctx.env.resume(d, 'drill: degrade measured');
    const runs = procs.flatMap((p) => p.runs.map((r) => r.runId));
    const permits = await permitsAfter(ctx.env.api, runs, d.rev, cleared.clearedRev, 'crm.update');
    const resumeWall = ctx.env.clearWall(cleared);
    const events = tagged(procs);
    const rec = await until(5000, () =>
      recoveryMs(tagged(procs), (_r, cap) => cap === 'crm.update', resumeWall),
    );
    return {
      signalToHalt: summarize(observed),
      haltToRecoveryMs: rec,
      effectsAfterObserve: writesAfter,
      effectsAfterFlip: {
        read: startedAfter(events, (_r, cap) => cap === 'crm.update', flip).read,
        ...permits,
      },
      checks: [
        check(
          'every worker applied it',
          'invariant',
          observed.length === procs.length,
          `${observed.length}/${procs.length} worker(s) applied the degrade`,
        ),
        check(
          'no revoked call after observe',
          'invariant',
          writesAfter === 0,
          `${writesAfter} crm.update call(s) started after the worker applied the degrade`,
        ),
        check(
          'no permit for the revoked tool after the flip',
          'invariant',
          permits.write + permits.irreversible === 0,
          `${permits.write + permits.irreversible} crm.update permit(s) granted while the degrade was in force`,
        ),
        check(
          'reads keep flowing',
          'expectation',
          readsAfter > 0,
          `${readsAfter} search read(s) landed after it`,
        ),
        check(
          'operator alerted',
          'expectation',
          alert !== undefined,
          alert ? `alert "${alert.kind}": ${alert.summary}` : 'no alert for the degrade',
        ),
        check(
          'denial journaled',
          'expectation',
          denied.length > 0,
          `${denied.length} effect.denied record(s) naming the directive`,
        ),
        ...targetChecks(null, null, rec, ctx.spec.latency.haltToRecoveryMs),
      ],
      timeline: timeline(events, (_r, cap) => cap === 'crm.update', flip, -1500, 3000),
      notes: ['signal-to-halt here is flip → worker applied the degrade; the timeline shows crm.update only'],
      targetMs: null,
    };
  },
};

const HALT: Scenario = {
  id: 'level:halt',
  title: 'halt one agent with the spec\u2019s grace',
  path: 'ladder',
  async run(ctx) {
    const fleet = await ctx.mainFleet();
    const a = agentProcs(fleet, 1, ctx)[0]!.spec;
    return flipBurst(ctx, fleet, [
      {
        label: 'halt',
        body: {
          level: 'halt',
          scope: `agent:${a.tenant}/${a.agent}`,
          graceMs: ctx.spec.mechanism.haltGraceMs,
          ...why(ctx, 'halt with grace'),
        },
        covers: (p) => p.spec.tenant === a.tenant && p.spec.agent === a.agent,
      },
    ]);
  },
};

/** The flip scenarios on the shared fleet. */
export const FLIP_SCENARIOS: Scenario[] = [S1, ...DRILL_SCOPES.map(scopeScenario), THROTTLE, DEGRADE, HALT];
