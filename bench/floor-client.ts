/**
 * Bare clients for the floors of `npm run bench`: opens COUNT plain `node:http` streams (one
 * connection each, Nagle off, as the SDK's stream) to FLOOR_URL and prints, as JSON lines, the
 * wall-clock instant each stream received each complete event (`\n\n` seen) and the event's rev
 * (the first `"rev":N` in it, which the bench matches on). No parsing past the frame end, no apply.
 *
 * On an event whose rev is in REPORT_REVS (the bare report floor's rounds), each worker reports
 * halted as its real counterpart in the measured fleet does: the same headers
 * (`authorization: Bearer KILLPATH_TOKEN`, `content-type`, `content-length`), a report built the
 * same way from REPORT_BODY (the directive id, counts and settle time of a real report) with its
 * own rev and run id, sent one event-loop turn later (every stream read first) together with the
 * other reports of the turn (`POST /v1/workers/reports`, as the SDK's `ReportChannel`), over the
 * same kind of keep-alive connection: REPORT_KIND `sim` is bench/sim-worker.ts (worker `sim-<n>`,
 * one pool of 64 connections per process), `sdk` the SDK's shared nodeHttpTransport (worker id a
 * UUID, one keep-alive agent per process). Worker n is BASE + i, as the load generators number them, so run ids and
 * paths have the real ones' length. Started by bench/run.ts; not meant to be run by hand.
 *
 * Lines are written once per event-loop turn, as bench/load-worker.ts does.
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { emit, turnReports } from './bench-lines.ts';

const count = Number(process.env.COUNT);
const base = Number(process.env.BASE ?? 0);
const url = new URL(process.env.FLOOR_URL!);
const reportRevs = new Set((process.env.REPORT_REVS ?? '').split(',').filter(Boolean).map(Number));
const sim = process.env.REPORT_KIND === 'sim';
const template = JSON.parse(process.env.REPORT_BODY ?? '{}') as {
  directiveId: string;
  aborted: number;
  completed: number;
  observeToSettleMs: number;
};
const headers = { authorization: `Bearer ${process.env.KILLPATH_TOKEN}`, 'content-type': 'application/json' };
const POOL = 64;
// Simulated workers share a pool of 64 connections per process; SDK ones the process's default
// transport's keep-alive agent.
const agent = new Agent(sim ? { keepAlive: true, maxSockets: POOL } : { keepAlive: true });

interface Worker {
  id: string;
  runId: string;
}

/**
 * Reports go out one event-loop turn later, as the SDK and bench/sim-worker.ts send them: the
 * turn's reports of this process together, as `POST /v1/workers/reports` of up to 256 (a lone one
 * on its own route), over the process's one keep-alive agent.
 */
const report = turnReports<{ w: Worker; rev: number }>(
  ({ w, rev }) => send(`/v1/workers/${w.id}/halted`, halted(w, rev)),
  (due) =>
    send('/v1/workers/reports', {
      reports: due.map(({ w, rev }) => ({ kind: 'halted', workerId: w.id, ...halted(w, rev) })),
    }),
);

function halted(w: Worker, rev: number) {
  return {
    rev,
    directiveId: template.directiveId,
    runs: [w.runId],
    aborted: template.aborted,
    completed: template.completed,
    observeToSettleMs: template.observeToSettleMs,
  };
}

function send(path: string, body: unknown): void {
  const payload = Buffer.from(JSON.stringify(body));
  const req = request({
    hostname: url.hostname,
    port: url.port,
    path,
    method: 'POST',
    agent,
    headers: { ...headers, 'content-length': payload.length },
  });
  req.on('error', (err) => process.stderr.write(`floor-client: POST ${path}: ${err.message}\n`));
  req.on('response', (res) => {
    if (res.statusCode !== 204 && res.statusCode !== 200)
      process.stderr.write(`floor-client: POST ${path}: HTTP ${res.statusCode}\n`);
    res.resume();
  });
  req.end(payload);
}

let open = 0;
for (let i = 0; i < count; i++) {
  const n = base + i;
  const w: Worker = { id: sim ? `sim-${n}` : randomUUID(), runId: `bench-${n}` };
  const req = request({ hostname: url.hostname, port: url.port, path: '/', agent: false });
  req.on('socket', (s) => s.setNoDelay(true));
  req.on('response', (res) => {
    res.setEncoding('utf8');
    let tail = '';
    let first = true;
    res.on('data', (chunk: string) => {
      const at = performance.timeOrigin + performance.now();
      let text = tail + chunk;
      let end = text.indexOf('\n\n');
      while (end !== -1) {
        if (first) {
          first = false;
          if (++open === count) process.stdout.write(`${JSON.stringify({ k: 'ready', count })}\n`);
        } else {
          // The frame's rev is what the bench matches arrivals on.
          const rev = Number(/"rev":(\d+)/.exec(text.slice(0, end))?.[1]);
          emit(`${JSON.stringify({ k: 'got', rev, wall: at })}\n`);
          if (reportRevs.has(rev)) report({ w, rev });
        }
        text = text.slice(end + 2);
        end = text.indexOf('\n\n');
      }
      tail = text;
    });
  });
  req.end();
}
process.once('SIGTERM', () => process.exit(0));
