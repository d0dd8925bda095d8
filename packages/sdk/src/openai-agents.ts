/**
 * `@killpath/sdk/openai-agents`: the kill path for OpenAI Agents JS (`@openai/agents` ≥ 0.20).
 * Only types are imported from the framework, so loading this module loads nothing of it.
 */
import type { EffectClass } from '@killpath/protocol';
import type {
  FunctionTool,
  Model,
  ModelRequest,
  ModelResponse,
  ToolInputGuardrailDefinition,
} from '@openai/agents';
import { settleQuietly, toolCallKey } from './adapter-common.ts';
import { MODEL_CAPABILITY } from './run.ts';
import type { Run } from './run.ts';
import { haltedError } from './verdict.ts';

/** Any function tool, whatever its context, parameters and result (the framework's own `any` defaults). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunctionTool = FunctionTool<any, any, any>;

type StreamEvent = ReturnType<Model['getStreamedResponse']> extends AsyncIterable<infer E> ? E : never;

/** Options for {@link killpathOpenAIAgents}. */
export interface OpenAIAgentsOptions {
  /** The effect class of each tool, by tool name; default `write` (the safe one). */
  classes?: Record<string, EffectClass>;
  /** The capability a tool's calls are effects of; default the tool's name. */
  capabilityOf?: (toolName: string) => string;
}

/** The pieces that put one OpenAI Agents run under the kill path. */
export interface OpenAIAgentsKillpath {
  /**
   * A tool input guardrail: a call of a tool the gate refuses now is rejected with a message
   * the model reads (`rejectContent`), and the tool never runs. {@link tool} adds it.
   */
  readonly inputGuardrail: ToolInputGuardrailDefinition;
  /**
   * Wraps a function tool: its `invoke` runs as `run.effect` (the tool's class, the idempotency
   * key `openai-agents:<callId>`, the tool call's signal joined, the tool gets the effect's
   * signal); it gets {@link inputGuardrail}; and it is disabled (`isEnabled`, so the model does
   * not see it) while the gate refuses it, e.g. under a degrade revoking it.
   */
  tool<T extends AnyFunctionTool>(tool: T): T;
  /**
   * Wraps a `Model`: each call is an effect of capability `llm`, class `read`, refused under a
   * covering halt, kill, isolate or a degrade revoking `llm`, and aborted in flight by one (a
   * streamed response ends with the effect's `halted` error even if the model ignores its signal).
   */
  model(model: Model): Model;
  /** For `run(agent, input, { signal })`: `run.signal`, so a halt ends the whole run. */
  readonly signal: AbortSignal;
  /**
   * Run options to spread into `run(agent, input, { ...kp.runOptions })`: the `signal`, and
   * `toolNotFoundBehavior: 'return_error_to_model'`, so that a model calling a tool hidden
   * since it planned reads an error instead of failing the run.
   */
  readonly runOptions: { signal: AbortSignal; toolNotFoundBehavior: 'return_error_to_model' };
}

/**
 * The kill path for OpenAI Agents runs bound to `run`:
 *
 * ```ts
 * const kp = killpathOpenAIAgents(run, { classes: { search: 'read' } });
 * const agent = new Agent({ name, instructions, model: kp.model(model), tools: [kp.tool(search), kp.tool(sendEmail)] });
 * await runner.run(agent, input, { ...kp.runOptions });
 * ```
 */
export function killpathOpenAIAgents(run: Run, options: OpenAIAgentsOptions = {}): OpenAIAgentsKillpath {
  const capabilityOf = options.capabilityOf ?? ((name: string) => name);
  const classOf = (name: string): EffectClass => options.classes?.[name] ?? 'write';
  const refusal = (name: string): string | null => {
    const verdict = run.check(capabilityOf(name), classOf(name));
    if (verdict.kind === 'allow') return null;
    return haltedError(verdict, run.runId, capabilityOf(name), 'denied').message;
  };

  const inputGuardrail: ToolInputGuardrailDefinition = {
    type: 'tool_input',
    name: 'killpath',
    run: async ({ toolCall }) => {
      const message = refusal(toolCall.name);
      return message === null
        ? { behavior: { type: 'allow' } }
        : { behavior: { type: 'rejectContent', message }, outputInfo: { killpath: 'refused' } };
    },
  };

  function tool<T extends AnyFunctionTool>(t: T): T {
    const { invoke, isEnabled, name } = t;
    return {
      ...t,
      inputGuardrails: [...(t.inputGuardrails ?? []), inputGuardrail],
      isEnabled: async (ctx, agent) => refusal(name) === null && (await isEnabled(ctx, agent)),
      invoke: (ctx, input, details) =>
        run.effect(
          {
            capability: capabilityOf(name),
            class: classOf(name),
            idempotencyKey: toolCallKey('openai-agents', details?.toolCall?.callId),
            args: input,
            ...(details?.signal === undefined ? {} : { signal: details.signal }),
          },
          (signal) => invoke(ctx, input, { ...details, signal }),
        ),
    };
  }

  function model(inner: Model): Model {
    const spec = (request: ModelRequest) => ({
      capability: MODEL_CAPABILITY,
      class: 'read' as const,
      ...(request.signal === undefined ? {} : { signal: request.signal }),
    });
    const wrapped: Model = {
      getResponse: (request): Promise<ModelResponse> =>
        run.effect(spec(request), (signal) => inner.getResponse({ ...request, signal })),
      getStreamedResponse: (request) => streamAsEffect(run, spec(request), inner, request),
    };
    if (inner.getRetryAdvice !== undefined) wrapped.getRetryAdvice = inner.getRetryAdvice.bind(inner);
    return wrapped;
  }

  const signal = run.signal;
  return Object.freeze({
    inputGuardrail,
    tool,
    model,
    signal,
    runOptions: Object.freeze({ signal, toolNotFoundBehavior: 'return_error_to_model' as const }),
  });
}

/**
 * A streamed model response as one effect that stays in flight until the stream ends. Each
 * step of the inner stream races the effect's signal, so an abort ends the iteration at once.
 */
async function* streamAsEffect(
  run: Run,
  spec: { capability: string; class: 'read'; signal?: AbortSignal },
  inner: Model,
  request: ModelRequest,
): AsyncGenerator<StreamEvent> {
  let started: (signal: AbortSignal) => void = () => {};
  const signalReady = new Promise<AbortSignal>((resolve) => (started = resolve));
  let finish: (err?: unknown) => void = () => {};
  const call = run.effect(
    spec,
    (signal) =>
      new Promise<void>((resolve, reject) => {
        finish = (err) => (err === undefined ? resolve() : reject(err));
        started(signal);
      }),
  );
  settleQuietly(call);
  // Refused before it started: `call` rejects and the signal never comes.
  const signal = await Promise.race([signalReady, call.then(() => null)]);
  if (signal === null) throw new Error('unreachable: the model call settled before it started');
  const iterator = inner.getStreamedResponse({ ...request, signal })[Symbol.asyncIterator]();
  try {
    while (true) {
      const next = await untilAborted(iterator.next(), signal);
      if (next.done === true) break;
      yield next.value;
    }
    finish();
  } catch (err) {
    finish(err);
    throw err;
  } finally {
    // Stop the inner stream (a provider that ignores its signal too); never wait for it.
    if (iterator.return !== undefined) settleQuietly(Promise.resolve(iterator.return()));
    finish();
  }
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts (the loser is handled quietly). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    settleQuietly(promise);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
