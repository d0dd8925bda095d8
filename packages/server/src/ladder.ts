import {
  KillpathError,
  LEVELS,
  coversRun,
  isStopLevel,
  levelRank,
  type Directive,
  type EscalationStep,
  type Level,
  type Rate,
  type RunIdentity,
  type WorkerFlags,
} from '@killpath/protocol';

/** Extra time after a halt's grace before it escalates to kill: the worker's report must travel. */
export const DEFAULT_ESCALATION_SLACK_MS = 1000;

/**
 * Which ladder steps the control plane may take on its own (automatic escalation of an
 * automatic directive, supervisor rules): `auto`, or `human` (held for a person unless the
 * trigger is marked critical). A directive issued by a person carries that person's approval
 * for its own escalation steps; a halt's escalation to kill after its grace is guarantee 8 and
 * is never held.
 */
export type AutomationPolicy = Record<Level, 'auto' | 'human'>;

/** Throttle automatic; degrade automatic (and every degrade alerts); isolate, freeze and kill need a human. */
export const DEFAULT_AUTOMATION: AutomationPolicy = Object.freeze({
  throttle: 'auto',
  degrade: 'auto',
  isolate: 'human',
  halt: 'auto',
  freeze: 'human',
  kill: 'human',
});

/** Parses `--auto-levels throttle,degrade,halt` into a policy (listed levels auto, the rest human). */
export function automationFrom(list: string): AutomationPolicy {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const n of names) {
    if (!(LEVELS as readonly string[]).includes(n))
      throw new KillpathError(
        'invalid_request',
        `unknown level "${n}" in the automation list (levels: ${LEVELS.join(', ')})`,
      );
  }
  const out = {} as AutomationPolicy;
  for (const l of LEVELS) out[l] = names.includes(l) ? 'auto' : 'human';
  return out;
}

/** Actor prefixes of directives that no person issued. */
const AUTOMATIC_ACTORS = ['escalation:', 'supervisor:', 'watchdog:', 'deadman:'];

/** True when a person issued `d` (through the API, CLI or console), false for automatic triggers. */
export function issuedByHuman(d: Pick<Directive, 'actor'>): boolean {
  return !AUTOMATIC_ACTORS.some((p) => d.actor.startsWith(p));
}

/**
 * Checks the level-specific parts of a directive body and returns its escalation steps: a
 * throttle needs a rate and only a throttle may carry one; an isolate cuts the whole agent off
 * and cannot be narrowed to capabilities; each escalation step must be above the level. A halt
 * without a kill step and not narrowed to capabilities gets one at `graceMs + slackMs` (guarantee 8).
 * @throws KillpathError `invalid_request`
 */
export function checkLevel(
  body: {
    level: Level;
    rate?: Rate | undefined;
    capabilities?: string[] | undefined;
    escalation?: EscalationStep[] | undefined;
  },
  graceMs: number,
  slackMs: number,
): EscalationStep[] {
  if (body.level === 'throttle' && body.rate === undefined) {
    throw new KillpathError(
      'invalid_request',
      'a throttle needs a rate: { "perSecond": N, "per": "run" | "agent" }',
    );
  }
  if (body.level !== 'throttle' && body.rate !== undefined) {
    throw new KillpathError('invalid_request', `only a throttle carries a rate, not ${body.level}`);
  }
  if (body.level === 'isolate' && body.capabilities !== undefined) {
    throw new KillpathError(
      'invalid_request',
      'isolate cuts the whole agent off and cannot be narrowed to capabilities; to revoke tools, use degrade with capabilities',
    );
  }
  if (body.level === 'freeze' && body.capabilities !== undefined) {
    throw new KillpathError(
      'invalid_request',
      'freeze stops the whole process and cannot be narrowed to capabilities; to stop tools, use halt with capabilities',
    );
  }
  const steps = [...(body.escalation ?? [])];
  for (const s of steps) {
    if (levelRank(s.level) <= levelRank(body.level)) {
      throw new KillpathError(
        'invalid_request',
        `an escalation step must go up the ladder: ${s.level} is not above ${body.level}`,
      );
    }
  }
  // A frozen tool is not a stopped agent: only a run-wide halt carries the kill of guarantee 8.
  if (body.level === 'halt' && body.capabilities === undefined && !steps.some((s) => s.level === 'kill'))
    steps.push({ level: 'kill', afterMs: graceMs + slackMs });
  return steps.sort((a, b) => a.afterMs - b.afterMs);
}

/** True when `a` and `b` have the same scope and capabilities (a throttle re-dial replaces, a step replaces). */
export function sameTarget(
  a: Pick<Directive, 'scopeText' | 'capabilities'>,
  b: Pick<Directive, 'scopeText' | 'capabilities'>,
): boolean {
  const key = (c: readonly string[] | null) => (c === null ? '' : [...c].sort().join(','));
  return a.scopeText === b.scopeText && key(a.capabilities) === key(b.capabilities);
}

/**
 * The levels short of a stop in force on runs, from the control plane's own switchboard: the
 * lowest throttle rate, revoked capabilities (a degrade or a capability-narrowed stop; `*` for
 * read-only), isolation, a freeze.
 */
export function flagsFor(active: readonly Directive[], runs: readonly RunIdentity[]): WorkerFlags {
  let throttled: Rate | null = null;
  const degraded = new Set<string>();
  let isolated = false;
  let frozen = false;
  for (const d of active) {
    if (!runs.some((r) => coversRun(d, r))) continue;
    if (
      d.level === 'throttle' &&
      d.rate !== null &&
      (throttled === null || d.rate.perSecond < throttled.perSecond)
    )
      throttled = d.rate;
    if (d.level === 'degrade' || (isStopLevel(d.level) && d.capabilities !== null)) {
      for (const c of d.capabilities ?? ['*']) degraded.add(c);
    }
    if (d.level === 'isolate') isolated = true;
    if (d.level === 'freeze') frozen = true;
  }
  return { throttled, degraded: [...degraded].sort(), isolated, frozen };
}

/** The run-wide (not capability-narrowed) directive of `level` covering any of `runs` with the highest rank, earliest first. */
export function covering(
  active: readonly Directive[],
  runs: readonly RunIdentity[],
  levels: readonly Level[],
): Directive | null {
  let best: Directive | null = null;
  for (const d of active) {
    if (d.capabilities !== null || !levels.includes(d.level)) continue;
    if (!runs.some((r) => coversRun(d, r))) continue;
    if (
      best === null ||
      levelRank(d.level) > levelRank(best.level) ||
      (d.level === best.level && d.rev < best.rev)
    )
      best = d;
  }
  return best;
}
