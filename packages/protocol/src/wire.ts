import type { Level, Role } from './levels.ts';
import type { Release } from './release.ts';
import type { Coverage } from './scope.ts';

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
export type DrainMode = 'discard' | 'drain';

/** What a halt does to staged memory writes of the interrupted step. */
export type MemoryMode = 'revert' | 'commit';

/** Rate limit carried by a `throttle` directive: effects per second, per run or per agent. */
export interface Rate {
  perSecond: number;
  per: 'run' | 'agent';
}

/**
 * One automatic step up the ladder carried by a directive: if, `afterMs` after the directive's
 * commit, it is still active and not every covered worker has acknowledged it (reported halted
 * for `halt`/`kill`, acked its rev otherwise), the control plane issues `level` at the same
 * scope on its own (`directive.escalated`).
 */
export interface EscalationStep {
  level: Level;
  afterMs: number;
}

/**
 * The break-glass attestation of a directive spanning every tenant: who attested, when, and why.
 * It raises an alert at once and the console shows it until the directive is cleared.
 */
export interface BreakGlass {
  /** The attesting token's name. */
  by: string;
  tokenId: string;
  /** ISO 8601 time of the attestation (the directive's commit). */
  at: string;
  /** The attestation text. */
  why: string;
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
  /** Automatic steps up the ladder (see {@link EscalationStep}); a halt always carries a kill step. */
  escalation: EscalationStep[];
  /** The directive this one was escalated or stepped from, or `null`. */
  escalatedFrom: string | null;
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
  /**
   * The releases of the runs it covered at its commit (the workers hosting them), distinct and
   * sorted; a step or an escalation adds its predecessor's. A resume is checked against them
   * (see {@link ReleaseCheck}). Empty for directives older than this field.
   */
  releases: Release[];
  /** The break-glass attestation it was issued with (directives spanning every tenant); null or absent otherwise. */
  breakGlass?: BreakGlass | null;
}

/**
 * What a resume checked (`POST /v1/directives/{id}/resume` answers with it): the releases the
 * directive recorded at its commit, and the workers it would release that still run one of
 * them. Non-empty `running` refuses the resume (`same_release`) unless the operator says why it
 * is safe (`sameRelease`), which is then audited with this check.
 */
export interface ReleaseCheck {
  /** The releases recorded by the directive (its `releases`), plus a release scope's own part. */
  checked: Release[];
  /** Workers the resume would release that still run a checked release. */
  running: { workerId: string; tenant: string; agent: string; release: Release }[];
  /** The operator's reason for resuming onto the same release, when given. */
  sameRelease: string | null;
}

/**
 * A directive as a worker's stream carries it: what the gate needs (id, rev, level, scope,
 * capabilities, rate, grace, drain, memory, escalation), without the operators' words (reason,
 * justification, actor, break-glass attestation), which stay with the people who may read the directive, nor the
 * releases it covered (a directive spanning tenants would tell one tenant what another runs).
 */
export type StreamDirective = Omit<
  Directive,
  'reason' | 'justification' | 'actor' | 'releases' | 'breakGlass'
>;

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

/** First message on every worker stream: the whole switchboard this worker may see. */
export interface SnapshotMessage {
  type: 'snapshot';
  v: number;
  rev: number;
  directives: StreamDirective[];
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
  issued?: StreamDirective;
  /** Id of a directive cleared at this rev. */
  cleared?: string;
  /** Ids of directives the issued one replaces, cleared at the same rev (a re-dialled throttle, a step on the ladder). */
  replaced?: string[];
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
  /** Id of the launcher that started this worker (`KILLPATH_LAUNCHER_ID`), if any. */
  launcher?: string;
  /** The release this worker runs (declared at connect); omitted when none is declared. */
  release?: Release;
  /**
   * Capabilities granted to or used by this worker's runs since it started (declared with
   * `startRun({ capabilities })`, or checked and attempted, denied ones included): sorted,
   * deduplicated, identifiers only. The control plane keeps each agent's capability surface
   * from it, and a new capability makes the agent due for a drill. Omitted when empty.
   */
  capabilities?: string[];
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
  /** When the token stops working (ISO 8601); absent when it never expires. */
  expiresAt?: string;
  /**
   * The one launcher id this agent token may act for (a token an operator had minted to start a
   * launcher, `POST /v1/launchers/{id}/token`); absent when the token is not bound to a launcher.
   */
  launcher?: string;
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
  /**
   * What the switchboard does to this worker's runs, computed by the control plane from its own
   * directives (not from the worker's word): a degraded agent never shows as healthy.
   */
  flags: WorkerFlags;
  /** Id of the launcher (`killpath run`) that started this worker, or `null`. */
  launcher: string | null;
  /** The release this worker declared at connect (`{}` when none). */
  release: Release;
  runs: RunReport[];
}

/** A worker's state in the fleet view: `running`, the highest level covering one of its runs, or `stale`. */
export type FleetState = FleetWorker['state'];

/** Runs one heartbeat may report (`POST /v1/workers/{id}/heartbeat`); more answer 400 naming the limit. */
export const MAX_RUNS_PER_HEARTBEAT = 500;

/** Workers of one tenant and agent in the fleet view, counted without fetching them. */
export interface FleetGroup {
  tenant: string;
  agent: string;
  workers: number;
  /** Runs those workers report. */
  runs: number;
  /** Workers by state (states with none are left out). */
  states: Partial<Record<FleetState, number>>;
}

/**
 * One page of `GET /v1/fleet?limit=&cursor=&tenant=&agent=&state=&run=`: workers in order of
 * tenant, agent and worker id. `total` counts the workers the filters match; `groups` and `states`
 * count the caller's whole view (only `tenant=` narrows them), so a client shows every group
 * while it pages through one. `nextCursor` is opaque; `null` on the last page.
 */
export interface FleetPage {
  rev: number;
  workers: FleetWorker[];
  total: number;
  limit: number;
  nextCursor: string | null;
  groups: FleetGroup[];
  states: Partial<Record<FleetState, number>>;
}

/** Ladder levels below halt that are in force on a worker's runs. */
export interface WorkerFlags {
  /** The lowest rate of the throttles covering any of its runs, or `null`. */
  throttled: Rate | null;
  /** Capabilities revoked by a degrade, or `['*']` for read-only; empty when not degraded. */
  degraded: string[];
  isolated: boolean;
  /** A freeze covers one of its runs (its launcher stops the process; the gate refuses every effect). Absent from older control planes. */
  frozen?: boolean;
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
 * started, sent on the launcher's own stream (`GET /v1/launchers/stream`) on connect and on every
 * change. Each field is the highest directive of that kind covering the launcher's identity or a
 * run its agent hosts, or `null`.
 */
export interface LauncherOrders {
  type: 'orders';
  rev: number;
  /** End the agent's process group: SIGTERM, then SIGKILL after the launcher's grace. */
  kill: StreamDirective | null;
  /** Cut the agent off from everything external (egress proxy, network namespace). */
  isolate: StreamDirective | null;
  /** The agent is halted: the launcher must not restart it. */
  halt: StreamDirective | null;
  /**
   * Freeze every process of the agent (cgroup freeze, or SIGSTOP) and cut its egress; thaw when
   * it is cleared. Absent from control planes older than the freeze level (read as `null`).
   */
  freeze?: StreamDirective | null;
}

/**
 * An operator asked for the evidence of a frozen agent (`killpath inspect`): the launcher writes
 * the process tree, open files, connections (and core files where `gcore` is installed) while
 * the agent stays frozen, and reports `process.inspected` with `requestId`.
 */
export interface InspectOrder {
  type: 'inspect';
  requestId: string;
  /** The run asked about. */
  runId: string;
  /** Who asked (the operator's token name), for the evidence file. */
  actor: string;
  /** Write a core file of each process where gcore is installed. */
  cores: boolean;
}

/** Everything a launcher stream carries. */
export type LauncherMessage = LauncherOrders | InspectOrder | KeepaliveMessage;
