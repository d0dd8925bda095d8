import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KillpathError } from '@killpath/protocol';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { McpGateway } from './gateway.ts';
import type { GatewaySession } from './session.ts';

/** Largest request body the gateway reads, in bytes. */
const MAX_BODY = 4 * 1024 * 1024;

/** A running Streamable HTTP listener of a gateway. */
export interface HttpListener {
  /** The MCP endpoint, e.g. `http://127.0.0.1:43121/mcp`. */
  readonly url: string;
  /** Stops listening and closes every HTTP session (their upstream processes end). */
  close(): Promise<void>;
}

/** Options of {@link listenHttp}. */
export interface HttpOptions {
  /**
   * A session with no HTTP request open (its client went away without `DELETE`) for this long,
   * in ms, is closed and its upstream process ended. Default 1 800 000 (30 minutes).
   */
  sessionIdleMs?: number;
}

/** One HTTP session: its transport, its gateway session, and what keeps it from idling out. */
interface HttpSession {
  transport: StreamableHTTPServerTransport;
  session: GatewaySession;
  open: number;
  idle: ReturnType<typeof setTimeout> | null;
}

/** True for hosts that only this machine reaches. */
export function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === '::1' || host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Serves the gateway over MCP's Streamable HTTP transport at `/mcp` on a loopback address.
 * Each `initialize` opens a session (its own upstream process and a child run of the gateway's
 * run); `DELETE` ends it, and so does a client gone for `sessionIdleMs` (no request open). The listener has no authentication of its own,
 * so it binds loopback only and refuses requests whose `Host` is not its own address (DNS
 * rebinding). Bad requests get JSON-RPC errors with 4xx statuses, never a stack trace.
 * @throws KillpathError `invalid_request` for a host that is not loopback
 */
export async function listenHttp(
  gateway: McpGateway,
  host: string,
  port: number,
  options: HttpOptions = {},
): Promise<HttpListener> {
  const idleMs = options.sessionIdleMs ?? 1_800_000;
  if (!isLoopback(host)) {
    throw new KillpathError(
      'invalid_request',
      `--listen ${host}: the gateway's HTTP endpoint has no authentication of its own, so it listens on loopback only (127.0.0.1, ::1, localhost)`,
    );
  }
  const sessions = new Map<string, HttpSession>();
  /** Counts `res` as open for `s` until it closes; the session idles out once none is open. */
  const hold = (s: HttpSession, res: ServerResponse): void => {
    s.open += 1;
    if (s.idle !== null) clearTimeout(s.idle);
    s.idle = null;
    res.once('close', () => {
      s.open -= 1;
      if (s.open === 0) s.idle = setTimeout(() => void s.session.close(), idleMs);
    });
  };
  const allowedHosts = new Set<string>();
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, -32603, 'internal error of the gateway');
      process.stderr.write(`killpath mcp-gateway: ${(err as Error)?.message ?? String(err)}\n`);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/mcp') return reply(res, 404, -32601, 'not found: the MCP endpoint is /mcp');
    if (!allowedHosts.has(req.headers.host ?? '')) return reply(res, 403, -32600, 'forbidden host header');
    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const open = sessions.get(sid);
      if (!open) return reply(res, 404, -32001, 'session not found');
      hold(open, res);
      return open.transport.handleRequest(req, res);
    }
    if (req.method !== 'POST')
      return reply(res, 400, -32000, 'no session: start one with an initialize POST');
    const body = await readJson(req);
    if (body === TOO_LARGE) return reply(res, 413, -32600, `request body over ${MAX_BODY} bytes`);
    if (body === NOT_JSON) return reply(res, 400, -32700, 'parse error: the body is not JSON');
    if (!isInitializeRequest(body))
      return reply(res, 400, -32000, 'no session: start one with an initialize POST');
    let session: GatewaySession;
    try {
      session = await gateway.openSession(gateway.run.startChild());
    } catch (err) {
      return reply(res, 502, -32603, `the upstream MCP server did not start: ${(err as Error).message}`);
    }
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, entry),
    });
    const entry: HttpSession = { transport, session, open: 0, idle: null };
    hold(entry, res);
    void session.done.then(() => {
      if (entry.idle !== null) clearTimeout(entry.idle);
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
    });
    await session.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  for (const h of [hostPart, 'localhost', '127.0.0.1', '[::1]']) allowedHosts.add(`${h}:${bound}`);
  return {
    url: `http://${hostPart}:${bound}/mcp`,
    async close() {
      await Promise.allSettled([...sessions.values()].map((s) => s.session.close()));
      sessions.clear();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

const TOO_LARGE = Symbol('too large');
const NOT_JSON = Symbol('not json');

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return TOO_LARGE;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return NOT_JSON;
  }
}

function reply(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}
