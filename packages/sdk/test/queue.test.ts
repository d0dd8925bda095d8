import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JournalEvent } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import type { TaskContext } from '../src/index.ts';
import { codeOf, deferred, directive, harness, issue, snapshot } from './fixtures.ts';

interface Job {
  n: number;
}

/** A handler whose tasks the test finishes by hand. */
function manualHandler(): {
  handler: (task: Job, ctx: TaskContext) => Promise<void>;
  started: {
    n: number;
    ctx: TaskContext;
    done: { resolve: (v: void) => void; reject: (e: unknown) => void };
  }[];
} {
  const started: ReturnType<typeof manualHandler>['started'] = [];
  return {
    started,
    handler: (task, ctx) => {
      const done = deferred<void>();
      started.push({ n: task.n, ctx, done });
      return done.promise;
    },
  };
}

const discarded = (journal: JournalEvent[]): unknown[] =>
  journal
    .filter((e) => e.type === 'queue.discarded')
    .map((e) => (e.type === 'queue.discarded' ? [e.runId, e.taskId, e.payload, e.directiveId] : null));

test('a queue runs tasks in order, at its concurrency, with the run in the context', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler, { concurrency: 2 });
  for (let n = 1; n <= 3; n++) q.push({ n }, { run, id: `t${n}` });
  await drain();
  assert.deepEqual(
    started.map((s) => s.n),
    [1, 2],
  );
  assert.equal(started[0]?.ctx.run, run);
  assert.equal(started[0]?.ctx.taskId, 't1');
  assert.equal(started[0]?.ctx.draining, false);
  assert.equal(q.size, 1);
  started[0]?.done.resolve();
  await drain();
  assert.deepEqual(
    started.map((s) => s.n),
    [1, 2, 3],
  );
  started[1]?.done.reject(new Error('smtp down'));
  await drain();
  assert.deepEqual(
    sink.ofType('task.settled').map((e) => [e.taskId, e.outcome, e.message]),
    [
      ['t1', 'completed', null],
      ['t2', 'failed', 'smtp down'],
    ],
  );
  assert.throws(
    () => q.push({ n: 9 }, { run, id: 't3' }),
    (err) => codeOf(err) === 'conflict',
  );
  assert.throws(
    () => q.push({ n: 9 }, { runId: 'nope' }),
    (err) => codeOf(err) === 'invalid_request',
  );
  assert.throws(
    () => client.queue('outbox', handler),
    (err) => codeOf(err) === 'conflict',
  );
  await client.close();
});

test('tasks wait for the first snapshot: nothing starts while the gate is stale', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler);
  q.push({ n: 1 }, { run });
  await drain();
  assert.equal(started.length, 0);
  await stream.push(snapshot(1));
  await drain();
  assert.equal(started.length, 1);
  await client.close();
});

test('discard (the default): a covering halt drops queued tasks of covered runs at once, journaled with payload; none starts after observe', async () => {
  const { client, stream, cp, sink, transport } = await harness();
  const r1 = client.startRun({ runId: 'r1' });
  const r2 = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler, { runOf: (job: Job) => (job.n < 10 ? r1 : 'r2') });
  q.push({ n: 1 }, { id: 'a' });
  q.push({ n: 2 }, { id: 'b' });
  q.push({ n: 11 }, { id: 'c' });
  q.push({ n: 3 }, { id: 'd' });
  await drain();
  assert.deepEqual(
    started.map((s) => s.n),
    [1],
  );
  const runningSignal = started[0]?.ctx.signal;

  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(q.size, 1, 'purged synchronously on observe');
  assert.equal(runningSignal?.aborted, true, 'the running task of the covered run is aborted');
  assert.equal(codeOf(runningSignal?.reason), 'halted');
  const observeIndex = sink.events.findIndex((e) => e.type === 'rev.applied' && e.rev === 2);
  started[0]?.done.resolve();
  await drain();
  assert.deepEqual(
    started.map((s) => s.n),
    [1, 11],
    "r2's task runs",
  );
  const startedAfter = sink.events
    .slice(observeIndex)
    .filter((e) => e.type === 'task.started' && e.runId === 'r1');
  assert.deepEqual(startedAfter, [], 'no task of the halted run started after observe');
  assert.deepEqual(discarded(cp.journal), [
    ['r1', 'b', { n: 2 }, 'h1'],
    ['r1', 'd', { n: 3 }, 'h1'],
  ]);
  assert.deepEqual(
    sink.ofType('queue.discarded').map((e) => e.taskId),
    ['b', 'd'],
  );
  assert.equal(transport.postsTo('/halted').length, 1);
  assert.throws(
    () => q.push({ n: 4 }, { run: r1 }),
    (err) => codeOf(err) === 'halted',
    'nothing is queued for a halted run',
  );
  assert.equal(q.push({ n: 12 }, { run: r2 }).length > 0, true);
  await client.close();
});

test('drain: queued tasks run inside the grace (draining), the rest is discarded when it runs out; the report waits for it', async () => {
  const { client, stream, cp, clock, transport, sink } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
  });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler);
  for (const id of ['a', 'b', 'c']) q.push({ n: id.charCodeAt(0) }, { run, id });
  await drain();
  assert.equal(started.length, 1);

  await stream.push(issue(2, directive('h1', 'halt', 'run:r1', { drain: 'drain', graceMs: 1_000 })));
  await drain();
  assert.equal(q.size, 2, 'nothing discarded yet');
  assert.equal(started[0]?.ctx.signal.aborted, false);
  started[0]?.done.resolve();
  await drain();
  assert.equal(started.length, 2);
  assert.equal(started[1]?.ctx.draining, true, 'the handler knows it runs under a drain');
  // An effect from a drained task is still refused: no write after the flip.
  await assert.rejects(
    run.effect('smtp.send', () => 1),
    (err) => codeOf(err) === 'halted',
  );
  started[1]?.done.reject(new Error('nacked'));
  await drain();
  assert.equal(transport.postsTo('/halted').length, 0, 'the report waits for the drain');
  clock.advance(999);
  await drain();
  const third = started[2];
  assert.equal(third?.ctx.signal.aborted, false);
  clock.advance(1);
  assert.equal(
    third?.ctx.signal.aborted,
    true,
    'a drained task still running when the grace ends is aborted',
  );
  await drain();
  assert.equal(transport.postsTo('/halted').length, 1, 'sent when the grace ran out');
  third?.done.resolve();
  await drain();
  assert.deepEqual(
    cp.journal
      .filter((e) => e.type === 'queue.drained')
      .map((e) => (e.type === 'queue.drained' ? [e.taskId, e.outcome, e.directiveId] : null)),
    [
      ['a', 'completed', 'h1'],
      ['b', 'failed', 'h1'],
      ['c', 'completed', 'h1'],
    ],
  );
  assert.deepEqual(sink.ofType('queue.drained').length, 3);
  await client.close();
});

test('drain: what is still queued when the grace runs out is discarded', async () => {
  const { client, stream, cp, clock, transport } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler);
  for (const id of ['a', 'b', 'c']) q.push({ n: 0 }, { run, id });
  await drain();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1', { drain: 'drain', graceMs: 500 })));
  clock.advance(500);
  await drain();
  assert.equal(q.size, 0);
  assert.deepEqual(discarded(cp.journal), [
    ['r1', 'b', { n: 0 }, 'h1'],
    ['r1', 'c', { n: 0 }, 'h1'],
  ]);
  assert.equal(started.length, 1);
  assert.equal(transport.postsTo('/halted').length, 1);
  await client.close();
});

test('a kill discards even when its directive says drain', async () => {
  const { client, stream, cp } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { handler } = manualHandler();
  const q = client.queue('outbox', handler);
  q.push({ n: 1 }, { run, id: 'a' });
  q.push({ n: 2 }, { run, id: 'b' });
  await drain();
  await stream.push(issue(2, directive('k1', 'kill', 'run:r1', { drain: 'drain', graceMs: 10_000 })));
  assert.equal(q.size, 0);
  await drain();
  assert.deepEqual(discarded(cp.journal), [['r1', 'b', { n: 2 }, 'k1']]);
  await client.close();
});

test('a task without a run is covered by agent, tenant, global and feature scopes, never by a run scope', async () => {
  const { client, stream, cp, transport } = await harness({ features: ['beta'] });
  client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler);
  q.push({ n: 1 }, { id: 'busy' });
  q.push({ n: 2 }, { id: 'queued' });
  await drain();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(q.size, 1, 'a run scope does not cover the worker');
  await stream.push(issue(3, directive('h2', 'halt', 'feature:beta')));
  assert.equal(q.size, 0);
  assert.equal(started[0]?.ctx.signal.aborted, true);
  await drain();
  assert.deepEqual(discarded(cp.journal), [[null, 'queued', { n: 2 }, 'h2']]);
  const reports = transport.reportsOf('halted');
  assert.deepEqual(
    reports.find((r) => r.directiveId === 'h2'),
    {
      workerId: 'w1',
      rev: 3,
      directiveId: 'h2',
      runs: ['r1'],
      aborted: 0,
      completed: 0,
      observeToSettleMs: 0,
    },
  );
  assert.throws(
    () => q.push({ n: 3 }),
    (err) => codeOf(err) === 'halted',
  );
  await client.close();
});

test('lease expiry discards queued tasks and aborts running ones; ending a run discards its queued tasks', async () => {
  const { client, stream, cp, clock } = await harness({ leaseMs: 1_000, heartbeatMs: 60_000 });
  const r1 = client.startRun({ runId: 'r1' });
  const r2 = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler);
  q.push({ n: 1 }, { run: r1, id: 'a' });
  q.push({ n: 2 }, { run: r2, id: 'b' });
  q.push({ n: 3 }, { run: r1, id: 'c' });
  await drain();
  r2.end();
  assert.equal(q.size, 1, "the ended run's queued task is dropped at once");
  await drain();
  assert.deepEqual(discarded(cp.journal), [['r2', 'b', { n: 2 }, null]]);
  clock.advance(1_000);
  assert.equal(q.size, 0);
  assert.equal(started[0]?.ctx.signal.aborted, true);
  await drain();
  assert.deepEqual(discarded(cp.journal).at(-1), ['r1', 'c', { n: 3 }, null]);
  await client.close();
});

test('tasks pushed while the lease is expired start once contact is back', async () => {
  const { client, stream, clock, transport } = await harness({ leaseMs: 1_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { handler, started } = manualHandler();
  const q = client.queue('outbox', handler);
  clock.advance(1_000);
  q.push({ n: 1 }, { run });
  await drain();
  assert.equal(started.length, 0, 'nothing starts without a fresh switchboard');
  // Contact is back: after an expiry, through a fresh stream's snapshot.
  await stream.push({ type: 'keepalive', rev: 1 });
  await drain();
  assert.equal(started.length, 0, 'a keepalive queued on the old stream is not contact');
  clock.advance(120);
  await (await transport.nextStream()).push(snapshot(1));
  await drain();
  assert.deepEqual(
    started.map((s) => s.n),
    [1],
  );
  await client.close();
});
