import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AIMessage, HumanMessage, ToolMessage, createAgent, tool } from 'langchain';
import { fakeModel } from '@langchain/core/testing';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { z } from 'zod';
import { killpathLangChain } from '../src/langchain.ts';
import { clear, directive, harness, issue, snapshot } from './fixtures.ts';
import { watchUnhandled } from './adapter-fixtures.ts';

const unhandled = watchUnhandled();
const tick = () => new Promise((r) => setImmediate(r));
const input = (text: string) => ({ messages: [new HumanMessage(text)] });

/** A read tool and a write tool that count their runs; `send_email` waits for its signal when `slow`. */
function tools(slow = false) {
  const ran = { search: 0, send_email: 0 };
  const signals: AbortSignal[] = [];
  const schema = z.object({ to: z.string() });
  return {
    ran,
    signals,
    list: [
      tool(
        async () => {
          ran.search += 1;
          return 'found';
        },
        { name: 'search', description: 'search', schema },
      ),
      tool(
        async (_args, config) => {
          ran.send_email += 1;
          if (config?.signal !== undefined) signals.push(config.signal);
          if (slow) await new Promise(() => {});
          return 'sent';
        },
        { name: 'send_email', description: 'send an email', schema },
      ),
    ],
  };
}

/** Records the tool names bound to `model` for each call (createAgent binds the offered tools per call). */
function recordOffered(model: ReturnType<typeof fakeModel>): string[][] {
  const seen: string[][] = [];
  const bind = model.bindTools.bind(model);
  model.bindTools = (list) => {
    seen.push(list.map((t) => t.name).sort());
    return bind(list);
  };
  return seen;
}

test('langchain: a covered tool call never runs; the model reads an error ToolMessage', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'run:r1', { capabilities: ['send_email'] })]));
  const t = tools();
  const model = fakeModel()
    .respondWithTools([
      { name: 'send_email', args: { to: 'a@b.c' }, id: 'c1' },
      { name: 'search', args: { to: 'x' }, id: 'c2' },
    ])
    .respond(new AIMessage('done'));
  const kp = await killpathLangChain(run, { classes: { search: 'read' } });
  const agent = createAgent({ model, tools: t.list, middleware: [kp.middleware] });
  const out = await agent.invoke(input('go'), { signal: kp.signal });
  assert.equal(t.ran.send_email, 0, 'the covered tool never ran');
  assert.equal(t.ran.search, 1);
  const refused = out.messages.find(
    (m) => ToolMessage.isInstance(m) && m.tool_call_id === 'c1',
  ) as ToolMessage;
  assert.equal(refused.status, 'error');
  assert.match(String(refused.content), /halted by directive h1/);
  assert.equal(out.messages.at(-1)?.content, 'done');
  await client.close();
});

test('langchain: a halt aborts a slow tool in flight and ends the invoke through its signal', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  const t = tools(true);
  const model = fakeModel()
    .respondWithTools([{ name: 'send_email', args: { to: 'a@b.c' }, id: 'c1' }])
    .respond(new AIMessage('never'));
  const kp = await killpathLangChain(run);
  const agent = createAgent({ model, tools: t.list, middleware: [kp.middleware] });
  const outcome = agent.invoke(input('go'), { signal: kp.signal }).then(
    () => 'resolved',
    (err: unknown) => err,
  );
  while (t.signals.length === 0) await tick();
  await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
  assert.equal(t.signals[0]!.aborted, true, 'the tool itself was aborted');
  const ended = await outcome;
  assert.notEqual(ended, 'resolved');
  assert.equal(model.callCount, 1, 'no model call after the halt');
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.capability, e.directiveId]),
    [['send_email', 'h1']],
  );
  await client.close();
});

test('langchain: a halt ends a streaming model call in flight; the stream ends cleanly', async () => {
  const { client, stream, sink } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1));
  // Streams one character every 20 ms: about two seconds in all unless stopped.
  const model = new FakeListChatModel({ responses: ['x'.repeat(100)], sleep: 20 });
  const kp = await killpathLangChain(run);
  const agent = createAgent({ model, tools: [], middleware: [kp.middleware] });
  const started = Date.now();
  const chunks: unknown[] = [];
  let ended: unknown = null;
  try {
    for await (const chunk of await agent.stream(input('go'), {
      signal: kp.signal,
      streamMode: 'messages',
    })) {
      chunks.push(chunk);
      if (chunks.length === 1) await stream.push(issue(2, directive('h1', 'halt', 'run:r1')));
    }
  } catch (err) {
    ended = err;
  }
  assert.ok(chunks.length >= 1 && chunks.length < 10, `${chunks.length} chunks`);
  assert.ok(Date.now() - started < 1500, 'ended long before the model would have');
  assert.ok(
    ended === null || (ended as Error).name === 'AbortError' || /halted/.test(String(ended)),
    String(ended),
  );
  assert.deepEqual(
    sink.ofType('effect.aborted').map((e) => [e.capability, e.class]),
    [['llm', 'read']],
  );
  await client.close();
});

test('langchain: a degrade hides exactly the revoked tool; reads and model calls keep flowing', async () => {
  const { client, stream } = await harness();
  const run = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('d1', 'degrade', 'run:r1', { capabilities: ['send_email'] })]));
  const t = tools();
  const model = fakeModel()
    .respondWithTools([{ name: 'search', args: { to: 'x' }, id: 'c1' }])
    .respond(new AIMessage('ok'));
  const offered = recordOffered(model);
  const kp = await killpathLangChain(run, { classes: { search: 'read' } });
  const agent = createAgent({ model, tools: t.list, middleware: [kp.middleware] });
  const out = await agent.invoke(input('go'), { signal: kp.signal });
  assert.deepEqual(offered, [['search'], ['search']], 'send_email was hidden from the model');
  assert.equal(t.ran.search, 1);
  assert.equal(out.messages.at(-1)?.content, 'ok');
  await client.close();
});

test('langchain: a halted run ends before the model (jumpTo end); after a resume the next run works', async () => {
  const { client, stream } = await harness();
  const first = client.startRun({ runId: 'r1' });
  await stream.push(snapshot(1, [directive('h1', 'halt', 'agent:t1/a1')]));
  const t = tools();
  const idle = fakeModel().respond(new AIMessage('x'));
  const refused = await killpathLangChain(first);
  const stopped = createAgent({ model: idle, tools: t.list, middleware: [refused.middleware] });
  const out = await stopped.invoke(input('go'));
  assert.equal(idle.callCount, 0, 'the model was never called under the halt');
  assert.match(String(out.messages.at(-1)?.content), /^killpath: .*halted by directive h1/);

  await stream.push(clear(2, 'h1'));
  const next = client.startRun({ runId: 'r2' });
  const model = fakeModel()
    .respondWithTools([{ name: 'send_email', args: { to: 'a@b.c' }, id: 'c1' }])
    .respond(new AIMessage('sent it'));
  const kp = await killpathLangChain(next);
  const agent = createAgent({ model, tools: t.list, middleware: [kp.middleware] });
  const done = await agent.invoke(input('go'), { signal: kp.signal });
  assert.equal(done.messages.at(-1)?.content, 'sent it');
  assert.equal(t.ran.send_email, 1);
  await client.close();
});

test('langchain: nothing was reported as an unhandled rejection', async () => {
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(unhandled, []);
});
