/**
 * `killpath mcp-gateway` on real processes: a `killpath serve` control plane, the gateway as its
 * own process in front of a real MCP server subprocess (`fixtures/mcp-server.ts`, which logs
 * every call and cancellation it sees), and the MCP SDK's own `Client` talking to the gateway
 * over stdio and over Streamable HTTP. Nothing of the MCP SDK is mocked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { ApiClient } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { KILLPATH_BIN, runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';
import { MCP_FIXTURE, fixtureLog } from './mcp-fixture.ts';

const WHY = { reason: 'e2e mcp gateway', justification: 'testing the MCP gateway' };
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** POSTs `body` to `url` with the given Host header (fetch does not let a caller set one); resolves with the status. */
function post(url: string, body: string, host?: string): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...(host ? { host } : {}) } },
      (res) => {
        res.resume();
        ok(res.statusCode ?? 0);
      },
    );
    req.once('error', fail);
    req.end(body);
  });
}
const textOf = (r: unknown): string => ((r as CallToolResult).content[0] as { text: string }).text;

/** An MCP client that answers sampling, elicitation and roots, and counts tools/list_changed. */
function agentClient(): { client: Client; listChanged: () => number; sampled: () => number } {
  const client = new Client(
    { name: 'gateway-test', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  let changed = 0;
  let sampled = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
  client.setRequestHandler(
    CreateMessageRequestSchema,
    () => (
      sampled++,
      {
        role: 'assistant',
        content: { type: 'text', text: 'sampled' },
        model: 'scripted',
      }
    ),
  );
  client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'ada' } }));
  client.setRequestHandler(ListRootsRequestSchema, () => ({
    roots: [{ uri: 'file:///work', name: 'work' }],
  }));
  return { client, listChanged: () => changed, sampled: () => sampled };
}

describe('killpath mcp-gateway', { timeout: 180_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let token: string;
  let classesFile: string;
  const logs: string[] = [];
  const gatewayPids: number[] = [];
  const httpGateways: ChildProcess[] = [];

  const issue = async (body: Record<string, unknown>) =>
    (await api.post<{ directive: Directive }>('/v1/directives', { ...WHY, tenant: 'acme', ...body }))
      .directive;
  const resume = (id: string) => api.post(`/v1/directives/${id}/resume`, { justification: 'e2e: done' });
  const gatewayEnv = (log: string): Record<string, string> => ({
    PATH: process.env.PATH ?? '',
    KILLPATH_URL: server.url,
    KILLPATH_TOKEN: token,
    MCP_FIXTURE_LOG: log,
  });
  const gatewayArgs = (run: string): string[] => [
    KILLPATH_BIN,
    'mcp-gateway',
    '--tenant',
    'acme',
    '--agent',
    'gw',
    '--run',
    run,
    '--name',
    'fx',
    '--classes',
    classesFile,
    '--',
    process.execPath,
    MCP_FIXTURE,
  ];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-mcp-gw-'));
    classesFile = join(dir, 'classes.json');
    writeFileSync(classesFile, JSON.stringify({ lookup: 'read', ask: 'read' }));
    server = await startServerProcess(dir);
    api = new ApiClient(server.url, server.adminToken);
    ({ token } = await api.post<{ token: string }>('/v1/tokens', {
      role: 'agent',
      tenant: 'acme',
      agent: 'gw',
    }));
  });

  after(async () => {
    for (const g of httpGateways) {
      if (g.exitCode === null && g.signalCode === null) {
        try {
          process.kill(-g.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // Whatever survived a failed test: gateways and the upstream servers they started.
    for (const pid of [...gatewayPids, ...logs.flatMap((l) => fixtureLog(l).map((e) => e.pid))]) {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The halt, refusal, degrade and resume checks, the same over either transport. */
  async function scenario(
    { client, listChanged, sampled }: ReturnType<typeof agentClient>,
    run: string,
    log: string,
  ): Promise<void> {
    const calls = (tool: string) =>
      fixtureLog(log).filter((e) => e.event === 'call' && e.tool === tool).length;
    const names = async () => (await client.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(await names(), ['ask', 'fast', 'lookup', 'slow']);
    assert.equal(textOf(await client.callTool({ name: 'fast' })), 'fast done');
    // Sampling, elicitation and roots asked by the upstream server reach this client and back.
    assert.equal(textOf(await client.callTool({ name: 'ask' })), 'sampled|{"name":"ada"}|file:///work');

    // Sampling is the agent's model call: a degrade of llm refuses it before it reaches the client.
    const samples = sampled();
    const noLlm = await issue({ level: 'degrade', scope: `run:${run}`, capabilities: ['llm'] });
    await until('the llm degrade reaches the gateway', 10_000, async () => {
      try {
        await client.callTool({ name: 'ask' });
        return false;
      } catch (err) {
        return /sampling refused by killpath/.test((err as Error).message);
      }
    });
    assert.equal(sampled(), samples, 'the refused sampling request never reached the client');
    await resume(noLlm.id);
    await until('the resume of llm', 10_000, async () => {
      try {
        return textOf(await client.callTool({ name: 'ask' })).startsWith('sampled|');
      } catch {
        return false;
      }
    });

    // A degrade naming one tool: the list changes, the client is told, reads keep flowing.
    const seen = listChanged();
    const degrade = await issue({ level: 'degrade', scope: 'agent:acme/gw', capabilities: ['mcp:fx/fast'] });
    await until('tools/list_changed after the degrade', 10_000, () => listChanged() > seen);
    assert.deepEqual(await names(), ['ask', 'lookup', 'slow']);
    const refused = (await client.callTool({ name: 'fast' })) as CallToolResult;
    assert.equal(refused.isError, true);
    assert.match(textOf(refused), /refused by killpath \(revoked, directive /);
    assert.equal(textOf(await client.callTool({ name: 'lookup' })), 'lookup done');
    const afterDegrade = listChanged();
    await resume(degrade.id);
    await until('tools/list_changed after the resume', 10_000, () => listChanged() > afterDegrade);
    assert.deepEqual(await names(), ['ask', 'fast', 'lookup', 'slow']);

    // A halt while the slow call is in flight: cancelled upstream, answered as a tool error.
    const progress: number[] = [];
    const slow = client.callTool({ name: 'slow' }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    await until('the slow call reaches the server', 10_000, () => calls('slow') === 1);
    const halt = await issue({ level: 'halt', scope: `run:${run}` });
    const answer = (await slow) as CallToolResult;
    assert.equal(answer.isError, true, 'a tool-level error the model can read');
    assert.match(textOf(answer), new RegExp(`refused by killpath \\(halted, directive ${halt.id}\\)`));
    const cancelled = await until('the upstream server sees the cancellation', 10_000, () =>
      fixtureLog(log).find((e) => e.event === 'cancelled' && e.tool === 'slow'),
    );
    assert.match(cancelled.reason ?? '', /halted/);
    assert.deepEqual(progress, [1], 'progress of the call was forwarded');
    const before = calls('fast');
    const after = (await client.callTool({ name: 'fast' })) as CallToolResult;
    assert.equal(after.isError, true);
    assert.match(textOf(after), /halted/);
    assert.equal(calls('fast'), before, 'the call after the halt never reached the upstream server');
    // Everything else the agent asks of the server is gated too: a resource read under the halt
    // is refused and never reaches it.
    const reads = () => fixtureLog(log).filter((e) => e.event === 'read_resource').length;
    const readsBefore = reads();
    await assert.rejects(client.readResource({ uri: 'note://1' }), /refused by killpath \(halted/);
    assert.equal(reads(), readsBefore, 'the resource read after the halt never reached the upstream server');
    await resume(halt.id);
    await until('the resume reaches the gateway', 10_000, async () => {
      const r = (await client.callTool({ name: 'fast' })) as CallToolResult;
      return r.isError !== true;
    });
    assert.deepEqual((await client.readResource({ uri: 'note://1' })).contents, [
      { uri: 'note://1', text: 'note: buy milk' },
    ]);
  }

  test('over stdio: halt, refusal, degrade, resume; the upstream process ends with the client', async () => {
    const log = join(dir, 'stdio.log');
    logs.push(log);
    const agent = agentClient();
    const client = agent.client;
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: gatewayArgs('gw-stdio'),
      env: gatewayEnv(log),
      stderr: 'inherit',
    });
    try {
      await client.connect(transport);
      if (transport.pid !== null) gatewayPids.push(transport.pid);
      await scenario(agent, 'gw-stdio', log);
    } finally {
      await client.close();
    }
    const upstream = fixtureLog(log).find((e) => e.event === 'started')!.pid;
    await until('the upstream server exits after the client closed', 10_000, () => !alive(upstream));
    await until('the gateway exits after the client closed', 10_000, () => !gatewayPids.some(alive));
  });

  test('over Streamable HTTP: the same, with a session per client', async () => {
    const log = join(dir, 'http.log');
    logs.push(log);
    const args = gatewayArgs('gw-http');
    args.splice(args.indexOf('--'), 0, '--listen', '127.0.0.1:0', '--session-idle-ms', '300');
    const gw = spawn(process.execPath, args, {
      env: gatewayEnv(log),
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    httpGateways.push(gw);
    const url = await new Promise<string>((ok, fail) => {
      createInterface({ input: gw.stdout! }).on('line', (l) => {
        const m = /listening on (\S+)/.exec(l);
        if (m) ok(m[1]!);
      });
      gw.once('exit', (code) => fail(new Error(`the gateway exited with ${code}`)));
    });
    const agent = agentClient();
    const client = agent.client;
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      await scenario(agent, 'gw-http', log);
      // A foreign Host header is refused (DNS rebinding), and so is a request without a session.
      const forged = await post(url, '{}', 'evil.example:80');
      assert.equal(forged, 403);
      // A client that goes away without DELETE: its session idles out and its upstream process
      // ends; the session of the client still connected (its GET stream open) is kept.
      const starts = () => fixtureLog(log).filter((e) => e.event === 'started');
      const first = starts()[0]!.pid;
      const gone = agentClient().client;
      await gone.connect(new StreamableHTTPClientTransport(new URL(url)));
      assert.equal((await gone.listTools()).tools.length, 4);
      const second = starts().find((e) => e.pid !== first)!.pid;
      await gone.close();
      await until('the idle session ends its upstream process', 10_000, () => !alive(second));
      assert.ok(alive(first), 'the live session kept its upstream process');
      assert.equal(textOf(await client.callTool({ name: 'fast' })), 'fast done');
      const orphan = await post(url, '{}');
      assert.equal(orphan, 400);
      assert.equal(await post(url, 'not json'), 400);
    } finally {
      await client.close();
    }
    gw.kill('SIGTERM');
    await new Promise((ok) => (gw.exitCode !== null ? ok(null) : gw.once('exit', ok)));
    assert.equal(gw.exitCode, 0);
    const upstream = fixtureLog(log).find((e) => e.event === 'started')!.pid;
    assert.equal(alive(upstream), false, 'the upstream server ended with the gateway');
  });

  test('bad input is one line and exit 2, and nothing is started', async () => {
    const env = {
      ...process.env,
      KILLPATH_URL: server.url,
      KILLPATH_TOKEN: token,
      MCP_FIXTURE_LOG: join(dir, 'bad.log'),
    };
    const base = ['mcp-gateway', '--tenant', 'acme', '--agent', 'gw'];
    const badClasses = join(dir, 'bad-classes.json');
    writeFileSync(badClasses, '{"lookup":"reads"}');
    for (const [args, pattern] of [
      [['mcp-gateway', '--', 'x'], /--tenant and --agent are required/],
      [[...base], /no upstream server/],
      [[...base, '--run', 'a/b', '--', 'x'], /--run must be/],
      [[...base, '--listen', '0.0.0.0:7071', '--', process.execPath, MCP_FIXTURE], /loopback only/],
      [[...base, '--listen', 'nope', '--', 'x'], /--listen takes HOST:PORT/],
      [[...base, '--classes', join(dir, 'missing.json'), '--', 'x'], /--classes .*ENOENT/],
      [
        [...base, '--classes', classesFile.replace('classes.json', 'stdio.log'), '--', 'x'],
        /not valid JSON|must be one of/,
      ],
    ] as const) {
      const r = await runCli([...args], { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
    assert.deepEqual(fixtureLog(join(dir, 'bad.log')), [], 'no upstream server was started');
  });
});
