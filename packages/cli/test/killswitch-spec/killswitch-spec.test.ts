/**
 * The kill-switch spec: the template validates, omitted sections take the seed's defaults,
 * every kind of error is reported with its path, line and an explanation (all of them at
 * once), the generated policy compiles and carries the thresholds, the committed example and
 * runbook match their generators, and `killpath spec` / `killpath runbook` behave as a CLI.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KillpathError } from '@killpath/protocol';
import { parsePolicy } from '@killpath/server';
import {
  SpecError,
  loadSpec,
  parseSpec,
  policyFromSpec,
  type SpecProblem,
} from '../../src/killswitch-spec/load-spec.ts';
import { SPEC_TEMPLATE } from '../../src/killswitch-spec/template.ts';
import { codeBlocks, renderRunbook } from '../../src/killswitch-spec/runbook.ts';
import { spec as specCommand } from '../../src/commands/spec.ts';
import { runbook as runbookCommand } from '../../src/commands/runbook.ts';
import { main } from '../../src/main.ts';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const DEMO_SPEC = 'examples/demo-fleet.spec.yaml';
const DEMO_RUNBOOK = 'docs/runbook-demo-fleet.md';

/** A minimal valid agent entry, indented for the `agents:` list. */
const AGENT = `  - tenant: acme
    agent: support-bot
    level: 4
    description: answers tickets
`;

/** The problems `parseSpec` throws for `text` (fails the test when it does not throw). */
function problems(text: string): SpecProblem[] {
  try {
    parseSpec(text, 'bad.yaml');
  } catch (err) {
    assert.ok(err instanceof SpecError, `a SpecError, not ${String(err)}`);
    assert.equal(err.code, 'invalid_request');
    assert.ok(err instanceof KillpathError);
    return err.errors;
  }
  assert.fail('expected the spec to be rejected');
}

function only(text: string): SpecProblem {
  const p = problems(text);
  assert.equal(p.length, 1, `exactly one problem, got ${JSON.stringify(p, null, 2)}`);
  return p[0]!;
}

/** Fails with `hint` and the first line that differs (a whole document in an assertion is unreadable). */
function sameText(actual: string, expected: string, hint: string): void {
  if (actual === expected) return;
  const a = actual.split('\n');
  const e = expected.split('\n');
  const i = a.findIndex((line, n) => line !== e[n]);
  const at = i < 0 ? Math.min(a.length, e.length) : i;
  assert.fail(
    `${hint}\nfirst difference at line ${at + 1}:\n  committed: ${JSON.stringify(a[at] ?? '(end of file)')}\n  generated: ${JSON.stringify(e[at] ?? '(end of file)')}`,
  );
}

/** Captures console.log / console.error / process.stdout.write while `fn` runs. */
async function capture(
  t: TestContext,
  fn: () => Promise<number>,
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const log = t.mock.method(console, 'log', (...a: unknown[]) => void (out += `${a.join(' ')}\n`));
  const error = t.mock.method(console, 'error', (...a: unknown[]) => void (err += `${a.join(' ')}\n`));
  const write = t.mock.method(
    process.stdout,
    'write',
    (chunk: string | Uint8Array) => ((out += String(chunk)), true),
  );
  try {
    return { code: await fn(), out, err };
  } finally {
    log.mock.restore();
    error.mock.restore();
    write.mock.restore();
  }
}

describe('the template', () => {
  test('parses and validates without warnings, covering the demo fleet', () => {
    const r = parseSpec(SPEC_TEMPLATE, 'template');
    assert.deepEqual(r.warnings, []);
    assert.match(r.digest, /^[0-9a-f]{64}$/);
    assert.equal(r.spec.name, 'demo-fleet');
    assert.deepEqual(
      r.spec.agents.map((a) => [`${a.tenant}/${a.agent}`, a.level]),
      [
        ['acme/support-bot', 4],
        ['acme/billing-bot', 5],
        ['globex/research-bot', 3],
        ['globex/ops-bot', 4],
        ['initech/sales-bot', 3],
      ],
    );
    assert.deepEqual(r.spec.agents[0]!.features, ['new-planner']);
    const billing = r.spec.agents[1]!;
    assert.deepEqual(
      billing.tools.find((t) => t.name === 'wire_transfer'),
      {
        name: 'wire_transfer',
        class: 'irreversible',
        compensation: 'recall_transfer',
        description: billing.tools.find((t) => t.name === 'wire_transfer')!.description,
      },
    );
    for (const a of r.spec.agents)
      assert.deepEqual(
        a.tools.map((t) => `${t.name}:${t.class}`),
        [
          'search:read',
          'crm.update:write',
          'export_report:write',
          'sync:write',
          'outbox.send:write',
          'wire_transfer:irreversible',
        ],
      );
    assert.deepEqual(r.spec.latency, {
      signalToHaltMs: { 3: 5000, 4: 2000, 5: 1000 },
      haltToRecoveryMs: 300_000,
    });
    assert.deepEqual(r.spec.rehearsal, {
      cadenceDays: { 3: 91, 4: 30, 5: 30 },
      onChange: ['tools', 'autonomy', 'memory'],
      windowMs: 60_000,
    });
    assert.deepEqual(r.spec.triggers.deadman, { intervalMs: 5000, missed: 3 });
    assert.deepEqual(r.spec.controlPlane, {
      url: 'http://127.0.0.1:7070',
      consoleUrl: 'http://127.0.0.1:7070/',
    });
    assert.equal(r.spec.escalation.length, 4);
    assert.equal(parseSpec(SPEC_TEMPLATE).digest, r.digest, 'the digest is stable');
  });

  test('explains every field in a comment, organised by the six components', () => {
    for (const heading of [
      '# 1 — Scope',
      '# 2 — Triggers',
      '# 3 — Mechanism',
      '# 4 — Latency targets',
      '# 5 — Side effects',
      '# 6 — Rehearsal cadence',
      '# Who to call',
    ]) {
      assert.ok(SPEC_TEMPLATE.includes(heading), `the template has "${heading}"`);
    }
  });

  test(`${DEMO_SPEC} is the template, byte for byte`, () => {
    sameText(
      readFileSync(join(ROOT, DEMO_SPEC), 'utf8'),
      SPEC_TEMPLATE,
      `${DEMO_SPEC} drifted from SPEC_TEMPLATE; regenerate it with: npx killpath spec init ${DEMO_SPEC} --force`,
    );
  });
});

describe('defaults', () => {
  test('a file with only a name and one agent gets the seed defaults for everything else', () => {
    const { spec, warnings } = parseSpec(`name: tiny\nagents:\n${AGENT}`);
    assert.deepEqual(spec.agents[0], {
      tenant: 'acme',
      agent: 'support-bot',
      level: 4,
      description: 'answers tickets',
      tools: [],
      memory: false,
      features: [],
    });
    assert.equal(spec.version, 1);
    assert.deepEqual(spec.controlPlane, {
      url: 'http://127.0.0.1:7070',
      consoleUrl: 'http://127.0.0.1:7070/',
    });
    assert.deepEqual(spec.scope.levels, ['capability', 'run', 'agent', 'tenant']);
    assert.deepEqual(spec.triggers.synchronous, ['console', 'api', 'cli']);
    assert.deepEqual(spec.triggers.asynchronous, {
      cost_cap: { enabled: true, threshold: 5, windowSeconds: null, mode: 'enforce' },
      loop_length: { enabled: true, threshold: 200, windowSeconds: null, mode: 'enforce' },
      tool_error_rate: { enabled: true, threshold: 0.3, windowSeconds: 60, mode: 'enforce' },
      auth_denial: { enabled: true, threshold: 1, windowSeconds: null, mode: 'enforce' },
      memory_schema: { enabled: true, threshold: 1, windowSeconds: null, mode: 'enforce' },
      anomaly: { enabled: true, threshold: 0.9, windowSeconds: null, mode: 'shadow' },
    });
    assert.deepEqual(spec.triggers.deadman, { intervalMs: 5000, missed: 3 });
    assert.deepEqual(spec.mechanism, {
      primary: 'cooperative',
      fallback: 'process-signal',
      killGraceMs: 2000,
      isolation: 'proxy',
      haltGraceMs: 5000,
      freeze: true,
    });
    assert.deepEqual(spec.latency, {
      signalToHaltMs: { 3: 5000, 4: 2000, 5: 1000 },
      haltToRecoveryMs: 300_000,
    });
    assert.deepEqual(spec.sideEffects.inFlight, {
      read: 'complete',
      write: 'abort',
      irreversible: 'cool-off',
    });
    assert.equal(spec.sideEffects.memory, 'revert');
    assert.equal(spec.sideEffects.queue, 'discard');
    for (const e of ['kill_switch.fired', 'session.halted', 'in_flight_tool_calls.status'])
      assert.ok(spec.sideEffects.auditEvents.includes(e));
    assert.deepEqual(spec.rehearsal, {
      cadenceDays: { 3: 91, 4: 30, 5: 30 },
      onChange: ['tools', 'autonomy', 'memory'],
      windowMs: 60_000,
    });
    assert.deepEqual(spec.escalation, []);
    assert.ok(
      warnings.some((w) => w.startsWith('escalation:')),
      'an empty escalation list is worth a warning',
    );
  });

  test('a partly written section keeps the defaults of what it omits', () => {
    const { spec } = parseSpec(`name: x
controlPlane: { url: "https://kp.example:8443" }
agents:
${AGENT}triggers:
  asynchronous:
    cost_cap: { threshold: 2.5 }
    anomaly: { threshold: 0.8 }
latency:
  signalToHaltMs: { 5: 500 }
rehearsal:
  cadenceDays: { 3: 60 }
`);
    assert.equal(
      spec.controlPlane.consoleUrl,
      'https://kp.example:8443/',
      'the console defaults to the control plane URL',
    );
    assert.deepEqual(spec.triggers.asynchronous.cost_cap, {
      enabled: true,
      threshold: 2.5,
      windowSeconds: null,
      mode: 'enforce',
    });
    assert.deepEqual(
      spec.triggers.asynchronous.anomaly,
      { enabled: true, threshold: 0.8, windowSeconds: null, mode: 'shadow' },
      'anomaly stays a shadow rule unless told otherwise',
    );
    assert.equal(spec.triggers.asynchronous.loop_length.threshold, 200);
    assert.deepEqual(spec.latency.signalToHaltMs, { 3: 5000, 4: 2000, 5: 500 });
    assert.deepEqual(spec.rehearsal.cadenceDays, { 3: 60, 4: 30, 5: 30 });
  });

  test('an irreversible tool without a cool-off is allowed, with a warning naming the line', () => {
    const { warnings } = parseSpec(`name: x
agents:
${AGENT}    tools:
      - { name: wire_transfer, class: irreversible }
sideEffects:
  inFlight: { irreversible: abort }
escalation: [{ when: money moved, contact: finance }]
`);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(
      warnings[0]!,
      /^agents\[0\]\.tools\[0\] \(line 8\): acme\/support-bot's wire_transfer is irreversible but sideEffects\.inFlight\.irreversible is abort: .*cool-off/,
    );
  });
});

describe('errors: path, line and a plain explanation', () => {
  const cases: { name: string; text: string; path: string; line: number | null; message: RegExp }[] = [
    {
      name: 'missing name',
      text: `agents:\n${AGENT}`,
      path: 'name',
      line: 1,
      message: /^missing: must be a non-empty name; it titles the runbook/,
    },
    {
      name: 'no agents',
      text: 'name: x\nagents: []\n',
      path: 'agents',
      line: 2,
      message: /^got an empty list: must be a list of at least one agent/,
    },
    {
      name: 'autonomy level out of range',
      text: `name: x\nagents:\n${AGENT.replace('level: 4', 'level: 6')}`,
      path: 'agents[0].level',
      line: 5,
      message: /^got 6: must be 3, 4 or 5; the autonomy level sets the agent's signal-to-halt target/,
    },
    {
      name: 'missing description',
      text: `name: x\nagents:\n${AGENT.replace('    description: answers tickets\n', '')}`,
      path: 'agents[0].description',
      line: 3,
      message: /^missing: .*02:00 on-call engineer/,
    },
    {
      name: 'tenant is not an identifier',
      text: `name: x\nagents:\n${AGENT.replace('tenant: acme', 'tenant: acme/eu')}`,
      path: 'agents[0].tenant',
      line: 3,
      message:
        /^got "acme\/eu": must be 1-128 letters, digits or \._:@- \(no \/\); scopes name the agent as agent:TENANT\/AGENT/,
    },
    {
      name: 'tool class misspelt',
      text: `name: x\nagents:\n${AGENT}    tools: [{ name: crm.update, class: wirte }]\n`,
      path: 'agents[0].tools[0].class',
      line: 7,
      message:
        /^got "wirte" \(did you mean "write"\?\): must be read, write or irreversible; reads may complete, writes are aborted/,
    },
    {
      name: 'duplicate agent',
      text: `name: x\nagents:\n${AGENT}${AGENT}`,
      path: 'agents[1]',
      line: 7,
      message: /^acme\/support-bot is listed twice \(also agents\[0\]\): one entry per agent/,
    },
    {
      name: 'duplicate tool',
      text: `name: x\nagents:\n${AGENT}    tools:\n      - { name: sync, class: write }\n      - { name: sync, class: read }\n`,
      path: 'agents[0].tools[1].name',
      line: 9,
      message: /^tool "sync" of acme\/support-bot is listed twice \(also tools\[0\]\)/,
    },
    {
      name: 'scope without run',
      text: `name: x\nagents:\n${AGENT}scope:\n  levels: [agent, tenant]\n`,
      path: 'scope.levels',
      line: 8,
      message:
        /^must include run and agent \(missing run\): seed 002 requires at least per-session and per-agent scopes$/,
    },
    {
      name: 'unknown scope level',
      text: `name: x\nagents:\n${AGENT}scope:\n  levels: [run, agent, planet]\n`,
      path: 'scope.levels[2]',
      line: 8,
      message: /^got "planet": must be capability, run, agent, tenant, global/,
    },
    {
      name: 'latency targets out of order',
      text: `name: x\nagents:\n${AGENT}latency:\n  signalToHaltMs: { 4: 9000 }\n`,
      path: 'latency.signalToHaltMs.4',
      line: 8,
      message:
        /^level 4 target 9000 ms is looser than level 3's 5000 ms: the more autonomous the agent, the faster it must stop \(5 <= 4 <= 3\)$/,
    },
    {
      name: 'latency target not positive',
      text: `name: x\nagents:\n${AGENT}latency:\n  haltToRecoveryMs: 0\n`,
      path: 'latency.haltToRecoveryMs',
      line: 8,
      message: /^got 0: must be a whole number of ms, more than 0/,
    },
    {
      name: 'cadence not a whole number of days',
      text: `name: x\nagents:\n${AGENT}rehearsal:\n  cadenceDays: { 3: 1.5 }\n`,
      path: 'rehearsal.cadenceDays.3',
      line: 8,
      message: /^got 1\.5: must be a whole number of days, at least 1/,
    },
    {
      name: 'deadman interval too short',
      text: `name: x\nagents:\n${AGENT}triggers:\n  deadman: { intervalMs: 50 }\n`,
      path: 'triggers.deadman.intervalMs',
      line: 8,
      message: /^got 50: must be a whole number of ms from 100 to 3600000/,
    },
    {
      name: 'deadman missed zero',
      text: `name: x\nagents:\n${AGENT}triggers:\n  deadman:\n    missed: 0\n`,
      path: 'triggers.deadman.missed',
      line: 9,
      message: /^got 0: must be a whole number from 1 to 1000; this many missed heartbeats/,
    },
    {
      name: 'error rate above 1',
      text: `name: x\nagents:\n${AGENT}triggers:\n  asynchronous:\n    tool_error_rate: { threshold: 30 }\n`,
      path: 'triggers.asynchronous.tool_error_rate.threshold',
      line: 9,
      message: /^got 30: must be a share of failed tool calls, more than 0 and at most 1/,
    },
    {
      name: 'trigger mode',
      text: `name: x\nagents:\n${AGENT}triggers:\n  asynchronous:\n    anomaly: { mode: shadw }\n`,
      path: 'triggers.asynchronous.anomaly.mode',
      line: 9,
      message: /^got "shadw" \(did you mean "shadow"\?\): must be enforce or shadow/,
    },
    {
      name: 'unknown audit event',
      text: `name: x\nagents:\n${AGENT}sideEffects:\n  auditEvents: [kill_switch.fired, session.halted, in_flight_tool_calls.status, session.haltd]\n`,
      path: 'sideEffects.auditEvents[3]',
      line: 8,
      message: /^unknown audit event "session\.haltd" \(did you mean "session\.halted"\?\)/,
    },
    {
      name: 'required audit events missing',
      text: `name: x\nagents:\n${AGENT}sideEffects:\n  auditEvents: [session.halted]\n`,
      path: 'sideEffects.auditEvents',
      line: 8,
      message: /^must include kill_switch\.fired, in_flight_tool_calls\.status: seed 002 names/,
    },
    {
      name: 'format version',
      text: `version: 2\nname: x\nagents:\n${AGENT}`,
      path: 'version',
      line: 1,
      message: /^got 2: must be 1; the only spec format so far/,
    },
    {
      name: 'control plane URL',
      text: `name: x\ncontrolPlane: { url: "ftp://x" }\nagents:\n${AGENT}`,
      path: 'controlPlane.url',
      line: 2,
      message: /^got "ftp:\/\/x": must be an http\(s\) URL/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = only(c.text);
      assert.equal(p.path, c.path);
      assert.equal(p.line, c.line);
      assert.match(p.message, c.message);
    });
  }

  test('an unknown key names the near miss and what is allowed, at any depth', () => {
    const p = problems(
      `name: x\nagents:\n${AGENT}    descripton: typo\nrehersal: {}\ntriggers:\n  asynchronous:\n    cost_cap: { windowSeconds: 60 }\n`,
    );
    assert.deepEqual(
      p.map((x) => [x.path, x.line]),
      [
        ['agents[0].descripton', 7],
        ['rehersal', 8],
        ['triggers.asynchronous.cost_cap.windowSeconds', 11],
      ],
    );
    assert.match(
      p[0]!.message,
      /^unknown key "descripton" \(did you mean "description"\?\); allowed here: tenant, agent, level, description, tools, memory, features, command\. A misspelt key would silently leave its default in force$/,
    );
    assert.match(p[1]!.message, /^unknown key "rehersal" \(did you mean "rehearsal"\?\)/);
    assert.match(
      p[2]!.message,
      /^unknown key "windowSeconds"; allowed here: .*threshold/,
      'only tool_error_rate has a window',
    );
    assert.doesNotMatch(p[2]!.message, /did you mean/);
  });

  test('several errors in one file are all reported, in file order', () => {
    const p = problems(`name: x
agents:
  - tenant: a/b
    agent: bot
    level: 9
    description: d
    tools:
      - { name: t, class: write }
      - { name: t, class: nope }
scope: { levels: [agent] }
latency: { signalToHaltMs: { 5: 9000 } }
triggers: { deadman: { intervalMs: 10, missed: 0 } }
colour: blue
`);
    assert.deepEqual(
      p.map((x) => `${x.line}: ${x.path}`),
      [
        '3: agents[0].tenant',
        '5: agents[0].level',
        '9: agents[0].tools[1].class',
        '9: agents[0].tools[1].name',
        '10: scope.levels',
        '11: latency.signalToHaltMs.5',
        '12: triggers.deadman.intervalMs',
        '12: triggers.deadman.missed',
        '13: colour',
      ],
    );
    for (const x of p) assert.ok(x.message.length > 30, `an explanation, not a bare code: ${x.message}`);
    const err = (() => {
      try {
        parseSpec('name: x\nagents: 3\nscope: 4\n', 'f.yaml');
      } catch (e) {
        return e as SpecError;
      }
    })()!;
    assert.match(err.message, /^f\.yaml is not a valid kill-switch spec: line 2: agents: .* \(and 1 more\)$/);
  });

  test('a YAML syntax error is reported with its line', () => {
    const p = problems('name: x\nagents: [\n  - tenant: a\nscope: {}\n');
    assert.equal(p[0]!.path, '(yaml)');
    assert.equal(p[0]!.line, 3);
    assert.match(
      p[0]!.message,
      /^not valid YAML: Block collections are not allowed within flow collections$/,
    );
    assert.ok(
      p.every((x) => x.path === '(yaml)' && x.line !== null),
      'every syntax error has its line',
    );
    const tab = only('name: x\nagents:\n  - tenant: a\n\tagent: b\n');
    assert.equal(tab.line, 4);
    assert.equal(tab.message, 'not valid YAML: Tabs are not allowed as indentation');
    const dup = only(`name: x\nname: y\nagents:\n${AGENT}`);
    assert.equal(dup.line, 2);
    assert.match(dup.message, /not valid YAML: Map keys must be unique/);
  });

  test('an empty file or a list is not a spec', () => {
    assert.match(only('').message, /an empty file|null/);
    assert.match(only('- 1\n').message, /^got a list: a spec is a mapping with name, agents/);
  });

  test('loadSpec names a file it cannot read', () => {
    assert.throws(
      () => loadSpec('/nonexistent/spec.yaml'),
      (e: unknown) =>
        e instanceof KillpathError &&
        !(e instanceof SpecError) &&
        /cannot read spec \/nonexistent\/spec\.yaml: ENOENT/.test(e.message),
    );
  });
});

describe('policyFromSpec', () => {
  test('the template gives a policy that compiles and carries its thresholds and deadman', () => {
    const { spec } = parseSpec(SPEC_TEMPLATE);
    const text = policyFromSpec(spec);
    const r = parsePolicy(text);
    assert.ok(r.ok, `the policy compiles: ${r.ok ? '' : JSON.stringify(r.problems)}`);
    const p = r.policy;
    assert.deepEqual(
      p.rules.map((x) => `${x.name}:${x.mode}`),
      [
        'cost_cap:enforce',
        'loop_length:enforce',
        'tool_error_rate:enforce',
        'auth_denial:enforce',
        'memory_schema:enforce',
        'anomaly:shadow',
      ],
    );
    for (const x of p.rules) assert.deepEqual(x.action, { level: 'halt', scope: 'run' });
    assert.deepEqual(p.limitsFor('acme', 'support-bot'), { maxSteps: 200, maxCostUsd: 5 });
    assert.deepEqual(
      { ...p.deadmanFor('acme', 'support-bot') },
      { enabled: true, intervalMs: 5000, missed: 3, killAfterMs: 0 },
    );
    const when = Object.fromEntries(p.rules.map((x) => [x.name, x.when]));
    assert.match(when.tool_error_rate!, /window\(run, "60s"\)\.tool_error_rate > 0\.3/);
    assert.equal(when.auth_denial, 'run.auth_denials - run.revoked_denials > 0');
    assert.equal(when.memory_schema, 'run.schema_violations > 0');
    assert.equal(when.anomaly, 'run.anomaly_score >= 0.9');
  });

  test('disabled triggers are left out, shadow ones are not run limits, thresholds land in the rules', () => {
    const { spec } = parseSpec(`name: x
agents:
${AGENT}triggers:
  asynchronous:
    cost_cap: { enabled: false }
    loop_length: { threshold: 50, mode: shadow }
    tool_error_rate: { threshold: 1, windowSeconds: 120 }
    auth_denial: { threshold: 3 }
    memory_schema: { enabled: false }
    anomaly: { threshold: 0.75, mode: enforce }
  deadman: { intervalMs: 1000, missed: 4 }
`);
    const r = parsePolicy(policyFromSpec(spec));
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const p = r.policy;
    assert.deepEqual(
      p.rules.map((x) => `${x.name}:${x.mode}`),
      ['loop_length:shadow', 'tool_error_rate:enforce', 'auth_denial:enforce', 'anomaly:enforce'],
    );
    assert.deepEqual(
      p.limitsFor('acme', 'support-bot'),
      { maxSteps: null, maxCostUsd: null },
      'nothing for the SDK to enforce on its own',
    );
    assert.deepEqual(
      { ...p.deadmanFor('acme', 'support-bot') },
      { enabled: true, intervalMs: 1000, missed: 4, killAfterMs: 0 },
    );
    const when = Object.fromEntries(p.rules.map((x) => [x.name, x.when]));
    assert.equal(when.loop_length, 'run.steps > 50');
    assert.match(when.tool_error_rate!, /window\(run, "120s"\)\.tool_error_rate > 1\.0/);
    assert.equal(when.auth_denial, 'run.auth_denials - run.revoked_denials >= 3');
    assert.equal(when.anomaly, 'run.anomaly_score >= 0.75');
  });
});

describe('the runbook', () => {
  const demo = () => loadSpec(join(ROOT, DEMO_SPEC));

  test(`${DEMO_RUNBOOK} is the generator's output for ${DEMO_SPEC}`, () => {
    const { spec, digest } = demo();
    const expected = renderRunbook(spec, { source: DEMO_SPEC, digest });
    sameText(
      readFileSync(join(ROOT, DEMO_RUNBOOK), 'utf8'),
      expected,
      `${DEMO_RUNBOOK} drifted from the spec or the generator; regenerate it from the repository root with: npx killpath runbook --spec ${DEMO_SPEC} --out ${DEMO_RUNBOOK}`,
    );
  });

  test('has the six sections, and every sh block is valid shell using the environment, placeholders only in text blocks', () => {
    const { spec, digest } = demo();
    for (const agent of [undefined, 'acme/support-bot', 'acme/billing-bot']) {
      const md = renderRunbook(spec, { source: DEMO_SPEC, digest, agent });
      for (const h of [
        '## 1. What',
        '## 2. How to kill it',
        '## 3. What will happen',
        '## 4. How to know it worked',
        '## 5. How to recover',
        '## 6. When to escalate',
      ])
        assert.ok(md.includes(h), `${agent ?? 'fleet'}: ${h}`);
      const blocks = codeBlocks(md);
      assert.ok(
        blocks.every((b) => b.lang === 'sh' || b.lang === 'text'),
        'only sh and text blocks',
      );
      const shBlocks = blocks.filter((b) => b.lang === 'sh');
      assert.ok(shBlocks.length >= 10);
      for (const b of shBlocks) {
        const check = spawnSync('bash', ['-n', '-c', b.code], { encoding: 'utf8' });
        assert.equal(check.status, 0, `bash -n accepts:\n${b.code}\n${check.stderr}`);
        assert.doesNotMatch(b.code, /<[a-z ]+>/i, `no placeholder in a runnable block:\n${b.code}`);
        assert.match(b.code, /^(npx killpath |curl -sS )/, 'each block is one killpath or curl command');
        assert.doesNotMatch(
          b.code,
          /127\.0\.0\.1|Bearer [^$]/,
          'the URL and token come from the environment',
        );
      }
      assert.ok(
        blocks.some((b) => b.lang === 'text' && b.code.includes('export KILLPATH_TOKEN=')),
        'section 0 tells how to set the token',
      );
      if (agent !== undefined) {
        assert.ok(md.includes(`npx killpath kill --agent ${agent} --hard`));
        assert.ok(md.includes(`npx killpath resume --agent ${agent} --reason`));
        assert.ok(
          shBlocks.some(
            (b) =>
              b.code.includes('npx killpath run --tenant') &&
              b.code.endsWith('-- node examples/demo-agent/dist/agent.js'),
          ),
        );
      }
    }
  });

  test('recovery that works: the run first, crm.update as the one tool, the decision tree ends the process before the resume', () => {
    const { spec, digest } = demo();
    for (const agent of [undefined, 'acme/support-bot']) {
      const md = renderRunbook(spec, { source: DEMO_SPEC, digest, agent });
      const sh = codeBlocks(md).filter((b) => b.lang === 'sh');
      const at = (section: string, re: RegExp) => {
        const i = sh.findIndex((b) => b.section.startsWith(section) && re.test(b.code));
        assert.ok(i >= 0, `${agent ?? 'fleet'}: ${section} has ${re}`);
        return i;
      };
      // Section 0: a run not listed yet is waited for by id.
      at('0.', /^npx killpath status --wait 30 --run "\$RUN_ID"$/);
      // Section 2: the run, one tool of it (the page's crm.update) and the run's process come before the whole agent.
      const run = at('2.', /^npx killpath kill --run "\$RUN_ID" --grace 5000 /);
      const tool = at('2.', /^npx killpath kill --run "\$RUN_ID" --tool crm\.update /);
      const runHard = at('2.', /^npx killpath kill --run "\$RUN_ID" --hard /);
      const agentHalt = at('2.', /^npx killpath kill --agent \S+ --grace 5000 /);
      assert.ok(run < agentHalt && tool < agentHalt && runHard < agentHalt, 'run-scoped variants first');
      // Section 4: the queue record is promised only when something was queued; siblings are checked.
      assert.ok(md.includes('`queue.discarded` (when the run had queued tasks)'));
      assert.match(md, /\*\*The other runs were untouched\*\*/);
      // Q1, precisely: effects permitted after the halt was committed, and the command that lists them.
      at('4.', /^npx killpath journal "\$RUN_ID" --permitted-after "\$DIRECTIVE_ID"$/);
      assert.match(
        md,
        /Q1 {2}the switch did not stop the agent \(it still shows running, or effects were permitted after the halt was committed\)/,
      );
      // Section 5: every compensation, every page.
      at('5.', /^npx killpath compensations --run "\$RUN_ID" --all$/);
      // Section 5: is the cause fixed in the process? If not: end it, resume, start the replacement.
      assert.match(md, /Is the cause fixed in the running process\?/);
      assert.ok(
        !md.includes('carries on once nothing covers it'),
        'no resume of a process that holds the cause',
      );
      const end = at('5.', /^npx killpath kill --run "\$RUN_ID" --hard /);
      const resume = at('5.', /^npx killpath resume --run "\$RUN_ID" /);
      const replacement = at('5.', /^npx killpath run --tenant /);
      const works = at('5.', /^npx killpath journal "\$RUN_ID-replacement"$/);
      assert.ok(
        end < resume && resume < replacement && replacement < works,
        'end, resume, replace, see it work',
      );
      // The replacement runs on the token section 0 told the reader to hold.
      assert.match(
        md,
        /Your operator token is enough: the control plane mints the agent a short-lived agent token/,
      );
      assert.ok(!/must be an admin token or an agent token/.test(md));
    }
  });

  test('offers the freeze rung (freeze, inspect, thaw or kill) unless the spec turns it off', () => {
    const { spec, digest } = demo();
    const md = renderRunbook(spec, { source: DEMO_SPEC, digest, agent: 'acme/support-bot' });
    const row = md.split('\n').find((l) => l.startsWith('| stop it at once and keep its memory'));
    assert.ok(row, 'a ladder row for freeze');
    for (const cmd of [
      'npx killpath kill --run "$RUN_ID" --level freeze',
      'npx killpath inspect --run "$RUN_ID"',
      'npx killpath resume <freeze id>',
      'npx killpath step <freeze id> up',
    ])
      assert.ok(row.includes(cmd), `the freeze row has ${cmd}`);
    assert.ok(
      codeBlocks(md).every((b) => !b.code.includes('--level freeze')),
      'the freeze is to read, not a block the runbook walk runs',
    );
    const off = parseSpec(`name: nofreeze\nagents:\n${AGENT}mechanism: { freeze: false }\n`);
    assert.equal(off.spec.mechanism.freeze, false);
    const without = renderRunbook(off.spec, {
      source: 'n.yaml',
      digest: off.digest,
      agent: 'acme/support-bot',
    });
    assert.ok(!without.includes('--level freeze'), 'no freeze row when the spec turns it off');
    assert.ok(without.includes('--level isolate'), 'the rest of the ladder stays');
  });

  test('follows the spec: operator paths, targets, side effects, escalation', () => {
    const { spec, digest } = parseSpec(`name: lean
controlPlane: { url: "https://kp.example" }
agents:
  - tenant: t1
    agent: a1
    level: 5
    description: Pays invoices.
    memory: true
    tools: [{ name: pay, class: irreversible, compensation: refund }]
triggers: { synchronous: [cli] }
latency: { signalToHaltMs: { 5: 750 } }
sideEffects: { memory: commit, queue: drain }
escalation: [{ when: money moved, contact: finance on-call (phone 555) }]
`);
    const md = renderRunbook(spec, { source: 'lean.yaml', digest, agent: 't1/a1' });
    assert.ok(!md.includes('**Console.**') && !md.includes('**API.**'), 'only the paths the spec names');
    assert.ok(md.includes('| must stop within | 750 ms of the switch'));
    assert.ok(md.includes('staged writes are committed at a halt'));
    assert.ok(md.includes('drained within the 5 s grace'));
    assert.ok(md.includes('Q1  money moved?\n      yes -> finance on-call (phone 555)'));
    assert.ok(md.includes('export KILLPATH_URL=https://kp.example'));
    const replacement = codeBlocks(md).find((b) => b.code.includes('npx killpath run'))!;
    assert.equal(
      replacement.lang,
      'text',
      'without a command in the spec, the replacement step is not runnable',
    );
    assert.throws(
      () => renderRunbook(spec, { source: 'lean.yaml', digest, agent: 't1/nope' }),
      /does not cover t1\/nope/,
    );
  });
});

describe('the CLI', () => {
  const temp = (t: TestContext) => {
    const dir = mkdtempSync(join(tmpdir(), 'killpath-spec-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  test('spec init writes the template, refuses to overwrite without --force', async (t) => {
    const dir = temp(t);
    const file = join(dir, 'k.yaml');
    const first = await capture(t, () => specCommand(['init', file]));
    assert.equal(first.code, 0);
    assert.match(first.out, /^wrote .*k\.yaml: a kill-switch spec for the demo fleet/);
    assert.equal(readFileSync(file, 'utf8'), SPEC_TEMPLATE);
    writeFileSync(file, 'mine\n');
    await assert.rejects(
      specCommand(['init', file]),
      (e: unknown) =>
        e instanceof KillpathError &&
        e.code === 'invalid_request' &&
        /already exists; not overwriting it \(pass --force/.test(e.message),
    );
    assert.equal(readFileSync(file, 'utf8'), 'mine\n', 'the file is untouched');
    assert.equal((await capture(t, () => specCommand(['init', file, '--force']))).code, 0);
    assert.equal(readFileSync(file, 'utf8'), SPEC_TEMPLATE);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      assert.equal((await capture(t, () => specCommand(['init']))).code, 0);
      assert.ok(existsSync(join(dir, 'killpath.spec.yaml')), 'default file name');
    } finally {
      process.chdir(cwd);
    }
  });

  test('spec check: ok with the digest, or every error as FILE:LINE: path: message and exit 1', async (t) => {
    const dir = temp(t);
    const good = join(dir, 'good.yaml');
    writeFileSync(good, SPEC_TEMPLATE);
    const ok = await capture(t, () => specCommand(['check', good]));
    assert.equal(ok.code, 0);
    assert.equal(ok.out, `ok: demo-fleet, 5 agents, digest ${parseSpec(SPEC_TEMPLATE).digest}\n`);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      `name: x\nagents:\n${AGENT.replace('level: 4', 'level: 7')}scope: { levels: [agent] }\n`,
    );
    const no = await capture(t, () => specCommand(['check', bad]));
    assert.equal(no.code, 1);
    assert.equal(no.out, '');
    const lines = no.err.trim().split('\n');
    assert.match(lines[0]!, /bad\.yaml is not a valid kill-switch spec \(2 errors\):$/);
    assert.match(
      lines[1]!,
      new RegExp(
        `^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5: agents\\[0\\]\\.level: got 7: must be 3, 4 or 5`,
      ),
    );
    assert.match(lines[2]!, /bad\.yaml:7: scope\.levels: must include run and agent/);
    const json = await capture(t, () => specCommand(['check', bad, '--json']));
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.out) as { ok: boolean; errors: SpecProblem[] }).errors.length, 2);
    const warned = join(dir, 'warned.yaml');
    writeFileSync(warned, `name: x\nagents:\n${AGENT}`);
    const w = await capture(t, () => specCommand(['check', warned]));
    assert.equal(w.code, 0);
    assert.match(w.out, /^ok: x, 1 agent, digest [0-9a-f]{64}\nwarning: escalation: empty/);
    await assert.rejects(specCommand(['check']), /usage: killpath spec check FILE/);
    await assert.rejects(specCommand(['frobnicate']), /unknown spec subcommand "frobnicate"/);
  });

  test('spec policy prints the generated policy', async (t) => {
    const dir = temp(t);
    const file = join(dir, 'k.yaml');
    writeFileSync(file, SPEC_TEMPLATE);
    const r = await capture(t, () => specCommand(['policy', file]));
    assert.equal(r.code, 0);
    assert.equal(r.out, policyFromSpec(parseSpec(SPEC_TEMPLATE).spec));
  });

  test('runbook writes the document for one agent or the fleet, and refuses an agent the spec does not cover', async (t) => {
    const dir = temp(t);
    const out = join(dir, 'rb.md');
    const r = await capture(t, () =>
      runbookCommand(['--spec', join(ROOT, DEMO_SPEC), '--agent', 'globex/ops-bot', '--out', out]),
    );
    assert.equal(r.code, 0);
    assert.match(r.out, /^wrote .*rb\.md \(\d+ lines\)/);
    const { spec, digest } = demo();
    assert.equal(
      readFileSync(out, 'utf8'),
      renderRunbook(spec, { source: join(ROOT, DEMO_SPEC), digest, agent: 'globex/ops-bot' }),
    );
    const stdout = await capture(t, () => runbookCommand(['--spec', join(ROOT, DEMO_SPEC)]));
    assert.match(stdout.out, /^# Runbook: demo-fleet — how to stop its agents/);
    await assert.rejects(
      runbookCommand(['--spec', join(ROOT, DEMO_SPEC), '--agent', 'acme/nobody']),
      /--agent acme\/nobody: .* does not cover it \(its agents: acme\/support-bot, acme\/billing-bot/,
    );
    await assert.rejects(runbookCommand([]), /usage: killpath runbook --spec FILE/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'name: x\n');
    const invalid = await capture(t, () => runbookCommand(['--spec', bad]));
    assert.equal(invalid.code, 1);
    assert.match(invalid.err, /bad\.yaml:1: agents: missing/);
  });

  test('through main: registered commands, exit 0 / 1 / 2 and one clear line for a refusal', async (t) => {
    const dir = temp(t);
    const file = join(dir, 'k.yaml');
    assert.equal((await capture(t, () => main(['spec', 'init', file]))).code, 0);
    const refused = await capture(t, () => main(['spec', 'init', file]));
    assert.equal(refused.code, 2, 'a usage refusal exits 2');
    assert.equal(
      refused.err,
      `killpath spec: ${file} already exists; not overwriting it (pass --force to replace it with the template)\n`,
    );
    assert.equal((await capture(t, () => main(['spec', 'check', file]))).code, 0);
    writeFileSync(file, 'name: x\n');
    assert.equal((await capture(t, () => main(['spec', 'check', file]))).code, 1, 'an invalid spec exits 1');
    const rb = await capture(t, () =>
      main(['runbook', '--spec', join(ROOT, DEMO_SPEC), '--agent', 'acme/billing-bot']),
    );
    assert.equal(rb.code, 0);
    assert.match(rb.out, /^# Runbook: acme\/billing-bot — how to stop it/);
    const help = await capture(t, () => main(['--help']));
    assert.match(help.out, /^ {2}spec {13}the kill-switch specification/m);
    assert.match(help.out, /^ {2}runbook {10}render the on-call runbook/m);
  });

  function demo() {
    return loadSpec(join(ROOT, DEMO_SPEC));
  }
});

describe('approval rules', () => {
  const WITH = `${SPEC_TEMPLATE}
approvals:
  - name: wide_resume
    action: resume
    scopes: [global, tenant]
    breakGlass: true
    approvals: 1
    approvers: admin
    within: 15m
    contact: the platform on-call lead
  - name: policy_change
    action: policy.apply
    approvals: 2
    approvers: admin
    within: 1h
    contact: two platform admins
`;

  test('a spec without rules keeps its digest and its policy has none; with rules, the policy carries them', () => {
    const plain = parseSpec(SPEC_TEMPLATE);
    assert.equal(plain.spec.approvals, undefined);
    const policy = parsePolicy(policyFromSpec(plain.spec));
    assert.ok(policy.ok && policy.policy.approvals.length === 0);
    const withRules = parseSpec(WITH);
    assert.notEqual(withRules.digest, plain.digest);
    const compiled = parsePolicy(policyFromSpec(withRules.spec));
    assert.ok(compiled.ok, JSON.stringify(compiled));
    assert.deepEqual(
      compiled.policy.approvals.map((r) => [
        r.name,
        r.action,
        r.scopes,
        r.breakGlass,
        r.approvals,
        r.withinMs,
        r.contact,
      ]),
      [
        ['wide_resume', 'resume', ['global', 'tenant'], true, 1, 900_000, 'the platform on-call lead'],
        ['policy_change', 'policy.apply', [], false, 2, 3_600_000, 'two platform admins'],
      ],
    );
  });

  test('the runbook says which rules are in force and whom to call for the second approval', () => {
    const none = parseSpec(SPEC_TEMPLATE);
    assert.match(
      renderRunbook(none.spec, { source: 's.yaml', digest: none.digest }),
      /sets no approval rules/,
    );
    const { spec, digest } = parseSpec(WITH);
    const md = renderRunbook(spec, { source: 's.yaml', digest, agent: 'acme/support-bot' });
    assert.match(
      md,
      /- Resuming a directive at scope `global` or `tenant`, or one issued with break-glass needs 1 approval by an admin other than you within 15 min \(rule `wide_resume`\)\. Call the platform on-call lead\./,
    );
    assert.match(
      md,
      /- Applying or rolling back the policy needs 2 approvals by an admin other than you within 1 h \(rule `policy_change`\)\. Call two platform admins\./,
    );
    const approve = codeBlocks(md).filter((b) => b.code.includes('killpath approve'));
    assert.ok(
      approve.length > 0 && approve.every((b) => b.lang === 'text'),
      'the approve command has a placeholder: a text block',
    );
  });

  test('a bad rule is explained with its path and line', () => {
    const p = problems(`${SPEC_TEMPLATE}
approvals:
  - name: wide_resume
    action: unpause
    within: 15m
    contact: someone
`);
    assert.ok(
      p.some((x) => x.path === 'approvals[0].action' && x.line !== null),
      JSON.stringify(p),
    );
  });
});
