/**
 * `@killpath/protocol/schemas`: every wire shape as a zod schema. The control plane validates
 * what it receives with them; the SDK, the CLI and the console check what they read with them.
 * The types of the main entry (`Directive`, `HeartbeatReport`, …) are derived from these, so a
 * field is declared once. A separate entry so that importing the protocol's types and pure
 * functions loads no zod.
 *
 * Two kinds: bodies the control plane accepts (`*BodySchema`, reports and requests) are strict
 * (an unknown field is a 400) with the limits the server enforces; shapes a client reads
 * (`DirectiveSchema`, stream frames, pages) check types only, and drop fields a newer control
 * plane adds.
 */
export { ReleaseSchema, ReleaseReadSchema } from './parts.ts';
export {
  LevelSchema,
  DrainModeSchema,
  MemoryModeSchema,
  RateSchema,
  EscalationStepSchema,
  ScopeSchema,
  BreakGlassSchema,
  DirectiveSchema,
  StreamDirectiveSchema,
  IssueDirectiveBodySchema,
  AgentKillBodySchema,
  ResumeBodySchema,
  StepBodySchema,
  InspectBodySchema,
  ReleaseCheckSchema,
} from './directives.ts';
export {
  RunReportSchema,
  HeartbeatReportSchema,
  AckReportSchema,
  HaltedReportSchema,
  WorkerReportItemSchema,
  WorkerReportBatchSchema,
  RunRegistrationSchema,
  ResumeRequestSchema,
  isAckReport,
  isHaltedReport,
  isWorkerReportBatch,
} from './reports.ts';
export {
  MAX_BATCH,
  PermittedClassSchema,
  PermitRequestSchema,
  PermitOutcomeSchema,
  PermitBatchSchema,
  OutcomeReportSchema,
  OutcomeBatchSchema,
  JournalEventSchema,
  JournalBatchSchema,
  EffectStatusSchema,
  PermitSchema,
  PermitResponseSchema,
  LedgerEntrySchema,
} from './permits.ts';
export {
  TokenBodySchema,
  LauncherTokenBodySchema,
  RevokeTokenBodySchema,
  RotateAdminBodySchema,
  PrincipalSchema,
  LAUNCHER_EVENT_TYPES,
  LauncherEventSchema,
  LauncherEventBodySchema,
} from './tokens.ts';
export {
  SnapshotMessageSchema,
  DeltaMessageSchema,
  KeepaliveMessageSchema,
  StreamMessageSchema,
  LauncherOrdersSchema,
  InspectOrderSchema,
  LauncherMessageSchema,
} from './stream.ts';
export {
  FleetStateSchema,
  WorkerFlagsSchema,
  FleetWorkerSchema,
  FleetGroupSchema,
  FleetPageSchema,
} from './fleet.ts';
export {
  PolicyApplyBodySchema,
  PolicyRollbackBodySchema,
  ApproveBodySchema,
  AuditVerifyBodySchema,
  AuditRotateBodySchema,
  WatchdogBeatBodySchema,
  WatchdogTripBodySchema,
  WatchdogAlertBodySchema,
} from './operations.ts';
export { SPEC_DIGEST, LatencySummarySchema, ScenarioResultSchema, RehearsalInputSchema } from './drill.ts';
export {
  LocalRuleSchema,
  LocalHaltSchema,
  RunTelemetrySchema,
  TelemetryBatchSchema,
  RunLimitsSchema,
  WorkerSettingsSchema,
} from './telemetry.ts';
export { AuditRecordSchema, AUDIT_PAYLOADS, auditPayload } from './audit.ts';
export type { AuditType } from './audit.ts';
