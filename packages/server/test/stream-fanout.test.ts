/**
 * The hub's fan-out: each distinct frame of a rev is serialised and encoded once and the same
 * bytes go to every stream it reaches (a directive of another tenant as a bare rev step, as
 * before), and on the wire a worker stream is still a well-formed chunked HTTP/1.1 body of SSE
 * events in rev order, whether a frame went through the response or straight to the socket. The
 * event-loop delay the benchmarks print is also on /metrics.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { SseFrame, StreamHub, type StreamSink } from '../src/stream/hub.ts';
import { liveServer } from './live-server.ts';
import { ManualClock } from '@killpath/sdk/testing';
import type { Directive } from '@killpath/protocol';

function directive(id: string, tenant: string | null, rev: number): Directive {
  return {
    id,
    rev,
    level: 'halt',
    scope: tenant === null ? { kind: 'global' } : { kind: 'tenant', tenant },
    scopeText: tenant === null ? 'global' : `tenant:${tenant}`,
    tenant,
    capabilities: null,
    rate: null,
    graceMs: 5000,
    drain: 'discard',
    memory: 'revert',
    reason: 'test',
    justification: 'test',
    actor: 'test',
    issuedAt: '2026-01-01T00:00:00.000Z',
    clearedAt: null,
    clearedRev: null,
  } as unknown as Directive;
}

describe('hub fan-out', () => {
  it('a keep-alive follows the last message by one interval: every publish defers it, however long since the last keep-alive', async () => {
    const clock = new ManualClock();
    const hub = new StreamHub(1000, 0, Date.now, clock);
    const sent: string[] = [];
    await hub.attach(
      {
        workerId: 'w1',
        tenant: 'acme',
        write: () => true,
        writeFrame: (f) => (
          sent.push(`${clock.now()} ${f.text.split('\n')[0]!.slice('event: '.length)}`),
          true
        ),
        close() {},
      },
      async () => ({ rev: 0, directives: [] }),
    );
    const at = (t: number) => clock.advance(t - clock.now());
    at(1000);
    at(1500);
    hub.publish(1, { issued: directive('d1', 'acme', 1) });
    // Was due at 2000: the delta renewed every lease at 1500.
    at(2499);
    at(2500);
    at(2600);
    hub.publish(2, { cleared: directive('d1', 'acme', 1) });
    at(3500);
    // A full interval after the last keep-alive, but a delta goes out: deferred again, however
    // many intervals that makes since the last keep-alive.
    hub.publish(3, { issued: directive('d2', 'beta', 3) });
    at(3600);
    at(4400);
    hub.publish(4, { cleared: directive('d2', 'beta', 3) });
    at(6000);
    assert.deepEqual(sent, [
      '1000 keepalive',
      '1500 delta',
      '2500 keepalive',
      '2600 delta',
      '3500 delta',
      '4400 delta',
      '5400 keepalive',
    ]);
    hub.close();
    at(10_000);
    assert.equal(sent.length, 7, 'no keep-alive once closed');
  });

  it('a stream whose token expired gets no message after it and is closed within one interval, however keep-alives are deferred', async () => {
    const clock = new ManualClock();
    // One clock for both: the hub's wall time (token expiry) and its timers.
    const hub = new StreamHub(1000, 0, () => clock.now(), clock);
    const sent: string[] = [];
    let closedAt: number | null = null;
    await hub.attach(
      {
        workerId: 'w1',
        tenant: 'acme',
        expiresAt: clock.now() + 1200,
        write: () => true,
        writeFrame: (f) => (
          sent.push(`${clock.now()} ${f.text.split('\n')[0]!.slice('event: '.length)}`),
          true
        ),
        close: () => void (closedAt ??= clock.now()),
      },
      async () => ({ rev: 0, directives: [] }),
    );
    const at = (t: number) => clock.advance(t - clock.now());
    at(1000);
    at(1900);
    // Defers the keep-alive to 2900: the token, which expired at 1200, must not wait for it.
    hub.publish(1, { issued: directive('d1', 'acme', 1) });
    at(3000);
    assert.deepEqual(sent, ['1000 keepalive']);
    assert.ok(closedAt !== null && closedAt <= 2200, `closed at ${closedAt}, expired at 1200`);
    hub.close();
  });

  it('encodes each distinct frame once and shares it; tenants see their directives, others a bare rev', async () => {
    const hub = new StreamHub(60_000, 0);
    const got = new Map<string, SseFrame[]>();
    const texts: string[] = [];
    const sink = (workerId: string, tenant: string): StreamSink => ({
      workerId,
      tenant,
      // Only its own snapshot comes as text.
      write: (t) => (assert.match(t, /^event: snapshot\n/), true),
      writeFrame(f) {
        got.set(workerId, [...(got.get(workerId) ?? []), f]);
        return true;
      },
      close() {},
    });
    const board = async () => ({ rev: 0, directives: [] });
    for (const [w, t] of [
      ['a1', 'acme'],
      ['a2', 'acme'],
      ['b1', 'beta'],
    ] as const)
      await hub.attach(sink(w, t), board);
    // A sink without writeFrame still gets the text.
    await hub.attach(
      {
        workerId: 'plain',
        tenant: 'acme',
        write: (t) => (texts.push(t), true),
        close() {},
      },
      board,
    );
    texts.length = 0;

    hub.publish(1, { issued: directive('d_acme', 'acme', 1) });
    hub.publish(2, { issued: directive('d_all', null, 2) });

    const [a1, a2, b1] = [got.get('a1')!, got.get('a2')!, got.get('b1')!];
    assert.equal(a1[0], a2[0], 'one frame object for both acme streams');
    assert.notEqual(a1[0], b1[0]);
    assert.equal(a1[1], b1[1], 'a directive spanning every tenant: one frame for all');
    assert.equal(a1[0]!.bytes, a1[0]!.bytes, 'bytes encoded once');
    assert.deepEqual(JSON.parse(a1[0]!.text.split('data: ')[1]!), {
      type: 'delta',
      rev: 1,
      issued: JSON.parse(a1[0]!.text.split('data: ')[1]!).issued,
    });
    assert.equal(JSON.parse(a1[0]!.text.split('data: ')[1]!).issued.id, 'd_acme');
    assert.equal(b1[0]!.text, 'event: delta\ndata: {"type":"delta","rev":1}\n\n');
    assert.equal(JSON.parse(b1[1]!.text.split('data: ')[1]!).issued.id, 'd_all');
    assert.deepEqual(texts, [a1[0]!.text, a1[1]!.text]);
    const chunk = a1[0]!.chunk.toString('utf8');
    assert.equal(chunk, `${Buffer.byteLength(a1[0]!.text).toString(16)}\r\n${a1[0]!.text}\r\n`);
    hub.close();
  });

  it('a worker stream is a well-formed chunked body: snapshot, deltas in rev order, bare steps for other tenants', async () => {
    const live = await liveServer();
    const admin = live.server.createdAdminToken!;
    const agent = await live.token('agent', 'acme', 'bot');
    const socket = connect(Number(new URL(live.url).port), '127.0.0.1');
    let raw = Buffer.alloc(0);
    socket.on('data', (b: Buffer) => (raw = Buffer.concat([raw, b])));
    try {
      await new Promise<void>((ok) => socket.once('connect', () => ok()));
      socket.write(
        `GET /v1/stream?worker=w1&tenant=acme&agent=bot HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${agent}\r\n\r\n`,
      );
      const events = (): { event: string; data: { type: string; rev: number } & Record<string, unknown> }[] =>
        decodeSse(dechunk(raw));
      await until(() => events().length >= 1);
      const issue = async (tenant: string) => {
        const r = await live.call('POST', '/v1/directives', admin, {
          level: 'halt',
          scope: `tenant:${tenant}`,
          reason: 'test',
          justification: 'test',
        });
        assert.equal(r.status, 201);
        return (r.body as { directive: Directive }).directive;
      };
      const mine = await issue('acme');
      const theirs = await issue('beta');
      const resumed = await live.call('POST', `/v1/directives/${mine.id}/resume`, admin, {
        justification: 'test',
      });
      assert.equal(resumed.status, 200);
      await until(() => events().length >= 4);

      const head = raw.toString('latin1', 0, raw.indexOf('\r\n\r\n'));
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(head, /\r\ntransfer-encoding: chunked/i);
      assert.match(head, /\r\ncontent-type: text\/event-stream/i);
      const got = events();
      assert.deepEqual(
        got.map((e) => [e.event, e.data.type, e.data.rev]),
        [
          ['snapshot', 'snapshot', mine.rev - 1],
          ['delta', 'delta', mine.rev],
          ['delta', 'delta', theirs.rev],
          ['delta', 'delta', theirs.rev + 1],
        ],
      );
      assert.equal((got[1]!.data.issued as { id: string }).id, mine.id);
      assert.deepEqual(got[2]!.data, { type: 'delta', rev: theirs.rev }, "another tenant's halt: a bare rev");
      assert.equal(got[3]!.data.cleared, mine.id);
    } finally {
      socket.destroy();
      await live.close();
    }
  });
});

describe('event-loop lag on /metrics', () => {
  it('exposes the loop delay p99 and max (the kill path must see its own stalls)', async () => {
    const live = await liveServer();
    try {
      const r = await live.call('GET', '/metrics', live.server.createdAdminToken!);
      assert.equal(r.status, 200);
      const text = String(r.body);
      for (const name of ['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds'])
        assert.match(text, new RegExp(`^${name} [0-9.e+-]+$`, 'm'), `${name} is exported`);
    } finally {
      await live.close();
    }
  });
});

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((ok) => setTimeout(ok, 10));
  assert.ok(done(), 'the stream delivered in time');
}

/** The body of a chunked HTTP/1.1 response, decoded strictly (throws on a malformed chunk); an unfinished last chunk is left out. */
function dechunk(raw: Buffer): Buffer {
  let at = raw.indexOf('\r\n\r\n');
  if (at < 0) return Buffer.alloc(0);
  at += 4;
  const parts: Buffer[] = [];
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) break;
    const sizeText = raw.toString('latin1', at, eol);
    assert.match(sizeText, /^[0-9a-f]+$/, `a chunk size line, got ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    if (eol + 2 + size + 2 > raw.length) break;
    assert.equal(raw.toString('latin1', eol + 2 + size, eol + 4 + size), '\r\n', 'each chunk ends with CRLF');
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 4 + size;
  }
  return Buffer.concat(parts);
}

function decodeSse(
  body: Buffer,
): { event: string; data: { type: string; rev: number } & Record<string, unknown> }[] {
  return body
    .toString('utf8')
    .split('\n\n')
    .slice(0, -1)
    .filter((e) => !e.startsWith(':'))
    .map((e) => ({
      event: /^event: (.*)$/m.exec(e)![1]!,
      data: JSON.parse(/^data: (.*)$/m.exec(e)![1]!) as { type: string; rev: number },
    }));
}
