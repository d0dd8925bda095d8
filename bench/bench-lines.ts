/**
 * What the bench's worker processes (bench/load-worker.ts, bench/sim-worker.ts,
 * bench/floor-client.ts) share: JSON lines to the bench, written once per event-loop turn, the
 * per-flip trace of BENCH_TRACE=1, and reports sent as the SDK's `ReportChannel` sends them. Not
 * meant to be run by hand.
 */
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';

let lines: string[] = [];

/**
 * Queues one line for stdout; the turn's lines go out in one write. A synchronous pipe write per
 * line would bill the benchmark's own I/O to the workers handled after it.
 */
export function emit(line: string): void {
  if (lines.length === 0) setImmediate(flush);
  lines.push(line);
}

function flush(): void {
  const text = lines.join('');
  lines = [];
  process.stdout.write(text);
}

/**
 * With TRACE=1, a function to call as each worker of this process applies a halt flip's delta
 * (rev, monotonic instant): 300 ms after the first, it prints one `trace` line with the span of
 * the applies, the largest event-loop delay meanwhile, the GC pauses that started in it and the
 * CPU this process used in those 300 ms (applies, reports, keep-alives). Null without TRACE.
 */
export function flipTracer(proc: number, count: number): ((rev: number, at: number) => void) | null {
  if (process.env.TRACE !== '1') return null;
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const gcs: { start: number; ms: number }[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, ms: e.duration });
  }).observe({ entryTypes: ['gc'] });
  let flip: { rev: number; first: number; last: number; cpu: NodeJS.CpuUsage } | null = null;
  return (rev, at) => {
    if (flip !== null && flip.rev === rev) {
      flip.last = at;
      return;
    }
    const f = (flip = { rev, first: at, last: at, cpu: process.cpuUsage() });
    eld.reset();
    gcs.length = 0;
    setTimeout(() => {
      const inFlip = gcs.filter((g) => g.start >= f.first - 1 && g.start <= f.last);
      const cpu = process.cpuUsage(f.cpu);
      emit(
        `${JSON.stringify({
          k: 'trace',
          rev: f.rev,
          proc,
          count,
          firstObserve: performance.timeOrigin + f.first,
          lastObserve: performance.timeOrigin + f.last,
          eldMaxMs: eld.max / 1e6,
          gcCount: inFlip.length,
          gcMs: inFlip.reduce((a, g) => a + g.ms, 0),
          cpuMs: (cpu.user + cpu.system) / 1000,
        })}\n`,
      );
    }, 300);
  };
}

/** Most reports in one `POST /v1/workers/reports` (the control plane takes up to 256). */
const MAX_REPORTS = 256;

/**
 * Reports sent as the SDK's `ReportChannel` sends a process's reports: the ones queued in a turn
 * go out one event-loop turn later (every stream read first), a lone one through `alone`, more in
 * batches of up to 256 through `batch`. Returns the function that queues one.
 */
export function turnReports<T>(alone: (r: T) => void, batch: (rs: T[]) => void): (r: T) => void {
  let queued: T[] = [];
  return (r) => {
    if (queued.length === 0)
      setImmediate(() => {
        const due = queued;
        queued = [];
        if (due.length === 1) alone(due[0]!);
        else for (let i = 0; i < due.length; i += MAX_REPORTS) batch(due.slice(i, i + MAX_REPORTS));
      });
    queued.push(r);
  };
}
