export { main } from './main.ts';
export { ApiClient } from './api.ts';
export { resolveConnection, clientFor } from './config.ts';
export type { Connection } from './config.ts';
export { percentile, ms, table } from './output.ts';
export { FleetHarness, demoAgentScript } from './fleet/harness.ts';
export type { AgentSpec, AgentEvent, AgentProcess, HarnessOptions } from './fleet/harness.ts';
export { flipAndMeasure, DEMO_CAPABILITIES } from './fleet/flip.ts';
export type { FlipSpec, FlipOutcome, WorkerOutcome } from './fleet/flip.ts';
export { DEMO_FLEET, demoFlips, flipTable, flipViolations } from './commands/demo.ts';
export {
  Launcher,
  EXIT_STOPPED,
  EXIT_UNREACHABLE,
  netnsSupported,
  listNetns,
  LocalProcessBackend,
  CgroupProcessBackend,
  chooseBackend,
  cgroupSupport,
  EgressProxy,
  AgentNetns,
} from './launcher/launcher-exports.ts';
export type {
  LauncherOptions,
  ProcessBackend,
  AgentHandle,
  LaunchSpec,
  TerminateResult,
  FreezeResult,
  Isolation,
  IsolationChoice,
  OrphanPolicy,
} from './launcher/launcher-exports.ts';
export { launch, alive, KILLPATH_CLI } from './fleet/launch.ts';
export type { Launched, Line } from './fleet/launch.ts';
export { renderReport } from './drill/report.ts';
export type { DrillReportInput } from './drill/report.ts';
export { runDrill, pickScenarios, brokenInvariants, SCENARIOS } from './drill/run.ts';
export type { DrillRun, DrillRunOptions } from './drill/run.ts';
export { PartitionRelay } from './drill/relay.ts';
