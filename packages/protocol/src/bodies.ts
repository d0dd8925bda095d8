import type { z } from 'zod';
import type {
  AgentKillBodySchema,
  InspectBodySchema,
  IssueDirectiveBodySchema,
  ResumeBodySchema,
  StepBodySchema,
} from './schemas/directives.ts';
import type {
  LauncherEventBodySchema,
  LauncherEventSchema,
  LauncherTokenBodySchema,
  RevokeTokenBodySchema,
  RotateAdminBodySchema,
  TokenBodySchema,
} from './schemas/tokens.ts';

// Bodies an operator's client (CLI, console) sends, derived from the schemas the control plane
// checks them with (`@killpath/protocol/schemas`).

/** Body of `POST /v1/directives` (see {@link IssueDirectiveBodySchema}). */
export type IssueDirectiveBody = z.infer<typeof IssueDirectiveBodySchema>;
/** Body of `POST /v1/agents/{tenant}/{agent}/kill`. */
export type AgentKillBody = z.infer<typeof AgentKillBodySchema>;
/** Body of `POST /v1/directives/{id}/resume`. */
export type ResumeBody = z.infer<typeof ResumeBodySchema>;
/** Body of `POST /v1/directives/{id}/step`. */
export type StepBody = z.infer<typeof StepBodySchema>;
/** Body of `POST /v1/runs/{id}/inspect`. */
export type InspectBody = z.infer<typeof InspectBodySchema>;
/** Body of `POST /v1/tokens`. */
export type TokenBody = z.infer<typeof TokenBodySchema>;
/** Body of `POST /v1/launchers/{id}/token`. */
export type LauncherTokenBody = z.infer<typeof LauncherTokenBodySchema>;
/** Body of `POST /v1/tokens/{id}/revoke`. */
export type RevokeTokenBody = z.infer<typeof RevokeTokenBodySchema>;
/** Body of `POST /v1/tokens/rotate-admin`. */
export type RotateAdminBody = z.infer<typeof RotateAdminBodySchema>;
/** One thing a launcher did to its agent process (see {@link LauncherEventSchema}). */
export type LauncherEvent = z.infer<typeof LauncherEventSchema>;
/** Body of `POST /v1/launchers/{id}/events`. */
export type LauncherEventBody = z.infer<typeof LauncherEventBodySchema>;
