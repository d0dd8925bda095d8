import { KillpathError, type LedgerEntry } from '@killpath/protocol';
import { CONNECTION_OPTIONS, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { scopeLabel, table } from '../output.ts';
import { PAGE_OPTIONS, nextPageCommand, pageParams, pages } from '../paging.ts';

export const JOURNAL_HELP = `killpath journal <run-id> [--tenant T] [--with-children | --no-children] [--limit N | --all] [--cursor C] [--json]
killpath journal [<run-id>] --permitted-after DIRECTIVE [--tenant T] [--json]

A run's side-effect ledger: every write it was permitted (intended) and what became of it
(landed, failed, aborted, cancelled, in doubt), with idempotency keys, then its journal events
(cancelled timers, discarded or drained queue tasks, reverted memory writes). Newest first.

  --with-children    the default: a run's child runs (its whole lineage below it) are listed
                     with it, and the output says so
  --no-children      the run alone (its child runs are still named)
  --limit N          rows per page of each list (default 1000, at most 5000); the output says
                     "N of M" and prints the command for the next page (--cursor C)
  --all              every page
  --permitted-after DIRECTIVE
                     the writes permitted after that halt (or kill, freeze, isolate, degrade)
                     was committed, of the runs it covers (with <run-id>: that run and its
                     children only). There should be none: exit 0 when there are none, 1 when
                     there are (they are listed)
  --json             the answer as JSON, with "total" and "cursor" (null: nothing more)

A run id lives inside its tenant: an admin token names the tenant with --tenant when several
hold the id.`;

export const COMPENSATIONS_HELP = `killpath compensations [--tenant T] [--run R [--no-children]] [--limit N | --all] [--cursor C] [--json]

Landed writes of halted runs that carry a compensation descriptor (and writes in doubt: their
process ended mid-write), newest first: the list an operator works through after a halt.
killpath records compensations; running them is the owner's code.

  --run R            that run and its child runs (--no-children: the run alone)
  --limit N          rows per page (default 1000, at most 5000); the output says "N of M" and
                     prints the command for the next page (--cursor C)
  --all              every page
  --json             the answer as JSON, with "total" and "cursor" (null: nothing more)`;

const when = (iso: string | null) => (iso === null ? null : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

/** One page of `GET /v1/runs/R/journal`. */
interface JournalPage {
  run: { runId: string; tenant: string; agent: string; lineage: string[] };
  withChildren: boolean;
  children: { runId: string; agent: string; lineage: string[] }[];
  summary: Record<string, number>;
  effects: LedgerEntry[];
  events: { seq: number; runId: string | null; type: string; at: string; data: Record<string, unknown> }[];
  total: { effects: number; events: number };
  cursor: string | null;
}

/** `killpath journal <run>`. */
export async function journal(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      ...PAGE_OPTIONS,
      json: { type: 'boolean' },
      tenant: { type: 'string' },
      run: { type: 'string' },
      'no-children': { type: 'boolean' },
      'with-children': { type: 'boolean' },
      'permitted-after': { type: 'string' },
    },
    true,
  );
  if (values.help) {
    console.log(JOURNAL_HELP);
    return 0;
  }
  if (positionals.length > 1 || (positionals.length === 1 && values.run !== undefined))
    throw new KillpathError(
      'invalid_request',
      'usage: killpath journal <run-id> (see killpath journal --help)',
    );
  const runId = positionals[0] ?? values.run;
  if (values['no-children'] && values['with-children'])
    throw new KillpathError('invalid_request', 'pick one of --with-children and --no-children');
  if (values['permitted-after'] !== undefined) return permittedAfter(values, runId);
  if (runId === undefined)
    throw new KillpathError(
      'invalid_request',
      'usage: killpath journal <run-id> (see killpath journal --help)',
    );
  const api = clientFor(values);
  const children = !values['no-children'];
  const r = await pages<JournalPage>(
    values,
    (cursor) => {
      const q = pageParams(values, cursor);
      if (values.tenant) q.set('tenant', values.tenant);
      if (!children) q.set('children', 'false');
      return api.get<JournalPage>(`/v1/runs/${encodeURIComponent(runId)}/journal?${q}`);
    },
    (into, next) => {
      into.effects.push(...next.effects);
      into.events.push(...next.events);
    },
  );
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  console.log(
    `run ${r.run.runId} of ${r.run.tenant}/${r.run.agent}${r.run.lineage.length ? ` (child of ${r.run.lineage.join(' > ')})` : ''}`,
  );
  const kids = r.children.map((c) => c.runId);
  const named = kids.length > 10 ? `${kids.slice(0, 10).join(', ')}, …` : kids.join(', ');
  if (kids.length > 0 && r.withChildren)
    console.log(
      `with its ${kids.length} child run(s) (${named}): the default for a run with children; --no-children for the run alone`,
    );
  else if (kids.length > 0)
    console.log(`the run alone (--no-children); it has ${kids.length} child run(s): ${named}`);
  console.log(
    Object.entries(r.summary)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
  );
  const family = r.withChildren && kids.length > 0;
  console.log(`\neffects: ${r.effects.length} of ${r.total.effects}, newest first`);
  if (r.effects.length > 0) {
    console.log(
      table(
        [
          ...(family ? ['run'] : []),
          'intended',
          'capability',
          'class',
          'status',
          'idempotency key',
          'settled',
          'compensation',
        ],
        r.effects.map((e) => [
          ...(family ? [e.runId] : []),
          when(e.intendedAt),
          e.capability,
          e.class,
          e.status + (e.afterAbort ? ' (after abort)' : ''),
          e.idempotencyKey,
          when(e.settledAt),
          e.compensate ? JSON.stringify(e.compensate) : null,
        ]),
      ),
    );
  }
  console.log(`\nevents: ${r.events.length} of ${r.total.events}, newest first`);
  if (r.events.length > 0) {
    console.log(
      table(
        [...(family ? ['run'] : []), 'at', 'event', 'detail'],
        r.events.map((e) => [
          ...(family ? [e.runId] : []),
          when(e.at),
          e.type,
          JSON.stringify(
            Object.fromEntries(Object.entries(e.data).filter(([k]) => k !== 'type' && k !== 'runId')),
          ),
        ]),
      ),
    );
  }
  if (r.cursor !== null)
    console.log(
      `\nnext page: ${nextPageCommand(
        [
          'killpath',
          'journal',
          runId,
          values.tenant && '--tenant',
          values.tenant,
          !children && '--no-children',
          values.limit && '--limit',
          values.limit,
        ],
        r.cursor,
      )}   (--all: every page)`,
    );
  return 0;
}

/** One page of `GET /v1/directives/D/permitted-after`. */
interface PermittedPage {
  directive: {
    id: string;
    rev: number;
    level: string;
    scopeText: string;
    tenant: string | null;
    issuedAt: string;
    clearedRev: number | null;
  };
  /** The directive, then those that replaced it by a step or an escalation while it stayed a stop. */
  chain?: { id: string; level: string; rev: number; clearedRev: number | null }[];
  runs?: string[];
  effects: (LedgerEntry & { rev: number; tenant: string; agent: string })[];
  total: number;
  cursor: string | null;
}

/** `killpath journal [RUN] --permitted-after DIRECTIVE`: exit 1 when any write was permitted after the commit. */
async function permittedAfter(
  values: {
    'permitted-after'?: string | undefined;
    tenant?: string | undefined;
    json?: boolean | undefined;
  } & Parameters<typeof clientFor>[0],
  runId: string | undefined,
): Promise<number> {
  const id = values['permitted-after']!;
  const api = clientFor(values);
  const r = await pages<PermittedPage>(
    { all: true },
    (cursor) => {
      const q = new URLSearchParams({ limit: '5000' });
      if (cursor !== null) q.set('cursor', cursor);
      if (runId !== undefined) q.set('run', runId);
      if (values.tenant) q.set('tenant', values.tenant);
      return api.get<PermittedPage>(`/v1/directives/${encodeURIComponent(id)}/permitted-after?${q}`);
    },
    (into, next) => void into.effects.push(...next.effects),
  );
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
    return r.total === 0 ? 0 : 1;
  }
  const d = r.directive;
  const of =
    runId === undefined
      ? `the runs it covers`
      : `run ${runId} and its child runs (${r.runs?.length ?? 1} in all)`;
  console.log(
    `${d.level} ${d.id} on ${scopeLabel(d)} was committed at rev ${d.rev}, ${when(d.issuedAt)}${d.clearedRev === null ? '' : `; cleared at rev ${d.clearedRev}`}`,
  );
  const later = (r.chain ?? []).slice(1);
  if (later.length > 0)
    console.log(
      `then in force as ${later.map((e) => `${e.level} ${e.id} (rev ${e.rev})`).join(', ')}${later.at(-1)!.clearedRev === null ? '' : `, cleared at rev ${later.at(-1)!.clearedRev}`}`,
    );
  if (r.total === 0) {
    console.log(`writes permitted after the commit, of ${of}: none`);
    return 0;
  }
  console.log(`writes permitted after the commit, of ${of}: ${r.total} (there should be none)`);
  console.log(
    table(
      ['run', 'rev', 'intended', 'capability', 'class', 'status', 'idempotency key', 'permit'],
      r.effects.map((e) => [
        `${e.tenant}/${e.runId}`,
        e.rev,
        when(e.intendedAt),
        e.capability,
        e.class,
        e.status,
        e.idempotencyKey,
        e.permitId,
      ]),
    ),
  );
  return 1;
}

/** One page of `GET /v1/compensations`. */
interface CompensationsPage {
  compensations: (LedgerEntry & { tenant: string; agent: string; haltedBy: string; haltedAt: string })[];
  total: number;
  cursor: string | null;
  runs?: string[];
}

/** `killpath compensations`. */
export async function compensations(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    ...PAGE_OPTIONS,
    tenant: { type: 'string' },
    run: { type: 'string' },
    'no-children': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(COMPENSATIONS_HELP);
    return 0;
  }
  if (values['no-children'] && values.run === undefined)
    throw new KillpathError('invalid_request', '--no-children goes with --run R');
  const api = clientFor(values);
  const r = await pages<CompensationsPage>(
    values,
    (cursor) => {
      const q = pageParams(values, cursor);
      if (values.tenant) q.set('tenant', values.tenant);
      if (values.run) q.set('run', values.run);
      if (values['no-children']) q.set('children', 'false');
      return api.get<CompensationsPage>(`/v1/compensations?${q}`);
    },
    (into, next) => void into.compensations.push(...next.compensations),
  );
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  if (values.run !== undefined && r.runs !== undefined && r.runs.length > 1)
    console.log(`run ${values.run} and its ${r.runs.length - 1} child run(s)`);
  if (r.total === 0) {
    console.log('no landed writes with a compensation descriptor in halted runs');
    return 0;
  }
  console.log(`${r.compensations.length} of ${r.total} writes to compensate, newest first`);
  console.log(
    table(
      [
        'tenant',
        'agent',
        'run',
        'capability',
        'status',
        'landed',
        'idempotency key',
        'compensation',
        'halted by',
      ],
      r.compensations.map((e) => [
        e.tenant,
        e.agent,
        e.runId,
        e.capability,
        e.status,
        when(e.settledAt),
        e.idempotencyKey,
        JSON.stringify(e.compensate),
        e.haltedBy,
      ]),
    ),
  );
  if (r.cursor !== null)
    console.log(
      `next page: ${nextPageCommand(
        [
          'killpath',
          'compensations',
          values.tenant && '--tenant',
          values.tenant,
          values.run && '--run',
          values.run,
          values['no-children'] && '--no-children',
          values.limit && '--limit',
          values.limit,
        ],
        r.cursor,
      )}   (--all: every page)`,
    );
  return 0;
}
