import { Notifier, Watchdog, createLogger, httpWatchdogPort, type LogLevel } from '@killpath/server';
import { KillpathError } from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { resolveConnection } from '../config.ts';
import { ApiClient } from '../api.ts';

export const WATCHDOG_HELP = `killpath watchdog --url URL --token TOKEN [options]

Runs the deadman's watchdog as its own process, with its own credentials (an admin token,
e.g. killpath token create --role admin --tenant '*' --name watchdog:ops-1). Every tick it
beats to the control plane, trips every worker whose heartbeats stopped for longer than its
agent's threshold (missed × interval, from the policy): their runs are halted, their
launchers kill the processes, deadman.triggered is audited and alerted. It also watches the
supervisor and raises supervisor.absent; the control plane's supervisor raises
watchdog.absent when this process stops beating. Start the control plane with --no-watchdog
to rely on this one alone.

  --id NAME              this watchdog's name on the record (default watchdog-<pid>)
  --tick MS              how often it looks (default 250)
  --absent-after MS      supervisor silent this long is absent (default: the control plane's)
  --notify-webhook URL   where to alert when the control plane itself is unreachable (repeatable)
  --log-level LEVEL      debug | info | warn | error (default info)
  --url URL --token TOKEN --data-dir DIR   where the control plane is (--url repeatable, or
                         a comma list: replicas of one control plane, tried in turn)

Runs until SIGINT/SIGTERM.`;

/** `killpath watchdog`: runs until SIGINT/SIGTERM. */
export async function watchdog(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    id: { type: 'string' },
    tick: { type: 'string' },
    'absent-after': { type: 'string' },
    'notify-webhook': { type: 'string', multiple: true },
    'log-level': { type: 'string' },
  });
  if (values.help) {
    console.log(WATCHDOG_HELP);
    return 0;
  }
  const id = values.id ?? `watchdog-${process.pid}`;
  if (!/^[A-Za-z0-9._:@-]{1,64}$/.test(id))
    throw new KillpathError('invalid_request', '--id must be 1-64 letters, digits or ._:@-');
  const tickMs = intFlag('tick', values.tick, 250);
  if (tickMs < 10) throw new KillpathError('invalid_request', '--tick must be at least 10');
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw new KillpathError('invalid_request', '--log-level must be debug, info, warn or error');
  const webhooks = values['notify-webhook'] ?? [];
  for (const url of webhooks) {
    if (!/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url))
      throw new KillpathError('invalid_request', `--notify-webhook takes an http(s) URL, not "${url}"`);
  }
  const conn = resolveConnection(values);
  const log = createLogger(logLevel);
  const where = conn.urls.join(', ');
  const me = await new ApiClient(conn.urls, conn.token).get<{ role: string; name: string }>('/v1/whoami');
  if (me.role !== 'admin')
    throw new KillpathError('forbidden', `the watchdog needs an admin token, not a ${me.role} token`);
  const beat = await new ApiClient(conn.urls, conn.token).post<{ absentAfterMs: number }>(
    '/v1/watchdog/beat',
    { watchdog: id },
  );
  const absentAfterMs =
    values['absent-after'] === undefined
      ? beat.absentAfterMs
      : intFlag('absent-after', values['absent-after'], 5000);
  const notifier = new Notifier({ webhooks, log });
  const dog = new Watchdog({
    port: httpWatchdogPort({ url: conn.urls, token: conn.token, id }),
    log,
    tickMs,
    absentAfterMs,
    onUnreachable: (err) =>
      notifier.notify({
        kind: 'control_plane.unreachable',
        summary: `watchdog ${id}: the control plane at ${where} is unreachable (${err instanceof Error ? err.message : String(err)}): no deadman trips, no operator kills through it; agents fail closed on their leases`,
        tenant: null,
        directiveId: null,
        details: { watchdog: id, url: where },
      }),
    onReachable: () => log.info('watchdog: control plane reachable again', { url: where }),
  });
  dog.start();
  console.log(`killpath watchdog ${id} watching ${where} as ${me.name} (tick ${tickMs} ms)`);
  // The watchdog's timers do not hold the process open (they are unref'd for embedding): this does.
  const alive = setInterval(() => {}, 60_000);
  await new Promise<void>((ok) => {
    process.once('SIGINT', () => ok());
    process.once('SIGTERM', () => ok());
  });
  clearInterval(alive);
  await dog.stop();
  await notifier.drain();
  return 0;
}
