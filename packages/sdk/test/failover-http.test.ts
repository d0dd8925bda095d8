import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server, ServerResponse } from 'node:http';
import type { Directive } from '@killpath/protocol';
import { connect } from '../src/index.ts';
import { spread } from '../src/replicas.ts';
import { MemorySink } from '../src/testing.ts';
import { directive, snapshot } from './fixtures.ts';
import { serve, sse, stop } from './http-fixtures.ts';

/**
 * A replica double on a real HTTP server: it streams its own switchboard (a snapshot at its
 * rev, deltas as the test issues them, keep-alives every 100 ms) and grants a write permit
 * unless one of its directives halts the run.
 */
async function replica(name: string): Promise<{
  name: string;
  url: string;
  server: Server;
  permits: { runId: string; seenRev: number }[];
  streams: number;
  issue(d: Directive): void;
}> {
  const streams = new Set<ServerResponse>();
  const state = { rev: 1, directives: [] as Directive[] };
  const permits: { runId: string; seenRev: number }[] = [];
  let opened = 0;
  const { url, server } = await serve((req, res, body) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/v1/stream') {
      opened += 1;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse('snapshot', snapshot(state.rev, state.directives)));
      streams.add(res);
      const beat = setInterval(() => res.write(sse('keepalive', { type: 'keepalive', rev: state.rev })), 100);
      res.on('close', () => {
        clearInterval(beat);
        streams.delete(res);
      });
      return;
    }
    if (path === '/v1/permits') {
      const { runId, seenRev } = JSON.parse(body) as { runId: string; seenRev: number };
      permits.push({ runId, seenRev });
      const halt = state.directives.find((d) => d.scopeText === `run:${runId}`);
      res.writeHead(halt === undefined ? 201 : 409, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          halt === undefined
            ? {
                permit: {
                  id: `p-${name}-${permits.length}`,
                  rev: state.rev,
                  runId,
                  capability: 'crm.update',
                  class: 'write',
                  idempotencyKey: null,
                  status: 'granted',
                  confirmAfter: null,
                  coolOffMs: 0,
                },
                replay: false,
              }
            : {
                error: {
                  code: 'halted',
                  message: 'halted',
                  details: { directiveId: halt.id, rev: halt.rev },
                },
              },
        ),
      );
      return;
    }
    res.writeHead(204);
    res.end();
  });
  return {
    name,
    url,
    server,
    permits,
    get streams() {
      return opened;
    },
    issue(d: Directive) {
      state.rev += 1;
      state.directives.push({ ...d, rev: state.rev });
      for (const s of streams)
        s.write(sse('delta', { type: 'delta', rev: state.rev, issued: { ...d, rev: state.rev } }));
    },
  };
}

/** A URL where nothing listens: a server's port, closed again. */
async function deadUrl(): Promise<string> {
  const { url, server } = await serve(() => {});
  await stop(server);
  return url;
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test(
  'over real HTTP: one replica dead at start, another dying later, the worker ends on the live one and never runs a covered effect',
  { timeout: 30_000 },
  async () => {
    const a = await replica('a');
    const b = await replica('b');
    const dead = await deadUrl();
    const urls = [dead, a.url, b.url];
    let workerId = '';
    for (let i = 0; spread(workerId, 3) !== 0 || workerId === ''; i++) workerId = `w${i}`;
    const sink = new MemorySink();
    const client = connect({
      url: urls,
      token: 'tok',
      tenant: 't1',
      agent: 'a1',
      workerId,
      leaseMs: 1_000,
      sink,
      logger: { warn: () => {} },
      telemetryMs: 0,
    });
    const servers = [a.server, b.server];
    let working = true;
    const covered = client.startRun({ runId: 'r1' });
    const other = client.startRun({ runId: 'r2' });
    const results = { r1: 0, r2: 0 };
    const loops = (['r1', 'r2'] as const).map(async (id) => {
      const run = id === 'r1' ? covered : other;
      while (working) {
        await run
          .effect({ capability: 'crm.update', class: 'write' }, () => (results[id] += 1))
          .catch(() => {});
        await run.effect({ capability: 'search', class: 'read' }, () => 0).catch(() => {});
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    try {
      await client.ready;
      // The dead URL was tried first and left for the next one.
      assert.equal(sink.ofType('stream.connected')[0]?.url, a.url);
      assert.ok(sink.ofType('stream.error').length >= 1);
      await until('writes on A', () => results.r1 > 0 && results.r2 > 0);

      a.issue(directive('d1', 'halt', 'run:r1'));
      await until('the halt applied', () => covered.check('llm').kind === 'deny');
      const haltApplied = sink.events.length;
      // B has not heard of the halt yet: its stream would hand a snapshot without it.
      await stop(a.server);
      await until('the stream on B', () => sink.ofType('stream.connected').some((e) => e.url === b.url));
      assert.equal(covered.check('llm').kind, 'deny', 'B behind: closed');
      await new Promise((r) => setTimeout(r, 300));
      b.issue(directive('d1', 'halt', 'run:r1'));
      const r2Before = results.r2;
      await until('uncovered writes on B', () => results.r2 > r2Before + 3);
      assert.equal(covered.check('llm').kind, 'deny');

      const after = sink.events.slice(haltApplied);
      assert.equal(
        after.filter((e) => e.type === 'effect.started' && e.runId === 'r1').length,
        0,
        'no effect of the covered run started after the halt, on any replica',
      );
      // A request asked before the halt may still reach B (A refused its connection); none asked after.
      assert.deepEqual(
        b.permits.filter((p) => p.runId === 'r1' && p.seenRev >= 2),
        [],
        'no covered permit asked of B once the halt was seen',
      );
      assert.ok(
        b.permits.some((p) => p.runId === 'r2'),
        'permits go to the replica the stream is on',
      );
      assert.deepEqual(
        sink.ofType('stream.behind').map((e) => e.seenRev),
        [2],
      );
    } finally {
      working = false;
      await Promise.all(loops);
      await client.close();
      for (const s of servers) if (s.listening) await stop(s);
    }
  },
);
