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
 * True when `level` stops a run outright and its timers, queues and staged memory with it (halt,
 * kill): what a worker reports `halted` for. A `freeze` is not one in the SDK: it refuses every
 * effect like an isolate (for a worker its launcher has not frozen yet) and leaves the rest to
 * the launcher, which stops the whole process.
 */
export function isStopLevel(level: Level): boolean {
  return level === 'halt' || level === 'kill';
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
  switch (level) {
    case 'kill':
      return 'killed';
    case 'halt':
      return 'halted';
    case 'freeze':
      return 'frozen';
    case 'isolate':
      return 'isolated';
    case 'degrade':
      return narrowed ? 'revoked' : 'read_only';
    case 'throttle':
      return null;
  }
}

/** The class of an effect, which decides how a halt treats it in flight and whether it needs a permit. */
export const EFFECT_CLASSES = ['read', 'write', 'irreversible'] as const;

/** `read` effects may complete in flight on a halt; `write` and `irreversible` ones are aborted. */
export type EffectClass = (typeof EFFECT_CLASSES)[number];

/** Roles a token can carry. */
export const ROLES = ['viewer', 'operator', 'admin', 'agent'] as const;

/** `viewer` reads; `operator` acts inside its tenant; `admin` acts everywhere; `agent` is a worker identity. */
export type Role = (typeof ROLES)[number];
