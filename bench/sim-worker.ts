/**
 * Simulated stream clients for `npm run bench` at sizes where full SDK clients do not fit a
 * 2-core machine (10,000): COUNT workers in this process, each with its own stream connection
 * (`GET /v1/stream`, Nagle off, as the SDK opens it), parsing every event as JSON and keeping its
 * rev. On a delta that issues a halt or kill of its tenant it settles at once (it has no effect in
 * flight) and prints the instant as the load generator does, then reports `halted` for its run;
 * on any other delta it acks the rev. Each registers one run (`POST /v1/runs`) once its snapshot
 * came, as an SDK worker does when it starts a run, and names it in its halted report. Reports go
 * over one keep-alive pool per process (up to POOL connections), not one connection per worker,
 * and those of one turn together, as the SDK's workers of one process send them. Opens its streams POOL at a time. Prints
 * `ready` once every stream has its snapshot; with TRACE=1, a trace line per halt flip as the SDK
 * load generators do (bench/bench-lines.ts). Started by bench/run.ts; not meant to be run by hand.
 */
import { Agent, request } from 'node:http';
import { emit, flipTracer, turnReports } from './bench-lines.ts';

const count = Number(process.env.COUNT);
const base = Number(process.env.BASE ?? 0);
const url = new URL(process.env.KILLPATH_URL!);
const token = process.env.KILLPATH_TOKEN!;
const POOL = 64;
const agent = new Agent({ keepAlive: true, maxSockets: POOL });
/**
 * Registrations go over connections of their own, closed after each: the report pool's would sit
 * idle from start-up to the first flip, past the server's keep-alive timeout, and a report sent
 * on one the server is closing fails (ECONNRESET).
 */
const setup = new Agent({ keepAlive: false, maxSockets: POOL });
const traced = flipTracer(base / 10_000, count);

/**
 * Reports go out one event-loop turn later, as the SDK sends them (`ReportChannel`): every stream
 * read first, then the turn's reports of this process's workers (one token) together, as
 * `POST /v1/workers/reports` of up to 256; a lone one on its own route.
 */
type Report =
  { kind: 'ack'; workerId: string; rev: number } | ({ kind: 'halted'; workerId: string } & Halted);
interface Halted {
  rev: number;
  directiveId: string;
  runs: string[];
  aborted: number;
  completed: number;
  observeToSettleMs: number;
}
const report = turnReports<Report>(
  ({ kind, workerId, ...body }) => send(`/v1/workers/${workerId}/${kind}`, body, 204),
  (reports) => send('/v1/workers/reports', { reports }, 200),
);

/**
 * POSTs `body` to `path` over the report pool (or `over`); a status other than `ok` is printed.
 * `done` runs once answered.
 */
function send(path: string, body: unknown, ok: number, done?: () => void, over: Agent = agent): void {
  const payload = Buffer.from(JSON.stringify(body));
  const req = request({
    hostname: url.hostname,
    port: url.port,
    path,
    method: 'POST',
    agent: over,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'content-length': payload.length,
    },
  });
  req.on('error', (err) => process.stderr.write(`sim-worker: POST ${path}: ${err.message}\n`));
  req.on('response', (res) => {
    if (res.statusCode !== ok) process.stderr.write(`sim-worker: POST ${path}: HTTP ${res.statusCode}\n`);
    if (ok !== 200) {
      res.resume();
      res.on('end', () => done?.());
      return;
    }
    // A batch's answer is one status per report: a refused one is as loud as a refused request.
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      if (res.statusCode !== ok) return;
      const { answers } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        answers: { status: number }[];
      };
      const bad = answers.filter((a) => a.status !== 204);
      if (bad.length > 0)
        process.stderr.write(
          `sim-worker: POST ${path}: ${bad.length} reports refused (HTTP ${bad[0]!.status})\n`,
        );
    });
  });
  req.end(payload);
}

interface Delta {
  type: string;
  rev: number;
  issued?: { id: string; level: string; tenant: string | null };
}

function open(n: number): Promise<void> {
  const workerId = `sim-${n}`;
  const runId = `bench-${n}`;
  const agentName = `bot${Math.floor(n / 1000)}`;
  let rev = -1;
  return new Promise((ready) => {
    const req = request({
      hostname: url.hostname,
      port: url.port,
      path: `/v1/stream?worker=${workerId}&tenant=bench&agent=${agentName}`,
      agent: false,
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    });
    req.on('socket', (s) => s.setNoDelay(true));
    req.on('error', (err) => process.stderr.write(`sim-worker: stream ${workerId}: ${err.message}\n`));
    req.on('response', (res) => {
      res.setEncoding('utf8');
      let tail = '';
      res.on('data', (chunk: string) => {
        let text = tail + chunk;
        let end = text.indexOf('\n\n');
        while (end !== -1) {
          const event = text.slice(0, end);
          text = text.slice(end + 2);
          end = text.indexOf('\n\n');
          const at = event.indexOf('data: ');
          if (at === -1) continue;
          const msg = JSON.parse(event.slice(at + 6)) as Delta;
          if (msg.type === 'snapshot') {
            rev = msg.rev;
            // Its run, registered as the SDK's startRun does: the control plane knows the worker
            // hosts it, so its halted report acknowledges the stop for it (written to the store).
            send(
              '/v1/runs',
              { runId, parentRunId: null, lineage: [], features: [], workerId },
              201,
              ready,
              setup,
            );
          } else if (msg.type === 'delta') {
            if (msg.rev !== rev + 1)
              process.stderr.write(`sim-worker: ${workerId} rev gap ${rev} → ${msg.rev}\n`);
            rev = msg.rev;
            const d = msg.issued;
            if (
              d &&
              (d.level === 'halt' || d.level === 'kill') &&
              (d.tenant === null || d.tenant === 'bench')
            ) {
              const at = performance.now();
              traced?.(msg.rev, at);
              const wall = performance.timeOrigin + at;
              emit(`${JSON.stringify({ k: 'settled', worker: n, rev: msg.rev, wall })}\n`);
              report({
                kind: 'halted',
                workerId,
                rev: msg.rev,
                directiveId: d.id,
                runs: [runId],
                aborted: 0,
                completed: 0,
                observeToSettleMs: 0,
              });
            } else {
              report({ kind: 'ack', workerId, rev: msg.rev });
            }
          }
        }
        tail = text;
      });
    });
    req.end();
  });
}

for (let i = 0; i < count; i += POOL) {
  await Promise.all(Array.from({ length: Math.min(POOL, count - i) }, (_, j) => open(base + i + j)));
}
process.stdout.write(`${JSON.stringify({ k: 'ready', count })}\n`);
process.once('SIGTERM', () => process.exit(0));
