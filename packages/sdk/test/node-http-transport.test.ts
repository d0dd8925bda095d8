import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { StreamMessage } from '@killpath/protocol';
import { connect, nodeHttpTransport } from '../src/index.ts';
import { SseParser } from '../src/sse-parser.ts';
import { codeOf, deferred, snapshot } from './fixtures.ts';
import { serve, sse, stop } from './http-fixtures.ts';

async function readAll(
  iterable: AsyncIterable<StreamMessage>,
  got: StreamMessage[] = [],
): Promise<StreamMessage[]> {
  for await (const msg of iterable) got.push(msg);
  return got;
}

/** Feeds `text` to a fresh parser in the given pieces and returns the events it dispatched. */
function parse(pieces: string[]): [string | undefined, string][] {
  const events: [string | undefined, string][] = [];
  const parser = new SseParser((event, data) => events.push([event, data]));
  for (const p of pieces) parser.feed(p);
  return events;
}

test('the SSE parser gives the same events wherever the text is cut, for LF, CRLF and CR line ends', () => {
  const bodies = [
    'event: snapshot\ndata: {"a":1}\n\n: comment\n\nevent: delta\ndata: {"b":2}\n\n',
    'event: snapshot\r\ndata: {"a":1}\r\n\r\n: comment\r\n\r\nevent: delta\r\ndata: {"b":2}\r\n\r\n',
    'event: snapshot\rdata: {"a":1}\r\r: comment\r\revent: delta\rdata: {"b":2}\r\r',
  ];
  const expected: [string | undefined, string][] = [
    ['snapshot', '{"a":1}'],
    ['delta', '{"b":2}'],
  ];
  for (const text of bodies) {
    assert.deepEqual(parse([text]), expected);
    for (let i = 0; i <= text.length; i++) {
      assert.deepEqual(
        parse([text.slice(0, i), text.slice(i)]),
        expected,
        `cut at ${i} of ${JSON.stringify(text)}`,
      );
    }
    // One character at a time.
    assert.deepEqual(parse([...text]), expected);
  }
});

test('the SSE parser joins data lines, skips a BOM, ignores id, retry and unknown fields, and drops events without data', () => {
  const text =
    '\uFEFFid: 7\nretry: 100\nevent: delta\ndata:{"x":\ndata: 1}\nfancy: yes\n\n' +
    'event: lonely\n\n' +
    'data\n\n' +
    'data: plain\n\n';
  assert.deepEqual(parse([text]), [
    ['delta', '{"x":\n1}'],
    [undefined, ''],
    [undefined, 'plain'],
  ]);
  // An event field does not leak into the next event.
  assert.deepEqual(parse(['event: a\ndata: 1\n\ndata: 2\n\n']), [
    ['a', '1'],
    [undefined, '2'],
  ]);
});

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
    // Cut mid-event, and inside a multi-byte character, to exercise the buffering.
    const bytes = Buffer.from(text.replace('"d1"', '"d1é"'), 'utf8');
    const cut = bytes.indexOf('é') + 1;
    res.write(bytes.subarray(0, 37));
    res.write(bytes.subarray(37, cut));
    res.end(bytes.subarray(cut));
  });
  const got = await readAll(
    nodeHttpTransport().openStream(
      `${url}/v1/stream?worker=w1`,
      { authorization: 'Bearer x' },
      new AbortController().signal,
    ),
  );
  assert.deepEqual(got, [
    snapshot(3),
    { type: 'delta', rev: 4, cleared: 'd1é' },
    { type: 'keepalive', rev: 4 },
  ]);
  assert.equal(seenHeaders.authorization, 'Bearer x');
  assert.equal(seenHeaders.accept, 'text/event-stream');
  await stop(server);
});

test('openStream delivers a burst of thousands of events in order', async () => {
  const { url, server } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let text = sse('snapshot', snapshot(0));
    for (let rev = 1; rev <= 3000; rev++) text += sse('keepalive', { type: 'keepalive', rev });
    res.end(text);
  });
  const got = await readAll(nodeHttpTransport().openStream(url, {}, new AbortController().signal));
  assert.equal(got.length, 3001);
  assert.deepEqual(
    got.map((m) => m.rev),
    Array.from({ length: 3001 }, (_, i) => i),
  );
  await stop(server);
});

test('openStream turns refusals into KillpathErrors with the wire code, or one from the status', async () => {
  const { url, server } = await serve((req, res) => {
    if (req.url === '/wire') {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unauthenticated', message: 'bad token' } }));
    } else if (req.url === '/down') {
      res.writeHead(503);
      res.end();
    } else {
      res.writeHead(403);
      res.end('nope');
    }
  });
  const open = (path: string) =>
    readAll(nodeHttpTransport().openStream(`${url}${path}`, {}, new AbortController().signal));
  await assert.rejects(
    open('/wire'),
    (err) => codeOf(err) === 'unauthenticated' && /bad token/.test((err as Error).message),
  );
  await assert.rejects(open('/plain'), (err) => codeOf(err) === 'forbidden');
  await assert.rejects(open('/down'), (err) => codeOf(err) === 'unavailable');
  await stop(server);
});

test('openStream yields the events before a malformed one, then ends with invalid_request', async () => {
  const { url, server } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(sse('snapshot', snapshot(1)));
    res.end('event: delta\ndata: {oops\n\n');
  });
  const got: StreamMessage[] = [];
  await assert.rejects(
    readAll(nodeHttpTransport().openStream(url, {}, new AbortController().signal), got),
    (err) => codeOf(err) === 'invalid_request',
  );
  assert.deepEqual(got, [snapshot(1)]);
  await stop(server);
});

test('openStream rejects data without an integer rev', async () => {
  const { url, server } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(sse('delta', { type: 'delta', rev: 'seven' }));
  });
  await assert.rejects(
    readAll(nodeHttpTransport().openStream(url, {}, new AbortController().signal)),
    (err) => codeOf(err) === 'invalid_request',
  );
  await stop(server);
});

test('openStream: an unreachable control plane, a lost connection and a silent stream are unavailable', async () => {
  // Nothing listens on a port just released.
  const { url: deadUrl, server: dead } = await serve(() => {});
  await stop(dead);
  await assert.rejects(
    readAll(nodeHttpTransport().openStream(deadUrl, {}, new AbortController().signal)),
    (err) => codeOf(err) === 'unavailable',
  );

  const { url, server } = await serve((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(sse('snapshot', snapshot(2)));
    if (req.url === '/cut') setImmediate(() => req.socket.destroy());
  });
  const got: StreamMessage[] = [];
  await assert.rejects(
    readAll(nodeHttpTransport().openStream(`${url}/cut`, {}, new AbortController().signal), got),
    (err) => codeOf(err) === 'unavailable',
  );
  assert.deepEqual(got, [snapshot(2)]);

  const silent = nodeHttpTransport({ streamIdleTimeoutMs: 50 });
  await assert.rejects(
    readAll(silent.openStream(`${url}/quiet`, {}, new AbortController().signal)),
    (err) => codeOf(err) === 'unavailable' && /silent/.test((err as Error).message),
  );
  await stop(server);
});

test('aborting the signal ends the iteration, before and after the answer', async () => {
  const closed = deferred<void>();
  const { url, server } = await serve((req, res) => {
    if (req.url === '/hang') return; // never answers
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(sse('snapshot', snapshot(5)));
    res.on('close', () => closed.resolve());
  });
  const transport = nodeHttpTransport();

  const early = new AbortController();
  const pending = readAll(transport.openStream(`${url}/hang`, {}, early.signal));
  setImmediate(() => early.abort());
  await assert.rejects(pending, (err) => (err as Error).name === 'AbortError');

  const late = new AbortController();
  const got: StreamMessage[] = [];
  const reading = (async () => {
    for await (const msg of transport.openStream(url, {}, late.signal)) {
      got.push(msg);
      late.abort();
    }
  })();
  await assert.rejects(reading, (err) => (err as Error).name === 'AbortError');
  assert.deepEqual(got, [snapshot(5)]);
  await closed.promise; // the connection was closed, not leaked

  const already = new AbortController();
  already.abort();
  await assert.rejects(
    readAll(transport.openStream(url, {}, already.signal)),
    (err) => (err as Error).name === 'AbortError',
  );
  await stop(server);
});

test('breaking out of the iteration closes the connection', async () => {
  const closed = deferred<void>();
  const { url, server } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(sse('snapshot', snapshot(1)));
    res.on('close', () => closed.resolve());
  });
  for await (const msg of nodeHttpTransport().openStream(url, {}, new AbortController().signal)) {
    assert.equal(msg.type, 'snapshot');
    break;
  }
  await closed.promise;
  await stop(server);
});

test('post sends JSON with the headers, resolves with the JSON answer (undefined for none) and rejects with the wire code', async () => {
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
    } else if (req.url === '/answer') {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ permit: { id: 'p1' } }));
    } else if (req.url === '/garbled') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{not json');
    } else if (req.url === '/boom') {
      res.writeHead(500);
      res.end('oops');
    } else {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'conflict', message: 'taken', details: { runId: 'r1' } } }));
    }
  });
  const transport = nodeHttpTransport();
  assert.equal(await transport.post(`${url}/ok`, { authorization: 'Bearer y' }, { rev: 1 }), undefined);
  assert.deepEqual(await transport.post(`${url}/answer`, {}, { rev: 2, name: 'é' }), {
    permit: { id: 'p1' },
  });
  await assert.rejects(
    transport.post(`${url}/clash`, {}, { rev: 3 }),
    (err) =>
      codeOf(err) === 'conflict' &&
      /taken/.test((err as Error).message) &&
      (err as { details?: { details?: unknown } }).details?.details !== undefined,
  );
  await assert.rejects(transport.post(`${url}/boom`, {}, {}), (err) => codeOf(err) === 'unavailable');
  await assert.rejects(transport.post(`${url}/garbled`, {}, {}), (err) => codeOf(err) === 'unavailable');
  assert.deepEqual(seen[0], { url: '/ok', type: 'application/json', auth: 'Bearer y', body: { rev: 1 } });
  assert.deepEqual(seen[1]?.body, { rev: 2, name: 'é' });
  await stop(server);
});

test('post: an unreachable control plane and a time-out are unavailable', async () => {
  const { url: deadUrl, server: dead } = await serve(() => {});
  await stop(dead);
  await assert.rejects(
    nodeHttpTransport().post(`${deadUrl}/v1/x`, {}, {}),
    (err) => codeOf(err) === 'unavailable',
  );

  const { url, server } = await serve(() => {
    // Never answers.
  });
  await assert.rejects(
    nodeHttpTransport({ postTimeoutMs: 50 }).post(`${url}/v1/x`, {}, {}),
    (err) => codeOf(err) === 'unavailable' && /timed out/.test((err as Error).message),
  );
  await stop(server);
});

test('posts reuse one kept-alive connection', async () => {
  const sockets = new Set<unknown>();
  const { url, server } = await serve((req, res) => {
    sockets.add(req.socket);
    res.writeHead(204);
    res.end();
  });
  const transport = nodeHttpTransport();
  for (let i = 0; i < 5; i++) await transport.post(`${url}/v1/workers/w1/ack`, {}, { rev: i });
  assert.equal(sockets.size, 1);
  await stop(server);
});

test('a client over real HTTP with nodeHttpTransport gets ready, acks, and close() ends the stream', async () => {
  const acked = deferred<unknown>();
  const streamClosed = deferred<void>();
  const { url, server } = await serve((req, res, body) => {
    if (req.url?.startsWith('/v1/stream')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse('snapshot', snapshot(9)));
      res.on('close', () => streamClosed.resolve());
      return;
    }
    if (req.url === '/v1/workers/w-node/ack') acked.resolve(JSON.parse(body));
    res.writeHead(204);
    res.end();
  });
  const client = connect({
    url,
    token: 'tok',
    tenant: 't1',
    agent: 'a1',
    workerId: 'w-node',
    transport: nodeHttpTransport(),
  });
  await client.ready;
  const run = client.startRun({ runId: 'r1' });
  assert.equal(run.check('llm').kind, 'allow');
  assert.deepEqual(await acked.promise, { rev: 9 });
  await client.close();
  await streamClosed.promise;
  assert.equal(run.check('llm').kind, 'deny');
  await stop(server);
});
