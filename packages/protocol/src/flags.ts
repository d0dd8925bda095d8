import type { WorkerFlags } from './wire.ts';

/**
 * A worker's below-halt flags as short words for people (CLI status, console):
 * `throttled 5/s per run`, `degraded (read-only)` or `degraded (crm.update)`, `isolated`;
 * empty when none is in force.
 */
export function flagWords(flags: WorkerFlags): string[] {
  const out: string[] = [];
  if (flags.throttled) out.push(`throttled ${flags.throttled.perSecond}/s per ${flags.throttled.per}`);
  if (flags.degraded.length > 0)
    out.push(
      flags.degraded.includes('*') ? 'degraded (read-only)' : `degraded (${flags.degraded.join(', ')})`,
    );
  if (flags.isolated) out.push('isolated');
  return out;
}
