import { coversEffect } from '@killpath/protocol';
import type { StreamDirective, HaltedReport } from '@killpath/protocol';
import type { MirrorEntry } from './mirror.ts';
import { stopsInFlight } from './run.ts';
import type { RunState } from './run.ts';
import type { DenyVerdict } from './verdict.ts';

/** What the tracker needs from its client. */
export interface HaltTrackerHost {
  now(): number;
  /** Sends the report (fire-and-forget) and journals `halt.settled`. */
  settled(report: HaltedReport): void;
}

/**
 * Turns each newly observed stop directive into one `HaltedReport`, sent once everything it
 * stopped on this worker has settled: every covered in-flight effect (covered writes and model
 * calls count as `aborted`, the gate aborts them when the rev is applied; covered reads as `completed`), and
 * every hold taken by the queues (a drain until its tasks finished or its grace ran out) and
 * staged memory (a commit the directive ordered). At once when nothing is pending. Directives
 * covering no local run and no queued task produce no report.
 */
export class HaltTracker {
  private readonly host: HaltTrackerHost;

  constructor(host: HaltTrackerHost) {
    this.host = host;
  }

  /**
   * Starts tracking a stop directive first seen in the rev applied at `observedAt`. The caller
   * reports what it covers, then calls {@link HaltTracking.seal}.
   */
  begin(entry: MirrorEntry & { verdict: DenyVerdict }, rev: number, observedAt: number): HaltTracking {
    return new HaltTracking(this.host, entry.directive, entry.verdict, rev, observedAt);
  }
}

/** One stop directive being settled on this worker. */
export class HaltTracking {
  readonly directive: StreamDirective;
  readonly verdict: DenyVerdict;
  private readonly host: HaltTrackerHost;
  private readonly rev: number;
  private readonly observedAt: number;
  private readonly runs: string[] = [];
  private aborted = 0;
  private completed = 0;
  private remaining = 0;
  private touched = false;
  private sealed = false;
  private done = false;

  constructor(
    host: HaltTrackerHost,
    directive: StreamDirective,
    verdict: DenyVerdict,
    rev: number,
    observedAt: number,
  ) {
    this.host = host;
    this.directive = directive;
    this.verdict = verdict;
    this.rev = rev;
    this.observedAt = observedAt;
  }

  /**
   * A local run the directive covers (its tables recompiled and writes aborted already). Its
   * covered in-flight effects are waited for, and marked so that their final status is journaled.
   */
  coverRun(run: RunState): void {
    const d = this.directive;
    this.runs.push(run.coverage.runId);
    for (const effect of run.inFlight) {
      if (!coversEffect(d, run.coverage, effect.capability)) continue;
      effect.coveredBy ??= d.id;
      if (stopsInFlight(effect)) this.aborted += 1;
      else this.completed += 1;
      this.remaining += 1;
      effect.whenSettled(this.releaseOne);
    }
  }

  /** The directive stopped something that is not a run (queued tasks without a run): report it even so. */
  touch(): void {
    this.touched = true;
  }

  /** Keeps the report back until the returned function is called (once; later calls are ignored). */
  hold(): () => void {
    this.touched = true;
    this.remaining += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.releaseOne();
    };
  }

  /** Everything covered has been reported: the report goes out as soon as nothing is pending. */
  seal(): void {
    this.sealed = true;
    this.maybeFinish();
  }

  private readonly releaseOne = (): void => {
    this.remaining -= 1;
    this.maybeFinish();
  };

  private maybeFinish(): void {
    if (!this.sealed || this.done || this.remaining > 0) return;
    if (this.runs.length === 0 && !this.touched) return;
    this.done = true;
    this.host.settled({
      rev: this.rev,
      directiveId: this.directive.id,
      runs: this.runs,
      aborted: this.aborted,
      completed: this.completed,
      observeToSettleMs: this.host.now() - this.observedAt,
    });
  }
}
