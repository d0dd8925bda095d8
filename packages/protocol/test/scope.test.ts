import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KillpathError,
  coversEffect,
  coversRun,
  formatScope,
  isCapability,
  isIdentifier,
  parseScope,
  scopeTenant,
  type Coverage,
  type RunIdentity,
  type Scope,
} from '../src/index.ts';

const id128 = 'a'.repeat(128);
const id129 = 'a'.repeat(129);

/** Every kind of scope, as text and as the parsed union. */
const VALID: [string, Scope][] = [
  ['global', { kind: 'global' }],
  ['tenant:acme', { kind: 'tenant', tenant: 'acme' }],
  ['agent:acme/bot', { kind: 'agent', tenant: 'acme', agent: 'bot' }],
  ['run:r-1', { kind: 'run', run: 'r-1' }],
  ['feature:new-planner', { kind: 'feature', feature: 'new-planner' }],
  // Every allowed character class, and the 128-character limit.
  ['tenant:A.b_c:d@e-9', { kind: 'tenant', tenant: 'A.b_c:d@e-9' }],
  [`run:${id128}`, { kind: 'run', run: id128 }],
  [`agent:${id128}/${id128}`, { kind: 'agent', tenant: id128, agent: id128 }],
  // A colon is an identifier character, so it may appear after the kind's colon.
  ['run:r:1', { kind: 'run', run: 'r:1' }],
  // Release scopes: any part; values take `/`, `@`, `.`, `+`, `~`, `:`; optionally inside one agent.
  ['release:code=4f2a1c', { kind: 'release', part: 'code', value: '4f2a1c', agent: null }],
  ['release:model=acme/planner@7', { kind: 'release', part: 'model', value: 'acme/planner@7', agent: null }],
  ['release:prompt=v42', { kind: 'release', part: 'prompt', value: 'v42', agent: null }],
  [
    'release:code=1.4.0+build.7~rc',
    { kind: 'release', part: 'code', value: '1.4.0+build.7~rc', agent: null },
  ],
  ['release:model=openai:gpt-4o', { kind: 'release', part: 'model', value: 'openai:gpt-4o', agent: null }],
  ['release:prompt=v42;agent=planner', { kind: 'release', part: 'prompt', value: 'v42', agent: 'planner' }],
  [`release:code=${'x'.repeat(128)}`, { kind: 'release', part: 'code', value: 'x'.repeat(128), agent: null }],
];

const INVALID = [
  'agent:acme',
  'agent:acme/',
  'agent:/bot',
  'agent:a/b/c',
  'tenant:',
  'tenant',
  'run:',
  'run:a/b',
  'feature:',
  'feature:a/b',
  'bogus:x',
  'bogus',
  '',
  'Global',
  'global:x',
  ' global',
  'global ',
  'tenant:acme corp',
  'tenant: acme',
  'agent:acme/my bot',
  'run:r 1',
  'feature:new planner',
  'tenant:acme\n',
  `tenant:${id129}`,
  `run:${id129}`,
  `feature:${id129}`,
  `agent:${id129}/bot`,
  `agent:acme/${id129}`,
  'tenant:acmé',
  'release:',
  'release',
  'release:code',
  'release:code=',
  'release:=v1',
  'release:sha=abc',
  'release:Code=abc',
  'release:code=a b',
  'release:code=a,b',
  'release:code=a=b',
  'release:code=a;b',
  'release:code=a;agent=',
  'release:code=a;agent=x/y',
  'release:code=a;tenant=acme',
  'release:code=a;agent=bot;agent=bot',
  `release:code=${'x'.repeat(129)}`,
  'release:code=é',
  'release:prompt=v42\n',
];

describe('parseScope / formatScope', () => {
  for (const [text, scope] of VALID) {
    test(`parses ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`, () => {
      assert.deepEqual(parseScope(text), scope);
    });
    test(`round-trips ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`, () => {
      assert.equal(formatScope(parseScope(text)), text);
      assert.deepEqual(parseScope(formatScope(scope)), scope);
    });
  }

  for (const text of INVALID) {
    test(`rejects ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)}`, () => {
      assert.throws(
        () => parseScope(text),
        (err: unknown) => {
          assert.ok(err instanceof KillpathError, 'a KillpathError');
          assert.equal(err.code, 'invalid_request');
          assert.equal(err.name, 'KillpathError');
          assert.match(err.message, /invalid scope/);
          return true;
        },
      );
    });
  }
});

describe('isIdentifier', () => {
  test('accepts 1 to 128 characters of letters, digits and ._:@-', () => {
    for (const s of ['a', 'Z', '0', '.', '_', ':', '@', '-', 'wire_transfer', 'memory.write', id128]) {
      assert.equal(isIdentifier(s), true, s);
    }
  });
  test('rejects empty, too long, slash, whitespace and other characters', () => {
    for (const s of ['', id129, 'a/b', 'a b', ' a', 'a\t', 'a\n', 'é', 'a*', 'a#b', 'a,b']) {
      assert.equal(isIdentifier(s), false, JSON.stringify(s));
    }
  });
});

describe('isCapability', () => {
  test('accepts an identifier, or two joined by one slash (a tool namespaced by its MCP server)', () => {
    for (const s of [
      'llm',
      'crm.update',
      'mcp:github/create_issue',
      'mcp:fs/read-file',
      `${id128}/${id128}`,
    ]) {
      assert.equal(isCapability(s), true, s);
    }
  });
  test('rejects empty parts, two slashes, long parts and other characters', () => {
    for (const s of [
      '',
      '/',
      'a/',
      '/a',
      'a/b/c',
      'a//b',
      `${id129}/a`,
      `a/${id129}`,
      'mcp:gh/create issue',
      'a/é',
    ]) {
      assert.equal(isCapability(s), false, JSON.stringify(s));
    }
  });
});

describe('scopeTenant', () => {
  test('names the tenant of tenant and agent scopes only', () => {
    assert.equal(scopeTenant(parseScope('tenant:acme')), 'acme');
    assert.equal(scopeTenant(parseScope('agent:acme/bot')), 'acme');
    assert.equal(scopeTenant(parseScope('global')), null);
    assert.equal(scopeTenant(parseScope('run:r1')), null);
    assert.equal(scopeTenant(parseScope('feature:f')), null);
    assert.equal(scopeTenant(parseScope('release:code=a;agent=bot')), null);
  });
});

// The ownership tree used below:
//   acme/bot:   root ─┬─ child ─── grandchild
//                     └─ sibling
//   acme/other: elsewhere (features: new-planner)
//   globex/bot: a run whose id collides with acme's `root`
function run(
  tenant: string,
  agent: string,
  runId: string,
  lineage: string[] = [],
  features: string[] = [],
): RunIdentity {
  return { tenant, agent, runId, lineage, features };
}
const root = run('acme', 'bot', 'root', [], ['new-planner']);
const child = run('acme', 'bot', 'child', ['root']);
const grandchild = run('acme', 'bot', 'grandchild', ['root', 'child']);
const sibling = run('acme', 'bot', 'sibling', ['root']);
const elsewhere = run('acme', 'other', 'elsewhere', [], ['new-planner']);
const foreign = run('globex', 'bot', 'root', [], ['new-planner']);
const ALL = { root, child, grandchild, sibling, elsewhere, foreign };
type RunName = keyof typeof ALL;

function cov(scope: string, tenant: string | null = null, capabilities: string[] | null = null): Coverage {
  return { scope: parseScope(scope), tenant, capabilities };
}

/** Which runs each coverage covers; every run not listed must not be covered. */
const COVERAGE: { name: string; c: Coverage; covers: RunName[] }[] = [
  {
    name: 'global',
    c: cov('global'),
    covers: ['root', 'child', 'grandchild', 'sibling', 'elsewhere', 'foreign'],
  },
  {
    name: 'global confined to acme',
    c: cov('global', 'acme'),
    covers: ['root', 'child', 'grandchild', 'sibling', 'elsewhere'],
  },
  {
    name: 'tenant:acme',
    c: cov('tenant:acme', 'acme'),
    covers: ['root', 'child', 'grandchild', 'sibling', 'elsewhere'],
  },
  { name: 'tenant:globex', c: cov('tenant:globex', 'globex'), covers: ['foreign'] },
  {
    name: 'tenant:acme without a tenant field',
    c: cov('tenant:acme'),
    covers: ['root', 'child', 'grandchild', 'sibling', 'elsewhere'],
  },
  {
    name: 'agent:acme/bot',
    c: cov('agent:acme/bot', 'acme'),
    covers: ['root', 'child', 'grandchild', 'sibling'],
  },
  { name: 'agent:acme/other', c: cov('agent:acme/other', 'acme'), covers: ['elsewhere'] },
  { name: 'agent:globex/bot', c: cov('agent:globex/bot', 'globex'), covers: ['foreign'] },
  { name: 'agent:acme/nobody', c: cov('agent:acme/nobody', 'acme'), covers: [] },
  // A run scope covers the run and its descendants, never its ancestors or siblings.
  {
    name: 'run:root confined to acme',
    c: cov('run:root', 'acme'),
    covers: ['root', 'child', 'grandchild', 'sibling'],
  },
  { name: 'run:child confined to acme', c: cov('run:child', 'acme'), covers: ['child', 'grandchild'] },
  { name: 'run:grandchild confined to acme', c: cov('run:grandchild', 'acme'), covers: ['grandchild'] },
  { name: 'run:sibling confined to acme', c: cov('run:sibling', 'acme'), covers: ['sibling'] },
  // Without a tenant field a run id matches in every tenant (admin-only directives).
  {
    name: 'run:root for every tenant',
    c: cov('run:root'),
    covers: ['root', 'child', 'grandchild', 'sibling', 'foreign'],
  },
  { name: 'run:root confined to globex', c: cov('run:root', 'globex'), covers: ['foreign'] },
  { name: 'run:unknown', c: cov('run:unknown', 'acme'), covers: [] },
  // Features are orthogonal to the tree; the tenant field confines them.
  {
    name: 'feature:new-planner for every tenant',
    c: cov('feature:new-planner'),
    covers: ['root', 'elsewhere', 'foreign'],
  },
  {
    name: 'feature:new-planner confined to acme',
    c: cov('feature:new-planner', 'acme'),
    covers: ['root', 'elsewhere'],
  },
  {
    name: 'feature:new-planner confined to globex',
    c: cov('feature:new-planner', 'globex'),
    covers: ['foreign'],
  },
  { name: 'feature:new-planner confined to initech', c: cov('feature:new-planner', 'initech'), covers: [] },
  { name: 'feature:other', c: cov('feature:other'), covers: [] },
];

describe('coversRun', () => {
  for (const { name, c, covers } of COVERAGE) {
    test(name, () => {
      const got = (Object.keys(ALL) as RunName[]).filter((n) => coversRun(c, ALL[n]));
      assert.deepEqual(got, covers);
    });
  }

  test('a feature is not inherited through lineage', () => {
    // child descends from root (which declared new-planner) but declared no features itself.
    assert.equal(coversRun(cov('feature:new-planner', 'acme'), child), false);
  });

  test('a run scope matches the run id, not an agent or tenant named the same', () => {
    const named = run('bot', 'acme', 'x');
    assert.equal(coversRun(cov('run:bot'), named), false);
    assert.equal(coversRun(cov('run:acme'), named), false);
  });
});

describe('coversEffect', () => {
  const caps = ['http', 'llm', 'memory.write', 'wire_transfer'];

  test('a directive without capabilities covers every capability of a covered run', () => {
    for (const cap of caps) assert.equal(coversEffect(cov('agent:acme/bot', 'acme'), root, cap), true, cap);
  });

  test('capabilities narrow a directive to the named effects', () => {
    const c = cov('tenant:acme', 'acme', ['wire_transfer', 'memory.write']);
    assert.deepEqual(
      caps.filter((cap) => coversEffect(c, root, cap)),
      ['memory.write', 'wire_transfer'],
    );
  });

  test('capability narrowing applies at every scope kind', () => {
    for (const scope of ['global', 'tenant:acme', 'agent:acme/bot', 'run:root', 'feature:new-planner']) {
      const c = cov(scope, 'acme', ['wire_transfer']);
      assert.equal(coversEffect(c, root, 'wire_transfer'), true, scope);
      assert.equal(coversEffect(c, root, 'llm'), false, scope);
    }
  });

  test('an uncovered run is never covered, whatever the capability', () => {
    const c = cov('agent:acme/bot', 'acme', ['wire_transfer']);
    assert.equal(coversEffect(c, elsewhere, 'wire_transfer'), false);
    assert.equal(coversEffect(c, foreign, 'wire_transfer'), false);
    assert.equal(coversEffect(cov('run:child', 'acme'), root, 'llm'), false);
    assert.equal(coversEffect(cov('feature:new-planner', 'globex', null), root, 'llm'), false);
  });

  test('an empty capability list covers nothing', () => {
    assert.equal(coversEffect(cov('global', null, []), root, 'llm'), false);
    assert.equal(coversRun(cov('global', null, []), root), true);
  });

  test('capability names match exactly', () => {
    const c = cov('global', null, ['memory.write']);
    assert.equal(coversEffect(c, root, 'memory'), false);
    assert.equal(coversEffect(c, root, 'memory.write.bulk'), false);
    assert.equal(coversEffect(c, root, 'Memory.write'), false);
  });
});
