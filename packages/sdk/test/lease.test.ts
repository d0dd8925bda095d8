import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import { directive, harness, issue, keepalive, reasonOf, snapshot } from './fixtures.ts';

test('every check denies stale before the first snapshot, allows after', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  assert.equal(client.leaseRemainingMs(), 0);
  await stream.push(snapshot(4));
  await client.ready;
  assert.deepEqual(run.check('llm'), { kind: 'allow' });
  assert.equal(client.rev, 4);
  assert.equal(client.connected, true);
  await client.close();
});

test('the lease expires leaseMs after the last message and keepalives renew it; after expiry a fresh snapshot comes first', async () => {
  const { client, stream, clock, sink, transport } = await harness({ leaseMs: 3_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  clock.advance(2_000);
  await stream.push(keepalive(1));
  clock.advance(2_000); // 4 s after the snapshot, 2 s after the keepalive
  assert.equal(run.check('llm').kind, 'allow');
  assert.equal(client.leaseRemainingMs(), 1_000);
  assert.equal(sink.ofType('lease.expired').length, 0);
  clock.advance(999);
  assert.equal(run.check('llm').kind, 'allow');
  clock.advance(1);
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  const expired = sink.ofType('lease.expired');
  assert.equal(expired.length, 1);
  assert.equal(expired[0]?.sinceContactMs, 3_000);
  // Contact again on the same stream: what was queued there during the silence (a frozen
  // process, a stalled network) renews nothing; the worker takes a fresh snapshot first.
  await stream.push(keepalive(1));
  assert.equal(stream.closed, true, 'the old stream is dropped');
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  assert.match(sink.ofType('stream.resync')[0]?.reason ?? '', /lease expired/);
  clock.advance(120);
  const second = await transport.nextStream();
  await second.push(snapshot(1));
  assert.equal(run.check('llm').kind, 'allow', 'the fresh snapshot opens the gate');
  await client.close();
});

test('a message handled after the lease ran out, before its timer fired (a thawed process), renews nothing: resync', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 3_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // The clock jumps (the process was frozen) and the queued keepalive is handled first.
  clock.jump(10_000);
  await stream.push(keepalive(1));
  assert.equal(stream.closed, true, 'dropped for a fresh stream');
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  assert.match(sink.ofType('stream.resync')[0]?.reason ?? '', /lease expired/);
  await client.close();
});

test('a message whose handling a freeze interrupts renews the lease as of its arrival, not as of the thaw: the next message resyncs', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 3_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // The process is frozen in the middle of handling a delta (after it read the clock, before it
  // renewed the lease): when it thaws, 10 s have passed. Seen in the launcher's freeze e2e.
  const read = clock.now.bind(clock);
  let freezeAfterFirstRead = true;
  clock.now = () => {
    const t = read();
    if (freezeAfterFirstRead) {
      freezeAfterFirstRead = false;
      clock.jump(10_000);
    }
    return t;
  };
  await stream.push({ type: 'delta', rev: 2 });
  clock.now = read;
  // The delta came before the lease ran out; what is queued after it did not.
  await stream.push(keepalive(2));
  assert.equal(stream.closed, true, 'dropped for a fresh stream');
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  assert.match(sink.ofType('stream.resync')[0]?.reason ?? '', /lease expired/);
  await client.close();
});

test('deltas renew the lease too', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 3_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  clock.advance(2_500);
  await stream.push({ type: 'delta', rev: 2 });
  clock.advance(2_500);
  assert.equal(run.check('llm').kind, 'allow');
  assert.equal(client.rev, 2);
  await client.close();
});

test('a rev gap denies stale at once, drops the stream and resyncs from a new snapshot', async () => {
  const { client, stream, clock, sink, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(5));
  await stream.push({ type: 'delta', rev: 7 });
  assert.equal(stream.closed, true);
  assert.equal(client.connected, false);
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  assert.match(sink.ofType('stream.resync')[0]?.reason ?? '', /expected 6, got 7/);
  assert.equal(client.rev, 5, 'the gapped delta is not applied');
  clock.advance(120); // first backoff: 100 ms ± 20 %
  const second = await transport.nextStream();
  await second.push(snapshot(7, [directive('d1', 'halt', 'run:r1', { rev: 6 })]));
  assert.equal(client.rev, 7);
  assert.equal(reasonOf(run.check('llm')), 'halted');
  await client.close();
});

test('a keepalive whose rev differs from the mirror forces a resync', async () => {
  const { client, stream, clock, transport } = await harness();
  await stream.push(snapshot(3));
  await stream.push(keepalive(4));
  assert.equal(stream.closed, true);
  clock.advance(120);
  const second = await transport.nextStream();
  assert.equal(second.closed, false);
  await client.close();
});

test('a delta before the snapshot forces a resync', async () => {
  const { client, stream } = await harness();
  await stream.push({ type: 'delta', rev: 1 });
  assert.equal(stream.closed, true);
  assert.equal(client.rev, 0);
  await client.close();
});

test('the stream request carries the worker, tenant, agent, features and bearer token', async () => {
  const { client, stream } = await harness({ features: ['new-planner', 'beta'] });
  const url = new URL(stream.url);
  assert.equal(`${url.origin}${url.pathname}`, 'http://cp.test/v1/stream');
  assert.equal(url.searchParams.get('worker'), 'w1');
  assert.equal(url.searchParams.get('tenant'), 't1');
  assert.equal(url.searchParams.get('agent'), 'a1');
  assert.equal(url.searchParams.get('features'), 'new-planner,beta');
  assert.equal(stream.headers.authorization, 'Bearer tok-1');
  await client.close();
});

test('revs applied in one turn are acked once, with the latest', async () => {
  const { client, stream, transport } = await harness();
  await stream.push(snapshot(1));
  await stream.push({ type: 'delta', rev: 2 });
  await stream.push({ type: 'delta', rev: 3 });
  await drain();
  const acks = transport.postsTo('/ack');
  assert.deepEqual(
    acks.map((p) => [p.url, p.body]),
    [['http://cp.test/v1/workers/w1/ack', { rev: 3 }]],
  );
  await stream.push(issue(4, directive('d1', 'throttle', 'agent:t1/a1')));
  await drain();
  assert.deepEqual(
    transport.postsTo('/ack').map((p) => p.body),
    [{ rev: 3 }, { rev: 4 }],
  );
  await client.close();
});

test('a stream error reconnects after the backoff', async () => {
  const { client, stream, clock, sink, transport } = await harness();
  await stream.push(snapshot(1));
  await stream.fail(new KillpathError('unavailable', 'connection reset'));
  const error = sink.ofType('stream.error')[0];
  assert.equal(error?.fatal, false);
  assert.equal(error?.code, 'unavailable');
  const retryInMs = error?.retryInMs ?? 0;
  assert.ok(retryInMs >= 80 && retryInMs <= 120, `first retry in ${retryInMs} ms`);
  clock.advance(retryInMs - 1);
  assert.equal(transport.streams.length, 1);
  clock.advance(1);
  const second = await transport.nextStream();
  await second.push(snapshot(2));
  assert.equal(client.connected, true);
  await client.close();
});

test('a 401 on the stream is fatal: ready rejects, no retry, the gate stays closed', async () => {
  const { client, stream, clock, sink, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.fail(new KillpathError('unauthenticated', 'bad token'));
  await assert.rejects(client.ready, (err) => (err as KillpathError).code === 'unauthenticated');
  const error = sink.ofType('stream.error')[0];
  assert.equal(error?.fatal, true);
  clock.advance(60_000);
  await drain();
  assert.equal(transport.streams.length, 1);
  assert.equal(run.check('llm').kind, 'deny');
  await client.close();
});

test('a 403 after a healthy snapshot closes the gate at once', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await stream.fail(new KillpathError('forbidden', 'token revoked'));
  assert.deepEqual(run.check('llm'), { kind: 'deny', reason: 'stale', directive: null });
  assert.equal(sink.ofType('stream.error')[0]?.fatal, true);
  await client.close();
});

test('close() stops the stream and every timer and closes the gate', async () => {
  const { client, stream, clock } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  assert.ok(clock.pendingTimers() > 0);
  await client.close();
  assert.equal(stream.closed, true);
  assert.equal(clock.pendingTimers(), 0);
  assert.equal(client.connected, false);
  assert.equal(run.check('llm').kind, 'deny');
});

test('close() before the first snapshot rejects ready with unavailable', async () => {
  const { client } = await harness();
  const closed = client.close();
  await assert.rejects(client.ready, (err) => (err as KillpathError).code === 'unavailable');
  await closed;
});

test('a stream silent for two leases (no keep-alive even) is dropped and a new one opened; its snapshot reopens the gate', async () => {
  const { client, stream, clock, sink, transport } = await harness({ leaseMs: 3_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // The control plane went away and the connection hangs: nothing arrives, nothing fails.
  clock.advance(5_999);
  assert.equal(stream.closed, false, 'one lease of silence: the stream is kept (a pause may end)');
  assert.equal(reasonOf(run.check('llm')), 'stale', 'the lease expired: the gate is closed meanwhile');
  clock.advance(1);
  await drain();
  assert.equal(stream.closed, true, 'two leases of silence: the stream is dropped');
  const error = sink.ofType('stream.error').at(-1);
  assert.match(error?.message ?? '', /stream silent for 6000 ms/);
  assert.equal(error?.fatal, false);
  clock.advance(error?.retryInMs ?? 0);
  const next = await transport.nextStream();
  await next.push(snapshot(1));
  assert.equal(run.check('llm').kind, 'allow', 'reconnected: the gate opens');
  await client.close();
});
