/**
 * The fleet's side of shared presence: what it publishes (changed workers, tombstones) and how it
 * merges what other replicas published (its own live streams win; another replica's worker is
 * connected only while that replica refreshes it). On a manual fleet clock; wall time = clock + W.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScope, type Directive } from '@killpath/protocol';
import { Fleet, workerKey } from '../src/fleet.ts';
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
