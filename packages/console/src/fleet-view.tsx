/**
 * The fleet: tenants, agents, workers and runs (child runs under their parent), each with its
 * live state and, for who may act, the buttons of its scope.
 */
import { workerWarning, type Directive, type Principal } from '@killpath/protocol';
import { useContext } from 'preact/hooks';
import { Actions } from './actions.tsx';
import { SessionContext } from './context.ts';
import { DirectivesTable } from './directives-table.tsx';
import { runKey, type LiveData } from './live.ts';
import {
  agoText,
  flagLabels,
  fleetTree,
  orderedLevel,
  rateText,
  releaseText,
  stateLabel,
  type AgentNode,
  type FleetWorkerView,
  type TenantNode,
} from './model.ts';
import { sumRates } from './rate.ts';

const slug = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

function StateBadge({ state }: { state: FleetWorkerView['state'] }) {
  return <span class={`badge state-${state}`}>{stateLabel(state)}</span>;
}

function WorkersTable({ node, data }: { node: AgentNode; data: LiveData }) {
  return (
    <div class="table-wrap">
      <table class="workers">
        <caption>
          Workers of agent {node.tenant}/{node.agent}
        </caption>
        <thead>
          <tr>
            <th scope="col">Worker</th>
            <th scope="col">Release</th>
            <th scope="col">State</th>
            <th scope="col">Stream</th>
            <th scope="col">PID</th>
            <th scope="col">Observed rev</th>
            <th scope="col">Last heartbeat</th>
            <th scope="col">Effects/s</th>
            <th scope="col">Flags</th>
            <th scope="col">Launcher</th>
          </tr>
        </thead>
        <tbody>
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
        </tbody>
      </table>
    </div>
  );
}

function RunsTable({ node, data }: { node: AgentNode; data: LiveData }) {
  if (node.runs.length === 0) return <p class="empty">No runs reported yet.</p>;
  return (
    <div class="table-wrap">
      <table class="runs">
        <caption>
          Runs of agent {node.tenant}/{node.agent}
        </caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">State (worker)</th>
            <th scope="col">Ordered (switchboard)</th>
            <th scope="col">Effects/s</th>
            <th scope="col">Effects</th>
            <th scope="col">Denied</th>
            <th scope="col">In flight</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {node.runs.map(({ run, worker, depth, parentElsewhere }) => {
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
        </tbody>
      </table>
    </div>
  );
}

function AgentSection({ node, data }: { node: AgentNode; data: LiveData }) {
  const id = `agent-${slug(node.tenant)}-${slug(node.agent)}`;
  const rate = sumRates(node.workers.map((w) => data.rates.get(w.workerId) ?? null));
  return (
    <section class="agent" aria-labelledby={id}>
      <div class="scope-head">
        <h4 id={id}>Agent {node.agent}</h4>
        <span class="detail">
          {node.workers.length} worker{node.workers.length === 1 ? '' : 's'} · {rateText(rate)}
        </span>
        <Actions target={{ kind: 'agent', tenant: node.tenant, agent: node.agent }} />
      </div>
      <WorkersTable node={node} data={data} />
      <RunsTable node={node} data={data} />
    </section>
  );
}

function TenantSection({ node, data }: { node: TenantNode; data: LiveData }) {
  const id = `tenant-${slug(node.tenant)}`;
  const workers = node.agents.flatMap((a) => a.workers);
  const rate = sumRates(workers.map((w) => data.rates.get(w.workerId) ?? null));
  return (
    <section class="tenant" aria-labelledby={id} data-tenant={node.tenant}>
      <div class="scope-head">
        <h3 id={id}>Tenant {node.tenant}</h3>
        <span class="detail">
          {node.agents.length} agent{node.agents.length === 1 ? '' : 's'} ·{' '}
          {workers.filter((w) => w.connected).length} of {workers.length} workers connected · {rateText(rate)}
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
        <AgentSection key={a.agent} node={a} data={data} />
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

/** Props of {@link FleetView}. */
export interface FleetViewProps {
  data: LiveData | null;
}

export function FleetView({ data }: FleetViewProps) {
  const session = useContext(SessionContext)!;
  if (!data) return <p class="empty">Loading the fleet…</p>;
  const tree = fleetTree(data.workers, extraTenants(session.principal, data));
  const connected = data.workers.filter((w) => w.connected).length;
  return (
    <div class="fleet">
      <p class="summary">
        Switchboard rev <strong>{data.rev}</strong> · {data.workers.length} workers ({connected} connected) ·{' '}
        {data.directives.length} active directive
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
        <DirectivesTable directives={data.directives} caption="Active directives" />
      </section>
      {tree.length === 0 && <p class="empty">No worker has connected yet.</p>}
      {tree.map((t) => (
        <TenantSection key={t.tenant} node={t} data={data} />
      ))}
    </div>
  );
}
