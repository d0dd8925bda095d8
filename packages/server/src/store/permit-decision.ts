import { randomUUID } from 'node:crypto';
import {
  compileRun,
  decideEffect,
  type Directive,
  type PermitResponse,
  type Release,
  type RunIdentity,
} from '@killpath/protocol';
import type { PermitRow } from './sqlite-rows.ts';
import type { PermitDecision, PermitGrant } from './store.ts';

/**
 * What a permit request gets, decided the same way by every backend: a backend reads what the
 * decision needs (the run's owner, the permit an idempotency key already names, the switchboard
 * at its rev, each under its own locks) and writes what the decision says. What a directive
 * covers is `protocol`'s rule (`decideEffect`), called here, never restated.
 */

/** The last permit id's time and counter: ids this process makes only ever grow. */
let lastMs = 0;
let counter = 0;

/**
 * A new permit's id: `p_` and a UUID of version 7 (RFC 9562: the first 48 bits are the Unix time
 * in ms, the rest random), so ids a store writes one after another sort together. A store keys
 * permits by id, and a random id put every insert (and every outcome's lookup) on a different
 * page of that index: on SQLite about a third more pages written per group commit. The time is
 * the system's, not an injected clock's: it orders the index, it means nothing else.
 *
 * Monotonic within the process (RFC 9562 §6.2, method 1): the 12 bits after the version are a
 * counter, started at a random value in its lower half each new ms and bumped within the same ms
 * (or a clock stepped back), carrying into the time when full. So a run's permits granted in one
 * ms list in grant order wherever permits are ordered by `intended_at, id` (the ledger).
 */
export function newPermitId(): string {
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx, y the RFC 4122 variant
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    counter = Number.parseInt(random.slice(15, 18), 16) & 0x7ff;
  } else if (++counter > 0xfff) {
    lastMs += 1;
    counter = 0;
  }
  const ms = lastMs.toString(16).padStart(12, '0');
  return `p_${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${counter.toString(16).padStart(3, '0')}${random.slice(18)}`;
}

/** A run's identity as the coverage rule reads it. */
export function runIdentity(r: {
  tenant: string;
  agent: string;
  runId: string;
  lineage: readonly string[];
  features: readonly string[];
  release?: Release | null | undefined;
}): RunIdentity {
  return {
    tenant: r.tenant,
    agent: r.agent,
    runId: r.runId,
    lineage: r.lineage,
    features: r.features,
    release: r.release ?? null,
  };
}

/** The run identity stored with a permit row (lineage, features and release are JSON text). */
export function rowIdentity(r: PermitRow): RunIdentity {
  return runIdentity({
    tenant: r.tenant,
    agent: r.agent,
    runId: r.run_id,
    lineage: JSON.parse(r.lineage) as string[],
    features: JSON.parse(r.features) as string[],
    release: r.release === null ? null : (JSON.parse(r.release) as Release),
  });
}

/** A permit row as the worker's answer (`replay`: an idempotency key's earlier permit, with its landed result). */
export function permitResponse(r: PermitRow, replay: boolean): PermitResponse {
  return {
    permit: {
      id: r.id,
      rev: r.rev,
      runId: r.run_id,
      capability: r.capability,
      class: r.class,
      idempotencyKey: r.idempotency_key,
      status: r.status,
      confirmAfter: r.confirm_after,
      coolOffMs: r.cool_off_ms,
    },
    replay,
    ...(replay && r.status === 'landed' && r.result !== null
      ? { result: JSON.parse(r.result) as unknown }
      : {}),
  };
}

/** What the store knows of a request when deciding it. */
export interface PermitFacts {
  /** The agent the run is registered to; null when it is not registered yet (this request registers it). */
  owner: string | null;
  /**
   * The registered run's lineage and features (JSON text, as stored), read with `owner`; absent
   * when it is not registered. Coverage is decided on them plus whatever more the request
   * claims: an omission or a lie in a request never takes a run out of a stop.
   */
  stored?: { lineage: string; features: string };
  /** The permit the run already has under the request's idempotency key; null for none (or no key). */
  prior: PermitRow | null;
}

/** A decision and the writes it takes. */
export interface PermitStep {
  decision: PermitDecision;
  /** Register the run to the asker (it had no owner). */
  register: boolean;
  /** The id of `prior`, to move from `granted` to `in_doubt` (a key reused before its outcome). */
  doubt: string | null;
  /**
   * The permit row to insert (a grant); null otherwise. Its intent reaches the audit as every
   * written row does: in the transaction's `ledger.committed` record (`audit/ledger.ts`), with
   * `prior` in doubt when `doubt` is set.
   */
  row: PermitRow | null;
}

/**
 * Decides one permit request against the switchboard `active` at `rev`: a run registered to
 * another agent of the tenant is a `conflict`; an idempotency key already used returns its
 * landed permit (replay) or is a `conflict` (no outcome yet: in doubt, at most once; or ended
 * otherwise); a covered write is `halted`; else a new permit (cooling off first when
 * irreversible with a cool-off), intended at `now`.
 */
export function decidePermit(
  q: PermitGrant,
  facts: PermitFacts,
  rev: number,
  active: readonly Directive[],
  now: Date,
): PermitStep {
  const step: PermitStep = {
    decision: { kind: 'not_found' },
    register: facts.owner === null,
    doubt: null,
    row: null,
  };
  if (facts.owner !== null && facts.owner !== q.agent) {
    step.decision = {
      kind: 'conflict',
      message: `run ${q.runId} belongs to another agent of tenant ${q.tenant}`,
    };
    return step;
  }
  const prior = q.idempotencyKey === null ? null : facts.prior;
  if (prior !== null) {
    if (prior.status === 'landed') {
      step.decision = { kind: 'granted', response: permitResponse(prior, true) };
    } else if (prior.status === 'granted' || prior.status === 'cooling_off' || prior.status === 'in_doubt') {
      // The effect may have run: at most once means refuse until someone reconciles.
      if (prior.status === 'granted') step.doubt = prior.id;
      step.decision = {
        kind: 'conflict',
        message: `effect ${q.idempotencyKey} of run ${q.runId} was started before without an outcome (in doubt); reconcile it from the journal`,
      };
    } else {
      step.decision = {
        kind: 'conflict',
        message: `effect ${q.idempotencyKey} of run ${q.runId} already ended ${prior.status}; use a new idempotency key to try again`,
      };
    }
    return step;
  }
  // The run as registered (when it is the asker's), plus the request's own claims.
  const mine = facts.owner === q.agent && facts.stored !== undefined;
  const lineage = mine ? union(JSON.parse(facts.stored!.lineage) as string[], q.lineage) : q.lineage;
  const features = mine ? union(JSON.parse(facts.stored!.features) as string[], q.features) : q.features;
  const verdict = decideEffect(
    compileRun(active, runIdentity({ ...q, lineage, features })),
    q.capability,
    q.class,
  );
  if (verdict.kind === 'deny') {
    step.decision = { kind: 'halted', directive: verdict.directive, rev };
    return step;
  }
  const cooling = q.class === 'irreversible' && q.coolOffMs > 0;
  const row: PermitRow = {
    id: newPermitId(),
    rev,
    run_id: q.runId,
    tenant: q.tenant,
    agent: q.agent,
    worker_id: q.workerId,
    capability: q.capability,
    class: q.class,
    idempotency_key: q.idempotencyKey ?? null,
    args_digest: q.argsDigest ?? null,
    compensate: q.compensate === null ? null : JSON.stringify(q.compensate),
    status: cooling ? 'cooling_off' : 'granted',
    cool_off_ms: cooling ? q.coolOffMs : 0,
    confirm_after: cooling ? new Date(now.getTime() + q.coolOffMs).toISOString() : null,
    lineage: JSON.stringify(lineage),
    features: JSON.stringify(features),
    release: q.release === undefined ? null : JSON.stringify(q.release),
    result: null,
    error: null,
    after_abort: 0,
    intended_at: now.toISOString(),
    settled_at: null,
  };
  step.row = row;
  step.decision = { kind: 'granted', response: permitResponse(row, false) };
  return step;
}

/** The distinct strings of both lists, in first-seen order (the stored list first). */
function union(stored: readonly string[], claimed: readonly string[]): readonly string[] {
  if (claimed.every((c) => stored.includes(c))) return stored;
  return [...new Set([...stored, ...claimed])];
}
