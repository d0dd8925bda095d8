import { z } from 'zod';
import { ROLES } from '../levels.ts';
import { id, text } from './parts.ts';

/** Body of `POST /v1/tokens`: mint a token. */
export const TokenBodySchema = z.strictObject({
  role: z.enum(ROLES),
  /** One tenant, or `*` for every tenant (admins). */
  tenant: z.union([id, z.literal('*')]),
  agent: id.optional(),
  name: text(200).optional(),
  /** Lifetime from now, in ms (at least a second, at most ten years). */
  ttlMs: z
    .number()
    .int()
    .min(1000)
    .max(10 * 366 * 86_400_000)
    .optional(),
  /** When the token stops working (ISO 8601, in the future). */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

/** Body of `POST /v1/launchers/{id}/token`: an agent token for the launcher an operator starts. */
export const LauncherTokenBodySchema = z.strictObject({
  tenant: id,
  agent: id,
  /** Lifetime from now, in ms (at least a minute; default 8 h, at most 24 h). */
  ttlMs: z.number().int().min(60_000).optional(),
});

/** Body of `POST /v1/tokens/{id}/revoke`. */
export const RevokeTokenBodySchema = z.strictObject({ reason: text(2000) });

/** Body of `POST /v1/tokens/rotate-admin`. */
export const RotateAdminBodySchema = z.strictObject({ reason: text(2000).optional() });

/** The caller's identity as the control plane sees it (`GET /v1/whoami`). */
export const PrincipalSchema = z.object({
  tokenId: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  /** `*` for every tenant (admin tokens). */
  tenant: z.string(),
  agent: z.string().nullable(),
  /** When the token stops working (ISO 8601); absent when it never expires. */
  expiresAt: z.string().optional(),
  /**
   * The one launcher id this agent token may act for (a token an operator had minted to start a
   * launcher, `POST /v1/launchers/{id}/token`); absent when the token is not bound to a launcher.
   */
  launcher: z.string().optional(),
});

/** What a launcher did to its agent process; each is audited under its own name. */
export const LAUNCHER_EVENT_TYPES = [
  'process.started',
  'process.killed',
  'process.exited',
  'process.isolated',
  'process.released',
  'process.restart_refused',
  'process.frozen',
  'process.thawed',
  'process.inspected',
  'egress.refused',
  'egress.allowed',
] as const;

/** One thing a launcher did to its agent process (an item of `POST /v1/launchers/{id}/events`). */
export const LauncherEventSchema = z.strictObject({
  type: z.enum(LAUNCHER_EVENT_TYPES),
  directiveId: z.string().max(200).nullable().optional(),
  pid: z.number().int().min(0).optional(),
  signal: z.string().max(20).nullable().optional(),
  code: z.number().int().nullable().optional(),
  ms: z.number().min(0).optional(),
  cut: z.number().int().min(0).optional(),
  destination: z.string().max(300).optional(),
  detail: z.string().max(2000).optional(),
  /** What held the agent's processes: `cgroup` or `process-group`. */
  isolation: z.enum(['cgroup', 'process-group']).optional(),
  /** The processes the action reached (ended, frozen, thawed, inspected). */
  pids: z.array(z.number().int().min(0)).max(1000).optional(),
  /** `process.inspected`: the inspection asked for and where the launcher wrote the evidence. */
  requestId: z.string().max(200).optional(),
  path: z.string().max(4000).optional(),
});

/** Body of `POST /v1/launchers/{id}/events`: what a launcher did to its agent process, for the audit log. */
export const LauncherEventBodySchema = z.strictObject({
  events: z.array(LauncherEventSchema).min(1).max(100),
});
