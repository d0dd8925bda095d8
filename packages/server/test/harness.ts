import assert from 'node:assert/strict';
import { isWireError, type ErrorCode, type Release, type Role } from '@killpath/protocol';
import { Authenticator, mintToken } from '../src/auth/tokens.ts';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet } from '../src/fleet.ts';
import { createApp } from '../src/http/app.ts';
import type { Admission } from '../src/http/admission.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { tamperableStore } from './tamper.ts';
import type { Clock } from '@killpath/protocol';
import type { Doorbell } from '../src/doorbell.ts';
import { StreamHub } from '../src/stream/hub.ts';
import type { AutomationPolicy } from '../src/ladder.ts';
import type { AlertSink } from '../src/notify.ts';

/** A control plane on an in-memory store with its Hono app, driven without sockets. */
export interface Harness {
  store: SqliteStore;
  cp: ControlPlane;
  app: ReturnType<typeof createApp>;
  /** Mints a token and returns its secret. */
  token(role: Role, tenant: string, agent?: string, name?: string): Promise<string>;
  /** `app.request` with an optional bearer token and JSON body (a string body is sent as is). */
  req(
    method: string,
    path: string,
    opts?: { token?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
  close(): Promise<void>;
}

/** Builds the same wiring as `startServer`, minus the socket and the data dir. */
export async function harness(
  opts: {
    alerts?: AlertSink;
    escalationSlackMs?: number;
    automation?: AutomationPolicy;
    /** The authenticator's wall clock (ms), for token expiry. */
    now?: () => number;
    log?: Logger;
    /** Admission control in front of the routes (as `startServer` has); absent: none. */
    admission?: Admission;
    /** The fleet's monotonic clock (ms), for staleness and pruning. */
    fleetNow?: () => number;
    /** The control plane's clock (escalation deadlines); default the system clock. */
    clock?: Clock;
    /** What tells the switchboard view of other processes' commits; default the store's own. */
    doorbell?: Doorbell;
  } = {},
): Promise<Harness> {
  const store = tamperableStore();
  const metrics = new Metrics();
  const hub = new StreamHub(60_000, await store.rev());
  const { now, log: given, admission, fleetNow, ...cpOpts } = opts;
  const fleet = new Fleet(fleetNow);
  const log = given ?? createLogger('silent');
  const cp = new ControlPlane({ store, hub, fleet, metrics, log, keepaliveMs: 60_000, ...cpOpts });
  await cp.start();
  const app = createApp(cp, new Authenticator(store, now ? { now } : {}), log, undefined, {
    ...(admission ? { admission } : {}),
  });
  return {
    store,
    cp,
    app,
    async token(role, tenant, agent, name) {
      return (
        await mintToken(
          store,
          {
            role,
            tenant,
            ...(agent === undefined ? {} : { agent }),
            ...(name === undefined ? {} : { name }),
          },
          'test',
        )
      ).secret;
    },
    async req(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      return app.request(path, { method, headers, ...(body === undefined ? {} : { body }) });
    },
    async close() {
      hub.close();
      await cp.stop();
      await cp.flushAudit();
      await store.close();
    },
  };
}

/** Asserts a wire error: the status, the one error shape, and the code. Returns the message. */
export async function expectWireError(
  res: Response,
  status: number,
  code: ErrorCode,
  what = '',
): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, `${what}: status (body ${text.slice(0, 300)})`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: body is not JSON: ${text.slice(0, 300)}`);
  }
  assert.ok(isWireError(body), `${what}: not the wire error shape: ${text.slice(0, 300)}`);
  const e = (body as { error: Record<string, unknown> }).error;
  assert.equal(e.code, code, `${what}: code (message ${String(e.message)})`);
  assert.equal(typeof e.message, 'string', `${what}: message is a string`);
  assert.ok((e.message as string).length > 0, `${what}: message is not empty`);
  for (const k of Object.keys(e))
    assert.ok(['code', 'message', 'details'].includes(k), `${what}: unexpected error field ${k}`);
  return e.message as string;
}

/** A valid heartbeat body. */
export function heartbeatBody(): Record<string, unknown> {
  return { rev: 0, features: [], runs: [], pid: 1234, sinceContactMs: 5 };
}

/**
 * Registers worker `id` of `tenant`/bot with the fleet as its stream and first heartbeat would:
 * connected (on `release`, when given), hosting `runs` (running), started by `launcher` when given.
 */
export function hostWorker(
  fleet: Fleet,
  id: string,
  opts: { tenant?: string; runs: readonly string[]; launcher?: string | undefined; release?: Release | null },
): void {
  const tenant = opts.tenant ?? 'acme';
  const release = opts.release ?? null;
  fleet.connected(id, tenant, 'bot', [], release);
  fleet.heartbeat(id, tenant, 'bot', {
    rev: 0,
    features: [],
    pid: 1,
    sinceContactMs: 0,
    runs: opts.runs.map((runId) => ({
      runId,
      parentRunId: null,
      lineage: [],
      state: 'running',
      effects: 0,
      denied: 0,
      inFlight: 0,
    })),
    ...(opts.launcher ? { launcher: opts.launcher } : {}),
    ...(release === null ? {} : { release }),
  });
}

/** The body of a halted report for directive `d` naming `runs`: nothing aborted, settled in 1 ms. */
export function haltedBody(d: { rev: number; id: string }, runs: string[]) {
  return { rev: d.rev, directiveId: d.id, runs, aborted: 0, completed: 0, observeToSettleMs: 1 };
}
