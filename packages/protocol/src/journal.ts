import type { EffectClass } from './levels.ts';
import type { Release } from './release.ts';

/**
 * Body of `POST /v1/permits`: the intent record of one write or irreversible effect, written
 * before the effect runs. The control plane grants it only if no halt or kill covering the run
 * and capability is on the switchboard, in the same serialised transaction as the grant.
 */
export interface PermitRequest {
  workerId: string;
  runId: string;
  /** The run's ancestors, root first (so coverage is decided without a prior registration). */
  lineage: string[];
  features: string[];
  /** The release of the worker hosting the run (`release:` scopes cover by it); omitted when none. */
  release?: Release;
  capability: string;
  class: Exclude<EffectClass, 'read'>;
  /** Same key, same run: the same permit, and the effect never runs twice. */
  idempotencyKey: string | null;
  /** SHA-256 (hex) of the effect's arguments as the caller defines them; kept on the record. */
  argsDigest: string | null;
  /** How to undo the effect if it lands and the run is later halted: free-form JSON for the operator. */
  compensate: Record<string, unknown> | null;
  /**
   * The switchboard rev the worker had applied when it asked. A request asked before the worker
   * observed a stop (and only delivered after its halted report) is no sign that it ignores the
   * stop; one asked after is. Omitted by old workers: then every request after a report counts.
   */
  seenRev?: number;
}

/** Final or current state of a permitted effect. */
export type EffectStatus =
  'granted' | 'cooling_off' | 'landed' | 'failed' | 'aborted' | 'cancelled' | 'in_doubt';

/** A granted (or cooling-off) permit. */
export interface Permit {
  id: string;
  /** Switchboard rev the grant was checked against. */
  rev: number;
  runId: string;
  capability: string;
  class: Exclude<EffectClass, 'read'>;
  idempotencyKey: string | null;
  status: EffectStatus;
  /** For irreversible effects: confirm no earlier than this (ISO 8601), then `POST /v1/permits/{id}/confirm`. */
  confirmAfter: string | null;
  coolOffMs: number;
}

/**
 * Answer of `POST /v1/permits` (201 for a new permit, 200 for a replay of an idempotency key),
 * and of `POST /v1/permits/{id}/confirm` (empty body). Only a `granted` permit (or a
 * `cooling_off` one followed by a granted confirm) may run the effect.
 * On a replay whose effect already landed, `result` is what the effect returned then; the SDK
 * returns it without running the effect again. A replay whose effect has no outcome (the worker
 * died mid-effect) is refused with code `conflict`: at most once.
 */
export interface PermitResponse {
  permit: Permit;
  replay: boolean;
  result?: unknown;
}

/**
 * Body of `POST /v1/permits/{id}/outcome`. A permit the worker never used (aborted before the
 * effect started, or a cooling-off permit cancelled by a halt it observed) is reported
 * `aborted` with `afterAbort: false`. The first outcome wins.
 */
export interface PermitOutcome {
  status: 'landed' | 'failed' | 'aborted';
  /** JSON-serialisable return value of the effect (landed), at most 64 KiB serialised. */
  result?: unknown;
  error?: string;
  /** Set when the outcome came after the effect's signal was aborted by a halt. */
  afterAbort?: boolean;
}

/**
 * Body of `POST /v1/permits/batch`: several permit requests sent together (an SDK coalesces the
 * requests its runs make in one event-loop turn). Each is decided exactly as `POST /v1/permits`
 * would decide it; they share one durable commit at the control plane.
 */
export interface PermitBatch {
  requests: PermitRequest[];
}

/**
 * One answer of a batch, in request order: the HTTP status and body the single-request route
 * would have answered (a `PermitResponse` on 200/201, the wire error shape otherwise).
 */
export interface BatchAnswer {
  status: number;
  body?: unknown;
}

/** Answer of `POST /v1/permits/batch` and `POST /v1/permits/outcomes`: one per item, in order. */
export interface BatchAnswers {
  answers: BatchAnswer[];
}

/** One outcome of `POST /v1/permits/outcomes`: the permit it closes and how its effect ended. */
export interface OutcomeReport extends PermitOutcome {
  permitId: string;
}

/** Body of `POST /v1/permits/outcomes`: outcomes reported together (coalesced by the SDK). */
export interface OutcomeBatch {
  outcomes: OutcomeReport[];
}

/** A run-scoped event the SDK journals to the control plane (`POST /v1/journal`). */
export type JournalEvent =
  | {
      type: 'timer.cancelled';
      runId: string;
      timer: 'timeout' | 'interval' | 'retry';
      label: string | null;
      dueAt: string;
      directiveId: string | null;
    }
  | {
      type: 'queue.discarded';
      runId: string | null;
      queue: string;
      taskId: string;
      payload: unknown;
      directiveId: string | null;
    }
  | {
      type: 'queue.drained';
      runId: string | null;
      queue: string;
      taskId: string;
      outcome: 'completed' | 'failed';
      directiveId: string | null;
    }
  | { type: 'memory.reverted'; runId: string; keys: string[]; directiveId: string | null }
  | { type: 'memory.committed'; runId: string; keys: string[]; directiveId: string | null }
  /**
   * An effect refused by a degrade or an isolate (an authorisation denial): journaled once per
   * run, capability and directive, so a degraded agent is visible from outside; later attempts
   * are counted in the run's `denied`.
   */
  | {
      type: 'effect.denied';
      runId: string;
      capability: string;
      class: 'read' | 'write' | 'irreversible';
      reason: 'revoked' | 'read_only' | 'isolated';
      directiveId: string | null;
    }
  | {
      type: 'in_flight_tool_calls.status';
      runId: string;
      /** Worker-local effect id (`<workerId>:<n>`). */
      effectId: string;
      /** The permit of a write or irreversible effect, linking the status to its ledger entry; null for reads. */
      permitId: string | null;
      capability: string;
      class: EffectClass;
      status: 'completed' | 'aborted' | 'failed';
      directiveId: string | null;
    };

/** Body of `POST /v1/journal`. */
export interface JournalBatch {
  workerId: string;
  events: JournalEvent[];
}

/** Body of `POST /v1/runs/{id}/resume`: a durable agent asking whether it may resume a run. */
export interface ResumeRequest {
  workerId: string;
  lineage: string[];
  features: string[];
  /** The release of the worker resuming the run; omitted when none. */
  release?: Release;
}

/** One effect in a run's ledger (`GET /v1/runs/{id}/journal`). */
export interface LedgerEntry {
  permitId: string;
  runId: string;
  capability: string;
  class: Exclude<EffectClass, 'read'>;
  idempotencyKey: string | null;
  argsDigest: string | null;
  status: EffectStatus;
  compensate: Record<string, unknown> | null;
  intendedAt: string;
  settledAt: string | null;
  afterAbort: boolean;
  error: string | null;
}
