import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunReport, RunTelemetry } from '@killpath/protocol';
import type {
  AuditStore,
  DirectiveStore,
  LeaseStore,
  PresenceRow,
  PresenceStore,
  StoreLifecycle,
  TelemetryStore,
} from '../src/store/store.ts';
import { directiveInput, type MakeStore } from './store-contract.ts';

/** A presence row with defaults: worker `w1` of acme/bot on replica `r-a`, connected, one run. */
export function presenceRow(over: Partial<PresenceRow> = {}): PresenceRow {
  const run: RunReport = {
    runId: 'run-1',
    parentRunId: null,
    lineage: [],
    state: 'running',
    effects: 0,
    denied: 0,
    inFlight: 0,
  };
  return {
    tenant: 'acme',
    agent: 'bot',
    workerId: 'w1',
    replica: 'r-a',
    connected: true,
    pid: 4242,
    features: ['new-planner'],
    runs: [run],
    launcher: null,
    release: { code: 'v1' },
    declared: { release: { code: 'v1' } },
    ackedRev: 3,
    lastContactAt: 1_767_225_600_000,
    lastHeartbeatAt: 1_767_225_600_000,
    goneAt: null,
    removed: false,
    ...over,
  };
}

/**
 * Shared fleet state ({@link PresenceStore}): presence published and read back by version, in
 * order and whole; acknowledgements of stops; a rev's commit time from its own transaction.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function presenceContract(
  make: MakeStore<PresenceStore & DirectiveStore & AuditStore>,
  /** False while a backend has no directives concept yet: the cases that issue directives are left out. */
  withDirectives = true,
): void {
  describe('presence and acknowledgements', () => {
    let store: PresenceStore & DirectiveStore & AuditStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    test('rows come back whole, by version, oldest first; a rewrite moves a row to its new version', async () => {
      assert.deepEqual(await store.presenceSince(0, 100), { rows: [], version: 0 });
      const a = presenceRow();
      const b = presenceRow({ workerId: 'w2', replica: 'r-b', connected: false, pid: null, runs: [] });
      const v1 = await store.putPresence([a, b]);
      assert.equal(v1, 1);
      assert.deepEqual(await store.presenceSince(0, 100), { rows: [a, b], version: 1 });
      const a2 = { ...a, ackedRev: 7, replica: 'r-b' };
      const v2 = await store.putPresence([a2]);
      assert.equal(v2, 2);
      assert.deepEqual(await store.presenceSince(1, 100), { rows: [a2], version: 2 });
      assert.deepEqual(await store.presenceSince(0, 100), { rows: [b, a2], version: 2 });
      assert.deepEqual(await store.presenceSince(2, 100), { rows: [], version: 2 });
    });

    test('a page never ends inside a version: a reader resuming from it misses no row', async () => {
      const rows = ['w1', 'w2', 'w3'].map((workerId) => presenceRow({ workerId }));
      await store.putPresence(rows);
      await store.putPresence([presenceRow({ workerId: 'w4' })]);
      const first = await store.presenceSince(0, 2);
      assert.deepEqual(
        first.rows.map((r) => r.workerId),
        ['w1', 'w2', 'w3'],
      );
      assert.equal(first.version, 1);
      const second = await store.presenceSince(first.version, 2);
      assert.deepEqual(
        second.rows.map((r) => r.workerId),
        ['w4'],
      );
      assert.equal(second.version, 2);
    });

    test("a replica's read leaves its own rows out and starts its next read after them", async () => {
      const mine = (workerId: string) => presenceRow({ workerId, replica: 'r-a' });
      const theirs = (workerId: string) => presenceRow({ workerId, replica: 'r-b' });
      await store.putPresence([mine('w1'), theirs('w2'), mine('w3')]);
      await store.putPresence([mine('w4'), mine('w5')]);
      // Only another replica's rows; the version is the latest, own rows' included.
      assert.deepEqual(await store.presenceSince(0, 100, 'r-a'), { rows: [theirs('w2')], version: 2 });
      assert.deepEqual(await store.presenceSince(2, 100, 'r-a'), { rows: [], version: 2 });
      // Nothing but own rows after the version read: the next read starts after them all.
      await store.putPresence([mine('w1')]);
      assert.deepEqual(await store.presenceSince(2, 100, 'r-a'), { rows: [], version: 3 });
      // A row another replica rewrote is theirs now, whoever wrote it first.
      await store.putPresence([theirs('w3'), mine('w6')]);
      assert.deepEqual(await store.presenceSince(3, 100, 'r-a'), { rows: [theirs('w3')], version: 4 });
      // Paged: a full page ends at its last version (whole), and the reader misses nothing.
      await store.putPresence([theirs('w7'), theirs('w8'), mine('w9')]);
      await store.putPresence([theirs('w10')]);
      const first = await store.presenceSince(4, 1, 'r-a');
      assert.deepEqual(
        first.rows.map((r) => r.workerId),
        ['w7', 'w8'],
      );
      assert.equal(first.version, 5);
      assert.deepEqual(await store.presenceSince(first.version, 1, 'r-a'), {
        rows: [theirs('w10')],
        version: 6,
      });
      // Without a replica every row comes back, as before.
      assert.deepEqual(
        (await store.presenceSince(4, 100)).rows.map((r) => r.workerId),
        ['w7', 'w8', 'w9', 'w10'],
      );
    });

    test('workers of different tenants or agents with one id are different rows', async () => {
      await store.putPresence([
        presenceRow(),
        presenceRow({ tenant: 'globex' }),
        presenceRow({ agent: 'other' }),
      ]);
      const { rows } = await store.presenceSince(0, 100);
      assert.deepEqual(
        rows.map((r) => [r.tenant, r.agent, r.workerId]),
        [
          ['acme', 'bot', 'w1'],
          ['acme', 'other', 'w1'],
          ['globex', 'bot', 'w1'],
        ],
      );
    });

    test('a tombstone is read like any change and purged once old', async () => {
      await store.putPresence([presenceRow(), presenceRow({ workerId: 'w2' })]);
      const gone = presenceRow({ removed: true, connected: false });
      await store.putPresence([gone]);
      assert.deepEqual(await store.presenceSince(1, 100), { rows: [gone], version: 2 });
      assert.equal(await store.purgePresence(Date.now() - 60_000), 0, 'not old enough');
      assert.equal(await store.purgePresence(Date.now() + 60_000), 1, 'only the tombstone');
      assert.deepEqual(
        (await store.presenceSince(0, 100)).rows.map((r) => r.workerId),
        ['w2'],
      );
    });

    test('acknowledgements: recorded per directive and worker, a repeat replaces, a retraction removes one', async () => {
      const ack = {
        directiveId: 'd_1',
        tenant: 'acme',
        agent: 'bot',
        workerId: 'w1',
        rev: 4,
        runs: ['run-1'],
        at: '2026-01-01T00:00:00.000Z',
        replica: 'r-a',
      };
      await store.recordAcks([
        ack,
        { ...ack, workerId: 'w2', replica: 'r-b' },
        { ...ack, directiveId: 'd_2' },
      ]);
      await store.recordAcks([{ ...ack, rev: 5, runs: ['run-1', 'run-2'] }]);
      assert.deepEqual(await store.acksOf('d_1'), [
        { ...ack, rev: 5, runs: ['run-1', 'run-2'] },
        { ...ack, workerId: 'w2', replica: 'r-b' },
      ]);
      const later = '2026-01-01T00:00:01.000Z';
      assert.equal(
        await store.retractAck('d_1', { tenant: 'acme', agent: 'bot', workerId: 'w2' }, later),
        true,
      );
      assert.equal(
        await store.retractAck('d_1', { tenant: 'acme', agent: 'bot', workerId: 'w2' }, later),
        false,
      );
      assert.equal(
        await store.retractAck('d_1', { tenant: 'globex', agent: 'bot', workerId: 'w1' }, later),
        false,
      );
      assert.deepEqual(
        (await store.acksOf('d_1')).map((a) => a.workerId),
        ['w1'],
      );
      assert.deepEqual(
        (await store.acksOf('d_2')).map((a) => a.workerId),
        ['w1'],
      );
      assert.deepEqual(await store.acksOf('d_3'), []);
    });

    test('a withdrawal that lands before the acknowledgement it withdraws still withdraws it; one taken after it counts', async () => {
      const w = { tenant: 'acme', agent: 'bot', workerId: 'w1' };
      const ack = {
        directiveId: 'd_1',
        ...w,
        rev: 4,
        runs: ['run-1'],
        at: '2026-01-01T00:00:00.100Z',
        replica: 'r-b',
      };
      // Replica A withdraws at .200 before replica B has written the acknowledgement it took at .100.
      assert.equal(
        await store.retractAck('d_1', w, '2026-01-01T00:00:00.200Z'),
        false,
        'nothing counted yet',
      );
      await store.recordAcks([ack]);
      assert.deepEqual(await store.acksOf('d_1'), [], 'taken before the withdrawal: it does not count');
      // The worker reports halted again, after the withdrawal: that one counts.
      const again = { ...ack, rev: 5, at: '2026-01-01T00:00:00.300Z' };
      await store.recordAcks([again]);
      assert.deepEqual(await store.acksOf('d_1'), [again]);
      // A second withdrawal, later than that one, withdraws it; an earlier instant never moves it back.
      assert.equal(await store.retractAck('d_1', w, '2026-01-01T00:00:00.400Z'), true);
      assert.equal(await store.retractAck('d_1', w, '2026-01-01T00:00:00.250Z'), false);
      await store.recordAcks([{ ...again, at: '2026-01-01T00:00:00.350Z' }]);
      assert.deepEqual(await store.acksOf('d_1'), []);
    });

    test(
      "a rev's commit time is the one its transaction stamped: an issue's and a clear's",
      { skip: !withDirectives },
      async () => {
        const { directive: d } = await store.issueDirective(directiveInput(), () => []);
        const cleared = await store.clearDirective(d.id, () => []);
        assert.equal(await store.revCommittedAt(d.rev), d.issuedAt);
        assert.equal(await store.revCommittedAt(cleared!.clearedRev!), cleared!.clearedAt);
        assert.equal(await store.revCommittedAt(99), null);
      },
    );
  });
}

/**
 * Leases with a fencing epoch ({@link LeaseStore}): one holder at a time, renewals keep the
 * epoch, a takeover after expiry bumps it, and a fenced directive commit of a deposed holder is
 * refused with nothing written. Part of {@link storeContract}.
 */
export function leaseContract(
  make: MakeStore<LeaseStore & DirectiveStore & AuditStore>,
  /** See {@link presenceContract}. */
  withDirectives = true,
): void {
  describe('leases', () => {
    let store: LeaseStore & DirectiveStore & AuditStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    test('one holder at a time; renewals keep the epoch; expiry lets another take it at the next epoch', async () => {
      assert.equal(await store.getLease('leader'), null);
      const t = 1_000_000;
      assert.deepEqual(await store.acquireLease('leader', 'a', 2000, t), {
        name: 'leader',
        holder: 'a',
        epoch: 1,
        expiresAt: t + 2000,
      });
      assert.deepEqual(await store.acquireLease('leader', 'b', 2000, t + 1999), {
        name: 'leader',
        holder: 'a',
        epoch: 1,
        expiresAt: t + 2000,
      });
      assert.deepEqual(await store.acquireLease('leader', 'a', 2000, t + 1000), {
        name: 'leader',
        holder: 'a',
        epoch: 1,
        expiresAt: t + 3000,
      });
      // Expired: a late renewal by the same holder, nobody having taken it meanwhile, keeps the epoch.
      assert.equal((await store.acquireLease('leader', 'a', 2000, t + 5000)).epoch, 1);
      assert.deepEqual(await store.acquireLease('leader', 'b', 2000, t + 7000), {
        name: 'leader',
        holder: 'b',
        epoch: 2,
        expiresAt: t + 9000,
      });
      assert.equal((await store.acquireLease('leader', 'a', 2000, t + 7001)).holder, 'b');
      assert.deepEqual(await store.getLease('leader'), {
        name: 'leader',
        holder: 'b',
        epoch: 2,
        expiresAt: t + 9000,
      });
      // Names are independent.
      assert.equal((await store.acquireLease('other', 'a', 2000, t + 7001)).epoch, 1);
    });

    test('a release hands the lease over at once (next epoch); only its holder releases it', async () => {
      const t = 5_000_000;
      await store.acquireLease('leader', 'a', 60_000, t);
      assert.equal(await store.releaseLease('leader', 'b'), false);
      assert.equal(await store.releaseLease('leader', 'a'), true);
      assert.equal(await store.releaseLease('leader', 'a'), false, 'already released');
      assert.deepEqual(await store.acquireLease('leader', 'b', 60_000, t + 1), {
        name: 'leader',
        holder: 'b',
        epoch: 2,
        expiresAt: t + 60_001,
      });
    });

    test(
      "a fenced directive commit of a deposed holder is refused and writes nothing; the holder's commits",
      { skip: !withDirectives },
      async () => {
        const t = 9_000_000;
        const a = await store.acquireLease('leader', 'a', 1000, t);
        const fenceA = { lease: 'leader', holder: 'a', epoch: a.epoch };
        const first = await store.issueDirective(
          directiveInput({ idempotencyKey: 'k1', fence: fenceA }),
          () => [{ type: 'directive.issued', actor: 'a', tenant: 'acme', data: {} }],
        );
        assert.equal(first.created, true);
        const b = await store.acquireLease('leader', 'b', 1000, t + 1001);
        assert.equal(b.epoch, a.epoch + 1);
        const rev = await store.rev();
        const audit = await store.listAudit({});
        await assert.rejects(
          store.issueDirective(directiveInput({ scope: 'tenant:globex', fence: fenceA }), () => [
            { type: 'directive.issued', actor: 'a', tenant: 'globex', data: {} },
          ]),
          (err: Error & { code?: string }) => err.code === 'conflict' && /deposed/.test(err.message),
        );
        assert.equal(await store.rev(), rev, 'no rev taken');
        assert.equal((await store.listAudit({})).length, audit.length, 'nothing audited');
        assert.equal((await store.switchboard()).directives.length, 1);
        const byB = await store.issueDirective(
          directiveInput({ scope: 'tenant:globex', fence: { lease: 'leader', holder: 'b', epoch: b.epoch } }),
          () => [],
        );
        assert.equal(byB.created, true);
        assert.equal(byB.directive.rev, rev + 1);
      },
    );
  });
}

/**
 * Forwarded telemetry ({@link TelemetryStore}): batches come back whole, in id order, after a
 * given id and from a given time; concurrent forwarders' ids never go back; prune drops old rows.
 */
export function telemetryContract(make: MakeStore<TelemetryStore>): void {
  describe('forwarded telemetry', () => {
    let store: TelemetryStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    const run = (runId: string, steps: number): RunTelemetry => ({
      runId,
      steps,
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
    });

    test('batches come back whole, in id order, after an id and from a time; prune drops the older rows', async () => {
      assert.deepEqual(await store.telemetryAfter(0, 0, 10), []);
      const a = {
        replica: 'r-a',
        tenant: 'acme',
        agent: 'bot',
        workerId: 'w1',
        runs: [run('r1', 3)],
        at: 1000,
      };
      const b = {
        replica: 'r-b',
        tenant: 'acme',
        agent: 'bot',
        workerId: 'w2',
        runs: [run('r2', 5)],
        at: 2000,
      };
      await store.forwardTelemetry([a]);
      await store.forwardTelemetry([b, { ...a, at: 3000, runs: [run('r1', 4), run('r3', 1)] }]);
      await store.forwardTelemetry([]);
      const all = await store.telemetryAfter(0, 0, 10);
      assert.deepEqual(
        all.map(({ id: _, ...r }) => r),
        [a, b, { ...a, at: 3000, runs: [run('r1', 4), run('r3', 1)] }],
      );
      assert.ok(all[0]!.id < all[1]!.id && all[1]!.id < all[2]!.id, 'ids increase in commit order');
      assert.deepEqual(
        (await store.telemetryAfter(all[0]!.id, 0, 1)).map((r) => r.workerId),
        ['w2'],
        'after an id, limited',
      );
      assert.deepEqual(
        (await store.telemetryAfter(0, 2500, 10)).map((r) => r.at),
        [3000],
        'from a time',
      );
      assert.equal(await store.pruneTelemetry(2500), 2);
      assert.deepEqual(
        (await store.telemetryAfter(0, 0, 10)).map((r) => r.id),
        [all[2]!.id],
      );
    });

    test('concurrent forwarders: every batch is read once, ids never repeat', async () => {
      const writes = Array.from({ length: 8 }, (_, i) =>
        store.forwardTelemetry([
          {
            replica: `r-${i}`,
            tenant: 'acme',
            agent: 'bot',
            workerId: `w${i}`,
            runs: [run('r', i)],
            at: 1000 + i,
          },
          { replica: `r-${i}`, tenant: 'acme', agent: 'bot', workerId: `v${i}`, runs: [], at: 1000 + i },
        ]),
      );
      await Promise.all(writes);
      const rows = await store.telemetryAfter(0, 0, 100);
      assert.equal(rows.length, 16);
      assert.equal(new Set(rows.map((r) => r.id)).size, 16);
      assert.deepEqual(
        rows.map((r) => r.id),
        [...rows.map((r) => r.id)].sort((x, y) => x - y),
      );
    });
  });
}
