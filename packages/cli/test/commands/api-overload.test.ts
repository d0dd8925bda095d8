/**
 * The CLI's API client honours the control plane's admission control: a request shed with
 * 429 `overloaded` was not processed, so it is sent again after the wait it was asked for; other
 * refusals are reported at once. A real HTTP server on loopback answers.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KillpathError } from '@killpath/protocol';
import { ApiClient, SHED_RETRIES } from '../../src/api.ts';

describe('ApiClient under admission control', () => {
  let server: Server;
  let url = '';
  let script: { status: number; body: unknown }[] = [];
  const seen: number[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push(performance.now());
      const next = script.shift() ?? { status: 200, body: { ok: true } };
      res.writeHead(next.status, {
        'content-type': 'application/json',
        ...(next.status === 429 ? { 'retry-after': '1' } : {}),
      });
      res.end(JSON.stringify(next.body));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((ok) => server.close(() => ok())));
  const shed = (retryAfterMs: number) => ({
    status: 429,
    body: {
      error: { code: 'overloaded', message: 'the control plane is overloaded', details: { retryAfterMs } },
    },
  });

  it('sends a shed request again after the wait it was asked for, and returns the answer', async () => {
    seen.length = 0;
    script = [shed(40), shed(40), { status: 200, body: { fleet: [] } }];
    const answer = await new ApiClient(url, 't').get<{ fleet: unknown[] }>('/v1/fleet');
    assert.deepEqual(answer, { fleet: [] });
    assert.equal(seen.length, 3);
    assert.ok(seen[1]! - seen[0]! >= 39 && seen[2]! - seen[1]! >= 39, 'waited as asked between tries');
  });

  it(`reports the 429 after ${SHED_RETRIES} more tries`, async () => {
    seen.length = 0;
    script = Array.from({ length: SHED_RETRIES + 1 }, () => shed(1));
    await assert.rejects(
      new ApiClient(url, 't').get('/v1/audit'),
      (err: KillpathError) => err.code === 'overloaded' && /overloaded/.test(err.message),
    );
    assert.equal(seen.length, SHED_RETRIES + 1);
  });

  it('does not retry any other refusal', async () => {
    seen.length = 0;
    script = [{ status: 403, body: { error: { code: 'forbidden', message: 'no' } } }];
    await assert.rejects(
      new ApiClient(url, 't').get('/v1/fleet'),
      (err: KillpathError) => err.code === 'forbidden',
    );
    assert.equal(seen.length, 1);
  });
});
