/** The views beside the fleet: directive history, the audit log with its verification, compensations. */
import type { AuditRecord, AuditVerdict, AuditVerdictBrief, Directive } from '@killpath/protocol';
import { useContext, useState } from 'preact/hooks';
import { SessionContext } from './context.ts';
import { DirectivesTable } from './directives-table.tsx';
import { errorText, ofTotal } from './model.ts';
import { usePoll } from './use-poll.ts';
import { DataTable } from './data-table.tsx';

export function LoadError({ error }: { error: { status?: number; code?: string; message?: string } | null }) {
  return error ? (
    <p class="failure" role="alert">
      Could not load: {errorText(error)}
    </p>
  ) : null;
}

/** Active directives and their history. */
export function DirectivesView({ refreshKey }: { refreshKey: number }) {
  const { api } = useContext(SessionContext)!;
  const [state] = usePoll(
    () => api.get<{ total?: number; directives: Directive[] }>('/v1/directives?active=all&limit=200'),
    1000,
    [api, refreshKey],
  );
  const all = state.data?.directives ?? [];
  const active = all.filter((d) => d.clearedAt === null);
  const history = all.filter((d) => d.clearedAt !== null);
  return (
    <div>
      <LoadError error={state.error} />
      {!state.data && !state.error && <p class="empty">Loading…</p>}
      {state.data && <DirectivesTable directives={active} caption="Active directives" full />}
      {state.data && (
        <DirectivesTable
          directives={history}
          caption={`Cleared directives (of the directives, ${ofTotal(all.length, state.data.total)} shown, newest first)`}
          full
        />
      )}
    </div>
  );
}

function summary(r: AuditRecord): string {
  const s = JSON.stringify(r.data);
  return s.length > 240 ? `${s.slice(0, 240)}…` : s;
}

/** Audit records per page of the audit view. */
export const AUDIT_PAGE_SIZE = 200;

/** The audit log, newest first and paged to its first record, with the chain's verification status. */
export function AuditView() {
  const { api } = useContext(SessionContext)!;
  const [types, setTypes] = useState('');
  const [applied, setApplied] = useState('');
  // Paged by seq, newest first: `before` is the oldest seq of the page above (none: the newest page).
  const [befores, setBefores] = useState<number[]>([]);
  const before = befores.at(-1);
  const query = `/v1/audit?order=desc&limit=${AUDIT_PAGE_SIZE}${applied ? `&type=${encodeURIComponent(applied)}` : ''}${before === undefined ? '' : `&before=${before}`}`;
  const [records] = usePoll(
    async () => ({ query, ...(await api.get<{ records: AuditRecord[] }>(query)) }),
    2000,
    [api, query],
  );
  const current = records.data?.query === query;
  const shown = records.data?.records ?? [];
  // An admin's answer names the count, head and first bad record; a tenant's only ok or not.
  const [verdict, verifyNow] = usePoll(
    () => api.get<AuditVerdict | AuditVerdictBrief>('/v1/audit/verify'),
    10_000,
    [api],
  );
  const v = verdict.data;
  return (
    <div>
      <section class={`verify ${v ? (v.ok ? 'ok' : 'broken') : ''}`} aria-labelledby="verify-h">
        <h3 id="verify-h">Chain verification</h3>
        <p role={v?.ok === false ? 'alert' : undefined}>
          {!v && !verdict.error && 'Verifying…'}
          {v &&
            'brief' in v &&
            v.ok &&
            'Verified: the whole audit chain is intact (its size and head are shown to admins).'}
          {v &&
            'brief' in v &&
            !v.ok &&
            'BROKEN: the audit chain does not verify. An admin can see which record fails.'}
          {v &&
            !('brief' in v) &&
            v.ok &&
            `Verified: ${v.records} records, the chain is intact (head ${v.head.slice(0, 16)}…).`}
          {v &&
            !('brief' in v) &&
            !v.ok &&
            `BROKEN: record #${v.firstBad} of ${v.records} fails verification: ${v.reason}.`}
        </p>
        <LoadError error={verdict.error} />
        <button type="button" onClick={verifyNow}>
          Verify again
        </button>
      </section>
      <form
        class="filter"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(types.trim().replace(/\s+/g, ''));
          setBefores([]);
        }}
      >
        <label for="audit-types">Event types (comma-separated, empty for all)</label>
        <input
          id="audit-types"
          type="text"
          spellcheck={false}
          value={types}
          placeholder="directive.issued,directive.cleared"
          onInput={(e) => setTypes((e.currentTarget as HTMLInputElement).value)}
        />
        <button type="submit">Filter</button>
      </form>
      <LoadError error={records.error} />
      {records.data && (
        <nav class="pager" aria-label="Audit pages">
          <span class="page-info">
            {shown.length === 0
              ? before === undefined
                ? 'No audit record'
                : `No record before #${before}`
              : `Records #${shown[0]!.seq}–#${shown.at(-1)!.seq}, newest first${before === undefined ? ' (the newest)' : ''}${shown.length < AUDIT_PAGE_SIZE ? ' (the oldest)' : ''}`}
            {!current && ' · loading…'}
          </span>
          <button
            type="button"
            disabled={befores.length === 0 || !current}
            onClick={() => setBefores((b) => b.slice(0, -1))}
          >
            Newer records
          </button>
          <button
            type="button"
            disabled={shown.length < AUDIT_PAGE_SIZE || !current}
            onClick={() => setBefores((b) => [...b, shown.at(-1)!.seq])}
          >
            Older records
          </button>
        </nav>
      )}
      {records.data && (
        <DataTable
          cls="audit"
          caption={<>Audit records, newest first ({AUDIT_PAGE_SIZE} a page)</>}
          columns={['#', 'Time', 'Type', 'Actor', 'Tenant', 'Data']}
        >
          {shown.map((r) => (
            <tr key={r.seq}>
              <td>{r.seq}</td>
              <td>
                <time dateTime={r.ts}>{new Date(r.ts).toLocaleString()}</time>
              </td>
              <td>
                <code>{r.type}</code>
              </td>
              <td>{r.actor}</td>
              <td>{r.tenant ?? 'all'}</td>
              <td class="data">
                <code>{summary(r)}</code>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </div>
  );
}

/** One row of `GET /v1/compensations`. */
interface Compensation {
  permitId: string;
  runId: string;
  tenant: string;
  agent: string;
  capability: string;
  class: string;
  status: string;
  compensate: Record<string, unknown> | null;
  intendedAt: string;
  settledAt: string | null;
  haltedBy: string;
  haltedAt: string;
}

/** Rows per page of the compensations view (the API takes up to 5,000). */
export const COMPENSATIONS_PAGE_SIZE = 200;

/** One page of `GET /v1/compensations`: newest first, `total` rows in all, `cursor` for the next page. */
interface CompensationsPage {
  compensations: Compensation[];
  total: number;
  cursor: string | null;
}

/**
 * Effects that landed in runs later halted, with the compensation each declared: paged, newest
 * first, always saying which rows of how many are shown (never cut silently).
 */
export function CompensationsView() {
  const { api } = useContext(SessionContext)!;
  // The cursors of the pages before this one, with their first row's offset (for "Previous").
  const [pages, setPages] = useState<{ cursor: string | null; offset: number }[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const path = `/v1/compensations?limit=${COMPENSATIONS_PAGE_SIZE}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
  const offset = pages.at(-1)?.offset ?? 0;
  // The offset travels with the rows it belongs to: while the next page loads, the caption still
  // names the rows on screen (with "loading…"), never the new range over the old rows.
  const [state] = usePoll(
    async () => ({ path, offset, page: await api.get<CompensationsPage>(path) }),
    2000,
    [api, path],
  );
  const current = state.data?.path === path;
  const page = state.data?.page;
  const list = page?.compensations ?? [];
  const shownOffset = state.data?.offset ?? offset;
  const next = () => {
    if (!page || page.cursor === null) return;
    setPages([...pages, { cursor, offset: offset + list.length }]);
    setCursor(page.cursor);
  };
  const previous = () => {
    const back = pages.at(-1);
    if (!back) return;
    setPages(pages.slice(0, -1));
    setCursor(back.cursor);
  };
  return (
    <div>
      <p class="hint">
        Effects that left before a halt. killpath records them; running the compensation is your code's job.
      </p>
      <LoadError error={state.error} />
      {page && page.total === 0 && <p class="empty">No compensations: no halted run had landed effects.</p>}
      {page && page.total > 0 && (
        <nav class="pager" aria-label="Compensation pages">
          <span class="page-info">
            {list.length === 0
              ? `No compensation of ${page.total.toLocaleString('en-US')} on this page`
              : `Compensations ${(shownOffset + 1).toLocaleString('en-US')}–${(shownOffset + list.length).toLocaleString('en-US')} of ${page.total.toLocaleString('en-US')}, newest first`}
            {!current && ' · loading…'}
          </span>
          <button type="button" disabled={pages.length === 0 || !current} onClick={previous}>
            Previous page
          </button>
          <button type="button" disabled={page.cursor === null || !current} onClick={next}>
            Next page
          </button>
        </nav>
      )}
      {list.length > 0 && (
        <DataTable
          cls="compensations"
          caption="Compensations after halts"
          columns={['Run', 'Agent', 'Effect', 'Status', 'Compensation', 'Halted by']}
        >
          {list.map((c) => (
            <tr key={c.permitId} data-permit={c.permitId}>
              <td>
                <code>{c.runId}</code>
              </td>
              <td>
                {c.tenant}/{c.agent}
              </td>
              <td>
                <code>{c.capability}</code> <span class="detail">{c.class}</span>
              </td>
              <td>{c.status}</td>
              <td class="data">
                <code>{c.compensate ? JSON.stringify(c.compensate) : '—'}</code>
              </td>
              <td>
                <code>{c.haltedBy}</code> <span class="detail">{new Date(c.haltedAt).toLocaleString()}</span>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </div>
  );
}
