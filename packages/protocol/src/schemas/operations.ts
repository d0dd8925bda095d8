import { z } from 'zod';
import { id, text } from './parts.ts';

/**
 * Bodies of the operators' and watchdogs' routes beside the switchboard: policy, approvals, the
 * audit log's keys, the watchdog's heartbeat. Strict, with the limits the control plane enforces.
 */

/** Body of `POST /v1/policy`: a policy's YAML source, applied (or only checked, `dryRun`). */
export const PolicyApplyBodySchema = z.strictObject({
  source: z
    .string()
    .min(1)
    .max(48 * 1024),
  comment: z.string().max(2000).optional(),
  dryRun: z.boolean().optional(),
});

/** Body of `POST /v1/policy/rollback`. */
export const PolicyRollbackBodySchema = z.strictObject({
  version: z.number().int().min(1),
  comment: z.string().min(1).max(2000),
});

/** Body of `POST /v1/approvals/{id}/approve`. */
export const ApproveBodySchema = z.strictObject({
  justification: z.string().trim().min(1).max(4000),
  /** The target the approver was shown (a directive id, a policy digest): refused when it differs. */
  target: z.string().min(1).max(200).optional(),
  /** The directive rev (or policy version) the approver was shown: refused when it differs. */
  targetRev: z.number().int().min(0).optional(),
});

/** Body of `POST /v1/audit/verify`: a signed checkpoint kept earlier (parsed by `parseCheckpoint`). */
export const AuditVerifyBodySchema = z.strictObject({ checkpoint: z.unknown() });

/** Body of `POST /v1/audit/key/rotate`. */
export const AuditRotateBodySchema = z.strictObject({ reason: text(500) });

const watchdogId = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,64}$/, 'a watchdog id is 1-64 letters, digits or ._:@-');

/** Body of `POST /v1/watchdog/beat`. */
export const WatchdogBeatBodySchema = z.strictObject({ watchdog: watchdogId });

/** Body of `POST /v1/watchdog/trip`. */
export const WatchdogTripBodySchema = z.strictObject({
  watchdog: watchdogId,
  workerId: id,
  /** The worker's tenant and agent (a worker id is its agent's own); both or neither. */
  tenant: id.optional(),
  agent: id.optional(),
});

/** Body of `POST /v1/watchdog/alerts`. */
export const WatchdogAlertBodySchema = z.strictObject({
  watchdog: watchdogId,
  kind: z.enum(['supervisor.absent', 'supervisor.recovered']),
  ageMs: z.number().min(0),
});
