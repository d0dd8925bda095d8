export {
  LEVELS,
  LEVEL_RULES,
  levelRank,
  isStopLevel,
  stepLevel,
  refusalReason,
  EFFECT_CLASSES,
  ROLES,
} from './levels.ts';
export type { Level, LevelRule, EffectClass, Role, RefusalReason } from './levels.ts';
export { compileRun, decideEffect, effectOf, flagsOf, ordersFor, refusingDirective } from './decision.ts';
export type { Decidable, RunDecision, EffectDecision, OrderKind, ProcessOrders } from './decision.ts';
export {
  SCOPE_KINDS,
  parseScope,
  formatScope,
  coversRun,
  coversEffect,
  scopeTenant,
  isIdentifier,
  isCapability,
  isLoopbackHost,
} from './scope.ts';
export type { Scope, ScopeKind, RunIdentity, Coverage } from './scope.ts';
export {
  RELEASE_PARTS,
  isReleaseValue,
  isReleasePart,
  checkRelease,
  parseRelease,
  formatRelease,
  sameRelease,
  distinctReleases,
} from './release.ts';
export type { Release, ReleasePart } from './release.ts';
export {
  ERROR_CODES,
  HTTP_STATUS,
  KillpathError,
  toWire,
  isWireError,
  codeForStatus,
  errorFromWire,
  errorFromWireText,
  retryAfterMs,
} from './errors.ts';
export type { ErrorCode, WireError } from './errors.ts';
export { PROTOCOL_VERSION, protocolMajor, streamDirective } from './wire.ts';
export { MAX_RUNS_PER_HEARTBEAT } from './limits.ts';
export { APPROVAL_ACTIONS } from './approvals.ts';
export type { ApprovalAction, ApproverRole, Approval, ApprovalRequest } from './approvals.ts';
export { KILL_CANNOT_END_IT, flagWords, workerWarning } from './flags.ts';
export type {
  DrainMode,
  MemoryMode,
  Rate,
  EscalationStep,
  BreakGlass,
  Directive,
  StreamDirective,
  ReleaseCheck,
  WorkerFlags,
  LauncherOrders,
  InspectOrder,
  LauncherMessage,
  Switchboard,
  SnapshotMessage,
  DeltaMessage,
  KeepaliveMessage,
  StreamMessage,
  RunReport,
  HeartbeatReport,
  AckReport,
  HaltedReport,
  WorkerReportItem,
  WorkerReportBatch,
  RunRegistration,
  Principal,
  FleetWorker,
  FleetState,
  FleetGroup,
  FleetPage,
  AuditVerdict,
  AuditVerdictBrief,
} from './wire.ts';
export type {
  IssueDirectiveBody,
  AgentKillBody,
  ResumeBody,
  StepBody,
  InspectBody,
  TokenBody,
  LauncherTokenBody,
  RevokeTokenBody,
  RotateAdminBody,
  LauncherEvent,
  LauncherEventBody,
} from './bodies.ts';
export type {
  PermitRequest,
  PermitBatch,
  BatchAnswer,
  BatchAnswers,
  OutcomeReport,
  OutcomeBatch,
  EffectStatus,
  Permit,
  PermitResponse,
  PermitOutcome,
  JournalEvent,
  JournalBatch,
  ResumeRequest,
  LedgerEntry,
} from './journal.ts';
export type {
  LocalRule,
  LocalHalt,
  RunTelemetry,
  TelemetryBatch,
  RunLimits,
  WorkerSettings,
} from './telemetry.ts';
export type {
  ScenarioStatus,
  CheckKind,
  DrillCheck,
  LatencySummary,
  EffectCounts,
  PathState,
  TimelinePoint,
  JournalCheck,
  ScenarioResult,
  DrilledAgent,
  RehearsalInput,
  RehearsalRecord,
  DueReason,
  DrillDue,
} from './drill.ts';
export { CHECKPOINT_FORMAT, checkpointText, parseCheckpoint } from './checkpoint.ts';
export type { SignedCheckpoint, AuditKeyInfo, AuditKeys, ConsistencyVerdict } from './checkpoint.ts';
export { isAudit, auditEvent } from './audit.ts';
export type { AuditType, AuditRecord, AuditPayloads, AuditRecordOf, AuditEventOf } from './audit.ts';
export { canonicalJson } from './canonical-json.ts';
export { systemClock, wallNow } from './clock.ts';
export type { Clock } from './clock.ts';
