import { coversRun, isStopLevel, levelRank } from '@killpath/protocol';
import type { HaltTracker } from './halt-tracker.ts';
import type { MirrorEntry } from './mirror.ts';
import type { Queue } from './queue.ts';
import type { RunState } from './run.ts';
import type { DenyVerdict } from './verdict.ts';

/** What the fan-out drives on a queue. */
export type QueueControl = Pick<Queue<unknown>, 'halt' | 'expire' | 'runEnded' | 'close' | 'wake'>;

/**
 * Everything a newly observed stop directive stops on this worker, synchronously, in the same
 * turn as the mirror update (after the gate tables were recompiled and covered in-flight writes
 * aborted): the covered runs' timers and retry waits are cancelled, their staged memory reverted
 * (or committed, as the directive says), covered queued tasks discarded or drained, and a
 * halted report is armed to go out once all of it settled. Kills are handled before halts, so a
 * kill's discard wins over a halt's drain issued in the same rev. A directive narrowed to
 * capabilities only aborts and refuses effects of those capabilities. Internal.
 */
export function fanOutStops(
  issued: readonly MirrorEntry[],
  rev: number,
  observedAt: number,
  runs: Iterable<RunState>,
  queues: Iterable<QueueControl>,
  halts: HaltTracker,
): void {
  const stops = issued
    .filter(
      (e): e is MirrorEntry & { verdict: DenyVerdict } =>
        e.verdict !== null && isStopLevel(e.directive.level),
    )
    .sort((a, b) => levelRank(b.directive.level) - levelRank(a.directive.level));
  if (stops.length === 0) return;
  const runList = [...runs];
  const queueList = [...queues];
  for (const entry of stops) {
    const d = entry.directive;
    const runWide = d.capabilities === null;
    const tracking = halts.begin(entry, rev, observedAt);
    for (const state of runList) {
      if (!coversRun(d, state.coverage)) continue;
      tracking.coverRun(state);
      if (!runWide) continue;
      state.timers.cancelAll(entry.verdict);
      state.memory.halt(d, () => tracking.hold());
    }
    if (runWide) for (const q of queueList) q.halt(tracking);
    tracking.seal();
  }
}

/**
 * The lease ran out: the worker treats itself as halted. Covered in-flight writes were aborted;
 * here every in-flight effect is marked so its final status is journaled, timers and retry
 * waits are cancelled, staged memory reverted and queues discarded. Internal.
 */
export function fanOutExpiry(
  verdict: DenyVerdict,
  runs: Iterable<RunState>,
  queues: Iterable<QueueControl>,
): void {
  for (const state of runs) {
    for (const effect of state.inFlight) effect.coveredBy ??= null;
    state.timers.cancelAll(verdict);
    state.memory.revert(null);
  }
  for (const q of queues) q.expire(verdict);
}
