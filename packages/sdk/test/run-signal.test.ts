import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HaltedReport } from '@killpath/protocol';
import { MODEL_CAPABILITY } from '../src/index.ts';
import { drain } from '../src/testing.ts';
import { clear, codeOf, deferred, directive, harness, issue, snapshot } from './fixtures.ts';

const model = { capability: MODEL_CAPABILITY, class: 'read' } as const;

test('run.signal aborts on the first halt covering the run, with a halted KillpathError, once', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  const other = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  const signal = run.signal;
  assert.equal(signal, run.signal, 'one signal per run');
  let fired = 0;
  signal.addEventListener('abort', () => (fired += 1));
  await stream.push(issue(2, directive('tool', 'halt', 'run:r1', { capabilities: ['wire_transfer'] })));
  await stream.push(issue(3, directive('deg', 'degrade', 'run:r1')));
  assert.equal(signal.aborted, false, 'a capability-narrowed halt or a degrade leaves the run running');
  await stream.push(issue(4, directive('h1', 'halt', 'run:r1')));
  assert.equal(signal.aborted, true);
  assert.equal(codeOf(signal.reason), 'halted');
  assert.deepEqual((signal.reason as { details: unknown }).details, { reason: 'halted', directiveId: 'h1' });
  await stream.push(issue(5, directive('k1', 'kill', 'run:r1')));
  await stream.push(clear(6, 'h1'));
  assert.equal(fired, 1, 'aborted once, never un-aborted');
  assert.equal(other.signal.aborted, false, 'a run the halt does not cover keeps its signal');
  assert.deepEqual(
    sink.ofType('run.stopped').map((e) => [e.runId, e.reason, e.directiveId]),
    [['r1', 'halted', 'h1']],
  );
  await client.close();
});

test('run.signal aborts on an isolate and on lease expiry, and is born aborted under a standing halt', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 3_000 });
  const isolated = client.startRun({ runId: 'r1' });
  const idle = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1, [directive('i1', 'isolate', 'run:r1')]));
  assert.equal(isolated.signal.aborted, true, 'read after the isolate was applied: aborted at once');
  assert.deepEqual((isolated.signal.reason as { details: unknown }).details, {
    reason: 'isolated',
    directiveId: 'i1',
  });
  const idleSignal = idle.signal;
  clock.advance(3_000);
  assert.equal(idleSignal.aborted, true, 'the lease ran out');
  assert.deepEqual((idleSignal.reason as { details: unknown }).details, {
    reason: 'stale',
    directiveId: null,
  });
  await client.close();
});

test('a halt aborts an in-flight model call (capability llm, class read) and other reads complete', async () => {
  const { client, stream, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let modelSignal: AbortSignal | null = null;
  const stream1 = deferred<string>();
  const modelCall = run.effect(model, (signal) => {
    modelSignal = signal;
    return stream1.promise;
  });
  const read = deferred<string>();
  const reading = run.effect({ capability: 'search', class: 'read' }, () => read.promise);
  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1')));
  await assert.rejects(modelCall, (err) => codeOf(err) === 'halted');
  assert.equal((modelSignal as AbortSignal | null)?.aborted, true);
  read.resolve('done');
  assert.equal(await reading, 'done');
  await drain();
  assert.equal(transport.postsTo('/halted').length, 0, 'the model call has not settled yet');
  stream1.reject((modelSignal as AbortSignal | null)?.reason);
  await drain();
  const posts = transport.postsTo('/halted');
  assert.equal(posts.length, 1);
  const body = posts[0]?.body as HaltedReport;
  assert.deepEqual(
    [body.aborted, body.completed],
    [1, 1],
    'the model call counts as aborted, the read as completed',
  );
  await client.close();
});

test('a degrade of the whole run lets model calls flow; one revoking llm aborts them', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  let first: AbortSignal | null = null;
  run.effect(model, (s) => ((first = s), new Promise<void>(() => {}))).catch(() => {});
  await stream.push(issue(2, directive('ro', 'degrade', 'run:r1')));
  assert.equal((first as AbortSignal | null)?.aborted, false, 'read-only: reads (model calls too) go on');
  assert.equal(run.check(MODEL_CAPABILITY, 'read').kind, 'allow');
  await stream.push(issue(3, directive('nollm', 'degrade', 'run:r1', { capabilities: [MODEL_CAPABILITY] })));
  assert.equal((first as AbortSignal | null)?.aborted, true, 'the revoked capability is aborted in flight');
  assert.equal(run.signal.aborted, false, 'a degrade does not stop the run');
  await client.close();
});

test('EffectOptions.signal aborts one effect with its own reason; fn never runs when it is already aborted', async () => {
  const { client, stream, cp, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const before = new AbortController();
  before.abort(new Error('caller gave up'));
  let ran = false;
  await assert.rejects(
    run.effect({ capability: 'search', class: 'read', signal: before.signal }, () => (ran = true)),
    /caller gave up/,
  );
  assert.equal(ran, false);

  const outside = new AbortController();
  let inner: AbortSignal | null = null;
  const write = deferred<string>();
  const writing = run.effect({ capability: 'crm.update', signal: outside.signal }, (signal) => {
    inner = signal;
    return write.promise;
  });
  await drain();
  assert.equal((inner as AbortSignal | null)?.aborted, false);
  const reason = new Error('framework aborted the tool call');
  outside.abort(reason);
  await assert.rejects(writing, (err) => err === reason);
  assert.equal((inner as AbortSignal | null)?.reason, reason);
  write.reject(reason);
  await drain();
  assert.deepEqual(
    cp.outcomes().map((o) => o.outcome.status),
    ['aborted'],
  );
  assert.equal(sink.ofType('effect.cancelled').length, 1);
  await client.close();
});

test('EffectOptions.signal: the listener is removed when the effect settles (a long-lived signal collects none)', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const parent = new AbortController();
  let added = 0;
  let removed = 0;
  const signal = parent.signal;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<typeof add>) => {
    added += 1;
    add(...args);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    removed += 1;
    remove(...args);
  }) as typeof signal.removeEventListener;
  for (let i = 0; i < 50; i++) await run.effect({ capability: 'search', class: 'read', signal }, () => i);
  for (let i = 0; i < 5; i++) await run.effect({ capability: 'crm.update', signal }, () => i);
  await run
    .effect({ capability: 'search', class: 'read', signal }, () => Promise.reject(new Error('x')))
    .catch(() => {});
  assert.equal(added, 56);
  assert.equal(removed, 56);
  await assert.rejects(
    run.effect({ capability: 'search', class: 'read', signal: 'nope' as unknown as AbortSignal }, () => 1),
    (err) => codeOf(err) === 'invalid_request',
  );
  await client.close();
});
