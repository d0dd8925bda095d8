import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

/** The upstream MCP server: a command the gateway starts and speaks to over stdio. */
export interface UpstreamCommand {
  command: string;
  args: readonly string[];
  /** Its environment. Default: the gateway's own, without `KILLPATH_*` variables (its token stays with the gateway). */
  env?: Record<string, string>;
  cwd?: string;
}

/** The gateway's environment for an upstream server: everything but killpath's own variables. */
export function upstreamEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith('KILLPATH_')) out[k] = v;
  return out;
}

/**
 * Starts the upstream server and connects an MCP client to it, declaring what the gateway
 * forwards to the agent's client (sampling, elicitation, roots with change notices). Its stderr
 * is the gateway's. The process ends when the client closes (stdin closed, then SIGTERM, then
 * SIGKILL, 2 s apart: the MCP SDK's stdio transport).
 * @throws when the command cannot be started or does not complete the MCP handshake in `timeoutMs`
 */
export async function connectUpstream(upstream: UpstreamCommand, timeoutMs: number): Promise<Client> {
  const client = new Client(
    { name: 'killpath-mcp-gateway', version: '0.1.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  const transport = new StdioClientTransport({
    command: upstream.command,
    args: [...upstream.args],
    env: upstream.env ?? upstreamEnv(),
    stderr: 'inherit',
    ...(upstream.cwd === undefined ? {} : { cwd: upstream.cwd }),
  });
  try {
    await client.connect(transport, { timeout: timeoutMs });
  } catch (err) {
    await client.close().catch(() => {});
    await transport.close().catch(() => {});
    throw err;
  }
  return client;
}
