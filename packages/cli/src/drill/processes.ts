import type { Directive } from '@killpath/protocol';
import { demoAgentScript } from '../fleet/harness.ts';
import { alive, type Launched } from '../fleet/launch.ts';
import { why, type DrillContext, type Measured, type Scenario } from './context.ts';
import { DRILL_AGENT, type DrillAgent } from './env.ts';
import {
  check,
  journalCheck,
  journalChecks,
  permitsAfter,
  recoveryMs,
  sleep,
  startedAfter,
  summarize,
  targetChecks,
  timeline,
  until,
  type EventLine,
} from './measure.ts';

/** Starts an agent under `killpath run` (with `extra` launcher options) and waits for its ready line. */
export async function launched(
  ctx: DrillContext,
  agent: DrillAgent,
  run: string,
  kind: 'demo' | 'drill',
  env: Record<string, string>,
  extra: string[] = [],
): Promise<{ l: Launched; pid: number; workerId: string }> {
  const l = ctx.env.launch({
    extra,
    tenant: agent.tenant,
    agent: agent.agent,
    run,
    script: kind === 'demo' ? demoAgentScript() : DRILL_AGENT,
    killGraceMs: ctx.spec.mechanism.killGraceMs,
    env: {
      KILLPATH_LEASE_MS: String(ctx.leaseMs),
      ...(kind === 'demo' ? { DEMO_PERIOD_MS: '20', DEMO_SLOW_MS: '4000' } : {}),
      ...env,
    },
  });
  const ready = await l.waitOut(
    (e) => e.k === 'ready',
    30_000,
    `the agent under killpath run (${agent.tenant}/${agent.agent}, run ${run})`,
  );
  return { l, pid: ready.pid as number, workerId: String(ready.workerId) };
}

/** Exits within `ms`, or null. */
async function exitWithin(l: Launched, ms: number): Promise<number | null | 'timeout'> {
  return Promise.race([l.exited, sleep(ms).then(() => 'timeout' as const)]);
}

/**
 * Recovery after a process-level stop: clear the directives, start a replacement session under
 * the launcher, and time resume commit → its first permitted effect.
 */
async function replacement(
  ctx: DrillContext,
  agent: DrillAgent,
  stopped: string,
  run: string,
): Promise<{ ms: number | null; l: Launched | null }> {
  const directives = await activeOn(ctx, [stopped, `${stopped}.child`]);
  let resumeWall = Date.now();
  for (const d of directives) {
    const c = await ctx.env.resume(d, 'drill: stop measured; starting a replacement session');
    resumeWall = Math.max(resumeWall, ctx.env.clearWall(c));
  }
  try {
    const r = await launched(ctx, agent, run, 'drill', { DRILL_PLAN: `work:${run}` });
    const ms = await until(10_000, () => recoveryMs(r.l.out as EventLine[], () => true, resumeWall));
    await r.l.stop();
    return { ms, l: r.l };
  } catch {
    return { ms: null, l: null };
  }
}

/**
 * The directives in force on these runs (an escalation replaces a directive with a new one, so
 * the ids a stop started with may be cleared by now).
 */
export async function activeOn(ctx: DrillContext, runs: string[]): Promise<Directive[]> {
  const all = (await ctx.env.api.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;
  return all.filter((d) => runs.some((r) => d.scopeText === `run:${r}`));
}

/** The `i`-th agent of the spec, round robin. */
export function agentFor(ctx: DrillContext, i: number): DrillAgent {
  return ctx.env.agents[i % ctx.env.agents.length]!;
}

const ISOLATE: Scenario = {
  id: 'level:isolate',
  title: 'isolate one run under the launcher: every effect refused, egress cut, timers keep running',
  path: 'ladder',
  async run(ctx) {
    const agent = agentFor(ctx, 0);
    const run = `${ctx.env.prefix}-iso`;
    const { l, pid } = await launched(ctx, agent, run, 'demo', {});
    await sleep(500);
    const d = await ctx.env.issue({
      level: 'isolate',
      scope: `run:${run}`,
      tenant: agent.tenant,
      ...why(ctx, 'isolate one run'),
    });
    const flip = ctx.env.flipWall(d);
    const isolated = await until(5000, async () =>
      (await ctx.env.audit('process.isolated')).find((r) => r.data.directiveId === d.id),
    );
    await sleep(Math.min(ctx.windowMs, 3000));
    const out = l.out as EventLine[];
    const observe = out.find((e) => e.type === 'rev.applied' && (e.rev as number) >= d.rev);
    const obsWall = (observe?.wall as number | undefined) ?? flip;
    const covered = (r: string) => r === run || r === `${run}.child`;
    const after = out.filter(
      (e) => e.type === 'effect.started' && covered(String(e.runId)) && (e.wall as number) > obsWall,
    ).length;
    const timers = out.filter((e) => e.type === 'timer.fired' && (e.wall as number) > obsWall).length;
    const cleared = await ctx.env.resume(d, 'drill: isolate measured');
    const resumeWall = ctx.env.clearWall(cleared);
    const rec = await until(8000, () => recoveryMs(l.out as EventLine[], covered, resumeWall));
    const journal = await journalCheck(
      ctx.env.api,
      [run, `${run}.child`],
      (l.out as EventLine[]).map((e) => ({ ...e, pid })),
      resumeWall,
    );
    const stillAlive = alive(pid);
    await l.stop();
    const permits = await permitsAfter(ctx.env.api, [run, `${run}.child`], d.rev, cleared.clearedRev);
    return {
      signalToHalt: summarize(observe ? [obsWall - flip] : []),
      haltToRecoveryMs: rec,
      effectsAfterFlip: { read: startedAfter(out, covered, flip).read, ...permits },
      effectsAfterObserve: after,
      journal,
      checks: [
        check(
          'worker applied it',
          'invariant',
          observe !== undefined,
          observe ? `applied ${Math.round(obsWall - flip)} ms after the flip` : 'never applied',
        ),
        check(
          'no effect after observe',
          'invariant',
          after === 0,
          `${after} effect(s) of the run started after the worker applied the isolate`,
        ),
        check(
          'no write permit after the flip',
          'invariant',
          permits.write + permits.irreversible === 0,
          `${permits.write + permits.irreversible} write/irreversible permit(s) granted at or after the isolate's rev`,
        ),
        check(
          'launcher cut egress',
          'expectation',
          isolated !== null,
          isolated
            ? `process.isolated ${Date.parse(isolated.ts) - Math.round(flip)} ms after the flip`
            : 'no process.isolated record',
        ),
        check(
          'timers keep running',
          'expectation',
          timers > 0,
          `${timers} run-bound timer(s) fired while isolated (an isolate cuts effects, not the process)`,
        ),
        check(
          'the process lives',
          'expectation',
          stillAlive,
          stillAlive ? 'the agent process was kept for inspection' : 'the agent process is gone',
        ),
        ...journalChecks(journal),
        ...targetChecks(null, null, rec, ctx.spec.latency.haltToRecoveryMs),
      ],
      timeline: timeline(out, covered, flip, -1500, 3000),
      notes: [
        'signal-to-halt here is flip → the worker applied the isolate (every effect refused from then on)',
      ],
      targetMs: agent.targetMs,
    };
  },
};

/** A hard kill through the launcher (the console's Kill, `killpath kill --hard`). */
async function killUnderLauncher(
  ctx: DrillContext,
  agent: DrillAgent,
  run: string,
  kind: 'demo' | 'drill',
  env: Record<string, string>,
  ready?: (l: Launched) => Promise<unknown>,
): Promise<Measured & { l: Launched }> {
  const { l, pid, workerId } = await launched(ctx, agent, run, kind, env);
  if (ready) await ready(l);
  else await sleep(500);
  const d = await ctx.env.issue({
    level: 'kill',
    scope: `run:${run}`,
    tenant: agent.tenant,
    ...why(ctx, `kill run ${run}`),
  });
  const flip = ctx.env.flipWall(d);
  const code = await exitWithin(l, ctx.spec.mechanism.killGraceMs + 10_000);
  const gone = Date.now() - flip;
  await until(3000, () => !alive(pid));
  const survivors = alive(pid);
  const killed = await until(5000, async () =>
    (await ctx.env.audit('process.killed')).find((r) => r.data.directiveId === d.id),
  );
  const out = l.out as EventLine[];
  const settled = out.find((e) => e.type === 'halt.settled' && e.directiveId === d.id);
  const covered = (r: string) => r === run || r === `${run}.child`;
  const observe = out.find((e) => e.type === 'rev.applied' && (e.rev as number) >= d.rev);
  const after = observe
    ? out.filter(
        (e) =>
          e.type === 'effect.started' &&
          covered(String(e.runId)) &&
          (e.at as number) > (observe.at as number),
      ).length
    : 0;
  await sleep(300);
  const journal = await journalCheck(
    ctx.env.api,
    [run, `${run}.child`],
    out.map((e) => ({ ...e, pid })),
    Date.now(),
  );
  const permits = await permitsAfter(ctx.env.api, [run, `${run}.child`], d.rev);
  const rec = await replacement(ctx, agent, run, `${run}-r`);
  return {
    l,
    signalToHalt: summarize([settled ? (settled.wall as number) - flip : gone]),
    haltToRecoveryMs: rec.ms,
    effectsAfterFlip: { read: startedAfter(out, covered, flip).read, ...permits },
    effectsAfterObserve: after,
    journal,
    checks: [
      check(
        'process gone',
        'invariant',
        code !== 'timeout' && !survivors,
        code === 'timeout'
          ? 'the launcher did not exit'
          : `launcher exited ${code}; agent process ${survivors ? 'STILL ALIVE' : 'gone'} ${Math.round(gone)} ms after the flip`,
      ),
      check(
        'launcher audited the kill',
        'expectation',
        killed !== null,
        killed ? `process.killed by ${String(killed.data.signal)}` : 'no process.killed record',
      ),
      check(
        'no effect after observe',
        'invariant',
        after === 0,
        `${after} effect(s) started after the worker applied the kill`,
      ),
      check(
        'no write permit after the flip',
        'invariant',
        permits.write + permits.irreversible === 0,
        `${permits.write + permits.irreversible} write/irreversible permit(s) granted at or after the kill's rev`,
      ),
      ...journalChecks(journal),
      ...targetChecks(summarize([gone]), agent.targetMs, rec.ms, ctx.spec.latency.haltToRecoveryMs),
    ],
    timeline: timeline(out, covered, flip, -1500, 1500),
    notes: [
      `worker ${workerId}: flip → worker settled ${settled ? `${Math.round((settled.wall as number) - flip)} ms` : 'not reported'}; flip → process gone ${Math.round(gone)} ms; recovery includes starting the replacement process`,
    ],
    targetMs: agent.targetMs,
  };
}

const KILL: Scenario = {
  id: 'level:kill',
  title: 'kill one run under the launcher: the process group is ended',
  path: 'ladder',
  async run(ctx) {
    const { l: _l, ...m } = await killUnderLauncher(
      ctx,
      agentFor(ctx, 1),
      `${ctx.env.prefix}-kill`,
      'demo',
      {},
    );
    return m;
  },
};

const S6: Scenario = {
  id: 'S6',
  title: 'operator presses kill while the agent is mid-tool-call',
  path: 'synchronous + side-effect policy',
  async run(ctx) {
    const run = `${ctx.env.prefix}-s6`;
    const { l, ...m } = await killUnderLauncher(
      ctx,
      agentFor(ctx, 2),
      run,
      'drill',
      { DRILL_PLAN: `midcall:${run}`, DRILL_SLOW_MS: '20000' },
      (x) => x.waitOut((e) => e.k === 'midcall', 10_000, 'both calls in flight'),
    );
    const out = l.out as EventLine[];
    const read = out.find((e) => e.k === 'settled' && e.capability === 'search');
    const readAborted = out.some((e) => e.type === 'effect.aborted' && e.capability === 'search');
    const write = (
      await ctx.env.api.get<{ effects: { capability: string; status: string }[] }>(
        `/v1/runs/${encodeURIComponent(run)}/journal`,
      )
    ).effects.find((e) => e.capability === 'crm.update');
    const gone = m.checks.find((c) => c.name === 'process gone')?.ok === true;
    m.checks.push(
      check(
        'the read completed cleanly or was cancelled',
        'expectation',
        read !== undefined || readAborted || gone,
        read
          ? `search settled: ${String(read.outcome)}${read.reason ? ` (${String(read.reason)})` : ''}`
          : readAborted
            ? 'search aborted'
            : gone
              ? 'search ended with its process (a read leaves nothing to roll back)'
              : 'the read has no outcome and its process lives',
      ),
      check(
        'the write was rolled back',
        'invariant',
        write !== undefined && (write.status === 'aborted' || write.status === 'cancelled'),
        write ? `crm.update in the ledger: ${write.status}` : 'no ledger entry for the write',
      ),
    );
    return m;
  },
};

const S5: Scenario = {
  id: 'S5',
  title: 'agent process hangs inside a long model call',
  path: 'deadman',
  async run(ctx) {
    const agent = ctx.deadman.agent;
    const run = `${ctx.env.prefix}-s5`;
    const { l, pid, workerId } = await launched(ctx, agent, run, 'drill', { DRILL_PLAN: `hang:${run}` });
    const hanging = await l.waitOut((e) => e.k === 'hanging', 10_000, 'the agent to hang');
    const code = await exitWithin(l, ctx.deadman.thresholdMs * 2 + ctx.spec.mechanism.killGraceMs + 15_000);
    const goneWall = Date.now();
    await until(3000, () => !alive(pid));
    const trip = await until(5000, async () =>
      (await ctx.env.audit('deadman.triggered')).find((r) => r.data.workerId === workerId),
    );
    const killed = (await ctx.env.audit('process.killed')).find((r) => r.data.pid === pid);
    const alert = (await ctx.env.alerts()).find(
      (a) => a.kind === 'deadman.triggered' && a.details.workerId === workerId,
    );
    const tripWall = trip ? Date.parse(trip.ts) : Number.NaN;
    const silence = trip ? Number(trip.data.heartbeatAgoMs) : Number.NaN;
    const journal = await journalCheck(
      ctx.env.api,
      [run],
      (l.out as EventLine[]).map((e) => ({ ...e, pid })),
      Date.now(),
    );
    const rec = await replacement(ctx, agent, run, `${run}-r`);
    const sth = summarize(trip ? [goneWall - tripWall] : []);
    return {
      signalToHalt: sth,
      haltToRecoveryMs: rec.ms,
      journal,
      checks: [
        check(
          'deadman fired',
          'invariant',
          trip !== null,
          trip
            ? `deadman.triggered by ${trip.actor} after ${Math.round(silence)} ms of silence (threshold ${ctx.deadman.thresholdMs} ms)`
            : 'no deadman.triggered record',
        ),
        check(
          'not before the threshold',
          'expectation',
          !(silence < ctx.deadman.thresholdMs),
          `silence at the trip ${Math.round(silence)} ms ≥ ${ctx.deadman.thresholdMs} ms`,
        ),
        check(
          'process killed',
          'invariant',
          code !== 'timeout' && !alive(pid),
          code === 'timeout'
            ? 'the hung process is still running'
            : `launcher exited ${code}; process gone ${Math.round(goneWall - (hanging.wall as number))} ms after it hung${killed ? ` (${String(killed.data.signal)})` : ''}`,
        ),
        check(
          'operator notified',
          'expectation',
          alert !== undefined,
          alert ? alert.summary : 'no deadman alert',
        ),
        ...journalChecks(journal),
        ...targetChecks(sth, agent.targetMs, rec.ms, ctx.spec.latency.haltToRecoveryMs),
      ],
      notes: [
        `hang → deadman trip ${trip ? Math.round(tripWall - (hanging.wall as number)) : '-'} ms; signal-to-halt here is trip → process gone (the trip is the signal)`,
        ctx.compact && ctx.env.mode === 'local'
          ? `compact drill: deadman ${ctx.deadman.thresholdMs} ms for ${agent.tenant}/${agent.agent} instead of the spec's ${ctx.spec.triggers.deadman.intervalMs * ctx.spec.triggers.deadman.missed} ms`
          : `deadman ${ctx.deadman.thresholdMs} ms as the spec sets`,
      ],
      targetMs: agent.targetMs,
    };
  },
};

/** Scenarios that end or isolate processes through the launcher. */
export const PROCESS_SCENARIOS: Scenario[] = [S5, S6, ISOLATE, KILL];
