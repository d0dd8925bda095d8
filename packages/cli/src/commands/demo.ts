import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@killpath/server';
import type { AuditVerdict } from '@killpath/protocol';
import { ApiClient } from '../api.ts';
import { intFlag, parse } from '../args.ts';
import { FleetHarness, type AgentSpec } from '../fleet/harness.ts';
import { flipAndMeasure, type FlipOutcome, type FlipSpec } from '../fleet/flip.ts';
import { ms, table } from '../output.ts';
import { demoLadder } from './demo-ladder.ts';

export const DEMO_HELP = `killpath demo [--window MS] [--keep]

Starts a control plane on a free port (SQLite in a temporary data dir) and a fleet of demo
agents as real OS processes (three tenants, several agents and runs, each doing reads and
writes, one slow tool call always in flight). Then it flips each scope in turn (one tool, one
run, one agent, one tenant, one feature, global), measures, and resumes. Then the rest of the
ladder: a throttle (effect rate per run against the dialled rate), a degrade revoking one tool
(reads flow, the tool is refused, an alert is raised), and a hard kill of an agent started
under the launcher (killpath run): its process group is gone. It ends with the audit chain
verified, stops every process, and exits 0 when every invariant held.

  --window MS   how long to watch after each flip (default 800)
  --keep        keep the temporary data dir and print where it is`;

/** The demo fleet: three tenants, five agents, seven processes. */
export const DEMO_FLEET: AgentSpec[] = [
  { tenant: 'acme', agent: 'support-bot', runs: ['acme-sup-1'], features: ['new-planner'] },
  { tenant: 'acme', agent: 'support-bot', runs: ['acme-sup-2'] },
  { tenant: 'acme', agent: 'billing-bot', runs: ['acme-bill-1'] },
  { tenant: 'globex', agent: 'research-bot', runs: ['globex-res-1'] },
  { tenant: 'globex', agent: 'research-bot', runs: ['globex-res-2'], features: ['new-planner'] },
  { tenant: 'globex', agent: 'ops-bot', runs: ['globex-ops-1'] },
  { tenant: 'initech', agent: 'sales-bot', runs: ['initech-sales-1'], features: ['new-planner'] },
];

const why = (what: string) => ({
  reason: `demo: ${what}`,
  justification: `killpath demo walks every scope (${what})`,
});

/** One flip per scope, smallest hammer first. */
export function demoFlips(): FlipSpec[] {
  return [
    {
      label: 'tool crm.update of acme/billing-bot',
      body: {
        level: 'halt',
        scope: 'agent:acme/billing-bot',
        capabilities: ['crm.update'],
        ...why('freeze one tool'),
      },
      covers: (a, _run, cap) =>
        a.spec.tenant === 'acme' && a.spec.agent === 'billing-bot' && cap === 'crm.update',
    },
    {
      label: 'run acme-sup-1 (and its child)',
      body: { level: 'halt', scope: 'run:acme-sup-1', ...why('halt one run') },
      covers: (a, run) =>
        a.runs.some((r) => r.runId === run && (r.runId === 'acme-sup-1' || r.lineage.includes('acme-sup-1'))),
    },
    {
      label: 'agent globex/research-bot',
      body: { level: 'halt', scope: 'agent:globex/research-bot', ...why('halt one agent') },
      covers: (a) => a.spec.tenant === 'globex' && a.spec.agent === 'research-bot',
    },
    {
      label: 'tenant acme',
      body: { level: 'halt', scope: 'tenant:acme', ...why('halt one tenant') },
      covers: (a) => a.spec.tenant === 'acme',
    },
    {
      label: 'feature new-planner in globex',
      body: {
        level: 'halt',
        scope: 'feature:new-planner',
        tenant: 'globex',
        ...why('halt one feature in one tenant'),
      },
      covers: (a) => a.spec.tenant === 'globex' && (a.spec.features ?? []).includes('new-planner'),
    },
    {
      label: 'global',
      body: {
        level: 'kill',
        scope: 'global',
        breakGlass: 'demo: rehearsing the stop-the-world button',
        ...why('stop the world'),
      },
      covers: () => true,
    },
  ];
}

/** Renders flip outcomes as the demo's summary table. */
export function flipTable(outcomes: FlipOutcome[]): string {
  return table(
    [
      'scope',
      'covered',
      'signal-to-halt p50 / p99 / max',
      'after observe',
      'after flip (r/w)',
      'permits after flip',
      'timers/tasks after',
      'slow tool aborted',
      'uncovered working',
    ],
    outcomes.map((o) => [
      o.label,
      `${o.covered.length - o.missingReports}/${o.covered.length}`,
      `${ms(o.signalToHalt.p50)} / ${ms(o.signalToHalt.p99)} / ${ms(o.signalToHalt.max)}`,
      o.startedAfterObserve,
      `${o.startedAfterFlip.read ?? 0}/${(o.startedAfterFlip.write ?? 0) + (o.startedAfterFlip.irreversible ?? 0)}`,
      o.permitsAfterFlip,
      `${o.timersAfterObserve}/${o.tasksAfterObserve}`,
      o.slowAborted.of === 0 ? 'n/a' : `${o.slowAborted.aborted}/${o.slowAborted.of}`,
      o.uncovered.workers === 0 ? 'n/a' : `${o.uncovered.working}/${o.uncovered.workers}`,
    ]),
  );
}

/** The invariants a flip must keep; returns what broke (empty when all held). */
export function flipViolations(o: FlipOutcome): string[] {
  const v: string[] = [];
  if (o.startedAfterObserve > 0)
    v.push(
      `${o.label}: ${o.startedAfterObserve} covered effect(s) started after the worker observed the flip`,
    );
  if (o.permitsAfterFlip > 0)
    v.push(`${o.label}: ${o.permitsAfterFlip} write permit(s) granted after the flip (guarantee 1)`);
  if (o.timersAfterObserve > 0)
    v.push(`${o.label}: ${o.timersAfterObserve} timer(s) of covered runs fired after the flip was observed`);
  if (o.tasksAfterObserve > 0)
    v.push(
      `${o.label}: ${o.tasksAfterObserve} queued task(s) of covered runs started after the flip was observed`,
    );
  if (o.missingReports > 0) v.push(`${o.label}: ${o.missingReports} covered worker(s) never reported halted`);
  if (o.slowAborted.aborted < o.slowAborted.of)
    v.push(
      `${o.label}: the in-flight slow tool was not aborted on ${o.slowAborted.of - o.slowAborted.aborted} worker(s)`,
    );
  if (o.uncovered.working < o.uncovered.workers)
    v.push(`${o.label}: ${o.uncovered.workers - o.uncovered.working} uncovered worker(s) stopped working`);
  return v;
}

/** `killpath demo`. */
export async function demo(args: string[]): Promise<number> {
  const { values } = parse(args, {
    window: { type: 'string' },
    keep: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const windowMs = intFlag('window', values.window, 800);
  const dataDir = mkdtempSync(join(tmpdir(), 'killpath-demo-'));
  // Alerts (warn) are printed by the ladder part itself; the log shows only errors.
  const server = await startServer({ dataDir, port: 0, logLevel: 'error' });
  // The demo loads the machine it runs on: a slow answer to an idempotent call (a read, a keyed
  // issue) is asked again before the demo gives up.
  const api = new ApiClient(server.url, server.createdAdminToken!, { retries: 3 });
  const cp = server.controlPlane;
  let fleet: FleetHarness | null = null;
  const stopAll = async () => {
    await fleet?.stop();
    await server.close();
    if (!values.keep) rmSync(dataDir, { recursive: true, force: true });
  };
  const onSignal = () => void stopAll().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  try {
    console.log(`killpath demo: control plane on ${server.url} (data dir ${dataDir})`);
    process.stdout.write(`starting ${DEMO_FLEET.length} agent processes … `);
    fleet = await FleetHarness.start({
      api,
      agents: DEMO_FLEET,
      env: { DEMO_PERIOD_MS: '20', DEMO_SLOW_MS: '4000' },
    });
    console.log(`connected (pids ${fleet.agents.map((a) => a.pid).join(', ')})`);
    await new Promise((ok) => setTimeout(ok, 500));
    const outcomes: FlipOutcome[] = [];
    for (const spec of demoFlips()) {
      process.stdout.write(`  flip ${spec.body.level} ${spec.label} … `);
      const o = await flipAndMeasure(api, fleet, spec, {
        windowMs,
        flipWall: (rev) => {
          const t = cp.flipTime(rev);
          return t === undefined ? undefined : performance.timeOrigin + t;
        },
      });
      outcomes.push(o);
      console.log(
        `${o.covered.length} worker(s) halted, p99 ${ms(o.signalToHalt.p99)}, resumed at rev ${o.resumedRev}`,
      );
    }
    console.log(`\n${flipTable(outcomes)}\n`);
    console.log('after observe: covered effects started after the worker applied the flip (must be 0)');
    console.log(
      'after flip: covered effects started between the commit and the worker applying it (reads/writes)\n',
    );
    console.log('the rest of the ladder:');
    const ladder = await demoLadder(api, server.createdAdminToken!, fleet);
    const alerts = server.controlPlane.recentAlerts();
    ladder.lines.push(`alerts raised: ${alerts.map((a) => a.kind).join(', ') || 'none'}`);
    for (const line of ladder.lines) console.log(`  ${line}`);
    console.log('');
    const verdict = await api.get<AuditVerdict>('/v1/audit/verify');
    console.log(
      verdict.ok
        ? `audit chain verified: ${verdict.records} records`
        : `audit chain BROKEN at #${verdict.firstBad}: ${verdict.reason}`,
    );
    const broken = [...outcomes.flatMap(flipViolations), ...ladder.broken];
    if (!verdict.ok) broken.push('audit chain does not verify');
    await stopAll();
    if (broken.length > 0) {
      console.log(`\nFAILED:\n  ${broken.join('\n  ')}`);
      return 1;
    }
    console.log('every invariant held; all processes stopped.');
    return 0;
  } catch (err) {
    await stopAll();
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}
