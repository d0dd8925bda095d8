/**
 * The MCP gateways `killpath run --mcp` starts in front of its agent connect as that agent with
 * its release: their tool calls are the agent's, so a `release:` directive must cover them as it
 * covers the agent (a gateway without the release would still be granted write permits under a
 * halt of that release). A real control plane and a real MCP server process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { FleetWorker } from '@killpath/protocol';
import { startServer, type RunningServer } from '@killpath/server';
import { ApiClient } from '../../src/api.ts';
import { startMcpFronts } from '../../src/commands/mcp-front.ts';

const FIXTURE = fileURLToPath(new URL('../../../../test/e2e/fixtures/mcp-server.ts', import.meta.url));

describe('MCP gateways in front of a launched agent', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kp-mcp-front-'));
    server = await startServer({
      dataDir: dir,
      port: 0,
      logLevel: 'error',
      supervisor: false,
      watchdog: false,
    });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connect with the agent's release", async () => {
    const admin = new ApiClient(server.url, server.createdAdminToken!);
    const { token } = await admin.post<{ token: string }>('/v1/tokens', {
      role: 'agent',
      tenant: 'acme',
      agent: 'bot',
    });
    const fronts = await startMcpFronts([{ name: 'notes', command: process.execPath, args: [FIXTURE] }], {
      url: server.url,
      token,
      tenant: 'acme',
      agent: 'bot',
      runId: 'run-1',
      features: [],
      release: { code: 'v2' },
    });
    try {
      assert.match(fronts.env.KILLPATH_MCP_NOTES_URL ?? '', /^http:\/\/127\.0\.0\.1:\d+/);
      const { workers } = await admin.get<{ workers: FleetWorker[] }>('/v1/fleet');
      const gateway = workers.filter((w) => w.tenant === 'acme' && w.agent === 'bot');
      assert.equal(gateway.length, 1, 'the gateway is one worker of the agent');
      assert.deepEqual(gateway[0]!.release, { code: 'v2' });
    } finally {
      await fronts.close();
    }
  });
});
