/**
 * Admission control: under overload the kill path wins. Telemetry and read queries are shed
 * with 429 `overloaded` and `Retry-After`; directives, streams, acks, halted reports and
 * heartbeats never are. The event loop's lateness comes from an injected source, so these tests
 * decide "overloaded" exactly instead of making the machine slow.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Principal } from '@killpath/protocol';
import { Admission, loopLagProbe, priorityOf, tokenCallers, type Priority } from '../src/http/admission.ts';
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
    ['POST', '/v1/workers/reports', 'critical'],
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

  it('sheds read queries beyond the in-flight limit (running or waiting their turn) even when the loop is on time', async () => {
    const turns: (() => void)[] = [];
    const admission = new Admission({
      lag: { lagMs: () => 0 },
      maxLowInFlight: 2,
      maxLowPerCaller: 2,
      now: () => 0,
      nextTurn: (fn) => turns.push(fn),
    });
    assert.equal(admission.shedReason('low'), null);
    const mw = admission.middleware();
    let release = () => {};
    const first = mw(fakeContext('GET', '/v1/fleet'), () => new Promise<void>((ok) => (release = ok)));
    const second = mw(fakeContext('GET', '/v1/audit'), async () => {});
    assert.equal(admission.lowInFlight, 2);
    assert.equal(admission.lowWaiting, 1, 'the second waits for the next turn: the first awaits I/O');
    assert.match(admission.shedReason('low') ?? '', /2 read queries in flight/);
    assert.equal(admission.shedReason('critical'), null);
    assert.equal(admission.shedReason('normal'), null);
    const third = (await mw(fakeContext('GET', '/v1/compensations'), async () => {})) as Response;
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('retry-after'), '1');
    for (const fn of turns.splice(0)) fn();
    await second;
    release();
    await first;
    assert.equal(admission.lowInFlight, 0);
    assert.equal(admission.shedReason('low'), null);
  });
});

/** A request context with what the middleware reads (method, path) and answers with (json). */
function fakeContext(
  method: string,
  path: string,
  env?: { outgoing: EventEmitter },
  authorization?: string,
): never {
  return {
    req: { method, path, header: (name: string) => (name === 'authorization' ? authorization : undefined) },
    env,
    json: (body: unknown, status: number) => new Response(JSON.stringify(body), { status }),
  } as never;
}

/** Lets every queued microtask and promise continuation run. */
const settle = () => new Promise((ok) => setImmediate(ok));

describe('low-priority requests take turns', () => {
  it('past its budget a turn of the loop starts no more of them; a critical request goes through at once', async () => {
    let now = 0;
    const turns: (() => void)[] = [];
    const admission = new Admission({
      lag: { lagMs: () => 0 },
      turnBudgetMs: 5,
      now: () => now,
      nextTurn: (fn) => turns.push(fn),
    });
    const mw = admission.middleware();
    const ran: string[] = [];
    // Each read costs 3 ms of the loop's time.
    const read = (name: string) => async () => {
      ran.push(name);
      now += 3;
    };
    const reads = ['r1', 'r2', 'r3', 'r4'].map((r) => mw(fakeContext('GET', '/v1/fleet'), read(r)));
    await settle();
    assert.deepEqual(ran, ['r1', 'r2'], 'r2 started 3 ms into the turn, r3 would start 6 ms into it');
    assert.equal(admission.lowWaiting, 2);

    let directive = false;
    await mw(fakeContext('POST', '/v1/directives'), async () => {
      directive = true;
    });
    assert.ok(directive, 'a directive does not wait for the turn');
    const beat = mw(fakeContext('POST', '/v1/workers/w1/heartbeat'), async () => {
      ran.push('heartbeat');
    });
    await beat;
    assert.deepEqual(ran, ['r1', 'r2', 'heartbeat'], 'nor does a heartbeat');

    assert.equal(turns.length, 1);
    turns.shift()!();
    await Promise.all(reads);
    assert.deepEqual(
      ran,
      ['r1', 'r2', 'heartbeat', 'r3', 'r4'],
      'the next turn starts the rest, in arrival order',
    );
    assert.equal(admission.lowWaiting, 0);
    assert.equal(admission.lowInFlight, 0);
  });

  it('one that awaits I/O lets the next start at the next turn; one that waited too long is shed, not processed', async () => {
    let now = 0;
    const turns: (() => void)[] = [];
    const shed: string[] = [];
    const admission = new Admission({
      lag: { lagMs: () => 0 },
      maxWaitMs: 1000,
      now: () => now,
      nextTurn: (fn) => turns.push(fn),
      onShed: (p, path) => shed.push(`${p} ${path}`),
    });
    const mw = admission.middleware();
    let release = () => {};
    const verify = mw(
      fakeContext('GET', '/v1/audit/verify'),
      () => new Promise<void>((ok) => (release = ok)),
    );
    let fleetRan = false;
    const fleet = mw(fakeContext('GET', '/v1/fleet'), async () => {
      fleetRan = true;
      now += 10;
    });
    await settle();
    assert.equal(fleetRan, false, 'the verification awaits its worker: the fleet read waits for the turn');
    turns.shift()!();
    await fleet;
    assert.ok(fleetRan, 'the next turn starts it, the verification still running');

    let auditRan = false;
    const audit = mw(fakeContext('GET', '/v1/audit'), async () => {
      auditRan = true;
    });
    // The fleet read spent its turn's budget: the audit tail waits, and the loop is slow to turn.
    now += 1500;
    while (turns.length > 0) turns.shift()!();
    const res = (await audit) as Response;
    assert.equal(auditRan, false, 'a shed request is not processed');
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'overloaded');
    assert.match(body.error.message, /waited 1500 ms for its turn/);
    assert.deepEqual(shed, ['low /v1/audit']);
    release();
    await verify;
    assert.equal(admission.lowInFlight, 0);
  });
});

describe('one caller cannot hold every place', () => {
  it("a token's flood of reads is shed past its share; another tenant's read is admitted while the loop is on time", async () => {
    const admission = new Admission({ lag: { lagMs: () => 0 }, maxLowInFlight: 8 });
    const mw = admission.middleware();
    let release = () => {};
    const held = new Promise<void>((ok) => (release = ok));
    const answers: Promise<unknown>[] = [];
    for (let i = 0; i < 8; i++)
      answers.push(mw(fakeContext('GET', '/v1/audit/verify', undefined, 'Bearer flood'), () => held));
    await settle();
    assert.equal(admission.lowInFlight, 2, 'a quarter of the places by default');
    const shed = (await Promise.all(answers.slice(2))) as Response[];
    assert.deepEqual(
      shed.map((r) => r.status),
      [429, 429, 429, 429, 429, 429],
    );
    let ran = false;
    const other = mw(fakeContext('GET', '/v1/fleet', undefined, 'Bearer beta'), async () => {
      ran = true;
    });
    await settle();
    release();
    await Promise.all([other, ...answers.slice(0, 2)]);
    assert.ok(ran, "the other tenant's read was processed");
    assert.equal(admission.lowInFlight, 0);
    // Its places are back once its reads are answered.
    assert.equal(
      await mw(fakeContext('GET', '/v1/fleet', undefined, 'Bearer flood'), async () => {}),
      undefined,
    );
  });
});

describe('a client that leaves while its request waits', () => {
  it('frees its place at once, and its request is never processed', async () => {
    const turns: (() => void)[] = [];
    const admission = new Admission({
      lag: { lagMs: () => 0 },
      maxLowInFlight: 2,
      maxLowPerCaller: 2,
      nextTurn: (fn) => turns.push(fn),
    });
    const mw = admission.middleware();
    let release = () => {};
    const verify = mw(
      fakeContext('GET', '/v1/audit/verify'),
      () => new Promise<void>((ok) => (release = ok)),
    );
    const outgoing = new EventEmitter();
    let ran = false;
    const left = mw(fakeContext('GET', '/v1/fleet', { outgoing }), async () => {
      ran = true;
    });
    await settle();
    assert.equal(admission.lowWaiting, 1);
    assert.equal(admission.shedReason('low'), 'the control plane is overloaded (2 read queries in flight)');
    // The connection closed before the answer: the response's 'close'.
    outgoing.emit('close');
    assert.equal(admission.lowWaiting, 0, 'no longer waiting');
    await settle();
    assert.equal(turns.length, 1, 'no turn of the loop came meanwhile');
    assert.equal(admission.lowInFlight, 1, 'its place is free for another');
    assert.equal(((await left) as Response).status, 499);
    while (turns.length > 0) turns.shift()!();
    await left;
    assert.equal(ran, false, 'nobody is there to read its answer');
    release();
    await verify;
    assert.equal(admission.lowInFlight, 0);
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

describe('invented tokens are one caller', () => {
  it('a flood of made-up tokens shares one share; a known token keeps its own; a real token shed once is known to its retry', async () => {
    const known = new Set(['Bearer real']);
    const valid = new Set(['Bearer real', 'Bearer new']);
    const checked: string[] = [];
    const callers = tokenCallers({
      knownCaller: (h) => (h !== undefined && known.has(h) ? `hash:${h}` : null),
      authenticate: (h) => {
        checked.push(h!);
        if (!valid.has(h!)) return Promise.reject(new Error('unknown token'));
        known.add(h!);
        return Promise.resolve({} as Principal);
      },
    });
    const admission = new Admission({ lag: { lagMs: () => 0 }, maxLowInFlight: 8, callers });
    const mw = admission.middleware();
    let release = () => {};
    const held = new Promise<void>((ok) => (release = ok));
    const flood: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++)
      flood.push(mw(fakeContext('GET', '/v1/fleet', undefined, `Bearer made-up-${i}`), () => held));
    await settle();
    assert.equal(admission.lowInFlight, 2, 'invented tokens share one caller’s quarter of the places');
    const shed = (await Promise.all(flood.slice(2))) as Response[];
    assert.deepEqual(
      shed.map((r) => r.status),
      [429, 429, 429, 429],
    );
    // A token this control plane knows is a caller of its own.
    let ran = false;
    const real = mw(fakeContext('GET', '/v1/fleet', undefined, 'Bearer real'), async () => {
      ran = true;
    });
    // A real token not seen yet counts with the unknown ones: shed, and checked so its retry is known.
    const first = (await mw(
      fakeContext('GET', '/v1/fleet', undefined, 'Bearer new'),
      async () => {},
    )) as Response;
    assert.equal(first.status, 429);
    await settle();
    assert.ok(checked.includes('Bearer new'));
    let retried = false;
    const again = mw(fakeContext('GET', '/v1/fleet', undefined, 'Bearer new'), async () => {
      retried = true;
    });
    await settle();
    release();
    await Promise.all([real, again, ...flood.slice(0, 2)]);
    assert.ok(ran, 'the known token was admitted while the invented ones held their share');
    assert.ok(retried, 'the real token was admitted on its retry');
    assert.equal(admission.lowInFlight, 0);
  });
});
