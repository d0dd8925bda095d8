import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drain } from '../src/testing.ts';
import { clear, directive, harness, issue, keepalive, snapshot } from './fixtures.ts';

/** Settles `p` into a readable state without awaiting it. */
function watch<T>(p: Promise<T>): { value: T | 'pending' } {
  const box: { value: T | 'pending' } = { value: 'pending' };
  void p.then((v) => (box.value = v));
  return box;
}

test('whenAllowed waits out a covering stop (no retry loop) and resolves once it is cleared', async () => {
  const { client, stream, clock } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  assert.equal(await run.whenAllowed('crm.update'), true, 'allowed now: at once');
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  const waiting = watch(run.whenAllowed('crm.update'));
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    await stream.push(keepalive(2));
  }
  await drain();
  assert.equal(waiting.value, 'pending', 'still halted: still waiting');
  await stream.push(clear(3, 'h1'));
  await drain();
  assert.equal(waiting.value, true, 'the resume wakes it');
  await client.close();
});

test('whenAllowed gives up after timeoutMs, when the run ends, and wakes when contact comes back', async () => {
  const { client, stream, clock, transport } = await harness({ leaseMs: 3000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('k1', 'kill', 'run:r1')]));
  const held = clock.held;
  const timed = watch(run.whenAllowed('crm.update', 'write', { timeoutMs: 5000 }));
  assert.equal(clock.held, held + 1, 'waiting keeps the process alive (an agent waiting is not done)');
  clock.advance(4999);
  await drain();
  assert.equal(timed.value, 'pending');
  clock.advance(1);
  await drain();
  assert.equal(timed.value, false);
  assert.equal(clock.held, held, 'and lets it go once the wait is over');

  await stream.push(keepalive(1));
  const other = client.startRun({ runId: 'r2' });
  clock.advance(4000); // the lease ran out: stale
  assert.equal(other.check('search', 'read').kind, 'deny');
  const back = watch(other.whenAllowed('search', 'read'));
  // After a lapsed lease only a fresh stream's snapshot renews it (a frozen and thawed process
  // must not act on data queued on the old stream): the worker reconnects, contact is back.
  await stream.push(keepalive(1));
  clock.advance(120);
  const fresh = await transport.nextStream();
  await fresh.push(snapshot(1, [directive('k1', 'kill', 'run:r1')]));
  await drain();
  assert.equal(back.value, true, 'contact again: the gate opened');

  const ending = watch(run.whenAllowed('crm.update'));
  run.end();
  await drain();
  assert.equal(ending.value, false, 'the run ended: nothing to wait for');
  assert.equal(await run.whenAllowed('crm.update'), false);
  await client.close();
});
