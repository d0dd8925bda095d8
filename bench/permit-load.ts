/**
 * Load generator for the permit benchmark: CONCURRENCY loops, each on its own run, doing
 * write effects (permit, then the effect, then its outcome) and reads for DURATION_MS. Without
 * RATE the loops go back to back (closed loop: the load is whatever the control plane absorbs);
 * with RATE (write effects per second for this whole process) each loop starts its writes on a
 * fixed schedule, RATE / CONCURRENCY a second, staggered across loops and processes (OFFSET, a
 * fraction of one interval), so the load is held at that rate below saturation; a loop behind
 * its schedule starts its next write at once. At the end it prints one JSON line: each write's
 * round trip (effect() call → resolved), how late each paced write started against its
 * schedule, the effects started by class with their wall-clock times, and the process's CPU
 * time (after closing the client, so every outcome was sent).
 */
import { connect, type SdkEvent } from '@killpath/sdk';

const concurrency = Number(process.env.CONCURRENCY ?? 20);
const duration = Number(process.env.DURATION_MS ?? 5000);
const rate = Number(process.env.RATE ?? 0);
const offset = Number(process.env.OFFSET ?? 0);
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
/** How late each paced write started against its schedule, in ms (empty when not paced). */
const late: number[] = [];
const begin = performance.now();
const end = begin + duration;
const base = Number(process.env.BASE ?? 0);
/** Each loop's interval between two writes when paced, in ms. */
const interval = rate > 0 ? (1000 * concurrency) / rate : 0;
await Promise.all(
  Array.from({ length: concurrency }, async (_, i) => {
    const run = client.startRun({ runId: `pb-${base + i}` });
    let due = begin + ((i + offset) * interval) / concurrency;
    while (performance.now() < end) {
      if (rate > 0) {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
        if (performance.now() >= end) break;
        late.push(Math.max(0, performance.now() - due));
        due += interval;
      }
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
  `${JSON.stringify({ k: 'done', rtt, late, starts, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
);
