/**
 * A worker's failover across control-plane replicas, end to end: two real `killpath serve`
 * processes on one fresh PostgreSQL database, a URL where nothing listens, and a real worker
 * process given all three (`KILLPATH_URL=dead,A,B`, its worker id starting at the dead one).
 * It must pass over the dead URL to A; a halt of one of its runs is issued on A; B starts (on
 * the port its URL names) and A is SIGKILLed; the worker must end up on B, keep its uncovered
 * run working there, and never start an effect of the covered run after it applied the halt,
 * nor be granted a permit for it at or after the halt's rev (checked in the database).
 *
 * B starts after the halt committed, so its switchboard holds the halt from its first read:
 * what this test proves is the worker's side (failover, resync from a snapshot, fail-closed
 * meanwhile). A flip on one running replica reaching another is the switchboard view's test.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import postgres from 'postgres';
import { spread } from '@killpath/sdk';
import { dropLeftovers, freshDatabase, requirePostgres } from '../../packages/server/test/pg.ts';
import { runCli, startServerProcess, until, type ServerProcess } from './server-process.ts';

const AGENT = fileURLToPath(new URL('./fixtures/failover-agent.ts', import.meta.url));

const available = await requirePostgres();
after(dropLeftovers);

interface Line {
  k: string;
  wall: number;
  type?: string;
  url?: string;
  runId?: string;
  run?: string;
  rev?: number;
  issued?: string[];
}

/** A loopback URL where nothing listens (a port taken and let go). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address() as { port: number };
  await new Promise<void>((ok) => s.close(() => ok()));
  return `http://127.0.0.1:${port}`;
}

test(
  'a worker given a dead URL and two replicas on one database passes over the dead one, fails over when its replica is SIGKILLed, and never runs a covered effect',
  { skip: !available, timeout: 110_000 },
  async () => {
    const db = await freshDatabase('failover');
    const dirs = [mkdtempSync(join(tmpdir(), 'kp-fo-a-')), mkdtempSync(join(tmpdir(), 'kp-fo-b-'))];
    const servers: ServerProcess[] = [];
    let agent: ChildProcess | null = null;
    try {
      const migrated = await runCli(['migrate', '--store', db.url]);
      assert.equal(migrated.code, 0, migrated.stderr);
      const a = await startServerProcess(dirs[0]!, 0, ['--store', db.url]);
      servers.push(a);
      // The first replica created the admin token; the second uses the same one.
      copyFileSync(join(dirs[0]!, 'admin.token'), join(dirs[1]!, 'admin.token'));
      const bUrl = await deadUrl();
      const admin = a.adminToken;
      const minted = await runCli([
        'token',
        'create',
        '--role',
        'agent',
        '--tenant',
        'acme',
        '--agent',
        'bot',
        '--json',
        '--url',
        `${bUrl},${a.url}`,
        '--token',
        admin,
      ]);
      assert.equal(minted.code, 0, minted.stderr);
      const agentToken = (JSON.parse(minted.stdout) as { token: string }).token;

      const dead = await deadUrl();
      const urls = [dead, a.url, bUrl];
      let workerId = 'w0';
      for (let i = 1; spread(workerId, urls.length) !== 0; i++) workerId = `w${i}`;
      const lines: Line[] = [];
      agent = spawn(process.execPath, [AGENT], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          KILLPATH_URL: urls.join(','),
          KILLPATH_TOKEN: agentToken,
          KILLPATH_TENANT: 'acme',
          KILLPATH_AGENT: 'bot',
          FAILOVER_WORKER: workerId,
          FAILOVER_RUNS: 'covered,free',
        },
      });
      let stderr = '';
      agent.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      createInterface({ input: agent.stdout! }).on('line', (l) => {
        try {
          lines.push(JSON.parse(l) as Line);
        } catch {
          // not ours
        }
      });
      const connectedTo = (url: string) =>
        lines.find((l) => l.type === 'stream.connected' && l.url === url) ?? null;
      const first = await until('the worker on a replica', 30_000, () =>
        lines.find((l) => l.type === 'stream.connected'),
      );
      assert.equal(first.url, a.url, `passed over the dead URL to the next one (stderr: ${stderr})`);
      assert.ok(
        lines.some((l) => l.type === 'stream.error' && l.wall <= first.wall),
        'the dead URL was tried first',
      );
      await until('both runs writing', 20_000, () =>
        ['covered', 'free'].every((r) => lines.some((l) => l.k === 'landed' && l.run === r)),
      );

      const kill = await runCli([
        'kill',
        '--tenant',
        'acme',
        '--run',
        'covered',
        '--reason',
        'failover e2e',
        '--json',
        '--url',
        a.url,
        '--token',
        admin,
      ]);
      assert.equal(kill.code, 0, kill.stderr);
      const halt = (JSON.parse(kill.stdout) as { directive: { id: string; rev: number } }).directive;
      const applied = await until('the halt applied on the worker', 20_000, () =>
        lines.find((l) => l.type === 'rev.applied' && (l.rev ?? 0) >= halt.rev),
      );

      const b = await startServerProcess(dirs[1]!, Number(new URL(bUrl).port), ['--store', db.url]);
      servers.push(b);
      assert.equal(b.url, bUrl);
      await a.crash();
      const onB = await until('the worker on B', 30_000, () => connectedTo(b.url));
      const freeOnB = lines.filter((l) => l.k === 'landed' && l.run === 'free').length;
      await until('uncovered writes go on through B', 20_000, () =>
        lines.filter((l) => l.k === 'landed' && l.run === 'free' && l.wall > onB.wall).length > 3
          ? true
          : lines.filter((l) => l.k === 'landed' && l.run === 'free').length > freeOnB + 3,
      );
      // Let the covered run keep trying for a while on B.
      await new Promise((ok) => setTimeout(ok, 1_000));

      const covered = lines.filter(
        (l) => l.type === 'effect.started' && l.runId === 'covered' && l.wall > applied.wall,
      );
      assert.deepEqual(covered, [], 'no effect of the covered run started after the halt, on any replica');
      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM permits WHERE run_id = 'covered' AND rev >= ${halt.rev}`;
        assert.equal(row!.n, 0, 'no permit for the covered run at or after the halt rev');
      } finally {
        await sql.end({ timeout: 1 });
      }
      const last = lines.filter((l) => l.type === 'stream.connected').at(-1);
      assert.equal(last?.url, b.url, 'it ends on the live replica');
    } finally {
      if (agent?.pid !== undefined && agent.exitCode === null) {
        try {
          process.kill(-agent.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) await s.crash();
      await db.drop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  },
);
