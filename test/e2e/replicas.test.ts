/**
 * Three control-plane replicas on one fresh PostgreSQL database, 20 real agent processes spread
 * over them (each given all three URLs, its worker id picking where it starts):
 *
 * 1. a kill issued on replica B halts the covered agent's workers on all three replicas, and the
 *    uncovered agent's workers keep writing;
 * 2. replica C is SIGKILLed mid-load: its workers move to another replica and stay halted;
 * 3. a halt of an agent whose workers never acknowledge (they wedge) is issued with a grace, and
 *    the replica holding the leader lease (A, the first started) is SIGKILLed during the grace:
 *    the kill step fires exactly once, after A's death (so from another replica);
 * 4. C is restarted and the first kill is resumed there: the covered workers write again;
 *    `killpath audit verify` passes.
 *
 * Throughout, no covered worker starts an effect after it applied its halt, and the database
 * holds no covered permit at or after the halt's rev. Every process is ended and the database
 * dropped, even on failure.
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
}

interface Agent {
  name: string;
  agent: string;
  child: ChildProcess;
  lines: Line[];
  stderr: string[];
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address() as { port: number };
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

function ok(r: { code: number | null; stderr: string; stdout: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  return r.stdout;
}

test(
  'three replicas on one database, 20 agent processes: a kill on one halts covered workers on all, a replica SIGKILLed mid-load, the leader SIGKILLed during a grace (its kill step fires once, elsewhere), resume on a restarted replica, audit verifies',
  { skip: !available, timeout: 110_000 },
  async () => {
    const db = await freshDatabase('replicas');
    const dirs = ['a', 'b', 'c', 'c2'].map((n) => mkdtempSync(join(tmpdir(), `kp-rep-${n}-`)));
    const servers: ServerProcess[] = [];
    const agents: Agent[] = [];
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      ok(await runCli(['migrate', '--store', db.url]), 'migrate');
      const a = await startServerProcess(dirs[0]!, 0, ['--store', db.url]);
      servers.push(a);
      // A starts alone and takes the leader lease; it keeps it while it lives.
      const holder = await until('the leader lease taken', 20_000, async () => {
        const rows = await sql<{ holder: string }[]>`SELECT holder FROM leases`;
        return rows[0]?.holder;
      });
      for (const d of dirs.slice(1)) copyFileSync(join(dirs[0]!, 'admin.token'), join(d, 'admin.token'));
      const b = await startServerProcess(dirs[1]!, 0, ['--store', db.url]);
      servers.push(b);
      const cPort = await freePort();
      let c = await startServerProcess(dirs[2]!, cPort, ['--store', db.url]);
      servers.push(c);
      const urls = [a.url, b.url, c.url];
      const admin = a.adminToken;
      const cli = (args: string[], url: string) => runCli([...args, '--url', url, '--token', admin]);

      const tokens = new Map<string, string>();
      for (const agent of ['covered-bot', 'free-bot', 'stuck-bot']) {
        const out = ok(
          await cli(
            ['token', 'create', '--role', 'agent', '--tenant', 'acme', '--agent', agent, '--json'],
            b.url,
          ),
          'token',
        );
        tokens.set(agent, (JSON.parse(out) as { token: string }).token);
      }
      // 8 covered, 8 free, 4 that wedge on a halt: each starts on replica i % 3.
      const plan: [string, string][] = [
        ...Array.from({ length: 8 }, (_, i): [string, string] => ['covered-bot', `cov${i}`]),
        ...Array.from({ length: 8 }, (_, i): [string, string] => ['free-bot', `free${i}`]),
        ...Array.from({ length: 4 }, (_, i): [string, string] => ['stuck-bot', `stuck${i}`]),
      ];
      for (const [i, [agent, name]] of plan.entries()) {
        let workerId = `${name}-0`;
        for (let n = 1; spread(workerId, 3) !== i % 3; n++) workerId = `${name}-${n}`;
        const child = spawn(process.execPath, [AGENT], {
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...process.env,
            KILLPATH_URL: urls.join(','),
            KILLPATH_TOKEN: tokens.get(agent),
            KILLPATH_TENANT: 'acme',
            KILLPATH_AGENT: agent,
            FAILOVER_WORKER: workerId,
            FAILOVER_RUNS: name,
            FAILOVER_PERIOD_MS: '100',
            ...(agent === 'stuck-bot' ? { FAILOVER_STUCK: '1' } : {}),
          },
        });
        const entry: Agent = { name, agent, child, lines: [], stderr: [] };
        createInterface({ input: child.stdout! }).on('line', (l) => {
          try {
            entry.lines.push(JSON.parse(l) as Line);
          } catch {
            // not ours
          }
        });
        createInterface({ input: child.stderr! }).on('line', (l) => entry.stderr.push(l));
        agents.push(entry);
      }
      const of = (agent: string) => agents.filter((x) => x.agent === agent);
      const on = (x: Agent) => x.lines.filter((l) => l.type === 'stream.connected').at(-1)?.url;
      const landed = (x: Agent, after = 0) =>
        x.lines.filter((l) => l.k === 'landed' && l.wall > after).length;
      await until('every agent writing', 60_000, () => agents.every((x) => landed(x) > 0));
      for (const [i, url] of urls.entries())
        assert.ok(
          agents.filter((x) => on(x) === url).length >= 6,
          `replica ${i} holds its share: ${agents.map(on).join(' ')}`,
        );

      // 1. A kill on B halts covered-bot's workers on every replica.
      const kill = JSON.parse(
        ok(
          await cli(['kill', '--agent', 'acme/covered-bot', '--reason', 'replicas e2e', '--json'], b.url),
          'kill',
        ),
      ) as { directive: { id: string; rev: number } };
      const haltRev = kill.directive.rev;
      const appliedAt = new Map<Agent, number>();
      await until('the kill applied by every covered worker', 20_000, () => {
        for (const x of of('covered-bot')) {
          const l = x.lines.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= haltRev);
          if (l) appliedAt.set(x, l.wall);
        }
        return appliedAt.size === of('covered-bot').length;
      });
      const flipped = Date.now();
      await until('uncovered workers keep writing', 20_000, () =>
        of('free-bot').every((x) => landed(x, flipped) > 0),
      );

      // 2. SIGKILL C mid-load: its workers move and stay halted.
      const onC = agents.filter((x) => on(x) === c.url && x.agent !== 'stuck-bot');
      assert.ok(onC.length > 0);
      const cDied = Date.now();
      await c.crash();
      await until("C's workers on another replica", 30_000, () =>
        onC.every((x) =>
          x.lines.some((l) => l.type === 'stream.connected' && l.wall > cDied && l.url !== c.url),
        ),
      );
      const moves = onC.map(
        (x) => x.lines.find((l) => l.type === 'stream.connected' && l.wall > cDied)!.wall - cDied,
      );
      console.log(
        `# failover after SIGKILL of a replica: ${onC.length} workers, ${Math.min(...moves)}–${Math.max(...moves)} ms`,
      );
      await until('free workers moved off C write again', 20_000, () =>
        onC.filter((x) => x.agent === 'free-bot').every((x) => landed(x, cDied + 100) > 0),
      );

      // 3. Halt stuck-bot with a grace; SIGKILL the leader (A) during it.
      const halt = JSON.parse(
        ok(
          await cli(
            ['kill', '--agent', 'acme/stuck-bot', '--grace', '6000', '--reason', 'laggards', '--json'],
            b.url,
          ),
          'halt',
        ),
      ) as { directive: { id: string; issuedAt: string } };
      const halted = Date.parse(halt.directive.issuedAt);
      await until('the stuck workers wedged', 20_000, () =>
        of('stuck-bot').every((x) => x.lines.some((l) => l.k === 'wedged')),
      );
      const leaderDied = Date.now();
      assert.ok(leaderDied < halted + 6_000, 'the leader dies inside the grace');
      await a.crash();
      const step = await until('the kill step', 30_000, async () => {
        const rows = await sql<{ id: string; level: string; issued_at: string }[]>`
          SELECT id, level, issued_at FROM directives WHERE escalated_from = ${halt.directive.id}`;
        return rows.length > 0 ? rows : null;
      });
      // Give a second commit every chance to happen: there must be none.
      await new Promise((r) => setTimeout(r, 2_000));
      const steps = await sql<{ id: string; issued_at: string }[]>`
        SELECT id, issued_at FROM directives WHERE escalated_from = ${halt.directive.id}`;
      assert.equal(steps.length, 1, 'the kill step committed exactly once');
      assert.equal(step[0]!.level, 'kill');
      assert.ok(
        Date.parse(steps[0]!.issued_at) > leaderDied,
        'committed after the leader died: by another replica',
      );
      const lease = await sql<{ holder: string }[]>`SELECT holder FROM leases`;
      assert.notEqual(lease[0]?.holder, holder, 'the lease moved');
      console.log(
        `# leader SIGKILLed ${leaderDied - halted} ms into a 6000 ms grace: the kill step committed ${Date.parse(steps[0]!.issued_at) - leaderDied} ms after it, once, by another replica`,
      );

      // 4. Restart C (on its port: the workers know its URL) and resume the first kill there.
      c = await startServerProcess(dirs[3]!, cPort, ['--store', db.url]);
      servers.push(c);
      ok(
        await cli(['resume', '--agent', 'acme/covered-bot', '--reason', 'replicas e2e over'], c.url),
        'resume',
      );
      const resumed = Date.now();
      await until('covered workers write again', 30_000, () =>
        of('covered-bot').every((x) => landed(x, resumed) > 0),
      );

      // Nothing covered ran between its halt and the resume, on any replica.
      const cleared = await sql<{ cleared_rev: string }[]>`
        SELECT cleared_rev FROM directives WHERE id = ${kill.directive.id}`;
      const resumeRev = Number(cleared[0]!.cleared_rev);
      assert.ok(resumeRev > haltRev);
      for (const x of of('covered-bot')) {
        const bad = x.lines.filter(
          (l) => l.type === 'effect.started' && (l.rev ?? 0) >= haltRev && (l.rev ?? 0) < resumeRev,
        );
        assert.deepEqual(bad, [], `${x.name}: no effect between the halt and the resume`);
      }
      const granted = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM permits
        WHERE agent = 'covered-bot' AND rev >= ${haltRev} AND rev < ${resumeRev}`;
      assert.equal(granted[0]!.n, 0, 'no covered permit between the halt and the resume, from the database');

      ok(await cli(['audit', 'verify'], c.url), 'audit verify');
    } finally {
      for (const x of agents) {
        try {
          if (x.child.pid !== undefined) process.kill(-x.child.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) await s.crash();
      await sql.end({ timeout: 1 });
      await db.drop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  },
);
