/**
 * The CLI with several control-plane URLs (replicas of one control plane): `--url` repeatable
 * and comma lists, `KILLPATH_URL=a,b`. A request moves to the next URL when one is unreachable
 * (connection refused; a timeout only for an idempotent request) or refuses with 503
 * `unavailable`; never on a 4xx. Real HTTP servers on loopback.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KillpathError } from '@killpath/protocol';
import { ApiClient } from '../../src/api.ts';
import { resolveConnection } from '../../src/config.ts';

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(answer: { fn: Answer; seen: string[] }): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    answer.seen.push(`${req.method} ${req.url}`);
    req.resume();
    answer.fn(req, res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

describe('ApiClient over several replicas', () => {
  const a = { fn: ((_q, res) => json(res, 200, { from: 'a' })) as Answer, seen: [] as string[] };
  const b = { fn: ((_q, res) => json(res, 200, { from: 'b' })) as Answer, seen: [] as string[] };
  let sa: Server;
  let sb: Server;
  let ua = '';
  let ub = '';
  let dead = '';
  const held: ServerResponse[] = [];
  before(async () => {
    ({ server: sa, url: ua } = await listen(a));
    ({ server: sb, url: ub } = await listen(b));
    const gone = await listen({ fn: () => {}, seen: [] });
    dead = gone.url;
    await new Promise<void>((ok) => gone.server.close(() => ok()));
  });
  after(async () => {
    for (const res of held) res.destroy();
    for (const s of [sa, sb]) {
      s.closeAllConnections();
      await new Promise<void>((ok) => s.close(() => ok()));
    }
  });

  it('a refused connection moves on, and later requests start where the last answer came from', async () => {
    a.seen.length = 0;
    const api = new ApiClient([dead, ua], 't');
    assert.deepEqual(await api.get('/v1/fleet'), { from: 'a' });
    assert.equal(api.url, ua);
    // A POST without a key too: a refused connection never reached anyone.
    assert.deepEqual(await api.post('/v1/directives', {}), { from: 'a' });
    assert.deepEqual(a.seen, ['GET /v1/fleet', 'POST /v1/directives']);
  });

  it('a 503 unavailable moves on; a 4xx or another 5xx is the answer', async () => {
    a.seen.length = 0;
    b.seen.length = 0;
    a.fn = (_q, res) => json(res, 503, { error: { code: 'unavailable', message: 'cannot vouch' } });
    assert.deepEqual(await new ApiClient([ua, ub], 't').get('/v1/fleet'), { from: 'b' });
    for (const [status, code] of [
      [403, 'forbidden'],
      [409, 'conflict'],
      [500, 'internal'],
    ] as const) {
      a.fn = (_q, res) => json(res, status, { error: { code, message: code } });
      b.seen.length = 0;
      await assert.rejects(
        new ApiClient([ua, ub], 't').post('/v1/directives', {}),
        (err: KillpathError) => err.code === code,
      );
      assert.deepEqual(b.seen, [], `${status} is not sent elsewhere`);
    }
    a.fn = (_q, res) => json(res, 200, { from: 'a' });
  });

  it('a timeout moves an idempotent request on, never a POST without a key; all down says which', async () => {
    a.fn = (_q, res) => void held.push(res);
    b.seen.length = 0;
    assert.deepEqual(await new ApiClient([ua, ub], 't', { timeoutMs: 200 }).get('/v1/fleet'), { from: 'b' });
    assert.deepEqual(
      await new ApiClient([ua, ub], 't', { timeoutMs: 200 }).post(
        '/v1/directives',
        {},
        { 'idempotency-key': 'k' },
      ),
      { from: 'b' },
    );
    b.seen.length = 0;
    await assert.rejects(
      new ApiClient([ua, ub], 't', { timeoutMs: 200 }).post('/v1/tokens', {}),
      (err: KillpathError) => err.code === 'unavailable' && /did not answer/.test(err.message),
    );
    assert.deepEqual(b.seen, [], 'a POST that may have been processed is not sent twice');
    await assert.rejects(
      new ApiClient([dead, dead.replace(/:(\d+)$/, ':1')], 't').get('/v1/fleet'),
      (err: KillpathError) =>
        err.code === 'unavailable' && err.message.startsWith('no control plane answered: cannot reach'),
    );
    a.fn = (_q, res) => json(res, 200, { from: 'a' });
  });

  it('--url repeatable, comma lists and KILLPATH_URL=a,b give the same list; each URL is checked', () => {
    const flags = { token: 's' };
    assert.deepEqual(resolveConnection({ ...flags, url: [ua, `${ub}/`] }, {}).urls, [ua, ub]);
    assert.deepEqual(resolveConnection({ ...flags, url: [`${ua},${ub}`, ua] }, {}).urls, [ua, ub]);
    const fromEnv = resolveConnection(flags, { KILLPATH_URL: `${ua}, ${ub}` });
    assert.deepEqual(fromEnv.urls, [ua, ub]);
    assert.equal(fromEnv.url, ua);
    assert.throws(
      () => resolveConnection({ ...flags, url: [ua, 'http://10.0.0.5:7070'] }, {}),
      /refusing plain HTTP to the control plane at 10\.0\.0\.5:7070/,
    );
    assert.throws(() => resolveConnection({ ...flags, url: [`${ua},`] }, {}), /--url "" is not a URL/);
  });
});
