/**
 * End to end, real server and a real browser: the console's Alerts view (what `/v1/alerts`
 * returns, newest first, and what a tenant's viewer may see of it) and Policy view (the active
 * version, the history, the diff between two versions, the shadow fires of the shadow rule).
 * A screenshot of the Policy view is saved to test-artifacts/console-policy.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext } from 'playwright-core';
import { ApiClient } from '@killpath/cli';
import { startServerProcess, until, type ServerProcess } from './server-process.ts';
import { SKIP_WITHOUT_CHROMIUM, launchChromium, signInTab } from './console-browser.ts';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

describe(
  'console Alerts and Policy views (real browser)',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 120_000 },
  () => {
    let dir: string;
    let server: ServerProcess;
    let admin: ApiClient;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    let viewer = '';

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-console-views-'));
      server = await startServerProcess(dir, 0);
      admin = new ApiClient(server.url, server.adminToken);
      viewer = (
        await admin.post<{ token: string }>('/v1/tokens', {
          role: 'viewer',
          tenant: 'acme',
          name: 'viewer-acme',
        })
      ).token;
      browser = await launchChromium();
    });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close().catch(() => {});
      await server?.stop().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test("alerts newest first; a tenant's viewer sees its tenant's and everyone's, not another tenant's", async () => {
      await admin.post('/v1/directives', {
        level: 'degrade',
        scope: 'agent:acme/support-bot',
        capabilities: ['crm.update'],
        reason: 'e2e: acme degrade',
        justification: 'e2e',
      });
      await admin.post('/v1/directives', {
        level: 'isolate',
        scope: 'agent:globex/billing-bot',
        reason: 'e2e: globex isolate',
        justification: 'e2e',
      });
      // An alert about every tenant: a break-glass halt at global scope (cleared at once).
      const { directive } = await admin.post<{ directive: { id: string } }>('/v1/directives', {
        level: 'halt',
        scope: 'global',
        reason: 'e2e: global',
        justification: 'e2e',
        breakGlass: 'e2e: INC-1',
      });
      await admin.post(`/v1/directives/${directive.id}/resume`, {
        justification: 'e2e',
        breakGlass: 'e2e: INC-1 closed',
        sameRelease: 'e2e',
      });
      const { alerts } = await admin.get<{ alerts: { kind: string; tenant: string | null }[] }>('/v1/alerts');
      const kinds = alerts.map((a) => `${a.kind}:${a.tenant}`);
      assert.ok(kinds.includes('degraded:acme') && kinds.includes('isolated:globex'), kinds.join(' '));

      const a = await signInTab(browser, contexts, server.url, server.adminToken, 'Tenant acme');
      await a.page.getByRole('link', { name: 'Alerts' }).click();
      const table = a.page.getByRole('table', { name: 'Alerts, newest first' });
      await table.waitFor();
      const rows = await table
        .locator('tbody tr')
        .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-alert')));
      assert.deepEqual(
        rows,
        [...alerts].reverse().map((x) => x.kind),
        'every alert, newest first',
      );
      assert.equal(rows.indexOf('isolated') < rows.indexOf('degraded'), true, 'the later isolate is above');
      assert.match(await table.locator('tr[data-alert="isolated"]').innerText(), /globex[\s\S]*billing-bot/);

      const v = await signInTab(browser, contexts, server.url, viewer, 'Tenant acme');
      await v.page.getByRole('link', { name: 'Alerts' }).click();
      const mine = v.page.getByRole('table', { name: 'Alerts, newest first' });
      await mine.locator('tr[data-alert="degraded"]').waitFor();
      assert.equal(
        await mine.locator('tr[data-alert="break_glass"]').count(),
        1,
        'an alert about every tenant',
      );
      assert.equal(
        await mine.locator('tr[data-alert="isolated"]').count(),
        0,
        "another tenant's alert is not shown",
      );
      assert.ok(!(await v.page.locator('main').innerText()).includes('globex'));
      assert.equal(
        await v.page.getByRole('link', { name: 'Policy' }).count(),
        0,
        'the policy is an admin view',
      );
      assert.deepEqual([...a.errors, ...v.errors], []);
    });

    test('the policy: active version and rules, history, the diff between two versions, shadow fires', async () => {
      const v1 = await admin.get<{ version: number; source: string }>('/v1/policy');
      const source = v1.source.replace('tool_error_rate: 0.3 ', 'tool_error_rate: 0.4 ');
      assert.notEqual(source, v1.source, 'the default policy names tool_error_rate');
      const applied = await admin.post<{ version: number }>('/v1/policy', {
        source,
        comment: 'e2e: fewer false halts',
      });
      const v2 = applied.version;
      assert.equal(v2, v1.version + 1);

      // The anomaly rule is a shadow rule: a run scoring 0.95 makes it fire in shadow, nothing issued.
      const agent = new ApiClient(
        server.url,
        (
          await admin.post<{ token: string }>('/v1/tokens', {
            role: 'agent',
            tenant: 'acme',
            agent: 'support-bot',
          })
        ).token,
      );
      await agent.post('/v1/workers/w-shadow/heartbeat', {
        rev: 0,
        features: [],
        pid: 1,
        sinceContactMs: 0,
        runs: [
          {
            runId: 'shadow-run-1',
            parentRunId: null,
            lineage: [],
            state: 'running',
            effects: 0,
            denied: 0,
            inFlight: 0,
          },
        ],
      });
      await agent.post('/v1/telemetry', {
        workerId: 'w-shadow',
        runs: [
          {
            runId: 'shadow-run-1',
            steps: 1,
            tokens: 0,
            costUsd: 0,
            toolCalls: 0,
            toolErrors: 0,
            authDenials: 0,
            schemaViolations: 0,
            anomalies: 1,
            anomalyScore: 0.95,
            anomalyDetail: 'e2e: odd tool sequence',
            localHalt: null,
          },
        ],
      });
      await until(
        'the shadow fire is audited',
        10_000,
        async () =>
          (await admin.get<{ records: unknown[] }>('/v1/audit?type=policy.shadow_fired')).records.length > 0,
      );

      const { page, errors } = await signInTab(
        browser,
        contexts,
        server.url,
        server.adminToken,
        'Tenant acme',
      );
      await page.getByRole('link', { name: 'Policy' }).click();
      await page.getByRole('heading', { name: `Active version v${v2}` }).waitFor();
      assert.match(
        await page.locator('p.policy-meta').innerText(),
        /Applied by bootstrap-admin[\s\S]*e2e: fewer false halts/,
      );
      const rules = page.getByRole('table', { name: `Rules of v${v2}` });
      assert.match(await rules.locator('tr[data-rule="anomaly"]').innerText(), /shadow[\s\S]*halt run/);
      assert.match(await rules.locator('tr[data-rule="cost_cap"]').innerText(), /enforce/);

      const history = page.getByRole('table', { name: /^Policy versions, newest first/ });
      // Issue 18: never a silent cut, the caption says how many of how many (here all of them).
      assert.equal(await history.locator('caption').innerText(), 'Policy versions, newest first (all 2)');
      assert.deepEqual(
        await history
          .locator('tbody tr')
          .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-version'))),
        [String(v2), String(v1.version)],
      );
      assert.match(
        await history.locator(`tr[data-version="${v2}"]`).innerText(),
        /active[\s\S]*e2e: fewer false halts/,
      );

      // The diff defaults to the previous version against the active one.
      const diff = page.getByLabel(`Diff from v${v1.version} to v${v2}`);
      await diff.waitFor();
      assert.deepEqual(
        (await diff.locator('.diff-removed').allInnerTexts()).map((t) => t.trimEnd()),
        [expect('- ', v1.source, 'tool_error_rate: 0.3')],
      );
      assert.deepEqual(
        (await diff.locator('.diff-added').allInnerTexts()).map((t) => t.trimEnd()),
        [expect('+ ', source, 'tool_error_rate: 0.4')],
      );
      // The same version on both sides: no difference.
      await page.getByLabel('From version').selectOption(String(v2));
      await page.getByText(`v${v2} and v${v2} have the same text.`).waitFor();

      const shadow = page.getByRole('table', { name: /Shadow fires, newest first/ });
      const fire = shadow.locator('tr[data-shadow-rule="anomaly"]');
      await fire.waitFor();
      const fires = await shadow.locator('tbody tr').count();
      assert.equal(await shadow.locator('caption').innerText(), `Shadow fires, newest first (all ${fires})`);
      assert.match(
        await fire.innerText(),
        /anomaly[\s\S]*halt[\s\S]*run:[\s\S]*shadow-run-1[\s\S]*acme\/support-bot/,
      );
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'console-policy.png'), fullPage: true });
      assert.deepEqual(errors, []);
    });
  },
);

/** The line of `text` holding `needle`, as the diff shows it (`prefix` and the line, trimmed at the end). */
function expect(prefix: string, text: string, needle: string): string {
  return `${prefix}${text.split('\n').find((l) => l.includes(needle))!}`.trimEnd();
}
