/**
 * The CLI's API client tells a slow answer from no answer: a control plane that takes longer
 * than the timeout "did not answer within N s; the machine may be overloaded", one that refuses
 * the connection "cannot be reached". With `retries`, idempotent requests (GET, and a POST that
 * carries an idempotency key) are sent again before giving up; others never are. A real HTTP
 * server on loopback answers (or does not).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KillpathError } from '@killpath/protocol';
import { ApiClient } from '../../src/api.ts';

describe('ApiClient: slow answer, no answer, retries', () => {
  let server: Server;
  let url = '';
  /** How many requests the server has seen; the first `hang` of them get no answer. */
  let seen = 0;
  let hang = 0;
  const held: ServerResponse[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen += 1;
      req.resume();
      if (seen <= hang) {
        held.push(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true }));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  });
  const reset = (n: number) => {
    seen = 0;
    hang = n;
  };

  it('a control plane that does not answer in time is "did not answer", not "cannot reach"', async () => {
    reset(1);
    await assert.rejects(
      new ApiClient(url, 't', { timeoutMs: 200 }).get('/v1/fleet'),
      (err: KillpathError) => {
        assert.equal(err.code, 'unavailable');
        assert.equal(
          err.message,
          `the control plane at ${url} did not answer GET /v1/fleet within 0.2 s; the machine may be overloaded`,
        );
        assert.deepEqual(err.details, { reason: 'timeout', timeoutMs: 200 });
        return true;
      },
    );
    assert.equal(seen, 1);
  });

  it('a refused connection is "cannot reach", naming the cause', async () => {
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((ok) => closed.close(() => ok()));
    await assert.rejects(
      new ApiClient(`http://127.0.0.1:${port}`, 't').get('/v1/fleet'),
      (err: KillpathError) => {
        assert.equal(err.code, 'unavailable');
        assert.match(
          err.message,
          new RegExp(`^cannot reach the control plane at http://127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED`),
        );
        assert.doesNotMatch(err.message, /did not answer/);
        assert.deepEqual(err.details, { reason: 'unreachable' });
        return true;
      },
    );
  });

  it('with retries, a GET and a POST with an idempotency key are sent again; a plain POST is not', async () => {
    const api = new ApiClient(url, 't', { timeoutMs: 200, retries: 2, retryWaitMs: 10 });
    reset(2);
    assert.deepEqual(await api.get('/v1/fleet'), { ok: true });
    assert.equal(seen, 3, 'two tries without an answer, the third answered');

    reset(1);
    assert.deepEqual(await api.post('/v1/directives', { x: 1 }, { 'idempotency-key': 'k-1' }), { ok: true });
    assert.equal(seen, 2);

    reset(1);
    await assert.rejects(api.post('/v1/directives', { x: 1 }), (err: KillpathError) =>
      /did not answer/.test(err.message),
    );
    assert.equal(seen, 1, 'a POST without an idempotency key may have landed: never sent twice');

    reset(5);
    await assert.rejects(api.get('/v1/fleet'), (err: KillpathError) =>
      /did not answer GET \/v1\/fleet within 0\.2 s; the machine may be overloaded \(3 tries\)$/.test(
        err.message,
      ),
    );
    assert.equal(seen, 3, 'gives up after 1 + retries tries');
  });
});
