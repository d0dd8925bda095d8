import {
  KillpathError,
  isIdentifier,
  type DrillDue,
  type DueReason,
  type RehearsalRecord,
  type ScenarioResult,
} from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { ms, table } from '../output.ts';

const CONNECTION = '--url URL --token TOKEN --data-dir DIR as for every command.';

export const DRILL_HISTORY_HELP = `killpath drill history [--agent TENANT/AGENT] [-n N | --limit N] [--before ID] [--json]

Rehearsal records the control plane keeps (POST /v1/drills), newest first: when, spec, mode,
result, scenarios passed/failed/degraded/skipped, and the worst signal-to-halt p99 against its
target. Tenant-scoped tokens see their own tenant's records only. Default limit 20 (at most 500);
a full page prints the command for the next one (--before ID: the records older than ID).
${CONNECTION}`;

export const DRILL_DUE_HELP = `killpath drill due [--spec-digest DIGEST] [--json]

Which agents are due for a drill, and why: capabilities first seen after the last drill
(surface changed), a different spec (with --spec-digest), a failed last drill, the cadence of the
agent's level passed, or never drilled. Exit status 1 when any agent is due, 0 otherwise, so a
cron job can alert on it. ${CONNECTION}`;

export const DRILL_SHOW_HELP = `killpath drill show ID [--json]

One rehearsal record, scenario by scenario: status, expected against actual signal-to-halt,
effects after the flip, the side-effect journal, failed checks and the remediation.
${CONNECTION}`;

/** Scenarios of a record counted by status. */
export function statusCounts(
  scenarios: readonly Pick<ScenarioResult, 'status'>[],
): Record<ScenarioResult['status'], number> {
  const out = { pass: 0, fail: 0, degraded: 0, skipped: 0 };
  for (const s of scenarios) out[s.status] += 1;
  return out;
}

/** The scenario with the highest signal-to-halt p99, with its target; null when none was measured. */
export function worstSignalToHalt(
  scenarios: readonly ScenarioResult[],
): { scenario: string; p99: number; target: number | null } | null {
  let worst: { scenario: string; p99: number; target: number | null } | null = null;
  for (const s of scenarios) {
    if (s.signalToHalt === null || s.signalToHalt.n === 0) continue;
    if (worst === null || s.signalToHalt.p99 > worst.p99)
      worst = { scenario: s.id, p99: s.signalToHalt.p99, target: s.target.signalToHaltMs };
  }
  return worst;
}

/** "41.0 ms ≤ 1.00 s (S1)", "2.10 s > 1.00 s (S3)" or "-". */
export function latencyVsTarget(w: { scenario: string; p99: number; target: number | null } | null): string {
  if (w === null) return '-';
  if (w.target === null) return `${ms(w.p99)} (${w.scenario}, no target)`;
  return `${ms(w.p99)} ${w.p99 <= w.target ? '≤' : '>'} ${ms(w.target)} (${w.scenario})`;
}

/** A due reason in a few words (the full sentence is in `detail`, and in `--json`). */
export function reasonWords(r: DueReason): string {
  switch (r.kind) {
    case 'surface_changed':
      return `new capabilities: ${r.added.join(', ')}`;
    case 'spec_changed':
      return 'spec changed';
    case 'failed':
      return 'last drill failed';
    case 'cadence':
      return `overdue since ${r.dueSince.slice(0, 10)}`;
    case 'never':
      return 'never drilled';
  }
}

function help(values: { help?: boolean | undefined }, text: string): boolean {
  if (values.help) console.log(text);
  return values.help === true;
}

/** `killpath drill history`. */
export async function drillHistory(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    agent: { type: 'string' },
    limit: { type: 'string', short: 'n' },
    before: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (help(values, DRILL_HISTORY_HELP)) return 0;
  if (values.before !== undefined && !isIdentifier(values.before))
    throw new KillpathError('invalid_request', `--before must be a drill id, got "${values.before}"`);
  const limit = intFlag('limit', values.limit, 20);
  if (limit < 1 || limit > 500) throw new KillpathError('invalid_request', '--limit must be from 1 to 500');
  const q = new URLSearchParams({ limit: String(limit) });
  if (values.agent !== undefined) {
    const parts = values.agent.split('/');
    if (parts.length !== 2 || !parts.every(isIdentifier))
      throw new KillpathError('invalid_request', `--agent must be TENANT/AGENT, got "${values.agent}"`);
    q.set('agent', values.agent);
  }
  if (values.before !== undefined) q.set('before', values.before);
  const { drills, total } = await clientFor(values).get<{ drills: RehearsalRecord[]; total?: number }>(
    `/v1/drills?${q.toString()}`,
  );
  if (values.json) {
    // The page, how many records there are in all, and the --before of the next (older) page.
    const next = drills.length === limit ? drills.at(-1)!.id : null;
    console.log(JSON.stringify({ total: total ?? null, before: next, drills }, null, 2));
    return 0;
  }
  if (drills.length === 0) {
    console.log('no rehearsal records');
    return 0;
  }
  console.log(
    table(
      [
        'id',
        'finished',
        'spec',
        'agents',
        'mode',
        'result',
        'pass/fail/degr/skip',
        'worst signal-to-halt p99',
      ],
      drills.map((d) => {
        const c = statusCounts(d.scenarios);
        return [
          d.id,
          d.finishedAt,
          `${d.spec.name} ${d.spec.digest.slice(0, 19)}`,
          d.spec.agents.map((a) => `${a.tenant}/${a.agent}`).join(', '),
          `${d.mode}${d.compact ? ' compact' : ''}`,
          d.result.toUpperCase(),
          `${c.pass}/${c.fail}/${c.degraded}/${c.skipped}`,
          latencyVsTarget(worstSignalToHalt(d.scenarios)),
        ];
      }),
    ),
  );
  // A full page may not be all: say how many of how many, with the command for the older ones.
  if (drills.length === limit)
    console.log(
      `${total === undefined ? `the newest ${limit}` : `${limit} of ${total}, the newest`}${values.before === undefined ? '' : ` before ${values.before}`}; older ones: killpath drill history${values.agent === undefined ? '' : ` --agent ${values.agent}`} -n ${limit} --before ${drills.at(-1)!.id}`,
    );
  else if (total !== undefined && values.before === undefined) console.log(`all ${total}`);
  return 0;
}

/** `killpath drill due`: exit 1 when any agent is due. */
export async function drillDue(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    'spec-digest': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (help(values, DRILL_DUE_HELP)) return 0;
  const digest = values['spec-digest'];
  if (digest !== undefined && !/^[A-Za-z0-9:._+/=-]{1,200}$/.test(digest))
    throw new KillpathError(
      'invalid_request',
      '--spec-digest must be 1-200 characters of letters, digits and :._+/=-',
    );
  const { agents } = await clientFor(values).get<{ agents: DrillDue[] }>(
    `/v1/drills/due${digest === undefined ? '' : `?specDigest=${encodeURIComponent(digest)}`}`,
  );
  const due = agents.filter((a) => a.due);
  if (values.json) {
    console.log(JSON.stringify(agents, null, 2));
    return due.length > 0 ? 1 : 0;
  }
  if (agents.length === 0) {
    console.log('no agents known (none registered a run, reported capabilities or was drilled)');
    return 0;
  }
  console.log(
    table(
      ['agent', 'due', 'why', 'last drill', 'next due'],
      agents.map((a) => [
        `${a.tenant}/${a.agent}`,
        a.due ? 'YES' : 'no',
        a.reasons.length === 0 ? '-' : a.reasons.map(reasonWords).join('; '),
        a.lastDrill === null
          ? 'never'
          : `${a.lastDrill.id} ${a.lastDrill.at} ${a.lastDrill.result.toUpperCase()}`,
        a.nextDueAt ?? '-',
      ]),
    ),
  );
  console.log(`\n${due.length} of ${agents.length} agent(s) due for a drill`);
  return due.length > 0 ? 1 : 0;
}

function effectsText(s: ScenarioResult): string {
  const e = s.effectsAfterFlip;
  if (e === null) return '-';
  const observe = s.effectsAfterObserve === null ? '' : `, ${s.effectsAfterObserve} after observe`;
  return `w${e.write} i${e.irreversible} r${e.read}${observe}`;
}

function journalText(s: ScenarioResult): string {
  const j = s.journal;
  if (j === null) return '-';
  return `${j.intents} intents: ${j.landed} landed, ${j.aborted} aborted, ${j.failed} failed, ${j.inDoubt} in doubt, ${j.open} open, ${j.lost} lost`;
}

/** `killpath drill show ID`. */
export async function drillShow(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, json: { type: 'boolean' } }, true);
  if (help(values, DRILL_SHOW_HELP)) return 0;
  if (positionals.length !== 1 || !isIdentifier(positionals[0]!))
    throw new KillpathError('invalid_request', 'usage: killpath drill show ID');
  const { drill: d } = await clientFor(values).get<{ drill: RehearsalRecord }>(
    `/v1/drills/${encodeURIComponent(positionals[0]!)}`,
  );
  if (values.json) {
    console.log(JSON.stringify(d, null, 2));
    return 0;
  }
  const c = statusCounts(d.scenarios);
  console.log(
    `# drill ${d.id}: ${d.result.toUpperCase()} (${c.pass} passed, ${c.fail} failed, ${c.degraded} degraded, ${c.skipped} skipped)`,
  );
  console.log(
    `# spec ${d.spec.name} ${d.spec.digest}, ${d.mode}${d.compact ? ' compact' : ''}, ${d.startedAt} → ${d.finishedAt}, recorded by ${d.recordedBy} (audit #${d.auditSeq})`,
  );
  console.log(
    `# agents: ${d.spec.agents.map((a) => `${a.tenant}/${a.agent} (level ${a.level}, every ${a.cadenceDays} days)`).join(', ')}`,
  );
  console.log('');
  console.log(
    table(
      [
        'scenario',
        'status',
        'expected signal-to-halt',
        'actual p50 / p99',
        'effects after flip',
        'journal',
        'remediation',
      ],
      d.scenarios.map((s) => [
        `${s.id} ${s.title}`,
        s.status.toUpperCase(),
        s.target.signalToHaltMs === null ? '-' : `≤ ${ms(s.target.signalToHaltMs)}`,
        s.signalToHalt === null
          ? '-'
          : `${ms(s.signalToHalt.p50)} / ${ms(s.signalToHalt.p99)} (n=${s.signalToHalt.n})`,
        effectsText(s),
        journalText(s),
        s.remediation ?? '-',
      ]),
    ),
  );
  const failed = d.scenarios.flatMap((s) =>
    s.checks.filter((k) => !k.ok).map((k) => [s.id, k.kind, k.name, k.detail]),
  );
  if (failed.length > 0) {
    console.log('\nfailed checks:');
    console.log(table(['scenario', 'kind', 'check', 'detail'], failed));
  }
  const paths = d.scenarios.flatMap((s) => s.paths.map((p) => [s.id, p.path, p.state, p.detail]));
  if (paths.length > 0) {
    console.log('\npaths (failure-of-the-switch scenarios):');
    console.log(table(['scenario', 'path', 'state', 'detail'], paths));
  }
  return 0;
}
