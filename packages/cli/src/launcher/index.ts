/**
 * The mechanisms behind `killpath run`: process control (kill), the egress proxy (isolate) and
 * network namespaces (isolate at the network layer, Linux with root).
 */
export { LAUNCH_ID_ENV, LocalProcessBackend } from './process-backend.ts';
export { CgroupProcessBackend, chooseBackend } from './cgroup-backend.ts';
export type { CgroupProcessBackendOptions, IsolationChoice } from './cgroup-backend.ts';
export { AgentCgroup, cgroupSupport, parseCgroup2Mount, parseOwnCgroup, cgroupDir } from './cgroup.ts';
export type { CgroupSupport, Cgroup2Mount } from './cgroup.ts';
export { startOrphanGuard } from './orphan-guard.ts';
export type { OrphanGuard, OrphanPolicy, GuardTarget } from './orphan-guard.ts';
export type {
  AgentHandle,
  ExitInfo,
  FreezeResult,
  Isolation,
  LaunchSpec,
  LocalProcessBackendOptions,
  ProcessBackend,
  TerminateResult,
} from './process-backend.ts';
export { EgressProxy } from './egress-proxy.ts';
export type { EgressEvent, EgressProxyOptions } from './egress-proxy.ts';
export {
  AgentNetns,
  NETNS_PREFIX,
  ipBinary,
  listNetns,
  netnsExecArgv,
  netnsRelayScript,
  netnsSupported,
  prepareUnixPath,
  unixTcpBridge,
} from './netns.ts';
export type { AgentNetnsOptions } from './netns.ts';
export type { RelayForward } from './netns-relay.ts';
