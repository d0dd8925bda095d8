import { z } from 'zod';
import { EFFECT_CLASSES } from '../levels.ts';
import { id } from './parts.ts';

/** A drill spec's digest: 1-200 characters of letters, digits and `:._+/=-`. */
export const SPEC_DIGEST = /^[A-Za-z0-9:._+/=-]{1,200}$/;
const digest = z.string().regex(SPEC_DIGEST, 'must be 1-200 characters of letters, digits and :._+/=-');
const iso = z.iso.datetime({ offset: true });
const ms = z.number().min(0).max(1e10);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const words = (max: number) => z.string().max(max);
const name = (max: number) => z.string().min(1).max(max);

/** p50 / p99 / max over workers and repetitions, with the samples (ms). */
export const LatencySummarySchema = z.strictObject({
  n: count,
  p50: ms,
  p99: ms,
  max: ms,
  samples: z.array(ms).max(100_000),
});

/** One scenario's result in a rehearsal record. */
export const ScenarioResultSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9:._@-]{1,64}$/, 'must be 1-64 characters of letters, digits and :._@-'),
  title: name(300),
  path: words(200),
  status: z.enum(['pass', 'fail', 'degraded', 'skipped']),
  startedAt: iso,
  durationMs: ms,
  target: z.strictObject({ signalToHaltMs: ms.nullable(), haltToRecoveryMs: ms.nullable() }),
  signalToHalt: LatencySummarySchema.nullable(),
  haltToRecoveryMs: ms.nullable(),
  effectsAfterFlip: z.strictObject({ read: count, write: count, irreversible: count }).nullable(),
  effectsAfterObserve: count.nullable(),
  queue: z.strictObject({ atFlip: count, afterWindow: count, discarded: count }).nullable(),
  journal: z
    .strictObject({
      intents: count,
      landed: count,
      failed: count,
      aborted: count,
      inDoubt: count,
      open: count,
      lost: count,
      compensations: count,
    })
    .nullable(),
  checks: z
    .array(
      z.strictObject({
        name: name(200),
        ok: z.boolean(),
        kind: z.enum(['invariant', 'target', 'expectation']),
        detail: words(4000),
      }),
    )
    .max(500),
  paths: z
    .array(
      z.strictObject({
        path: name(200),
        state: z.enum(['worked', 'degraded', 'unreachable', 'not exercised']),
        detail: words(4000),
      }),
    )
    .max(50),
  timeline: z
    .array(
      z.strictObject({
        t: z.number().min(-1e10).max(1e10),
        class: z.enum(EFFECT_CLASSES),
        outcome: z.enum(['started', 'refused', 'aborted']),
      }),
    )
    .max(100_000)
    .optional(),
  notes: z.array(words(4000)).max(100),
  remediation: words(16_000).nullable(),
});

/** Body of `POST /v1/drills`: one rehearsal (`RehearsalInput`). Unknown fields are rejected. */
export const RehearsalInputSchema = z
  .strictObject({
    spec: z.strictObject({
      name: name(200),
      digest,
      agents: z
        .array(
          z.strictObject({
            tenant: id,
            agent: id,
            level: z.number().int().min(1).max(5),
            cadenceDays: z.number().positive().max(3660),
          }),
        )
        .min(1)
        .max(1000),
    }),
    mode: z.enum(['local', 'remote']),
    compact: z.boolean(),
    startedAt: iso,
    finishedAt: iso,
    result: z.enum(['pass', 'fail']),
    scenarios: z.array(ScenarioResultSchema).max(200),
  })
  .superRefine((b, ctx) => {
    if (Date.parse(b.finishedAt) < Date.parse(b.startedAt))
      ctx.addIssue({ code: 'custom', path: ['finishedAt'], message: 'must not be before startedAt' });
    const seen = new Set<string>();
    b.spec.agents.forEach((a, i) => {
      const key = `${a.tenant}/${a.agent}`;
      if (seen.has(key))
        ctx.addIssue({
          code: 'custom',
          path: ['spec', 'agents', i],
          message: `agent ${key} is listed twice`,
        });
      seen.add(key);
    });
  });
