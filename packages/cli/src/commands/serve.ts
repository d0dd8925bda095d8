import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  automationFrom,
  checkStoreUrl,
  parsePolicy,
  redactStoreUrl,
  startServer,
  type LogLevel,
} from '@killpath/server';
import { KillpathError } from '@killpath/protocol';
import { intFlag, parse } from '../args.ts';

export const SERVE_HELP = `killpath serve [options]

Starts the control plane: on the embedded SQLite store in --data-dir, or on PostgreSQL with --store,
where several replicas share one database (docs/deployment.md).

  --store URL          PostgreSQL store, postgres://user@host:port/db (also KILLPATH_STORE); its
                       schema must be current: killpath migrate --store URL. Default: SQLite in --data-dir
  --data-dir DIR       database (SQLite), admin token, signing key, server.json (default ./.killpath)
  --host HOST          address to listen on (default 127.0.0.1)
  --port PORT          port (default 7070; 0 picks a free one)
  --keepalive-ms MS    keep-alive interval on worker streams (default 1000)
  --lease-ms MS        the lease your workers use (the SDK's leaseMs, default 3000). With --store, a
                       replica that cannot read the database or hear its notifications for half of
                       it stops renewing leases (closes worker streams, answers 503) until caught up
  --log-level LEVEL    debug | info | warn | error (default info)
  --cool-off MS        cool-off of irreversible effects before their confirmation (default 2000)
  --cool-off-for CAP=MS  per-capability cool-off, repeatable (e.g. wire_transfer=10000)
  --notify-webhook URL alerts (degrade, isolate, escalations, process kills) are POSTed here as
                       JSON, retried with backoff; repeatable. Alerts always go to the log too.
  --auto-levels LIST   ladder levels automatic triggers may take on their own (default
                       throttle,degrade,halt); the others are held for a human unless critical
  --escalation-slack MS  time after a halt's grace before its automatic kill (default 1000)
  --policy FILE        make this policy (YAML) the active version at start, unless it already is
                       (see killpath policy --help; a fresh data dir starts with the default policy)
  --no-supervisor      do not evaluate policy rules (the watchdog raises supervisor.absent)
  --no-watchdog        no deadman watchdog in this process: run killpath watchdog elsewhere
                       (the supervisor raises watchdog.absent until one beats)
  --absent-after MS    supervisor or watchdog silent this long is reported absent (default 5000)
  --record-telemetry FILE  append every run update received to FILE as JSON lines
                       (replay them with killpath policy test --events FILE)
  --tls-cert FILE      serve HTTPS with this certificate chain (PEM); needs --tls-key
  --tls-key FILE       the certificate's private key (PEM). Clients then trust the CA with
                       --ca FILE / KILLPATH_CA (or behind a TLS-terminating load balancer: docs/security.md)

On first start (an empty store) it creates an admin token, prints it once and writes
<data-dir>/admin.token (0600); a later start prints where it is. Replicas starting at once on one
empty PostgreSQL database create it once: only the replica that created it prints it. It listens before it opens the database or starts anything, so
a second serve whose port is taken leaves a running one alone.`;

/**
 * The PostgreSQL store's URL: `--store`, else `KILLPATH_STORE`; undefined for SQLite.
 * @throws KillpathError `invalid_request` for a URL that is not PostgreSQL's
 */
export function storeFlag(flag: string | undefined): string | undefined {
  const url = flag ?? (process.env['KILLPATH_STORE'] || undefined);
  if (url !== undefined) checkStoreUrl(url);
  return url;
}

/** Reads `--tls-cert` and `--tls-key` (both or neither). */
function tlsFiles(
  certFile: string | undefined,
  keyFile: string | undefined,
): { cert: Buffer; key: Buffer } | null {
  if (certFile === undefined && keyFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined)
    throw new KillpathError('invalid_request', '--tls-cert and --tls-key go together');
  const read = (flag: string, file: string): Buffer => {
    try {
      const b = readFileSync(file);
      if (!b.toString('latin1').includes('-----BEGIN ')) throw new Error('not PEM');
      return b;
    } catch (err) {
      throw new KillpathError(
        'invalid_request',
        `cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  };
  return { cert: read('--tls-cert', certFile), key: read('--tls-key', keyFile) };
}

/** `killpath serve`: runs until SIGINT/SIGTERM. */
export async function serve(args: string[]): Promise<number> {
  const { values } = parse(args, {
    'data-dir': { type: 'string' },
    store: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'keepalive-ms': { type: 'string' },
    'lease-ms': { type: 'string' },
    'log-level': { type: 'string' },
    'cool-off': { type: 'string' },
    'cool-off-for': { type: 'string', multiple: true },
    'notify-webhook': { type: 'string', multiple: true },
    'auto-levels': { type: 'string' },
    'escalation-slack': { type: 'string' },
    policy: { type: 'string' },
    'no-supervisor': { type: 'boolean' },
    'no-watchdog': { type: 'boolean' },
    'absent-after': { type: 'string' },
    'record-telemetry': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw new KillpathError('invalid_request', '--log-level must be debug, info, warn or error');
  const port = intFlag('port', values.port, 7070);
  if (port > 65535) throw new KillpathError('invalid_request', '--port must be at most 65535');
  const keepaliveMs = intFlag('keepalive-ms', values['keepalive-ms'], 1000);
  if (keepaliveMs < 50) throw new KillpathError('invalid_request', '--keepalive-ms must be at least 50');
  const leaseMs = intFlag('lease-ms', values['lease-ms'], 3000);
  if (leaseMs < 2 * keepaliveMs)
    throw new KillpathError(
      'invalid_request',
      `--lease-ms must be at least twice --keepalive-ms (${keepaliveMs}): a lease shorter than that runs out between keep-alives`,
    );
  const byCapability: Record<string, number> = {};
  for (const pair of values['cool-off-for'] ?? []) {
    const m = /^([A-Za-z0-9._:@-]{1,128})=(\d+)$/.exec(pair);
    if (!m) throw new KillpathError('invalid_request', `--cool-off-for takes CAPABILITY=MS, got "${pair}"`);
    byCapability[m[1]!] = Number(m[2]);
  }
  const coolOff = { defaultMs: intFlag('cool-off', values['cool-off'], 2000), byCapability };
  const notifyWebhooks = values['notify-webhook'] ?? [];
  for (const url of notifyWebhooks) {
    if (!/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url))
      throw new KillpathError('invalid_request', `--notify-webhook takes an http(s) URL, not "${url}"`);
  }
  const automation = values['auto-levels'] === undefined ? undefined : automationFrom(values['auto-levels']);
  const escalationSlackMs = intFlag('escalation-slack', values['escalation-slack'], 1000);
  let policy: { path: string; source: string } | undefined;
  if (values.policy !== undefined) {
    let source: string;
    try {
      source = readFileSync(values.policy, 'utf8');
    } catch (err) {
      throw new KillpathError(
        'invalid_request',
        `cannot read --policy ${values.policy}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    const r = parsePolicy(source);
    if (!r.ok)
      throw new KillpathError(
        'invalid_request',
        `--policy ${values.policy} is not a valid policy: ${r.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      );
    policy = { path: values.policy, source };
  }
  const tls = tlsFiles(values['tls-cert'], values['tls-key']);
  const storeUrl = storeFlag(values.store);
  const absentAfterMs = intFlag('absent-after', values['absent-after'], 5000);
  if (absentAfterMs < 100) throw new KillpathError('invalid_request', '--absent-after must be at least 100');
  let server;
  try {
    server = await startServer({
      dataDir: values['data-dir'],
      ...(storeUrl !== undefined ? { storeUrl } : {}),
      host: values.host,
      port,
      keepaliveMs,
      leaseMs,
      logLevel,
      coolOff,
      notifyWebhooks,
      escalationSlackMs,
      ...(automation ? { automation } : {}),
      ...(policy ? { policy } : {}),
      ...(values['no-supervisor'] ? { supervisor: false } : {}),
      ...(values['no-watchdog'] ? { watchdog: false } : {}),
      absentAfterMs,
      ...(values['record-telemetry'] ? { recordTelemetry: values['record-telemetry'] } : {}),
      ...(tls ? { tls } : {}),
      // The disk failed under the store: every write is refused from now on. Exit non-zero so a
      // supervisor restarts the control plane, which reloads from what is on disk.
      onStoreFailure: (err) => {
        console.error(`killpath serve: exiting: ${err.message}`);
        process.exit(1);
      },
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A key that does not match its certificate, or text that is not PEM, fails in TLS setup.
    if (tls && typeof code === 'string' && code.startsWith('ERR_OSSL'))
      throw new KillpathError(
        'invalid_request',
        `--tls-cert ${values['tls-cert']} and --tls-key ${values['tls-key']} are not a certificate and its key (${(err as Error).message})`,
      );
    if (code === 'EADDRINUSE')
      throw new KillpathError(
        'invalid_request',
        `port ${port} is already in use (try --port 0 or another port)`,
      );
    if (code === 'EACCES' || code === 'EADDRNOTAVAIL')
      throw new KillpathError(
        'invalid_request',
        `cannot listen on ${values.host ?? '127.0.0.1'}:${port} (${code})`,
      );
    throw err;
  }
  console.log(
    `killpath control plane listening on ${server.url} (${storeUrl !== undefined ? `store ${redactStoreUrl(storeUrl)}, ` : ''}data dir ${server.dataDir})`,
  );
  const tokenFile = join(server.dataDir, 'admin.token');
  if (server.createdAdminToken) {
    console.log(`admin token (shown once, also written to ${tokenFile}):\n  ${server.createdAdminToken}`);
  } else if (storeUrl !== undefined && !existsSync(tokenFile)) {
    console.log(
      `admin token: the database has tokens already (the first admin token was printed once by the replica that created it, into its --data-dir/admin.token; see killpath token --help)`,
    );
  } else if (existsSync(tokenFile)) {
    console.log(`admin token: in ${tokenFile} (created on the first start; the CLI reads it from there)`);
  } else {
    console.log(
      `admin token: shown once on the first start and no longer in ${tokenFile} (see killpath token --help)`,
    );
  }
  await new Promise<void>((ok) => {
    const stop = () => ok();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
