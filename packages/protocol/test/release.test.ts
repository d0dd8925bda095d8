import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KillpathError,
  checkRelease,
  coversEffect,
  coversRun,
  distinctReleases,
  formatRelease,
  parseRelease,
  parseScope,
  sameRelease,
  type Coverage,
  type Release,
  type RunIdentity,
} from '../src/index.ts';

// Four workers' runs: two on release A (one in another tenant), one on B (same code as A, another
// prompt), one that declared nothing, one that declared only a model.
function run(tenant: string, agent: string, runId: string, release: Release | null): RunIdentity {
  return { tenant, agent, runId, lineage: [], features: [], release };
}
const A: Release = { code: '4f2a1c', model: 'acme/planner@7', prompt: 'v42' };
const B: Release = { code: '4f2a1c', model: 'acme/planner@7', prompt: 'v43' };
const RUNS = {
  a1: run('acme', 'planner', 'a1', A),
  a2: run('acme', 'support', 'a2', A),
  b1: run('acme', 'planner', 'b1', B),
  foreignA: run('globex', 'planner', 'g1', A),
  bare: run('acme', 'planner', 'n1', null),
  modelOnly: run('acme', 'planner', 'm1', { model: 'acme/planner@8' }),
};
type Name = keyof typeof RUNS;

function cov(scope: string, tenant: string | null = null, capabilities: string[] | null = null): Coverage {
  return { scope: parseScope(scope), tenant, capabilities };
}

/** Which runs each release coverage covers; every run not listed must not be covered. */
const TABLE: { name: string; c: Coverage; covers: Name[] }[] = [
  { name: 'code everywhere', c: cov('release:code=4f2a1c'), covers: ['a1', 'a2', 'b1', 'foreignA'] },
  { name: 'code inside acme', c: cov('release:code=4f2a1c', 'acme'), covers: ['a1', 'a2', 'b1'] },
  { name: 'code inside globex', c: cov('release:code=4f2a1c', 'globex'), covers: ['foreignA'] },
  { name: 'prompt v42 everywhere', c: cov('release:prompt=v42'), covers: ['a1', 'a2', 'foreignA'] },
  { name: 'prompt v43 inside acme', c: cov('release:prompt=v43', 'acme'), covers: ['b1'] },
  {
    name: 'model with / and @',
    c: cov('release:model=acme/planner@7', 'acme'),
    covers: ['a1', 'a2', 'b1'],
  },
  { name: 'a model only one worker declared', c: cov('release:model=acme/planner@8'), covers: ['modelOnly'] },
  {
    name: 'prompt v42 inside agent acme/planner',
    c: cov('release:prompt=v42;agent=planner', 'acme'),
    covers: ['a1'],
  },
  {
    name: 'prompt v42 inside agent planner of globex',
    c: cov('release:prompt=v42;agent=planner', 'globex'),
    covers: ['foreignA'],
  },
  { name: 'an unknown code', c: cov('release:code=ffffff'), covers: [] },
  // A value of one part never matches another part with the same text.
  { name: 'the code value named as a prompt', c: cov('release:prompt=4f2a1c'), covers: [] },
];

describe('release scopes: coversRun', () => {
  for (const { name, c, covers } of TABLE) {
    test(name, () => {
      const got = (Object.keys(RUNS) as Name[]).filter((n) => coversRun(c, RUNS[n]));
      assert.deepEqual(got, covers);
    });
  }

  test('a run without a release, or with release undefined, is never covered by a release scope', () => {
    const noField: RunIdentity = { tenant: 'acme', agent: 'planner', runId: 'x', lineage: [], features: [] };
    for (const part of ['code', 'model', 'prompt'])
      assert.equal(coversRun(cov(`release:${part}=v42`), noField), false, part);
  });

  test('capabilities narrow a release scope like any other', () => {
    const c = cov('release:code=4f2a1c', 'acme', ['wire_transfer']);
    assert.equal(coversEffect(c, RUNS.a1, 'wire_transfer'), true);
    assert.equal(coversEffect(c, RUNS.a1, 'llm'), false);
    assert.equal(coversEffect(c, RUNS.bare, 'wire_transfer'), false);
  });
});

describe('release text', () => {
  test('parses any subset of parts, in any order, and formats them canonically', () => {
    assert.deepEqual(parseRelease('prompt=v42,code=4f2a1c'), { code: '4f2a1c', prompt: 'v42' });
    assert.equal(formatRelease(parseRelease('prompt=v42,code=4f2a1c')), 'code=4f2a1c,prompt=v42');
    assert.deepEqual(parseRelease('model=acme/planner@7'), { model: 'acme/planner@7' });
    assert.equal(formatRelease(A), 'code=4f2a1c,model=acme/planner@7,prompt=v42');
    assert.equal(formatRelease({}), '(none)');
    assert.equal(formatRelease(null), '(none)');
  });

  for (const bad of [
    '',
    ' ',
    'code',
    'code=',
    'sha=1',
    'code=1,code=2',
    'code=a b',
    'code=1;prompt=2',
    'code=é',
  ]) {
    test(`rejects ${JSON.stringify(bad)} with invalid_request`, () => {
      assert.throws(
        () => parseRelease(bad),
        (err: unknown) =>
          err instanceof KillpathError &&
          err.code === 'invalid_request' &&
          /invalid release/.test(err.message),
      );
    });
  }

  test('checkRelease validates objects from the wire or the SDK', () => {
    assert.equal(checkRelease(undefined), null);
    assert.equal(checkRelease({}), null);
    assert.deepEqual(checkRelease({ prompt: 'v1', code: 'c' }), { code: 'c', prompt: 'v1' });
    for (const bad of [{ sha: 'x' }, { code: '' }, { code: 'a b' }, { code: 7 }, ['code']] as unknown[]) {
      assert.throws(
        () => checkRelease(bad as Release),
        (err: unknown) => err instanceof KillpathError && err.code === 'invalid_request',
        JSON.stringify(bad),
      );
    }
  });
});

describe('release identity', () => {
  test('the triple is the identity: every part, a missing one only equal to a missing one', () => {
    assert.equal(sameRelease(A, { ...A }), true);
    assert.equal(sameRelease(A, B), false);
    assert.equal(sameRelease({ code: 'x' }, { code: 'x', prompt: 'v1' }), false);
    assert.equal(sameRelease(null, {}), true);
    assert.equal(sameRelease(null, { code: 'x' }), false);
  });

  test('distinctReleases drops duplicates and empties and sorts by text', () => {
    assert.deepEqual(distinctReleases([B, A, null, {}, { ...A }, undefined]), [A, B]);
  });
});
