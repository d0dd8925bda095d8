import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type {
  AuditStore,
  DirectiveStore,
  FleetStore,
  PermitGrant,
  PermitStore,
  RunRecord,
  StoreLifecycle,
} from '../src/store/store.ts';
import { directiveInput } from './store-contract.ts';
import { LEDGER_COMMITTED } from '../src/audit/ledger.ts';
import type { AuditRecord } from '@killpath/protocol';

/** The permit ids each `ledger.committed` record lists, with its tenant, in chain order. */
export function committed(records: AuditRecord[]): { tenant: string | null; ids: string[] }[] {
  return records
    .filter((r) => r.type === LEDGER_COMMITTED)
    .map((r) => ({ tenant: r.tenant, ids: (r.data.rows as [string, string][]).map(([id]) => id) }));
}

/** A permit request of run `runId` (tenant acme, agent bot) with sensible defaults. */
export function grant(over: Partial<PermitGrant> = {}): PermitGrant {
  return {
    workerId: 'w1',
    runId: 'r1',
    lineage: [],
    features: [],
    capability: 'crm.update',
    class: 'write',
    idempotencyKey: null,
    argsDigest: null,
    compensate: null,
    tenant: 'acme',
    agent: 'bot',
    coolOffMs: 0,
    ...over,
  };
}

const run = (over: Partial<RunRecord> = {}): RunRecord => ({
  runId: 'r1',
  tenant: 'acme',
  agent: 'bot',
  parentRunId: null,
  lineage: [],
  features: [],
  workerId: 'w1',
  startedAt: new Date().toISOString(),
  ...over,
});

/**
 * What the permits suite reads and writes: permits and the journal, with the directives that halt
 * them, runs and the audit chain.
 */
type PermitsUnderTest = PermitStore & DirectiveStore & FleetStore & AuditStore & StoreLifecycle;

/**
 * The permits and journal concept's contract ({@link PermitStore}): what every backend must do
 * with permits, outcomes, journal events, resume checks, halted runs and the ledger pages. Runs
 * next to `storeContract` (the other concepts) for each backend; a backend built concept by
 * concept runs it once it has these four.
 */
export function effectsContract(name: string, make: () => Promise<PermitsUnderTest>): void {
  describe(`effects contract: ${name}`, () => {
    const withStore = (fn: (s: PermitsUnderTest) => Promise<void>) => async () => {
      const s = await make();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    };

    test(
      'a permit is granted at the current rev and its intent is on the audit chain',
      withStore(async (s) => {
        const [d] = await s.grantPermits([grant()]);
        assert.equal(d?.kind, 'granted');
        if (d?.kind !== 'granted') return;
        assert.equal(d.response.permit.rev, await s.rev());
        assert.equal(d.response.permit.status, 'granted');
        assert.equal(d.response.replay, false);
        // One chained record commits the row: its id and digest (audit/ledger.ts), no per-effect record.
        const records = await s.listAudit({ limit: 100 });
        assert.deepEqual(committed(records), [{ tenant: 'acme', ids: [d.response.permit.id] }]);
        assert.deepEqual(
          records.filter((r) => r.type.startsWith('effect.')),
          [],
        );
        const found = await s.verifyLog(null);
        assert.deepEqual([found.ok, found.ledger?.ok, found.ledger?.rows], [true, true, 1]);
      }),
    );

    test(
      'one batch of permits is committed by one record per tenant, not one per effect',
      withStore(async (s) => {
        const ds = await s.grantPermits([
          grant({ runId: 'r1' }),
          grant({ runId: 'g1', tenant: 'globex' }),
          grant({ runId: 'r2' }),
          grant({ runId: 'r3' }),
        ]);
        const ids = ds.map((d) => (d.kind === 'granted' ? d.response.permit.id : d.kind));
        assert.deepEqual(committed(await s.listAudit({ limit: 100 })), [
          { tenant: 'acme', ids: [ids[0]!, ids[2]!, ids[3]!] },
          { tenant: 'globex', ids: [ids[1]!] },
        ]);
        // Their outcomes commit each row again, in the tenant's records (SQLite's group commit
        // shares one per tenant; a backend with a transaction per call writes one each).
        await Promise.all(
          ds.map((d, i) =>
            d.kind === 'granted'
              ? s.settlePermit(
                  d.response.permit.id,
                  { tenant: i === 1 ? 'globex' : 'acme', agent: 'bot' },
                  { status: 'landed', result: { n: i } },
                )
              : null,
          ),
        );
        const outcomes = committed(await s.listAudit({ limit: 100 })).slice(2);
        assert.deepEqual(
          outcomes.flatMap((c) => c.ids.map((id) => [id, c.tenant])).sort(),
          ids.map((id, i) => [id, i === 1 ? 'globex' : 'acme']).sort(),
        );
        const found = await s.verifyLog(null);
        assert.deepEqual([found.ok, found.ledger?.rows], [true, 4]);
      }),
    );

    test(
      'no permit for a covered run is granted after a halt commits; other runs and tools still get theirs',
      withStore(async (s) => {
        const before = await s.grantPermits([grant({ runId: 'r1' })]);
        assert.equal(before[0]?.kind, 'granted');
        const { directive } = await s.issueDirective(directiveInput({ scope: 'run:r1' }), () => []);
        const after = await s.grantPermits([
          grant({ runId: 'r1' }),
          grant({ runId: 'r1.child', lineage: ['r1'] }),
          grant({ runId: 'r2' }),
        ]);
        assert.deepEqual(
          after.map((d) => d.kind),
          ['halted', 'halted', 'granted'],
        );
        const refused = after[0];
        assert.ok(refused?.kind === 'halted' && refused.directive.id === directive.id);
      }),
    );

    test(
      'a request is decided on its run as registered plus its own claims: omitting the parent or a feature does not take it out of a stop',
      withStore(async (s) => {
        await s.registerRun(
          run({ runId: 'kid', parentRunId: 'mom', lineage: ['mom'], features: ['billing'] }),
        );
        // Registered by its first permit, in the same batch as a second request that omits it all.
        const first = await s.grantPermits([
          grant({ runId: 'fresh', lineage: ['mom'], features: ['billing'] }),
          grant({ runId: 'fresh' }),
          grant({ runId: 'kid', features: ['extra'] }),
        ]);
        assert.deepEqual(
          first.map((d) => d.kind),
          ['granted', 'granted', 'granted'],
        );
        // The permit rows record the coverage they were decided on.
        const rows = await s.permittedFrom({ fromRev: 0, toRev: null, tenant: 'acme', runIds: ['kid'] });
        assert.deepEqual(
          rows.map((e) => [e.lineage, e.features]),
          [[['mom'], ['billing', 'extra']]],
        );
        await s.issueDirective(directiveInput({ scope: 'run:mom' }), () => []);
        const omitted = await s.grantPermits([grant({ runId: 'kid' }), grant({ runId: 'fresh' })]);
        assert.deepEqual(
          omitted.map((d) => d.kind),
          ['halted', 'halted'],
        );
        await s.registerRun(run({ runId: 'solo', features: ['billing'] }));
        await s.issueDirective(directiveInput({ scope: 'feature:billing' }), () => []);
        const features = await s.grantPermits([grant({ runId: 'solo' }), grant({ runId: 'other' })]);
        assert.deepEqual(
          features.map((d) => d.kind),
          ['halted', 'granted'],
        );
      }),
    );

    test(
      'when a worker\u2019s process ends, its granted effects become in doubt and cooling-off ones cancelled; a late outcome still wins',
      withStore(async (s) => {
        const ds = await s.grantPermits([
          grant({ workerId: 'w1', idempotencyKey: 'k1', compensate: { action: 'crm.revert' } }),
          grant({ workerId: 'w1', capability: 'wire_transfer', class: 'irreversible', coolOffMs: 60_000 }),
          grant({ workerId: 'w2', runId: 'r2' }),
        ]);
        const ids = ds.map((d) => (d.kind === 'granted' ? d.response.permit.id : ''));
        assert.equal(ds[1]?.kind === 'granted' && ds[1].response.permit.status, 'cooling_off');
        await s.recordHalted([
          { tenant: 'acme', runId: 'r1', directiveId: 'd1', at: new Date().toISOString() },
        ]);
        const changed = await s.markInDoubt(
          { tenant: 'acme', agent: 'bot' },
          ['w1'],
          'agent process 42 ended (killed by SIGKILL) with the effect in flight',
        );
        assert.deepEqual(
          changed.map((e) => [e.permitId, e.status]),
          [
            [ids[0], 'in_doubt'],
            [ids[1], 'cancelled'],
          ],
        );
        assert.deepEqual(
          await s.markInDoubt({ tenant: 'acme', agent: 'bot' }, ['w1'], 'again'),
          [],
          'nothing left to mark',
        );
        const ledger = await s.ledger('acme', 'r2');
        assert.equal(ledger.effects[0]?.status, 'granted', 'another worker is untouched');
        const audit = (await s.listAudit({ limit: 100 })).filter(
          (r) => r.type === 'effect.in_doubt' || r.type === 'effect.cancelled',
        );
        assert.deepEqual(
          audit.map((r) => [r.type, r.data.permitId]),
          [
            ['effect.in_doubt', ids[0]],
            ['effect.cancelled', ids[1]],
          ],
        );
        assert.match(String(audit[0]?.data.reason), /SIGKILL/);
        // An in-doubt write with a compensation is on the list to check.
        assert.deepEqual(
          (await s.compensationsPage({ runIds: ['r1'], limit: 5000, cursor: null })).items.map((c) => [
            c.permitId,
            c.status,
          ]),
          [[ids[0], 'in_doubt']],
        );
        const late = await s.settlePermit(ids[0]!, { tenant: 'acme', agent: 'bot' }, { status: 'landed' });
        assert.equal(late?.status, 'landed', 'the worker’s own outcome, arriving late, wins');
      }),
    );

    test(
      'run ids and idempotency keys live inside the tenant; a run of another agent gets no permit',
      withStore(async (s) => {
        const [acme, globex] = await s.grantPermits([
          grant({ idempotencyKey: 'k1' }),
          grant({ tenant: 'globex', agent: 'evil', idempotencyKey: 'k1' }),
        ]);
        assert.equal(acme?.kind, 'granted');
        assert.equal(globex?.kind, 'granted', 'the same run id and key in another tenant is another effect');
        const [other] = await s.grantPermits([grant({ agent: 'other', workerId: 'w7' })]);
        assert.equal(other?.kind, 'conflict', 'r1 of acme is bot’s run (registered by its first permit)');
        assert.equal((await s.getRun('acme', 'r1'))?.agent, 'bot');
        assert.equal((await s.ledger('acme', 'r1')).effects.length, 1);
        assert.equal((await s.ledger('globex', 'r1')).effects.length, 1);
        // Another agent of the tenant neither settles nor confirms bot's permit.
        const id = acme?.kind === 'granted' ? acme.response.permit.id : '';
        assert.equal(
          await s.settlePermit(id, { tenant: 'acme', agent: 'other' }, { status: 'failed' }),
          null,
        );
        assert.equal(
          (await s.confirmPermit(id, { tenant: 'acme', agent: 'other' }, new Date())).kind,
          'not_found',
        );
        assert.equal((await s.ledger('acme', 'r1')).effects[0]?.status, 'granted');
      }),
    );

    test(
      'a capability-narrowed halt refuses only that capability',
      withStore(async (s) => {
        await s.issueDirective(
          directiveInput({ scope: 'agent:acme/bot', capabilities: ['wire_transfer'] }),
          () => [],
        );
        const ds = await s.grantPermits([
          grant({ capability: 'wire_transfer' }),
          grant({ capability: 'crm.update' }),
        ]);
        assert.deepEqual(
          ds.map((d) => d.kind),
          ['halted', 'granted'],
        );
      }),
    );

    test(
      "another tenant's halt does not refuse; a cleared halt no longer refuses",
      withStore(async (s) => {
        await s.issueDirective(directiveInput({ scope: 'tenant:globex', tenant: 'globex' }), () => []);
        const { directive } = await s.issueDirective(directiveInput({ scope: 'tenant:acme' }), () => []);
        assert.equal((await s.grantPermits([grant()]))[0]?.kind, 'halted');
        await s.clearDirective(directive.id, () => []);
        assert.equal((await s.grantPermits([grant()]))[0]?.kind, 'granted');
      }),
    );

    test(
      'the same idempotency key returns the landed result and never a second permit',
      withStore(async (s) => {
        const [first] = await s.grantPermits([grant({ idempotencyKey: 'k1' })]);
        assert.ok(first?.kind === 'granted');
        await s.settlePermit(
          first.response.permit.id,
          { tenant: 'acme', agent: 'bot' },
          { status: 'landed', result: { id: 42 } },
        );
        const [again] = await s.grantPermits([grant({ idempotencyKey: 'k1' })]);
        assert.ok(again?.kind === 'granted');
        assert.equal(again.response.replay, true);
        assert.equal(again.response.permit.id, first.response.permit.id);
        assert.deepEqual(again.response.result, { id: 42 });
        const { effects } = await s.ledger('acme', 'r1');
        assert.equal(effects.length, 1);
      }),
    );

    test(
      'a key whose effect has no outcome is refused as in doubt (at most once)',
      withStore(async (s) => {
        const [first] = await s.grantPermits([grant({ idempotencyKey: 'k2' })]);
        assert.ok(first?.kind === 'granted');
        const [again] = await s.grantPermits([grant({ idempotencyKey: 'k2' })]);
        assert.equal(again?.kind, 'conflict');
        assert.equal((await s.ledger('acme', 'r1')).effects[0]?.status, 'in_doubt');
      }),
    );

    test(
      'a key reused by another run is independent',
      withStore(async (s) => {
        const ds = await s.grantPermits([
          grant({ idempotencyKey: 'k' }),
          grant({ runId: 'r2', idempotencyKey: 'k' }),
        ]);
        assert.deepEqual(
          ds.map((d) => d.kind),
          ['granted', 'granted'],
        );
      }),
    );

    test(
      'an irreversible permit cools off, then confirms; a halt during the cool-off cancels it',
      withStore(async (s) => {
        const [a, b] = await s.grantPermits([
          grant({ class: 'irreversible', capability: 'wire_transfer', coolOffMs: 2000 }),
          grant({ runId: 'r2', class: 'irreversible', capability: 'wire_transfer', coolOffMs: 2000 }),
        ]);
        assert.ok(a?.kind === 'granted' && b?.kind === 'granted');
        assert.equal(a.response.permit.status, 'cooling_off');
        const early = await s.confirmPermit(
          a.response.permit.id,
          { tenant: 'acme', agent: 'bot' },
          new Date(),
        );
        assert.equal(early.kind, 'conflict', 'too early');
        const later = new Date(Date.now() + 2500);
        const ok = await s.confirmPermit(a.response.permit.id, { tenant: 'acme', agent: 'bot' }, later);
        assert.ok(ok.kind === 'granted' && ok.response.permit.status === 'granted');
        await s.issueDirective(directiveInput({ scope: 'run:r2' }), () => []);
        const cancelled = await s.confirmPermit(
          b.response.permit.id,
          { tenant: 'acme', agent: 'bot' },
          later,
        );
        assert.equal(cancelled.kind, 'halted');
        assert.equal((await s.ledger('acme', 'r2')).effects[0]?.status, 'cancelled');
        assert.equal(
          (await s.confirmPermit(b.response.permit.id, { tenant: 'globex', agent: 'bot' }, later)).kind,
          'not_found',
          'another tenant cannot see it',
        );
      }),
    );

    test(
      'outcomes settle once, stay tenant-scoped, and land on the audit chain',
      withStore(async (s) => {
        const [d] = await s.grantPermits([grant({ compensate: { action: 'crm.revert', record: 7 } })]);
        assert.ok(d?.kind === 'granted');
        assert.equal(
          await s.settlePermit(
            d.response.permit.id,
            { tenant: 'globex', agent: 'bot' },
            { status: 'landed' },
          ),
          null,
        );
        const e = await s.settlePermit(
          d.response.permit.id,
          { tenant: 'acme', agent: 'bot' },
          { status: 'landed' },
        );
        assert.equal(e?.status, 'landed');
        const again = await s.settlePermit(
          d.response.permit.id,
          { tenant: 'acme', agent: 'bot' },
          { status: 'failed', error: 'late' },
        );
        assert.equal(again?.status, 'landed', 'first outcome wins');
        const records = await s.listAudit({ limit: 100 });
        // The grant and the landing each commit the row; the late outcome wrote nothing.
        assert.deepEqual(committed(records), [
          { tenant: 'acme', ids: [d.response.permit.id] },
          { tenant: 'acme', ids: [d.response.permit.id] },
        ]);
        assert.deepEqual(
          records.filter((r) => r.type.startsWith('effect.')),
          [],
        );
        assert.ok((await s.verifyAudit()).ok);
        assert.equal((await s.verifyLog(null)).ledger?.ok, true);
      }),
    );

    test(
      'compensations list landed writes with a descriptor of halted runs only',
      withStore(async (s) => {
        const ds = await s.grantPermits([
          grant({ runId: 'r1', compensate: { action: 'refund', amount: 5 } }),
          grant({ runId: 'r1', capability: 'log.write' }),
          grant({ runId: 'r2', compensate: { action: 'refund', amount: 9 } }),
        ]);
        for (const d of ds)
          if (d.kind === 'granted')
            await s.settlePermit(
              d.response.permit.id,
              { tenant: 'acme', agent: 'bot' },
              { status: 'landed' },
            );
        assert.equal(
          (await s.compensationsPage({ limit: 5000, cursor: null })).total,
          0,
          'no run halted yet',
        );
        await s.recordHalted([
          { tenant: 'acme', runId: 'r1', directiveId: 'd1', at: new Date().toISOString() },
        ]);
        const { items: list, total } = await s.compensationsPage({
          tenant: 'acme',
          limit: 5000,
          cursor: null,
        });
        assert.equal(total, 1);
        assert.equal(list.length, 1);
        assert.deepEqual(list[0]?.compensate, { action: 'refund', amount: 5 });
        assert.equal(list[0]?.haltedBy, 'd1');
        assert.equal((await s.compensationsPage({ tenant: 'globex', limit: 5000, cursor: null })).total, 0);
      }),
    );

    test(
      'journal events are kept per run and audited',
      withStore(async (s) => {
        await s.appendJournal('acme', 'w1', [
          {
            type: 'timer.cancelled',
            runId: 'r1',
            timer: 'retry',
            label: 'sync',
            dueAt: new Date().toISOString(),
            directiveId: 'd1',
          },
          {
            type: 'queue.discarded',
            runId: 'r1',
            queue: 'outbox',
            taskId: 't1',
            payload: { to: 'x' },
            directiveId: 'd1',
          },
        ]);
        const { events } = await s.ledger('acme', 'r1');
        assert.deepEqual(
          events.map((e) => e.type),
          ['timer.cancelled', 'queue.discarded'],
        );
        assert.deepEqual(events[1]?.data.payload, { to: 'x' });
        assert.ok((await s.listAudit({ limit: 100 })).some((r) => r.type === 'queue.discarded'));
      }),
    );

    test(
      'a batch decides in order, each request seeing the ones before: a run registered by one is refused to another agent, a key reused in the batch is in doubt',
      withStore(async (s) => {
        const ds = await s.grantPermits([
          grant({ runId: 'fresh', idempotencyKey: 'k1' }),
          grant({ runId: 'fresh', agent: 'other', workerId: 'w7' }),
          grant({ runId: 'fresh', idempotencyKey: 'k1' }),
          grant({ runId: 'fresh', idempotencyKey: 'k2', class: 'irreversible', coolOffMs: 1000 }),
          grant({ runId: 'fresh', idempotencyKey: 'k2' }),
        ]);
        assert.deepEqual(
          ds.map((d) => d.kind),
          ['granted', 'conflict', 'conflict', 'granted', 'conflict'],
        );
        assert.equal((await s.getRun('acme', 'fresh'))?.agent, 'bot');
        const first = ds[0]?.kind === 'granted' ? ds[0].response.permit : null;
        assert.equal(first?.status, 'granted', 'answered as granted: the effect may run');
        const { effects } = await s.ledger('acme', 'fresh');
        assert.deepEqual(
          effects.map((e) => [e.idempotencyKey, e.status]).sort(),
          [
            ['k1', 'in_doubt'],
            ['k2', 'cooling_off'],
          ],
          'the key reused before its outcome puts its effect in doubt; a cooling-off one stays as it is',
        );
        // One record commits both rows, the first in its final state (in doubt): the ledger verifies.
        assert.deepEqual(
          committed(await s.listAudit({ limit: 100 })).map((c) => [c.tenant, c.ids.length]),
          [['acme', 2]],
          'one ledger record for the batch, listing each permit granted once',
        );
        assert.equal((await s.verifyLog(null)).ok, true);
      }),
    );

    test(
      'a run’s family is the run, then its descendants by start; other tenants’ runs never join it',
      withStore(async (s) => {
        await s.registerRun(run({ runId: 'root', startedAt: '2025-06-01T10:00:00.000Z' }));
        await s.registerRun(
          run({
            runId: 'kid-b',
            lineage: ['root'],
            parentRunId: 'root',
            startedAt: '2025-06-01T10:00:02.000Z',
          }),
        );
        await s.registerRun(
          run({
            runId: 'kid-a',
            lineage: ['root'],
            parentRunId: 'root',
            startedAt: '2025-06-01T10:00:01.000Z',
          }),
        );
        await s.registerRun(
          run({
            runId: 'grandkid',
            lineage: ['root', 'kid-a'],
            parentRunId: 'kid-a',
            startedAt: '2025-06-01T10:00:01.000Z',
          }),
        );
        await s.registerRun(run({ runId: 'kid-x', tenant: 'globex', agent: 'evil', lineage: ['root'] }));
        await s.registerRun(run({ runId: 'roots', lineage: ['root-ish'] }));
        assert.deepEqual(
          (await s.runFamily('acme', 'root')).map((r) => r.runId),
          ['root', 'grandkid', 'kid-a', 'kid-b'],
        );
        assert.deepEqual(
          (await s.runFamily('acme', 'kid-a')).map((r) => r.runId),
          ['kid-a', 'grandkid'],
        );
        assert.deepEqual(await s.runFamily('acme', 'nobody'), []);
        assert.deepEqual(
          (await s.runFamily('globex', 'root')).map((r) => r.runId),
          ['kid-x'],
        );
      }),
    );

    test(
      'effects and journal pages: newest first, totals and status counts of the whole list, cursors that resume where they stopped',
      withStore(async (s) => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          const [d] = await s.grantPermits([
            grant({ runId: i % 2 === 0 ? 'r1' : 'r2', idempotencyKey: `k${i}` }),
          ]);
          assert.ok(d?.kind === 'granted');
          ids.push(d.response.permit.id);
          // Distinct intended times, so the order is the grant order on every backend.
          await new Promise((r) => setTimeout(r, 3));
        }
        await s.grantPermits([grant({ runId: 'r3' })]);
        const owner = { tenant: 'acme', agent: 'bot' };
        await s.settlePermit(ids[0]!, owner, { status: 'landed' });
        await s.settlePermit(ids[1]!, owner, { status: 'failed', error: 'x' });
        await s.settlePermit(ids[2]!, owner, { status: 'aborted' });
        const first = await s.effectsPage({ tenant: 'acme', runIds: ['r1', 'r2'], limit: 2, cursor: null });
        assert.deepEqual(
          first.items.map((e) => e.permitId),
          [ids[4], ids[3]],
        );
        assert.equal(first.total, 5);
        assert.deepEqual(first.summary, {
          intended: 5,
          landed: 1,
          failed: 1,
          aborted: 1,
          cancelled: 0,
          inDoubt: 0,
          open: 2,
        });
        assert.ok(first.cursor);
        const second = await s.effectsPage({
          tenant: 'acme',
          runIds: ['r1', 'r2'],
          limit: 2,
          cursor: first.cursor,
        });
        assert.deepEqual(
          second.items.map((e) => [e.permitId, e.status]),
          [
            [ids[2], 'aborted'],
            [ids[1], 'failed'],
          ],
        );
        const third = await s.effectsPage({
          tenant: 'acme',
          runIds: ['r1', 'r2'],
          limit: 2,
          cursor: second.cursor,
        });
        assert.deepEqual(
          third.items.map((e) => e.permitId),
          [ids[0]],
        );
        assert.equal(third.cursor, null);
        assert.equal(
          (await s.effectsPage({ tenant: 'globex', runIds: ['r1'], limit: 9, cursor: null })).total,
          0,
        );
        await assert.rejects(
          s.effectsPage({ tenant: 'acme', runIds: ['r1'], limit: 2, cursor: 'not-a-cursor' }),
          (err: Error & { code?: string }) => err.code === 'invalid_request',
        );

        await s.appendJournal(
          'acme',
          'w1',
          [1, 2, 3].map((n) => ({
            type: 'queue.discarded',
            runId: 'r1',
            queue: 'q',
            taskId: `t${n}`,
            payload: n,
            directiveId: 'd1',
          })),
        );
        await s.appendJournal('globex', 'w9', [
          { type: 'queue.discarded', runId: 'r1', queue: 'q', taskId: 'g', payload: 0, directiveId: 'd9' },
        ]);
        const e1 = await s.eventsPage({ tenant: 'acme', runIds: ['r1'], limit: 2, cursor: null });
        assert.equal(e1.total, 3);
        assert.deepEqual(
          e1.items.map((e) => e.data.taskId),
          ['t3', 't2'],
        );
        const e2 = await s.eventsPage({ tenant: 'acme', runIds: ['r1'], limit: 2, cursor: e1.cursor });
        assert.deepEqual(
          e2.items.map((e) => e.data.taskId),
          ['t1'],
        );
        assert.equal(e2.cursor, null);
        await assert.rejects(
          s.eventsPage({ tenant: 'acme', runIds: ['r1'], limit: 2, cursor: first.cursor }),
          (err: Error & { code?: string }) => err.code === 'invalid_request',
          'a cursor of another list',
        );
      }),
    );

    test(
      'permittedFrom lists writes permitted at a rev from fromRev up to toRev, confirmed ones at their confirmation’s rev, narrowed by the filters',
      withStore(async (s) => {
        const owner = { tenant: 'acme', agent: 'bot' };
        const [a] = await s.grantPermits([grant({ runId: 'r1', capability: 'crm.update' })]);
        const [cool] = await s.grantPermits([
          grant({ runId: 'r1', capability: 'wire_transfer', class: 'irreversible', coolOffMs: 10 }),
        ]);
        const { directive } = await s.issueDirective(directiveInput({ scope: 'run:other' }), () => []);
        const r1 = directive.rev;
        const [b, c, g] = await s.grantPermits([
          grant({ runId: 'r2', capability: 'crm.update' }),
          grant({ runId: 'r2', capability: 'mail.send', agent: 'bot' }),
          grant({ runId: 'r1', tenant: 'globex', agent: 'evil', capability: 'crm.update' }),
        ]);
        const coolId = cool?.kind === 'granted' ? cool.response.permit.id : '';
        const confirmed = await s.confirmPermit(coolId, owner, new Date(Date.now() + 1000));
        assert.ok(confirmed.kind === 'granted' && confirmed.response.permit.rev === r1);
        await s.issueDirective(directiveInput({ scope: 'run:other2' }), () => []);
        const [late] = await s.grantPermits([grant({ runId: 'r3' })]);
        const id = (d: typeof a) => (d?.kind === 'granted' ? d.response.permit.id : '?');
        const ids = (list: { permitId: string }[]) => list.map((e) => e.permitId);
        assert.deepEqual(
          ids(await s.permittedFrom({ fromRev: 0, toRev: null, tenant: 'acme' })).sort(),
          [id(a), id(b), id(c), coolId, id(late)].sort(),
        );
        const fromR1 = await s.permittedFrom({ fromRev: r1, toRev: r1 + 1, tenant: 'acme' });
        assert.deepEqual(ids(fromR1).sort(), [id(b), id(c), coolId].sort());
        assert.ok(fromR1.every((e) => e.rev === r1 && e.tenant === 'acme' && e.agent === 'bot'));
        assert.deepEqual(
          ids(await s.permittedFrom({ fromRev: r1, toRev: null, runIds: ['r1'] })).sort(),
          [coolId, id(g)].sort(),
        );
        assert.deepEqual(
          ids(
            await s.permittedFrom({
              fromRev: r1,
              toRev: r1 + 1,
              tenant: 'acme',
              capabilities: ['mail.send', 'wire_transfer'],
            }),
          ).sort(),
          [id(c), coolId].sort(),
        );
        assert.deepEqual(
          ids(await s.permittedFrom({ fromRev: r1, toRev: null, tenant: 'acme', agent: 'nobody' })),
          [],
        );
        const [row] = await s.permittedFrom({ fromRev: r1 + 1, toRev: null, tenant: 'acme' });
        assert.equal(row?.permitId, id(late));
        assert.deepEqual([row?.lineage, row?.features, row?.release], [[], [], null]);
      }),
    );

    test(
      'outcomes sent together settle in order: the first wins for each permit, each is audited once, another agent\u2019s is not found',
      withStore(async (s) => {
        const ds = await s.grantPermits([grant(), grant({ runId: 'r2' }), grant({ runId: 'r3' })]);
        const [a, b, c] = ds.map((d) => (d.kind === 'granted' ? d.response.permit.id : ''));
        const owner = { tenant: 'acme', agent: 'bot' };
        const entries = await Promise.all([
          s.settlePermit(a!, owner, { status: 'landed', result: { n: 1 } }),
          s.settlePermit(b!, owner, { status: 'failed', error: 'boom' }),
          s.settlePermit(a!, owner, { status: 'failed', error: 'late' }),
          s.settlePermit(c!, { tenant: 'acme', agent: 'other' }, { status: 'landed' }),
          s.settlePermit(c!, owner, { status: 'aborted', afterAbort: true }),
        ]);
        assert.deepEqual(
          entries.map((e) => e?.status ?? null),
          ['landed', 'failed', 'landed', null, 'aborted'],
        );
        assert.equal(entries[4]?.afterAbort, true);
        // Each written outcome is committed once by the ledger records after the grant's; an
        // abort also keeps its own record.
        const records = await s.listAudit({ limit: 100 });
        assert.deepEqual(
          committed(records)
            .slice(1)
            .flatMap((x) => x.ids)
            .sort(),
          [a!, b!, c!].sort(),
        );
        assert.deepEqual(
          records.filter((r) => r.type.startsWith('effect.')).map((r) => [r.type, r.data.permitId]),
          [['effect.aborted', c]],
        );
        assert.equal((await s.verifyLog(null)).ok, true);
        const [again] = await s.grantPermits([grant({ runId: 'r1' })]);
        assert.equal(again?.kind, 'granted');
        assert.equal((await s.ledger('acme', 'r1')).effects[0]?.status, 'landed');
        assert.ok((await s.verifyAudit()).ok);
      }),
    );

    test(
      'resume is refused under a halted scope (audited) and allowed otherwise',
      withStore(async (s) => {
        await s.issueDirective(directiveInput({ scope: 'run:parent' }), () => []);
        assert.equal(await s.checkResume(run({ runId: 'other' }), 'worker:w1'), null);
        const stop = await s.checkResume(run({ runId: 'kid', lineage: ['parent'] }), 'worker:w1');
        assert.ok(stop);
        const refused = (await s.listAudit({ limit: 100 })).filter((r) => r.type === 'resume.refused');
        assert.equal(refused.length, 1);
        assert.equal(refused[0]?.data.runId, 'kid');
        // A capability-narrowed halt does not stop the run as a whole.
        await s.issueDirective(directiveInput({ scope: 'agent:acme/bot', capabilities: ['x'] }), () => []);
        assert.equal(await s.checkResume(run({ runId: 'other' }), 'worker:w1'), null);
      }),
    );
  });
}
