/**
 * The framework adapters against a real control plane (in this process, HTTP on loopback) and
 * each framework's own test model: a halt ends a streaming model call in flight through the
 * framework's abort path, a write tool needs a real permit, a resume lets the next run work.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, isStepCount, jsonSchema, streamText, tool, wrapLanguageModel } from 'ai';
import { Agent, Runner, tool as agentTool } from '@openai/agents';
import { z } from 'zod';
import { killpathAiSdk } from '@killpath/sdk/ai-sdk';
import { killpathOpenAIAgents } from '@killpath/sdk/openai-agents';
import { killpathLangChain } from '@killpath/sdk/langchain';
import { AIMessage, HumanMessage, createAgent, tool as lcTool } from 'langchain';
import { fakeModel } from '@langchain/core/testing';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import {
  scriptedAgentsModel,
  scriptedAiModel,
  watchUnhandled,
} from '../../packages/sdk/test/adapter-fixtures.ts';
import { livePlane } from './adapter-fixtures.ts';
import type { LivePlane } from './adapter-fixtures.ts';
import { until } from './server-process.ts';

const unhandled = watchUnhandled();
let plane: LivePlane;

before(async () => {
  plane = await livePlane();
});

after(async () => {
  await plane.close();
});

const tick = () => new Promise((r) => setImmediate(r));

test('ai-sdk on a real control plane: halt ends a stream in flight; after resume a write tool runs with a permit', async () => {
  const run = plane.client.startRun();
  const kp = killpathAiSdk(run, {});
  const model = scriptedAiModel([{ text: 'thinking', hang: true }]);
  const result = streamText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    abortSignal: kp.abortSignal,
    prompt: 'go',
  });
  const deltas: string[] = [];
  const consumed = (async () => {
    for await (const d of result.textStream) deltas.push(d);
  })();
  while (deltas.length === 0) await tick();
  const halt = await plane.issue({ level: 'halt', scope: `run:${run.runId}` });
  await consumed;
  assert.equal(model.streamSignals[0]?.aborted, true);
  assert.ok(
    plane.events.some(
      (e) => e.type === 'effect.aborted' && e.capability === 'llm' && e.directiveId === halt.id,
    ),
  );
  await plane.resume(halt.id);

  const next = plane.client.startRun();
  let sent = 0;
  const kp2 = killpathAiSdk(next, {
    tools: {
      send_email: tool({
        inputSchema: jsonSchema<{ to: string }>({ type: 'object', properties: { to: { type: 'string' } } }),
        execute: async () => {
          sent += 1;
          return 'sent';
        },
      }),
    },
  });
  const out = await generateText({
    model: wrapLanguageModel({
      model: scriptedAiModel([{ calls: [['send_email', { to: 'a@b.c' }]] }, { text: 'done' }]).model,
      middleware: kp2.middleware,
    }),
    tools: kp2.tools,
    prepareStep: kp2.prepareStep,
    stopWhen: [isStepCount(4), kp2.stopWhen],
    abortSignal: kp2.abortSignal,
    prompt: 'go',
  });
  assert.equal(out.text, 'done');
  assert.equal(sent, 1);
  await until('the permit of send_email', 2000, () =>
    plane.events.some((e) => e.type === 'permit.granted' && e.capability === 'send_email'),
  );
  next.end();
  run.end();
});

test('openai-agents on a real control plane: halt ends a streamed run in flight; after resume a write tool runs with a permit', async () => {
  const runner = new Runner({ tracingDisabled: true });
  let sent = 0;
  const sendEmail = agentTool({
    name: 'send_email',
    description: 'send an email',
    parameters: z.object({ to: z.string() }),
    execute: async () => {
      sent += 1;
      return 'sent';
    },
  });
  const run = plane.client.startRun();
  const kp = killpathOpenAIAgents(run);
  const model = scriptedAgentsModel([{ text: 'thinking', hang: true }]);
  const agent = new Agent({
    name: 'bot',
    instructions: 'help',
    model: kp.model(model.model),
    tools: [kp.tool(sendEmail)],
  });
  const result = await runner.run(agent, 'go', { ...kp.runOptions, stream: true });
  const deltas: string[] = [];
  const consumed = (async () => {
    for await (const d of result.toTextStream()) deltas.push(d);
  })();
  while (deltas.length === 0) await tick();
  const halt = await plane.issue({ level: 'halt', scope: `run:${run.runId}` });
  await consumed;
  await result.completed.catch(() => {});
  assert.equal(model.signals[0]?.aborted, true);
  assert.ok(
    plane.events.some(
      (e) => e.type === 'effect.aborted' && e.capability === 'llm' && e.directiveId === halt.id,
    ),
  );
  await plane.resume(halt.id);

  const next = plane.client.startRun();
  const kp2 = killpathOpenAIAgents(next);
  const agent2 = new Agent({
    name: 'bot',
    instructions: 'help',
    model: kp2.model(
      scriptedAgentsModel([{ calls: [['send_email', { to: 'a@b.c' }]] }, { text: 'done' }]).model,
    ),
    tools: [kp2.tool(sendEmail)],
  });
  const out = await runner.run(agent2, 'go', { ...kp2.runOptions });
  assert.equal(out.finalOutput, 'done');
  assert.equal(sent, 1);
  assert.ok(
    plane.events.some(
      (e) => e.type === 'permit.granted' && e.capability === 'send_email' && e.runId === next.runId,
    ),
  );
  next.end();
  run.end();
});

test('langchain on a real control plane: halt ends a streaming model call in flight; after resume a write tool runs with a permit', async () => {
  let sent = 0;
  const sendEmail = lcTool(
    async () => {
      sent += 1;
      return 'sent';
    },
    { name: 'send_email', description: 'send an email', schema: z.object({ to: z.string() }) },
  );
  const run = plane.client.startRun();
  const kp = await killpathLangChain(run);
  const streaming = createAgent({
    model: new FakeListChatModel({ responses: ['x'.repeat(200)], sleep: 20 }),
    tools: [sendEmail],
    middleware: [kp.middleware],
  });
  const started = Date.now();
  let chunks = 0;
  let halt: { id: string } | null = null;
  try {
    for await (const _chunk of await streaming.stream(
      { messages: [new HumanMessage('go')] },
      { signal: kp.signal, streamMode: 'messages' },
    )) {
      chunks += 1;
      if (chunks === 1) halt = await plane.issue({ level: 'halt', scope: `run:${run.runId}` });
    }
  } catch {
    // The framework's abort path may end the stream with an AbortError: that is the point.
  }
  assert.ok(Date.now() - started < 3000, 'ended long before the model would have');
  assert.ok(halt !== null);
  assert.ok(
    plane.events.some(
      (e) => e.type === 'effect.aborted' && e.capability === 'llm' && e.directiveId === halt!.id,
    ),
  );
  await plane.resume(halt.id);

  const next = plane.client.startRun();
  const kp2 = await killpathLangChain(next);
  const agent = createAgent({
    model: fakeModel()
      .respondWithTools([{ name: 'send_email', args: { to: 'a@b.c' }, id: 'c1' }])
      .respond(new AIMessage('done')),
    tools: [sendEmail],
    middleware: [kp2.middleware],
  });
  const out = await agent.invoke({ messages: [new HumanMessage('go')] }, { signal: kp2.signal });
  assert.equal(out.messages.at(-1)?.content, 'done');
  assert.equal(sent, 1);
  assert.ok(
    plane.events.some(
      (e) => e.type === 'permit.granted' && e.capability === 'send_email' && e.runId === next.runId,
    ),
  );
  next.end();
  run.end();
});

test('adapters on a real control plane: nothing was reported as an unhandled rejection', async () => {
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(unhandled, []);
});
