import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LEVELS, formatScope, parseScope, type Directive, type Principal } from '@killpath/protocol';
import {
  canAct,
  canResume,
  directiveBody,
  emptyForm,
  errorText,
  flagLabels,
  fleetTree,
  levelsOffered,
  orderedLevel,
  releaseText,
  resumeBody,
  ofTotal,
  runsMatching,
  stateLabel,
  statesText,
  targetScope,
  type FleetWorkerView,
  type Target,
} from '../src/model.ts';

const who = (role: Principal['role'], tenant: string): Principal => ({
  tokenId: 't',
  name: `${role}-${tenant}`,
  role,
  tenant,
  agent: null,
});
const viewer = who('viewer', 'acme');
const operator = who('operator', 'acme');
const admin = who('admin', '*');

const targets: Target[] = [
  { kind: 'global' },
  { kind: 'tenant', tenant: 'acme' },
  { kind: 'agent', tenant: 'acme', agent: 'bot' },
  { kind: 'run', tenant: 'acme', run: 'r-1' },
  { kind: 'feature', tenant: 'acme', feature: 'new-planner' },
  { kind: 'release', tenant: 'acme', part: 'model', value: 'acme/planner@7' },
];

test('scope strings follow the protocol grammar', () => {
  assert.deepEqual(targets.map(targetScope), [
    'global',
    'tenant:acme',
    'agent:acme/bot',
    'run:r-1',
    'feature:new-planner',
    'release:model=acme/planner@7',
  ]);
  for (const t of targets) assert.equal(formatScope(parseScope(targetScope(t))), targetScope(t));
});

test('a release target is confined to the tenant it is shown in', () => {
  const form = { ...emptyForm('halt'), justification: 'bad rollout' };
  const r = directiveBody({ kind: 'release', tenant: 'acme', part: 'code', value: '4f2a1c' }, form);
  assert.ok(r.ok);
  assert.equal(r.body.scope, 'release:code=4f2a1c');
  assert.equal(r.body.tenant, 'acme');
});

test('each worker shows its release; each tenant lists the release parts its workers run', () => {
  const ws = [
    worker({ workerId: 'w1', release: { code: 'aaa', prompt: 'v42' } }),
    worker({ workerId: 'w2', agent: 'b', release: { code: 'bbb', prompt: 'v42' } }),
    worker({ workerId: 'w3', release: {} }),
  ];
  assert.equal(releaseText(ws[0]!), 'code=aaa,prompt=v42');
  assert.equal(releaseText(ws[2]!), '—');
  assert.deepEqual(fleetTree(ws)[0]!.releases, [
    { part: 'code', value: 'aaa' },
    { part: 'code', value: 'bbb' },
    { part: 'prompt', value: 'v42' },
  ]);
  // The switchboard's order covers a run by its worker's release.
  const d = directive({
    id: 'r1',
    level: 'kill',
    scope: { kind: 'release', part: 'code', value: 'aaa', agent: null },
    scopeText: 'release:code=aaa',
  });
  assert.equal(orderedLevel([d], ws[0]!, run('r-1', null))?.id, 'r1');
  assert.equal(orderedLevel([d], ws[1]!, run('r-2', null)), null);
});

test('a viewer is offered nothing anywhere', () => {
  for (const t of targets) assert.deepEqual(levelsOffered(viewer, t), []);
});

test('an operator is offered every level in its own tenant, nothing in another, never global', () => {
  for (const t of targets.slice(1)) assert.deepEqual(levelsOffered(operator, t), [...LEVELS]);
  assert.deepEqual(levelsOffered(operator, { kind: 'global' }), []);
  assert.deepEqual(levelsOffered(operator, { kind: 'agent', tenant: 'globex', agent: 'bot' }), []);
  assert.deepEqual(levelsOffered(operator, { kind: 'run', tenant: 'globex', run: 'r-9' }), []);
  assert.equal(canAct(who('agent', 'acme'), 'acme'), false);
});

test('an admin is offered every level everywhere, global included', () => {
  for (const t of targets) assert.deepEqual(levelsOffered(admin, t), [...LEVELS]);
});

test('a justification is required; the body carries the scope, the tenant and the level fields', () => {
  const run: Target = { kind: 'run', tenant: 'acme', run: 'r-1' };
  const missing = directiveBody(run, { ...emptyForm('kill'), justification: '   ' });
  assert.equal(missing.ok, false);
  assert.ok(!missing.ok && missing.errors.justification);

  const ok = directiveBody(run, {
    ...emptyForm('halt'),
    justification: ' incident 42 ',
    graceMs: '2000',
    drain: 'drain',
    capabilities: 'crm.update, search',
  });
  assert.ok(ok.ok);
  assert.deepEqual(ok.body, {
    level: 'halt',
    scope: 'run:r-1',
    reason: 'halt run:r-1 from the web console',
    justification: 'incident 42',
    capabilities: ['crm.update', 'search'],
    graceMs: 2000,
    drain: 'drain',
    tenant: 'acme',
  });
});

test('throttle needs a rate; bad grace and capability names are refused before sending', () => {
  const agent: Target = { kind: 'agent', tenant: 'acme', agent: 'bot' };
  const base = { ...emptyForm('throttle'), justification: 'too many calls' };
  const noRate = directiveBody(agent, base);
  assert.ok(!noRate.ok && noRate.errors.perSecond);
  const rated = directiveBody(agent, { ...base, perSecond: '2.5', per: 'agent' });
  assert.ok(rated.ok);
  assert.deepEqual(rated.body.rate, { perSecond: 2.5, per: 'agent' });
  assert.equal(rated.body.graceMs, undefined);
  assert.equal(rated.body.tenant, undefined, 'agent scopes name their tenant already');
  const badGrace = directiveBody(agent, { ...emptyForm('kill'), justification: 'x', graceMs: '-1' });
  assert.ok(!badGrace.ok && badGrace.errors.graceMs);
  const badCap = directiveBody(agent, {
    ...emptyForm('degrade'),
    justification: 'x',
    capabilities: 'crm/update',
  });
  assert.ok(!badCap.ok && badCap.errors.capabilities);
});

test('global needs a break-glass attestation, and so does resuming a global directive', () => {
  const g = directiveBody({ kind: 'global' }, { ...emptyForm('halt'), justification: 'provider outage' });
  assert.ok(!g.ok && g.errors.breakGlass);
  const ok = directiveBody(
    { kind: 'global' },
    { ...emptyForm('halt'), justification: 'provider outage', breakGlass: 'CTO approved, INC-7' },
  );
  assert.ok(ok.ok && ok.body.breakGlass === 'CTO approved, INC-7');

  const d = directive({ tenant: null, scopeText: 'global', scope: { kind: 'global' } });
  assert.ok(!resumeBody(d, 'fixed', '').ok);
  const r = resumeBody(d, 'fixed', 'CTO approved');
  assert.ok(r.ok && r.body.breakGlass === 'CTO approved');
  assert.deepEqual(resumeBody(directive({}), ' fixed ', '').ok && resumeBody(directive({}), ' fixed ', ''), {
    ok: true,
    body: { justification: 'fixed' },
  });
  assert.ok(!resumeBody(directive({}), '', '').ok);
});

test('resume is offered on active directives of tenants the principal acts in', () => {
  assert.equal(canResume(operator, directive({})), true);
  assert.equal(canResume(viewer, directive({})), false);
  assert.equal(canResume(operator, directive({ tenant: 'globex' })), false);
  assert.equal(canResume(operator, directive({ tenant: null })), false);
  assert.equal(canResume(admin, directive({ tenant: null })), true);
  assert.equal(canResume(admin, directive({ clearedAt: '2026-01-01T00:00:00Z' })), false);
});

test('the fleet groups into tenants and agents, with child runs under their parent', () => {
  const tree = fleetTree(
    [
      worker({ workerId: 'w2', agent: 'b', runs: [run('x', null)] }),
      worker({
        workerId: 'w1',
        agent: 'a',
        features: ['f1'],
        runs: [run('r-1.child', 'r-1', ['r-1']), run('r-1', null), run('orphan', 'elsewhere', ['elsewhere'])],
      }),
      worker({ workerId: 'w3', tenant: 'globex', agent: 'a', runs: [] }),
    ],
    ['zeta'],
  );
  assert.deepEqual(
    tree.map((t) => t.tenant),
    ['acme', 'globex', 'zeta'],
  );
  assert.deepEqual(
    tree[0]!.agents.map((a) => a.agent),
    ['a', 'b'],
  );
  assert.deepEqual(tree[0]!.features, ['f1']);
  assert.deepEqual(
    tree[0]!.agents[0]!.runs.map((r) => [r.run.runId, r.depth, r.parentElsewhere]),
    [
      ['orphan', 0, true],
      ['r-1', 0, false],
      ['r-1.child', 1, false],
    ],
  );
  assert.deepEqual(tree[2]!.agents, []);
});

test('the fleet tree lists every group the server counted, with its counts, whatever page is shown', () => {
  const tree = fleetTree(
    [worker({ workerId: 'w1', agent: 'a', runs: [run('r-1', null), run('r-1.child', 'r-1', ['r-1'])] })],
    [],
    [
      { tenant: 'acme', agent: 'a', workers: 450, runs: 1350, states: { running: 449, halt: 1 } },
      { tenant: 'acme', agent: 'b', workers: 350, runs: 1050, states: { stale: 350 } },
      { tenant: 'globex', agent: 'c', workers: 200, runs: 600, states: { running: 200 } },
    ],
  );
  assert.deepEqual(
    tree.map((t) => [
      t.tenant,
      t.workers,
      t.runs,
      t.agents.map((a) => [a.agent, a.workers.length, a.count?.workers]),
    ]),
    [
      [
        'acme',
        800,
        2400,
        [
          ['a', 1, 450],
          ['b', 0, 350],
        ],
      ],
      ['globex', 200, 600, [['c', 0, 200]]],
    ],
  );
  assert.equal(statesText({ running: 449, halt: 1 }), '1 halted, 449 running');
  assert.equal(statesText({}), '');
  assert.deepEqual(
    runsMatching(tree[0]!.agents[0]!.runs, 'r-1').map((r) => r.run.runId),
    ['r-1', 'r-1.child'],
    'a run found with the runs under it',
  );
  assert.deepEqual(
    runsMatching(tree[0]!.agents[0]!.runs, 'r-1.child').map((r) => r.run.runId),
    ['r-1.child'],
  );
});

test('a run cycle in a bad report does not hide runs', () => {
  const tree = fleetTree([worker({ runs: [run('p', 'q'), run('q', 'p')] })]);
  assert.deepEqual(tree[0]!.agents[0]!.runs.map((r) => r.run.runId).sort(), ['p', 'q']);
});

test('the ordered level is the strongest active directive covering the run, descendants included', () => {
  const w = worker({ features: ['f1'] });
  const child = run('r-1.child', 'r-1', ['r-1']);
  const ds = [
    directive({
      id: 'd1',
      level: 'throttle',
      scope: { kind: 'agent', tenant: 'acme', agent: 'a' },
      scopeText: 'agent:acme/a',
    }),
    directive({ id: 'd2', level: 'halt', scope: { kind: 'run', run: 'r-1' }, scopeText: 'run:r-1' }),
    directive({ id: 'd3', level: 'kill', scope: { kind: 'run', run: 'other' }, scopeText: 'run:other' }),
  ];
  assert.equal(orderedLevel(ds, w, child)?.id, 'd2');
  assert.equal(orderedLevel(ds, w, run('r-2', null))?.id, 'd1');
  assert.equal(orderedLevel([], w, child), null);
});

test('states and flags read as words', () => {
  assert.equal(stateLabel('halt'), 'halted');
  assert.match(stateLabel('kill'), /^halted/);
  assert.equal(stateLabel('running'), 'running');
  assert.deepEqual(flagLabels(undefined), []);
  assert.deepEqual(
    flagLabels({ throttled: { perSecond: 2, per: 'agent' }, degraded: ['a', 'b'], isolated: true }),
    ['throttled 2/s per agent', 'degraded (a, b)', 'isolated'],
  );
  assert.deepEqual(
    flagLabels({ throttled: { perSecond: 5, per: 'run' }, degraded: ['*'], isolated: false }),
    ['throttled 5/s per run', 'degraded (read-only)'],
  );
  assert.deepEqual(flagLabels({ throttled: null, degraded: ['crm.update'], isolated: false }), [
    'degraded (crm.update)',
  ]);
});

test('an API error reads as one sentence with its code', () => {
  assert.equal(
    errorText({ status: 422, code: 'unsupported_level', message: 'level "throttle" is not enforced' }),
    'level "throttle" is not enforced (unsupported_level, HTTP 422)',
  );
  assert.equal(errorText({ message: 'x' }), 'x');
});

function worker(over: Partial<FleetWorkerView>): FleetWorkerView {
  return {
    workerId: 'w',
    tenant: 'acme',
    agent: 'a',
    features: [],
    connected: true,
    pid: 1,
    observedRev: 1,
    ackedRev: 1,
    lastHeartbeatAgoMs: 10,
    state: 'running',
    flags: { throttled: null, degraded: [], isolated: false },
    launcher: null,
    release: {},
    runs: [],
    ...over,
  };
}

function run(runId: string, parentRunId: string | null, lineage: string[] = []) {
  return { runId, parentRunId, lineage, state: 'running' as const, effects: 0, denied: 0, inFlight: 0 };
}

function directive(over: Partial<Directive>): Directive {
  return {
    id: 'd',
    rev: 1,
    level: 'halt',
    scope: { kind: 'tenant', tenant: 'acme' },
    scopeText: 'tenant:acme',
    tenant: 'acme',
    capabilities: null,
    rate: null,
    graceMs: 0,
    drain: 'discard',
    memory: 'revert',
    reason: 'r',
    justification: 'j',
    actor: 'ops',
    issuedAt: '2026-01-01T00:00:00Z',
    clearedAt: null,
    clearedRev: null,
    ...over,
  } as Directive;
}

test('ofTotal: "all N", "N of M", "N of at least M", and just N without a total (issue 18)', () => {
  assert.equal(ofTotal(3, 3), 'all 3');
  assert.equal(ofTotal(200, 1234), '200 of 1234');
  assert.equal(ofTotal(100, 100_000, false), '100 of at least 100000');
  assert.equal(ofTotal(100, 100, false), '100 of at least 100');
  assert.equal(ofTotal(7, undefined), '7');
});
