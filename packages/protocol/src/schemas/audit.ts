import { z } from 'zod';
import { LevelSchema, DirectiveSchema } from './directives.ts';
import { JournalEventSchema, PermittedClassSchema } from './permits.ts';
import { LAUNCHER_EVENT_TYPES, LauncherEventSchema } from './tokens.ts';

/**
 * The audit log as its readers (CLI audit tail, console, drills, runbook) take it: one record
 * shape, and a payload schema per event name. Payloads are open: a reader relies on the fields
 * named here, and fields a newer control plane adds (or an event's free-form details, such as a
 * rule's values on `kill_switch.fired`) stay on the record.
 */

/** One record of the hash-chained audit log (`GET /v1/audit`). */
export const AuditRecordSchema = z.object({
  seq: z.number().int().min(1),
  ts: z.string(),
  type: z.string(),
  actor: z.string(),
  tenant: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});

const str = z.string();
const int = z.number().int();

/** What a launcher did to its agent process, as audited: the launcher's report plus who it is. */
const launcherPayload = LauncherEventSchema.omit({ type: true }).extend({
  launcherId: str,
  agent: str,
  type: z.enum(LAUNCHER_EVENT_TYPES),
});

/** A worker's journal event, as audited (the event itself). */
const journalPayload = <T extends (typeof JournalEventSchema.options)[number]>(event: T) => event.loose();

const [
  timerCancelled,
  queueDiscarded,
  queueDrained,
  memoryReverted,
  memoryCommitted,
  effectDenied,
  inFlight,
] = JournalEventSchema.options;

/**
 * The payload (`data`) of each audit event, by name (DESIGN.md, "Events"; launcher and journal
 * events under their own names). Each is written by the control plane in one place; its tests
 * check every record they produce against these.
 */
export const AUDIT_PAYLOADS = {
  operator_action: z.looseObject({ action: str }),
  'kill_switch.fired': z.looseObject({
    directiveId: str,
    rev: int,
    level: LevelSchema,
    scope: str,
    capabilities: z.array(str).readonly().nullable(),
    /** `operator`, `escalation`, or the kind of the automatic trigger (a rule, the deadman). */
    trigger: str,
    reason: str,
    rule: str.optional(),
  }),
  'directive.issued': z.looseObject({ directive: DirectiveSchema }),
  'directive.cleared': z.looseObject({
    directiveId: str,
    /** The rev at which it left the switchboard (null for records written before it was kept). */
    rev: int.nullable(),
    scope: str,
    level: LevelSchema,
    replacedBy: str.optional(),
    justification: str.optional(),
    approvalRequest: str.optional(),
    approvedBy: z.array(str).optional(),
  }),
  'directive.escalated': z.looseObject({
    from: str,
    fromLevel: LevelSchema,
    directiveId: str,
    level: LevelSchema,
    afterMs: z.number(),
    /** What had not acknowledged: worker ids, and launchers as `launcher:<id>`. */
    laggards: z.array(str),
    scope: str,
  }),
  'session.halted': z.looseObject({
    workerId: str,
    agent: str,
    directiveId: str,
    rev: int,
    runs: z.array(str),
    aborted: int,
    completed: int,
    /** Flip → this worker's halted report, in ms; null when the flip's time is unknown. */
    timeToStopMs: z.number().nullable(),
    observeToSettleMs: z.number(),
  }),
  /**
   * The effect ledger rows one transaction wrote (of this record's tenant), each as
   * `[permitId, digest]`: SHA-256 (base64url) of the row's canonical state (server `audit/ledger.ts`).
   */
  'ledger.committed': z.looseObject({ rows: z.array(z.tuple([str, str])) }),
  /** One effect's intent, as control planes before `ledger.committed` wrote it (old logs). */
  'effect.intent': z.looseObject({
    permitId: str,
    rev: int,
    runId: str,
    agent: str,
    capability: str,
    class: PermittedClassSchema,
    idempotencyKey: str.nullable(),
    argsDigest: str.nullable(),
    coolOffMs: z.number(),
  }),
  'effect.aborted': z.looseObject({
    permitId: str,
    runId: str,
    capability: str,
    class: PermittedClassSchema,
    reason: str,
    directiveId: str,
  }),
  'deadman.triggered': z.looseObject({
    agent: str,
    runs: z.array(str),
    /** The directives the deadman issued. */
    directives: z.array(str),
    killAfterMs: z.number(),
  }),
  'resume.refused': z.looseObject({
    directiveId: str,
    level: LevelSchema,
    scope: str,
    /** A worker's run resume refused by a stop still covering it. */
    runId: str.optional(),
    /** An operator's resume refused (`same_release`). */
    reason: str.optional(),
  }),
  'token.revoked': z.looseObject({ tenant: str, revokedBy: str }),
  'policy.changed': z.looseObject({
    version: int,
    previous: int.nullable(),
    digest: str,
    previousDigest: str.nullable(),
    rules: z.array(str),
  }),
  'policy.shadow_fired': z.looseObject({
    rule: str,
    policyVersion: int.optional(),
    wouldIssue: z.looseObject({ level: str, scope: str }).optional(),
    run: str.optional(),
    agent: str.optional(),
    values: z.record(str, z.unknown()).optional(),
  }),
  'drill.recorded': z.looseObject({
    drillId: str,
    spec: str,
    digest: str,
    result: str,
    mode: str,
    scenarios: z.array(z.looseObject({ id: str, status: str })),
  }),
  'audit.checkpoint': z.looseObject({
    size: int,
    rootHash: str,
    keyId: str,
    signature: str,
    signedAt: str,
  }),
  'local_rule.fired': z.looseObject({
    runId: str,
    agent: str,
    workerId: str,
    /** The SDK's local rule that halted the run by itself (`loop_length`, `cost_cap`). */
    rule: str,
    value: z.number(),
    limit: z.number(),
  }),
  'process.started': launcherPayload,
  'process.killed': launcherPayload,
  'process.exited': launcherPayload,
  'process.isolated': launcherPayload,
  'process.released': launcherPayload,
  'process.restart_refused': launcherPayload,
  'process.frozen': launcherPayload,
  'process.thawed': launcherPayload,
  'process.inspected': launcherPayload,
  'egress.refused': launcherPayload,
  'egress.allowed': launcherPayload,
  'timer.cancelled': journalPayload(timerCancelled),
  'queue.discarded': journalPayload(queueDiscarded),
  'queue.drained': journalPayload(queueDrained),
  'memory.reverted': journalPayload(memoryReverted),
  'memory.committed': journalPayload(memoryCommitted),
  'effect.denied': journalPayload(effectDenied),
  'in_flight_tool_calls.status': journalPayload(inFlight),
} as const;

/** The name of an audit event with a typed payload. */
export type AuditType = keyof typeof AUDIT_PAYLOADS;

/**
 * The payload of `record` checked against its event's schema, or null when the record is of
 * another event or its payload is not that event's (a reader that does not trust the log's
 * writer, such as a drill reading another deployment).
 */
export function auditPayload<K extends AuditType>(
  record: { type: string; data: unknown },
  type: K,
): z.infer<(typeof AUDIT_PAYLOADS)[K]> | null {
  if (record.type !== type) return null;
  const checked = AUDIT_PAYLOADS[type].safeParse(record.data);
  return checked.success ? (checked.data as z.infer<(typeof AUDIT_PAYLOADS)[K]>) : null;
}
