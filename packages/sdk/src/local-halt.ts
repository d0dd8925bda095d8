import type { Directive, LocalRule, Release } from '@killpath/protocol';
import type { MirrorEntry } from './mirror.ts';
import { verdictFor } from './verdict.ts';

/** What a local halt is made of. */
export interface LocalHaltSpec {
  rule: LocalRule;
  runId: string;
  /** The value that crossed the limit, and the limit. */
  value: number;
  limit: number;
  tenant: string;
  /** The mirror's rev when the limit was crossed. */
  rev: number;
  /** The wall-clock time of the halt, ms since the epoch. */
  issuedAtMs: number;
  /** This worker's release, or `null`. */
  release: Readonly<Release> | null;
}

/**
 * The directive of a halt the SDK puts on a run by itself (a local limit was crossed): a `halt`
 * of `run:<run>` with id `local:<rule>:<run>`, known only to this worker (no resume clears it),
 * frozen, with the fields a halt from the control plane has, so the gate, the stop fan-out and
 * the halted report treat both alike. Internal.
 */
export function localHaltDirective(spec: LocalHaltSpec): Directive {
  const { rule, runId } = spec;
  return Object.freeze({
    id: `local:${rule}:${runId}`,
    rev: spec.rev,
    level: 'halt',
    scope: Object.freeze({ kind: 'run', run: runId }),
    scopeText: `run:${runId}`,
    tenant: spec.tenant,
    capabilities: null,
    rate: null,
    escalation: [],
    escalatedFrom: null,
    graceMs: 0,
    drain: 'discard',
    memory: 'revert',
    reason: `local rule ${rule}: ${spec.value} > ${spec.limit}`,
    justification: 'halted by the SDK itself: the run crossed a local limit',
    actor: `local:${rule}`,
    issuedAt: new Date(spec.issuedAtMs).toISOString(),
    clearedAt: null,
    clearedRev: null,
    releases: spec.release === null ? [] : [{ ...spec.release }],
  } satisfies Directive) as Directive;
}

/** A local halt as a gate-table entry (its directive and deny verdict). Internal. */
export function localHaltEntry(spec: LocalHaltSpec): MirrorEntry {
  const directive = localHaltDirective(spec);
  return Object.freeze({ directive, verdict: verdictFor(directive) });
}
