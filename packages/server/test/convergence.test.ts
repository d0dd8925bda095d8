/**
 * Convergence (guarantee 7) as a rule of its own, without a backend: the store contract suite
 * checks every backend applies it; this checks the rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatScope, type Directive } from '@killpath/protocol';
import { contentKey, convergedIssue } from '../src/store/convergence.ts';
import type { DirectiveInput } from '../src/store/store.ts';
import { directiveInput } from './store-contract.ts';

function committed(input: DirectiveInput, id: string, rev: number): Directive {
  return {
    ...input,
    id,
    rev,
    scopeText: formatScope(input.scope),
    issuedAt: '2026-01-01T00:00:00.000Z',
    clearedAt: null,
    clearedRev: null,
    breakGlass: null,
  };
}

test('an identical active directive absorbs an issue whatever the words, actor or capability order', () => {
  const d = committed(directiveInput({ capabilities: ['b', 'a'] }), 'd1', 1);
  const again = directiveInput({ capabilities: ['a', 'b'], reason: 'other words', actor: 'bob' });
  assert.equal(contentKey({ ...again, scopeText: 'tenant:acme' }), contentKey(d));
  assert.deepEqual(convergedIssue(again, null, [d]), {
    directive: d,
    created: false,
    converged: 'identical',
    replaced: [],
  });
  for (const differs of [
    directiveInput({ capabilities: ['a'] }),
    directiveInput({ capabilities: null }),
    directiveInput({ level: 'kill' }),
    directiveInput({ scope: 'tenant:globex' }),
    directiveInput({ graceMs: 1 }),
    directiveInput({ drain: 'drain' }),
    directiveInput({ memory: 'commit' }),
    directiveInput({ escalation: [{ level: 'kill', afterMs: 1 }] }),
  ])
    assert.equal(convergedIssue(differs, null, [d]), null, JSON.stringify(differs));
  // A cleared directive is not among the active ones: nothing absorbs the issue.
  assert.equal(convergedIssue(again, null, []), null);
});

test('the idempotency key wins over different content and hands back the stored request digest', () => {
  const d = committed(directiveInput({ idempotencyKey: 'k' }), 'd1', 1);
  const other = directiveInput({ idempotencyKey: 'k', level: 'kill' });
  assert.deepEqual(convergedIssue(other, { directive: d, keyDigest: 'sha-1' }, []), {
    directive: d,
    created: false,
    converged: 'idempotency_key',
    replaced: [],
    keyDigest: 'sha-1',
  });
});
