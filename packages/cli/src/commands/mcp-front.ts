import { readFileSync } from 'node:fs';
import { KillpathError, isIdentifier, type Release } from '@killpath/protocol';
import { connect, type Client as KillpathClient } from '@killpath/sdk';
import {
  McpGateway,
  SwitchboardWatcher,
  listenHttp,
  parseToolClasses,
  type HttpListener,
  type ToolClasses,
} from '@killpath/mcp';

/** One `--mcp NAME=COMMAND` of `killpath run`. */
export interface McpFrontSpec {
  name: string;
  command: string;
  args: string[];
  classes?: ToolClasses;
}

/** The environment variable that tells the agent where the gateway of server `name` listens. */
export function mcpUrlVariable(name: string): string {
  return `KILLPATH_MCP_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
}

/**
 * Parses `--mcp NAME=COMMAND ARGS…` (split on spaces, no shell) and `--mcp-classes NAME=FILE`.
 * @throws KillpathError `invalid_request` naming the bad flag
 */
export function parseMcpFronts(mcp: readonly string[], classes: readonly string[]): McpFrontSpec[] {
  const specs = new Map<string, McpFrontSpec>();
  for (const text of mcp) {
    const eq = text.indexOf('=');
    const name = text.slice(0, eq);
    const [command, ...args] = text
      .slice(eq + 1)
      .split(' ')
      .filter((w) => w !== '');
    if (eq < 0 || !isIdentifier(name) || command === undefined)
      throw new KillpathError(
        'invalid_request',
        `--mcp takes NAME=COMMAND (e.g. --mcp "files=npx my-mcp-server"), not "${text}"`,
      );
    if (specs.has(name)) throw new KillpathError('invalid_request', `--mcp ${name} is given twice`);
    specs.set(name, { name, command, args });
  }
  for (const text of classes) {
    const eq = text.indexOf('=');
    const spec = specs.get(text.slice(0, eq));
    if (eq < 0 || spec === undefined)
      throw new KillpathError(
        'invalid_request',
        `--mcp-classes takes NAME=FILE for a NAME given with --mcp, not "${text}"`,
      );
    const file = text.slice(eq + 1);
    let json: string;
    try {
      json = readFileSync(file, 'utf8');
    } catch (err) {
      throw new KillpathError(
        'invalid_request',
        `--mcp-classes ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
    spec.classes = parseToolClasses(json, `--mcp-classes ${file}`);
  }
  return [...specs.values()];
}

/** Gateways started by `killpath run` in front of its agent. */
export interface McpFronts {
  /** `KILLPATH_MCP_<NAME>_URL` for each gateway, for the agent's environment. */
  env: Record<string, string>;
  /** Closes the gateways (their upstream servers end) and their control plane connections. */
  close(): Promise<void>;
}

/**
 * Starts one MCP gateway per spec in this process, each on Streamable HTTP at a free loopback
 * port, with its own connection to the control plane as the agent (its tool calls are effects of
 * run `runId`, or of a random run of the agent). Resolves once every one listens.
 * @throws KillpathError `unavailable` when the control plane cannot be reached (nothing is left running)
 */
export async function startMcpFronts(
  specs: readonly McpFrontSpec[],
  who: {
    url: string;
    token: string;
    tenant: string;
    agent: string;
    runId: string | null;
    features: string[];
    /** The agent's release (the launcher's `--release`): the gateways' tool calls are the agent's, so `release:` directives must cover them too. */
    release: Release | null;
  },
): Promise<McpFronts> {
  const opened: { client: KillpathClient; gateway: McpGateway | null; http: HttpListener | null }[] = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(
      opened.map(async (o) => {
        await o.http?.close();
        await o.gateway?.close();
        await o.client.close();
      }),
    );
  };
  const env: Record<string, string> = {};
  try {
    for (const spec of specs) {
      const switchboard = new SwitchboardWatcher();
      const client = connect({
        url: who.url,
        token: who.token,
        tenant: who.tenant,
        agent: who.agent,
        features: who.features,
        ...(who.release ? { release: who.release } : {}),
        sink: switchboard,
        readyTimeoutMs: 10_000,
      });
      const o: (typeof opened)[number] = { client, gateway: null, http: null };
      opened.push(o);
      await client.ready;
      o.gateway = new McpGateway({
        killpath: client,
        switchboard,
        upstream: { command: spec.command, args: spec.args },
        name: spec.name,
        ...(who.runId === null ? {} : { runId: who.runId }),
        ...(spec.classes === undefined ? {} : { classes: spec.classes }),
      });
      o.http = await listenHttp(o.gateway, '127.0.0.1', 0);
      env[mcpUrlVariable(spec.name)] = o.http.url;
    }
  } catch (err) {
    await close();
    if (err instanceof KillpathError) throw err;
    throw new KillpathError('unavailable', `the MCP gateway did not start: ${(err as Error).message}`);
  }
  return { env, close };
}
