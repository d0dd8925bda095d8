import type { Hono } from 'hono';
import {
  KillpathError,
  parseCheckpoint,
  type AuditKeys,
  type ConsistencyVerdict,
  type Principal,
} from '@killpath/protocol';
import { requireHuman } from '../auth/policy.ts';
import { checkpointSignatureProblem } from '../audit/checkpoint.ts';
import type { Checkpointer } from '../audit/checkpointer.ts';
import type { VerifyRuns } from '../audit/verify-runs.ts';
import { AuditRotateBodySchema, AuditVerifyBodySchema } from '@killpath/protocol/schemas';
import type { AuditStore } from '../store/store.ts';
import { body, type Env } from './common.ts';

const VerifyBody = AuditVerifyBodySchema;
const RotateBody = AuditRotateBodySchema;

function requireAdmin(p: Principal, what: string): void {
  requireHuman(p);
  if (p.role !== 'admin') throw new KillpathError('forbidden', `only admins may ${what}`);
}

/** What the audit routes need: the audit log, and a flush of the records still queued. */
export interface AuditRoutesDeps {
  readonly store: AuditStore;
  /** Writes the audit records still queued (readers flush first, so they never miss one). */
  flushAudit(): Promise<void>;
}

/**
 * Signed checkpoints of the audit log: `GET /v1/audit/key` (the public keys, any person),
 * `GET /v1/audit/checkpoint` (the latest, admin), `POST /v1/audit/checkpoint` (sign one now,
 * admin), `POST /v1/audit/verify` (does the log extend a kept checkpoint? admin; the log is
 * hashed in a worker thread, one verification at a time, concurrent ones shared: {@link VerifyRuns}) and `POST /v1/audit/key/rotate` (admin).
 * Checkpoints cover every tenant's records, so reading them is for admins.
 */
export function auditRoutes(
  app: Hono<Env>,
  deps: AuditRoutesDeps,
  checkpoints: Checkpointer,
  verifyRuns: VerifyRuns,
): void {
  app.get('/v1/audit/key', async (c) => {
    requireHuman(c.get('principal'));
    const keys = await deps.store.auditKeys();
    const current = keys.find((k) => k.retiredAt === null) ?? checkpoints.key.info;
    const answer: AuditKeys = { current, previous: keys.filter((k) => k.keyId !== current.keyId) };
    return c.json(answer);
  });

  app.get('/v1/audit/checkpoint', async (c) => {
    requireAdmin(c.get('principal'), 'read audit checkpoints');
    const latest =
      (checkpoints.signing ? checkpoints.latest : null) ??
      (await deps.store.latestCheckpoint())?.checkpoint ??
      null;
    if (latest === null) throw new KillpathError('not_found', 'no checkpoint has been signed yet');
    return c.json(latest);
  });

  app.post('/v1/audit/checkpoint', async (c) => {
    requireAdmin(c.get('principal'), 'sign audit checkpoints');
    await deps.flushAudit();
    return c.json(await checkpoints.checkpointNow());
  });

  app.post('/v1/audit/verify', async (c) => {
    requireAdmin(c.get('principal'), 'verify the audit log against a checkpoint');
    const kept = parseCheckpoint((await body(c, VerifyBody)).checkpoint);
    const origin = await deps.store.logOrigin();
    const ours = kept.origin === origin;
    const signature = checkpointSignatureProblem(kept, await deps.store.auditKeys());
    await deps.flushAudit();
    const found = await verifyRuns.verify(
      ours ? { size: kept.size, rootHash: kept.rootHash, timestamp: kept.timestamp } : null,
    );
    const problems = [
      ...(signature === null ? [] : [signature]),
      ...(ours
        ? []
        : [
            `the checkpoint is of log ${kept.origin} but this database holds log ${origin}: it was replaced by another database`,
          ]),
      ...found.problems,
    ];
    const answer: ConsistencyVerdict = {
      ok: problems.length === 0,
      records: found.records,
      problems,
      chain: found.chain,
      head: checkpoints.signHead(found.records, found.rootHash, origin),
      proof: ours ? found.proof : [],
    };
    return c.json(answer);
  });

  app.post('/v1/audit/key/rotate', async (c) => {
    const p = c.get('principal');
    requireAdmin(p, 'rotate the checkpoint signing key');
    const { reason } = await body(c, RotateBody);
    await deps.flushAudit();
    return c.json(await checkpoints.rotate(p.name, reason));
  });
}
