import { LEVELS, LEVEL_RULES, levelRank, refusalReason } from './levels.ts';
import type { EffectClass, Level, LevelRule, RefusalReason } from './levels.ts';
import { coversRun } from './scope.ts';
import type { Coverage, RunIdentity } from './scope.ts';
import type { Rate, WorkerFlags } from './wire.ts';

/**
 * What a directive of the decision table needs: what it covers, its level, its rate and the rev
 * that orders equals. `Directive` and `StreamDirective` are both one.
 */
export interface Decidable extends Coverage {
  readonly level: Level;
  readonly rev: number;
  readonly rate: Rate | null;
}

/**
 * What the directives in force do to one run, compiled once so that deciding an effect is a few
 * loads (the SDK gate recompiles it on every switchboard change). Each slot holds the directive
 * that decides it, or `null`.
 */
export interface RunDecision<D extends Decidable> {
  /** The highest covering run-wide stop (halt, kill): what the run's timers, queues and staged memory obey. */
  readonly stop: D | null;
  /** What refuses every effect of the run: the higher of `stop` and a covering isolate or freeze. */
  readonly block: D | null;
  /** A covering run-wide degrade: `write` and `irreversible` effects are refused, reads flow. */
  readonly readOnly: D | null;
  /** Capability → the highest covering narrowed directive above `block`; `null` when none. */
  readonly caps: ReadonlyMap<string, D> | null;
  /** The covering throttle with the lowest rate: effects wait for their slot. */
  readonly throttle: D | null;
  /**
   * The highest level covering the run, for reports; a directive narrowed to capabilities counts
   * at most as `degrade` (it revokes those and leaves the run running). `null`: none covers it.
   */
  readonly level: Level | null;
}

/** What the directives in force do to one effect: it runs, it is refused, or it waits for a throttle slot. */
export type EffectDecision<D extends Decidable> =
  | { readonly kind: 'allow' }
  | { readonly kind: 'deny'; readonly reason: RefusalReason; readonly directive: D }
  | { readonly kind: 'wait'; readonly slot: Rate; readonly directive: D };

const EMPTY: RunDecision<never> = Object.freeze({
  stop: null,
  block: null,
  readOnly: null,
  caps: null,
  throttle: null,
  level: null,
});

const DEGRADE = levelRank('degrade');

/** `a` decides over `b`: a higher level, or the same level committed earlier (verdicts stay stable as duplicates come and go). */
function outranks(a: Decidable, b: Decidable | null): boolean {
  if (b === null) return true;
  const ra = levelRank(a.level);
  const rb = levelRank(b.level);
  return ra > rb || (ra === rb && a.rev < b.rev);
}

/**
 * Compiles what `directives` do to `run` (see {@link RunDecision}): higher levels dominate
 * (kill over freeze over halt over isolate over degrade), between equals the earlier one.
 */
export function compileRun<D extends Decidable>(directives: Iterable<D>, run: RunIdentity): RunDecision<D> {
  let stop: D | null = null;
  let wall: D | null = null;
  let readOnly: D | null = null;
  let throttle: D | null = null;
  let caps: Map<string, D> | null = null;
  let rank = 0;
  for (const d of directives) {
    if (!coversRun(d, run)) continue;
    const rule = LEVEL_RULES[d.level];
    const r = levelRank(d.level);
    rank = Math.max(rank, d.capabilities === null ? r : Math.min(r, DEGRADE));
    if (rule.effects === 'delay') {
      if (d.rate !== null && (throttle === null || d.rate.perSecond < (throttle.rate?.perSecond ?? Infinity)))
        throttle = d;
      continue;
    }
    if (d.capabilities === null) {
      if (rule.stopsRun) {
        if (outranks(d, stop)) stop = d;
      } else if (rule.effects === 'refuse_all') {
        if (outranks(d, wall)) wall = d;
      } else if (outranks(d, readOnly)) {
        readOnly = d;
      }
      continue;
    }
    caps ??= new Map();
    for (const cap of d.capabilities) {
      if (outranks(d, caps.get(cap) ?? null)) caps.set(cap, d);
    }
  }
  // The higher of the two refuses: a freeze over a halt reads as frozen, a kill over a freeze as killed.
  const block = stop !== null && (wall === null || outranks(stop, wall)) ? stop : (wall ?? stop);
  const floor = block === null ? 0 : levelRank(block.level);
  let narrowed: Map<string, D> | null = null;
  if (caps !== null) {
    for (const [cap, d] of caps) {
      if (levelRank(d.level) <= floor) continue;
      narrowed ??= new Map();
      narrowed.set(cap, d);
    }
  }
  if (block === null && readOnly === null && narrowed === null && throttle === null && rank === 0)
    return EMPTY;
  return Object.freeze({
    stop,
    block,
    readOnly,
    caps: narrowed,
    throttle,
    level: rank === 0 ? null : (LEVELS[rank - 1] ?? null),
  });
}

/** The directive refusing an effect of `capability` and `cls` in a compiled run, or `null` when none does. */
export function refusingDirective<D extends Decidable>(
  run: RunDecision<D>,
  capability: string,
  cls: EffectClass,
): D | null {
  if (run.caps !== null) {
    const narrowed = run.caps.get(capability);
    if (narrowed !== undefined) return narrowed;
  }
  if (run.block !== null) return run.block;
  return cls === 'read' ? null : run.readOnly;
}

/** What a compiled run does to an effect of `capability` and `cls` (see {@link effectOf}). */
export function decideEffect<D extends Decidable>(
  run: RunDecision<D>,
  capability: string,
  cls: EffectClass,
): EffectDecision<D> {
  const refusing = refusingDirective(run, capability, cls);
  if (refusing !== null) {
    const reason = refusalReason(refusing.level, refusing.capabilities !== null);
    if (reason !== null) return { kind: 'deny', reason, directive: refusing };
  }
  const t = run.throttle;
  if (t !== null && t.rate !== null) return { kind: 'wait', slot: t.rate, directive: t };
  return ALLOW;
}

const ALLOW = Object.freeze({ kind: 'allow' as const });

/**
 * What `directives` do to an effect of `capability` and class `cls` in `run`: `allow`, `deny`
 * with the refusal reason and the deciding directive, or `wait` for a slot of the covering
 * throttle with the lowest rate. The rule every caller shares (gate, permits); compile once
 * with {@link compileRun} when deciding many effects of one run.
 */
export function effectOf<D extends Decidable>(
  directives: Iterable<D>,
  run: RunIdentity,
  capability: string,
  cls: EffectClass,
): EffectDecision<D> {
  return decideEffect(compileRun(directives, run), capability, cls);
}

/** An order a launcher enforces on the process it started (see `LauncherOrders`). */
export type OrderKind = NonNullable<LevelRule['order']>;

/** What a launcher enforces on the process it started: per order, the directive behind it or `null`. */
export type ProcessOrders<D> = { readonly [K in OrderKind]: D | null };

/**
 * The orders for a process hosting `runs` (a launcher's own identity and the runs its workers
 * report): for each level that gives an order, the earliest run-wide directive of that level
 * covering any of them. A capability-narrowed directive gives no order: the process keeps running.
 */
export function ordersFor<D extends Decidable>(
  directives: Iterable<D>,
  runs: readonly RunIdentity[],
): ProcessOrders<D> {
  const out: Record<string, D | null> = { kill: null, isolate: null, halt: null, freeze: null };
  for (const d of directives) {
    const order = LEVEL_RULES[d.level].order;
    if (order === null || d.capabilities !== null) continue;
    const held = out[order] ?? null;
    if (held !== null && !outranks(d, held)) continue;
    if (runs.some((r) => coversRun(d, r))) out[order] = d;
  }
  return out as ProcessOrders<D>;
}

/**
 * The fleet flags of a worker hosting `runs`, the levels short of a stop in force on them: the
 * lowest throttle rate, revoked capabilities (a degrade or any narrowed refusal; `*` for
 * read-only), isolation, a freeze.
 */
export function flagsOf(directives: Iterable<Decidable>, runs: readonly RunIdentity[]): WorkerFlags {
  let throttled: Rate | null = null;
  const degraded = new Set<string>();
  let isolated = false;
  let frozen = false;
  for (const d of directives) {
    if (!runs.some((r) => coversRun(d, r))) continue;
    const rule = LEVEL_RULES[d.level];
    if (rule.flag === 'throttled') {
      if (d.rate !== null && (throttled === null || d.rate.perSecond < throttled.perSecond))
        throttled = d.rate;
    } else if (d.capabilities !== null || rule.flag === 'degraded') {
      for (const c of d.capabilities ?? ['*']) degraded.add(c);
    } else if (rule.flag === 'isolated') {
      isolated = true;
    } else if (rule.flag === 'frozen') {
      frozen = true;
    }
  }
  return { throttled, degraded: [...degraded].sort(), isolated, frozen };
}
