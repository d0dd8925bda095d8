/**
 * The drill's HTML report (`killpath drill --report drill.html`): one self-contained page that
 * works offline (no script, stylesheet, font or image from anywhere; a CSP meta tag forbids
 * every fetch), readable on screen and in print. Charts are inline SVG from `svg-charts.ts`.
 * Every string taken from the input is escaped.
 */
import type {
  DrillCheck,
  PathState,
  RehearsalInput,
  ScenarioResult,
  ScenarioStatus,
} from '@killpath/protocol';
import { ms } from '../output.ts';
import { COLORS, effectsTimelineChart, esc, latencyStripChart, type LatencyRow } from './svg-charts.ts';

/** What the report shows: the rehearsal plus facts about the run that are not in the record. */
export interface DrillReportInput {
  /** Page title, e.g. "killpath drill: demo-fleet". */
  title: string;
  /** The rehearsal; scenarios should include `timeline` for the effects-over-time charts. */
  rehearsal: RehearsalInput;
  /** Wall time of the whole drill, in ms. */
  wallMs: number;
  /** The machine it ran on, e.g. "linux x64, 2 cores, node v24.x". */
  machine: string;
  /** The rehearsal record's id at the control plane, or null when it was not stored. */
  recordId: string | null;
  /** The control plane the drill ran against (shown as text, never linked). */
  controlPlaneUrl: string;
}

const STATUS_TEXT: Record<ScenarioStatus, string> = {
  pass: '✓ pass',
  fail: '✗ fail',
  degraded: '◐ degraded',
  skipped: '– skipped',
};
const PATH_TEXT: Record<PathState['state'], string> = {
  worked: '✓ worked',
  degraded: '◐ degraded',
  unreachable: '✗ unreachable',
  'not exercised': '– not exercised',
};

const CSS = `
:root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1f24;background:#fff;margin:0 auto;max-width:1180px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:17px;margin:0 0 4px}h4{font-size:14px;margin:14px 0 4px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}
header{display:flex;gap:20px;align-items:flex-start;border-bottom:2px solid #1b1f24;padding-bottom:14px}
header .info{flex:1}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0 0}dl.meta dt{color:#57606a}dl.meta dd{margin:0}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-weight:600;font-size:12.5px;border:1px solid;white-space:nowrap}
.badge.big{font-size:28px;padding:10px 20px;border-width:3px;border-radius:8px;text-transform:uppercase;letter-spacing:.04em}
.pass{background:#dafbe1;color:#116329;border-color:#1a7f37}.fail{background:#ffebe9;color:#a40e26;border-color:#cf222e}
.degraded{background:#fff8c5;color:#7d4e00;border-color:#bf8700}.skipped{background:#f0f1f3;color:#57606a;border-color:#8c959f}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:4px 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.id,td.id code{white-space:nowrap;overflow-wrap:normal}#summary{font-size:12.5px}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.row-fail td{background:#fff5f5}.bad{color:#a40e26;font-weight:700}.muted{color:#57606a}
section.scenario{border:1px solid #d0d7de;border-left-width:6px;border-radius:6px;padding:12px 16px;margin:18px 0}
section.scenario.st-pass{border-left-color:#1a7f37}section.scenario.st-fail{border-left-color:#cf222e}
section.scenario.st-degraded{border-left-color:#bf8700}section.scenario.st-skipped{border-left-color:#8c959f}
.remediation{background:#ffebe9;border:1px solid #cf222e;border-radius:6px;padding:8px 12px;margin:10px 0}
.nodata{color:#57606a;font-style:italic;border:1px dashed #8c959f;border-radius:6px;padding:10px 14px;margin:6px 0}
svg.chart{max-width:100%;height:auto;display:block;margin:6px 0}
svg .grid{stroke:#e1e4e8;stroke-width:1}svg .axis{stroke:#444;stroke-width:1}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;fill:#1b1f24}
svg .tick{font-size:11px;fill:#444}svg .lg{font-size:11.5px}svg .axlabel{font-size:12px;fill:#333}
svg .rowlabel{font-size:12px;font-family:ui-monospace,Menlo,Consolas,monospace}svg .flip{font-size:12px;font-weight:700}
figure{margin:8px 0}figcaption{font-size:13px;font-weight:600}
footer{margin-top:32px;color:#57606a;font-size:12px;border-top:1px solid #d0d7de;padding-top:8px}
@page{margin:12mm}
@media print{body{padding:0;max-width:none;font-size:11px}.scroll{overflow:visible}#summary{font-size:9px}#summary .badge{font-size:9px;padding:0 3px}figure,tr,.remediation{break-inside:avoid}h2,h3,h4{break-after:avoid}section.scenario{padding:6px 10px}}
`;

/** Renders the rehearsal as a complete, self-contained HTML document. */
export function renderReport(input: DrillReportInput): string {
  const r = input.rehearsal;
  const ids = r.scenarios.map((s, i) => `sc-${i + 1}-${s.id.replace(/[^A-Za-z0-9_-]+/g, '-')}`);
  const body = [
    header(input),
    overview(r.scenarios),
    summary(r.scenarios, ids),
    `<h2>Scenarios</h2>`,
    ...r.scenarios.map((s, i) => scenarioSection(s, ids[i]!)),
    `<footer>Written by <code>killpath drill</code>. This page is self-contained: it loads nothing from any network.</footer>`,
  ];
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(input.title)}</title><style>${CSS}</style></head>`,
    `<body>${body.join('\n')}</body></html>`,
    '',
  ].join('\n');
}

function badge(status: ScenarioStatus): string {
  return `<span class="badge ${status}">${STATUS_TEXT[status]}</span>`;
}

function header(input: DrillReportInput): string {
  const r = input.rehearsal;
  const counts = (['pass', 'fail', 'degraded', 'skipped'] as const)
    .map((st) => [st, r.scenarios.filter((s) => s.status === st).length] as const)
    .filter(([, c]) => c > 0)
    .map(([st, c]) => `${c} ${st === 'pass' ? 'passed' : st === 'fail' ? 'failed' : st}`);
  const agents = r.spec.agents.map(
    (a) => `${esc(a.tenant)}/${esc(a.agent)} (level ${esc(a.level)}, every ${esc(a.cadenceDays)} d)`,
  );
  const rows: [string, string][] = [
    ['spec', `${esc(r.spec.name)} <code>${esc(r.spec.digest)}</code>`],
    ['agents', agents.length ? agents.join(', ') : '<span class="muted">none listed</span>'],
    [
      'mode',
      `${esc(r.mode)} (${r.mode === 'local' ? 'the drill started its own control plane' : 'against a deployment'})`,
    ],
    ['battery', r.compact ? 'compact (CI: judged on invariants only)' : 'full'],
    ['started', esc(r.startedAt)],
    ['finished', esc(r.finishedAt)],
    ['wall time', esc(ms(input.wallMs))],
    ['machine', esc(input.machine)],
    ['control plane', `<code>${esc(input.controlPlaneUrl)}</code>`],
    [
      'record',
      input.recordId === null
        ? '<span class="muted">not stored</span>'
        : `<code>${esc(input.recordId)}</code>`,
    ],
    ['scenarios', `${r.scenarios.length}: ${counts.join(', ') || 'none'}`],
  ];
  const result = r.result === 'pass' ? 'pass' : 'fail';
  return (
    `<header><div class="info"><h1>${esc(input.title)}</h1><dl class="meta">${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl></div>` +
    `<div class="badge big ${result}" id="result" role="status" aria-label="overall result: ${result}">${result === 'pass' ? '✓ pass' : '✗ fail'}</div></header>`
  );
}

function latencyRow(s: ScenarioResult): LatencyRow | null {
  const l = s.signalToHalt;
  if (!l || l.samples.length === 0) return null;
  return {
    label: s.id,
    title: s.title,
    samples: l.samples,
    p50: l.p50,
    p99: l.p99,
    target: s.target.signalToHaltMs,
  };
}

function overview(scenarios: ScenarioResult[]): string {
  const rows = scenarios.map(latencyRow).filter((x): x is LatencyRow => x !== null);
  const without = scenarios
    .filter((s) => latencyRow(s) === null)
    .map((s) => `${esc(s.id)} (${s.status === 'skipped' ? 'skipped' : 'no samples'})`);
  const chart = latencyStripChart('chart-latency-overview', rows, { caption: 'signal-to-halt per scenario' });
  return (
    `<h2>Signal-to-halt</h2><figure>` +
    (chart ?? nodata('No signal-to-halt samples in this drill.')) +
    `<figcaption>signal-to-halt per covered worker (flip → its in-flight effects settled and it refuses new ones), one row per scenario; the red dashed line is the spec's target.</figcaption></figure>` +
    (chart && without.length ? `<p class="muted">No samples: ${without.join(', ')}.</p>` : '')
  );
}

function nodata(text: string): string {
  return `<p class="nodata">${esc(text)}</p>`;
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return v < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : v.toFixed(0);
}

function summary(scenarios: ScenarioResult[], ids: string[]): string {
  const head = [
    'id',
    'title',
    'path',
    'status',
    'signal-to-halt<br>p50 / p99 / max',
    'halt-to-<br>recovery',
    'effects after flip<br>r / w / irr',
    'after<br>observe',
    'queue at flip<br>→ after window',
    'journal: intents / landed /<br>aborted / in doubt / open / lost',
  ];
  const rows = scenarios.map((s, i) => {
    const l = s.signalToHalt;
    const tS = s.target.signalToHaltMs;
    const tR = s.target.haltToRecoveryMs;
    const over = l && tS !== null && l.n > 0 && l.p99 > tS;
    const sth =
      l && l.n > 0
        ? `<span class="${over ? 'bad' : ''}">${num(l.p50)} / ${num(l.p99)} / ${num(l.max)} ms</span><br><span class="muted">n=${l.n}</span>${over ? ' <span class="bad">p99 over target</span>' : ''}`
        : '-';
    const recOver = s.haltToRecoveryMs !== null && tR !== null && s.haltToRecoveryMs > tR;
    const e = s.effectsAfterFlip;
    const eff = e ? `${e.read} / ${cnt(e.write)} / ${cnt(e.irreversible)}` : '-';
    const q = s.queue
      ? `${s.queue.atFlip} → ${cnt(s.queue.afterWindow)}${s.queue.discarded ? ` <span class="muted">(${s.queue.discarded} discarded)</span>` : ''}`
      : '-';
    const j = s.journal;
    const jt = j
      ? `${j.intents} / ${j.landed} / ${j.aborted} / ${j.inDoubt} / ${cnt(j.open)} / ${cnt(j.lost)}`
      : '-';
    return (
      `<tr class="row-${s.status}"><td class="id"><a href="#${ids[i]}"><code>${esc(s.id)}</code></a></td><td>${esc(s.title)}</td><td>${esc(s.path)}</td><td>${badge(s.status)}</td>` +
      `<td class="num">${sth}${target(tS)}</td>` +
      `<td class="num"><span class="${recOver ? 'bad' : ''}">${esc(ms(s.haltToRecoveryMs))}</span>${target(tR)}</td>` +
      `<td class="num">${eff}</td><td class="num">${s.effectsAfterObserve === null ? '-' : cnt(s.effectsAfterObserve)}</td>` +
      `<td class="num">${q}</td><td class="num">${jt}${j ? `<br><span class="muted">${j.compensations} compensation${j.compensations === 1 ? '' : 's'}</span>` : ''}</td></tr>`
    );
  });
  return (
    `<h2>Summary</h2><div class="scroll"><table id="summary"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div>` +
    `<p class="muted">Counts marked in red must be 0: writes and irreversible effects after the flip, effects after the worker observed it, queued tasks run after the window, open or lost journal entries.</p>`
  );
}

/** A target under a measured value in the summary (nothing when none applies). */
function target(v: number | null): string {
  return v === null ? '' : `<br><span class="muted">target ≤ ${esc(ms(v))}</span>`;
}

/** A count that must be 0: shown in red otherwise. */
function cnt(v: number): string {
  return v === 0 ? '0' : `<span class="bad">${esc(v)}</span>`;
}

function checksTable(checks: DrillCheck[]): string {
  if (checks.length === 0) return nodata('No checks were judged.');
  const rows = checks.map(
    (c) =>
      `<tr class="${c.ok ? '' : 'row-fail'}"><td>${esc(c.kind)}</td><td>${esc(c.name)}</td>` +
      `<td>${c.ok ? '<span class="badge pass">✓ ok</span>' : '<span class="badge fail">✗ broken</span>'}</td><td>${esc(c.detail)}</td></tr>`,
  );
  return `<table class="checks"><thead><tr><th>kind</th><th>check</th><th>result</th><th>detail</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function pathsTable(paths: PathState[]): string {
  const cls: Record<PathState['state'], ScenarioStatus> = {
    worked: 'pass',
    degraded: 'degraded',
    unreachable: 'fail',
    'not exercised': 'skipped',
  };
  const rows = paths.map(
    (p) =>
      `<tr><td>${esc(p.path)}</td><td><span class="badge ${cls[p.state]}">${PATH_TEXT[p.state]}</span></td><td>${esc(p.detail)}</td></tr>`,
  );
  return `<h4>Paths</h4><table class="paths"><thead><tr><th>path</th><th>state</th><th>detail</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function measurements(s: ScenarioResult): string {
  const items: string[] = [];
  const j = s.journal;
  if (j) {
    items.push(
      `journal: ${j.intents} intents, ${j.landed} landed, ${j.failed} failed, ${j.aborted} aborted, ${j.inDoubt} in doubt, ${cnt(j.open)} open, ${cnt(j.lost)} lost; ${j.compensations} compensation${j.compensations === 1 ? '' : 's'} to work through`,
    );
  }
  if (s.queue)
    items.push(
      `queue: ${s.queue.atFlip} waiting at the flip, ${cnt(s.queue.afterWindow)} after the window, ${s.queue.discarded} discarded`,
    );
  if (s.haltToRecoveryMs !== null)
    items.push(
      `halt-to-recovery: ${esc(ms(s.haltToRecoveryMs))}${s.target.haltToRecoveryMs !== null ? ` (target ≤ ${esc(ms(s.target.haltToRecoveryMs))})` : ''}`,
    );
  return items.length ? `<ul class="measurements">${items.map((i) => `<li>${i}</li>`).join('')}</ul>` : '';
}

function scenarioSection(s: ScenarioResult, id: string): string {
  const row = latencyRow(s);
  const skipped = s.status === 'skipped';
  const latency = row
    ? latencyStripChart(`${id}-latency`, [row], { caption: `${s.id}: signal-to-halt` })
    : null;
  const timeline =
    s.timeline && s.timeline.length
      ? effectsTimelineChart(`${id}-timeline`, s.timeline, {
          caption: `${s.id}: effects over time around the flip`,
        })
      : null;
  const why = skipped ? 'scenario skipped' : 'not measured in this scenario';
  const parts = [
    `<h3><code>${esc(s.id)}</code> ${esc(s.title)} ${badge(s.status)}</h3>`,
    `<p class="muted">path: ${esc(s.path)} · started ${esc(s.startedAt)} · took ${esc(ms(s.durationMs))}</p>`,
  ];
  if (s.remediation !== null)
    parts.push(
      `<div class="remediation" role="note"><strong>Remediation:</strong> ${esc(s.remediation)}</div>`,
    );
  if (s.notes.length)
    parts.push(`<h4>Notes</h4><ul class="notes">${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  if (skipped && s.checks.length === 0 && !latency && !timeline && s.paths.length === 0) {
    parts.push(nodata('No data: the scenario was skipped (no checks, samples or timeline).'));
    return wrap(s, id, parts);
  }
  parts.push(`<h4>Checks</h4>${checksTable(s.checks)}`);
  if (s.paths.length) parts.push(pathsTable(s.paths));
  parts.push(measurements(s));
  parts.push(
    `<h4>Signal-to-halt</h4><figure>${latency ?? nodata(`No signal-to-halt samples: ${why}.`)}</figure>`,
  );
  if (row)
    parts.push(
      `<details><summary>${row.samples.length} samples (ms)</summary><p class="mono">${row.samples.map((v) => num(v)).join(', ')}</p></details>`,
    );
  parts.push(
    `<h4>Effects around the flip</h4><figure>${timeline ?? nodata(`No effect timeline: ${why}.`)}` +
      (timeline
        ? `<figcaption>Effects that started, by class, above the line; refused (<span style="color:${COLORS.refused}">grey</span>) and aborted (<span style="color:${COLORS.aborted}">pink</span>) below it.</figcaption>`
        : '') +
      `</figure>`,
  );
  return wrap(s, id, parts);
}

function wrap(s: ScenarioResult, id: string, parts: string[]): string {
  return `<section class="scenario st-${s.status}" id="${id}" aria-label="${esc(`${s.id} ${s.title}: ${s.status}`)}">${parts.join('\n')}</section>`;
}
