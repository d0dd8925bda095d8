import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HaltedReport } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import { codeOf, deferred, directive, harness, issue, snapshot } from './fixtures.ts';

test('a halt aborts an in-flight write at once and lets an in-flight read complete', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const write = deferred<string>();
  const read = deferred<string>();
  let writeSignal: AbortSignal | null = null;
  let readSignal: AbortSignal | null = null;
  // The write ignores its signal on purpose: effect() must still reject right away.
  const writing = run.effect('wire_transfer', (signal) => {
    writeSignal = signal;
    return write.promise;
  });
  const reading = run.effect({ capability: 'search', class: 'read' }, (signal) => {
    readSignal = signal;
    return read.promise;
  });
  let writeOutcome: unknown = null;
  writing.catch((err: unknown) => {
    writeOutcome = err;
  });

  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1')));
  await drain();
  assert.equal(codeOf(writeOutcome), 'halted', 'the caller is released without waiting for fn');
  assert.equal((writeSignal as AbortSignal | null)?.aborted, true);
  assert.equal(codeOf((writeSignal as AbortSignal | null)?.reason), 'halted');
  assert.equal((readSignal as AbortSignal | null)?.aborted, false);
  assert.notEqual(writeSignal, readSignal, 'one controller per effect');

  read.resolve('results');
  assert.equal(await reading, 'results');
  const aborted = sink.ofType('effect.aborted');
  assert.deepEqual(
    aborted.map((e) => [e.capability, e.reason, e.directiveId]),
    [['wire_transfer', 'halted', 'h1']],
  );
  write.resolve('landed anyway');
  await drain();
  const landed = sink.ofType('effect.landed').find((e) => e.capability === 'wire_transfer');
  assert.equal(landed?.afterAbort, true, 'an aborted write that still landed is journaled as such');
  await client.close();
});

test('the halted report is posted only after every covered in-flight effect settles', async () => {
  const { client, stream, clock, transport, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  const bystander = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  const write = deferred<void>();
  const read = deferred<void>();
  const other = deferred<void>();
  run.effect('memory.write', () => write.promise).catch(() => {});
  const reading = run.effect({ capability: 'search', class: 'read' }, () => read.promise);
  const untouched = bystander.effect('memory.write', () => other.promise);

  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await drain();
  assert.equal(transport.postsTo('/halted').length, 0, 'the write has not settled');
  clock.advance(20);
  read.resolve();
  await reading;
  await drain();
  assert.equal(transport.postsTo('/halted').length, 0, 'the aborted write still has not settled');
  clock.advance(30);
  write.reject(new Error('aborted by the tool'));
  await drain();

  const posts = transport.postsTo('/halted');
  assert.equal(posts.length, 1);
  assert.equal(posts[0]?.url, 'http://cp.test/v1/workers/w1/halted');
  const expected: HaltedReport = {
    rev: 2,
    directiveId: 'h1',
    runs: ['r1'],
    aborted: 1,
    completed: 1,
    observeToSettleMs: 50,
  };
  assert.deepEqual(posts[0]?.body, expected);
  assert.equal(sink.ofType('halt.settled').length, 1);
  // The bystander's write was not covered and is still running.
  other.resolve();
  await untouched;
  await client.close();
});

test('a halt covering an idle run is reported at once; one covering no local run is not reported', async () => {
  const { client, stream, transport } = await harness();
  client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await stream.push(issue(2, directive('elsewhere', 'halt', 'run:not-here')));
  await stream.push(issue(3, directive('h1', 'kill', 'run:r1')));
  await drain();
  assert.deepEqual(
    transport.postsTo('/halted').map((p) => p.body),
    [{ rev: 3, directiveId: 'h1', runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 0 }],
  );
  await client.close();
});

test('a capability-narrowed halt aborts only writes of that capability', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const transfer = new AbortController();
  const memory = new AbortController();
  const transferring = run.effect('wire_transfer', (signal) => {
    signal.addEventListener('abort', () => transfer.abort());
    return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
  });
  let memoryDone = false;
  const writing = run.effect('memory.write', (signal) => {
    signal.addEventListener('abort', () => memory.abort());
    return Promise.resolve().then(() => {
      memoryDone = true;
    });
  });
  await writing;
  const slow = deferred<void>();
  const slowWrite = run.effect('memory.write', () => slow.promise);
  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1', { capabilities: ['wire_transfer'] })));
  await assert.rejects(transferring, (err) => codeOf(err) === 'halted');
  assert.equal(transfer.signal.aborted, true);
  assert.equal(memory.signal.aborted, false);
  assert.equal(memoryDone, true);
  slow.resolve();
  await slowWrite;
  await client.close();
});

test('lease expiry aborts in-flight writes and leaves reads running', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 3_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const read = deferred<number>();
  const writing = run.effect(
    { capability: 'payments', class: 'irreversible' },
    () => new Promise<void>(() => {}),
  );
  const reading = run.effect({ capability: 'search', class: 'read' }, () => read.promise);
  clock.advance(3_000);
  await assert.rejects(writing, (err) => {
    assert.equal(codeOf(err), 'halted');
    assert.deepEqual((err as { details: unknown }).details, { reason: 'stale', directiveId: null });
    return true;
  });
  assert.deepEqual(
    sink.events.filter((e) => e.type === 'lease.expired' || e.type === 'effect.aborted').map((e) => e.type),
    ['lease.expired', 'effect.aborted'],
  );
  assert.equal(sink.ofType('lease.expired')[0]?.aborted, 1);
  read.resolve(7);
  assert.equal(await reading, 7);
  await client.close();
});

test('effect.started is journaled synchronously right before fn, with the default class write', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let lastSeen: unknown = null;
  const result = await run.effect('llm', () => {
    lastSeen = sink.events.at(-1);
    return 42;
  });
  assert.equal(result, 42);
  assert.deepEqual(lastSeen, {
    type: 'effect.started',
    effectId: 1,
    runId: 'r1',
    capability: 'llm',
    class: 'write',
    at: 1_000,
  });
  assert.equal(sink.ofType('effect.landed')[0]?.afterAbort, false);
  await client.close();
});

test('a failing fn rejects with its own error and is journaled as failed', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await assert.rejects(
    run.effect('llm', () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  await assert.rejects(
    run.effect('llm', () => Promise.reject(new Error('later boom'))),
    /later boom/,
  );
  assert.deepEqual(
    sink.ofType('effect.failed').map((e) => e.message),
    ['boom', 'later boom'],
  );
  await client.close();
});

test('an ended run refuses new effects, keeps covering in-flight ones, then closes its gate', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const write = deferred<void>();
  const writing = run.effect('memory.write', () => write.promise);
  run.end();
  await assert.rejects(
    run.effect('llm', () => 1),
    (err) => codeOf(err) === 'invalid_request',
  );
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await assert.rejects(writing, (err) => codeOf(err) === 'halted');
  write.resolve();
  await drain();
  await stream.push({ type: 'delta', rev: 3, cleared: 'h1' });
  assert.equal(run.check('llm').kind, 'deny', 'a drained run no longer follows the mirror');
  await client.close();
});
