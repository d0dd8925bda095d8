/**
 * A randomized model test of control-plane replicas on one PostgreSQL database (issue 14):
 * fast-check command sequences run against three real `killpath serve --store` processes, each
 * reaching the database through its own TCP proxy on loopback (so a replica can be partitioned
 * from the database), and checked against a sequential model.
 *
 * Commands: issue a halt of a run on some replica (with an idempotency key; a key once used is
 * re-issued with the same content), resume it, ask a write permit for a run, SIGKILL a replica,
 * restart it (then `killpath audit verify` through it must pass), partition a replica from the
 * database, heal it. A replica that is down or partitioned must refuse (never answer 2xx) and
 * change nothing. After each sequence, from the database: every acknowledged directive is there
 * in the state the model says (none lost), each directive was issued and cleared at most once in
 * the audit log (no duplicate transition), no permit was granted to a run at a rev where a halt
 * covered it, and the audit log verifies.
 *
 * `test/e2e/replicas-model.test.ts` runs a fixed few seeds; `npm run soak` runs many more
 * (`node test/e2e/replicas-model.ts [runs]`) and prints how many ran.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import postgres from 'postgres';
import { dropLeftovers, freshDatabase, PG_ADMIN_URL } from '../../packages/server/test/pg.ts';
import { runCli, startServerProcess, type ServerProcess } from './server-process.ts';

const RUNS = ['r1', 'r2'] as const;
type RunId = (typeof RUNS)[number];

/** A TCP proxy to PostgreSQL that can be cut (every connection reset, new ones refused) and healed. */
class DbProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut = false;
  port = 0;
  constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => {
      if (this.#cut) return void client.destroy();
      const upstream = connect(target);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((ok) => this.#server.listen(0, '127.0.0.1', ok));
    this.port = (this.#server.address() as { port: number }).port;
  }
  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
  }
  heal(): void {
    this.#cut = false;
  }
  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((ok) => this.#server.close(() => ok()));
  }
}

interface Model {
  /** Per run: the id of the halt the model holds active, or null. */
  active: Record<RunId, string | null>;
  /** Idempotency key -> the directive it was acknowledged with. */
  keys: Map<string, string>;
  /** Every acknowledged directive and whether it was acknowledged cleared. */
  acked: Map<string, { run: RunId; cleared: boolean }>;
  /** Per replica: up and reachable ('ok'), SIGKILLed ('down'), or cut from the database ('cut'). */
  replicas: ('ok' | 'down' | 'cut')[];
}

interface Real {
  servers: (ServerProcess | null)[];
  proxies: DbProxy[];
  dirs: string[];
  ports: number[];
  storeUrls: string[];
  admin: string;
  agentToken: string;
}

async function http(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown } | { error: string }> {
  try {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? null : (JSON.parse(text) as unknown) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const urlOf = (r: Real, i: number) => `http://127.0.0.1:${r.ports[i]}`;

/** A request to a replica that is down or cut must not succeed. */
function refused(res: { status: number } | { error: string }, what: string): void {
  if ('error' in res) return;
  assert.ok(res.status >= 500, `${what}: a replica that is down or cut answered ${res.status}`);
}

class Issue implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  readonly runId: RunId;
  readonly key: number;
  constructor(replica: number, runId: RunId, key: number) {
    this.replica = replica;
    this.runId = runId;
    this.key = key;
  }
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const key = `${this.runId}-k${this.key}`;
    const res = await http(
      urlOf(r, this.replica),
      r.admin,
      'POST',
      '/v1/directives',
      { level: 'halt', scope: `run:${this.runId}`, tenant: 'acme', reason: 'model', justification: 'model' },
      { 'idempotency-key': key },
    );
    if (m.replicas[this.replica] !== 'ok') return refused(res, this.toString());
    assert.ok(!('error' in res) && res.status < 300, `${this} failed: ${JSON.stringify(res)}`);
    const id = (res.json as { directive: { id: string } }).directive.id;
    const before = m.keys.get(key);
    if (before !== undefined) assert.equal(id, before, `${this}: a re-issued key answers its directive`);
    else if (m.active[this.runId] !== null)
      assert.equal(id, m.active[this.runId], `${this}: the same halt again converges on the active one`);
    m.keys.set(key, id);
    if (before === undefined && m.active[this.runId] === null) {
      m.active[this.runId] = id;
      m.acked.set(id, { run: this.runId, cleared: false });
    }
  }
  toString = () => `issue(${this.replica}, ${this.runId}, k${this.key})`;
}

class Resume implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  readonly runId: RunId;
  constructor(replica: number, runId: RunId) {
    this.replica = replica;
    this.runId = runId;
  }
  check = (m: Readonly<Model>) => m.active[this.runId] !== null;
  async run(m: Model, r: Real): Promise<void> {
    const id = m.active[this.runId]!;
    const res = await http(urlOf(r, this.replica), r.admin, 'POST', `/v1/directives/${id}/resume`, {
      justification: 'model',
    });
    if (m.replicas[this.replica] !== 'ok') return refused(res, this.toString());
    assert.ok(!('error' in res) && res.status === 200, `${this} failed: ${JSON.stringify(res)}`);
    m.active[this.runId] = null;
    m.acked.get(id)!.cleared = true;
  }
  toString = () => `resume(${this.replica}, ${this.runId})`;
}

class Permit implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  readonly runId: RunId;
  constructor(replica: number, runId: RunId) {
    this.replica = replica;
    this.runId = runId;
  }
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const res = await http(urlOf(r, this.replica), r.agentToken, 'POST', '/v1/permits', {
      workerId: 'w-model',
      runId: this.runId,
      lineage: [],
      features: [],
      capability: 'crm.update',
      class: 'write',
      idempotencyKey: null,
      argsDigest: null,
      compensate: null,
    });
    if (m.replicas[this.replica] !== 'ok') return refused(res, this.toString());
    assert.ok(!('error' in res), `${this}: ${JSON.stringify(res)}`);
    if (m.active[this.runId] !== null) assert.equal(res.status, 409, `${this}: a halted run gets no permit`);
    else assert.ok(res.status === 201 || res.status === 200, `${this}: ${JSON.stringify(res)}`);
  }
  toString = () => `permit(${this.replica}, ${this.runId})`;
}

class Kill implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  constructor(replica: number) {
    this.replica = replica;
  }
  check = (m: Readonly<Model>) => m.replicas[this.replica] !== 'down';
  async run(m: Model, r: Real): Promise<void> {
    await r.servers[this.replica]!.crash();
    r.servers[this.replica] = null;
    m.replicas[this.replica] = 'down';
  }
  toString = () => `sigkill(${this.replica})`;
}

class Restart implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  constructor(replica: number) {
    this.replica = replica;
  }
  check = (m: Readonly<Model>) => m.replicas[this.replica] === 'down';
  async run(m: Model, r: Real): Promise<void> {
    r.proxies[this.replica]!.heal();
    r.servers[this.replica] = await startServerProcess(r.dirs[this.replica]!, r.ports[this.replica]!, [
      '--store',
      r.storeUrls[this.replica]!,
    ]);
    m.replicas[this.replica] = 'ok';
    const v = await runCli(['audit', 'verify', '--url', urlOf(r, this.replica), '--token', r.admin]);
    assert.equal(v.code, 0, `audit verify after ${this}: ${v.stdout}${v.stderr}`);
  }
  toString = () => `restart(${this.replica})`;
}

class Partition implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  constructor(replica: number) {
    this.replica = replica;
  }
  check = (m: Readonly<Model>) => m.replicas[this.replica] === 'ok';
  async run(m: Model, r: Real): Promise<void> {
    r.proxies[this.replica]!.cut();
    m.replicas[this.replica] = 'cut';
  }
  toString = () => `partition(${this.replica})`;
}

class Heal implements fc.AsyncCommand<Model, Real> {
  readonly replica: number;
  constructor(replica: number) {
    this.replica = replica;
  }
  check = (m: Readonly<Model>) => m.replicas[this.replica] === 'cut';
  async run(m: Model, r: Real): Promise<void> {
    r.proxies[this.replica]!.heal();
    m.replicas[this.replica] = 'ok';
    // Back once its pool can reach the database again (a read through it answers).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await http(urlOf(r, this.replica), r.admin, 'GET', '/v1/directives?limit=1');
      if (!('error' in res) && res.status === 200) break;
      if (Date.now() > deadline) assert.fail(`${this}: the replica did not come back`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
  toString = () => `heal(${this.replica})`;
}

const replica = fc.integer({ min: 0, max: 2 });
const run = fc.constantFrom(...RUNS);
const COMMANDS = [
  fc.tuple(replica, run, fc.integer({ min: 0, max: 2 })).map(([i, r, k]) => new Issue(i, r, k)),
  fc.tuple(replica, run).map(([i, r]) => new Resume(i, r)),
  fc.tuple(replica, run).map(([i, r]) => new Permit(i, r)),
  replica.map((i) => new Kill(i)),
  replica.map((i) => new Restart(i)),
  replica.map((i) => new Partition(i)),
  replica.map((i) => new Heal(i)),
];

/** Starts the three replicas on a fresh database, runs one sequence, checks the database, ends everything. */
async function oneSequence(cmds: Iterable<fc.AsyncCommand<Model, Real>>): Promise<void> {
  const db = await freshDatabase('model');
  const target = new URL(PG_ADMIN_URL);
  const proxies = [0, 1, 2].map(
    () => new DbProxy({ host: target.hostname, port: Number(target.port || 5432) }),
  );
  const dirs = [0, 1, 2].map((i) => mkdtempSync(join(tmpdir(), `kp-model-${i}-`)));
  const real: Real = { servers: [], proxies, dirs, ports: [], storeUrls: [], admin: '', agentToken: '' };
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const m = await runCli(['migrate', '--store', db.url]);
    assert.equal(m.code, 0, m.stderr);
    for (const [i, p] of proxies.entries()) {
      await p.listen();
      const u = new URL(db.url);
      u.port = String(p.port);
      real.storeUrls[i] = u.toString();
      const s = await startServerProcess(dirs[i]!, 0, ['--store', real.storeUrls[i]!]);
      real.servers[i] = s;
      real.ports[i] = s.port;
      if (i === 0)
        for (const d of dirs.slice(1)) copyFileSync(join(dirs[0]!, 'admin.token'), join(d, 'admin.token'));
    }
    real.admin = real.servers[0]!.adminToken;
    const t = await runCli([
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
      urlOf(real, 0),
      '--token',
      real.admin,
    ]);
    assert.equal(t.code, 0, t.stderr);
    real.agentToken = (JSON.parse(t.stdout) as { token: string }).token;
    const model: Model = {
      active: { r1: null, r2: null },
      keys: new Map(),
      acked: new Map(),
      replicas: ['ok', 'ok', 'ok'],
    };
    await fc.asyncModelRun(() => ({ model, real }), cmds);
    if (process.env.KILLPATH_SOAK_VERBOSE === '1') console.log(`# ran ${[...cmds].map(String).join(', ')}`);

    // From the database: nothing acknowledged lost, no duplicate transition, no permit under a halt.
    const rows = await sql<{ id: string; scope: string; rev: string; cleared_rev: string | null }[]>`
      SELECT id, scope, rev, cleared_rev FROM directives`;
    const byId = new Map(rows.map((d) => [d.id, d]));
    for (const [id, a] of model.acked) {
      const d = byId.get(id);
      assert.ok(d, `acknowledged directive ${id} is in the database`);
      assert.equal(d.cleared_rev !== null, a.cleared, `directive ${id} cleared as acknowledged`);
    }
    for (const r of RUNS) {
      const active = rows.filter((d) => d.cleared_rev === null && d.scope.endsWith(r));
      assert.deepEqual(
        active.map((d) => d.id),
        model.active[r] === null ? [] : [model.active[r]],
        `active halts of ${r}`,
      );
    }
    const transitions = await sql<{ type: string; id: string; n: number }[]>`
      SELECT type, COALESCE(data::json->'directive'->>'id', data::json->>'directiveId') AS id, count(*)::int AS n
      FROM audit WHERE type IN ('directive.issued', 'directive.cleared') GROUP BY 1, 2`;
    const issued = transitions.filter((t) => t.type === 'directive.issued');
    assert.deepEqual(
      issued.map((t) => t.id).sort(),
      rows.map((d) => d.id).sort(),
      'every directive in the database has its issued record',
    );
    assert.deepEqual(
      transitions.filter((t) => t.n > 1),
      [],
      'each directive issued and cleared at most once',
    );
    const permits = await sql<{ run_id: string; rev: string }[]>`SELECT run_id, rev FROM permits`;
    for (const p of permits) {
      const covering = rows.find(
        (d) =>
          d.scope.endsWith(p.run_id) &&
          Number(d.rev) <= Number(p.rev) &&
          (d.cleared_rev === null || Number(p.rev) < Number(d.cleared_rev)),
      );
      assert.equal(covering, undefined, `permit of ${p.run_id} at rev ${p.rev} under halt ${covering?.id}`);
    }
    // The audit log verifies (through a replica brought back if need be).
    let live = model.replicas.indexOf('ok');
    if (live < 0) {
      proxies[0]!.heal();
      if (real.servers[0] === null)
        real.servers[0] = await startServerProcess(dirs[0]!, real.ports[0]!, ['--store', real.storeUrls[0]!]);
      live = 0;
    }
    const v = await runCli(['audit', 'verify', '--url', urlOf(real, live), '--token', real.admin]);
    assert.equal(v.code, 0, `audit verify: ${v.stdout}${v.stderr}`);
  } finally {
    for (const s of real.servers)
      if (s && s.child.exitCode === null && s.child.signalCode === null) await s.crash();
    for (const p of proxies) await p.close().catch(() => {});
    await sql.end({ timeout: 1 });
    await db.drop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/**
 * Runs `numRuns` random sequences (of at most `maxCommands` commands each) from `seed`; throws
 * fast-check's report (the seed and the shrunk sequence) on a failure. Resolves with how many ran.
 */
export async function runReplicaModel(o: {
  numRuns: number;
  seed?: number;
  maxCommands?: number;
}): Promise<number> {
  let ran = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(...COMMANDS), { minLength: 4, maxLength: o.maxCommands ?? 10 }),
      async (cmds) => {
        ran += 1;
        await oneSequence(cmds);
      },
    ),
    { numRuns: o.numRuns, ...(o.seed === undefined ? {} : { seed: o.seed }), endOnFailure: true },
  );
  return ran;
}

// `npm run soak`: many more sequences, each from a random seed unless KILLPATH_SOAK_SEED is set.
if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.argv[2] ?? process.env.KILLPATH_SOAK_RUNS ?? '25');
  const seed =
    process.env.KILLPATH_SOAK_SEED === undefined ? Date.now() : Number(process.env.KILLPATH_SOAK_SEED);
  const started = Date.now();
  try {
    const ran = await runReplicaModel({ numRuns: runs, seed, maxCommands: 15 });
    console.log(
      `soak: ${ran} command sequences on 3 replicas ran, all held (seed ${seed}, ${Math.round((Date.now() - started) / 1000)} s)`,
    );
  } finally {
    await dropLeftovers();
  }
}
