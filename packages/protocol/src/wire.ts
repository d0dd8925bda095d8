import type { z } from 'zod';
import type {
  BreakGlassSchema,
  DirectiveSchema,
  DrainModeSchema,
  EscalationStepSchema,
  MemoryModeSchema,
  RateSchema,
  ReleaseCheckSchema,
  StreamDirectiveSchema,
} from './schemas/directives.ts';
import type {
  AckReportSchema,
  HaltedReportSchema,
  HeartbeatReportSchema,
  WorkerReportBatchSchema,
  WorkerReportItemSchema,
  RunRegistrationSchema,
  RunReportSchema,
} from './schemas/reports.ts';
import type {
  DeltaMessageSchema,
  InspectOrderSchema,
  KeepaliveMessageSchema,
  LauncherMessageSchema,
  LauncherOrdersSchema,
  SnapshotMessageSchema,
  StreamMessageSchema,
} from './schemas/stream.ts';
import type { PrincipalSchema } from './schemas/tokens.ts';
import type {
  FleetGroupSchema,
  FleetPageSchema,
  FleetStateSchema,
  FleetWorkerSchema,
  WorkerFlagsSchema,
} from './schemas/fleet.ts';

// Every wire shape is a zod schema in ./schemas/ (the `@killpath/protocol/schemas` entry); the
// types here are derived from them, so a shape and its check cannot drift. This entry imports
// the schemas as types only: importing it loads no zod (the CLI's `killpath kill` stays light).

/** Version of the wire protocol; bumped on an incompatible change. Readers accept every older version. */
export const PROTOCOL_VERSION = 1;

/**
 * The major version of a snapshot's `v` (a number, or a string such as `"2.1"`); `null` when it
 * has none (the first servers sent none: version 1). A reader refuses a major above
 * {@link PROTOCOL_VERSION}: it cannot know what the newer protocol means.
 */
export function protocolMajor(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : null;
  if (typeof v === 'string') {
    const m = /^\s*v?(\d+)/.exec(v);
    return m === null ? null : Number(m[1]);
  }
  return null;
}

/** How queued tasks of a halted run are treated: dropped at once, or allowed to finish inside the grace. */
export type DrainMode = z.infer<typeof DrainModeSchema>;

/** What a halt does to staged memory writes of the interrupted step. */
export type MemoryMode = z.infer<typeof MemoryModeSchema>;

/** Rate limit carried by a `throttle` directive: effects per second, per run or per agent. */
export type Rate = z.infer<typeof RateSchema>;

/** One automatic step up the ladder carried by a directive (see {@link EscalationStepSchema}). */
export type EscalationStep = z.infer<typeof EscalationStepSchema>;

/** The break-glass attestation of a directive spanning every tenant (see {@link BreakGlassSchema}). */
export type BreakGlass = z.infer<typeof BreakGlassSchema>;

/** One active order on the switchboard, as returned by the API (see {@link DirectiveSchema}). */
export type Directive = z.infer<typeof DirectiveSchema>;

/**
 * What a resume checked (`POST /v1/directives/{id}/resume` answers with it): the releases the
 * directive recorded at its commit, and the workers it would release that still run one of
 * them. Non-empty `running` refuses the resume (`same_release`) unless the operator says why it
 * is safe (`sameRelease`), which is then audited with this check.
 */
export type ReleaseCheck = z.infer<typeof ReleaseCheckSchema>;

/**
 * A directive as a worker's stream carries it: what the gate needs (id, rev, level, scope,
 * capabilities, rate, grace, drain, memory, escalation), without the operators' words (reason,
 * justification, actor, break-glass attestation), which stay with the people who may read the directive, nor the
 * releases it covered (a directive spanning tenants would tell one tenant what another runs).
 */
export type StreamDirective = z.infer<typeof StreamDirectiveSchema>;

/** The {@link StreamDirective} of a directive: a copy without reason, justification, actor, break-glass attestation and releases. */
export function streamDirective(d: Directive): StreamDirective {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { reason, justification, actor, releases, breakGlass, ...rest } = d;
  return rest;
}

/** The set of active directives at one revision. */
export interface Switchboard {
  rev: number;
  directives: Directive[];
}

/** First message on every worker stream: the whole switchboard this worker may see (see {@link SnapshotMessageSchema}). */
export type SnapshotMessage = z.infer<typeof SnapshotMessageSchema>;

/**
 * One revision step. Every rev bump reaches every stream so that gaps are detectable; a step
 * this worker may not see carries neither `issued` nor `cleared`.
 */
export type DeltaMessage = z.infer<typeof DeltaMessageSchema>;

/** Sent every `keepaliveMs` with the current rev; renews the worker's lease. */
export type KeepaliveMessage = z.infer<typeof KeepaliveMessageSchema>;

/** Everything a worker stream carries (the SSE `event` is the `type`, the `data` is the JSON). */
export type StreamMessage = z.infer<typeof StreamMessageSchema>;

/** State of one run as a worker reports it. */
export type RunReport = z.infer<typeof RunReportSchema>;

/** Periodic heartbeat from a worker (`POST /v1/workers/{id}/heartbeat`; see {@link HeartbeatReportSchema}). */
export type HeartbeatReport = z.infer<typeof HeartbeatReportSchema>;

/** A worker applied `rev` to its mirror (`POST /v1/workers/{id}/ack`). */
export type AckReport = z.infer<typeof AckReportSchema>;

/**
 * A worker has settled the effects covered by a directive: covered in-flight effects have
 * finished or been aborted, and new ones are refused (`POST /v1/workers/{id}/halted`).
 */
export type HaltedReport = z.infer<typeof HaltedReportSchema>;

/** One ack or halted report of a {@link WorkerReportBatch}, with its worker and kind. */
export type WorkerReportItem = z.infer<typeof WorkerReportItemSchema>;

/** Acks and halted reports of several workers sent together (`POST /v1/workers/reports`). */
export type WorkerReportBatch = z.infer<typeof WorkerReportBatchSchema>;

/** A worker-side run registration (`POST /v1/runs`), so operators can target it by id. */
export type RunRegistration = z.infer<typeof RunRegistrationSchema>;

/** The caller's identity as the control plane sees it (`GET /v1/whoami`; see {@link PrincipalSchema}). */
export type Principal = z.infer<typeof PrincipalSchema>;

/** One worker in the fleet view (see {@link FleetWorkerSchema}). */
export type FleetWorker = z.infer<typeof FleetWorkerSchema>;

/** A worker's state in the fleet view: `running`, the highest level covering one of its runs, or `stale`. */
export type FleetState = z.infer<typeof FleetStateSchema>;

/** Workers of one tenant and agent in the fleet view, counted without fetching them. */
export type FleetGroup = z.infer<typeof FleetGroupSchema>;

/** One page of `GET /v1/fleet` (see {@link FleetPageSchema}). */
export type FleetPage = z.infer<typeof FleetPageSchema>;

/** Ladder levels below halt that are in force on a worker's runs (see {@link WorkerFlagsSchema}). */
export type WorkerFlags = z.infer<typeof WorkerFlagsSchema>;

/** Result of verifying the audit chain: ok, or the first bad record and why. */
export type AuditVerdict =
  | { ok: true; records: number; head: string }
  | { ok: false; records: number; firstBad: number; reason: string };

/**
 * What a tenant's operator or viewer learns from `GET /v1/audit/verify`: whether the whole log
 * (every tenant's records, one chain) verifies, and nothing else. The record count, the head
 * hash and the first bad record describe the deployment, not the tenant: an admin's answer
 * ({@link AuditVerdict}) carries them.
 */
export interface AuditVerdictBrief {
  ok: boolean;
  /** Marks the brief answer: the details are an admin's. */
  brief: true;
}

/**
 * What the control plane orders a launcher (`killpath run`) to enforce on the agent process it
 * started (see {@link LauncherOrdersSchema}).
 */
export type LauncherOrders = z.infer<typeof LauncherOrdersSchema>;

/** An operator asked for the evidence of a frozen agent (`killpath inspect`; see {@link InspectOrderSchema}). */
export type InspectOrder = z.infer<typeof InspectOrderSchema>;

/** Everything a launcher stream carries. */
export type LauncherMessage = z.infer<typeof LauncherMessageSchema>;
