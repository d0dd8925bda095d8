import type { Run } from '@killpath/sdk';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  McpError,
  CallToolResultSchema,
  ListToolsRequestSchema,
  ListToolsResultSchema,
  ResultSchema,
  type CallToolRequest,
  type CallToolResult,
  type ListToolsRequest,
  type ListToolsResult,
  type Notification,
  type Progress,
  type RequestId,
  type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import { mcpCapability, toolClass } from '../capability.ts';
import type { ToolClasses } from '../capability.ts';
import { withJoinedSignal } from '../join-signal.ts';
import { hidesTool, isRefusal, refusalResult, refusalWords } from '../refusal.ts';

/** Most tool names a session remembers to tell when its visible list changed. */
const MAX_KNOWN_TOOLS = 10_000;

/** What one gateway session needs. */
export interface SessionOptions {
  /** The MCP client connected to the upstream server (this session's own). */
  upstream: Client;
  /** The killpath run the session's tool calls are effects of. */
  run: Run;
  /** The server's name in capabilities (`mcp:<server>/<tool>`). */
  server: string;
  classes?: ToolClasses | undefined;
  /** Timeout of a request forwarded either way, in ms (progress resets it). */
  requestTimeoutMs: number;
  /** Called once when the session closed (either side went away, or `close`). */
  onClose?: () => void;
}

/**
 * The agent's requests the gateway forwards besides `tools/list` and `tools/call`: what MCP
 * defines, nothing else (an unknown method could be anything, a write included).
 */
const FORWARDED = new Set([
  'ping',
  'completion/complete',
  'logging/setLevel',
  'prompts/get',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
]);

/** Anything with `extra.sendNotification`, `extra.signal` and `extra.requestId` (a request handler's extra). */
interface HandlerExtra {
  signal: AbortSignal;
  requestId: RequestId;
  sendNotification: (n: {
    method: 'notifications/progress';
    params: Progress & { progressToken: string | number };
  }) => Promise<void>;
}

/**
 * One MCP session through the gateway: a downstream `Server` speaking to the agent's client and
 * the upstream `Client` of the real server, with the kill path between them. `tools/call` is an
 * effect of the session's run (refused or aborted calls answer a tool-level error the model can
 * read, `isError: true`; an aborted call is cancelled upstream with `notifications/cancelled`);
 * `tools/list` leaves out revoked tools and {@link GatewaySession.refresh} sends
 * `notifications/tools/list_changed` when that set changes. Every other request and
 * notification is forwarded as it is, both ways (resources, prompts, completion, logging,
 * sampling, elicitation, roots), progress included; a sampling request is also an `llm` effect
 * of the run (refused under a covering stop, aborted by one: the model call is the agent's).
 */
export class GatewaySession {
  /** The server the agent's client talks to. */
  readonly downstream: Server;
  readonly run: Run;
  private readonly upstream: Client;
  private readonly server: string;
  private readonly classes: ToolClasses | undefined;
  private readonly timeout: number;
  private readonly known = new Set<string>();
  /** Hidden tools (sorted, joined) when the agent last listed or was told of a change; null before its first list. */
  private listedHidden: string | null = null;
  /** Downstream requests in flight: a request from upstream is related to the only one, if one. */
  private readonly inFlight = new Set<RequestId>();
  private closed = false;
  private readonly onClose: (() => void) | null;
  private markDone: () => void = () => {};
  /** Resolves once the session closed, whichever side went away first. */
  readonly done: Promise<void>;

  constructor(options: SessionOptions) {
    this.upstream = options.upstream;
    this.run = options.run;
    this.server = options.server;
    this.classes = options.classes;
    this.timeout = options.requestTimeoutMs;
    const up = this.upstream.getServerCapabilities() ?? {};
    // Tasks need a task store on both sides; the gateway does not offer them.
    const { tasks: _tasks, ...mirrored } = up as ServerCapabilities & { tasks?: unknown };
    const capabilities: ServerCapabilities = {
      ...mirrored,
      tools: { ...(up.tools ?? {}), listChanged: true },
    };
    const info = this.upstream.getServerVersion();
    const instructions = this.upstream.getInstructions();
    this.downstream = new Server(
      { name: `${info?.name ?? this.server} (via killpath)`, version: info?.version ?? '0.0.0' },
      { capabilities, ...(instructions === undefined ? {} : { instructions }) },
    );
    // Logging levels are the upstream server's business: forward logging/setLevel too.
    this.downstream.removeRequestHandler('logging/setLevel');
    this.downstream.setRequestHandler(ListToolsRequestSchema, (req, extra) => this.listTools(req, extra));
    this.downstream.setRequestHandler(CallToolRequestSchema, (req, extra) => this.callTool(req, extra));
    this.downstream.fallbackRequestHandler = async (req, extra) => {
      // Only what MCP defines is forwarded (an unknown method could be anything, a write
      // included), and each request is a read of the run on `mcp:<server>`: refused under a
      // covering stop like a tool call, aborted when one is observed mid-request.
      if (!FORWARDED.has(req.method))
        throw new McpError(ErrorCode.MethodNotFound, `the killpath gateway does not forward ${req.method}`);
      try {
        return await this.run.effect({ capability: `mcp:${this.server}`, class: 'read' }, (signal) =>
          this.tracked(extra.requestId, () =>
            withJoinedSignal(signal, extra.signal, (joined) =>
              this.upstream.request({ method: req.method, params: req.params }, ResultSchema, {
                ...this.forwardOptions(req.params, extra),
                signal: joined,
              }),
            ),
          ),
        );
      } catch (err) {
        if (isRefusal(err))
          throw new McpError(ErrorCode.InvalidRequest, `${req.method} ${refusalWords(err)}: ${err.message}`);
        throw err;
      }
    };
    this.downstream.fallbackNotificationHandler = (n) => this.forward(this.upstream, n);
    this.upstream.fallbackRequestHandler = async (req, extra) => {
      const only = this.inFlight.size === 1 ? [...this.inFlight][0] : undefined;
      const ask = (signal: AbortSignal) =>
        this.downstream.request({ method: req.method, params: req.params }, ResultSchema, {
          ...this.forwardOptions(req.params, extra),
          signal,
          ...(only === undefined ? {} : { relatedRequestId: only }),
        });
      if (req.method !== 'sampling/createMessage') return ask(extra.signal);
      // Sampling is a model call made through the agent's client: an `llm` effect of the run,
      // refused under a covering stop and aborted when one is observed mid-call.
      try {
        return await this.run.effect({ capability: 'llm', class: 'read' }, (signal) =>
          withJoinedSignal(signal, extra.signal, ask),
        );
      } catch (err) {
        if (isRefusal(err))
          throw new McpError(ErrorCode.InvalidRequest, `sampling refused by killpath: ${err.message}`);
        throw err;
      }
    };
    this.upstream.fallbackNotificationHandler = (n) => this.forward(this.downstream, n);
    this.onClose = options.onClose ?? null;
    this.done = new Promise((ok) => (this.markDone = ok));
    const closed = (): void => void this.close();
    this.downstream.onclose = closed;
    this.upstream.onclose = closed;
  }

  /** Connects the downstream server to the agent's transport. */
  connect(transport: Transport): Promise<void> {
    return this.downstream.connect(transport);
  }

  /**
   * The switchboard changed: when the set of hidden tools differs from what the agent last
   * listed, tell it (`notifications/tools/list_changed`). Cheap: memory-only gate checks.
   */
  refresh(): void {
    if (this.closed || this.listedHidden === null) return;
    const hidden = this.hiddenNow();
    if (hidden === this.listedHidden) return;
    this.listedHidden = hidden;
    this.downstream.sendToolListChanged().catch(() => {});
  }

  /** Closes both sides; the upstream server process is ended by its transport. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.downstream.close(), this.upstream.close()]);
    this.onClose?.();
    this.markDone();
  }

  private visible(tool: string): boolean {
    return !hidesTool(this.run.check(mcpCapability(this.server, tool), toolClass(this.classes, tool)));
  }

  private hiddenNow(): string {
    return [...this.known]
      .filter((t) => !this.visible(t))
      .sort()
      .join('\n');
  }

  private async listTools(req: ListToolsRequest, extra: HandlerExtra): Promise<ListToolsResult> {
    const answer = await this.tracked(extra.requestId, () =>
      this.upstream.request({ method: 'tools/list', params: req.params }, ListToolsResultSchema, {
        signal: extra.signal,
        timeout: this.timeout,
      }),
    );
    for (const t of answer.tools) if (this.known.size < MAX_KNOWN_TOOLS) this.known.add(t.name);
    this.listedHidden = this.hiddenNow();
    return { ...answer, tools: answer.tools.filter((t) => this.visible(t.name)) };
  }

  private async callTool(req: CallToolRequest, extra: HandlerExtra): Promise<CallToolResult> {
    const name = req.params.name;
    const tool = mcpCapability(this.server, name);
    try {
      return await this.tracked(extra.requestId, () =>
        this.run.effect(
          { capability: tool, class: toolClass(this.classes, name), args: req.params.arguments ?? {} },
          (signal) =>
            withJoinedSignal(signal, extra.signal, (s) =>
              this.upstream.request({ method: 'tools/call', params: req.params }, CallToolResultSchema, {
                ...this.forwardOptions(req.params, extra),
                signal: s,
              }),
            ),
        ),
      );
    } catch (err) {
      // A refusal or a halt mid-call: an answer the model reads, not a protocol error.
      if (isRefusal(err)) return refusalResult(name, err);
      throw err;
    }
  }

  /** Request options for a forwarded request: the caller's signal, a timeout, and its progress relayed. */
  private forwardOptions(
    params: { _meta?: { progressToken?: string | number } } | undefined,
    extra: HandlerExtra,
  ): RequestOptions {
    const token = params?._meta?.progressToken;
    return {
      signal: extra.signal,
      timeout: this.timeout,
      resetTimeoutOnProgress: true,
      ...(token === undefined
        ? {}
        : {
            onprogress: (p: Progress) => {
              extra
                .sendNotification({
                  method: 'notifications/progress',
                  params: { ...p, progressToken: token },
                })
                .catch(() => {});
            },
          }),
    };
  }

  private async tracked<T>(id: RequestId, fn: () => Promise<T>): Promise<T> {
    this.inFlight.add(id);
    try {
      return await fn();
    } finally {
      this.inFlight.delete(id);
    }
  }

  /** Forwards a notification; one the other side has no capability for is dropped. */
  private async forward(to: Client | Server, n: Notification): Promise<void> {
    try {
      await (to as Server).notification(n as Parameters<Server['notification']>[0]);
    } catch {
      // The receiving side did not declare the capability this notification needs.
    }
  }
}
