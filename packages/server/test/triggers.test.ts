/**
 * The automatic triggers at the control plane, without sockets: telemetry and policy routes
 * (validation, roles), the supervisor firing through the control plane (audit, alert, edge
 * semantics, shadow, automation held), the deadman desk on an injected clock, and the mutual
 * watch of supervisor and watchdog.
 */
import { workerKey } from '../src/fleet.ts';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type {
  AuditRecord,
  Directive,
  HeartbeatReport,
  RunTelemetry,
  WorkerSettings,
} from '@killpath/protocol';
import { Authenticator } from '../src/auth/tokens.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger } from '../src/log.ts';
import type { Alert, AlertSink } from '../src/notify.ts';
import { DEFAULT_POLICY } from '../src/policy/default-policy.ts';
import { Triggers, type TriggerOptions } from '../src/triggers.ts';
import { DeadmanDesk } from '../src/watchdog/deadman.ts';
import { AbsenceWatch } from '../src/watchdog/liveness.ts';
import { compilePolicy } from '../src/policy/policy.ts';
import { ManualClock } from '@killpath/sdk/testing';
import { expectWireError, harness, heartbeatBody, type Harness } from './harness.ts';

const log = createLogger('silent');

class Alerts implements AlertSink {
  readonly got: Omit<Alert, 'at'>[] = [];
  notify(a: Omit<Alert, 'at'>): void {
    this.got.push(a);
  }
}

interface Rig extends Harness {
  t: Triggers;
  alerts: Alerts;
  admin: string;
  agent: string;
  app2: ReturnType<typeof createApp>;
  call(method: string, path: string, token: string, body?: unknown): Promise<Response>;
  audit(type: string): Promise<AuditRecord[]>;
  done(): Promise<void>;
}

async function rig(opts: TriggerOptions = {}): Promise<Rig> {
  const alerts = new Alerts();
  // The triggers take the control plane's clock: a manual one is given to both.
  const h = await harness({ alerts, ...(opts.clock ? { clock: opts.clock } : {}) });
  const t = await Triggers.start(h.cp, log, { watchdog: false, ...opts });
  const app2 = createApp(h.cp, new Authenticator(h.store), log, t);
  const admin = await h.token('admin', '*');
  const agent = await h.token('agent', 'acme', 'bot');
  const call = async (method: string, path: string, token: string, body?: unknown) =>
    app2.request(path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return {
    ...h,
    t,
    alerts,
    admin,
    agent,
    app2,
    call,
    async audit(type) {
      await t.idle();
      await t.supervisor?.drain();
      await h.cp.flushAudit();
      return h.store.listAudit({ types: [type], limit: 1000 });
    },
    async done() {
      await t.close();
      await h.close();
    },
  };
}

const run = (runId: string, over: Partial<RunTelemetry> = {}): RunTelemetry => ({
  runId,
  steps: 0,
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
  ...over,
});

/** A connected worker w1 of acme/bot hosting `runs` (its stream opened and its first heartbeat in). */
function worker(r: Rig, runs: string[], id = 'w1', launcher?: string): void {
  r.cp.fleet.connected(id, 'acme', 'bot', []);
  r.cp.fleet.heartbeat(id, 'acme', 'bot', {
    ...(heartbeatBody() as unknown as HeartbeatReport),
    runs: runs.map((runId) => ({
      runId,
      parentRunId: null,
      lineage: [],
      state: 'running',
      effects: 0,
      denied: 0,
      inFlight: 0,
    })),
    ...(launcher ? { launcher } : {}),
  });
}

async function send(r: Rig, runs: RunTelemetry[]): Promise<void> {
  const res = await r.call('POST', '/v1/telemetry', r.agent, { workerId: 'w1', runs });
  assert.equal(res.status, 204, await res.text());
  await r.t.supervisor?.drain();
}

describe('telemetry and policy routes', () => {
  test('telemetry is validated strictly and only a worker of the agent may send it; heartbeats answer with the worker settings', async () => {
    const r = await rig();
    worker(r, ['r1']);
    await expectWireError(
      await r.call('POST', '/v1/telemetry', r.agent, { workerId: 'w1', runs: [{ ...run('r1'), extra: 1 }] }),
      400,
      'invalid_request',
      'unknown field',
    );
    await expectWireError(
      await r.call('POST', '/v1/telemetry', r.agent, { workerId: 'w1', runs: [run('r1', { steps: -1 })] }),
      400,
      'invalid_request',
      'negative count',
    );
    await expectWireError(
      await r.call('POST', '/v1/telemetry', r.agent, {
        workerId: 'w1',
        runs: [run('r1', { localHalt: { rule: 'boredom', value: 1, limit: 0 } as never })],
      }),
      400,
      'invalid_request',
      'unknown local rule',
    );
    await expectWireError(
      await r.call('POST', '/v1/telemetry', r.agent, 'not json'),
      400,
      'invalid_request',
      'not JSON',
    );
    // Another agent's w1 is a worker of its own (a worker id is its agent's own name).
    const other = await r.token('agent', 'acme', 'other');
    const own = await r.call('POST', '/v1/telemetry', other, { workerId: 'w1', runs: [] });
    assert.equal(own.status, 204);
    const hb = await r.call('POST', '/v1/workers/w1/heartbeat', r.agent, heartbeatBody());
    assert.equal(hb.status, 200);
    assert.deepEqual((await hb.json()) as WorkerSettings, {
      heartbeatMs: 5000,
      limits: { maxSteps: 200, maxCostUsd: 5 },
    });
    await r.done();
  });

  test('the policy is an admin’s: show, apply (validated, audited with diff and author), dry run, history, rollback', async () => {
    const r = await rig();
    const operator = await r.token('operator', 'acme', undefined, 'olga');
    await expectWireError(
      await r.call('GET', '/v1/policy', operator),
      403,
      'forbidden',
      'operators do not read the policy',
    );
    await expectWireError(
      await r.call('POST', '/v1/policy', operator, { source: DEFAULT_POLICY }),
      403,
      'forbidden',
      'nor change it',
    );
    const shown = (await (await r.call('GET', '/v1/policy', r.admin)).json()) as {
      version: number;
      actor: string;
      rules: unknown[];
    };
    assert.equal(shown.version, 1);
    assert.equal(shown.actor, 'killpath:default');
    assert.equal(shown.rules.length, 6);
    const bad = await r.call('POST', '/v1/policy', r.admin, {
      source: 'rules:\n  - { name: a, when: "run.nope", action: { level: halt } }',
    });
    assert.equal(bad.status, 400);
    const badBody = (await bad.json()) as { error: { details: { path: string }[] } };
    assert.equal(badBody.error.details[0]!.path, 'rules[0].when');
    const tighter = DEFAULT_POLICY.replace('maxSteps: 200', 'maxSteps: 50');
    const dry = (await (
      await r.call('POST', '/v1/policy', r.admin, { source: tighter, dryRun: true })
    ).json()) as { dryRun: boolean; version: number; diff: string };
    assert.equal(dry.dryRun, true);
    assert.equal(dry.version, 1);
    assert.match(dry.diff, /- {2}default: \{ maxSteps: 200/);
    const applied = await r.call('POST', '/v1/policy', r.admin, {
      source: tighter,
      comment: 'INC-9: loops too long',
    });
    assert.equal(applied.status, 201);
    assert.equal(((await applied.json()) as { version: number }).version, 2);
    const same = await r.call('POST', '/v1/policy', r.admin, { source: tighter });
    assert.equal(same.status, 200, 'an identical text stores nothing');
    assert.equal(((await same.json()) as { unchanged: boolean }).unchanged, true);
    const hb = (await (
      await r.call('POST', '/v1/workers/w9/heartbeat', r.agent, heartbeatBody())
    ).json()) as WorkerSettings;
    assert.equal(hb.limits.maxSteps, 50, 'workers get the new limits with their next heartbeat');
    const back = await r.call('POST', '/v1/policy/rollback', r.admin, { version: 1, comment: 'undo' });
    assert.equal(back.status, 201);
    await expectWireError(
      await r.call('POST', '/v1/policy/rollback', r.admin, { version: 1, comment: 'again' }),
      409,
      'conflict',
      'already that text',
    );
    await expectWireError(
      await r.call('POST', '/v1/policy/rollback', r.admin, { version: 99, comment: 'x' }),
      404,
      'not_found',
      'unknown version',
    );
    const changes = await r.audit('policy.changed');
    assert.deepEqual(
      changes.map((c) => [c.data.version, c.data.rollbackOf]),
      [
        [1, null],
        [2, null],
        [3, 1],
      ],
    );
    assert.equal(changes[0]!.actor, 'killpath:default');
    assert.match(changes[1]!.actor, /^admin:\*:/, 'the admin who applied it');
    assert.equal(changes[1]!.data.role, 'admin');
    assert.equal(changes[1]!.data.comment, 'INC-9: loops too long');
    assert.match(changes[1]!.data.diff as string, /\+ {2}default: \{ maxSteps: 50/);
    const history = (await (await r.call('GET', '/v1/policy/history', r.admin)).json()) as {
      active: number;
      versions: { version: number }[];
    };
    assert.equal(history.active, 3);
    assert.deepEqual(
      history.versions.map((v) => v.version),
      [3, 2, 1],
    );
    // Issue 18: the total is every version, beyond the page.
    const page = (await (await r.call('GET', '/v1/policy/history?limit=1', r.admin)).json()) as {
      total: number;
      versions: unknown[];
    };
    assert.equal(page.versions.length, 1);
    assert.equal(page.total, 3);
    assert.equal((await r.store.getPolicy())!.digest, (await r.store.getPolicy(1))!.digest);
    assert.ok(r.alerts.got.some((a) => a.kind === 'policy.changed'));
    await r.done();
  });
});

describe('the supervisor through the control plane', () => {
  test('a crossing issues the rule’s directive as supervisor:<rule>, kill_switch.fired names the rule, the operator is alerted; edge-triggered', async () => {
    const r = await rig();
    worker(r, ['r1']);
    await send(r, [run('r1', { steps: 150 })]);
    assert.equal(r.cp.active().length, 0);
    await send(r, [run('r1', { steps: 201 })]);
    const d = r.cp.active().find((x) => x.scopeText === 'run:r1')!;
    assert.ok(d, 'halted');
    assert.equal(d.actor, 'supervisor:loop_length');
    assert.equal(d.level, 'halt');
    assert.match(d.justification, /policy v1 rule loop_length fired on run r1 of acme\/bot \(steps=201/);
    const fired = await r.audit('kill_switch.fired');
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.data.trigger, 'supervisor');
    assert.equal(fired[0]!.data.rule, 'loop_length');
    assert.equal((fired[0]!.data.values as Record<string, number>).steps, 201);
    assert.equal(
      (await r.audit('operator_action')).filter((a) => a.data.action === 'directive.issue').length,
      0,
      'no operator acted',
    );
    const alert = r.alerts.got.find((a) => a.kind === 'kill_switch.fired')!;
    assert.equal(alert.directiveId, d.id);
    assert.equal(alert.details.rule, 'loop_length');
    // Still over the line: no second fire while the condition stays true, even after a resume.
    await send(r, [run('r1', { steps: 260 })]);
    const res = await r.call('POST', `/v1/directives/${d.id}/resume`, r.admin, {
      justification: 'reviewed, let it run',
    });
    assert.equal(res.status, 200);
    await send(r, [run('r1', { steps: 300 })]);
    assert.equal(r.cp.active().length, 0, 'a resume holds while the condition never went false');
    const status = (await (await r.call('GET', '/v1/supervisor', r.admin)).json()) as {
      supervisor: { rules: Record<string, { fired: number }> };
    };
    assert.equal(status.supervisor.rules.loop_length!.fired, 1);
    await r.done();
  });

  test("telemetry naming another agent's run is refused naming the run; another tenant's same id is its own run; no rule fires on acme's run", async () => {
    const r = await rig();
    worker(r, ['r1']);
    await r.store.registerRun({
      runId: 'r1',
      tenant: 'acme',
      agent: 'bot',
      parentRunId: null,
      lineage: [],
      features: [],
      workerId: 'w1',
      startedAt: new Date().toISOString(),
    });
    const other = await r.token('agent', 'acme', 'other');
    const beta = await r.token('agent', 'beta', 'bot');
    const forged = [run('r1', { steps: 500, localHalt: { rule: 'loop_length', value: 500, limit: 200 } })];
    const msg = await expectWireError(
      await r.call('POST', '/v1/telemetry', other, { workerId: 'w1', runs: forged }),
      404,
      'not_found',
      "another agent's run",
    );
    assert.match(msg, /run r1 not found/);
    // Beta's r1 is beta's own run: accepted, and whatever fires is beta's.
    const res = await r.call('POST', '/v1/telemetry', beta, { workerId: 'w1', runs: forged });
    assert.equal(res.status, 204);
    await r.t.supervisor?.drain();
    assert.ok(
      r.cp.active().every((d) => d.tenant === 'beta'),
      JSON.stringify(r.cp.active().map((d) => [d.tenant, d.scopeText])),
    );
    // acme's own counts are its own: under the line, nothing fires on acme's r1.
    await send(r, [run('r1', { steps: 150 })]);
    assert.deepEqual(
      r.cp.active().filter((d) => d.tenant === 'acme'),
      [],
      "no rule fired on acme's run",
    );
    const local = await r.audit('local_rule.fired');
    assert.deepEqual(
      local.map((a) => a.tenant),
      ['beta'],
      "no local halt recorded against acme's run",
    );
    await r.done();
  });

  test("refusals an operator's degrade explains do not trip auth_denial; a capability never granted does", async () => {
    const r = await rig();
    worker(r, ['r1', 'r2']);
    await send(r, [run('r1', { authDenials: 4, revokedDenials: 4 }), run('r2', { authDenials: 1 })]);
    assert.deepEqual(
      r.cp.active().map((d) => d.scopeText),
      ['run:r2'],
    );
    await r.done();
  });

  test('a shadow rule records policy.shadow_fired and issues nothing', async () => {
    const r = await rig();
    worker(r, ['r1']);
    await send(r, [run('r1', { anomalies: 1, anomalyScore: 0.97, anomalyDetail: 'drift' })]);
    assert.equal(r.cp.active().length, 0);
    const shadow = await r.audit('policy.shadow_fired');
    assert.equal(shadow.length, 1);
    assert.equal(shadow[0]!.data.rule, 'anomaly');
    assert.deepEqual(shadow[0]!.data.wouldIssue, { level: 'halt', scope: 'run:r1' });
    assert.equal((await r.audit('kill_switch.fired')).length, 0);
    assert.equal(r.alerts.got.filter((a) => a.kind === 'kill_switch.fired').length, 0);
    await r.done();
  });

  test('a kill the automation policy reserves for people is held: a halt is issued, escalation.held audited and alerted; a critical rule kills', async () => {
    const r = await rig();
    worker(r, ['r1', 'r2']);
    const policy = `rules:
  - { name: kill_soft, when: "run.steps > 5 && run.id == 'r1'", action: { level: kill, scope: run } }
  - { name: kill_hard, when: "run.steps > 5 && run.id == 'r2'", action: { level: kill, scope: run }, critical: true }
`;
    assert.equal((await r.call('POST', '/v1/policy', r.admin, { source: policy })).status, 201);
    await send(r, [run('r1', { steps: 6 }), run('r2', { steps: 6 })]);
    const levels = Object.fromEntries(r.cp.active().map((d: Directive) => [d.scopeText, d.level]));
    assert.deepEqual(levels, { 'run:r1': 'halt', 'run:r2': 'kill' });
    const held = await r.audit('escalation.held');
    assert.equal(held.length, 1);
    assert.equal(held[0]!.data.rule, 'kill_soft');
    assert.equal(held[0]!.data.issued, 'halt');
    assert.ok(r.alerts.got.some((a) => a.kind === 'escalation.held' && a.details.rule === 'kill_soft'));
    const fired = (await r.audit('kill_switch.fired')).find((f) => f.data.rule === 'kill_soft')!;
    assert.equal(fired.data.wanted, 'kill');
    await r.done();
  });

  test('with the supervisor off, telemetry is accepted and rules are not evaluated; a local halt is still audited', async () => {
    const r = await rig({ supervisor: false });
    worker(r, ['r1']);
    await send(r, [run('r1', { steps: 500, localHalt: { rule: 'loop_length', value: 201, limit: 200 } })]);
    const local = await r.audit('local_rule.fired');
    // Everything the batch set off has run (the audit read waits for it): no rule issued anything.
    assert.equal(r.cp.active().length, 0);
    assert.equal(local.length, 1);
    assert.equal(local[0]!.data.runId, 'r1');
    assert.equal(local[0]!.data.rule, 'loop_length');
    await r.done();
  });
});

describe('the deadman desk', () => {
  test('a trip names the identity when two agents use one worker id; each is watched and tripped on its own', async () => {
    const r = await rig();
    let now = 0;
    const policy = compilePolicy(
      DEFAULT_POLICY.replace(
        'default: { intervalMs: 5000, missed: 3, killAfterMs: 0 }',
        'default: { intervalMs: 1000, missed: 3, killAfterMs: 250 }',
      ),
    );
    const desk = new DeadmanDesk(
      r.cp,
      log,
      () => policy,
      () => now,
    );
    worker(r, ['r1'], 'w1');
    const beta = { tenant: 'beta', agent: 'bot' };
    r.cp.fleet.connected('w1', beta.tenant, beta.agent, []);
    r.cp.fleet.heartbeat('w1', beta.tenant, beta.agent, {
      ...(heartbeatBody() as unknown as HeartbeatReport),
      runs: [
        { runId: 'rb', parentRunId: null, lineage: [], state: 'running', effects: 0, denied: 0, inFlight: 0 },
      ],
    });
    desk.heartbeat('w1', { tenant: 'acme', agent: 'bot' });
    desk.heartbeat('w1', beta);
    assert.deepEqual(
      desk
        .watched()
        .map((w) => [w.tenant, w.workerId])
        .sort(),
      [
        ['acme', 'w1'],
        ['beta', 'w1'],
      ],
    );
    now = 2000;
    desk.heartbeat('w1', { tenant: 'acme', agent: 'bot' }); // acme's keeps beating, beta's went silent
    now = 3500;
    await assert.rejects(
      desk.trip('w1', 'test'),
      (err: Error & { code?: string }) => err.code === 'conflict',
    );
    await assert.rejects(
      desk.trip('w1', 'test', { tenant: 'acme', agent: 'bot' }),
      (err: Error & { code?: string }) => err.code === 'conflict',
      "acme's beat within its threshold",
    );
    const trip = await desk.trip('w1', 'test', beta);
    assert.equal(trip.directives.length, 1);
    assert.deepEqual(
      r.cp.active().map((d) => [d.tenant, d.scopeText]),
      [['beta', 'run:rb']],
      "only beta's silent worker's run is halted",
    );
    await r.done();
  });

  test('watches connected workers with runs; trips only past missed × interval; halts each run with a kill step; once per outage', async () => {
    const r = await rig();
    let now = 0;
    const policy = compilePolicy(
      DEFAULT_POLICY.replace(
        'default: { intervalMs: 5000, missed: 3, killAfterMs: 0 }',
        'default: { intervalMs: 1000, missed: 3, killAfterMs: 250 }',
      ),
    );
    const desk = new DeadmanDesk(
      r.cp,
      log,
      () => policy,
      () => now,
    );
    worker(r, ['r1', 'r2'], 'w1', 'launch-1');
    worker(r, [], 'idle');
    assert.deepEqual(desk.heartbeat('w1', { tenant: 'acme', agent: 'bot' }), {
      heartbeatMs: 1000,
      limits: { maxSteps: 200, maxCostUsd: 5 },
    });
    desk.heartbeat('idle', { tenant: 'acme', agent: 'bot' });
    assert.deepEqual(
      desk.watched().map((w) => w.workerId),
      ['w1'],
      'a worker without runs is not watched',
    );
    now = 3000;
    await assert.rejects(
      desk.trip('w1', 'test'),
      (err: Error & { code?: string }) => err.code === 'conflict',
    );
    now = 3001;
    const trip = await desk.trip('w1', 'test');
    assert.equal(trip.directives.length, 2);
    const halts = r.cp.active().filter((d) => d.actor === 'deadman:w1');
    assert.deepEqual(halts.map((d) => d.scopeText).sort(), ['run:r1', 'run:r2']);
    assert.ok(
      halts.every(
        (d) =>
          d.level === 'halt' &&
          d.graceMs === 0 &&
          d.escalation.some((s) => s.level === 'kill' && s.afterMs === 250),
      ),
    );
    const rec = (await r.audit('deadman.triggered'))[0]!;
    assert.equal(rec.data.heartbeatAgoMs, 3001);
    assert.equal(rec.data.thresholdMs, 3000);
    assert.equal(rec.actor, 'watchdog:test');
    assert.equal((await r.audit('kill_switch.fired')).filter((f) => f.data.trigger === 'deadman').length, 2);
    const alert = r.alerts.got.find((a) => a.kind === 'deadman.triggered')!;
    assert.match(
      alert.summary,
      /launcher launch-1 is ordered to kill the process unless it reports halted within 250 ms/,
    );
    assert.equal((await desk.trip('w1', 'test')).already, true, 'once per outage');
    desk.heartbeat('w1', { tenant: 'acme', agent: 'bot' });
    assert.equal(desk.watched()[0]!.tripped, false, 'a heartbeat re-arms it');
    r.cp.fleet.disconnected(workerKey('acme', 'bot', 'w1'));
    assert.deepEqual(desk.watched(), [], 'a worker that closed its stream is not watched');
    await r.done();
  });

  test('an interval tightened by a policy change counts from the one the worker was last told', async () => {
    const r = await rig();
    const now = 0;
    let policy = compilePolicy(DEFAULT_POLICY);
    const desk = new DeadmanDesk(
      r.cp,
      log,
      () => policy,
      () => now,
    );
    worker(r, ['r1']);
    desk.heartbeat('w1', { tenant: 'acme', agent: 'bot' });
    policy = compilePolicy(DEFAULT_POLICY.replace('intervalMs: 5000', 'intervalMs: 500'));
    assert.equal(desk.watched()[0]!.thresholdMs, 15_000, 'told 5 s: judged on 5 s until its next heartbeat');
    desk.heartbeat('w1', { tenant: 'acme', agent: 'bot' });
    assert.equal(desk.watched()[0]!.thresholdMs, 1500);
    await r.done();
  });
});

describe('supervisor and watchdog watch each other', () => {
  test('an absence is raised once per outage and its end once', () => {
    const seen: string[] = [];
    const w = new AbsenceWatch(
      100,
      (age) => seen.push(`absent ${age}`),
      (age) => seen.push(`back ${age}`),
    );
    for (const age of [10, 90, 150, 300, 20, 30, 101]) w.check(age);
    assert.deepEqual(seen, ['absent 150', 'back 20', 'absent 101']);
  });

  test('without a watchdog the supervisor raises watchdog.absent; a beat through the API ends it', async () => {
    const clock = new ManualClock(0, Date.now());
    const r = await rig({ absentAfterMs: 150, clock });
    // Two supervisor beats (every 500 ms) find the watchdog silent for longer than 150 ms.
    clock.advance(1000);
    assert.ok(
      r.alerts.got.some((a) => a.kind === 'watchdog.absent'),
      JSON.stringify(r.alerts.got.map((a) => a.kind)),
    );
    const res = await r.call('POST', '/v1/watchdog/beat', r.admin, { watchdog: 'ops-1' });
    assert.equal(res.status, 200);
    assert.ok(((await res.json()) as { supervisorAgoMs: number }).supervisorAgoMs < 600);
    assert.ok(r.alerts.got.some((a) => a.kind === 'watchdog.recovered'));
    assert.equal((await r.audit('watchdog.absent')).length, 1);
    // Issue 18: the watched workers (none here: no dead-man policy), all of them, with their number.
    const watched = (await (await r.call('GET', '/v1/watchdog/workers', r.admin)).json()) as {
      total: number;
      workers: unknown[];
    };
    assert.deepEqual([watched.total, watched.workers], [0, []]);
    await expectWireError(
      await r.call('POST', '/v1/watchdog/beat', r.agent, { watchdog: 'x' }),
      403,
      'forbidden',
      'agents do not run watchdogs',
    );
    await r.done();
  });

  test('without a supervisor the in-process watchdog raises supervisor.absent', async () => {
    const clock = new ManualClock(0, Date.now());
    const r = await rig({ supervisor: false, watchdog: true, absentAfterMs: 150, watchdogTickMs: 20, clock });
    // The watchdog ticks every 20 ms of the clock; each tick is awaited before the next is due.
    for (let t = 0; t < 600; t += 20) {
      await r.t.watchdog!.idle();
      clock.advance(20);
    }
    await r.t.watchdog!.idle();
    const a = r.alerts.got.find((x) => x.kind === 'supervisor.absent')!;
    assert.ok(a);
    assert.match(a.summary, /never started/);
    assert.equal((await r.audit('supervisor.absent'))[0]!.actor, 'watchdog:serve');
    await r.done();
  });
});
