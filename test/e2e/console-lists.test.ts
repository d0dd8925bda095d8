/**
 * End to end, real control plane and a real browser: the console's lists are paged and never cut
 * silently (issue 18). Compensations: a halted run with 450 landed writes (more than two pages
 * of 200) and a child run with 30: the view says "Compensations 1–200 of 480, newest first",
 * pages forward to the last row and back, and each row appears once. The audit log (400+ records
 * of a tenant) and the rehearsal history (120 drills) page from the newest to the oldest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { ApiClient } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';
import { startServer, type RunningServer, type Store } from '@killpath/server';
import { rehearsalInput } from '../../packages/server/test/store-contract.ts';
import { SKIP_WITHOUT_CHROMIUM, launchChromium, signInTab } from './console-browser.ts';

const PARENT = 450;
const CHILD = 30;
const TOTAL = PARENT + CHILD;
const DRILLS = 120;

type PermitGrant = Parameters<Store['grantPermits']>[0][number];
const grant = (runId: string, lineage: string[], i: number): PermitGrant => ({
  workerId: 'w-7',
  runId,
  lineage,
  features: [],
  capability: 'crm.update',
  class: 'write',
  idempotencyKey: `${runId}-k${i}`,
  argsDigest: null,
  compensate: { action: 'crm.revert', n: i },
  tenant: 'acme',
  agent: 'support-bot',
  coolOffMs: 0,
});

const run = (runId: string, parentRunId: string | null, lineage: string[]) => ({
  runId,
  tenant: 'acme',
  agent: 'support-bot',
  parentRunId,
  lineage,
  features: [],
  workerId: 'w-7',
  startedAt: new Date().toISOString(),
});

/** Grants and lands `n` writes of a run; returns their permit ids. */
async function landWrites(store: Store, runId: string, lineage: string[], n: number): Promise<string[]> {
  const ds = await store.grantPermits(Array.from({ length: n }, (_, i) => grant(runId, lineage, i)));
  const ids = ds.map((d) => {
    assert.equal(d.kind, 'granted');
    return d.kind === 'granted' ? d.response.permit.id : '';
  });
  await Promise.all(
    ids.map((id) => store.settlePermit(id, { tenant: 'acme', agent: 'support-bot' }, { status: 'landed' })),
  );
  return ids;
}

describe(
  'console compensations view: paged, "N of M", every row reached (real browser)',
  { skip: SKIP_WITHOUT_CHROMIUM, timeout: 120_000 },
  () => {
    let dir: string;
    let server: RunningServer;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    let operator = '';
    const landed = new Set<string>();

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'killpath-e2e-console-comp-'));
      server = await startServer({
        dataDir: dir,
        port: 0,
        logLevel: 'error',
        supervisor: false,
        watchdog: false,
      });
      const admin = new ApiClient(server.url, server.createdAdminToken!);
      operator = (
        await admin.post<{ token: string }>('/v1/tokens', {
          role: 'operator',
          tenant: 'acme',
          name: 'ops-acme',
        })
      ).token;
      const store = server.controlPlane.store;
      await store.registerRun(run('run-7', null, []));
      await store.registerRun(run('run-7.1', 'run-7', ['run-7']));
      for (const id of await landWrites(store, 'run-7', [], PARENT)) landed.add(id);
      for (const id of await landWrites(store, 'run-7.1', ['run-7'], CHILD)) landed.add(id);
      const { directive } = await new ApiClient(server.url, operator).post<{ directive: Directive }>(
        '/v1/directives',
        { level: 'halt', scope: 'run:run-7', reason: 'bad writes', justification: 'e2e' },
      );
      await store.recordHalted(
        ['run-7', 'run-7.1'].map((runId) => ({
          tenant: 'acme',
          runId,
          directiveId: directive.id,
          at: new Date().toISOString(),
        })),
      );
      // More than two pages of the tenant's audit records, and another tenant's it must not see.
      await store.appendAudit(
        Array.from({ length: 450 }, (_, i) => ({
          type: 'operator_action',
          actor: 'e2e',
          tenant: i % 9 === 0 ? 'globex' : 'acme',
          data: { n: i },
        })),
      );
      for (let i = 0; i < DRILLS; i += 1)
        await store.recordDrill(
          rehearsalInput({
            spec: {
              name: `spec-${i}`,
              digest: 'sha256:aaaa',
              agents: [{ tenant: 'acme', agent: 'support-bot', level: 4, cadenceDays: 30 }],
            },
          }),
          'e2e',
          () => [],
        );
      browser = await launchChromium();
    });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close().catch(() => {});
      await server?.close().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('an operator pages the compensations to the last row and back, each row once', async () => {
      const { page, errors } = await signInTab(browser, contexts, server.url, operator, 'Tenant acme');
      await page.getByRole('link', { name: 'Compensations' }).click();
      const info = page.locator('nav[aria-label="Compensation pages"] .page-info');
      const seen: string[] = [];
      const expected = ['1–200', '201–400', '401–480'];
      for (const [i, range] of expected.entries()) {
        await page.getByText(`Compensations ${range} of ${TOTAL}, newest first`).waitFor();
        assert.doesNotMatch(await info.innerText(), /loading/);
        const ids = await page
          .locator('table.compensations tbody tr')
          .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-permit') ?? ''));
        assert.equal(ids.length, Number(range.split('–')[1]) - Number(range.split('–')[0]) + 1);
        seen.push(...ids);
        const next = page.getByRole('button', { name: 'Next page' });
        if (i < expected.length - 1) await next.click();
        else assert.ok(await next.isDisabled(), 'no page after the last');
      }
      assert.equal(new Set(seen).size, TOTAL, 'each row once');
      assert.deepEqual(new Set(seen), landed, 'every landed write of the run and its child, nothing else');
      await page.getByRole('button', { name: 'Previous page' }).click();
      await page.getByText(`Compensations 201–400 of ${TOTAL}, newest first`).waitFor();
      await page.getByRole('button', { name: 'Previous page' }).click();
      await page.getByText(`Compensations 1–200 of ${TOTAL}, newest first`).waitFor();
      assert.ok(await page.getByRole('button', { name: 'Previous page' }).isDisabled());
      const first = await page.locator('table.compensations tbody tr td:first-child code').allInnerTexts();
      assert.deepEqual(
        first.slice(0, CHILD),
        Array(CHILD).fill('run-7.1'),
        "newest first: the child's writes, landed last, lead",
      );
      assert.deepEqual(errors, [], 'no script error or CSP refusal in the page');
    });

    test('an operator pages the audit log from the newest record to the oldest and back, each once', async () => {
      const { page, errors } = await signInTab(browser, contexts, server.url, operator, 'Tenant acme');
      const all = await new ApiClient(server.url, operator).get<{ records: { seq: number }[] }>(
        '/v1/audit?order=desc&limit=5000',
      );
      assert.ok(all.records.length > 400, `${all.records.length} records of acme`);
      await page.getByRole('link', { name: 'Audit log' }).click();
      const info = page.locator('nav[aria-label="Audit pages"] .page-info');
      await info.filter({ hasText: /\(the newest\)/ }).waitFor();
      const seen: number[] = [];
      let pages = 0;
      for (;;) {
        await info.filter({ hasNotText: 'loading' }).waitFor();
        const seqs = (await page.locator('table.audit tbody tr td:first-child').allInnerTexts()).map(Number);
        assert.match(
          await info.innerText(),
          new RegExp(`^Records #${seqs[0]}–#${seqs.at(-1)}, newest first`),
        );
        seen.push(...seqs);
        pages += 1;
        const older = page.getByRole('button', { name: 'Older records' });
        if (await older.isDisabled()) break;
        await older.click();
        await info.filter({ hasNotText: `Records #${seqs[0]}–` }).waitFor();
      }
      assert.match(await info.innerText(), /\(the oldest\)/);
      assert.ok(pages >= 3, `${pages} pages`);
      assert.deepEqual(
        seen,
        all.records.map((r) => r.seq),
        'every record of the tenant once, newest first',
      );
      for (let back = 1; back < pages; back += 1) {
        const shown = await info.innerText();
        await page.getByRole('button', { name: 'Newer records' }).click();
        await info.filter({ hasNotText: shown }).filter({ hasNotText: 'loading' }).waitFor();
      }
      await info.filter({ hasText: /\(the newest\)/ }).waitFor();
      assert.deepEqual(errors, [], 'no script error or CSP refusal in the page');
    });

    test('an operator pages the rehearsal history to the oldest drill and back, each once', async () => {
      const { page, errors } = await signInTab(browser, contexts, server.url, operator, 'Tenant acme');
      await page.getByRole('link', { name: 'Drills' }).click();
      const info = page.locator('nav[aria-label="Rehearsal pages"] .page-info');
      const expected = ['1–50', '51–100', '101–120'];
      const specs: string[] = [];
      for (const [i, range] of expected.entries()) {
        await info
          .filter({ hasText: `Rehearsals ${range}, newest first` })
          .filter({ hasNotText: 'loading' })
          .waitFor();
        const rows = await page.locator('table.drills tbody tr[data-drill]').allInnerTexts();
        specs.push(...rows.map((r) => /spec-\d+/.exec(r)?.[0] ?? r));
        const older = page.getByRole('button', { name: 'Older rehearsals' });
        if (i < expected.length - 1) await older.click();
        else assert.ok(await older.isDisabled(), 'no page after the oldest');
      }
      assert.match(await info.innerText(), /\(the oldest\)/);
      assert.deepEqual(
        specs,
        Array.from({ length: DRILLS }, (_, i) => `spec-${DRILLS - 1 - i}`),
        'every drill once, newest first',
      );
      for (const range of ['51–100', '1–50']) {
        await page.getByRole('button', { name: 'Newer rehearsals' }).click();
        await info
          .filter({ hasText: `Rehearsals ${range}, newest first` })
          .filter({ hasNotText: 'loading' })
          .waitFor();
      }
      assert.ok(await page.getByRole('button', { name: 'Newer rehearsals' }).isDisabled());
      assert.deepEqual(errors, [], 'no script error or CSP refusal in the page');
    });
  },
);
