/**
 * End to end, real processes and a real browser: the web console (issue 7). A control plane
 * (`killpath serve`), live demo agents of two tenants, and Debian's Chromium driven headless by
 * playwright-core. An operator of acme signs in, sees acme only, is asked for a justification,
 * kills a run and sees it halted while the agent's own effects are refused; a viewer gets no
 * buttons; the page says when the control plane goes away. A screenshot of the fleet view is
 * saved to test-artifacts/console-fleet.png, one of the Drills view to test-artifacts/console-drills.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ApiClient, FleetHarness } from '@killpath/cli';
import type { Directive, RehearsalRecord, ScenarioResult } from '@killpath/protocol';
import { startServerProcess, type ServerProcess } from './server-process.ts';
import { SKIP_WITHOUT_CHROMIUM, launchChromium } from './console-browser.ts';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const ENV = { DEMO_PERIOD_MS: '40', KILLPATH_HEARTBEAT_MS: '300', KILLPATH_LEASE_MS: '3000' };
/** The bound for a change to show in the page without reloading, in ms (plus a report's interval). */
const LIVE_MS = 1000 + Number(ENV.KILLPATH_HEARTBEAT_MS);

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Waits until `fn` returns a truthy value; fails with `what` after `timeoutMs`. */
async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 5000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

describe(
  'web console (real browser, real processes)',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 120_000 },
  () => {
    let dir: string;
    let server: ServerProcess;
    let api: ApiClient;
    let fleet: FleetHarness;
    let browser: Browser;
    const tokens: Record<'operator' | 'viewer', string> = { operator: '', viewer: '' };
    const contexts: BrowserContext[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-console-'));
      server = await startServerProcess(dir, 0, ['--keepalive-ms', '300']);
      api = new ApiClient(server.url, server.adminToken);
      tokens.operator = (
        await api.post<{ token: string }>('/v1/tokens', {
          role: 'operator',
          tenant: 'acme',
          name: 'ops-acme',
        })
      ).token;
      tokens.viewer = (
        await api.post<{ token: string }>('/v1/tokens', {
          role: 'viewer',
          tenant: 'acme',
          name: 'viewer-acme',
        })
      ).token;
      fleet = await FleetHarness.start({
        api,
        agents: [
          {
            tenant: 'acme',
            agent: 'support-bot',
            runs: ['run-1'],
            features: ['new-planner'],
            env: { KILLPATH_RELEASE_CODE: '4f2a1c', KILLPATH_RELEASE_PROMPT: 'v42' },
          },
          {
            tenant: 'globex',
            agent: 'billing-bot',
            runs: ['gx-1'],
            env: { KILLPATH_RELEASE_CODE: 'gxsha9' },
          },
        ],
        env: ENV,
      });
      browser = await launchChromium();
    });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close().catch(() => {});
      await fleet?.stop();
      await server?.stop().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** A fresh tab (own sessionStorage) signed in with `token`; page errors and CSP refusals are collected. */
    async function signIn(
      token: string,
    ): Promise<{ page: Page; errors: string[]; answers: Promise<string>[] }> {
      const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
      contexts.push(context);
      const page = await context.newPage();
      const errors: string[] = [];
      const answers: Promise<string>[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).pathname.startsWith('/v1/')) answers.push(r.text().catch(() => ''));
      });
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        // Chromium logs every 4xx answer; those the test provokes are checked where they happen.
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
      });
      const res = await page.goto(`${server.url}/`);
      assert.equal(res?.status(), 200, 'the console is served by the control plane (built by npm install)');
      assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
      await page.getByLabel('Access token').fill(token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Tenant acme' }).waitFor({ timeout: 10_000 });
      return { page, errors, answers };
    }

    const runRow = (page: Page, runId: string) => page.locator(`tr[data-run="${runId}"]`);
    const active = async () =>
      (await api.get<{ directives: Directive[] }>('/v1/directives?active=true')).directives;

    test('an operator of acme sees acme only, must justify, kills a live run, sees it halted; the agent refuses its effects', async () => {
      const { page, errors, answers } = await signIn(tokens.operator);
      await runRow(page, 'run-1').waitFor();
      await runRow(page, 'run-1.child').waitFor();
      assert.equal(
        await page.locator('tr[data-run="run-1.child"].depth-1').count(),
        1,
        'the child run is shown under its parent',
      );
      assert.match(await page.locator('header').innerText(), /ops-acme · operator · tenant acme/);

      // Tenant B is invisible: not in the page, not in anything the API gave the page.
      await sleep(600);
      const text = await page.locator('body').innerText();
      const fetched = (await Promise.all(answers)).join('\n');
      assert.ok(answers.length > 2 && fetched.includes('run-1'), 'the page polled the API');
      // Each worker's release is shown, and each release part its tenant runs is a scope to act on.
      assert.match(
        await page.locator('table.workers td.release').first().innerText(),
        /code=4f2a1c,prompt=v42/,
      );
      assert.equal(
        await page
          .getByRole('button', { name: 'Halt release code=4f2a1c in tenant acme', exact: true })
          .count(),
        1,
      );
      for (const other of ['globex', 'billing-bot', 'gx-1', 'gxsha9']) {
        assert.ok(!text.includes(other), `an acme operator does not see ${other}`);
        assert.ok(!fetched.includes(other), `the API did not give an acme operator ${other}`);
      }
      assert.equal(await page.getByRole('button', { name: /globex/ }).count(), 0);

      // Keyboard: Enter opens the dialog, Escape closes it, focus goes back to the button.
      await page.getByRole('button', { name: 'Halt run run-1', exact: true }).focus();
      await page.keyboard.press('Enter');
      const halt = page.getByRole('dialog', { name: 'Halt run run-1' });
      await halt.waitFor();
      await page.keyboard.press('Escape');
      await halt.waitFor({ state: 'hidden' });
      assert.equal(await page.locator(':focus').getAttribute('aria-label'), 'Halt run run-1');

      // A justification is required: the dialog refuses to send without one.
      await page.getByRole('button', { name: 'Kill run run-1', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Kill run run-1' });
      await dialog.waitFor();
      assert.equal(
        await page.locator(':focus').getAttribute('id'),
        'f-justification',
        'focus starts on the justification',
      );
      await dialog.getByRole('button', { name: 'Issue kill' }).click();
      await dialog.getByText('A justification is required.').waitFor();
      assert.equal(await dialog.getByLabel('Justification (required)').getAttribute('aria-invalid'), 'true');
      await sleep(300);
      assert.deepEqual(await active(), [], 'nothing was issued without a justification');

      // Kill, with a justification; the agent process stays alive (no launcher), so its gate must refuse.
      const agent = fleet.agents.find((a) => a.spec.agent === 'support-bot')!;
      await dialog.getByLabel('Justification (required)').fill('e2e: runaway loop on run-1, INC-7');
      const pressed = Date.now();
      await dialog.getByRole('button', { name: 'Issue kill' }).click();
      await dialog.waitFor({ state: 'hidden' });
      await page.getByText(/kill issued on run:run-1/).waitFor();
      assert.equal(
        await page.locator(':focus').getAttribute('aria-label'),
        'Kill run run-1',
        'focus returns to the button',
      );

      const d = (await active()).find((x) => x.scopeText === 'run:run-1');
      assert.ok(d, 'the kill is on the switchboard');
      assert.equal(d.level, 'kill');
      assert.equal(d.justification, 'e2e: runaway loop on run-1, INC-7');
      assert.equal(d.actor, 'ops-acme');

      await until(
        'run-1 shown halted',
        async () => /halted/.test(await runRow(page, 'run-1').innerText()),
        LIVE_MS + 2000,
      );
      const shownMs = Date.now() - pressed;
      await until(
        'run-1.child shown halted',
        async () => /halted/.test(await runRow(page, 'run-1.child').innerText()),
        LIVE_MS,
      );
      assert.match(
        await runRow(page, 'run-1').innerText(),
        /kill by ops-acme/,
        'the switchboard column names the directive',
      );

      const denied = await until('an effect.denied naming the kill', () =>
        agent.events.find((e) => e.type === 'effect.denied' && e.runId === 'run-1' && e.directiveId === d.id),
      );
      assert.ok(denied);
      const observed = agent.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= d.rev);
      assert.ok(observed, 'the agent observed the kill');
      const late = agent.events.filter(
        (e) =>
          e.type === 'effect.started' &&
          (e.runId === 'run-1' || e.runId === 'run-1.child') &&
          e.at > observed.at,
      );
      assert.deepEqual(late, [], 'no effect of the killed run started after the agent observed the kill');
      process.kill(agent.pid, 0); // still alive: the refusal is the agent's gate, not a dead process
      console.error(`# kill pressed → run shown halted in ${shownMs} ms`);

      // The effect rate, computed in the page from successive counts, falls to 0 once reports show no new effect.
      await until(
        'run-1 shown at 0 effects/s',
        async () => (await runRow(page, 'run-1').locator('td').nth(2).innerText()).trim() === '0/s',
        5000,
      );

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'console-fleet.png'), fullPage: true });

      // Resume from the page, with a justification.
      await page.getByRole('button', { name: 'Resume kill on run:run-1' }).click();
      const resume = page.getByRole('dialog', { name: 'Resume kill on run:run-1' });
      await resume
        .getByLabel('Justification (required)')
        .fill('e2e: loop fixed, the release was not the cause');
      // The kill recorded the release the run was on, and the agent still runs it: refused.
      await resume.getByRole('button', { name: 'Resume' }).click();
      await resume.getByRole('alert').waitFor();
      assert.match(await resume.getByRole('alert').innerText(), /same_release/);
      assert.match(await resume.getByRole('alert').innerText(), /code=4f2a1c,prompt=v42/);
      // The operator says the release is not the cause: resumed, as an override on the record.
      await resume.getByLabel(/Same release: it was not the cause/).check();
      await resume.getByRole('button', { name: 'Resume' }).click();
      await resume.waitFor({ state: 'hidden' });
      const override = (
        await api.get<{ records: { data: Record<string, unknown> }[] }>(
          '/v1/audit?type=operator_action&limit=1000',
        )
      ).records.find((r) => r.data.action === 'directive.resume' && typeof r.data.sameRelease === 'string');
      assert.equal(override?.data.sameRelease, 'e2e: loop fixed, the release was not the cause');
      await until('the kill cleared', async () => (await active()).length === 0);
      await until(
        'run-1 running again',
        async () => /running/.test(await runRow(page, 'run-1').innerText()),
        LIVE_MS + 2000,
      );

      // A refusal from the control plane is shown plainly in the dialog: here the directive was
      // resumed by someone else while the dialog was open.
      const other = (
        await api.post<{ directive: Directive }>('/v1/directives', {
          level: 'halt',
          scope: 'agent:acme/support-bot',
          reason: 'e2e',
          justification: 'e2e',
        })
      ).directive;
      await page.getByRole('button', { name: 'Resume halt on agent:acme/support-bot' }).click();
      const tooLate = page.getByRole('dialog', { name: 'Resume halt on agent:acme/support-bot' });
      await tooLate.getByLabel('Justification (required)').fill('e2e: too late');
      await api.post(`/v1/directives/${other.id}/resume`, {
        justification: 'cleared elsewhere',
        sameRelease: 'e2e: the release is not the cause',
      });
      await tooLate.getByRole('button', { name: 'Resume' }).click();
      const refusal = await tooLate.getByRole('alert').innerText();
      assert.match(refusal, /The control plane refused: .*already cleared.*\(conflict, HTTP 409\)/);
      await tooLate.getByRole('button', { name: 'Cancel' }).click();
      await tooLate.waitFor({ state: 'hidden' });

      // The other views are there and load.
      await page.getByRole('link', { name: 'Audit log' }).click();
      // A tenant's operator learns only that the whole chain verifies, not its size or head.
      await page.getByText(/Verified: the whole audit chain is intact/).waitFor();
      assert.doesNotMatch(await page.locator('section.verify').innerText(), /\d+ records|head [0-9a-f]{16}/);
      await page.getByRole('link', { name: 'Directives' }).click();
      await page
        .getByRole('table', { name: /Cleared directives/ })
        .getByText('e2e: runaway loop on run-1, INC-7')
        .waitFor();
      // Issue 18: how many of how many (the view asks for the newest 200).
      assert.match(
        await page
          .getByRole('table', { name: /Cleared directives/ })
          .locator('caption')
          .innerText(),
        /^Cleared directives \(of the directives, all \d+ shown, newest first\)$/,
      );
      await page.getByRole('link', { name: 'Compensations' }).click();
      await page.getByText(/Effects that left before a halt/).waitFor();

      // A reload keeps the session (the token is in the tab's sessionStorage)...
      await page.reload();
      await page.getByRole('heading', { name: 'Compensations', level: 2 }).waitFor();
      assert.match(await page.locator('header').innerText(), /Signed in as ops-acme/);
      // ...and sign-out forgets it.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Access token').waitFor();
      assert.equal(await page.evaluate('sessionStorage.length + localStorage.length'), 0);
      assert.deepEqual(errors, [], 'no script error or CSP refusal in the page');
    });

    test('a viewer sees the fleet and no button that acts', async () => {
      const { page, errors } = await signIn(tokens.viewer);
      await runRow(page, 'run-1').waitFor();
      await sleep(600);
      assert.match(await page.locator('header').innerText(), /viewer · tenant acme \(read-only\)/);
      for (const name of [/^Kill/, /^Halt/, /^More actions/, /^Resume/]) {
        assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button for a viewer`);
      }
      assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 1);
      assert.deepEqual(errors, []);
    });

    test('the Drills view lists the due agents first, then a rehearsal recorded through the API, and opens its scenarios', async () => {
      const scenario = (over: Partial<ScenarioResult>): ScenarioResult => ({
        id: 'S1',
        title: 'cost runaway',
        path: 'asynchronous',
        status: 'pass',
        startedAt: new Date(Date.now() - 50_000).toISOString(),
        durationMs: 1200,
        target: { signalToHaltMs: 1000, haltToRecoveryMs: null },
        signalToHalt: { n: 2, p50: 30, p99: 45, max: 45, samples: [30, 45] },
        haltToRecoveryMs: null,
        effectsAfterFlip: { read: 1, write: 0, irreversible: 0 },
        effectsAfterObserve: 0,
        queue: null,
        journal: {
          intents: 2,
          landed: 1,
          failed: 0,
          aborted: 1,
          inDoubt: 0,
          open: 0,
          lost: 0,
          compensations: 1,
        },
        checks: [
          { name: 'no write after the flip', ok: true, kind: 'invariant', detail: '0 writes after the flip' },
        ],
        paths: [],
        timeline: [{ t: -3, class: 'write', outcome: 'started' }],
        notes: [],
        remediation: null,
        ...over,
      });
      const { drill } = await api.post<{ drill: RehearsalRecord }>('/v1/drills', {
        spec: {
          name: 'e2e-spec',
          digest: 'sha256:e2e0',
          agents: [{ tenant: 'acme', agent: 'support-bot', level: 4, cadenceDays: 30 }],
        },
        mode: 'remote',
        compact: false,
        startedAt: new Date(Date.now() - 60_000).toISOString(),
        finishedAt: new Date().toISOString(),
        result: 'fail',
        scenarios: [
          scenario({}),
          scenario({
            id: 'S3',
            title: 'tool misuse',
            status: 'fail',
            signalToHalt: { n: 2, p50: 900, p99: 2100, max: 2100, samples: [900, 2100] },
            checks: [
              {
                name: 'signal-to-halt within target',
                ok: false,
                kind: 'target',
                detail: 'p99 2100 ms > 1000 ms',
              },
            ],
            remediation: 'e2e: shorten the heartbeat of support-bot',
          }),
        ],
      });
      const { page, errors } = await signIn(tokens.operator);
      await page.getByRole('link', { name: 'Drills' }).click();
      const dueRow = page.locator('tr[data-agent="acme/support-bot"]');
      await dueRow.waitFor();
      assert.match(
        await dueRow.innerText(),
        /Due[\s\S]*The last drill failed[\s\S]*FAIL/,
        'a failed drill makes the agent due',
      );
      assert.deepEqual(
        await page.locator('main h3').allInnerTexts(),
        ['Drill due', 'Rehearsal history'],
        'the due list comes first',
      );
      const historyRow = page.locator(`tr[data-drill="${drill.id}"]`);
      await historyRow.waitFor();
      const row = await historyRow.innerText();
      assert.match(
        row,
        /e2e-spec[\s\S]*acme\/support-bot[\s\S]*remote[\s\S]*FAIL[\s\S]*S1[\s\S]*S3[\s\S]*2\.10 s \(S3\), target 1\.00 s/,
      );
      assert.equal(
        await historyRow.locator('li.status-fail').textContent(),
        'S3 failed',
        'each scenario is a badge saying its status',
      );
      assert.ok(
        !(await page.locator('main').innerText()).includes('globex'),
        'an acme operator sees no other tenant',
      );

      await historyRow.getByRole('button', { name: `Open drill ${drill.id}` }).click();
      const scenarios = page.getByRole('table', { name: 'Scenarios' });
      await scenarios.getByText('e2e: shorten the heartbeat of support-bot').waitFor();
      assert.match(
        await scenarios.locator('tr[data-scenario="S3"]').innerText(),
        /failed[\s\S]*≤ 1\.00 s[\s\S]*900 ms \/ 2\.10 s/,
      );
      const checks = page.getByRole('table', { name: 'Checks, failed first' });
      assert.match(
        await checks.locator('tbody tr').first().innerText(),
        /S3[\s\S]*signal-to-halt within target[\s\S]*NO[\s\S]*p99 2100 ms > 1000 ms/,
      );
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'console-drills.png'), fullPage: true });
      await page.getByRole('button', { name: 'Close' }).click();
      await scenarios.waitFor({ state: 'hidden' });
      assert.deepEqual(errors, [], 'no script error or CSP refusal in the page');
    });

    test('a break-glass directive is shown in a banner (who, when, why) on every view until it is cleared', async () => {
      const { page, errors } = await signIn(tokens.operator);
      assert.equal(await page.locator('section.break-glass').count(), 0, 'no banner without break-glass');
      const why = 'e2e: INC-12, fleet-wide runaway, approved by the incident commander';
      const { directive } = await api.post<{ directive: Directive }>('/v1/directives', {
        level: 'halt',
        scope: 'global',
        reason: 'fleet-wide runaway',
        justification: 'INC-12',
        breakGlass: why,
      });
      assert.equal(directive.breakGlass?.why, why);
      const banner = page.getByRole('region', { name: 'Break-glass in force' });
      await banner.waitFor({ timeout: LIVE_MS + 2000 });
      const text = await banner.innerText();
      assert.match(text, /Break-glass in force: halt at global/);
      assert.ok(text.includes(directive.id), 'names the directive');
      assert.match(text, /attested by bootstrap-admin at /, 'who and when');
      assert.ok(text.includes(why), 'why');
      // Another view: still there.
      await page.getByRole('link', { name: 'Audit log' }).click();
      await page.getByRole('heading', { name: 'Audit log', exact: true }).waitFor();
      assert.equal(await banner.count(), 1, 'the banner stays on every view');
      await api.post(`/v1/directives/${directive.id}/resume`, {
        justification: 'INC-12 contained',
        breakGlass: 'INC-12 closed',
        sameRelease: 'INC-12 was not a rollout',
      });
      await banner.waitFor({ state: 'hidden', timeout: LIVE_MS + 2000 });
      assert.deepEqual(errors, []);
    });

    test('the page says when the control plane is unreachable', async () => {
      const { page } = await signIn(tokens.operator);
      await page.getByText(/^Live · updated/).waitFor();
      await server.crash();
      await page.getByText(/Control plane unreachable since/).waitFor({ timeout: 5000 });
    });
  },
);
