/**
 * `npm run bench:replicas`: control-plane replicas on one PostgreSQL database (issue 14). Three
 * `killpath serve --store` processes on a fresh database and a fleet of BENCH_WORKERS (default
 * 1,000) SDK clients in two load processes (bench/load-worker.ts), each client given the URLs
 * and spread over them by its worker id. Prints, never asserts:
 *
 * - signal-to-halt p50/p99/max (a tenant halt committed on replica A → each worker settled,
 *   from the directive's commit stamp), with the fleet on one replica and then spread over three;
 * - commit → last replica notified: the halt's commit stamp → every replica's `/healthz` rev has
 *   it (polled from here once the issuing answer came back, so it is an upper bound);
 * - write permits/s from 16 concurrent callers against one replica, and spread over three
 *   (measured first, with no fleet connected);
 * - failover: one replica SIGKILLed, how long until each of its workers has a stream elsewhere;
 * - the leader's takeover is `npm run bench:takeover`'s figure.
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (KILLPATH_TEST_PG); the database is dropped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dropLeftovers, freshDatabase } from '../packages/server/test/pg.ts';
import { runCli, startServerProcess, type ServerProcess } from '../test/e2e/server-process.ts';

const WORKERS = Number(process.env.BENCH_WORKERS ?? '1000');
const REPS = Number(process.env.BENCH_REPS ?? '3');
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const pct = (v: number[], p: number) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (v: number[]) =>
  `p50 ${pct(v, 50).toFixed(0)} ms, p99 ${pct(v, 99).toFixed(0)} ms, max ${Math.max(...v).toFixed(0)} ms (n=${v.length})`;

interface Line {
  k: string;
  worker?: number;
  rev?: number;
  url?: string;
  wall: number;
}

const children = new Set<ChildProcess>();
const servers: ServerProcess[] = [];
const db = await freshDatabase('bench_replicas');
const dirs = [0, 1, 2].map((i) => mkdtempSync(join(tmpdir(), `kp-bench-rep-${i}-`)));

// The answers' shapes are the API's; this bench reads a few fields of them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function api(url: string, token: string, method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

function fleet(urls: string[], token: string): { lines: Line[]; ready: Promise<void>; stop(): void } {
  const lines: Line[] = [];
  const procs: ChildProcess[] = [];
  const readies: Promise<void>[] = [];
  for (let p = 0; p < 2; p++) {
    // stderr dropped: each client says "control plane unreachable" when its replica is SIGKILLed.
    const child = spawn(process.execPath, [here('./load-worker.ts')], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: {
        ...process.env,
        KILLPATH_URL: urls.join(','),
        KILLPATH_TOKEN: token,
        COUNT: String(Math.floor(WORKERS / 2) + (p < WORKERS % 2 ? 1 : 0)),
        BASE: String(p * 10_000),
        PRINT_CONNECT: '1',
      },
    });
    children.add(child);
    procs.push(child);
    readies.push(
      new Promise((ok) =>
        createInterface({ input: child.stdout! }).on('line', (l) => {
          const line = JSON.parse(l) as Line;
          if (line.k === 'ready') ok();
          else lines.push(line);
        }),
      ),
    );
  }
  return {
    lines,
    ready: Promise.all(readies).then(() => undefined),
    stop: () => {
      for (const c of procs) c.kill('SIGKILL');
    },
  };
}

/** REPS tenant halts on `urls[0]`: signal-to-halt and commit → last replica notified. */
async function flips(
  urls: string[],
  admin: string,
  f: { lines: Line[] },
): Promise<{ sth: number[]; notified: number[] }> {
  const sth: number[] = [];
  const notified: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const { directive } = await api(urls[0]!, admin, 'POST', '/v1/directives', {
      level: 'halt',
      scope: 'tenant:bench',
      reason: 'bench',
      justification: 'bench:replicas',
    });
    const committed = Date.parse(directive.issuedAt);
    const seen = new Map<string, number>();
    while (seen.size < urls.length) {
      for (const u of urls) {
        if (seen.has(u)) continue;
        const h = await api(u, admin, 'GET', '/healthz');
        if (h.rev >= directive.rev) seen.set(u, Date.now());
      }
    }
    notified.push(Math.max(...seen.values()) - committed);
    const deadline = Date.now() + 20_000;
    const settled = () => f.lines.filter((l) => l.k === 'settled' && l.rev === directive.rev);
    while (settled().length < WORKERS && Date.now() < deadline) await sleep(50);
    for (const l of settled()) sth.push(l.wall - committed);
    await api(urls[0]!, admin, 'POST', `/v1/directives/${directive.id}/resume`, { justification: 'bench' });
    await sleep(1_500);
  }
  return { sth, notified };
}

/** 16 callers asking write permits for 3 s, round robin over `urls`: permits per second. */
async function permits(urls: string[], token: string): Promise<number> {
  let granted = 0;
  const end = Date.now() + 3_000;
  await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      for (let n = 0; Date.now() < end; n++) {
        await api(urls[(i + n) % urls.length]!, token, 'POST', '/v1/permits', {
          workerId: `bench-permits-${i}`,
          runId: `bench-permits-${i}`,
          lineage: [],
          features: [],
          capability: 'crm.update',
          class: 'write',
          idempotencyKey: null,
          argsDigest: null,
          compensate: null,
        });
        granted += 1;
      }
    }),
  );
  return granted / 3;
}

try {
  const m = await runCli(['migrate', '--store', db.url]);
  if (m.code !== 0) throw new Error(m.stderr);
  for (const [i, d] of dirs.entries()) {
    if (i > 0) copyFileSync(join(dirs[0]!, 'admin.token'), join(d, 'admin.token'));
    servers.push(await startServerProcess(d, 0, ['--store', db.url]));
  }
  const urls = servers.map((s) => s.url);
  const admin = servers[0]!.adminToken;
  const token = async (args: string[]) =>
    JSON.parse(
      (
        await runCli([
          'token',
          'create',
          '--role',
          'agent',
          '--tenant',
          'bench',
          ...args,
          '--json',
          '--url',
          urls[0]!,
          '--token',
          admin,
        ])
      ).stdout,
    ).token as string;
  const fleetToken = await token([]);
  const permitToken = await token(['--agent', 'permits']);
  console.log(
    `bench:replicas — ${WORKERS} workers, ${REPS} flips per layout, 3 replicas on one fresh PostgreSQL database`,
  );

  const p1 = await permits([urls[0]!], permitToken);
  const p3 = await permits(urls, permitToken);
  const one = fleet([urls[0]!], fleetToken);
  await one.ready;
  const r1 = await flips([urls[0]!], admin, one);
  one.stop();
  await sleep(1_000);
  const three = fleet(urls, fleetToken);
  await three.ready;
  const r3 = await flips(urls, admin, three);
  console.log(`signal-to-halt, fleet on 1 replica:         ${fmt(r1.sth)}`);
  console.log(`signal-to-halt, fleet over 3 replicas:      ${fmt(r3.sth)}`);
  console.log(
    `commit → last of 3 replicas notified:       ${fmt(r3.notified)} (upper bound: polled after the issuing answer)`,
  );

  // Failover: SIGKILL replica C; each of its workers' time to a stream elsewhere.
  const onC = new Set<number>();
  for (const l of three.lines) {
    if (l.k !== 'connected') continue;
    if (l.url === urls[2]) onC.add(l.worker!);
    else onC.delete(l.worker!);
  }
  const killed = Date.now();
  await servers[2]!.crash();
  const moved = () =>
    new Map(
      three.lines
        .filter((l) => l.k === 'connected' && l.wall > killed && onC.has(l.worker!))
        .map((l) => [l.worker!, l.wall - killed]),
    );
  const deadline = Date.now() + 30_000;
  while (moved().size < onC.size && Date.now() < deadline) await sleep(100);
  console.log(
    `failover, replica SIGKILLed (${onC.size} workers on it): ${fmt([...moved().values()])}${moved().size < onC.size ? `, ${onC.size - moved().size} not moved in 30 s` : ''}`,
  );
  three.stop();

  console.log(`write permits/s, 16 callers on 1 replica:   ${p1.toFixed(0)}`);
  console.log(
    `write permits/s, 16 callers over 3 replicas: ${p3.toFixed(0)} (${(p3 / p1).toFixed(2)}× one replica; one database serialises them)`,
  );
  console.log('leader takeover after a SIGKILL: npm run bench:takeover');
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) await s.crash();
  await db.drop();
  await dropLeftovers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
