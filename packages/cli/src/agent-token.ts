import { KillpathError, type Principal } from '@killpath/protocol';
import type { ApiClient } from './api.ts';

/** The agent token `killpath run` hands its agent, and how it came to be. */
export interface LauncherToken {
  token: string;
  /** What was minted for this launcher, to say so; null when the given token is the agent's own. */
  minted: { by: 'admin' | 'operator'; expiresAt: string | null } | null;
}

/**
 * The agent token to hand to the agent: the given one when it is an agent token of T/A. An
 * admin token mints one for the agent (`POST /v1/tokens`); an operator token of T mints a
 * short-lived one bound to this launcher (`POST /v1/launchers/{id}/token`, audited with the
 * operator's name), so the person the runbook pages can start the replacement session.
 * @throws KillpathError `forbidden` for a viewer, another agent's token or another tenant's operator
 */
export async function agentToken(
  api: ApiClient,
  given: string,
  tenant: string,
  agent: string,
  /** The launcher the token is for; null (no launcher, e.g. the MCP gateway): an operator token is refused. */
  launcherId: string | null,
  ttlMs?: number,
): Promise<LauncherToken> {
  const me = await api.get<Principal>('/v1/whoami');
  if (me.role === 'agent') {
    if (me.tenant !== tenant || (me.agent !== null && me.agent !== agent)) {
      throw new KillpathError(
        'forbidden',
        `this agent token belongs to ${me.tenant}/${me.agent ?? '*'}, not ${tenant}/${agent}`,
      );
    }
    return { token: given, minted: null };
  }
  if (me.role === 'admin') {
    const r = await api.post<{ token: string; expiresAt: string | null }>('/v1/tokens', {
      role: 'agent',
      tenant,
      agent,
      name: `launcher:${tenant}/${agent}`,
      ...(ttlMs === undefined ? {} : { ttlMs }),
    });
    return { token: r.token, minted: { by: 'admin', expiresAt: r.expiresAt } };
  }
  if (me.role === 'operator' && launcherId !== null) {
    if (me.tenant !== tenant)
      throw new KillpathError(
        'forbidden',
        `this operator token is of tenant ${me.tenant}: it may not start a launcher for ${tenant}/${agent}`,
      );
    const r = await api.post<{ token: string; expiresAt: string | null }>(
      `/v1/launchers/${encodeURIComponent(launcherId)}/token`,
      { tenant, agent, ...(ttlMs === undefined ? {} : { ttlMs }) },
    );
    return { token: r.token, minted: { by: 'operator', expiresAt: r.expiresAt } };
  }
  throw new KillpathError(
    'forbidden',
    launcherId === null
      ? `this needs an agent token of ${tenant}/${agent} (or an admin token to mint one), not a ${me.role} token`
      : `killpath run needs an operator token of ${tenant}, an agent token of ${tenant}/${agent} or an admin token, not a ${me.role} token`,
  );
}
