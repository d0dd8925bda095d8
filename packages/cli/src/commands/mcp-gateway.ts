import { readFileSync } from 'node:fs';
import { KillpathError, isIdentifier } from '@killpath/protocol';
import { connect } from '@killpath/sdk';
import {
  McpGateway,
  SwitchboardWatcher,
  isLoopback,
  listenHttp,
  parseToolClasses,
  type ToolClasses,
} from '@killpath/mcp';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { resolveConnection } from '../config.ts';
import { ApiClient } from '../api.ts';
import { agentToken } from '../agent-token.ts';

export const MCP_GATEWAY_HELP = `killpath mcp-gateway [--tenant T --agent A] [options] -- <upstream MCP server command…>

An MCP server that stands in front of another and puts the kill path between any MCP client
and it: point the client's server config at this command instead of the real server. Every
tools/call is an effect of capability mcp:<name>/<tool> of the run (class from --classes,
default write: a permit per call). Under a halt, kill or freeze of a tool the call is answered
with a tool error the model can read (isError: true) and calls in flight are cancelled upstream
(notifications/cancelled); a degrade naming a tool takes it out of tools/list and the client is
sent notifications/tools/list_changed (resume puts it back). Everything else (resources,
prompts, progress, sampling, elicitation, roots, logging) is forwarded both ways.

Speaks MCP over stdio (the client starts this command), or with --listen over Streamable HTTP
at http://HOST:PORT/mcp (loopback only; one upstream process and one child run per session;
the URL is printed on stdout).

Options:
  --tenant T, --agent A   the agent's identity (default KILLPATH_TENANT, KILLPATH_AGENT, as set by
                          killpath run for the agent it launches)
  --run R                 the run its tool calls belong to (default KILLPATH_RUN_ID, else random)
  --name NAME             the server's name in capabilities (default: the name the upstream
                          server gives in its handshake)
  --classes FILE          JSON: {"search": "read", "delete_repo": "irreversible", "*": "write"}
  --listen HOST:PORT      Streamable HTTP instead of stdio (port 0 picks a free one)
  --features F1,F2        features the agent declares
  --url URL --token TOKEN --data-dir DIR   where the control plane is (default KILLPATH_URL and
                          KILLPATH_TOKEN); the token is an agent token of T/A (an admin token
                          mints one)
  --ready-timeout MS      how long to wait for the control plane at start (default 10000)
  --session-idle-ms MS    HTTP: close a session whose client went away without DELETE after this
                          long with no request open (default 1800000)

Exit codes: 0 when the client went away; 2 for bad usage; 69 when the control plane could not be
reached at start (no upstream server is started).`;

/** `killpath mcp-gateway`: serves until the client goes away (stdio) or a signal (HTTP). */
export async function mcpGateway(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      tenant: { type: 'string' },
      agent: { type: 'string' },
      run: { type: 'string' },
      name: { type: 'string' },
      classes: { type: 'string' },
      listen: { type: 'string' },
      features: { type: 'string' },
      'ready-timeout': { type: 'string' },
      'session-idle-ms': { type: 'string' },
    },
    true,
  );
  if (values.help) {
    console.log(MCP_GATEWAY_HELP);
    return 0;
  }
  const env = process.env;
  const tenant = values.tenant ?? env.KILLPATH_TENANT;
  const agent = values.agent ?? env.KILLPATH_AGENT;
  const runId = values.run ?? env.KILLPATH_RUN_ID;
  if (!tenant || !agent)
    throw new KillpathError(
      'invalid_request',
      '--tenant and --agent are required (or KILLPATH_TENANT and KILLPATH_AGENT; see killpath mcp-gateway --help)',
    );
  for (const [name, v] of [
    ['tenant', tenant],
    ['agent', agent],
    ['run', runId],
    ['name', values.name],
  ] as const) {
    if (v !== undefined && !isIdentifier(v))
      throw new KillpathError('invalid_request', `--${name} must be 1-128 letters, digits or ._:@-`);
  }
  const features = values.features ? values.features.split(',').filter((f) => f !== '') : [];
  if (!features.every(isIdentifier))
    throw new KillpathError('invalid_request', '--features takes a comma-separated list of identifiers');
  const [command, ...commandArgs] = positionals;
  if (command === undefined)
    throw new KillpathError('invalid_request', 'no upstream server: killpath mcp-gateway -- <command…>');
  const classes = values.classes === undefined ? undefined : readClasses(values.classes);
  const listen = values.listen === undefined ? null : parseListen(values.listen);
  const readyTimeoutMs = intFlag('ready-timeout', values['ready-timeout'], 10_000);
  const sessionIdleMs = intFlag('session-idle-ms', values['session-idle-ms'], 1_800_000);
  const conn = resolveConnection(values);
  const { token } = await agentToken(new ApiClient(conn.url, conn.token), conn.token, tenant, agent, null);

  const switchboard = new SwitchboardWatcher();
  const killpath = connect({
    url: conn.url,
    token,
    tenant,
    agent,
    features,
    sink: switchboard,
    readyTimeoutMs,
  });
  try {
    await killpath.ready;
  } catch (err) {
    await killpath.close();
    console.error(`killpath mcp-gateway: ${(err as Error).message}`);
    return 69;
  }
  const gateway = new McpGateway({
    killpath,
    switchboard,
    upstream: { command, args: commandArgs },
    ...(runId === undefined ? {} : { runId }),
    ...(values.name === undefined ? {} : { name: values.name }),
    ...(classes === undefined ? {} : { classes }),
  });
  let stop: () => void = () => {};
  const stopped = new Promise<void>((ok) => (stop = ok));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (listen === null) {
      await Promise.race([gateway.serveStdio(), stopped]);
    } else {
      const http = await listenHttp(gateway, listen.host, listen.port, { sessionIdleMs });
      console.log(`killpath mcp-gateway listening on ${http.url}`);
      await stopped;
      await http.close();
    }
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await gateway.close();
    await killpath.close();
  }
}

/** Reads `--classes FILE`. */
function readClasses(file: string): ToolClasses {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `--classes ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  return parseToolClasses(text, `--classes ${file}`);
}

/** Parses `--listen HOST:PORT` (`[::1]:PORT` for IPv6). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new KillpathError(
      'invalid_request',
      `--listen takes HOST:PORT (e.g. 127.0.0.1:7071), not "${text}"`,
    );
  const host = (m[1] ?? m[2])!;
  if (!isLoopback(host))
    throw new KillpathError(
      'invalid_request',
      `--listen ${host}: the gateway's HTTP endpoint has no authentication of its own, so it listens on loopback only (127.0.0.1, ::1, localhost)`,
    );
  return { host, port };
}
