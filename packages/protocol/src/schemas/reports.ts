import { z } from 'zod';
import { LEVELS } from '../levels.ts';
import { MAX_RUNS_PER_HEARTBEAT } from '../limits.ts';
import { ReleaseSchema, capability, count, directiveRef, id } from './parts.ts';
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
