import { randomUUID } from 'node:crypto';
import { KillpathError, isIdentifier, parseRelease } from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { resolveConnection } from '../config.ts';
import { ApiClient } from '../api.ts';
import { agentToken } from '../agent-token.ts';
import { Launcher } from '../launcher/launcher.ts';
import { netnsSupported } from '../launcher/netns.ts';
import { cgroupSupport } from '../launcher/cgroup.ts';
import { ttlFlag } from './token.ts';

export const RUN_HELP = `killpath run --tenant T --agent A [options] -- <command…>

Launches an agent under a launcher that the agent does not control. The launcher starts the
command in a cgroup of its own (else its own process group) with its identity and token in the environment
(KILLPATH_URL, KILLPATH_TOKEN, KILLPATH_TENANT, KILLPATH_AGENT, KILLPATH_RUN_ID,
KILLPATH_LAUNCHER_ID) and its egress through a proxy (HTTP_PROXY/HTTPS_PROXY), holds its own
stream to the control plane, and enforces:
  kill     SIGTERM to every process of the agent, SIGKILL after --kill-grace (CPU-bound or not;
           with a cgroup, cgroup.kill: nothing escapes)
  freeze   every process stopped at once (cgroup.freeze, or SIGSTOP), egress cut; thawed on resume
  isolate  the proxy refuses new connections and cuts open ones (with --netns: also at the
           network layer, whatever the agent does with proxy variables)
  halt     the agent is never restarted while a halt or kill covers it

Options:
  --tenant T, --agent A   the agent's identity (required)
  --run R                 the run this process hosts (run:R directives reach it directly)
  --features F1,F2        features the agent declares
  --release PART=V        the release the agent runs (repeatable or comma-separated: code=4f2a1c,
                          model=acme/planner@7, prompt=v42); passed to the agent as
                          KILLPATH_RELEASE_CODE/_MODEL/_PROMPT, so release:PART=V directives cover it
  --netns                 run the agent in its own network namespace (Linux, root): its only way
                          out is the launcher
  --isolation MODE        cgroup: the agent in a cgroup v2 cgroup of its own (nothing escapes a
                          kill); process-group: its process group plus a /proc sweep (a process
                          that calls setsid and clears its environment escapes). Default: cgroup
                          where the launcher can create one, else process-group (logged)
  --orphan-policy P       kill (default): if the launcher dies (even SIGKILL) the agent dies with
                          it; keep: the agent outlives it
  --restart on-failure    restart the agent when it exits non-zero, unless halted or killed
  --kill-grace MS         SIGTERM → SIGKILL grace (default 2000)
  --evidence-dir DIR      where killpath inspect writes a frozen agent's evidence
                          (default <tmpdir>/killpath-evidence)
  --launcher-id ID        default launch-<uuid>
  --mcp NAME=COMMAND      put an MCP gateway in front of the agent (repeatable): the launcher starts
                          COMMAND (split on spaces) as an MCP server behind an MCP gateway
                          on a loopback port and gives the agent its URL in KILLPATH_MCP_<NAME>_URL
                          (Streamable HTTP); its tools are capabilities mcp:NAME/<tool> of --run
  --mcp-classes NAME=FILE tool classes of that server (JSON, see killpath mcp-gateway --help)
  --url URL --token TOKEN --data-dir DIR   where the control plane is. The token is an agent
                          token of T/A; or an operator token of T: the control plane mints the
                          agent a short-lived agent token bound to this launcher (audited with
                          your name; it stops working after --token-ttl, or when the launcher
                          exits unless --orphan-policy keep); or an admin token
                          (mints an agent token of T/A)
  --token-ttl 8h          lifetime of the token minted from an operator or admin token (s, m, h;
                          default 8h for an operator's, at most 24h; an admin's never expires
                          unless given). When it expires the agent fails closed: start it again

Exit codes: the agent's own; 3 when killed or not (re)started because of the switchboard;
69 when the control plane could not be reached before the start (nothing is started).`;

/** `killpath run`: runs until the agent exits or is killed. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      tenant: { type: 'string' },
      agent: { type: 'string' },
      run: { type: 'string' },
      features: { type: 'string' },
      release: { type: 'string', multiple: true },
      netns: { type: 'boolean' },
      restart: { type: 'string' },
      isolation: { type: 'string' },
      'orphan-policy': { type: 'string' },
      'kill-grace': { type: 'string' },
      'evidence-dir': { type: 'string' },
      'launcher-id': { type: 'string' },
      'token-ttl': { type: 'string' },
      mcp: { type: 'string', multiple: true },
      'mcp-classes': { type: 'string', multiple: true },
    },
    true,
  );
  if (values.help) {
    console.log(RUN_HELP);
    return 0;
  }
  const { tenant, agent } = values;
  if (!tenant || !agent)
    throw new KillpathError('invalid_request', '--tenant and --agent are required (see killpath run --help)');
  for (const [name, v] of [
    ['tenant', tenant],
    ['agent', agent],
    ['run', values.run],
    ['launcher-id', values['launcher-id']],
  ] as const) {
    if (v !== undefined && !isIdentifier(v))
      throw new KillpathError('invalid_request', `--${name} must be 1-128 letters, digits or ._:@-`);
  }
  const features = values.features ? values.features.split(',').filter((f) => f !== '') : [];
  if (!features.every(isIdentifier))
    throw new KillpathError('invalid_request', '--features takes a comma-separated list of identifiers');
  const release = values.release ? parseRelease(values.release.join(',')) : null;
  const [command, ...commandArgs] = positionals;
  if (command === undefined)
    throw new KillpathError('invalid_request', 'no command: killpath run --tenant T --agent A -- <command…>');
  const restart = values.restart ?? 'never';
  if (restart !== 'never' && restart !== 'on-failure')
    throw new KillpathError('invalid_request', '--restart takes never or on-failure');
  const isolation = values.isolation ?? 'auto';
  if (isolation !== 'auto' && isolation !== 'cgroup' && isolation !== 'process-group')
    throw new KillpathError('invalid_request', '--isolation takes cgroup, process-group or auto');
  const orphanPolicy = values['orphan-policy'] ?? 'kill';
  if (orphanPolicy !== 'kill' && orphanPolicy !== 'keep')
    throw new KillpathError('invalid_request', '--orphan-policy takes kill or keep');
  if (isolation === 'cgroup') {
    const ok = cgroupSupport();
    if (!ok.ok)
      throw new KillpathError('invalid_request', `--isolation cgroup is not available here: ${ok.why}`);
  }
  if (values.netns) {
    const ok = netnsSupported();
    if (!ok.ok) throw new KillpathError('invalid_request', `--netns is not available here: ${ok.why}`);
  }
  const mcpSpecs =
    values.mcp === undefined && values['mcp-classes'] === undefined
      ? []
      : await mcpModule().then((m) => m.parseMcpFronts(values.mcp ?? [], values['mcp-classes'] ?? []));
  if (mcpSpecs.length > 0 && values.netns)
    throw new KillpathError(
      'invalid_request',
      '--mcp cannot be used with --netns yet: the agent could not reach the gateway on loopback',
    );
  const conn = resolveConnection(values);
  const launcherId = values['launcher-id'] ?? `launch-${randomUUID()}`;
  const ttlMs = values['token-ttl'] === undefined ? undefined : ttlFlag(values['token-ttl']);
  const { token, minted } = await agentToken(
    new ApiClient(conn.url, conn.token),
    conn.token,
    tenant,
    agent,
    launcherId,
    ttlMs,
  );
  // Said as one line of the launcher's JSON log (stderr), which follows.
  if (minted !== null)
    console.error(
      JSON.stringify({
        ts: new Date().toISOString(),
        level: 'info',
        launcher: launcherId,
        msg: `your ${minted.by} token minted an agent token of ${tenant}/${agent} for this launcher`,
        expiresAt: minted.expiresAt,
      }),
    );
  // MCP gateways in front of the agent, in this process (loaded only when asked for: the MCP SDK is large).
  const fronts =
    mcpSpecs.length === 0
      ? null
      : await (
          await mcpModule()
        ).startMcpFronts(mcpSpecs, {
          url: conn.url,
          token,
          tenant,
          agent,
          runId: values.run ?? null,
          features,
          release,
        });
  const launcher = new Launcher({
    url: conn.urls,
    ca: conn.ca,
    token,
    tenant,
    agent,
    runId: values.run ?? null,
    features,
    release,
    command,
    args: commandArgs,
    netns: values.netns ?? false,
    restart,
    isolation,
    orphanPolicy,
    ...(values['evidence-dir'] ? { evidenceDir: values['evidence-dir'] } : {}),
    killGraceMs: intFlag('kill-grace', values['kill-grace'], 2000),
    launcherId,
    ...(fronts === null ? {} : { env: { ...process.env, ...fronts.env } }),
  });
  const onSignal = () => void launcher.stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await launcher.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await fronts?.close();
    // The token an operator's launcher had minted ends with it, unless the agent outlives it.
    if (minted?.by === 'operator' && orphanPolicy === 'kill')
      await new ApiClient(conn.url, token)
        .post(`/v1/launchers/${encodeURIComponent(launcherId)}/token/revoke`, {})
        .catch((err: unknown) =>
          console.error(
            `killpath run: could not end the minted agent token (it expires by itself): ${(err as Error).message}`,
          ),
        );
  }
}

const mcpModule = () => import('./mcp-front.ts');
