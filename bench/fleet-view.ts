/**
 * `GET /v1/fleet` at issue 11 item 7's size: 1,500 workers with 320 runs each, registered by
 * heartbeats through the HTTP API of a real `killpath serve`. Prints the bytes and time of the
 * answer the console polls (the first page), of walking every page (as `killpath status` does),
 * and how long a halt issued meanwhile took, beside the same halt on an idle server (the floor,
 * same run). Point KILLPATH_BIN at another checkout's `packages/cli/bin/killpath.js` to measure
 * it (a server that does not page answers everything at once). Not part of CI.
 *
 *   node bench/fleet-view.ts
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN =
  process.env.KILLPATH_BIN ?? fileURLToPath(new URL('../packages/cli/bin/killpath.js', import.meta.url));
const WORKERS = 1500;
const RUNS = 320;
const AGENTS = ['bot-a', 'bot-b', 'bot-c'];

const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-fleet-'));
const child = spawn(
  process.execPath,
  [BIN, 'serve', '--data-dir', dir, '--port', '0', '--log-level', 'error'],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const stop = () => {
  child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stop);
try {
  const url = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /listening on (\S+)/.exec(l);
      if (m) ok(m[1]!);
    });
    child.once('exit', (c) => fail(new Error(`serve exited ${c}`)));
  });
  const admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const t0 = performance.now();
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return {
      ms: performance.now() - t0,
      bytes: Buffer.byteLength(text),
      json: text ? JSON.parse(text) : null,
    };
  };
  const tokens: string[] = [];
  for (const agent of AGENTS)
    tokens.push(
      (await call(admin, 'POST', '/v1/tokens', { role: 'agent', tenant: 'acme', agent })).json.token,
    );
  for (let i = 0; i < WORKERS; i += 20)
    await Promise.all(
      Array.from({ length: Math.min(20, WORKERS - i) }, (_, k) => {
        const w = `w-${String(i + k).padStart(4, '0')}`;
        const runs = Array.from({ length: RUNS }, (_, r) => ({
          runId: `${w}-r${r}`,
          parentRunId: null,
          lineage: [],
          state: 'running',
          effects: 0,
          denied: 0,
          inFlight: 0,
        }));
        return call(tokens[(i + k) % AGENTS.length]!, 'POST', `/v1/workers/${w}/heartbeat`, {
          rev: 0,
          features: [],
          pid: 1,
          sinceContactMs: 0,
          runs,
        });
      }),
    );
  const halt = async () => {
    const d = await call(admin, 'POST', '/v1/directives', {
      level: 'halt',
      scope: 'agent:other/idle',
      reason: 'bench',
      justification: 'bench',
    });
    await call(admin, 'POST', `/v1/directives/${d.json.directive.id}/resume`, {
      justification: 'bench',
      sameRelease: 'bench',
    });
    return d.ms;
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const floor: number[] = [];
  for (let i = 0; i < 5; i++) floor.push(await halt());
  // The console's poll: the first page (the whole fleet on a server that does not page).
  const first: { ms: number; bytes: number }[] = [];
  const during: number[] = [];
  for (let i = 0; i < 5; i++) {
    const get = call(admin, 'GET', '/v1/fleet');
    await new Promise((ok) => setTimeout(ok, 2));
    during.push(await halt());
    first.push(await get);
  }
  // Every page, as `killpath status` walks them.
  let cursor: string | null = null;
  let pages = 0;
  let bytes = 0;
  let largest = 0;
  let seen = 0;
  const t0 = performance.now();
  do {
    const r: { ms: number; bytes: number; json: { workers: unknown[]; nextCursor?: string | null } } =
      await call(admin, 'GET', `/v1/fleet?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    pages++;
    bytes += r.bytes;
    largest = Math.max(largest, r.bytes);
    seen += r.json.workers.length;
    cursor = r.json.nextCursor ?? null;
  } while (cursor !== null);
  const walkMs = performance.now() - t0;
  console.log(
    JSON.stringify(
      {
        bin: BIN,
        workers: WORKERS,
        runsPerWorker: RUNS,
        firstPage: {
          bytes: median(first.map((x) => x.bytes)),
          ms: Math.round(median(first.map((x) => x.ms))),
        },
        haltMs: { idleFloor: Math.round(median(floor)), duringFirstPage: Math.round(median(during)) },
        allPages: { pages, workers: seen, bytes, largestBytes: largest, ms: Math.round(walkMs) },
      },
      null,
      2,
    ),
  );
} finally {
  stop();
}
