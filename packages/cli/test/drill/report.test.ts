import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RehearsalInput, TimelinePoint } from '@killpath/protocol';
import { renderReport, type DrillReportInput } from '../../src/drill/report.ts';
import {
  binWidth,
  effectsTimelineChart,
  esc,
  latencyStripChart,
  niceStep,
  tickMs,
} from '../../src/drill/svg-charts.ts';
import { drillReportFixture, NASTY } from './report-fixture.ts';

const html = renderReport(drillReportFixture());

/** The HTML of one scenario's section. */
function section(doc: string, id: string): string {
  const m = new RegExp(`<section class="scenario[^"]*" id="sc-\\d+-${id}"[\\s\\S]*?</section>`).exec(doc);
  assert.ok(m, `section for ${id}`);
  return m[0];
}

const count = (doc: string, re: RegExp) => (doc.match(re) ?? []).length;

test('a complete HTML document', () => {
  assert.match(html, /^<!doctype html>\n<html lang="en"><head><meta charset="utf-8">/);
  assert.match(html, /<\/body><\/html>\n$/);
  assert.equal(count(html, /<html/g), 1);
  assert.match(html, /<title>killpath drill: demo-fleet &#60;v2&#62; &#38; &#34;prod&#34;<\/title>/);
});

test('every string from the input is escaped', () => {
  for (const raw of Object.values(NASTY)) assert.ok(!html.includes(raw), `raw: ${raw}`);
  for (const raw of Object.values(NASTY)) assert.ok(html.includes(esc(raw)), `escaped: ${raw}`);
  assert.ok(html.includes('drl_01JD8Z &#38; &#60;id&#62;'), 'the record id');
  // No markup smuggled in: the only tags are the report's own.
  assert.equal(count(html, /<script|<img|<iframe|<object|<embed|<a href='/gi), 0);
});

test('loads nothing: no external resource, script, stylesheet link, font or image', () => {
  assert.equal(count(html, /<link|<script|<img|<iframe|@import|@font-face|url\(/gi), 0);
  // Inside tags (escaped text cannot open one): every src/href-like attribute is a same-page
  // anchor, and no URL appears at all.
  const tags = html.match(/<[^>]*>/g) ?? [];
  let anchors = 0;
  for (const tag of tags) {
    for (const m of tag.matchAll(/\s(?:src|href|xlink:href|action|poster|srcset|data)\s*=\s*"([^"]*)"/gi)) {
      assert.ok(m[1]!.startsWith('#'), `attribute ${m[0]} in ${tag}`);
      anchors++;
    }
    assert.ok(!/https?:|\/\//i.test(tag), `tag ${tag}`);
  }
  assert.equal(anchors, 5, "the summary links to each scenario's section");
  assert.ok(html.includes('src=&#34;https://evil.example/x.png&#34;'), 'a URL in the input stays text');
  assert.ok(html.includes('<code>http://127.0.0.1:7070</code>'), 'the control plane URL is shown as text');
  assert.match(
    html,
    /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/,
  );
});

test('one SVG per chart: the overview, one latency and one timeline per scenario with data', () => {
  const f = drillReportFixture();
  const withSamples = f.rehearsal.scenarios.filter((s) => s.signalToHalt?.samples.length).length;
  const withTimeline = f.rehearsal.scenarios.filter((s) => s.timeline?.length).length;
  assert.equal(withSamples, 4);
  assert.equal(withTimeline, 3);
  assert.equal(count(html, /<svg /g), 1 + withSamples + withTimeline);
  assert.equal(count(html, /<\/svg>/g), 1 + withSamples + withTimeline);
  assert.equal(count(html, /<svg [^>]*id="chart-latency-overview"/g), 1);
  assert.equal(count(html, /<svg [^>]*id="sc-\d+-[^"]*-timeline"/g), withTimeline);
  // Each chart is labelled, has a legend and axis labels.
  for (const svg of html.match(/<svg [\s\S]*?<\/svg>/g) ?? []) {
    assert.match(
      svg,
      /role="img" aria-labelledby="[^"]+-t [^"]+-d"><title id="[^"]+-t">[^<]+<\/title><desc id="[^"]+-d">[^<]+<\/desc>/,
    );
    assert.match(svg, /<g class="legend">/);
    assert.match(svg, /class="axlabel"/);
  }
  // The overview has a row per scenario with samples, and the target lines.
  const overview = /<svg [^>]*id="chart-latency-overview"[\s\S]*?<\/svg>/.exec(html)![0];
  assert.equal(count(overview, /<g class="row">/g), 4);
  assert.equal(count(overview, /<circle cx=[^>]*fill-opacity="0.55"/g), 12 + 8 + 3 + 12);
  assert.equal(
    count(overview, /stroke-dasharray="3 2"\/>/g),
    4 + 1,
    'a target line per row, plus the legend swatch',
  );
  assert.match(overview, /log scale/, 'samples over two decades get a log axis');
  // The flip is marked in every timeline.
  assert.equal(count(html, /class="flip">flip<\/text>/g), withTimeline);
});

test('never NaN or Infinity', () => {
  assert.ok(!/NaN|Infinity/.test(html));
});

test('the failed scenario is marked and shows its remediation and broken invariant', () => {
  assert.match(html, /<div class="badge big fail" id="result"[^>]*>✗ fail<\/div>/);
  assert.match(html, /<tr class="row-fail"><td class="id"><a href="#sc-2-S3"><code>S3<\/code><\/a><\/td>/);
  const s3 = section(html, 'S3');
  assert.match(s3, /^<section class="scenario st-fail"/);
  assert.match(s3, /<span class="badge fail">✗ fail<\/span>/);
  assert.ok(
    s3.includes(
      `<div class="remediation" role="note"><strong>Remediation:</strong> ${esc(NASTY.remediation)}</div>`,
    ),
  );
  assert.ok(
    s3.includes(
      `<tr class="row-fail"><td>invariant</td><td>no write after the flip</td><td><span class="badge fail">✗ broken</span></td><td>${esc(NASTY.detail)}</td></tr>`,
    ),
  );
  // Counts that must be 0 are shown in red in the summary: 2 writes after the flip, 2 after observe, 1 open.
  const row = /<tr class="row-fail">[\s\S]*?<\/tr>/.exec(html)![0];
  assert.match(row, /4 \/ <span class="bad">2<\/span> \/ 0/);
  assert.match(row, /<span class="bad">p99 over target<\/span>/);
  // Passing scenarios carry no remediation.
  assert.ok(!section(html, 'S1').includes('class="remediation"'));
});

test('status badges carry text, not colour alone', () => {
  for (const text of ['✓ pass', '✗ fail', '◐ degraded', '– skipped'])
    assert.ok(html.includes(`>${text}</span>`), text);
});

test('the degraded S8 lists its paths; the skipped S7 says "no data"', () => {
  const s8 = section(html, 'S8');
  assert.match(s8, /^<section class="scenario st-degraded"/);
  for (const state of ['✗ unreachable', '✓ worked', '◐ degraded', '– not exercised'])
    assert.ok(s8.includes(`>${state}</span>`), state);
  assert.equal(count(s8, /<table class="paths">[\s\S]*?<\/table>/g), 1);
  const s7 = section(html, 'S7');
  assert.equal(count(s7, /<svg /g), 0);
  assert.equal(count(s7, /<p class="nodata">/g), 1, 'one short note, not an empty box per chart');
  assert.match(
    s7,
    /<p class="nodata">No data: the scenario was skipped \(no checks, samples or timeline\)\.<\/p>/,
  );
  // A scenario that ran but measured nothing gets a note per missing chart.
  const global = section(html, 'scope-global');
  assert.match(global, /<p class="nodata">No effect timeline: not measured in this scenario\.<\/p>/);
  assert.match(s7, /not exercised against a remote control plane/);
  assert.match(html, /No samples: S7 \(skipped\)\./);
});

test('summary table: one row per scenario with the measured values', () => {
  const tbody = /<table id="summary">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(html)![1]!;
  assert.equal(count(tbody, /<tr /g), 5);
  const s1 = /<tr class="row-pass"><td class="id"><a href="#sc-1-S1">[\s\S]*?<\/tr>/.exec(tbody)![0];
  assert.match(s1, /812\.4 ms/, 'halt-to-recovery');
  assert.match(s1, /812\.4 ms<\/span><br><span class="muted">target ≤ 5\.00 s<\/span>/, 'its target');
  assert.match(s1, /5 → 0 <span class="muted">\(5 discarded\)<\/span>/, 'queue');
  assert.match(
    s1,
    /41 \/ 38 \/ 3 \/ 0 \/ 0 \/ 0<br><span class="muted">2 compensations<\/span><\/td>/,
    'journal and compensations',
  );
});

test('an empty drill renders with "no data" notes', () => {
  const f = drillReportFixture();
  const empty: DrillReportInput = {
    ...f,
    recordId: null,
    rehearsal: { ...f.rehearsal, scenarios: [], result: 'pass' } as RehearsalInput,
  };
  const doc = renderReport(empty);
  assert.equal(count(doc, /<svg /g), 0);
  assert.match(doc, /No signal-to-halt samples in this drill\./);
  assert.match(doc, /<dt>record<\/dt><dd><span class="muted">not stored<\/span><\/dd>/);
  assert.match(doc, /<div class="badge big pass" id="result"[^>]*>✓ pass<\/div>/);
  assert.ok(!/NaN|Infinity/.test(doc));
});

test('degenerate data never yields NaN or Infinity', () => {
  const f = drillReportFixture();
  const s = f.rehearsal.scenarios[0]!;
  const weird = {
    ...s,
    signalToHalt: {
      n: 4,
      p50: Number.NaN,
      p99: Number.POSITIVE_INFINITY,
      max: 0,
      samples: [0, 0, Number.NaN, -3],
    },
    timeline: [{ t: 0, class: 'read', outcome: 'started' }] as TimelinePoint[],
  };
  const doc = renderReport({ ...f, rehearsal: { ...f.rehearsal, scenarios: [weird] } });
  assert.ok(!/NaN|Infinity/.test(doc));
  assert.equal(
    latencyStripChart('x', [{ label: 'a', title: 'a', samples: [Number.NaN], p50: 1, p99: 1, target: null }]),
    null,
  );
  assert.equal(effectsTimelineChart('x', []), null);
  for (const pts of [
    [{ t: 5, class: 'write', outcome: 'aborted' }],
    [
      { t: -60_000, class: 'read', outcome: 'started' },
      { t: 60_000, class: 'irreversible', outcome: 'refused' },
    ],
    [
      { t: 0.001, class: 'read', outcome: 'started' },
      { t: 0.002, class: 'read', outcome: 'started' },
    ],
  ] as TimelinePoint[][]) {
    const svg = effectsTimelineChart('x', pts)!;
    assert.ok(svg && !/NaN|Infinity/.test(svg), JSON.stringify(pts));
    assert.ok(count(svg, /<g class="bin">/g) <= 81, 'a bounded number of bins');
  }
});

test('the timeline chart bins every point and says so', () => {
  const pts = drillReportFixture().rehearsal.scenarios[0]!.timeline!;
  const svg = effectsTimelineChart('t', pts)!;
  const started = (c: string) => pts.filter((p) => p.outcome === 'started' && p.class === c).length;
  const desc = /<desc id="t-d">([^<]*)<\/desc>/.exec(svg)![1]!;
  assert.ok(
    desc.includes(
      `Started: ${started('read')} read, ${started('write')} write, ${started('irreversible')} irreversible; refused ${pts.filter((p) => p.outcome === 'refused').length}; aborted 6.`,
    ),
    desc,
  );
  assert.match(desc, /^Effects per 100 ms bin from −1\.5 s to 900 ms around the flip\./);
  // Bars sum to the points: the tooltips list every bin's counts.
  let total = 0;
  for (const m of svg.matchAll(
    /<title>[^<]*?started (\d+) read, (\d+) write, (\d+) irreversible; refused (\d+); aborted (\d+)<\/title>/g,
  )) {
    total += m.slice(1).reduce((a, v) => a + Number(v), 0);
  }
  assert.equal(total, pts.length);
});

test('axis helpers: nice steps, bin widths, tick labels in ms and s', () => {
  assert.deepEqual([0.3, 1, 3, 7, 24, 60, 130].map(niceStep), [0.5, 1, 5, 10, 25, 100, 200]);
  assert.equal(binWidth(2400), 100);
  assert.equal(binWidth(4000), 100);
  assert.equal(binWidth(1000), 25);
  assert.equal(binWidth(0), 1);
  assert.deepEqual([0, 50, -250, 1000, -1500, 2.5, 12.5].map(tickMs), [
    '0',
    '50 ms',
    '−250 ms',
    '1 s',
    '−1.5 s',
    '2.5 ms',
    '12.5 ms',
  ]);
});
