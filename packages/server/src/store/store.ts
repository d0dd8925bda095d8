import type {
  ApprovalRequest,
  AuditRecord,
  AuditVerdict,
  BreakGlass,
  Directive,
  Release,
  Role,
  RunReport,
} from '@killpath/protocol';
import type {
  JournalEvent,
  LedgerEntry,
  PermitOutcome,
  PermitRequest,
  PermitResponse,
} from '@killpath/protocol';
import type { RunTelemetry } from '@killpath/protocol';
import type { DrilledAgent, RehearsalInput, RehearsalRecord } from '@killpath/protocol';
import type { AuditKeyInfo, SignedCheckpoint } from '@killpath/protocol';
import type { Doorbell } from '../doorbell.ts';
import type { AuditEvent } from '../audit/chain.ts';
import type { LogFindings, TreeClaim } from '../audit/log-verify.ts';

/** A checkpoint the control plane signed, with the Merkle frontier (hex, largest subtree first) it came from. */
export interface StoredCheckpoint {
  checkpoint: SignedCheckpoint;
  frontier: string[];
}

/** A permit request as the store receives it: the worker's request plus who it is. */
export interface PermitGrant extends PermitRequest {
  tenant: string;
  agent: string;
  /** Cool-off of an irreversible effect, in ms (0 for writes). */
  coolOffMs: number;
  /**
   * When the control plane took the request (its clock's wall time): the permit is intended then,
   * and its cool-off runs from then. Default: the store's own now.
   */
  grantedAt?: Date;
}

/** The store's answer to one permit request. */
export type PermitDecision =
  | { kind: 'granted'; response: PermitResponse }
  | { kind: 'halted'; directive: Directive; rev: number }
  | { kind: 'conflict'; message: string }
  | { kind: 'not_found' }
  /** This request alone failed inside the batch (rolled back); the others are decided as if it were not there. */
  | { kind: 'failed'; message: string };

/** One landed write with its compensation, for the operator's list after a halt. */
export interface CompensationEntry extends LedgerEntry {
  tenant: string;
  agent: string;
  haltedBy: string;
  haltedAt: string;
}

/** One page of a list, newest first: its rows, how many there are in all, and where the next page starts. */
export interface Page<T> {
  items: T[];
  /** Rows in the whole list (every page). */
  total: number;
  /** Opaque: pass it back for the next page; null when this page is the last. */
  cursor: string | null;
}

/** Counts of a ledger's effects by final status (`open`: granted or cooling off, not settled). */
export interface LedgerSummary {
  intended: number;
  landed: number;
  failed: number;
  aborted: number;
  cancelled: number;
  inDoubt: number;
  open: number;
}

/** A permitted effect with what decides whether a directive covers it, and the rev it was permitted at. */
export interface PermittedEffect extends LedgerEntry {
  rev: number;
  tenant: string;
  agent: string;
  lineage: string[];
  features: string[];
  release: Release | null;
}

/** A journal row (timers, queues, memory, in-flight statuses) of one run. */
export interface JournalRow {
  seq: number;
  runId: string | null;
  workerId: string;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

/** A stored API token (the secret itself is never stored, only its SHA-256). */
export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  /** `*` for every tenant. */
  tenant: string;
  agent: string | null;
  createdAt: string;
  /** When the token stops working (ISO 8601); null: never. */
  expiresAt: string | null;
  /** The launcher id an agent token is bound to (minted for an operator's launcher); null: none. */
  launcher: string | null;
  /** The id of the token that minted it for a launcher (it is revoked with that token); null: none. */
  mintedBy: string | null;
  /** When it was revoked (ISO 8601); null while it is not. */
  revokedAt: string | null;
  /** Who revoked it (a token's name); null while it is not revoked. */
  revokedBy: string | null;
  /** Why it was revoked; null while it is not revoked. */
  revokeReason: string | null;
}

/** What it takes to store a new token (its secret's hash is passed beside it). */
export type NewToken = Pick<TokenRecord, 'id' | 'name' | 'role' | 'tenant' | 'agent'> & {
  expiresAt?: string | null;
  launcher?: string | null;
  mintedBy?: string | null;
};

/** Filter for listing tokens. */
export interface TokenQuery {
  /** Only tokens of this tenant (`*`: admin tokens); undefined for all. */
  tenant?: string;
}

/** What it takes to put a directive on the switchboard: its content, before it has an id and a rev. */
export type DirectiveInput = Pick<
  Directive,
  | 'level'
  | 'scope'
  | 'tenant'
  | 'rate'
  | 'graceMs'
  | 'drain'
  | 'memory'
  | 'reason'
  | 'justification'
  | 'actor'
  | 'escalation'
  | 'escalatedFrom'
  | 'releases'
> & {
  capabilities: string[] | null;
  /**
   * Picks, inside the issuing transaction, active directives the new one replaces: they are
   * cleared at the new directive's rev (a throttle re-dialled, a step up or down the ladder).
   */
  replaces?: (active: readonly Directive[]) => string[];
  /** The break-glass attestation of a directive spanning every tenant (stored with it). */
  breakGlass?: BreakGlass | null;
  /** Scoped to the issuing principal, so two tenants' keys never collide. */
  idempotencyKey: string | null;
  /**
   * Digest of the request the key was sent with, stored beside the key so a reuse of the key with
   * another request can be told from a retry (see {@link IssueResult.keyDigest}).
   */
  idempotencyDigest?: string | null;
  /**
   * Work that must happen once (an escalation step) commits only while its replica still holds
   * the lease at this epoch: checked in the directive's own transaction, so a deposed leader's
   * late commit is refused (`conflict`) and nothing is written. Absent: not fenced.
   */
  fence?: LeaseFence | null;
};

/**
 * One switchboard change at its rev, as {@link DirectiveStore.changesSince} gives it: a directive
 * issued (with the directives it replaced at the same rev), or one cleared. A rev the store
 * holds no directive change for (no current code writes one) is a bare step: `{ rev }` alone.
 */
export interface SwitchboardChange {
  rev: number;
  issued?: Directive;
  /** Directives cleared at the same rev because `issued` replaces them (empty when none). */
  replaced?: Directive[];
  cleared?: Directive;
}

/** Result of issuing: the directive, and whether this call created it (false: a retry or an identical re-issue). */
export interface IssueResult {
  directive: Directive;
  created: boolean;
  /** Why no new directive was created: the same idempotency key, or the same content already active. */
  converged: 'idempotency_key' | 'identical' | null;
  /** Directives cleared at the same rev because the new one replaces them (see `DirectiveInput.replaces`). */
  replaced: Directive[];
  /**
   * When it converged on an idempotency key: the request digest stored with that key (null for a
   * key stored before digests were, or without one). The caller decides what a mismatch means.
   */
  keyDigest?: string | null;
}

/** A run known to the control plane (registered by its worker). */
export interface RunRecord {
  runId: string;
  tenant: string;
  agent: string;
  parentRunId: string | null;
  lineage: string[];
  features: string[];
  workerId: string;
  startedAt: string;
  /** The release of the worker that asked (registration or resume); not stored with the run. */
  release?: Release | null;
}

/** One stored version of the supervisor's policy (rules, run limits, deadman settings). */
export interface PolicyVersion {
  /** 1, 2, …: the latest version is the active one. */
  version: number;
  /** The policy text (YAML) as applied. */
  source: string;
  /** SHA-256 of `source`. */
  digest: string;
  /** Who applied it (a token's name). */
  actor: string;
  comment: string | null;
  /** The version this one restored, when it is a rollback. */
  rollbackOf: number | null;
  createdAt: string;
}

/** Filter for listing rehearsal records. */
export interface DrillQuery {
  /** Only records whose spec covers an agent of this tenant; undefined for all. */
  tenant?: string;
  /** Only records whose spec covers this agent. */
  agent?: { tenant: string; agent: string };
  limit: number;
  /** Only records stored before the record with this id (the next page); none when it is unknown. */
  before?: string;
}

/** The latest rehearsal of one agent (by `finishedAt`), as the due list needs it. */
export interface LastDrill {
  tenant: string;
  agent: string;
  /** The agent's entry in that rehearsal's spec. */
  level: DrilledAgent['level'];
  cadenceDays: number;
  drillId: string;
  finishedAt: string;
  result: RehearsalRecord['result'];
  specDigest: string;
}

/** A capability the control plane has seen an agent's workers declare or use, and since when. */
export interface SurfaceEntry {
  capability: string;
  firstSeenAt: string;
}

/** One agent the control plane knows (registered runs or noted capabilities) and its capability surface. */
export interface AgentSurface {
  tenant: string;
  agent: string;
  /** Sorted by name; empty for an agent known only by its runs. */
  capabilities: SurfaceEntry[];
}

/** An approval request as stored: the wire request plus what the gated act needs to be done on approval. */
export interface ApprovalRecord extends ApprovalRequest {
  /** The gated act's input (a resume's body, a policy's text); never a secret. */
  payload: Record<string, unknown> | null;
}

/** Filter for listing approval requests. */
export interface ApprovalQuery {
  /** Only requests of this tenant and those spanning every tenant; undefined for all. */
  tenant?: string;
  state?: ApprovalRequest['state'];
  /** Only requests bound to this target (a directive id, a policy digest). */
  target?: string;
  /** Only requests for this kind of act (`resume`, `policy.apply`). */
  action?: string;
  /**
   * By the time `now` (ISO): `is` true keeps expired requests (stored so, or pending past their
   * time), false keeps pending ones still in time. Use it instead of `state` for those two.
   */
  expired?: { now: string; is: boolean };
  limit: number;
}

/** What a caller of `updateApproval` decides: the record to write (null: none), audit records to append, and its answer. */
export interface ApprovalUpdate<T> {
  next: ApprovalRecord | null;
  audit: AuditEvent[];
  result: T;
}

/** Filter for listing directives. */
export interface DirectiveQuery {
  /** Only active (true), only cleared (false), or both (undefined). */
  active?: boolean;
  /** Only directives visible to this tenant (its own plus tenant-less ones); undefined for all. */
  tenant?: string;
  limit?: number;
}

/** Filter for reading the audit log. */
export interface AuditQuery {
  afterSeq?: number;
  /** Only records before this seq (paging backwards, with `desc`). */
  beforeSeq?: number;
  limit?: number;
  tenant?: string;
  /** Newest first when true. */
  desc?: boolean;
  /** Only records of these types. */
  types?: string[];
}

/**
 * Directives and the switchboard revision: issuing (with convergence and replacement), clearing,
 * reading and listing directives, and the successors of a stepped or escalated one. Owns the one
 * `rev` sequence: it grows by exactly one per switchboard change, and a directive commits with its
 * audit records in one durable transaction.
 */
export interface DirectiveStore {
  /** Current switchboard revision. */
  rev(): Promise<number>;
  /** The active directives and the rev they are valid at, read in one transaction. */
  switchboard(): Promise<{ rev: number; directives: Directive[] }>;
  /**
   * Every switchboard change after `rev`, in rev order and gapless: the changes of revs `rev + 1`
   * up to the store's rev, at most `limit` of them (the first `limit`), each rev exactly once,
   * read in one transaction. The directives are as they are now (a directive issued after `rev`
   * and since cleared carries its `clearedRev`). An empty list: nothing after `rev`. This is
   * how a switchboard view learns what another process committed (`SwitchboardView`).
   */
  changesSince(rev: number, limit: number): Promise<SwitchboardChange[]>;
  /**
   * The doorbell that rings when a directive commit of this store is durable, from any process
   * using it (see `Doorbell`); optional: a view of a store without one learns of commits by
   * polling. Each call may return the same doorbell.
   */
  doorbell?(): Doorbell;
  /**
   * Puts a directive on the switchboard at a new rev, unless it converges: the same
   * idempotency key returns the directive it created before; an active directive with the
   * same level, scope, tenant, capabilities, rate, grace, drain and memory mode is returned as is (a
   * re-issue with a shorter grace is a new directive, so the shorter grace takes effect). `audit(directive,
   * result)` gives the events to append in the same transaction.
   */
  issueDirective(input: DirectiveInput, audit: (r: IssueResult) => AuditEvent[]): Promise<IssueResult>;
  /** Clears an active directive at a new rev; null when it does not exist or is already cleared. */
  clearDirective(id: string, audit: (d: Directive) => AuditEvent[]): Promise<Directive | null>;
  getDirective(id: string): Promise<Directive | null>;
  listDirectives(q: DirectiveQuery): Promise<Directive[]>;
  /** How many directives `listDirectives` would give under the same filters with no limit. */
  countDirectives(q: Omit<DirectiveQuery, 'limit'>): Promise<number>;
  /** Directives that replaced `id` by a step or an automatic escalation (their `escalatedFrom`), oldest first. */
  directiveSuccessors(id: string): Promise<Directive[]>;
}

/**
 * Permits and the effect journal: deciding permits against the switchboard as committed (guarantee 1),
 * confirming and settling them, marking effects in doubt, journal events, resume checks, halted runs,
 * and the ledger pages an operator reads (effects, events, compensations, effects permitted after a rev).
 */
export interface PermitStore {
  /**
   * Decides a batch of permit requests in ONE serialised transaction against the switchboard
   * as committed at that moment: a request whose run and capability are covered by an active
   * halt or kill is refused; an idempotency key already used by the run returns its permit
   * (refused as `conflict` when that effect has no outcome: at most once). A run not registered
   * yet is registered to the asking agent; a run registered to another agent of the tenant is
   * refused (`conflict`): no permit for a run the asker could not register. Each grant writes
   * the intent (its row, committed by the transaction's `ledger.committed` audit record) before the effect can run. This is what
   * guarantee 1 rests on: a backend must make the grant and the switchboard read one
   * serialisable unit with directive commits (PostgreSQL: the same transaction, locking the
   * `rev` table `SHARE` before reading the switchboard).
   */
  grantPermits(requests: PermitGrant[]): Promise<PermitDecision[]>;
  /**
   * Confirms an irreversible permit after its cool-off, checking the switchboard again. Only the
   * agent it was granted to (of its tenant) confirms it: another's is `not_found`.
   */
  confirmPermit(id: string, owner: { tenant: string; agent: string }, now: Date): Promise<PermitDecision>;
  /** Records an effect's outcome; null when the permit was not granted to `owner` (tenant and agent). */
  settlePermit(
    id: string,
    owner: { tenant: string; agent: string },
    outcome: PermitOutcome,
  ): Promise<LedgerEntry | null>;
  /**
   * The processes of these workers ended (their launcher saw them exit or killed them): their
   * granted effects without an outcome become `in_doubt` (they may have landed; listed with the
   * compensations to check) and cooling-off ones `cancelled` (never confirmed, never run), each
   * audited (`effect.in_doubt`, `effect.cancelled`) in the same transaction. An outcome the
   * worker reports later still wins. Returns the entries changed.
   */
  markInDoubt(
    owner: { tenant: string; agent: string },
    workerIds: string[],
    reason: string,
  ): Promise<LedgerEntry[]>;
  /** Journals run events from a worker (and their audit records) in one transaction. */
  appendJournal(tenant: string, workerId: string, events: JournalEvent[]): Promise<void>;
  /**
   * Whether a run may resume: the covering active stop directive, or null. A refusal is
   * audited (`resume.refused`) in the same transaction.
   */
  checkResume(run: RunRecord, actor: string): Promise<Directive | null>;
  /** Runs a worker reported halted (from `session.halted`), for the compensation list. */
  recordHalted(entries: { tenant: string; runId: string; directiveId: string; at: string }[]): Promise<void>;
  /** A run's ledger: every permitted effect (intended versus landed) and its journal events. */
  ledger(tenant: string, runId: string): Promise<{ effects: LedgerEntry[]; events: JournalRow[] }>;
  /**
   * One page of the permitted effects of `runIds` (all of `tenant`), newest intended first, with
   * the counts by status of the whole list. `limit` rows at most; `cursor` from the page before.
   * @throws KillpathError `invalid_request` for a cursor this list did not give
   */
  effectsPage(q: {
    tenant: string;
    runIds: string[];
    limit: number;
    cursor: string | null;
  }): Promise<Page<LedgerEntry> & { summary: LedgerSummary }>;
  /** One page of the journal events of `runIds` (all of `tenant`), newest first (see {@link effectsPage}). */
  eventsPage(q: {
    tenant: string;
    runIds: string[];
    limit: number;
    cursor: string | null;
  }): Promise<Page<JournalRow>>;
  /**
   * One page of the compensation list (landed or in-doubt writes with a compensation descriptor,
   * of runs that were halted), newest intended first, never cut silently: `total` and a cursor.
   */
  compensationsPage(q: {
    tenant?: string;
    runIds?: string[];
    limit: number;
    cursor: string | null;
  }): Promise<Page<CompensationEntry>>;
  /**
   * Writes permitted (granted, or confirmed after a cool-off) at a rev from `fromRev` up to (not
   * including) `toRev`, narrowed by the filters given, oldest first. The caller decides which of
   * them a directive covers (the rule lives in `protocol`).
   */
  permittedFrom(q: {
    fromRev: number;
    toRev: number | null;
    tenant?: string;
    agent?: string;
    runIds?: string[];
    capabilities?: readonly string[];
  }): Promise<PermittedEffect[]>;
}

/**
 * The audit log: the append-only hash chain, reading and verifying it, signed checkpoints, their
 * signing keys and the log's origin. Other concepts append to the same chain inside their own
 * transactions; this is the chain's own reading and writing.
 */
export interface AuditStore {
  /** Appends events to the audit chain in one transaction. */
  appendAudit(events: AuditEvent[]): Promise<AuditRecord[]>;
  listAudit(q: AuditQuery): Promise<AuditRecord[]>;
  /**
   * How many audit records match the tenant and type filters (seq bounds, order and limit
   * ignored), looking at the newest `cap` records only: `exact` is false when the chain is longer
   * (then `count` is a lower bound). Without filters it is the chain's length, exact. With
   * `upTo`, the chain is taken to end at that seq (a long count is taken in steps, newest first).
   */
  countAudit(
    q: Pick<AuditQuery, 'tenant' | 'types'>,
    cap: number,
    upTo?: number,
  ): Promise<{ count: number; exact: boolean }>;
  verifyAudit(): Promise<AuditVerdict>;
  /** The checkpoint origin of this log, `killpath/<id>`; the id is made once, with the store. */
  logOrigin(): Promise<string>;
  /**
   * Stores a signed checkpoint with its audit records (`audit.checkpoint`) in one transaction.
   * With `fence` (the leader lease's holder signs), a holder deposed meanwhile is refused
   * (`conflict`) in that transaction and nothing is written.
   */
  putCheckpoint(c: StoredCheckpoint, audit: AuditEvent[], fence?: LeaseFence | null): Promise<void>;
  /** The checkpoint of the largest size (the latest signed among equals), or null. */
  latestCheckpoint(): Promise<StoredCheckpoint | null>;
  /** Every key that signed checkpoints, newest first; the current one has `retiredAt: null`. */
  auditKeys(): Promise<AuditKeyInfo[]>;
  /**
   * Makes `key` the current signing key, retiring the others, with `audit` in the same
   * transaction. Returns false (and records nothing) when it already is the current key.
   */
  putAuditKey(key: AuditKeyInfo, audit: AuditEvent[]): Promise<boolean>;
  /**
   * Lists `key` as known but not current (retired now), so what it signs (a replica's consistency
   * heads) verifies with the listed keys, with `audit` in the same transaction. Returns false (and
   * records nothing) when it is listed already; never changes which key is current.
   */
  listAuditKey(key: AuditKeyInfo, audit: AuditEvent[]): Promise<boolean>;
  /**
   * Verifies the whole log: the hash chain, the stored checkpoints and, when given, a kept one
   * (`kept`). Large logs are read and hashed off the caller's event loop.
   */
  verifyLog(kept: TreeClaim | null): Promise<LogFindings>;
}

/**
 * API tokens by the SHA-256 of their secret: creating (and rotating), finding, listing, revoking
 * and counting them. Revocation lives here; a cache in front of it is only a cache.
 */
export interface TokenStore {
  /**
   * Stores a new token by the SHA-256 of its secret, with its audit records, in one transaction.
   * With `revoke` (a rotation), that token is revoked in the same transaction.
   */
  createToken(
    t: NewToken,
    secretHash: string,
    audit: AuditEvent[],
    revoke?: { id: string; by: string; reason: string },
  ): Promise<TokenRecord>;
  /**
   * The token whose secret hashes to `secretHash`, revoked and expired ones included (the caller
   * says why it refuses one); null when none. The store is where revocation lives: a cache in
   * front of it is only a cache.
   */
  findToken(secretHash: string): Promise<TokenRecord | null>;
  /** One token by id (never its secret); null when unknown. */
  getToken(id: string): Promise<TokenRecord | null>;
  /** Tokens, oldest first (never their secrets). */
  listTokens(q: TokenQuery): Promise<TokenRecord[]>;
  /**
   * Revokes a token at once, with its audit records (`audit(revoked)`) in the same transaction;
   * null, writing nothing, when it is unknown or already revoked.
   */
  revokeToken(
    id: string,
    by: string,
    reason: string,
    audit: (t: TokenRecord) => AuditEvent[],
  ): Promise<TokenRecord | null>;
  countTokens(): Promise<number>;
}

/**
 * The fleet: runs (registration, lookup by tenant or across tenants, a run's family), launcher ids
 * and the agent that owns each, and every agent's capability surface.
 */
export interface FleetStore {
  /**
   * Registers (or re-registers) a run of `r.tenant`; inside the tenant the first registration
   * wins for agent and lineage (the record returned is the stored one). Run ids of different
   * tenants never meet: two tenants' `ticket-1234` are two runs.
   */
  registerRun(r: RunRecord): Promise<RunRecord>;
  /** The run `runId` of `tenant`, or null. */
  getRun(tenant: string, runId: string): Promise<RunRecord | null>;
  /** Every tenant's run with this id (an admin's lookup across tenants), sorted by tenant. */
  findRuns(runId: string): Promise<RunRecord[]>;
  /** Run `runId` of `tenant` first, then its descendants (runs whose lineage holds it); [] when unknown. */
  runFamily(tenant: string, runId: string): Promise<RunRecord[]>;
  /**
   * Binds launcher id `launcherId` of `tenant` to `agent` unless it is bound already; returns the
   * agent that owns it (the first binding wins and never changes). Launcher ids of different
   * tenants never meet.
   */
  bindLauncher(tenant: string, launcherId: string, agent: string, at: Date): Promise<string>;
  /** The agent that owns launcher id `launcherId` of `tenant`, or null when it was never used. */
  launcherOwner(tenant: string, launcherId: string): Promise<string | null>;
  /**
   * Adds capabilities to an agent's surface, first seen at `at`; those already known keep their
   * first time. Returns the newly added ones, sorted. When some are new, `audit(added)` gives the
   * events appended in the same transaction (`agent.surface_changed`).
   */
  noteCapabilities(
    tenant: string,
    agent: string,
    caps: readonly string[],
    at: Date,
    audit?: (added: string[]) => AuditEvent[],
  ): Promise<string[]>;
  /**
   * Every agent the store knows, of `tenant` or every tenant: agents with registered runs or
   * noted capabilities, each with its capability surface. Sorted by tenant, then agent.
   */
  agentSurfaces(tenant?: string): Promise<AgentSurface[]>;
}

/**
 * Rehearsal records: storing a drill's result with its audit record, listing and reading them, and
 * the latest rehearsal of each agent (what the due list needs).
 */
export interface DrillStore {
  /**
   * Stores a rehearsal record with its audit records (`drill.recorded`) in one transaction.
   * Scenario timelines are dropped (they belong to reports, not the record). `auditSeq` is the
   * seq of the `drill.recorded` record `audit` returned (else of its first record; 0 for none).
   */
  recordDrill(
    input: RehearsalInput,
    recordedBy: string,
    audit: (r: Omit<RehearsalRecord, 'auditSeq'>) => AuditEvent[],
  ): Promise<RehearsalRecord>;
  /** Rehearsal records, the most recently stored first. */
  listDrills(q: DrillQuery): Promise<RehearsalRecord[]>;
  /** How many rehearsal records match the tenant and agent filters (`before` and `limit` ignored). */
  countDrills(q: Omit<DrillQuery, 'limit' | 'before'>): Promise<number>;
  getDrill(id: string): Promise<RehearsalRecord | null>;
  /**
   * For each agent some rehearsal covered (of `tenant`, or every tenant when undefined), the
   * latest such rehearsal by `finishedAt` (ties: the later stored).
   */
  lastDrills(tenant?: string): Promise<LastDrill[]>;
}

/**
 * The supervisor's policy versions (append-only history, the latest active) and the approval
 * requests that gate an act (created, listed, and decided in one serialised transaction).
 */
export interface PolicyStore {
  /**
   * Stores a new policy version, which is the active one from then on, with its audit records
   * (`policy.changed`) in one transaction. History is append-only: a rollback stores a new
   * version with an earlier version's text.
   */
  putPolicy(
    p: Omit<PolicyVersion, 'version' | 'createdAt'>,
    audit: (v: PolicyVersion) => AuditEvent[],
  ): Promise<PolicyVersion>;
  /** A policy version, or the active (latest) one when `version` is undefined; null when there is none. */
  getPolicy(version?: number): Promise<PolicyVersion | null>;
  /** Policy versions, newest first, without their text. */
  listPolicies(limit: number): Promise<Omit<PolicyVersion, 'source'>[]>;
  /** How many policy versions are stored. */
  countPolicies(): Promise<number>;
  /** Stores a new approval request with its audit records (`audit(request)`) in one transaction. */
  createApproval(a: ApprovalRecord, audit: (a: ApprovalRecord) => AuditEvent[]): Promise<ApprovalRecord>;
  getApproval(id: string): Promise<ApprovalRecord | null>;
  /** Approval requests, newest first. */
  listApprovals(q: ApprovalQuery): Promise<ApprovalRecord[]>;
  /** How many requests `listApprovals` would give under the same filters with no limit. */
  countApprovals(q: Omit<ApprovalQuery, 'limit'>): Promise<number>;
  /**
   * Reads an approval request (null when unknown) and, in the same transaction, writes the record
   * and appends the audit records `fn` returns (a refusal is audited too), answering its `result`.
   * Concurrent approvals serialise here: the second sees the first's.
   */
  updateApproval<T>(id: string, fn: (a: ApprovalRecord | null) => ApprovalUpdate<T>): Promise<T>;
}

/** A named lease as it stands in the store (see {@link LeaseStore}). */
export interface Lease {
  name: string;
  holder: string;
  /** Bumped each time the lease passes to another holder (never on a renewal): the fencing token. */
  epoch: number;
  /** Wall time (ms since the epoch, the caller's clock) after which another holder may take it. */
  expiresAt: number;
}

/** What a fenced write carries: the lease, its holder and the epoch it was acquired at. */
export interface LeaseFence {
  lease: string;
  holder: string;
  epoch: number;
}

/**
 * Leases for work that must happen once across replicas (escalation steps, the deadman, the
 * supervisor's rules): one holder at a time per name, with a fencing epoch. Times are the
 * caller's wall clock: replicas' clock skew moves when a takeover happens, never whether two
 * holders commit, because every such commit checks the epoch in its own transaction.
 */
export interface LeaseStore {
  /**
   * Takes lease `name` for `holder` until `now + ttlMs` when it is free, expired, or already
   * `holder`'s (a renewal, the epoch unchanged); another holder's unexpired lease is left alone.
   * Returns the lease as it stands after the call: `holder === holder` means it is held.
   */
  acquireLease(name: string, holder: string, ttlMs: number, now: number): Promise<Lease>;
  /** Gives lease `name` up at once when `holder` holds it (the epoch stays); false otherwise. */
  releaseLease(name: string, holder: string): Promise<boolean>;
  /** The lease `name`, or null when nobody ever took it. */
  getLease(name: string): Promise<Lease | null>;
}

/**
 * A worker as one replica publishes it for the others: what the fleet view, `status`, the
 * console and escalation's laggard set need of it. Times are wall ms since the epoch.
 */
export interface PresenceRow {
  tenant: string;
  agent: string;
  workerId: string;
  /** The replica that holds (or last held) its stream. */
  replica: string;
  connected: boolean;
  pid: number | null;
  features: string[];
  runs: RunReport[];
  launcher: string | null;
  release: Release | null;
  /** What it declared when its stream opened (null: it has not opened one there). */
  declared: { release: Release | null } | null;
  ackedRev: number;
  lastContactAt: number | null;
  lastHeartbeatAt: number | null;
  /** When its launcher reported its process ended (null: not known gone). */
  goneAt: number | null;
  /** It left the view (pruned): a tombstone the other replicas apply, purged later. */
  removed: boolean;
}

/** A worker's settle report (`halted`) as the store keeps it: an acknowledgement of a stop. */
export interface HaltAck {
  directiveId: string;
  tenant: string;
  agent: string;
  workerId: string;
  rev: number;
  runs: string[];
  /** When the report arrived (ISO 8601). */
  at: string;
  /** The replica it arrived at. */
  replica: string;
}

/**
 * Fleet state every replica sees: workers' presence (published in batches by the replica that
 * holds each stream, read by the others as changes by version), workers' acknowledgements of
 * stops (what escalation counts, whichever replica took the report), and the commit time of a
 * rev as the database stamped it (what time-to-stop is measured from).
 */
export interface PresenceStore {
  /** Upserts `rows` in one transaction at one new presence version, returned. */
  putPresence(rows: PresenceRow[]): Promise<number>;
  /**
   * Rows written after presence version `version` (tombstones included), oldest version first, at
   * most `limit`; `version` is the last one returned (the argument when none is). With
   * `exceptReplica`, that replica's own rows are left out (it wrote them: a replica reading back
   * the rows of its last write read its whole fleet again), and when the page is not full
   * `version` is the store's latest presence version, so the next read starts after them too.
   */
  presenceSince(
    version: number,
    limit: number,
    exceptReplica?: string,
  ): Promise<{ rows: PresenceRow[]; version: number }>;
  /** Deletes tombstones written before wall time `before` (ms); returns how many. */
  purgePresence(before: number): Promise<number>;
  /** Stores acknowledgements (a repeat of a worker's for the same directive replaces it). */
  recordAcks(acks: HaltAck[]): Promise<void>;
  /**
   * Withdraws a worker's acknowledgement of a directive (evidence contradicted it) as of wall time
   * `at` (ISO 8601): the acknowledgement stored no longer counts, nor one taken at or before `at`
   * that is written after this (another replica writes its acknowledgements once per turn of its
   * loop, and a withdrawal must not lose that race); one taken after `at` counts. False when no
   * acknowledgement counted.
   */
  retractAck(
    directiveId: string,
    worker: { tenant: string; agent: string; workerId: string },
    at: string,
  ): Promise<boolean>;
  /** The acknowledgements of directive `id` that count (none withdrawn), by tenant, agent and worker id. */
  acksOf(directiveId: string): Promise<HaltAck[]>;
  /** When `rev` committed, as its transaction stamped it (ISO 8601); null when no change has that rev. */
  revCommittedAt(rev: number): Promise<string | null>;
}

/** What every backend does beside its concepts: closing (flushing what it holds and releasing the file or pool). */
export interface StoreLifecycle {
  close(): Promise<void>;
}

/**
 * The control plane's durable state. Every backend (SQLite now, PostgreSQL later) passes the
 * same contract suite (`test/store-contract.ts` and `test/effects-contract.ts`, one suite function
 * per concept below). It is the composition of one interface per concept, so a module that needs one
 * concept takes only that one, and a second backend can be built and tested concept by concept.
 * Rules every backend keeps:
 *
 * - `rev` comes from one sequence per store and grows by exactly one per switchboard change.
 * - Issuing or clearing a directive and its audit records commit in one durable transaction.
 * - Directive commits are serialisable with anything later checked against the switchboard
 *   (permits): a reader that starts after a commit returns sees it.
 * - The audit chain is append-only; each record hashes the previous one.
 */
/** One worker's telemetry batch as a replica forwarded it for the holder of the leader lease. */
export interface ForwardedTelemetry {
  /** Position in the store's order of forwarded batches: increasing in commit order, no batch committed later has a smaller one. */
  id: number;
  /** The replica that received the batch (see `ControlPlane.replicaId`). */
  replica: string;
  tenant: string;
  agent: string;
  workerId: string;
  /** The batch's run updates, as the worker reported them. */
  runs: RunTelemetry[];
  /** When the replica received the batch, wall ms since the epoch (its clock). */
  at: number;
}

/**
 * Workers' telemetry, forwarded so that the supervisor's rules are evaluated once, over every
 * replica's share (issue 14): each replica writes what its workers POSTed (one insert per
 * batch of batches), the holder of the leader lease reads new rows in id order and feeds its
 * supervisor; rows older than the policy's longest window are pruned.
 */
export interface TelemetryStore {
  /** Appends `batches` in one transaction; their ids follow every id committed before it. */
  forwardTelemetry(batches: Omit<ForwardedTelemetry, 'id'>[]): Promise<void>;
  /** Up to `limit` rows with an id above `afterId` and `at` ≥ `since`, in id order. */
  telemetryAfter(afterId: number, since: number, limit: number): Promise<ForwardedTelemetry[]>;
  /** Deletes the rows with `at` before `before` (wall ms); returns how many. */
  pruneTelemetry(before: number): Promise<number>;
}

export interface Store
  extends
    DirectiveStore,
    TelemetryStore,
    PermitStore,
    AuditStore,
    TokenStore,
    FleetStore,
    DrillStore,
    PolicyStore,
    LeaseStore,
    PresenceStore,
    StoreLifecycle {}
