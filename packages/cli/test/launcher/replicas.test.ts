/**
 * The launcher with several control-plane URLs (replicas of one control plane): its orders link
 * moves to the next replica when one is unreachable or lost, its reports go to the next replica
 * on a failed try, and its agent is given every URL (`KILLPATH_URL=a,b`) with egress to each one
 * allowed. Real HTTP servers on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LauncherOrders } from '@killpath/protocol';
import { AgentEgress } from '../../src/launcher/agent-egress.ts';
import { OrdersLink, reportLauncherEvents } from '../../src/launcher/orders-link.ts';

async function listen(handler: (path: string, res: ServerResponse) => void): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    handler(req.url ?? '', res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return server;
}
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
async function close(s: Server): Promise<void> {
  s.closeAllConnections();
  await new Promise<void>((ok) => s.close(() => ok()));
}
async function deadUrl(): Promise<string> {
  const s = await listen(() => {});
  const url = urlOf(s);
  await close(s);
  return url;
}

const orders = (rev: number): LauncherOrders =>
  ({ type: 'orders', rev, kill: null, freeze: null, halt: null, isolate: null }) as LauncherOrders;

test('the orders link passes over a dead replica, and moves to another when its replica goes', async () => {
  const streams: string[] = [];
  const replica = (name: string, rev: number) =>
    listen((path, res) => {
      if (!path.startsWith('/v1/launchers/stream')) return void res.end();
      streams.push(name);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: orders\ndata: ${JSON.stringify(orders(rev))}\n\n`);
    });
  const a = await replica('a', 1);
  const b = await replica('b', 2);
  const dead = await deadUrl();
  const states: string[] = [];
  const seen: number[] = [];
  const link = new OrdersLink({
    url: [dead, urlOf(a), urlOf(b)],
    token: 't',
    launcherId: 'l1',
    tenant: 'acme',
    agent: 'bot',
    runId: null,
    features: [],
    onOrders: (o) => seen.push(o.rev),
    onState: (s, detail) => states.push(`${s} ${detail}`),
  });
  try {
    link.start();
    const first = await link.first(10_000);
    assert.equal(first.rev, 1, 'orders from A, after the dead URL');
    assert.deepEqual(streams, ['a']);
    assert.match(states[0]!, /^disconnected /);
    await close(a);
    const deadline = Date.now() + 10_000;
    while (!seen.includes(2) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
    assert.deepEqual(seen, [1, 2], 'orders from B once A went');
    assert.deepEqual(streams, ['a', 'b']);
  } finally {
    link.close();
    await close(b);
    if (a.listening) await close(a);
  }
});

test('launcher reports go to the next replica on a failed try; the agent is given every URL, none of them through its proxy', async () => {
  const got: string[] = [];
  const b = await listen((path, res) => {
    got.push(path);
    res.writeHead(204);
    res.end();
  });
  const dead = await deadUrl();
  const errors: string[] = [];
  await reportLauncherEvents(
    [dead, urlOf(b)],
    't',
    'l1',
    [{ type: 'process.started' }],
    (m) => errors.push(m),
    'acme',
  );
  assert.deepEqual(got, ['/v1/launchers/l1/events?tenant=acme']);
  assert.deepEqual(errors, []);

  const events: string[] = [];
  const egress = await AgentEgress.start({
    url: ['http://127.0.0.1:7070', 'http://cp-b.internal:7071'],
    netns: false,
    onEvent: (e) => events.push(`${e.kind} ${e.host}:${e.port}`),
    voice: { say: () => {} } as never,
  });
  try {
    const routes = egress.routes();
    assert.equal(routes.url, 'http://127.0.0.1:7070,http://cp-b.internal:7071');
    assert.equal(routes.noProxy, '127.0.0.1,cp-b.internal');
  } finally {
    await egress.close();
  }
  await close(b);
});
