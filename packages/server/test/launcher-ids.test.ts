import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord, LauncherOrders } from '@killpath/protocol';
import { liveServer, type LiveServer, type SseReader } from './live-server.ts';

const orders = (e: { event: string }) => e.event === 'orders';
const hb = (launcher: string, runs: string[]) => ({
  rev: 0,
  features: [],
  pid: 4242,
  sinceContactMs: 1,
  launcher,
  runs: runs.map((runId) => ({
    runId,
    parentRunId: null,
    lineage: [],
    state: 'running',
    effects: 0,
    denied: 0,
    inFlight: 0,
  })),
});
const launcherPath = (l: string, tenant: string, agent: string) =>
  `/v1/launchers/stream?launcher=${l}&tenant=${tenant}&agent=${agent}`;

/** Acme's launcher `L` with a worker of acme/bot reporting it; beta's and acme/other's tokens beside. */
interface World {
  s: LiveServer;
  acmeAgent: string;
  acmeOther: string;
  betaAgent: string;
  acmeOp: string;
  betaOp: string;
  admin: string;
  acmeLauncher: SseReader;
}

async function world(): Promise<World> {
  const s = await liveServer();
  const w = {
    s,
    acmeAgent: await s.token('agent', 'acme', 'bot'),
    acmeOther: await s.token('agent', 'acme', 'other'),
    betaAgent: await s.token('agent', 'beta', 'bot'),
    acmeOp: await s.token('operator', 'acme'),
    betaOp: await s.token('operator', 'beta'),
    admin: await s.token('admin', '*'),
  };
  const acmeLauncher = await s.stream(launcherPath('L', 'acme', 'bot'), w.acmeAgent);
  assert.equal(acmeLauncher.status, 200);
  await acmeLauncher.until(orders);
  const beat = await s.call('POST', '/v1/workers/wa/heartbeat', w.acmeAgent, hb('L', ['ra']));
  assert.equal(beat.status, 200, JSON.stringify(beat.body));
  return { ...w, acmeLauncher };
}

const lastOrders = (r: SseReader): LauncherOrders => r.events.filter(orders).at(-1)!.data as LauncherOrders;

describe('launcher ids belong to one tenant and agent', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });
  afterEach(async () => {
    await w.s.close();
  });

  test("a beta worker naming acme's launcher never brings a beta kill to acme's launcher", async () => {
    const beat = await w.s.call('POST', '/v1/workers/wb/heartbeat', w.betaAgent, hb('L', ['rb']));
    assert.ok(beat.status < 500, JSON.stringify(beat.body));
    const kill = await w.s.call('POST', '/v1/directives', w.betaOp, {
      level: 'kill',
      scope: 'run:rb',
      reason: 'beta stops its own run',
      justification: 'INC-B',
    });
    assert.equal(kill.status, 201, JSON.stringify(kill.body));
    // Acme's own kill does reach it (the control): every order before it had no kill.
    const own = await w.s.call('POST', '/v1/directives', w.acmeOp, {
      level: 'kill',
      scope: 'run:ra',
      reason: 'acme stops its run',
      justification: 'INC-A',
    });
    assert.equal(own.status, 201);
    const ownId = (own.body as { directive: { id: string } }).directive.id;
    await w.acmeLauncher.until((e) => orders(e) && (e.data as LauncherOrders).kill?.id === ownId);
    const kills = w.acmeLauncher.events
      .filter(orders)
      .map((e) => (e.data as LauncherOrders).kill?.id ?? null)
      .filter((id) => id !== null);
    assert.deepEqual(kills, [ownId], "only acme's kill reached acme's launcher");
  });

  test("beta opening a launcher stream under acme's id learns nothing of acme", async () => {
    const halt = await w.s.call('POST', '/v1/directives', w.acmeOp, {
      level: 'halt',
      scope: 'run:ra',
      reason: 'ACME-SECRET-REASON',
      justification: 'ACME-SECRET-JUSTIFICATION',
    });
    assert.equal(halt.status, 201);
    await w.acmeLauncher.until((e) => orders(e) && (e.data as LauncherOrders).halt !== null);
    const beta = await w.s.stream(launcherPath('L', 'beta', 'bot'), w.betaAgent);
    assert.equal(beta.status, 200, 'beta has its own launcher L');
    const o = (await beta.until(orders)) as LauncherOrders;
    assert.deepEqual([o.kill, o.isolate, o.halt], [null, null, null]);
    assert.ok(!JSON.stringify(beta.events).includes('ACME'));
    beta.close();
  });

  test('launcher orders carry no reasons or justifications, even to the owner', async () => {
    await w.s.call('POST', '/v1/directives', w.acmeOp, {
      level: 'halt',
      scope: 'run:ra',
      reason: 'ACME-REASON',
      justification: 'ACME-JUSTIFICATION',
    });
    await w.acmeLauncher.until((e) => orders(e) && (e.data as LauncherOrders).halt !== null);
    const halt = lastOrders(w.acmeLauncher).halt as unknown as Record<string, unknown>;
    for (const k of ['reason', 'justification', 'actor']) assert.ok(!(k in halt), k);
  });

  test('another agent of the same tenant may not open, heartbeat with, or report for the launcher', async () => {
    const other = await w.s.stream(launcherPath('L', 'acme', 'other'), w.acmeOther);
    assert.equal(other.status, 409);
    other.close();
    const beat = await w.s.call('POST', '/v1/workers/wo/heartbeat', w.acmeOther, hb('L', ['ro']));
    assert.equal(beat.status, 409, JSON.stringify(beat.body));
    const fleet = await w.s.call('GET', '/v1/fleet', w.admin);
    const wo = (fleet.body as { workers: { workerId: string; launcher: string | null }[] }).workers.find(
      (x) => x.workerId === 'wo',
    );
    assert.equal(wo?.launcher ?? null, null, 'the refused heartbeat did not attach L');
    const events = await w.s.call('POST', '/v1/launchers/L/events', w.acmeOther, {
      events: [{ type: 'process.killed', pid: 1, signal: 'SIGKILL', ms: 1 }],
    });
    assert.equal(events.status, 404);
  });

  test("launcher events from another tenant's or agent's token touch neither permits nor the record", async () => {
    await w.s.call('POST', '/v1/runs', w.acmeAgent, {
      runId: 'ra',
      parentRunId: null,
      lineage: [],
      features: [],
      workerId: 'wa',
    });
    const permit = await w.s.call('POST', '/v1/permits', w.acmeAgent, {
      workerId: 'wa',
      runId: 'ra',
      lineage: [],
      features: [],
      capability: 'crm.update',
      class: 'write',
      idempotencyKey: null,
      argsDigest: null,
      compensate: null,
    });
    assert.equal(permit.status, 201, JSON.stringify(permit.body));
    const before = await w.s.call('GET', '/v1/audit?limit=5000', w.admin);
    assert.equal(before.status, 200, JSON.stringify(before.body));
    const count = (before.body as { records: AuditRecord[] }).records.length;
    for (const token of [w.betaAgent, w.acmeOther]) {
      for (const type of ['process.exited', 'process.killed']) {
        const r = await w.s.call('POST', '/v1/launchers/L/events', token, {
          events: [{ type, pid: 1, signal: 'SIGKILL', ms: 1 }],
        });
        assert.equal(r.status, 404, `${type}: ${JSON.stringify(r.body)}`);
      }
    }
    const ledger = await w.s.call('GET', '/v1/runs/ra/journal', w.acmeOp);
    const effects = (ledger.body as { effects: { status: string }[] }).effects;
    assert.deepEqual(
      effects.map((e) => e.status),
      ['granted'],
    );
    const after = await w.s.call('GET', '/v1/audit?limit=5000', w.admin);
    assert.equal((after.body as { records: AuditRecord[] }).records.length, count, 'no record');
    assert.equal(w.s.server.controlPlane.recentAlerts().filter((a) => a.kind === 'process.killed').length, 0);
    // The owner's report does act (the control).
    const own = await w.s.call('POST', '/v1/launchers/L/events', w.acmeAgent, {
      events: [{ type: 'process.exited', pid: 1, code: 1 }],
    });
    assert.equal(own.status, 204, JSON.stringify(own.body));
    const ledger2 = await w.s.call('GET', '/v1/runs/ra/journal', w.acmeOp);
    assert.deepEqual(
      (ledger2.body as { effects: { status: string }[] }).effects.map((e) => e.status),
      ['in_doubt'],
    );
  });
});
