import { fileURLToPath } from 'node:url';
import { launch as launchAgent, type Launched } from '@killpath/cli';

export { alive } from '@killpath/cli';
export type { Launched, Line } from '@killpath/cli';

/** The ladder test agent (see fixtures/ladder-agent.ts). */
export const LADDER_AGENT = fileURLToPath(new URL('./fixtures/ladder-agent.ts', import.meta.url));

/** Starts `killpath run … -- node <agent>` (default the ladder agent) with `env` for the agent. */
export function launch(
  opts: Omit<Parameters<typeof launchAgent>[0], 'agentScript'> & { agentScript?: string },
): Launched {
  return launchAgent({ ...opts, agentScript: opts.agentScript ?? LADDER_AGENT });
}
