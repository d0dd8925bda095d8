import { isWireError } from '@killpath/protocol';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { CONSOLE_CSP, consoleRoutes, findConsoleDir } from '../src/http/console-route.ts';
import type { Env } from '../src/http/common.ts';
import { harness, type Harness } from './harness.ts';

let dir: string;
let h: Harness;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'killpath-console-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title>');
  writeFileSync(join(dir, 'app.js'), 'export {};');
  mkdirSync(join(dir, 'sub'));
  h = await harness();
});

after(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

const app = (d: string | null) => {
  const a = new Hono<Env>();
  consoleRoutes(a, { dir: d });
  return a;
};

test('the page and its assets are served without a token, under a strict CSP', async () => {
  const page = await app(dir).request('/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.equal(page.headers.get('content-security-policy'), CONSOLE_CSP);
  assert.match(CONSOLE_CSP, /script-src 'self'/);
  assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.match(await page.text(), /<title>console<\/title>/);
  const js = await app(dir).request('/console/app.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
});

test('nothing outside the console directory is served', async () => {
  for (const path of ['/console/..%2Fpackage.json', '/console/.env', '/console/sub', '/console/missing.js']) {
    const res = await app(dir).request(path);
    assert.equal(res.status, 404, path);
    // Found by the fuzz test: these answered text/plain, not the one wire error shape.
    assert.ok(isWireError(await res.json()), `${path}: the wire error shape`);
  }
});

test('a console that is not built answers 503 with how to build it', async () => {
  const res = await app(null).request('/');
  assert.equal(res.status, 503);
  assert.match(await res.text(), /npm run build -w @killpath\/console/);
  const gone = await app(join(dir, 'nope')).request('/');
  assert.equal(gone.status, 503);
});

test('the console does not shadow the API, health or metrics', async () => {
  assert.equal((await h.req('GET', '/healthz')).status, 200);
  const v1 = await h.req('GET', '/v1/fleet');
  assert.equal(v1.status, 401);
  assert.match(v1.headers.get('content-type') ?? '', /json/);
  assert.equal((await h.req('GET', '/metrics')).status, 401);
  const unknown = await h.req('GET', '/v1/nope', { token: await h.token('admin', '*') });
  assert.equal(unknown.status, 404);
  assert.match(unknown.headers.get('content-type') ?? '', /json/);
});

test('KILLPATH_CONSOLE_DIR points the server at a built console', () => {
  assert.equal(findConsoleDir({ KILLPATH_CONSOLE_DIR: dir }), dir);
});
