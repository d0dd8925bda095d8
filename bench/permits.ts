/**
 * `npm run bench:permits`: permit round trip and sustained permits per second on the embedded
 * store, each beside its floor measured in the same run (an idle durable SQLite commit, a
 * loopback HTTP round trip), what the store grows by per effect (audit records, bytes), then the
 * same load with a halt in the middle: write permits granted after the flip (from the database;
 * must be 0) and effects started after the flip by class (counted: writes here were permitted
 * before the flip and caught in flight; reads are bounded by observe time), and how long `audit
 * verify` takes on the store the load wrote. Printed, never asserted.
 *
 * Two loads, printed apart: saturated (closed loop: every run goes back to back, so the round
 * trip is bounded by the control plane's CPU per permit: p50 ≈ runs / throughput, Little's law)
 * and paced (open loop: the same runs and processes hold RATE write permits a second, below
 * saturation, which is how latency at a given load is read).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, request, Agent } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SqliteStore, startServer } from '@killpath/server';
import { ApiClient, ms, percentile, table } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';

const PROCS = Number(process.env.BENCH_PROCS ?? 2);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 25);
const DURATION = Number(process.env.DURATION_MS ?? 5000);
/** Write permits a second the paced phase holds, all processes together (issue 13's sustained figure). */
const RATE = Number(process.env.RATE ?? 3000);

/**
 * One load on a fresh control plane. `flipAtMs`: a halt of the writers that long after the start
 * (null: none); `rate`: write permits a second across all processes, paced (null: back to back).
 */
async function phase(flipAtMs: number | null, rate: number | null = null) {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-permits-'));
  const server = await startServer({ dataDir: dir, port: 0, logLevel: 'warn' });
  const api = new ApiClient(server.url, server.createdAdminToken!);
  const { token } = await api.post<{ token: string }>('/v1/tokens', {
    role: 'agent',
    tenant: 'bench',
    agent: 'writer',
  });
  // What the store holds before the load: the growth is measured from here.
  const { bytes: bytesBefore, audit: auditBefore } = await storeSize(dir);
  const results: {
    rtt: number[];
    late: number[];
    starts: { cls: string; wall: number }[];
    cpuMs: number;
  }[] = [];
  const readies: Promise<void>[] = [];
  const dones: Promise<void>[] = [];
  const kids = Array.from({ length: PROCS }, (_, p) =>
    spawn(process.execPath, [fileURLToPath(new URL('./permit-load.ts', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        KILLPATH_URL: server.url,
        KILLPATH_TOKEN: token,
        CONCURRENCY: String(CONCURRENCY),
        DURATION_MS: String(DURATION),
        BASE: String(p * 1000),
        // Paced: each process holds its share, its loops staggered between the other's.
        RATE: rate === null ? '0' : String(rate / PROCS),
        OFFSET: String(p / PROCS),
      },
    }),
  );
  for (const k of kids) {
    let ready!: () => void;
    let done!: () => void;
    readies.push(new Promise((ok) => (ready = ok)));
    dones.push(new Promise((ok) => (done = ok)));
    createInterface({ input: k.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as {
        k: string;
        rtt: number[];
        late: number[];
        starts: { cls: string; wall: number }[];
        cpuMs: number;
      };
      if (m.k === 'ready') ready();
      if (m.k === 'done') {
        results.push(m);
        done();
      }
    });
  }
  await Promise.all(readies);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let directive: Directive | null = null;
  let flipWall = 0;
  if (flipAtMs !== null) {
    await new Promise((ok) => setTimeout(ok, flipAtMs));
    directive = (
      await api.post<{ directive: Directive }>('/v1/directives', {
        level: 'halt',
        scope: 'agent:bench/writer',
        reason: 'bench',
        justification: 'flip under load',
      })
    ).directive;
    flipWall = performance.timeOrigin + server.controlPlane.flipTime(directive.rev)!;
  }
  await Promise.all(dones);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const serverCpuMs = (cpu.user + cpu.system) / 1000;
  await server.close();
  // Counted from the database the control plane wrote (closed: its WAL is checkpointed into the file).
  const file = join(dir, 'killpath.db');
  const db = new DatabaseSync(file, { readOnly: true });
  const count = (sql: string, ...args: number[]) => Number((db.prepare(sql).get(...args) as { n: number }).n);
  const granted = count(`SELECT COUNT(*) AS n FROM permits`);
  const afterFlip = directive ? count(`SELECT COUNT(*) AS n FROM permits WHERE rev >= ?`, directive.rev) : 0;
  const auditRecords = count(`SELECT COUNT(*) AS n FROM audit`) - auditBefore;
  db.close();
  const bytes = statSync(file).size - bytesBefore;
  // What `killpath audit verify` does with this store: the chain, the Merkle tree and every ledger
  // row against its ledger.committed record, in a worker thread.
  const store = new SqliteStore(file);
  const v0 = performance.now();
  const verified = await store.verifyLog(null);
  const verifyMs = performance.now() - v0;
  await store.close();
  if (!verified.ok) console.log(`verification failed: ${verified.problems.join('; ')}`);
  rmSync(dir, { recursive: true, force: true });
  const rtt = results.flatMap((r) => r.rtt);
  const late = results.flatMap((r) => r.late);
  const starts = results.flatMap((r) => r.starts);
  return {
    rtt,
    late,
    perSecond: flipAtMs === null ? granted / elapsed : granted / ((flipAtMs + 0) / 1000),
    effectsPerSecond:
      flipAtMs === null
        ? starts.length / elapsed
        : starts.filter((s) => s.wall < flipWall).length / (flipAtMs / 1000),
    afterFlip,
    granted,
    serverCpuMs,
    agentCpuMs: results.reduce((n, r) => n + r.cpuMs, 0),
    elapsed,
    auditPerEffect: auditRecords / Math.max(1, granted),
    bytesPerEffect: bytes / Math.max(1, granted),
    verifyMs,
    verifiedRecords: verified.records,
    writesAfterFlip: directive ? starts.filter((s) => s.cls === 'write' && s.wall > flipWall).length : 0,
    readsAfterFlip: directive ? starts.filter((s) => s.cls === 'read' && s.wall > flipWall).length : 0,
  };
}

/** Size of the database file and its audit records so far, read through a second connection. */
async function storeSize(dir: string): Promise<{ bytes: number; audit: number }> {
  const file = join(dir, 'killpath.db');
  const db = new DatabaseSync(file, { readOnly: true });
  const audit = Number((db.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n);
  db.close();
  let bytes = statSync(file).size;
  try {
    bytes += statSync(`${file}-wal`).size;
  } catch {
    // no WAL yet
  }
  return { bytes, audit };
}

/** Floor 1: one idle durable commit (WAL, synchronous=FULL, one small row), p50 and p99 over 300. */
function commitFloor(): { p50: number; p99: number } {
  const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-commit-'));
  const db = new DatabaseSync(join(dir, 'floor.db'));
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (v TEXT)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const times: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    db.exec('BEGIN IMMEDIATE');
    insert.run('x'.repeat(400));
    db.exec('COMMIT');
    times.push(performance.now() - t);
  }
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/** Floor 2: one loopback HTTP round trip (keep-alive, a small JSON POST and answer), p50 and p99 over 500. */
async function httpFloor(): Promise<{ p50: number; p99: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"permit":{"id":"p_1","status":"granted"}}');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  const agent = new Agent({ keepAlive: true });
  const body = JSON.stringify({
    runId: 'r',
    capability: 'db.write',
    class: 'write',
    lineage: [],
    features: [],
  });
  const once = () =>
    new Promise<void>((ok, fail) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/permits',
          agent,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', ok);
        },
      );
      req.on('error', fail);
      req.end(body);
    });
  const times: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t = performance.now();
    await once();
    times.push(performance.now() - t);
  }
  agent.destroy();
  await new Promise((ok) => server.close(ok));
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

console.log(
  `killpath permit bench: ${PROCS} processes x ${CONCURRENCY} runs, ${DURATION} ms, node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} (the machine may be shared)\n`,
);
const commit = commitFloor();
const http = await httpFloor();
const steady = await phase(null);
const floor50 = commit.p50 + http.p50;
const floor99 = commit.p99 + http.p99;
const cpuPerWrite = (r: { serverCpuMs: number; granted: number; elapsed: number }) =>
  `${Math.round((1000 * r.serverCpuMs) / Math.max(1, r.granted))} µs (${Math.round((100 * r.serverCpuMs) / 1000 / r.elapsed)} %)`;
console.log(
  `saturated (closed loop: every run back to back, so the round trip is queueing at the control plane's CPU, p50 ≈ ${PROCS * CONCURRENCY} runs / throughput):`,
);
console.log(
  table(
    ['measure', 'value', 'floor (same run)'],
    [
      [
        'permit round trip p50, saturated (write effect incl. outcome)',
        ms(percentile(steady.rtt, 50)),
        `${ms(floor50)} (durable commit ${ms(commit.p50)} + HTTP ${ms(http.p50)})`,
      ],
      [
        'permit round trip p99, saturated',
        ms(percentile(steady.rtt, 99)),
        `${ms(floor99)} (durable commit ${ms(commit.p99)} + HTTP ${ms(http.p99)})`,
      ],
      [
        'sustained permits per second, saturated (embedded store)',
        Math.round(steady.perSecond),
        `${Math.round(1000 / commit.p50)} durable commits/s one at a time`,
      ],
      ['effects per second (reads + writes)', Math.round(steady.effectsPerSecond), '-'],
      ['control plane CPU per write effect (and its share of one core)', cpuPerWrite(steady), '-'],
      [
        'agent processes CPU per write effect (SDK, reads included)',
        `${Math.round((1000 * steady.agentCpuMs) / Math.max(1, steady.granted))} µs`,
        '-',
      ],
      ['audit records per write effect', steady.auditPerEffect.toFixed(2), '-'],
      ['bytes stored per write effect (database file)', Math.round(steady.bytesPerEffect), '-'],
      [
        'audit verify (chain, Merkle, ledger rows) per write effect',
        `${((1000 * steady.verifyMs) / Math.max(1, steady.granted)).toFixed(1)} µs (${ms(steady.verifyMs)} for ${steady.granted} effects, ${steady.verifiedRecords} records)`,
        '-',
      ],
      [
        'so a million write effects: store growth, audit records, verify time',
        `${((steady.bytesPerEffect * 1e6) / 1e9).toFixed(2)} GB, ${Math.round(steady.auditPerEffect * 1e6).toLocaleString('en')} records, ${((steady.verifyMs / Math.max(1, steady.granted)) * 1e3).toFixed(1)} s`,
        '-',
      ],
    ],
  ),
);
const paced = await phase(null, RATE);
console.log(
  `\npaced (open loop: the same ${PROCS} x ${CONCURRENCY} runs hold ${RATE.toLocaleString('en')} write permits/s, below saturation; latency at that load):`,
);
console.log(
  table(
    ['measure', 'value', 'floor (same run)'],
    [
      [
        `permit round trip p50, paced at ${RATE.toLocaleString('en')}/s`,
        ms(percentile(paced.rtt, 50)),
        `${ms(floor50)} (durable commit + HTTP, as above)`,
      ],
      [
        `permit round trip p99, paced at ${RATE.toLocaleString('en')}/s`,
        ms(percentile(paced.rtt, 99)),
        `${ms(floor99)} (durable commit + HTTP, as above)`,
      ],
      [
        'write permits per second held (target, all processes)',
        `${Math.round(paced.perSecond)} (target ${RATE})`,
        '-',
      ],
      [
        'paced writes started late against their schedule, p50 / p99 (load generator behind)',
        `${ms(percentile(paced.late, 50))} / ${ms(percentile(paced.late, 99))}`,
        '-',
      ],
      ['control plane CPU per write effect (and its share of one core)', cpuPerWrite(paced), '-'],
    ],
  ),
);
const flip = await phase(Math.round(DURATION / 2));
console.log(
  `\nflip under load (halt of agent:bench/writer at ${Math.round(DURATION / 2)} ms, ${Math.round(flip.effectsPerSecond)} effects/s before it):`,
);
console.log(
  table(
    ['measure', 'value'],
    [
      ['write permits granted after the flip (store records; must be 0)', flip.afterFlip],
      ['write effects started after the flip (permitted before it, caught in flight)', flip.writesAfterFlip],
      ['read effects started after the flip (bounded by observe time)', flip.readsAfterFlip],
    ],
  ),
);
