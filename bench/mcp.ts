/**
 * `npm run bench:mcp`: the MCP figures on this machine, printed, never asserted.
 *
 * 1. Halt → upstream call cancelled: a slow tool call in flight, an operator's halt of its run
 *    (`POST /v1/directives`, timed from just before the request), and the moment the real MCP
 *    server (a subprocess) receives `notifications/cancelled` (its own clock,
 *    `performance.timeOrigin + now()`, comparable across processes). Through the gateway
 *    (`killpath mcp-gateway` as its own process, the client over stdio) and through the client
 *    wrapper (`gateMcpClient`, in process). p50 / p99 / max, and the part after the flip (the
 *    directive's `issuedAt`, a wall clock in ms).
 * 2. Added cost per tool call: a fast tool called directly (MCP client → server over stdio: the
 *    floor), through the gateway process (one more stdio hop, the gate, for a write the permit
 *    round trip) and through the wrapper, for a `read` and a `write` tool, in the same run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@killpath/server';
import { connect } from '@killpath/sdk';
import { ApiClient, percentile } from '@killpath/cli';
import { gateMcpClient } from '@killpath/mcp';
import type { Directive } from '@killpath/protocol';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { KILLPATH_BIN } from '../test/e2e/server-process.ts';
import { MCP_FIXTURE, fixtureLog } from '../test/e2e/mcp-fixture.ts';

const HALTS = Number(process.env.BENCH_MCP_HALTS ?? 25);
const CALLS = Number(process.env.BENCH_MCP_CALLS ?? 300);
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const now = () => performance.timeOrigin + performance.now();
const f2 = (v: number) => v.toFixed(2);
const stats = (xs: number[]) =>
  `p50 ${f2(percentile(xs, 50))} ms, p99 ${f2(percentile(xs, 99))} ms, max ${f2(Math.max(...xs))} ms`;

async function until<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
): Promise<T> {
  for (let i = 0; i < 2000; i++) {
    const v = await probe();
    if (v) return v;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-mcp-'));
const server = await startServer({ dataDir: dir, port: 0, logLevel: 'error', watchdog: false });
const api = new ApiClient(server.url, server.createdAdminToken!);
const { token } = await api.post<{ token: string }>('/v1/tokens', {
  role: 'agent',
  tenant: 'bench',
  agent: 'mcp',
});
const classes = join(dir, 'classes.json');
writeFileSync(classes, JSON.stringify({ lookup: 'read' }));
const clients: Client[] = [];
const stdio = (log: string, args: string[], env: Record<string, string> = {}) => {
  const c = new Client({ name: 'bench', version: '1.0.0' });
  clients.push(c);
  return c
    .connect(
      new StdioClientTransport({
        command: process.execPath,
        args,
        env: { MCP_FIXTURE_LOG: log, PATH: process.env.PATH ?? '', ...env },
        stderr: 'inherit',
      }),
    )
    .then(() => c);
};
const kp = connect({ url: server.url, token, tenant: 'bench', agent: 'mcp', leaseMs: 10_000 });

try {
  await kp.ready;
  const directLog = join(dir, 'direct.log');
  const gatewayLog = join(dir, 'gateway.log');
  const direct = await stdio(directLog, [MCP_FIXTURE]);
  const viaGateway = await stdio(
    gatewayLog,
    [
      KILLPATH_BIN,
      'mcp-gateway',
      '--tenant',
      'bench',
      '--agent',
      'mcp',
      '--run',
      'bench-gw',
      '--name',
      'fx',
      '--classes',
      classes,
      '--',
      process.execPath,
      MCP_FIXTURE,
    ],
    { KILLPATH_URL: server.url, KILLPATH_TOKEN: token },
  );
  const wrapperRun = kp.startRun({ runId: 'bench-wrap' });
  const wrapped = gateMcpClient(direct, wrapperRun, { server: 'fx', classes: { tools: { lookup: 'read' } } });

  // 2. Added cost per call, all paths interleaved in one run so load affects each alike.
  type Call = () => Promise<unknown>;
  const paths: [string, Call][] = [
    ['direct (floor), fast', () => direct.callTool({ name: 'fast' })],
    ['gateway, read tool', () => viaGateway.callTool({ name: 'lookup' })],
    ['gateway, write tool (permit)', () => viaGateway.callTool({ name: 'fast' })],
    ['wrapper, read tool', () => wrapped.callTool({ name: 'lookup' })],
    ['wrapper, write tool (permit)', () => wrapped.callTool({ name: 'fast' })],
  ];
  const times = new Map<string, number[]>(paths.map(([n]) => [n, []]));
  for (const [, call] of paths) for (let i = 0; i < 20; i++) await call(); // warm-up
  for (let i = 0; i < CALLS; i++) {
    for (const [name, call] of paths) {
      const t = performance.now();
      const r = (await call()) as CallToolResult;
      times.get(name)!.push(performance.now() - t);
      if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
    }
  }
  const floor = percentile(times.get('direct (floor), fast')!, 50);
  console.log(`# MCP tool call cost, ${CALLS} calls per path, interleaved:`);
  for (const [name, xs] of times) {
    const added = percentile(xs, 50) - floor;
    console.log(
      `#   ${name.padEnd(30)} ${stats(xs)}${name.startsWith('direct') ? '' : `; added p50 ${f2(added)} ms (${f2(percentile(xs, 50) / floor)}× the floor)`}`,
    );
  }

  // 1. Halt → upstream cancelled.
  async function haltToCancel(
    label: string,
    log: string,
    runId: string,
    call: () => Promise<unknown>,
    ready: () => Promise<boolean>,
  ): Promise<void> {
    const lat: number[] = [];
    const fromFlip: number[] = [];
    for (let i = 0; i < HALTS; i++) {
      const cancelledBefore = fixtureLog(log).filter((e) => e.event === 'cancelled').length;
      const callsBefore = fixtureLog(log).filter((e) => e.event === 'call' && e.tool === 'slow').length;
      const pending = call().catch(() => null);
      await until(
        'the slow call upstream',
        () => fixtureLog(log).filter((e) => e.event === 'call' && e.tool === 'slow').length > callsBefore,
      );
      const t0 = now();
      const { directive } = await api.post<{ directive: Directive }>('/v1/directives', {
        level: 'halt',
        scope: `run:${runId}`,
        tenant: 'bench',
        reason: 'bench',
        justification: 'bench: halt to cancel',
      });
      const ev = await until(
        'the cancellation upstream',
        () => fixtureLog(log).filter((e) => e.event === 'cancelled')[cancelledBefore],
      );
      lat.push(ev.at - t0);
      fromFlip.push(ev.at - Date.parse(directive.issuedAt));
      await pending;
      await api.post(`/v1/directives/${directive.id}/resume`, { justification: 'bench: next round' });
      await until('the resume', ready);
    }
    console.log(`# halt → upstream call cancelled (${label}, ${HALTS} halts): ${stats(lat)}`);
    console.log(`#   of which flip (commit, ms clock) → cancelled: ${stats(fromFlip)}`);
  }
  await haltToCancel(
    'gateway process, client over stdio',
    gatewayLog,
    'bench-gw',
    () => viaGateway.callTool({ name: 'slow' }),
    async () => {
      const r = (await viaGateway.callTool({ name: 'lookup' })) as CallToolResult;
      return r.isError !== true;
    },
  );
  await haltToCancel(
    'client wrapper, in process',
    directLog,
    'bench-wrap',
    () => wrapped.callTool({ name: 'slow' }),
    async () => wrapperRun.check('mcp:fx/slow').kind === 'allow',
  );
} finally {
  await Promise.allSettled(clients.map((c) => c.close()));
  await kp.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
