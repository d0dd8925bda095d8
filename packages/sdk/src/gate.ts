import { compileRun } from '@killpath/protocol';
import type { StreamDirective, EffectClass, Level, RunIdentity } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { MirrorEntry } from './mirror.ts';
import type { DenyVerdict } from './verdict.ts';

/**
 * The gate's precompiled view of the mirror for one run, rebuilt on every mirror change so that
 * `check` is a few loads. `caps` holds only capability-narrowed verdicts that outrank `block`
 * (a narrowed kill under a run-wide halt, a revoked tool under nothing), so `check` consults
 * `caps` first, then `block`, then `readOnly` for effects that are not reads.
 */
export interface RunTable {
  /** The highest covering stop (halt or kill) without capabilities, or `null`: what timers, queues and staged memory obey. */
  readonly all: DenyVerdict | null;
  /** What refuses every effect of the run: the higher of `all` and a covering isolate or freeze; `null` when none. */
  readonly block: DenyVerdict | null;
  /** A covering degrade without capabilities: `write` and `irreversible` effects are refused, reads flow. */
  readonly readOnly: DenyVerdict | null;
  /** Capability → highest covering narrowed verdict above `block`; `null` when empty. */
  readonly caps: ReadonlyMap<string, DenyVerdict> | null;
  /** The covering throttle with the lowest rate, or `null`: effects wait for their slot. */
  readonly throttle: StreamDirective | null;
  /** The highest level covering the run, for reports (see {@link compileTable}); `null` for none. */
  readonly level: Level | null;
}

/** The table of a run no directive covers. */
export const OPEN_TABLE: RunTable = Object.freeze({
  all: null,
  block: null,
  readOnly: null,
  caps: null,
  throttle: null,
  level: null,
});

/** The directives of a mirror list and each one's verdict, kept per list (lists are replaced, never mutated). */
const compiled = new WeakMap<
  readonly MirrorEntry[],
  { directives: readonly StreamDirective[]; verdicts: ReadonlyMap<StreamDirective, DenyVerdict | null> }
>();

function directivesOf(entries: readonly MirrorEntry[]) {
  let c = compiled.get(entries);
  if (c === undefined) {
    c = {
      directives: entries.map((e) => e.directive),
      verdicts: new Map(entries.map((e) => [e.directive, e.verdict])),
    };
    compiled.set(entries, c);
  }
  return c;
}

/**
 * Compiles the mirror for one run with the protocol's one decision table ({@link compileRun}):
 * higher levels dominate (kill over freeze over halt over isolate over degrade); between equals
 * the earlier directive wins, so verdicts stay stable while later duplicates come and go. For
 * `level`, a directive narrowed to capabilities counts at most as `degrade`. The gate only
 * swaps each deciding directive for its precompiled, shared verdict.
 */
export function compileTable(entries: readonly MirrorEntry[], run: RunIdentity): RunTable {
  const { directives, verdicts } = directivesOf(entries);
  const d = compileRun(directives, run);
  if (d.level === null && d.throttle === null && d.block === null && d.readOnly === null && d.caps === null)
    return OPEN_TABLE;
  const verdict = (x: StreamDirective | null) => (x === null ? null : (verdicts.get(x) ?? null));
  let caps: Map<string, DenyVerdict> | null = null;
  if (d.caps !== null) {
    for (const [cap, x] of d.caps) {
      const v = verdict(x);
      if (v === null) continue;
      caps ??= new Map();
      caps.set(cap, v);
    }
  }
  return Object.freeze({
    all: verdict(d.stop),
    block: verdict(d.block),
    readOnly: verdict(d.readOnly),
    caps,
    throttle: d.throttle,
    level: d.level,
  });
}

/** The verdict refusing an effect of `capability` and `cls` in a compiled table, ignoring the lease; `null` when allowed. */
export function tableVerdict(table: RunTable, capability: string, cls: EffectClass): DenyVerdict | null {
  if (table.caps !== null) {
    const narrowed = table.caps.get(capability);
    if (narrowed !== undefined) return narrowed;
  }
  if (table.block !== null) return table.block;
  return cls === 'read' ? null : table.readOnly;
}

/**
 * The run-wide stop verdict: `stale` without a fresh switchboard (lease), else the covering stop
 * directive without capabilities, else `null`. What timers, queues and staged memory consult:
 * a capability-narrowed halt freezes effects of that capability, not the run, and the levels
 * below halt leave the run running.
 */
export function runStop(
  table: RunTable,
  host: {
    readonly clock: Clock;
    readonly lease: { readonly deadline: number; readonly denial: DenyVerdict };
  },
): DenyVerdict | null {
  if (host.clock.now() >= host.lease.deadline) return host.lease.denial;
  return table.all;
}
