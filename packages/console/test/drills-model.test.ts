import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DrillDue, RehearsalRecord, ScenarioResult } from '@killpath/protocol';
import {
  checkRows,
  dueOrder,
  dueSummary,
  effectsText,
  journalText,
  msText,
  reasonLabel,
  scenarioCounts,
  whenText,
  worstSignalToHalt,
  worstText,
} from '../src/drills-model.ts';

function due(tenant: string, agent: string, isDue: boolean): DrillDue {
  return {
    tenant,
    agent,
    due: isDue,
    reasons: isDue ? [{ kind: 'never', detail: 'never drilled' }] : [],
    lastDrill: null,
    cadenceDays: 30,
    nextDueAt: null,
    surface: [],
  };
}

function scenario(over: Partial<ScenarioResult>): ScenarioResult {
  return {
    id: 'S1',
    title: 't',
    path: 'synchronous',
    status: 'pass',
    startedAt: '2025-06-01T10:00:00.000Z',
    durationMs: 1,
    target: { signalToHaltMs: 1000, haltToRecoveryMs: null },
    signalToHalt: { n: 2, p50: 10, p99: 40, max: 40, samples: [10, 40] },
    haltToRecoveryMs: null,
    effectsAfterFlip: { read: 2, write: 0, irreversible: 0 },
    effectsAfterObserve: 0,
    queue: null,
    journal: { intents: 3, landed: 2, failed: 0, aborted: 1, inDoubt: 0, open: 0, lost: 0, compensations: 0 },
    checks: [],
    paths: [],
    notes: [],
    remediation: null,
    ...over,
  };
}

test('the due list puts due agents first, then sorts by tenant and agent, and sums itself up', () => {
  const list = [
    due('globex', 'a', false),
    due('acme', 'z', true),
    due('acme', 'b', false),
    due('acme', 'c', true),
  ];
  assert.deepEqual(
    dueOrder(list).map((d) => `${d.tenant}/${d.agent}`),
    ['acme/c', 'acme/z', 'acme/b', 'globex/a'],
  );
  assert.equal(dueSummary(list), '2 of 4 agents are due for a drill.');
  assert.equal(dueSummary([due('acme', 'a', false)]), 'None of 1 agent is due for a drill.');
  assert.match(dueSummary([]), /^No agents known yet/);
});

test('reasons in words', () => {
  assert.equal(
    reasonLabel({ kind: 'surface_changed', detail: '', added: ['wire_transfer'] }),
    'New capability since the last drill: wire_transfer',
  );
  assert.equal(
    reasonLabel({ kind: 'surface_changed', detail: '', added: ['a', 'b'] }),
    'New capabilities since the last drill: a, b',
  );
  assert.equal(reasonLabel({ kind: 'spec_changed', detail: '' }), 'The spec changed since the last drill');
  assert.equal(reasonLabel({ kind: 'failed', detail: '', drillId: 'dr_1' }), 'The last drill failed');
  assert.equal(
    reasonLabel({ kind: 'cadence', detail: '', dueSince: '2025-07-01T10:05:00.000Z' }),
    'Overdue since 2025-07-01 10:05 UTC',
  );
  assert.equal(reasonLabel({ kind: 'never', detail: '' }), 'Never drilled');
  assert.equal(whenText(null), '—');
  assert.equal(whenText('not a time'), 'not a time');
});

test('scenario counts and the worst signal-to-halt against its target', () => {
  const scenarios = [
    scenario({}),
    scenario({
      id: 'S3',
      status: 'fail',
      signalToHalt: { n: 1, p50: 2100, p99: 2100, max: 2100, samples: [2100] },
    }),
    scenario({ id: 'S7', status: 'degraded', signalToHalt: null }),
    scenario({ id: 'S8', status: 'skipped', signalToHalt: { n: 0, p50: 0, p99: 0, max: 0, samples: [] } }),
  ];
  assert.deepEqual(scenarioCounts(scenarios), { pass: 1, fail: 1, degraded: 1, skipped: 1 });
  const w = worstSignalToHalt(scenarios);
  assert.deepEqual(w, { scenario: 'S3', p99: 2100, target: 1000, over: true });
  assert.equal(worstText(w), '2.10 s (S3), target 1.00 s');
  assert.equal(
    worstText(worstSignalToHalt([scenario({ target: { signalToHaltMs: null, haltToRecoveryMs: null } })])),
    '40 ms (S1)',
  );
  assert.equal(worstSignalToHalt([scenario({})])?.over, false);
  assert.equal(worstText(null), '—');
  assert.deepEqual(
    [msText(0.4), msText(41.2), msText(12_345), msText(null), msText(Number.NaN)],
    ['0.40 ms', '41 ms', '12.3 s', '—', '—'],
  );
});

test('effects and journal in one line each; checks failed first', () => {
  assert.equal(effectsText(scenario({})), '0 write, 0 irreversible, 2 read; 0 after observe');
  assert.equal(effectsText(scenario({ effectsAfterFlip: null })), '—');
  assert.equal(journalText(scenario({})), '3 intents: 2 landed, 1 aborted, 0 failed');
  assert.equal(
    journalText(
      scenario({
        journal: {
          intents: 5,
          landed: 2,
          failed: 0,
          aborted: 1,
          inDoubt: 0,
          open: 1,
          lost: 1,
          compensations: 2,
        },
      }),
    ),
    '5 intents: 2 landed, 1 aborted, 0 failed; 1 open, 1 lost; 2 to compensate',
  );
  assert.equal(journalText(scenario({ journal: null })), '—');
  const record = {
    scenarios: [
      scenario({
        checks: [
          { name: 'a', ok: true, kind: 'invariant', detail: '' },
          { name: 'b', ok: false, kind: 'target', detail: 'slow' },
        ],
      }),
      scenario({
        id: 'S2',
        checks: [{ name: 'c', ok: false, kind: 'invariant', detail: 'write after flip' }],
      }),
    ],
  } as RehearsalRecord;
  assert.deepEqual(
    checkRows(record).map((c) => `${c.scenario}:${c.name}:${c.ok}`),
    ['S1:b:false', 'S2:c:false', 'S1:a:true'],
  );
});
