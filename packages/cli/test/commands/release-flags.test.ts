/** `--release PART=V` as a scope, alone or inside a tenant or an agent, and the resume's release line. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KillpathError } from '@killpath/protocol';
import { checkedLine, releaseScope } from '../../src/commands/directives.ts';

describe('releaseScope', () => {
  const CASES: [Record<string, string | boolean>, { scopeText: string; tenant?: string } | null][] = [
    [{}, null],
    [{ tenant: 'acme' }, null],
    [{ release: 'code=4f2a1c' }, { scopeText: 'release:code=4f2a1c' }],
    [{ release: 'model=acme/planner@7' }, { scopeText: 'release:model=acme/planner@7' }],
    [
      { release: 'prompt=v42', tenant: 'acme' },
      { scopeText: 'release:prompt=v42', tenant: 'acme' },
    ],
    [
      { release: 'prompt=v42', agent: 'acme/planner' },
      { scopeText: 'release:prompt=v42;agent=planner', tenant: 'acme' },
    ],
    [
      { release: 'prompt=v42', agent: 'planner', tenant: 'acme' },
      { scopeText: 'release:prompt=v42;agent=planner', tenant: 'acme' },
    ],
    [
      { release: 'prompt=v42', agent: 'acme/planner', tenant: 'acme' },
      { scopeText: 'release:prompt=v42;agent=planner', tenant: 'acme' },
    ],
  ];
  for (const [flags, want] of CASES) {
    test(JSON.stringify(flags), () => assert.deepEqual(releaseScope(flags), want));
  }

  const BAD: [Record<string, string | boolean>, RegExp][] = [
    [{ release: 'v42' }, /one PART=VALUE/],
    [{ release: 'code=a,prompt=b' }, /one PART=VALUE/],
    [{ release: 'sha=1' }, /invalid scope/],
    [{ release: 'code=a b' }, /invalid scope/],
    [{ release: 'code=' }, /invalid scope/],
    [{ release: 'code=a', run: 'r1' }, /goes alone/],
    [{ release: 'code=a', feature: 'f' }, /goes alone/],
    [{ release: 'code=a', global: true }, /goes alone/],
    [{ release: 'code=a', agent: 'planner' }, /TENANT\/AGENT/],
    [{ release: 'code=a', agent: 'acme/planner', tenant: 'globex' }, /not in --tenant globex/],
  ];
  for (const [flags, msg] of BAD) {
    test(`rejects ${JSON.stringify(flags)}`, () => {
      assert.throws(
        () => releaseScope(flags),
        (err: unknown) =>
          err instanceof KillpathError && err.code === 'invalid_request' && msg.test(err.message),
      );
    });
  }
});

test('the resume prints which releases it checked and whether the override let it through', () => {
  const A = { code: 'a', prompt: 'v1' };
  assert.equal(
    checkedLine({ checked: [], running: [], sameRelease: null }),
    'release check: the directive recorded no release',
  );
  assert.equal(
    checkedLine({ checked: [A, { code: 'b' }], running: [], sameRelease: null }),
    'checked releases code=a,prompt=v1; code=b: no worker it released still runs one',
  );
  assert.equal(
    checkedLine({
      checked: [A],
      running: [{ workerId: 'w1', tenant: 't', agent: 'x', release: A }],
      sameRelease: 'config fix',
    }),
    'checked release code=a,prompt=v1: 1 worker(s) still run one, resumed anyway (--same-release: config fix)',
  );
});
