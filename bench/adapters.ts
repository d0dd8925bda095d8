/**
 * `npm run bench:adapters`: for each framework adapter (AI SDK, OpenAI Agents, LangChain),
 *
 * - halt → framework call ended: a streaming model call that has produced its first chunk and
 *   then hangs (ignoring its own abort signal, so only the kill path can end it) is halted at
 *   the control plane; measured from the flip (the directive's commit) to the moment the
 *   framework's own consumer saw the call end. Beside it, flip → observe (`run.signal`
 *   aborted in the worker), and the floor: the same call ended by aborting its signal directly,
 *   without killpath (the framework's own abort path).
 * - the gate's added cost per tool call: one read tool called through the adapter's wrapper
 *   (gate, effect bookkeeping) beside the same tool called without killpath.
 *
 * The control plane runs in this process (the flip's commit time is known exactly); the worker
 * is an SDK client on a real HTTP stream. Figures are printed, never asserted.
 * Environment: BENCH_REPS (halts per adapter, default 30), BENCH_CALLS (tool calls per
 * round, default 2000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, ms, percentile, table } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';
import { connect } from '@killpath/sdk';
import type { Run } from '@killpath/sdk';
import { killpathAiSdk } from '@killpath/sdk/ai-sdk';
import { killpathLangChain } from '@killpath/sdk/langchain';
import { killpathOpenAIAgents } from '@killpath/sdk/openai-agents';
import { startServer } from '@killpath/server';
import { streamText, tool as aiTool, jsonSchema, wrapLanguageModel } from 'ai';
import { Agent, RunContext, Runner, tool as agentTool } from '@openai/agents';
import { HumanMessage, createAgent, tool as lcTool } from 'langchain';
import { z } from 'zod';
import { hangingAiModel, hangingAgentsModel, HangingChatModel } from './adapter-models.ts';

const REPS = Number(process.env.BENCH_REPS ?? 30);
const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const now = () => performance.now();
const tick = () => new Promise((r) => setImmediate(r));

/** One streaming framework call: `start(signal)` begins it and resolves once the first chunk came; `ended` settles when the framework's consumer saw it end. */
type Call = (run: Run | null, signal: AbortSignal) => Promise<{ ended: Promise<unknown> }>;

const runner = new Runner({ tracingDisabled: true });

const calls: Record<string, Call> = {
  'ai-sdk': async (run, signal) => {
    const kp = run === null ? null : killpathAiSdk(run);
    const model = hangingAiModel();
    const result = streamText({
      model: kp === null ? model : wrapLanguageModel({ model, middleware: kp.middleware }),
      abortSignal: signal,
      prompt: 'go',
    });
    let first: () => void = () => {};
    const firstChunk = new Promise<void>((r) => (first = r));
    const ended = (async () => {
      for await (const _delta of result.textStream) first();
    })().catch(() => {});
    await firstChunk;
    return { ended };
  },
  'openai-agents': async (run, signal) => {
    const kp = run === null ? null : killpathOpenAIAgents(run);
    const model = hangingAgentsModel();
    const agent = new Agent({
      name: 'bench',
      instructions: 'x',
      model: kp === null ? model : kp.model(model),
    });
    const result = await runner.run(agent, 'go', { signal, stream: true });
    let first: () => void = () => {};
    const firstChunk = new Promise<void>((r) => (first = r));
    const ended = (async () => {
      for await (const _text of result.toTextStream()) first();
    })().catch(() => {});
    await firstChunk;
    return { ended };
  },
  langchain: async (run, signal) => {
    const kp = run === null ? null : await killpathLangChain(run);
    const agent = createAgent({
      model: new HangingChatModel({}),
      tools: [],
      middleware: kp === null ? [] : [kp.middleware],
    });
    let first: () => void = () => {};
    const firstChunk = new Promise<void>((r) => (first = r));
    const ended = (async () => {
      for await (const _chunk of await agent.stream(
        { messages: [new HumanMessage('go')] },
        { signal, streamMode: 'messages' },
      ))
        first();
    })().catch(() => {});
    await firstChunk;
    return { ended };
  },
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-adapters-'));
  const server = await startServer({ dataDir: dir, port: 0, logLevel: 'error' });
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
    agent: 'bot',
  });
  const client = connect({ url: server.url, token, tenant: 'bench', agent: 'bot' });
  try {
    await client.ready;
    const haltRows: string[][] = [];
    for (const [name, call] of Object.entries(calls)) {
      const observe: number[] = [];
      const ended: number[] = [];
      const floor: number[] = [];
      for (let r = 0; r < REPS; r++) {
        // Floor: the same call, ended by aborting its own signal, no killpath.
        const own = new AbortController();
        const plain = await call(null, own.signal);
        const t0 = now();
        own.abort();
        await plain.ended;
        floor.push(now() - t0);

        const run = client.startRun();
        let observedAt = 0;
        run.signal.addEventListener('abort', () => (observedAt = now()), { once: true });
        const live = await call(run, run.signal);
        const { directive } = await api.post<{ directive: Directive }>('/v1/directives', {
          level: 'halt',
          scope: `run:${run.runId}`,
          tenant: 'bench',
          reason: 'bench',
          justification: 'benchmark',
        });
        const flip = server.controlPlane.flipTime(directive.rev)!;
        await live.ended;
        const endedAt = now();
        while (observedAt === 0) await tick();
        observe.push(observedAt - flip);
        ended.push(endedAt - flip);
        run.end();
      }
      haltRows.push([
        name,
        ms(percentile(observe, 50)),
        ms(percentile(observe, 99)),
        ms(percentile(ended, 50)),
        ms(percentile(ended, 99)),
        ms(percentile(floor, 50)),
        ms(percentile(floor, 99)),
      ]);
    }
    console.log(
      `halt → framework call ended (${REPS} halts per adapter; a streaming model call hung after its first chunk)`,
    );
    console.log(
      table(
        [
          'adapter',
          'flip→observe p50',
          'p99',
          'flip→call ended p50',
          'p99',
          'floor: own abort→ended p50',
          'p99',
        ],
        haltRows,
      ),
    );
    console.log('');
    console.log(
      `gate's added cost per tool call (a read tool, ${CALLS} calls, best of 5 alternating rounds)`,
    );
    console.log(
      table(['adapter', 'without killpath (floor)', 'through the adapter', 'added'], await toolCosts(client)),
    );
  } finally {
    await client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * ns per call of `fn` over CALLS sequential calls (one round). Every 100 calls the loop yields
 * to the event loop, so that the worker keeps reading its stream (a loop of promise jobs alone
 * would starve it, its lease would run out and the gate would refuse every call).
 */
async function perCall(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    await fn();
    if (i % 100 === 99) await new Promise((r) => setImmediate(r));
  }
  return Number(process.hrtime.bigint() - t0) / CALLS;
}

/** How many times the benchmarked tools ran: every call must run its tool, or the figure is wrong. */
let executions = 0;

async function toolCosts(client: ReturnType<typeof connect>): Promise<string[][]> {
  const run = client.startRun();
  const rows: string[][] = [];
  const row = async (name: string, plain: () => Promise<unknown>, wrapped: () => Promise<unknown>) => {
    // Rounds alternate between the two, so that load on the machine hits both alike; best of each.
    let a = Infinity;
    let b = Infinity;
    for (let round = 0; round < 5; round++) {
      const before = executions;
      a = Math.min(a, await perCall(plain));
      b = Math.min(b, await perCall(wrapped));
      if (executions - before !== 2 * CALLS)
        throw new Error(
          `${name}: ${executions - before} of ${2 * CALLS} calls ran their tool (the gate refused some)`,
        );
    }
    rows.push([name, ns(a), ns(b), b < a ? `${ns(b - a)} (below the call's own noise)` : ns(b - a)]);
  };

  const search = aiTool({
    inputSchema: jsonSchema<{ q: string }>({ type: 'object', properties: { q: { type: 'string' } } }),
    execute: async ({ q }) => (executions++, q),
  });
  const aiKp = killpathAiSdk(run, { tools: { search }, classes: { search: 'read' } });
  const opts = { toolCallId: 'c1', messages: [], context: {} };
  await row(
    'ai-sdk',
    async () => search.execute!({ q: 'x' }, opts),
    async () => aiKp.tools.search.execute!({ q: 'x' }, opts),
  );

  const agentSearch = agentTool({
    name: 'search',
    description: 'search',
    parameters: z.object({ q: z.string() }),
    execute: async ({ q }) => (executions++, q),
  });
  const agentsKp = killpathOpenAIAgents(run, { classes: { search: 'read' } });
  const wrappedSearch = agentsKp.tool(agentSearch);
  const ctx = new RunContext();
  await row(
    'openai-agents',
    async () => agentSearch.invoke(ctx, '{"q":"x"}'),
    async () => wrappedSearch.invoke(ctx, '{"q":"x"}'),
  );

  const lcSearch = lcTool(async ({ q }) => (executions++, q), {
    name: 'search',
    description: 'search',
    schema: z.object({ q: z.string() }),
  });
  const lcKp = await killpathLangChain(run, { classes: { search: 'read' } });
  const toolCall = { name: 'search', args: { q: 'x' }, id: 'c1', type: 'tool_call' as const };
  // As LangChain's tool node calls a tool: with a config carrying a signal of its own per call
  // (one long-lived signal would collect a listener per call and slow every later call).
  const handler = (req: { tool: unknown }) =>
    (req.tool as typeof lcSearch).invoke(toolCall, { signal: new AbortController().signal });
  const request = { toolCall, tool: lcSearch, state: { messages: [] }, runtime: {} };
  const wrap = lcKp.middleware.wrapToolCall! as unknown as (
    req: typeof request,
    h: (req: { tool: unknown }) => Promise<unknown>,
  ) => Promise<unknown>;
  await row(
    'langchain',
    async () => handler(request),
    async () => wrap(request, handler),
  );
  run.end();
  return rows;
}

function ns(v: number): string {
  return Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(2)} µs` : `${v.toFixed(0)} ns`;
}

await main();
