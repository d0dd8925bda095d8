/**
 * A LangChain `createAgent` agent under the kill path: a scripted model (LangChain's own
 * `fakeModel`) first calls `send_email` (a write: it needs a permit); then a second agent
 * streams a long answer from `FakeListChatModel`. Halt the run (`npx killpath kill --run …`)
 * and the stream ends at once.
 */
import { AIMessage, HumanMessage, createAgent, tool } from 'langchain';
import { fakeModel } from '@langchain/core/testing';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { z } from 'zod';
import { killpathLangChain } from '@killpath/sdk/langchain';
import { ANSWER, TOKEN_MS, finish, say, start } from './common.ts';

const { client, run } = await start();
const kp = await killpathLangChain(run);
const sendEmail = tool(
  async ({ to }) => {
    say(`tool send_email ran (to ${to})`);
    return 'sent';
  },
  { name: 'send_email', description: 'Send an email', schema: z.object({ to: z.string() }) },
);
let tokens = 0;
let failure: unknown = null;
try {
  const planner = createAgent({
    model: fakeModel()
      .respondWithTools([{ name: 'send_email', args: { to: 'ops@example.com' }, id: 'call-1' }])
      .respond(new AIMessage('told ops')),
    tools: [sendEmail],
    middleware: [kp.middleware],
  });
  await planner.invoke({ messages: [new HumanMessage('Tell ops.')] }, { signal: kp.signal });
  const writer = createAgent({
    model: new FakeListChatModel({ responses: [ANSWER.join('')], sleep: TOKEN_MS / 8 }),
    tools: [],
    middleware: [kp.middleware],
  });
  for await (const _chunk of await writer.stream(
    { messages: [new HumanMessage('Explain at length.')] },
    { signal: kp.signal, streamMode: 'messages' },
  )) {
    tokens += 1;
    if (tokens === 1) say('streaming the answer');
  }
} catch (err) {
  failure = err;
}
await finish(client, run, tokens, failure);
