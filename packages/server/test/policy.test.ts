/**
 * The policy language: validation with every problem reported, CEL type checking of `when`,
 * per-agent limits and deadman settings, windows, the automation policy applied to rule
 * levels, the line diff, and the offline replay against recorded telemetry.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_AUTOMATION, automationFrom } from '../src/ladder.ts';
import { DEFAULT_POLICY } from '../src/policy/default-policy.ts';
import { lineDiff, ruleChanges } from '../src/policy/diff.ts';
import { compilePolicy, parsePolicy } from '../src/policy/policy.ts';
import { allowedLevel } from '../src/supervisor/supervisor.ts';
import { parseTelemetryLines, replayTelemetry, type RecordedUpdate } from '../src/supervisor/replay.ts';

const update = (at: number, over: Partial<RecordedUpdate> = {}): RecordedUpdate => ({
  at,
  tenant: 'acme',
  agent: 'bot',
  workerId: 'w1',
  runId: 'r1',
  steps: 0,
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
  ...over,
});

describe('policy validation', () => {
  test('the default policy compiles: the seed rules enforced, the anomaly rule in shadow, limits and deadman defaults', () => {
    const p = compilePolicy(DEFAULT_POLICY);
    assert.deepEqual(
      p.rules.map((r) => `${r.name}:${r.mode}:${r.action.level}@${r.action.scope}`),
      [
        'cost_cap:enforce:halt@run',
        'loop_length:enforce:halt@run',
        'tool_error_rate:enforce:halt@run',
        'auth_denial:enforce:halt@run',
        'memory_schema:enforce:halt@run',
        'anomaly:shadow:halt@run',
      ],
    );
    assert.deepEqual(p.limitsFor('acme', 'bot'), { maxSteps: 200, maxCostUsd: 5 });
    assert.deepEqual(p.deadmanFor('acme', 'bot'), {
      enabled: true,
      intervalMs: 5000,
      missed: 3,
      killAfterMs: 0,
    });
    assert.equal(p.retentionMs, 60_000);
  });

  test('every problem is reported with its path: unknown fields, CEL errors, non-bool conditions, bad actions, duplicates', () => {
    const r = parsePolicy(`
rules:
  - name: a
    when: run.stepz > 1
    action: { level: halt }
  - name: a
    when: run.steps + 1
    action: { level: throttle }
  - name: Bad-Name
    when: window(run, "2h").steps > 1
    action: { level: isolate, scope: run }
    extra: true
`);
    assert.equal(r.ok, false);
    const problems = r.ok ? [] : r.problems;
    assert.ok(
      problems.some((p) => p.path === 'rules[2].name'),
      JSON.stringify(problems),
    );
    assert.ok(
      problems.some((p) => p.path === 'rules[2]' && /extra/.test(p.message)),
      'unknown keys are refused',
    );
    const r2 = parsePolicy(`
rules:
  - name: a
    when: run.stepz > 1
    action: { level: halt }
  - name: a
    when: run.steps + 1
    action: { level: throttle }
  - name: c
    when: window(run, "2h").steps > 1
    action: { level: isolate, scope: run }
  - name: d
    when: window(run, params.w).steps > 1
    action: { level: halt }
`);
    assert.equal(r2.ok, false);
    const paths = r2.ok ? [] : r2.problems.map((p) => `${p.path}: ${p.message}`);
    assert.ok(paths.includes('rules[0].when: No such key: stepz'), paths.join('\n'));
    assert.ok(paths.includes('rules[1].name: duplicate rule name "a"'));
    assert.ok(paths.some((p) => p.startsWith('rules[1].action: a throttle needs a rate')));
    assert.ok(paths.includes('rules[1].when: must be a bool expression, this one is int'));
    assert.ok(paths.some((p) => p.startsWith('rules[2].when: window length "2h"')));
    assert.ok(paths.some((p) => p.startsWith('rules[2].action.scope: isolate acts on processes')));
    assert.ok(
      paths.some((p) => p.startsWith('rules[3].when: window() takes a subject and a literal duration')),
    );
    assert.throws(
      () => compilePolicy('rules: ['),
      (err: Error & { code?: string }) => err.code === 'invalid_request',
    );
  });

  test('params are typed for CEL; a missing param is a check-time error', () => {
    assert.equal(
      parsePolicy(
        'params: { cap: 3, rate: 0.5, tag: x }\nrules:\n  - { name: a, when: "run.steps > params.cap && run.tool_error_rate > params.rate && run.agent != params.tag", action: { level: halt } }',
      ).ok,
      true,
    );
    const r = parsePolicy('rules:\n  - { name: a, when: "run.steps > params.cap", action: { level: halt } }');
    assert.equal(r.ok, false);
  });

  test('limits and deadman settings per agent, then per tenant (T/*), then the default', () => {
    const p = compilePolicy(`
limits:
  default: { maxSteps: 100, maxCostUsd: 1 }
  agents:
    acme/reader: { maxSteps: 5000 }
    beta/*: { maxCostUsd: null }
deadman:
  default: { intervalMs: 2000, missed: 3 }
  agents:
    acme/fast: { intervalMs: 500, missed: 2 }
    acme/reader: { intervalMs: 30000, missed: 4, killAfterMs: 1000 }
    acme/off: { enabled: false }
`);
    assert.deepEqual(p.limitsFor('acme', 'reader'), { maxSteps: 5000, maxCostUsd: 1 });
    assert.deepEqual(p.limitsFor('beta', 'x'), { maxSteps: 100, maxCostUsd: null });
    assert.deepEqual(p.limitsFor('acme', 'other'), { maxSteps: 100, maxCostUsd: 1 });
    assert.deepEqual(p.deadmanFor('acme', 'fast'), {
      enabled: true,
      intervalMs: 500,
      missed: 2,
      killAfterMs: 0,
    });
    assert.deepEqual(p.deadmanFor('acme', 'reader'), {
      enabled: true,
      intervalMs: 30000,
      missed: 4,
      killAfterMs: 1000,
    });
    assert.equal(p.deadmanFor('acme', 'off').enabled, false);
    assert.equal(p.minIntervalMs, 500);
  });

  test('the line diff shows removed then added lines with context; rule changes are named', () => {
    const a = 'a\nb\nc\nd\ne\nf\ng\n';
    const b = 'a\nb\nc\nD\ne\nf\ng\nh\n';
    assert.equal(lineDiff(a, b), ' b\n c\n-d\n+D\n e\n f\n g\n+h');
    const p1 = compilePolicy(DEFAULT_POLICY);
    const p2 = compilePolicy(
      DEFAULT_POLICY.replace('mode: shadow', 'mode: enforce').replace(
        / {2}- name: cost_cap[\s\S]*?action: \{ level: halt, scope: run \}\n/,
        '',
      ),
    );
    assert.deepEqual(ruleChanges(p1, p2), { added: [], removed: ['cost_cap'], changed: ['anomaly'] });
  });
});

describe('the automation policy on rule levels', () => {
  const rule = (
    level: 'kill' | 'isolate' | 'halt' | 'degrade',
    extra: { critical?: boolean; scope?: 'run' | 'agent'; rate?: boolean } = {},
  ) => ({
    critical: extra.critical ?? false,
    action: {
      level,
      scope: extra.scope ?? 'run',
      ...(extra.rate ? { rate: { perSecond: 1, per: 'run' as const } } : {}),
    },
  });

  test('a level reserved for people is held and the highest automatic level below it issued, unless the rule is critical', () => {
    assert.deepEqual(allowedLevel(rule('halt'), DEFAULT_AUTOMATION), { level: 'halt', held: false });
    assert.deepEqual(allowedLevel(rule('kill'), DEFAULT_AUTOMATION), { level: 'halt', held: true });
    assert.deepEqual(allowedLevel(rule('kill', { critical: true }), DEFAULT_AUTOMATION), {
      level: 'kill',
      held: false,
    });
    assert.deepEqual(allowedLevel(rule('isolate', { scope: 'agent' }), DEFAULT_AUTOMATION), {
      level: 'degrade',
      held: true,
    });
    // Only throttle automatic: a halt rule without a rate has nothing it may issue.
    assert.deepEqual(allowedLevel(rule('halt'), automationFrom('throttle')), { level: null, held: true });
    assert.deepEqual(allowedLevel(rule('halt', { rate: true }), automationFrom('throttle')), {
      level: 'throttle',
      held: true,
    });
  });
});

describe('offline replay (killpath policy test)', () => {
  test('each default rule fires on the update that crosses it, once per run; the shadow rule reports as shadow', () => {
    const p = compilePolicy(DEFAULT_POLICY);
    const r = replayTelemetry(p, [
      update(1000, { runId: 'loop', steps: 150 }),
      update(1250, { runId: 'loop', steps: 201 }),
      update(1500, { runId: 'loop', steps: 260 }),
      update(1000, { runId: 'cost', costUsd: 4.9 }),
      update(1250, { runId: 'cost', costUsd: 5.01 }),
      update(1000, { runId: 'errs', toolCalls: 4, toolErrors: 4 }),
      update(1250, { runId: 'errs', toolCalls: 5, toolErrors: 2 }),
      update(1000, { runId: 'deny', authDenials: 1 }),
      update(1000, { runId: 'degraded', authDenials: 3, revokedDenials: 3 }),
      update(1000, { runId: 'mem', schemaViolations: 1 }),
      update(1000, { runId: 'odd', anomalies: 1, anomalyScore: 0.95 }),
      update(1000, { runId: 'calm', steps: 10, toolCalls: 10, toolErrors: 1 }),
    ]);
    const by = (rule: string) =>
      r.fires.filter((f) => f.rule === rule).map((f) => `${f.scope}@${f.receivedAt}:${f.mode}`);
    assert.deepEqual(by('loop_length'), ['run:loop@1250:enforce']);
    assert.deepEqual(by('cost_cap'), ['run:cost@1250:enforce']);
    assert.deepEqual(
      by('tool_error_rate'),
      ['run:errs@1250:enforce'],
      'not before five calls, then 40% > 30%',
    );
    assert.deepEqual(
      by('auth_denial'),
      ['run:deny@1000:enforce'],
      "refusals an operator's degrade explains do not count",
    );
    assert.deepEqual(by('memory_schema'), ['run:mem@1000:enforce']);
    assert.deepEqual(by('anomaly'), ['run:odd@1000:shadow']);
    assert.equal(r.rules.anomaly!.shadow, 1);
  });

  test('windows slide: errors older than 60 s no longer count; a rule fires again after its condition was false', () => {
    const p = compilePolicy(DEFAULT_POLICY);
    const r = replayTelemetry(p, [
      update(0, { toolCalls: 5, toolErrors: 5 }),
      update(30_000, { toolCalls: 15, toolErrors: 5 }),
      update(61_500, { toolCalls: 16, toolErrors: 5 }),
      update(62_000, { toolCalls: 26, toolErrors: 10 }),
    ]);
    // t=0: 5/5 fires; t=30 s: 5/15 = 0.33 still true (latched); t=61.5 s: window 11 calls, 0 errors: false; t=62 s: 5/21 = 0.24 false.
    assert.deepEqual(
      r.fires.map((f) => f.receivedAt),
      [0],
    );
    const again = replayTelemetry(p, [
      update(0, { toolCalls: 5, toolErrors: 5 }),
      update(61_500, { toolCalls: 15, toolErrors: 5 }),
      update(62_000, { toolCalls: 25, toolErrors: 15 }),
    ]);
    assert.deepEqual(
      again.fires.map((f) => f.receivedAt),
      [0, 62_000],
      'false at 61.5 s (errors aged out), true again at 62 s',
    );
  });

  test('totals are per worker: a second worker adds to the run; a worker that restarted counting is not a negative delta', () => {
    const p = compilePolicy(
      'rules:\n  - { name: big, when: "run.steps > 10", action: { level: halt } }\n  - { name: agent_big, when: "agent.steps >= 25", action: { level: halt, scope: agent } }',
    );
    const r = replayTelemetry(p, [
      update(0, { workerId: 'w1', steps: 6 }),
      update(1, { workerId: 'w2', steps: 6 }),
      update(2, { workerId: 'w1', runId: 'r2', steps: 8 }),
      update(3, { workerId: 'w1', runId: 'r2', steps: 3 }),
      update(4, { workerId: 'w1', runId: 'r3', steps: 2 }),
    ]);
    // r1: 6 + 6 from two workers; r2: 8, then the worker counts afresh from 3 (8 + 3 = 11); the agent: 6 + 6 + 11 + 2 = 25.
    assert.deepEqual(
      r.fires.map((f) => `${f.rule}:${f.scope}@${f.receivedAt}`),
      ['big:run:r1@1', 'big:run:r2@3', 'agent_big:agent:acme/bot@4'],
    );
  });

  test('recorded lines parse with defaults; a bad line is named', () => {
    const lines = parseTelemetryLines(
      '# comment\n{"at":"2026-01-01T00:00:00Z","tenant":"acme","agent":"bot","runId":"r1","steps":3}\n\n',
    );
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.workerId, 'recorded');
    assert.equal(lines[0]!.toolCalls, 0);
    assert.throws(
      () => parseTelemetryLines('{"at":1,"tenant":"acme","agent":"bot"}'),
      /events line 1: runId/,
    );
    assert.throws(() => parseTelemetryLines('nope'), /events line 1: not JSON/);
  });
});
