import { z } from 'zod';
import { LEVELS } from '../levels.ts';
import { MAX_RUNS_PER_HEARTBEAT } from '../limits.ts';
import { isIdentifier } from '../scope.ts';
import { DIRECTIVE_REF_MAX, ReleaseSchema, capability, count, directiveRef, id } from './parts.ts';
import { MAX_BATCH } from './permits.ts';

/** State of one run as a worker reports it. */
export const RunReportSchema = z.strictObject({
  runId: id,
  parentRunId: id.nullable(),
  lineage: z.array(id).max(256),
  /** `running`, or the highest level covering the run as the worker sees it. */
  state: z.union([z.literal('running'), z.enum(LEVELS)]),
  effects: count,
  denied: count,
  inFlight: count,
});

/** Periodic heartbeat from a worker (body of `POST /v1/workers/{id}/heartbeat`). */
export const HeartbeatReportSchema = z.strictObject({
  rev: count,
  features: z.array(id).max(256),
  runs: z
    .array(RunReportSchema)
    .max(
      MAX_RUNS_PER_HEARTBEAT,
      `at most ${MAX_RUNS_PER_HEARTBEAT} runs per heartbeat (one worker hosting more should be split)`,
    ),
  pid: count,
  /** Milliseconds since the worker last heard from the control plane (monotonic). */
  sinceContactMs: z.number().min(0),
  /** Id of the launcher that started this worker (`KILLPATH_LAUNCHER_ID`), if any. */
  launcher: id.optional(),
  /** The release this worker runs (declared at connect); omitted when none is declared. */
  release: ReleaseSchema.optional(),
  /**
   * Capabilities granted to or used by this worker's runs since it started (declared with
   * `startRun({ capabilities })`, or checked and attempted, denied ones included): sorted,
   * deduplicated, identifiers only. The control plane keeps each agent's capability surface
   * from it, and a new capability makes the agent due for a drill. Omitted when empty.
   */
  capabilities: z.array(capability).max(4096).optional(),
});

/** A worker applied `rev` to its mirror (body of `POST /v1/workers/{id}/ack`). */
export const AckReportSchema = z.strictObject({ rev: count });

/**
 * A worker has settled the effects covered by a directive: covered in-flight effects have
 * finished or been aborted, and new ones are refused (body of `POST /v1/workers/{id}/halted`).
 */
export const HaltedReportSchema = z.strictObject({
  rev: count,
  directiveId: directiveRef,
  runs: z.array(id).max(MAX_RUNS_PER_HEARTBEAT, `at most ${MAX_RUNS_PER_HEARTBEAT} runs per report`),
  /** In-flight effects aborted by this directive on this worker. */
  aborted: count,
  /** In-flight reads allowed to complete. */
  completed: count,
  /** Worker-measured time from applying the rev to settling, in ms (monotonic). */
  observeToSettleMs: z.number().min(0),
});

/**
 * One report in a {@link WorkerReportBatchSchema}: an ack or a halted report (the body of
 * `POST /v1/workers/{id}/ack` or `/halted`) with the worker it is from and its kind.
 */
export const WorkerReportItemSchema = z.discriminatedUnion('kind', [
  AckReportSchema.extend({ kind: z.literal('ack'), workerId: id }),
  HaltedReportSchema.extend({ kind: z.literal('halted'), workerId: id }),
]);

/**
 * Body of `POST /v1/workers/reports`: acks and halted reports of several workers that share a
 * process and a token, sent together (after a flip every worker of a host reports in the same
 * turn). Each is taken as its own route takes it, in order; the answer is one
 * `{ status, body? }` per report (`BatchAnswers`).
 */
export const WorkerReportBatchSchema = z.strictObject({
  reports: z.array(WorkerReportItemSchema).min(1).max(MAX_BATCH),
});

/*
 * Checks of the three report bodies without zod. After a flip every covered worker reports, so
 * a fleet's wave of acks and halted reports is most of what the control plane parses between the
 * flip and the last report, and the schemas' checks were a sixth of each report's cost there
 * (`npm run bench`, `--cpu-prof`). Each accepts exactly a subset of what its schema accepts (the
 * same keys, no other, with the same limits), so the control plane takes what one accepts as
 * is and hands the schema only what it refuses, for the schema's own error. Property test:
 * packages/protocol/test/report-checks.test.ts.
 */

/** Keys of an ack body, and of a batch's ack item. */
const ACK_KEYS = ['rev'] as const;
/** Keys of a halted body, and of a batch's halted item. */
const HALTED_KEYS = ['rev', 'directiveId', 'runs', 'aborted', 'completed', 'observeToSettleMs'] as const;
const ACK_ITEM_KEYS = ['kind', 'workerId', ...ACK_KEYS] as const;
const HALTED_ITEM_KEYS = ['kind', 'workerId', ...HALTED_KEYS] as const;

type Fields = Record<string, unknown>;

/** An object with exactly these own keys (a strict schema's key set). */
function hasExactly(v: unknown, keys: readonly string[]): v is Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  if (Object.keys(v).length !== keys.length) return false;
  for (const k of keys) if (!Object.hasOwn(v, k)) return false;
  return true;
}

/** `count`: an integer ≥ 0 (zod's `int()` is a safe integer). */
function isCount(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isId(v: unknown): boolean {
  return typeof v === 'string' && isIdentifier(v);
}

/** The fields a halted body and a halted item share, keys already checked. */
function haltedFields(o: Fields): boolean {
  const runs = o.runs;
  if (!Array.isArray(runs) || runs.length > MAX_RUNS_PER_HEARTBEAT) return false;
  for (const r of runs) if (!isId(r)) return false;
  const settle = o.observeToSettleMs;
  return (
    isCount(o.rev) &&
    typeof o.directiveId === 'string' &&
    o.directiveId.length <= DIRECTIVE_REF_MAX &&
    isCount(o.aborted) &&
    isCount(o.completed) &&
    typeof settle === 'number' &&
    Number.isFinite(settle) &&
    settle >= 0
  );
}

/** True when {@link AckReportSchema} accepts `v` as it is (see above). */
export function isAckReport(v: unknown): v is z.infer<typeof AckReportSchema> {
  return hasExactly(v, ACK_KEYS) && isCount(v.rev);
}

/** True when {@link HaltedReportSchema} accepts `v` as it is (see above). */
export function isHaltedReport(v: unknown): v is z.infer<typeof HaltedReportSchema> {
  return hasExactly(v, HALTED_KEYS) && haltedFields(v);
}

/** True when {@link WorkerReportBatchSchema} accepts `v` as it is (see above). */
export function isWorkerReportBatch(v: unknown): v is z.infer<typeof WorkerReportBatchSchema> {
  if (!hasExactly(v, ['reports'])) return false;
  const reports = v.reports;
  if (!Array.isArray(reports) || reports.length < 1 || reports.length > MAX_BATCH) return false;
  for (const r of reports) {
    const ok =
      typeof r === 'object' && r !== null && (r as Fields).kind === 'ack'
        ? hasExactly(r, ACK_ITEM_KEYS) && isId(r.workerId) && isCount(r.rev)
        : hasExactly(r, HALTED_ITEM_KEYS) && r.kind === 'halted' && isId(r.workerId) && haltedFields(r);
    if (!ok) return false;
  }
  return true;
}

/** A worker-side run registration (body of `POST /v1/runs`), so operators can target it by id. */
export const RunRegistrationSchema = z.strictObject({
  runId: id,
  parentRunId: id.nullable(),
  lineage: z.array(id).max(256),
  features: z.array(id).max(256),
  workerId: id,
});

/** Body of `POST /v1/runs/{id}/resume`: a worker asks whether a run may resume. */
export const ResumeRequestSchema = z.strictObject({
  workerId: id,
  lineage: z.array(id).max(256),
  features: z.array(id).max(256),
  release: ReleaseSchema.optional(),
});
