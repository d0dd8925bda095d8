import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { connect } from '../src/index.ts';
import { Replicas, neverProcessed, spread } from '../src/replicas.ts';
import { FakeTransport, drain } from '../src/testing.ts';
import { codeOf, directive, harness, issue, keepalive, reasonOf, snapshot } from './fixtures.ts';

const A = 'http://a.test';
const B = 'http://b.test';
const C = 'http://c.test';

/** A network failure as fetch reports one: nothing listens there. */
function refused(): Error {
  return new TypeError('fetch failed', {
    cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
  });
}

/** A worker id whose start replica is `index` of `n`. */
function workerStartingAt(index: number, n: number): string {
  for (let i = 0; ; i++) if (spread(`w${i}`, n) === index) return `w${i}`;
}

test('the stream starts where the worker id points, moves on after a failure, skips replicas that failed, and backs off when all are down', async () => {
  const { client, stream, clock, sink, transport } = await harness({
    url: [A, B, C],
    workerId: workerStartingAt(0, 3),
  });
  assert.ok(stream.url.startsWith(`${A}/v1/stream?`), stream.url);
  await stream.fail(refused());
  clock.advance(150);
  const onB = await transport.nextStream();
  assert.ok(onB.url.startsWith(`${B}/v1/stream?`), 'the next replica in the list');
  await onB.push(snapshot(1));
  assert.equal(sink.ofType('stream.connected')[0]?.url, B);

  // Reports go to the replica the stream is on.
  const run = client.startRun({ runId: 'r1' });
  await run.effect({ capability: 'crm.update', class: 'write' }, () => 1);
  const permits = transport.postsTo('/v1/permits');
  assert.equal(permits.length, 1);
  assert.equal(permits[0]!.url, `${B}/v1/permits`);

  // B ends the stream (it is shutting down): C, never failed, comes before A, which did.
  onB.end();
  await drain();
  clock.advance(150);
  const onC = await transport.nextStream();
  assert.ok(onC.url.startsWith(C));
  await onC.fail(refused());
  // Every replica has failed since its last success: the oldest failure first (A, then B).
  clock.advance(300);
  const again = await transport.nextStream();
  assert.ok(again.url.startsWith(A), again.url);
  await again.fail(refused());
  clock.advance(600);
  const then = await transport.nextStream();
  assert.ok(then.url.startsWith(B), then.url);
  await then.fail(refused());
  // The delays after B's end grow (100, 200, 400, 800 ms ± 20 %): no tight loop while all are down.
  const delays = sink.ofType('stream.error').map((e) => e.retryInMs ?? 0);
  const sinceEnd = delays.slice(1);
  assert.equal(sinceEnd.length, 4);
  for (let i = 1; i < sinceEnd.length; i++) assert.ok(sinceEnd[i]! > sinceEnd[i - 1]!, `${sinceEnd}`);
  // The lease runs on meanwhile: past it, with no replica answering, the worker fails closed.
  clock.advance(3_000);
  assert.equal(reasonOf(run.check('llm')), 'stale');
  await client.close();
});

test('a snapshot behind the rev the worker saw keeps the gate closed until its replica catches up: a halt seen once is never let go', async () => {
  const { client, stream, clock, sink, transport } = await harness({
    url: [A, B],
    workerId: workerStartingAt(0, 2),
  });
  const covered = client.startRun({ runId: 'r1' });
  const other = client.startRun({ runId: 'r2' });
  await stream.push(snapshot(1));
  await stream.push(issue(2, directive('d1', 'halt', 'run:r1')));
  assert.equal(reasonOf(covered.check('llm')), 'halted');
  assert.equal(reasonOf(other.check('llm')), 'allow');

  await stream.fail(refused());
  assert.equal(reasonOf(covered.check('llm')), 'halted', 'nothing covered runs between streams');
  clock.advance(150);
  const onB = await transport.nextStream();
  assert.ok(onB.url.startsWith(B));
  // B has not applied rev 2 yet: its snapshot lacks the halt.
  await onB.push(snapshot(1));
  assert.deepEqual(
    sink.ofType('stream.behind').map((e) => [e.rev, e.seenRev]),
    [[1, 2]],
  );
  assert.equal(reasonOf(covered.check('llm')), 'stale', 'closed, not open');
  assert.equal(reasonOf(other.check('llm')), 'stale');
  await assert.rejects(
    covered.effect({ capability: 'crm.update', class: 'write' }, () => 1),
    (e) => codeOf(e) === 'stale' || codeOf(e) === 'halted',
  );
  clock.advance(500);
  await onB.push(keepalive(1));
  assert.equal(reasonOf(covered.check('llm')), 'stale', 'a keepalive at the old rev opens nothing');
  await onB.push(issue(2, directive('d1', 'halt', 'run:r1')));
  assert.equal(reasonOf(covered.check('llm')), 'halted');
  assert.equal(reasonOf(other.check('llm')), 'allow', 'caught up: uncovered work goes on');
  assert.equal(sink.ofType('stream.caught_up').length, 1);
  assert.equal(
    sink.ofType('effect.started').filter((e) => e.runId === 'r1').length,
    0,
    'the covered run never started an effect',
  );
  await client.close();
});

test('a snapshot that stays behind keeps the gate closed (said once); one ahead replaces the mirror at once', async () => {
  const warned: string[] = [];
  const { client, stream, clock, transport } = await harness({
    url: [A, B],
    workerId: workerStartingAt(0, 2),
    leaseMs: 3_000,
    logger: { warn: (m) => warned.push(m) },
  });
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(5, [directive('d1', 'halt', 'run:r1', { rev: 5 })]));
  assert.equal(reasonOf(run.check('llm')), 'halted');
  stream.end();
  await drain();
  clock.advance(150);
  const onB = await transport.nextStream();
  await onB.push(snapshot(2));
  for (let t = 0; t < 20; t++) {
    clock.advance(500);
    await onB.push(keepalive(2));
    assert.equal(reasonOf(run.check('llm')), 'stale', `still closed at ${(t + 1) * 500} ms`);
  }
  const behind = warned.filter((m) => m.includes('behind'));
  assert.equal(behind.length, 1, warned.join('\n'));
  assert.match(
    behind[0]!,
    /control plane at http:\/\/b\.test is at rev 2, behind rev 5 this worker applied: every check denies until it catches up/,
  );

  // Ahead: replaces at once (the halt was cleared on the deployment).
  const {
    client: c2,
    stream: s2,
    clock: k2,
    transport: t2,
  } = await harness({
    url: [A, B],
    workerId: workerStartingAt(0, 2),
  });
  const r = c2.startRun({ runId: 'r1' });
  await s2.push(snapshot(3, [directive('d1', 'halt', 'run:r1', { rev: 3 })]));
  await s2.fail(refused());
  k2.advance(150);
  const b2 = await t2.nextStream();
  await b2.push(snapshot(7));
  assert.equal(reasonOf(r.check('llm')), 'allow');
  await client.close();
  await c2.close();
});

test('a request moves to another replica only when the first provably never processed it', async () => {
  const fake = new FakeTransport();
  const replicas = new Replicas(fake, [A, B, C], 1);
  const answers = new Map<string, () => unknown>();
  fake.onPost = (p) => {
    const f = answers.get(new URL(p.url).origin);
    return f === undefined ? { ok: new URL(p.url).origin } : f();
  };
  answers.set(B, () => {
    throw refused();
  });
  assert.deepEqual(await replicas.post(`${A}/v1/permits`, {}, {}), { ok: C }, 'refused at B: C');
  assert.deepEqual(
    fake.posts.map((p) => p.url),
    [`${B}/v1/permits`, `${C}/v1/permits`],
  );
  // B failed: later requests try C first, then A, and B last.
  assert.deepEqual(replicas.order(), [2, 0, 1]);

  // A 503 `unavailable` (a replica that cannot vouch) refuses: the next one answers.
  answers.set(C, () => {
    throw new KillpathError('unavailable', 'cannot vouch', { details: { status: 503 } });
  });
  assert.deepEqual(await replicas.post(`${A}/v1/journal`, {}, {}), { ok: A });

  // Any other answer is the answer: never sent twice.
  fake.posts.length = 0;
  answers.set(A, () => {
    throw new KillpathError('halted', 'halted', { details: { status: 409 } });
  });
  await assert.rejects(replicas.post(`${A}/v1/permits`, {}, {}), (e) => codeOf(e) === 'halted');
  answers.set(A, () => {
    throw new KillpathError('internal', 'boom', { details: { status: 500 } });
  });
  await assert.rejects(replicas.post(`${A}/v1/permits`, {}, {}), (e) => codeOf(e) === 'internal');
  answers.set(A, () => {
    throw new TypeError('fetch failed', {
      cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    });
  });
  await assert.rejects(replicas.post(`${A}/v1/permits`, {}, {}), /fetch failed/);
  assert.equal(fake.posts.length, 3, 'each went to A only');

  // Every replica refused: the last error.
  answers.set(A, () => {
    throw refused();
  });
  answers.set(B, () => {
    throw refused();
  });
  answers.set(C, () => {
    throw refused();
  });
  await assert.rejects(replicas.post(`${A}/v1/permits`, {}, {}), /fetch failed/);
  assert.equal(neverProcessed(new KillpathError('unavailable', 'x', { details: { status: 429 } })), false);
});

test('url takes an array or a comma-separated string; each is checked, duplicates dropped', async () => {
  const base = {
    token: 't',
    tenant: 't1',
    agent: 'a1',
    transport: new FakeTransport(),
    logger: { warn: () => {} },
  };
  for (const url of [`${A}, ${B}/`, [A, `${B}/`, A]]) {
    const fake = new FakeTransport();
    const client = connect({ ...base, url, transport: fake, workerId: workerStartingAt(1, 2) });
    const stream = await fake.nextStream();
    assert.ok(stream.url.startsWith(`${B}/v1/stream?`), `${String(url)}: ${stream.url}`);
    await client.close();
  }
  assert.throws(
    () => connect({ ...base, url: [] }),
    (e) => codeOf(e) === 'invalid_request',
  );
  assert.throws(
    () => connect({ ...base, url: `${A},` }),
    (e) => codeOf(e) === 'invalid_request',
  );
  assert.throws(() => connect({ ...base, url: [A, 'ftp://b'] }), /invalid control plane url "ftp:\/\/b"/);
  // Plain HTTP to another host is refused for any replica of the list.
  assert.throws(
    () =>
      connect({
        token: 't',
        tenant: 't1',
        agent: 'a1',
        url: ['http://127.0.0.1:1', 'http://cp.example:7070'],
      }),
    /refusing plain HTTP to the control plane at cp.example:7070/,
  );
});
