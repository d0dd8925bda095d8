import {
  coversRun,
  distinctReleases,
  formatRelease,
  sameRelease,
  type Coverage,
  type Directive,
  type Release,
  type ReleaseCheck,
} from '@killpath/protocol';
import type { LiveWorker } from './fleet.ts';

/**
 * The releases of the runs `c` covers among `workers` (their runs or the worker itself), distinct
 * and sorted: what a directive records at its commit. Workers without a release add nothing.
 */
export function releasesCovered(c: Coverage, workers: readonly LiveWorker[]): Release[] {
  return distinctReleases(
    workers.filter((w) => w.identities.some((r) => coversRun(c, r))).map((w) => w.release),
  );
}

/**
 * Checks a resume of `d` against the releases it recorded: every worker the resume would release
 * (it hosts a run `d` covers, or would start one) that still runs a recorded release, or, for a
 * `release:` scope, still runs the release part the scope names. `sameRelease` is the operator's
 * reason for resuming anyway; it is carried into the result for the record, and does not change
 * what was found.
 */
export function checkReleases(
  d: Pick<Directive, 'scope' | 'tenant' | 'capabilities' | 'releases'>,
  workers: readonly LiveWorker[],
  sameReleaseReason: string | null,
): ReleaseCheck {
  const s = d.scope;
  const own: Release[] = s.kind === 'release' ? [{ [s.part]: s.value }] : [];
  const checked = distinctReleases([...d.releases, ...own]);
  const running: ReleaseCheck['running'] = [];
  for (const w of workers) {
    if (w.release === null || !w.identities.some((r) => coversRun(d, r))) continue;
    // A release scope covers a worker only by its release: one it still covers runs it.
    const same = s.kind === 'release' || d.releases.some((r) => sameRelease(r, w.release));
    if (same) running.push({ workerId: w.workerId, tenant: w.tenant, agent: w.agent, release: w.release });
  }
  return { checked, running, sameRelease: sameReleaseReason };
}

/** One line for people: `checked releases code=A,prompt=v1; code=B` or `no release recorded`. */
export function describeCheck(check: ReleaseCheck): string {
  if (check.checked.length === 0) return 'no release recorded';
  return `checked release${check.checked.length === 1 ? '' : 's'} ${check.checked.map(formatRelease).join('; ')}`;
}
