import { LEVELS, coversRun, isStopLevel, levelRank } from '@killpath/protocol';
import type { StreamDirective, EffectClass, Level, RunIdentity } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { MirrorEntry } from './mirror.ts';
import { STALE } from './verdict.ts';
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

const DEGRADE = levelRank('degrade');

/**
 * Compiles the mirror for one run. Higher levels dominate (kill over freeze over halt over
 * isolate over degrade); between equals the earlier directive wins, so verdicts stay stable while later
 * duplicates come and go. For `level`, a directive narrowed to capabilities counts at most as
 * `degrade`: it revokes those capabilities and leaves the run otherwise running.
 */
export function compileTable(entries: readonly MirrorEntry[], run: RunIdentity): RunTable {
  let all: MirrorEntry | null = null;
  let isolate: MirrorEntry | null = null;
  let readOnly: MirrorEntry | null = null;
  let throttle: StreamDirective | null = null;
  let caps: Map<string, MirrorEntry> | null = null;
  let rank = 0;
  for (const entry of entries) {
    const d = entry.directive;
    if (!coversRun(d, run)) continue;
    const r = levelRank(d.level);
    rank = Math.max(rank, d.capabilities === null ? r : Math.min(r, DEGRADE));
    if (d.level === 'throttle') {
      if (d.rate !== null && (throttle === null || d.rate.perSecond < (throttle.rate?.perSecond ?? Infinity)))
        throttle = d;
      continue;
    }
    if (entry.verdict === null) continue;
    if (d.capabilities === null) {
      if (isStopLevel(d.level)) {
        if (outranks(entry, all)) all = entry;
      } else if (d.level === 'isolate' || d.level === 'freeze') {
        // A freeze refuses every effect like an isolate: the worker's launcher stops the whole
        // process; a worker it has not frozen yet (or one outside a launcher) refuses here.
        if (outranks(entry, isolate)) isolate = entry;
      } else if (outranks(entry, readOnly)) {
        readOnly = entry;
      }
      continue;
    }
    caps ??= new Map();
    for (const cap of d.capabilities) {
      if (outranks(entry, caps.get(cap) ?? null)) caps.set(cap, entry);
    }
  }
  // The higher of the two refuses: a freeze over a halt reads as frozen, a kill over a freeze as killed.
  const block = all !== null && (isolate === null || outranks(all, isolate)) ? all : (isolate ?? all);
  const floor = block === null ? 0 : levelRank(block.directive.level);
  let narrowed: Map<string, DenyVerdict> | null = null;
  if (caps !== null) {
    for (const [cap, entry] of caps) {
      if (levelRank(entry.directive.level) <= floor || entry.verdict === null) continue;
      narrowed ??= new Map();
      narrowed.set(cap, entry.verdict);
    }
  }
  if (block === null && readOnly === null && narrowed === null && throttle === null && rank === 0)
    return OPEN_TABLE;
  return Object.freeze({
    all: all?.verdict ?? null,
    block: block?.verdict ?? null,
    readOnly: readOnly?.verdict ?? null,
    caps: narrowed,
    throttle,
    level: rank === 0 ? null : levelAt(rank),
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
  host: { readonly clock: Clock; readonly lease: { readonly deadline: number } },
): DenyVerdict | null {
  if (host.clock.now() >= host.lease.deadline) return STALE;
  return table.all;
}

function outranks(a: MirrorEntry, b: MirrorEntry | null): boolean {
  if (b === null) return true;
  const ra = levelRank(a.directive.level);
  const rb = levelRank(b.directive.level);
  return ra > rb || (ra === rb && a.directive.rev < b.directive.rev);
}

function levelAt(rank: number): Level {
  const level = LEVELS[rank - 1];
  if (level === undefined) throw new RangeError(`no level of rank ${rank}`);
  return level;
}
