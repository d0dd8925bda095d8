import type { FleetWorker, WorkerFlags } from './wire.ts';
/**
 * A worker's below-halt flags as short words for people (CLI status, console):
 * `throttled 5/s per run`, `degraded (read-only)` or `degraded (crm.update)`, `isolated`, `frozen`;
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
  if (flags.frozen) out.push('frozen');
  return out;
}

/** What a worker view needs to say a killed process is still running. */
export const KILL_CANNOT_END_IT = 'process alive, not under a launcher: the kill cannot end it';

/**
 * What an operator must be told about a worker beyond its state, or `null`: a worker killed
 * while its stream is still open and no launcher started it is a live process nothing will end
 * (only a launcher signals processes). Status and console show it beside the state.
 */
export function workerWarning(w: {
  state: FleetWorker['state'];
  connected: boolean;
  launcher: string | null;
}): string | null {
  return w.state === 'kill' && w.connected && w.launcher === null ? KILL_CANNOT_END_IT : null;
}
