import type { Hono } from 'hono';
import { ApproveBodySchema } from '@killpath/protocol/schemas';
import { KillpathError, isIdentifier } from '@killpath/protocol';
import type { ApprovalDesk } from '../approvals.ts';
import { body, type Env } from './common.ts';

/** Body of `POST /v1/approvals/{id}/approve` (defined in @killpath/protocol/schemas). */
export const ApproveBody = ApproveBodySchema;

const STATES = ['pending', 'approved', 'expired', 'failed'] as const;

/**
 * Approval requests: list (`GET /v1/approvals?state=pending`), show (`GET /v1/approvals/{id}`),
 * approve (`POST /v1/approvals/{id}/approve`: 200 with the request, and the gated act's answer
 * once the last approval came in). Who may see and approve what is the desk's to decide.
 */
export function approvalRoutes(app: Hono<Env>, approvals: ApprovalDesk): void {
  app.get('/v1/approvals', async (c) => {
    const state = c.req.query('state');
    if (state !== undefined && !(STATES as readonly string[]).includes(state))
      throw new KillpathError('invalid_request', `state must be one of ${STATES.join(', ')}`);
    const limit = Number(c.req.query('limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new KillpathError('invalid_request', 'limit must be an integer from 1 to 1000');
    // Newest first; `total` counts every request the caller may see under the same state filter.
    const r = await approvals.list(c.get('principal'), {
      ...(state === undefined ? {} : { state: state as (typeof STATES)[number] }),
      limit,
    });
    return c.json({ total: r.total, approvals: r.approvals });
  });

  app.get('/v1/approvals/:id', async (c) => {
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'request id must be an identifier');
    return c.json({ approval: await approvals.get(c.get('principal'), id) });
  });

  app.post('/v1/approvals/:id/approve', async (c) => {
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'request id must be an identifier');
    const b = await body(c, ApproveBody);
    const r = await approvals.approve(c.get('principal'), id, b);
    return c.json({ approval: r.approval, ...(r.result === undefined ? {} : { result: r.result }) });
  });
}
