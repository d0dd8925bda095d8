import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import { codeOf, directive, harness, issue, snapshot } from './fixtures.ts';

/** ManualClock(1 000) starts its wall clock at 2026-01-01T00:00:00Z. */
const wallAt = (now: number): string => new Date(Date.UTC(2026, 0, 1) + now - 1_000).toISOString();

test('run timers fire on the clock: a timeout once, an interval every period', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const fired: string[] = [];
  const once = run.setTimeout(() => fired.push(`once@${clock.now()}`), 500, 'once');
  run.setInterval(() => fired.push(`tick@${clock.now()}`), 200, 'sync');
  clock.advance(599);
  assert.deepEqual(fired, ['tick@1200', 'tick@1400', 'once@1500']);
  assert.equal(once.active, false);
  assert.deepEqual(
    sink.ofType('timer.fired').map((e) => [e.timer, e.label, e.at]),
    [
      ['interval', 'sync', 1_200],
      ['interval', 'sync', 1_400],
      ['timeout', 'once', 1_500],
    ],
  );
  const cancelled = run.setTimeout(() => fired.push('never'), 10);
  cancelled.cancel();
  clock.advance(10);
  assert.ok(!fired.includes('never'));
  assert.equal(sink.ofType('timer.cancelled').length, 0, "a caller's own cancel is not journaled");
  await client.close();
});

test('a covering halt cancels every timer of the run synchronously on observe, each journaled; nothing fires after', async () => {
  const { client, stream, clock, sink, cp } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  const other = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  const fired: string[] = [];
  run.setTimeout(() => fired.push('t'), 1_000, 'reminder');
  run.setInterval(() => fired.push('i'), 300, 'sync');
  other.setInterval(() => fired.push('other'), 300, 'other-sync');
  clock.advance(400);
  assert.deepEqual(fired, ['i', 'other']);
  const pending = clock.pendingTimers();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(clock.pendingTimers(), pending - 2, 'cancelled synchronously, when the rev was applied');
  const observedAt = sink.ofType('rev.applied').at(-1)?.at ?? -1;
  clock.advance(5_000);
  const firedAfter = sink.ofType('timer.fired').filter((e) => e.runId === 'r1' && e.at > observedAt);
  assert.deepEqual(firedAfter, [], 'no timer of the halted run fired after observe');
  assert.ok(fired.filter((f) => f === 'other').length > 10, 'an uncovered run keeps its timers');
  assert.deepEqual(
    sink.ofType('timer.cancelled').map((e) => [e.runId, e.timer, e.label, e.dueAt, e.directiveId]),
    [
      ['r1', 'timeout', 'reminder', wallAt(2_000), 'h1'],
      ['r1', 'interval', 'sync', wallAt(1_600), 'h1'],
    ],
  );
  await drain();
  assert.deepEqual(
    cp.journal.filter((e) => e.type === 'timer.cancelled'),
    [
      {
        type: 'timer.cancelled',
        runId: 'r1',
        timer: 'timeout',
        label: 'reminder',
        dueAt: wallAt(2_000),
        directiveId: 'h1',
      },
      {
        type: 'timer.cancelled',
        runId: 'r1',
        timer: 'interval',
        label: 'sync',
        dueAt: wallAt(1_600),
        directiveId: 'h1',
      },
    ],
  );
  assert.throws(
    () => run.setTimeout(() => {}, 1),
    (err) => codeOf(err) === 'halted',
    'a halted run sets no new timers',
  );
  await client.close();
});

test('a capability-narrowed halt leaves the run timers alone', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let ticks = 0;
  run.setInterval(() => ticks++, 100);
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1', { capabilities: ['wire_transfer'] })));
  clock.advance(300);
  assert.equal(ticks, 3);
  await client.close();
});

test('a timer that falls due while the gate is closed (a resync) is cancelled instead of run', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let ran = false;
  run.setTimeout(() => (ran = true), 100, 'late');
  // A rev gap closes the gate at once (the lease is not expired, so nothing was cancelled yet).
  await stream.push({ type: 'delta', rev: 5 });
  clock.advance(100);
  assert.equal(ran, false);
  assert.deepEqual(
    sink.ofType('timer.cancelled').map((e) => [e.label, e.directiveId, e.dueAt]),
    [['late', null, wallAt(1_100)]],
  );
  await client.close();
});

test('lease expiry and the end of the run cancel timers, journaled without a directive', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 1_000, heartbeatMs: 60_000 });
  const a = client.startRun({ runId: 'a' });
  const b = client.startRun({ runId: 'b' });
  await stream.push(snapshot(1));
  let fired = 0;
  b.setTimeout(() => fired++, 50, 'b-timer');
  b.end();
  assert.throws(
    () => b.setTimeout(() => {}, 1),
    (err) => codeOf(err) === 'invalid_request',
  );
  a.setInterval(() => fired++, 600, 'a-timer');
  clock.advance(1_000);
  assert.equal(fired, 1, 'a-timer fired once at 600; b-timer never');
  assert.deepEqual(
    sink.ofType('timer.cancelled').map((e) => [e.runId, e.label, e.directiveId]),
    [
      ['b', 'b-timer', null],
      ['a', 'a-timer', null],
    ],
  );
  await client.close();
});

test('a timer callback that throws or rejects is journaled as timer.failed, never unhandled', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => {
    unhandled.push(err);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    const run = client.startRun({ runId: 'r1' });
    await stream.push(snapshot(1));
    run.setTimeout(() => {
      throw new Error('sync boom');
    }, 1);
    run.setTimeout(() => Promise.reject(new Error('async boom')), 2);
    clock.advance(2);
    await drain();
    assert.deepEqual(
      sink.ofType('timer.failed').map((e) => e.message),
      ['sync boom', 'async boom'],
    );
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  await client.close();
});

test('retry calls fn afresh with exponential waits on the clock, capped at maxMs', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const calls: number[] = [];
  const result = run.retry(
    (attempt) => {
      calls.push(clock.now());
      if (attempt < 4) throw new KillpathError('unavailable', 'down');
      return `ok on ${attempt}`;
    },
    { attempts: 5, backoff: { initialMs: 100, factor: 3, maxMs: 500 }, label: 'sync' },
  );
  await drain();
  assert.deepEqual(calls, [1_000]);
  clock.advance(99);
  await drain();
  assert.deepEqual(calls, [1_000], 'not before initialMs');
  clock.advance(1);
  await drain();
  clock.advance(300);
  await drain();
  clock.advance(499);
  await drain();
  assert.equal(calls.length, 3, 'the third wait is capped at maxMs, not 900');
  let value: unknown = null;
  result.then(
    (v) => (value = v),
    () => {},
  );
  clock.advance(1);
  await drain();
  assert.equal(value, 'ok on 4');
  assert.deepEqual(calls, [1_000, 1_100, 1_400, 1_900]);
  assert.deepEqual(
    sink.ofType('timer.fired').map((e) => [e.timer, e.label]),
    [
      ['retry', 'sync'],
      ['retry', 'sync'],
      ['retry', 'sync'],
    ],
  );
  await client.close();
});

test('retry stops at once on halted, and gives up after attempts with the last error', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let n = 0;
  await assert.rejects(
    run.retry(
      () => {
        n++;
        throw new KillpathError('halted', 'refused');
      },
      { attempts: 5, backoff: { initialMs: 10 } },
    ),
    (err) => codeOf(err) === 'halted',
  );
  assert.equal(n, 1);

  let m = 0;
  const giving = run.retry(
    () => {
      m++;
      return Promise.reject(new Error(`fail ${m}`));
    },
    { attempts: 2, backoff: { initialMs: 10 } },
  );
  giving.catch(() => {});
  await drain();
  clock.advance(10);
  await assert.rejects(giving, /fail 2/);
  assert.equal(m, 2);

  let c = 0;
  await assert.rejects(
    run.retry(
      () => {
        c++;
        throw new KillpathError('conflict', 'in doubt');
      },
      { attempts: 3, backoff: { initialMs: 1 } },
    ),
    (err) => codeOf(err) === 'conflict',
  );
  assert.equal(c, 1, 'at-most-once refusals are not retried by default');
  await assert.rejects(
    run.retry(() => 1, { attempts: 0, backoff: { initialMs: 1 } }),
    (err) => codeOf(err) === 'invalid_request',
  );
  await client.close();
});

test('a halt during a retry wait cancels it: journaled, rejected with halted, fn not called again', async () => {
  const { client, stream, clock, sink, cp } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let n = 0;
  const retrying = run.retry(
    () => {
      n++;
      return run.effect('crm.update', () => {
        throw new Error('tool flaky');
      });
    },
    { attempts: 5, backoff: { initialMs: 1_000 }, label: 'crm' },
  );
  let outcome: unknown = null;
  retrying.catch((err: unknown) => {
    outcome = err;
  });
  await drain();
  assert.equal(n, 1);
  clock.advance(400);
  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1')));
  await drain();
  assert.equal(codeOf(outcome), 'halted');
  assert.deepEqual((outcome as KillpathError).details, { reason: 'halted', directiveId: 'h1' });
  clock.advance(10_000);
  await drain();
  assert.equal(n, 1, 'no attempt after the flip');
  assert.deepEqual(
    cp.journal.filter((e) => e.type === 'timer.cancelled'),
    [
      {
        type: 'timer.cancelled',
        runId: 'r1',
        timer: 'retry',
        label: 'crm',
        dueAt: wallAt(2_000),
        directiveId: 'h1',
      },
    ],
  );
  assert.equal(sink.ofType('timer.fired').length, 0);
  await client.close();
});

test('halted stops a retry even when a custom retryOn says to retry everything', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let n = 0;
  let outcome: unknown = null;
  run
    .retry(
      () => {
        n++;
        throw new KillpathError('halted', 'refused');
      },
      { attempts: 3, backoff: { initialMs: 1 }, retryOn: () => true },
    )
    .catch((err: unknown) => {
      outcome = err;
    });
  await drain();
  clock.advance(10);
  await drain();
  assert.equal(codeOf(outcome), 'halted');
  assert.equal(n, 1);
  await client.close();
});
