/**
 * The Drills view: which agents are due for a rehearsal and why (first), then the rehearsal
 * records, newest first; opening one shows its scenario table with checks and remediation.
 */
import type { DrillDue, RehearsalRecord } from '@killpath/protocol';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError } from './api.ts';
import { SessionContext } from './context.ts';
import {
  STATUS_LABEL,
  checkRows,
  dueOrder,
  dueSummary,
  effectsText,
  journalText,
  msText,
  reasonLabel,
  scenarioCounts,
  whenText,
  worstSignalToHalt,
  worstText,
} from './drills-model.ts';
import { errorText } from './model.ts';
import { usePoll } from './use-poll.ts';
import { DataTable } from './data-table.tsx';

/** How often the due list and the history are reloaded, in ms (they change with drills and heartbeats, rarely). */
const DRILLS_POLL_MS = 5000;
/** Rehearsal records per page of the history. */
const DRILLS_PAGE_SIZE = 50;

function LoadError({ error }: { error: { status?: number; code?: string; message?: string } | null }) {
  return error ? (
    <p class="failure" role="alert">
      Could not load: {errorText(error)}
    </p>
  ) : null;
}

function ResultBadge({ result }: { result: 'pass' | 'fail' }) {
  return <span class={`badge result-${result}`}>{result === 'pass' ? 'PASS' : 'FAIL'}</span>;
}

function DueTable({ agents, onOpen }: { agents: readonly DrillDue[]; onOpen(id: string): void }) {
  if (agents.length === 0) return null;
  return (
    <DataTable
      cls="due"
      caption="Rehearsal status per agent, due first"
      columns={['Agent', 'Due', 'Why', 'Last drill', 'Next due', 'Capabilities seen']}
    >
      {dueOrder(agents).map((a) => (
        <tr key={`${a.tenant}/${a.agent}`} data-agent={`${a.tenant}/${a.agent}`}>
          <th scope="row">
            {a.tenant}/{a.agent}
          </th>
          <td>
            {a.due ? <span class="badge due-yes">Due</span> : <span class="badge due-no">Not due</span>}
          </td>
          <td class="prose">
            {a.reasons.length === 0 ? (
              <span class="detail">Drilled within its cadence ({a.cadenceDays} days)</span>
            ) : (
              <ul class="reasons">
                {a.reasons.map((r) => (
                  <li key={r.kind}>{reasonLabel(r)}</li>
                ))}
              </ul>
            )}
          </td>
          <td>
            {a.lastDrill === null ? (
              <span class="detail">never</span>
            ) : (
              <>
                <ResultBadge result={a.lastDrill.result} />{' '}
                <time dateTime={a.lastDrill.at}>{whenText(a.lastDrill.at)}</time>{' '}
                <button
                  type="button"
                  class="link"
                  aria-label={`Open drill ${a.lastDrill.id}`}
                  onClick={() => onOpen(a.lastDrill!.id)}
                >
                  open
                </button>
              </>
            )}
          </td>
          <td>
            {a.nextDueAt === null ? (
              <span class="detail">now</span>
            ) : (
              <time dateTime={a.nextDueAt}>{whenText(a.nextDueAt)}</time>
            )}
          </td>
          <td class="prose">
            {a.surface.length === 0 ? (
              <span class="detail">none reported</span>
            ) : (
              <code>{a.surface.join(', ')}</code>
            )}
          </td>
        </tr>
      ))}
    </DataTable>
  );
}

function HistoryTable({ drills, onOpen }: { drills: readonly RehearsalRecord[]; onOpen(id: string): void }) {
  if (drills.length === 0)
    return (
      <p class="empty">
        No rehearsal recorded yet. Run one with <code>killpath drill</code>.
      </p>
    );
  return (
    <DataTable
      cls="drills"
      caption={<>Rehearsal records, newest first ({DRILLS_PAGE_SIZE} a page)</>}
      columns={[
        'Finished',
        'Spec',
        'Agents',
        'Mode',
        'Result',
        'Scenarios',
        'Worst signal-to-halt p99',
        <span class="visually-hidden">Actions</span>,
      ]}
    >
      {drills.map((d) => {
        const c = scenarioCounts(d.scenarios);
        const worst = worstSignalToHalt(d.scenarios);
        return (
          <tr key={d.id} data-drill={d.id}>
            <td>
              <time dateTime={d.finishedAt}>{whenText(d.finishedAt)}</time>
            </td>
            <td>
              {d.spec.name} <code class="detail">{d.spec.digest.slice(0, 19)}</code>
            </td>
            <td>{d.spec.agents.map((a) => `${a.tenant}/${a.agent}`).join(', ')}</td>
            <td>
              {d.mode}
              {d.compact && <span class="detail"> compact</span>}
            </td>
            <td>
              <ResultBadge result={d.result} />
            </td>
            <td>
              <ul
                class="scenario-badges"
                aria-label={`${c.pass} passed, ${c.fail} failed, ${c.degraded} degraded, ${c.skipped} skipped`}
              >
                {d.scenarios.map((s) => (
                  <li
                    key={s.id}
                    class={`badge status-${s.status}`}
                    title={`${s.id} ${s.title}: ${STATUS_LABEL[s.status]}`}
                  >
                    {s.id}
                    <span class="visually-hidden"> {STATUS_LABEL[s.status]}</span>
                  </li>
                ))}
              </ul>
            </td>
            <td class={worst?.over ? 'bad' : undefined}>
              {worstText(worst)}
              {worst?.over && <span class="detail"> (over target)</span>}
            </td>
            <td>
              <button type="button" aria-label={`Open drill ${d.id}`} onClick={() => onOpen(d.id)}>
                Open
              </button>
            </td>
          </tr>
        );
      })}
    </DataTable>
  );
}

/** One record: its scenarios with expected and actual latency, effects, journal, remediation; then its checks. */
function DrillRecord({ id, onClose }: { id: string; onClose(): void }) {
  const { api } = useContext(SessionContext)!;
  const [record, setRecord] = useState<RehearsalRecord | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    let live = true;
    setRecord(null);
    setError(null);
    api
      .get<{ drill: RehearsalRecord }>(`/v1/drills/${encodeURIComponent(id)}`)
      .then((r) => live && setRecord(r.drill))
      .catch((err: unknown) => live && setError(err as ApiError));
    heading.current?.focus();
    return () => {
      live = false;
    };
  }, [api, id]);
  const checks = record ? checkRows(record) : [];
  return (
    <section class="drill-record" aria-labelledby="drill-h">
      <div class="scope-head">
        <h3 id="drill-h" tabIndex={-1} ref={heading}>
          Drill <code>{id}</code>
        </h3>
        {record && <ResultBadge result={record.result} />}
        <button type="button" class="close" onClick={onClose}>
          Close
        </button>
      </div>
      <LoadError error={error} />
      {!record && !error && <p class="empty">Loading…</p>}
      {record && (
        <>
          <p class="detail">
            Spec {record.spec.name} <code>{record.spec.digest}</code>, {record.mode}
            {record.compact ? ' (compact)' : ''}, {whenText(record.startedAt)} to{' '}
            {whenText(record.finishedAt)}, recorded by {record.recordedBy} (audit record #{record.auditSeq}).
            Agents:{' '}
            {record.spec.agents
              .map((a) => `${a.tenant}/${a.agent} (level ${a.level}, every ${a.cadenceDays} days)`)
              .join(', ')}
            .
          </p>
          <DataTable
            cls="scenarios"
            caption="Scenarios"
            columns={[
              'Scenario',
              'Status',
              'Expected signal-to-halt',
              'Actual p50 / p99',
              'Effects after the flip',
              'Journal',
              'Remediation',
            ]}
          >
            {record.scenarios.map((s) => (
              <tr key={s.id} data-scenario={s.id}>
                <th scope="row">
                  {s.id} {s.title}
                  <span class="detail"> {s.path}</span>
                </th>
                <td>
                  <span class={`badge status-${s.status}`}>{STATUS_LABEL[s.status]}</span>
                </td>
                <td>{s.target.signalToHaltMs === null ? '—' : `≤ ${msText(s.target.signalToHaltMs)}`}</td>
                <td>
                  {s.signalToHalt === null
                    ? '—'
                    : `${msText(s.signalToHalt.p50)} / ${msText(s.signalToHalt.p99)} (n=${s.signalToHalt.n})`}
                </td>
                <td>{effectsText(s)}</td>
                <td>{journalText(s)}</td>
                <td class="prose">
                  {s.remediation ?? '—'}
                  {s.paths.length > 0 && (
                    <ul class="reasons">
                      {s.paths.map((p) => (
                        <li key={p.path}>
                          {p.path}: {p.state}
                          {p.detail && <span class="detail"> ({p.detail})</span>}
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
              </tr>
            ))}
          </DataTable>
          {checks.length > 0 && (
            <DataTable
              cls="checks"
              caption="Checks, failed first"
              columns={['Scenario', 'Check', 'Kind', 'Held', 'Measured']}
            >
              {checks.map((c, i) => (
                <tr key={i} class={c.ok ? undefined : 'bad'}>
                  <td>{c.scenario}</td>
                  <td>{c.name}</td>
                  <td>{c.kind}</td>
                  <td>{c.ok ? 'yes' : 'NO'}</td>
                  <td class="prose">{c.detail}</td>
                </tr>
              ))}
            </DataTable>
          )}
        </>
      )}
    </section>
  );
}

/** The due list, the rehearsal history and, when one is opened, a record's scenarios. */
export function DrillsView() {
  const { api } = useContext(SessionContext)!;
  const [due] = usePoll(() => api.get<{ agents: DrillDue[] }>('/v1/drills/due'), DRILLS_POLL_MS, [api]);
  // Paged, newest first: `before` is the oldest drill of the page above (none: the newest page).
  const [befores, setBefores] = useState<string[]>([]);
  const before = befores.at(-1);
  const historyPath = `/v1/drills?limit=${DRILLS_PAGE_SIZE}${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`;
  const [history] = usePoll(
    async () => ({ path: historyPath, ...(await api.get<{ drills: RehearsalRecord[] }>(historyPath)) }),
    DRILLS_POLL_MS,
    [api, historyPath],
  );
  const historyCurrent = history.data?.path === historyPath;
  const drills = history.data?.drills ?? [];
  const [open, setOpen] = useState<string | null>(null);
  const agents = due.data?.agents ?? [];
  return (
    <div class="drills-view">
      <section aria-labelledby="due-h">
        <h3 id="due-h">Drill due</h3>
        <p class="hint">
          Due when capabilities appeared since the last drill, its spec changed, it failed, or its cadence
          (monthly for level 4–5, quarterly for level 3) has passed.
        </p>
        <LoadError error={due.error} />
        {!due.data && !due.error && <p class="empty">Loading…</p>}
        {due.data && <p class="summary">{dueSummary(agents)}</p>}
        <DueTable agents={agents} onOpen={setOpen} />
      </section>
      <section aria-labelledby="history-h">
        <h3 id="history-h">Rehearsal history</h3>
        <LoadError error={history.error} />
        {!history.data && !history.error && <p class="empty">Loading…</p>}
        {history.data && (befores.length > 0 || drills.length > 0) && (
          <nav class="pager" aria-label="Rehearsal pages">
            <span class="page-info">
              {drills.length === 0
                ? 'No older rehearsal'
                : `Rehearsals ${befores.length * DRILLS_PAGE_SIZE + 1}–${befores.length * DRILLS_PAGE_SIZE + drills.length}, newest first${drills.length < DRILLS_PAGE_SIZE ? ' (the oldest)' : ''}`}
              {!historyCurrent && ' · loading…'}
            </span>
            <button
              type="button"
              disabled={befores.length === 0 || !historyCurrent}
              onClick={() => setBefores((b) => (b.at(-1) === before ? b.slice(0, -1) : b))}
            >
              Newer rehearsals
            </button>
            <button
              type="button"
              disabled={drills.length < DRILLS_PAGE_SIZE || !historyCurrent}
              onClick={() => setBefores((b) => (b.at(-1) === before ? [...b, drills.at(-1)!.id] : b))}
            >
              Older rehearsals
            </button>
          </nav>
        )}
        {history.data && befores.length === 0 && drills.length === 0 && (
          <HistoryTable drills={drills} onOpen={setOpen} />
        )}
        {drills.length > 0 && <HistoryTable drills={drills} onOpen={setOpen} />}
      </section>
      {open !== null && (
        <DrillRecord
          id={open}
          onClose={() => {
            setOpen(null);
            document.getElementById('main')?.focus();
          }}
        />
      )}
    </div>
  );
}
