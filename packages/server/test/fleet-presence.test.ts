/**
 * The fleet's side of shared presence: what it publishes (changed workers, tombstones) and how it
 * merges what other replicas published (its own live streams win; another replica's worker is
 * connected only while that replica refreshes it), and when the presence sync writes it. On a
 * manual fleet clock; wall time = clock + W.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScope, type Directive } from '@killpath/protocol';
import { ManualClock } from '@killpath/sdk/testing';
import { Fleet, workerKey } from '../src/fleet.ts';
import { createLogger } from '../src/log.ts';
import { PresenceSync, WAVE_MAX_WAIT_MS, WAVE_QUIET_MS } from '../src/presence-sync.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { PresenceRow } from '../src/store/store.ts';

const W = 1_767_225_600_000;
const hb = (runs: string[]) => ({
  rev: 0,
  features: [],
  pid: 9,
  sinceContactMs: 0,
  runs: runs.map((runId) => ({
    runId,
    parentRunId: null,
    lineage: [],
    state: 'running' as const,
    effects: 0,
    denied: 0,
    inFlight: 0,
  })),
});

test('a fleet publishes each changed worker once per take, as wall-time rows, and tombstones of pruned ones', () => {
  let now = 1000;
  const f = new Fleet(() => now);
  const toWall = (t: number) => W + t;
  f.connected('w1', 'acme', 'bot', ['x']);
  f.heartbeat('w1', 'acme', 'bot', hb(['r1']));
  f.ack(workerKey('acme', 'bot', 'w1'), 0);
  const rows = f.takeChanged('A', toWall);
  assert.deepEqual(rows, [
    {
      tenant: 'acme',
      agent: 'bot',
      workerId: 'w1',
      replica: 'A',
      connected: true,
      pid: 9,
      features: [],
      runs: hb(['r1']).runs,
      launcher: null,
      release: null,
      declared: { release: null },
      ackedRev: 0,
      lastContactAt: W + 1000,
      lastHeartbeatAt: W + 1000,
      goneAt: null,
      removed: false,
    },
  ]);
  assert.deepEqual(f.takeChanged('A', toWall), [], 'nothing changed since');
  f.disconnected(workerKey('acme', 'bot', 'w1'));
  now += 20 * 60_000;
  f.prune(10 * 60_000);
  const gone = f.takeChanged('A', toWall);
  assert.deepEqual(
    gone.map((r) => [r.workerId, r.removed, r.connected]),
    [['w1', true, false]],
    'the disconnect and the prune travel as one tombstone',
  );
});

test("another replica's rows are merged into the view; this replica's own live stream is never overwritten", () => {
  let now = 5000;
  const f = new Fleet(() => now);
  const toMono = (wall: number) => wall - W;
  const row = (over: Partial<PresenceRow>): PresenceRow => ({
    tenant: 'acme',
    agent: 'bot',
    workerId: 'w2',
    replica: 'B',
    connected: true,
    pid: 3,
    features: [],
    runs: hb(['r2']).runs,
    launcher: null,
    release: null,
    declared: null,
    ackedRev: 4,
    lastContactAt: W + 5000,
    lastHeartbeatAt: W + 5000,
    goneAt: null,
    removed: false,
    ...over,
  });
  f.connected('w1', 'acme', 'bot', []);
  f.takeChanged('A', (t) => W + t);
  f.applyRemote(
    [row({}), row({ workerId: 'w1', connected: false, ackedRev: 99 }), row({ workerId: 'w3', replica: 'A' })],
    'A',
    toMono,
  );
  const page = f.page({ limit: 10 }, 10, []);
  assert.deepEqual(
    page.workers.map((w) => [w.workerId, w.connected, w.ackedRev, w.state, w.runs.length]),
    [
      ['w1', true, 0, 'running', 0],
      ['w2', true, 4, 'running', 1],
    ],
    "w1's own stream wins; A's own row (w3) is skipped",
  );
  assert.deepEqual(
    f.takeChanged('A', (t) => W + t),
    [],
    'mirrored rows are not published back',
  );
  assert.deepEqual(
    f.coveredBy(directive()).map((w) => w.workerId),
    ['w2'],
    'a mirrored worker is in the laggard set',
  );
  assert.equal(f.watchInfo(workerKey('acme', 'bot', 'w2'))!.local, false, 'the deadman leaves it to B');
  // B stops refreshing it: stale once its last row is staleAfterMs old.
  now += f.staleAfterMs + 1;
  assert.deepEqual(
    f.page({ limit: 10, agent: 'bot' }, 10, []).workers.map((w) => [w.workerId, w.connected, w.state]),
    [
      ['w1', true, 'running'],
      ['w2', false, 'stale'],
    ],
  );
  // A tombstone from B takes it out of the view.
  f.applyRemote([row({ removed: true, connected: false })], 'A', toMono);
  assert.deepEqual(
    f.page({ limit: 10 }, 10, []).workers.map((w) => w.workerId),
    ['w1'],
  );
});

/** A halt of run r2 of acme, as the switchboard holds it. */
function directive(): Directive {
  return {
    id: 'd1',
    rev: 1,
    level: 'halt',
    scope: parseScope('run:r2'),
    scopeText: 'run:r2',
    tenant: 'acme',
    capabilities: null,
    rate: null,
    escalation: [],
    escalatedFrom: null,
    graceMs: 0,
    drain: 'discard',
    memory: 'revert',
    reason: 'r',
    justification: 'j',
    actor: 'alice',
    issuedAt: new Date(W).toISOString(),
    clearedAt: null,
    clearedRev: null,
    releases: [],
    breakGlass: null,
  };
}

test('a presence sync that comes due during a wave of acks waits for the wave to go quiet, at most WAVE_MAX_WAIT_MS past its due time', async () => {
  const clock = new ManualClock(1000);
  const fleet = new Fleet(() => clock.now());
  const store = new SqliteStore(':memory:');
  const writes: number[] = [];
  const put = store.putPresence.bind(store);
  store.putPresence = (rows) => {
    writes.push(clock.now());
    return put(rows);
  };
  const sync = new PresenceSync({
    store,
    fleet,
    clock,
    log: createLogger('silent'),
    replica: 'A',
    everyMs: 500,
  });
  const settle = () => new Promise((r) => setImmediate(r));
  try {
    await sync.start(); // due next at 1500
    fleet.connected('w1', 'acme', 'bot', []);
    const key = workerKey('acme', 'bot', 'w1');
    /** An ack every 10 ms until `until`. */
    const acks = async (until: number) => {
      for (let rev = 1; clock.now() < until; rev++) {
        fleet.ack(key, rev);
        clock.advance(10);
        await settle();
      }
    };
    clock.advance(480);
    await acks(1700); // a wave from 1480 to 1700: the sync due at 1500 waits for it
    assert.deepEqual(writes, []);
    for (let i = 0; i < 10; i++) {
      clock.advance(5);
      await settle();
    }
    assert.equal(writes.length, 1, 'written once the wave went quiet');
    const quietAt = writes[0]!;
    assert.ok(quietAt >= 1690 + WAVE_QUIET_MS && quietAt <= 1705 + WAVE_QUIET_MS, `written at ${quietAt}`);
    // A wave that does not end: the next sync (due 500 ms later) is written WAVE_MAX_WAIT_MS past its due time.
    await acks(quietAt + 500 + WAVE_MAX_WAIT_MS + 100);
    assert.equal(writes.length, 2);
    const due = quietAt + 500;
    assert.ok(
      writes[1]! >= due + WAVE_MAX_WAIT_MS && writes[1]! <= due + WAVE_MAX_WAIT_MS + WAVE_QUIET_MS + 10,
      `written at ${writes[1]}`,
    );
  } finally {
    await sync.close();
    await store.close();
  }
});
