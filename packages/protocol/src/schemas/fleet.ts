import { z } from 'zod';
import { LEVELS } from '../levels.ts';
import { ReleaseReadSchema } from './parts.ts';
import { RunReportSchema } from './reports.ts';

/** A worker's state in the fleet view: `running`, the highest level covering one of its runs, or `stale`. */
export const FleetStateSchema = z.union([z.literal('running'), z.enum(LEVELS), z.literal('stale')]);

/** Ladder levels below halt that are in force on a worker's runs. */
export const WorkerFlagsSchema = z.object({
  /** The lowest rate of the throttles covering any of its runs, or `null`. */
  throttled: z.object({ perSecond: z.number(), per: z.enum(['run', 'agent']) }).nullable(),
  /** Capabilities revoked by a degrade, or `['*']` for read-only; empty when not degraded. */
  degraded: z.array(z.string()),
  isolated: z.boolean(),
  /** A freeze covers one of its runs (its launcher stops the process; the gate refuses every effect). Absent from older control planes. */
  frozen: z.boolean().optional(),
});

/** One worker in the fleet view. */
export const FleetWorkerSchema = z.object({
  workerId: z.string(),
  tenant: z.string(),
  agent: z.string(),
  features: z.array(z.string()),
  connected: z.boolean(),
  pid: z.number().nullable(),
  observedRev: z.number(),
  ackedRev: z.number(),
  lastHeartbeatAgoMs: z.number().nullable(),
  state: FleetStateSchema,
  /**
   * What the switchboard does to this worker's runs, computed by the control plane from its own
   * directives (not from the worker's word): a degraded agent never shows as healthy.
   */
  flags: WorkerFlagsSchema,
  /** Id of the launcher (`killpath run`) that started this worker, or `null`. */
  launcher: z.string().nullable(),
  /** The release this worker declared at connect (`{}` when none). */
  release: ReleaseReadSchema,
  /** Its runs as its last heartbeat reported them. */
  runs: z.array(z.object(RunReportSchema.shape)),
});

/** Workers counted by state (states with none are left out). */
const stateCounts = z.partialRecord(FleetStateSchema, z.number());

/** Workers of one tenant and agent in the fleet view, counted without fetching them. */
export const FleetGroupSchema = z.object({
  tenant: z.string(),
  agent: z.string(),
  workers: z.number(),
  /** Runs those workers report. */
  runs: z.number(),
  /** Workers by state (states with none are left out). */
  states: stateCounts,
});

/**
 * One page of `GET /v1/fleet?limit=&cursor=&tenant=&agent=&state=&run=`: workers in order of
 * tenant, agent and worker id. `total` counts the workers the filters match; `groups` and `states`
 * count the caller's whole view (only `tenant=` narrows them), so a client shows every group
 * while it pages through one. `nextCursor` is opaque; `null` on the last page.
 */
export const FleetPageSchema = z.object({
  rev: z.number(),
  workers: z.array(FleetWorkerSchema),
  total: z.number(),
  limit: z.number(),
  nextCursor: z.string().nullable(),
  groups: z.array(FleetGroupSchema),
  states: stateCounts,
});
