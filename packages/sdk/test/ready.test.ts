import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import { codeOf, harness, reasonOf, snapshot } from './fixtures.ts';

/** A logger that keeps what it was told. */
function memoryLogger(): { lines: string[]; warn(message: string): void } {
  const lines: string[] = [];
  return { lines, warn: (message) => lines.push(message) };
}

/** Fails the client's current stream and waits for its retry to open the next one. */
async function failAndRetry(h: Awaited<ReturnType<typeof harness>>, i: number): Promise<void> {
  const stream = h.transport.streams[i]!;
  await stream.fail(new KillpathError('unavailable', 'connect ECONNREFUSED 127.0.0.1:7070'));
  const retryInMs = h.sink.ofType('stream.error').at(-1)?.retryInMs ?? 0;
  h.clock.advance(retryInMs);
  await h.transport.nextStream();
}

test('while the control plane is unreachable, ready holds the process, logs once then rarely, and checks deny stale', async () => {
  const logger = memoryLogger();
  const h = await harness({ logger });
  const run = h.client.startRun({ runId: 'r1' });
  assert.equal(h.clock.held, 1, 'the process is held open while ready is pending');
  let settled = false;
  void h.client.ready.then(
    () => (settled = true),
    () => (settled = true),
  );
  await failAndRetry(h, 0);
  assert.deepEqual(logger.lines, [
    'control plane unreachable at http://cp.test, retrying (connect ECONNREFUSED 127.0.0.1:7070)',
  ]);
  for (let i = 1; i < 8; i++) await failAndRetry(h, i);
  assert.equal(logger.lines.length, 1, 'retries within the minute are not logged again');
  assert.equal(reasonOf(run.check('crm.update')), 'stale');
  assert.equal(settled, false, 'ready waits: no timeout was given');
  assert.equal(h.clock.held, 1);
  // About a minute into the outage the next failure is logged once more, with how long it has been.
  const start = h.clock.now();
  while (h.clock.now() - start < 60_000 && logger.lines.length < 2)
    await failAndRetry(h, h.transport.streams.length - 1);
  assert.equal(logger.lines.length, 2);
  assert.match(
    logger.lines[1]!,
    /^control plane still unreachable at http:\/\/cp\.test after (5\d|6\d) s, retrying \(connect ECONNREFUSED/,
  );
  await h.transport.streams.at(-1)!.push(snapshot(1));
  await h.client.ready;
  assert.equal(h.clock.held, 0, 'released once ready');
  assert.equal(reasonOf(run.check('crm.update')), 'allow');
  await h.client.close();
});

test('readyTimeoutMs rejects ready with unavailable naming the url, the wait and the last error, and lets the process go', async () => {
  const logger = memoryLogger();
  const h = await harness({ logger, readyTimeoutMs: 5_000 });
  const run = h.client.startRun({ runId: 'r1' });
  let rejection: unknown = null;
  h.client.ready.catch((err: unknown) => (rejection = err));
  await failAndRetry(h, 0);
  h.clock.advance(4_000);
  await drain();
  assert.equal(rejection, null, 'not before the timeout');
  h.clock.advance(1_000);
  await drain();
  assert.equal(codeOf(rejection), 'unavailable');
  assert.equal(
    (rejection as unknown as KillpathError).message,
    'control plane at http://cp.test not reached within readyTimeoutMs (5000 ms): connect ECONNREFUSED 127.0.0.1:7070',
  );
  assert.equal(h.clock.held, 0, 'the process is no longer held');
  assert.equal(reasonOf(run.check('crm.update')), 'stale', 'the gate stays closed');
  await h.client.close();
});

test('close() and a fatal refusal release the hold; a bad readyTimeoutMs is refused', async () => {
  const a = await harness({ logger: memoryLogger() });
  assert.equal(a.clock.held, 1);
  await a.client.close();
  assert.equal(a.clock.held, 0);
  await assert.rejects(a.client.ready, (err) => codeOf(err) === 'unavailable');

  const b = await harness({ logger: memoryLogger() });
  await b.transport.streams[0]!.fail(new KillpathError('unauthenticated', 'bad token'));
  await assert.rejects(b.client.ready, (err) => codeOf(err) === 'unauthenticated');
  assert.equal(b.clock.held, 0);
  await b.client.close();

  await assert.rejects(
    harness({ readyTimeoutMs: -1 }),
    (err) => codeOf(err) === 'invalid_request' && /readyTimeoutMs/.test((err as Error).message),
  );
});

test('a later outage is logged once, and again after contact came back and was lost', async () => {
  const logger = memoryLogger();
  const h = await harness({ logger });
  await h.transport.streams[0]!.push(snapshot(1));
  await h.client.ready;
  await failAndRetry(h, 0);
  await failAndRetry(h, 1);
  assert.equal(logger.lines.length, 1);
  await h.transport.streams[2]!.push(snapshot(1));
  await failAndRetry(h, 2);
  assert.equal(logger.lines.length, 2);
  assert.equal(h.clock.held, 0, 'only a pending ready holds the process');
  await h.client.close();
});
