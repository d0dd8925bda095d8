/**
 * The one decision table (decision.ts over LEVEL_RULES), driven over every level × scope kind ×
 * effect class, run-wide and narrowed to a capability, covering the run and not: the decision
 * on an effect, the run's stop and reported level, the launcher orders and the fleet flags.
 * The expectations are written out here by hand; the gate, the permits, the fleet flags and the
 * launcher orders all call the functions under test.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EFFECT_CLASSES,
  LEVELS,
  LEVEL_RULES,
  SCOPE_KINDS,
  compileRun,
  effectOf,
  flagsOf,
  ordersFor,
  parseScope,
  type Decidable,
  type EffectClass,
  type Level,
  type RunIdentity,
  type ScopeKind,
  type WorkerFlags,
} from '../src/index.ts';

const RUN: RunIdentity = {
  tenant: 'acme',
  agent: 'bot',
  runId: 'r-child',
  lineage: ['r-root'],
  features: ['planner'],
  release: { code: 'c1', model: 'm1' },
};

/** For each scope kind: scopes (with the directive's tenant) that cover RUN, and some that do not. */
const SCOPES: Record<ScopeKind, { covering: [string, string | null][]; other: [string, string | null][] }> = {
  global: { covering: [['global', null]], other: [['global', 'globex']] },
  tenant: { covering: [['tenant:acme', 'acme']], other: [['tenant:globex', 'globex']] },
  agent: { covering: [['agent:acme/bot', 'acme']], other: [['agent:acme/other', 'acme']] },
  run: {
    covering: [
      ['run:r-child', 'acme'],
      ['run:r-root', 'acme'],
      ['run:r-child', null],
    ],
    other: [
      ['run:r-other', 'acme'],
      ['run:r-child', 'globex'],
    ],
  },
  feature: {
    covering: [
      ['feature:planner', 'acme'],
      ['feature:planner', null],
    ],
    other: [
      ['feature:other', 'acme'],
      ['feature:planner', 'globex'],
    ],
  },
  release: {
    covering: [
      ['release:code=c1', 'acme'],
      ['release:model=m1;agent=bot', 'acme'],
    ],
    other: [
      ['release:code=c2', 'acme'],
      ['release:prompt=p1', 'acme'],
      ['release:code=c1;agent=other', 'acme'],
    ],
  },
};

const RATE = { perSecond: 5, per: 'run' as const };

function directive(
  level: Level,
  scope: string,
  tenant: string | null,
  capabilities: string[] | null,
  rev = 1,
): Decidable & { id: string } {
  return {
    id: `d-${rev}`,
    rev,
    level,
    scope: parseScope(scope),
    tenant,
    capabilities,
    rate: level === 'throttle' ? RATE : null,
  };
}

type Expected = 'allow' | 'wait' | `deny:${string}`;

/** Run-wide: what the directive does to an effect of each class. Written out, not derived. */
const RUN_WIDE: Record<Level, Record<EffectClass, Expected>> = {
  throttle: { read: 'wait', write: 'wait', irreversible: 'wait' },
  degrade: { read: 'allow', write: 'deny:read_only', irreversible: 'deny:read_only' },
  isolate: { read: 'deny:isolated', write: 'deny:isolated', irreversible: 'deny:isolated' },
  halt: { read: 'deny:halted', write: 'deny:halted', irreversible: 'deny:halted' },
  freeze: { read: 'deny:frozen', write: 'deny:frozen', irreversible: 'deny:frozen' },
  kill: { read: 'deny:killed', write: 'deny:killed', irreversible: 'deny:killed' },
};

/** Narrowed to `crm.update`: its effects (every class), and other capabilities' effects. `null`: cannot be narrowed. */
const NARROWED: Record<Level, { named: Expected; other: Expected } | null> = {
  throttle: { named: 'wait', other: 'wait' },
  degrade: { named: 'deny:revoked', other: 'allow' },
  isolate: null,
  halt: { named: 'deny:halted', other: 'allow' },
  freeze: null,
  kill: { named: 'deny:killed', other: 'allow' },
};

const NO_FLAGS: WorkerFlags = { throttled: null, degraded: [], isolated: false, frozen: false };

/** Run-wide flags, launcher order, run stop and reported level. */
const RUN_WIDE_EFFECTS: Record<
  Level,
  { flags: WorkerFlags; order: string | null; stops: boolean; level: Level }
> = {
  throttle: { flags: { ...NO_FLAGS, throttled: RATE }, order: null, stops: false, level: 'throttle' },
  degrade: { flags: { ...NO_FLAGS, degraded: ['*'] }, order: null, stops: false, level: 'degrade' },
  isolate: { flags: { ...NO_FLAGS, isolated: true }, order: 'isolate', stops: false, level: 'isolate' },
  halt: { flags: NO_FLAGS, order: 'halt', stops: true, level: 'halt' },
  freeze: { flags: { ...NO_FLAGS, frozen: true }, order: 'freeze', stops: false, level: 'freeze' },
  kill: { flags: NO_FLAGS, order: 'kill', stops: true, level: 'kill' },
};

function shown(d: ReturnType<typeof effectOf>): Expected {
  return d.kind === 'deny' ? `deny:${d.reason}` : d.kind;
}

function orderOf(o: ReturnType<typeof ordersFor>): string | null {
  const given = Object.entries(o).filter(([, d]) => d !== null);
  assert.ok(given.length <= 1, 'one directive gives at most one order');
  return given[0]?.[0] ?? null;
}

test('the tables of this test cover every level and every scope kind', () => {
  assert.deepEqual(Object.keys(RUN_WIDE), [...LEVELS]);
  assert.deepEqual(Object.keys(SCOPES), [...SCOPE_KINDS]);
  for (const kind of SCOPE_KINDS)
    for (const [text] of [...SCOPES[kind].covering, ...SCOPES[kind].other])
      assert.equal(parseScope(text).kind, kind);
});

for (const level of LEVELS) {
  describe(`${level}`, () => {
    for (const kind of SCOPE_KINDS) {
      test(`run-wide, scope ${kind}: every effect class, the run, the orders and the flags`, () => {
        for (const [scope, tenant] of SCOPES[kind].covering) {
          const d = directive(level, scope, tenant, null);
          const where = `${level} ${scope} (tenant ${tenant})`;
          for (const cls of EFFECT_CLASSES) {
            const got = effectOf([d], RUN, 'crm.update', cls);
            assert.equal(shown(got), RUN_WIDE[level][cls], `${where}, ${cls}`);
            if (got.kind !== 'allow') assert.equal(got.directive, d, `${where}: the deciding directive`);
            if (got.kind === 'wait') assert.deepEqual(got.slot, RATE);
          }
          const run = compileRun([d], RUN);
          const want = RUN_WIDE_EFFECTS[level];
          assert.equal(run.level, want.level, where);
          assert.equal(run.stop, want.stops ? d : null, `${where}: stops the run`);
          assert.equal(orderOf(ordersFor([d], [RUN])), want.order, `${where}: launcher order`);
          assert.deepEqual(flagsOf([d], [RUN]), want.flags, `${where}: fleet flags`);
          // The rule row says the same as the outcomes above.
          assert.equal(LEVEL_RULES[level].order, want.order);
          assert.equal(LEVEL_RULES[level].stopsRun, want.stops);
        }
        for (const [scope, tenant] of SCOPES[kind].other) {
          const d = directive(level, scope, tenant, null);
          const where = `${level} ${scope} (tenant ${tenant}) does not cover the run`;
          for (const cls of EFFECT_CLASSES)
            assert.equal(shown(effectOf([d], RUN, 'crm.update', cls)), 'allow', where);
          assert.equal(compileRun([d], RUN).level, null, where);
          assert.equal(orderOf(ordersFor([d], [RUN])), null, where);
          assert.deepEqual(flagsOf([d], [RUN]), NO_FLAGS, where);
        }
      });

      const narrowed = NARROWED[level];
      if (narrowed === null) {
        test(`cannot be narrowed to capabilities (says why)`, () => {
          assert.match(LEVEL_RULES[level].notNarrowable ?? '', /cannot be narrowed to capabilities/);
        });
        continue;
      }
      test(`narrowed to a capability, scope ${kind}: that capability's effects, others', no order, flags`, () => {
        assert.equal(LEVEL_RULES[level].notNarrowable, null);
        for (const [scope, tenant] of SCOPES[kind].covering) {
          const d = directive(level, scope, tenant, ['crm.update']);
          const where = `${level} ${scope} [crm.update]`;
          for (const cls of EFFECT_CLASSES) {
            assert.equal(
              shown(effectOf([d], RUN, 'crm.update', cls)),
              narrowed.named,
              `${where}, crm.update ${cls}`,
            );
            assert.equal(shown(effectOf([d], RUN, 'search', cls)), narrowed.other, `${where}, search ${cls}`);
          }
          const run = compileRun([d], RUN);
          assert.equal(run.stop, null, `${where}: a narrowed directive never stops the run`);
          assert.equal(run.level, level === 'throttle' ? 'throttle' : 'degrade', `${where}: reported level`);
          assert.equal(orderOf(ordersFor([d], [RUN])), null, `${where}: no launcher order`);
          assert.deepEqual(
            flagsOf([d], [RUN]),
            level === 'throttle'
              ? { ...NO_FLAGS, throttled: RATE }
              : { ...NO_FLAGS, degraded: ['crm.update'] },
            `${where}: fleet flags`,
          );
        }
        for (const [scope, tenant] of SCOPES[kind].other) {
          const d = directive(level, scope, tenant, ['crm.update']);
          for (const cls of EFFECT_CLASSES)
            assert.equal(
              shown(effectOf([d], RUN, 'crm.update', cls)),
              'allow',
              `${level} ${scope} [crm.update]`,
            );
        }
      });
    }
  });
}

test('the higher level decides wherever two cover the same run; between equals the earlier one', () => {
  for (const a of LEVELS) {
    for (const b of LEVELS) {
      const da = directive(a, 'tenant:acme', 'acme', null, 1);
      const db = directive(b, 'agent:acme/bot', 'acme', null, 2);
      const top = LEVELS.indexOf(b) > LEVELS.indexOf(a) ? db : da;
      for (const cls of EFFECT_CLASSES) {
        // Each alone, and the two together in either order of the list.
        const alone = [effectOf([da], RUN, 'x', cls), effectOf([db], RUN, 'x', cls)];
        for (const list of [
          [da, db],
          [db, da],
        ]) {
          const got = effectOf(list, RUN, 'x', cls);
          if (alone.every((d) => d.kind === 'allow')) assert.equal(got.kind, 'allow', `${a}+${b} ${cls}`);
          else if (alone.some((d) => d.kind === 'deny')) {
            assert.equal(got.kind, 'deny', `${a}+${b} ${cls}`);
            // A throttle or a read under a degrade refuses nothing; otherwise the higher decides.
            const deniers = [da, db].filter((_, i) => alone[i]!.kind === 'deny');
            const want = deniers.length === 2 ? top : deniers[0];
            assert.equal(got.kind === 'deny' && got.directive, want, `${a}+${b} ${cls}`);
          } else assert.equal(got.kind, 'wait', `${a}+${b} ${cls}`);
        }
      }
    }
  }
});

test('a narrowed directive decides its capability only above the run-wide one; below it, the run-wide one decides', () => {
  const runWideHalt = directive('halt', 'tenant:acme', 'acme', null, 1);
  const narrowedKill = directive('kill', 'tenant:acme', 'acme', ['crm.update'], 2);
  const narrowedDegrade = directive('degrade', 'tenant:acme', 'acme', ['crm.update'], 3);
  const readOnly = directive('degrade', 'tenant:acme', 'acme', null, 4);
  const got = (list: Decidable[], cap: string, cls: EffectClass) => effectOf(list, RUN, cap, cls);
  assert.equal(shown(got([runWideHalt, narrowedKill], 'crm.update', 'read')), 'deny:killed');
  assert.equal(shown(got([runWideHalt, narrowedKill], 'search', 'read')), 'deny:halted');
  assert.equal(shown(got([runWideHalt, narrowedDegrade], 'crm.update', 'read')), 'deny:halted');
  assert.equal(shown(got([readOnly, narrowedDegrade], 'crm.update', 'read')), 'deny:revoked');
  assert.equal(shown(got([readOnly, narrowedDegrade], 'search', 'read')), 'allow');
  assert.equal(shown(got([readOnly, narrowedDegrade], 'search', 'write')), 'deny:read_only');
  // The lowest throttle rate is the slot; a refusal outranks any wait.
  const slow = {
    ...directive('throttle', 'global', null, null, 5),
    rate: { perSecond: 1, per: 'agent' as const },
  };
  const fast = directive('throttle', 'tenant:acme', 'acme', null, 6);
  const w = effectOf([fast, slow], RUN, 'x', 'read');
  assert.ok(w.kind === 'wait' && w.directive === slow && w.slot.perSecond === 1);
  assert.equal(shown(effectOf([fast, runWideHalt], RUN, 'x', 'read')), 'deny:halted');
  // Launcher orders over several runs: each order is the earliest directive of its level covering any.
  const other: RunIdentity = { ...RUN, runId: 'r-2', lineage: [], features: [] };
  const k1 = directive('kill', 'run:r-2', 'acme', null, 7);
  const k2 = directive('kill', 'global', null, null, 8);
  assert.equal(ordersFor([k2, k1], [RUN, other]).kill, k1);
  assert.equal(ordersFor([k1], [RUN]).kill, null);
});
