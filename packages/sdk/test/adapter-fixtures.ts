import { Usage } from '@openai/agents';
import type { Model, ModelRequest, ModelResponse } from '@openai/agents';
import { MockLanguageModelV4 } from 'ai/test';

/**
 * Collects every unhandled rejection of this process from now on (Node 24 would crash on one;
 * with a listener it is recorded instead, and the test asserts the list is empty).
 */
export function watchUnhandled(): unknown[] {
  const seen: unknown[] = [];
  process.on('unhandledRejection', (reason) => seen.push(reason));
  return seen;
}

/** One scripted model turn: tool calls (name, input), or text; `hang` keeps the stream open after the text. */
export interface Turn {
  calls?: [string, unknown][];
  text?: string;
  hang?: boolean;
}

const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 1, text: 1, reasoning: undefined },
};

/**
 * The AI SDK's own test model (`MockLanguageModelV4`), answering `turns` in order (the last one
 * again when they run out). Records the tool names each call offered and the signals of streams.
 */
export function scriptedAiModel(turns: Turn[]): {
  model: MockLanguageModelV4;
  readonly calls: number;
  toolsSeen: string[][];
  streamSignals: (AbortSignal | undefined)[];
} {
  let n = 0;
  const toolsSeen: string[][] = [];
  const streamSignals: (AbortSignal | undefined)[] = [];
  const next = (tools: { name: string }[] | undefined): Turn => {
    toolsSeen.push((tools ?? []).map((t) => t.name).sort());
    const turn = turns[Math.min(n, turns.length - 1)]!;
    n += 1;
    return turn;
  };
  const model = new MockLanguageModelV4({
    doGenerate: async (opts) => {
      const turn = next(opts.tools as { name: string }[] | undefined);
      const calls = turn.calls ?? [];
      return {
        content:
          calls.length > 0
            ? calls.map(([toolName, input], i) => ({
                type: 'tool-call' as const,
                toolCallId: `call-${n}-${i}`,
                toolName,
                input: JSON.stringify(input),
              }))
            : [{ type: 'text' as const, text: turn.text ?? '' }],
        finishReason: {
          unified: calls.length > 0 ? ('tool-calls' as const) : ('stop' as const),
          raw: undefined,
        },
        usage,
        warnings: [],
      };
    },
    doStream: async (opts) => {
      const turn = next(opts.tools as { name: string }[] | undefined);
      streamSignals.push(opts.abortSignal);
      const calls = turn.calls ?? [];
      const stream = new ReadableStream({
        start(controller) {
          controller.enqueue({ type: 'stream-start', warnings: [] });
          calls.forEach(([toolName, input], i) =>
            controller.enqueue({
              type: 'tool-call',
              toolCallId: `call-${n}-${i}`,
              toolName,
              input: JSON.stringify(input),
            }),
          );
          if (turn.text !== undefined) {
            controller.enqueue({ type: 'text-start', id: 't' });
            controller.enqueue({ type: 'text-delta', id: 't', delta: turn.text });
          }
          if (turn.hang === true) return;
          if (turn.text !== undefined) controller.enqueue({ type: 'text-end', id: 't' });
          controller.enqueue({
            type: 'finish',
            finishReason: { unified: calls.length > 0 ? 'tool-calls' : 'stop', raw: undefined },
            usage,
          });
          controller.close();
        },
      });
      return { stream };
    },
  });
  return {
    model,
    get calls() {
      return n;
    },
    toolsSeen,
    streamSignals,
  };
}

/**
 * A stub OpenAI Agents `Model` (the framework's own `Model` interface), answering `turns` in
 * order (the last one again when they run out). Records the tools offered and the signals.
 */
export function scriptedAgentsModel(
  turns: Turn[],
  onCall: (n: number) => Promise<void> = async () => {},
): {
  model: Model;
  readonly calls: number;
  toolsSeen: string[][];
  signals: (AbortSignal | undefined)[];
} {
  let n = 0;
  const toolsSeen: string[][] = [];
  const signals: (AbortSignal | undefined)[] = [];
  const next = (request: ModelRequest): Turn => {
    toolsSeen.push(request.tools.map((t) => t.name).sort());
    signals.push(request.signal);
    const turn = turns[Math.min(n, turns.length - 1)]!;
    n += 1;
    return turn;
  };
  const output = (turn: Turn): ModelResponse['output'] =>
    (turn.calls ?? []).length > 0
      ? turn.calls!.map(([name, input], i) => ({
          type: 'function_call' as const,
          id: `fc-${n}-${i}`,
          callId: `call-${n}-${i}`,
          name,
          status: 'completed' as const,
          arguments: JSON.stringify(input),
        }))
      : [
          {
            type: 'message' as const,
            id: `msg-${n}`,
            role: 'assistant' as const,
            status: 'completed' as const,
            content: [{ type: 'output_text' as const, text: turn.text ?? '' }],
          },
        ];
  const model: Model = {
    async getResponse(request) {
      const turn = next(request);
      await onCall(n);
      return { output: output(turn), usage: new Usage() };
    },
    async *getStreamedResponse(request) {
      const turn = next(request);
      yield { type: 'response_started' };
      if (turn.text !== undefined) yield { type: 'output_text_delta', delta: turn.text };
      // Hangs ignoring its signal: only the kill path can end it.
      if (turn.hang === true) await new Promise(() => {});
      yield {
        type: 'response_done',
        response: {
          id: `resp-${n}`,
          usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
          // The stream's output schema is narrower than ModelResponse's; these items fit both.
          output: output(turn) as never,
        },
      };
    },
  };
  return {
    model,
    get calls() {
      return n;
    },
    toolsSeen,
    signals,
  };
}
