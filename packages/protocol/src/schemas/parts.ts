import { z } from 'zod';
import { isCapability, isIdentifier } from '../scope.ts';
import { isReleaseValue } from '../release.ts';

/**
 * Pieces every wire schema is built of. Internal to the schemas: the error messages are part of
 * the wire (a 400's `details` quotes them), so they are written once here.
 */

/** A tenant, agent, run, feature or worker identifier (see `isIdentifier`). */
export const id = z.string().refine(isIdentifier, 'must be 1-128 characters of letters, digits and ._:@-');

/** A capability name: an identifier, or two joined by one `/` (`mcp:github/create_issue`). */
export const capability = z
  .string()
  .refine(isCapability, 'must be an identifier, or two identifiers joined by one /');

/** The value of one release part (see `isReleaseValue`). */
export const releaseValue = z
  .string()
  .refine(isReleaseValue, 'must be 1-128 characters of letters, digits and ._:@/+~-');

/** A release `{ code?, model?, prompt? }`: what a worker runs. Unknown parts are rejected. */
export const ReleaseSchema = z.strictObject({
  code: releaseValue.optional(),
  model: releaseValue.optional(),
  prompt: releaseValue.optional(),
});

/** A release as a reader takes it: parts are strings (what the control plane checked on the way in). */
export const ReleaseReadSchema = z.object({
  code: z.string().optional(),
  model: z.string().optional(),
  prompt: z.string().optional(),
});

/** Operator text: at most `max` characters, not blank. */
export const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => s.trim().length > 0, 'must not be empty');

/** A revision, or any count: an integer ≥ 0. */
export const count = z.number().int().min(0);

/** A JSON object. */
export const json = z.record(z.string(), z.unknown());

/** Longest directive id a report may echo ({@link directiveRef}). */
export const DIRECTIVE_REF_MAX = 200;

/** A directive id as a worker reports it back (not checked as an identifier: it echoes the server's). */
export const directiveRef = z.string().max(DIRECTIVE_REF_MAX);
