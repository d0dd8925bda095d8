import { formatScope, type Directive } from '@killpath/protocol';
import type { DirectiveInput, IssueResult } from './store.ts';

/**
 * Convergence of issued directives (guarantee 7), decided here for every store backend: a
 * backend looks up the prior directive of an idempotency key and the active directives inside
 * its issuing transaction, and commits a new directive only when this says nothing converged.
 */

/** Content that makes two directives "the same" for convergence: everything but words, actor and id. */
export function contentKey(d: {
  level: string;
  scopeText: string;
  tenant: string | null;
  capabilities: readonly string[] | null;
  rate: unknown;
  graceMs: number;
  drain: string;
  memory: string;
  escalation: unknown;
}): string {
  return JSON.stringify([
    d.escalation,
    d.level,
    d.scopeText,
    d.tenant,
    d.capabilities === null ? null : [...d.capabilities].sort(),
    d.rate,
    d.graceMs,
    d.drain,
    d.memory,
  ]);
}

/**
 * What an issue converges to, or `null` when a new directive must be committed. The idempotency
 * key wins (even over different content: the caller compares `keyDigest` to tell a retry from
 * another request); otherwise an identical active directive absorbs the issue. A cleared
 * directive never absorbs one (only `active` is searched).
 * @param prior the directive stored under the input's idempotency key (any state), with the request digest stored beside it
 * @param active the active directives, in commit order
 */
export function convergedIssue(
  input: DirectiveInput,
  prior: { directive: Directive; keyDigest: string | null } | null,
  active: readonly Directive[],
): IssueResult | null {
  if (prior !== null)
    return {
      directive: prior.directive,
      created: false,
      converged: 'idempotency_key',
      replaced: [],
      keyDigest: prior.keyDigest,
    };
  const key = contentKey({ ...input, scopeText: formatScope(input.scope) });
  const same = active.find((d) => contentKey(d) === key);
  return same ? { directive: same, created: false, converged: 'identical', replaced: [] } : null;
}
