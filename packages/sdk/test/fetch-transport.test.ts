import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { StreamMessage } from '@killpath/protocol';
import { connect, fetchTransport } from '../src/index.ts';
import { codeOf, deferred, snapshot } from './fixtures.ts';
import { serve, sse, stop } from './http-fixtures.ts';

test(
  'openStream reads events whose lines end with a lone CR, an event per chunk (eventsource-parser dropped the second)',
  { timeout: 10_000 },
  async (t) => {
    const gotFirst = deferred<void>();
    const { url, server } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const cr = (type: string, data: unknown) => sse(type, data).replaceAll('\n', '\r');
      // The first event ends the chunk on a CR; the second chunk is sent once the first is read.
      res.write(cr('snapshot', snapshot(3)));
      void gotFirst.promise.then(() => res.end(cr('delta', { rev: 4, cleared: 'd1' })));
    });
    try {
      const got: StreamMessage[] = [];
      // A parser that holds the first event back never lets it be read: the test times out.
      for await (const msg of fetchTransport().openStream(url, {}, t.signal)) {
        got.push(msg);
        gotFirst.resolve();
      }
      assert.deepEqual(got, [snapshot(3), { type: 'delta', rev: 4, cleared: 'd1' }]);
    } finally {
      await stop(server);
    }
  },
);

test('openStream parses SSE split across chunks, takes the type from the event name, skips unknown events', async () => {
  let seenHeaders: IncomingMessage['headers'] = {};
  const { url, server } = await serve((req, res) => {
    seenHeaders = req.headers;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const text =
      sse('snapshot', snapshot(3)) +
      sse('fancy', { type: 'fancy', rev: 3 }) +
      sse('delta', { rev: 4, cleared: 'd1' }) +
      ': comment\n\n' +
      sse('keepalive', { type: 'keepalive', rev: 4 });
    // Cut mid-event to exercise the parser's buffering.
    res.write(text.slice(0, 37));
    res.end(text.slice(37));
  });
  const got: StreamMessage[] = [];
  const controller = new AbortController();
  for await (const msg of fetchTransport().openStream(
    `${url}/v1/stream`,
    { authorization: 'Bearer x' },
    controller.signal,
  )) {
    got.push(msg);
  }
  assert.deepEqual(got, [
    snapshot(3),
    { type: 'delta', rev: 4, cleared: 'd1' },
    { type: 'keepalive', rev: 4 },
  ]);
  assert.equal(seenHeaders.authorization, 'Bearer x');
  assert.equal(seenHeaders.accept, 'text/event-stream');
  await stop(server);
});

test('openStream turns refusals into KillpathErrors with the wire code, or one from the status', async () => {
  const { url, server } = await serve((req, res) => {
    if (req.url === '/wire') {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unauthenticated', message: 'bad token' } }));
    } else {
      res.writeHead(403);
      res.end('nope');
    }
  });
  const open = async (path: string): Promise<void> => {
    for await (const _ of fetchTransport().openStream(`${url}${path}`, {}, new AbortController().signal)) {
      // Never reached.
    }
  };
  await assert.rejects(
    open('/wire'),
    (err) => codeOf(err) === 'unauthenticated' && /bad token/.test((err as Error).message),
  );
  await assert.rejects(open('/plain'), (err) => codeOf(err) === 'forbidden');
  await stop(server);
});

test('openStream ends with invalid_request on malformed JSON', async () => {
  const { url, server } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end('event: snapshot\ndata: {oops\n\n');
  });
  const read = async (): Promise<void> => {
    for await (const _ of fetchTransport().openStream(url, {}, new AbortController().signal)) {
      // Never reached.
    }
  };
  await assert.rejects(read(), (err) => codeOf(err) === 'invalid_request');
  await stop(server);
});

test('post sends JSON with the headers, resolves on 204 and rejects with the wire code otherwise', async () => {
  const seen: {
    url: string | undefined;
    type: string | undefined;
    auth: string | undefined;
    body: unknown;
  }[] = [];
  const { url, server } = await serve((req, res, body) => {
    seen.push({
      url: req.url,
      type: req.headers['content-type'],
      auth: req.headers.authorization,
      body: JSON.parse(body),
    });
    if (req.url === '/ok') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'conflict', message: 'taken' } }));
    }
  });
  const transport = fetchTransport();
  await transport.post(`${url}/ok`, { authorization: 'Bearer y' }, { rev: 1 });
  await assert.rejects(transport.post(`${url}/clash`, {}, { rev: 2 }), (err) => codeOf(err) === 'conflict');
  assert.deepEqual(seen[0], { url: '/ok', type: 'application/json', auth: 'Bearer y', body: { rev: 1 } });
  await stop(server);
});

test('a client over real HTTP gets ready, acks, and close() ends the stream', async () => {
  const acked = deferred<unknown>();
  const streamClosed = deferred<void>();
  const { url, server } = await serve((req, res, body) => {
    if (req.url?.startsWith('/v1/stream')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse('snapshot', snapshot(9)));
      res.on('close', () => streamClosed.resolve());
      return;
    }
    if (req.url === '/v1/workers/w-http/ack') acked.resolve(JSON.parse(body));
    res.writeHead(204);
    res.end();
  });
  const client = connect({ url, token: 'tok', tenant: 't1', agent: 'a1', workerId: 'w-http' });
  await client.ready;
  const run = client.startRun({ runId: 'r1' });
  assert.equal(run.check('llm').kind, 'allow');
  assert.deepEqual(await acked.promise, { rev: 9 });
  await client.close();
  await streamClosed.promise;
  assert.equal(run.check('llm').kind, 'deny');
  await stop(server);
});
