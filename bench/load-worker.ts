/**
 * Load generator for the signal-to-halt benchmark: hosts COUNT SDK clients (one stream and one
 * run each) in this process and prints each client's `halt.settled` event as a JSON line with
 * its wall-clock time. Started by bench/run.ts; not meant to be run by hand.
 *
 * With TRACE=1 it also prints, once per halt flip, the span over which its clients applied the
 * flip's delta, the largest event-loop delay meanwhile, the GC pauses that started in it and
 * the CPU time it used in the 300 ms from its first apply (applies, reports, keep-alives).
 *
 * TRANSPORT picks the SDK transport (`node`: the default, the process's shared nodeHttpTransport,
 * as the workers of one host share it, so their acks and halted reports go out together; `fetch`:
 * a fetchTransport per client).
 *
 * Lines are written once per event-loop turn, not once per settle: `record` runs inside the
 * SDK's halt path, and a synchronous pipe write per worker would bill the benchmark's own I/O
 * to the workers applied after it. The instants printed are the SDK's, taken at the settle.
 */
import { connect, fetchTransport, type Client } from '@killpath/sdk';
import { emit, flipTracer } from './bench-lines.ts';

const count = Number(process.env.COUNT);
const base = Number(process.env.BASE ?? 0);
const fetching = process.env.TRANSPORT === 'fetch';
const traced = flipTracer(base / 10_000, count);

const clients: Client[] = [];
for (let i = 0; i < count; i++) {
  const n = base + i;
  const client = connect({
    url: process.env.KILLPATH_URL!,
    token: process.env.KILLPATH_TOKEN!,
    tenant: 'bench',
    // The fleet holds at most 1,000 workers per agent.
    agent: `bot${Math.floor(n / 1000)}`,
    heartbeatMs: 60_000,
    // A load generator starved of CPU by other work on the machine runs its timers before it
    // reads the keep-alives queued meanwhile: with the default 3 s lease its streams would be
    // dropped and reopened, and the bench would measure that storm instead of the flip.
    leaseMs: 30_000,
    ...(fetching ? { transport: fetchTransport() } : {}),
    sink: {
      record(e) {
        if (traced !== null && e.type === 'rev.applied' && e.source === 'delta' && e.issued.length > 0)
          traced(e.rev, e.at);
        // bench/replicas.ts: which replica each stream is on, and when it moved.
        if (e.type === 'stream.connected' && process.env.PRINT_CONNECT === '1')
          emit(
            `${JSON.stringify({ k: 'connected', worker: n, url: e.url, wall: performance.timeOrigin + e.at })}\n`,
          );
        if (e.type === 'halt.settled') {
          emit(
            `${JSON.stringify({ k: 'settled', worker: n, rev: e.rev, directiveId: e.directiveId, wall: performance.timeOrigin + e.at })}\n`,
          );
        }
      },
    },
  });
  client.startRun({ runId: `bench-${n}` });
  clients.push(client);
}
await Promise.all(clients.map((c) => c.ready));
process.stdout.write(`${JSON.stringify({ k: 'ready', count })}\n`);
process.once('SIGTERM', () => void Promise.all(clients.map((c) => c.close())).then(() => process.exit(0)));
