/**
 * `killpath run --mcp`: the launcher puts an MCP gateway in front of the agent it launches. The
 * agent is the README's example (`examples/mcp-agent`, a scripted model speaking MCP over
 * Streamable HTTP to the URL the launcher gives it), behind it the example's real MCP server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';
import { KILLPATH_BIN, runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/mcp-agent/', import.meta.url));

describe('killpath run --mcp', { timeout: 120_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let launcher: ChildProcess | null = null;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-mcp-run-'));
    server = await startServerProcess(dir);
    api = new ApiClient(server.url, server.adminToken);
  });

  after(async () => {
    if (launcher && launcher.exitCode === null && launcher.signalCode === null) {
      try {
        process.kill(-launcher.pid!, 'SIGKILL'); // the launcher, its gateway's server and the agent
      } catch {
        // already gone
      }
    }
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the agent reaches its MCP server only through the gateway: a halt cancels the slow call and the agent reads the refusal', async () => {
    const out: string[] = [];
    const err: string[] = [];
    launcher = spawn(
      process.execPath,
      [
        KILLPATH_BIN,
        'run',
        '--tenant',
        'acme',
        '--agent',
        'notes-bot',
        '--run',
        'notes-1',
        '--isolation',
        'process-group',
        '--mcp',
        `notes=${process.execPath} ${join(EXAMPLE, 'notes-server.mjs')}`,
        '--url',
        server.url,
        '--token',
        server.adminToken,
        '--',
        process.execPath,
        join(EXAMPLE, 'agent.mjs'),
      ],
      { env: { ...process.env, PUBLISH_MS: '60000' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    // Whole lines: a chunk may end mid-line.
    createInterface({ input: launcher.stdout! }).on('line', (l) => out.push(l));
    createInterface({ input: launcher.stderr! }).on('line', (l) => err.push(l));
    const exited = new Promise<number | null>((ok) => launcher!.once('exit', (code) => ok(code)));
    // The server's first progress report: the call is in flight upstream (past its permit).
    await until('publish in flight upstream', 30_000, () =>
      out.some((l) => l.includes('round 1: publish progress 0/1')),
    );
    assert.ok(
      out.some((l) => l.includes('agent: tools search_notes, add_note, publish')),
      out.join('\n'),
    );
    assert.ok(
      out.some((l) => /round 1: add_note → ok: 1 notes/.test(l)),
      out.join('\n'),
    );
    const { directive } = await api.post<{ directive: Directive }>('/v1/directives', {
      level: 'halt',
      scope: 'run:notes-1',
      tenant: 'acme',
      reason: 'e2e',
      justification: 'halt the MCP agent',
    });
    await until('the agent reads the refusal', 10_000, () =>
      out.find((l) => l.includes('round 1: publish → error:')),
    );
    const line = out.find((l) => l.includes('round 1: publish → error:'))!;
    assert.match(line, new RegExp(`refused by killpath \\(halted, directive ${directive.id}\\)`));
    await until('the MCP server saw the cancellation', 10_000, () =>
      err.some((l) => l.includes('notes-server: publish cancelled by the client')),
    );
    const cancelled = err.find((l) => l.includes('notes-server: publish cancelled by the client'))!;
    assert.match(cancelled, /halted/, cancelled);
    await exited;
    assert.ok(!out.some((l) => l.includes('round 2:')), 'nothing after the refusal');
  });

  test('bad --mcp flags are one line and exit 2', async () => {
    for (const [flags, pattern] of [
      [['--mcp', 'notes'], /--mcp takes NAME=COMMAND/],
      [['--mcp', 'a/b=x'], /--mcp takes NAME=COMMAND/],
      [['--mcp', 'n=x', '--mcp', 'n=y'], /given twice/],
      [['--mcp', 'n=x', '--mcp-classes', 'm=f.json'], /--mcp-classes takes NAME=FILE/],
      [['--mcp', 'n=x', '--mcp-classes', `n=${join(dir, 'none.json')}`], /ENOENT/],
    ] as const) {
      const r = await runCli([
        'run',
        '--tenant',
        'acme',
        '--agent',
        'a',
        ...flags,
        '--url',
        server.url,
        '--token',
        server.adminToken,
        '--',
        'true',
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});
