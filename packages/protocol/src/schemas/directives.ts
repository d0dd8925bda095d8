import { z } from 'zod';
import { LEVELS } from '../levels.ts';
import { RELEASE_PARTS } from '../release.ts';
import { ReleaseReadSchema, count, id, capability, text } from './parts.ts';

/** A level of the ladder. */
export const LevelSchema = z.enum(LEVELS);

/** How queued tasks of a halted run are treated: dropped at once, or allowed to finish inside the grace. */
export const DrainModeSchema = z.enum(['discard', 'drain']);

/** What a halt does to staged memory writes of the interrupted step. */
export const MemoryModeSchema = z.enum(['revert', 'commit']);

/** Rate limit carried by a `throttle` directive: effects per second, per run or per agent. */
export const RateSchema = z.strictObject({
  perSecond: z.number().positive().max(1e6),
  per: z.enum(['run', 'agent']),
});

/**
 * One automatic step up the ladder carried by a directive: if, `afterMs` after the directive's
 * commit, it is still active and not every covered worker has acknowledged it (reported halted
 * for `halt`/`kill`, acked its rev otherwise), the control plane issues `level` at the same
 * scope on its own (`directive.escalated`).
 */
export const EscalationStepSchema = z.strictObject({
  level: LevelSchema,
  afterMs: z.number().int().min(0).max(86_400_000),
});

/** A scope as a directive carries it (parsed; `scopeText` is its string form). */
export const ScopeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('global') }),
  z.object({ kind: z.literal('tenant'), tenant: z.string() }),
  z.object({ kind: z.literal('agent'), tenant: z.string(), agent: z.string() }),
  z.object({ kind: z.literal('run'), run: z.string() }),
  z.object({ kind: z.literal('feature'), feature: z.string() }),
  z.object({
    kind: z.literal('release'),
    part: z.enum(RELEASE_PARTS),
    value: z.string(),
    agent: z.string().nullable(),
  }),
]);

/**
 * The break-glass attestation of a directive spanning every tenant: who attested, when, and why.
 * It raises an alert at once and the console shows it until the directive is cleared.
 */
export const BreakGlassSchema = z.object({
  /** The attesting token's name. */
  by: z.string(),
  tokenId: z.string(),
  /** ISO 8601 time of the attestation (the directive's commit). */
  at: z.string(),
  /** The attestation text. */
  why: z.string(),
});

/**
 * One active order on the switchboard, as the API returns it. What a reader checks: the shape
 * (a newer control plane's extra fields are dropped, not refused); what the control plane
 * accepts from an operator is {@link IssueDirectiveBodySchema}.
 */
export const DirectiveSchema = z.object({
  id: z.string(),
  /** The revision at which this directive was committed. */
  rev: count,
  level: LevelSchema,
  scope: ScopeSchema,
  /** The string form of `scope`, for humans and logs. */
  scopeText: z.string(),
  /** Restricts a `feature`, `run` or `release` scope to one tenant (null: every tenant). */
  tenant: z.string().nullable(),
  /** The capabilities it covers, or null for every one. */
  capabilities: z.array(z.string()).readonly().nullable(),
  rate: z.object({ perSecond: z.number(), per: z.enum(['run', 'agent']) }).nullable(),
  /** Automatic steps up the ladder (see {@link EscalationStepSchema}); a halt always carries a kill step. */
  escalation: z.array(z.object({ level: LevelSchema, afterMs: z.number() })),
  /** The directive this one was escalated or stepped from, or `null`. */
  escalatedFrom: z.string().nullable(),
  graceMs: z.number(),
  drain: DrainModeSchema,
  /** What a halt does to memory writes staged in the current step: revert (default) or commit. */
  memory: MemoryModeSchema,
  reason: z.string(),
  justification: z.string(),
  /** Who issued it: a token's name, or `supervisor:<rule>` for automatic triggers. */
  actor: z.string(),
  /** Wall-clock time of the commit, ISO 8601. */
  issuedAt: z.string(),
  /** Set once the directive is cleared (resumed); cleared directives are no longer on the switchboard. */
  clearedAt: z.string().nullable(),
  clearedRev: z.number().int().nullable(),
  /**
   * The releases of the runs it covered at its commit (the workers hosting them), distinct and
   * sorted; a step or an escalation adds its predecessor's. A resume is checked against them.
   * Empty for directives older than this field.
   */
  releases: z.array(ReleaseReadSchema),
  /** The break-glass attestation it was issued with (directives spanning every tenant); null or absent otherwise. */
  breakGlass: BreakGlassSchema.nullable().optional(),
});

/**
 * A directive as a worker's stream carries it: what the gate needs, without the operators' words
 * (reason, justification, actor, break-glass attestation) nor the releases it covered.
 */
export const StreamDirectiveSchema = DirectiveSchema.omit({
  reason: true,
  justification: true,
  actor: true,
  releases: true,
  breakGlass: true,
});

/** Body of `POST /v1/directives`. Unknown fields are rejected. */
export const IssueDirectiveBodySchema = z.strictObject({
  level: LevelSchema,
  scope: z.string().max(300),
  capabilities: z.array(capability).min(1).max(64).optional(),
  reason: text(500),
  justification: text(4000),
  graceMs: z.number().int().min(0).max(3_600_000).optional(),
  drain: DrainModeSchema.optional(),
  memory: MemoryModeSchema.optional(),
  rate: RateSchema.optional(),
  escalation: z.array(EscalationStepSchema).max(4).optional(),
  breakGlass: text(4000).optional(),
  tenant: id.optional(),
});

/** Body of `POST /v1/agents/{tenant}/{agent}/kill`. */
export const AgentKillBodySchema = z.strictObject({
  reason: text(500).optional(),
  justification: text(4000),
  graceMs: z.number().int().min(0).max(3_600_000).optional(),
});

/**
 * Body of `POST /v1/directives/{id}/resume`. `sameRelease` is the operator's reason why resuming
 * onto a release the directive stopped is safe (without it such a resume is refused).
 */
export const ResumeBodySchema = z.strictObject({
  justification: text(4000),
  breakGlass: text(4000).optional(),
  sameRelease: text(4000).optional(),
});

/** Body of `POST /v1/directives/{id}/step`: one level up or down the ladder, replacing the directive. */
export const StepBodySchema = z.strictObject({
  direction: z.enum(['up', 'down']),
  justification: text(4000),
  rate: RateSchema.optional(),
  breakGlass: text(4000).optional(),
});

/** Body of `POST /v1/runs/{id}/inspect`: take the evidence of a frozen run's processes. */
export const InspectBodySchema = z.strictObject({
  justification: text(4000),
  /** The run's tenant, for an admin whose token spans every tenant. */
  tenant: id.optional(),
  /** Write a core file of each process where gcore is installed. Default true. */
  cores: z.boolean().optional(),
});

/** The release checked by a resume, with the workers that still run it. */
export const ReleaseCheckSchema = z.object({
  /** The releases recorded by the directive (its `releases`), plus a release scope's own part. */
  checked: z.array(ReleaseReadSchema),
  /** Workers the resume would release that still run a checked release. */
  running: z.array(
    z.object({ workerId: z.string(), tenant: z.string(), agent: z.string(), release: ReleaseReadSchema }),
  ),
  /** The operator's reason for resuming onto the same release, when given. */
  sameRelease: z.string().nullable(),
});
