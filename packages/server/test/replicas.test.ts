/**
 * Two control planes on one database, as two replicas would run: the leader lease decides which
 * one runs the escalation, a takeover re-arms it from the store, and a step commits exactly once.
 * Runs on SQLite (two stores on one file) and on PostgreSQL (two pools on one fresh database,
 * once the PostgreSQL store has its directives concept). Time comes from one ManualClock.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError, type Directive, type Principal } from '@killpath/protocol';
import { ManualClock } from '@killpath/sdk/testing';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet, workerKey } from '../src/fleet.ts';
import { createLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import type { DirectiveInput, Lease, Store } from '../src/store/store.ts';
import { haltedBody, hostWorker } from './harness.ts';
import { StreamHub } from '../src/stream/hub.ts';
import { dropLeftovers, freshPgStore, requirePostgres } from './pg.ts';
import { pgShared, sqliteShared, type SharedDatabase } from './shared-db.ts';

const TTL = 3000;
const POLL = 500;
const OPERATOR: Principal = {
  tokenId: 'tok-1',
  name: 'alice',
  role: 'operator',
  tenant: 'acme',
  agent: null,
};

function replica(store: Store, id: string, clock: ManualClock, lines?: string[]): ControlPlane {
  return new ControlPlane({
    store,
    hub: new StreamHub(60_000, 0),
    fleet: new Fleet(() => clock.now()),
    metrics: new Metrics(),
    log: lines ? createLogger('info', (l) => void lines.push(l)) : createLogger('silent'),
    keepaliveMs: 60_000,
    escalationSlackMs: 300,
    clock,
    replicaId: id,
    lease: { ttlMs: TTL, pollMs: POLL },
  });
}

/** Worker `w1` of acme/bot hosting run r1, connected to `cp` and silent since (it never acknowledges). */
function connectWorker(cp: ControlPlane, rev: number): void {
  cp.fleet.connected('w1', 'acme', 'bot', []);
  cp.fleet.heartbeat('w1', 'acme', 'bot', {
    rev,
    features: [],
    pid: 7,
    sinceContactMs: 0,
    runs: [
      { runId: 'r1', parentRunId: null, lineage: [], state: 'running', effects: 0, denied: 0, inFlight: 0 },
    ],
  });
}

/** Advances the clock one poll at a time until `cond`, letting each replica's lease tick finish; returns the ms advanced. */
async function advanceUntil(
  clock: ManualClock,
  cps: ControlPlane[],
  cond: () => boolean,
  limitMs: number,
): Promise<number> {
  let spent = 0;
  while (!cond() && spent <= limitMs) {
    clock.advance(50);
    spent += 50;
    for (const cp of cps) {
      await cp.leadership.idle();
      await cp.escalationsSettled();
    }
  }
  return spent;
}

/** The ids of the directives a replica's log says it committed itself. */
function committedBy(lines: string[]): string[] {
  return lines
    .map((l) => JSON.parse(l) as { msg: string; id?: string })
    .filter((l) => l.msg === 'directive issued')
    .map((l) => l.id!);
}

/**
 * Advances the clock 50 ms at a time until its wall time reaches `wall` (a step's due time is
 * measured from the directive's stamped commit time, which real time moved past the clock's
 * start), letting `idle` replicas' lease ticks and `settle` replicas' escalations finish.
 */
async function advanceTo(
  clock: ManualClock,
  wall: number,
  idle: ControlPlane[],
  settle: ControlPlane[],
): Promise<void> {
  // At least one step: a timer due now (a step re-armed past its due time) fires on an advance.
  do {
    clock.advance(50);
    for (const cp of idle) await cp.leadership.idle();
    for (const cp of settle) await cp.escalationsSettled();
  } while (clock.wallNow() < wall);
}

/** When the kill step of halt `d` falls due (grace + the tests' 300 ms slack after its commit), wall ms. */
/** Launcher L9 of acme/nosdk (an agent without the SDK), attached to replica `cp`. */
function nosdkLauncher(cp: ControlPlane) {
  const sink = {
    launcherId: 'L9',
    tenant: 'acme',
    agent: 'nosdk',
    runId: 'n-1',
    features: [],
    write: () => true,
    close() {},
  };
  cp.launchers.attach(sink, 0, cp.active());
  return sink;
}

/** An operator's halt of acme/nosdk with a 500 ms grace, issued on `cp`. */
async function haltNosdk(cp: ControlPlane, justification: string): Promise<Directive> {
  const { directive } = await cp.issue(
    OPERATOR,
    { level: 'halt', scope: 'agent:acme/nosdk', graceMs: 500, reason: 'runaway', justification },
    { via: 'test' },
  );
  return directive;
}

const killDue = (d: Directive) => Date.parse(d.issuedAt) + d.graceMs + 300;

async function escalationsOf(store: Store, d: Directive): Promise<Directive[]> {
  return store.directiveSuccessors(d.id);
}

function cases(name: string, shared: () => Promise<SharedDatabase>): void {
  describe(`two replicas on one database: ${name}`, () => {
    test("the lease holder dies during a halt's grace: the kill step commits exactly once, from the other replica, within ttl + poll", async (t) => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const aLog: string[] = [];
      const bLog: string[] = [];
      const a = replica(db.stores[0], 'A', clock, aLog);
      const b = replica(db.stores[1], 'B', clock, bLog);
      try {
        await a.start();
        await b.start();
        assert.equal(a.leadership.leading, true);
        assert.equal(b.leadership.leading, false);
        // The worker is on B; the operator's halt is issued on A (grace 1000 ms, kill after 1300 ms).
        connectWorker(b, 0);
        const { directive: d } = await a.issue(
          OPERATOR,
          {
            level: 'halt',
            scope: 'agent:acme/bot',
            graceMs: 1000,
            reason: 'runaway',
            justification: 'INC-9',
          },
          { via: 'test' },
        );
        // B has the halt on its view and its steps armed (they fall due there first, without the lease).
        await b.view.reach(d.rev);
        await advanceUntil(clock, [a, b], () => false, 400);
        // A dies without a word (as a SIGKILL would): no renewal, no release, its timers gone.
        const lastRenewal = (await db.stores[0].getLease('leader'))!;
        await a.leadership.close({ release: false });
        a.stop();
        const waited = await advanceUntil(clock, [b], () => b.leadership.leading, TTL + POLL + 1000);
        const lease = (await db.stores[1].getLease('leader')) as Lease;
        assert.equal(lease.holder, 'B');
        assert.equal(lease.epoch, lastRenewal.epoch + 1);
        const takeoverMs = clock.wallNow() - (lastRenewal.expiresAt - TTL);
        assert.ok(
          takeoverMs <= TTL + POLL,
          `took over ${takeoverMs} ms after A's last renewal (bound ${TTL + POLL})`,
        );
        t.diagnostic(
          `takeover: ${takeoverMs} ms after the holder's last renewal, ${waited} ms after it died (bound: ttl ${TTL} + poll ${POLL} = ${TTL + POLL} ms)`,
        );
        // B re-armed the step from the store: it fires at its due time (at once if already past).
        await b.escalationsSettled();
        await advanceTo(clock, killDue(d) + 500, [b], [b]);
        const kills = await escalationsOf(db.stores[1], d);
        assert.deepEqual(
          kills.map((k) => [k.level, k.scopeText, k.actor]),
          [['kill', 'agent:acme/bot', `escalation:${d.id}`]],
        );
        assert.deepEqual(committedBy(bLog), [kills[0]!.id], 'B committed the kill');
        assert.deepEqual(committedBy(aLog), [d.id], 'A committed the halt only');
        await b.flushAudit();
        const escalated = await db.stores[1].listAudit({ types: ['directive.escalated'], limit: 10 });
        assert.equal(escalated.length, 1);
        assert.deepEqual(escalated[0]!.data.laggards, ['w1']);
        assert.equal((await db.stores[1].getDirective(d.id))!.clearedRev, kills[0]!.rev);
      } finally {
        b.stop();
        await b.leadership.idle();
        await db.done();
      }
    });

    test("a holder that stops renewing but still runs: its late kill commit is refused by the fence, the new holder's commits once", async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      // A's lease renewals hang from now on (a replica cut off from the database's lease row, or frozen).
      let hang = false;
      const stalled = new Proxy(db.stores[0], {
        get(target, prop, receiver) {
          if (prop === 'acquireLease' && hang) return () => new Promise<never>(() => {});
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const aLog: string[] = [];
      const a = replica(stalled, 'A', clock, aLog);
      const bLog: string[] = [];
      const b = replica(db.stores[1], 'B', clock, bLog);
      try {
        await a.start();
        await b.start();
        connectWorker(a, 0);
        connectWorker(b, 0);
        // Grace long enough that B holds the lease before the kill step falls due on A's timers.
        const { directive: d } = await a.issue(
          OPERATOR,
          {
            level: 'halt',
            scope: 'agent:acme/bot',
            graceMs: 6000,
            reason: 'runaway',
            justification: 'INC-10',
          },
          { via: 'test' },
        );
        hang = true;
        await advanceUntil(clock, [b], () => b.leadership.leading, TTL + POLL + 1000);
        assert.equal(a.leadership.leading, true, 'A still believes it leads (its renewal never answered)');
        assert.equal((await db.stores[1].getLease('leader'))!.holder, 'B');
        // Past the kill step's due time: both replicas' timers fire.
        await advanceTo(clock, killDue(d) + 500, [b], [a, b]);
        const kills = await escalationsOf(db.stores[1], d);
        assert.equal(kills.length, 1, 'exactly one kill');
        assert.deepEqual(committedBy(bLog), [kills[0]!.id], 'from B');
        assert.deepEqual(committedBy(aLog), [d.id], 'A committed the halt; its kill was refused');
        const refused = aLog
          .map((l) => JSON.parse(l) as { msg: string; err?: string })
          .filter((l) => l.msg === 'escalation failed');
        assert.equal(refused.length, 1, 'A tried, once');
        assert.match(refused[0]!.err!, /lease leader is no longer held by A at epoch 1 \(now B at epoch 2\)/);
        await b.flushAudit();
        assert.equal((await db.stores[1].listAudit({ types: ['directive.escalated'], limit: 10 })).length, 1);
      } finally {
        a.stop();
        b.stop();
        await b.leadership.idle();
        await db.done();
      }
    });

    test('a supervisor rule firing on a holder deposed without knowing it is refused by the fence; nothing is written', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      let hang = false;
      const stalled = new Proxy(db.stores[0], {
        get(target, prop, receiver) {
          if (prop === 'acquireLease' && hang) return () => new Promise<never>(() => {});
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const a = replica(stalled, 'A', clock);
      const b = replica(db.stores[1], 'B', clock);
      const fire = (cp: ControlPlane, run: string) =>
        cp.issue(
          { tokenId: 'supervisor', role: 'admin', tenant: '*', agent: null, name: 'supervisor:loop' },
          {
            level: 'halt',
            scope: `run:${run}`,
            tenant: 'acme',
            reason: 'policy rule loop',
            justification: 'automatic: test',
          },
          { via: 'supervisor', trigger: { kind: 'supervisor', rule: 'loop', details: {} } },
        );
      try {
        await a.start();
        await b.start();
        assert.equal((await fire(a, 'r0')).created, true, 'the holder fires');
        hang = true;
        await advanceUntil(clock, [b], () => b.leadership.leading, TTL + POLL + 1000);
        assert.equal(a.leadership.leading, true, 'A still believes it leads (its renewal never answered)');
        const rev = await db.stores[1].rev();
        await assert.rejects(fire(a, 'r1'), (err: unknown) => {
          assert.ok(err instanceof KillpathError);
          assert.match(err.message, /lease leader is no longer held by A/);
          return true;
        });
        assert.equal(await db.stores[1].rev(), rev, 'nothing committed');
        assert.equal((await fire(b, 'r1')).created, true, 'the new holder fires');
      } finally {
        a.stop();
        b.stop();
        await b.leadership.idle();
        await db.done();
      }
    });

    test('a kill step whose commit meets the database unavailable at its due time is tried again and commits exactly once', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      // The holder's fenced commits (escalation steps) answer 503 unavailable while `down`, as the
      // PostgreSQL store does for a statement timeout, a failover of the primary or a lost connection.
      let down = false;
      let refused = 0;
      const flaky = new Proxy(db.stores[0], {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'issueDirective')
            return (input: DirectiveInput, ...rest: unknown[]) => {
              if (down && input.fence) {
                refused += 1;
                return Promise.reject(new KillpathError('unavailable', 'PostgreSQL cannot answer now'));
              }
              return (v as (...a: unknown[]) => unknown).call(target, input, ...rest);
            };
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const aLog: string[] = [];
      const a = replica(flaky, 'A', clock, aLog);
      try {
        await a.start();
        assert.equal(a.leadership.leading, true);
        connectWorker(a, 0);
        const { directive: d } = await a.issue(
          OPERATOR,
          {
            level: 'halt',
            scope: 'agent:acme/bot',
            graceMs: 1000,
            reason: 'runaway',
            justification: 'INC-12',
          },
          { via: 'test' },
        );
        down = true;
        await advanceTo(clock, killDue(d) + 100, [a], [a]);
        assert.ok(refused >= 1, 'the step fell due while the database could not answer');
        assert.deepEqual(await escalationsOf(db.stores[0], d), [], 'nothing committed meanwhile');
        down = false;
        await advanceTo(clock, killDue(d) + 3000, [a], [a]);
        const kills = await escalationsOf(db.stores[0], d);
        assert.deepEqual(
          kills.map((k) => [k.level, k.actor]),
          [['kill', `escalation:${d.id}`]],
          'the kill committed once the database answered again',
        );
        assert.equal((await db.stores[0].getDirective(d.id))!.clearedRev, kills[0]!.rev);
      } finally {
        a.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test("a worker connected to B is in A's status, with B's view of it; it goes stale there when B dies", async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const a = replica(db.stores[0], 'A', clock);
      const b = replica(db.stores[1], 'B', clock);
      try {
        await a.start();
        await b.start();
        connectWorker(b, 0);
        clock.advance(120);
        await b.presence.sync();
        await a.presence.sync();
        const expected = {
          workerId: 'w1',
          tenant: 'acme',
          agent: 'bot',
          features: [],
          connected: true,
          pid: 7,
          observedRev: 0,
          ackedRev: 0,
          lastHeartbeatAgoMs: 120,
          state: 'running',
          flags: { throttled: null, degraded: [], isolated: false, frozen: false },
          launcher: null,
          release: {},
          runs: [
            {
              runId: 'r1',
              parentRunId: null,
              lineage: [],
              state: 'running',
              effects: 0,
              denied: 0,
              inFlight: 0,
            },
          ],
        };
        assert.deepEqual(b.fleet.page({ limit: 10 }, b.hub.rev, b.active()).workers, [expected]);
        const page = a.fleet.page({ limit: 10 }, a.hub.rev, a.active());
        assert.deepEqual(page.workers, [expected]);
        assert.equal(page.total, 1);
        assert.deepEqual(page.states, { running: 1 });
        assert.deepEqual(a.fleet.page({ limit: 10, tenant: 'globex' }, a.hub.rev, a.active()).total, 0);
        // A halt issued on A flags it in A's view too; B's worker's ack reaches A through the store.
        const { directive: d } = await a.issue(
          OPERATOR,
          { level: 'halt', scope: 'run:r1', graceMs: 1000, reason: 'runaway', justification: 'INC-11' },
          { via: 'test' },
        );
        b.fleet.ack(workerKey('acme', 'bot', 'w1'), d.rev);
        await b.presence.sync();
        await a.presence.sync();
        assert.equal(a.fleet.page({ limit: 10 }, a.hub.rev, a.active()).workers[0]!.ackedRev, d.rev);
        // B dies: its rows are not refreshed; A shows the worker stale once they are staleAfterMs old.
        await b.leadership.close({ release: false });
        b.stop();
        clock.advance(a.fleet.staleAfterMs + 1);
        await a.presence.sync();
        const after = a.fleet.page({ limit: 10 }, a.hub.rev, a.active());
        assert.deepEqual(
          after.workers.map((w) => [w.workerId, w.connected, w.state]),
          [['w1', false, 'stale']],
        );
      } finally {
        a.stop();
        b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test('a worker on B that reported halted counts as acknowledged by the escalation on A: no kill step', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const aLog: string[] = [];
      const a = replica(db.stores[0], 'A', clock, aLog);
      const b = replica(db.stores[1], 'B', clock);
      try {
        await a.start();
        await b.start();
        connectWorker(b, 0);
        await b.presence.sync();
        await a.presence.sync();
        const { directive: d } = await a.issue(
          OPERATOR,
          { level: 'halt', scope: 'run:r1', graceMs: 1000, reason: 'runaway', justification: 'INC-12' },
          { via: 'test' },
        );
        const ev = await b.haltedReport(
          'w1',
          { tenant: 'acme', agent: 'bot', key: workerKey('acme', 'bot', 'w1') },
          { rev: d.rev, directiveId: d.id, runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 1 },
        );
        assert.deepEqual(ev.runs, ['r1'], 'B knows the run its worker hosts');
        assert.ok(ev.timeToStopMs !== null, 'measured from the commit time the store stamped');
        await advanceTo(clock, killDue(d) + 500, [a, b], [a, b]);
        assert.deepEqual(await escalationsOf(db.stores[0], d), [], 'no kill');
        assert.equal((await db.stores[0].getDirective(d.id))!.clearedRev, null, 'the halt stands');
        assert.ok(
          aLog.some(
            (l) =>
              (JSON.parse(l) as { msg: string }).msg ===
              'escalation not needed: every covered worker acknowledged',
          ),
          "A's escalation ran and counted B's acknowledgement",
        );
      } finally {
        a.stop();
        b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    /** Store `store` whose acknowledgement writes are refused (unavailable) the first `n` times; counts them. */
    function refusingAcks(store: Store, n: number): { store: Store; refused: () => number } {
      let refused = 0;
      const proxy = new Proxy(store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'recordAcks')
            return (...args: unknown[]) => {
              if (refused < n) {
                refused += 1;
                return Promise.reject(new KillpathError('unavailable', 'PostgreSQL cannot answer now'));
              }
              return (v as (...a: unknown[]) => unknown).apply(target, args);
            };
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      return { store: proxy, refused: () => refused };
    }

    /**
     * Lets B's refused ack writes be tried again on the clock until the store has refused `n`
     * (each refusal is immediate), then lets the last wait (400 ms) run out and waits for
     * `written` (real I/O, no more timers): all before wall time `before`.
     */
    async function retryUntilWritten(
      clock: ManualClock,
      refused: () => number,
      n: number,
      written: Promise<void>,
      before: number,
    ): Promise<void> {
      while (refused() < n && clock.wallNow() < before) {
        clock.advance(50);
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(refused(), n);
      clock.advance(400);
      await written;
      assert.ok(clock.wallNow() < before, 'written before the kill step fell due');
    }

    test('an acknowledgement B could not write (database unavailable) is written once it answers: no kill step on A', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const flaky = refusingAcks(db.stores[1], 3);
      const aLog: string[] = [];
      const a = replica(db.stores[0], 'A', clock, aLog);
      const b = replica(flaky.store, 'B', clock);
      try {
        await a.start();
        await b.start();
        connectWorker(b, 0);
        await b.presence.sync();
        await a.presence.sync();
        const { directive: d } = await a.issue(
          OPERATOR,
          { level: 'halt', scope: 'run:r1', graceMs: 1000, reason: 'runaway', justification: 'INC-14' },
          { via: 'test' },
        );
        await b.haltedReport(
          'w1',
          { tenant: 'acme', agent: 'bot', key: workerKey('acme', 'bot', 'w1') },
          { rev: d.rev, directiveId: d.id, runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 1 },
        );
        await retryUntilWritten(clock, flaky.refused, 3, b.flushAcks(), killDue(d) - 100);
        await advanceTo(clock, killDue(d) + 500, [a, b], [a, b]);
        assert.equal(flaky.refused(), 3, 'the first three writes were refused');
        assert.deepEqual(
          (await db.stores[0].acksOf(d.id)).map((k) => k.workerId),
          ['w1'],
          'the acknowledgement is in the store',
        );
        assert.deepEqual(await escalationsOf(db.stores[0], d), [], 'no kill');
        assert.ok(
          aLog.some(
            (l) =>
              (JSON.parse(l) as { msg: string }).msg ===
              'escalation not needed: every covered worker acknowledged',
          ),
        );
      } finally {
        a.stop();
        b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test('acknowledgements reach the store in batches: once reports go quiet for 25 ms, at most a quarter of the escalation slack (75 ms here) after the first; stopping writes the pending ones', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const a = replica(db.stores[0], 'A', clock);
      const store = db.stores[0];
      let stopped = false;
      /** The workers whose acknowledgement of `id` is in the store, once `n` are (real time, bounded). */
      const acked = async (id: string, n: number): Promise<string[]> => {
        const until = Date.now() + 5000;
        for (;;) {
          const rows = await store.acksOf(id);
          if (rows.length >= n || Date.now() > until) return rows.map((r) => r.workerId);
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      /** Nothing of `id` in the store after 50 ms of real time, the manual clock standing still. */
      const none = async (id: string, why: string) => {
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(await store.acksOf(id), [], why);
      };
      try {
        await a.start();
        hostWorker(a.fleet, 'w1', { runs: ['r1'] });
        hostWorker(a.fleet, 'w2', { runs: ['r2'] });
        // Three scopes: the same stop issued again would be the one already active.
        const halt = async (scope: string) =>
          (
            await a.issue(
              OPERATOR,
              {
                level: 'halt',
                scope,
                graceMs: 60_000,
                reason: 'runaway',
                justification: 'INC-20',
              },
              { via: 'test' },
            )
          ).directive;
        const report = (w: string, d: Directive) =>
          a.haltedReport(
            w,
            { tenant: 'acme', agent: 'bot', key: workerKey('acme', 'bot', w) },
            {
              rev: d.rev,
              directiveId: d.id,
              runs: [w === 'w1' ? 'r1' : 'r2'],
              aborted: 0,
              completed: 0,
              observeToSettleMs: 1,
            },
          );
        const d1 = await halt('tenant:acme');
        await report('w1', d1);
        clock.advance(10);
        await report('w2', d1);
        clock.advance(20);
        await none(d1.id, '20 ms after the last report: not yet');
        clock.advance(10);
        assert.deepEqual((await acked(d1.id, 2)).sort(), ['w1', 'w2'], '25 ms after the last report');
        // Reports that do not stop coming: written a quarter of the slack (300 ms here) after the first.
        const d2 = await halt('agent:acme/bot');
        for (let t = 0; t < 60; t += 20) {
          await report(t % 40 === 0 ? 'w1' : 'w2', d2);
          clock.advance(20);
        }
        await none(d2.id, '60 ms after the first, reports still coming');
        await report('w1', d2);
        clock.advance(20); // 80 ms after the first, 20 after the last
        assert.deepEqual((await acked(d2.id, 2)).sort(), ['w1', 'w2'], 'at most 75 ms after the first');
        // One pending when the control plane stops: written before stop resolves.
        const d3 = await halt('run:r1');
        await report('w1', d3);
        stopped = true;
        await a.stop();
        assert.deepEqual(
          (await store.acksOf(d3.id)).map((r) => r.workerId),
          ['w1'],
        );
      } finally {
        if (!stopped) await a.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test('an acknowledgement taken on one replica and contradicted on another 20 ms later stays withdrawn; one pending at stop is written', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const a = replica(db.stores[0], 'A', clock);
      const b = replica(db.stores[1], 'B', clock);
      let stopped = false;
      try {
        await a.start();
        await b.start();
        hostWorker(b.fleet, 'w1', { runs: ['r1'] });
        hostWorker(a.fleet, 'w1', { runs: ['r1'] });
        const { directive: d } = await a.issue(
          OPERATOR,
          { level: 'halt', scope: 'run:r1', graceMs: 1000, reason: 'runaway', justification: 'INC-20' },
          { via: 'test' },
        );
        await b.view.reach(d.rev);
        const key = workerKey('acme', 'bot', 'w1');
        await b.haltedReport('w1', { tenant: 'acme', agent: 'bot', key }, haltedBody(d, ['r1']));
        // B has answered the report; 20 ms later the worker's next effect reaches A.
        await new Promise((r) => setTimeout(r, 20));
        clock.advance(5);
        await a.view.reach(d.rev);
        a.contradictAck(key, 'r1', 'a permit asked after the report', d.rev);
        await a.flushAcks();
        await advanceTo(clock, killDue(d) + 500, [a, b], [a, b]);
        assert.deepEqual(await db.stores[0].acksOf(d.id), [], 'withdrawn, not written after its withdrawal');
        const kills = await escalationsOf(db.stores[0], d);
        assert.deepEqual(
          kills.map((k) => k.level),
          ['kill'],
        );
        // An acknowledgement still pending when B stops is in the store once stop resolves.
        const { directive: d2 } = await a.issue(
          OPERATOR,
          {
            level: 'halt',
            scope: 'agent:acme/bot',
            graceMs: 60_000,
            reason: 'runaway',
            justification: 'INC-21',
          },
          { via: 'test' },
        );
        await b.view.reach(d2.rev);
        await b.haltedReport('w1', { tenant: 'acme', agent: 'bot', key }, haltedBody(d2, ['r1']));
        stopped = true;
        await b.stop();
        assert.deepEqual(
          (await db.stores[0].acksOf(d2.id)).map((r) => r.workerId),
          ['w1'],
        );
      } finally {
        a.stop();
        if (!stopped) b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test('an acknowledgement withdrawn while its write is still being retried stays withdrawn: the kill step fires', async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const flaky = refusingAcks(db.stores[1], 3);
      const a = replica(db.stores[0], 'A', clock);
      const b = replica(flaky.store, 'B', clock);
      try {
        await a.start();
        await b.start();
        connectWorker(b, 0);
        await b.presence.sync();
        await a.presence.sync();
        const { directive: d } = await a.issue(
          OPERATOR,
          { level: 'halt', scope: 'run:r1', graceMs: 1000, reason: 'runaway', justification: 'INC-15' },
          { via: 'test' },
        );
        const key = workerKey('acme', 'bot', 'w1');
        await b.haltedReport(
          'w1',
          { tenant: 'acme', agent: 'bot', key },
          { rev: d.rev, directiveId: d.id, runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 1 },
        );
        // Its batch written now, not when the manual clock reaches the batch's due time.
        void b.flushAcks();
        await new Promise((r) => setImmediate(r));
        assert.equal(flaky.refused(), 1, 'the ack is being retried');
        // Evidence contradicts the ack before its write got through: the withdrawal queues behind it.
        await b.view.reach(d.rev);
        b.contradictAck(key, 'r1', 'egress seen by the launcher');
        await retryUntilWritten(clock, flaky.refused, 3, b.flushAcks(), killDue(d) - 100);
        await advanceTo(clock, killDue(d) + 500, [a, b], [a, b]);
        assert.equal(flaky.refused(), 3);
        assert.deepEqual(await db.stores[0].acksOf(d.id), [], 'written, then withdrawn, in that order');
        const kills = await escalationsOf(db.stores[0], d);
        assert.deepEqual(
          kills.map((k) => k.level),
          ['kill'],
        );
      } finally {
        a.stop();
        b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test("an agent without the SDK behind a launcher on B, halted on A: B's launcher counts, the kill commits once, from B", async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      const aLog: string[] = [];
      const bLog: string[] = [];
      const a = replica(db.stores[0], 'A', clock, aLog);
      const b = replica(db.stores[1], 'B', clock, bLog);
      try {
        await a.start();
        await b.start();
        assert.equal(a.leadership.leading, true);
        const sink = nosdkLauncher(b);
        const d = await haltNosdk(a, 'INC-13');
        await b.view.reach(d.rev);
        await advanceTo(clock, killDue(d) + 500, [a, b], [a, b]);
        const kills = await escalationsOf(db.stores[0], d);
        assert.deepEqual(
          kills.map((k) => [k.level, k.scopeText]),
          [['kill', 'agent:acme/nosdk']],
        );
        assert.deepEqual(committedBy(bLog), [kills[0]!.id], 'from B, which holds the launcher');
        assert.deepEqual(committedBy(aLog), [d.id]);
        await b.flushAudit();
        const escalated = await db.stores[0].listAudit({ types: ['directive.escalated'], limit: 10 });
        assert.deepEqual(
          escalated.map((r) => r.data.laggards),
          [['launcher:L9']],
        );
        assert.equal(
          b.launchers.orders(sink, kills[0]!.rev, b.active()).kill?.level,
          'kill',
          'the kill reaches it',
        );
      } finally {
        a.stop();
        b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });

    test("B's kill for its launcher, meeting the database unavailable at its due time, is tried again and commits once", async () => {
      const clock = new ManualClock(0, Date.now());
      const db = await shared();
      let down = false;
      let refused = 0;
      const flaky = new Proxy(db.stores[1], {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'issueDirective')
            return (input: DirectiveInput, ...rest: unknown[]) => {
              if (down && input.idempotencyKey?.startsWith('escalation:')) {
                refused += 1;
                return Promise.reject(new KillpathError('unavailable', 'PostgreSQL cannot answer now'));
              }
              return (v as (...a: unknown[]) => unknown).call(target, input, ...rest);
            };
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const bLog: string[] = [];
      const a = replica(db.stores[0], 'A', clock);
      const b = replica(flaky, 'B', clock, bLog);
      try {
        await a.start();
        await b.start();
        assert.equal(a.leadership.leading, true);
        nosdkLauncher(b);
        const d = await haltNosdk(a, 'INC-14');
        await b.view.reach(d.rev);
        down = true;
        await advanceTo(clock, killDue(d) + 100, [a, b], [a, b]);
        assert.ok(refused >= 1, "B's kill fell due while its database could not answer");
        assert.deepEqual(await escalationsOf(db.stores[0], d), []);
        down = false;
        await advanceTo(clock, killDue(d) + 3000, [a, b], [a, b]);
        const kills = await escalationsOf(db.stores[0], d);
        assert.deepEqual(
          kills.map((k) => [k.level, k.scopeText]),
          [['kill', 'agent:acme/nosdk']],
        );
        assert.deepEqual(committedBy(bLog), [kills[0]!.id], 'from B, once its database answered again');
      } finally {
        a.stop();
        b.stop();
        await a.leadership.idle();
        await db.done();
      }
    });
  });
}

/** Whether the PostgreSQL store can run these cases yet (it needs its directives concept). */
async function pgReady(): Promise<boolean> {
  const s = await freshPgStore('replicas_probe');
  try {
    await s.rev();
    return true;
  } catch {
    return false;
  } finally {
    await s.close();
  }
}

const pg = await requirePostgres();
const pgBuilt = pg && (await pgReady());
after(dropLeftovers);

cases('SQLite (two stores on one file)', sqliteShared);
if (pgBuilt) cases('PostgreSQL', pgShared);
else if (pg)
  test(
    'two replicas on PostgreSQL',
    { skip: 'the PostgreSQL store has no directives concept yet' },
    () => {},
  );
