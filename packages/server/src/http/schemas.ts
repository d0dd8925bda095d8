import { z } from 'zod';
import {
  LEVELS,
  MAX_RUNS_PER_HEARTBEAT,
  ROLES,
  isCapability,
  isIdentifier,
  isReleaseValue,
} from '@killpath/protocol';

const id = z.string().refine(isIdentifier, 'must be 1-128 characters of letters, digits and ._:@-');
/** A capability name: an identifier, or two joined by one `/` (`mcp:github/create_issue`). */
const capability = z
  .string()
  .refine(isCapability, 'must be an identifier, or two identifiers joined by one /');
const releaseValue = z
  .string()
  .refine(isReleaseValue, 'must be 1-128 characters of letters, digits and ._:@/+~-');
/** A release `{ code?, model?, prompt? }`: what a worker runs. */
const release = z.strictObject({
  code: releaseValue.optional(),
  model: releaseValue.optional(),
  prompt: releaseValue.optional(),
});
const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => s.trim().length > 0, 'must not be empty');

/** Body of `POST /v1/directives`. Unknown fields are rejected. */
export const IssueDirectiveBody = z.strictObject({
  level: z.enum(LEVELS),
  scope: z.string().max(300),
  capabilities: z.array(capability).min(1).max(64).optional(),
  reason: text(500),
  justification: text(4000),
  graceMs: z.number().int().min(0).max(3_600_000).optional(),
  drain: z.enum(['discard', 'drain']).optional(),
  memory: z.enum(['revert', 'commit']).optional(),
  rate: z
    .strictObject({ perSecond: z.number().positive().max(1e6), per: z.enum(['run', 'agent']) })
    .optional(),
  escalation: z
    .array(z.strictObject({ level: z.enum(LEVELS), afterMs: z.number().int().min(0).max(86_400_000) }))
    .max(4)
    .optional(),
  breakGlass: text(4000).optional(),
  tenant: id.optional(),
});
export type IssueDirectiveBody = z.infer<typeof IssueDirectiveBody>;

/** Body of `POST /v1/agents/{tenant}/{agent}/kill`. */
export const AgentKillBody = z.strictObject({
  reason: text(500).optional(),
  justification: text(4000),
  graceMs: z.number().int().min(0).max(3_600_000).optional(),
});

/**
 * Body of `POST /v1/directives/{id}/resume`. `sameRelease` is the operator's reason why resuming
 * onto a release the directive stopped is safe (without it such a resume is refused).
 */
export const ResumeBody = z.strictObject({
  justification: text(4000),
  breakGlass: text(4000).optional(),
  sameRelease: text(4000).optional(),
});

/** Body of `POST /v1/directives/{id}/step`: one level up or down the ladder, replacing the directive. */
export const StepBody = z.strictObject({
  direction: z.enum(['up', 'down']),
  justification: text(4000),
  rate: z
    .strictObject({ perSecond: z.number().positive().max(1e6), per: z.enum(['run', 'agent']) })
    .optional(),
  breakGlass: text(4000).optional(),
});
export type StepBody = z.infer<typeof StepBody>;

/** Body of `POST /v1/launchers/{id}/events`: what a launcher did to its agent process, for the audit log. */
export const LauncherEventBody = z.strictObject({
  events: z
    .array(
      z.strictObject({
        type: z.enum([
          'process.started',
          'process.killed',
          'process.exited',
          'process.isolated',
          'process.released',
          'process.restart_refused',
          'process.frozen',
          'process.thawed',
          'process.inspected',
          'egress.refused',
          'egress.allowed',
        ]),
        directiveId: z.string().max(200).nullable().optional(),
        pid: z.number().int().min(0).optional(),
        signal: z.string().max(20).nullable().optional(),
        code: z.number().int().nullable().optional(),
        ms: z.number().min(0).optional(),
        cut: z.number().int().min(0).optional(),
        destination: z.string().max(300).optional(),
        detail: z.string().max(2000).optional(),
        /** What held the agent's processes: `cgroup` or `process-group`. */
        isolation: z.enum(['cgroup', 'process-group']).optional(),
        /** The processes the action reached (ended, frozen, thawed, inspected). */
        pids: z.array(z.number().int().min(0)).max(1000).optional(),
        /** `process.inspected`: the inspection asked for and where the launcher wrote the evidence. */
        requestId: z.string().max(200).optional(),
        path: z.string().max(4000).optional(),
      }),
    )
    .min(1)
    .max(100),
});
export type LauncherEventBody = z.infer<typeof LauncherEventBody>;

/** Body of `POST /v1/runs/{id}/inspect`: take the evidence of a frozen run's processes. */
export const InspectBody = z.strictObject({
  justification: text(4000),
  /** The run's tenant, for an admin whose token spans every tenant. */
  tenant: id.optional(),
  /** Write a core file of each process where gcore is installed. Default true. */
  cores: z.boolean().optional(),
});
export type InspectBody = z.infer<typeof InspectBody>;

/** Body of `POST /v1/tokens`. */
export const TokenBody = z.strictObject({
  role: z.enum(ROLES),
  tenant: z.union([id, z.literal('*')]),
  agent: id.optional(),
  name: text(200).optional(),
  /** Lifetime from now, in ms (at least a second, at most ten years). */
  ttlMs: z
    .number()
    .int()
    .min(1000)
    .max(10 * 366 * 86_400_000)
    .optional(),
  /** When the token stops working (ISO 8601, in the future). */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});
export type TokenBody = z.infer<typeof TokenBody>;

/** Body of `POST /v1/launchers/{id}/token`: an agent token for the launcher an operator starts. */
export const LauncherTokenBody = z.strictObject({
  tenant: id,
  agent: id,
  /** Lifetime from now, in ms (at least a minute; default 8 h, at most 24 h). */
  ttlMs: z.number().int().min(60_000).optional(),
});
export type LauncherTokenBody = z.infer<typeof LauncherTokenBody>;

/** Body of `POST /v1/tokens/{id}/revoke`. */
export const RevokeTokenBody = z.strictObject({ reason: text(2000) });

/** Body of `POST /v1/tokens/rotate-admin`. */
export const RotateAdminBody = z.strictObject({ reason: text(2000).optional() });

const runReport = z.strictObject({
  runId: id,
  parentRunId: id.nullable(),
  lineage: z.array(id).max(256),
  state: z.union([z.literal('running'), z.enum(LEVELS)]),
  effects: z.number().int().min(0),
  denied: z.number().int().min(0),
  inFlight: z.number().int().min(0),
});

/** Body of `POST /v1/workers/{id}/heartbeat`. */
export const HeartbeatBody = z.strictObject({
  rev: z.number().int().min(0),
  features: z.array(id).max(256),
  runs: z
    .array(runReport)
    .max(
      MAX_RUNS_PER_HEARTBEAT,
      `at most ${MAX_RUNS_PER_HEARTBEAT} runs per heartbeat (one worker hosting more should be split)`,
    ),
  pid: z.number().int().min(0),
  sinceContactMs: z.number().min(0),
  launcher: id.optional(),
  release: release.optional(),
  capabilities: z.array(capability).max(4096).optional(),
});

/** Body of `POST /v1/workers/{id}/ack`. */
export const AckBody = z.strictObject({ rev: z.number().int().min(0) });

/** Body of `POST /v1/workers/{id}/halted`. */
export const HaltedBody = z.strictObject({
  rev: z.number().int().min(0),
  directiveId: z.string().max(200),
  runs: z.array(id).max(MAX_RUNS_PER_HEARTBEAT, `at most ${MAX_RUNS_PER_HEARTBEAT} runs per report`),
  aborted: z.number().int().min(0),
  completed: z.number().int().min(0),
  observeToSettleMs: z.number().min(0),
});

/** Body of `POST /v1/runs`. */
export const RunBody = z.strictObject({
  runId: id,
  parentRunId: id.nullable(),
  lineage: z.array(id).max(256),
  features: z.array(id).max(256),
  workerId: id,
});

const json = z.record(z.string(), z.unknown());

/** Body of `POST /v1/permits`. */
export const PermitBody = z.strictObject({
  workerId: id,
  runId: id,
  lineage: z.array(id).max(256),
  features: z.array(id).max(256),
  release: release.optional(),
  capability,
  class: z.enum(['write', 'irreversible']),
  idempotencyKey: z.string().min(1).max(256).nullable(),
  argsDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex digest')
    .nullable(),
  compensate: json.nullable(),
  seenRev: z.number().int().min(0).optional(),
});

/** Body of `POST /v1/permits/{id}/outcome`. */
export const OutcomeBody = z.strictObject({
  status: z.enum(['landed', 'failed', 'aborted']),
  result: z.unknown().optional(),
  error: z.string().max(4000).optional(),
  afterAbort: z.boolean().optional(),
});

/** Most items in one `POST /v1/permits/batch` or `POST /v1/permits/outcomes`. */
export const MAX_BATCH = 256;

/** Body of `POST /v1/permits/batch`: permit requests decided together (one durable commit). */
export const PermitBatchBody = z.strictObject({
  requests: z.array(PermitBody).min(1).max(MAX_BATCH),
});

/** Body of `POST /v1/permits/outcomes`: outcomes reported together. */
export const OutcomeBatchBody = z.strictObject({
  outcomes: z
    .array(OutcomeBody.extend({ permitId: id }))
    .min(1)
    .max(MAX_BATCH),
});

const journalEvent = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('timer.cancelled'),
    runId: id,
    timer: z.enum(['timeout', 'interval', 'retry']),
    label: z.string().max(200).nullable(),
    dueAt: z.string().max(40),
    directiveId: z.string().max(200).nullable(),
  }),
  z.strictObject({
    type: z.literal('queue.discarded'),
    runId: id.nullable(),
    queue: z.string().max(200),
    taskId: z.string().max(200),
    payload: z.unknown(),
    directiveId: z.string().max(200).nullable(),
  }),
  z.strictObject({
    type: z.literal('queue.drained'),
    runId: id.nullable(),
    queue: z.string().max(200),
    taskId: z.string().max(200),
    outcome: z.enum(['completed', 'failed']),
    directiveId: z.string().max(200).nullable(),
  }),
  z.strictObject({
    type: z.literal('memory.reverted'),
    runId: id,
    keys: z.array(z.string().max(500)).max(10_000),
    directiveId: z.string().max(200).nullable(),
  }),
  z.strictObject({
    type: z.literal('memory.committed'),
    runId: id,
    keys: z.array(z.string().max(500)).max(10_000),
    directiveId: z.string().max(200).nullable(),
  }),
  z.strictObject({
    type: z.literal('effect.denied'),
    runId: id,
    capability,
    class: z.enum(['read', 'write', 'irreversible']),
    reason: z.enum(['revoked', 'read_only', 'isolated']),
    directiveId: z.string().max(200).nullable(),
  }),
  z.strictObject({
    type: z.literal('in_flight_tool_calls.status'),
    runId: id,
    effectId: z.string().max(200),
    permitId: z.string().max(200).nullable(),
    capability,
    class: z.enum(['read', 'write', 'irreversible']),
    status: z.enum(['completed', 'aborted', 'failed']),
    directiveId: z.string().max(200).nullable(),
  }),
]);

/** Body of `POST /v1/journal`. */
export const JournalBody = z.strictObject({ workerId: id, events: z.array(journalEvent).max(5000) });

/** Body of `POST /v1/runs/{id}/resume`. */
export const ResumeRunBody = z.strictObject({
  workerId: id,
  lineage: z.array(id).max(256),
  features: z.array(id).max(256),
  release: release.optional(),
});
