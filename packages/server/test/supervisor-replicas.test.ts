/**
 * The supervisor's rules across replicas (issue 14): every replica forwards the telemetry its
 * workers POST into the store, only the holder of the leader lease feeds its supervisor and
 * evaluates rules, over every replica's share. Two control planes (with their triggers) on one
 * database, SQLite (two stores on one file) and a fresh PostgreSQL database; time from one
 * ManualClock. A rule over an agent whose workers are on both replicas fires exactly once, when
 * only the sum crosses its threshold.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Principal, RunTelemetry } from '@killpath/protocol';
import { ManualClock } from '@killpath/sdk/testing';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet } from '../src/fleet.ts';
import { createLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import type { Store } from '../src/store/store.ts';
import { StreamHub } from '../src/stream/hub.ts';
import { Triggers } from '../src/triggers.ts';
import { dropLeftovers, requirePostgres } from './pg.ts';
import { pgShared, sqliteShared, type SharedDatabase } from './shared-db.ts';

after(() => dropLeftovers());

const ADMIN: Principal = { tokenId: 'tok-1', name: 'alice', role: 'admin', tenant: '*', agent: null };
const POLICY =
  'rules:\n  - { name: agent_steps, when: "agent.steps >= 10", action: { level: halt, scope: agent } }';

async function replica(
  store: Store,
  id: string,
  clock: ManualClock,
): Promise<{ cp: ControlPlane; t: Triggers }> {
  const log = createLogger('silent');
  const cp = new ControlPlane({
    store,
    hub: new StreamHub(60_000, 0),
    fleet: new Fleet(() => clock.now()),
    metrics: new Metrics(),
    log,
    keepaliveMs: 60_000,
    clock,
    replicaId: id,
    lease: { ttlMs: 3000, pollMs: 500 },
  });
  await cp.start();
  const t = await Triggers.start(cp, log, { watchdog: false, policyFollowMs: 0 });
  return { cp, t };
}

const run = (runId: string, steps: number): RunTelemetry => ({
  runId,
  steps,
  tokens: 0,
  costUsd: 0,
  toolCalls: 0,
  toolErrors: 0,
  authDenials: 0,
  schemaViolations: 0,
  anomalies: 0,
  anomalyScore: 0,
  anomalyDetail: null,
  localHalt: null,
});

/** The directives the supervisor's rule issued, as scope texts. */
async function fired(store: Store): Promise<string[]> {
  const all = await store.listDirectives({ limit: 100 });
  return all.filter((d) => d.actor === 'supervisor:agent_steps').map((d) => d.scopeText);
}

function cases(name: string, shared: () => Promise<SharedDatabase>): void {
  describe(`the supervisor's rules across two replicas: ${name}`, () => {
    test('a rule over an agent with workers on both replicas fires exactly once, from the holder, when only the sum crosses it', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const a = await replica(db.stores[0], 'A', clock);
      const b = await replica(db.stores[1], 'B', clock);
      try {
        assert.equal(a.cp.leadership.leading, true);
        assert.equal(b.cp.leadership.leading, false);
        await a.t.policy.apply(ADMIN, POLICY, { comment: 'test' });
        await b.t.policy.follow();
        // Worker wa of acme/bot on A: 6 steps; worker wb of the same agent on B: 6 steps.
        a.t.telemetry(
          { workerId: 'wa', tenant: 'acme', agent: 'bot' },
          { workerId: 'wa', runs: [run('ra', 6)] },
        );
        b.t.telemetry(
          { workerId: 'wb', tenant: 'acme', agent: 'bot' },
          { workerId: 'wb', runs: [run('rb', 6)] },
        );
        await a.t.supervisor!.drain();
        await b.t.supervisor!.drain();
        assert.deepEqual(await fired(db.stores[0]), [], "neither replica's share crosses the threshold");
        assert.equal(b.t.supervisor!.updates, 0, 'B, not holding the lease, evaluates nothing');
        // One flush and one poll later (B's timers and A's, on the clock), A has B's share.
        for (let i = 0; i < 3; i++) {
          clock.advance(500);
          await b.t.relay!.flush();
          await a.t.relay!.flush();
          await a.t.relay!.read();
          await a.t.supervisor!.drain();
        }
        assert.deepEqual(await fired(db.stores[0]), ['agent:acme/bot'], 'the sum (12) crossed it: one halt');
        assert.equal(a.t.supervisor!.updates, 2, "A evaluated its own update and B's, each once");
        assert.equal(b.t.supervisor!.updates, 0);
        // More telemetry on both replicas keeps the condition true: no second fire, from either.
        a.t.telemetry(
          { workerId: 'wa', tenant: 'acme', agent: 'bot' },
          { workerId: 'wa', runs: [run('ra', 7)] },
        );
        b.t.telemetry(
          { workerId: 'wb', tenant: 'acme', agent: 'bot' },
          { workerId: 'wb', runs: [run('rb', 8)] },
        );
        for (let i = 0; i < 3; i++) {
          clock.advance(500);
          await b.t.relay!.flush();
          await a.t.relay!.flush();
          await a.t.relay!.read();
          await a.t.supervisor!.drain();
          await b.t.supervisor!.drain();
        }
        assert.deepEqual(await fired(db.stores[0]), ['agent:acme/bot'], 'exactly once');
        assert.equal(a.t.supervisor!.book.agents.get('acme/bot')!.total(0), 15, 'A counts 7 + 8 steps');
      } finally {
        await a.t.close();
        await b.t.close();
        a.cp.stop();
        b.cp.stop();
        await a.cp.leadership.idle();
        await b.cp.leadership.idle();
        await db.done();
      }
    });

    test("the holder dies: the replica that takes the lease starts from the window's rows, both replicas' shares, and fires once", async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const a = await replica(db.stores[0], 'A', clock);
      const b = await replica(db.stores[1], 'B', clock);
      let aClosed = false;
      try {
        await a.t.policy.apply(ADMIN, POLICY, { comment: 'test' });
        await b.t.policy.follow();
        a.t.telemetry(
          { workerId: 'wa', tenant: 'acme', agent: 'bot' },
          { workerId: 'wa', runs: [run('ra', 6)] },
        );
        b.t.telemetry(
          { workerId: 'wb', tenant: 'acme', agent: 'bot' },
          { workerId: 'wb', runs: [run('rb', 3)] },
        );
        clock.advance(500);
        await a.t.relay!.flush();
        await b.t.relay!.flush();
        await a.t.relay!.read();
        assert.equal(a.t.supervisor!.book.agents.get('acme/bot')!.total(0), 9);
        // A dies without a word: no release, its timers gone.
        await a.cp.leadership.close({ release: false });
        a.cp.stop();
        await a.t.close();
        aClosed = true;
        for (let spent = 0; !b.cp.leadership.leading && spent < 5000; spent += 100) {
          clock.advance(100);
          await b.cp.leadership.idle();
        }
        assert.equal(b.cp.leadership.leading, true, 'B took the lease');
        await b.t.relay!.read();
        assert.equal(
          b.t.supervisor!.book.agents.get('acme/bot')!.total(0),
          9,
          "B's book: A's 6 and its own 3, from the store",
        );
        assert.deepEqual(await fired(db.stores[1]), []);
        b.t.telemetry(
          { workerId: 'wb', tenant: 'acme', agent: 'bot' },
          { workerId: 'wb', runs: [run('rb', 4)] },
        );
        await b.t.supervisor!.drain();
        assert.deepEqual(await fired(db.stores[1]), ['agent:acme/bot'], 'fired once, from B');
      } finally {
        if (!aClosed) {
          await a.t.close();
          a.cp.stop();
        }
        await b.t.close();
        b.cp.stop();
        await a.cp.leadership.idle();
        await b.cp.leadership.idle();
        await db.done();
      }
    });
  });
}

cases('SQLite (two stores on one file)', sqliteShared);
if (await requirePostgres()) cases('PostgreSQL', () => pgShared('supervisor_replicas'));
