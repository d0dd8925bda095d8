/**
 * The kill-path ladder, weakest first. A higher level dominates a lower one wherever both
 * cover the same run: a late `halt` never downgrades a `kill`.
 */
export const LEVELS = ['throttle', 'degrade', 'isolate', 'halt', 'kill'] as const;

/** One rung of the ladder. */
export type Level = (typeof LEVELS)[number];

/** Rank of a level on the ladder: 1 for `throttle` up to 5 for `kill`; 0 means "no directive". */
export function levelRank(level: Level): number {
  return LEVELS.indexOf(level) + 1;
}

/** True when `level` stops a run outright (every covered effect is refused). */
export function isStopLevel(level: Level): boolean {
  return level === 'halt' || level === 'kill';
}

/** The class of an effect, which decides how a halt treats it in flight and whether it needs a permit. */
export const EFFECT_CLASSES = ['read', 'write', 'irreversible'] as const;

/** `read` effects may complete in flight on a halt; `write` and `irreversible` ones are aborted. */
export type EffectClass = (typeof EFFECT_CLASSES)[number];

/** Roles a token can carry. */
export const ROLES = ['viewer', 'operator', 'admin', 'agent'] as const;

/** `viewer` reads; `operator` acts inside its tenant; `admin` acts everywhere; `agent` is a worker identity. */
export type Role = (typeof ROLES)[number];
