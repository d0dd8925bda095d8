/**
 * `@killpath/sdk/langchain`: the kill path for LangChain JS 1.x agents (`createAgent`). Only
 * types are imported at module load; {@link killpathLangChain} loads `langchain` when called.
 */
import type { EffectClass } from '@killpath/protocol';
import type { createMiddleware } from 'langchain';
import { toolCallKey } from './adapter-common.ts';
import { MODEL_CAPABILITY } from './run.ts';
import type { Run } from './run.ts';
import { haltedError } from './verdict.ts';

/** The middleware `createMiddleware` returns, for `createAgent({ middleware: [kp.middleware] })`. */
export type KillpathMiddleware = ReturnType<typeof createMiddleware>;

/** Options for {@link killpathLangChain}. */
export interface LangChainOptions {
  /** The effect class of each tool, by tool name; default `write` (the safe one). */
  classes?: Record<string, EffectClass>;
  /** The capability a tool's calls are effects of; default the tool's name. */
  capabilityOf?: (toolName: string) => string;
}

/** What puts a LangChain agent under the kill path. */
export interface LangChainKillpath {
  /**
   * Middleware for `createAgent`: a tool call the gate refuses is answered with a `ToolMessage`
   * of `status: 'error'` the model reads (the tool never runs); an allowed one runs as
   * `run.effect` (the tool's class, the idempotency key `langchain:<id>`, the tool gets the
   * effect's signal); tools the gate refuses are not offered to the model (a degrade); a model
   * call is an effect of capability `llm`, class `read`, and a refused one ends the agent
   * (`jumpTo: 'end'`, with an `AIMessage` saying why).
   */
  readonly middleware: KillpathMiddleware;
  /** For `agent.invoke(input, { signal })` / `agent.stream`: `run.signal`, so a halt ends the whole call. */
  readonly signal: AbortSignal;
}

type Hooks = Parameters<typeof createMiddleware>[0];
type WrapToolCall = NonNullable<Hooks['wrapToolCall']>;
type ToolRequest = Parameters<WrapToolCall>[0];
type WrapModelCall = NonNullable<Hooks['wrapModelCall']>;

/**
 * The kill path for a LangChain agent bound to `run` (loads `langchain` on first call):
 *
 * ```ts
 * const kp = await killpathLangChain(run, { classes: { search: 'read' } });
 * const agent = createAgent({ model, tools, middleware: [kp.middleware] });
 * await agent.invoke({ messages }, { signal: kp.signal });
 * ```
 */
export async function killpathLangChain(
  run: Run,
  options: LangChainOptions = {},
): Promise<LangChainKillpath> {
  const { createMiddleware: create, AIMessage, ToolMessage } = await import('langchain');
  const capabilityOf = options.capabilityOf ?? ((name: string) => name);
  const classOf = (name: string): EffectClass => options.classes?.[name] ?? 'write';
  const refusal = (capability: string, cls: EffectClass): string | null => {
    const verdict = run.check(capability, cls);
    return verdict.kind === 'allow' ? null : haltedError(verdict, run.runId, capability, 'denied').message;
  };
  const toolRefusal = (name: string) => refusal(capabilityOf(name), classOf(name));

  const wrapToolCall: WrapToolCall = (request, handler) => {
    const { toolCall } = request;
    const message = toolRefusal(toolCall.name);
    if (message !== null) {
      return new ToolMessage({
        content: message,
        tool_call_id: toolCall.id ?? '',
        name: toolCall.name,
        status: 'error',
      });
    }
    return run.effect(
      {
        capability: capabilityOf(toolCall.name),
        class: classOf(toolCall.name),
        idempotencyKey: toolCallKey('langchain', toolCall.id),
        args: toolCall.args,
        ...(request.runtime.signal === undefined ? {} : { signal: request.runtime.signal }),
      },
      (signal) => handler(withSignal(request, signal)),
    );
  };

  const wrapModelCall: WrapModelCall = (request, handler) =>
    run.effect(
      {
        capability: MODEL_CAPABILITY,
        class: 'read',
        ...(request.runtime.signal === undefined ? {} : { signal: request.runtime.signal }),
      },
      () => {
        const tools = request.tools.filter((t) => {
          const name = (t as { name?: unknown }).name;
          return typeof name !== 'string' || toolRefusal(name) === null;
        });
        return handler(tools.length === request.tools.length ? request : { ...request, tools });
      },
    );

  const middleware = create({
    name: 'killpath',
    beforeModel: {
      canJumpTo: ['end'],
      hook: () => {
        const message = refusal(MODEL_CAPABILITY, 'read');
        if (message === null) return undefined;
        return { jumpTo: 'end', messages: [new AIMessage(`killpath: ${message}`)] };
      },
    },
    wrapModelCall,
    wrapToolCall,
  });
  return Object.freeze({ middleware, signal: run.signal });
}

/**
 * The request with its tool invoked under `signal` (the effect's, which also follows the
 * graph's): a halt aborts the tool itself, not only the wait for it.
 */
function withSignal(request: ToolRequest, signal: AbortSignal): ToolRequest {
  const tool = request.tool as { invoke?: unknown } | undefined;
  if (tool === undefined || typeof tool.invoke !== 'function') return request;
  const invoke = tool.invoke as (input: unknown, config?: Record<string, unknown>) => unknown;
  const bound = Object.create(tool, {
    invoke: {
      value: (input: unknown, config?: Record<string, unknown>) =>
        invoke.call(tool, input, { ...config, signal }),
    },
  }) as ToolRequest['tool'];
  return { ...request, tool: bound };
}
