/**
 * `npm run bench:triggers`: the automatic triggers' figures on this machine, printed, never
 * asserted.
 *
 * 1. Supervisor throughput: run updates (one run's counters in a telemetry batch) evaluated
 *    per second against the default policy, in process (rules only) and through
 *    `POST /v1/telemetry` (HTTP, validation, rules).
 * 2. Trigger latency: an SDK run's `step()` that crosses the loop-length rule → the
 *    supervisor's directive commit (both on this process's monotonic clock; includes the
 *    SDK's batching, 250 ms by default), and the part inside the control plane (batch
 *    received → commit).
 * 3. Deadman detection: workers whose heartbeats stop (streams left open, as a hung process
 *    leaves them) → trip, against the configured threshold (interval × missed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_POLICY,
  Supervisor,
  compilePolicy,
  createLogger,
  startServer,
  type Fire,
} from '@killpath/server';
import { connect } from '@killpath/sdk';
import { ApiClient, percentile } from '@killpath/cli';
import type { AuditRecord, RunTelemetry } from '@killpath/protocol';

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const f1 = (v: number) => v.toFixed(1);
const zero = (runId: string): RunTelemetry => ({
  runId,
  steps: 0,
  tokens: 0,
  costUsd: 0,
  toolCalls: 0,
  toolErrors: 0,
  authDenials: 0,
  schemaViolations: 0,
  anomalies: 0,
  anomalyScore: 0,
  anomalyDetail: null,
  localHalt: null,
});

async function throughput(): Promise<void> {
  const policy = compilePolicy(DEFAULT_POLICY);
  const sup = new Supervisor({ log: createLogger('silent'), policy: () => ({ version: 1, policy }) });
  const RUNS = 1000;
  const ROUNDS = 150;
  const runs = Array.from({ length: RUNS }, (_, i) => zero(`r${i}`));
  const started = performance.now();
  for (let round = 1; round <= ROUNDS; round++) {
    for (let i = 0; i < RUNS; i += 100) {
      const batch = runs
        .slice(i, i + 100)
        .map((r) => ({ ...r, steps: round, toolCalls: round, costUsd: round * 0.01, tokens: round * 100 }));
      sup.ingest({ workerId: `w${i}`, tenant: 'bench', agent: 'a' }, batch);
    }
  }
  const s = (performance.now() - started) / 1000;
  console.log(
    `# supervisor in process: ${Math.round((RUNS * ROUNDS) / s).toLocaleString('en')} run updates/s (${RUNS} runs × ${ROUNDS} updates, 6 rules incl. a 60 s window, every update changes counters)`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-triggers-'));
  const server = await startServer({ dataDir: dir, port: 0, logLevel: 'error', watchdog: false });
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
    agent: 'a',
  });
  const WORKERS = 4;
  const PER = 250;
  const POSTS = 200;
  const post = (body: unknown) =>
    fetch(`${server.url}/v1/telemetry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then((r) => r.body?.cancel());
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      for (let n = 1; n <= POSTS; n++)
        await post({
          workerId: `hw${w}`,
          runs: Array.from({ length: PER }, (_, i) => ({ ...zero(`h${w}-${i}`), steps: n, toolCalls: n })),
        });
    }),
  );
  const hs = (performance.now() - t0) / 1000;
  console.log(
    `# supervisor through POST /v1/telemetry: ${Math.round((WORKERS * PER * POSTS) / hs).toLocaleString('en')} run updates/s (${WORKERS} concurrent workers, batches of ${PER} runs; client and server share this process)`,
  );
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}

async function latency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-triggers-'));
  const inServer: number[] = [];
  const server = await startServer({
    dataDir: dir,
    port: 0,
    logLevel: 'error',
    watchdog: false,
    onFire: (f: Fire) => void f,
  });
  const committed = new Map<string, number>();
  const hub = server.controlPlane.hub;
  const publish = hub.publish.bind(hub);
  hub.publish = (rev, change) => {
    if (change.issued) committed.set(change.issued.scopeText, performance.now());
    publish(rev, change);
  };
  const fires = new Map<string, number>();
  const origIngest = server.triggers.supervisor!.ingest.bind(server.triggers.supervisor!);
  server.triggers.supervisor!.ingest = (who, runs) => {
    const at = performance.now();
    for (const r of runs) if (r.steps === 201 && !fires.has(r.runId)) fires.set(r.runId, at);
    origIngest(who, runs);
  };
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
    agent: 'loop',
  });
  const client = connect({ url: server.url, token, tenant: 'bench', agent: 'loop', leaseMs: 10_000 });
  await client.ready;
  await sleep(300);
  const N = Number(process.env.BENCH_TRIGGERS ?? 200);
  const crossed = new Map<string, number>();
  for (let i = 0; i < N; i++) {
    const run = client.startRun({ runId: `lat-${i}` });
    for (let s = 0; s < 200; s++) run.step();
    await sleep(Math.random() * 20);
    crossed.set(`run:lat-${i}`, performance.now());
    run.step();
  }
  // A rule only the control plane evaluates: an authorisation denial waits for the next batch.
  const denied = new Map<string, number>();
  for (let i = 0; i < N; i++) {
    const run = client.startRun({ runId: `den-${i}`, capabilities: ['search'] });
    await sleep(Math.random() * 20);
    denied.set(`run:den-${i}`, performance.now());
    await run.effect('wire_transfer', () => 0).catch(() => {});
  }
  const deadline = performance.now() + 10_000;
  while (committed.size < 2 * N && performance.now() < deadline) await sleep(20);
  const e2e: number[] = [];
  for (const [scope, at] of crossed) {
    const c = committed.get(scope);
    if (c !== undefined) e2e.push(c - at);
    const f = fires.get(scope.slice(4));
    if (c !== undefined && f !== undefined) inServer.push(c - f);
  }
  const batched = [...denied].flatMap(([scope, at]) =>
    committed.has(scope) ? [committed.get(scope)! - at] : [],
  );
  console.log(
    `# trigger latency, step() crossing loop_length → directive commit (the local halt sends its batch at once), n=${e2e.length}/${N}: p50 ${f1(percentile(e2e, 50))} ms, p99 ${f1(percentile(e2e, 99))} ms, max ${f1(Math.max(...e2e))} ms`,
  );
  console.log(
    `# trigger latency, refused effect (auth_denial, evaluated only at the control plane) → directive commit (SDK batching every 250 ms included), n=${batched.length}/${N}: p50 ${f1(percentile(batched, 50))} ms, p99 ${f1(percentile(batched, 99))} ms, max ${f1(Math.max(...batched))} ms`,
  );
  console.log(
    `# trigger latency inside the control plane, batch received → directive commit, n=${inServer.length}: p50 ${f1(percentile(inServer, 50))} ms, p99 ${f1(percentile(inServer, 99))} ms, max ${f1(Math.max(...inServer))} ms`,
  );
  await client.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}

async function deadman(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-triggers-'));
  const INTERVAL = 200;
  const MISSED = 3;
  const policy = DEFAULT_POLICY.replace(
    'default: { intervalMs: 5000, missed: 3, killAfterMs: 0 }',
    `default: { intervalMs: ${INTERVAL}, missed: ${MISSED}, killAfterMs: 0 }`,
  );
  const server = await startServer({
    dataDir: dir,
    port: 0,
    logLevel: 'error',
    policy: { path: 'bench', source: policy },
  });
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
    agent: 'hb',
  });
  const W = Number(process.env.BENCH_DEADMAN ?? 20);
  const h = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const lastBeat = new Map<string, number>();
  const aborts: AbortController[] = [];
  await Promise.all(
    Array.from({ length: W }, async (_, i) => {
      const id = `hb-${i}`;
      const ac = new AbortController();
      aborts.push(ac);
      const res = await fetch(`${server.url}/v1/stream?worker=${id}&tenant=bench&agent=hb`, {
        headers: { authorization: h.authorization },
        signal: ac.signal,
      });
      void res.body?.pipeTo(new WritableStream()).catch(() => {});
      await fetch(`${server.url}/v1/runs`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({
          runId: `hb-run-${i}`,
          parentRunId: null,
          lineage: [],
          features: [],
          workerId: id,
        }),
      }).then((r) => r.body?.cancel());
    }),
  );
  const beat = (i: number) => {
    lastBeat.set(`hb-${i}`, performance.now());
    return fetch(`${server.url}/v1/workers/hb-${i}/heartbeat`, {
      method: 'POST',
      headers: h,
      body: JSON.stringify({
        rev: 0,
        features: [],
        runs: [
          {
            runId: `hb-run-${i}`,
            parentRunId: null,
            lineage: [],
            state: 'running',
            effects: 0,
            denied: 0,
            inFlight: 0,
          },
        ],
        pid: 1,
        sinceContactMs: 0,
      }),
    }).then((r) => r.body?.cancel());
  };
  // Every worker beats on time for a while, then worker i stops after i × 50 ms more (a hung event loop).
  const stopAt = performance.now() + 1000;
  await Promise.all(
    Array.from({ length: W }, async (_, i) => {
      while (performance.now() < stopAt + i * 50) {
        await beat(i);
        await sleep(INTERVAL);
      }
    }),
  );
  await sleep(INTERVAL * MISSED + 1500);
  const trips = (await api.get<{ records: AuditRecord[] }>('/v1/audit?type=deadman.triggered&limit=5000'))
    .records;
  const silence = trips.map((r) => r.data.heartbeatAgoMs as number);
  const over = silence.map((s) => s - INTERVAL * MISSED);
  console.log(
    `# deadman detection (interval ${INTERVAL} ms × ${MISSED} = ${INTERVAL * MISSED} ms threshold, in-process watchdog tick ${Math.max(20, INTERVAL / 10)} ms), ${trips.length}/${W} workers tripped: silence at trip p50 ${f1(percentile(silence, 50))} ms, p99 ${f1(percentile(silence, 99))} ms; past the threshold p50 ${f1(percentile(over, 50))} ms, max ${f1(Math.max(...over))} ms`,
  );
  for (const ac of aborts) ac.abort();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}

await throughput();
await latency();
await deadman();
