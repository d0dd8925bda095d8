export { startServer } from './server.ts';
export type { ServerOptions, RunningServer } from './server.ts';
export { ControlPlane, DEFAULT_GRACE_MS } from './control-plane.ts';
export { Notifier } from './notify.ts';
export type { Alert, AlertKind, AlertSink, NotifierOptions } from './notify.ts';
export { DEFAULT_AUTOMATION, DEFAULT_ESCALATION_SLACK_MS, automationFrom } from './ladder.ts';
export type { AutomationPolicy } from './ladder.ts';
export type { HaltedEvent, HaltedListener } from './control-plane.ts';
export { createApp, BODY_LIMIT } from './http/app.ts';
export { SqliteStore } from './store/sqlite-store.ts';
export { PgStore, migrateStore, type PgStoreOptions } from './store/pg/pg-store.ts';
export { PG_SCHEMA_VERSION } from './store/pg/schema.ts';
export { checkStoreUrl, redact as redactStoreUrl, type PoolOptions } from './store/pg/connect.ts';
export type {
  Store,
  TokenRecord,
  DirectiveInput,
  IssueResult,
  RunRecord,
  DirectiveQuery,
  AuditQuery,
  SwitchboardChange,
} from './store/store.ts';
export { hashRecord, chainRecord, verifyChain, GENESIS_HASH } from './audit/chain.ts';
export type { AuditEvent } from './audit/chain.ts';
export { Authenticator, mintToken, hashSecret } from './auth/tokens.ts';
export type { TokenSpec } from './auth/tokens.ts';
export { canSee, canAct } from './auth/policy.ts';
export { StreamHub } from './stream/hub.ts';
export type { StreamSink } from './stream/hub.ts';
export { SwitchboardView } from './switchboard-view.ts';
export type { SwitchboardViewOptions, ViewSource, ChangeListener } from './switchboard-view.ts';
export { InProcessDoorbell } from './doorbell.ts';
export type { Doorbell, DoorbellHandlers } from './doorbell.ts';
export { PgDoorbell, type PgDoorbellOptions } from './store/pg/pg-doorbell.ts';
export { Fleet } from './fleet.ts';
export { Metrics } from './metrics.ts';
export { createLogger } from './log.ts';
export type { Logger, LogLevel } from './log.ts';
export { PermitDesk, DEFAULT_COOL_OFF_MS } from './permits.ts';
export type { CoolOffPolicy, WorkerIdentity } from './permits.ts';
export type { PermitGrant, PermitDecision, CompensationEntry, JournalRow } from './store/store.ts';
export { Triggers } from './triggers.ts';
export type { TriggerOptions } from './triggers.ts';
export { PolicyDesk } from './policy/policy-desk.ts';
export type { ApplyResult } from './policy/policy-desk.ts';
export { parsePolicy, compilePolicy, DEFAULT_DEADMAN, MAX_POLICY_BYTES } from './policy/policy.ts';
export type {
  CompiledPolicy,
  CompiledRule,
  RuleAction,
  DeadmanSettings,
  PolicyProblem,
} from './policy/policy.ts';
export { DEFAULT_POLICY } from './policy/default-policy.ts';
export { lineDiff, ruleChanges } from './policy/diff.ts';
export { Supervisor, allowedLevel } from './supervisor/supervisor.ts';
export type { Fire, ActivePolicy, SupervisorOptions } from './supervisor/supervisor.ts';
export { MetricsBook } from './supervisor/metrics-book.ts';
export { replayTelemetry, parseTelemetryLines } from './supervisor/replay.ts';
export type { RecordedUpdate, ReplayResult } from './supervisor/replay.ts';
export { DeadmanDesk } from './watchdog/deadman.ts';
export type { WatchedWorker, TripResult } from './watchdog/deadman.ts';
export { Watchdog } from './watchdog/watchdog.ts';
export type { WatchdogPort, WatchdogOptions } from './watchdog/watchdog.ts';
export { httpWatchdogPort } from './watchdog/http-port.ts';
export { Liveness, AbsenceWatch } from './watchdog/liveness.ts';
export type { PolicyVersion } from './store/store.ts';
export type { AgentSurface, SurfaceEntry, LastDrill, DrillQuery } from './store/store.ts';
export { drillsDue, drillRecordedEvents, DEFAULT_CADENCE_DAYS } from './drills.ts';
export type { DueInput } from './drills.ts';
export { DRILL_BODY_LIMIT } from './http/drill-routes.ts';
export { SurfaceDesk } from './surface.ts';
export type { AutomaticTrigger } from './control-plane.ts';
export { Checkpointer, CHECKPOINTER_ACTOR } from './audit/checkpointer.ts';
export type { CheckpointerOptions } from './audit/checkpointer.ts';
export type { StoredCheckpoint } from './store/store.ts';
