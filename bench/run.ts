/**
 * `npm run bench`: prints signal-to-halt and time-to-report with 10, 1,000 and 10,000 connected
 * workers, each beside a bare floor measured in the same run, the control plane's event-loop
 * delay during each phase, and the gate's cost per check. Figures are printed, never asserted
 * (see DESIGN.md, latency terms).
 *
 * The control plane runs in this process (so the flip's commit time is known exactly); the
 * workers are SDK clients in separate processes, one stream each, holding a 30 s lease (see
 * bench/load-worker.ts: a starved load generator must not drop and reopen its streams).
 * Each layout's fleet is flipped once unmeasured first (as the floor writes once unmeasured before
 * its report rounds): that flip opens the connections its reports go over, which SDK workers
 * hold open between heartbeats, and runs the control plane's report path once.
 * signal-to-halt = flip (commit) → the worker settled (applied the rev, nothing covered in
 * flight, refusing new effects), both as wall-clock instants on this machine.
 * time-to-report = flip → the control plane received the worker's halted report (adds the
 * report's trip back).
 *
 * The floor (`bare SSE fan-out`): right after each size's flips, a plain `node:http` server in
 * this process holds the same number of SSE connections, opened by bare stream clients
 * (bench/floor-client.ts) spread over the same number of processes as the co-hosted layout, and
 * writes the very bytes of the size's last halt delta to every one of them, REPS times (one HTTP
 * chunk encoded once and written as is to each socket, the cheapest a server can send it; its rev
 * renumbered per rep with as many digits); a sample is write-loop start → a client saw the frame's
 * end. Nothing else runs: no store, no apply, no report. Each signal-to-halt row prints its p99
 * over the floor's p99 (`× floor`).
 *
 * The report floor (`bare report`): after those REPS, REPS more writes of the same frame, on which
 * every bare client sends a halted report to the same server as its counterpart in the measured
 * fleet does (same headers with the token, report size, one turn after reading, the turn's
 * reports of a process together as `POST /v1/workers/reports` as the SDK's `ReportChannel` sends
 * them, and the same kind of keep-alive connection: one pool of 64 per process for simulated
 * workers, the process's one keep-alive agent for SDK ones; see bench/floor-client.ts), already
 * open, as the measured workers' are at a flip (one unmeasured write with reports opens them).
 * The server reads and parses each body, notes the instant of each report in it and answers: no
 * auth, validation, fleet or audit. A
 * sample is write-loop start → that instant, on this process's clock, as time-to-report is flip
 * (commit) → the control plane took the report, on its. Each time-to-report row prints its p99
 * over this floor's p99 (`× floor`). The SSE floor's rows are its first REPS writes alone, so
 * they measure what they did before the report floor existed.
 *
 * Event-loop delay (`loop p99/max`): `monitorEventLoopDelay` in this process (the control plane,
 * or the floor's server) over the phase's flips (each floor: its own writes), not its set-up.
 *
 * Each size is measured with two fleet layouts, both printed (sizes above 1,000: co-hosted only,
 * unless BENCH_LAYOUT says otherwise):
 * Above 1,000 workers (BENCH_SIM_ABOVE) the co-hosted workers are simulated stream clients
 * (bench/sim-worker.ts: a stream each, every event parsed, settle on a covering halt, halted
 * report or ack over a pool of connections per process): 10,000 SDK clients do not fit 2 cores.
 *
 * - `co-hosted`: every worker in a load-generator process of up to 250 clients (at most 4
 *   processes; BENCH_PROCS overrides); a worker id of agent `bot<k>` per 1,000 (the fleet holds at
 *   most 1,000 workers per agent), the layout of the first version of this benchmark.
 * - `1/process`: workers run one per process, as real workers do; where that many processes
 *   do not fit the machine (more than 16 workers) only 8 do, as probes, and the rest are
 *   co-hosted as above, so the probes see the whole fleet's load. Both groups are printed.
 *
 * Environment: BENCH_WORKERS (sizes, default 10,1000,10000), BENCH_REPS (flips per size and layout,
 * default 5), BENCH_LAYOUT (both | co-hosted | 1/process, default both), BENCH_PROCS,
 * BENCH_TRANSPORT (node | fetch, default node: the SDK's nodeHttpTransport), BENCH_PIN=1 (Linux:
 * the control plane on the first core, every worker process on the others, as if they were on
 * other machines), BENCH_TRACE=1 (per flip: the fan-out, each process's apply span, event-loop
 * delay, GC and CPU).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startServer, type HaltedEvent } from '@killpath/server';
import { ApiClient, percentile, ms, table } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';

const REPS = Number(process.env.BENCH_REPS ?? 5);
const sizes = (process.env.BENCH_WORKERS ?? '10,1000,10000').split(',').map(Number);
const TRANSPORT = process.env.BENCH_TRANSPORT === 'fetch' ? 'fetch' : 'node';
const TRACE = process.env.BENCH_TRACE === '1';
const layoutsFor = (n: number): string[] =>
  process.env.BENCH_LAYOUT === undefined
    ? n > 1000
      ? ['co-hosted']
      : ['co-hosted', '1/process']
    : process.env.BENCH_LAYOUT === 'both'
      ? ['co-hosted', '1/process']
      : [process.env.BENCH_LAYOUT];
const CORES = cpus().length;
const PIN = process.env.BENCH_PIN === '1' && process.platform === 'linux' && CORES > 1;
const PER_PROCESS = 250;
/** Above this many workers, the co-hosted workers are simulated stream clients (bench/sim-worker.ts). */
const SIM_ABOVE = Number(process.env.BENCH_SIM_ABOVE ?? 1000);
/** Up to this many workers, the 1/process layout runs every worker in its own process. */
const ALL_SOLO_UP_TO = 16;
const PROBES = 8;
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const wallNow = () => performance.timeOrigin + performance.now();

/** Every process this bench started: whatever happens, none outlives it. */
const spawned = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

/** Longest a started process may take to print its `ready` line, in ms. */
const READY_WITHIN_MS = 300_000;

/**
 * Hands each line `child` prints to `onLine` (with the `ready` to call on its ready line) and
 * resolves once it is ready; rejects if the child exits first or is not ready in time, so the
 * bench fails (and its exit handler ends every process) instead of waiting forever.
 */
function readyOf(child: ChildProcess, onLine: (line: string, ready: () => void) => void): Promise<void> {
  return new Promise((ok, fail) => {
    let ready = false;
    const timer = setTimeout(() => {
      if (!ready) fail(new Error(`process ${child.pid} not ready after ${READY_WITHIN_MS} ms`));
    }, READY_WITHIN_MS);
    const done = () => {
      ready = true;
      clearTimeout(timer);
      ok();
    };
    createInterface({ input: child.stdout! }).on('line', (line) => onLine(line, done));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready) fail(new Error(`process ${child.pid} exited (${signal ?? code}) before it was ready`));
    });
  });
}

/** One worker process's account of one flip (BENCH_TRACE=1). */
interface ProcTrace {
  rev: number;
  proc: number;
  count: number;
  /** Wall-clock instants of the first and last delta applied for the flip. */
  firstObserve: number;
  lastObserve: number;
  /** Largest event-loop delay while the flip was applied, ms. */
  eldMaxMs: number;
  /** GC pauses that started while the flip was applied: count and total ms. */
  gcCount: number;
  gcMs: number;
  /** CPU time used in the 300 ms from the first apply, ms. */
  cpuMs: number;
}

interface Fanout {
  rev: number;
  start: number;
  end: number;
  flushed: number;
}

/** What one phase measured: its rows and what the floor phase needs. */
interface Measured {
  rows: string[][];
  /** Per row: which floor its p99 is compared with (null: none) and the p99. */
  p99s: { floor: 'fan-out' | 'report' | null; p99: number }[];
  /** The bytes of the last halt delta the hub wrote to a stream. */
  frame: string;
  /** The rev in that frame. */
  rev: number;
  /** The workers' token, sent by the report floor's clients as the real ones send it. */
  token: string;
  /** The report floor's body: the fields of a real halted report of the last flip (median size). */
  reportBody: { directiveId: string; aborted: number; completed: number; observeToSettleMs: number };
  /** Whether the co-hosted workers were simulated (bench/sim-worker.ts) or SDK clients. */
  sim: boolean;
}

/** Event-loop delay in this process over a phase: call `start` before its flips, `stop` after. */
function loopDelay(): { start(): void; stop(): string } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  return {
    start: () => {
      h.reset();
      h.enable();
    },
    stop: () => {
      h.disable();
      return `${ms(h.percentile(99) / 1e6)} / ${ms(h.max / 1e6)}`;
    },
  };
}

/** Runs REPS flips against one fleet; returns the table rows. */
async function measure(workers: number, layout: string): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-'));
  const server = await startServer({ dataDir: dir, port: 0, logLevel: 'warn' });
  const cp = server.controlPlane;
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
  });
  const solo = layout === 'co-hosted' ? 0 : workers <= ALL_SOLO_UP_TO ? workers : Math.min(PROBES, workers);
  const hosted = workers - solo;
  const procs =
    hosted === 0
      ? 0
      : Number(process.env.BENCH_PROCS ?? Math.min(4, Math.max(1, Math.ceil(hosted / PER_PROCESS))));
  // Worker numbers: load generator p hosts p*10000…; solo worker s is 1_000_000+s.
  const isSolo = (worker: number) => worker >= 1_000_000;
  const settled: { rev: number; wall: number; worker: number }[] = [];
  const reports: HaltedEvent[] = [];
  const traces: ProcTrace[] = [];
  cp.onHalted((e) => reports.push(e));

  // The fan-out loop queues one write per stream; Node sends them (one syscall each) in
  // process.nextTick callbacks right after it, all before the next setImmediate.
  let fanout: Fanout | null = null;
  if (TRACE) {
    const publish = cp.hub.publish.bind(cp.hub);
    cp.hub.publish = (rev, change) => {
      const start = wallNow();
      publish(rev, change);
      const f = { rev, start, end: wallNow(), flushed: Number.NaN };
      fanout = f;
      setImmediate(() => (f.flushed = wallNow()));
    };
  }

  const children: ChildProcess[] = [];
  const readies: Promise<void>[] = [];
  const sim = workers > SIM_ABOVE;
  const spawnLoad = (count: number, base: number) => {
    const args = [here(sim && count > 1 ? './sim-worker.ts' : './load-worker.ts')];
    const child = spawn(
      PIN ? 'taskset' : process.execPath,
      PIN ? ['-c', `1-${CORES - 1}`, process.execPath, ...args] : args,
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          KILLPATH_URL: server.url,
          KILLPATH_TOKEN: token,
          COUNT: String(count),
          BASE: String(base),
          TRANSPORT,
          TRACE: TRACE ? '1' : '0',
        },
      },
    );
    children.push(child);
    spawned.add(child);
    readies.push(
      readyOf(child, (line, ready) => {
        const m = JSON.parse(line) as { k: string; rev: number; wall: number; worker: number };
        if (m.k === 'ready') ready();
        else if (m.k === 'settled') settled.push({ rev: m.rev, wall: m.wall, worker: m.worker });
        else if (m.k === 'trace') traces.push(m as unknown as ProcTrace);
      }),
    );
  };
  for (let p = 0; p < procs; p++)
    spawnLoad(Math.floor(hosted / procs) + (p < hosted % procs ? 1 : 0), p * 10_000);
  for (let s = 0; s < solo; s++) spawnLoad(1, 1_000_000 + s);
  await Promise.all(readies);
  await sleep(500);

  // The floor writes the bytes the hub wrote: a sink of our own keeps the last halt delta.
  let frame = '';
  let frameRev = 0;
  await cp.hub.attach(
    {
      workerId: 'bench-frame',
      tenant: 'bench',
      write(text) {
        if (text.startsWith('event: delta') && text.includes('"issued"')) {
          frame = text;
          frameRev = cp.hub.rev;
        }
        return true;
      },
      close() {},
    },
    () => cp.store.switchboard(),
  );
  const lag = loopDelay();

  const stopHosted: number[] = [];
  const stopSolo: number[] = [];
  const report: number[] = [];
  let lastReports: HaltedEvent[] = [];
  const traceLines: string[] = [];
  // Flip -1 is not measured, as the floor's first report write is not: it opens the connections the
  // fleet's reports go over (SDK workers hold theirs open between their heartbeats; the simulated
  // ones open their pool on their first report) and runs the control plane's report path once.
  for (let r = -1; r < REPS; r++) {
    if (r === 0) lag.start();
    settled.length = 0;
    reports.length = 0;
    traces.length = 0;
    const cpu0 = process.cpuUsage();
    const { directive } = await api.post<{ directive: Directive }>('/v1/directives', {
      level: 'halt',
      scope: 'tenant:bench',
      reason: r < 0 ? 'bench warm-up' : `bench rep ${r}`,
      justification: 'benchmark',
      // No escalation to a kill mid-measure on a loaded machine: the kill step comes after the grace.
      graceMs: 600_000,
    });
    const flipWall = performance.timeOrigin + cp.flipTime(directive.rev)!;
    const until = Date.now() + 15_000;
    while ((settled.length < workers || reports.length < workers) && Date.now() < until) await sleep(10);
    const cpu = process.cpuUsage(cpu0);
    const measured = r >= 0;
    for (const s of settled)
      if (measured && s.rev === directive.rev)
        (isSolo(s.worker) ? stopSolo : stopHosted).push(s.wall - flipWall);
    for (const e of reports)
      if (measured && e.rev === directive.rev && e.timeToStopMs !== null) report.push(e.timeToStopMs);
    lastReports = reports.filter((e) => e.rev === directive.rev);
    if (TRACE) {
      while (traces.length < procs + solo && Date.now() < until) await sleep(10);
      if (measured)
        traceLines.push(
          traceFlip(
            `${workers} workers ${layout}`,
            r,
            flipWall,
            fanout,
            traces,
            settled,
            reports,
            directive.rev,
            (cpu.user + cpu.system) / 1000,
          ),
        );
    }
    const { directive: cleared } = await api.post<{ directive: Directive }>(
      `/v1/directives/${directive.id}/resume`,
      { justification: 'benchmark' },
    );
    // Let the fleet ack the resume before the next flip, so that no flip is measured on a
    // machine still busy with the previous one's acks.
    const clearedRev = cleared.clearedRev!;
    const ackedBy = Date.now() + 15_000;
    while (
      cp.fleet.list('bench', clearedRev).some((w) => w.connected && w.ackedRev < clearedRev) &&
      Date.now() < ackedBy
    )
      // Not faster: listing the fleet is work on the control plane's own loop.
      await sleep(50);
    await sleep(300);
  }
  const lagText = lag.stop();
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((ok) => c.once('exit', ok))));
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  if (TRACE) console.log(`\n${traceLines.join('\n')}`);

  const p99s: Measured['p99s'] = [];
  const row = (name: string, where: string, v: number[], expected: number) => {
    const floor = name === 'signal-to-halt' ? 'fan-out' : name === 'time-to-report' ? 'report' : null;
    p99s.push({ floor, p99: percentile(v, 99) });
    return [
      `${workers}`,
      name,
      where,
      `${v.length}/${expected}`,
      ms(percentile(v, 50)),
      ms(percentile(v, 99)),
      ms(v.length ? Math.max(...v) : Number.NaN),
      lagText,
    ];
  };
  const inProcs = `${hosted}${sim ? ' simulated' : ''} in ${procs} process${procs > 1 ? 'es' : ''}`;
  // The report floor's body: a real report of the last flip, of median size (SDK workers' settle
  // times differ in their number of digits).
  const body = (e: HaltedEvent) => ({
    directiveId: e.directiveId,
    aborted: e.aborted,
    completed: e.completed,
    observeToSettleMs: e.observeToSettleMs,
  });
  const bySize = lastReports
    .map((e) => ({ e, size: JSON.stringify(body(e)).length }))
    .sort((a, b) => a.size - b.size);
  const median = bySize[Math.floor(bySize.length / 2)]?.e;
  const reportBody = median
    ? body(median)
    : {
        directiveId: 'd_00000000-0000-0000-0000-000000000000',
        aborted: 0,
        completed: 0,
        observeToSettleMs: 0,
      };
  const done = (rows: string[][]): Measured => ({ rows, p99s, frame, rev: frameRev, token, reportBody, sim });
  const sth = percentile(stopSolo.length > 0 ? [...stopSolo, ...stopHosted] : stopHosted, 99);
  const reportRow = (where: string) => {
    const r = row('time-to-report', where, report, workers * REPS);
    r[2] = `${where} (p99 ${(percentile(report, 99) / sth).toFixed(2)}× signal-to-halt's)`;
    return r;
  };
  if (solo === 0) {
    return done([
      row('signal-to-halt', `co-hosted: ${inProcs}`, stopHosted, workers * REPS),
      reportRow(`co-hosted: ${inProcs}`),
    ]);
  }
  if (hosted === 0) {
    return done([
      row('signal-to-halt', `1/process: ${solo} processes`, stopSolo, workers * REPS),
      reportRow(`1/process: ${solo} processes`),
    ]);
  }
  return done([
    row('signal-to-halt', `1/process: ${solo} probes, beside…`, stopSolo, solo * REPS),
    row('signal-to-halt', `  …${inProcs}`, stopHosted, hosted * REPS),
    reportRow('  all of them'),
  ]);
}

/**
 * The bare floors for `workers` streams over `procs` client processes: a plain node:http server
 * in this process writes `m.frame` (its rev renumbered per rep, with as many digits) to every
 * stream, REPS times: a fan-out sample is the write loop's start → a client saw the frame's end.
 * Then, after one unmeasured write that opens the reports' connections, REPS more writes on
 * which every client POSTs a halted report like `m`'s workers (see bench/floor-client.ts): a
 * report sample is the write loop's start → the server had read and parsed that report's body.
 */
async function floor(workers: number, procs: number, m: Measured): Promise<{ fanout: Floor; report: Floor }> {
  const streams: ServerResponse[] = [];
  const reports: { rev: number; wall: number }[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'POST') {
      // A halted report, or a batch of them: read and parse the body, note the instant of each,
      // answer 204 (a batch: a 204 per report). Nothing else.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as
          { rev: number } | { reports: { rev: number }[] };
        const wall = wallNow();
        if (!('reports' in body)) {
          reports.push({ rev: body.rev, wall });
          res.writeHead(204);
          res.end();
          return;
        }
        for (const r of body.reports) reports.push({ rev: r.rev, wall });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ answers: body.reports.map(() => ({ status: 204 })) }));
      });
      return;
    }
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 10_000);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': open\n\n');
    streams.push(res);
  });
  // A stream each, and the reports' keep-alive connections: a pool per process.
  server.maxConnections = workers + (m.sim ? 64 * procs : workers) + 100;
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const revs = sameWidthRevs(m.rev, 2 * REPS);
  // One unmeasured write with reports first opens the reports' keep-alive connections, as the
  // measured workers' are open at a flip (the previous resume's acks went over them): opened in a
  // measured write, 1,000 at once, connection set-up was in the floor (one report took 1.1 s).
  const warmUp = Math.max(...revs) + 1;
  const got: { rev: number; wall: number }[] = [];
  const children: ChildProcess[] = [];
  const readies: Promise<void>[] = [];
  for (let p = 0; p < procs; p++) {
    const count = Math.floor(workers / procs) + (p < workers % procs ? 1 : 0);
    const args = [here('./floor-client.ts')];
    const child = spawn(
      PIN ? 'taskset' : process.execPath,
      PIN ? ['-c', `1-${CORES - 1}`, process.execPath, ...args] : args,
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          FLOOR_URL: url,
          COUNT: String(count),
          BASE: String(p * 10_000),
          KILLPATH_TOKEN: m.token,
          REPORT_KIND: m.sim ? 'sim' : 'sdk',
          REPORT_BODY: JSON.stringify(m.reportBody),
          REPORT_REVS: [warmUp, ...revs.slice(REPS)].join(','),
        },
      },
    );
    children.push(child);
    spawned.add(child);
    readies.push(
      readyOf(child, (line, ready) => {
        const g = JSON.parse(line) as { k: string; rev: number; wall: number };
        if (g.k === 'ready') ready();
        else if (g.k === 'got') got.push(g);
      }),
    );
  }
  await Promise.all(readies);
  await sleep(500);
  const at = `"rev":${m.rev},`;
  /** REPS writes of the frame with `revs`; returns the samples of `arrivals` and the loop delay. */
  const rounds = async (roundRevs: number[], arrivals: { rev: number; wall: number }[]) => {
    const lag = loopDelay();
    lag.start();
    const samples: number[] = [];
    for (const n of roundRevs) {
      got.length = 0;
      reports.length = 0;
      // One HTTP chunk, encoded once, written as is to every socket: the cheapest a server can send it.
      const text = m.frame.replaceAll(at, `"rev":${n},`);
      const chunk = Buffer.from(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
      const start = wallNow();
      for (const res of streams) res.socket!.write(chunk);
      const until = Date.now() + 15_000;
      const count = (list: { rev: number }[]) => list.filter((g) => g.rev === n).length;
      while (
        (count(got) < workers || (arrivals === reports && count(reports) < workers)) &&
        Date.now() < until
      )
        await sleep(10);
      for (const g of arrivals) if (g.rev === n) samples.push(g.wall - start);
      await sleep(300);
    }
    return { samples, lagText: lag.stop() };
  };
  const fanout = await rounds(revs.slice(0, REPS), got);
  await rounds([warmUp], reports);
  const report = await rounds(revs.slice(REPS), reports);
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((ok) => c.once('exit', ok))));
  for (const res of streams) res.destroy();
  server.closeAllConnections();
  await new Promise((ok) => server.close(ok));
  const inProcs = `${workers} in ${procs} process${procs > 1 ? 'es' : ''}`;
  const result = (name: string, where: string, r: { samples: number[]; lagText: string }): Floor => {
    const p99 = percentile(r.samples, 99);
    return {
      p99,
      row: [
        `${workers}`,
        name,
        where,
        `${r.samples.length}/${workers * REPS}`,
        ms(percentile(r.samples, 50)),
        ms(p99),
        ms(r.samples.length ? Math.max(...r.samples) : Number.NaN),
        r.lagText,
      ],
    };
  };
  return {
    fanout: result('bare SSE fan-out', `floor: ${inProcs}`, fanout),
    report: result(
      'bare report',
      `floor: ${inProcs}, reports of a turn together, ${m.sim ? 'a pool of 64 connections' : 'a keep-alive agent'} per process`,
      report,
    ),
  };
}

/** One floor's row and its p99. */
interface Floor {
  row: string[];
  p99: number;
}

/**
 * `count` distinct revs written with as many digits as `rev` (more only if there are not that
 * many), so a renumbered frame or report keeps the length of the real one.
 */
function sameWidthRevs(rev: number, count: number): number[] {
  for (let digits = String(rev).length; ; digits++) {
    const lo = digits === 1 ? 0 : 10 ** (digits - 1);
    if (10 ** digits - lo >= count) return Array.from({ length: count }, (_, i) => lo + i);
  }
}

/** One flip's timeline, relative to the flip (BENCH_TRACE=1). */
function traceFlip(
  what: string,
  rep: number,
  flip: number,
  fanout: Fanout | null,
  traces: ProcTrace[],
  settled: { rev: number; wall: number }[],
  reports: HaltedEvent[],
  rev: number,
  serverCpuMs: number,
): string {
  const f = (v: number) => `${v.toFixed(1)}`;
  const last = Math.max(...settled.filter((s) => s.rev === rev).map((s) => s.wall)) - flip;
  const fan =
    fanout !== null && fanout.rev === rev
      ? `loop ${f(fanout.start - flip)}–${f(fanout.end - flip)} ms, writes sent by ${f(fanout.flushed - flip)} ms`
      : '?';
  const out = [
    `${what}, flip ${rep}: fan-out ${fan}, last settle ${f(last)} ms, last report ${f(Math.max(...reports.map((e) => e.timeToStopMs ?? 0)))} ms; control plane and bench used ${f(serverCpuMs)} ms cpu until then`,
  ];
  for (const t of traces.filter((x) => x.count > 1).sort((a, b) => a.proc - b.proc)) {
    out.push(
      `  proc ${t.proc} (${t.count}): applied ${f(t.firstObserve - flip)}–${f(t.lastObserve - flip)} ms, event-loop delay max ${f(t.eldMaxMs)} ms, gc ${t.gcCount}× ${f(t.gcMs)} ms, cpu ${f(t.cpuMs)} ms`,
    );
  }
  const solo = traces.filter((t) => t.count === 1);
  if (solo.length > 0) {
    const applied = solo.map((t) => t.firstObserve - flip);
    out.push(
      `  ${solo.length} × 1/process: applied ${f(Math.min(...applied))}–${f(Math.max(...applied))} ms, event-loop delay max ${f(Math.max(...solo.map((t) => t.eldMaxMs)))} ms, gc ${solo.reduce((a, t) => a + t.gcCount, 0)}×`,
    );
  }
  return out.join('\n');
}

// Every thread of this process (GC, libuv pool) on core 0; the workers get the others.
if (PIN) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
/** The machine's load average (1, 5 and 15 minutes): the cores may be shared with other work. */
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
console.log(
  `killpath bench: ${REPS} flips per size and layout, node ${process.version}, ${process.arch}, ${CORES} cores, transport ${TRANSPORT}${PIN ? ', control plane pinned to core 0, workers to the others' : ''}, load average ${load()}\n`,
);
const rows: string[][] = [];
/** Per size, the bare report floor's p99 over the bare SSE fan-out floor's. */
const floorRatios: string[] = [];
for (const n of sizes) {
  let last: Measured | null = null;
  const measured: Measured[] = [];
  for (const layout of layoutsFor(n)) {
    process.stdout.write(`  ${n} workers, ${layout} … `);
    last = await measure(n, layout);
    measured.push(last);
    console.log('done');
  }
  process.stdout.write(`  ${n} workers, bare SSE fan-out and report floors … `);
  const procs = Math.min(4, Math.max(1, Math.ceil(n / PER_PROCESS)));
  const f = await floor(n, Number(process.env.BENCH_PROCS ?? procs), last!);
  console.log('done');
  for (const m of measured)
    m.rows.forEach((r, i) => {
      const { floor: which, p99 } = m.p99s[i]!;
      const base = which === 'fan-out' ? f.fanout.p99 : which === 'report' ? f.report.p99 : Number.NaN;
      rows.push([...r, Number.isNaN(base) ? '' : `${(p99 / base).toFixed(2)}×`]);
    });
  rows.push([...f.fanout.row, '1×'], [...f.report.row, '1×']);
  floorRatios.push(`${(f.report.p99 / f.fanout.p99).toFixed(2)}× at ${n}`);
}
console.log(
  `\n${table(['workers', 'measure', 'layout', 'samples', 'p50', 'p99', 'max', 'loop p99 / max', 'p99 × floor'], rows)}\n`,
);
console.log(`Notes:
- Every process here (control plane, load generators, one-per-process workers) shares the same
  ${CORES} cores${PIN ? ' (control plane on one, workers on the rest)' : ''}: a flip's fan-out, the workers' applies and
  their halted reports (several times the CPU of the applies) compete for them.
- A co-hosted worker also waits for the clients applied before it in its process and for the
  halted reports they send meanwhile: an artifact of the load generators, since real workers
  run one per process. The 1/process rows are what such a worker sees under the same load.
- The bare report floor is what the reports' trip back costs here with nothing else: the
  floor's clients send a halted report each, those of a turn in a process together as the
  measured workers do (same size, headers, kind of keep-alive connection), to a server that
  reads and parses them and answers. time-to-report's p99 × floor is against it.
- bare report p99 / bare SSE fan-out p99: ${floorRatios.join(', ')}. With nothing else running, a
  report's trip back costs that many fan-outs: where it is above 2, time-to-report p99 ≤ 2×
  signal-to-halt p99 holds only while signal-to-halt is itself well above its own floor, so
  judge time-to-report by its own × floor.
- BENCH_TRACE=1 prints where each flip's time went.
- Load average at the end: ${load()} (at the start: see the first line; this bench's own
  processes count in it).
`);

console.log('gate check cost:');
await new Promise<void>((ok) => {
  const g = spawn(process.execPath, [here('./gate.ts')], { stdio: 'inherit' });
  g.once('exit', () => ok());
});
