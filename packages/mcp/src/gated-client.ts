import type { Run } from '@killpath/sdk';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolRequest, ListToolsRequest } from '@modelcontextprotocol/sdk/types.js';
import { mcpCapability, toolClass } from './capability.ts';
import type { ToolClasses } from './capability.ts';
import { withJoinedSignal } from './join-signal.ts';
import { hidesTool } from './refusal.ts';

/** Options for {@link gateMcpClient}. */
export interface GatedClientOptions {
  /**
   * The server's name in capabilities (`mcp:<server>/<tool>`): what an operator names in
   * `killpath kill --tool mcp:<server>/<tool>`. An identifier.
   */
  server: string;
  /** Effect class per tool; default `write` for every tool. */
  classes?: ToolClasses;
}

/** Options of one gated call: the MCP SDK's request options plus an idempotency key. */
export type GatedCallOptions = RequestOptions & {
  /** Same key, same run: the tool call is permitted once and never runs twice (see `EffectOptions.idempotencyKey`). */
  idempotencyKey?: string;
};

type CallToolAnswer = Awaited<ReturnType<Client['callTool']>>;
type ListToolsAnswer = Awaited<ReturnType<Client['listTools']>>;

/**
 * An MCP client under the kill path: each tool call is an effect of the run, and revoked tools
 * are not listed. Build one with {@link gateMcpClient}.
 */
export interface GatedMcpClient {
  /** The wrapped MCP client (its other requests are not gated). */
  readonly client: Client;
  /**
   * Calls a tool as `run.effect({ capability: 'mcp:<server>/<tool>', class, args })`. Refused
   * before anything is sent when the gate denies it (a `KillpathError`, code `halted`; a write
   * also needs the control plane's permit). When a covering halt is observed while the call is
   * in flight, the request's signal aborts, the MCP SDK sends `notifications/cancelled` to the
   * server, and the promise rejects with the `halted` error at once (`read` tools complete).
   * `options.signal` also cancels the call.
   */
  callTool(params: CallToolRequest['params'], options?: GatedCallOptions): Promise<CallToolAnswer>;
  /** `tools/list` without the tools this run may not use now (a degrade naming them, or read-only). */
  listTools(params?: ListToolsRequest['params'], options?: RequestOptions): Promise<ListToolsAnswer>;
  /** The capability of a tool of this server. */
  capability(tool: string): string;
  /** False when the run may not use `tool` now (it would be left out of `listTools`). */
  visible(tool: string): boolean;
}

/**
 * Puts an MCP client under the kill path of `run`. The client must be connected (or connect
 * later); the wrapper keeps no state of its own, so it can be created per run.
 * @throws KillpathError `invalid_request` when `options.server` is not an identifier
 */
export function gateMcpClient(client: Client, run: Run, options: GatedClientOptions): GatedMcpClient {
  const server = options.server;
  mcpCapability(server, 'probe'); // validates the server name now, not at the first call
  const classes = options.classes;
  const capability = (tool: string): string => mcpCapability(server, tool);
  const visible = (tool: string): boolean =>
    !hidesTool(run.check(capability(tool), toolClass(classes, tool)));
  return Object.freeze({
    client,
    capability,
    visible,
    callTool(params: CallToolRequest['params'], callOptions: GatedCallOptions = {}): Promise<CallToolAnswer> {
      const { idempotencyKey, signal: outer, ...rest } = callOptions;
      return run.effect(
        {
          capability: capability(params.name),
          class: toolClass(classes, params.name),
          args: params.arguments ?? {},
          ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        },
        (signal) =>
          withJoinedSignal(signal, outer, (s) => client.callTool(params, undefined, { ...rest, signal: s })),
      );
    },
    async listTools(
      params?: ListToolsRequest['params'],
      listOptions?: RequestOptions,
    ): Promise<ListToolsAnswer> {
      const answer = await client.listTools(params, listOptions);
      return { ...answer, tools: answer.tools.filter((t) => visible(t.name)) };
    },
  });
}
