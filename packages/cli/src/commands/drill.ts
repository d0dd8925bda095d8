import { writeFileSync } from 'node:fs';
import { KillpathError, LEVELS, type ScenarioResult } from '@killpath/protocol';
import { intFlag, parse } from '../args.ts';
import { resolveConnection } from '../config.ts';
import { renderReport } from '../drill/report.ts';
import { DRILL_SCOPES } from '../drill/scopes.ts';
import { prepareReportPath } from '../report-file.ts';
import { brokenInvariants, pickScenarios, runDrill, SCENARIOS, type DrillRun } from '../drill/run.ts';
import { auditVerdictLine, ms, table } from '../output.ts';
import { loadSpec, parseSpec } from '../killswitch-spec/load-spec.ts';
import { SPEC_TEMPLATE } from '../killswitch-spec/template.ts';
import {
  DRILL_DUE_HELP,
  DRILL_HISTORY_HELP,
  DRILL_SHOW_HELP,
  drillDue,
  drillHistory,
  drillShow,
} from './drill-records.ts';

export const DRILL_HELP = `killpath drill [options]                 rehearse the kill path on real processes
killpath drill history | due | show ID   the rehearsal records (see killpath drill history --help)

Runs seed 002's scenarios against a real control plane, launcher and agent processes, judges
each against the kill-switch spec, stores the rehearsal record at the control plane
(drill.recorded in the audit), and stops everything it started.

Scenarios (--scenarios, comma list; default all):
  S1 operator button mid-run   S2 cost cap        S3 loop length     S4 three unauthorised calls
  S5 hung in a model call      S6 kill mid-call   S7 supervisor down S8 network partition
  scope:${DRILL_SCOPES.join('|')}  level:${LEVELS.join('|')}
  groups: all, S, scopes, levels

Options:
  --spec FILE        the kill-switch spec (default: the demo fleet's, as killpath spec init writes it)
  --ci               the compact battery for CI: short windows, one process per agent, a fast
                     deadman; fails on a broken invariant only, never on a latency
  --window MS        how long to watch after each flip (default: the spec's rehearsal window, 60 s;
                     1 s with --ci)
  --json             print the rehearsal as JSON on stdout (progress goes to stderr)
  --report FILE      write a self-contained HTML report (charts; works offline)
  --url URL --token TOKEN   drill an existing deployment instead of starting a control plane;
                     the token must be able to mint agent tokens and issue directives there
  --tenant TENANT    with --url: run every agent of the spec in this (staging) tenant
  --allow-global     with --url: also rehearse the global flip (it stops every tenant)
  --keep             keep the local drill's data dir and print where it is

Exit: 0 when the rehearsal passed (--ci: when no invariant broke), 1 otherwise, 2 on bad input.`;

const statusWord = (s: ScenarioResult['status']) =>
  ({ pass: 'pass', fail: 'FAIL', degraded: 'degraded', skipped: 'skipped' })[s];

/** The terminal summary: one row per scenario. */
export function summaryTable(scenarios: ScenarioResult[]): string {
  return table(
    [
      'scenario',
      'status',
      'signal-to-halt p50 / p99 / max',
      'target',
      'halt-to-recovery',
      'after flip r/w/i',
      'after observe',
      'queue flip→window',
      'journal intents/landed/aborted/doubt/open/lost',
      'comp.',
    ],
    scenarios.map((s) => [
      `${s.id} ${s.title.length > 44 ? `${s.title.slice(0, 43)}…` : s.title}`,
      statusWord(s.status),
      s.signalToHalt
        ? `${ms(s.signalToHalt.p50)} / ${ms(s.signalToHalt.p99)} / ${ms(s.signalToHalt.max)} (n=${s.signalToHalt.n})`
        : null,
      s.target.signalToHaltMs === null ? null : `≤ ${ms(s.target.signalToHaltMs)}`,
      s.haltToRecoveryMs === null ? null : ms(s.haltToRecoveryMs),
      s.effectsAfterFlip
        ? `${s.effectsAfterFlip.read}/${s.effectsAfterFlip.write}/${s.effectsAfterFlip.irreversible}`
        : null,
      s.effectsAfterObserve,
      s.queue ? `${s.queue.atFlip} → ${s.queue.afterWindow}` : null,
      s.journal
        ? `${s.journal.intents}/${s.journal.landed}/${s.journal.aborted}/${s.journal.inDoubt}/${s.journal.open}/${s.journal.lost}`
        : null,
      s.journal ? s.journal.compensations : null,
    ]),
  );
}

/** What a person reads under the table: every path of S7/S8, and every failed check with its remediation. */
export function details(scenarios: ScenarioResult[]): string[] {
  const lines: string[] = [];
  for (const s of scenarios) {
    if (s.status === 'skipped') lines.push(`${s.id} skipped: ${s.notes[0] ?? ''}`);
    if (s.paths.length > 0) {
      lines.push(`${s.id} ${s.title} (${s.status}: which paths worked and which degraded):`);
      for (const p of s.paths) lines.push(`  ${p.state.padEnd(13)} ${p.path}: ${p.detail}`);
    }
    const failed = s.checks.filter((c) => !c.ok);
    if (failed.length > 0) {
      lines.push(`${s.id} ${s.title}: ${failed.length} check(s) failed`);
      for (const c of failed) lines.push(`  ✗ [${c.kind}] ${c.name}: ${c.detail}`);
      if (s.remediation) lines.push(`  remediation: ${s.remediation}`);
    }
  }
  return lines;
}

/** `killpath drill`. */
export async function drill(args: string[]): Promise<number> {
  const sub = args[0];
  if (sub === 'history') return drillHistory(args.slice(1));
  if (sub === 'due') return drillDue(args.slice(1));
  if (sub === 'show') return drillShow(args.slice(1));
  const { values, positionals } = parse(
    args,
    {
      spec: { type: 'string' },
      scenarios: { type: 'string' },
      ci: { type: 'boolean' },
      window: { type: 'string' },
      json: { type: 'boolean' },
      report: { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      tenant: { type: 'string' },
      'allow-global': { type: 'boolean' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    console.log([DRILL_HELP, '', DRILL_HISTORY_HELP, '', DRILL_DUE_HELP, '', DRILL_SHOW_HELP].join('\n'));
    return 0;
  }
  if (positionals.length > 0)
    throw new KillpathError(
      'invalid_request',
      `unknown drill subcommand "${positionals[0]}" (history, due, show; or options only to run a drill)`,
    );
  if (values.tenant && !values.url)
    throw new KillpathError(
      'invalid_request',
      '--tenant picks the staging tenant of a deployment: use it with --url',
    );
  let scenarios;
  try {
    scenarios = pickScenarios(values.scenarios);
  } catch (err) {
    throw new KillpathError('invalid_request', (err as Error).message);
  }
  const { spec, digest, warnings } = values.spec
    ? loadSpec(values.spec)
    : parseSpec(SPEC_TEMPLATE, 'the demo fleet spec');
  const compact = values.ci === true;
  const windowMs = intFlag('window', values.window, compact ? 1000 : spec.rehearsal.windowMs);
  let url: string | null = null;
  let token: string | null = null;
  if (values.url) {
    const conn = resolveConnection({ url: values.url, token: values.token });
    url = conn.url;
    token = conn.token;
  }
  if (values.report) prepareReportPath(values.report, '--report');
  const say = (text: string) => (values.json ? process.stderr : process.stdout).write(`${text}\n`);
  for (const w of warnings) say(`spec warning: ${w}`);
  say(
    `killpath drill: ${spec.name} (${spec.agents.length} agents, spec ${digest.slice(0, 12)}), ${scenarios.length} of ${SCENARIOS.length} scenarios, ${compact ? 'compact (CI)' : 'full'}, window ${ms(windowMs)}`,
  );
  const run = await runDrill({
    spec,
    digest,
    scenarios,
    compact,
    windowMs,
    url,
    token,
    tenant: values.tenant ?? null,
    allowGlobal: values['allow-global'] === true,
    keep: values.keep === true,
    progress: (t) => say(`  ${t}`),
  });
  if (values.report) {
    writeFileSync(
      values.report,
      renderReport({
        title: `killpath drill: ${spec.name}`,
        rehearsal: run.rehearsal,
        wallMs: run.wallMs,
        machine: run.machine,
        recordId: run.record?.id ?? null,
        controlPlaneUrl: run.controlPlaneUrl,
      }),
    );
  }
  const broken = brokenInvariants(run.rehearsal);
  if (values.json) {
    console.log(
      JSON.stringify(
        {
          ...run.rehearsal,
          wallMs: run.wallMs,
          machine: run.machine,
          recordId: run.record?.id ?? null,
          recordError: run.recordError,
          auditVerified: run.auditVerified?.ok ?? null,
          brokenInvariants: broken,
        },
        null,
        2,
      ),
    );
  } else {
    printSummary(run, values.report ?? null);
  }
  if (compact) {
    if (broken.length > 0 && !values.json)
      console.log(`\nFAILED: ${broken.length} broken invariant(s):\n  ${broken.join('\n  ')}`);
    return broken.length > 0 || run.auditVerified?.ok === false ? 1 : 0;
  }
  return run.rehearsal.result === 'pass' && run.auditVerified?.ok !== false ? 0 : 1;
}

function printSummary(run: DrillRun, report: string | null): void {
  const r = run.rehearsal;
  console.log(`\n${summaryTable(r.scenarios)}\n`);
  const more = details(r.scenarios);
  if (more.length > 0) console.log(`${more.join('\n')}\n`);
  const count = (s: ScenarioResult['status']) => r.scenarios.filter((x) => x.status === s).length;
  console.log(
    `${r.result === 'pass' ? 'PASS' : 'FAIL'}: ${count('pass')} passed, ${count('degraded')} degraded as designed, ${count('fail')} failed, ${count('skipped')} skipped; wall time ${ms(run.wallMs)} (${run.machine})`,
  );
  if (run.record)
    console.log(
      `rehearsal record ${run.record.id} stored at ${run.controlPlaneUrl} (drill.recorded, audit #${run.record.auditSeq})`,
    );
  else console.log(`rehearsal record NOT stored: ${run.recordError}`);
  if (run.auditVerified) console.log(auditVerdictLine(run.auditVerified));
  if (run.dataDir)
    console.log(
      `data dir kept: ${run.dataDir} (killpath drill history --data-dir ${run.dataDir} needs a killpath serve on it)`,
    );
  if (report) console.log(`report: ${report}`);
}
