/**
 * The CLI's API client reuses kept-alive connections. A control plane closes an idle one after
 * a few seconds; a request written on it at that moment is reset before the server read it. The
 * client sends it once more on a new connection instead of reporting "cannot reach".
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ApiClient } from '../../src/api.ts';

describe('ApiClient over kept-alive connections', () => {
  it('a request reset on a reused connection goes again on a new one', async () => {
    let connections = 0;
    const server = createServer((socket: Socket) => {
      connections += 1;
      const mine = connections;
      let requests = 0;
      let buf = '';
      socket.on('data', (b) => {
        buf += b.toString('latin1');
        while (buf.includes('\r\n\r\n')) {
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
          requests += 1;
          // The first connection answers once, then drops the second request unread (as a server
          // closing an idle keep-alive connection does); any other connection answers.
          if (mine === 1 && requests === 2) {
            socket.resetAndDestroy();
            return;
          }
          const body = JSON.stringify({ connection: mine, request: requests });
          socket.write(
            `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`,
          );
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const api = new ApiClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`, 'kp_test');
      assert.deepEqual(await api.get('/v1/fleet'), { connection: 1, request: 1 });
      assert.deepEqual(await api.post('/v1/directives', { level: 'halt' }), { connection: 2, request: 1 });
      assert.equal(connections, 2, 'the first connection was reused, then a new one opened');
    } finally {
      server.close();
    }
  });
});
