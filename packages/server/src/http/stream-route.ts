import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { KillpathError, isIdentifier, parseRelease, type Principal, type Release } from '@killpath/protocol';
import { Fleet, workerKey } from '../fleet.ts';
import type { Logger } from '../log.ts';
import { refuseOtherLauncher } from './common.ts';
import type { Metrics } from '../metrics.ts';
import type { SwitchboardView } from '../switchboard-view.ts';
import type { SseFrame, StreamHub, StreamSink } from '../stream/hub.ts';

/** A stream whose unsent bytes exceed this is dropped (the worker reconnects for a fresh snapshot). */
const MAX_BACKLOG = 1 << 20;

/** What a worker's stream needs: the hub, the switchboard view (its snapshot, whether it vouches), the fleet view and the stream gauge. */
export interface StreamRouteDeps {
  readonly view: Pick<SwitchboardView, 'snapshot' | 'vouching'>;
  readonly hub: StreamHub;
  readonly fleet: Fleet;
  readonly metrics: Metrics;
}

/**
 * `GET /v1/stream?worker=W&tenant=T&agent=A&features=f1,f2&release=code=C,model=M,prompt=P`: the
 * push stream for one worker, which declares the features its runs use and the release it runs
 * (server-sent events). Only an agent token of that tenant (and agent, if the token names one)
 * or an admin may open it. Writes go straight to the Node response: the delta for a flip is
 * written to every stream synchronously after the commit.
 */
export async function openStream(
  c: Context<{ Bindings: HttpBindings; Variables: { principal: Principal } }>,
  deps: StreamRouteDeps,
  log: Logger,
): Promise<Response> {
  const { view, hub, fleet, metrics } = deps;
  const p = c.get('principal');
  const { id: workerId, tenant, agent, features, release } = streamQuery(c, 'worker');
  const allowed =
    p.role === 'admin' ||
    (p.role === 'agent' && p.tenant === tenant && (p.agent === null || p.agent === agent));
  if (!allowed) {
    if (p.role === 'agent')
      throw new KillpathError('forbidden', `this agent token may not open a stream for ${tenant}/${agent}`);
    throw new KillpathError('forbidden', 'only agent tokens open worker streams');
  }
  // The worker is this agent's: the same id used by another tenant or agent is another worker.
  const key = workerKey(tenant, agent, workerId);
  refuseOtherLauncher(fleet, p, key, workerId);
  if (!fleet.has(key) && fleet.countOf(tenant, agent) >= Fleet.MAX_WORKERS_PER_AGENT)
    throw new KillpathError(
      'conflict',
      `agent ${tenant}/${agent} already has ${Fleet.MAX_WORKERS_PER_AGENT} workers; a new worker id is refused until old ones are gone`,
    );

  if (!view.vouching)
    throw new KillpathError(
      'unavailable',
      "this control plane cannot vouch for its switchboard now (its store or the store's notifications are unreachable): connect to another replica",
    );
  const channel = openSse(c.env);
  const sink: StreamSink = {
    workerId,
    tenant,
    tokenId: p.tokenId,
    expiresAt: p.expiresAt === undefined ? null : Date.parse(p.expiresAt),
    write: channel.write,
    writeFrame: channel.writeFrame,
    close: channel.close,
  };
  const done = () => {
    hub.detach(sink);
    fleet.disconnected(key);
    metrics.streams.set(hub.size);
    log.debug('stream closed', { workerId, tenant, agent });
  };
  channel.onClose(done);
  fleet.connected(workerId, tenant, agent, features, release);
  try {
    await hub.attach(sink, async () => view.snapshot());
  } catch (err) {
    log.error('stream snapshot failed', { workerId, err: String(err) });
    sink.close();
  }
  metrics.streams.set(hub.size);
  log.debug('stream opened', { workerId, tenant, agent, features, release });
  return RESPONSE_ALREADY_SENT;
}

/** What a stream's query names: whose stream (worker or launcher id, tenant, agent), its run, features and release. */
export interface StreamQuery {
  id: string;
  tenant: string;
  agent: string;
  run: string | undefined;
  features: string[];
  release: Release | null;
}

/**
 * Reads and checks the query of a stream route: `<idName>`, `tenant` and `agent` identifiers,
 * an optional `run` identifier (when `withRun`), `features` (comma-separated identifiers) and
 * `release` (`code=C,model=M,prompt=P`).
 * @throws KillpathError `invalid_request` naming the first bad parameter.
 */
export function streamQuery(
  c: Context<{ Bindings: HttpBindings; Variables: { principal: Principal } }>,
  idName: 'worker' | 'launcher',
  withRun = false,
): StreamQuery {
  const id = c.req.query(idName) ?? '';
  const tenant = c.req.query('tenant') ?? '';
  const agent = c.req.query('agent') ?? '';
  const run = withRun ? c.req.query('run') : undefined;
  const featuresText = c.req.query('features') ?? '';
  const features = featuresText === '' ? [] : featuresText.split(',');
  for (const [name, v] of [
    [idName, id],
    ['tenant', tenant],
    ['agent', agent],
  ] as const) {
    if (!isIdentifier(v))
      throw new KillpathError('invalid_request', `query parameter ${name} must be an identifier`);
  }
  if (run !== undefined && !isIdentifier(run))
    throw new KillpathError('invalid_request', 'query parameter run must be an identifier');
  if (!features.every(isIdentifier))
    throw new KillpathError('invalid_request', 'features must be a comma-separated list of identifiers');
  const releaseText = c.req.query('release') ?? '';
  const release = releaseText === '' ? null : parseRelease(releaseText);
  return { id, tenant, agent, run, features, release };
}

/**
 * Opens a server-sent-events response on the Node socket (no delay, keep-alive) and returns its
 * writer: `write` returns false once unsent bytes exceed the backlog limit (the caller drops the
 * stream), `close` ends it, `onClose` runs once when the connection goes.
 *
 * `writeFrame` sends a shared frame's encoded bytes straight to the socket (one chunk of the
 * chunked body, encoded once for every stream): no per-stream string encoding, no chunk framing,
 * and the write leaves now rather than on the next tick. It falls back to `write` while the
 * response does not own its socket yet (a pipelined request).
 */
export function openSse(env: HttpBindings): {
  write(text: string): boolean;
  writeFrame(frame: SseFrame): boolean;
  close(): void;
  onClose(fn: () => void): void;
} {
  const res = env.outgoing;
  env.incoming.socket.setNoDelay(true);
  env.incoming.socket.setKeepAlive(true, 10_000);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  // The head leaves now: frames written to the socket later must follow it.
  res.flushHeaders();
  let open = true;
  res.on('close', () => {
    open = false;
  });
  const write = (text: string): boolean => {
    if (!open) return true;
    res.write(text);
    return res.writableLength < MAX_BACKLOG;
  };
  return {
    write,
    writeFrame(frame) {
      if (!open) return true;
      const socket = res.socket;
      if (socket === null || socket.destroyed) return write(frame.text);
      socket.write(res.chunkedEncoding ? frame.chunk : frame.bytes);
      return res.writableLength < MAX_BACKLOG;
    },
    close() {
      if (!open) return;
      open = false;
      res.end();
    },
    onClose(fn) {
      res.on('close', fn);
    },
  };
}
