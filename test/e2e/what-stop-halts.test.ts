/**
 * End to end, real processes: what "stop" must halt beyond the gate (issue 3). Drain versus
 * discard, a restarted worker whose resume is refused and audited, an idempotency key that
 * runs once across a restart, and an irreversible effect cancelled during its cool-off.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, FleetHarness, type AgentProcess } from '@killpath/cli';
import type { AuditRecord, Directive, LedgerEntry } from '@killpath/protocol';
import { startServerProcess, type ServerProcess } from './server-process.ts';

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const ENV = {
  DEMO_PERIOD_MS: '40',
  DEMO_SLOW_MS: '4000',
  KILLPATH_LEASE_MS: '2000',
  KILLPATH_HEARTBEAT_MS: '1000',
};

describe('what stop must halt (real processes)', { timeout: 180_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let fleet: FleetHarness;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'killpath-e2e3-'));
    server = await startServerProcess(dir, 0, ['--keepalive-ms', '300', '--cool-off', '1500']);
    api = new ApiClient(server.url, server.adminToken);
    fleet = await FleetHarness.start({
      api,
      agents: [
        // A slow outbox (300 ms a task, one at a time) so tasks are queued when the halt comes.
        { tenant: 'acme', agent: 'drainer', runs: ['drain-1'], env: { DEMO_OUTBOX_MS: '300' } },
        { tenant: 'acme', agent: 'payer', runs: ['pay-1'], env: { DEMO_IRREVERSIBLE: '1' } },
      ],
      env: ENV,
    });
    await sleep(800);
  });

  after(async () => {
    await fleet?.stop();
    await server?.stop().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const halt = (scope: string, extra: Record<string, unknown> = {}) =>
    api
      .post<{ directive: Directive }>('/v1/directives', {
        level: 'halt',
        scope,
        reason: 'e2e',
        justification: 'what stop must halt',
        ...extra,
      })
      .then((r) => r.directive);
  const resume = (d: Directive) => api.post(`/v1/directives/${d.id}/resume`, { justification: 'e2e done' });
  const observeAt = (a: AgentProcess, rev: number) =>
    a.events.find((e) => e.type === 'rev.applied' && (e.rev ?? 0) >= rev);

  test('drain lets queued tasks run inside the grace, then discards the rest; nothing starts after the grace', async () => {
    const d = await halt('agent:acme/drainer', { drain: 'drain', graceMs: 300 });
    try {
      await sleep(1200);
      await checkDrain(d);
    } finally {
      await resume(d);
    }
  });

  async function checkDrain(d: Directive): Promise<void> {
    const a = fleet.agents[0]!;
    const obs = observeAt(a, d.rev);
    assert.ok(obs, 'the worker observed the halt');
    const tasks = a.events.filter((e) => e.type === 'task.started' && e.at > obs.at);
    assert.ok(
      tasks.every((e) => e.draining === true),
      'only draining tasks started after observe',
    );
    assert.ok(
      tasks.every((e) => e.at <= obs.at + 300 + 50),
      'no task started after the grace',
    );
    const journal = await api.get<{ events: { type: string }[] }>('/v1/runs/drain-1/journal');
    const types = new Set(journal.events.map((e) => e.type));
    const fates = journal.events.filter((e) => e.type === 'queue.drained' || e.type === 'queue.discarded');
    assert.ok(fates.length > 0, `every queued task's fate is journaled (${[...types].join(', ')})`);
    assert.ok(types.has('timer.cancelled'), 'the run-bound interval was cancelled and journaled');
    // No write permit was granted to the drained run after the flip, draining or not.
    const permits = (
      await api.get<{ permits: { runId: string; rev: number }[] }>(`/v1/permits?fromRev=${d.rev}&limit=5000`)
    ).permits;
    assert.equal(permits.filter((r) => r.runId === 'drain-1').length, 0);
  }

  test('an irreversible effect in its cool-off is cancelled by a halt and never lands', async () => {
    const a = fleet.agents[1]!;
    // Wait until a transfer is cooling off.
    const until = Date.now() + 10_000;
    while (
      Date.now() < until &&
      !a.events.some(
        (e) => e.type === 'permit.granted' && e.capability === 'wire_transfer' && e.status === 'cooling_off',
      )
    )
      await sleep(50);
    const d = await halt('run:pay-1');
    try {
      await checkTransfer(a, d);
    } finally {
      await resume(d);
    }
  });

  async function checkTransfer(a: AgentProcess, d: Directive): Promise<void> {
    await sleep(2500);
    const ledger = await api.get<{ effects: LedgerEntry[] }>('/v1/runs/pay-1/journal');
    const transfers = ledger.effects.filter((e) => e.capability === 'wire_transfer');
    assert.ok(
      transfers.some((e) => e.status === 'cancelled' || e.status === 'aborted'),
      `a cooling-off transfer was cancelled (${transfers.map((t) => t.status).join(', ')})`,
    );
    assert.ok(
      transfers.every(
        (e) =>
          e.status !== 'landed' ||
          (e.settledAt !== null && Date.parse(e.settledAt) <= Date.parse(d.issuedAt) + 5),
      ),
      'no transfer landed after the halt',
    );
    const obs = observeAt(a, d.rev)!;
    assert.equal(
      a.events.filter((e) => e.type === 'effect.started' && e.capability === 'wire_transfer' && e.at > obs.at)
        .length,
      0,
    );
  }

  test('a worker restarted with the same run id stays halted: its resume is refused and audited', async () => {
    const d = await halt('run:drain-1');
    try {
      await checkRestart(d);
    } finally {
      await resume(d);
    }
  });

  async function checkRestart(d: Directive): Promise<void> {
    await sleep(300);
    const old = fleet.agents[0]!;
    process.kill(-old.pid, 'SIGKILL');
    await old.exited;
    const [fresh] = await fleet.add({
      api,
      agents: [{ tenant: 'acme', agent: 'drainer', runs: ['drain-1'], env: { DEMO_RESUME: '1' } }],
      env: ENV,
    });
    assert.ok(fresh);
    assert.deepEqual(fresh.refused, ['drain-1'], 'the control plane refused the resume');
    await sleep(500);
    assert.equal(
      fresh.events.filter((e) => e.type === 'effect.started').length,
      0,
      'the restarted worker started nothing',
    );
    const refused = (await api.get<{ records: AuditRecord[] }>('/v1/audit?type=resume.refused&limit=100'))
      .records;
    assert.ok(
      refused.some((r) => r.data.runId === 'drain-1' && r.data.directiveId === d.id),
      'resume.refused is on the audit chain',
    );
  }

  test('a retried idempotency key runs once, also across a restart with the same run id', async () => {
    // The demo agent keys crm.update as <run>:<counter>, so a restarted agent replays its earlier keys.
    const [first] = await fleet.add({
      api,
      agents: [{ tenant: 'acme', agent: 'writer', runs: ['idem-1'] }],
      env: ENV,
    });
    await sleep(1500);
    process.kill(-first!.pid, 'SIGTERM');
    await first!.exited;
    const before = (await api.get<{ effects: LedgerEntry[] }>('/v1/runs/idem-1/journal')).effects.filter(
      (e) => e.capability === 'crm.update' && e.status === 'landed',
    );
    assert.ok(before.length >= 3, 'the first incarnation landed some writes');
    const [second] = await fleet.add({
      api,
      agents: [{ tenant: 'acme', agent: 'writer', runs: ['idem-1'] }],
      env: ENV,
    });
    await sleep(1500);
    const replays = second!.events.filter(
      (e) => e.type === 'permit.granted' && e.capability === 'crm.update' && e.replay === true,
    );
    assert.ok(replays.length >= 1, 'the restarted worker replayed earlier keys');
    const after = (await api.get<{ effects: LedgerEntry[] }>('/v1/runs/idem-1/journal')).effects.filter(
      (e) => e.capability === 'crm.update',
    );
    const keys = after.map((e) => e.idempotencyKey);
    assert.equal(new Set(keys).size, keys.length, 'one ledger entry per idempotency key: nothing ran twice');
    // `effect.started` is recorded right before the effect's function runs: a replayed key has none.
    const replayedIds = new Set(replays.map((e) => e.effectId));
    assert.equal(
      second!.events.filter((e) => e.type === 'effect.started' && replayedIds.has(e.effectId)).length,
      0,
      'a replayed effect never ran again',
    );
  });
});
