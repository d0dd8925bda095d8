/**
 * `@killpath/mcp`'s client wrapper against real parts: a `killpath serve` process, the agent
 * SDK connected to it, the MCP SDK's own `Client` and a real MCP server subprocess
 * (`fixtures/mcp-server.ts`) that logs every call and cancellation it sees.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '@killpath/cli';
import { KillpathError, type Directive } from '@killpath/protocol';
import { connect, type Client as KillpathClient } from '@killpath/sdk';
import { gateMcpClient } from '@killpath/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startServerProcess, until, type ServerProcess } from './server-process.ts';
import { MCP_FIXTURE, fixtureLog } from './mcp-fixture.ts';

const WHY = { reason: 'e2e mcp', justification: 'testing the MCP wrapper' };

describe('the MCP client wrapper', { timeout: 120_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let kp: KillpathClient;
  let mcp: Client;
  let logFile: string;

  const issue = async (body: Record<string, unknown>) =>
    (await api.post<{ directive: Directive }>('/v1/directives', { ...WHY, ...body })).directive;
  const resume = (id: string) => api.post(`/v1/directives/${id}/resume`, { justification: 'e2e: done' });
  const calls = (tool: string) =>
    fixtureLog(logFile).filter((e) => e.event === 'call' && e.tool === tool).length;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-mcp-client-'));
    logFile = join(dir, 'fixture.log');
    server = await startServerProcess(dir);
    api = new ApiClient(server.url, server.adminToken);
    const { token } = await api.post<{ token: string }>('/v1/tokens', {
      role: 'agent',
      tenant: 'acme',
      agent: 'bot',
    });
    kp = connect({ url: server.url, token, tenant: 'acme', agent: 'bot', leaseMs: 10_000 });
    await kp.ready;
    mcp = new Client({ name: 'wrapper-test', version: '1.0.0' });
    await mcp.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [MCP_FIXTURE],
        env: { MCP_FIXTURE_LOG: logFile },
        stderr: 'inherit',
      }),
    );
  });

  after(async () => {
    await mcp?.close(); // ends the fixture process (stdin closed, then SIGTERM/SIGKILL)
    await kp?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a halt cancels the call in flight upstream (notifications/cancelled), and the next call never leaves', async () => {
    const run = kp.startRun({ runId: 'mcp-r1' });
    const gated = gateMcpClient(mcp, run, { server: 'fx', classes: { tools: { lookup: 'read' } } });
    assert.equal(
      ((await gated.callTool({ name: 'fast' })).content as { text: string }[])[0]!.text,
      'fast done',
    );
    const progress: number[] = [];
    const slow = gated.callTool({ name: 'slow' }, { onprogress: (p) => progress.push(p.progress) });
    const settled = slow.then(
      () => null,
      (err: unknown) => err,
    );
    await until('the slow call reaches the server', 10_000, () => calls('slow') === 1);
    const halt = await issue({ level: 'halt', scope: 'run:mcp-r1', tenant: 'acme' });
    const err = await settled;
    assert.ok(err instanceof KillpathError, `rejected with a KillpathError, not ${String(err)}`);
    assert.equal(err.code, 'halted');
    assert.equal((err.details as { directiveId: string }).directiveId, halt.id);
    const cancelled = await until('the server sees the cancellation', 10_000, () =>
      fixtureLog(logFile).find((e) => e.event === 'cancelled' && e.tool === 'slow'),
    );
    assert.match(cancelled.reason ?? '', /halted/);
    assert.deepEqual(progress, [1], 'progress of the call reached the caller before the halt');
    const before = calls('fast');
    await assert.rejects(
      gated.callTool({ name: 'fast' }),
      (e: unknown) => e instanceof KillpathError && e.code === 'halted',
    );
    await assert.rejects(
      gated.callTool({ name: 'lookup' }),
      (e: unknown) => e instanceof KillpathError && e.code === 'halted',
    );
    assert.equal(calls('fast'), before, 'the refused call never reached the server');
    await resume(halt.id);
  });

  test('a degrade naming one tool hides exactly it from listTools; reads keep flowing; resume restores it', async () => {
    const run = kp.startRun({ runId: 'mcp-r2' });
    const gated = gateMcpClient(mcp, run, { server: 'fx', classes: { tools: { lookup: 'read' } } });
    const names = async () => (await gated.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(await names(), ['ask', 'fast', 'lookup', 'slow']);
    const degrade = await issue({
      level: 'degrade',
      scope: 'agent:acme/bot',
      tenant: 'acme',
      capabilities: ['mcp:fx/fast'],
    });
    await until('the degrade reaches the worker', 10_000, () => !gated.visible('fast'));
    assert.deepEqual(await names(), ['ask', 'lookup', 'slow']);
    await assert.rejects(
      gated.callTool({ name: 'fast' }),
      (e: unknown) => e instanceof KillpathError && e.code === 'halted',
    );
    assert.equal(
      ((await gated.callTool({ name: 'lookup' })).content as { text: string }[])[0]!.text,
      'lookup done',
    );
    await resume(degrade.id);
    await until('the resume reaches the worker', 10_000, () => gated.visible('fast'));
    assert.deepEqual(await names(), ['ask', 'fast', 'lookup', 'slow']);
    assert.equal(
      ((await gated.callTool({ name: 'fast' })).content as { text: string }[])[0]!.text,
      'fast done',
    );
  });
});
