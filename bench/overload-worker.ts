/**
 * Healthy workers of `bench:overload`: COUNT SDK clients of acme/healthy (one run each, a read
 * every 100 ms) and VICTIMS of acme/victim, the agent the operator halts and resumes. Every
 * 50 ms each healthy run checks its gate; a run that finds itself `stale` (its lease expired: no
 * fresh switchboard) counts one lease expiry. Prints `{"k":"ready"}` once connected, then on
 * SIGUSR2 (and at exit) `{"k":"expiries","n":N,"staleMs":MS}`. Not meant to be run by hand.
 */
import { connect, type Client } from '@killpath/sdk';

const url = process.env.KILLPATH_URL!;
const count = Number(process.env.COUNT ?? 20);
const victims = Number(process.env.VICTIMS ?? 5);
const clients: Client[] = [];
let expiries = 0;
let staleMs = 0;

function start(agent: string, token: string) {
  const client = connect({ url, token, tenant: 'acme', agent, leaseMs: 3000, heartbeatMs: 1000 });
  clients.push(client);
  return client;
}

const healthy = Array.from({ length: count }, () => start('healthy', process.env.HEALTHY_TOKEN!));
const victimClients = Array.from({ length: victims }, () => start('victim', process.env.VICTIM_TOKEN!));
await Promise.all(clients.map((c) => c.ready));
const runs = healthy.map((c, i) => c.startRun({ runId: `healthy-${process.pid}-${i}` }));
for (const [i, c] of victimClients.entries()) c.startRun({ runId: `victim-${process.pid}-${i}` });

const stale = new Map<number, number>();
const checker = setInterval(() => {
  const now = performance.now();
  for (const [i, run] of runs.entries()) {
    const v = run.check('search', 'read');
    const isStale = v.kind === 'deny' && v.reason === 'stale';
    if (isStale && !stale.has(i)) {
      expiries += 1;
      stale.set(i, now);
    } else if (!isStale && stale.has(i)) {
      staleMs += now - stale.get(i)!;
      stale.delete(i);
    }
  }
}, 50);
const reads = setInterval(() => {
  for (const run of runs)
    void run.effect({ capability: 'search', class: 'read' }, () => 'ok').catch(() => {});
}, 100);

const report = () =>
  process.stdout.write(`${JSON.stringify({ k: 'expiries', n: expiries, staleMs: Math.round(staleMs) })}\n`);
process.on('SIGUSR2', report);
process.stdout.write(`${JSON.stringify({ k: 'ready' })}\n`);
process.once('SIGTERM', async () => {
  clearInterval(checker);
  clearInterval(reads);
  report();
  await Promise.all(clients.map((c) => c.close()));
  process.exit(0);
});
