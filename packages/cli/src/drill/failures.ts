import type { PathState } from '@killpath/protocol';
import { activeOn } from './processes.ts';
import { why, type Measured, type Scenario } from './context.ts';
import { check, sleep, summarize, timeline, until, type EventLine } from './measure.ts';
import { PartitionRelay } from './relay.ts';
import { allLines, fired, line, planAgent } from './triggers.ts';

const S7: Scenario = {
  id: 'S7',
  title: 'the supervisor process is itself down',
  path: 'defence-in-depth',
  async run(ctx): Promise<Measured> {
    if (ctx.env.mode === 'remote') {
      return {
        checks: [],
        skipped:
          'stopping the supervisor of a shared deployment is not something a drill should do; run the local drill (no --url) to rehearse S7',
      };
    }
    const absentAfterMs = ctx.compact ? 1000 : 5000;
    const started = Date.now();
    const { server, api } = await ctx.env.auxServer({ supervisor: false, policy: ctx.policy, absentAfterMs });
    const agent = ctx.env.agents[0]!;
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `${ctx.env.prefix}-s7${x}`) as [string, string, string];
    const p = await planAgent(ctx, agent, `work:${a},loop:${b},denial:${c}`, {}, { api });
    const absent = await until(absentAfterMs * 3 + 5000, async () =>
      (await ctx.env.alerts(api)).find((x) => x.kind === 'supervisor.absent'),
    );
    const local = await until(15_000, () =>
      p.events.find((e) => e.type === 'run.halted_locally' && e.runId === b),
    );
    await line(p, 10_000, (l) => l.k === 'done' && l.run === c);
    const attempts = p.lines.filter((l) => l.k === 'attempt' && l.run === c);
    const ruleFired = await fired(ctx, 'auth_denial', c, 1500, api);
    // The synchronous path: an operator halts run a on this control plane.
    const d = await ctx.env.issue(
      { level: 'halt', scope: `run:${a}`, ...why(ctx, 'S7 operator halt with the supervisor down') },
      api,
    );
    const flip = ctx.env.flipWall(d, server);
    const settled = await until(10_000, () =>
      p.events.find((e) => e.type === 'halt.settled' && e.directiveId === d.id),
    );
    const observe = p.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= d.rev);
    const after = observe
      ? p.events.filter((e) => e.type === 'effect.started' && e.runId === a && e.at > observe.at).length
      : null;
    const paths: PathState[] = [
      {
        path: 'watchdog notices the supervisor is absent',
        state: absent ? 'worked' : 'degraded',
        detail: absent
          ? `supervisor.absent raised ${Date.parse(absent.at) - started} ms after the control plane started (absent after ${absentAfterMs} ms): ${absent.summary}`
          : 'no supervisor.absent alert',
      },
      {
        path: 'synchronous path (operator halt)',
        state: settled ? 'worked' : 'degraded',
        detail: settled
          ? `run ${a} settled ${Math.round(settled.wall - flip)} ms after the flip`
          : 'the run never settled',
      },
      {
        path: 'local rules in the SDK (loop length, cost cap)',
        state: local ? 'worked' : 'degraded',
        detail: local
          ? `run ${b} halted by the SDK at step ${String(local.value)} (${String(local.rule)})`
          : 'no local halt',
      },
      {
        path: 'server-side rules (auth denial, tool-error rate, memory schema, anomaly)',
        state: 'degraded',
        detail: ruleFired
          ? 'UNEXPECTED: a rule fired although the supervisor is down'
          : `not evaluated while the supervisor is down: the SDK refused the ${attempts.length} unauthorised call(s) (${attempts.map((x) => String(x.reason)).join(', ')}), but nothing halted the run`,
      },
    ];
    return {
      signalToHalt: summarize(settled ? [settled.wall - flip] : []),
      effectsAfterObserve: after,
      paths,
      checks: [
        check('absence alerted', 'expectation', absent !== null, paths[0]!.detail),
        check(
          'synchronous path still works',
          'invariant',
          settled !== undefined && settled !== null && after === 0,
          `${paths[1]!.detail}; ${after ?? '-'} effect(s) after observe`,
        ),
        check('local rules still work', 'expectation', local !== null, paths[2]!.detail),
        check(
          'unauthorised calls still refused',
          'invariant',
          attempts.length === 3 && attempts.every((x) => x.reason !== null),
          attempts.map((x) => `attempt ${String(x.n)}: ${String(x.reason ?? 'RAN')}`).join('; '),
        ),
        check(
          'the supervisor really was down',
          'expectation',
          ruleFired === null,
          ruleFired ? 'a rule fired' : 'no rule fired on this control plane',
        ),
      ],
      timeline: timeline(p.events as EventLine[], (r) => r === a, flip, -1500, 1500),
      notes: [
        'a second control plane started without its supervisor (its watchdog runs); signal-to-halt is the operator halt of one run on it',
      ],
      targetMs: agent.targetMs,
    };
  },
};

const S8: Scenario = {
  id: 'S8',
  title: 'network partition between the operator and the agent runtime',
  path: 'degraded',
  async run(ctx): Promise<Measured> {
    const agent = ctx.deadman.agent;
    const relay = await PartitionRelay.start(ctx.env.url);
    const [a, b] = ['a', 'b'].map((x) => `${ctx.env.prefix}-s8${x}`) as [string, string];
    try {
      const p = await planAgent(
        ctx,
        agent,
        `work:${a},loop:${b}`,
        { DRILL_LOOP_PAUSE_MS: '10' },
        { agentUrl: relay.url },
      );
      const settings = await until(5000, () => p.events.find((e) => e.type === 'settings.applied'));
      const limit = Number((settings?.limits as { maxSteps?: number } | undefined)?.maxSteps ?? 200);
      // Cut while the loop is ~40 steps (about 0.4 s) short of its limit: it crosses mid-partition.
      await line(p, 20_000, (l) => l.k === 'step' && l.run === b && Number(l.n) >= Math.max(0, limit - 40));
      relay.cut();
      const cutAt = Date.now();
      const d = await ctx.env.issue({
        level: 'halt',
        scope: `run:${a}`,
        tenant: agent.tenant,
        ...why(ctx, 'S8 operator halt during a partition'),
      });
      const hold = Math.max(ctx.leaseMs, ctx.deadman.thresholdMs) + 1500;
      const local = await until(hold, () =>
        p.events.find((e) => e.type === 'run.halted_locally' && e.runId === b),
      );
      const trip = await until(Math.max(0, cutAt + hold - Date.now()) + 3000, async () =>
        (await ctx.env.audit('deadman.triggered')).find((r) => r.data.workerId === p.workerId),
      );
      await sleep(Math.max(0, cutAt + hold - Date.now()));
      const expired = p.events.find((e) => e.type === 'lease.expired' && e.wall > cutAt);
      const appliedDuring = p.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= d.rev);
      const healAt = Date.now();
      relay.heal();
      const applied = await until(15_000, () =>
        p.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= d.rev && e.wall > healAt),
      );
      const recorded = await until(10_000, async () =>
        (await ctx.env.audit('local_rule.fired')).find((r) => r.data.runId === b),
      );
      const startedAfterExpiry = expired
        ? p.events.filter((e) => e.type === 'effect.started' && e.wall > expired.wall && e.wall < healAt)
            .length
        : null;
      const stale = p.lines.filter((l) => l.k === 'denied' && l.reason === 'stale').length;
      // Put things back: the operator's halt and the deadman's directives are cleared.
      for (const x of await activeOn(ctx, [a, b]))
        await ctx.env.resume(x, 'drill: partition measured').catch(() => {});
      const paths: PathState[] = [
        {
          path: 'asynchronous path: local rules in the SDK',
          state: local && local.wall < healAt ? 'worked' : 'degraded',
          detail: local
            ? `run ${b} halted by the SDK at step ${String(local.value)} ${Math.round(local.wall - cutAt)} ms into the partition; on the record (local_rule.fired) ${recorded ? 'once it healed' : 'NOT yet'}`
            : 'no local halt during the partition',
        },
        {
          path: 'synchronous path (operator halt)',
          state: 'unreachable',
          detail: `committed at rev ${d.rev} during the partition; ${appliedDuring ? 'UNEXPECTEDLY applied during it' : 'not applied while partitioned'}; applied ${applied ? `${Math.round(applied.wall - healAt)} ms after the partition healed` : 'NOT after it healed'}`,
        },
        {
          path: 'lease: the worker fails closed on its own',
          state: expired ? 'worked' : 'degraded',
          detail: expired
            ? `lease expired ${Math.round(expired.wall - cutAt)} ms into the partition (lease ${ctx.leaseMs} ms); ${startedAfterExpiry} effect(s) started after; ${stale} refusal(s) as stale`
            : 'the lease did not expire',
        },
        {
          path: 'deadman (control plane side)',
          state: trip ? 'worked' : 'degraded',
          detail: trip
            ? `deadman.triggered ${Math.round(Date.parse(trip.ts) - cutAt)} ms into the partition (threshold ${ctx.deadman.thresholdMs} ms): the worker's runs are halted on the switchboard and stay halted when it reconnects`
            : `not tripped: the control plane saw the worker's stream drop, not a silent worker, and its deadman trips only workers that keep their stream but stop heartbeating (a hung process); a partitioned worker is stopped by its own lease, the deadman on its side of the partition`,
        },
        {
          path: 'server-side rules',
          state: 'degraded',
          detail:
            'telemetry cannot reach the supervisor across the partition; counters are re-sent as totals when it heals',
        },
      ];
      return {
        signalToHalt: summarize(local ? [local.wall - cutAt] : []),
        paths,
        checks: [
          check(
            'fails closed: nothing after lease expiry',
            'invariant',
            expired !== undefined && startedAfterExpiry === 0,
            paths[2]!.detail,
          ),
          check(
            'local rule fired during the partition',
            'expectation',
            local !== null && local.wall < healAt,
            paths[0]!.detail,
          ),
          check(
            'synchronous path unreachable, then converged',
            'invariant',
            appliedDuring === undefined && applied !== null,
            paths[1]!.detail,
          ),
          check(
            'a deadman remains effective',
            'expectation',
            trip !== null || expired !== undefined,
            `${expired ? `worker side: the lease halted every run ${Math.round(expired.wall - cutAt)} ms into the partition` : 'worker side: the lease did not expire'}; control plane side: ${trip ? 'tripped' : 'not tripped (the worker was disconnected, not silent)'}`,
          ),
          check(
            'local halt on the record after healing',
            'expectation',
            recorded !== null,
            recorded ? `local_rule.fired for ${b}` : 'no local_rule.fired',
          ),
        ],
        timeline: timeline(
          allLines(p).filter((e) => e.k === 'ev'),
          () => true,
          cutAt,
          -1500,
          hold + 500,
        ),
        notes: [
          'signal-to-halt here is the partition → the SDK halting the looping run on its local rule; the timeline is relative to the cut',
          `lease ${ctx.leaseMs} ms; deadman threshold ${ctx.deadman.thresholdMs} ms; partition held ${hold} ms`,
        ],
        targetMs: agent.targetMs,
      };
    } finally {
      await relay.close();
    }
  },
};

/** The failure-of-the-switch scenarios, reported path by path. */
export const FAILURE_SCENARIOS: Scenario[] = [S7, S8];
