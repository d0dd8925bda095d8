import { test } from 'node:test';
import assert from 'node:assert/strict';
import { workerWarning, type HeartbeatReport } from '@killpath/protocol';
import { Fleet, workerKey } from '../src/fleet.ts';

const beat = (over: Partial<HeartbeatReport> = {}): HeartbeatReport => ({
  rev: 1,
  features: [],
  runs: [
    { runId: 'r1', parentRunId: null, lineage: [], state: 'running', effects: 0, denied: 0, inFlight: 0 },
  ],
  pid: 4242,
  sinceContactMs: 0,
  ...over,
});

test('a new worker shows no heartbeat yet, not one as old as its connection', () => {
  let now = 1_000;
  const fleet = new Fleet(() => now);
  fleet.connected('w1', 'acme', 'bot', []);
  now += 20_000;
  assert.equal(fleet.list(undefined, 1)[0]!.lastHeartbeatAgoMs, null, 'connected, never beat');
  fleet.heartbeat('w1', 'acme', 'bot', beat());
  now += 1_500;
  assert.equal(fleet.list(undefined, 1)[0]!.lastHeartbeatAgoMs, 1_500);
});

test('a worker whose launcher reported its process gone leaves the fleet view after a short while', () => {
  let now = 1_000;
  const fleet = new Fleet(() => now, 15_000, 10_000);
  const launcher = { tenant: 'acme', agent: 'bot', launcherId: 'l1' };
  fleet.connected('w1', 'acme', 'bot', []);
  fleet.heartbeat('w1', 'acme', 'bot', beat({ launcher: 'l1' }));
  fleet.connected('w2', 'acme', 'bot', []);
  fleet.heartbeat('w2', 'acme', 'bot', beat({ pid: 777 }));
  fleet.disconnected(workerKey('acme', 'bot', 'w1'));
  fleet.disconnected(workerKey('acme', 'bot', 'w2'));
  fleet.processGone(launcher, 4242);
  now += 9_000;
  assert.deepEqual(
    fleet.list(undefined, 1).map((w) => w.workerId),
    ['w1', 'w2'],
    'still shown just after',
  );
  now += 20_000;
  const left = fleet.list(undefined, 1);
  assert.deepEqual(
    left.map((w) => [w.workerId, w.state]),
    [['w2', 'stale']],
    'the gone one left; one without a launcher stays stale (nobody says it is gone)',
  );
});

test('a killed worker that is alive and not under a launcher is flagged: the kill cannot end it', () => {
  const base = { state: 'kill', connected: true, launcher: null } as const;
  assert.equal(workerWarning(base), 'process alive, not under a launcher: the kill cannot end it');
  assert.equal(workerWarning({ ...base, launcher: 'l1' }), null, 'the launcher ends it');
  assert.equal(workerWarning({ ...base, connected: false }), null, 'not known alive');
  assert.equal(workerWarning({ ...base, state: 'halt' }), null);
});
