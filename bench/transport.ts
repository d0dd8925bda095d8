/**
 * `node bench/transport.ts`: what each SDK transport costs the worker's process, in CPU time
 * per stream message and per report POST. A plain node:http server in a child process holds N
 * streams (N transports, one per simulated worker, as in the load generators) and pushes a
 * realistic delta frame to all of them at once; then every worker POSTs one halted report at
 * once. Figures are printed, never asserted. Environment: N (default 250), ROUNDS (default 40),
 * TRANSPORTS (default fetch,node).
 */
import { fork } from 'node:child_process';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchTransport, nodeHttpTransport, type Transport } from '@killpath/sdk';
import { percentile } from '@killpath/cli';

const N = Number(process.env.N ?? 250);
const ROUNDS = Number(process.env.ROUNDS ?? 40);
const WARMUP = 5;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

if (process.argv[2] === 'server') {
  const streams: ServerResponse[] = [];
  const directive = {
    id: 'd_2c4f0e8a-91b3-4d7e-a0c5-6f1e2d3c4b5a',
    level: 'halt',
    scope: { kind: 'tenant', tenant: 'bench' },
    scopeText: 'tenant:bench',
    tenant: 'bench',
    capabilities: null,
    rate: null,
    graceMs: 5000,
    drain: 'discard',
    memory: 'revert',
    reason: 'bench rep 1',
    justification: 'benchmark',
    actor: 'bootstrap-admin',
    issuedAt: '2026-01-01T00:00:00.000Z',
    clearedAt: null,
    clearedRev: null,
  };
  const server = createServer((req, res) => {
    if (req.method === 'POST') {
      req.resume();
      req.on('end', () => {
        res.writeHead(204);
        res.end();
      });
      return;
    }
    req.socket.setNoDelay(true);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(
      `event: snapshot\ndata: ${JSON.stringify({ type: 'snapshot', v: 1, rev: 0, directives: [], keepaliveMs: 1000 })}\n\n`,
    );
    streams.push(res);
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
  let rev = 0;
  process.on('message', () => {
    rev += 1;
    const frame = `event: delta\ndata: ${JSON.stringify({ type: 'delta', rev, issued: { ...directive, rev } })}\n\n`;
    for (const res of streams) res.write(frame);
  });
} else {
  const child = fork(new URL(import.meta.url).pathname, ['server']);
  const { port } = await new Promise<{ port: number }>((ok) =>
    child.once('message', ok as (m: unknown) => void),
  );
  const base = `http://127.0.0.1:${port}`;
  const headers = { authorization: 'Bearer kp_bench000000000000000000000000000000000000000' };
  const report = {
    rev: 12,
    directiveId: 'd_2c4f0e8a-91b3-4d7e-a0c5-6f1e2d3c4b5a',
    runs: ['bench-1'],
    aborted: 0,
    completed: 0,
    observeToSettleMs: 0.01,
  };
  console.log(`transport cost, ${N} workers in this process, node ${process.version}\n`);
  for (const name of (process.env.TRANSPORTS ?? 'fetch,node').split(',')) {
    const transports: Transport[] = Array.from({ length: N }, () =>
      name === 'node' ? nodeHttpTransport() : fetchTransport(),
    );
    const abort = new AbortController();
    let got = 0;
    let allIn: (() => void) | null = null;
    await Promise.all(
      transports.map(
        (t) =>
          new Promise<void>((opened) => {
            void (async () => {
              try {
                for await (const msg of t.openStream(`${base}/v1/stream`, headers, abort.signal)) {
                  if (msg.type === 'snapshot') opened();
                  else if (++got === N) allIn?.();
                }
              } catch {
                // Aborted at the end.
              }
            })();
          }),
      ),
    );
    let streamCpu = 0;
    const streamWall: number[] = [];
    let postCpu = 0;
    const postWall: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      await sleep(30);
      got = 0;
      const arrived = new Promise<void>((ok) => (allIn = ok));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      child.send('push');
      await arrived;
      const streamUsage = process.cpuUsage(cpu0);
      const t1 = performance.now();
      await sleep(30);
      const cpu1 = process.cpuUsage();
      const t2 = performance.now();
      await Promise.all(transports.map((t, i) => t.post(`${base}/v1/workers/w${i}/halted`, headers, report)));
      const postUsage = process.cpuUsage(cpu1);
      if (r < WARMUP) continue;
      streamCpu += streamUsage.user + streamUsage.system;
      streamWall.push(t1 - t0);
      postCpu += postUsage.user + postUsage.system;
      postWall.push(performance.now() - t2);
    }
    abort.abort();
    const rounds = ROUNDS - WARMUP;
    console.log(
      `${name.padEnd(5)}  stream: ${(streamCpu / rounds / N).toFixed(1)} µs cpu per message, all ${N} in ${percentile(streamWall, 50).toFixed(1)} ms (p50)` +
        `   report: ${(postCpu / rounds / N).toFixed(1)} µs cpu per POST, all ${N} in ${percentile(postWall, 50).toFixed(1)} ms (p50)`,
    );
    await sleep(100);
  }
  child.kill();
}
