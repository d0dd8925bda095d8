import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, isIPv6, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { prepareUnixPath } from './netns.ts';

/**
 * One egress attempt seen by the proxy. Every attempt produces a `start` event, allowed or
 * refused, as soon as it is decided; an allowed one produces an `end` event with its byte
 * counts when it is over (a CONNECT tunnel ends when either side closes it).
 */
export interface EgressEvent {
  /** ISO wall-clock time of the event. */
  at: string;
  /** `http`: a plain HTTP request through the proxy; `connect`: a CONNECT tunnel (HTTPS or any TCP). */
  kind: 'http' | 'connect';
  /** `start` when decided, `end` when an allowed attempt is over. */
  phase: 'start' | 'end';
  /** Destination host as the agent named it (IPv6 without brackets), lower-cased. */
  host: string;
  port: number;
  allowed: boolean;
  /**
   * Why it was refused (`isolated`) or how an allowed one ended abnormally (`isolated` when cut
   * by {@link EgressProxy.isolate}, `closed` when the proxy closed, `upstream: <code>` when the
   * destination failed); null otherwise.
   */
  reason: string | null;
  /** Bytes the agent sent (request body, or tunnel bytes up); on `end` events. */
  bytesUp?: number;
  /** Bytes the destination sent (response body, or tunnel bytes down); on `end` events. */
  bytesDown?: number;
}

/** Options of {@link EgressProxy.start}. */
export interface EgressProxyOptions {
  /** TCP host to listen on. Default `127.0.0.1`. */
  host?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /**
   * Also listen on this unix socket path (netns mode, see `AgentNetns`). Given alone, without
   * `host` or `port`, the proxy listens only there and {@link EgressProxy.url} is null.
   */
  unixPath?: string;
  /** Called synchronously for every event; a throwing callback is ignored. */
  onEvent?: (e: EgressEvent) => void;
  /**
   * Destinations that pass even while isolated (e.g. the control plane), and whose open
   * connections `isolate()` leaves alone. Default: none.
   */
  allow?: (host: string, port: number) => boolean;
}

/** One allowed exchange in progress, cut by isolate() or close(). */
interface Flow {
  host: string;
  port: number;
  cut(reason: string): void;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection, never forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function endToEndHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const listed = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase()),
  );
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && !listed.has(name)) out[name] = value;
  }
  return out;
}

function key(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `host:port` or `[v6]:port` of a CONNECT request line, or null when malformed. */
function parseAuthority(authority: string): { host: string; port: number } | null {
  const m =
    /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(authority) ?? /^([A-Za-z0-9.\-_]+):(\d{1,5})$/.exec(authority);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) return null;
  return { host: (m[1] as string).toLowerCase(), port };
}

function statusLine(code: number, text: string, body: string): string {
  return `HTTP/1.1 ${code} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

const ISOLATED_BODY =
  'killpath: egress isolated by the control plane; this agent may not reach the network\n';

/**
 * The launcher's HTTP forward proxy: the isolation point for the agent's egress. Plain HTTP
 * (absolute-URI requests) and CONNECT tunnels; every attempt is an {@link EgressEvent}.
 * `isolate()` refuses new attempts with 403 and cuts what is open; `release()` lifts that.
 */
export class EgressProxy {
  readonly #servers: Server[] = [];
  #url: string | null = null;
  readonly #unixPath: string | null;
  readonly #onEvent: (e: EgressEvent) => void;
  readonly #allow: (host: string, port: number) => boolean;
  readonly #flows = new Set<Flow>();
  readonly #destinations = new Map<string, number>();
  #isolated = false;
  #closed: Promise<void> | null = null;

  private constructor(opts: EgressProxyOptions) {
    this.#unixPath = opts.unixPath ?? null;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#allow = opts.allow ?? (() => false);
  }

  /** Starts listening; throws `KillpathError` for a bad or busy `unixPath`, or the listen error. */
  static async start(opts: EgressProxyOptions = {}): Promise<EgressProxy> {
    const tcp = opts.unixPath === undefined || opts.host !== undefined || opts.port !== undefined;
    const proxy = new EgressProxy(opts);
    const listen = (server: Server, target: { host: string; port: number } | string) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const done = () => {
          server.off('error', reject);
          resolve();
        };
        if (typeof target === 'string') server.listen(target, done);
        else server.listen(target, done);
      });
    const make = () => {
      // No overall request deadline: a long upload through the proxy is the agent's business.
      const server = createServer({ requestTimeout: 0 });
      server.on('request', (req, res) => proxy.#onRequest(req, res));
      server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) =>
        proxy.#onConnect(req, socket, head),
      );
      server.on('clientError', (_err, socket) => {
        if (socket.writable)
          socket.end(statusLine(400, 'Bad Request', 'killpath egress proxy: malformed request\n'));
        else socket.destroy();
      });
      proxy.#servers.push(server);
      return server;
    };
    try {
      if (tcp) {
        const host = opts.host ?? '127.0.0.1';
        const server = make();
        await listen(server, { host, port: opts.port ?? 0 });
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        proxy.#url = `http://${isIPv6(host) ? `[${host}]` : host}:${port}`;
      }
      if (opts.unixPath !== undefined) {
        await prepareUnixPath(opts.unixPath);
        await listen(make(), opts.unixPath);
      }
    } catch (err) {
      for (const server of proxy.#servers) server.close();
      throw err;
    }
    return proxy;
  }

  /** `http://host:port` of the TCP listener, or null when listening only on a unix socket. */
  get url(): string | null {
    return this.#url;
  }

  /** True between {@link isolate} and {@link release}. */
  get isolated(): boolean {
    return this.#isolated;
  }

  /**
   * Refuses every new attempt (HTTP 403 with a plain-text body; CONNECT answered 403) except to
   * `allow`ed destinations, and destroys every open tunnel and in-flight proxied request to
   * other destinations. Returns how many it cut. Idempotent.
   */
  isolate(): number {
    this.#isolated = true;
    let cut = 0;
    for (const flow of [...this.#flows]) {
      if (this.#allow(flow.host, flow.port)) continue;
      flow.cut('isolated');
      cut++;
    }
    return cut;
  }

  /** Lifts the isolation: new attempts pass again. */
  release(): void {
    this.#isolated = false;
  }

  /** Destinations reached so far (an upstream connection was made): `host:port` → count. A copy. */
  destinations(): Map<string, number> {
    return new Map(this.#destinations);
  }

  /** Stops listening, cuts every open flow and removes the unix socket file. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const flow of [...this.#flows]) flow.cut('closed');
      await Promise.all(
        this.#servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      if (this.#unixPath !== null) rmSync(this.#unixPath, { force: true });
    })();
    return this.#closed;
  }

  #emit(event: Omit<EgressEvent, 'at'>): void {
    try {
      this.#onEvent({ at: new Date().toISOString(), ...event });
    } catch {
      // An observer's bug must not take the isolation point down.
    }
  }

  /** Emits the start event and says whether the attempt may go on. */
  #decide(kind: EgressEvent['kind'], host: string, port: number): boolean {
    const allowed = !this.#isolated || this.#allow(host, port);
    this.#emit({ kind, phase: 'start', host, port, allowed, reason: allowed ? null : 'isolated' });
    return allowed;
  }

  #reached(host: string, port: number): void {
    const k = key(host, port);
    this.#destinations.set(k, (this.#destinations.get(k) ?? 0) + 1);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    let target: URL | null = null;
    try {
      target = new URL(req.url ?? '');
    } catch {
      // Origin-form ("/path") or garbage: this is a proxy, not an origin server.
    }
    if (!target || target.protocol !== 'http:' || target.hostname === '') {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('killpath egress proxy: expected an absolute http:// URI (use CONNECT for https)\n');
      return;
    }
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    const port = target.port === '' ? 80 : Number(target.port);
    if (!this.#decide('http', host, port)) {
      req.resume();
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(ISOLATED_BODY);
      return;
    }
    let bytesUp = 0;
    let bytesDown = 0;
    let reason: string | null = null;
    const upstream = httpRequest({
      host,
      port,
      method: req.method,
      path: `${target.pathname}${target.search}`,
      headers: endToEndHeaders(req.headers),
      // One fresh connection per request: nothing pooled survives isolate().
      agent: false,
      setHost: false,
    });
    const flow: Flow = {
      host,
      port,
      cut: (why) => {
        reason ??= why;
        upstream.destroy();
        res.destroy();
      },
    };
    this.#flows.add(flow);
    upstream.on('socket', (socket) => socket.once('connect', () => this.#reached(host, port)));
    upstream.on('response', (up) => {
      up.on('data', (chunk: Buffer) => (bytesDown += chunk.length));
      up.on('error', () => res.destroy());
      res.writeHead(up.statusCode ?? 502, endToEndHeaders(up.headers));
      up.pipe(res);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      reason ??= `upstream: ${err.code ?? err.message}`;
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(`killpath egress proxy: cannot reach ${key(host, port)}: ${err.code ?? err.message}\n`);
      } else {
        res.destroy();
      }
    });
    req.on('data', (chunk: Buffer) => (bytesUp += chunk.length));
    req.on('error', () => upstream.destroy());
    req.pipe(upstream);
    res.once('close', () => {
      // The client went away, or the response is done: either way the upstream is finished.
      if (!res.writableFinished) upstream.destroy();
      this.#flows.delete(flow);
      this.#emit({ kind: 'http', phase: 'end', host, port, allowed: true, reason, bytesUp, bytesDown });
    });
  }

  #onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      socket.end(statusLine(400, 'Bad Request', 'killpath egress proxy: CONNECT needs host:port\n'));
      return;
    }
    const { host, port } = target;
    if (!this.#decide('connect', host, port)) {
      socket.end(statusLine(403, 'Forbidden', ISOLATED_BODY));
      return;
    }
    let bytesUp = head.length;
    let bytesDown = 0;
    let reason: string | null = null;
    let established = false;
    const upstream = connect({ host, port });
    upstream.on('error', () => {});
    const flow: Flow = {
      host,
      port,
      cut: (why) => {
        reason ??= why;
        upstream.destroy();
        socket.destroy();
      },
    };
    this.#flows.add(flow);
    upstream.once('connect', () => {
      established = true;
      this.#reached(host, port);
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      socket.on('data', (chunk: Buffer) => (bytesUp += chunk.length));
      upstream.on('data', (chunk: Buffer) => (bytesDown += chunk.length));
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      reason ??= `upstream: ${err.code ?? err.message}`;
      if (!established)
        socket.end(
          statusLine(
            502,
            'Bad Gateway',
            `killpath egress proxy: cannot reach ${key(host, port)}: ${err.code ?? err.message}\n`,
          ),
        );
    });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      upstream.destroy();
      socket.destroy();
      this.#flows.delete(flow);
      this.#emit({ kind: 'connect', phase: 'end', host, port, allowed: true, reason, bytesUp, bytesDown });
    };
    socket.once('close', end);
    upstream.once('close', () => {
      // Before the tunnel exists, the 502 above must reach the client first.
      if (established) end();
    });
  }
}
