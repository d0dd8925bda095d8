/** A table of directives with a resume button on each active one the principal may clear. */
import type { Directive } from '@killpath/protocol';
import { useContext } from 'preact/hooks';
import { SessionContext } from './context.ts';
import { canResume, takesGrace } from './model.ts';
import { DataTable } from './data-table.tsx';

const time = (iso: string | null) => (iso === null ? '' : new Date(iso).toLocaleString());

/** Props of {@link DirectivesTable}. */
export interface DirectivesTableProps {
  directives: readonly Directive[];
  caption: string;
  /** Show the justification and the clearing columns (the history view). */
  full?: boolean;
}

export function DirectivesTable({ directives, caption, full = false }: DirectivesTableProps) {
  const session = useContext(SessionContext)!;
  if (directives.length === 0) return <p class="empty">{caption}: none.</p>;
  return (
    <DataTable
      cls="directives"
      caption={caption}
      columns={[
        'Level',
        'Scope',
        'Tools',
        'Issued',
        'By',
        'Reason',
        full && 'Justification',
        full && 'Status',
        <span class="visually-hidden">Actions</span>,
      ]}
    >
      {directives.map((d) => (
        <tr key={d.id} data-directive={d.id} class={d.clearedAt === null ? `level-${d.level}` : 'cleared'}>
          <td>
            <span class={`badge level-${d.level}`}>{d.level}</span>
            {d.rate && (
              <span class="detail">
                {' '}
                {d.rate.perSecond}/s per {d.rate.per}
              </span>
            )}
            {takesGrace(d.level) && d.graceMs > 0 && <span class="detail"> grace {d.graceMs} ms</span>}
          </td>
          <td>
            <code>{d.scopeText}</code>
            {d.tenant !== null && d.scope.kind !== 'tenant' && d.scope.kind !== 'agent' && (
              <span class="detail"> in {d.tenant}</span>
            )}
          </td>
          <td>{d.capabilities ? d.capabilities.join(', ') : 'all'}</td>
          <td>
            <time dateTime={d.issuedAt}>{time(d.issuedAt)}</time> <span class="detail">rev {d.rev}</span>
          </td>
          <td>{d.actor}</td>
          <td>{d.reason}</td>
          {full && <td class="prose">{d.justification}</td>}
          {full && <td>{d.clearedAt === null ? 'active' : `cleared ${time(d.clearedAt)}`}</td>}
          <td>
            {canResume(session.principal, d) && (
              <button
                type="button"
                aria-label={`Resume ${d.level} on ${d.scopeText}`}
                onClick={() => session.openResume(d)}
              >
                Resume…
              </button>
            )}
          </td>
        </tr>
      ))}
    </DataTable>
  );
}
