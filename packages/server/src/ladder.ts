import {
  KillpathError,
  LEVELS,
  LEVEL_RULES,
  levelRank,
  type Directive,
  type EscalationStep,
  type Level,
  type Rate,
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
  const notNarrowable = LEVEL_RULES[body.level].notNarrowable;
  if (notNarrowable !== null && body.capabilities !== undefined)
    throw new KillpathError('invalid_request', notNarrowable);
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

/** True when `step` goes up the ladder from `level`. */
export function isAbove(step: EscalationStep, level: Level): boolean {
  return LEVELS.indexOf(step.level) > LEVELS.indexOf(level);
}
