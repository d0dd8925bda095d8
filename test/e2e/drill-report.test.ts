/**
 * The drill's HTML report in a real browser: Debian's Chromium, headless, driven by
 * playwright-core. The fixture report is written to a temp file and opened via file://; every
 * request the page makes is recorded and must be the file itself (the report works offline).
 * The charts must render (SVG with real size, legends visible) and the injected markup in the
 * fixture must stay text. A full-page screenshot is saved to test-artifacts/drill-report.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
// Not yet exported from @killpath/cli's entry; the test reads the module directly.
import { renderReport } from '@killpath/cli';
import { drillReportFixture, NASTY } from '../../packages/cli/test/drill/report-fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
/** Flags without which Chromium hangs or phones home on a closed network. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const MISSING = `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); the browser tests never download a browser`;
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const missing = !existsSync(CHROMIUM);

describe(
  'drill report (real browser, offline)',
  { skip: missing && process.env.CI !== 'true' ? MISSING : false, timeout: 60_000 },
  () => {
    let dir: string;
    let browser: Browser;

    before(async () => {
      if (missing) throw new Error(MISSING);
      dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-drill-report-'));
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: 30_000,
      });
    });

    after(async () => {
      await browser?.close().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('opens from file:// with no other request; the charts render; the input stays text', async () => {
      const fixture = drillReportFixture();
      const file = join(dir, 'drill.html');
      writeFileSync(file, renderReport(fixture));
      const url = pathToFileURL(file).href;

      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      try {
        const page = await context.newPage();
        const requests: string[] = [];
        const errors: string[] = [];
        page.on('request', (r) => requests.push(r.url()));
        page.on('pageerror', (e) => errors.push(e.message));
        page.on('console', (m) => {
          if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
        });
        const res = await page.goto(url, { waitUntil: 'load' });
        assert.ok(res, 'the file loaded');
        await page.waitForLoadState('networkidle');

        assert.deepEqual(requests, [url], 'the only request is the report itself');
        assert.deepEqual(errors, [], 'no script error and no CSP refusal');
        assert.equal(await page.title(), `killpath drill: ${NASTY.spec}`);

        // Injected markup stays text: no element came from the input.
        assert.equal(await page.locator('script, img, iframe, link, a[href^="http"]').count(), 0);
        const text = await page.locator('body').innerText();
        for (const s of [NASTY.remediation, NASTY.detail, NASTY.note])
          assert.ok(text.includes(s), `shown as text: ${s}`);
        assert.ok(!/NaN|Infinity/.test(text));

        // The failed scenario is marked and its remediation visible.
        assert.equal((await page.locator('#result').innerText()).trim().toLowerCase(), '✗ fail');
        const s3 = page.locator('section.scenario.st-fail');
        assert.equal(await s3.count(), 1);
        assert.ok(await s3.locator('.remediation').isVisible());

        // Every chart has a real size; the overview has a dot per sample and a target line per row.
        const withSamples = fixture.rehearsal.scenarios.filter((s) => s.signalToHalt?.samples.length).length;
        const withTimeline = fixture.rehearsal.scenarios.filter((s) => s.timeline?.length).length;
        const charts = page.locator('svg.chart');
        assert.equal(await charts.count(), 1 + withSamples + withTimeline);
        for (const chart of await charts.all()) {
          const box = await chart.boundingBox();
          assert.ok(box && box.width > 300 && box.height > 60, `chart size ${JSON.stringify(box)}`);
        }
        const overview = page.locator('#chart-latency-overview');
        const obox = (await overview.boundingBox())!;
        const dots = await overview.locator('circle[fill-opacity="0.55"]').all();
        assert.equal(dots.length, 12 + 8 + 3 + 12);
        for (const dot of dots) {
          const b = (await dot.boundingBox())!;
          assert.ok(
            b.width > 0 && b.x >= obox.x && b.x + b.width <= obox.x + obox.width + 1,
            'each dot is drawn inside the chart',
          );
        }

        // Legends and the flip marker are visible text.
        for (const label of ['sample (one worker)', 'p50', 'p99', 'target']) {
          const t = overview.locator('text.lg', { hasText: label }).first();
          assert.ok(await t.isVisible(), `overview legend: ${label}`);
          assert.ok(((await t.boundingBox())?.width ?? 0) > 0);
        }
        const timeline = page.locator('svg.chart[id$="-timeline"]').first();
        for (const label of [
          'read started',
          'write started',
          'irreversible started',
          'refused (below)',
          'aborted (below)',
        ]) {
          assert.ok(
            await timeline.locator('text.lg', { hasText: label }).first().isVisible(),
            `timeline legend: ${label}`,
          );
        }
        assert.ok(await timeline.locator('text.flip').isVisible(), 'the flip is labelled');
        assert.ok((await timeline.locator('g.bin rect').count()) > 10, 'binned bars');

        // The skipped scenario says so instead of drawing empty charts.
        const skipped = page.locator('section.scenario.st-skipped');
        assert.equal(await skipped.locator('svg').count(), 0);
        const notes = await skipped.locator('.nodata').allInnerTexts();
        assert.deepEqual(notes, ['No data: the scenario was skipped (no checks, samples or timeline).']);

        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, 'drill-report.png'), fullPage: true });
        assert.ok(existsSync(join(ARTIFACTS, 'drill-report.png')));
      } finally {
        await context.close();
      }
    });
  },
);
