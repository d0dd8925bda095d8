/**
 * The kill-path ladder, weakest first. A higher level dominates a lower one wherever both
 * cover the same run: a late `halt` never downgrades a `kill`. `freeze` stops the agent's
 * processes at once like a kill (its launcher freezes them: not one more instruction runs, egress
 * is cut) but keeps their memory for evidence and can be undone (thaw = resume).
 */
export const LEVELS = ['throttle', 'degrade', 'isolate', 'halt', 'freeze', 'kill'] as const;

/** One rung of the ladder. */
export type Level = (typeof LEVELS)[number];

/** Rank of a level on the ladder: 1 for `throttle` up to 6 for `kill`; 0 means "no directive". */
export function levelRank(level: Level): number {
  return LEVELS.indexOf(level) + 1;
}

/**
 * What a directive of one level does to the runs it covers, decided once: the SDK gate, the
 * permits, the fleet flags and the launcher orders all read this row (through `decision.ts`).
 * A new level is a new row here (and a rank in {@link LEVELS}).
 */
export interface LevelRule {
  /**
   * What a run-wide (not capability-narrowed) directive does to a covered run's effects:
   * `delay` spaces them out (a throttle's rate), `refuse_writes` refuses `write` and
   * `irreversible` effects while reads flow, `refuse_all` refuses every effect.
   */
  readonly effects: 'delay' | 'refuse_writes' | 'refuse_all';
  /** A run-wide directive stops the run itself: its timers, queues and staged memory (halt, kill). */
  readonly stopsRun: boolean;
  /**
   * Why a directive of this level cannot name capabilities, or `null` when it may (then it
   * refuses every effect of those capabilities and leaves the run otherwise running; a
   * throttle's rate applies to the whole run whatever it names).
   */
  readonly notNarrowable: string | null;
  /** Why an effect is refused: run-wide, then narrowed to capabilities; `null` for a level that only delays. */
  readonly reason: { readonly runWide: RefusalReason; readonly narrowed: RefusalReason } | null;
  /** The launcher order a run-wide directive of this level gives (see `LauncherOrders`), or `null`. */
  readonly order: 'kill' | 'isolate' | 'halt' | 'freeze' | null;
  /** The fleet flag a run-wide directive of this level raises (see `WorkerFlags`); narrowed ones revoke capabilities (`degraded`). */
  readonly flag: 'throttled' | 'degraded' | 'isolated' | 'frozen' | null;
}

/** The one table: what each level does (see {@link LevelRule}). */
export const LEVEL_RULES: Readonly<Record<Level, LevelRule>> = Object.freeze({
  throttle: {
    effects: 'delay',
    stopsRun: false,
    notNarrowable: null,
    reason: null,
    order: null,
    flag: 'throttled',
  },
  degrade: {
    effects: 'refuse_writes',
    stopsRun: false,
    notNarrowable: null,
    reason: { runWide: 'read_only', narrowed: 'revoked' },
    order: null,
    flag: 'degraded',
  },
  isolate: {
    effects: 'refuse_all',
    stopsRun: false,
    notNarrowable:
      'isolate cuts the whole agent off and cannot be narrowed to capabilities; to revoke tools, use degrade with capabilities',
    reason: { runWide: 'isolated', narrowed: 'isolated' },
    order: 'isolate',
    flag: 'isolated',
  },
  halt: {
    effects: 'refuse_all',
    stopsRun: true,
    notNarrowable: null,
    reason: { runWide: 'halted', narrowed: 'halted' },
    order: 'halt',
    flag: null,
  },
  // A freeze refuses every effect like an isolate: the worker's launcher stops the whole
  // process; a worker it has not frozen yet (or one outside a launcher) refuses in its gate.
  freeze: {
    effects: 'refuse_all',
    stopsRun: false,
    notNarrowable:
      'freeze stops the whole process and cannot be narrowed to capabilities; to stop tools, use halt with capabilities',
    reason: { runWide: 'frozen', narrowed: 'frozen' },
    order: 'freeze',
    flag: 'frozen',
  },
  kill: {
    effects: 'refuse_all',
    stopsRun: true,
    notNarrowable: null,
    reason: { runWide: 'killed', narrowed: 'killed' },
    order: 'kill',
    flag: null,
  },
});

/**
 * True when `level` stops a run outright and its timers, queues and staged memory with it (halt,
 * kill): what a worker reports `halted` for. A `freeze` is not one in the SDK: it refuses every
 * effect like an isolate (for a worker its launcher has not frozen yet) and leaves the rest to
 * the launcher, which stops the whole process.
 */
export function isStopLevel(level: Level): boolean {
  return LEVEL_RULES[level].stopsRun;
}

/** The next level up or down the ladder from `level`, or `null` past either end. */
export function stepLevel(level: Level, direction: 'up' | 'down'): Level | null {
  return LEVELS[LEVELS.indexOf(level) + (direction === 'up' ? 1 : -1)] ?? null;
}

/**
 * Why an effect is refused, by the directive that refuses it: `halted`/`killed` (a stop, run-wide
 * or one frozen tool), `frozen` (a freeze), `isolated`, `revoked` (a degrade naming the capability), `read_only` (a
 * degrade of the whole scope: writes refused, reads flow). `stale` is the SDK's own: no fresh
 * switchboard.
 */
export type RefusalReason = 'halted' | 'killed' | 'frozen' | 'isolated' | 'revoked' | 'read_only' | 'stale';

/** The refusal reason a directive of `level` gives (narrowed: it names capabilities); `null` for a throttle, which only delays. */
export function refusalReason(level: Level, narrowed: boolean): RefusalReason | null {
  const reason = LEVEL_RULES[level].reason;
  return reason === null ? null : narrowed ? reason.narrowed : reason.runWide;
}

/** The class of an effect, which decides how a halt treats it in flight and whether it needs a permit. */
export const EFFECT_CLASSES = ['read', 'write', 'irreversible'] as const;

/** `read` effects may complete in flight on a halt; `write` and `irreversible` ones are aborted. */
export type EffectClass = (typeof EFFECT_CLASSES)[number];

/** Roles a token can carry. */
export const ROLES = ['viewer', 'operator', 'admin', 'agent'] as const;

/** `viewer` reads; `operator` acts inside its tenant; `admin` acts everywhere; `agent` is a worker identity. */
export type Role = (typeof ROLES)[number];
