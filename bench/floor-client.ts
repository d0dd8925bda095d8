/**
 * Bare clients for the floors of `npm run bench`: opens COUNT plain `node:http` streams (one
 * connection each, Nagle off, as the SDK's stream) to FLOOR_URL and prints, as JSON lines, the
 * wall-clock instant each stream received each complete event (`\n\n` seen) and the event's rev
 * (the first `"rev":N` in it, which the bench matches on). No parsing past the frame end, no apply.
 *
 * On an event whose rev is in REPORT_REVS (the bare report floor's rounds), each worker POSTs
 * `/v1/workers/{id}/halted` as its real counterpart in the measured fleet does: the same headers
 * (`authorization: Bearer KILLPATH_TOKEN`, `content-type`, `content-length`), a body built the
 * same way from REPORT_BODY (the directive id, counts and settle time of a real report) with its
 * own rev and run id, sent one event-loop turn later (every stream read first), over the same kind
 * of keep-alive connection: REPORT_KIND `sim` is bench/sim-worker.ts (worker `sim-<n>`, one pool of
 * 64 connections per process), `sdk` the SDK's nodeHttpTransport (worker id a UUID, one keep-alive
 * agent per worker). Worker n is BASE + i, as the load generators number them, so run ids and
 * paths have the real ones' length. Started by bench/run.ts; not meant to be run by hand.
 *
 * Lines are written once per event-loop turn, as bench/load-worker.ts does.
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';

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
const pool = sim ? new Agent({ keepAlive: true, maxSockets: POOL }) : null;

let lines: string[] = [];
function emit(line: string): void {
  if (lines.length === 0) setImmediate(flush);
  lines.push(line);
}
function flush(): void {
  const text = lines.join('');
  lines = [];
  process.stdout.write(text);
}

interface Worker {
  path: string;
  runId: string;
  agent: Agent;
}

/** Reports go out one event-loop turn later, as the SDK and bench/sim-worker.ts send them. */
let queued: { w: Worker; rev: number }[] = [];
function report(w: Worker, rev: number): void {
  if (queued.length === 0)
    setImmediate(() => {
      const due = queued;
      queued = [];
      for (const q of due) send(q.w, q.rev);
    });
  queued.push({ w, rev });
}

function send(w: Worker, rev: number): void {
  const payload = Buffer.from(
    JSON.stringify({
      rev,
      directiveId: template.directiveId,
      runs: [w.runId],
      aborted: template.aborted,
      completed: template.completed,
      observeToSettleMs: template.observeToSettleMs,
    }),
  );
  const req = request({
    hostname: url.hostname,
    port: url.port,
    path: w.path,
    method: 'POST',
    agent: w.agent,
    headers: { ...headers, 'content-length': payload.length },
  });
  req.on('error', (err) => process.stderr.write(`floor-client: POST ${w.path}: ${err.message}\n`));
  req.on('response', (res) => {
    if (res.statusCode !== 204)
      process.stderr.write(`floor-client: POST ${w.path}: HTTP ${res.statusCode}\n`);
    res.resume();
  });
  req.end(payload);
}

let open = 0;
for (let i = 0; i < count; i++) {
  const n = base + i;
  const w: Worker = {
    path: `/v1/workers/${sim ? `sim-${n}` : randomUUID()}/halted`,
    runId: `bench-${n}`,
    agent: pool ?? new Agent({ keepAlive: true }),
  };
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
          if (reportRevs.has(rev)) report(w, rev);
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
