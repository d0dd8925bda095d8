import type { ScopeKind } from '@killpath/protocol';

/**
 * Every scope a drill flips, one `scope:` scenario each, in report order: one tool of an agent,
 * then every scope kind of the protocol, narrowest first. The battery, `--scenarios`, the report
 * order and the help all read this one list.
 */
export const DRILL_SCOPES = ['capability', 'run', 'agent', 'tenant', 'feature', 'release', 'global'] as const;

/** One scope a drill flips. */
export type DrillScope = (typeof DRILL_SCOPES)[number];

// A scope kind the protocol gains and no drill flips fails to compile here.
const everyKindDrilled: [Exclude<ScopeKind, DrillScope>] extends [never] ? true : never = true;
void everyKindDrilled;
