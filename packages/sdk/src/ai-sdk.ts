/**
 * `@killpath/sdk/ai-sdk`: the kill path for the Vercel AI SDK (`ai` 7). Only types are imported
 * from `ai`, so loading this module loads nothing of the framework.
 */
import type { EffectClass } from '@killpath/protocol';
import type {
  LanguageModelMiddleware,
  PrepareStepFunction,
  StopCondition,
  ToolExecutionOptions,
  ToolSet,
} from 'ai';
import { MODEL_CAPABILITY } from './run.ts';
import type { Run } from './run.ts';
import { endsWhenDone, settleQuietly, toolCallKey } from './adapter-common.ts';

type WrapStream = NonNullable<LanguageModelMiddleware['wrapStream']>;
type WrapGenerate = NonNullable<LanguageModelMiddleware['wrapGenerate']>;
type StreamResult = Awaited<ReturnType<WrapStream>>;

/** Options for {@link killpathAiSdk}. */
export interface AiSdkOptions<TOOLS extends ToolSet> {
  /** The tools of the call; each `execute` is wrapped to run as an effect of the run. */
  tools?: TOOLS;
  /** The effect class of each tool, by tool name; default `write` (the safe one). */
  classes?: Partial<Record<keyof TOOLS & string, EffectClass>>;
  /** The capability a tool's calls are effects of; default the tool's name. */
  capabilityOf?: (toolName: string) => string;
}

/** What a `generateText`/`streamText` call needs to run under the kill path. */
export interface AiSdkKillpath<TOOLS extends ToolSet> {
  /**
   * The tools, each `execute` run as `run.effect` with the tool's class, the idempotency key
   * `ai-sdk:<toolCallId>` and the framework's `abortSignal` joined (the tool gets the effect's
   * signal). A refused call throws the `halted` error: the framework turns it into a tool error
   * the model reads, and `execute` never runs.
   */
  readonly tools: TOOLS;
  /**
   * For `wrapLanguageModel({ model, middleware })`: each model call is an effect of capability
   * `llm`, class `read`, refused under a covering halt, kill, isolate or a degrade revoking `llm`,
   * and aborted in flight by one (a stream ends with the effect's `halted` error).
   */
  readonly middleware: LanguageModelMiddleware;
  /** For `stopWhen`: true once the run may not call the model any more. */
  readonly stopWhen: StopCondition<TOOLS>;
  /**
   * For `prepareStep`: hides the tools the gate refuses now (a degrade revoking them, or every
   * write under a read-only degrade) through `activeTools`; leaves the step alone otherwise.
   */
  readonly prepareStep: PrepareStepFunction<TOOLS>;
  /** For `abortSignal`: `run.signal`, so a halt ends the whole call through the framework's abort path. */
  readonly abortSignal: AbortSignal;
}

/**
 * The kill path for one `generateText`/`streamText` call (or agent) of the AI SDK, bound to
 * `run`:
 *
 * ```ts
 * const kp = killpathAiSdk(run, { tools, classes: { search: 'read' } });
 * const result = streamText({
 *   model: wrapLanguageModel({ model, middleware: kp.middleware }),
 *   tools: kp.tools, prepareStep: kp.prepareStep, abortSignal: kp.abortSignal,
 *   stopWhen: [isStepCount(10), kp.stopWhen], prompt,
 * });
 * ```
 */
export function killpathAiSdk<TOOLS extends ToolSet = ToolSet>(
  run: Run,
  options: AiSdkOptions<TOOLS> = {},
): AiSdkKillpath<TOOLS> {
  const capabilityOf = options.capabilityOf ?? ((name: string) => name);
  const classes = (options.classes ?? {}) as Partial<Record<string, EffectClass>>;
  const classOf = (name: string): EffectClass => classes[name] ?? 'write';
  const given = options.tools ?? ({} as TOOLS);
  const tools: Record<string, unknown> = {};
  for (const [name, tool] of Object.entries(given)) {
    const execute = tool.execute;
    if (typeof execute !== 'function') {
      tools[name] = tool;
      continue;
    }
    tools[name] = {
      ...tool,
      execute: (input: unknown, opts: ToolExecutionOptions<unknown>) =>
        run.effect(
          {
            capability: capabilityOf(name),
            class: classOf(name),
            idempotencyKey: toolCallKey('ai-sdk', opts.toolCallId),
            args: input,
            ...(opts.abortSignal === undefined ? {} : { signal: opts.abortSignal }),
          },
          async (signal) => lastValue(await execute(input as never, { ...opts, abortSignal: signal })),
        ),
    };
  }

  const wrapGenerate: WrapGenerate = ({ params, model }) =>
    run.effect({ capability: MODEL_CAPABILITY, class: 'read', ...signalOf(params.abortSignal) }, (signal) =>
      model.doGenerate({ ...params, abortSignal: signal }),
    );

  const wrapStream: WrapStream = ({ params, model }) =>
    new Promise<StreamResult>((resolve, reject) => {
      let handedOut = false;
      const call = run.effect(
        { capability: MODEL_CAPABILITY, class: 'read', ...signalOf(params.abortSignal) },
        async (signal) => {
          const result = await model.doStream({ ...params, abortSignal: signal });
          // A run stopped as a whole ends through the framework's abort path (run.signal): no
          // error part to log. A model call refused alone (a degrade revoking llm) ends as an error.
          const { stream, done } = endsWhenDone(result.stream, signal, (error) =>
            run.signal.aborted ? [] : [{ type: 'error' as const, error }],
          );
          handedOut = true;
          resolve({ ...result, stream });
          // The model call stays in flight (and abortable) until its stream ends.
          await done;
        },
      );
      settleQuietly(call, (err) => {
        if (!handedOut) reject(err);
      });
    });

  const middleware: LanguageModelMiddleware = { specificationVersion: 'v4', wrapGenerate, wrapStream };
  const stopWhen: StopCondition<TOOLS> = () =>
    run.signal.aborted || run.check(MODEL_CAPABILITY, 'read').kind === 'deny';
  const names = Object.keys(given);
  const prepareStep: PrepareStepFunction<TOOLS> = () => {
    const allowed = names.filter((n) => run.check(capabilityOf(n), classOf(n)).kind === 'allow');
    if (allowed.length === names.length) return undefined;
    return { activeTools: allowed as never };
  };
  return Object.freeze({
    tools: tools as TOOLS,
    middleware,
    stopWhen,
    prepareStep,
    abortSignal: run.signal,
  });
}

function signalOf(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}

/** A tool's result; a streaming tool (an async iterable of preliminary results) gives its last one. */
async function lastValue(out: unknown): Promise<unknown> {
  if (out === null || typeof out !== 'object' || !(Symbol.asyncIterator in out)) return out;
  let last: unknown;
  for await (const value of out as AsyncIterable<unknown>) last = value;
  return last;
}
