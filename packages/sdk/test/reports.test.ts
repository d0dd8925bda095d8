import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import type { HeartbeatReport } from '@killpath/protocol';
import { connect } from '../src/index.ts';
import type { ConnectOptions } from '../src/index.ts';
import { FakeTransport, ManualClock, drain } from '../src/testing.ts';
import { deferred, directive, harness, issue, snapshot } from './fixtures.ts';

test('startRun registers the run fire-and-forget', async () => {
  const { client, transport } = await harness({ features: ['beta'] });
  const root = client.startRun({ runId: 'root' });
  root.startChild({ runId: 'kid' });
  await drain();
  assert.deepEqual(
    transport.postsTo('/v1/runs').map((p) => [p.url, p.headers.authorization, p.body]),
    [
      [
        'http://cp.test/v1/runs',
        'Bearer tok-1',
        { runId: 'root', parentRunId: null, lineage: [], features: ['beta'], workerId: 'w1' },
      ],
      [
        'http://cp.test/v1/runs',
        'Bearer tok-1',
        { runId: 'kid', parentRunId: 'root', lineage: ['root'], features: ['beta'], workerId: 'w1' },
      ],
    ],
  );
  await client.close();
});

test('failed reports go to the sink, never throw and never reject unhandled', async () => {
  const { client, transport, sink, stream } = await harness();
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => {
    unhandled.push(err);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    transport.onPost = () => Promise.reject(new Error('socket hang up'));
    client.startRun({ runId: 'r1' });
    await drain();
    // A transport that throws synchronously instead of rejecting must be contained too.
    transport.post = () => {
      throw new KillpathError('unavailable', 'control plane down');
    };
    await stream.push(snapshot(1));
    await drain();
    const failed = sink.ofType('report.failed');
    assert.deepEqual(
      failed.map((e) => [e.report, e.code]),
      [
        ['run', null],
        // The first snapshot sends a heartbeat at once, then the rev is acked.
        ['heartbeat', 'unavailable'],
        ['ack', 'unavailable'],
      ],
    );
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  await client.close();
});

test('heartbeats report rev, features, runs with their state and counts, and time since contact', async () => {
  const { client, transport, stream, clock } = await harness({
    heartbeatMs: 5_000,
    leaseMs: 60_000,
    features: ['beta'],
  });
  const run = client.startRun({ runId: 'r1' });
  const child = run.startChild({ runId: 'r2' });
  await stream.push(
    snapshot(1, [directive('h1', 'halt', 'run:r2'), directive('t1', 'throttle', 'agent:t1/a1')]),
  );
  await run.effect('llm', () => 1);
  const pending = deferred<void>();
  const running = run.effect('memory.write', () => pending.promise);
  await child.effect('llm', () => 1).catch(() => {});
  // One heartbeat at once on the first snapshot, so the fleet sees the worker's runs right away.
  assert.equal(transport.postsTo('/heartbeat').length, 1);
  clock.advance(4_999);
  assert.equal(transport.postsTo('/heartbeat').length, 1);
  clock.advance(1);
  const beats = transport.postsTo('/heartbeat').slice(1);
  assert.equal(beats.length, 1);
  assert.equal(beats[0]?.url, 'http://cp.test/v1/workers/w1/heartbeat');
  const expected: HeartbeatReport = {
    rev: 1,
    features: ['beta'],
    runs: [
      { runId: 'r1', parentRunId: null, lineage: [], state: 'throttle', effects: 2, denied: 0, inFlight: 1 },
      { runId: 'r2', parentRunId: 'r1', lineage: ['r1'], state: 'halt', effects: 0, denied: 1, inFlight: 0 },
    ],
    pid: process.pid,
    sinceContactMs: 5_000,
    // Every capability the runs checked, the refused one included.
    capabilities: ['llm', 'memory.write'],
  };
  assert.deepEqual(beats[0]?.body, expected);
  clock.advance(5_000);
  assert.equal(transport.postsTo('/heartbeat').length, 3);
  pending.resolve();
  await running;
  await client.close();
});

test('a halted report that failed for a retryable reason is sent again on the next heartbeat', async () => {
  const { client, transport, stream, clock, sink } = await harness({ heartbeatMs: 1_000 });
  transport.onPost = (post) => {
    if (post.url.endsWith('/halted')) throw new KillpathError('unavailable', 'down');
  };
  client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await drain();
  assert.equal(transport.postsTo('/halted').length, 1);
  assert.equal(sink.ofType('report.failed').filter((e) => e.report === 'halted').length, 1);
  transport.onPost = () => {};
  await stream.push({ type: 'keepalive', rev: 2 });
  clock.advance(1_000);
  await drain();
  const halted = transport.postsTo('/halted');
  assert.equal(halted.length, 2);
  assert.deepEqual(halted[1]?.body, halted[0]?.body);
  clock.advance(1_000);
  assert.equal(transport.postsTo('/halted').length, 2, 'sent once it succeeded');
  await client.close();
});

test('a halt that settles as its delta is applied is one request: the halted report acks its rev', async () => {
  const { client, transport, stream } = await harness();
  client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await drain();
  const before = transport.posts.length;
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await drain();
  assert.deepEqual(
    transport.posts.slice(before).map((p) => [p.url, p.body]),
    [
      [
        'http://cp.test/v1/workers/w1/halted',
        { rev: 2, directiveId: 'h1', runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 0 },
      ],
    ],
  );
  // A later rev that settles nothing is acked as before.
  await stream.push(issue(3, directive('t1', 'throttle', 'agent:t1/a1')));
  await drain();
  assert.deepEqual(
    transport.posts.slice(before + 1).map((p) => [p.url, p.body]),
    [['http://cp.test/v1/workers/w1/ack', { rev: 3 }]],
  );
  await client.close();
});

test('a halted report that fails leaves its rev acked on its own', async () => {
  const { client, transport, stream } = await harness();
  transport.onPost = (post) => {
    if (post.url.endsWith('/halted')) throw new KillpathError('not_found', 'directive h1 not found');
  };
  client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  await drain();
  const before = transport.posts.length;
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await drain();
  assert.deepEqual(
    transport.posts.slice(before).map((p) => [p.url.slice('http://cp.test/v1/workers/w1'.length), p.body]),
    [
      [
        '/halted',
        { rev: 2, directiveId: 'h1', runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 0 },
      ],
      ['/ack', { rev: 2 }],
    ],
  );
  await client.close();
});

test('a sink that throws breaks neither the gate nor effects', async () => {
  const { client, stream } = await harness({
    sink: {
      record: () => {
        throw new Error('sink down');
      },
    },
  });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  assert.equal(await run.effect('llm', () => 'ok'), 'ok');
  await client.close();
});

test('connect validates its options synchronously', () => {
  const base = { url: 'http://cp.test', token: 't', tenant: 't1', agent: 'a1' };
  assert.throws(() => harnessless({ ...base, url: 'not a url' }), { code: 'invalid_request' });
  assert.throws(() => harnessless({ ...base, tenant: 'a/b' }), { code: 'invalid_request' });
  assert.throws(() => harnessless({ ...base, leaseMs: 0 }), { code: 'invalid_request' });
  assert.throws(() => harnessless({ ...base, features: ['ok', ''] }), { code: 'invalid_request' });
});

function harnessless(options: ConnectOptions): void {
  void connect({ clock: new ManualClock(), transport: new FakeTransport(), ...options }).close();
}
