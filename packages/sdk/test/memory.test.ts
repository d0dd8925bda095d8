import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { MemoryCommitContext, MemoryCommitter } from '../src/index.ts';
import { drain } from '../src/testing.ts';
import { codeOf, deferred, directive, harness, issue, snapshot } from './fixtures.ts';

interface Commit {
  runId: string;
  entries: Record<string, unknown>;
  context: MemoryCommitContext;
  signal: AbortSignal;
}

/** A committer that records each commit and answers with `answer()` (default: done). */
function store(answer: () => void | Promise<void> = () => {}): {
  committer: MemoryCommitter;
  commits: Commit[];
} {
  const commits: Commit[] = [];
  return {
    commits,
    committer: {
      commit: (runId, entries, signal, context) => {
        commits.push({ runId, entries: Object.fromEntries(entries), context, signal });
        return answer();
      },
    },
  };
}

const memoryEvents = (journal: readonly { type: string }[]): unknown[] =>
  journal
    .filter((e) => e.type.startsWith('memory.'))
    .map((e) => {
      const m = e as { type: string; runId: string; keys: string[]; directiveId: string | null };
      return [m.type, m.runId, m.keys, m.directiveId];
    });

test('commitStep commits the staged entries as one memory.write effect with a permit', async () => {
  const { committer, commits } = store();
  const { client, stream, cp } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  run.stage('a', 0);
  run.stage('b', { x: 1 });
  run.stage('a', 1);
  assert.deepEqual(
    [...run.staged],
    [
      ['b', { x: 1 }],
      ['a', 1],
    ],
  );
  await run.commitStep();
  assert.deepEqual(
    commits.map((c) => [c.runId, c.entries, c.context]),
    [['r1', { b: { x: 1 }, a: 1 }, { reason: 'step', directiveId: null }]],
  );
  const [request] = cp.requests();
  assert.equal(request?.capability, 'memory.write');
  assert.equal(request?.class, 'write');
  assert.equal(request?.argsDigest, createHash('sha256').update('{"keys":["b","a"]}').digest('hex'));
  assert.equal(cp.outcomes()[0]?.outcome.status, 'landed');
  assert.equal(run.staged.size, 0);
  await run.commitStep();
  assert.equal(cp.requests().length, 1, 'nothing staged: no effect');
  await client.close();
});

test('a halt mid-step reverts what was staged, journaled with the keys; the committer is never called', async () => {
  const { committer, commits } = store();
  const { client, stream, cp, sink } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  run.stage('plan', 'step 3');
  run.stage('notes', ['x']);
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(run.staged.size, 0, 'reverted on observe');
  assert.throws(
    () => run.stage('more', 1),
    (err) => codeOf(err) === 'halted',
  );
  await assert.rejects(run.commitStep(), (err) => codeOf(err) === 'halted');
  await drain();
  assert.deepEqual(commits, []);
  assert.deepEqual(memoryEvents(cp.journal), [['memory.reverted', 'r1', ['plan', 'notes'], 'h1']]);
  assert.deepEqual(memoryEvents(sink.events), [['memory.reverted', 'r1', ['plan', 'notes'], 'h1']]);
  await client.close();
});

test("a halt whose directive says memory: 'commit' commits the staged entries once, without a permit, before the report", async () => {
  const pending = deferred<void>();
  const { committer, commits } = store(() => pending.promise);
  const { client, stream, cp, transport } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  run.stage('plan', 'step 3');
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1', { memory: 'commit' })));
  await drain();
  assert.equal(commits.length, 1);
  assert.deepEqual(commits[0]?.entries, { plan: 'step 3' });
  assert.deepEqual(commits[0]?.context, { reason: 'directive', directiveId: 'h1' });
  assert.equal(commits[0]?.signal.aborted, false, 'the ordered commit is not aborted');
  assert.equal(cp.requests().length, 0, 'no permit: the directive ordered it');
  assert.equal(transport.postsTo('/halted').length, 0, 'the report waits for the ordered commit');
  pending.resolve();
  await drain();
  assert.equal(transport.postsTo('/halted').length, 1);
  assert.deepEqual(memoryEvents(cp.journal), [['memory.committed', 'r1', ['plan'], 'h1']]);
  await client.close();
});

test('a failed ordered commit is journaled as reverted', async () => {
  const { committer } = store(() => Promise.reject(new Error('store down')));
  const { client, stream, cp } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  run.stage('k', 1);
  await stream.push(issue(2, directive('h1', 'halt', 'agent:t1/a1', { memory: 'commit' })));
  await drain();
  assert.deepEqual(memoryEvents(cp.journal), [['memory.reverted', 'r1', ['k'], 'h1']]);
  await client.close();
});

test('a halt while the commit waits for its permit reverts the step: the committer never runs', async () => {
  const { committer, commits } = store();
  const { client, stream, cp } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  run.stage('k', 1);
  const release = cp.holdPermits();
  const committing = run.commitStep();
  committing.catch(() => {});
  await drain();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await assert.rejects(committing, (err) => codeOf(err) === 'halted');
  release();
  await drain();
  assert.deepEqual(commits, []);
  assert.deepEqual(memoryEvents(cp.journal), [['memory.reverted', 'r1', ['k'], 'h1']]);
  assert.equal(run.staged.size, 0);
  await client.close();
});

test('when the committer fails or the permit is refused, the entries stay staged (newer stages win) for another try', async () => {
  let fail = true;
  const { committer, commits } = store(() => (fail ? Promise.reject(new Error('store down')) : undefined));
  const { client, stream, cp } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  run.stage('a', 1);
  run.stage('b', 1);
  const first = run.commitStep();
  run.stage('b', 2);
  await assert.rejects(first, /store down/);
  assert.deepEqual(
    [...run.staged],
    [
      ['a', 1],
      ['b', 2],
    ],
  );
  cp.unreachable = true;
  await assert.rejects(run.commitStep(), (err) => codeOf(err) === 'unavailable');
  assert.deepEqual(
    [...run.staged],
    [
      ['a', 1],
      ['b', 2],
    ],
  );
  cp.unreachable = false;
  fail = false;
  await run.commitStep();
  assert.deepEqual(commits.at(-1)?.entries, { a: 1, b: 2 });
  assert.equal(run.staged.size, 0);
  await client.close();
});

test('staging needs a committer; a run may bring its own; lease expiry and the end of the run revert', async () => {
  const { client, stream, cp, clock } = await harness({ leaseMs: 1_000, heartbeatMs: 60_000 });
  const plain = client.startRun({ runId: 'plain' });
  assert.throws(
    () => plain.stage('k', 1),
    (err) => codeOf(err) === 'invalid_request',
  );
  await assert.rejects(plain.commitStep(), (err) => codeOf(err) === 'invalid_request');
  const { committer } = store();
  const a = client.startRun({ runId: 'a', memory: committer });
  const b = a.startChild({ runId: 'b', memory: committer });
  await stream.push(snapshot(1));
  a.stage('x', 1);
  b.stage('y', 1);
  b.end();
  clock.advance(1_000);
  await drain();
  assert.deepEqual(memoryEvents(cp.journal), [
    ['memory.reverted', 'b', ['y'], null],
    ['memory.reverted', 'a', ['x'], null],
  ]);
  await client.close();
});

test('a kill and a halt observed in the same rev: the kill decides (its memory mode wins)', async () => {
  const { committer, commits } = store();
  const { client, stream, cp } = await harness({ memory: committer });
  const run = client.startRun({ runId: 'r1' });
  run.stage('k', 1);
  await stream.push(
    snapshot(1, [
      directive('h1', 'halt', 'run:r1', { rev: 1, memory: 'commit' }),
      directive('k1', 'kill', 'run:r1', { rev: 1, memory: 'revert' }),
    ]),
  );
  await drain();
  assert.deepEqual(commits, []);
  assert.deepEqual(memoryEvents(cp.journal), [['memory.reverted', 'r1', ['k'], 'k1']]);
  await client.close();
});
