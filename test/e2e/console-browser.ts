/**
 * What the console's browser tests share: Debian's Chromium driven by playwright-core (never a
 * downloaded browser) and a signed-in tab that collects page errors and CSP refusals.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
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
export const MISSING_CHROMIUM = `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); the console tests never download a browser`;
/** Skip the suite only where Chromium is missing outside CI (in CI, a missing browser fails). */
export const SKIP_WITHOUT_CHROMIUM =
  !existsSync(CHROMIUM) && process.env.CI !== 'true' ? MISSING_CHROMIUM : false;

/** Launches headless Chromium. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(MISSING_CHROMIUM);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** A fresh tab (its own sessionStorage) signed in with `token`; waits for `ready` (a heading name). */
export async function signInTab(
  browser: Browser,
  contexts: BrowserContext[],
  url: string,
  token: string,
  ready: string | RegExp,
): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // Chromium logs every 4xx answer; those a test provokes are checked where they happen.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  const res = await page.goto(`${url}/`);
  assert.equal(res?.status(), 200, 'the console is served by the control plane (built by npm install)');
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: ready }).first().waitFor({ timeout: 10_000 });
  return { page, errors };
}
