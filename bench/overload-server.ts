/**
 * The control plane of `bench:overload`, in a process of its own so that the load generators
 * never share its event loop. ADMISSION=off starts it without admission control. Prints its URL
 * and admin token as one JSON line, then once a second its own event-loop delay (p99 and max
 * over that second, ms), its resident memory (bytes) and how many requests it shed. On SIGUSR2
 * (started with --expose-gc) it collects garbage and prints its heap in use and resident memory
 * after it: what the process retains, beside what it holds. Not meant to be run by hand.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startServer } from '@killpath/server';

const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-overload-'));
const server = await startServer({
  dataDir: dir,
  port: 0,
  logLevel: 'error',
  ...(process.env.ADMISSION === 'off' ? { admission: false as const } : {}),
});
process.stdout.write(`${JSON.stringify({ k: 'ready', url: server.url, token: server.createdAdminToken })}\n`);

const eld = monitorEventLoopDelay({ resolution: 5 });
eld.enable();
const shedTotal = async () =>
  ((await server.controlPlane.metrics.shed.get()).values ?? []).reduce((n, v) => n + v.value, 0);
const tick = setInterval(async () => {
  const line = {
    k: 'tick',
    p99: eld.percentile(99) / 1e6,
    max: eld.max / 1e6,
    rss: process.memoryUsage().rss,
    shed: await shedTotal(),
  };
  eld.reset();
  process.stdout.write(`${JSON.stringify(line)}\n`);
}, 1000);

process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ k: 'heap', heapUsed: m.heapUsed, rss: m.rss })}\n`);
});

const stop = async () => {
  clearInterval(tick);
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
