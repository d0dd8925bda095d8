import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatScope, parseScope, type LauncherOrders } from '@killpath/protocol';
import { ManualClock } from '@killpath/sdk/testing';
import { OrdersLink } from '../../src/launcher/orders-link.ts';

/** Orders as the control plane sends them (each frame is read with the protocol's schema). */
const orders = (rev: number, halted: boolean): LauncherOrders => {
  const scope = parseScope('agent:acme/bot');
  return {
    type: 'orders',
    rev,
    kill: null,
    isolate: null,
    halt: halted
      ? {
          id: 'd1',
          rev,
          level: 'halt',
          scope,
          scopeText: formatScope(scope),
          tenant: 'acme',
          capabilities: null,
          rate: null,
          escalation: [],
          escalatedFrom: null,
          graceMs: 1000,
          drain: 'discard',
          memory: 'revert',
          issuedAt: '2026-01-01T00:00:00.000Z',
          clearedAt: null,
          clearedRev: null,
        }
      : null,
    freeze: null,
  } as LauncherOrders;
};

/** Waits until `check` holds, polling once per event-loop turn (no timer). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (check()) return;
    await new Promise((ok) => setImmediate(ok));
  }
  assert.fail(`never: ${what}`);
}

test('the orders link runs on the SDK stream loop: a refusal is retried after the backoff, orders arrive, a dropped stream reconnects, silence reopens it', async () => {
  const requests: string[] = [];
  let open: ServerResponse | null = null;
  const server = createServer((req, res) => {
    requests.push(`${req.url} ${req.headers.authorization}`);
    const n = requests.length;
    if (n === 1) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unauthenticated', message: 'token revoked' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: orders\ndata: ${JSON.stringify(orders(n, n >= 3))}\n\n`);
    if (n === 2) res.end();
    else open = res;
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clock = new ManualClock();
  const states: string[] = [];
  const seen: LauncherOrders[] = [];
  const link = new OrdersLink({
    url,
    token: 'kp_secret',
    launcherId: 'L1',
    tenant: 'acme',
    agent: 'bot',
    runId: null,
    features: ['f1'],
    silenceMs: 10_000,
    clock,
    onOrders: (o) => seen.push(o),
    onState: (state, detail) => states.push(`${state}: ${detail}`),
  });
  try {
    link.start();
    await until(() => states.length === 1, 'the refusal is reported');
    assert.match(
      states[0]!,
      /^disconnected: launcher stream refused: .*token revoked.* \(unauthenticated, HTTP 401\)$/,
    );
    // Refused, not given up: the next attempt waits for the backoff (100 ms ± 20 %) on the clock.
    clock.advance(79);
    await new Promise((ok) => setImmediate(ok));
    assert.equal(requests.length, 1, 'no retry before the backoff');
    clock.advance(41);
    await until(() => seen.length === 1, 'the first orders');
    assert.equal(
      requests[1],
      '/v1/launchers/stream?launcher=L1&tenant=acme&agent=bot&features=f1 Bearer kp_secret',
    );
    assert.equal((await link.first(1000)).rev, 2);
    // The server ended that stream: reported, then reconnected after a backoff reset by the orders.
    await until(() => states.length === 3, 'the end is reported');
    assert.deepEqual(states.slice(1), [
      `connected: ${url}`,
      'disconnected: stream ended by the control plane',
    ]);
    clock.advance(120);
    await until(() => seen.length === 2, 'orders of the second connection');
    assert.equal(link.last?.halt?.id, 'd1');
    // A silent stream (no orders, no keep-alive for silenceMs) is dropped and reopened.
    clock.advance(10_000);
    await until(() => states.length === 5, 'the silence is reported');
    assert.equal(states[4], 'disconnected: stream silent for 10000 ms');
    clock.advance(120);
    await until(() => seen.length === 3, 'orders after the silence');
    assert.equal(requests.length, 4);
  } finally {
    link.close();
    (open as ServerResponse | null)?.end();
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
});
