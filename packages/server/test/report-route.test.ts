import { test } from 'node:test';
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import assert from 'node:assert/strict';
import type { Directive } from '@killpath/protocol';
import { Authenticator } from '../src/auth/tokens.ts';
import { BODY_LIMIT } from '../src/http/common.ts';
import { workerReportRoute } from '../src/http/report-route.ts';
import { createLogger } from '../src/log.ts';
import { harness, hostWorker, type Harness } from './harness.ts';

async function issue(h: Harness, token: string): Promise<Directive> {
  const res = await h.req('POST', '/v1/directives', {
    token,
    body: { level: 'halt', scope: 'agent:acme/bot', reason: 'test', justification: 'INC-7' },
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { directive: Directive }).directive;
}

/** Status and body of an answer, for comparing two of them. */
async function seen(res: Response): Promise<[number, string | null, string]> {
  return [res.status, res.headers.get('content-type'), await res.text()];
}

test('the light report route answers every request exactly as the app routes do', async () => {
  const h = await harness();
  try {
    const op = await h.token('operator', 'acme');
    const agent = await h.token('agent', 'acme', 'bot');
    const other = await h.token('agent', 'beta', 'bot');
    const viewer = await h.token('viewer', 'acme');
    hostWorker(h.cp.fleet, 'w1', { runs: ['r1'] });
    const d = await issue(h, op);
    const report = {
      rev: d.rev,
      directiveId: d.id,
      runs: ['r1'],
      aborted: 0,
      completed: 0,
      observeToSettleMs: 1,
    };
    const cases: {
      name: string;
      kind: 'ack' | 'halted';
      token?: string | null;
      body?: unknown;
      headers?: Record<string, string>;
    }[] = [
      { name: 'halted', kind: 'halted', token: agent, body: report },
      { name: 'ack', kind: 'ack', token: agent, body: { rev: d.rev } },
      { name: 'no token', kind: 'halted', token: null, body: report },
      { name: 'unknown token', kind: 'ack', token: 'not-a-token', body: { rev: 1 } },
      { name: 'a viewer', kind: 'halted', token: viewer, body: report },
      { name: 'another tenant', kind: 'halted', token: other, body: report },
      { name: 'not JSON', kind: 'halted', token: agent, body: '{"rev":' },
      {
        name: 'text/plain',
        kind: 'ack',
        token: agent,
        body: '{"rev":1}',
        headers: { 'content-type': 'text/plain' },
      },
      { name: 'schema', kind: 'halted', token: agent, body: { ...report, rev: -1, extra: 1 } },
      { name: 'unknown directive', kind: 'halted', token: agent, body: { ...report, directiveId: 'd_nope' } },
      {
        name: 'a secret in the body',
        kind: 'halted',
        token: agent,
        body: { ...report, runs: [`kp_${'a'.repeat(43)}`] },
      },
      {
        name: 'too deep',
        kind: 'ack',
        token: agent,
        body: JSON.stringify({ rev: 1, x: JSON.parse('['.repeat(70) + ']'.repeat(70)) }),
      },
      {
        name: 'declared too long',
        kind: 'ack',
        token: agent,
        body: { rev: 1 },
        headers: { 'content-length': String(BODY_LIMIT + 1) },
      },
    ];
    const reports: string[] = [];
    h.cp.onHalted((e) => reports.push(e.workerId));
    for (const c of cases) {
      const opts = {
        ...(c.token === undefined ? {} : { token: c.token }),
        body: c.body,
        ...(c.headers ? { headers: c.headers } : {}),
      };
      const light = await seen(await h.req('POST', `/v1/workers/w1/${c.kind}`, opts));
      // A query string is left to the app's routes.
      const app = await seen(await h.req('POST', `/v1/workers/w1/${c.kind}?via=app`, opts));
      assert.deepEqual(light, app, c.name);
    }
    // The good halted report was taken once by each way in, and nothing else was.
    assert.deepEqual(reports, ['w1', 'w1']);
  } finally {
    await h.close();
  }
});

test('the light report route takes POST /v1/workers/{id}/ack and /halted with a plain id only', async () => {
  const h = await harness();
  try {
    const taken: string[] = [];
    const route = workerReportRoute({
      fleet: h.cp.fleet,
      workers: { ack: () => taken.push('ack') },
      haltedReport: () => Promise.resolve(taken.push('halted')),
      auth: new Authenticator(h.store),
      metrics: h.cp.metrics,
      log: createLogger('silent'),
    });
    const req = (method: string, path: string) =>
      new Request(`http://cp.test${path}`, method === 'POST' ? { method, body: '{}' } : { method });
    for (const path of ['/v1/workers/w1/ack', '/v1/workers/w-1.a_b/halted'])
      assert.notEqual(await route(req('POST', path), undefined), null, path);
    for (const [method, path] of [
      ['GET', '/v1/workers/w1/ack'],
      ['POST', '/v1/workers/w1/heartbeat'],
      ['POST', '/v1/workers/w%31/ack'],
      ['POST', '/v1/workers/w1/ack?x=1'],
      ['POST', '/v1/workers/w1/ack/'],
      ['POST', '/v1/workers//ack'],
      ['POST', '/v1/workers/a/b/halted'],
    ] as const)
      assert.equal(route(req(method, path), undefined), null, `${method} ${path}`);
  } finally {
    await h.close();
  }
});

/** A Node request as the socket server hands it over: the raw URL and the raw header lines. */
function incoming(url: string, lines: [string, string][], text: string): IncomingMessage {
  const msg = Readable.from([Buffer.from(text)]) as unknown as IncomingMessage & Record<string, unknown>;
  const headers: Record<string, string> = {};
  const distinct: Record<string, string[]> = {};
  for (const [k, v] of lines) {
    const name = k.toLowerCase();
    // Node keeps the first of a repeated authorization or content-type (and joins others).
    headers[name] ??= v;
    (distinct[name] ??= []).push(v);
  }
  Object.assign(msg, { url, headers, headersDistinct: distinct });
  return msg;
}

test('the light report route answers dot segments and repeated headers as the app does', async () => {
  const h = await harness();
  try {
    const agent = await h.token('agent', 'acme', 'bot');
    hostWorker(h.cp.fleet, 'w1', { runs: ['r1'] });
    const body = '{"rev":0}';
    const base: [string, string][] = [
      ['host', 'cp.test'],
      ['authorization', `Bearer ${agent}`],
      ['content-type', 'application/json'],
      ['content-length', String(body.length)],
    ];
    const cases: { name: string; url: string; lines: [string, string][] }[] = [
      // The WHATWG URL the app routes on resolves dot segments: /v1/ack, no route.
      { name: '..', url: '/v1/workers/../ack', lines: base },
      { name: '.', url: '/v1/workers/./halted', lines: base },
      // The app reads a repeated header as its values joined: two tokens are none.
      { name: 'two tokens', url: '/v1/workers/w1/ack', lines: [...base, ['authorization', 'Bearer other']] },
      { name: 'two types', url: '/v1/workers/w1/ack', lines: [...base, ['content-type', 'text/plain']] },
    ];
    for (const c of cases) {
      const env = (): { incoming: IncomingMessage } => ({ incoming: incoming(c.url, c.lines, body) });
      const req = (query = '') =>
        new Request(`http://cp.test${c.url}${query}`, {
          method: 'POST',
          headers: c.lines.filter(([k]) => k !== 'host' && k !== 'content-length'),
          body,
        });
      const route = workerReportRoute({
        fleet: h.cp.fleet,
        workers: h.cp.workers,
        haltedReport: (id, who, b) => h.cp.haltedReport(id, who, b),
        auth: new Authenticator(h.store),
        metrics: h.cp.metrics,
        log: createLogger('silent'),
      });
      const light = route(req(), env() as never);
      // A query string is left to the app's routes, which read the WHATWG request.
      const app = await seen(await h.app.fetch(req('?via=app'), {}));
      assert.deepEqual(light === null ? app : await seen(await light), app, c.name);
      assert.notEqual(app[0], 204, c.name);
    }
  } finally {
    await h.close();
  }
});

test('a batch of reports is taken report by report, by the light route and the app alike', async () => {
  const h = await harness();
  try {
    const op = await h.token('operator', 'acme');
    const agent = await h.token('agent', 'acme', 'bot');
    const viewer = await h.token('viewer', 'acme');
    for (const id of ['w1', 'w2', 'w3']) hostWorker(h.cp.fleet, id, { runs: [`r-${id}`] });
    const d = await issue(h, op);
    const halted = (workerId: string) => ({
      kind: 'halted',
      workerId,
      rev: d.rev,
      directiveId: d.id,
      runs: [`r-${workerId}`],
      aborted: 0,
      completed: 1,
      observeToSettleMs: 2,
    });
    const taken: string[] = [];
    h.cp.onHalted((e) => taken.push(e.workerId));
    const acked = () =>
      Object.fromEntries(h.cp.fleet.coveredBy(d).map((w) => [w.workerId, w.ackedRev] as const));
    const good = { reports: [halted('w1'), { kind: 'ack', workerId: 'w2', rev: d.rev }] };
    // One report naming a directive the tenant does not have fails alone: the others are taken.
    const mixed = { reports: [{ ...halted('w2'), directiveId: 'd_nope' }, halted('w3')] };
    const cases: { name: string; token?: string | null; body: unknown; headers?: Record<string, string> }[] =
      [
        { name: 'good', token: agent, body: good },
        { name: 'one bad', token: agent, body: mixed },
        { name: 'no token', token: null, body: good },
        { name: 'a viewer', token: viewer, body: good },
        { name: 'empty', token: agent, body: { reports: [] } },
        { name: 'unknown kind', token: agent, body: { reports: [{ ...halted('w1'), kind: 'settled' }] } },
        {
          name: 'extra field',
          token: agent,
          body: { reports: [{ kind: 'ack', workerId: 'w1', rev: 1, x: 1 }] },
        },
        {
          name: 'too many',
          token: agent,
          body: { reports: Array.from({ length: 257 }, () => ({ kind: 'ack', workerId: 'w1', rev: 1 })) },
        },
        {
          name: 'text/plain',
          token: agent,
          body: JSON.stringify(good),
          headers: { 'content-type': 'text/plain' },
        },
      ];
    const answers: Record<string, [number, string | null, string]> = {};
    for (const c of cases) {
      const opts = {
        ...(c.token === undefined ? {} : { token: c.token }),
        body: c.body,
        ...(c.headers ? { headers: c.headers } : {}),
      };
      const light = await seen(await h.req('POST', '/v1/workers/reports', opts));
      const app = await seen(await h.req('POST', '/v1/workers/reports?via=app', opts));
      assert.deepEqual(light, app, c.name);
      answers[c.name] = light;
    }
    const statuses = (name: string) =>
      (JSON.parse(answers[name]![2]) as { answers: { status: number }[] }).answers.map((a) => a.status);
    assert.equal(answers.good![0], 200);
    assert.deepEqual(statuses('good'), [204, 204]);
    assert.deepEqual(statuses('one bad'), [404, 204]);
    // A viewer owns no worker: each report is refused as its own route refuses it.
    assert.deepEqual(statuses('a viewer'), [404, 404]);
    for (const name of ['no token']) assert.equal(answers[name]![0], 401, name);
    for (const name of ['empty', 'unknown kind', 'extra field', 'too many'])
      assert.equal(answers[name]![0], 400, name);
    assert.equal(answers['text/plain']![0], 415);
    // Each way in took w1's and w3's halted reports, and w2's ack; nothing else.
    assert.deepEqual(taken.sort(), ['w1', 'w1', 'w3', 'w3']);
    assert.deepEqual(acked(), { w1: d.rev, w2: d.rev, w3: d.rev });
  } finally {
    await h.close();
  }
});
