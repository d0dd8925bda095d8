import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, isStepCount, jsonSchema, streamText, tool, wrapLanguageModel } from 'ai';
import { killpathAiSdk } from '../src/ai-sdk.ts';
import { drain } from '../src/testing.ts';
import { clear, directive, harness, issue, snapshot } from './fixtures.ts';
import { scriptedAiModel, watchUnhandled } from './adapter-fixtures.ts';

const unhandled = watchUnhandled();
const input = jsonSchema<{ to: string }>({ type: 'object', properties: { to: { type: 'string' } } });

/** A read tool and a write tool that count their runs; `send_email` waits for its signal when `slow`. */
function tools(slow = false) {
  const ran = { search: 0, send_email: 0 };
  const signals: AbortSignal[] = [];
  return {
    ran,
    signals,
    tools: {
      search: tool({
        inputSchema: input,
        execute: async () => {
          ran.search += 1;
          return 'found';
        },
      }),
      send_email: tool({
        inputSchema: input,
        execute: async (_args, { abortSignal }) => {
          ran.send_email += 1;
          if (abortSignal !== undefined) signals.push(abortSignal);
          if (slow) await new Promise(() => {});
          return 'sent';
        },
      }),
    },
  };
}

test('ai-sdk: a covered tool call never runs its execute; the model reads the refusal', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'run:r1', { capabilities: ['send_email'] })]));
  const t = tools();
  const model = scriptedAiModel([
    {
      calls: [
        ['send_email', { to: 'a@b.c' }],
        ['search', { to: 'x' }],
      ],
    },
    { text: 'done' },
  ]);
  const kp = killpathAiSdk(run, { tools: t.tools, classes: { search: 'read' } });
  const result = await generateText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    tools: kp.tools,
    stopWhen: [isStepCount(5), kp.stopWhen],
    abortSignal: kp.abortSignal,
    prompt: 'go',
  });
  assert.equal(t.ran.send_email, 0, 'the covered tool never ran');
  assert.equal(t.ran.search, 1);
  const errors = result.steps[0]!.content.filter((p) => p.type === 'tool-error');
  assert.equal(errors.length, 1);
  assert.match(String((errors[0] as { error: unknown }).error), /halted by directive h1/);
  assert.equal(result.text, 'done', 'the model was called again and read the refusal');
  await client.close();
});

test('ai-sdk: a halt aborts a slow tool in flight and ends the call through the abort path', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const t = tools(true);
  const model = scriptedAiModel([{ calls: [['send_email', { to: 'a@b.c' }]] }, { text: 'never' }]);
  const kp = killpathAiSdk(run, { tools: t.tools });
  let aborted = false;
  const result = streamText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    tools: kp.tools,
    prepareStep: kp.prepareStep,
    stopWhen: [isStepCount(5), kp.stopWhen],
    abortSignal: kp.abortSignal,
    prompt: 'go',
    onAbort: () => {
      aborted = true;
    },
  });
  const parts: string[] = [];
  const consumed = (async () => {
    for await (const part of result.fullStream) parts.push(part.type);
  })();
  while (t.signals.length === 0) await new Promise((r) => setImmediate(r));
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(t.signals[0]!.aborted, true, 'the tool got the effect signal, aborted by the halt');
  await consumed;
  assert.equal(aborted, true, 'the framework took its own abort path');
  assert.ok(parts.includes('abort'), `stream parts: ${parts.join(',')}`);
  assert.equal(model.calls, 1, 'no model call after the halt');
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.capability, e.directiveId]),
    [['send_email', 'h1']],
  );
  await client.close();
});

test('ai-sdk: a halt ends a streaming model call in flight; the run ends cleanly', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // The model streams a first delta, then hangs and ignores its abort signal.
  const model = scriptedAiModel([{ text: 'hello', hang: true }]);
  const kp = killpathAiSdk(run, {});
  const result = streamText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    stopWhen: kp.stopWhen,
    abortSignal: kp.abortSignal,
    prompt: 'go',
  });
  // Result promises nobody awaits (text, steps, usage…) must not become unhandled rejections.
  const deltas: string[] = [];
  const consumed = (async () => {
    for await (const delta of result.textStream) deltas.push(delta);
  })();
  while (deltas.length === 0) await new Promise((r) => setImmediate(r));
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  await consumed;
  assert.deepEqual(deltas, ['hello']);
  assert.equal(model.streamSignals[0]?.aborted, true, 'the provider was told to stop');
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.capability, e.class]),
    [['llm', 'read']],
  );
  await drain();
  assert.equal(run.counters.toolCalls, 0);
  run.end();
  await client.close();
});

test('ai-sdk: a degrade revoking llm ends a streaming model call that ignores its signal', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const model = scriptedAiModel([{ text: 'hello', hang: true }]);
  const kp = killpathAiSdk(run, {});
  const errors: unknown[] = [];
  const result = streamText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    abortSignal: kp.abortSignal,
    prompt: 'go',
    onError: ({ error }) => {
      errors.push(error);
    },
  });
  const parts: string[] = [];
  const consumed = (async () => {
    for await (const part of result.fullStream) parts.push(part.type);
  })();
  while (!parts.includes('text-delta')) await new Promise((r) => setImmediate(r));
  await stream.push(issue(2, directive('d1', 'degrade', 'run:r1', { capabilities: ['llm'] })));
  await consumed;
  assert.equal(run.signal.aborted, false, 'a degrade does not stop the run');
  assert.ok(parts.includes('error'), `stream parts: ${parts.join(',')}`);
  assert.match(String(errors[0]), /revoked by directive d1/);
  await client.close();
});

test('ai-sdk: a degrade hides exactly the revoked tool; reads and model calls keep flowing', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('d1', 'degrade', 'run:r1', { capabilities: ['send_email'] })]));
  const t = tools();
  const model = scriptedAiModel([{ calls: [['search', { to: 'x' }]] }, { text: 'ok' }]);
  const kp = killpathAiSdk(run, { tools: t.tools, classes: { search: 'read' } });
  const result = await generateText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    tools: kp.tools,
    prepareStep: kp.prepareStep,
    stopWhen: [isStepCount(5), kp.stopWhen],
    abortSignal: kp.abortSignal,
    prompt: 'go',
  });
  assert.deepEqual(model.toolsSeen, [['search'], ['search']], 'send_email was hidden from the model');
  assert.equal(t.ran.search, 1);
  assert.equal(result.text, 'ok');
  await client.close();
});

test('ai-sdk: after a resume the next run works; the halted run stays refused', async () => {
  const { client, stream } = await harness();
  const first = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'agent:t1/a1')]));
  const t = tools();
  const refused = killpathAiSdk(first, { tools: t.tools });
  await assert.rejects(
    generateText({
      model: wrapLanguageModel({
        model: scriptedAiModel([{ text: 'x' }]).model,
        middleware: refused.middleware,
      }),
      abortSignal: refused.abortSignal,
      prompt: 'go',
    }),
  );
  await stream.push(clear(2, 'h1'));
  const next = client.startRun({ runId: 'r2' });
  const kp = killpathAiSdk(next, { tools: t.tools });
  const model = scriptedAiModel([{ calls: [['send_email', { to: 'a@b.c' }]] }, { text: 'sent it' }]);
  const result = await generateText({
    model: wrapLanguageModel({ model: model.model, middleware: kp.middleware }),
    tools: kp.tools,
    prepareStep: kp.prepareStep,
    stopWhen: [isStepCount(5), kp.stopWhen],
    abortSignal: kp.abortSignal,
    prompt: 'go',
  });
  assert.equal(result.text, 'sent it');
  assert.equal(t.ran.send_email, 1);
  await client.close();
});

test('ai-sdk: nothing was reported as an unhandled rejection', async () => {
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(unhandled, []);
});
