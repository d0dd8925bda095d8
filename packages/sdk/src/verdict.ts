import { KillpathError, refusalReason } from '@killpath/protocol';
import type { StreamDirective, RefusalReason } from '@killpath/protocol';

/**
 * Why the gate refused: a covering `halt` or `kill`, an `isolate`, a degrade that `revoked` the
 * capability or made the run `read_only`, or no fresh switchboard (`stale`: fail closed).
 */
export type DenyReason = RefusalReason;

/** The gate lets the effect through. */
export interface AllowVerdict {
  readonly kind: 'allow';
}

/** The gate refuses the effect. `directive` is the covering directive, `null` when `stale`. */
export interface DenyVerdict {
  readonly kind: 'deny';
  readonly reason: DenyReason;
  readonly directive: StreamDirective | null;
  /** Why a `stale` deny has no switchboard, when it is not the lease (e.g. a newer protocol). */
  readonly note?: string;
}

/** Result of `run.check(capability)`. Verdicts are frozen and shared: compare by `kind`, never mutate. */
export type Verdict = AllowVerdict | DenyVerdict;

/** The one allow verdict every check returns. */
export const ALLOW: AllowVerdict = Object.freeze({ kind: 'allow' });

/** The one deny verdict for a missing or expired lease (before the first snapshot, after expiry, after close). */
export const STALE: DenyVerdict = Object.freeze({ kind: 'deny', reason: 'stale', directive: null });

/**
 * The deny verdict of an effect whose capability is not among those granted to its run
 * (`startRun({ capabilities })`): reason `revoked`, no directive. An authorisation denial.
 */
export const NOT_GRANTED: DenyVerdict = Object.freeze({ kind: 'deny', reason: 'revoked', directive: null });

/**
 * The frozen deny verdict a directive produces in the gate, or `null` for a throttle, which
 * delays effects instead of refusing them. An `isolate` refuses every effect here too (the
 * launcher also cuts the process off, whatever the agent does); a `degrade` refuses the named
 * capabilities, or every `write`/`irreversible` effect when it names none (see the gate table).
 */
export function verdictFor(directive: StreamDirective): DenyVerdict | null {
  const reason = refusalReason(directive.level, directive.capabilities !== null);
  return reason === null ? null : Object.freeze({ kind: 'deny', reason, directive });
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
    verdict.note !== undefined
      ? verdict.note
      : verdict.reason === 'stale'
        ? 'no fresh switchboard (lease expired or not yet synchronised)'
        : verdict === NOT_GRANTED
          ? 'the capability is not granted to this run'
          : `${verdict.reason.replace('_', '-')} by directive ${directiveId ?? '?'}`;
  return new KillpathError('halted', `effect "${capability}" of run ${runId} ${what}: ${why}`, {
    details: { reason: verdict.reason, directiveId },
  });
}
