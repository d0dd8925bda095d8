/**
 * A Vercel AI SDK agent under the kill path: a scripted model (the SDK's own
 * `MockLanguageModelV4`) first calls `send_email` (a write: it needs a permit), then streams a
 * long answer. Halt its run (`npx killpath kill --run …`) and the stream ends at once.
 */
import { isStepCount, jsonSchema, streamText, tool, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { killpathAiSdk } from '@killpath/sdk/ai-sdk';
import { ANSWER, TOKEN_MS, finish, pause, say, start } from './common.ts';

const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 1, text: 1, reasoning: undefined },
};

let turn = 0;
const model = new MockLanguageModelV4({
  doStream: async () => {
    turn += 1;
    const first = turn === 1;
    let i = 0;
    const stream = new ReadableStream({
      start(c) {
        c.enqueue({ type: 'stream-start', warnings: [] });
        if (first) {
          c.enqueue({
            type: 'tool-call',
            toolCallId: 'call-1',
            toolName: 'send_email',
            input: '{"to":"ops@example.com"}',
          });
          c.enqueue({ type: 'finish', finishReason: { unified: 'tool-calls', raw: undefined }, usage });
          c.close();
        } else {
          c.enqueue({ type: 'text-start', id: 't' });
        }
      },
      async pull(c) {
        await pause(TOKEN_MS);
        if (i < ANSWER.length) {
          c.enqueue({ type: 'text-delta', id: 't', delta: ANSWER[i++]! });
          return;
        }
        c.enqueue({ type: 'text-end', id: 't' });
        c.enqueue({ type: 'finish', finishReason: { unified: 'stop', raw: undefined }, usage });
        c.close();
      },
    });
    return { stream };
  },
});

const { client, run } = await start();
const kp = killpathAiSdk(run, {
  tools: {
    send_email: tool({
      inputSchema: jsonSchema<{ to: string }>({ type: 'object', properties: { to: { type: 'string' } } }),
      execute: async ({ to }) => {
        say(`tool send_email ran (to ${to})`);
        return 'sent';
      },
    }),
  },
});
const result = streamText({
  model: wrapLanguageModel({ model, middleware: kp.middleware }),
  tools: kp.tools,
  prepareStep: kp.prepareStep,
  stopWhen: [isStepCount(4), kp.stopWhen],
  abortSignal: kp.abortSignal,
  prompt: 'Tell ops, then explain at length.',
});
let tokens = 0;
let failure: unknown = null;
try {
  for await (const _delta of result.textStream) {
    tokens += 1;
    if (tokens === 1) say('streaming the answer');
  }
} catch (err) {
  failure = err;
}
await finish(client, run, tokens, failure);
