/**
 * `npm run bench:takeover`: how long the leader's work (escalation steps) goes unowned when its
 * replica stops, on this machine, printed and never asserted. Two `killpath serve` replicas (in
 * this process, real HTTP servers and clocks) on one fresh PostgreSQL database:
 *
 * 1. Crash: the holder stops renewing without a word (as a SIGKILL leaves it): time from its last
 *    renewal, and from the stop, until the other replica holds the lease. Bound: ttl + poll.
 * 2. Clean shutdown: the holder hands the lease back: time until the other holds it. Floor:
 *    one poll (the other replica's next attempt).
 * 3. A halt's kill step (grace 1 s + slack) issued on the holder, which stops during the grace:
 *    how late the kill commits after its due time, and how many commit (must be 1).
 *
 * Needs PostgreSQL at `KILLPATH_TEST_PG` (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { migrateStore, startServer, type RunningServer } from '@killpath/server';

const ADMIN = process.env['KILLPATH_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TTL = 3000;
const POLL = 500;
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function waitFor(cond: () => boolean, limitMs: number): Promise<number> {
  const t0 = performance.now();
  while (!cond() && performance.now() - t0 < limitMs) await sleep(5);
  return performance.now() - t0;
}

const admin = postgres(ADMIN, { max: 1, onnotice: () => {} });
const name = `kp_bench_takeover_${randomBytes(4).toString('hex')}`;
await admin.unsafe(`CREATE DATABASE ${name}`);
const url = new URL(ADMIN);
url.pathname = `/${name}`;
const dirs: string[] = [];
const servers: RunningServer[] = [];
async function replica(): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'killpath-takeover-'));
  dirs.push(dataDir);
  const s = await startServer({
    dataDir,
    port: 0,
    storeUrl: url.toString(),
    logLevel: 'silent',
    lease: { ttlMs: TTL, pollMs: POLL },
    escalationSlackMs: 300,
  });
  servers.push(s);
  return s;
}

try {
  await migrateStore(url.toString());
  const crash: { sinceRenewal: number; sinceStop: number }[] = [];
  const clean: number[] = [];
  const late: number[] = [];
  let kills = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const a = await replica();
    const b = await replica();
    const [holder, other] = a.controlPlane.leadership.leading ? [a, b] : [b, a];
    // 1. crash-like stop
    const lease = (await holder.controlPlane.store.getLease('leader'))!;
    const stopped = Date.now();
    await holder.controlPlane.leadership.close({ release: false });
    holder.controlPlane.stop();
    await waitFor(() => other.controlPlane.leadership.leading, TTL + POLL + 5000);
    const took = Date.now();
    crash.push({ sinceRenewal: took - (lease.expiresAt - TTL), sinceStop: took - stopped });
    await holder.close();
    // 2. clean shutdown of the new holder, a fresh replica waiting
    const c = await replica();
    const t0 = performance.now();
    await other.close();
    clean.push(await waitFor(() => c.controlPlane.leadership.leading, TTL + POLL + 5000));
    void t0;
    // 3. kill step across a holder stop during the grace
    const d = await replica();
    const op = { tokenId: 'bench', name: 'bench', role: 'admin' as const, tenant: '*', agent: null };
    c.controlPlane.fleet.connected('w1', 'acme', 'bot', []);
    c.controlPlane.fleet.heartbeat('w1', 'acme', 'bot', {
      rev: 0,
      features: [],
      pid: 1,
      sinceContactMs: 0,
      runs: [
        {
          runId: `r${round}`,
          parentRunId: null,
          lineage: [],
          state: 'running',
          effects: 0,
          denied: 0,
          inFlight: 0,
        },
      ],
    });
    await c.controlPlane.presence.sync();
    const { directive: halt } = await c.controlPlane.issue(
      op,
      {
        level: 'halt',
        scope: `run:r${round}`,
        tenant: 'acme',
        graceMs: 1000,
        reason: 'bench',
        justification: 'bench',
      },
      { via: 'bench' },
    );
    await d.controlPlane.presence.sync();
    await sleep(300);
    await c.controlPlane.leadership.close({ release: false });
    c.controlPlane.stop();
    const due = Date.parse(halt.issuedAt) + 1000 + 300;
    let succ: { issuedAt: string }[] = [];
    await waitFor(() => false, 0);
    const deadline = Date.now() + TTL + POLL + 6000;
    while (Date.now() < deadline) {
      succ = await d.controlPlane.store.directiveSuccessors(halt.id);
      if (succ.length > 0) break;
      await sleep(20);
    }
    await sleep(1000);
    succ = await d.controlPlane.store.directiveSuccessors(halt.id);
    kills += succ.length;
    if (succ[0]) late.push(Date.parse(succ[0].issuedAt) - due);
    await c.close();
    await d.close();
  }
  const ms = (v: number) => `${Math.round(v)} ms`;
  console.log(
    `leader lease: ttl ${TTL} ms, poll ${POLL} ms -> takeover bound ${TTL + POLL} ms after the holder's last renewal`,
  );
  for (const [i, x] of crash.entries())
    console.log(
      `  crash ${i + 1}: taken over ${ms(x.sinceRenewal)} after its last renewal, ${ms(x.sinceStop)} after it stopped`,
    );
  console.log(
    `  clean shutdown (lease handed back; floor: one poll = ${POLL} ms): ${clean.map(ms).join(', ')}`,
  );
  console.log(
    `  kill step across a holder stop during the grace: ${kills} commit(s) for ${ROUNDS} halt(s); late after its due time by ${late.map(ms).join(', ')} (bound ${TTL + POLL} ms)`,
  );
} finally {
  for (const s of servers) await s.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${name} AND pid <> pg_backend_pid()`;
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end({ timeout: 1 });
}
