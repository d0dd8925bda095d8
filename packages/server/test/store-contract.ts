import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatScope,
  parseScope,
  type AuditKeyInfo,
  type AuditRecord,
  type Directive,
  type RehearsalInput,
  type RehearsalRecord,
  type ScenarioResult,
} from '@killpath/protocol';
import type { AuditEvent } from '../src/audit/chain.ts';
import type {
  ApprovalQuery,
  ApprovalRecord,
  AuditStore,
  StoredCheckpoint,
  DirectiveInput,
  DirectiveStore,
  DrillStore,
  FleetStore,
  IssueResult,
  PolicyStore,
  RunRecord,
  Store,
  StoreLifecycle,
  SwitchboardChange,
  TokenStore,
} from '../src/store/store.ts';
import { leaseContract, presenceContract, telemetryContract } from './presence-contract.ts';

/** A directive input with sensible defaults: a halt of tenant acme. */
export function directiveInput(
  over: Partial<Omit<DirectiveInput, 'scope'>> & { scope?: string } = {},
): DirectiveInput {
  const { scope, ...rest } = over;
  const parsed = parseScope(scope ?? 'tenant:acme');
  return {
    level: 'halt',
    tenant: parsed.kind === 'tenant' || parsed.kind === 'agent' ? parsed.tenant : 'acme',
    capabilities: null,
    rate: null,
    escalation: [],
    escalatedFrom: null,
    graceMs: 5000,
    drain: 'discard',
    memory: 'revert',
    reason: 'runaway spend',
    justification: 'INC-1',
    actor: 'alice',
    idempotencyKey: null,
    releases: [],
    ...rest,
    scope: parsed,
  };
}

/** The audit events a control plane would append for an issue (two for a new directive, one for a convergence). */
function issueAudit(r: IssueResult): AuditEvent[] {
  const d = r.directive;
  const action: AuditEvent = {
    type: 'operator_action',
    actor: d.actor,
    tenant: d.tenant,
    data: { action: 'directive.issue', directiveId: d.id, converged: r.converged },
  };
  return r.created
    ? [action, { type: 'directive.issued', actor: d.actor, tenant: d.tenant, data: { directive: d } }]
    : [action];
}

/** One scenario's result with sensible defaults: S1 passed, with a timeline. */
export function scenarioResult(over: Partial<ScenarioResult> = {}): ScenarioResult {
  return {
    id: 'S1',
    title: 'cost runaway',
    path: 'asynchronous',
    status: 'pass',
    startedAt: '2025-06-01T10:00:01.000Z',
    durationMs: 1500,
    target: { signalToHaltMs: 1000, haltToRecoveryMs: null },
    signalToHalt: { n: 3, p50: 12.5, p99: 40, max: 41, samples: [12.5, 11, 41] },
    haltToRecoveryMs: null,
    effectsAfterFlip: { read: 1, write: 0, irreversible: 0 },
    effectsAfterObserve: 0,
    queue: null,
    journal: { intents: 4, landed: 3, failed: 0, aborted: 1, inDoubt: 0, open: 0, lost: 0, compensations: 2 },
    checks: [
      { name: 'no write after the flip', ok: true, kind: 'invariant', detail: '0 writes after the flip' },
    ],
    paths: [],
    timeline: [
      { t: -5, class: 'write', outcome: 'started' },
      { t: 3, class: 'write', outcome: 'refused' },
    ],
    notes: [],
    remediation: null,
    ...over,
  };
}

/** A rehearsal as `killpath drill` posts it: acme/bot at level 4, passed. */
export function rehearsalInput(over: Partial<RehearsalInput> = {}): RehearsalInput {
  return {
    spec: {
      name: 'acme-spec',
      digest: 'sha256:aaaa',
      agents: [{ tenant: 'acme', agent: 'bot', level: 4, cadenceDays: 30 }],
    },
    mode: 'local',
    compact: false,
    startedAt: '2025-06-01T10:00:00.000Z',
    finishedAt: '2025-06-01T10:05:00.000Z',
    result: 'pass',
    scenarios: [
      scenarioResult(),
      scenarioResult({
        id: 'S7',
        title: 'control plane down',
        path: 'deadman',
        status: 'degraded',
        paths: [{ path: 'deadman', state: 'worked', detail: 'tripped in 2 s' }],
      }),
    ],
    ...over,
  };
}

const drillAudit = (r: Omit<RehearsalRecord, 'auditSeq'>): AuditEvent[] => [
  {
    type: 'operator_action',
    actor: 'alice',
    tenant: 'acme',
    data: { action: 'drill.record', drillId: r.id },
  },
  { type: 'drill.recorded', actor: 'alice', tenant: 'acme', data: { drillId: r.id, result: r.result } },
];

function clearAudit(d: Directive): AuditEvent[] {
  return [
    {
      type: 'directive.cleared',
      actor: 'bob',
      tenant: d.tenant,
      data: { directiveId: d.id, rev: d.clearedRev },
    },
  ];
}

function runRecord(over: Partial<RunRecord> = {}): RunRecord {
  return {
    runId: 'r1',
    tenant: 'acme',
    agent: 'bot',
    parentRunId: 'r0',
    lineage: ['r0'],
    features: ['new-planner'],
    workerId: 'w1',
    startedAt: '2025-06-01T12:00:00.000Z',
    ...over,
  };
}

const sortedIds = (ds: readonly { id: string }[]) => ds.map((d) => d.id).sort();

/**
 * What a concept suite is given: a fresh, empty store with that concept (and the audit chain, and
 * whatever else its cases read to check it), which each test closes. A whole backend is one.
 */
export type MakeStore<S = Store> = () => Promise<S & StoreLifecycle>;

/**
 * The directives and rev concept ({@link DirectiveStore}): revisions and the switchboard,
 * convergence (guarantee 7), clearing, listing directives.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function directiveContract(make: MakeStore<DirectiveStore & AuditStore & TokenStore>): void {
  describe('directives and rev', () => {
    let store: DirectiveStore & AuditStore & TokenStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    const issue = (over: Parameters<typeof directiveInput>[0] = {}) =>
      store.issueDirective(directiveInput(over), issueAudit);
    const auditCount = async () => (await store.listAudit({ limit: 100_000 })).length;

    describe('revisions and the switchboard', () => {
      test('a fresh store is empty at rev 0', async () => {
        assert.equal(await store.rev(), 0);
        assert.deepEqual(await store.switchboard(), { rev: 0, directives: [] });
        assert.deepEqual(await store.listDirectives({}), []);
        assert.deepEqual(await store.listAudit({}), []);
        assert.equal(await store.countTokens(), 0);
        assert.deepEqual(await store.verifyAudit(), { ok: true, records: 0, head: '0'.repeat(64) });
      });

      test('rev grows by exactly one per issue and per clear', async () => {
        const a = await issue({ scope: 'tenant:acme' });
        assert.equal(a.directive.rev, 1);
        assert.equal(await store.rev(), 1);
        const b = await issue({ scope: 'agent:acme/bot' });
        assert.equal(b.directive.rev, 2);
        assert.equal(await store.rev(), 2);
        const cleared = await store.clearDirective(a.directive.id, clearAudit);
        assert.equal(cleared?.clearedRev, 3);
        assert.equal(await store.rev(), 3);
        const c = await issue({ scope: 'run:r1' });
        assert.equal(c.directive.rev, 4);
        assert.equal(await store.rev(), 4);
      });

      test('an issued directive keeps every field', async () => {
        const r = await issue({
          scope: 'feature:new-planner',
          tenant: 'acme',
          level: 'kill',
          capabilities: ['wire_transfer', 'memory.write'],
          rate: { perSecond: 2.5, per: 'agent' },
          graceMs: 1234,
          drain: 'drain',
          reason: 'spending ünïcödé "quoted"',
          justification: "it's INC-2",
          actor: 'carol',
        });
        assert.equal(r.created, true);
        assert.equal(r.converged, null);
        const d = r.directive;
        assert.equal(typeof d.id, 'string');
        assert.ok(d.id.length > 0);
        assert.equal(d.rev, 1);
        assert.equal(d.level, 'kill');
        assert.deepEqual(d.scope, { kind: 'feature', feature: 'new-planner' });
        assert.equal(d.scopeText, 'feature:new-planner');
        assert.equal(d.tenant, 'acme');
        assert.deepEqual([...(d.capabilities ?? [])].sort(), ['memory.write', 'wire_transfer']);
        assert.deepEqual(d.rate, { perSecond: 2.5, per: 'agent' });
        assert.equal(d.graceMs, 1234);
        assert.equal(d.drain, 'drain');
        assert.equal(d.reason, 'spending ünïcödé "quoted"');
        assert.equal(d.justification, "it's INC-2");
        assert.equal(d.actor, 'carol');
        assert.ok(!Number.isNaN(Date.parse(d.issuedAt)), `issuedAt ${d.issuedAt}`);
        assert.equal(d.clearedAt, null);
        assert.equal(d.clearedRev, null);
        assert.deepEqual(await store.getDirective(d.id), d);
      });

      test('every scope kind and a tenant-less directive round-trip', async () => {
        for (const [scope, tenant] of [
          ['global', null],
          ['tenant:acme', 'acme'],
          ['agent:acme/bot', 'acme'],
          ['run:r1', 'acme'],
          ['run:r2', null],
          ['feature:f', 'globex'],
        ] as const) {
          const { directive: d } = await issue({ scope, tenant });
          assert.equal(formatScope(d.scope), scope);
          assert.equal(d.scopeText, scope);
          assert.equal(d.tenant, tenant);
          assert.deepEqual(await store.getDirective(d.id), d);
        }
      });

      test('getDirective of an unknown id is null', async () => {
        assert.equal(await store.getDirective('d_nope'), null);
      });

      test('the switchboard holds the active directives at its rev', async () => {
        const a = await issue({ scope: 'tenant:acme' });
        const b = await issue({ scope: 'tenant:globex' });
        const c = await issue({ scope: 'global', tenant: null });
        await store.clearDirective(b.directive.id, clearAudit);
        const board = await store.switchboard();
        assert.equal(board.rev, 4);
        assert.deepEqual(sortedIds(board.directives), sortedIds([a.directive, c.directive]));
        for (const d of board.directives) {
          assert.ok(d.rev <= board.rev);
          assert.equal(d.clearedRev, null);
          assert.deepEqual(d, await store.getDirective(d.id));
        }
      });

      test('concurrent issues get distinct, consecutive revs', async () => {
        const n = 20;
        const results = await Promise.all(Array.from({ length: n }, (_, i) => issue({ scope: `run:r${i}` })));
        assert.ok(results.every((r) => r.created));
        assert.deepEqual(
          results.map((r) => r.directive.rev).sort((x, y) => x - y),
          Array.from({ length: n }, (_, i) => i + 1),
        );
        assert.equal(await store.rev(), n);
        assert.equal((await store.switchboard()).directives.length, n);
        assert.equal((await store.verifyAudit()).ok, true);
      });
    });

    describe('convergence (guarantee 7)', () => {
      test('the same idempotency key returns the same directive without a new rev', async () => {
        const first = await issue({ idempotencyKey: 'tok1:k1' });
        const before = await auditCount();
        const again = await issue({ idempotencyKey: 'tok1:k1' });
        assert.equal(again.created, false);
        assert.equal(again.converged, 'idempotency_key');
        assert.deepEqual(again.directive, first.directive);
        assert.equal(await store.rev(), 1);
        assert.equal((await store.listDirectives({})).length, 1);
        // The retry's own audit events (here one operator_action) are still recorded.
        assert.equal(await auditCount(), before + 1);
      });

      test('the idempotency key wins over different content', async () => {
        const first = await issue({ idempotencyKey: 'tok1:k1', scope: 'tenant:acme' });
        const again = await issue({ idempotencyKey: 'tok1:k1', scope: 'tenant:globex', level: 'kill' });
        assert.equal(again.created, false);
        assert.equal(again.converged, 'idempotency_key');
        assert.equal(again.directive.id, first.directive.id);
        assert.equal(again.directive.scopeText, 'tenant:acme');
        assert.equal(await store.rev(), 1);
      });

      test('a late retry of a resumed directive does not put it back', async () => {
        const first = await issue({ idempotencyKey: 'tok1:k1' });
        await store.clearDirective(first.directive.id, clearAudit);
        const retry = await issue({ idempotencyKey: 'tok1:k1' });
        assert.equal(retry.created, false);
        assert.equal(retry.directive.id, first.directive.id);
        assert.equal(retry.directive.clearedRev, 2);
        assert.equal(await store.rev(), 2);
        assert.deepEqual((await store.switchboard()).directives, []);
      });

      test('different idempotency keys with different content create different directives', async () => {
        const a = await issue({ idempotencyKey: 'tok1:k1', scope: 'tenant:acme' });
        const b = await issue({ idempotencyKey: 'tok1:k2', scope: 'tenant:globex' });
        assert.equal(b.created, true);
        assert.notEqual(a.directive.id, b.directive.id);
        assert.equal(await store.rev(), 2);
      });

      test('an identical re-issue converges to the active directive', async () => {
        const first = await issue({ capabilities: ['b', 'a'], rate: { perSecond: 1, per: 'run' } });
        const before = await auditCount();
        const again = await issue({
          capabilities: ['a', 'b'],
          rate: { perSecond: 1, per: 'run' },
          // Who asks and why does not make it a different order.
          reason: 'another reason',
          justification: 'another ticket',
          actor: 'dave',
          idempotencyKey: 'tok2:other-key',
        });
        assert.equal(again.created, false);
        assert.equal(again.converged, 'identical');
        assert.deepEqual(again.directive, first.directive);
        assert.equal(await store.rev(), 1);
        assert.equal(await auditCount(), before + 1);
      });

      // Pairs of directives that differ in exactly one field that makes them different orders.
      type Over = Parameters<typeof directiveInput>[0];
      const DIFFERENT: [string, Over, Over][] = [
        ['capabilities', { capabilities: ['llm'] }, { capabilities: ['wire_transfer'] }],
        ['one more capability', { capabilities: ['llm'] }, { capabilities: ['llm', 'http'] }],
        ['capabilities null or a list', { capabilities: null }, { capabilities: ['llm'] }],
        ['level', { level: 'halt' }, { level: 'kill' }],
        ['scope', { scope: 'tenant:acme' }, { scope: 'agent:acme/bot' }],
        ['tenant', { scope: 'feature:f', tenant: 'acme' }, { scope: 'feature:f', tenant: 'globex' }],
        ['tenant or none', { scope: 'run:r1', tenant: 'acme' }, { scope: 'run:r1', tenant: null }],
        ['rate', { rate: { perSecond: 1, per: 'run' } }, { rate: { perSecond: 2, per: 'run' } }],
        ['rate per', { rate: { perSecond: 1, per: 'run' } }, { rate: { perSecond: 1, per: 'agent' } }],
        ['graceMs', { graceMs: 5000 }, { graceMs: 0 }],
        ['drain', { drain: 'discard' }, { drain: 'drain' }],
      ];
      for (const [what, a, b] of DIFFERENT) {
        test(`directives differing in ${what} do not converge`, async () => {
          const first = await issue(a);
          const other = await issue(b);
          assert.equal(other.created, true);
          assert.equal(other.converged, null);
          assert.notEqual(other.directive.id, first.directive.id);
          assert.equal(other.directive.rev, 2);
          assert.equal(await store.rev(), 2);
          assert.equal((await store.switchboard()).directives.length, 2);
          // Each still converges with itself.
          assert.equal((await issue(a)).directive.id, first.directive.id);
          assert.equal((await issue(b)).directive.id, other.directive.id);
          assert.equal(await store.rev(), 2);
        });
      }

      test('a cleared directive does not absorb an identical re-issue', async () => {
        const first = await issue();
        await store.clearDirective(first.directive.id, clearAudit);
        const again = await issue();
        assert.equal(again.created, true);
        assert.equal(again.converged, null);
        assert.notEqual(again.directive.id, first.directive.id);
        assert.equal(again.directive.rev, 3);
      });

      test('concurrent identical issues converge to one directive', async () => {
        const results = await Promise.all(
          Array.from({ length: 10 }, () => issue({ idempotencyKey: 'tok1:same' })),
        );
        assert.equal(results.filter((r) => r.created).length, 1);
        assert.equal(new Set(results.map((r) => r.directive.id)).size, 1);
        assert.equal(await store.rev(), 1);
      });
    });

    describe('changes since a rev (what a switchboard view catches up from)', () => {
      /** Folds changes onto an active set, as a view does; fails on a gap or a repeat. */
      const fold = (
        start: { rev: number; directives: Directive[] },
        changes: readonly SwitchboardChange[],
      ) => {
        const active = new Map(start.directives.map((d) => [d.id, d]));
        let rev = start.rev;
        for (const c of changes) {
          assert.equal(c.rev, rev + 1, `change at rev ${c.rev} after rev ${rev}`);
          rev = c.rev;
          for (const old of c.replaced ?? [])
            assert.ok(active.delete(old.id), `replaced ${old.id} was active`);
          if (c.cleared) assert.ok(active.delete(c.cleared.id), `cleared ${c.cleared.id} was active`);
          if (c.issued) active.set(c.issued.id, c.issued);
        }
        return { rev, ids: [...active.keys()].sort() };
      };

      test('a fresh store has no changes', async () => {
        assert.deepEqual(await store.changesSince(0, 100), []);
      });

      test('every rev once, in order: issues with what they replaced, clears, nothing for a convergence', async () => {
        const a = await issue({ scope: 'tenant:acme' });
        const t = await issue({
          scope: 'agent:acme/bot',
          level: 'throttle',
          rate: { perSecond: 1, per: 'run' },
        });
        const t2 = await store.issueDirective(
          directiveInput({
            scope: 'agent:acme/bot',
            level: 'throttle',
            rate: { perSecond: 5, per: 'run' },
            replaces: () => [t.directive.id],
          }),
          issueAudit,
        );
        assert.equal(t2.replaced.length, 1);
        await store.clearDirective(a.directive.id, clearAudit);
        const again = await issue({
          scope: 'agent:acme/bot',
          level: 'throttle',
          rate: { perSecond: 5, per: 'run' },
        });
        assert.equal(again.created, false);
        const k = await issue({ scope: 'run:r1', level: 'kill', graceMs: 0 });
        const now = async (id: string) => (await store.getDirective(id))!;
        const all = await store.changesSince(0, 100);
        assert.deepEqual(all, [
          { rev: 1, issued: await now(a.directive.id), replaced: [] },
          { rev: 2, issued: await now(t.directive.id), replaced: [] },
          { rev: 3, issued: await now(t2.directive.id), replaced: [await now(t.directive.id)] },
          { rev: 4, cleared: await now(a.directive.id) },
          { rev: 5, issued: await now(k.directive.id), replaced: [] },
        ]);
        assert.equal(all[3]!.cleared!.clearedRev, 4);
        assert.equal(all[2]!.replaced![0]!.clearedRev, 3);
        // From any rev, with any limit: the same changes, the first `limit` of those after it.
        for (let from = 0; from <= 5; from++) {
          assert.deepEqual(await store.changesSince(from, 100), all.slice(from), `from ${from}`);
          for (let limit = 1; limit <= 3; limit++)
            assert.deepEqual(
              await store.changesSince(from, limit),
              all.slice(from, from + limit),
              `from ${from} limit ${limit}`,
            );
        }
        assert.deepEqual(await store.changesSince(7, 100), []);
        assert.deepEqual(await store.changesSince(2, 0), []);
        // Folded onto any switchboard at a rev they follow, they give the switchboard now.
        const board = await store.switchboard();
        assert.deepEqual(fold({ rev: 0, directives: [] }, all), { rev: 5, ids: sortedIds(board.directives) });
        assert.deepEqual(
          fold({ rev: 3, directives: [await now(a.directive.id), await now(t2.directive.id)] }, all.slice(3)),
          {
            rev: 5,
            ids: sortedIds(board.directives),
          },
        );
      });

      test('concurrent issues and clears: each rev exactly once, consecutive', async () => {
        const first = await Promise.all(Array.from({ length: 10 }, (_, i) => issue({ scope: `run:r${i}` })));
        await Promise.all([
          ...first.slice(0, 5).map((r) => store.clearDirective(r.directive.id, clearAudit)),
          ...Array.from({ length: 5 }, (_, i) => issue({ scope: `run:s${i}` })),
        ]);
        const changes = await store.changesSince(0, 1000);
        assert.deepEqual(
          changes.map((c) => c.rev),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        assert.equal(changes.filter((c) => c.cleared).length, 5);
        assert.equal(changes.filter((c) => c.issued).length, 15);
        const board = await store.switchboard();
        assert.deepEqual(fold({ rev: 0, directives: [] }, changes), {
          rev: 20,
          ids: sortedIds(board.directives),
        });
      });
    });

    describe('clearing', () => {
      test('clear marks the directive cleared and takes it off the switchboard', async () => {
        const { directive } = await issue();
        const cleared = await store.clearDirective(directive.id, clearAudit);
        assert.ok(cleared);
        assert.equal(cleared.id, directive.id);
        assert.equal(cleared.rev, directive.rev);
        assert.equal(cleared.clearedRev, 2);
        assert.ok(cleared.clearedAt !== null && !Number.isNaN(Date.parse(cleared.clearedAt)));
        assert.deepEqual(await store.getDirective(directive.id), cleared);
        assert.deepEqual(await store.switchboard(), { rev: 2, directives: [] });
      });

      test('clear of an unknown id is null and changes nothing', async () => {
        await issue();
        const before = await auditCount();
        let called = false;
        const r = await store.clearDirective('d_nope', (d) => {
          called = true;
          return clearAudit(d);
        });
        assert.equal(r, null);
        assert.equal(called, false);
        assert.equal(await store.rev(), 1);
        assert.equal(await auditCount(), before);
      });

      test('clear of a cleared directive is null and bumps rev only once', async () => {
        const { directive } = await issue();
        assert.ok(await store.clearDirective(directive.id, clearAudit));
        const before = await auditCount();
        assert.equal(await store.clearDirective(directive.id, clearAudit), null);
        assert.equal(await store.rev(), 2);
        assert.equal(await auditCount(), before);
        assert.equal((await store.getDirective(directive.id))?.clearedRev, 2);
      });

      test('concurrent clears of one directive: exactly one wins', async () => {
        const { directive } = await issue();
        const results = await Promise.all(
          Array.from({ length: 5 }, () => store.clearDirective(directive.id, clearAudit)),
        );
        assert.equal(results.filter((r) => r !== null).length, 1);
        assert.equal(await store.rev(), 2);
      });
    });

    describe('listings', () => {
      async function threeTenants(): Promise<{
        acme: Directive;
        globex: Directive;
        all: Directive;
        clearedAcme: Directive;
      }> {
        const acme = (await issue({ scope: 'tenant:acme' })).directive;
        const globex = (await issue({ scope: 'tenant:globex' })).directive;
        const all = (await issue({ scope: 'global', tenant: null })).directive;
        const clearedAcme = (await issue({ scope: 'agent:acme/bot' })).directive;
        await store.clearDirective(clearedAcme.id, clearAudit);
        return { acme, globex, all, clearedAcme: (await store.getDirective(clearedAcme.id))! };
      }

      test('listDirectives filters by tenant, including tenant-less directives', async () => {
        const d = await threeTenants();
        assert.deepEqual(
          sortedIds(await store.listDirectives({ tenant: 'acme' })),
          sortedIds([d.acme, d.all, d.clearedAcme]),
        );
        assert.deepEqual(
          sortedIds(await store.listDirectives({ tenant: 'globex' })),
          sortedIds([d.globex, d.all]),
        );
        assert.deepEqual(sortedIds(await store.listDirectives({ tenant: 'initech' })), sortedIds([d.all]));
        assert.deepEqual(
          sortedIds(await store.listDirectives({})),
          sortedIds([d.acme, d.globex, d.all, d.clearedAcme]),
        );
      });

      test('listDirectives filters active and cleared', async () => {
        const d = await threeTenants();
        assert.deepEqual(
          sortedIds(await store.listDirectives({ active: true })),
          sortedIds([d.acme, d.globex, d.all]),
        );
        assert.deepEqual(await store.listDirectives({ active: false }), [d.clearedAcme]);
        assert.deepEqual(await store.listDirectives({ active: false, tenant: 'globex' }), []);
        assert.deepEqual(
          sortedIds(await store.listDirectives({ active: true, tenant: 'acme' })),
          sortedIds([d.acme, d.all]),
        );
      });

      test('listDirectives is newest first, so a limit keeps the latest', async () => {
        const d = await threeTenants();
        assert.deepEqual(
          (await store.listDirectives({})).map((x) => x.id),
          [d.clearedAcme, d.all, d.globex, d.acme].map((x) => x.id),
        );
        assert.deepEqual(
          (await store.listDirectives({ limit: 2 })).map((x) => x.id),
          [d.clearedAcme.id, d.all.id],
        );
      });
    });
  });
}

/**
 * The audit concept ({@link AuditStore}): audit records in the same transaction as the change they
 * record (guarantee 9), one chain, listing and paging.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function auditContract(make: MakeStore<AuditStore & DirectiveStore & TokenStore>): void {
  describe('audit', () => {
    let store: AuditStore & DirectiveStore & TokenStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    const issue = (over: Parameters<typeof directiveInput>[0] = {}) =>
      store.issueDirective(directiveInput(over), issueAudit);
    const auditCount = async () => (await store.listAudit({ limit: 100_000 })).length;

    describe('audit in the same transaction (guarantee 9)', () => {
      test('pages backwards with beforeSeq and forwards with afterSeq, newest first with desc', async () => {
        for (const scope of ['tenant:acme', 'tenant:globex', 'agent:acme/bot']) await issue({ scope });
        const all = (await store.listAudit({})).map((r) => r.seq);
        assert.ok(all.length >= 6);
        const newest = await store.listAudit({ desc: true, limit: 2 });
        assert.deepEqual(
          newest.map((r) => r.seq),
          all.slice(-2).reverse(),
        );
        const older = await store.listAudit({ desc: true, limit: 2, beforeSeq: newest.at(-1)!.seq });
        assert.deepEqual(
          older.map((r) => r.seq),
          all.slice(-4, -2).reverse(),
        );
        const forward = await store.listAudit({ afterSeq: all[1]!, limit: 2 });
        assert.deepEqual(
          forward.map((r) => r.seq),
          all.slice(2, 4),
        );
        assert.deepEqual(await store.listAudit({ beforeSeq: all[0]! }), [], 'nothing before the first');
      });

      test('issue appends the callback events after the commit, seeing the committed directive', async () => {
        let seen: IssueResult | null = null;
        const r = await store.issueDirective(directiveInput(), (res) => {
          seen = res;
          return issueAudit(res);
        });
        assert.deepEqual(seen, r);
        const records = await store.listAudit({});
        assert.deepEqual(
          records.map((x) => x.type),
          ['operator_action', 'directive.issued'],
        );
        assert.deepEqual((records[1]!.data as { directive: Directive }).directive, r.directive);
        assert.equal(records[0]!.tenant, 'acme');
      });

      test('a throwing audit callback rolls the issue back', async () => {
        await issue({ scope: 'tenant:globex' });
        const before = {
          rev: await store.rev(),
          directives: await store.listDirectives({}),
          audit: await store.listAudit({}),
        };
        await assert.rejects(
          store.issueDirective(directiveInput(), () => {
            throw new Error('audit down');
          }),
          /audit down/,
        );
        assert.equal(await store.rev(), before.rev);
        assert.deepEqual(await store.listDirectives({}), before.directives);
        assert.deepEqual(await store.listAudit({}), before.audit);
        // No rev was burned: the next commit takes the very next rev.
        const next = await issue();
        assert.equal(next.directive.rev, before.rev + 1);
        assert.equal((await store.verifyAudit()).ok, true);
      });

      test('a throwing audit callback on a converging issue changes nothing', async () => {
        await issue({ idempotencyKey: 'tok1:k' });
        const audit = await store.listAudit({});
        await assert.rejects(
          store.issueDirective(directiveInput({ idempotencyKey: 'tok1:k' }), () => {
            throw new Error('audit down');
          }),
          /audit down/,
        );
        assert.equal(await store.rev(), 1);
        assert.deepEqual(await store.listAudit({}), audit);
      });

      test('a throwing audit callback rolls the clear back', async () => {
        const { directive } = await issue();
        const audit = await store.listAudit({});
        await assert.rejects(
          store.clearDirective(directive.id, () => {
            throw new Error('audit down');
          }),
          /audit down/,
        );
        assert.equal(await store.rev(), 1);
        assert.deepEqual(await store.getDirective(directive.id), directive);
        assert.deepEqual((await store.switchboard()).directives, [directive]);
        assert.deepEqual(await store.listAudit({}), audit);
        // And it can still be cleared, at the next rev.
        assert.equal((await store.clearDirective(directive.id, clearAudit))?.clearedRev, 2);
      });

      test('an audit event that cannot be hashed rolls the token back', async () => {
        const bad: AuditEvent = { type: 'operator_action', actor: 'x', tenant: null, data: { n: 1n } };
        await assert.rejects(
          store.createToken({ id: 't_1', name: 'n', role: 'viewer', tenant: 'acme', agent: null }, 'h1', [
            bad,
          ]),
        );
        assert.equal(await store.findToken('h1'), null);
        assert.equal(await store.countTokens(), 0);
        assert.deepEqual(await store.listAudit({}), []);
      });
    });

    describe('listings', () => {
      async function tenAuditRecords(): Promise<AuditRecord[]> {
        const events: AuditEvent[] = Array.from({ length: 10 }, (_, i) => ({
          type: 'operator_action',
          actor: `a${i + 1}`,
          tenant: [null, 'acme', 'globex'][i % 3]!,
          data: { i: i + 1 },
        }));
        const appended = await store.appendAudit(events.slice(0, 4));
        appended.push(...(await store.appendAudit(events.slice(4))));
        return appended;
      }

      test('appendAudit continues one chain across calls', async () => {
        const recs = await tenAuditRecords();
        assert.deepEqual(
          recs.map((r) => r.seq),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        );
        for (let i = 1; i < recs.length; i++) assert.equal(recs[i]!.prevHash, recs[i - 1]!.hash);
        assert.deepEqual(await store.listAudit({}), recs);
        assert.deepEqual(await store.verifyAudit(), { ok: true, records: 10, head: recs[9]!.hash });
        assert.deepEqual(await store.appendAudit([]), []);
        assert.equal(await auditCount(), 10);
      });

      test('listAudit pages with afterSeq and limit, oldest first', async () => {
        await tenAuditRecords();
        const seqs = async (q: Parameters<Store['listAudit']>[0]) =>
          (await store.listAudit(q)).map((r) => r.seq);
        assert.deepEqual(await seqs({}), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert.deepEqual(await seqs({ afterSeq: 3, limit: 4 }), [4, 5, 6, 7]);
        assert.deepEqual(await seqs({ afterSeq: 8 }), [9, 10]);
        assert.deepEqual(await seqs({ afterSeq: 10 }), []);
        assert.deepEqual(await seqs({ limit: 1 }), [1]);
      });

      test('listAudit desc returns the newest first', async () => {
        await tenAuditRecords();
        const seqs = async (q: Parameters<Store['listAudit']>[0]) =>
          (await store.listAudit(q)).map((r) => r.seq);
        assert.deepEqual(await seqs({ desc: true, limit: 3 }), [10, 9, 8]);
        assert.deepEqual(await seqs({ desc: true, afterSeq: 7 }), [10, 9, 8]);
        assert.deepEqual(await seqs({ desc: false, limit: 2 }), [1, 2]);
      });

      test('listAudit filters by tenant, including tenant-less records', async () => {
        const recs = await tenAuditRecords();
        const acme = await store.listAudit({ tenant: 'acme' });
        assert.deepEqual(
          acme.map((r) => r.seq),
          recs.filter((r) => r.tenant === null || r.tenant === 'acme').map((r) => r.seq),
        );
        assert.ok(acme.every((r) => r.tenant !== 'globex'));
        assert.ok(acme.some((r) => r.tenant === 'acme') && acme.some((r) => r.tenant === null));
        assert.deepEqual(
          (await store.listAudit({ tenant: 'globex', desc: true, limit: 3 })).map((r) => r.seq),
          [10, 9, 7],
        );
        assert.deepEqual(
          (await store.listAudit({ tenant: 'initech' })).map((r) => r.tenant),
          [null, null, null, null],
        );
      });

      test('audit records keep their data exactly', async () => {
        const data = {
          s: 'ünïcödé "q" \\ \n',
          n: 1.5,
          neg: -3,
          b: false,
          nil: null,
          arr: [1, [2, { x: 'y' }]],
          obj: { z: 1, a: 2 },
        };
        const [rec] = await store.appendAudit([
          { type: 'drill.recorded', actor: 'drill', tenant: 'acme', data },
        ]);
        const [read] = await store.listAudit({});
        assert.deepEqual(read, rec);
        assert.deepEqual(read!.data, data);
        assert.equal(read!.type, 'drill.recorded');
        assert.equal((await store.verifyAudit()).ok, true);
      });

      test("countAudit counts a tenant's or a type's share among the newest records, exact when the cap covers the chain", async () => {
        const ev = (type: string, tenant: string | null) => ({ type, actor: 'a', tenant, data: {} });
        await store.appendAudit([
          ev('x', 'acme'),
          ev('y', null),
          ev('x', 'globex'),
          ev('x', 'acme'),
          ev('y', 'acme'),
        ]);
        assert.deepEqual(await store.countAudit({}, 2), { count: 5, exact: true }, 'the whole chain, exact');
        assert.deepEqual(await store.countAudit({ tenant: 'acme' }, 100), { count: 4, exact: true });
        assert.deepEqual(await store.countAudit({ types: ['x'] }, 100), { count: 3, exact: true });
        assert.deepEqual(await store.countAudit({ tenant: 'acme', types: ['x', 'y'] }, 100), {
          count: 4,
          exact: true,
        });
        assert.deepEqual(
          await store.countAudit({ types: ['x'] }, 2),
          { count: 1, exact: false },
          'the newest 2 only',
        );
        // upTo: the chain taken to end at that seq (a count in steps, newest first).
        assert.deepEqual(await store.countAudit({ types: ['x'] }, 100, 3), { count: 2, exact: true });
        assert.deepEqual(
          await store.countAudit({ tenant: 'acme' }, 2, 4),
          { count: 1, exact: false },
          'seqs 3 and 4 only',
        );
        assert.deepEqual(await store.countAudit({}, 2, 3), { count: 3, exact: true }, 'the chain up to 3');
        assert.deepEqual(await store.countAudit({ types: ['x'] }, 100, 99), { count: 3, exact: true });
      });
    });

    describe('checkpoints and keys', () => {
      const key = (n: number, createdAt: string): AuditKeyInfo => ({
        keyId: `ed25519:${String(n).repeat(16)}`,
        algorithm: 'Ed25519',
        publicKey: `-----BEGIN PUBLIC KEY-----\nkey${n}\n-----END PUBLIC KEY-----\n`,
        createdAt,
        retiredAt: null,
      });
      const keyEvent = (k: AuditKeyInfo) => [
        { type: 'operator_action', actor: 'killpath:checkpointer', tenant: null, data: { keyId: k.keyId } },
      ];

      test('the log origin is made once; a new key retires the current one, each change audited, listed newest first', async () => {
        const origin = await store.logOrigin();
        assert.match(origin, /^killpath\/[0-9a-f-]{36}$/);
        assert.equal(await store.logOrigin(), origin);
        assert.deepEqual(await store.auditKeys(), []);
        const k1 = key(1, '2026-01-01T00:00:00.000Z');
        const k2 = key(2, '2026-01-02T00:00:00.000Z');
        assert.equal(await store.putAuditKey(k1, keyEvent(k1)), true);
        assert.equal(
          await store.putAuditKey(k1, keyEvent(k1)),
          false,
          'already the current key: nothing recorded',
        );
        assert.equal(await store.putAuditKey(k2, keyEvent(k2)), true);
        const keys = await store.auditKeys();
        assert.deepEqual(
          keys.map((k) => [k.keyId, k.retiredAt === null]),
          [
            [k2.keyId, true],
            [k1.keyId, false],
          ],
        );
        assert.deepEqual({ ...keys[0]!, retiredAt: null }, k2);
        assert.equal((await store.listAudit({ types: ['operator_action'] })).length, 2);
      });

      test('listing a key never makes it current: listed once, retired, audited once; a listed key becomes current when put', async () => {
        const k1 = key(1, '2026-01-01T00:00:00.000Z');
        const k2 = key(2, '2026-01-02T00:00:00.000Z');
        assert.equal(await store.putAuditKey(k1, keyEvent(k1)), true);
        assert.equal(await store.listAuditKey(k2, keyEvent(k2)), true);
        assert.equal(await store.listAuditKey(k2, keyEvent(k2)), false, 'listed already: nothing recorded');
        assert.equal(await store.listAuditKey(k1, keyEvent(k1)), false, 'the current key stays current');
        const current = async () =>
          (await store.auditKeys()).filter((k) => k.retiredAt === null).map((k) => k.keyId);
        assert.deepEqual(await current(), [k1.keyId]);
        assert.equal((await store.auditKeys()).length, 2);
        assert.equal((await store.listAudit({ types: ['operator_action'] })).length, 2);
        assert.equal(await store.putAuditKey(k2, keyEvent(k2)), true);
        assert.deepEqual(await current(), [k2.keyId]);
      });

      test('a stored checkpoint is the latest by size and is checked by verifyLog; one the log does not match is named', async () => {
        assert.equal(await store.latestCheckpoint(), null);
        await store.appendAudit(
          Array.from({ length: 5 }, (_, i) => ({ type: 'note', actor: 'a', tenant: null, data: { i } })),
        );
        const at5 = await store.verifyLog(null);
        assert.equal(at5.ok, true, at5.problems.join('; '));
        assert.equal(at5.records, 5);
        const checkpoint = (size: number, rootHash: string, timestamp: string): StoredCheckpoint => ({
          checkpoint: {
            format: 'killpath-checkpoint/1',
            origin: 'killpath/x',
            size,
            rootHash,
            timestamp,
            keyId: 'ed25519:1111111111111111',
            signature: 'c2ln',
          },
          frontier: [rootHash],
        });
        const good = checkpoint(5, at5.rootHash, '2026-01-01T00:00:00.000Z');
        await store.putCheckpoint(good, [
          { type: 'audit.checkpoint', actor: 'killpath:checkpointer', tenant: null, data: { size: 5 } },
        ]);
        assert.deepEqual(await store.latestCheckpoint(), good);
        const found = await store.verifyLog(null);
        assert.equal(found.ok, true, found.problems.join('; '));
        assert.equal(found.records, 6, 'the checkpoint record itself is on the chain');
        const kept = await store.verifyLog({ size: 5, rootHash: at5.rootHash, timestamp: 'kept' });
        assert.equal(kept.ok, true, kept.problems.join('; '));
        assert.equal(kept.rootHash, found.rootHash);
        const forged = await store.verifyLog({ size: 5, rootHash: 'cd'.repeat(32), timestamp: 'kept' });
        assert.equal(forged.ok, false, 'a kept checkpoint the log does not extend is named');
        const bad = checkpoint(3, 'ab'.repeat(32), '2026-01-01T00:01:00.000Z');
        await store.putCheckpoint(bad, []);
        assert.deepEqual(await store.latestCheckpoint(), good, 'the largest size is the latest');
        const named = await store.verifyLog(null);
        assert.equal(named.ok, false);
        assert.deepEqual(named.problems, [
          'the first 3 records no longer hash to the root of the stored checkpoint signed 2026-01-01T00:01:00.000Z: a record among #1–#3 was altered, removed or reordered, or an older copy of the database was restored',
        ]);
      });
    });
  });
}

/**
 * The tokens concept ({@link TokenStore}): found by the hash of their secret, expiry, revocation,
 * rotation.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function tokenContract(make: MakeStore<TokenStore & AuditStore>): void {
  describe('tokens', () => {
    let store: TokenStore & AuditStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('tokens', () => {
      test('a token is found by the hash of its secret, and only by it', async () => {
        const rec = await store.createToken(
          { id: 't_1', name: 'ops', role: 'operator', tenant: 'acme', agent: null },
          'a'.repeat(64),
          [
            {
              type: 'operator_action',
              actor: 'admin',
              tenant: 'acme',
              data: { action: 'token.create', tokenId: 't_1' },
            },
          ],
        );
        assert.deepEqual(
          { ...rec, createdAt: 'x' },
          {
            id: 't_1',
            name: 'ops',
            role: 'operator',
            tenant: 'acme',
            agent: null,
            createdAt: 'x',
            expiresAt: null,
            revokedAt: null,
            revokedBy: null,
            revokeReason: null,
            launcher: null,
            mintedBy: null,
          },
        );
        assert.ok(!Number.isNaN(Date.parse(rec.createdAt)));
        assert.deepEqual(await store.findToken('a'.repeat(64)), rec);
        assert.equal(await store.findToken('b'.repeat(64)), null);
        assert.equal(await store.findToken(''), null);
        assert.equal(await store.countTokens(), 1);
        const audit = await store.listAudit({});
        assert.equal(audit.length, 1);
        assert.equal(audit[0]!.data.action, 'token.create');
      });

      test('agent and admin tokens keep their agent and tenant', async () => {
        const agent = await store.createToken(
          { id: 't_a', name: 'bot', role: 'agent', tenant: 'acme', agent: 'bot' },
          'c'.repeat(64),
          [],
        );
        const admin = await store.createToken(
          { id: 't_b', name: 'root', role: 'admin', tenant: '*', agent: null },
          'd'.repeat(64),
          [],
        );
        assert.deepEqual(await store.findToken('c'.repeat(64)), agent);
        assert.deepEqual(await store.findToken('d'.repeat(64)), admin);
        assert.equal(await store.countTokens(), 2);
      });

      test('a token keeps its expiry; a revocation is stored with who and why, audited, and listed', async () => {
        const expiresAt = '2030-01-01T00:00:00.000Z';
        const a = await store.createToken(
          { id: 't_a', name: 'ci', role: 'operator', tenant: 'acme', agent: null, expiresAt },
          'a'.repeat(64),
          [],
        );
        assert.equal(a.expiresAt, expiresAt);
        await store.createToken(
          { id: 't_b', name: 'bot', role: 'agent', tenant: 'beta', agent: 'bot' },
          'b'.repeat(64),
          [],
        );
        assert.deepEqual(
          (await store.listTokens({})).map((t) => t.id),
          ['t_a', 't_b'],
        );
        assert.deepEqual(
          (await store.listTokens({ tenant: 'beta' })).map((t) => t.id),
          ['t_b'],
        );
        const revoked = await store.revokeToken('t_a', 'alice', 'leaked in a log', (t) => [
          { type: 'token.revoked', actor: 'alice', tenant: t.tenant, data: { tokenId: t.id } },
        ]);
        assert.equal(revoked?.revokedBy, 'alice');
        assert.equal(revoked?.revokeReason, 'leaked in a log');
        assert.ok(!Number.isNaN(Date.parse(revoked!.revokedAt!)));
        assert.deepEqual(await store.getToken('t_a'), revoked);
        assert.deepEqual(
          await store.findToken('a'.repeat(64)),
          revoked,
          'found, revoked: the caller says why it refuses',
        );
        assert.equal(
          await store.revokeToken('t_a', 'bob', 'again', () => [
            { type: 'token.revoked', actor: 'bob', tenant: null, data: {} },
          ]),
          null,
          'a second revocation writes nothing',
        );
        assert.equal(await store.revokeToken('t_nope', 'bob', 'x', () => []), null);
        assert.equal((await store.getToken('t_a'))?.revokedBy, 'alice', 'the first revocation stands');
        assert.deepEqual(
          (await store.listAudit({})).map((r) => [r.type, r.actor]),
          [['token.revoked', 'alice']],
        );
      });

      test('a rotation creates the new token and revokes the old one in one transaction', async () => {
        await store.createToken(
          { id: 't_old', name: 'bootstrap-admin', role: 'admin', tenant: '*', agent: null },
          'c'.repeat(64),
          [],
        );
        const bad: AuditEvent = { type: 'operator_action', actor: 'x', tenant: null, data: { n: 1n } };
        await assert.rejects(
          store.createToken(
            { id: 't_new', name: 'bootstrap-admin', role: 'admin', tenant: '*', agent: null },
            'd'.repeat(64),
            [bad],
            { id: 't_old', by: 'root', reason: 'rotation' },
          ),
        );
        assert.equal((await store.getToken('t_old'))?.revokedAt, null, 'a failed rotation revokes nothing');
        assert.equal(await store.getToken('t_new'), null);
        await store.createToken(
          { id: 't_new', name: 'bootstrap-admin', role: 'admin', tenant: '*', agent: null },
          'd'.repeat(64),
          [],
          { id: 't_old', by: 'root', reason: 'rotation' },
        );
        assert.equal((await store.getToken('t_old'))?.revokeReason, 'rotation');
        assert.equal((await store.getToken('t_new'))?.revokedAt, null);
      });

      test('two tokens cannot share a secret hash', async () => {
        await store.createToken(
          { id: 't_1', name: 'a', role: 'viewer', tenant: 'acme', agent: null },
          'e'.repeat(64),
          [],
        );
        await assert.rejects(
          store.createToken(
            { id: 't_2', name: 'b', role: 'admin', tenant: '*', agent: null },
            'e'.repeat(64),
            [],
          ),
        );
        assert.equal((await store.findToken('e'.repeat(64)))?.id, 't_1');
        assert.equal(await store.countTokens(), 1);
      });
    });
  });
}

/**
 * The fleet concept ({@link FleetStore}): runs, launcher owners, capability surfaces.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function fleetContract(make: MakeStore<FleetStore & AuditStore>): void {
  describe('fleet', () => {
    let store: FleetStore & AuditStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('runs', () => {
      test('a registered run is returned and found', async () => {
        const r = runRecord();
        assert.deepEqual(await store.registerRun(r), r);
        assert.deepEqual(await store.getRun('acme', 'r1'), r);
        assert.equal(await store.getRun('acme', 'r2'), null);
      });

      test('inside a tenant the first registration wins for agent and lineage', async () => {
        const first = runRecord();
        await store.registerRun(first);
        const second = await store.registerRun(
          runRecord({ agent: 'evil', parentRunId: null, lineage: [], features: [], workerId: 'w9' }),
        );
        for (const got of [second, await store.getRun('acme', 'r1')]) {
          assert.ok(got);
          assert.equal(got.tenant, 'acme');
          assert.equal(got.agent, 'bot');
          assert.equal(got.parentRunId, 'r0');
          assert.deepEqual(got.lineage, ['r0']);
        }
      });

      test('run ids of different tenants never meet', async () => {
        await store.registerRun(runRecord({ tenant: 'globex', agent: 'evil', workerId: 'w9' }));
        const acme = await store.registerRun(runRecord());
        assert.equal(acme.tenant, 'acme');
        assert.equal(acme.agent, 'bot');
        assert.equal((await store.getRun('globex', 'r1'))?.agent, 'evil');
        assert.deepEqual(
          (await store.findRuns('r1')).map((r) => `${r.tenant}/${r.agent}`),
          ['acme/bot', 'globex/evil'],
        );
        assert.equal(await store.getRun('initech', 'r1'), null);
      });
    });

    describe('launcher owners', () => {
      test('a launcher id is bound once inside its tenant; the same id in another tenant is another launcher', async () => {
        const at = new Date('2025-06-01T12:00:00.000Z');
        assert.equal(await store.launcherOwner('acme', 'L'), null);
        assert.equal(await store.bindLauncher('acme', 'L', 'bot', at), 'bot');
        assert.equal(await store.bindLauncher('acme', 'L', 'other', at), 'bot', 'the first binding wins');
        assert.equal(await store.bindLauncher('beta', 'L', 'evil', at), 'evil', 'tenants never meet');
        assert.equal(await store.launcherOwner('acme', 'L'), 'bot');
        assert.equal(await store.launcherOwner('beta', 'L'), 'evil');
      });
    });

    describe('capability surfaces', () => {
      const at = (s: string) => new Date(`2025-06-0${s}T00:00:00.000Z`);

      test('noteCapabilities returns only new capabilities, keeps the first time, audits in the same transaction', async () => {
        const audited: string[][] = [];
        const audit = (added: string[]): AuditEvent[] => {
          audited.push(added);
          return [
            {
              type: 'agent.surface_changed',
              actor: 'worker:w1',
              tenant: 'acme',
              data: { tenant: 'acme', agent: 'bot', added },
            },
          ];
        };
        assert.deepEqual(
          await store.noteCapabilities('acme', 'bot', ['llm', 'crm.update', 'llm'], at('1'), audit),
          ['crm.update', 'llm'],
        );
        assert.deepEqual(
          await store.noteCapabilities('acme', 'bot', ['llm', 'crm.update'], at('2'), audit),
          [],
        );
        assert.deepEqual(
          await store.noteCapabilities('acme', 'bot', ['llm', 'wire_transfer'], at('3'), audit),
          ['wire_transfer'],
        );
        assert.deepEqual(await store.noteCapabilities('acme', 'bot', [], at('4')), []);
        assert.deepEqual(
          audited,
          [['crm.update', 'llm'], ['wire_transfer']],
          'nothing audited when nothing is new',
        );
        const records = await store.listAudit({ types: ['agent.surface_changed'] });
        assert.deepEqual(
          records.map((r) => r.data.added),
          [['crm.update', 'llm'], ['wire_transfer']],
        );
        assert.deepEqual(await store.agentSurfaces(), [
          {
            tenant: 'acme',
            agent: 'bot',
            capabilities: [
              { capability: 'crm.update', firstSeenAt: at('1').toISOString() },
              { capability: 'llm', firstSeenAt: at('1').toISOString() },
              { capability: 'wire_transfer', firstSeenAt: at('3').toISOString() },
            ],
          },
        ]);
      });

      test('a throwing audit callback stores no capability', async () => {
        await assert.rejects(
          store.noteCapabilities('acme', 'bot', ['llm'], at('1'), () => {
            throw new Error('audit down');
          }),
          /audit down/,
        );
        assert.deepEqual(await store.agentSurfaces(), []);
        assert.deepEqual(
          await store.noteCapabilities('acme', 'bot', ['llm'], at('2')),
          ['llm'],
          'still new afterwards',
        );
      });

      test('agentSurfaces lists agents with runs or capabilities, per tenant, sorted', async () => {
        await store.registerRun(runRecord({ runId: 'r1', tenant: 'globex', agent: 'billing' }));
        await store.registerRun(runRecord({ runId: 'r2', tenant: 'acme', agent: 'bot' }));
        await store.registerRun(runRecord({ runId: 'r3', tenant: 'acme', agent: 'bot' }));
        await store.noteCapabilities('acme', 'bot', ['llm'], at('1'));
        await store.noteCapabilities('acme', 'archivist', ['memory.write'], at('2'));
        assert.deepEqual(await store.agentSurfaces(), [
          {
            tenant: 'acme',
            agent: 'archivist',
            capabilities: [{ capability: 'memory.write', firstSeenAt: at('2').toISOString() }],
          },
          {
            tenant: 'acme',
            agent: 'bot',
            capabilities: [{ capability: 'llm', firstSeenAt: at('1').toISOString() }],
          },
          { tenant: 'globex', agent: 'billing', capabilities: [] },
        ]);
        assert.deepEqual(
          (await store.agentSurfaces('globex')).map((s) => s.agent),
          ['billing'],
        );
        assert.deepEqual(await store.agentSurfaces('initech'), []);
      });
    });
  });
}

/**
 * The policy concept ({@link PolicyStore}): policy versions.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function policyContract(make: MakeStore<PolicyStore & AuditStore>): void {
  describe('policy', () => {
    let store: PolicyStore & AuditStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('policy versions', () => {
      test('versions number from 1, the latest is active, each commits with its audit records, history lists newest first', async () => {
        assert.equal(await store.getPolicy(), null, 'a fresh store has no policy');
        const v1 = await store.putPolicy(
          { source: 'rules: []\n', digest: 'd1', actor: 'alice', comment: null, rollbackOf: null },
          (v) => [{ type: 'policy.changed', actor: 'alice', tenant: null, data: { version: v.version } }],
        );
        const v2 = await store.putPolicy(
          { source: 'rules: [] # 2\n', digest: 'd2', actor: 'bob', comment: 'tighter', rollbackOf: null },
          (v) => [{ type: 'policy.changed', actor: 'bob', tenant: null, data: { version: v.version } }],
        );
        const v3 = await store.putPolicy(
          { source: v1.source, digest: 'd1', actor: 'carol', comment: 'back', rollbackOf: 1 },
          () => [],
        );
        assert.deepEqual([v1.version, v2.version, v3.version], [1, 2, 3]);
        assert.deepEqual(await store.getPolicy(), v3);
        assert.deepEqual(await store.getPolicy(2), v2);
        assert.equal(await store.getPolicy(9), null);
        const { source: _source, ...meta } = v3;
        assert.deepEqual((await store.listPolicies(2))[0], meta);
        assert.deepEqual(
          (await store.listPolicies(10)).map((v) => v.version),
          [3, 2, 1],
        );
        assert.deepEqual(
          (await store.listAudit({ types: ['policy.changed'] })).map((r) => r.data.version),
          [1, 2],
        );
      });
    });

    describe('approval requests', () => {
      const request = (over: Partial<ApprovalRecord> = {}): ApprovalRecord => ({
        id: 'ap_1',
        action: 'resume',
        rule: 'two-person-resume',
        tenant: 'acme',
        target: 'd_1',
        targetRev: 7,
        summary: 'resume tenant:acme',
        requestedBy: 'alice',
        requestedToken: 't_alice',
        reason: 'fixed ünïcödé "quoted"',
        createdAt: '2026-01-01T10:00:00.000Z',
        expiresAt: '2026-01-01T11:00:00.000Z',
        needed: 1,
        approverRole: 'operator',
        contact: '#oncall',
        approvals: [],
        state: 'pending',
        completedAt: null,
        outcome: null,
        payload: { justification: 'INC-1', nested: { n: 1.5 } },
        ...over,
      });
      const created = (a: ApprovalRecord) => [
        { type: 'resume.requested', actor: a.requestedBy, tenant: a.tenant, data: { id: a.id } },
      ];

      test('a request keeps every field, commits with its audit records, and lists newest first under each filter with its count', async () => {
        const a = await store.createApproval(request(), created);
        assert.deepEqual(await store.getApproval('ap_1'), a);
        assert.equal(await store.getApproval('ap_nope'), null);
        await store.createApproval(
          request({
            id: 'ap_2',
            tenant: null,
            target: 'policy-digest',
            targetRev: null,
            action: 'policy.apply',
            createdAt: '2026-01-01T10:05:00.000Z',
            payload: null,
            contact: null,
          }),
          created,
        );
        await store.createApproval(
          request({
            id: 'ap_3',
            tenant: 'globex',
            createdAt: '2026-01-01T10:10:00.000Z',
            expiresAt: '2026-01-01T10:30:00.000Z',
          }),
          created,
        );
        await store.createApproval(
          request({ id: 'ap_4', state: 'expired', createdAt: '2026-01-01T10:15:00.000Z' }),
          created,
        );
        const ids = async (q: Omit<ApprovalQuery, 'limit'>) => {
          const listed = (await store.listApprovals({ ...q, limit: 10 })).map((r) => r.id);
          assert.equal(await store.countApprovals(q), listed.length, JSON.stringify(q));
          return listed;
        };
        assert.deepEqual(await ids({}), ['ap_4', 'ap_3', 'ap_2', 'ap_1']);
        assert.deepEqual(
          await ids({ tenant: 'acme' }),
          ['ap_4', 'ap_2', 'ap_1'],
          "a tenant's and the tenant-less",
        );
        assert.deepEqual(await ids({ state: 'pending' }), ['ap_3', 'ap_2', 'ap_1']);
        assert.deepEqual(await ids({ target: 'd_1' }), ['ap_4', 'ap_3', 'ap_1']);
        assert.deepEqual(await ids({ action: 'policy.apply' }), ['ap_2']);
        const now = '2026-01-01T10:45:00.000Z';
        assert.deepEqual(
          await ids({ expired: { now, is: true } }),
          ['ap_4', 'ap_3'],
          'stored so, or pending past its time',
        );
        assert.deepEqual(await ids({ expired: { now, is: false } }), ['ap_2', 'ap_1']);
        assert.deepEqual(
          (await store.listApprovals({ limit: 2 })).map((r) => r.id),
          ['ap_4', 'ap_3'],
        );
        assert.deepEqual(
          (await store.listAudit({ types: ['resume.requested'] })).map((r) => r.data.id),
          ['ap_1', 'ap_2', 'ap_3', 'ap_4'],
        );
      });

      test('decisions serialise: concurrent approvals each see the ones before; a throwing decision writes nothing', async () => {
        await store.createApproval(request({ needed: 3 }), created);
        const approve = (by: string) =>
          store.updateApproval('ap_1', (a) => {
            const approvals = [
              ...a!.approvals,
              { by, tokenId: `t_${by}`, at: '2026-01-01T10:01:00.000Z', reason: 'ok' },
            ];
            const done = approvals.length >= a!.needed;
            const next: ApprovalRecord = {
              ...a!,
              approvals,
              state: done ? 'approved' : 'pending',
              completedAt: done ? '2026-01-01T10:02:00.000Z' : null,
              outcome: done ? 'resumed' : null,
            };
            return {
              next,
              audit: [
                { type: 'resume.approved', actor: by, tenant: 'acme', data: { seen: a!.approvals.length } },
              ],
              result: a!.approvals.length,
            };
          });
        const seen = await Promise.all(['bob', 'carol', 'dave'].map(approve));
        assert.deepEqual([...seen].sort(), [0, 1, 2], 'each decision saw the ones committed before it');
        const after = await store.getApproval('ap_1');
        assert.equal(after!.approvals.length, 3);
        assert.equal(after!.state, 'approved');
        assert.equal(after!.outcome, 'resumed');
        await assert.rejects(
          store.updateApproval('ap_1', () => {
            throw new Error('decision failed');
          }),
          /decision failed/,
        );
        assert.deepEqual(await store.getApproval('ap_1'), after);
        const unknown = await store.updateApproval('ap_nope', (a) => ({ next: null, audit: [], result: a }));
        assert.equal(unknown, null);
        assert.equal((await store.listAudit({ types: ['resume.approved'] })).length, 3);
        assert.equal((await store.verifyAudit()).ok, true);
      });
    });
  });
}

/**
 * The drills concept ({@link DrillStore}): rehearsal records and the latest rehearsal of each
 * agent.
 * Part of {@link storeContract}; a backend built concept by concept runs this suite alone.
 */
export function drillContract(make: MakeStore<DrillStore & AuditStore>): void {
  describe('drills', () => {
    let store: DrillStore & AuditStore & StoreLifecycle;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('rehearsal records', () => {
      test('a record keeps every field but the timelines, commits with its audit records, and auditSeq names drill.recorded', async () => {
        await store.appendAudit([{ type: 'operator_action', actor: 'x', tenant: null, data: {} }]);
        const input = rehearsalInput();
        const r = await store.recordDrill(input, 'alice', drillAudit);
        assert.match(r.id, /^dr_/);
        assert.equal(r.recordedBy, 'alice');
        assert.ok(!Number.isNaN(Date.parse(r.recordedAt)));
        assert.equal(r.auditSeq, 3, 'the second of the two records appended after seq 1');
        const { timeline: _t, ...stored } = input.scenarios[0]!;
        assert.deepEqual(r.scenarios[0], stored);
        assert.ok(
          r.scenarios.every((s) => !('timeline' in s)),
          'timelines are not stored',
        );
        assert.deepEqual(
          { ...r, scenarios: [] },
          { ...input, scenarios: [], id: r.id, recordedAt: r.recordedAt, recordedBy: 'alice', auditSeq: 3 },
        );
        assert.deepEqual(await store.getDrill(r.id), r);
        assert.equal(await store.getDrill('dr_nope'), null);
        const audit = await store.listAudit({ types: ['drill.recorded'] });
        assert.equal(audit.length, 1);
        assert.equal(audit[0]!.seq, r.auditSeq);
        assert.equal(audit[0]!.data.drillId, r.id);
        assert.equal((await store.verifyAudit()).ok, true);
      });

      test('a throwing audit callback stores no record', async () => {
        await assert.rejects(
          store.recordDrill(rehearsalInput(), 'alice', () => {
            throw new Error('audit down');
          }),
          /audit down/,
        );
        assert.deepEqual(await store.listDrills({ limit: 10 }), []);
        assert.deepEqual(await store.lastDrills(), []);
        assert.deepEqual(await store.listAudit({}), []);
      });

      test('listDrills is newest first, pages with before, and filters by tenant and agent (any agent of the spec)', async () => {
        const acme = await store.recordDrill(rehearsalInput(), 'alice', drillAudit);
        const both = await store.recordDrill(
          rehearsalInput({
            spec: {
              name: 'shared',
              digest: 'd2',
              agents: [
                { tenant: 'globex', agent: 'billing', level: 3, cadenceDays: 90 },
                { tenant: 'acme', agent: 'other', level: 5, cadenceDays: 30 },
              ],
            },
          }),
          'root',
          drillAudit,
        );
        const globex = await store.recordDrill(
          rehearsalInput({
            spec: {
              name: 'g',
              digest: 'd3',
              agents: [{ tenant: 'globex', agent: 'billing', level: 3, cadenceDays: 90 }],
            },
          }),
          'root',
          drillAudit,
        );
        const ids = (rs: RehearsalRecord[]) => rs.map((r) => r.id);
        assert.deepEqual(ids(await store.listDrills({ limit: 10 })), [globex.id, both.id, acme.id]);
        assert.deepEqual(ids(await store.listDrills({ limit: 2 })), [globex.id, both.id]);
        assert.deepEqual(ids(await store.listDrills({ limit: 10, before: both.id })), [acme.id]);
        assert.deepEqual(ids(await store.listDrills({ limit: 10, before: 'dr_unknown' })), []);
        assert.deepEqual(ids(await store.listDrills({ limit: 10, tenant: 'acme' })), [both.id, acme.id]);
        assert.deepEqual(ids(await store.listDrills({ limit: 10, tenant: 'globex' })), [globex.id, both.id]);
        assert.deepEqual(ids(await store.listDrills({ limit: 10, tenant: 'initech' })), []);
        assert.deepEqual(
          ids(await store.listDrills({ limit: 10, agent: { tenant: 'acme', agent: 'bot' } })),
          [acme.id],
        );
        assert.deepEqual(
          ids(await store.listDrills({ limit: 10, agent: { tenant: 'acme', agent: 'billing' } })),
          [],
          'tenant and agent match in one spec entry',
        );
        assert.deepEqual(
          ids(
            await store.listDrills({ limit: 10, tenant: 'acme', agent: { tenant: 'acme', agent: 'other' } }),
          ),
          [both.id],
        );
      });

      test('lastDrills names, per agent, the rehearsal that finished last, with its spec entry', async () => {
        const late = await store.recordDrill(
          rehearsalInput({ finishedAt: '2025-06-03T00:00:00.000Z', result: 'fail' }),
          'alice',
          drillAudit,
        );
        // Stored later, but it finished earlier: it is not the last drill of acme/bot.
        await store.recordDrill(
          rehearsalInput({ finishedAt: '2025-06-02T00:00:00.000Z' }),
          'alice',
          drillAudit,
        );
        const g = await store.recordDrill(
          rehearsalInput({
            finishedAt: '2025-06-01T12:00:00.000Z',
            spec: {
              name: 'g',
              digest: 'dg',
              agents: [{ tenant: 'globex', agent: 'billing', level: 3, cadenceDays: 90 }],
            },
          }),
          'root',
          drillAudit,
        );
        const all = (await store.lastDrills()).sort((a, b) => a.tenant.localeCompare(b.tenant));
        assert.deepEqual(all, [
          {
            tenant: 'acme',
            agent: 'bot',
            level: 4,
            cadenceDays: 30,
            drillId: late.id,
            finishedAt: '2025-06-03T00:00:00.000Z',
            result: 'fail',
            specDigest: 'sha256:aaaa',
          },
          {
            tenant: 'globex',
            agent: 'billing',
            level: 3,
            cadenceDays: 90,
            drillId: g.id,
            finishedAt: '2025-06-01T12:00:00.000Z',
            result: 'pass',
            specDigest: 'dg',
          },
        ]);
        assert.deepEqual(
          (await store.lastDrills('globex')).map((l) => l.drillId),
          [g.id],
        );
        assert.deepEqual(await store.lastDrills('initech'), []);
      });
    });
  });
}

/**
 * Registers the behaviour every {@link Store} backend must keep (SQLite always, PostgreSQL
 * against a real server): every concept suite above, in one describe per backend. `make` returns a
 * fresh, empty store; each test closes its own. The permits concept (`PermitStore`) is
 * `effectsContract` in `effects-contract.ts`; a backend runs both.
 */
export function storeContract(name: string, make: MakeStore): void {
  describe(`Store contract: ${name}`, () => {
    directiveContract(make);
    auditContract(make);
    tokenContract(make);
    fleetContract(make);
    policyContract(make);
    drillContract(make);
    presenceContract(make);
    leaseContract(make);
    telemetryContract(make);
  });
}
