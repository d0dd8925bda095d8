/**
 * The launcher's orders link reads each frame with the protocol's schema (LauncherOrdersSchema,
 * InspectOrderSchema). Before, it took `JSON.parse(data) as LauncherOrders`: a frame whose kill
 * order was not a directive was handed to the enforcement as one. Now such a frame ends the
 * connection with a line naming the bad field, and the link reconnects for the orders afresh.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { formatScope, parseScope, type LauncherOrders } from '@killpath/protocol';
import { OrdersLink } from '../../src/launcher/orders-link.ts';

const scope = parseScope('agent:t1/a1');
const kill = {
  id: 'd1',
  rev: 2,
  level: 'kill',
  scope,
  scopeText: formatScope(scope),
  tenant: 't1',
  capabilities: null,
  rate: null,
  escalation: [],
  escalatedFrom: null,
  graceMs: 500,
  drain: 'discard',
  memory: 'revert',
  issuedAt: '2026-01-01T00:00:00.000Z',
  clearedAt: null,
  clearedRev: null,
} as const;

test('a malformed orders frame ends the connection naming the field; the next connection’s orders are taken', async () => {
  let connections = 0;
  const server = createServer((_req, res) => {
    connections += 1;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const orders =
      connections === 1
        ? { type: 'orders', rev: 2, kill: { ...kill, level: 'obliterate' }, isolate: null, halt: null }
        : {
            type: 'orders',
            rev: 2,
            kill: { ...kill, extra: 'dropped' },
            isolate: null,
            halt: null,
            freeze: null,
          };
    res.write(`event: orders\ndata: ${JSON.stringify(orders)}\n\n`);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const states: string[] = [];
  const got: LauncherOrders[] = [];
  const link = new OrdersLink({
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token: 'tok',
    launcherId: 'L',
    tenant: 't1',
    agent: 'a1',
    runId: null,
    features: [],
    onOrders: (o) => got.push(o),
    onState: (s, detail) => states.push(`${s} ${detail}`),
  });
  try {
    link.start();
    const first = await link.first(10_000);
    assert.deepEqual(first, { type: 'orders', rev: 2, kill, isolate: null, halt: null, freeze: null });
    assert.equal(got.length, 1, 'the malformed frame was never handed on');
    assert.ok(
      states.some((s) => /^disconnected launcher stream frame is malformed at kill\.level/.test(s)),
      states.join(' | '),
    );
  } finally {
    link.close();
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
});
