/**
 * Load generator for the permit benchmark: CONCURRENCY loops, each on its own run, doing
 * write effects (permit, then the effect, then its outcome) and reads back to back for
 * DURATION_MS. Prints one JSON line per write with its round trip (effect() call → resolved)
 * and, at the end, counts of effects started by class with their wall-clock times and the
 * process's CPU time (after closing the client, so every outcome was sent).
 */
import { connect, type SdkEvent } from '@killpath/sdk';

const concurrency = Number(process.env.CONCURRENCY ?? 20);
const duration = Number(process.env.DURATION_MS ?? 5000);
const starts: { cls: string; wall: number }[] = [];
const client = connect({
  url: process.env.KILLPATH_URL!,
  token: process.env.KILLPATH_TOKEN!,
  tenant: 'bench',
  agent: 'writer',
  heartbeatMs: 60_000,
  sink: {
    record(e: SdkEvent) {
      if (e.type === 'effect.started') starts.push({ cls: e.class, wall: performance.timeOrigin + e.at });
    },
  },
});
await client.ready;
process.stdout.write(`${JSON.stringify({ k: 'ready' })}\n`);
const rtt: number[] = [];
const end = performance.now() + duration;
const base = Number(process.env.BASE ?? 0);
await Promise.all(
  Array.from({ length: concurrency }, async (_, i) => {
    const run = client.startRun({ runId: `pb-${base + i}` });
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await run.effect({ capability: 'db.write', class: 'write' }, () => undefined);
        rtt.push(performance.now() - t);
      } catch {
        // halted: keep trying so the window after the flip is exercised
        await new Promise((ok) => setTimeout(ok, 5));
      }
      try {
        await run.effect({ capability: 'db.read', class: 'read' }, () => undefined);
      } catch {
        // halted
      }
    }
  }),
);
await client.close();
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({ k: 'done', rtt, starts, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
);
