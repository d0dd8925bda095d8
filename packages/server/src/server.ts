import { mkdirSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  createAdaptorServer,
  type Http2Bindings,
  type HttpBindings,
  type ServerType,
} from '@hono/node-server';
import { Authenticator, mintToken } from './auth/tokens.ts';
import { ControlPlane } from './control-plane.ts';
import { Fleet } from './fleet.ts';
import { createApp } from './http/app.ts';
import { Admission, loopLagProbe, tokenCallers, type AdmissionOptions } from './http/admission.ts';
import { createLogger, type Logger, type LogLevel } from './log.ts';
import { Metrics } from './metrics.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import { PgStore } from './store/pg/pg-store.ts';
import { redact } from './store/pg/connect.ts';
import type { LeaseFence, Store, TokenStore } from './store/store.ts';
import { StreamHub } from './stream/hub.ts';
import type { CoolOffPolicy } from './permits.ts';
import type { AutomationPolicy } from './ladder.ts';
import { Notifier } from './notify.ts';
import { Triggers } from './triggers.ts';
import type { Fire } from './supervisor/supervisor.ts';
import { Checkpointer } from './audit/checkpointer.ts';
import { SIGNING_KEY_FILE, loadOrCreateSigningKey } from './audit/checkpoint.ts';

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Where the database, admin token and server.json live. Default `./.killpath`. */
  dataDir?: string;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 7070; 0 picks a free port. */
  port?: number;
  /** Keep-alive interval on worker streams in ms. Default 1000. */
  keepaliveMs?: number;
  logLevel?: LogLevel;
  logger?: Logger;
  /**
   * Called once when the store's disk fails (a WAL fsync error): every write is refused from
   * then on, so the process should exit and be restarted to reload from disk. `killpath serve`
   * exits non-zero.
   */
  onStoreFailure?: (err: Error) => void;
  /** Cool-off of irreversible effects (default 2000 ms for every capability). */
  coolOff?: CoolOffPolicy;
  /** Use this store instead of SQLite in `dataDir` (tests, other backends). */
  store?: Store;
  /**
   * A PostgreSQL URL (`postgres://user@host:port/db`): the store is that database, shared by
   * every replica, instead of SQLite in `dataDir`. Its schema must be this killpath's
   * (`killpath migrate --store URL`); the start is refused otherwise.
   */
  storeUrl?: string;
  /**
   * The lease this deployment's workers use, in ms (default 3,000, the SDK's default `leaseMs`).
   * On a shared store (PostgreSQL) a replica whose database or notifications have been
   * unreachable for half of it stops renewing its workers' leases until it has caught up.
   */
  leaseMs?: number;
  /**
   * The switchboard view's safety-net poll of the store, in ms (default a sixth of `leaseMs`, so
   * a third of the half lease a replica vouches for: 500 ms). Only on a shared store.
   */
  switchboardPollMs?: number;
  /** Webhook URLs alerts are POSTed to (degrade, isolate, escalations, process kills), with retries. */
  notifyWebhooks?: string[];
  /** Which ladder steps may be taken automatically (default: throttle, degrade, halt). */
  automation?: AutomationPolicy;
  /** Extra time after a halt's grace before its automatic kill, in ms (default 1000). */
  escalationSlackMs?: number;
  /**
   * The leader lease (escalation steps run only on its holder): ttl and poll interval in ms
   * (default 3000 and 500). A holder that dies is replaced within `ttlMs + pollMs`.
   */
  lease?: { ttlMs?: number; pollMs?: number };
  /** A policy file (YAML) made the active version at start unless it already is. */
  policy?: { path: string; source: string };
  /** Run the policy supervisor (default true). */
  supervisor?: boolean;
  /** Run the deadman's watchdog in this process (default true); false expects `killpath watchdog`. */
  watchdog?: boolean;
  /** Supervisor or watchdog silent for longer than this is reported absent, in ms (default 5000). */
  absentAfterMs?: number;
  /** Append every telemetry run update to this file as JSON lines (replay with `killpath policy test`). */
  recordTelemetry?: string;
  /** Called for every rule fire and shadow fire (benchmarks). */
  onFire?: (f: Fire) => void;
  /**
   * Serve HTTPS with this certificate chain and private key (PEM). The URL becomes `https://…`;
   * agents, launchers and the CLI then need the issuing CA (`--ca`, `KILLPATH_CA`, `connect({ ca })`)
   * unless a public CA signed it. Default: plain HTTP (keep it on loopback, or behind a
   * TLS-terminating load balancer: see docs/security.md).
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Sign an audit checkpoint once this many records arrived since the last one. Default 1000. */
  checkpointEveryRecords?: number;
  /** Sign an audit checkpoint when this long (ms) passed since the last one and records arrived. Default 60 000. */
  checkpointEveryMs?: number;
  /**
   * Admission control under overload (default on): telemetry and read queries take turns (one
   * at a time, `turnBudgetMs` of each turn of the event loop, default 2) and are shed with 429
   * while the event loop runs `shedLagMs` late (default 100), once
   * `maxLowInFlight` of them are in flight (default 256), `maxLowPerCaller` of one caller's
   * (default a quarter of that), or when one waited `maxWaitMs` for its
   * turn (default 2000); directives, streams, acks, halted reports and heartbeats never wait nor
   * are shed. `false` admits everything (benchmarks measuring the server without it).
   */
  admission?:
    | false
    | Pick<
        AdmissionOptions,
        'shedLagMs' | 'maxLowInFlight' | 'maxLowPerCaller' | 'turnBudgetMs' | 'maxWaitMs'
      >;
}

/** A running control plane. */
export interface RunningServer {
  url: string;
  port: number;
  dataDir: string;
  /** The admin token, only when this start created it (first start on an empty data dir). */
  createdAdminToken: string | null;
  controlPlane: ControlPlane;
  /** The policy, supervisor, deadman and watchdog. */
  triggers: Triggers;
  /** Signs checkpoints of the audit log (`<dataDir>/audit-signing.key`). */
  checkpoints: Checkpointer;
  close(): Promise<void>;
}

/**
 * Starts the control plane: opens (or creates) the store, mints and writes the admin token on
 * first start (`<dataDir>/admin.token`, mode 0600), creates the audit checkpoint signing key on
 * first start (`<dataDir>/audit-signing.key`, Ed25519, mode 0600) and signs checkpoints, serves
 * the API and the worker streams, and writes `<dataDir>/server.json` with its URL so the CLI finds it.
 */
export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  const dataDir = resolve(opts.dataDir ?? '.killpath');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const log = opts.logger ?? createLogger(opts.logLevel ?? 'info');
  const host = opts.host ?? '127.0.0.1';
  // The port first: a start that cannot listen (another control plane has it, perhaps on this
  // very data dir) must fail before it opens the database, mints a token or arms an escalation.
  // Until the app is ready, requests are answered 503.
  let handler: (req: Request, env: HttpBindings | Http2Bindings) => Response | Promise<Response> = starting;
  // `env` carries the Node bindings (incoming, outgoing) the stream routes write to.
  const fetch = (req: Request, env: HttpBindings | Http2Bindings) => handler(req, env);
  const server: ServerType = opts.tls
    ? createAdaptorServer({
        fetch,
        createServer: createHttpsServer,
        serverOptions: { cert: opts.tls.cert, key: opts.tls.key },
      })
    : createAdaptorServer({ fetch });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 7070, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const undo: (() => unknown)[] = [];
  const adminTokenFile = join(dataDir, 'admin.token');
  let createdAdminToken: string | null = null;
  try {
    const store =
      opts.store ??
      (opts.storeUrl !== undefined
        ? await PgStore.open(opts.storeUrl)
        : new SqliteStore(join(dataDir, 'killpath.db'), {
            onDiskFailure: (err) =>
              opts.onStoreFailure
                ? opts.onStoreFailure(err)
                : log.error('store failed', { error: err.message }),
          }));
    undo.push(() => store.close());
    createdAdminToken = await bootstrapAdmin(store);
    if (createdAdminToken !== null) {
      writeFileSync(adminTokenFile, `${createdAdminToken}\n`, { mode: 0o600 });
      chmodSync(adminTokenFile, 0o600);
    }
    const metrics = new Metrics();
    const rev = await store.rev();
    metrics.rev.set(rev);
    const hub = new StreamHub(opts.keepaliveMs ?? 1000, rev);
    undo.push(() => hub.close());
    const fleet = new Fleet();
    const notifier = new Notifier({ webhooks: opts.notifyWebhooks ?? [], log });
    const cp = new ControlPlane({
      store,
      hub,
      fleet,
      metrics,
      log,
      alerts: notifier,
      keepaliveMs: opts.keepaliveMs ?? 1000,
      ...(opts.coolOff ? { coolOff: opts.coolOff } : {}),
      ...(opts.automation ? { automation: opts.automation } : {}),
      ...(opts.escalationSlackMs !== undefined ? { escalationSlackMs: opts.escalationSlackMs } : {}),
      ...(opts.leaseMs !== undefined ? { leaseMs: opts.leaseMs } : {}),
      ...(opts.switchboardPollMs !== undefined ? { viewPollMs: opts.switchboardPollMs } : {}),
      ...(opts.lease ? { lease: opts.lease } : {}),
      // The embedded store is served by this process alone: a restart is the same replica and
      // holds the leader lease again at once (another backend's replicas each get a random id).
      ...(opts.store === undefined && opts.storeUrl === undefined ? { replicaId: `serve:${dataDir}` } : {}),
    });
    undo.push(() => cp.stop());
    await cp.start();
    const auth = new Authenticator(store);

    const triggers = await Triggers.start(cp, log, {
      ...(opts.supervisor === false ? { supervisor: false } : {}),
      ...(opts.watchdog === false ? { watchdog: false } : {}),
      ...(opts.policy ? { policyFile: opts.policy } : {}),
      ...(opts.absentAfterMs !== undefined ? { absentAfterMs: opts.absentAfterMs } : {}),
      ...(opts.recordTelemetry ? { recordTelemetry: opts.recordTelemetry } : {}),
      ...(opts.onFire ? { onFire: opts.onFire } : {}),
    });
    undo.push(() => triggers.close());
    const keyPath = join(dataDir, SIGNING_KEY_FILE);
    const { key, created } = loadOrCreateSigningKey(keyPath);
    if (created) log.info('audit signing key created', { keyId: key.info.keyId, file: keyPath });
    // The fence of the holder's last election: kept through a clean shutdown (the lease handed
    // back keeps its epoch), so the final checkpoint is stored unless another replica took over.
    let fence: LeaseFence | null = null;
    const checkpoints = new Checkpointer({
      store,
      fence: () => fence,
      key,
      keyPath,
      alerts: notifier,
      log,
      ...(opts.checkpointEveryRecords !== undefined ? { everyRecords: opts.checkpointEveryRecords } : {}),
      ...(opts.checkpointEveryMs !== undefined ? { everyMs: opts.checkpointEveryMs } : {}),
    });
    // Only the leader lease's holder signs (work that must happen once across replicas): its key
    // becomes the current one when it is elected, not at every start, and a deposed holder stops
    // signing. On the embedded store this one process holds the lease from the start.
    let signer: Promise<void> = Promise.resolve();
    const sign = (step: () => Promise<void>): Promise<void> => {
      const run = signer.then(step);
      signer = run.catch((err: unknown) =>
        log.error('audit checkpointer', { err: err instanceof Error ? err.message : String(err) }),
      );
      return run;
    };
    const startSigning = () => void sign(() => checkpoints.start()).catch(() => {});
    const stopLeading = cp.whileLeading({
      elected: () => {
        fence = cp.leadership.fence();
        startSigning();
      },
      // The fence stays: a sign in progress is refused by the store once another replica took over.
      deposed: () => {
        void sign(() => checkpoints.stop(false)).catch(() => {});
      },
      // A start that failed (the store unreachable) is tried again at the next renewal.
      renewed: () => {
        if (!checkpoints.signing) startSigning();
      },
    });
    undo.push(() => {
      stopLeading();
      return checkpoints.stop(false);
    });
    // Elected already: its first checkpoint is signed before it serves (a failure fails the start).
    if (cp.leadership.leading) await sign(() => checkpoints.start());
    // Not elected: its key is listed (not current), so the consistency heads it signs verify.
    else await checkpoints.listKey();
    const lag = opts.admission === false ? null : loopLagProbe(undefined, undefined, cp.clock);
    undo.push(() => lag?.stop());
    const admission =
      lag === null
        ? null
        : new Admission({
            lag,
            ...(opts.admission ? opts.admission : {}),
            now: () => cp.clock.now(),
            onShed: (priority) => cp.metrics.shed.inc({ priority }),
            callers: tokenCallers(auth),
          });
    const app = createApp(cp, auth, log, triggers, { adminTokenFile, checkpoints, admission });
    handler = (req, env) => app.fetch(req, env);
    const port = (server.address() as AddressInfo).port;
    const url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    writeFileSync(join(dataDir, 'server.json'), `${JSON.stringify({ url, pid: process.pid }, null, 2)}\n`);
    const pruner = setInterval(() => fleet.prune(10 * 60_000), 60_000);
    pruner.unref();
    log.info('control plane listening', {
      url,
      dataDir,
      rev,
      store: opts.storeUrl ? redact(opts.storeUrl) : 'sqlite',
    });
    let closed = false;
    return {
      url,
      port,
      dataDir,
      createdAdminToken,
      controlPlane: cp,
      triggers,
      checkpoints,
      async close() {
        if (closed) return;
        closed = true;
        clearInterval(pruner);
        lag?.stop();
        await triggers.close();
        hub.close();
        // Handing the lease back must not stop the checkpointer before its final checkpoint below.
        stopLeading();
        // Its last presence write, the lease's release and the doorbell's own connections
        // (PostgreSQL's listener) before the store's pool.
        await cp.stop().catch(() => {});
        await new Promise<void>((ok) => {
          server.close(() => ok());
          if ('closeAllConnections' in server) server.closeAllConnections();
        });
        await cp.permits.drain();
        await cp.flushAudit();
        // The last records get a checkpoint of their own before the store closes.
        await signer;
        await checkpoints.stop(true);
        await notifier.drain();
        await store.close();
        rmSync(join(dataDir, 'server.json'), { force: true });
        log.info('control plane stopped', { url });
      },
    };
  } catch (err) {
    // Undo what started, newest first, and let the port go; the token stays (it is in the store).
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        // Already failing: the first error is the one to report.
      }
    }
    if ('closeAllConnections' in server) server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
    if (createdAdminToken !== null && err instanceof Error)
      err.message = `${err.message} (the admin token this start created is in ${adminTokenFile})`;
    throw err;
  }
}

/** The bootstrap admin token's id (fixed: see {@link bootstrapAdmin}). */
export const BOOTSTRAP_TOKEN_ID = 't_bootstrap-admin';

/**
 * Creates the first admin token when the store has no token at all, and returns its secret (null
 * when there were tokens already). Replicas starting at once on one empty database race here: the
 * token's id is fixed, so exactly one insert commits and the others conflict on the id, find the
 * token there and go on without one (only the replica that created it prints it and writes it to
 * its data dir).
 */
export async function bootstrapAdmin(store: TokenStore): Promise<string | null> {
  if ((await store.countTokens()) > 0) return null;
  try {
    const { secret } = await mintToken(
      store,
      { role: 'admin', tenant: '*', name: 'bootstrap-admin', id: BOOTSTRAP_TOKEN_ID },
      'killpath:bootstrap',
    );
    return secret;
  } catch (err) {
    if ((await store.getToken(BOOTSTRAP_TOKEN_ID)) !== null) return null;
    throw err;
  }
}

/** The answer while the control plane is still starting (it listens before it is ready). */
function starting(): Response {
  return new Response(
    JSON.stringify({
      error: { code: 'unavailable', message: 'the control plane is starting; retry shortly' },
    }),
    { status: 503, headers: { 'content-type': 'application/json', 'retry-after': '1' } },
  );
}
