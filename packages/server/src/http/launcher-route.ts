import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { openSse, streamQuery } from './stream-route.ts';
import { KillpathError, type Directive, type Principal } from '@killpath/protocol';
import type { LauncherHub, LauncherSink } from '../launchers.ts';
import type { Logger } from '../log.ts';

/** What a launcher's stream needs: the launchers' hub, launcher ownership and the switchboard. */
export interface LauncherRouteDeps {
  readonly launchers: LauncherHub;
  /** Binds (or checks) the launcher id's owner (see `LauncherDesk.claim`). */
  claimLauncher(who: { tenant: string; agent: string }, launcherId: string): Promise<void>;
  /** The current rev. */
  rev(): number;
  /** The active directives, in rev order. */
  active(): readonly Directive[];
  /** Whether the switchboard view vouches for what it holds (see `SwitchboardView.vouching`). */
  vouching(): boolean;
}

/**
 * `GET /v1/launchers/stream?launcher=L&tenant=T&agent=A[&run=R][&features=f1,f2][&release=code=C,…]`: a launcher's
 * own stream (server-sent events), independent of its agent's: `orders` on connect and whenever
 * the kill, isolate or halt covering its agent changes, keep-alives in between. Opened with the
 * agent token of that tenant and agent (the launcher hands the same token to its agent), or an
 * admin token. The launcher id lives inside the tenant and belongs to the agent that first used
 * it (409 for another agent of the tenant); orders carry no reasons or justifications.
 */
export async function openLauncherStream(
  c: Context<{ Bindings: HttpBindings; Variables: { principal: Principal } }>,
  deps: LauncherRouteDeps,
  log: Logger,
): Promise<Response> {
  const p = c.get('principal');
  const { id: launcherId, tenant, agent, run, features, release } = streamQuery(c, 'launcher', true);
  const allowed =
    p.role === 'admin' ||
    (p.role === 'agent' && p.tenant === tenant && (p.agent === null || p.agent === agent));
  if (!allowed)
    throw new KillpathError('forbidden', `this token may not open a launcher stream for ${tenant}/${agent}`);
  if (p.launcher !== undefined && p.launcher !== launcherId)
    throw new KillpathError(
      'forbidden',
      `this token was minted for launcher ${p.launcher}; it may not open the stream of launcher ${launcherId}`,
    );
  // The id lives inside the tenant and belongs to the agent that first used it.
  await deps.claimLauncher({ tenant, agent }, launcherId);

  if (!deps.vouching())
    throw new KillpathError(
      'unavailable',
      "this control plane cannot vouch for its switchboard now (its store or the store's notifications are unreachable): connect to another replica",
    );
  const channel = openSse(c.env);
  const sink: LauncherSink = {
    launcherId,
    tenant,
    agent,
    runId: run ?? null,
    features,
    tokenId: p.tokenId,
    expiresAt: p.expiresAt === undefined ? null : Date.parse(p.expiresAt),
    release,
    write: channel.write,
    close: channel.close,
  };
  channel.onClose(() => {
    deps.launchers.detach(sink);
    log.info('launcher stream closed', { launcherId, tenant, agent });
  });
  deps.launchers.attach(sink, deps.rev(), deps.active());
  log.info('launcher stream opened', { launcherId, tenant, agent, run: run ?? null, release });
  return RESPONSE_ALREADY_SENT;
}
