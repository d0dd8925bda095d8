import { KillpathError } from '@killpath/protocol';
import type { Directive } from '@killpath/protocol';

/** Why the gate refused: a covering `halt`, a covering `kill`, or no fresh switchboard (fail closed). */
export type DenyReason = 'halted' | 'killed' | 'stale';

/** The gate lets the effect through. */
export interface AllowVerdict {
  readonly kind: 'allow';
}

/** The gate refuses the effect. `directive` is the covering directive, `null` when `stale`. */
export interface DenyVerdict {
  readonly kind: 'deny';
  readonly reason: DenyReason;
  readonly directive: Directive | null;
}

/** Result of `run.check(capability)`. Verdicts are frozen and shared: compare by `kind`, never mutate. */
export type Verdict = AllowVerdict | DenyVerdict;

/** The one allow verdict every check returns. */
export const ALLOW: AllowVerdict = Object.freeze({ kind: 'allow' });

/** The one deny verdict for a missing or expired lease (before the first snapshot, after expiry, after close). */
export const STALE: DenyVerdict = Object.freeze({ kind: 'deny', reason: 'stale', directive: null });

/**
 * The frozen deny verdict a directive produces in the gate, or `null` when its level does not
 * stop effects. Only `halt` and `kill` deny for now: `throttle`, `degrade` and `isolate` are in
 * the schema but not enforced by the SDK gate yet (isolate is the launcher's egress proxy).
 */
export function verdictFor(directive: Directive): DenyVerdict | null {
  if (directive.level === 'kill') return Object.freeze({ kind: 'deny', reason: 'killed', directive });
  if (directive.level === 'halt') return Object.freeze({ kind: 'deny', reason: 'halted', directive });
  return null;
}

/**
 * The error for a refused or aborted effect: code `halted`, details `{ reason, directiveId }`.
 * @param what what happened to the effect, for the message: `denied` before start or `aborted` in flight
 */
export function haltedError(
  verdict: DenyVerdict,
  runId: string,
  capability: string,
  what: 'denied' | 'aborted',
): KillpathError {
  const directiveId = verdict.directive?.id ?? null;
  const why =
    verdict.reason === 'stale'
      ? 'no fresh switchboard (lease expired or not yet synchronised)'
      : `${verdict.reason} by directive ${directiveId ?? '?'}`;
  return new KillpathError('halted', `effect "${capability}" of run ${runId} ${what}: ${why}`, {
    details: { reason: verdict.reason, directiveId },
  });
}
