/**
 * End to end, real server and a real browser: the console's fleet view at a thousand workers
 * (issue 18). 1,000 workers of two tenants register by heartbeats through the HTTP API; the page
 * lists every tenant and agent with the right counts without fetching the workers, pages one
 * agent's workers to its last one, and finds one run by its id.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { ApiClient } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';
import { startServerProcess, type ServerProcess } from './server-process.ts';
import { SKIP_WITHOUT_CHROMIUM, launchChromium, signInTab } from './console-browser.ts';

/** Workers per tenant/agent: 1,000 in all. */
const AGENTS = [
  { tenant: 'acme', agent: 'bot-a', workers: 450 },
  { tenant: 'acme', agent: 'bot-b', workers: 350 },
  { tenant: 'globex', agent: 'bot-c', workers: 200 },
];
const RUNS_PER_WORKER = 3;
const workerId = (agent: string, i: number) => `${agent}-w${String(i).padStart(4, '0')}`;

describe(
  'console fleet view at 1,000 workers (real browser)',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 180_000 },
  () => {
    let dir: string;
    let server: ServerProcess;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    let operator = '';

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-console-fleet-'));
      server = await startServerProcess(dir, 0);
      const admin = new ApiClient(server.url, server.adminToken);
      operator = (
        await admin.post<{ token: string }>('/v1/tokens', {
          role: 'operator',
          tenant: 'acme',
          name: 'ops-acme',
        })
      ).token;
      for (const a of AGENTS) {
        const token = (
          await admin.post<{ token: string }>('/v1/tokens', {
            role: 'agent',
            tenant: a.tenant,
            agent: a.agent,
          })
        ).token;
        const ids = Array.from({ length: a.workers }, (_, i) => workerId(a.agent, i));
        for (let i = 0; i < ids.length; i += 25) {
          await Promise.all(
            ids.slice(i, i + 25).map(async (id) => {
              const res = await fetch(`${server.url}/v1/workers/${id}/heartbeat`, {
                method: 'POST',
                headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
                body: JSON.stringify({
                  rev: 0,
                  features: [],
                  pid: 1000,
                  sinceContactMs: 0,
                  runs: Array.from({ length: RUNS_PER_WORKER }, (_, r) => ({
                    runId: `${id}-r${r}`,
                    parentRunId: null,
                    lineage: [],
                    state: 'running',
                    effects: 0,
                    denied: 0,
                    inFlight: 0,
                  })),
                }),
              });
              assert.ok(res.ok, `heartbeat of ${id}: ${res.status} ${await res.text()}`);
            }),
          );
        }
      }
      browser = await launchChromium();
    });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close().catch(() => {});
      await server?.stop().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('an admin sees every group with its counts, pages to the last worker, and finds a run by id', async () => {
      const { page, errors } = await signInTab(
        browser,
        contexts,
        server.url,
        server.adminToken,
        'Tenant acme',
      );
      const fleetAnswers: number[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).pathname === '/v1/fleet')
          void r.body().then(
            (b) => fleetAnswers.push(b.length),
            () => {},
          );
      });
      await page.getByText(/Workers 1–\d+ of 1000/).waitFor();
      assert.match(await page.locator('p.summary').innerText(), /1,000 workers/);
      for (const a of AGENTS) {
        const counts = await page
          .locator(`section[data-agent="${a.tenant}/${a.agent}"] .agent-counts`)
          .innerText();
        assert.match(
          counts,
          new RegExp(`^${a.workers} workers · ${(a.workers * RUNS_PER_WORKER).toLocaleString('en-US')} runs`),
          `${a.tenant}/${a.agent}: ${counts}`,
        );
      }
      assert.match(
        await page.locator('section[data-tenant="acme"] .scope-head .detail').first().innerText(),
        /2 agents · 800 workers/,
      );
      assert.match(
        await page.locator('section[data-tenant="globex"] .scope-head .detail').first().innerText(),
        /1 agent · 200 workers/,
      );
      // The whole view is paged: the first page holds only the first 50, in order.
      assert.equal(await page.locator('tr[data-worker]').count(), 50);
      assert.equal(await page.locator(`tr[data-worker="${workerId('bot-a', 0)}"]`).count(), 1);

      // One agent's workers, page after page, to its last one.
      await page.getByRole('button', { name: 'Show the workers of globex/bot-c' }).click();
      await page.getByText('Workers of agent globex/bot-c.').waitFor();
      await page.getByText('Workers 1–50 of 200').waitFor();
      const seen = new Set<string>();
      for (let p = 0; ; p++) {
        for (const id of await page
          .locator('tr[data-worker]')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-worker')!)))
          seen.add(id);
        const next = page.getByRole('button', { name: 'Next page' });
        if (await next.isDisabled()) break;
        assert.ok(p < 10, 'paging ends');
        await next.click();
        await page.getByText(`Workers ${(p + 1) * 50 + 1}–`).waitFor();
      }
      assert.equal(seen.size, 200, 'every worker of the agent, once');
      assert.ok(seen.has(workerId('bot-c', 199)), 'the last worker is reached');
      await page.getByText('Workers 151–200 of 200').waitFor();
      await page.getByRole('button', { name: 'Previous page' }).click();
      await page.getByText('Workers 101–150 of 200').waitFor();

      // Search by run id: the one worker, and of its runs only the one searched.
      const run = `${workerId('bot-b', 123)}-r2`;
      await page.getByLabel('Find a run by id').fill(run);
      await page.getByRole('button', { name: 'Find' }).click();
      await page.getByText(`Run ${run}: hosted by 1 worker.`).waitFor();
      await page.locator(`tr[data-run="${run}"]`).waitFor();
      assert.equal(await page.locator('tr[data-run]').count(), 1, 'the one run');
      assert.deepEqual(
        await page
          .locator('tr[data-worker]')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-worker'))),
        [workerId('bot-b', 123)],
      );
      assert.equal(
        await page.getByRole('button', { name: `Kill run ${run}`, exact: true }).count(),
        1,
        'its actions are there',
      );
      await page.getByLabel('Find a run by id').fill('no-such-run');
      await page.getByRole('button', { name: 'Find' }).click();
      await page.getByText('No worker hosts run no-such-run.').waitFor();
      await page.getByRole('button', { name: 'Show the whole fleet' }).click();
      await page.getByText(/Workers 1–50 of 1000/).waitFor();

      assert.ok(fleetAnswers.length > 0);
      const largest = Math.max(...fleetAnswers);
      assert.ok(largest < 256 * 1024, `a fleet answer is one page (${largest} bytes), never the whole fleet`);
      console.error(`# largest fleet answer the page polled: ${largest} bytes`);
      assert.deepEqual(errors, [], 'no script error or CSP refusal in the page');
    });

    test("an operator of acme sees acme's groups and counts only", async () => {
      const { page, errors } = await signInTab(browser, contexts, server.url, operator, 'Tenant acme');
      await page.getByText(/Workers 1–50 of 800/).waitFor();
      assert.match(await page.locator('p.summary').innerText(), /800 workers/);
      assert.equal(await page.locator('section[data-tenant="globex"]').count(), 0);
      assert.ok(!(await page.locator('body').innerText()).includes('bot-c'));
      await page.getByLabel('Find a run by id').fill(`${workerId('bot-c', 5)}-r0`);
      await page.getByRole('button', { name: 'Find' }).click();
      await page.getByText(`No worker hosts run ${workerId('bot-c', 5)}-r0.`).waitFor();
      assert.deepEqual(errors, []);
    });

    test("the dialogs' fields: a global throttle asks for a rate, a justification and a break-glass attestation; its resume too", async () => {
      const { page, errors } = await signInTab(
        browser,
        contexts,
        server.url,
        server.adminToken,
        'Tenant acme',
      );
      await page.getByRole('button', { name: /^More actions on every tenant/ }).click();
      const dialog = page.getByRole('dialog', { name: /^Throttle/ });
      await dialog.waitFor();
      await dialog.getByRole('button', { name: 'Issue throttle' }).click();
      await dialog.getByText('A throttle needs a rate above 0 effects per second.').waitFor();
      await dialog.getByText('A justification is required.').waitFor();
      await dialog.getByText('A break-glass attestation is required for a global directive.').waitFor();
      assert.equal(
        await page.locator(':focus').getAttribute('id'),
        'f-rate',
        'focus on the first field in error',
      );
      assert.equal(await dialog.getByLabel('Effects per second').getAttribute('type'), 'number');
      assert.equal(
        await dialog.getByLabel('Only these tools (optional)').getAttribute('spellcheck'),
        'false',
      );
      await dialog.getByLabel('Only these tools (optional)').fill('not a tool!');
      await dialog.getByLabel('Effects per second').fill('2.5');
      await dialog.getByLabel('Reason (optional)').fill('e2e: slow everyone down');
      await dialog.getByLabel('Justification (required)').fill('e2e: INC-9');
      await dialog.getByLabel('Break-glass attestation (required)').fill('e2e: the incident commander');
      await dialog.getByRole('button', { name: 'Issue throttle' }).click();
      await dialog.getByText('"tool!" is not a capability name (letters, digits and ._:@-).').waitFor();
      await dialog.getByLabel('Only these tools (optional)').fill('crm.update');
      await dialog.getByRole('button', { name: 'Issue throttle' }).click();
      await dialog.waitFor({ state: 'hidden' });
      await page.getByText(/throttle issued on global/).waitFor();
      const admin = new ApiClient(server.url, server.adminToken);
      const [d] = (await admin.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;
      assert.equal(d?.level, 'throttle');
      assert.deepEqual(d?.rate, { perSecond: 2.5, per: 'run' });
      assert.deepEqual(d?.capabilities, ['crm.update']);
      assert.equal(d?.reason, 'e2e: slow everyone down');
      assert.equal(d?.breakGlass?.why, 'e2e: the incident commander');

      await page.getByRole('button', { name: 'Resume throttle on global' }).click();
      const resume = page.getByRole('dialog', { name: 'Resume throttle on global' });
      await resume.getByLabel('Justification (required)').fill('e2e: over');
      await resume.getByRole('button', { name: 'Resume' }).click();
      await resume.getByText('A break-glass attestation is required', { exact: false }).waitFor();
      await resume.getByLabel('Break-glass attestation (required)').fill('e2e: INC-9 closed');
      await resume.getByRole('button', { name: 'Resume' }).click();
      await resume.waitFor({ state: 'hidden' });
      assert.deepEqual(
        (await admin.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives,
        [],
      );
      assert.deepEqual(errors, []);
    });
  },
);
