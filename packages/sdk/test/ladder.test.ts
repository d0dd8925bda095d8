/**
 * The levels below halt in the gate: degrade (revoked capabilities, read-only), isolate,
 * throttle (effects wait for their slot), and how they combine with stops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JournalBatch } from '@killpath/protocol';
import { codeOf, deferred, directive, harness, issue, reasonOf, snapshot } from './fixtures.ts';
import { drain } from '../src/testing.ts';

test('a degrade naming capabilities revokes them for every class; other capabilities flow', async () => {
  const { client, stream, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(
    snapshot(1, [directive('g1', 'degrade', 'agent:t1/a1', { capabilities: ['wire_transfer'] })]),
  );
  assert.equal(reasonOf(run.check('wire_transfer')), 'revoked');
  assert.equal(reasonOf(run.check('wire_transfer', 'read')), 'revoked');
  assert.equal(reasonOf(run.check('search', 'read')), 'allow');
  assert.equal(reasonOf(run.check('crm.update')), 'allow');
  let called = false;
  await assert.rejects(
    run.effect('wire_transfer', () => {
      called = true;
    }),
    (err) =>
      codeOf(err) === 'halted' && (err as { details?: { reason?: string } }).details?.reason === 'revoked',
  );
  await run.effect({ capability: 'wire_transfer', class: 'read' }, () => 1).catch(() => {});
  assert.equal(called, false);
  assert.equal(await run.effect({ capability: 'search', class: 'read' }, () => 'ok'), 'ok');
  await drain();
  // The denial is reported to the control plane once per capability and directive, not per attempt.
  const denied = transport
    .postsTo('/v1/journal')
    .flatMap((p) => (p.body as JournalBatch).events)
    .filter((e) => e.type === 'effect.denied');
  assert.deepEqual(denied, [
    {
      type: 'effect.denied',
      runId: 'r1',
      capability: 'wire_transfer',
      class: 'write',
      reason: 'revoked',
      directiveId: 'g1',
    },
  ]);
  await client.close();
});

test('a degrade without capabilities makes the run read-only: reads flow, writes are refused, in-flight writes aborted', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const slowRead = deferred<string>();
  const slowWrite = deferred<string>();
  const read = run.effect({ capability: 'search', class: 'read' }, () => slowRead.promise);
  const write = run.effect('crm.update', () => slowWrite.promise);
  await drain();
  await stream.push(issue(2, directive('g1', 'degrade', 'tenant:t1')));
  assert.equal(reasonOf(run.check('search', 'read')), 'allow');
  assert.equal(reasonOf(run.check('crm.update')), 'read_only');
  assert.equal(reasonOf(run.check('crm.update', 'irreversible')), 'read_only');
  await assert.rejects(write, (err) => codeOf(err) === 'halted');
  slowRead.resolve('found');
  assert.equal(await read, 'found');
  assert.equal(await run.effect({ capability: 'search', class: 'read' }, () => 'again'), 'again');
  await client.close();
});

test('isolate refuses every effect; a kill still dominates it; timers keep running (the agent may keep thinking)', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  let ticks = 0;
  run.setInterval(() => ticks++, 100);
  await stream.push(snapshot(1, [directive('i1', 'isolate', 'agent:t1/a1')]));
  assert.equal(reasonOf(run.check('search', 'read')), 'isolated');
  assert.equal(reasonOf(run.check('llm')), 'isolated');
  clock.advance(250);
  assert.equal(ticks, 2, 'isolate is not a halt: run timers still fire');
  await stream.push(issue(2, directive('k1', 'kill', 'run:r1')));
  assert.equal(reasonOf(run.check('llm')), 'killed');
  await client.close();
});

test('freeze refuses every effect like an isolate for a worker not frozen yet; it outranks a halt, a kill outranks it', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  let ticks = 0;
  run.setInterval(() => ticks++, 100);
  await stream.push(snapshot(1));
  const slowWrite = deferred<string>();
  const write = run.effect('crm.update', () => slowWrite.promise);
  await drain();
  await stream.push(issue(2, directive('f1', 'freeze', 'run:r1')));
  assert.equal(reasonOf(run.check('search', 'read')), 'frozen');
  assert.equal(reasonOf(run.check('crm.update', 'irreversible')), 'frozen');
  await assert.rejects(write, (err) => codeOf(err) === 'halted', 'a write in flight is aborted');
  clock.advance(250);
  assert.equal(ticks, 2, 'the SDK leaves the process to its launcher: timers are not cancelled');
  await stream.push(issue(3, directive('h1', 'halt', 'agent:t1/a1')));
  assert.equal(reasonOf(run.check('llm')), 'frozen', 'freeze ranks above halt');
  await stream.push(issue(4, directive('k1', 'kill', 'run:r1')));
  assert.equal(reasonOf(run.check('llm')), 'killed');
  await client.close();
});

test('a narrowed halt on one tool outranks a run-wide degrade; a run-wide halt outranks a revoked tool', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(
    snapshot(1, [
      directive('g1', 'degrade', 'agent:t1/a1'),
      directive('h1', 'halt', 'agent:t1/a1', { capabilities: ['llm'] }),
    ]),
  );
  assert.equal(reasonOf(run.check('llm', 'read')), 'halted');
  assert.equal(reasonOf(run.check('crm.update')), 'read_only');
  await stream.push(issue(2, directive('h2', 'halt', 'run:r1')));
  assert.equal(reasonOf(run.check('search', 'read')), 'halted');
  await client.close();
});

test('a throttle spaces effect starts at 1000/rate ms per run, from the first effect, without a burst', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 60_000 });
  const a = client.startRun({ runId: 'a' });
  const b = client.startRun({ runId: 'b' });
  await stream.push(
    snapshot(1, [directive('t1', 'throttle', 'agent:t1/a1', { rate: { perSecond: 10, per: 'run' } })]),
  );
  const t0 = clock.now();
  const done = [
    ...Array.from({ length: 4 }, () =>
      a.effect({ capability: 'search', class: 'read' }, () => clock.now() - t0),
    ),
    b.effect({ capability: 'search', class: 'read' }, () => clock.now() - t0),
  ];
  for (let i = 0; i < 4; i++) clock.advance(100);
  assert.deepEqual(await Promise.all(done), [0, 100, 200, 300, 0]);
  assert.equal(sink.ofType('effect.started').length, 5);
  await client.close();
});

test('a throttle per agent is shared by the runs of this worker; re-dialling replaces it at once', async () => {
  const { client, stream, clock } = await harness({ leaseMs: 60_000 });
  const a = client.startRun({ runId: 'a' });
  const b = client.startRun({ runId: 'b' });
  await stream.push(
    snapshot(1, [directive('t1', 'throttle', 'agent:t1/a1', { rate: { perSecond: 5, per: 'agent' } })]),
  );
  const t0 = clock.now();
  const first = [
    a.effect({ capability: 'x', class: 'read' }, () => clock.now() - t0),
    b.effect({ capability: 'x', class: 'read' }, () => clock.now() - t0),
  ];
  clock.advance(200);
  assert.deepEqual(await Promise.all(first), [0, 200]);
  // The operator dials it up: a new throttle replaces the old one at the same rev.
  await stream.push({
    type: 'delta',
    rev: 2,
    issued: {
      ...directive('t2', 'throttle', 'agent:t1/a1', { rate: { perSecond: 50, per: 'agent' } }),
      rev: 2,
    },
    replaced: ['t1'],
  });
  const t1 = clock.now();
  const next = [
    a.effect({ capability: 'x', class: 'read' }, () => clock.now() - t1),
    b.effect({ capability: 'x', class: 'read' }, () => clock.now() - t1),
  ];
  clock.advance(20);
  assert.deepEqual(await Promise.all(next), [0, 20]);
  await client.close();
});

test('a halt refuses effects still waiting for their throttle slot, reads too, and they never start', async () => {
  const { client, stream, clock, sink } = await harness({ leaseMs: 60_000 });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(
    snapshot(1, [directive('t1', 'throttle', 'run:r1', { rate: { perSecond: 1, per: 'run' } })]),
  );
  const first = run.effect({ capability: 'search', class: 'read' }, () => 'now');
  const waitingRead = run.effect({ capability: 'search', class: 'read' }, () => 'later');
  const waitingWrite = run.effect('crm.update', () => 'later');
  assert.equal(await first, 'now');
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await assert.rejects(waitingRead, (err) => codeOf(err) === 'halted');
  await assert.rejects(waitingWrite, (err) => codeOf(err) === 'halted');
  clock.advance(5_000);
  await drain();
  assert.equal(sink.ofType('effect.started').length, 1, 'only the first effect ever started');
  assert.equal(sink.ofType('halt.settled').length, 1, 'the halt settled without waiting for the throttle');
  await client.close();
});
