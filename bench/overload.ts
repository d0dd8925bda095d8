/**
 * `npm run bench:overload`: does the operator's kill still get through when the control plane
 * is drowning? Printed, never asserted. Three phases, each on a fresh control plane in its own
 * process (bench/overload-server.ts) with WORKERS healthy SDK workers and 5 victims in another
 * (bench/overload-worker.ts):
 *
 * - `idle`: only the fleet runs; the operator issues PAIRS halts of acme/victim and resumes them.
 * - `overload`: the same while FLOOD_PROCS processes (bench/overload-flood.ts) each keep
 *   FLOOD_CONCURRENCY telemetry batches and read queries (fleet, audit tail, compensations) in
 *   flight, as fast as answers come back: several times what the server can absorb.
 * - `overload, no admission`: the same flood against a control plane without admission control,
 *   the floor the priorities are measured against.
 *
 * Per phase: the operator's request latency (p50/p99/max over the halts and resumes), lease
 * expiries among the healthy workers (their network is fine: each one is spurious), the control
 * plane's event-loop delay (p99 and max over the phase), its resident memory at the start and the
 * end, and the flood's answers by status. Goal (issue "The hot path under load"): operator p99
 * ≤ 200 ms and 0 lease expiries under overload.
 *
 * Environment: PAIRS (default 20), WORKERS (20), FLOOD_PROCS (2), FLOOD_CONCURRENCY (32),
 * PHASES (idle,overload,no-admission).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ApiClient, ms, percentile, table } from '@killpath/cli';
import type { Directive } from '@killpath/protocol';

const PAIRS = Number(process.env.PAIRS ?? 20);
const WORKERS = Number(process.env.WORKERS ?? 20);
const FLOOD_PROCS = Number(process.env.FLOOD_PROCS ?? 2);
const FLOOD_CONCURRENCY = Number(process.env.FLOOD_CONCURRENCY ?? 32);
const PHASES = (process.env.PHASES ?? 'idle,overload,no-admission').split(',');
const sleep = (t: number) => new Promise((ok) => setTimeout(ok, t));

interface Line {
  k: string;
  [key: string]: unknown;
}

/** A bench process in a process group of its own, with its JSON lines. */
class Proc {
  readonly child: ChildProcess;
  readonly lines: Line[] = [];
  readonly exited: Promise<void>;
  #waiters: { k: string; ok: (l: Line) => void }[] = [];

  constructor(script: string, env: Record<string, string>, nodeArgs: string[] = []) {
    this.child = spawn(process.execPath, [...nodeArgs, fileURLToPath(new URL(script, import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
      detached: true,
    });
    this.exited = new Promise((ok) => this.child.once('exit', () => ok()));
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        return;
      }
      this.lines.push(line);
      for (const w of this.#waiters.filter((w) => w.k === line.k)) w.ok(line);
      this.#waiters = this.#waiters.filter((w) => w.k !== line.k);
    });
  }

  /** The next line of kind `k` (or one already seen when `seen`). */
  next(k: string, timeoutMs = 60_000): Promise<Line> {
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`no "${k}" line within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        k,
        ok: (l) => {
          clearTimeout(timer);
          ok(l);
        },
      });
      this.child.once('exit', () => fail(new Error(`the process exited before a "${k}" line`)));
    });
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.child.pid!, sig);
    } catch {
      // already gone
    }
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

interface PhaseResult {
  name: string;
  operator: number[];
  expiries: number;
  staleMs: number;
  lagP99: number;
  lagMax: number;
  rssStart: number;
  rssEnd: number;
  /** Heap in use and RSS after a full collection, before the flood and after it stopped. */
  heapStart: { heap: number; rss: number };
  heapEnd: { heap: number; rss: number };
  shed: number;
  flood: Record<string, number>;
}

async function phase(name: string): Promise<PhaseResult> {
  const flooding = name !== 'idle';
  const procs: Proc[] = [];
  try {
    const server = new Proc('./overload-server.ts', { ADMISSION: name === 'no-admission' ? 'off' : 'on' }, [
      '--expose-gc',
    ]);
    /** The server's heap in use and resident memory right after a full collection: what it retains. */
    const retained = async () => {
      const heap = server.next('heap');
      server.signal('SIGUSR2');
      const l = await heap;
      return { heap: l.heapUsed as number, rss: l.rss as number };
    };
    procs.push(server);
    const ready = await server.next('ready');
    const url = ready.url as string;
    const admin = new ApiClient(url, ready.token as string);
    const mint = async (body: Record<string, string>) =>
      (await admin.post<{ token: string }>('/v1/tokens', body)).token;
    const operatorToken = await mint({ role: 'operator', tenant: 'acme', name: 'on-call' });
    const operator = new ApiClient(url, operatorToken);
    const workers = new Proc('./overload-worker.ts', {
      KILLPATH_URL: url,
      COUNT: String(WORKERS),
      HEALTHY_TOKEN: await mint({ role: 'agent', tenant: 'acme', agent: 'healthy' }),
      VICTIM_TOKEN: await mint({ role: 'agent', tenant: 'acme', agent: 'victim' }),
    });
    procs.push(workers);
    await workers.next('ready');
    await sleep(1500);
    const rssStart = (server.lines.filter((l) => l.k === 'tick').at(-1)?.rss as number | undefined) ?? 0;
    const heapStart = await retained();
    const floods = flooding
      ? await Promise.all(
          Array.from({ length: FLOOD_PROCS }, async (_, i) => {
            const p = new Proc('./overload-flood.ts', {
              KILLPATH_URL: url,
              CONCURRENCY: String(FLOOD_CONCURRENCY),
              AGENT_TOKEN: await mint({ role: 'agent', tenant: 'acme', agent: `flood-${i}` }),
              READER_TOKEN: operatorToken,
            });
            procs.push(p);
            return p;
          }),
        )
      : [];
    await sleep(2000);
    const fromTick = server.lines.length;
    const operatorMs: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      let t = performance.now();
      const { directive } = await operator.post<{ directive: Directive }>('/v1/directives', {
        level: 'halt',
        scope: 'agent:acme/victim',
        reason: `bench overload ${i}`,
        justification: 'bench:overload: the operator halts the victim while the control plane is flooded',
      });
      operatorMs.push(performance.now() - t);
      await sleep(100);
      t = performance.now();
      await operator.post(`/v1/directives/${directive.id}/resume`, {
        justification: 'bench:overload: resume',
      });
      operatorMs.push(performance.now() - t);
      await sleep(100);
    }
    const ticks = server.lines.slice(fromTick).filter((l) => l.k === 'tick');
    const expiry = workers.next('expiries');
    workers.signal('SIGUSR2');
    const { n, staleMs } = (await expiry) as Line & { n: number; staleMs: number };
    const flood: Record<string, number> = {};
    for (const f of floods) {
      const statuses = f.next('statuses');
      f.signal('SIGTERM');
      for (const [k, v] of Object.entries((await statuses).statuses as Record<string, number>))
        flood[k] = (flood[k] ?? 0) + v;
    }
    // What the server shed up to the flood's end: the span its answers above were counted over.
    const shed = (await server.next('tick')).shed as number;
    const heapEnd = await retained();
    return {
      name,
      operator: operatorMs,
      expiries: n,
      staleMs,
      lagP99: Math.max(0, ...ticks.map((l) => l.p99 as number)),
      lagMax: Math.max(0, ...ticks.map((l) => l.max as number)),
      rssStart,
      rssEnd: (ticks.at(-1)?.rss as number | undefined) ?? 0,
      heapStart,
      heapEnd,
      shed,
      flood,
    };
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
const results: PhaseResult[] = [];
for (const name of PHASES) {
  process.stdout.write(`phase ${name} …\n`);
  results.push(await phase(name));
}
console.log(
  `\nkillpath bench:overload: ${PAIRS} halts + ${PAIRS} resumes by an operator, ${WORKERS} healthy workers (lease 3 s), ` +
    `flood ${FLOOD_PROCS} × ${FLOOD_CONCURRENCY} in flight\n`,
);
console.log(
  table(
    [
      'phase',
      'operator p50 / p99 / max',
      'lease expiries (healthy)',
      'loop delay p99 / max',
      'RSS start → end',
      'after GC: heap / RSS, start → end',
      'flood answers',
      'shed',
    ],
    results.map((r) => [
      r.name,
      `${ms(percentile(r.operator, 50))} / ${ms(percentile(r.operator, 99))} / ${ms(Math.max(...r.operator))}`,
      `${r.expiries}${r.expiries > 0 ? ` (${ms(r.staleMs)} stale in all)` : ''}`,
      `${ms(r.lagP99)} / ${ms(r.lagMax)}`,
      `${mb(r.rssStart)} → ${mb(r.rssEnd)}`,
      `${mb(r.heapStart.heap)} / ${mb(r.heapStart.rss)} → ${mb(r.heapEnd.heap)} / ${mb(r.heapEnd.rss)}`,
      Object.entries(r.flood)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || '-',
      String(r.shed),
    ]),
  ),
);
const idle = results.find((r) => r.name === 'idle');
const over = results.find((r) => r.name === 'overload');
if (idle && over)
  console.log(
    `\noperator p99 under overload ${ms(percentile(over.operator, 99))} vs idle ${ms(percentile(idle.operator, 99))} ` +
      `(${(percentile(over.operator, 99) / Math.max(percentile(idle.operator, 99), 0.001)).toFixed(1)}×; goal ≤ 200 ms); ` +
      `spurious lease expiries ${over.expiries} (goal 0)`,
  );
