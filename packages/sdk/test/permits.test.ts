import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { KillpathError } from '@killpath/protocol';
import type { JournalBatch, PermitRequest } from '@killpath/protocol';
import { connect } from '../src/index.ts';
import { FakeTransport, MemorySink, drain } from '../src/testing.ts';
import { codeOf, deferred, directive, harness, issue, snapshot } from './fixtures.ts';

test('a read uses the local gate only; a write asks for a permit first, then runs and reports its outcome', async () => {
  const { client, stream, cp, sink, transport } = await harness({ features: ['beta'] });
  const parent = client.startRun({ runId: 'root' });
  const run = parent.startChild({ runId: 'r1' });
  await stream.push(snapshot(1));

  assert.equal(await run.effect({ capability: 'search', class: 'read' }, () => 'hits'), 'hits');
  assert.equal(transport.postsTo('/v1/permits').length, 0, 'a read needs no permit');

  let permitsWhenFnRan = -1;
  const result = await run.effect(
    {
      capability: 'crm.update',
      class: 'write',
      idempotencyKey: 'r1:1',
      args: { b: 2, a: [1, { d: 4, c: 3 }] },
      compensate: { action: 'crm.revert', record: 7 },
    },
    () => {
      permitsWhenFnRan = transport.postsTo('/v1/permits').length;
      return { ok: true };
    },
  );
  assert.deepEqual(result, { ok: true });
  assert.equal(permitsWhenFnRan, 1, 'fn ran after the permit request');
  const canonical = '{"a":[1,{"c":3,"d":4}],"b":2}';
  const expected: PermitRequest = {
    workerId: 'w1',
    runId: 'r1',
    lineage: ['root'],
    features: ['beta'],
    capability: 'crm.update',
    class: 'write',
    idempotencyKey: 'r1:1',
    argsDigest: createHash('sha256').update(canonical).digest('hex'),
    seenRev: 1, // the rev the worker had applied when it asked
    compensate: { action: 'crm.revert', record: 7 },
  };
  const posts = transport.postsTo('/v1/permits');
  assert.deepEqual(posts[0]?.body, expected);
  assert.equal(posts[0]?.url, 'http://cp.test/v1/permits');
  assert.equal(posts[0]?.headers.authorization, 'Bearer tok-1');
  assert.deepEqual(cp.outcomes(), [
    { permitId: 'p1', outcome: { status: 'landed', afterAbort: false, result: { ok: true } } },
  ]);
  const granted = sink.ofType('permit.granted');
  assert.deepEqual(
    granted.map((e) => [e.permitId, e.status, e.replay, e.capability]),
    [['p1', 'granted', false, 'crm.update']],
  );
  // Journal order for an observer: the grant comes before the start.
  const types = sink.events.map((e) => e.type);
  assert.ok(types.indexOf('permit.granted') < types.lastIndexOf('effect.started'));
  await client.close();
});

test('argsDigest ignores key order and follows values; a write without args or key sends nulls', async () => {
  const { client, stream, cp } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await run.effect({ capability: 'x', args: { a: 1, b: { y: 2, x: 1 } } }, () => 0);
  await run.effect({ capability: 'x', args: { b: { x: 1, y: 2 }, a: 1 } }, () => 0);
  await run.effect({ capability: 'x', args: { a: 2, b: { x: 1, y: 2 } } }, () => 0);
  await run.effect('x', () => 0);
  const [first, second, third, bare] = cp.requests();
  assert.equal(first?.argsDigest, second?.argsDigest);
  assert.notEqual(first?.argsDigest, third?.argsDigest);
  assert.match(first?.argsDigest ?? '', /^[0-9a-f]{64}$/);
  assert.deepEqual(
    [bare?.argsDigest, bare?.idempotencyKey, bare?.compensate, bare?.class],
    [null, null, null, 'write'],
  );
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  await assert.rejects(
    run.effect({ capability: 'x', args: cyclic }, () => 0),
    (err) => codeOf(err) === 'invalid_request',
  );
  await assert.rejects(
    run.effect({ capability: 'x', idempotencyKey: '' }, () => 0),
    (err) => codeOf(err) === 'invalid_request',
  );
  await assert.rejects(
    run.effect({ capability: 'x', class: 'bogus' as 'read' }, () => 0),
    (err) => codeOf(err) === 'invalid_request',
  );
  await client.close();
});

test('a halted refusal from the control plane rejects with halted and never runs fn', async () => {
  const { client, stream, cp, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // The control plane committed the halt; this worker has not observed it yet.
  cp.halt('r1', 'h-remote');
  let called = false;
  await assert.rejects(
    run.effect('crm.update', () => {
      called = true;
    }),
    (err) => {
      assert.equal(codeOf(err), 'halted');
      assert.deepEqual((err as KillpathError).details, { reason: 'halted', directiveId: 'h-remote', rev: 2 });
      return true;
    },
  );
  assert.equal(called, false);
  assert.equal(sink.ofType('effect.started').length, 0);
  assert.deepEqual(
    sink.ofType('permit.refused').map((e) => [e.stage, e.code, e.directiveId]),
    [['permit', 'halted', 'h-remote']],
  );
  assert.equal(
    run.check('crm.update').kind,
    'allow',
    'the local gate is unchanged until the flip is observed',
  );
  await client.close();
});

test('the halted refusal of the default transport (details wrapped with the status) keeps the directive', async () => {
  const { client, stream, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  transport.onPost = () => {
    throw new KillpathError('halted', 'halted', {
      details: { status: 409, details: { directiveId: 'd9', rev: 12 } },
    });
  };
  await assert.rejects(
    run.effect('crm.update', () => 1),
    (err) => {
      assert.deepEqual((err as KillpathError).details, { reason: 'halted', directiveId: 'd9', rev: 12 });
      return true;
    },
  );
  await client.close();
});

test('with the control plane unreachable a write is refused at once with unavailable, once; reads follow the lease', async () => {
  const { client, stream, cp, transport, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  cp.unreachable = true;
  let called = false;
  await assert.rejects(
    run.effect({ capability: 'crm.update', class: 'irreversible' }, () => {
      called = true;
    }),
    (err) => codeOf(err) === 'unavailable' && (err as Error).cause instanceof TypeError,
  );
  assert.equal(called, false);
  assert.equal(transport.postsTo('/v1/permits').length, 1, 'not retried silently');
  assert.equal(sink.ofType('permit.refused')[0]?.code, 'unavailable');
  // A 5xx is unavailable too, and so is a transport that throws synchronously.
  transport.onPost = () => {
    throw new KillpathError('internal', 'boom');
  };
  await assert.rejects(
    run.effect('crm.update', () => 1),
    (err) => codeOf(err) === 'unavailable',
  );
  const post = transport.post;
  transport.post = () => {
    throw new Error('socket closed');
  };
  await assert.rejects(
    run.effect('crm.update', () => 1),
    (err) => codeOf(err) === 'unavailable',
  );
  transport.post = post;
  assert.equal(
    await run.effect({ capability: 'search', class: 'read' }, () => 'still reading'),
    'still reading',
  );
  assert.equal(run.check('search').kind, 'allow');
  await client.close();
});

test('a replayed idempotency key whose effect landed returns its result without running fn, across a worker restart', async () => {
  const { client, stream, cp, transport, clock } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let calls = 0;
  const first = await run.effect({ capability: 'crm.update', idempotencyKey: 'k1' }, () => {
    calls += 1;
    return { record: 7 };
  });
  assert.deepEqual(first, { record: 7 });
  await client.close();

  // A new worker process, the same run id and key.
  const sink = new MemorySink();
  const again = connect({
    url: 'http://cp.test',
    token: 'tok-1',
    tenant: 't1',
    agent: 'a1',
    workerId: 'w2',
    clock,
    transport,
    sink,
  });
  const stream2 = await transport.nextStream();
  await stream2.push(snapshot(1));
  const replayed = await again
    .startRun({ runId: 'r1' })
    .effect({ capability: 'crm.update', idempotencyKey: 'k1' }, () => {
      calls += 1;
      return { record: 8 };
    });
  assert.deepEqual(replayed, { record: 7 });
  assert.equal(calls, 1, 'never run twice');
  assert.deepEqual(
    sink.ofType('permit.granted').map((e) => [e.status, e.replay]),
    [['landed', true]],
  );
  assert.equal(sink.ofType('effect.started').length, 0);
  assert.equal(cp.outcomes().length, 1, 'a replay reports no second outcome');
  await again.close();
});

test('a replayed key whose effect has no outcome is refused conflict (at most once); one that failed does not run again', async () => {
  const { client, stream, cp } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const hanging = deferred<void>();
  const inFlight = run.effect({ capability: 'crm.update', idempotencyKey: 'k1' }, () => hanging.promise);
  await drain();
  let called = false;
  await assert.rejects(
    run.effect({ capability: 'crm.update', idempotencyKey: 'k1' }, () => {
      called = true;
    }),
    (err) => codeOf(err) === 'conflict',
  );
  assert.equal(called, false);
  hanging.resolve();
  await inFlight;

  await assert.rejects(
    run.effect({ capability: 'crm.update', idempotencyKey: 'k2' }, () =>
      Promise.reject(new Error('tool down')),
    ),
    /tool down/,
  );
  assert.deepEqual(cp.outcomes().at(-1)?.outcome, {
    status: 'failed',
    error: 'tool down',
    afterAbort: false,
  });
  await assert.rejects(
    run.effect({ capability: 'crm.update', idempotencyKey: 'k2' }, () => {
      called = true;
    }),
    (err) => codeOf(err) === 'conflict',
  );
  assert.equal(called, false);
  await client.close();
});

test('a halt observed while the permit request is in flight aborts the effect; fn never runs even when the permit comes back granted', async () => {
  const { client, stream, cp, sink, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const release = cp.holdPermits();
  let called = false;
  let seen: AbortSignal | null = null;
  const writing = run.effect('crm.update', (signal) => {
    called = true;
    seen = signal;
  });
  let outcome: unknown = null;
  writing.catch((err: unknown) => {
    outcome = err;
  });
  await drain();
  assert.equal(transport.postsTo('/v1/permits').length, 1);

  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await drain();
  assert.equal(codeOf(outcome), 'halted', 'released at once, not when the permit answers');
  assert.deepEqual(
    transport.postsTo('/halted').map((p) => p.body),
    [{ rev: 2, directiveId: 'h1', runs: ['r1'], aborted: 1, completed: 0, observeToSettleMs: 0 }],
    'nothing of the effect can run any more: the halt is settled without waiting for the permit',
  );
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => e.directiveId),
    ['h1'],
  );

  release();
  await drain();
  assert.equal(called, false);
  assert.equal(seen, null);
  assert.equal(sink.ofType('effect.started').length, 0);
  assert.deepEqual(
    cp.outcomes(),
    [{ permitId: 'p1', outcome: { status: 'aborted', afterAbort: false } }],
    'the granted permit is closed',
  );
  assert.deepEqual(
    cp.journal.filter((e) => e.type === 'in_flight_tool_calls.status'),
    [
      {
        type: 'in_flight_tool_calls.status',
        runId: 'r1',
        effectId: 'w1:1',
        permitId: null,
        capability: 'crm.update',
        class: 'write',
        status: 'aborted',
        directiveId: 'h1',
      },
    ],
  );
  await client.close();
});

test('outcomes: failed with the message; aborted or landed after an abort carry afterAbort; results over 64 KiB or not JSON are left out', async () => {
  const { client, stream, cp } = await harness();
  const run = client.startRun({ runId: 'r1' });
  const other = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  await run.effect('big', () => 'x'.repeat(64 * 1024 + 1));
  await run.effect('bigint', () => 10n);
  await run.effect('fits', () => 'x'.repeat(1000));

  const rejects = deferred<void>();
  const lands = deferred<string>();
  const a = run.effect('a', (signal) => {
    signal.addEventListener('abort', () => rejects.reject(signal.reason));
    return rejects.promise;
  });
  const b = other.effect('b', () => lands.promise);
  a.catch(() => {});
  b.catch(() => {});
  await drain();
  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1')));
  lands.resolve('landed anyway');
  await drain();
  const byPermit = new Map(
    cp.outcomes().map((o) => [cp.permits.get(o.permitId)?.request.capability, o.outcome]),
  );
  assert.deepEqual(byPermit.get('big'), { status: 'landed', afterAbort: false });
  assert.deepEqual(byPermit.get('bigint'), { status: 'landed', afterAbort: false });
  assert.equal((byPermit.get('fits')?.result as string).length, 1000);
  assert.equal(byPermit.get('a')?.status, 'aborted');
  assert.equal(byPermit.get('a')?.afterAbort, true);
  assert.match(byPermit.get('a')?.error ?? '', /aborted: halted by directive h1/);
  assert.deepEqual(byPermit.get('b'), { status: 'landed', afterAbort: true, result: 'landed anyway' });
  const statuses = cp.journal
    .filter((e) => e.type === 'in_flight_tool_calls.status')
    .map((e) => [e.capability, e.status]);
  assert.deepEqual(statuses.sort(), [
    ['a', 'aborted'],
    ['b', 'completed'],
  ]);
  await client.close();
});

test('in-flight statuses of one halt are journaled in one batch: aborted writes and completed reads', async () => {
  const { client, stream, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const read = deferred<string>();
  const write = deferred<void>();
  const reading = run.effect({ capability: 'search', class: 'read' }, () => read.promise);
  run.effect('crm.update', () => write.promise).catch(() => {});
  await drain();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  read.resolve('done');
  write.reject(new Error('cancelled'));
  await reading;
  await drain();
  const batches = transport.postsTo('/v1/journal').map((p) => p.body as JournalBatch);
  assert.equal(batches.length, 1, 'coalesced per event-loop turn');
  assert.equal(batches[0]?.workerId, 'w1');
  assert.deepEqual(
    batches[0]?.events.map((e) =>
      e.type === 'in_flight_tool_calls.status' ? [e.capability, e.class, e.status, e.directiveId] : e.type,
    ),
    [
      ['search', 'read', 'completed', 'h1'],
      ['crm.update', 'write', 'aborted', 'h1'],
    ],
  );
  await client.close();
});

test('an irreversible effect waits out the cool-off on the clock, re-checks the gate, confirms, then runs', async () => {
  const { client, stream, cp, transport, clock, sink } = await harness({ leaseMs: 60_000 });
  cp.coolOffMs = 5_000;
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let ranAt: number | null = null;
  const paying = run.effect({ capability: 'payments', class: 'irreversible' }, () => {
    ranAt = clock.now();
    return 'paid';
  });
  await drain();
  assert.equal(sink.ofType('permit.granted')[0]?.status, 'cooling_off');
  clock.advance(4_999);
  await drain();
  assert.equal(transport.postsTo('/confirm').length, 0, 'no confirmation before the cool-off');
  assert.equal(ranAt, null);
  clock.advance(1);
  assert.equal(await paying, 'paid');
  assert.equal(ranAt, 6_000);
  assert.deepEqual(
    transport.postsTo('/confirm').map((p) => p.url),
    ['http://cp.test/v1/permits/p1/confirm'],
  );
  assert.equal(sink.ofType('permit.confirmed').length, 1);
  assert.equal(cp.outcomes()[0]?.outcome.status, 'landed');
  await client.close();
});

test('a halt during the cool-off cancels it: halted, never confirmed, never run, journaled', async () => {
  const { client, stream, cp, transport, clock, sink } = await harness({ leaseMs: 60_000 });
  cp.coolOffMs = 5_000;
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let called = false;
  const paying = run.effect({ capability: 'payments', class: 'irreversible' }, () => {
    called = true;
  });
  let outcome: unknown = null;
  paying.catch((err: unknown) => {
    outcome = err;
  });
  await drain();
  const timersBefore = clock.pendingTimers();
  clock.advance(1_000);
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(clock.pendingTimers(), timersBefore - 1, 'the cool-off timer was cancelled on observe');
  await drain();
  assert.equal(codeOf(outcome), 'halted');
  clock.advance(10_000);
  await drain();
  assert.equal(transport.postsTo('/confirm').length, 0);
  assert.equal(called, false);
  assert.deepEqual(
    cp.outcomes().map((o) => o.outcome),
    [{ status: 'aborted', afterAbort: false }],
  );
  assert.deepEqual(
    cp.journal.map((e) =>
      e.type === 'in_flight_tool_calls.status' ? [e.type, e.status, e.directiveId] : e.type,
    ),
    [['in_flight_tool_calls.status', 'aborted', 'h1']],
  );
  assert.equal(sink.ofType('halt.settled')[0]?.aborted, 1);
  await client.close();
});

test('a confirmation refused halted (the flip was not observed here yet) rejects and never runs fn', async () => {
  const { client, stream, cp, clock, sink } = await harness({ leaseMs: 60_000 });
  cp.coolOffMs = 100;
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let called = false;
  const paying = run.effect({ capability: 'payments', class: 'irreversible' }, () => {
    called = true;
  });
  await drain();
  cp.halt('r1', 'h-remote');
  clock.advance(100);
  await assert.rejects(
    paying,
    (err) => codeOf(err) === 'halted' && (err as KillpathError).details !== undefined,
  );
  assert.equal(called, false);
  assert.deepEqual(
    sink.ofType('permit.refused').map((e) => [e.stage, e.code, e.directiveId]),
    [['confirm', 'halted', 'h-remote']],
  );
  assert.equal(cp.permits.get('p1')?.permit.status, 'cancelled');
  await client.close();
});

test('a confirmation refused as too early (control plane clock ahead) is tried again after a short wait', async () => {
  const { client, stream, cp, clock, transport } = await harness({ leaseMs: 60_000 });
  cp.coolOffMs = 1_000;
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const paying = run.effect({ capability: 'payments', class: 'irreversible' }, () => 'paid');
  await drain();
  // The control plane's grant time is later than the worker thinks: push its cool-off out.
  const permit = cp.permits.get('p1');
  assert.ok(permit !== undefined);
  permit.permit = { ...permit.permit, coolOffMs: 1_200 };
  clock.advance(1_000);
  await drain();
  assert.equal(transport.postsTo('/confirm').length, 1);
  clock.advance(250);
  assert.equal(await paying, 'paid');
  assert.equal(transport.postsTo('/confirm').length, 2);
  await client.close();
});

test('a permit answer that is not a permit fails the effect without running fn', async () => {
  const { client, stream, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  transport.onPost = () => ({ unexpected: true });
  let called = false;
  await assert.rejects(
    run.effect('crm.update', () => {
      called = true;
    }),
    (err) => codeOf(err) === 'internal',
  );
  assert.equal(called, false);
  await client.close();
});

test('FakeTransport answers POSTs with what onPost returns', async () => {
  const transport = new FakeTransport();
  transport.onPost = (post) => (post.url.endsWith('/a') ? { answer: 42 } : Promise.resolve('later'));
  assert.deepEqual(await transport.post('http://x/a', {}, {}), { answer: 42 });
  assert.equal(await transport.post('http://x/b', {}, {}), 'later');
  transport.onPost = () => {
    throw new KillpathError('conflict', 'no');
  };
  await assert.rejects(transport.post('http://x/c', {}, {}), (err) => codeOf(err) === 'conflict');
});

test('the gate is checked again right before fn: a resync during the permit round trip keeps fn from running', async () => {
  const { client, stream, cp, sink } = await harness({ leaseMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const release = cp.holdPermits();
  let called = false;
  const writing = run.effect('crm.update', () => {
    called = true;
  });
  writing.catch(() => {});
  await drain();
  // A rev gap: the gate closes (stale) at once, but nothing is aborted (the lease has not expired).
  await stream.push({ type: 'delta', rev: 7 });
  release();
  await assert.rejects(
    writing,
    (err) => codeOf(err) === 'halted' && (err as KillpathError).details !== undefined,
  );
  assert.equal(called, false);
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => e.reason),
    ['stale'],
  );
  await drain();
  assert.deepEqual(
    cp.outcomes().map((o) => o.outcome.status),
    ['aborted'],
  );
  await client.close();
});

test('after close, an effect still waiting for its permit never runs', async () => {
  const { client, stream, cp } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const release = cp.holdPermits();
  let called = false;
  const writing = run.effect('crm.update', () => {
    called = true;
  });
  writing.catch(() => {});
  await drain();
  const closed = client.close();
  release();
  await closed;
  await assert.rejects(writing, (err) => codeOf(err) === 'halted');
  assert.equal(called, false);
});

test('close waits for permits on the wire: one granted while closing is reported aborted, so the control plane never keeps it open', async () => {
  const { client, stream, cp } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const release = cp.holdPermits();
  const writing = run.effect('crm.update', () => {});
  writing.catch(() => {});
  await drain();
  let done = false;
  const closed = client.close().then(() => (done = true));
  await drain();
  assert.equal(done, false, 'close waits for the permit on the wire');
  release();
  await closed;
  assert.deepEqual(
    cp.outcomes(),
    [{ permitId: 'p1', outcome: { status: 'aborted', afterAbort: false } }],
    'the permit granted after close began is closed at the control plane',
  );
});

test('permits asked while one is on the wire go out as one batch, each answered as alone; a halted one rejects halted', async () => {
  const { client, stream, cp, transport } = await harness();
  await stream.push(snapshot(1));
  cp.halt('r3', 'h9');
  const release = cp.holdPermits();
  const runs = ['r0', 'r1', 'r2', 'r3'].map((runId) => client.startRun({ runId }));
  const ran: string[] = [];
  const results = runs.map((run, i) =>
    run.effect({ capability: 'crm.update', class: 'write' }, () => {
      ran.push(`r${i}`);
      return i;
    }),
  );
  const settled = Promise.allSettled(results);
  await drain();
  assert.deepEqual(
    transport.posts.map((p) => new URL(p.url).pathname).filter((p) => p.startsWith('/v1/permits')),
    ['/v1/permits', '/v1/permits/batch'],
    'the first goes at once, the three asked meanwhile in one batch',
  );
  release();
  const [a, b, c, d] = await settled;
  assert.deepEqual(
    [a, b, c].map((r) => (r?.status === 'fulfilled' ? r.value : r?.reason)),
    [0, 1, 2],
  );
  assert.equal(d?.status, 'rejected');
  const refused = (d as PromiseRejectedResult).reason as KillpathError;
  assert.equal(refused.code, 'halted');
  assert.equal((refused.details as { directiveId?: string }).directiveId, 'h9');
  assert.deepEqual(ran.sort(), ['r0', 'r1', 'r2'], 'fn never ran for the halted run');
  assert.deepEqual(
    cp.requests().map((r) => r.runId),
    ['r0', 'r1', 'r2', 'r3'],
  );
  await client.close();
});

test('outcomes reported while one is on the wire go as one batch; close sends those still waiting; an old control plane gets them one by one', async () => {
  const { client, stream, cp, transport } = await harness();
  await stream.push(snapshot(1));
  const runs = ['r0', 'r1', 'r2'].map((runId) => client.startRun({ runId }));
  // Hold the first outcome's request on the wire.
  let releaseOutcome!: () => void;
  const onPost = transport.onPost;
  transport.onPost = (post) => {
    const answer = onPost(post);
    if (post.url.endsWith('/outcome') && releaseOutcome === undefined)
      return new Promise((ok) => (releaseOutcome = () => ok(answer)));
    return answer;
  };
  await runs[0]!.effect('crm.update', () => 'a');
  await runs[1]!.effect('crm.update', () => 'b');
  await runs[2]!.effect('crm.update', () => 'c');
  await drain();
  const paths = () => transport.posts.map((p) => new URL(p.url).pathname).filter((p) => /outcome/.test(p));
  assert.equal(paths().length, 1, 'the second and third wait for the first');
  releaseOutcome();
  await drain();
  assert.deepEqual(paths().slice(1), ['/v1/permits/outcomes']);
  assert.deepEqual(
    cp.outcomes().map((o) => [o.permitId, o.outcome.status, o.outcome.result]),
    [
      ['p1', 'landed', 'a'],
      ['p2', 'landed', 'b'],
      ['p3', 'landed', 'c'],
    ],
  );

  // An old control plane (no batch routes): the batch is refused 404, then each goes alone.
  const held: (() => void)[] = [];
  const releaseAll = async () => {
    while (held.length > 0) {
      for (const r of held.splice(0)) r();
      await drain();
    }
  };
  transport.onPost = (post) => {
    if (post.url.endsWith('/v1/permits/outcomes'))
      throw new KillpathError('not_found', 'no route for POST /v1/permits/outcomes');
    const answer = onPost(post);
    if (post.url.endsWith('/outcome')) return new Promise((ok) => held.push(() => ok(answer)));
    return answer;
  };
  await runs[0]!.effect('crm.update', () => 'd');
  await runs[1]!.effect('crm.update', () => 'e');
  await runs[2]!.effect('crm.update', () => 'f');
  await releaseAll();
  const stored = () => [...cp.permits.values()].map((p) => p.outcome?.result);
  assert.deepEqual(stored(), ['a', 'b', 'c', 'd', 'e', 'f'], 'every outcome reached the control plane');
  assert.equal(paths().filter((p) => p === '/v1/permits/outcomes').length, 2, 'one batch tried, then none');
  // Outcomes still waiting when the client closes are sent, not dropped.
  await runs[0]!.effect('crm.update', () => 'g');
  await runs[1]!.effect('crm.update', () => 'h');
  let closed = false;
  const closing = client.close().then(() => (closed = true));
  await drain();
  assert.equal(closed, false, 'close waits for the outcomes on the wire');
  await releaseAll();
  await closing;
  assert.deepEqual(stored().slice(6), ['g', 'h']);
});

/** What the control plane does with a body over its 64 KiB limit: refuses the whole request 413. */
function refuseOver64KiB(transport: FakeTransportLike): number[] {
  const batchBytes: number[] = [];
  const onPost = transport.onPost;
  transport.onPost = (post) => {
    const bytes = Buffer.byteLength(JSON.stringify(post.body));
    if (/\/v1\/permits\/(batch|outcomes)$/.test(post.url)) batchBytes.push(bytes);
    if (bytes > 64 * 1024) throw new KillpathError('payload_too_large', `body of ${bytes} bytes`);
    return onPost(post);
  };
  return batchBytes;
}
type FakeTransportLike = Pick<FakeTransport, 'onPost'>;

test('permits asked while one is on the wire are batched by UTF-8 size too: 128 bulky requests all granted, one too big for a batch goes alone', async () => {
  const { client, stream, cp, transport } = await harness();
  await stream.push(snapshot(1));
  const batchBytes = refuseOver64KiB(transport);
  const release = cp.holdPermits();
  const parent = client.startRun({ runId: 'parent' });
  // An ordinary request: lineage of 2, a 360-byte compensate (128 of them make ~70 KB).
  const compensate = { undo: 'crm.restore', note: 'é'.repeat(170) };
  const first = parent.effect({ capability: 'crm.update', compensate }, () => 'first');
  const runs = Array.from({ length: 128 }, (_, i) =>
    client.startRun({ runId: `r${i}`, parent: { runId: 'parent', lineage: [] } }),
  );
  const results = runs.map((run, i) => run.effect({ capability: 'crm.update', compensate }, () => i));
  // One request bigger than a batch's share on its own (under the 64 KiB body limit).
  const bulky = { undo: 'crm.restore', snapshot: 'ü'.repeat(25_000) };
  const big = runs[0]!.effect({ capability: 'crm.update', compensate: bulky }, () => 'big');
  const settled = Promise.allSettled([first, ...results, big]);
  await drain();
  release();
  const answers = await settled;
  assert.deepEqual(
    answers.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as KillpathError).code)),
    ['first', ...runs.map((_, i) => i), 'big'],
    'every effect was permitted and ran',
  );
  assert.ok(batchBytes.length >= 2, `the 128 went in several batches (${batchBytes.join(', ')} bytes)`);
  for (const b of batchBytes) assert.ok(b <= 64 * 1024, `batch of ${b} bytes is within the body limit`);
  const singles = transport.posts.filter((p) => p.url.endsWith('/v1/permits'));
  assert.deepEqual(
    singles.map((p) => (p.body as PermitRequest).runId),
    ['parent', 'r0'],
    'the first went at once, the bulky one alone',
  );
  assert.equal((singles[1]!.body as PermitRequest).compensate?.['snapshot'], bulky.snapshot);
  assert.equal(cp.requests().length, 130, 'each request was sent once');
  await client.close();
});

test('outcomes are batched by UTF-8 size, not characters: non-ASCII results are never dropped', async () => {
  const { client, stream, cp, transport } = await harness();
  await stream.push(snapshot(1));
  const batchBytes = refuseOver64KiB(transport);
  const runs = Array.from({ length: 40 }, (_, i) => client.startRun({ runId: `r${i}` }));
  // Hold the first outcome's request on the wire so the rest queue up.
  let releaseOutcome!: () => void;
  const onPost = transport.onPost;
  transport.onPost = (post) => {
    const answer = onPost(post);
    if (post.url.endsWith('/outcome') && releaseOutcome === undefined)
      return new Promise((ok) => (releaseOutcome = () => ok(answer)));
    return answer;
  };
  // 4,000 characters of 3-byte UTF-8 each: 12 KB a result, 40 of them ~480 KB, ~160 KB counted in characters.
  const text = (i: number) => `${i}:${'界'.repeat(4_000)}`;
  for (const [i, run] of runs.entries()) await run.effect('crm.update', () => text(i));
  // And one result too big to share a batch (under the 64 KiB result cap).
  await runs[0]!.effect('crm.update', () => `big:${'界'.repeat(17_000)}`);
  await drain();
  releaseOutcome();
  await drain();
  await drain();
  for (const b of batchBytes) assert.ok(b <= 64 * 1024, `batch of ${b} bytes is within the body limit`);
  assert.ok(batchBytes.length >= 2, `the outcomes went in several batches (${batchBytes.join(', ')} bytes)`);
  const stored = [...cp.permits.values()].map((p) => p.outcome?.result);
  assert.deepEqual(stored, [...runs.map((_, i) => text(i)), `big:${'界'.repeat(17_000)}`], 'none dropped');
  assert.equal(cp.outcomes().length, 41, 'each outcome was sent once');
  await client.close();
});
