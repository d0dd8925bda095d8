import { KillpathError, type ApprovalRequest } from '@killpath/protocol';
import { CONNECTION_OPTIONS, intFlag, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { table } from '../output.ts';

export const APPROVE_HELP = `killpath approve REQUEST_ID --reason TEXT [--json]
killpath approvals [--state pending|approved|expired|failed] [--limit N] [--json]

approve     gives your approval to a pending request (a resume, a policy change the policy's
            approval rules gate). It shows what you approve, and your approval is pinned to it
            (the directive's id and rev): it cannot complete another request. When it is the
            last approval needed, the act is done at once (resume: the directive is cleared).
            You cannot approve your own request, nor twice.
approvals   lists the requests you can see, newest first (default: pending ones).`;

/** One line about a request, for people. */
export function describeApproval(a: ApprovalRequest): string {
  const who = a.approverRole === 'admin' ? 'an admin' : 'an operator of the tenant or an admin';
  return `${a.id}: ${a.summary}; asked by ${a.requestedBy} ("${a.reason}"); ${a.approvals.length}/${a.needed} approval${a.needed === 1 ? '' : 's'} by ${who}, until ${a.expiresAt}${a.contact ? `; call ${a.contact}` : ''}`;
}

/** `killpath approve REQUEST --reason TEXT`. */
export async function approve(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CONNECTION_OPTIONS, reason: { type: 'string' }, json: { type: 'boolean' } },
    true,
  );
  if (values.help) {
    console.log(APPROVE_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new KillpathError('invalid_request', 'usage: killpath approve REQUEST_ID --reason TEXT');
  if (!values.reason || values.reason.trim() === '')
    throw new KillpathError('invalid_request', '--reason is required: every approval is audited');
  const api = clientFor(values);
  const id = encodeURIComponent(positionals[0]!);
  const { approval } = await api.get<{ approval: ApprovalRequest }>(`/v1/approvals/${id}`);
  if (!values.json) console.log(`approving ${describeApproval(approval)}`);
  const r = await api.post<{ approval: ApprovalRequest; result?: unknown }>(`/v1/approvals/${id}/approve`, {
    justification: values.reason,
    target: approval.target,
    ...(approval.targetRev === null ? {} : { targetRev: approval.targetRev }),
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else if (r.approval.state === 'approved') console.log(`approved: ${r.approval.outcome ?? 'done'}`);
  else
    console.log(
      `approval recorded: ${r.approval.approvals.length} of ${r.approval.needed}; waiting for ${r.approval.needed - r.approval.approvals.length} more`,
    );
  return 0;
}

/** `killpath approvals [--state S]`. */
export async function approvals(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    state: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(APPROVE_HELP);
    return 0;
  }
  const limit = intFlag('limit', values.limit, 100);
  if (limit < 1 || limit > 1000) throw new KillpathError('invalid_request', '--limit must be from 1 to 1000');
  const api = clientFor(values);
  const r = await api.get<{ total?: number; approvals: ApprovalRequest[] }>(
    `/v1/approvals?state=${encodeURIComponent(values.state ?? 'pending')}&limit=${limit}`,
  );
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else if (r.approvals.length === 0) console.log(`no ${values.state ?? 'pending'} approval requests`);
  else
    console.log(
      table(
        ['id', 'state', 'what', 'asked by', 'approvals', 'until'],
        r.approvals.map((a) => [
          a.id,
          a.state,
          a.summary,
          a.requestedBy,
          `${a.approvals.length}/${a.needed}`,
          a.expiresAt,
        ]),
      ),
    );
  // Never a silent cut: how many of how many (an older server gives no total: a full page may not be all).
  if (!values.json && r.total !== undefined && r.approvals.length > 0) {
    const more = r.total > r.approvals.length;
    console.log(
      more
        ? `${r.approvals.length} of ${r.total}, newest first${limit < 1000 ? `; --limit ${Math.min(1000, r.total)} lists ${r.total > 1000 ? 'the newest 1000' : 'them all'}` : ''}`
        : `all ${r.total}`,
    );
  } else if (!values.json && r.approvals.length === limit)
    console.log(
      `the newest ${limit} shown; there may be more${limit < 1000 ? `: --limit ${Math.min(1000, limit * 10)}` : ''}`,
    );
  return 0;
}
