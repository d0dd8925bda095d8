/**
 * The policy (an admin's: it spans every tenant): the active version and its rules, the history
 * of versions, the diff between any two of them, and the shadow fires (what the policy's
 * shadow rules would have done, from the audit log's `policy.shadow_fired` records).
 */
import { isAudit, type AuditRecord } from '@killpath/protocol';
import { useContext, useState } from 'preact/hooks';
import { SessionContext } from './context.ts';
import { diffHunks, lineDiff } from './diff.ts';
import { ofTotal } from './model.ts';
import { LoadError } from './other-views.tsx';
import { usePoll } from './use-poll.ts';
import { DataTable } from './data-table.tsx';

/** A policy version as `GET /v1/policy/history` lists it (no text). */
interface PolicyVersionRow {
  version: number;
  digest: string;
  actor: string;
  comment: string | null;
  rollbackOf: number | null;
  createdAt: string;
}

/** `GET /v1/policy[?version=N]`. */
interface PolicyAnswer extends PolicyVersionRow {
  source: string;
  active: boolean;
  rules: {
    name: string;
    description: string | null;
    when: string;
    action: { level: string; scope: string; capabilities?: string[] };
    mode: 'enforce' | 'shadow';
  }[];
}

const when = (iso: string) => new Date(iso).toLocaleString();

function ActiveVersion({ p }: { p: PolicyAnswer }) {
  return (
    <section aria-labelledby="policy-active-h">
      <h3 id="policy-active-h">Active version v{p.version}</h3>
      <p class="policy-meta">
        Applied by <strong>{p.actor}</strong> at <time dateTime={p.createdAt}>{when(p.createdAt)}</time>
        {p.rollbackOf !== null && ` (rollback to v${p.rollbackOf})`}
        {p.comment && ` · “${p.comment}”`} · digest <code>{p.digest.slice(0, 16)}…</code>
      </p>
      <DataTable
        cls="rules"
        caption={<>Rules of v{p.version}</>}
        columns={['Rule', 'Mode', 'When', 'Action', 'Description']}
      >
        {p.rules.map((r) => (
          <tr key={r.name} data-rule={r.name}>
            <th scope="row">
              <code>{r.name}</code>
            </th>
            <td>
              <span class={`badge mode-${r.mode}`}>{r.mode}</span>
            </td>
            <td class="data">
              <code>{r.when}</code>
            </td>
            <td>
              {r.action.level} {r.action.scope}
              {r.action.capabilities ? ` (${r.action.capabilities.join(', ')})` : ''}
            </td>
            <td>{r.description ?? '—'}</td>
          </tr>
        ))}
      </DataTable>
    </section>
  );
}

function History({
  versions,
  active,
  total,
}: {
  versions: PolicyVersionRow[];
  active: number;
  total: number | undefined;
}) {
  return (
    <section aria-labelledby="policy-history-h">
      <h3 id="policy-history-h">History</h3>
      <DataTable
        cls="policy-history"
        caption={<>Policy versions, newest first ({ofTotal(versions.length, total)})</>}
        columns={['Version', 'Applied', 'By', 'Comment', 'Digest']}
      >
        {versions.map((v) => (
          <tr key={v.version} data-version={v.version}>
            <th scope="row">
              v{v.version}
              {v.version === active && (
                <>
                  {' '}
                  <span class="badge mode-enforce">active</span>
                </>
              )}
              {v.rollbackOf !== null && <span class="detail"> rollback to v{v.rollbackOf}</span>}
            </th>
            <td>
              <time dateTime={v.createdAt}>{when(v.createdAt)}</time>
            </td>
            <td>{v.actor}</td>
            <td>{v.comment ?? '—'}</td>
            <td>
              <code>{v.digest.slice(0, 16)}…</code>
            </td>
          </tr>
        ))}
      </DataTable>
    </section>
  );
}

function Diff({ versions, active }: { versions: PolicyVersionRow[]; active: number }) {
  const { api } = useContext(SessionContext)!;
  const [from, setFrom] = useState<number>(() => versions.find((v) => v.version < active)?.version ?? active);
  const [to, setTo] = useState<number>(active);
  const [texts] = usePoll(
    async () => {
      const [a, b] = await Promise.all(
        [from, to].map((v) => api.get<PolicyAnswer>(`/v1/policy?version=${v}`)),
      );
      return { from, to, a: a!.source, b: b!.source };
    },
    60_000,
    [api, from, to],
  );
  const pick = (label: string, id: string, value: number, set: (v: number) => void) => (
    <span class="pick">
      <label for={id}>{label}</label>
      <select
        id={id}
        value={String(value)}
        onChange={(e) => set(Number((e.currentTarget as HTMLSelectElement).value))}
      >
        {versions.map((v) => (
          <option key={v.version} value={String(v.version)}>
            v{v.version}
            {v.version === active ? ' (active)' : ''}
          </option>
        ))}
      </select>
    </span>
  );
  const t = texts.data;
  const hunks = t && t.from === from && t.to === to ? diffHunks(lineDiff(t.a, t.b)) : null;
  return (
    <section aria-labelledby="policy-diff-h">
      <h3 id="policy-diff-h">Diff between two versions</h3>
      <div class="filter">
        {pick('From version', 'diff-from', from, setFrom)}
        {pick('To version', 'diff-to', to, setTo)}
      </div>
      <LoadError error={texts.error} />
      {hunks === null && !texts.error && <p class="empty">Loading…</p>}
      {hunks !== null && hunks.length === 0 && (
        <p class="empty">
          v{from} and v{to} have the same text.
        </p>
      )}
      {hunks !== null && hunks.length > 0 && (
        <pre class="diff" aria-label={`Diff from v${from} to v${to}`}>
          {hunks.map((l, i) =>
            l === null ? (
              <span key={i} class="diff-gap">
                {'…\n'}
              </span>
            ) : (
              <span key={i} class={`diff-${l.op}`}>
                {l.op === 'added' ? '+ ' : l.op === 'removed' ? '- ' : '  '}
                {l.text}
                {'\n'}
              </span>
            ),
          )}
        </pre>
      )}
    </section>
  );
}

/** The data of a `policy.shadow_fired` audit record. */
function ShadowFires() {
  const { api } = useContext(SessionContext)!;
  const [state] = usePoll(
    () =>
      api.get<{ records: AuditRecord[]; total?: number; totalExact?: boolean }>(
        '/v1/audit?type=policy.shadow_fired&order=desc&limit=100',
      ),
    2000,
    [api],
  );
  const fires = (state.data?.records ?? []).filter((r) => isAudit(r, 'policy.shadow_fired'));
  return (
    <section aria-labelledby="policy-shadow-h">
      <h3 id="policy-shadow-h">Shadow fires</h3>
      <p class="hint">
        What the shadow rules would have done (nothing was issued): the evidence to set a rule to enforce.
      </p>
      <LoadError error={state.error} />
      {state.data && fires.length === 0 && <p class="empty">No shadow rule has fired.</p>}
      {fires.length > 0 && (
        <DataTable
          cls="shadow-fires"
          caption={
            <>
              Shadow fires, newest first (
              {ofTotal(fires.length, state.data?.total, state.data?.totalExact !== false)})
            </>
          }
          columns={['Time', 'Rule', 'Policy', 'Would have issued', 'Run', 'Agent', 'Values']}
        >
          {fires.map((r) => {
            const f = r.data;
            return (
              <tr key={r.seq} data-shadow-rule={f.rule}>
                <td>
                  <time dateTime={r.ts}>{when(r.ts)}</time>
                </td>
                <td>
                  <code>{f.rule ?? '?'}</code>
                </td>
                <td>{f.policyVersion !== undefined ? `v${f.policyVersion}` : '—'}</td>
                <td>
                  {f.wouldIssue?.level ?? '?'} <code>{f.wouldIssue?.scope ?? ''}</code>
                </td>
                <td>
                  <code>{f.run ?? '—'}</code>
                </td>
                <td>
                  {r.tenant ?? '—'}/{f.agent ?? '—'}
                </td>
                <td class="data">
                  <code>{f.values ? JSON.stringify(f.values) : '—'}</code>
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}
    </section>
  );
}

export function PolicyView() {
  const { api } = useContext(SessionContext)!;
  const [active] = usePoll(() => api.get<PolicyAnswer>('/v1/policy'), 5000, [api]);
  const [history] = usePoll(
    () =>
      api.get<{ active: number; total?: number; versions: PolicyVersionRow[] }>(
        '/v1/policy/history?limit=100',
      ),
    5000,
    [api],
  );
  return (
    <div>
      <LoadError error={active.error ?? history.error} />
      {!active.data && !active.error && <p class="empty">Loading…</p>}
      {active.data && <ActiveVersion p={active.data} />}
      {history.data && (
        <History versions={history.data.versions} active={history.data.active} total={history.data.total} />
      )}
      {history.data && history.data.versions.length > 0 && (
        <Diff key={history.data.active} versions={history.data.versions} active={history.data.active} />
      )}
      <ShadowFires />
    </div>
  );
}
