/**
 * An OpenAI Agents JS agent under the kill path: a scripted `Model` first calls `send_email` (a
 * write: it needs a permit), then streams a long answer. Halt its run
 * (`npx killpath kill --run …`) and the stream ends at once.
 */
import { Agent, Runner, Usage, tool } from '@openai/agents';
import type { Model, ModelResponse } from '@openai/agents';
import { z } from 'zod';
import { killpathOpenAIAgents } from '@killpath/sdk/openai-agents';
import { ANSWER, TOKEN_MS, finish, pause, say, start } from './common.ts';

const toolCall: ModelResponse['output'] = [
  {
    type: 'function_call',
    callId: 'call-1',
    name: 'send_email',
    status: 'completed',
    arguments: '{"to":"ops@example.com"}',
  },
];

let turn = 0;
const model: Model = {
  async getResponse() {
    return { output: [], usage: new Usage() };
  },
  async *getStreamedResponse() {
    turn += 1;
    yield { type: 'response_started' };
    const text = turn === 1 ? [] : ANSWER;
    for (const delta of text) {
      await pause(TOKEN_MS);
      yield { type: 'output_text_delta', delta };
    }
    const output: ModelResponse['output'] =
      turn === 1
        ? toolCall
        : [
            {
              type: 'message',
              role: 'assistant',
              status: 'completed',
              content: [{ type: 'output_text', text: ANSWER.join('') }],
            },
          ];
    yield {
      type: 'response_done',
      response: {
        id: `resp-${turn}`,
        usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
        output: output as never,
      },
    };
  },
};

const { client, run } = await start();
const kp = killpathOpenAIAgents(run);
const sendEmail = tool({
  name: 'send_email',
  description: 'Send an email',
  parameters: z.object({ to: z.string() }),
  execute: async ({ to }) => {
    say(`tool send_email ran (to ${to})`);
    return 'sent';
  },
});
const agent = new Agent({
  name: 'ops-bot',
  instructions: 'Tell ops, then explain.',
  model: kp.model(model),
  tools: [kp.tool(sendEmail)],
});
let tokens = 0;
let failure: unknown = null;
try {
  const result = await new Runner({ tracingDisabled: true }).run(agent, 'go', {
    ...kp.runOptions,
    stream: true,
  });
  for await (const _text of result.toTextStream()) {
    tokens += 1;
    if (tokens === 1) say('streaming the answer');
  }
  await result.completed;
} catch (err) {
  failure = err;
}
await finish(client, run, tokens, failure);
