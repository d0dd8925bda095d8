import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError, toWire } from '@killpath/protocol';
import { connect, type Client } from '../src/index.ts';
import { ReportChannel } from '../src/report-channel.ts';
import { FakeStream, FakeTransport, ManualClock, MemorySink, drain } from '../src/testing.ts';
import { directive, issue, snapshot } from './fixtures.ts';

/** `n` workers of one process on one transport (w1…wn), with their streams; `token(i)` picks each one's token. */
async function host(
  n: number,
  token: (i: number) => string = () => 'tok-1',
): Promise<{
  transport: FakeTransport;
  clock: ManualClock;
  clients: Client[];
  streams: FakeStream[];
  sinks: MemorySink[];
}> {
  const clock = new ManualClock(1_000);
  const transport = new FakeTransport();
  const clients: Client[] = [];
  const streams: FakeStream[] = [];
  const sinks: MemorySink[] = [];
  for (let i = 1; i <= n; i++) {
    const sink = new MemorySink();
    const client = connect({
      url: 'http://cp.test/',
      token: token(i),
      tenant: 't1',
      agent: 'a1',
      workerId: `w${i}`,
      heartbeatMs: 1_000,
      clock,
      transport,
      sink,
      logger: { warn: () => {} },
    });
    client.startRun({ runId: `r${i}` });
    clients.push(client);
    sinks.push(sink);
    streams.push(await transport.nextStream());
  }
  await Promise.all(streams.map((s) => s.push(snapshot(1))));
  await drain();
  return { transport, clock, clients, streams, sinks };
}

const reportPaths = (t: FakeTransport, from: number): string[] =>
  t.posts
    .slice(from)
    .map((p) => new URL(p.url).pathname)
    .filter((p) => p.startsWith('/v1/workers/') && !p.endsWith('/heartbeat'));

/** A batch of w1–w3's halted reports refused whole, then each sent on its own route (sorted). */
const BATCH_THEN_EACH_ALONE = [
  '/v1/workers/reports',
  '/v1/workers/w1/halted',
  '/v1/workers/w2/halted',
  '/v1/workers/w3/halted',
];

/** The workers whose halted reports were sent (alone or in a batch), sorted. */
const haltedBy = (t: FakeTransport): unknown[] =>
  t
    .reportsOf('halted')
    .map((r) => r.workerId)
    .sort();

test("the workers of a process report a halt together: one request for every worker's halted report", async () => {
  const { transport, clients, streams } = await host(3);
  const from = transport.posts.length;
  const halt = directive('h1', 'halt', 'tenant:t1');
  await Promise.all(streams.map((s) => s.push(issue(2, halt))));
  await drain();
  assert.deepEqual(reportPaths(transport, from), ['/v1/workers/reports']);
  const batch = transport.posts.at(-1)!;
  assert.equal(batch.headers.authorization, 'Bearer tok-1');
  assert.deepEqual(
    (batch.body as { reports: unknown[] }).reports,
    ['w1', 'w2', 'w3'].map((workerId, i) => ({
      kind: 'halted',
      workerId,
      rev: 2,
      directiveId: 'h1',
      runs: [`r${i + 1}`],
      aborted: 0,
      completed: 0,
      observeToSettleMs: 0,
    })),
  );
  // A delta that stops nothing is acked: the acks of that turn go together too.
  const next = transport.posts.length;
  await Promise.all(streams.map((s) => s.push(issue(3, directive('h2', 'halt', 'tenant:other')))));
  await drain();
  assert.deepEqual(reportPaths(transport, next), ['/v1/workers/reports']);
  assert.deepEqual(transport.reportsOf('ack').slice(-3), [
    { workerId: 'w1', rev: 3 },
    { workerId: 'w2', rev: 3 },
    { workerId: 'w3', rev: 3 },
  ]);
  await Promise.all(clients.map((c) => c.close()));
});

test('a lone report goes on its own route, and workers with different tokens never share a request', async () => {
  const { transport, clients, streams } = await host(4, (i) => (i <= 2 ? 'tok-a' : `tok-${i}`));
  const sent = async (rev: number, scope: string): Promise<string[][]> => {
    const from = transport.posts.length;
    await Promise.all(streams.map((s) => s.push(issue(rev, directive(`h${rev}`, 'halt', scope)))));
    await drain();
    return transport.posts
      .slice(from)
      .filter((p) => !p.url.endsWith('/heartbeat'))
      .map((p) => {
        const path = new URL(p.url).pathname;
        const items =
          path === '/v1/workers/reports'
            ? (p.body as { reports: { kind: string; workerId: string }[] }).reports.map(
                (r) => `${r.workerId} ${r.kind}`,
              )
            : [];
        return [p.headers.authorization!, path, ...items];
      })
      .sort();
  };
  // w1 halts, the others ack: tok-a's two workers share a request, tok-3's and tok-4's go alone.
  assert.deepEqual(await sent(2, 'run:r1'), [
    ['Bearer tok-3', '/v1/workers/w3/ack'],
    ['Bearer tok-4', '/v1/workers/w4/ack'],
    ['Bearer tok-a', '/v1/workers/reports', 'w1 halted', 'w2 ack'],
  ]);
  assert.deepEqual(await sent(3, 'run:r3'), [
    ['Bearer tok-3', '/v1/workers/w3/halted'],
    ['Bearer tok-4', '/v1/workers/w4/ack'],
    ['Bearer tok-a', '/v1/workers/reports', 'w1 ack', 'w2 ack'],
  ]);
  await Promise.all(clients.map((c) => c.close()));
});

test('a refused report of a batch fails alone: it is journaled, retried on its own, and its rev acked', async () => {
  const { transport, clock, clients, streams, sinks } = await host(2);
  transport.onPost = (post) => {
    if (!post.url.endsWith('/v1/workers/reports')) return FakeTransport.accept(post);
    const err = toWire(new KillpathError('unavailable', 'store unavailable'));
    return { answers: [{ status: 204 }, { status: 503, body: err }] };
  };
  await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
  await drain();
  assert.deepEqual(
    sinks.map((s) => s.ofType('report.failed').map((e) => [e.report, e.code])),
    [[], [['halted', 'unavailable']]],
  );
  // Its rev is acked on its own at once, as after a failed report on its own route.
  assert.deepEqual(transport.postsTo('/v1/workers/w2/ack').at(-1)?.body, { rev: 2 });
  transport.onPost = FakeTransport.accept;
  clock.advance(1_000);
  await drain();
  const retried = transport.postsTo('/v1/workers/w2/halted');
  assert.equal(retried.length, 1, 'sent again on the next heartbeat, on its own route');
  assert.equal((retried[0]?.body as { directiveId: string }).directiveId, 'h1');
  assert.equal(transport.postsTo('/v1/workers/w1/halted').length, 0, 'the taken one is not sent again');
  await Promise.all(clients.map((c) => c.close()));
});

test('a control plane without the batch route (404) gets every report on its own route, then and after', async () => {
  const { transport, clients, streams, sinks } = await host(3);
  let batches = 0;
  transport.onPost = (post) => {
    if (!post.url.endsWith('/v1/workers/reports')) return FakeTransport.accept(post);
    batches += 1;
    throw new KillpathError('not_found', 'no route');
  };
  const from = transport.posts.length;
  await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
  await drain();
  assert.deepEqual(reportPaths(transport, from).sort(), BATCH_THEN_EACH_ALONE);
  const next = transport.posts.length;
  await Promise.all(streams.map((s) => s.push(issue(3, directive('h2', 'halt', 'tenant:other')))));
  await drain();
  assert.deepEqual(reportPaths(transport, next).sort(), [
    '/v1/workers/w1/ack',
    '/v1/workers/w2/ack',
    '/v1/workers/w3/ack',
  ]);
  assert.equal(batches, 1);
  assert.deepEqual(
    sinks.flatMap((s) => s.ofType('report.failed')),
    [],
    'nothing was lost or reported failed',
  );
  await Promise.all(clients.map((c) => c.close()));
});

test('a report taken into a batch goes out on its own route when the batch is refused 404, though its worker closed meanwhile', async () => {
  const { transport, clients, streams, sinks } = await host(3);
  let refuse = (): void => {};
  transport.onPost = (post) => {
    if (!post.url.endsWith('/v1/workers/reports')) return FakeTransport.accept(post);
    return new Promise((_, reject) => {
      refuse = () => reject(new KillpathError('not_found', 'no route'));
    });
  };
  const from = transport.posts.length;
  await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
  await drain();
  // w2 closes while the batch holding its report is in flight; then the batch is refused.
  await clients[1]!.close();
  refuse();
  await drain();
  assert.deepEqual(reportPaths(transport, from).sort(), BATCH_THEN_EACH_ALONE);
  assert.deepEqual(
    sinks.flatMap((s) => s.ofType('report.failed')),
    [],
  );
  await Promise.all([clients[0]!.close(), clients[2]!.close()]);
});

test('a batch that failed on the network fails each of its reports, and each is retried', async () => {
  const { transport, clock, clients, streams, sinks } = await host(2);
  transport.onPost = (post) => {
    if (post.url.endsWith('/v1/workers/reports')) return Promise.reject(new Error('socket hang up'));
    return undefined;
  };
  await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
  await drain();
  // Each halted report failed; its rev's ack, sent on its own after it, went in a batch that failed too.
  assert.deepEqual(
    sinks.map((s) => s.ofType('report.failed').map((e) => e.report)),
    [
      ['halted', 'ack'],
      ['halted', 'ack'],
    ],
  );
  transport.onPost = FakeTransport.accept;
  clock.advance(1_000);
  await drain();
  // Both are sent again; a retry goes on its own route.
  assert.deepEqual(haltedBy(transport), ['w1', 'w1', 'w2', 'w2']);
  await Promise.all(clients.map((c) => c.close()));
});

test('a worker closed before the end of the turn sends nothing; the others still do', async () => {
  const { transport, clients, streams } = await host(3);
  const from = transport.posts.length;
  await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
  const closing = clients[1]!.close();
  await drain();
  await closing;
  const sent = transport.posts.slice(from).filter((p) => p.url.endsWith('/v1/workers/reports'));
  assert.equal(sent.length, 1);
  assert.deepEqual(
    (sent[0]!.body as { reports: { workerId: string }[] }).reports.map((r) => r.workerId),
    ['w1', 'w3'],
  );
  await Promise.all([clients[0]!.close(), clients[2]!.close()]);
});

test("a channel lives as long as a worker uses it: closed clients' tokens are not kept by the process", async () => {
  const transport = new FakeTransport();
  const headers = { authorization: 'Bearer tok-gone' };
  const client = connect({
    url: 'http://cp.test/',
    token: 'tok-gone',
    tenant: 't1',
    agent: 'a1',
    workerId: 'w1',
    transport,
    clock: new ManualClock(1_000),
    logger: { warn: () => {} },
  });
  // While the client is open, its channel is the one every worker of that token gets.
  const held = ReportChannel.of(transport, 'http://cp.test', headers);
  held.release();
  await client.close();
  // Once no worker uses it, it is let go (with the token it holds): a later worker gets a new one.
  const later = ReportChannel.of(transport, 'http://cp.test', headers);
  assert.notEqual(later, held);
  later.release();
});

test('a batch refused whole (400, 413, 415) is sent report by report; later turns still try a batch', async () => {
  for (const code of ['invalid_request', 'payload_too_large', 'unsupported_media_type'] as const) {
    const { transport, clients, streams, sinks } = await host(2);
    let refuse = true;
    transport.onPost = (post) => {
      if (!post.url.endsWith('/v1/workers/reports') || !refuse) return FakeTransport.accept(post);
      throw new KillpathError(code, 'refused whole');
    };
    const from = transport.posts.length;
    await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
    await drain();
    assert.deepEqual(
      reportPaths(transport, from).sort(),
      ['/v1/workers/reports', '/v1/workers/w1/halted', '/v1/workers/w2/halted'],
      code,
    );
    assert.deepEqual(
      sinks.flatMap((s) => s.ofType('report.failed')),
      [],
      code,
    );
    refuse = false;
    const next = transport.posts.length;
    await Promise.all(streams.map((s) => s.push(issue(3, directive('h2', 'halt', 'tenant:other')))));
    await drain();
    assert.deepEqual(reportPaths(transport, next), ['/v1/workers/reports'], code);
    await Promise.all(clients.map((c) => c.close()));
  }
});

test('a 2xx answer to a batch without an answer for each report is not taken as them: they fail and are retried', async () => {
  const { transport, clock, clients, streams, sinks } = await host(3);
  // Something that is not the control plane (a proxy's empty 200), then an answer cut short.
  const answers = [undefined, { answers: [{ status: 204 }] }];
  transport.onPost = (post) =>
    post.url.endsWith('/v1/workers/reports') ? answers.shift() : FakeTransport.accept(post);
  await Promise.all(streams.map((s) => s.push(issue(2, directive('h1', 'halt', 'tenant:t1')))));
  await drain();
  // Every halted report failed; their revs' acks then went together, and the answer cut short
  // took only the first of them.
  assert.deepEqual(
    sinks.map((s) => s.ofType('report.failed').map((e) => `${e.report} ${e.code}`)),
    [['halted internal'], ['halted internal', 'ack internal'], ['halted internal', 'ack internal']],
  );
  transport.onPost = FakeTransport.accept;
  clock.advance(1_000);
  await drain();
  assert.deepEqual(
    haltedBy(transport),
    ['w1', 'w1', 'w2', 'w2', 'w3', 'w3'],
    'each sent again on its own route',
  );
  await Promise.all(clients.map((c) => c.close()));
});
