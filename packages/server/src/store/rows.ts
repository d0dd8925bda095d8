import { randomUUID } from 'node:crypto';
import type { Approval } from '@killpath/protocol';
import { parseScope, type BreakGlass, type Directive, type Release } from '@killpath/protocol';
import type { DrilledAgent, RehearsalInput, RehearsalRecord, ScenarioResult } from '@killpath/protocol';
import type {
  AgentSurface,
  ApprovalRecord,
  HaltAck,
  LastDrill,
  PresenceRow,
  NewToken,
  PolicyVersion,
  StoredCheckpoint,
  TokenRecord,
} from './store.ts';

/**
 * Rows of the tables both backends share (same snake_case columns) and how each becomes the
 * store's record, written once for SQLite (`sqlite-*.ts`) and PostgreSQL (`pg/*.ts`). A row
 * type takes either driver's values: integers may come back from PostgreSQL as strings or
 * bigints (hence `Number()`), booleans as SQLite's 0/1, JSON as text or as PostgreSQL's parsed
 * `jsonb`.
 */

/** An integer column as a driver returns it. */
export type DbInt = number | string | bigint;

/** A row of `policy_versions`. */
export interface PolicyRow {
  version: DbInt;
  source: string;
  digest: string;
  actor: string;
  comment: string | null;
  rollback_of: DbInt | null;
  created_at: string;
}

/** A policy row as the store's policy version. */
export function toPolicy(r: PolicyRow): PolicyVersion {
  return {
    version: Number(r.version),
    source: r.source,
    digest: r.digest,
    actor: r.actor,
    comment: r.comment,
    rollbackOf: r.rollback_of === null ? null : Number(r.rollback_of),
    createdAt: r.created_at,
  };
}

/** A policy row without its source as the store's listing of that version. */
export function toPolicyListing(r: Omit<PolicyRow, 'source'>): Omit<PolicyVersion, 'source'> {
  const { source: _source, ...rest } = toPolicy({ ...r, source: '' });
  return rest;
}

/** A row of `approvals` (`approvals` and `payload` are stored as JSON text). */
export interface ApprovalRow {
  id: string;
  action: string;
  rule: string;
  tenant: string | null;
  target: string;
  target_rev: DbInt | null;
  summary: string;
  requested_by: string;
  requested_token: string;
  reason: string;
  created_at: string;
  expires_at: string;
  needed: DbInt;
  approver_role: string;
  contact: string | null;
  approvals: string;
  state: string;
  completed_at: string | null;
  outcome: string | null;
  payload: string | null;
}

/** An approval row as the store's approval record. */
export function toApproval(r: ApprovalRow): ApprovalRecord {
  return {
    id: r.id,
    action: r.action as ApprovalRecord['action'],
    rule: r.rule,
    tenant: r.tenant,
    target: r.target,
    targetRev: r.target_rev === null ? null : Number(r.target_rev),
    summary: r.summary,
    requestedBy: r.requested_by,
    requestedToken: r.requested_token,
    reason: r.reason,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    needed: Number(r.needed),
    approverRole: r.approver_role as ApprovalRecord['approverRole'],
    contact: r.contact,
    approvals: JSON.parse(r.approvals) as Approval[],
    state: r.state as ApprovalRecord['state'],
    completedAt: r.completed_at,
    outcome: r.outcome,
    payload: r.payload === null ? null : (JSON.parse(r.payload) as Record<string, unknown>),
  };
}

/** A row of `tokens` without its secret's hash (the columns a token record shows). */
export interface TokenRow {
  id: string;
  name: string;
  role: TokenRecord['role'];
  tenant: string;
  agent: string | null;
  created_at: string;
  revoked_at: string | null;
  expires_at: string | null;
  revoked_by: string | null;
  revoke_reason: string | null;
  launcher: string | null;
  minted_by: string | null;
}

/** A token row as the store's token record. */
export function toToken(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    tenant: r.tenant,
    agent: r.agent,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
    revokeReason: r.revoke_reason,
    launcher: r.launcher,
    mintedBy: r.minted_by,
  };
}

/** A row of `drills` (`agents` is JSON text on SQLite, `jsonb` on PostgreSQL). */
export interface DrillRow {
  id: string;
  recorded_at: string;
  recorded_by: string;
  spec_name: string;
  spec_digest: string;
  mode: string;
  compact: number | boolean;
  result: string;
  started_at: string;
  finished_at: string;
  agents: string | DrilledAgent[];
  scenarios: string;
  audit_seq: DbInt;
}

/** A drill row as the store's rehearsal record. */
export function toDrill(r: DrillRow): RehearsalRecord {
  return {
    id: r.id,
    recordedAt: r.recorded_at,
    recordedBy: r.recorded_by,
    auditSeq: Number(r.audit_seq),
    spec: {
      name: r.spec_name,
      digest: r.spec_digest,
      agents: typeof r.agents === 'string' ? (JSON.parse(r.agents) as DrilledAgent[]) : r.agents,
    },
    mode: r.mode as RehearsalRecord['mode'],
    compact: r.compact !== 0 && r.compact !== false,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    result: r.result as RehearsalRecord['result'],
    scenarios: JSON.parse(r.scenarios) as ScenarioResult[],
  };
}

/** Scenarios as stored: without their timelines (those are for reports only). */
function withoutTimelines(scenarios: readonly ScenarioResult[]): ScenarioResult[] {
  return scenarios.map(({ timeline: _timeline, ...s }) => s);
}

/** A new drill's record as both backends store it, before the audit gives it its `auditSeq`. */
export function newDrill(input: RehearsalInput, recordedBy: string): Omit<RehearsalRecord, 'auditSeq'> {
  return {
    id: `dr_${randomUUID()}`,
    recordedAt: new Date().toISOString(),
    recordedBy,
    spec: {
      name: input.spec.name,
      digest: input.spec.digest,
      agents: input.spec.agents.map((a) => ({
        tenant: a.tenant,
        agent: a.agent,
        level: a.level,
        cadenceDays: a.cadenceDays,
      })),
    },
    mode: input.mode,
    compact: input.compact,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    result: input.result,
    scenarios: withoutTimelines(input.scenarios),
  };
}

/** A new token's record as both backends return it on creation (never revoked yet). */
export function newTokenRecord(t: NewToken, createdAt: string): TokenRecord {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    tenant: t.tenant,
    agent: t.agent,
    createdAt,
    expiresAt: t.expiresAt ?? null,
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
    launcher: t.launcher ?? null,
    mintedBy: t.mintedBy ?? null,
  };
}

/** A drilled agent's row of the last-drill query, newest first (`agent` as JSON text or `jsonb`). */
export interface LastDrillRow {
  id: string;
  finished_at: string;
  result: string;
  spec_digest: string;
  agent: string | DrilledAgent;
}

/** Each agent's last drill from rows ordered newest first (the first row of an agent wins). */
export function toLastDrills(rows: readonly LastDrillRow[]): LastDrill[] {
  const out = new Map<string, LastDrill>();
  for (const r of rows) {
    const a = typeof r.agent === 'string' ? (JSON.parse(r.agent) as DrilledAgent) : r.agent;
    const key = `${a.tenant}/${a.agent}`;
    if (out.has(key)) continue;
    out.set(key, {
      tenant: a.tenant,
      agent: a.agent,
      level: a.level,
      cadenceDays: a.cadenceDays,
      drillId: r.id,
      finishedAt: r.finished_at,
      result: r.result as LastDrill['result'],
      specDigest: r.spec_digest,
    });
  }
  return [...out.values()];
}

/**
 * Agents' capability surfaces from rows ordered by tenant, agent, capability (an agent with no
 * capability seen yet comes as one row with `capability` null).
 */
export function toAgentSurfaces(
  rows: readonly { tenant: string; agent: string; capability: string | null; first_seen_at: string | null }[],
): AgentSurface[] {
  const out: AgentSurface[] = [];
  for (const r of rows) {
    let last = out.at(-1);
    if (last === undefined || last.tenant !== r.tenant || last.agent !== r.agent)
      out.push((last = { tenant: r.tenant, agent: r.agent, capabilities: [] }));
    if (r.capability !== null && r.first_seen_at !== null)
      last.capabilities.push({ capability: r.capability, firstSeenAt: r.first_seen_at });
  }
  return out;
}

/** A row of `checkpoints` (a signed checkpoint of the audit log; `frontier` is JSON text). */
export interface CheckpointRow {
  size: DbInt;
  root_hash: string;
  origin: string;
  signed_at: string;
  key_id: string;
  signature: string;
  frontier: string;
}

/** A checkpoint row as the store's stored checkpoint. */
export function toStoredCheckpoint(r: CheckpointRow): StoredCheckpoint {
  return {
    checkpoint: {
      format: 'killpath-checkpoint/1',
      origin: r.origin,
      size: Number(r.size),
      rootHash: r.root_hash,
      timestamp: r.signed_at,
      keyId: r.key_id,
      signature: r.signature,
    },
    frontier: JSON.parse(r.frontier) as string[],
  };
}

/**
 * A row of `directives` (JSON columns as text). The idempotency columns and `break_glass` are
 * absent on SQLite databases older than schema versions 6 and 10.
 */
export interface DirectiveRow {
  id: string;
  rev: DbInt;
  level: string;
  scope: string;
  tenant: string | null;
  capabilities: string | null;
  rate: string | null;
  grace_ms: DbInt;
  drain: string;
  memory: string;
  reason: string;
  justification: string;
  actor: string;
  idempotency_key?: string | null;
  idempotency_digest?: string | null;
  issued_at: string;
  cleared_at: string | null;
  cleared_rev: DbInt | null;
  escalation: string;
  escalated_from: string | null;
  releases: string;
  break_glass?: string | null;
}

/** A stored row as a directive. */
export function toDirective(r: DirectiveRow): Directive {
  return {
    id: r.id,
    rev: Number(r.rev),
    level: r.level as Directive['level'],
    scope: parseScope(r.scope),
    scopeText: r.scope,
    tenant: r.tenant,
    capabilities: r.capabilities === null ? null : (JSON.parse(r.capabilities) as string[]),
    rate: r.rate === null ? null : (JSON.parse(r.rate) as Directive['rate']),
    escalation: JSON.parse(r.escalation) as Directive['escalation'],
    escalatedFrom: r.escalated_from,
    graceMs: Number(r.grace_ms),
    drain: r.drain as Directive['drain'],
    memory: r.memory as Directive['memory'],
    reason: r.reason,
    justification: r.justification,
    actor: r.actor,
    issuedAt: r.issued_at,
    clearedAt: r.cleared_at,
    clearedRev: r.cleared_rev === null ? null : Number(r.cleared_rev),
    releases: JSON.parse(r.releases) as Release[],
    breakGlass: r.break_glass ? (JSON.parse(r.break_glass) as BreakGlass) : null,
  };
}

/** A `halt_acks` row: a worker's acknowledgement of a halt, as either backend stores it. */
export interface HaltAckRow {
  directive_id: string;
  tenant: string;
  agent: string;
  worker_id: string;
  rev: DbInt;
  /** JSON text, as stored. */
  runs: string;
  at: string;
  replica: string;
  /** When it was withdrawn (ISO 8601), null when it never was. */
  withdrawn_at: string | null;
}

export function toHaltAck(r: HaltAckRow): HaltAck {
  return {
    directiveId: r.directive_id,
    tenant: r.tenant,
    agent: r.agent,
    workerId: r.worker_id,
    rev: Number(r.rev),
    runs: JSON.parse(r.runs) as string[],
    at: r.at,
    replica: r.replica,
  };
}

/** A `presence` row: a worker as one replica published it, its state as one JSON text. */
export interface PresenceDbRow {
  tenant: string;
  agent: string;
  worker_id: string;
  replica: string;
  version: DbInt;
  /** SQLite's 0/1 or PostgreSQL's boolean. */
  removed: number | boolean;
  state: string;
}

/** The columns of a presence row kept as one JSON text (nothing queries inside them). */
type PresenceState = Omit<PresenceRow, 'tenant' | 'agent' | 'workerId' | 'replica' | 'removed'>;

export function toPresenceRow(r: PresenceDbRow): PresenceRow {
  return {
    tenant: r.tenant,
    agent: r.agent,
    workerId: r.worker_id,
    replica: r.replica,
    removed: r.removed === true || r.removed === 1,
    ...(JSON.parse(r.state) as PresenceState),
  };
}
