import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { parsePolicy } from '@killpath/server';
import { brokenInvariants, pickScenarios, SCENARIOS } from '../../src/drill/run.ts';
import { drillPolicy, judge, reportOrder } from '../../src/drill/run.ts';
import {
  queueState,
  recoveryMs,
  startedAfter,
  summarize,
  timeline,
  targetChecks,
  journalChecks,
} from '../../src/drill/measure.ts';
import { parseSpec } from '../../src/killswitch-spec/load-spec.ts';
import { SPEC_TEMPLATE } from '../../src/killswitch-spec/template.ts';
import type { Scenario } from '../../src/drill/context.ts';

const ev = (type: string, wall: number, extra: Record<string, unknown> = {}) => ({
  k: 'ev',
  type,
  wall,
  at: wall,
  ...extra,
});

describe('drill measurements', () => {
  test('summarize: p50/p99/max over finite samples, null when none', () => {
    assert.equal(summarize([]), null);
    assert.equal(summarize([Number.NaN]), null);
    assert.equal(summarize([-3])!.max, 0, 'a sample below 0 (two clocks) counts as 0');
    const s = summarize([30, 10, 20, 40, Number.POSITIVE_INFINITY])!;
    assert.deepEqual({ n: s.n, p50: s.p50, p99: s.p99, max: s.max }, { n: 4, p50: 20, p99: 40, max: 40 });
  });

  test('startedAfter counts only covered effects that started after the wall, by class', () => {
    const events = [
      ev('effect.started', 90, { runId: 'r1', capability: 'search', class: 'read' }),
      ev('effect.started', 110, { runId: 'r1', capability: 'search', class: 'read' }),
      ev('effect.started', 120, { runId: 'r1', capability: 'crm.update', class: 'write' }),
      ev('effect.started', 130, { runId: 'r2', capability: 'crm.update', class: 'write' }),
      ev('effect.landed', 140, { runId: 'r1', capability: 'crm.update', class: 'write' }),
    ];
    assert.deepEqual(
      startedAfter(events, (run) => run === 'r1', 100),
      { read: 1, write: 1, irreversible: 0 },
    );
    assert.deepEqual(
      startedAfter(events, (_run, cap) => cap === 'crm.update', 100),
      { read: 0, write: 2, irreversible: 0 },
    );
  });

  test('timeline: effect events of covered runs relative to the flip, within the range', () => {
    const events = [
      ev('effect.started', 900, { runId: 'r1', capability: 'search', class: 'read' }),
      ev('effect.aborted', 1010, { runId: 'r1', capability: 'export_report', class: 'write' }),
      ev('effect.denied', 1050, { runId: 'r1', capability: 'crm.update', class: 'write' }),
      ev('effect.started', 1020, { runId: 'other', capability: 'search', class: 'read' }),
      ev('effect.started', 5000, { runId: 'r1', capability: 'search', class: 'read' }),
    ];
    assert.deepEqual(
      timeline(events, (r) => r === 'r1', 1000, -500, 1000),
      [
        { t: -100, class: 'read', outcome: 'started' },
        { t: 10, class: 'write', outcome: 'aborted' },
        { t: 50, class: 'write', outcome: 'refused' },
      ],
    );
  });

  test('recoveryMs: resume commit to the first covered effect after it', () => {
    const events = [
      ev('effect.started', 100, { runId: 'r1' }),
      ev('effect.started', 260, { runId: 'r2' }),
      ev('effect.started', 300, { runId: 'r1' }),
    ];
    assert.equal(
      recoveryMs(events, (r) => r === 'r1', 200),
      100,
    );
    assert.equal(
      recoveryMs(events, (r) => r === 'r3', 200),
      null,
    );
  });

  test('queueState: waiting at the flip (discarded + running), late starts and still running at the window end', () => {
    const events = [
      ev('task.started', 90, { runId: 'r1', taskId: 't1', draining: false }),
      ev('task.settled', 95, { runId: 'r1', taskId: 't1' }),
      ev('task.started', 98, { runId: 'r1', taskId: 't2', draining: false }),
      ev('queue.discarded', 105, { runId: 'r1', taskId: 't3', directiveId: 'D' }),
      ev('queue.discarded', 105, { runId: 'r1', taskId: 't4', directiveId: 'D' }),
      ev('task.settled', 120, { runId: 'r1', taskId: 't2' }),
      // a task that started after the worker observed the flip: a broken invariant the drill reports
      ev('task.started', 150, { runId: 'r1', taskId: 't5', draining: false }),
    ];
    assert.deepEqual(
      queueState(events, (r) => r === 'r1', 'D', 100, 110, 1000),
      { atFlip: 3, afterWindow: 2, discarded: 2 },
    );
    assert.deepEqual(
      queueState(events.slice(0, 6), (r) => r === 'r1', 'D', 100, 110, 1000),
      { atFlip: 3, afterWindow: 0, discarded: 2 },
    );
  });

  test('target and journal checks fail exactly when the numbers say so', () => {
    const s = summarize([100, 2500])!;
    assert.deepEqual(
      targetChecks(s, 2000, 1000, 300_000).map((c) => c.ok),
      [false, true],
    );
    assert.deepEqual(
      targetChecks(s, 5000, 400_000, 300_000).map((c) => c.ok),
      [true, false],
    );
    assert.deepEqual(
      journalChecks({
        intents: 3,
        landed: 2,
        failed: 0,
        aborted: 1,
        inDoubt: 0,
        open: 0,
        lost: 0,
        compensations: 2,
      }).map((c) => c.ok),
      [true, true],
    );
    assert.deepEqual(
      journalChecks({
        intents: 3,
        landed: 1,
        failed: 0,
        aborted: 1,
        inDoubt: 0,
        open: 1,
        lost: 1,
        compensations: 0,
      }).map((c) => c.ok),
      [false, false],
    );
  });
});

describe('drill scenarios and judging', () => {
  test('the battery holds S1–S8, every scope and every level', () => {
    const ids = SCENARIOS.map((s) => s.id).sort((a, b) => reportOrder(a) - reportOrder(b));
    assert.deepEqual(ids, [
      'S1',
      'S2',
      'S3',
      'S4',
      'S5',
      'S6',
      'S7',
      'S8',
      'scope:capability',
      'scope:run',
      'scope:agent',
      'scope:tenant',
      'scope:feature',
      'scope:release',
      'scope:global',
      'level:throttle',
      'level:degrade',
      'level:isolate',
      'level:halt',
      'level:freeze',
      'level:kill',
    ]);
  });

  test('--scenarios picks ids and groups, and refuses unknown names', () => {
    assert.equal(pickScenarios(undefined).length, SCENARIOS.length);
    assert.deepEqual(
      pickScenarios('S3,run,level:kill')
        .map((s) => s.id)
        .sort(),
      ['S3', 'level:kill', 'scope:run'],
    );
    assert.equal(pickScenarios('S').length, 8);
    assert.equal(pickScenarios('scopes,levels').length, 13);
    assert.deepEqual(
      pickScenarios('freeze').map((s) => s.id),
      ['level:freeze'],
    );
    assert.throws(() => pickScenarios('S9'), /unknown scenario "S9"; known: S1/);
  });

  const s: Scenario = { id: 'S1', title: 't', path: 'synchronous', run: async () => ({ checks: [] }) };
  const at = new Date('2026-11-21T00:00:00Z');

  test('judge: a failed check fails the scenario with a remediation; paths make it degraded; skips are skipped', () => {
    const ok = judge(
      s,
      { checks: [{ name: 'every covered worker halted', kind: 'invariant', ok: true, detail: '' }] },
      at,
      10,
      300_000,
    );
    assert.equal(ok.status, 'pass');
    assert.equal(ok.remediation, null);
    const bad = judge(
      s,
      {
        checks: [
          { name: 'no write permit after the flip', kind: 'invariant', ok: false, detail: '1 permit' },
        ],
      },
      at,
      10,
      300_000,
    );
    assert.equal(bad.status, 'fail');
    assert.match(bad.remediation!, /serialised unit/);
    const deg = judge(
      s,
      { checks: [], paths: [{ path: 'deadman', state: 'worked', detail: '' }] },
      at,
      10,
      300_000,
    );
    assert.equal(deg.status, 'degraded', 'S7/S8 are never a blanket pass');
    assert.equal(judge(s, { checks: [], skipped: 'remote' }, at, 10, 300_000).status, 'skipped');
    assert.equal(
      judge(s, { checks: [], haltToRecoveryMs: 120 }, at, 10, 300_000).target.haltToRecoveryMs,
      300_000,
    );
  });

  test('the CI battery fails on broken invariants only, never on a latency', () => {
    const fail = (kind: 'invariant' | 'target') =>
      judge(s, { checks: [{ name: 'x', kind, ok: false, detail: 'd' }] }, at, 1, 1);
    const rehearsal = (r: ReturnType<typeof judge>) => ({
      spec: { name: 'n', digest: 'd', agents: [] },
      mode: 'local' as const,
      compact: true,
      startedAt: '',
      finishedAt: '',
      result: 'fail' as const,
      scenarios: [r],
    });
    assert.deepEqual(brokenInvariants(rehearsal(fail('target'))), []);
    assert.deepEqual(brokenInvariants(rehearsal(fail('invariant'))), ['S1 x: d']);
  });

  test('the drill policy is the spec\u2019s, with a fast deadman for one agent in compact drills', () => {
    const { spec } = parseSpec(SPEC_TEMPLATE);
    const full = drillPolicy(spec, null, spec.triggers.deadman);
    assert.equal(parsePolicy(full).ok, true);
    const compact = drillPolicy(spec, 'initech/sales-bot', { intervalMs: 1000, missed: 3 });
    const parsed = parsePolicy(compact);
    assert.ok(parsed.ok, JSON.stringify(parsed));
    const doc = parseYaml(compact) as {
      deadman: {
        default: { intervalMs: number };
        agents: Record<string, { intervalMs: number; missed: number }>;
      };
    };
    assert.deepEqual(doc.deadman.agents['initech/sales-bot'], {
      intervalMs: 1000,
      missed: 3,
      killAfterMs: 0,
    });
    assert.equal(doc.deadman.default.intervalMs, spec.triggers.deadman.intervalMs);
  });
});
