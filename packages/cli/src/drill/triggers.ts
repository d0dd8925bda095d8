import type { AuditRecordOf } from '@killpath/protocol';
import type { ApiClient } from '../api.ts';
import type { AgentProcess } from '../fleet/harness.ts';
import type { DrillContext, Measured, Scenario } from './context.ts';
import { DRILL_AGENT, type DrillAgent } from './env.ts';
import { check, startedAfter, summarize, timeline, until, type EventLine } from './measure.ts';

/** Starts one scenario agent (not under a launcher) with a DRILL_PLAN. */
export async function planAgent(
  ctx: DrillContext,
  agent: DrillAgent,
  plan: string,
  env: Record<string, string> = {},
  where: { api?: ApiClient; agentUrl?: string } = {},
): Promise<AgentProcess> {
  const fleet = await ctx.env.fleet(
    [{ tenant: agent.tenant, agent: agent.agent, runs: [] }],
    { DRILL_PLAN: plan, KILLPATH_LEASE_MS: String(ctx.leaseMs), ...env },
    { script: DRILL_AGENT, ...where },
  );
  return fleet.agents[0]!;
}

/** The first line an agent printed that matches, within `ms`. */
export function line(
  p: AgentProcess,
  ms: number,
  pred: (l: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown> | null> {
  return until(ms, () => p.lines.find(pred));
}

/** Both kinds of lines of an agent as one event list. */
export const allLines = (p: AgentProcess): EventLine[] => [
  ...(p.events as EventLine[]),
  ...(p.lines as EventLine[]),
];

/** The supervisor's `kill_switch.fired` for a rule on a run. */
export function fired(
  ctx: DrillContext,
  rule: string,
  run: string,
  ms = 10_000,
  api = ctx.env.api,
): Promise<AuditRecordOf<'kill_switch.fired'> | null> {
  return until(ms, async () =>
    (await ctx.env.audit('kill_switch.fired', 0, api)).find(
      (r) => r.data.rule === rule && r.data.scope === `run:${run}`,
    ),
  );
}

/**
 * S2 and S3: a run crosses a local limit (spend, steps). The SDK halts it at once, by itself;
 * the supervisor's rule fires on the same numbers and notifies the operator.
 */
function limitScenario(id: 'S2' | 'S3', rule: 'cost_cap' | 'loop_length'): Scenario {
  return {
    id,
    title: rule === 'cost_cap' ? 'cost cap exceeded' : 'loop length exceeded',
    path: 'asynchronous',
    async run(ctx): Promise<Measured> {
      if (!ctx.spec.triggers.asynchronous[rule].enabled)
        return { checks: [], skipped: `the spec disables ${rule}` };
      const agent = ctx.env.agents[id === 'S2' ? 1 % ctx.env.agents.length : 2 % ctx.env.agents.length]!;
      const run = `${ctx.env.prefix}-${id.toLowerCase()}`;
      const p = await planAgent(ctx, agent, `${rule === 'cost_cap' ? 'cost' : 'loop'}:${run}`);
      const cross = await line(p, 30_000, (l) => l.k === 'cross');
      const denied = await line(p, 5000, (l) => l.k === 'denied');
      const rec = await fired(ctx, rule, run);
      const alert = rec
        ? await until(5000, async () =>
            (await ctx.env.alerts()).find(
              (a) => a.kind === 'kill_switch.fired' && a.directiveId === rec.data.directiveId,
            ),
          )
        : null;
      const local = p.events.find((e) => e.type === 'run.halted_locally');
      const crossWall = (cross?.wall as number | undefined) ?? Number.NaN;
      const after = cross ? startedAfter(p.events as EventLine[], () => true, crossWall) : null;
      const commit = rec ? Math.round(Date.parse(rec.ts) - crossWall) : null;
      const expected =
        rule === 'loop_length'
          ? `step ${Number(cross?.limit) + 1}`
          : `spend over ${String(cross?.limit)} USD`;
      return {
        signalToHalt: summarize(local && denied ? [(denied.wall as number) - local.wall] : []),
        effectsAfterFlip: after,
        effectsAfterObserve: after ? after.read + after.write + after.irreversible : null,
        checks: [
          check(
            `${rule} fired`,
            'expectation',
            rec !== null,
            rec
              ? `kill_switch.fired rule ${rule} on run:${run} (${String(rec.actor)}), ${commit} ms after the crossing`
              : `no kill_switch.fired for ${rule}`,
          ),
          check(
            'halt observed',
            'invariant',
            cross !== null && denied?.reason === 'halted',
            cross
              ? `crossed at ${expected}; the next call was refused: ${String(denied?.reason ?? 'not refused')}`
              : 'the run never crossed its limit',
          ),
          check(
            rule === 'loop_length' ? 'the last tool call does not issue' : 'no tool call after the crossing',
            'invariant',
            after !== null && after.read + after.write + after.irreversible === 0,
            `${after ? after.read + after.write + after.irreversible : '-'} effect(s) started after the crossing`,
          ),
          check(
            'operator notified',
            'expectation',
            alert !== null,
            alert ? alert.summary : 'no kill_switch.fired alert',
          ),
        ],
        timeline: cross ? timeline(p.events as EventLine[], () => true, crossWall, -1500, 1500) : [],
        notes: [
          `signal-to-halt here is the SDK's local halt at the crossing (${local ? String(local.directiveId) : 'none'}) → the run's next call refused; the supervisor's directive, the durable record, committed ${commit ?? '-'} ms after the crossing`,
          'halt-to-recovery is not measured here: a rule-halted run stays halted until a person reviews and resumes it (see S1, S5, S6)',
        ],
        targetMs: agent.targetMs,
      };
    },
  };
}

const S4: Scenario = {
  id: 'S4',
  title: 'three unauthorised tool calls',
  path: 'asynchronous',
  async run(ctx) {
    if (!ctx.spec.triggers.asynchronous.auth_denial.enabled)
      return { checks: [], skipped: 'the spec disables auth_denial' };
    const agent = ctx.env.agents[3 % ctx.env.agents.length]!;
    const run = `${ctx.env.prefix}-s4`;
    const p = await planAgent(ctx, agent, `denial:${run}`);
    await line(p, 30_000, (l) => l.k === 'done');
    const attempts = p.lines.filter((l) => l.k === 'attempt');
    const rec = await fired(ctx, 'auth_denial', run);
    const first = attempts[0];
    const firstWall = (first?.wall as number | undefined) ?? Number.NaN;
    const observe = rec
      ? p.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= rec.data.rev)
      : undefined;
    const values =
      (rec?.data.details as { values?: Record<string, number> } | undefined)?.values ??
      (rec?.data.values as Record<string, number> | undefined);
    const later = attempts.slice(1);
    const alert = rec
      ? (await ctx.env.alerts()).find(
          (a) => a.kind === 'kill_switch.fired' && a.directiveId === rec.data.directiveId,
        )
      : undefined;
    return {
      signalToHalt: summarize(observe && first ? [observe.wall - firstWall] : []),
      checks: [
        check(
          'none of the calls ran',
          'invariant',
          attempts.length === 3 && attempts.every((a) => a.reason !== null),
          attempts.map((a) => `attempt ${String(a.n)}: ${String(a.reason ?? 'RAN')}`).join('; '),
        ),
        check(
          'auth_denial fired on the first',
          'expectation',
          rec !== null &&
            (values === undefined ||
              Number(values.auth_denials ?? values.authDenials ?? 1) <=
                1 + Number(values.revoked_denials ?? 0)),
          rec
            ? `kill_switch.fired rule auth_denial ${Math.round(Date.parse(rec.ts) - firstWall)} ms after the first attempt${values ? ` (values ${JSON.stringify(values)})` : ''}`
            : 'no kill_switch.fired for auth_denial',
        ),
        check(
          'no second attempt',
          'expectation',
          later.length === 2 && later.every((a) => a.reason === 'halted'),
          `attempts 2 and 3 refused as: ${later.map((a) => String(a.reason)).join(', ')} (halted: the run was stopped before it could try again)`,
        ),
        check(
          'operator notified',
          'expectation',
          alert !== undefined,
          alert ? alert.summary : 'no kill_switch.fired alert',
        ),
      ],
      timeline: first ? timeline(p.events as EventLine[], () => true, firstWall, -1000, 1500) : [],
      notes: [
        'signal-to-halt here is the first unauthorised attempt → the worker applied the supervisor\u2019s halt; the attempts are DRILL_DENIAL_GAP_MS (400 ms) apart',
      ],
      targetMs: agent.targetMs,
    };
  },
};

/** The asynchronous triggers. */
export const TRIGGER_SCENARIOS: Scenario[] = [
  limitScenario('S2', 'cost_cap'),
  limitScenario('S3', 'loop_length'),
  S4,
];
