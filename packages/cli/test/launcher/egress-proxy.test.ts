import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  createServer as createHttpServer,
  request,
  type IncomingMessage,
  type Server as HttpServer,
} from 'node:http';
import {
  connect,
  createServer as createTcpServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { EgressProxy, type EgressEvent } from '../../src/launcher/egress-proxy.ts';

/** Listens on 127.0.0.1:0 and closes after the test. */
async function listen<S extends Server | HttpServer>(t: TestContext, server: S): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    (server as HttpServer).closeAllConnections?.();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** An origin server answering `hello <path>`. */
async function origin(t: TestContext): Promise<number> {
  return listen(
    t,
    createHttpServer((req, res) => res.end(`hello ${req.url}`)),
  );
}

/** A TCP echo server (the far end of CONNECT tunnels). */
async function echo(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  return listen(t, server);
}

async function startProxy(
  t: TestContext,
  opts: Parameters<typeof EgressProxy.start>[0] = {},
): Promise<{ proxy: EgressProxy; port: number; events: EgressEvent[] }> {
  const events: EgressEvent[] = [];
  const proxy = await EgressProxy.start({ ...opts, onEvent: (e) => events.push(e) });
  t.after(() => proxy.close());
  assert.match(proxy.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  return { proxy, port: Number(new URL(proxy.url as string).port), events };
}

/** A GET through the proxy (absolute URI, as an HTTP_PROXY-aware client sends it). */
async function viaProxy(proxyPort: number, url: string): Promise<{ status: number; body: string }> {
  const req = request({
    host: '127.0.0.1',
    port: proxyPort,
    path: url,
    headers: { host: new URL(url).host },
    agent: false,
  });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, body };
}

/** Opens a CONNECT tunnel; resolves with the status and, on 200, the tunnel socket. */
async function tunnel(proxyPort: number, target: string): Promise<{ status: number; socket: Socket }> {
  const req = request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: target, agent: false });
  req.end();
  const [res, socket] = (await once(req, 'connect')) as [IncomingMessage, Socket];
  socket.on('error', () => {});
  return { status: res.statusCode ?? 0, socket };
}

async function roundTrip(socket: Socket, text: string): Promise<string> {
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString();
}

/** Raw bytes to the proxy; resolves with everything it answered before closing. */
async function raw(proxyPort: number, bytes: string): Promise<string> {
  const socket = connect(proxyPort, '127.0.0.1');
  socket.write(bytes);
  let answer = '';
  socket.on('data', (chunk) => (answer += String(chunk)));
  socket.on('error', () => {});
  await once(socket, 'close');
  return answer;
}

test(
  'requests pass and are recorded; isolate() refuses new ones and cuts open tunnels; release() restores',
  { timeout: 15_000 },
  async (t) => {
    const originPort = await origin(t);
    const echoPort = await echo(t);
    const { proxy, port, events } = await startProxy(t);

    const ok = await viaProxy(port, `http://127.0.0.1:${originPort}/a?b=1`);
    assert.deepEqual(ok, { status: 200, body: 'hello /a?b=1' });
    assert.equal(proxy.destinations().get(`127.0.0.1:${originPort}`), 1);

    const open = await tunnel(port, `127.0.0.1:${echoPort}`);
    assert.equal(open.status, 200);
    assert.equal(await roundTrip(open.socket, 'ping'), 'ping');
    assert.equal(proxy.destinations().get(`127.0.0.1:${echoPort}`), 1);

    const closed = once(open.socket, 'close');
    const t0 = performance.now();
    const cut = proxy.isolate();
    await closed;
    const isolateMs = Math.round((performance.now() - t0) * 100) / 100;
    console.log(
      `# isolate latency: isolate() -> tunnel socket 'close' at the client in ${isolateMs} ms (${cut} cut)`,
    );
    assert.equal(cut, 1);
    assert.equal(proxy.isolated, true);

    const refused = await viaProxy(port, `http://127.0.0.1:${originPort}/after`);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /isolated/);
    const refusedTunnel = await tunnel(port, `127.0.0.1:${echoPort}`);
    assert.equal(refusedTunnel.status, 403);
    refusedTunnel.socket.destroy();

    proxy.release();
    assert.equal(proxy.isolated, false);
    assert.equal((await viaProxy(port, `http://127.0.0.1:${originPort}/again`)).status, 200);
    assert.equal(proxy.destinations().get(`127.0.0.1:${originPort}`), 2);

    // Every attempt is on the record, refused ones included; allowed ones end with byte counts.
    await proxy.close();
    const starts = events.filter((e) => e.phase === 'start').map((e) => `${e.kind} ${e.port} ${e.allowed}`);
    assert.deepEqual(starts, [
      `http ${originPort} true`,
      `connect ${echoPort} true`,
      `http ${originPort} false`,
      `connect ${echoPort} false`,
      `http ${originPort} true`,
    ]);
    assert.ok(events.filter((e) => !e.allowed).every((e) => e.reason === 'isolated'));
    const tunnelEnd = events.find((e) => e.kind === 'connect' && e.phase === 'end');
    assert.deepEqual([tunnelEnd?.reason, tunnelEnd?.bytesUp, tunnelEnd?.bytesDown], ['isolated', 4, 4]);
    const firstEnd = events.find((e) => e.kind === 'http' && e.phase === 'end');
    assert.deepEqual([firstEnd?.reason, firstEnd?.bytesDown], [null, 'hello /a?b=1'.length]);
  },
);

test('isolate() cuts an in-flight proxied HTTP request', { timeout: 15_000 }, async (t) => {
  // An origin that sends headers and a first chunk, then keeps the response open.
  const slow = await listen(
    t,
    createHttpServer((_req, res) => {
      res.writeHead(200);
      res.write('partial');
    }),
  );
  const { proxy, port } = await startProxy(t);
  const req = request({ host: '127.0.0.1', port, path: `http://127.0.0.1:${slow}/stream`, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.on('error', () => {});
  await once(res, 'data');
  const closed = new Promise((resolve) => res.once('close', resolve));
  assert.equal(proxy.isolate(), 1);
  await closed;
  assert.equal(res.complete, false, 'the response was cut, not finished');
});

test(
  'allowed destinations pass while isolated and their open tunnels survive isolate()',
  { timeout: 15_000 },
  async (t) => {
    const controlPlane = await origin(t);
    const controlStream = await echo(t);
    const other = await origin(t);
    const { proxy, port } = await startProxy(t, {
      allow: (host, p) => host === '127.0.0.1' && (p === controlPlane || p === controlStream),
    });
    const stream = await tunnel(port, `127.0.0.1:${controlStream}`);
    assert.equal(stream.status, 200);
    assert.equal(proxy.isolate(), 0);
    assert.equal(await roundTrip(stream.socket, 'still here'), 'still here');
    assert.deepEqual(await viaProxy(port, `http://127.0.0.1:${controlPlane}/v1/stream`), {
      status: 200,
      body: 'hello /v1/stream',
    });
    assert.equal((await viaProxy(port, `http://127.0.0.1:${other}/`)).status, 403);
    stream.socket.destroy();
  },
);

test('malformed input gets 400 and the proxy keeps serving', { timeout: 15_000 }, async (t) => {
  const originPort = await origin(t);
  const { port } = await startProxy(t);
  assert.match(await raw(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await raw(port, 'CONNECT nonsense HTTP/1.1\r\nhost: x\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await raw(port, 'CONNECT 127.0.0.1:99999 HTTP/1.1\r\nhost: x\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(
    await raw(port, 'GET /origin-form HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'),
    /^HTTP\/1\.1 400/,
  );
  assert.match(
    await raw(port, 'GET https://127.0.0.1/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'),
    /^HTTP\/1\.1 400/,
  );
  // An unreachable destination is a 502, also not a crash.
  const gone = createTcpServer().listen(0, '127.0.0.1');
  await once(gone, 'listening');
  const closedPort = (gone.address() as AddressInfo).port;
  await new Promise((resolve) => gone.close(resolve));
  const unreachable = await viaProxy(port, `http://127.0.0.1:${closedPort}/`);
  assert.equal(unreachable.status, 502);
  assert.match(unreachable.body, /ECONNREFUSED/);
  assert.equal((await tunnel(port, `127.0.0.1:${closedPort}`)).status, 502);
  assert.equal((await viaProxy(port, `http://127.0.0.1:${originPort}/ok`)).status, 200);
});
