/**
 * The switchboard view (issue 12, "no private copy of the switchboard"; issue 14, propagation):
 * it moves only by the store's changes in rev order, each rev once, whoever committed; a gap is
 * read, a duplicate ignored; a missed ring is made good by the next read (ring, relisten, poll);
 * and a view whose store or doorbell is unreachable for half a lease stops vouching until a
 * catch-up succeeds. On SQLite (the store's own commits ring it); `replicas-pg.test.ts` does the
 * same across two control planes on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { expectWireError } from './harness.ts';
import { ManualClock } from '@killpath/sdk/testing';
import type { Directive } from '@killpath/protocol';
import type { Doorbell, DoorbellHandlers } from '../src/doorbell.ts';
import { SwitchboardView, type ViewSource } from '../src/switchboard-view.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { IssueResult, SwitchboardChange } from '../src/store/store.ts';
import { directiveInput } from './store-contract.ts';
import { harness, type Harness } from './harness.ts';
import { StreamHub, type StreamSink } from '../src/stream/hub.ts';
import { ControlPlane } from '../src/control-plane.ts';
import { Fleet } from '../src/fleet.ts';
import { Metrics } from '../src/metrics.ts';
import { createLogger } from '../src/log.ts';

const noAudit = () => [];
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function sqlite(): SqliteStore {
  const store = new SqliteStore(':memory:');
  closers.push(() => store.close());
  return store;
}

/** A store wrapper counting reads, and failing them while `down` (an unreachable database). */
function counted(store: ViewSource): ViewSource & { reads: number; down: boolean } {
  const s = {
    reads: 0,
    down: false,
    switchboard: () => store.switchboard(),
    changesSince: async (rev: number, limit: number) => {
      s.reads++;
      if (s.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      return store.changesSince(rev, limit);
    },
  };
  return s;
}

/** A doorbell a test rings, drops and re-establishes by hand, standing for another process's notifications. */
class HandDoorbell implements Doorbell {
  readonly inProcess = false;
  handlers: DoorbellHandlers | null = null;
  async listen(h: DoorbellHandlers) {
    this.handlers = h;
    h.listening();
    return {
      close: async () => {
        this.handlers = null;
      },
    };
  }
}

const issue = (store: SqliteStore, scope: string) => store.issueDirective(directiveInput({ scope }), noAudit);
/** Lets deferred rings and the reads under way run (reads nothing itself). */
const settle = async (_view: SwitchboardView) => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};
const ids = (ds: readonly Directive[]) => ds.map((d) => d.id).sort();
const issuedChange = (r: IssueResult): SwitchboardChange => ({
  rev: r.directive.rev,
  issued: r.directive,
  replaced: r.replaced,
});

describe('switchboard view', () => {
  test('builds from the store and follows its commits in rev order, each rev once (in-process doorbell)', async () => {
    const store = sqlite();
    const before = await issue(store, 'tenant:acme');
    const view = new SwitchboardView(store, { doorbell: store.doorbell() });
    const seen: number[] = [];
    view.onChange((c) => seen.push(c.rev));
    await view.start();
    closers.push(() => view.stop());
    assert.equal(view.rev, 1);
    assert.deepEqual(ids(view.active()), [before.directive.id]);
    assert.deepEqual(seen, [], 'the start is not a change');

    // Commits nobody applies by hand: the store's own doorbell brings them in.
    const rs = await Promise.all(
      ['agent:acme/a', 'agent:acme/b', 'run:r1', 'run:r2'].map((s) => issue(store, s)),
    );
    await store.clearDirective(before.directive.id, noAudit);
    await settle(view);
    assert.deepEqual(seen, [2, 3, 4, 5, 6]);
    assert.equal(view.rev, 6);
    assert.deepEqual(ids(view.active()), ids(rs.map((r) => r.directive)));
    assert.deepEqual(view.snapshot(), await store.switchboard());
    assert.equal(view.vouching, true, 'an embedded store is always vouched for');
  });

  test('a local commit that is the next rev is applied at once, with no read; a duplicate is ignored', async () => {
    const store = sqlite();
    const source = counted(store);
    const view = new SwitchboardView(source);
    const seen: SwitchboardChange[] = [];
    view.onChange((c) => seen.push(c));
    await view.start();
    const r = await issue(store, 'tenant:acme');
    assert.equal(view.committed(issuedChange(r)), true);
    assert.equal(view.rev, 1);
    assert.equal(source.reads, 0);
    assert.equal(view.committed(issuedChange(r)), true, 'already held');
    assert.deepEqual(
      seen.map((c) => c.rev),
      [1],
    );
    const cleared = (await store.clearDirective(r.directive.id, noAudit))!;
    assert.equal(view.committed({ rev: 2, cleared }), true);
    assert.deepEqual(view.active(), []);
    assert.equal(source.reads, 0);
    assert.deepEqual(seen[1], { rev: 2, cleared });
  });

  test('a commit past a gap is not applied: the view reads the missing revs first, in order', async () => {
    const store = sqlite();
    const source = counted(store);
    const view = new SwitchboardView(source);
    const seen: number[] = [];
    view.onChange((c) => seen.push(c.rev));
    await view.start();
    const a = await issue(store, 'run:a'); // another process's commit, never rung here
    const b = await issue(store, 'run:b');
    const c = await issue(store, 'run:c');
    assert.equal(view.committed(issuedChange(c)), false, 'rev 3 does not follow rev 0');
    assert.equal(view.rev, 0);
    assert.deepEqual(seen, []);
    await view.reach(3);
    assert.deepEqual(seen, [1, 2, 3]);
    assert.deepEqual(ids(view.active()), ids([a.directive, b.directive, c.directive]));
    // The late answer of rev 2's commit arrives after the read: a duplicate, ignored.
    assert.equal(view.committed(issuedChange(b)), true);
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test('missed rings: one later ring, a relisten or the poll brings every missed rev, in order', async () => {
    const store = sqlite();
    const clock = new ManualClock(0);
    const bell = new HandDoorbell();
    const view = new SwitchboardView(store, { doorbell: bell, clock, vouchMs: 1500, pollMs: 500, batch: 2 });
    const seen: number[] = [];
    view.onChange((c) => seen.push(c.rev));
    await view.start();
    closers.push(() => view.stop());
    await settle(view);
    // Five commits elsewhere, no ring heard.
    for (const s of ['run:a', 'run:b', 'run:c', 'run:d', 'run:e']) await issue(store, s);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, []);
    // One ring (for the last one only) brings all five, in batches of two.
    bell.handlers!.ring(5);
    await settle(view);
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    // A ring for a rev the view holds reads nothing.
    bell.handlers!.ring(3);
    // The listener drops; commits meanwhile; it comes back: the relisten catches up.
    bell.handlers!.lost('connection reset');
    await issue(store, 'run:f');
    await issue(store, 'run:g');
    bell.handlers!.listening();
    await settle(view);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
    // No ring at all: the poll.
    await issue(store, 'run:h');
    clock.advance(500);
    await settle(view);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(view.snapshot(), await store.switchboard());
  });

  test('a store whose changes have a gap is refused, not skipped', async () => {
    const store = sqlite();
    await issue(store, 'run:a');
    await issue(store, 'run:b');
    const holey: ViewSource = {
      switchboard: async () => ({ rev: 0, directives: [] }),
      changesSince: async (rev, limit) => (await store.changesSince(rev, limit)).filter((c) => c.rev !== 1),
    };
    const view = new SwitchboardView(holey);
    await view.start();
    await assert.rejects(view.catchUp(), /gap/);
    assert.equal(view.rev, 0);
    assert.deepEqual(view.active(), []);
  });

  test('vouching: the store unreachable for half a lease, or the doorbell down that long, stops it; a catch-up restores it', async () => {
    const store = sqlite();
    const source = counted(store);
    const clock = new ManualClock(0);
    const bell = new HandDoorbell();
    const view = new SwitchboardView(source, { doorbell: bell, clock, vouchMs: 1500, pollMs: 500 });
    const heard: boolean[] = [];
    view.onVouch((v) => heard.push(v));
    await view.start();
    closers.push(() => view.stop());
    await settle(view);
    assert.equal(view.vouching, true);

    // The database goes away: polls fail. Within half a lease the view still vouches…
    source.down = true;
    clock.advance(1000);
    await settle(view);
    assert.equal(view.vouching, true);
    assert.deepEqual(heard, []);
    // …past it, it does not.
    clock.advance(600);
    await settle(view);
    assert.equal(view.vouching, false);
    assert.deepEqual(heard, [false]);
    // A commit made meanwhile is picked up by the first read that succeeds, which restores it.
    await issue(store, 'run:a');
    source.down = false;
    clock.advance(500);
    await settle(view);
    assert.equal(view.rev, 1);
    assert.equal(view.vouching, true);
    assert.deepEqual(heard, [false, true]);

    // The doorbell drops: reads still succeed (polls), but past half a lease it cannot vouch…
    bell.handlers!.lost('terminated');
    clock.advance(1000);
    await settle(view);
    assert.equal(view.vouching, true);
    clock.advance(600);
    await settle(view);
    assert.equal(view.vouching, false);
    assert.deepEqual(heard, [false, true, false]);
    // …polls alone do not restore it; a relisten and its catch-up do.
    clock.advance(2000);
    await settle(view);
    assert.equal(view.vouching, false);
    await issue(store, 'run:b');
    bell.handlers!.listening();
    await settle(view);
    assert.equal(view.rev, 2);
    assert.equal(view.vouching, true);
    assert.deepEqual(heard, [false, true, false, true]);
  });

  test('an answer that arrives late vouches only from when its read began: a switchboard older than half a lease is not vouched for', async () => {
    const store = sqlite();
    const clock = new ManualClock(0);
    // Reads answer what the store held when they ran, delivered only once `deliver` is called
    // (a slow network, a database answering late, this process's event loop stalled).
    let hold = false;
    let deliver: () => void = () => {};
    const source: ViewSource = {
      switchboard: () => store.switchboard(),
      changesSince: async (rev, limit) => {
        const changes = await store.changesSince(rev, limit);
        if (hold) await new Promise<void>((ok) => (deliver = ok));
        return changes;
      },
    };
    const bell = new HandDoorbell();
    const view = new SwitchboardView(source, { doorbell: bell, clock, vouchMs: 1500, pollMs: 500 });
    const heard: [boolean, number][] = [];
    view.onVouch((v) => heard.push([v, view.rev]));
    await view.start();
    closers.push(() => view.stop());
    await settle(view);
    hold = true;
    clock.advance(500); // the poll reads the store at rev 0; its answer is held
    await settle(view);
    await issue(store, 'run:a'); // a halt commits while the answer is on its way
    clock.advance(1600);
    await settle(view);
    assert.deepEqual(heard, [[false, 0]], 'no answer for half a lease: not vouching');
    // The answer read 1600 ms ago arrives: it shows rev 0, older than half a lease.
    hold = false;
    deliver();
    await settle(view);
    assert.deepEqual(heard, [[false, 0]], 'a switchboard read 1600 ms ago is not vouched for');
    // The next poll reads the store as it is now: vouching again, at the halt's rev.
    clock.advance(500);
    await settle(view);
    assert.equal(view.rev, 1);
    assert.deepEqual(heard, [
      [false, 0],
      [true, 1],
    ]);
  });
});

describe('two control planes on one store', () => {
  test("a flip committed by one reaches the other's streams in rev order, and its active()", async () => {
    const a: Harness = await harness();
    closers.push(() => a.close());
    // B: a second control plane on A's store, as a second replica would be on one database.
    const hubB = new StreamHub(60_000, 0);
    const b = new ControlPlane({
      store: a.store,
      hub: hubB,
      fleet: new Fleet(),
      metrics: new Metrics(),
      log: createLogger('silent'),
      keepaliveMs: 60_000,
    });
    await b.start();
    closers.push(() => (hubB.close(), b.stop()));
    const frames: string[] = [];
    const sink: StreamSink = {
      workerId: 'w1',
      tenant: 'acme',
      write: (t) => (frames.push(t), true),
      close() {},
    };
    await hubB.attach(sink, async () => b.view.snapshot());

    const admin = await a.token('admin', '*');
    const issued: string[] = [];
    for (const scope of ['tenant:acme', 'agent:acme/bot', 'tenant:globex']) {
      const res = await a.req('POST', '/v1/directives', {
        token: admin,
        body: { level: 'halt', scope, reason: 'r', justification: 'INC-1' },
      });
      assert.equal(res.status, 201, await res.clone().text());
      issued.push(((await res.json()) as { directive: { id: string } }).directive.id);
    }
    const resumed = await a.req('POST', `/v1/directives/${issued[0]}/resume`, {
      token: admin,
      body: { justification: 'fixed' },
    });
    assert.equal(resumed.status, 200, await resumed.clone().text());
    await settle(b.view);
    const events = frames.map((f) => JSON.parse(f.split('data: ')[1]!) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => [e.type, e.rev]),
      [
        ['snapshot', 0],
        ['delta', 1],
        ['delta', 2],
        ['delta', 3],
        ['delta', 4],
      ],
    );
    assert.equal((events[1]!.issued as { id: string }).id, issued[0]);
    assert.equal((events[2]!.issued as { id: string }).id, issued[1]);
    assert.deepEqual(events[3], { type: 'delta', rev: 3 }, "another tenant's directive: a bare rev step");
    assert.equal(events[4]!.cleared, issued[0]);
    assert.equal(hubB.rev, 4);
    assert.deepEqual(ids(b.active()), ids(a.cp.active()));
    assert.deepEqual(ids(b.active()), [issued[1]!, issued[2]!].sort());
  });
});

describe('a control plane that cannot vouch for its switchboard', () => {
  test('closes its streams, refuses new ones 503 unavailable, and attaches them again after a catch-up', async () => {
    const clock = new ManualClock(0, Date.now());
    const bell = new HandDoorbell();
    const h = await harness({ clock, doorbell: bell });
    closers.push(() => h.close());
    const agent = await h.token('agent', 'acme', 'bot');
    const frames: string[] = [];
    let closed = 0;
    const sink: StreamSink = {
      workerId: 'w0',
      tenant: 'acme',
      write: (t) => (frames.push(t), true),
      close: () => void closed++,
    };
    await h.cp.hub.attach(sink, async () => h.cp.view.snapshot());
    assert.equal(h.cp.hub.size, 1);
    const open = () => h.req('GET', '/v1/stream?worker=w1&tenant=acme&agent=bot', { token: agent });

    bell.handlers!.lost('terminated');
    clock.advance(1499);
    await settle(h.cp.view);
    assert.equal(h.cp.view.vouching, true, 'within half the default 3 s lease');
    assert.equal(h.cp.hub.size, 1);
    clock.advance(2);
    await settle(h.cp.view);
    assert.equal(h.cp.view.vouching, false);
    assert.equal(closed, 1, 'the open stream was closed');
    assert.equal(h.cp.hub.size, 0);
    await expectWireError(await open(), 503, 'unavailable', 'stream while not vouching');
    // Nothing reaches a stream attached around the route either.
    const late: string[] = [];
    await h.cp.hub.attach(
      { workerId: 'w2', tenant: 'acme', write: (t) => (late.push(t), true), close() {} },
      async () => h.cp.view.snapshot(),
    );
    assert.equal(late.length, 0);
    assert.equal(h.cp.hub.size, 0);

    bell.handlers!.listening();
    await settle(h.cp.view);
    assert.equal(h.cp.view.vouching, true);
    await h.cp.hub.attach(
      { workerId: 'w3', tenant: 'acme', write: (t) => (late.push(t), true), close() {} },
      async () => h.cp.view.snapshot(),
    );
    assert.equal(late.length, 1);
    assert.match(late[0]!, /^event: snapshot\n/);
    assert.equal(h.cp.hub.size, 1);
  });
});

describe('a control plane whose process was frozen', () => {
  test('sends no keep-alive on a switchboard older than half a lease, even before the overdue vouching timer has run', async () => {
    const clock = new ManualClock(0, Date.now());
    const store = sqlite();
    const hub = new StreamHub(20, 0);
    const cp = new ControlPlane({
      store,
      hub,
      fleet: new Fleet(),
      metrics: new Metrics(),
      log: createLogger('silent'),
      keepaliveMs: 20,
      clock,
      doorbell: new HandDoorbell(),
    });
    await cp.start();
    closers.push(() => (hub.close(), cp.stop()));
    const frames: string[] = [];
    let closed = 0;
    const sink: StreamSink = {
      workerId: 'w1',
      tenant: 'acme',
      write: (t) => (frames.push(t), true),
      close: () => void closed++,
    };
    await hub.attach(sink, async () => cp.view.snapshot());
    const keepalives = () => frames.filter((f) => f.startsWith('event: keepalive')).length;
    const sent = keepalives();
    await new Promise((r) => setTimeout(r, 60));
    assert.ok(keepalives() > sent, 'keep-alives while the view is fresh');
    // The process is frozen for 2 s (half the 3 s lease is 1.5 s): on thaw the keep-alive's timer
    // may run before the view's overdue vouching timer. The view read nothing for 2 s.
    clock.jump(2000);
    const before = keepalives();
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(keepalives(), before, 'no keep-alive renews a lease from a switchboard 2 s old');
    assert.equal(cp.view.vouching, false);
    assert.equal(closed, 1, 'the stream is closed: its worker goes to another replica or fails closed');
  });
});
