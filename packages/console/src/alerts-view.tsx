/**
 * Alerts: what `GET /v1/alerts` returns (the control plane keeps the latest 200), newest first.
 * A tenant's people get their tenant's alerts and those about everyone; the server decides
 * what they may see, the view shows all it is given.
 */
import { useContext } from 'preact/hooks';
import { SessionContext } from './context.ts';
import { LoadError } from './other-views.tsx';
import { usePoll } from './use-poll.ts';
import { DataTable } from './data-table.tsx';

/** One alert of `GET /v1/alerts`. */
export interface AlertView {
  kind: string;
  summary: string;
  tenant: string | null;
  directiveId: string | null;
  at: string;
  details: Record<string, unknown>;
}

/** Alerts newest first (the server lists them oldest first). */
export function newestFirst(alerts: readonly AlertView[]): AlertView[] {
  return [...alerts].reverse();
}

function detailsText(d: Record<string, unknown>): string {
  const s = JSON.stringify(d);
  return s === '{}' ? '—' : s.length > 240 ? `${s.slice(0, 240)}…` : s;
}

export function AlertsView() {
  const { api, principal } = useContext(SessionContext)!;
  const [state] = usePoll(() => api.get<{ alerts: AlertView[] }>('/v1/alerts'), 2000, [api]);
  const alerts = newestFirst(state.data?.alerts ?? []);
  return (
    <div>
      <p class="hint">
        {principal.tenant === '*'
          ? 'Every alert the control plane raised recently (the latest 200), newest first.'
          : `Alerts about tenant ${principal.tenant} and about every tenant (the latest 200), newest first.`}
      </p>
      <LoadError error={state.error} />
      {!state.data && !state.error && <p class="empty">Loading…</p>}
      {state.data && alerts.length === 0 && <p class="empty">No alert has been raised.</p>}
      {alerts.length > 0 && (
        <DataTable
          cls="alerts"
          caption="Alerts, newest first"
          columns={['Time', 'Kind', 'Tenant', 'What happened', 'Directive', 'Details']}
        >
          {alerts.map((a, i) => (
            <tr key={`${a.at}/${i}`} data-alert={a.kind}>
              <td>
                <time dateTime={a.at}>{new Date(a.at).toLocaleString()}</time>
              </td>
              <td>
                <code>{a.kind}</code>
              </td>
              <td>{a.tenant ?? 'all'}</td>
              <td>{a.summary}</td>
              <td>{a.directiveId ? <code>{a.directiveId}</code> : '—'}</td>
              <td class="data">
                <code>{detailsText(a.details)}</code>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </div>
  );
}
