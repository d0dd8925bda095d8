/**
 * The fleet: tenants, agents, workers and runs (child runs under their parent), each with its
 * live state and, for who may act, the buttons of its scope. Usable at a thousand workers: every
 * tenant and agent is listed with its counts (from the server, without fetching the workers),
 * the workers come one page at a time (one agent's, or the whole view's), and a run is found by
 * its id.
 */
import { isIdentifier, workerWarning, type Directive, type Principal } from '@killpath/protocol';
import { useContext, useState } from 'preact/hooks';
import { Actions } from './actions.tsx';
import { SessionContext } from './context.ts';
import { DirectivesTable } from './directives-table.tsx';
import { runKey, sameQuery, type FleetQuery, type LiveData } from './live.ts';
import {
  agoText,
  flagLabels,
  fleetTree,
  orderedLevel,
  rateText,
  releaseText,
  runsMatching,
  stateLabel,
  statesText,
  type AgentNode,
  type FleetWorkerView,
  type TenantNode,
  ofTotal,
} from './model.ts';
import { sumRates } from './rate.ts';
import { DataTable } from './data-table.tsx';

const slug = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

function StateBadge({ state }: { state: FleetWorkerView['state'] }) {
  return <span class={`badge state-${state}`}>{stateLabel(state)}</span>;
}

function WorkersTable({ node, data }: { node: AgentNode; data: LiveData }) {
  return (
    <DataTable
      cls="workers"
      caption={
        <>
          Workers of agent {node.tenant}/{node.agent}
        </>
      }
      columns={[
        'Worker',
        'Release',
        'State',
        'Stream',
        'PID',
        'Observed rev',
        'Last heartbeat',
        'Effects/s',
        'Flags',
        'Launcher',
      ]}
    >
      {node.workers.map((w) => {
        const flags = flagLabels(w.flags);
        return (
          <tr key={w.workerId} data-worker={w.workerId}>
            <th scope="row">
              <code>{w.workerId}</code>
            </th>
            <td class="release">{releaseText(w) === '—' ? '—' : <code>{releaseText(w)}</code>}</td>
            <td>
              <StateBadge state={w.state} />
              {workerWarning(w) !== null && <span class="bad detail"> {workerWarning(w)}</span>}
            </td>
            <td>{w.connected ? 'connected' : <span class="bad">disconnected</span>}</td>
            <td>{w.pid ?? '—'}</td>
            <td class={w.observedRev < data.rev ? 'behind' : ''}>
              {w.observedRev}
              {w.observedRev < data.rev && <span class="detail"> (behind {data.rev})</span>}
            </td>
            <td>{agoText(w.lastHeartbeatAgoMs)}</td>
            <td>{rateText(data.rates.get(w.workerId) ?? null)}</td>
            <td>
              {flags.length === 0
                ? '—'
                : flags.map((f) => (
                    <span key={f} class="badge flag">
                      {f}
                    </span>
                  ))}
            </td>
            <td>{w.launcher ? <code>{w.launcher}</code> : '—'}</td>
          </tr>
        );
      })}
    </DataTable>
  );
}

function RunsTable({ node, data }: { node: AgentNode; data: LiveData }) {
  const search = data.query.run;
  const rows = search === undefined ? node.runs : runsMatching(node.runs, search);
  if (node.workers.length === 0) return null;
  if (rows.length === 0) return <p class="empty">No runs reported yet.</p>;
  return (
    <DataTable
      cls="runs"
      caption={
        <>
          Runs of agent {node.tenant}/{node.agent}
        </>
      }
      columns={[
        'Run',
        'State (worker)',
        'Ordered (switchboard)',
        'Effects/s',
        'Effects',
        'Denied',
        'In flight',
        <span class="visually-hidden">Actions</span>,
      ]}
    >
      {rows.map(({ run, worker, depth, parentElsewhere }) => {
        const ordered: Directive | null = orderedLevel(data.directives, worker, run);
        return (
          <tr
            key={`${worker.workerId}/${run.runId}`}
            data-run={run.runId}
            class={`depth-${Math.min(depth, 4)}`}
          >
            <th scope="row">
              {depth > 0 && (
                <span class="child-mark" aria-hidden="true">
                  ↳{' '}
                </span>
              )}
              <code>{run.runId}</code>
              {depth > 0 && <span class="visually-hidden"> (child of {run.parentRunId})</span>}
              {parentElsewhere && <span class="detail"> child of {run.parentRunId}</span>}
            </th>
            <td>
              <StateBadge state={run.state} />
            </td>
            <td>
              {ordered ? (
                <span class={`badge level-${ordered.level}`}>
                  {ordered.level}
                  {ordered.capabilities ? ` (${ordered.capabilities.join(', ')})` : ''} by {ordered.actor}
                </span>
              ) : (
                '—'
              )}
            </td>
            <td>{rateText(data.rates.get(runKey(worker.workerId, run.runId)) ?? null)}</td>
            <td>{run.effects}</td>
            <td>{run.denied}</td>
            <td>{run.inFlight}</td>
            <td>
              <Actions target={{ kind: 'run', tenant: node.tenant, run: run.runId }} />
            </td>
          </tr>
        );
      })}
    </DataTable>
  );
}

function AgentSection({ node, data, nav }: { node: AgentNode; data: LiveData; nav: FleetNav }) {
  const id = `agent-${slug(node.tenant)}-${slug(node.agent)}`;
  const rate = sumRates(node.workers.map((w) => data.rates.get(w.workerId) ?? null));
  const workers = node.count?.workers ?? node.workers.length;
  const runs = node.count?.runs ?? node.workers.reduce((n, w) => n + w.runs.length, 0);
  const onlyThis = data.query.agent === node.agent && data.query.tenant === node.tenant;
  return (
    <section class="agent" aria-labelledby={id} data-agent={`${node.tenant}/${node.agent}`}>
      <div class="scope-head">
        <h4 id={id}>Agent {node.agent}</h4>
        <span class="detail agent-counts">
          {count(workers, 'worker')} · {count(runs, 'run')}
          {node.count && ` · ${statesText(node.count.states)}`} · {rateText(rate)}
        </span>
        <Actions target={{ kind: 'agent', tenant: node.tenant, agent: node.agent }} />
        {!onlyThis && node.workers.length < workers && (
          <button
            type="button"
            class="link"
            aria-label={`Show the workers of ${node.tenant}/${node.agent}`}
            onClick={() => nav.filter({ tenant: node.tenant, agent: node.agent })}
          >
            Show its workers
          </button>
        )}
      </div>
      {node.workers.length === 0 ? (
        workers > 0 && <p class="empty">None of its workers is on this page.</p>
      ) : (
        <>
          <WorkersTable node={node} data={data} />
          <RunsTable node={node} data={data} />
        </>
      )}
    </section>
  );
}

const count = (n: number, what: string) => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`;

function TenantSection({ node, data, nav }: { node: TenantNode; data: LiveData; nav: FleetNav }) {
  const id = `tenant-${slug(node.tenant)}`;
  const workers = node.agents.flatMap((a) => a.workers);
  const rate = sumRates(workers.map((w) => data.rates.get(w.workerId) ?? null));
  return (
    <section class="tenant" aria-labelledby={id} data-tenant={node.tenant}>
      <div class="scope-head">
        <h3 id={id}>Tenant {node.tenant}</h3>
        <span class="detail">
          {count(node.agents.length, 'agent')} · {count(node.workers, 'worker')} (
          {workers.filter((w) => w.connected).length} of {workers.length} on this page connected) ·{' '}
          {count(node.runs, 'run')} · {rateText(rate)}
        </span>
        <Actions target={{ kind: 'tenant', tenant: node.tenant }} />
      </div>
      {node.features.length > 0 && (
        <div class="features">
          <h4>Features</h4>
          <ul>
            {node.features.map((f) => (
              <li key={f}>
                <code>{f}</code>
                <Actions target={{ kind: 'feature', tenant: node.tenant, feature: f }} />
              </li>
            ))}
          </ul>
        </div>
      )}
      {node.releases.length > 0 && (
        <div class="features releases">
          <h4>Releases</h4>
          <ul>
            {node.releases.map((r) => (
              <li key={`${r.part}=${r.value}`}>
                <code>
                  {r.part}={r.value}
                </code>
                <Actions target={{ kind: 'release', tenant: node.tenant, part: r.part, value: r.value }} />
              </li>
            ))}
          </ul>
        </div>
      )}
      {node.agents.length === 0 && <p class="empty">No agent of this tenant is connected.</p>}
      {node.agents.map((a) => (
        <AgentSection key={a.agent} node={a} data={data} nav={nav} />
      ))}
    </section>
  );
}

/** Tenants to show even with no worker: the operator's own, and those named by directives. */
function extraTenants(p: Principal, data: LiveData): string[] {
  const out = new Set<string>();
  if (p.tenant !== '*') out.add(p.tenant);
  for (const d of data.directives) if (d.tenant !== null) out.add(d.tenant);
  return [...out];
}

/** How the fleet view moves: to a filter (first page), to the next page, back one page. */
interface FleetNav {
  filter(q: Omit<FleetQuery, 'cursor'>): void;
}

/** Props of {@link FleetView}. */
export interface FleetViewProps {
  data: LiveData | null;
  /** The page being shown (or asked for). */
  query: FleetQuery;
  onQuery(q: FleetQuery): void;
}

/** The search box: finds the worker(s) hosting a run id, in the caller's tenant. */
function RunSearch({ query, nav }: { query: FleetQuery; nav: FleetNav }) {
  const [text, setText] = useState(query.run ?? '');
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      class="filter run-search"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        const run = text.trim();
        if (run !== '' && !isIdentifier(run)) {
          setError('A run id is 1-128 letters, digits or ._:@-');
          return;
        }
        setError(null);
        nav.filter(run === '' ? {} : { run });
      }}
    >
      <label for="run-search">Find a run by id</label>
      <input
        id="run-search"
        type="search"
        spellcheck={false}
        autocomplete="off"
        aria-invalid={error !== null}
        aria-describedby={error ? 'run-search-error' : undefined}
        value={text}
        placeholder="ticket-1234"
        onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit">Find</button>
      {error && (
        <p id="run-search-error" class="field-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function FleetView({ data, query, onQuery }: FleetViewProps) {
  const session = useContext(SessionContext)!;
  // Offsets of the pages before this one (the cursor stack), for "Previous" and "workers 51-100".
  const [pages, setPages] = useState<{ cursor: string | undefined; offset: number }[]>([]);
  const filterOf = (q: FleetQuery): Omit<FleetQuery, 'cursor'> => {
    const { cursor: _cursor, ...rest } = q;
    return rest;
  };
  const nav: FleetNav = {
    filter(q) {
      setPages([]);
      onQuery(q);
    },
  };
  if (!data) return <p class="empty">Loading the fleet…</p>;
  const current = sameQuery(data.query, query);
  const offset = pages.at(-1)?.offset ?? 0;
  const filtered = query.agent !== undefined || query.run !== undefined;
  const tree = fleetTree(
    data.workers,
    filtered ? [] : extraTenants(session.principal, data),
    filtered ? [] : data.groups,
  );
  const connected = data.workers.filter((w) => w.connected).length;
  const all = data.groups.reduce((n, g) => n + g.workers, 0) || data.total;
  const next = () => {
    if (data.nextCursor === null) return;
    setPages([...pages, { cursor: query.cursor, offset: offset + data.workers.length }]);
    onQuery({ ...filterOf(query), cursor: data.nextCursor });
  };
  const previous = () => {
    const back = pages.at(-1);
    if (!back) return;
    setPages(pages.slice(0, -1));
    onQuery({ ...filterOf(query), ...(back.cursor === undefined ? {} : { cursor: back.cursor }) });
  };
  return (
    <div class="fleet">
      <p class="summary">
        Switchboard rev <strong>{data.rev}</strong> · {count(all, 'worker')}
        {Object.keys(data.states).length > 0 && ` (${statesText(data.states)})`} · {data.directives.length}{' '}
        active directive
        {data.directives.length === 1 ? '' : 's'}
      </p>
      {session.principal.role === 'admin' && (
        <section class="global" aria-labelledby="global-h">
          <div class="scope-head">
            <h3 id="global-h">Every tenant</h3>
            <span class="detail">global scope: admin token and break-glass attestation</span>
            <Actions target={{ kind: 'global' }} />
          </div>
        </section>
      )}
      <section aria-labelledby="active-h">
        <h3 id="active-h" class="visually-hidden">
          Active directives
        </h3>
        <DirectivesTable
          directives={data.directives}
          caption={
            data.directivesTotal > data.directives.length
              ? `Active directives (${ofTotal(data.directives.length, data.directivesTotal)}, newest first: the Directives view lists them)`
              : 'Active directives'
          }
        />
      </section>
      <RunSearch query={query} nav={nav} />
      {filtered && (
        <p class="filtered" role="status">
          {query.run !== undefined
            ? data.total === 0
              ? `No worker hosts run ${query.run}.`
              : `Run ${query.run}: hosted by ${count(data.total, 'worker')}.`
            : `Workers of agent ${query.tenant}/${query.agent}.`}{' '}
          <button type="button" class="link" onClick={() => nav.filter({})}>
            Show the whole fleet
          </button>
        </p>
      )}
      <nav class="pager" aria-label="Fleet pages">
        <span class="page-info">
          {data.workers.length === 0
            ? `No worker of ${data.total} on this page`
            : `Workers ${offset + 1}–${offset + data.workers.length} of ${data.total}`}
          {data.workers.length > 0 && ` (${connected} connected)`}
          {!current && ' · loading…'}
        </span>
        <button type="button" disabled={pages.length === 0 || !current} onClick={previous}>
          Previous page
        </button>
        <button type="button" disabled={data.nextCursor === null || !current} onClick={next}>
          Next page
        </button>
      </nav>
      {tree.length === 0 && !filtered && <p class="empty">No worker has connected yet.</p>}
      {tree.map((t) => (
        <TenantSection key={t.tenant} node={t} data={data} nav={nav} />
      ))}
    </div>
  );
}
