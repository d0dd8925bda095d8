import type { z } from 'zod';
import {
  IssueDirectiveBodySchema,
  StepBodySchema,
  InspectBodySchema,
  LauncherEventBodySchema,
  TokenBodySchema,
  LauncherTokenBodySchema,
} from '@killpath/protocol/schemas';

// The bodies the control plane accepts are defined once, in `@killpath/protocol/schemas` (the
// types every client sends are derived from the same schemas); the routes know them by these names.
export {
  AgentKillBodySchema as AgentKillBody,
  ResumeBodySchema as ResumeBody,
  RevokeTokenBodySchema as RevokeTokenBody,
  RotateAdminBodySchema as RotateAdminBody,
  HeartbeatReportSchema as HeartbeatBody,
  AckReportSchema as AckBody,
  HaltedReportSchema as HaltedBody,
  WorkerReportBatchSchema as WorkerReportBatchBody,
  RunRegistrationSchema as RunBody,
  PermitRequestSchema as PermitBody,
  PermitOutcomeSchema as OutcomeBody,
  PermitBatchSchema as PermitBatchBody,
  OutcomeBatchSchema as OutcomeBatchBody,
  JournalBatchSchema as JournalBody,
  ResumeRequestSchema as ResumeRunBody,
  MAX_BATCH,
} from '@killpath/protocol/schemas';

export const IssueDirectiveBody = IssueDirectiveBodySchema;
export type IssueDirectiveBody = z.infer<typeof IssueDirectiveBodySchema>;
export const StepBody = StepBodySchema;
export type StepBody = z.infer<typeof StepBodySchema>;
export const InspectBody = InspectBodySchema;
export type InspectBody = z.infer<typeof InspectBodySchema>;
export const LauncherEventBody = LauncherEventBodySchema;
export type LauncherEventBody = z.infer<typeof LauncherEventBodySchema>;
export const TokenBody = TokenBodySchema;
export type TokenBody = z.infer<typeof TokenBodySchema>;
export const LauncherTokenBody = LauncherTokenBodySchema;
export type LauncherTokenBody = z.infer<typeof LauncherTokenBodySchema>;
