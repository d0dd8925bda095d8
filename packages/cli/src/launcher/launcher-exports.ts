/** What the CLI package exports of the launcher (the mechanisms are in ./index.ts, owned with them). */
export { Launcher, EXIT_STOPPED, EXIT_UNREACHABLE } from './launcher.ts';
export type { LauncherOptions } from './launcher.ts';
export { OrdersLink, reportLauncherEvents } from './orders-link.ts';
export type { OrdersLinkOptions } from './orders-link.ts';
export { netnsSupported, listNetns, AgentNetns } from './netns.ts';
export { LocalProcessBackend } from './process-backend.ts';
export type {
  ProcessBackend,
  AgentHandle,
  LaunchSpec,
  TerminateResult,
  FreezeResult,
  Isolation,
} from './process-backend.ts';
export { CgroupProcessBackend, chooseBackend } from './cgroup-backend.ts';
export type { IsolationChoice } from './cgroup-backend.ts';
export { cgroupSupport } from './cgroup.ts';
export type { OrphanPolicy } from './orphan-guard.ts';
export { EgressProxy } from './egress-proxy.ts';
