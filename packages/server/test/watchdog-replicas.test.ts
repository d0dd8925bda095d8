/**
 * The watchdog's HTTP port over several replicas of one control plane (`killpath watchdog --url A
 * --url B`): a request moves to the next replica when one cannot be reached or answers 503
 * `unavailable`, and stays where it was answered; any other refusal is the answer. Real HTTP
 * servers on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpWatchdogPort } from '../src/watchdog/http-port.ts';

async function listen(answer: (path: string, res: ServerResponse) => void, seen: string[]): Promise<Server> {
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    answer(req.url ?? '', res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return server;
}
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

test('the watchdog port passes over a dead replica and a 503, stays on the one that answered, and takes a refusal as the answer', async () => {
  const gone = await listen(() => {}, []);
  const dead = urlOf(gone);
  await new Promise<void>((ok) => gone.close(() => ok()));
  const seenB: string[] = [];
  const seenC: string[] = [];
  let cRefuses = false;
  const b = await listen(
    (_p, res) => json(res, 503, { error: { code: 'unavailable', message: 'cannot vouch' } }),
    seenB,
  );
  const c = await listen((path, res) => {
    if (cRefuses) return json(res, 403, { error: { code: 'forbidden', message: 'no' } });
    if (path === '/v1/watchdog/beat') return json(res, 200, { supervisorAgoMs: 7 });
    return json(res, 200, { workers: [] });
  }, seenC);
  try {
    const port = httpWatchdogPort({ url: [dead, urlOf(b), `${urlOf(c)}/`], token: 't', id: 'wd' });
    assert.deepEqual(await port.beat(), { supervisorAgoMs: 7 });
    assert.deepEqual(seenB, ['/v1/watchdog/beat'], 'B refused with 503, C answered');
    assert.deepEqual(await port.workers(), []);
    assert.deepEqual(seenB, ['/v1/watchdog/beat'], 'later requests start at C');
    assert.deepEqual(seenC, ['/v1/watchdog/beat', '/v1/watchdog/workers']);
    cRefuses = true;
    await assert.rejects(port.workers(), (e: { code?: string }) => e.code === 'forbidden');
    assert.equal(seenB.length, 1, 'a 403 is not sent elsewhere');
    // Every replica down or refusing: the last replica's error.
    const all = httpWatchdogPort({ url: [dead, urlOf(b)], token: 't', id: 'wd' });
    await assert.rejects(all.beat(), (e: { code?: string }) => e.code === 'unavailable');
  } finally {
    for (const s of [b, c]) {
      s.closeAllConnections();
      await new Promise<void>((ok) => s.close(() => ok()));
    }
  }
});
