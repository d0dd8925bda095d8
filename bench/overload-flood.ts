/**
 * The flood of `bench:overload`: CONCURRENCY loops sending, as fast as answers come back,
 * telemetry batches (as a registered worker) and the read queries an on-call or a console makes
 * (fleet, audit tail, compensations). Runs until SIGTERM, then prints one JSON line with the
 * answers it got by status. Not meant to be run by hand.
 */
const url = process.env.KILLPATH_URL!;
const agentToken = process.env.AGENT_TOKEN!;
const readerToken = process.env.READER_TOKEN!;
const concurrency = Number(process.env.CONCURRENCY ?? 32);
const workerId = `flood-${process.pid}`;
const statuses: Record<string, number> = {};
let running = true;

const json = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
await fetch(`${url}/v1/workers/${workerId}/heartbeat`, {
  method: 'POST',
  headers: json(agentToken),
  body: JSON.stringify({ rev: 0, features: [], runs: [], pid: process.pid, sinceContactMs: 0 }),
});

const runs = Array.from({ length: 50 }, (_, i) => ({
  runId: `flood-${process.pid}-${i}`,
  steps: 0,
  tokens: 0,
  costUsd: 0,
  toolCalls: 0,
  toolErrors: 0,
  authDenials: 0,
  revokedDenials: 0,
  schemaViolations: 0,
  anomalies: 0,
  anomalyScore: 0,
  anomalyDetail: null,
  localHalt: null,
}));
const requests = [
  () =>
    fetch(`${url}/v1/telemetry`, {
      method: 'POST',
      headers: json(agentToken),
      body: JSON.stringify({ workerId, runs: runs.map((r) => ({ ...r, steps: r.steps++ })) }),
    }),
  () => fetch(`${url}/v1/fleet`, { headers: json(readerToken) }),
  () => fetch(`${url}/v1/audit?limit=1000`, { headers: json(readerToken) }),
  () => fetch(`${url}/v1/compensations`, { headers: json(readerToken) }),
];

async function loop(i: number) {
  for (let n = i; running; n++) {
    try {
      const res = await requests[n % requests.length]!();
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    } catch {
      statuses.error = (statuses.error ?? 0) + 1;
    }
  }
}
const loops = Array.from({ length: concurrency }, (_, i) => loop(i));
process.once('SIGTERM', async () => {
  running = false;
  await Promise.all(loops);
  process.stdout.write(`${JSON.stringify({ k: 'statuses', statuses })}\n`);
  process.exit(0);
});
