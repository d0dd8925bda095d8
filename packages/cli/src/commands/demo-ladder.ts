import { randomUUID } from 'node:crypto';
import type { AuditRecord, Directive } from '@killpath/protocol';
import type { ApiClient } from '../api.ts';
import { auditRecordsOf } from '../audit-records.ts';
import type { FleetHarness } from '../fleet/harness.ts';
import { demoAgentScript } from '../fleet/harness.ts';
import { launch, type Launched } from '../fleet/launch.ts';

/** What the ladder part of the demo measured, and the invariants it broke. */
export interface LadderOutcome {
  lines: string[];
  broken: string[];
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const why = (text: string) => ({ reason: `demo: ${text}`, justification: `killpath demo: ${text}` });

/**
 * The levels below and above halt on the demo fleet: a throttle (effect rate per run against the
 * dialled rate), a degrade that revokes one tool (no start of it after observe, reads flow), and
 * a hard kill of an agent started under the launcher (`killpath run`): the process is gone.
 */
export async function demoLadder(api: ApiClient, token: string, fleet: FleetHarness): Promise<LadderOutcome> {
  const lines: string[] = [];
  const broken: string[] = [];
  const issue = async (body: Record<string, unknown>) =>
    (await api.post<{ directive: Directive }>('/v1/directives', body, { 'idempotency-key': randomUUID() }))
      .directive;
  const resume = (d: Directive) =>
    api.post(`/v1/directives/${d.id}/resume`, { justification: 'demo: measured, resuming' });

  // Throttle: every run of globex/research-bot limited to 5 effects per second.
  const research = fleet.agents.filter((a) => a.spec.tenant === 'globex' && a.spec.agent === 'research-bot');
  const throttle = await issue({
    level: 'throttle',
    scope: 'agent:globex/research-bot',
    rate: { perSecond: 5, per: 'run' },
    ...why('slow one agent down'),
  });
  await sleep(500);
  const from = Date.now();
  await sleep(2000);
  const runs = research.reduce((n, a) => n + a.runs.length, 0);
  const started = research.reduce(
    (n, a) =>
      n +
      a.events.filter((e) => e.type === 'effect.started' && e.wall >= from && e.wall < from + 2000).length,
    0,
  );
  const perRun = started / 2 / Math.max(1, runs);
  lines.push(
    `throttle 5/s per run on globex/research-bot: ${perRun.toFixed(2)} effects/s per run over 2 s (${runs} runs)`,
  );
  if (perRun > 5 * 1.5) broken.push(`throttle: ${perRun.toFixed(2)}/s per run, well above the dialled 5/s`);
  await resume(throttle);

  // Degrade: revoke crm.update of acme/billing-bot; its reads keep flowing.
  const billing = fleet.agents.filter((a) => a.spec.tenant === 'acme' && a.spec.agent === 'billing-bot');
  const degrade = await issue({
    level: 'degrade',
    scope: 'agent:acme/billing-bot',
    capabilities: ['crm.update'],
    ...why('revoke one tool'),
  });
  await sleep(1000);
  let writesAfter = 0;
  let readsAfter = 0;
  for (const a of billing) {
    const observe = a.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= degrade.rev);
    if (observe === undefined) {
      broken.push(`degrade: worker ${a.pid} never applied it`);
      continue;
    }
    writesAfter += a.events.filter(
      (e) => e.type === 'effect.started' && e.capability === 'crm.update' && e.at > observe.at,
    ).length;
    readsAfter += a.events.filter(
      (e) => e.type === 'effect.landed' && e.capability === 'search' && e.at > observe.at,
    ).length;
  }
  lines.push(
    `degrade crm.update of acme/billing-bot: ${writesAfter} crm.update started after observe, ${readsAfter} searches landed`,
  );
  if (writesAfter > 0) broken.push(`degrade: ${writesAfter} revoked write(s) started after observe`);
  if (readsAfter === 0) broken.push('degrade: reads stopped too');
  await resume(degrade);

  // Kill through the launcher: the process is gone, not just halted.
  const launched = await launchDemoAgent(api.url, token);
  try {
    const kill = await issue({
      level: 'kill',
      scope: 'run:launched-1',
      tenant: 'acme',
      ...why('hard kill through the launcher'),
    });
    const code = await Promise.race([launched.exited, sleep(10_000).then(() => 'timeout' as const)]);
    const gone = Date.now() - Date.parse(kill.issuedAt);
    const { records } = await api.get<{ records: AuditRecord[] }>('/v1/audit?type=process.killed&limit=100');
    const rec = auditRecordsOf(records, 'process.killed').find((r) => r.data.directiveId === kill.id);
    if (code === 'timeout' || rec === undefined)
      broken.push('kill: the launched agent was not ended by its launcher');
    else
      lines.push(
        `kill of run launched-1 under killpath run: process group ended by ${String(rec.data.signal)} ${gone} ms after the commit`,
      );
    await resume(kill);
  } finally {
    await launched.stop();
  }
  return { lines, broken };
}

/** Starts one demo agent under `killpath run` (run `launched-1` of acme/support-bot, the launcher's default kill grace) and waits until it runs. */
async function launchDemoAgent(url: string, token: string): Promise<Launched> {
  const l = launch({
    url,
    token,
    tenant: 'acme',
    agent: 'support-bot',
    run: 'launched-1',
    agentScript: demoAgentScript(),
    extra: ['--kill-grace', '2000'],
    env: { DEMO_PERIOD_MS: '50' },
  });
  // Ready once the launcher logged the start and the agent had a moment to connect.
  await Promise.race([
    l.waitLog((e) => e.msg === 'agent started', 30_000, 'the launched demo agent').catch(() => undefined),
    l.exited,
  ]);
  await sleep(1000);
  return l;
}
