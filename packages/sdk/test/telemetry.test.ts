/**
 * Telemetry from the SDK: counters per run (steps, cost, tool calls and errors, authorisation
 * denials, memory schema violations, anomalies) batched to `POST /v1/telemetry` as totals and
 * retried without loss; the local rules (loop length, cost cap) halting a run by itself, also
 * with the control plane unreachable; and the control plane's settings from heartbeat answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunTelemetry, TelemetryBatch, WorkerSettings } from '@killpath/protocol';
import { KillpathError } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import { refusal } from '../src/wire-answers.ts';
import { codeOf, directive, harness, issue, snapshot } from './fixtures.ts';

const batches = (posts: { body: unknown }[]) => posts.map((p) => p.body as TelemetryBatch);
const lastOf = (posts: { body: unknown }[], runId: string): RunTelemetry | undefined =>
  batches(posts)
    .flatMap((b) => b.runs)
    .filter((r) => r.runId === runId)
    .at(-1);

test('counters are batched every telemetryMs as per-run totals; nothing is sent while nothing changed', async () => {
  const { client, stream, clock, transport } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    telemetryMs: 250,
  });
  await stream.push(snapshot(1));
  const run = client.startRun({ runId: 'r1' });
  run.step();
  run.step();
  run.recordCost({ tokens: 1200, usd: 0.25 });
  await run.effect({ capability: 'search', class: 'read' }, () => 'ok');
  await run
    .effect({ capability: 'search', class: 'read' }, () => {
      throw new Error('tool broke');
    })
    .catch(() => {});
  run.flagAnomaly(0.4, 'odd plan');
  run.flagAnomaly(0.2);
  assert.equal(transport.postsTo('/v1/telemetry').length, 0, 'batched, not sent per event');
  clock.advance(250);
  await drain();
  const posts = transport.postsTo('/v1/telemetry');
  assert.equal(posts.length, 1);
  assert.deepEqual(batches(posts)[0], {
    workerId: 'w1',
    runs: [
      {
        runId: 'r1',
        steps: 2,
        tokens: 1200,
        costUsd: 0.25,
        toolCalls: 2,
        toolErrors: 1,
        authDenials: 0,
        revokedDenials: 0,
        schemaViolations: 0,
        anomalies: 2,
        anomalyScore: 0.4,
        anomalyDetail: null,
        localHalt: null,
      },
    ],
  });
  clock.advance(1000);
  await drain();
  assert.equal(transport.postsTo('/v1/telemetry').length, 1, 'nothing changed, nothing sent');
  run.step();
  clock.advance(250);
  await drain();
  assert.equal(lastOf(transport.postsTo('/v1/telemetry'), 'r1')?.steps, 3, 'totals, not increments');
  assert.deepEqual(run.counters.steps, 3);
  await client.close();
});

test('a batch that failed is not lost: the runs go out again, with their newer totals, after a backoff', async () => {
  const { client, stream, clock, transport, cp } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    telemetryMs: 100,
  });
  await stream.push(snapshot(1));
  const run = client.startRun({ runId: 'r1' });
  const answer = transport.onPost;
  let down = true;
  transport.onPost = (p) =>
    down && p.url.endsWith('/v1/telemetry') ? Promise.reject(new TypeError('fetch failed')) : answer(p);
  run.step();
  clock.advance(100);
  await drain();
  run.step();
  clock.advance(150);
  await drain();
  assert.equal(transport.postsTo('/v1/telemetry').length, 1, 'backing off (200 ms after one failure)');
  clock.advance(50);
  await drain();
  assert.equal(transport.postsTo('/v1/telemetry').length, 2);
  down = false;
  clock.advance(400);
  await drain();
  const posts = transport.postsTo('/v1/telemetry');
  assert.equal(lastOf(posts, 'r1')?.steps, 2);
  void cp;
  await client.close();
});

test('a batch the control plane shed (429 overloaded) is not lost and goes out again no sooner than its Retry-After', async () => {
  const { client, stream, clock, transport } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    telemetryMs: 100,
  });
  await stream.push(snapshot(1));
  const run = client.startRun({ runId: 'r1' });
  const answer = transport.onPost;
  let shedding = true;
  transport.onPost = (p) =>
    shedding && p.url.endsWith('/v1/telemetry')
      ? Promise.reject(
          refusal(
            429,
            {
              error: {
                code: 'overloaded',
                message: 'the control plane is overloaded',
                details: { retryAfterMs: 3000 },
              },
            },
            p.url,
          ),
        )
      : answer(p);
  run.step();
  clock.advance(100);
  await drain();
  assert.equal(transport.postsTo('/v1/telemetry').length, 1, 'sent once, shed');
  shedding = false;
  run.step();
  clock.advance(2999);
  await drain();
  assert.equal(
    transport.postsTo('/v1/telemetry').length,
    1,
    'not before the 3 s it was asked to wait (backoff alone: 200 ms)',
  );
  clock.advance(1);
  await drain();
  const posts = transport.postsTo('/v1/telemetry');
  assert.equal(posts.length, 2, 'sent again once the wait is over');
  assert.equal(lastOf(posts, 'r1')?.steps, 2, 'with the newer totals: nothing lost');
  await client.close();
});

test('an effect refused because its capability is not granted is an authorisation denial, and so is a revoked one', async () => {
  const { client, stream, clock, transport } = await harness({ leaseMs: 60_000, heartbeatMs: 60_000 });
  await stream.push(snapshot(1));
  const run = client.startRun({ runId: 'r1', capabilities: ['search'] });
  assert.equal(run.check('search', 'read').kind, 'allow');
  const v = run.check('wire_transfer', 'irreversible');
  assert.equal(v.kind === 'deny' && v.reason, 'revoked');
  await assert.rejects(
    run.effect({ capability: 'wire_transfer', class: 'irreversible' }, () => 'sent'),
    (err: KillpathError) => err.code === 'halted' && /not granted to this run/.test(err.message),
  );
  await run.effect({ capability: 'search', class: 'read' }, () => 'ok');
  assert.equal(run.counters.authDenials, 1);
  await stream.push(issue(2, directive('g1', 'degrade', 'run:r1', { capabilities: ['search'] })));
  await assert.rejects(
    run.effect({ capability: 'search', class: 'read' }, () => 'ok'),
    (err) => codeOf(err) === 'halted',
  );
  assert.equal(run.counters.authDenials, 2, 'revoked by a degrade');
  assert.equal(run.counters.revokedDenials, 1, 'of which one a directive in force explains');
  clock.advance(250);
  await drain();
  assert.equal(lastOf(transport.postsTo('/v1/telemetry'), 'r1')?.authDenials, 2);
  await client.close();
});

test('a memory write that violates the schema is refused and counted; the function form works too', async () => {
  const { client, stream } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    memory: { commit: () => {} },
    memorySchema: {
      'profile:*': {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string', maxLength: 10 } },
        additionalProperties: false,
      },
      count: { type: 'integer', minimum: 0 },
    },
  });
  await stream.push(snapshot(1));
  const run = client.startRun({ runId: 'r1' });
  run.stage('profile:1', { name: 'Ada' });
  run.stage('count', 3);
  const bad: [string, unknown, RegExp][] = [
    ['profile:2', { name: 'x'.repeat(11) }, /profile:2\.name: longer than 10/],
    ['profile:3', { name: 'Ada', role: 'admin' }, /unexpected property role/],
    ['count', 1.5, /expected integer/],
    ['secrets', 'x', /no schema for key "secrets"/],
  ];
  for (const [key, value, why] of bad)
    assert.throws(
      () => run.stage(key, value),
      (err: KillpathError) => err.code === 'invalid_request' && why.test(err.message),
    );
  assert.equal(run.counters.schemaViolations, 4);
  assert.deepEqual([...run.staged.keys()], ['profile:1', 'count'], 'violations are not staged');
  const other = client.startRun({
    runId: 'r2',
    memorySchema: (key) => (key.startsWith('tmp:') ? 'tmp keys are not memory' : true),
  });
  other.stage('a', 1);
  assert.throws(() => other.stage('tmp:1', 1), /tmp keys are not memory/);
  await client.close();
});

test('loop length: the step past maxSteps halts the run locally, at once, before its tool call; journaled and reported', async () => {
  const { client, stream, clock, transport, sink } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    limits: { maxSteps: 3 },
  });
  await stream.push(snapshot(1));
  const run = client.startRun({ runId: 'r1' });
  const child = run.startChild({ runId: 'r1-child' });
  const other = client.startRun({ runId: 'r2' });
  for (let i = 0; i < 3; i++) run.step();
  assert.equal(run.check('search', 'read').kind, 'allow');
  run.step();
  const v = run.check('search', 'read');
  assert.equal(v.kind === 'deny' && v.reason, 'halted');
  assert.equal(v.kind === 'deny' && v.directive?.id, 'local:loop_length:r1');
  assert.equal(child.check('search', 'read').kind, 'deny', 'its child runs too');
  assert.equal(other.check('search', 'read').kind, 'allow', 'other runs go on');
  await assert.rejects(
    run.effect('crm.update', () => 1),
    (err) => codeOf(err) === 'halted',
  );
  const ev = sink.events.find((e) => e.type === 'run.halted_locally');
  assert.deepEqual(ev && { ...ev, at: 0 }, {
    type: 'run.halted_locally',
    runId: 'r1',
    rule: 'loop_length',
    value: 4,
    limit: 3,
    directiveId: 'local:loop_length:r1',
    at: 0,
  });
  await drain();
  assert.deepEqual(
    lastOf(transport.postsTo('/v1/telemetry'), 'r1')?.localHalt,
    { rule: 'loop_length', value: 4, limit: 3 },
    'sent at once',
  );
  assert.ok(
    transport
      .postsTo('/halted')
      .some((p) => (p.body as { directiveId: string }).directiveId === 'local:loop_length:r1'),
    'a halted report for the local halt',
  );
  // A snapshot from the control plane does not lift it: no resume clears a local halt.
  await stream.push(snapshot(2));
  assert.equal(run.check('search', 'read').kind, 'deny');
  void clock;
  await client.close();
});

test('cost cap: spend past maxCostUsd halts the run locally, also while the control plane is unreachable', async () => {
  const { client, stream, transport, cp } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    limits: { maxCostUsd: 1 },
  });
  await stream.push(snapshot(1));
  cp.unreachable = true;
  const answer = transport.onPost;
  transport.onPost = (p) =>
    p.url.endsWith('/v1/telemetry') ? Promise.reject(new TypeError('fetch failed')) : answer(p);
  const run = client.startRun({ runId: 'r1' });
  run.recordCost({ usd: 0.6 });
  assert.equal(run.check('llm').kind, 'allow');
  run.recordCost({ usd: 0.6, tokens: 10 });
  const v = run.check('llm');
  assert.equal(v.kind === 'deny' && v.directive?.id, 'local:cost_cap:r1');
  assert.throws(
    () => run.recordCost({ usd: -1 }),
    (err) => codeOf(err) === 'invalid_request',
  );
  assert.throws(
    () => run.flagAnomaly(Number.NaN),
    (err) => codeOf(err) === 'invalid_request',
  );
  await client.close();
});

test('heartbeat answers set the pace and the limits: the stricter of the connect options and the control plane wins', async () => {
  const { client, stream, clock, transport, sink } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 5_000,
    limits: { maxSteps: 100 },
  });
  const answer = transport.onPost;
  const settings: WorkerSettings = { heartbeatMs: 300, limits: { maxSteps: 500, maxCostUsd: 2 } };
  transport.onPost = (p) => (p.url.endsWith('/heartbeat') ? settings : answer(p));
  await stream.push(snapshot(1));
  await drain();
  const applied = sink.events.find((e) => e.type === 'settings.applied');
  assert.deepEqual(applied && { ...applied, at: 0 }, {
    type: 'settings.applied',
    heartbeatMs: 300,
    limits: { maxSteps: 100, maxCostUsd: 2 },
    at: 0,
  });
  const before = transport.postsTo('/heartbeat').length;
  clock.advance(300);
  await drain();
  assert.equal(
    transport.postsTo('/heartbeat').length,
    before + 1,
    'beats at the deadman’s interval from now on',
  );
  clock.advance(300);
  await drain();
  assert.equal(transport.postsTo('/heartbeat').length, before + 2);
  const run = client.startRun({ runId: 'r1' });
  run.recordCost({ usd: 2.5 });
  assert.equal(run.check('llm').kind, 'deny', "the control plane's cost cap applies");
  await client.close();
});

test('telemetryMs 0 turns telemetry off; bad limits are refused at connect', async () => {
  const { client, stream, clock, transport } = await harness({
    leaseMs: 60_000,
    heartbeatMs: 60_000,
    telemetryMs: 0,
  });
  await stream.push(snapshot(1));
  client.startRun({ runId: 'r1' }).step();
  clock.advance(1000);
  await drain();
  assert.equal(transport.postsTo('/v1/telemetry').length, 0);
  await client.close();
  await assert.rejects(harness({ limits: { maxSteps: -1 } }), (err) => codeOf(err) === 'invalid_request');
});
