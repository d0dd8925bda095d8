/**
 * The ladder at the control plane: every level accepted and checked, a throttle re-dialled,
 * permits refused by degrade and isolate, alerts, stepping up and down, escalation of an
 * unacknowledged directive, automatic steps held for a human, and the launcher orders.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditRecord, Directive, LauncherOrders } from '@killpath/protocol';
import { createLogger } from '../src/log.ts';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet } from '../src/fleet.ts';
import { Metrics } from '../src/metrics.ts';
import { StreamHub } from '../src/stream/hub.ts';
import { Notifier, type Alert, type AlertSink } from '../src/notify.ts';
import { ManualClock } from '@killpath/sdk/testing';
import { expectWireError, harness, hostWorker, type Harness } from './harness.ts';

const WHY = { reason: 'test', justification: 'INC-7' };

class Alerts implements AlertSink {
  readonly got: Omit<Alert, 'at'>[] = [];
  notify(a: Omit<Alert, 'at'>): void {
    this.got.push(a);
  }
}

async function issue(h: Harness, token: string, body: Record<string, unknown>): Promise<Directive> {
  const res = await h.req('POST', '/v1/directives', { token, body: { ...WHY, ...body } });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { directive: Directive }).directive;
}

async function audit(h: Harness, type: string): Promise<AuditRecord[]> {
  await h.cp.flushAudit();
  return h.store.listAudit({ types: [type], limit: 1000 });
}

/** Registers a connected worker of acme/bot hosting `runs` (as its first heartbeat would). */
function worker(h: Harness, id: string, runs: string[], launcher?: string): void {
  hostWorker(h.cp.fleet, id, { runs, launcher });
}

const grant = (runId: string, capability: string, cls = 'write') => ({
  workerId: 'w1',
  runId,
  lineage: [],
  features: [],
  capability,
  class: cls,
  idempotencyKey: null,
  argsDigest: null,
  compensate: null,
});

describe('the ladder at the control plane', () => {
  test('a throttle re-dialled at the same scope replaces the old one at one rev; another scope keeps its own', async () => {
    const h = await harness();
    const admin = await h.token('admin', '*');
    const slow = await issue(h, admin, {
      level: 'throttle',
      scope: 'agent:acme/bot',
      rate: { perSecond: 2, per: 'run' },
    });
    const other = await issue(h, admin, {
      level: 'throttle',
      scope: 'agent:acme/other',
      rate: { perSecond: 2, per: 'run' },
    });
    const fast = await issue(h, admin, {
      level: 'throttle',
      scope: 'agent:acme/bot',
      rate: { perSecond: 20, per: 'agent' },
    });
    const board = await h.store.switchboard();
    assert.deepEqual(board.directives.map((d) => d.id).sort(), [other.id, fast.id].sort());
    assert.equal(
      (await h.store.getDirective(slow.id))?.clearedRev,
      fast.rev,
      'the old rate was cleared at the new one’s rev',
    );
    const cleared = await audit(h, 'directive.cleared');
    assert.equal(cleared.length, 1);
    assert.equal(cleared[0]!.data.replacedBy, fast.id);
    await h.close();
  });

  test('degrade and isolate refuse write permits with their reasons; reads of other capabilities are not theirs to refuse', async () => {
    const alerts = new Alerts();
    const h = await harness({ alerts });
    const admin = await h.token('admin', '*');
    const agent = await h.token('agent', 'acme', 'bot');
    worker(h, 'w1', ['r1', 'r2', 'r3']);
    await issue(h, admin, {
      level: 'degrade',
      scope: 'run:r1',
      capabilities: ['wire_transfer'],
      tenant: 'acme',
    });
    await issue(h, admin, { level: 'degrade', scope: 'run:r2', tenant: 'acme' });
    await issue(h, admin, { level: 'isolate', scope: 'run:r3', tenant: 'acme' });
    const ask = (body: Record<string, unknown>) => h.req('POST', '/v1/permits', { token: agent, body });
    const reasonOf = async (res: Response) =>
      ((await res.json()) as { error: { details: { reason: string } } }).error.details.reason;
    let res = await ask(grant('r1', 'wire_transfer'));
    assert.equal(res.status, 409);
    assert.equal(await reasonOf(res), 'revoked');
    assert.equal(
      (await ask(grant('r1', 'crm.update'))).status,
      201,
      'another capability of the degraded run is granted',
    );
    res = await ask(grant('r2', 'crm.update'));
    assert.equal(await reasonOf(res), 'read_only');
    res = await ask(grant('r3', 'crm.update', 'irreversible'));
    assert.equal(await reasonOf(res), 'isolated');
    worker(h, 'w2', ['r4']);
    const freeze = await issue(h, admin, { level: 'freeze', scope: 'run:r4', tenant: 'acme' });
    res = await ask(grant('r4', 'crm.update'));
    assert.equal(await reasonOf(res), 'frozen', 'a freeze refuses every permit of the run');
    await h.req('POST', `/v1/directives/${freeze.id}/resume`, { token: admin, body: { justification: 'x' } });
    // Every degradation alerts; so does an isolation.
    assert.deepEqual(
      alerts.got.map((a) => a.kind),
      ['degraded', 'degraded', 'isolated'],
    );
    assert.match(alerts.got[1]!.summary, /read-only/);
    // The fleet shows what the switchboard does to the worker, whatever the worker says.
    const fleet = h.cp.fleetView(undefined);
    assert.deepEqual(fleet[0]!.flags, {
      throttled: null,
      degraded: ['*', 'wire_transfer'],
      isolated: true,
      frozen: false,
    });
    await h.close();
  });

  test('stepping up and down the ladder replaces the directive; the ends of the ladder and a throttle without a rate are refused', async () => {
    const h = await harness();
    const op = await h.token('operator', 'acme');
    const halt = await issue(h, op, { level: 'halt', scope: 'agent:acme/bot' });
    let res = await h.req('POST', `/v1/directives/${halt.id}/step`, {
      token: op,
      body: { direction: 'up', justification: 'not stopping' },
    });
    assert.equal(res.status, 201);
    const freeze = ((await res.json()) as { directive: Directive }).directive;
    assert.equal(freeze.level, 'freeze', 'above halt: freeze');
    assert.equal(freeze.escalatedFrom, halt.id);
    res = await h.req('POST', `/v1/directives/${freeze.id}/step`, {
      token: op,
      body: { direction: 'up', justification: 'evidence taken' },
    });
    assert.equal(res.status, 201);
    const kill = ((await res.json()) as { directive: Directive }).directive;
    assert.equal(kill.level, 'kill');
    assert.equal(kill.escalatedFrom, freeze.id);
    assert.equal(freeze.reason, 'not stopping', "the stepped directive carries the step's own reason");
    assert.equal(kill.reason, 'evidence taken');
    assert.equal(kill.justification, 'evidence taken');
    await expectWireError(
      await h.req('POST', `/v1/directives/${kill.id}/step`, {
        token: op,
        body: { direction: 'up', justification: 'x' },
      }),
      409,
      'conflict',
    );
    const degrade = await issue(h, op, { level: 'degrade', scope: 'agent:acme/other' });
    await expectWireError(
      await h.req('POST', `/v1/directives/${degrade.id}/step`, {
        token: op,
        body: { direction: 'down', justification: 'x' },
      }),
      400,
      'invalid_request',
    );
    res = await h.req('POST', `/v1/directives/${degrade.id}/step`, {
      token: op,
      body: { direction: 'down', justification: 'calmer', rate: { perSecond: 3, per: 'run' } },
    });
    assert.equal(res.status, 201);
    const throttle = ((await res.json()) as { directive: Directive }).directive;
    assert.deepEqual([throttle.level, throttle.rate], ['throttle', { perSecond: 3, per: 'run' }]);
    await expectWireError(
      await h.req('POST', `/v1/directives/${throttle.id}/step`, {
        token: op,
        body: { direction: 'down', justification: 'x' },
      }),
      409,
      'conflict',
    );
    const active = (await h.store.switchboard()).directives.map((d) => d.id).sort();
    assert.deepEqual(active, [kill.id, throttle.id].sort());
    // Another tenant's operator cannot see it to step it.
    const globex = await h.token('operator', 'globex');
    await expectWireError(
      await h.req('POST', `/v1/directives/${kill.id}/step`, {
        token: globex,
        body: { direction: 'down', justification: 'x' },
      }),
      404,
      'not_found',
    );
    await h.close();
  });

  test('a directive narrowed to tools steps over isolate, and a frozen tool carries no automatic kill', async () => {
    const h = await harness();
    const op = await h.token('operator', 'acme');
    const revoke = await issue(h, op, {
      level: 'degrade',
      scope: 'agent:acme/bot',
      capabilities: ['wire_transfer'],
    });
    const res = await h.req('POST', `/v1/directives/${revoke.id}/step`, {
      token: op,
      body: { direction: 'up', justification: 'still wiring money' },
    });
    assert.equal(res.status, 201);
    const frozen = ((await res.json()) as { directive: Directive }).directive;
    assert.deepEqual([frozen.level, frozen.capabilities, frozen.escalation], ['halt', ['wire_transfer'], []]);
    // Freeze stops the whole process: a tool halt steps over it to a tool kill, and it cannot be narrowed.
    const up = await h.req('POST', `/v1/directives/${frozen.id}/step`, {
      token: op,
      body: { direction: 'up', justification: 'still wiring money' },
    });
    assert.equal(up.status, 201);
    const killTool = ((await up.json()) as { directive: Directive }).directive;
    assert.deepEqual([killTool.level, killTool.capabilities], ['kill', ['wire_transfer']]);
    await expectWireError(
      await h.req('POST', '/v1/directives', {
        token: op,
        body: {
          level: 'freeze',
          scope: 'agent:acme/bot',
          capabilities: ['wire_transfer'],
          reason: 'x',
          justification: 'x',
        },
      }),
      400,
      'invalid_request',
    );
    await h.close();
  });

  test('a launcher whose agent never acknowledged a halt (no worker registered) is a laggard: the kill reaches it', async () => {
    const clock = new ManualClock(0, Date.now());
    const h = await harness({ escalationSlackMs: 20, clock });
    const op = await h.token('operator', 'acme');
    const sink = {
      launcherId: 'L9',
      tenant: 'acme',
      agent: 'nosdk',
      runId: 'n-1',
      features: [],
      write: () => true,
      close() {},
    };
    h.cp.launchers.attach(sink, 0, h.cp.active());
    const halt = await issue(h, op, { level: 'halt', scope: 'agent:acme/nosdk', graceMs: 30 });
    // Past grace + slack on the control plane's clock (the halt was committed at most a few real ms after it started).
    clock.advance(60_000);
    await h.cp.escalationsSettled();
    const escalated = await audit(h, 'directive.escalated');
    assert.equal(escalated.length, 1, 'no worker to wait for, yet the halt escalates');
    assert.equal(escalated[0]!.data.from, halt.id);
    assert.deepEqual(escalated[0]!.data.laggards, ['launcher:L9'], 'directive.escalated names the launcher');
    assert.equal(
      h.cp.launchers.orders(sink, h.cp.hub.rev, h.cp.active()).kill?.level,
      'kill',
      'the kill reaches it',
    );
    await h.close();
  });

  test('a halt no covered worker acknowledges escalates to kill after its grace, audited; one every worker acknowledged does not', async () => {
    const alerts = new Alerts();
    const clock = new ManualClock(0, Date.now());
    const h = await harness({ alerts, escalationSlackMs: 20, clock });
    const op = await h.token('operator', 'acme');
    worker(h, 'w1', ['r1']);
    worker(h, 'w2', ['r2']);
    const quiet = await issue(h, op, { level: 'halt', scope: 'run:r1', graceMs: 30 });
    const answered = await issue(h, op, { level: 'halt', scope: 'run:r2', graceMs: 30 });
    assert.deepEqual(quiet.escalation, [{ level: 'kill', afterMs: 50 }], 'a halt carries its kill step');
    h.cp.halted(
      'w2',
      { tenant: 'acme', agent: 'bot' },
      {
        rev: answered.rev,
        directiveId: answered.id,
        runs: ['r2'],
        aborted: 0,
        completed: 0,
        observeToSettleMs: 1,
      },
    );
    clock.advance(60_000);
    await h.cp.escalationsSettled();
    const escalated = await audit(h, 'directive.escalated');
    assert.equal(escalated.length, 1);
    assert.equal(escalated[0]!.data.from, quiet.id);
    assert.deepEqual(escalated[0]!.data.laggards, ['w1']);
    const board = (await h.store.switchboard()).directives;
    const kill = board.find((d) => d.level === 'kill');
    assert.ok(kill, 'a kill is on the switchboard');
    assert.equal(kill.scopeText, 'run:r1');
    assert.equal(kill.escalatedFrom, quiet.id);
    assert.match(kill.actor, /^escalation:/);
    assert.ok(
      board.some((d) => d.id === answered.id),
      'the acknowledged halt stays a halt',
    );
    assert.ok(!board.some((d) => d.id === quiet.id), 'the escalated halt was replaced');
    const fired = (await audit(h, 'kill_switch.fired')).filter((r) => r.data.trigger === 'escalation');
    assert.equal(fired.length, 1);
    assert.ok(alerts.got.some((a) => a.kind === 'escalated'));
    await h.close();
  });

  test('after a restart, a re-armed escalation counts the halted reports made before it: no kill for a worker that acknowledged', async () => {
    const clock = new ManualClock(0, Date.now());
    const h = await harness({ escalationSlackMs: 300, clock });
    const op = await h.token('operator', 'acme');
    worker(h, 'w1', ['r1']);
    const d = await issue(h, op, { level: 'halt', scope: 'run:r1', graceMs: 100 });
    h.cp.halted(
      'w1',
      { tenant: 'acme', agent: 'bot' },
      { rev: d.rev, directiveId: d.id, runs: ['r1'], aborted: 0, completed: 0, observeToSettleMs: 1 },
    );
    await h.cp.flushAudit();
    h.cp.stop();
    // A new control plane on the same store: the worker reconnects, its report went to the old one.
    const cp = new ControlPlane({
      store: h.store,
      hub: new StreamHub(60_000, await h.store.rev()),
      fleet: new Fleet(),
      metrics: new Metrics(),
      log: createLogger('silent'),
      keepaliveMs: 60_000,
      escalationSlackMs: 300,
      clock,
    });
    await cp.start();
    cp.fleet.connected('w1', 'acme', 'bot', []);
    cp.fleet.heartbeat('w1', 'acme', 'bot', {
      rev: d.rev,
      features: [],
      pid: 1,
      sinceContactMs: 0,
      runs: [
        { runId: 'r1', parentRunId: null, lineage: [], state: 'halt', effects: 0, denied: 0, inFlight: 0 },
      ],
    });
    // Well past grace + slack: the re-armed kill step falls due and finds no laggard.
    clock.advance(60_000);
    await cp.escalationsSettled();
    await cp.flushAudit();
    assert.equal(
      (await h.store.listAudit({ types: ['directive.escalated'], limit: 10 })).length,
      0,
      'no escalation',
    );
    assert.ok(
      (await h.store.switchboard()).directives.some((x) => x.id === d.id && x.level === 'halt'),
      'the halt stays a halt',
    );
    cp.stop();
    await h.close();
  });

  test('an automatic directive’s step to a level reserved for people is held and alerted, not taken', async () => {
    const alerts = new Alerts();
    const clock = new ManualClock(0, Date.now());
    const h = await harness({ alerts, clock });
    const supervisor = await h.token('operator', 'acme', undefined, 'supervisor:cost-cap');
    worker(h, 'w1', ['r1']);
    const degrade = await issue(h, supervisor, {
      level: 'degrade',
      scope: 'run:r1',
      escalation: [{ level: 'isolate', afterMs: 20 }],
    });
    clock.advance(60_000);
    await h.cp.escalationsSettled();
    const held = await audit(h, 'escalation.held');
    assert.equal(held.length, 1);
    assert.equal(held[0]!.data.level, 'isolate');
    assert.deepEqual(
      (await h.store.switchboard()).directives.map((d) => d.id),
      [degrade.id],
      'nothing was escalated',
    );
    assert.ok(alerts.got.some((a) => a.kind === 'escalation.held'));
    await h.close();
  });

  test('launcher orders follow the switchboard: own identity, and runs its agent hosts', async () => {
    const h = await harness();
    const op = await h.token('operator', 'acme');
    worker(h, 'w1', ['r9'], 'L1');
    const orders: LauncherOrders[] = [];
    const sink = {
      launcherId: 'L1',
      tenant: 'acme',
      agent: 'bot',
      runId: null,
      features: [],
      write(text: string) {
        const m = /^event: orders\ndata: (.*)$/m.exec(text);
        if (m) orders.push(JSON.parse(m[1]!) as LauncherOrders);
        return true;
      },
      close() {},
    };
    h.cp.launchers.attach(sink, 0, h.cp.active());
    assert.deepEqual([orders.length, orders[0]!.kill, orders[0]!.isolate], [1, null, null]);
    const iso = await issue(h, op, { level: 'isolate', scope: 'agent:acme/bot' });
    assert.equal(orders.at(-1)!.isolate?.id, iso.id);
    await issue(h, op, { level: 'halt', scope: 'agent:acme/bot', capabilities: ['llm'] });
    assert.equal(orders.length, 2, 'a tool freeze is not the launcher’s business');
    const kill = await issue(h, op, { level: 'kill', scope: 'run:r9', tenant: 'acme' });
    assert.equal(orders.at(-1)!.kill?.id, kill.id, 'a kill of a run the agent hosts reaches its launcher');
    const res = await h.req('POST', `/v1/directives/${iso.id}/resume`, {
      token: op,
      body: { justification: 'ok' },
    });
    assert.equal(res.status, 200);
    assert.equal(orders.at(-1)!.isolate, null);
    const freeze = await issue(h, op, { level: 'freeze', scope: 'run:r9', tenant: 'acme' });
    assert.equal(
      orders.at(-1)!.freeze?.id,
      freeze.id,
      'a freeze of a run the agent hosts reaches its launcher',
    );
    assert.equal(h.cp.fleetView(undefined)[0]!.flags.frozen, true, 'the fleet shows the worker frozen');
    await h.close();
  });
});

describe('the notification sink', () => {
  const received: { attempt: string | undefined; body: Alert }[] = [];
  let failFirst = 2;
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      if (failFirst > 0) {
        failFirst--;
        res.writeHead(503).end();
        return;
      }
      received.push({
        attempt: req.headers['x-killpath-attempt'] as string | undefined,
        body: JSON.parse(text) as Alert,
      });
      res.writeHead(204).end();
    });
  });
  after(() => server.close());

  test('an alert reaches the webhook after retries, and a dead webhook gives up without throwing', async () => {
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const n = new Notifier({
      webhooks: [url, 'http://127.0.0.1:1/nothing-listens'],
      attempts: 3,
      backoffMs: 5,
      log: createLogger('silent'),
    });
    n.notify({
      kind: 'degraded',
      summary: 'acme/bot degraded',
      tenant: 'acme',
      directiveId: 'd_1',
      details: { scope: 'agent:acme/bot' },
    });
    await n.drain();
    assert.equal(received.length, 1);
    assert.equal(received[0]!.attempt, '3', 'delivered on the third attempt after two 503s');
    assert.equal(received[0]!.body.kind, 'degraded');
    assert.equal(received[0]!.body.directiveId, 'd_1');
    assert.equal(n.recent.length, 1);
  });

  test('a webhook that is not http(s) is refused at start', () => {
    assert.throws(
      () => new Notifier({ webhooks: ['file:///etc/passwd'], log: createLogger('silent') }),
      /not http/,
    );
  });
});
