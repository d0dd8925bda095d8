import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import type { JournalBatch, ResumeRequest } from '@killpath/protocol';
import { drain } from '../src/testing.ts';
import { codeOf, deferred, directive, harness, issue, reasonOf, snapshot } from './fixtures.ts';

test('resumeRun asks the control plane and creates the run with the lineage it recorded', async () => {
  const { client, stream, transport, cp, sink } = await harness({ features: ['beta'] });
  await stream.push(snapshot(1));
  const echo = transport.onPost;
  transport.onPost = (post) =>
    post.url.endsWith('/resume') ? { runId: 'r9', lineage: ['origin', 'mid'] } : echo(post);
  const run = await client.resumeRun('r9', { parent: { runId: 'mid', lineage: ['origin'] } });
  const posts = transport.postsTo('/resume');
  assert.equal(posts[0]?.url, 'http://cp.test/v1/runs/r9/resume');
  const body: ResumeRequest = { workerId: 'w1', lineage: ['origin', 'mid'], features: ['beta'] };
  assert.deepEqual(posts[0]?.body, body);
  assert.deepEqual(run.identity, { runId: 'r9', lineage: ['origin', 'mid'] });
  assert.equal(run.parentRunId, 'mid');
  assert.equal(
    transport.postsTo('/v1/runs').length,
    0,
    'the resume itself registers the run at the control plane',
  );
  assert.deepEqual(
    sink.ofType('run.resumed').map((e) => e.runId),
    ['r9'],
  );
  assert.equal(reasonOf(run.check('crm.update')), 'allow');
  await stream.push(issue(2, directive('h1', 'halt', 'run:origin')));
  assert.equal(reasonOf(run.check('crm.update')), 'halted', 'the resumed run is covered through its lineage');
  assert.equal(cp.resumes.length, 0);
  await client.close();
});

test('resumeRun of a halted run rejects with halted and creates no run', async () => {
  const { client, stream, cp, sink } = await harness();
  await stream.push(snapshot(1));
  cp.halt('root', 'h-root');
  await assert.rejects(client.resumeRun('child', { parent: { runId: 'root', lineage: [] } }), (err) => {
    assert.equal(codeOf(err), 'halted');
    assert.deepEqual((err as KillpathError).details, { reason: 'halted', directiveId: 'h-root', rev: 2 });
    return true;
  });
  assert.deepEqual(
    cp.resumes.map((r) => [r.runId, r.body.lineage]),
    [['child', ['root']]],
  );
  assert.deepEqual(
    sink.ofType('resume.refused').map((e) => [e.runId, e.code]),
    [['child', 'halted']],
  );
  assert.equal(sink.ofType('run.started').length, 0);
  // No run was created: the id is still free on this worker.
  assert.doesNotThrow(() => client.startRun({ runId: 'child' }));
  cp.unreachable = true;
  await assert.rejects(client.resumeRun('other'), (err) => codeOf(err) === 'unavailable');
  await assert.rejects(client.resumeRun('child'), (err) => codeOf(err) === 'conflict');
  await assert.rejects(client.resumeRun('bad/id'), (err) => codeOf(err) === 'invalid_request');
  await client.close();
});

test('a child started from a parent in another process is covered by a halt of that parent or any ancestor', async () => {
  const { client, stream, cp, sink } = await harness();
  // The parent lives in another worker; only its handle crossed the wire.
  const handle = JSON.parse(JSON.stringify({ runId: 'remote-parent', lineage: ['remote-root'] })) as {
    runId: string;
    lineage: string[];
  };
  const child = client.startRun({ runId: 'kid', parent: handle });
  const bystander = client.startRun({ runId: 'bystander' });
  await stream.push(snapshot(1));
  const write = deferred<void>();
  const writing = child.effect('crm.update', () => write.promise);
  writing.catch(() => {});
  await drain();
  assert.deepEqual(
    cp.requests()[0]?.lineage,
    ['remote-root', 'remote-parent'],
    'the permit request carries the lineage',
  );
  await stream.push(issue(2, directive('h1', 'halt', 'run:remote-parent')));
  await assert.rejects(writing, (err) => codeOf(err) === 'halted');
  assert.equal(reasonOf(child.check('llm')), 'halted');
  assert.equal(reasonOf(bystander.check('llm')), 'allow');
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.runId, e.directiveId]),
    [['kid', 'h1']],
  );
  await stream.push(issue(3, directive('h0', 'kill', 'run:remote-root')));
  assert.equal(reasonOf(child.check('llm')), 'killed');
  write.resolve();
  await client.close();
});

test('startRun with a run id an active directive covers is denied from its first check', async () => {
  const { client, stream, transport } = await harness();
  await stream.push(snapshot(1, [directive('h1', 'halt', 'run:r1')]));
  const run = client.startRun({ runId: 'r1' });
  assert.equal(reasonOf(run.check('crm.update')), 'halted');
  let called = false;
  await assert.rejects(
    run.effect('crm.update', () => {
      called = true;
    }),
    (err) => codeOf(err) === 'halted',
  );
  assert.equal(called, false);
  assert.equal(transport.postsTo('/v1/permits').length, 0, 'refused locally, before any I/O');
  assert.throws(
    () => run.setInterval(() => {}, 10),
    (err) => codeOf(err) === 'halted',
  );
  await client.close();
});

test('journal events of one turn go out in one POST (at most 500 events each), in order', async () => {
  const { client, stream, transport } = await harness();
  const run = client.startRun({ runId: 'r1' });
  const q = client.queue('outbox', () => {});
  // Before the first snapshot nothing starts: 501 tasks wait.
  for (let i = 0; i < 501; i++) q.push({ i }, { run, id: `t${i}` });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'run:r1')]));
  await drain();
  const batches = transport.postsTo('/v1/journal').map((p) => p.body as JournalBatch);
  assert.deepEqual(
    batches.map((b) => b.events.length),
    [500, 1],
  );
  const ids = batches.flatMap((b) => b.events.map((e) => (e.type === 'queue.discarded' ? e.taskId : '?')));
  assert.deepEqual(
    ids,
    Array.from({ length: 501 }, (_, i) => `t${i}`),
  );
  await client.close();
});

test('a journal POST that failed for a retryable reason is sent again on the heartbeat; a refused one is not; nothing throws', async () => {
  const { client, stream, transport, clock, sink, cp } = await harness({
    heartbeatMs: 1_000,
    leaseMs: 60_000,
  });
  const answer = transport.onPost;
  let mode: 'down' | 'refuse' | 'up' = 'down';
  transport.onPost = (post) => {
    if (post.url.endsWith('/v1/journal') && mode === 'down') throw new TypeError('fetch failed');
    if (post.url.endsWith('/v1/journal') && mode === 'refuse')
      throw new KillpathError('invalid_request', 'bad batch');
    return answer(post);
  };
  const r1 = client.startRun({ runId: 'r1' });
  const r2 = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  r1.setTimeout(() => {}, 10_000, 'one');
  r1.end();
  await drain();
  assert.equal(transport.postsTo('/v1/journal').length, 1);
  assert.deepEqual(
    sink.ofType('report.failed').map((e) => [e.report, e.code]),
    [['journal', null]],
  );
  mode = 'refuse';
  r2.setTimeout(() => {}, 10_000, 'two');
  r2.end();
  await drain();
  mode = 'up';
  clock.advance(1_000);
  await drain();
  assert.deepEqual(
    cp.journal.map((e) => (e.type === 'timer.cancelled' ? e.label : e.type)),
    ['one'],
    'the retryable batch was sent again; the refused one was not',
  );
  clock.advance(1_000);
  await drain();
  assert.equal(cp.journal.length, 1, 'sent once it succeeded');
  await client.close();
});
