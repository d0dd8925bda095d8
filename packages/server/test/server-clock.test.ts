import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { ManualClock } from '@killpath/sdk/testing';
import { AuditQueue } from '../src/audit/audit-queue.ts';
import { loopLagProbe } from '../src/http/admission.ts';
import { createLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { PermitDesk } from '../src/permits.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { grant } from './effects-contract.ts';
import { directiveInput } from './store-contract.ts';

const log = createLogger('silent');
const who = { tenant: 'acme', agent: 'bot' };

/** The permit desk's cool-offs on a manual clock: they run from the clock's time, never a sleep. */
test('a cool-off runs on the control plane clock: refused before it ends, confirmed at its end, cancelled by a halt meanwhile', async () => {
  const store = new SqliteStore(':memory:');
  const clock = new ManualClock(0, Date.UTC(2030, 5, 1));
  try {
    const desk = new PermitDesk(
      store,
      log,
      { defaultMs: 2000, byCapability: { wire_transfer: 5000 } },
      clock,
    );
    const {
      tenant: _t,
      agent: _a,
      coolOffMs: _c,
      ...req
    } = grant({
      class: 'irreversible',
      capability: 'wire_transfer',
    });
    const { response } = await desk.request(who, req);
    assert.equal(response.permit.status, 'cooling_off');
    // The cool-off is stamped from the clock's wall time, not the store's.
    assert.equal(response.permit.confirmAfter, new Date(Date.UTC(2030, 5, 1) + 5000).toISOString());
    const id = response.permit.id;
    clock.advance(4999);
    await assert.rejects(
      desk.confirm(who, id),
      (e: unknown) => e instanceof KillpathError && e.code === 'conflict',
    );
    clock.advance(1);
    assert.equal((await desk.confirm(who, id)).permit.status, 'granted');

    // A second one, halted during its cool-off: its confirmation is refused and it is cancelled.
    const { response: second } = await desk.request(who, { ...req, runId: 'r2' });
    assert.equal(second.permit.status, 'cooling_off');
    await store.issueDirective(directiveInput({ scope: 'run:r2' }), () => []);
    clock.advance(5000);
    await assert.rejects(
      desk.confirm(who, second.permit.id),
      (e: unknown) => e instanceof KillpathError && e.code === 'halted',
    );
    assert.equal((await store.ledger('acme', 'r2')).effects[0]?.status, 'cancelled');
  } finally {
    await store.close();
  }
});

test('queued audit records are written once reports pause (25 ms of the clock), and at the latest 1 s after the first', async () => {
  const store = new SqliteStore(':memory:');
  const clock = new ManualClock();
  try {
    const queue = new AuditQueue({ store, metrics: new Metrics(), log, clock });
    const record = (n: number) => ({ type: 'test.report', actor: 'w', tenant: 'acme', data: { n } });
    const written = async () =>
      (await store.listAudit({ limit: 100 })).filter((r) => r.type === 'test.report').length;
    queue.queue(record(1));
    clock.advance(24);
    await queue.flushed();
    assert.equal(await written(), 0, 'nothing before the pause');
    clock.advance(1);
    await queue.flushed();
    assert.equal(await written(), 1, 'written once reports paused');

    // A steady stream (one every 20 ms, never a 25 ms pause) is written 1 s after its first record.
    let n = 2;
    queue.queue(record(n++));
    for (let t = 20; t < 1000; t += 20) {
      clock.advance(20);
      queue.queue(record(n++));
    }
    await queue.flushed();
    assert.equal(await written(), 1, 'still queued at 980 ms');
    clock.advance(20);
    await queue.flushed();
    assert.equal(await written(), n - 1, 'the whole stream written at 1 s');
  } finally {
    await store.close();
  }
});

test('the event-loop lag probe ticks on the clock it is given and stops', () => {
  const clock = new ManualClock();
  const probe = loopLagProbe(20, 500, clock);
  clock.advance(100);
  assert.equal(probe.lagMs(), 0, 'ticks on time: no lag');
  clock.jump(300);
  assert.equal(probe.lagMs(), 280, 'a stretch without a tick counts as it lasts');
  clock.advance(0);
  assert.equal(probe.lagMs(), 280, 'the late tick is remembered for the window');
  clock.advance(600);
  assert.equal(probe.lagMs(), 0, 'and forgotten after it');
  probe.stop();
  assert.equal(clock.pendingTimers(), 0, 'stopped: no timer left on the clock');
  clock.advance(1000);
  assert.equal(probe.lagMs(), 980, 'and no more ticks');
});
