import type { Readable, Writable } from 'node:stream';
import { KillpathError, isIdentifier } from '@killpath/protocol';
import type { Client as KillpathClient, Run } from '@killpath/sdk';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { ToolClasses } from '../capability.ts';
import { GatewaySession } from './session.ts';
import type { SwitchboardWatcher } from './switchboard-watcher.ts';
import { connectUpstream } from './upstream.ts';
import type { UpstreamCommand } from './upstream.ts';

/** Options of an {@link McpGateway}. */
export interface GatewayOptions {
  /** The gateway's own killpath client (an agent token of the agent it stands in front of). */
  killpath: KillpathClient;
  /** The watcher passed as `sink` to that client's `connect`: switchboard changes refresh tool lists. */
  switchboard: SwitchboardWatcher;
  /** The real MCP server, started once per session. */
  upstream: UpstreamCommand;
  /** The run the sessions' tool calls belong to (HTTP sessions are its children). Default a random id. */
  runId?: string;
  /**
   * The server's name in capabilities (`mcp:<name>/<tool>`). Default: the name the upstream
   * server gives in its handshake, made an identifier (other characters become `_`).
   */
  name?: string;
  /** Effect class per tool; default `write`. */
  classes?: ToolClasses;
  /** Timeout of a forwarded request in ms (progress resets it). Default 3 600 000. */
  requestTimeoutMs?: number;
  /** How long the upstream server may take to start and answer the handshake, in ms. Default 30 000. */
  upstreamStartMs?: number;
}

/**
 * An MCP gateway: any MCP client talks to it as to the upstream server, and it puts the kill
 * path in between (see {@link GatewaySession}). One upstream process per session: stdio has
 * one session; each Streamable HTTP session (see `listenHttp`) gets its own, as a child run.
 */
export class McpGateway {
  /** The run of the stdio session, parent of the HTTP sessions' runs. */
  readonly run: Run;
  private readonly options: GatewayOptions;
  private readonly sessions = new Set<GatewaySession>();
  private readonly unwatch: () => void;
  private closed = false;

  /** @throws KillpathError `invalid_request` for a name or run id that is not an identifier */
  constructor(options: GatewayOptions) {
    if (options.name !== undefined && !isIdentifier(options.name))
      throw new KillpathError('invalid_request', `--name must be 1-128 letters, digits or ._:@-`);
    this.options = options;
    this.run = options.killpath.startRun(options.runId === undefined ? {} : { runId: options.runId });
    this.unwatch = options.switchboard.onChange(() => {
      for (const s of this.sessions) s.refresh();
    });
  }

  /** Sessions open now. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Starts the upstream server and opens a session whose tool calls are effects of `run`
   * (default the gateway's run). The caller connects its downstream transport.
   */
  async openSession(run: Run = this.run): Promise<GatewaySession> {
    if (this.closed) throw new KillpathError('unavailable', 'the gateway is closing');
    const upstream = await connectUpstream(this.options.upstream, this.options.upstreamStartMs ?? 30_000);
    const server = this.options.name ?? serverName(upstream.getServerVersion()?.name);
    const session: GatewaySession = new GatewaySession({
      upstream,
      run,
      server,
      classes: this.options.classes,
      requestTimeoutMs: this.options.requestTimeoutMs ?? 3_600_000,
      onClose: () => {
        this.sessions.delete(session);
        if (run !== this.run) run.end();
      },
    });
    this.sessions.add(session);
    if (this.closed) await session.close();
    return session;
  }

  /**
   * Serves one session over stdio (the agent's client started this process) and resolves when
   * it ends: the agent closed stdin, or the upstream server exited.
   */
  async serveStdio(input: Readable = process.stdin, output: Writable = process.stdout): Promise<void> {
    const session = await this.openSession();
    const done = (): void => void session.close();
    input.once('end', done);
    input.once('close', done);
    try {
      await session.connect(new StdioServerTransport(input, output));
      await session.done;
    } finally {
      input.off('end', done);
      input.off('close', done);
    }
  }

  /** Closes every session (each upstream process ends) and ends the gateway's run. */
  async close(): Promise<void> {
    this.closed = true;
    this.unwatch();
    await Promise.allSettled([...this.sessions].map((s) => s.close()));
    this.sessions.clear();
    this.run.end();
  }
}

/** An upstream's self-given name as a capability part: an identifier (`upstream` when it gave none). */
export function serverName(name: string | undefined): string {
  const id = (name ?? '').replace(/[^A-Za-z0-9._:@-]/g, '_').slice(0, 128);
  return id === '' ? 'upstream' : id;
}
