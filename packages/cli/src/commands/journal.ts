import { KillpathError, type LedgerEntry } from '@killpath/protocol';
import { CONNECTION_OPTIONS, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { table } from '../output.ts';

export const JOURNAL_HELP = `killpath journal <run-id> [--tenant T] [--json]

A run's side-effect ledger: every write it was permitted (intended) and what became of it
(landed, failed, aborted, cancelled, in doubt), with idempotency keys, then its journal events
(cancelled timers, discarded or drained queue tasks, reverted memory writes). A run id lives
inside its tenant: an admin token names the tenant with --tenant when several hold the id.`;

export const COMPENSATIONS_HELP = `killpath compensations [--tenant T] [--run R] [--json]

Landed writes of halted runs that carry a compensation descriptor: the list an operator works
through after a halt. killpath records compensations; running them is the owner's code.`;

const when = (iso: string | null) => (iso === null ? null : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

/** `killpath journal <run>`. */
export async function journal(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CONNECTION_OPTIONS, json: { type: 'boolean' }, tenant: { type: 'string' } },
    true,
  );
  if (values.help) {
    console.log(JOURNAL_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new KillpathError('invalid_request', 'usage: killpath journal <run-id>');
  const api = clientFor(values);
  const r = await api.get<{
    run: { runId: string; tenant: string; agent: string; lineage: string[] };
    summary: Record<string, number>;
    effects: LedgerEntry[];
    events: { seq: number; type: string; at: string; data: Record<string, unknown> }[];
  }>(
    `/v1/runs/${encodeURIComponent(positionals[0]!)}/journal${values.tenant ? `?tenant=${encodeURIComponent(values.tenant)}` : ''}`,
  );
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  console.log(
    `run ${r.run.runId} of ${r.run.tenant}/${r.run.agent}${r.run.lineage.length ? ` (child of ${r.run.lineage.join(' > ')})` : ''}`,
  );
  console.log(
    Object.entries(r.summary)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
  );
  if (r.effects.length > 0) {
    console.log(
      `\n${table(
        ['intended', 'capability', 'class', 'status', 'idempotency key', 'settled', 'compensation'],
        r.effects.map((e) => [
          when(e.intendedAt),
          e.capability,
          e.class,
          e.status + (e.afterAbort ? ' (after abort)' : ''),
          e.idempotencyKey,
          when(e.settledAt),
          e.compensate ? JSON.stringify(e.compensate) : null,
        ]),
      )}`,
    );
  }
  if (r.events.length > 0) {
    console.log(
      `\n${table(
        ['at', 'event', 'detail'],
        r.events.map((e) => [
          when(e.at),
          e.type,
          JSON.stringify(
            Object.fromEntries(Object.entries(e.data).filter(([k]) => k !== 'type' && k !== 'runId')),
          ),
        ]),
      )}`,
    );
  }
  return 0;
}

/** `killpath compensations`. */
export async function compensations(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    tenant: { type: 'string' },
    run: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(COMPENSATIONS_HELP);
    return 0;
  }
  const q = new URLSearchParams();
  if (values.tenant) q.set('tenant', values.tenant);
  if (values.run) q.set('run', values.run);
  const api = clientFor(values);
  const r = await api.get<{
    compensations: (LedgerEntry & { tenant: string; agent: string; haltedBy: string; haltedAt: string })[];
  }>(`/v1/compensations${q.size ? `?${q}` : ''}`);
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  if (r.compensations.length === 0) {
    console.log('no landed writes with a compensation descriptor in halted runs');
    return 0;
  }
  console.log(
    table(
      ['tenant', 'agent', 'run', 'capability', 'landed', 'idempotency key', 'compensation', 'halted by'],
      r.compensations.map((e) => [
        e.tenant,
        e.agent,
        e.runId,
        e.capability,
        when(e.settledAt),
        e.idempotencyKey,
        JSON.stringify(e.compensate),
        e.haltedBy,
      ]),
    ),
  );
  return 0;
}
