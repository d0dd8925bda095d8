import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, Runner, tool } from '@openai/agents';
import { z } from 'zod';
import { killpathOpenAIAgents } from '../src/openai-agents.ts';
import { clear, directive, harness, issue, snapshot } from './fixtures.ts';
import { scriptedAgentsModel, watchUnhandled } from './adapter-fixtures.ts';
import type { Turn } from './adapter-fixtures.ts';
import type { Run } from '../src/index.ts';

const unhandled = watchUnhandled();
const runner = new Runner({ tracingDisabled: true });
const tick = () => new Promise((r) => setImmediate(r));

/** A read tool and a write tool that count their runs; `send_email` waits for its signal when `slow`. */
function tools(slow = false) {
  const ran = { search: 0, send_email: 0 };
  const signals: AbortSignal[] = [];
  const parameters = z.object({ to: z.string() });
  return {
    ran,
    signals,
    search: tool({
      name: 'search',
      description: 'search',
      parameters,
      execute: async () => {
        ran.search += 1;
        return 'found';
      },
    }),
    sendEmail: tool({
      name: 'send_email',
      description: 'send an email',
      parameters,
      execute: async (_input, _ctx, details) => {
        ran.send_email += 1;
        if (details?.signal !== undefined) signals.push(details.signal);
        if (slow) await new Promise(() => {});
        return 'sent';
      },
    }),
  };
}

function agentFor(run: Run, turns: Turn[], t = tools(), onCall?: (n: number) => Promise<void>) {
  const kp = killpathOpenAIAgents(run, { classes: { search: 'read' } });
  const model = scriptedAgentsModel(turns, onCall);
  const agent = new Agent({
    name: 'bot',
    instructions: 'help',
    model: kp.model(model.model),
    tools: [kp.tool(t.search), kp.tool(t.sendEmail)],
  });
  return { kp, model, agent, t };
}

test('openai-agents: a tool covered after the model planned it never runs; the guardrail answers the model', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // The halt of send_email lands while the model is planning the call.
  const { kp, agent, t, model } = agentFor(
    run,
    [
      {
        calls: [
          ['send_email', { to: 'a@b.c' }],
          ['search', { to: 'x' }],
        ],
      },
      { text: 'done' },
    ],
    tools(),
    async (n) => {
      if (n === 1)
        await stream.push(issue(2, directive('h1', 'halt', 'run:r1', { capabilities: ['send_email'] })));
    },
  );
  const result = await runner.run(agent, 'go', { ...kp.runOptions });
  assert.equal(t.ran.send_email, 0, 'the covered tool never ran');
  assert.equal(t.ran.search, 1);
  assert.equal(result.finalOutput, 'done');
  assert.deepEqual(model.toolsSeen, [['search', 'send_email'], ['search']], 'then it is no longer offered');
  const outputs = result.newItems.filter((i) => i.type === 'tool_call_output_item');
  assert.ok(
    outputs.some((i) => /halted by directive h1/.test(JSON.stringify(i.rawItem))),
    'the model read the refusal',
  );
  await client.close();
});

test('openai-agents: a model calling a tool hidden by a halt reads an error; the tool never runs', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'run:r1', { capabilities: ['send_email'] })]));
  const { kp, agent, t } = agentFor(run, [{ calls: [['send_email', { to: 'a@b.c' }]] }, { text: 'done' }]);
  const result = await runner.run(agent, 'go', { ...kp.runOptions });
  assert.equal(t.ran.send_email, 0);
  assert.equal(result.finalOutput, 'done');
  await client.close();
});

test('openai-agents: a halt aborts a slow tool in flight and ends the run through its signal', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const t = tools(true);
  const { kp, agent, model } = agentFor(
    run,
    [{ calls: [['send_email', { to: 'a@b.c' }]] }, { text: 'x' }],
    t,
  );
  const running = runner.run(agent, 'go', { signal: kp.signal });
  const outcome = running.then(
    () => 'resolved',
    (err: unknown) => err,
  );
  while (t.signals.length === 0) await tick();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(t.signals[0]!.aborted, true, 'the tool got the effect signal, aborted by the halt');
  const ended = await outcome;
  assert.notEqual(ended, 'resolved', 'the run did not finish as if nothing happened');
  assert.equal(model.calls, 1, 'no model call after the halt');
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.capability, e.directiveId]),
    [['send_email', 'h1']],
  );
  await client.close();
});

test('openai-agents: a halt ends a streamed model response in flight; the run ends cleanly', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const { kp, agent, model } = agentFor(run, [{ text: 'hello', hang: true }]);
  const result = await runner.run(agent, 'go', { signal: kp.signal, stream: true });
  const deltas: string[] = [];
  const consumed = (async () => {
    for await (const text of result.toTextStream()) deltas.push(text);
  })();
  while (deltas.length === 0) await tick();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await consumed;
  await result.completed.catch(() => {});
  assert.deepEqual(deltas, ['hello']);
  assert.equal(model.signals[0]?.aborted, true, 'the model was told to stop');
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.capability, e.class]),
    [['llm', 'read']],
  );
  run.end();
  await client.close();
});

test('openai-agents: a degrade hides exactly the revoked tool; reads and model calls keep flowing', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('d1', 'degrade', 'run:r1', { capabilities: ['send_email'] })]));
  const { kp, agent, t, model } = agentFor(run, [{ calls: [['search', { to: 'x' }]] }, { text: 'ok' }]);
  const result = await runner.run(agent, 'go', { signal: kp.signal });
  assert.deepEqual(model.toolsSeen, [['search'], ['search']], 'send_email was hidden from the model');
  assert.equal(t.ran.search, 1);
  assert.equal(result.finalOutput, 'ok');
  await client.close();
});

test('openai-agents: after a resume the next run works; the halted run stays refused', async () => {
  const { client, stream } = await harness();
  const first = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'agent:t1/a1')]));
  const refused = agentFor(first, [{ text: 'x' }]);
  await assert.rejects(runner.run(refused.agent, 'go', { signal: refused.kp.signal }));
  assert.equal(refused.model.calls, 0, 'the model was never called under the halt');
  await stream.push(clear(2, 'h1'));
  const next = client.startRun({ runId: 'r2' });
  const { kp, agent, t } = agentFor(next, [
    { calls: [['send_email', { to: 'a@b.c' }]] },
    { text: 'sent it' },
  ]);
  const result = await runner.run(agent, 'go', { signal: kp.signal });
  assert.equal(result.finalOutput, 'sent it');
  assert.equal(t.ran.send_email, 1);
  await client.close();
});

test('openai-agents: nothing was reported as an unhandled rejection', async () => {
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(unhandled, []);
});
