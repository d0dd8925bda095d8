/**
 * Bad input, fuzzed: generated bodies, headers and paths to every route as every role through
 * `app.request` (bounded for CI; `npm run fuzz` sends many more), then through a real socket,
 * streams and malformed HTTP included. 0 answers 5xx, 0 crashes, every error in the wire shape,
 * 413 above the body limit, bounded memory. The counts are printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isWireError } from '@killpath/protocol';
import { startServer } from '../src/server.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { createLogger } from '../src/log.ts';
import { assertClean, fuzzHttp, requestArb } from './fuzz/fuzz-http.ts';

const RUNS = Number(process.env.KILLPATH_FUZZ_RUNS ?? 4000);

test(`${RUNS} generated requests to every route as every role: no 5xx, the wire shape, 413 above the limit`, async (t) => {
  const c = await fuzzHttp({ runs: RUNS, seed: 16_2 });
  t.diagnostic(`fuzz: ${c.requests} requests, ${c.routes} routes, ${c.roles} roles`);
  t.diagnostic(
    `by status: ${Object.entries(c.byStatus)
      .map(([k, v]) => `${k}×${v}`)
      .join(' ')}`,
  );
  t.diagnostic(
    `5xx or throws: ${c.serverErrors}; without the wire shape: ${c.badShapes}; oversized ${c.oversized}, 413: ${c.oversized413}; heap +${c.heapGrowthMb} MB`,
  );
  assertClean(c);
  assert.ok(c.routes >= 40, 'the routes were found');
  assert.ok(c.oversized > 0, 'bodies above the limit were sent');
  assert.ok(
    (c.byStatus['200'] ?? 0) > 0 && (c.byStatus['403'] ?? 0) > 0,
    'requests got past authentication too',
  );
  assert.ok(c.heapGrowthMb < 200, `bounded memory (heap grew ${c.heapGrowthMb} MB)`);
});

/** Sends raw bytes and returns what came back before the server answered or closed (at most 2 s). */
function raw(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      ok(got);
    };
    const timer = setTimeout(done, 2000);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (/\r\n\r\n/.test(got)) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.end(bytes);
  });
}

test('through a real socket: generated requests, streams, malformed HTTP; the server stays up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-fuzz-socket-'));
  const server = await startServer({
    dataDir: dir,
    port: 0,
    logger: createLogger('silent'),
    admission: false,
  });
  try {
    const store = server.controlPlane.store;
    const tokens: Record<string, string | null> = {
      admin: server.createdAdminToken,
      agent: (await mintToken(store, { role: 'agent', tenant: 'acme', agent: 'bot' }, 'fuzz')).secret,
      operator: (await mintToken(store, { role: 'operator', tenant: 'acme' }, 'fuzz')).secret,
      none: null,
    };
    const routes = [
      { method: 'GET', path: '/v1/stream' },
      { method: 'GET', path: '/v1/launchers/stream' },
      { method: 'POST', path: '/v1/directives' },
      { method: 'POST', path: '/v1/workers/:id/heartbeat' },
      { method: 'GET', path: '/v1/audit' },
      { method: 'POST', path: '/v1/audit/verify' },
    ];
    let sent = 0;
    const statuses: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(requestArb(routes, tokens), async (r) => {
        sent++;
        const ac = new AbortController();
        const res = await fetch(`${server.url}${r.path}`, {
          method: r.method,
          headers: r.headers,
          ...(r.body === null ? {} : { body: r.body }),
          signal: ac.signal,
        });
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        assert.ok(res.status < 500, `${r.method} ${r.path} as ${r.role}: ${res.status}`);
        if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
          // A stream opened: read its first event, then hang up.
          const reader = res.body!.getReader();
          await reader.read();
          ac.abort();
        } else {
          const text = await res.text();
          if (res.status >= 400) assert.ok(isWireError(JSON.parse(text)), `${r.path}: the wire shape`);
        }
      }),
      { numRuns: 150, seed: 16 },
    );
    // Malformed HTTP: each answered 4xx or closed, never a crash.
    const malformed: [string, string | Buffer][] = [
      ['garbage request line', 'HELLO\r\n\r\n'],
      ['bad header name', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n'],
      ['header of 64 KB', `GET /v1/fleet HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`],
      [
        'content-length lies',
        'POST /v1/directives HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{}',
      ],
      [
        'worker report declaring too much',
        'POST /v1/workers/w1/ack HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n{}',
      ],
      [
        'chunked body over the limit',
        `POST /v1/directives HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${(70000).toString(16)}\r\n${'x'.repeat(70000)}\r\n0\r\n\r\n`,
      ],
      ['binary', Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10])],
    ];
    for (const [what, bytes] of malformed) {
      const answer = await raw(server.port, bytes);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
      t.diagnostic(`${what}: ${status ?? 'closed'}`);
      assert.ok(status === undefined || Number(status) < 500, `${what}: answered ${status}`);
      if (what === 'worker report declaring too much' || what === 'chunked body over the limit')
        assert.equal(status, '413', what);
    }
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200, 'the server is still up');
    t.diagnostic(
      `socket: ${sent} generated requests (${Object.entries(statuses)
        .map(([k, v]) => `${k}×${v}`)
        .join(' ')}), ${malformed.length} malformed`,
    );
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
