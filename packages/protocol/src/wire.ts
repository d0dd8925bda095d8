import type { Level, Role } from './levels.ts';
import type { Coverage } from './scope.ts';

/** Version of the wire protocol; bumped on an incompatible change. Readers accept every older version. */
export const PROTOCOL_VERSION = 1;

/** How queued tasks of a halted run are treated: dropped at once, or allowed to finish inside the grace. */
export type DrainMode = 'discard' | 'drain';

/** What a halt does to staged memory writes of the interrupted step. */
export type MemoryMode = 'revert' | 'commit';

/** Rate limit carried by a `throttle` directive: effects per second, per run or per agent. */
export interface Rate {
  perSecond: number;
  per: 'run' | 'agent';
}

/** One active order on the switchboard, as pushed to workers and returned by the API. */
export interface Directive extends Coverage {
  id: string;
  /** The revision at which this directive was committed. */
  rev: number;
  level: Level;
  /** The string form of `scope`, for humans and logs. */
  scopeText: string;
  rate: Rate | null;
  graceMs: number;
  drain: DrainMode;
  /** What a halt does to memory writes staged in the current step: revert (default) or commit. */
  memory: MemoryMode;
  reason: string;
  justification: string;
  /** Who issued it: a token's name, or `supervisor:<rule>` for automatic triggers. */
  actor: string;
  /** Wall-clock time of the commit, ISO 8601. */
  issuedAt: string;
  /** Set once the directive is cleared (resumed); cleared directives are no longer on the switchboard. */
  clearedAt: string | null;
  clearedRev: number | null;
}

/** The set of active directives at one revision. */
export interface Switchboard {
  rev: number;
  directives: Directive[];
}

/** First message on every worker stream: the whole switchboard this worker may see. */
export interface SnapshotMessage {
  type: 'snapshot';
  v: number;
  rev: number;
  directives: Directive[];
  /** How often keep-alives come, in ms; the worker's lease must be longer. */
  keepaliveMs: number;
}

/**
 * One revision step. Every rev bump reaches every stream so that gaps are detectable; a step
 * this worker may not see carries neither `issued` nor `cleared`.
 */
export interface DeltaMessage {
  type: 'delta';
  rev: number;
  issued?: Directive;
  /** Id of a directive cleared at this rev. */
  cleared?: string;
}

/** Sent every `keepaliveMs` with the current rev; renews the worker's lease. */
export interface KeepaliveMessage {
  type: 'keepalive';
  rev: number;
}

/** Everything a worker stream carries (the SSE `event` is the `type`, the `data` is the JSON). */
export type StreamMessage = SnapshotMessage | DeltaMessage | KeepaliveMessage;

/** State of one run as a worker reports it. */
export interface RunReport {
  runId: string;
  parentRunId: string | null;
  lineage: string[];
  /** `running`, or the highest level covering the run as the worker sees it. */
  state: 'running' | Level;
  effects: number;
  denied: number;
  inFlight: number;
}

/** Periodic heartbeat from a worker (`POST /v1/workers/{id}/heartbeat`). */
export interface HeartbeatReport {
  rev: number;
  features: string[];
  runs: RunReport[];
  pid: number;
  /** Milliseconds since the worker last heard from the control plane (monotonic). */
  sinceContactMs: number;
}

/** A worker applied `rev` to its mirror (`POST /v1/workers/{id}/ack`). */
export interface AckReport {
  rev: number;
}

/**
 * A worker has settled the effects covered by a directive: covered in-flight effects have
 * finished or been aborted, and new ones are refused (`POST /v1/workers/{id}/halted`).
 */
export interface HaltedReport {
  rev: number;
  directiveId: string;
  runs: string[];
  /** In-flight effects aborted by this directive on this worker. */
  aborted: number;
  /** In-flight reads allowed to complete. */
  completed: number;
  /** Worker-measured time from applying the rev to settling, in ms (monotonic). */
  observeToSettleMs: number;
}

/** A worker-side run registration (`POST /v1/runs`), so operators can target it by id. */
export interface RunRegistration {
  runId: string;
  parentRunId: string | null;
  lineage: string[];
  features: string[];
  workerId: string;
}

/** The caller's identity as the control plane sees it (`GET /v1/whoami`). */
export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
  /** `*` for every tenant (admin tokens). */
  tenant: string;
  agent: string | null;
}

/** One worker in the fleet view. */
export interface FleetWorker {
  workerId: string;
  tenant: string;
  agent: string;
  features: string[];
  connected: boolean;
  pid: number | null;
  observedRev: number;
  ackedRev: number;
  lastHeartbeatAgoMs: number | null;
  state: 'running' | Level | 'stale';
  runs: RunReport[];
}

/** One record of the hash-chained audit log. */
export interface AuditRecord {
  seq: number;
  ts: string;
  type: string;
  actor: string;
  tenant: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** Result of verifying the audit chain: ok, or the first bad record and why. */
export type AuditVerdict =
  | { ok: true; records: number; head: string }
  | { ok: false; records: number; firstBad: number; reason: string };
