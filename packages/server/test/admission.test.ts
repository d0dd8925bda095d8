/**
 * Admission control: under overload the kill path wins. Telemetry and read queries are shed
 * with 429 `overloaded` and `Retry-After`; directives, streams, acks, halted reports and
 * heartbeats never are. The event loop's lateness comes from an injected source, so these tests
 * decide "overloaded" exactly instead of making the machine slow.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Admission, loopLagProbe, priorityOf, type Priority } from '../src/http/admission.ts';
import { expectWireError, harness, heartbeatBody } from './harness.ts';

describe('request priorities', () => {
  const table: [string, string, Priority][] = [
    ['POST', '/v1/directives', 'critical'],
    ['POST', '/v1/directives/d_1/resume', 'critical'],
    ['POST', '/v1/directives/d_1/step', 'critical'],
    ['POST', '/v1/agents/acme/bot/kill', 'critical'],
    ['GET', '/v1/stream', 'critical'],
    ['GET', '/v1/launchers/stream', 'critical'],
    ['POST', '/v1/workers/w1/halted', 'critical'],
    ['POST', '/v1/workers/w1/ack', 'critical'],
    ['POST', '/v1/workers/w1/heartbeat', 'critical'],
    ['POST', '/v1/launchers/l1/events', 'critical'],
    ['POST', '/v1/watchdog/beat', 'critical'],
    ['POST', '/v1/tokens', 'critical'],
    ['GET', '/healthz', 'critical'],
    ['POST', '/v1/permits', 'normal'],
    ['POST', '/v1/permits/p1/outcome', 'normal'],
    ['POST', '/v1/journal', 'normal'],
    ['POST', '/v1/runs', 'normal'],
    ['GET', '/v1/directives', 'normal'],
    ['GET', '/v1/whoami', 'normal'],
    ['POST', '/v1/telemetry', 'low'],
    ['GET', '/v1/fleet', 'low'],
    ['GET', '/v1/audit', 'low'],
    ['GET', '/v1/audit/verify', 'low'],
    ['GET', '/v1/alerts', 'low'],
    ['GET', '/v1/compensations', 'low'],
    ['GET', '/v1/runs/r1/journal', 'low'],
    ['GET', '/v1/directives/d1/permitted-after', 'low'],
    ['GET', '/v1/policy/history', 'low'],
    ['GET', '/v1/drills', 'low'],
    ['GET', '/metrics', 'low'],
    ['GET', '/', 'low'],
    ['GET', '/console/app.js', 'low'],
  ];
  for (const [method, path, want] of table)
    it(`${method} ${path} is ${want}`, () => assert.equal(priorityOf(method, path), want));
});

describe('shedding under overload', () => {
  it('sheds read queries and telemetry with 429 and Retry-After while the loop is late; the kill path goes through', async () => {
    let lag = 0;
    const shed: string[] = [];
    const admission = new Admission({
      lag: { lagMs: () => lag },
      shedLagMs: 50,
      floodPerS: 1,
      onShed: (p, path) => shed.push(`${p} ${path}`),
    });
    const h = await harness({ admission });
    try {
      const op = await h.token('operator', 'acme');
      const agent = await h.token('agent', 'acme', 'bot');
      assert.equal((await h.req('GET', '/v1/fleet', { token: op })).status, 200, 'admitted when not late');

      lag = 120;
      const fleet = await h.req('GET', '/v1/fleet', { token: op });
      assert.equal(fleet.headers.get('retry-after'), '1');
      const message = await expectWireError(fleet, 429, 'overloaded', 'fleet read under overload');
      assert.match(
        message,
        /event loop 120 ms late, 2 read queries and telemetry batches in the last second/,
      );
      await expectWireError(
        await h.req('POST', '/v1/telemetry', { token: agent, body: { workerId: 'w1', runs: [] } }),
        429,
        'overloaded',
        'telemetry under overload',
      );
      await expectWireError(
        await h.req('GET', '/v1/audit', { token: op }),
        429,
        'overloaded',
        'audit tail under overload',
      );

      const issued = await h.req('POST', '/v1/directives', {
        token: op,
        body: { level: 'halt', scope: 'agent:acme/bot', reason: 'runaway', justification: 'overload test' },
      });
      assert.equal(issued.status, 201, 'a directive is never shed');
      const { directive } = (await issued.json()) as { directive: { id: string } };
      const beat = await h.req('POST', '/v1/workers/w1/heartbeat', { token: agent, body: heartbeatBody() });
      assert.ok(beat.status < 300, `a heartbeat is never shed (HTTP ${beat.status})`);
      assert.equal(
        (await h.req('GET', '/v1/directives', { token: op })).status,
        200,
        'the operator still sees what is in force',
      );
      const resumed = await h.req('POST', `/v1/directives/${directive.id}/resume`, {
        token: op,
        body: { justification: 'fixed' },
      });
      assert.equal(resumed.status, 200, 'a resume is never shed');

      assert.deepEqual(shed, ['low /v1/fleet', 'low /v1/telemetry', 'low /v1/audit']);
      lag = 0;
      assert.equal(
        (await h.req('GET', '/v1/fleet', { token: op })).status,
        200,
        'admitted again once the loop catches up',
      );
    } finally {
      await h.close();
    }
  });

  it('sheds read queries beyond the in-flight limit even when the loop is on time', async () => {
    const admission = new Admission({ lag: { lagMs: () => 0 }, maxLowInFlight: 2 });
    assert.equal(admission.shedReason('low'), null);
    const held: (() => void)[] = [];
    const mw = admission.middleware();
    const fakeContext = (path: string) =>
      ({
        req: { method: 'GET', path },
        json: (body: unknown, status: number) => new Response(JSON.stringify(body), { status }),
      }) as never;
    const pending = [0, 1].map(() =>
      mw(fakeContext('/v1/fleet'), () => new Promise<void>((ok) => held.push(ok))),
    );
    assert.equal(admission.lowInFlight, 2);
    assert.match(admission.shedReason('low') ?? '', /2 read queries in flight/);
    assert.equal(admission.shedReason('critical'), null);
    assert.equal(admission.shedReason('normal'), null);
    for (const ok of held) ok();
    await Promise.all(pending);
    assert.equal(admission.lowInFlight, 0);
    assert.equal(admission.shedReason('low'), null);
  });
});

describe('only a flood is shed', () => {
  it('a late loop admits a trickle of reads and sheds them once they arrive at the flood rate', () => {
    let now = 0;
    const admission = new Admission({ lag: { lagMs: () => 500 }, floodPerS: 5, now: () => now });
    const arrive = () => admission.shedReason('low', true);
    for (let i = 0; i < 4; i++) {
      assert.equal(arrive(), null, `read ${i + 1} of a trickle is admitted`);
      now += 100;
    }
    assert.match(
      arrive() ?? '',
      /5 read queries and telemetry batches in the last second/,
      'the fifth within a second is a flood',
    );
    now += 1000;
    assert.equal(arrive(), null, 'a second later the rate is a trickle again');
    assert.equal(admission.shedReason('critical', true), null);
  });
});

describe('the event-loop lag probe', () => {
  it('sees a synchronous stretch of the loop, also while it is still in progress', async () => {
    const probe = loopLagProbe(10, 1000);
    try {
      await new Promise((ok) => setTimeout(ok, 30));
      const end = performance.now() + 150;
      while (performance.now() < end) {
        // a long synchronous stretch, as a big verification on the loop would be
      }
      assert.ok(probe.lagMs() >= 100, `in progress: ${probe.lagMs()} ms`);
      await new Promise((ok) => setTimeout(ok, 15));
      assert.ok(probe.lagMs() >= 100, `remembered within the window: ${probe.lagMs()} ms`);
    } finally {
      probe.stop();
    }
  });
});
