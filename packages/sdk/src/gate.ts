import { LEVELS, coversRun, levelRank } from '@killpath/protocol';
import type { Level, RunIdentity } from '@killpath/protocol';
import type { Clock } from './clock.ts';
import type { MirrorEntry } from './mirror.ts';
import { STALE } from './verdict.ts';
import type { DenyVerdict } from './verdict.ts';

/**
 * The gate's precompiled view of the mirror for one run, rebuilt on every mirror change so that
 * `check` is a few loads. `caps` holds only capability-narrowed stop verdicts that outrank `all`
 * (a narrowed kill under a run-wide halt), so `check` consults `caps` first, then `all`.
 */
export interface RunTable {
  /** The highest covering stop directive without capabilities, or `null`. */
  readonly all: DenyVerdict | null;
  /** Capability → highest covering narrowed stop verdict above `all`; `null` when empty. */
  readonly caps: ReadonlyMap<string, DenyVerdict> | null;
  /** The highest level covering the run, for reports (see {@link compileTable}); `null` for none. */
  readonly level: Level | null;
}

/** The table of a run no directive covers. */
export const OPEN_TABLE: RunTable = Object.freeze({ all: null, caps: null, level: null });

const DEGRADE = levelRank('degrade');

/**
 * Compiles the mirror for one run. Kill dominates halt; between equals the earlier directive
 * wins, so verdicts stay stable while later duplicates come and go. For `level`, a directive
 * narrowed to capabilities counts at most as `degrade`: it revokes those capabilities and
 * leaves the run otherwise running.
 */
export function compileTable(entries: readonly MirrorEntry[], run: RunIdentity): RunTable {
  let all: MirrorEntry | null = null;
  let caps: Map<string, MirrorEntry> | null = null;
  let rank = 0;
  for (const entry of entries) {
    const d = entry.directive;
    if (!coversRun(d, run)) continue;
    const r = levelRank(d.level);
    rank = Math.max(rank, d.capabilities === null ? r : Math.min(r, DEGRADE));
    if (entry.verdict === null) continue;
    if (d.capabilities === null) {
      if (outranks(entry, all)) all = entry;
      continue;
    }
    caps ??= new Map();
    for (const cap of d.capabilities) {
      if (outranks(entry, caps.get(cap) ?? null)) caps.set(cap, entry);
    }
  }
  const floor = all === null ? 0 : levelRank(all.directive.level);
  let narrowed: Map<string, DenyVerdict> | null = null;
  if (caps !== null) {
    for (const [cap, entry] of caps) {
      if (levelRank(entry.directive.level) <= floor || entry.verdict === null) continue;
      narrowed ??= new Map();
      narrowed.set(cap, entry.verdict);
    }
  }
  if (all === null && narrowed === null && rank === 0) return OPEN_TABLE;
  return Object.freeze({
    all: all?.verdict ?? null,
    caps: narrowed,
    level: rank === 0 ? null : levelAt(rank),
  });
}

/** The stop verdict covering `capability` in a compiled table, ignoring the lease; `null` when allowed. */
export function stopVerdict(table: RunTable, capability: string): DenyVerdict | null {
  return table.caps?.get(capability) ?? table.all;
}

/**
 * The run-wide stop verdict: `stale` without a fresh switchboard (lease), else the covering stop
 * directive without capabilities, else `null`. What timers, queues and staged memory consult:
 * a capability-narrowed halt freezes effects of that capability, not the run.
 */
export function runStop(table: RunTable, host: { readonly clock: Clock; readonly lease: { readonly deadline: number } }): DenyVerdict | null {
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
