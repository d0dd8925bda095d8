import { KillpathError, type Principal } from '@killpath/protocol';
import type { ApiClient } from './api.ts';

/** The agent token to hand to the agent: the given one when it is an agent token of T/A; an admin token mints one. */
export async function agentToken(
  api: ApiClient,
  given: string,
  tenant: string,
  agent: string,
): Promise<string> {
  const me = await api.get<Principal>('/v1/whoami');
  if (me.role === 'agent') {
    if (me.tenant !== tenant || (me.agent !== null && me.agent !== agent)) {
      throw new KillpathError(
        'forbidden',
        `this agent token belongs to ${me.tenant}/${me.agent ?? '*'}, not ${tenant}/${agent}`,
      );
    }
    return given;
  }
  if (me.role === 'admin') {
    const r = await api.post<{ token: string }>('/v1/tokens', {
      role: 'agent',
      tenant,
      agent,
      name: `launcher:${tenant}/${agent}`,
    });
    return r.token;
  }
  throw new KillpathError(
    'forbidden',
    `killpath run needs an agent token of ${tenant}/${agent} (or an admin token to mint one), not a ${me.role} token`,
  );
}
